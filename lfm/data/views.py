"""2D from 3D: random cameras, projections, pixel noise and occlusion, all driven by one seeded generator.

Conventions (rows, rotations on the right, as in :mod:`lfm.geometry`): a world shape ``X (N, 3)`` is seen by a
camera as ``X_cam = (X - c) @ R`` with ``c`` its visible centroid; the camera looks along +z, the image keeps
x right and y up. Projections of ``X_cam``:

* ``orthographic``: ``p = X_cam[:, :2]``;
* ``weak_perspective``: ``p = f X_cam[:, :2] / d`` (one depth ``d`` for the whole shape);
* ``perspective``: ``p = f X_cam[:, :2] / (d + X_cam[:, 2])`` with the shape's centroid at distance ``d``.

``d = distance_factor * rms_radius`` with the factor uniform in ``distance`` (default 2.5-4) and the focal length
``f = mean(distance) * rms_radius`` (so the image scale stays near the 3D scale; after the model's normalisation
weak perspective and orthographic inputs are identical). Cameras: ``so3`` draws rotations uniformly (scipy's ``Rotation.random``);
``upright`` turns the category's up axis to image-up, then draws azimuth uniform in [0, 360), elevation within
+-``elevation`` and roll within +-``roll`` degrees. The 3D target is the camera-frame shape ``X_cam`` centred on
its visible centroid, so a lifter is judged on what the camera sees.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["Views", "random_cameras", "project", "synthesize_views", "occlude", "CAMERAS", "PROJECTIONS"]

CAMERAS = ("upright", "so3")
PROJECTIONS = ("perspective", "weak_perspective", "orthographic")


class Views(NamedTuple):
    points2d: np.ndarray  # (M, N, 2) float32 image coordinates
    points3d: np.ndarray  # (M, N, 3) float32 camera-frame 3D, centred on the visible centroid
    visible: np.ndarray  # (M, N) bool (the source visibility and any synthetic occlusion)
    frame: np.ndarray  # (M,) int: the source frame of each view
    R: np.ndarray  # (M, 3, 3) world -> camera rotation, rows convention


def _up_to_y(up: tuple[float, float, float]) -> np.ndarray:
    """A rotation (rows convention) taking the unit vector ``up`` to +y."""
    u = np.asarray(up, float) / np.linalg.norm(up)
    rot, _ = Rotation.align_vectors([[0.0, 1.0, 0.0]], [u])  # column convention: rot @ u = y
    return rot.as_matrix().T


def random_cameras(n: int, rng: np.random.Generator, camera: str = "upright", *, up=(0.0, 1.0, 0.0),
                   elevation: float = 30.0, roll: float = 10.0) -> np.ndarray:
    """``n`` world -> camera rotations ``(n, 3, 3)`` (rows convention: ``X_cam = X @ R``)."""
    if camera == "so3":
        return Rotation.random(n, random_state=rng).as_matrix().transpose(0, 2, 1)
    if camera != "upright":
        raise ValueError(f"camera={camera!r} is not one of {CAMERAS}.")
    az = rng.uniform(0, 360, n)
    el = rng.uniform(-elevation, elevation, n)
    ro = rng.uniform(-roll, roll, n)
    # world -> camera, column convention v_cam = Rz(roll) Rx(elevation) Ry(azimuth) v: spin about up, tilt, roll
    cam = Rotation.from_euler("yxz", np.stack([az, el, ro], 1), degrees=True).as_matrix()  # (n, 3, 3)
    return _up_to_y(up)[None] @ cam.transpose(0, 2, 1)  # rows: X_cam = X @ (up->y) @ cam^T


def project(cam3d: np.ndarray, projection: str, distance: np.ndarray, focal: np.ndarray | None = None) -> np.ndarray:
    """Project camera-frame points ``(M, N, 3)`` (centred) with per-view centroid distance and focal ``(M,)``
    (``focal`` defaults to ``distance``)."""
    d = np.asarray(distance, float)[:, None, None]
    f = d if focal is None else np.asarray(focal, float)[:, None, None]
    if projection == "orthographic":
        return cam3d[..., :2].copy()
    if projection == "weak_perspective":  # one depth for the whole shape: orthographic up to a per-view scale
        return cam3d[..., :2] * f / d
    if projection == "perspective":
        return cam3d[..., :2] * f / (d + cam3d[..., 2:])
    raise ValueError(f"projection={projection!r} is not one of {PROJECTIONS}.")


def occlude(visible: np.ndarray, points2d: np.ndarray, rng: np.random.Generator, *, p_joint: float = 0.0,
            p_block: float = 0.0, block_frac: float = 0.25, min_visible: int = 3) -> np.ndarray:
    """Synthetic occlusion on top of ``visible (M, N)``: each joint hidden with probability ``p_joint``; with
    probability ``p_block`` a contiguous block (a random visible joint and its nearest ``block_frac`` of the
    visible joints in the image) is hidden. Views never drop below ``min_visible`` visible joints (occlusion is
    undone where it would)."""
    vis = visible.copy()
    M, N = vis.shape
    if p_joint > 0:
        vis &= ~(rng.random((M, N)) < p_joint)
    if p_block > 0:
        for m in np.flatnonzero(rng.random(M) < p_block):
            idx = np.flatnonzero(vis[m])
            if len(idx) <= min_visible:
                continue
            centre = points2d[m, rng.choice(idx)]
            k = max(1, int(round(block_frac * len(idx))))
            near = idx[np.argsort(np.linalg.norm(points2d[m, idx] - centre, axis=-1), kind="stable")[:k]]
            vis[m, near] = False
    too_few = vis.sum(1) < np.minimum(min_visible, visible.sum(1))
    vis[too_few] = visible[too_few]
    return vis


def synthesize_views(points3d: np.ndarray, visible: np.ndarray, *, seed: int, views_per_frame: int = 1,
                     camera: str = "upright", projection: str = "perspective", up=(0.0, 1.0, 0.0),
                     elevation: float = 30.0, roll: float = 10.0, distance=(2.5, 4.0), noise: float = 0.0,
                     p_joint: float = 0.0, p_block: float = 0.0) -> Views:
    """Seeded 2D views of every frame of ``points3d (F, N, 3)`` (see the module docstring).

    ``noise`` is the std of Gaussian image noise as a fraction of the shape's RMS radius. The same seed and
    arguments give the same views on every machine (numpy's PCG64 and scipy's Rotation.random).
    """
    if projection not in PROJECTIONS:
        raise ValueError(f"projection={projection!r} is not one of {PROJECTIONS}.")
    rng = np.random.default_rng(seed)
    V = np.asarray(visible, bool)
    P = np.where(V[..., None], np.asarray(points3d, np.float64), 0.0)  # hidden rows may hold NaN
    frame = np.repeat(np.arange(len(P)), views_per_frame)
    P, V = P[frame], V[frame]
    M = len(P)
    w = V[..., None].astype(float)
    c = (P * w).sum(1, keepdims=True) / np.maximum(w.sum(1, keepdims=True), 1)
    X = np.where(V[..., None], P - c, 0.0)
    R = random_cameras(M, rng, camera, up=up, elevation=elevation, roll=roll)
    cam = X @ R  # (M, N, 3), centred on the visible centroid (a rotation keeps the centroid at 0)
    rms = np.sqrt((cam**2).sum(-1).sum(1) / np.maximum(V.sum(1), 1))  # (M,)
    rms = np.maximum(rms, 1e-12)
    dist = rng.uniform(*distance, M) * rms
    p2d = project(cam, projection, dist, focal=np.mean(distance) * rms)  # image scale ~ 1 x the 3D scale
    if noise > 0:
        p2d = p2d + noise * rms[:, None, None] * rng.standard_normal(p2d.shape)
    vis = occlude(V, p2d, rng, p_joint=p_joint, p_block=p_block) if (p_joint or p_block) else V
    cam = cam - (cam * vis[..., None]).sum(1, keepdims=True) / np.maximum(vis.sum(1), 1)[:, None, None]
    zero = ~vis[..., None]
    return Views(np.where(zero, 0.0, p2d).astype(np.float32), np.where(zero, 0.0, cam).astype(np.float32),
                 vis, frame, R.astype(np.float32))
