"""lfm.data.views: camera distributions (closed-form properties), projections, noise, occlusion, reproducibility."""

import numpy as np
import pytest

from lfm.data.views import occlude, project, random_cameras, synthesize_views


def shape(rng, F=20, N=12):
    return rng.normal(size=(F, N, 3)) + [0.0, 5.0, -2.0]


def test_cameras_are_rotations(rng):
    for cam in ("so3", "upright"):
        R = random_cameras(500, rng, cam)
        np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
        np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)


def test_upright_cameras_keep_up_within_elevation_and_roll(rng):
    up = np.array([0.0, 1.0, 0.0])
    R = random_cameras(2000, rng, "upright", elevation=30, roll=0)
    u = up @ R  # the world up direction in the camera frame
    np.testing.assert_allclose(u[:, 0], 0.0, atol=1e-12)  # no roll: image-up has no sideways tilt
    tilt = np.degrees(np.arccos(np.clip(u[:, 1], -1, 1)))
    assert tilt.max() <= 30 + 1e-9 and tilt.max() > 25  # elevation fills +-30 degrees
    R = random_cameras(2000, rng, "upright", elevation=0, roll=10)
    u = up @ R
    np.testing.assert_allclose(u[:, 2], 0.0, atol=1e-12)  # no elevation: up stays in the image plane
    roll = np.degrees(np.arctan2(np.abs(u[:, 0]), u[:, 1]))
    assert roll.max() <= 10 + 1e-9 and roll.max() > 8
    # azimuth is free: the camera's viewing direction in the world spans all horizontal directions
    R = random_cameras(4000, rng, "upright")
    view_dir = R[:, :, 2]  # world direction that maps to camera +z
    az = np.degrees(np.arctan2(view_dir[:, 0], view_dir[:, 2]))
    assert np.histogram(az, bins=8, range=(-180, 180))[0].min() > 350  # ~500 per bin


def test_upright_with_another_up_axis(rng):
    R = random_cameras(200, rng, "upright", up=(0.0, 0.0, 1.0), elevation=0, roll=0)
    np.testing.assert_allclose(np.array([0.0, 0.0, 1.0]) @ R, np.broadcast_to([0.0, 1.0, 0.0], (200, 3)), atol=1e-12)


def test_so3_cameras_are_uniform(rng):
    R = random_cameras(20000, rng, "so3")
    np.testing.assert_allclose(R.mean(0), 0.0, atol=0.02)  # E[R] = 0 for the Haar measure
    np.testing.assert_allclose((R**2).mean(0), 1 / 3, atol=0.02)


def test_projections_closed_form():
    cam = np.array([[[1.0, 2.0, 0.5], [-1.0, 0.0, -0.5]]])
    d = np.array([4.0])
    np.testing.assert_allclose(project(cam, "orthographic", d), cam[..., :2])
    np.testing.assert_allclose(project(cam, "perspective", d), cam[..., :2] * 4 / (4 + cam[..., 2:]))
    np.testing.assert_allclose(project(cam, "weak_perspective", d, focal=np.array([2.0])), cam[..., :2] / 2)
    with pytest.raises(ValueError, match="projection='fisheye'"):
        project(cam, "fisheye", d)


def test_views_are_consistent_and_reproducible(rng):
    P = shape(rng)
    V = np.ones(P.shape[:2], bool)
    a = synthesize_views(P, V, seed=3, views_per_frame=2, projection="orthographic")
    b = synthesize_views(P, V, seed=3, views_per_frame=2, projection="orthographic")
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a.points2d.shape == (40, 12, 2) and a.frame.tolist() == np.repeat(np.arange(20), 2).tolist()
    # orthographic 2D is the camera-frame x, y; 3D is the world shape rotated and centred
    np.testing.assert_allclose(a.points2d, a.points3d[..., :2], atol=1e-5)
    world = P[a.frame] - P[a.frame].mean(1, keepdims=True)
    np.testing.assert_allclose(a.points3d, world @ a.R, atol=1e-4)
    c = synthesize_views(P, V, seed=4, projection="orthographic")
    assert not np.allclose(c.points2d, a.points2d[::2])


def test_perspective_views_match_pinhole(rng):
    P = shape(rng, F=5)
    v = synthesize_views(P, np.ones(P.shape[:2], bool), seed=0, projection="perspective", distance=(3.0, 3.0))
    cam = v.points3d.astype(float)
    rms = np.sqrt((cam**2).sum(-1).mean(1))
    d = 3.0 * rms[:, None, None]
    np.testing.assert_allclose(v.points2d, cam[..., :2] * d / (d + cam[..., 2:]), rtol=1e-4, atol=1e-5)


def test_noise_scale(rng):
    P = shape(rng, F=200, N=30)
    V = np.ones(P.shape[:2], bool)
    clean = synthesize_views(P, V, seed=1, projection="orthographic")
    noisy = synthesize_views(P, V, seed=1, projection="orthographic", noise=0.05)
    rms = np.sqrt((clean.points3d.astype(float) ** 2).sum(-1).mean(1))
    ratio = (noisy.points2d - clean.points2d).std() / rms.mean()
    assert 0.045 < ratio < 0.055


def test_occlusion_rates_blocks_and_floor(rng):
    M, N = 4000, 20
    V = np.ones((M, N), bool)
    p2d = rng.normal(size=(M, N, 2))
    vis = occlude(V, p2d, rng, p_joint=0.3)
    assert abs(1 - vis.mean() - 0.3) < 0.01 and vis.sum(1).min() >= 3
    blk = occlude(V, p2d, rng, p_block=1.0, block_frac=0.25)
    assert (blk.sum(1) == 15).all()  # 5 of 20 visible joints hidden in every view
    # the hidden block is spatially contiguous: in every view it is exactly the 5 nearest joints of one of them
    for m in range(20):
        hidden = set(np.flatnonzero(~blk[m]))
        d = np.linalg.norm(p2d[m][:, None] - p2d[m][None], axis=-1)  # (N, N)
        assert any(set(np.argsort(d[j], kind="stable")[:5]) == hidden for j in range(N)), m
    # a random subset of 5 joints is (almost surely) not such a block: the check can fail
    rand = set(rng.choice(N, 5, replace=False))
    d = np.linalg.norm(p2d[0][:, None] - p2d[0][None], axis=-1)
    assert not any(set(np.argsort(d[j], kind="stable")[:5]) == rand for j in range(N))
    few = np.zeros((5, N), bool)
    few[:, :3] = True
    assert (occlude(few, p2d[:5], rng, p_joint=0.9) == few).all()  # never below min_visible


def test_hidden_source_joints_stay_hidden_and_zero(rng):
    P = shape(rng, F=10)
    V = rng.random(P.shape[:2]) > 0.3
    V[:, :3] = True
    P[~V] = np.nan
    v = synthesize_views(P, V, seed=0)
    assert (v.visible <= V[v.frame]).all()
    assert np.isfinite(v.points2d).all() and (v.points2d[~v.visible] == 0).all()
    np.testing.assert_allclose((v.points3d * v.visible[..., None]).sum(1), 0.0, atol=1e-4)  # centred on visible
