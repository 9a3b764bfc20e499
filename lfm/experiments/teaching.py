"""Geometry of lifting, drawn for a lecture: the pictures of ``notebooks/10_geometry_lecture.ipynb``.

Each topic has a small computation (numpy in, numpy out, built on :mod:`lfm.geometry`, :mod:`lfm.data.views` and
:mod:`lfm.lifting`; tested against independent oracles in ``tests/test_teaching.py``) and a figure function that
draws it in the bundle's style at its printed size (:data:`lfm.plots.PAGE_WIDTH` wide, ``style(paper=True)``: text
8-10 pt; the colour-blind-safe palette, ground truth red, prediction blue as in :mod:`lfm.plots`; units on every
axis; one legend below the panels, outside the data):

1. :func:`fig_projection`: orthographic vs perspective projection of one body (rays seen from above, the two
   images, their difference against the camera distance);
2. :func:`fig_mirror`: the depth ambiguity, a body and its depth mirror giving the same orthographic 2D;
3. :func:`fig_flat_guess`: the flat guess (the 2D with zero depth), the reference of every ratio in this bundle;
4. :func:`fig_procrustes`: similarity (Procrustes) alignment step by step, with and without reflection;
5. :func:`fig_camera_fit`: the orthographic camera fit of ``lfm.lift`` (no ground-truth camera);
6. :func:`fig_model_view` and :func:`fig_tpe`: what the model sees (normalised tokens, the mask, the graph, the
   token positional encoding);
7. :func:`fig_lift`: one lift with a checkpoint, against the ground truth.

Frames (as everywhere in ``lfm``): points are rows, the camera looks along +z, image x is right and y up; ``z`` is
the depth, away from the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import torch

from .. import plots
from ..geometry import fit_orthographic_camera, masked_mean, normalize_2d, similarity_align

__all__ = ["Example", "example", "rms_radius", "project", "depth_mirror", "flat_guess", "align", "ProcrustesSteps",
           "procrustes_steps", "similar_copy", "camera_fit_path", "hide", "rotation_angle", "ModelView", "model_view",
           "tpe_gram", "tpe_kernel", "fig_projection", "fig_mirror", "fig_flat_guess", "fig_procrustes",
           "fig_camera_fit", "fig_model_view", "place_labels", "LABEL", "fig_tpe", "fig_lift", "MIRROR_COLOUR",
           "FLAT_COLOUR"]

MIRROR_COLOUR = plots.PALETTE[2]  # bluish green: the depth mirror (neither truth nor prediction)
FLAT_COLOUR = "0.35"  # grey: the flat guess is a reference, never a data colour
PERSP_COLOUR = plots.PALETTE[1]  # orange: the perspective image


# ------------------------------------------------------------------------------------------------ the example

@dataclass
class Example:
    """One test view of a benchmark set: a body, its camera and its 2D (the realistic protocol)."""

    name: str  # benchmark set
    frame: int  # index among the set's realistic test views
    camera3d: np.ndarray  # (N, 3) the body in the camera frame, centred on its visible centroid
    world3d: np.ndarray  # (N, 3) the same body in the data's own frame, centred: camera3d = world3d @ R
    R: np.ndarray  # (3, 3) world -> camera rotation (rows convention)
    points2d: np.ndarray  # (N, 2) the test view's 2D (perspective from 2.5-4 RMS radii)
    mask: np.ndarray  # (N,) bool, visible keypoints
    edges: np.ndarray  # (E, 2) skeleton
    units: str  # unit of the coordinates ("m", "mm", "arbitrary", ...)
    names: list | None  # keypoint names, when the data has them

    @property
    def radius(self) -> float:
        """RMS radius of the body (the unit of the benchmark's unit-free errors)."""
        return rms_radius(self.camera3d, self.mask)


def example(name: str = "human_cmu31", frame: int = 0, protocol: str = "realistic") -> Example:
    """Test view ``frame`` of benchmark set ``name`` under ``protocol`` (see :func:`lfm.data.benchmark.test_views`)."""
    from ..data import benchmark

    sp = benchmark.split_category(name)
    views = benchmark.test_views(sp, protocol)
    if not 0 <= frame < len(views.points2d):
        raise IndexError(f"frame = {frame} is outside 0..{len(views.points2d) - 1}, the {protocol} test views of "
                         f"{name}; choose a frame in that range.")
    cam = views.points3d[frame].astype(np.float64)
    R = views.R[frame].astype(np.float64)
    names = (sp.test.meta or {}).get("joint_names")
    return Example(name, frame, cam, cam @ R.T, R, views.points2d[frame].astype(np.float64),
                   views.visible[frame].copy(), np.asarray(sp.test.edges), sp.test.units,
                   None if names is None else [str(n) for n in names])


# ------------------------------------------------------------------------------------------------ computations

def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float64))[None]


def rms_radius(X: np.ndarray, mask: np.ndarray | None = None) -> float:
    """RMS distance of the visible points of ``X (N, D)`` from their centroid (:func:`lfm.metrics.rms_radius`)."""
    from ..metrics import rms_radius as _rms

    return float(_rms(_t(X), None if mask is None else torch.as_tensor(np.asarray(mask, bool))[None])[0])


def project(X: np.ndarray, kind: str, distance: float = 3.0) -> np.ndarray:
    """2D image of camera-frame points ``X (N, 3)`` centred on 0: ``orthographic`` (drop z) or ``perspective``
    with the centre at ``distance`` RMS radii and the focal length equal to that distance (so a point at the
    centre's depth keeps its size): ``p = d X_xy / (d + z)`` (:func:`lfm.data.views.project`)."""
    from ..data.views import project as _project

    d = np.array([distance * rms_radius(X)])
    return _project(np.asarray(X, np.float64)[None], kind, d, d)[0]


def depth_mirror(X: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``X (N, 3)`` with its depth reflected about the centroid depth of the visible points (x, y unchanged)."""
    m = np.ones(len(X), bool) if mask is None else np.asarray(mask, bool)
    out = np.array(X, dtype=np.float64)
    out[:, 2] = 2 * out[m, 2].mean() - out[:, 2]
    return out


def flat_guess(points2d: np.ndarray) -> np.ndarray:
    """The 2D taken as 3D with zero depth (``lfm.evaluate.flat_guess``)."""
    from ..evaluate import flat_guess as _flat

    return _flat(np.asarray(points2d, np.float64))


def align(src: np.ndarray, dst: np.ndarray, mask: np.ndarray | None = None, *, allow_reflection: bool = True):
    """``src`` moved onto ``dst`` by :func:`lfm.geometry.similarity_align` (numpy ``(N, 3)``), and the per-keypoint
    distances to ``dst`` after the move ``(N,)``."""
    m = None if mask is None else torch.as_tensor(np.asarray(mask, bool))[None]
    a = similarity_align(_t(src), _t(dst), m, allow_reflection=allow_reflection).aligned[0].numpy()
    return a, np.linalg.norm(a - dst, axis=-1)


class ProcrustesSteps(NamedTuple):
    """Similarity alignment of ``src`` onto ``dst`` split into its steps; ``stages[-1] + mu_dst`` is the aligned
    shape of :func:`lfm.geometry.similarity_align`."""

    stages: list  # [(title, (N, 3) src at this step)]: input, centred, rotated, scaled (the last three centred)
    target: np.ndarray  # (N, 3) dst centred on its (visible) centroid
    s: float
    R: np.ndarray  # (3, 3), rows convention
    mu_src: np.ndarray  # (3,)
    mu_dst: np.ndarray  # (3,)
    rms: list  # RMS distance to the target at each stage (the input's to dst itself)


def procrustes_steps(src: np.ndarray, dst: np.ndarray, mask: np.ndarray | None = None, *,
                     allow_reflection: bool = False) -> ProcrustesSteps:
    """The three steps of the similarity alignment ``s * src @ R + t`` of :func:`lfm.geometry.similarity_align`:
    centre both shapes on their (visible) centroids (:func:`lfm.geometry.masked_mean`), rotate the source by ``R``
    (``det R = +1``, or ``+-1`` when ``allow_reflection``), scale it by ``s``. Scale and rotation commute; in this
    order each step can only bring the source closer to the target (``R`` does not depend on the scale, and ``s``
    is the best scale once ``R`` is applied), so the distances in ``rms`` never grow."""
    m = np.ones(len(src), bool) if mask is None else np.asarray(mask, bool)
    mt = torch.as_tensor(m)[None]
    fit = similarity_align(_t(src), _t(dst), mt, allow_reflection=allow_reflection)
    s, R = float(fit.s[0]), fit.R[0].numpy()
    mu_s = masked_mean(_t(src), mt.double())[0].numpy()
    mu_d = masked_mean(_t(dst), mt.double())[0].numpy()
    centred = src - mu_s
    rotated = centred @ R
    scaled = s * rotated
    target = dst - mu_d
    rms = lambda a, b: float(np.sqrt(((a - b)[m] ** 2).sum(-1).mean()))  # noqa: E731
    det = "det R = -1: a reflection" if np.linalg.det(R) < 0 else "det R = +1"
    stages = [("input", np.asarray(src, np.float64)), ("1 · centre both", centred), (f"2 · rotate ({det})", rotated),
              (f"3 · scale by s = {s:.2f}", scaled)]
    errs = [rms(src, dst), rms(centred, target), rms(rotated, target), rms(scaled, target)]
    return ProcrustesSteps(stages, target, s, R, mu_s, mu_d, errs)


def similar_copy(X: np.ndarray, *, seed: int = 0, scale: float = 0.6, reflect: bool = True,
                 shift: float = 1.5) -> np.ndarray:
    """``X`` under a seeded random similarity: rotated (uniform over SO(3)), depth-mirrored when ``reflect``,
    scaled by ``scale`` and shifted by ``shift`` RMS radii: a shape that Procrustes should map back onto ``X``."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    R = Rotation.random(random_state=rng).as_matrix()
    Y = depth_mirror(X) if reflect else np.array(X, np.float64)
    direction = rng.normal(size=3)
    return scale * (Y - Y.mean(0)) @ R + X.mean(0) + shift * rms_radius(X) * direction / np.linalg.norm(direction)


def camera_fit_path(points2d: np.ndarray, shape3d: np.ndarray, mask: np.ndarray | None = None,
                    steps=(0, 1, 2, 3, 5, 10, 20, 50, 100)) -> dict:
    """:func:`lfm.geometry.fit_orthographic_camera` (what :func:`lfm.lifting.fit_camera` runs) stopped after each
    number of refinement ``steps``: ``{"steps", "residual" (RMS 2D error, input units), "fits"}``."""
    m = None if mask is None else torch.as_tensor(np.asarray(mask, bool))[None]
    fits = [fit_orthographic_camera(_t(points2d), _t(shape3d), m, n_iter=k) for k in steps]
    return {"steps": list(steps), "residual": [float(f.residual[0]) for f in fits], "fits": fits}


def hide(mask: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``mask`` with ``n`` of its visible keypoints hidden, chosen by a seeded generator (at least 3 stay)."""
    out = np.array(mask, bool)
    vis = np.flatnonzero(out)
    n = int(min(max(n, 0), max(len(vis) - 3, 0)))
    out[np.random.default_rng(seed).choice(vis, n, replace=False)] = False
    return out


def rotation_angle(R1: np.ndarray, R2: np.ndarray) -> float:
    """Angle in degrees of the rotation ``R1^T R2`` (0 when they agree)."""
    c = (np.trace(np.asarray(R1).T @ np.asarray(R2)) - 1) / 2
    return math.degrees(math.acos(float(np.clip(c, -1.0, 1.0))))


class ModelView(NamedTuple):
    """What :class:`lfm.model.LFM` computes from a 2D input before its first layer."""

    tokens: np.ndarray  # (N, 2) normalised 2D (centred on the visible mean, in [-1, 1]); hidden ones are 0
    mask: np.ndarray  # (N,) bool
    adjacency: np.ndarray  # (N, N) bool: the graph of the local branch (skeleton), visible pairs and self-loops
    adjacency_knn: np.ndarray  # (N, N) bool: the fallback graph (k = 3 nearest 2D neighbours), self-loops
    tpe: np.ndarray  # (N, D) token positional encoding of each token (the first layer's input)
    scale: float  # the normalisation's scale (input units per normalised unit)
    positions: np.ndarray  # (N, 2) every keypoint in the same normalised frame, hidden ones included (to draw them)


def model_view(model, points2d: np.ndarray, mask: np.ndarray, edges: np.ndarray) -> ModelView:
    """The normalised tokens, the graphs (:func:`lfm.lifting.choose_graph`) and the encoding ``model.embed``."""
    from ..lifting import choose_graph

    p = torch.as_tensor(np.asarray(points2d, np.float32))[None]
    m = torch.as_tensor(np.asarray(mask, bool))[None]
    p = torch.where(m[..., None], p, 0.0)
    norm = normalize_2d(p, m)
    A, _ = choose_graph(p, m, edges=np.asarray(edges, np.int64))
    K, _ = choose_graph(p, m)
    with torch.no_grad():
        pe = model.embed(norm.points)[0].numpy()
    full = (np.asarray(points2d, np.float64) - norm.center[0].numpy()) / float(norm.scale[0])
    return ModelView(norm.points[0].numpy(), m[0].numpy(), A[0].numpy(), K[0].numpy(), pe, float(norm.scale[0]),
                      full)


def tpe_gram(tpe: np.ndarray) -> np.ndarray:
    """Dot products of the encodings of every pair of tokens, ``(N, N)``."""
    return tpe @ tpe.T


def tpe_kernel(distance: np.ndarray, sigma: float) -> np.ndarray:
    """The kernel the TPE approximates: for ``omega ~ sigma N(0, I)``, ``E cos(2 pi omega . d) =
    exp(-2 pi^2 sigma^2 |d|^2)`` (Rahimi & Recht 2007); the dot product of two encodings is the average of
    ``cos(2 pi omega_k . (x_i - x_j))`` over the D/2 frequencies."""
    return np.exp(-2 * math.pi ** 2 * sigma ** 2 * np.asarray(distance) ** 2)


# ------------------------------------------------------------------------------------------------ drawing

AXIS = {0: "x, right", 1: "y, up", 2: "z, depth (away from the camera)"}


def _unit(units: str) -> str:
    return "arbitrary units" if units in ("arbitrary", "") else units


def _label(axis: int, units: str, frame: str = "") -> str:
    return f"{AXIS[axis]}{frame} ({_unit(units)})"


def _skeleton(ax, X, edges, a=0, b=1, *, colour, label=None, mask=None, ls="-", lw=1.8, alpha=1.0, s=10,
              zorder=2):
    """Draw the visible bones of ``X`` on axes (a, b); one legend entry."""
    m = np.ones(len(X), bool) if mask is None else np.asarray(mask, bool)
    first = True
    for i, j in np.asarray(edges).reshape(-1, 2):
        if m[i] and m[j]:
            ax.plot(X[[i, j], a], X[[i, j], b], color=colour, ls=ls, lw=lw, alpha=alpha, zorder=zorder,
                    label=label if first else None, solid_capstyle="round")
            first = False
    if s:
        ax.scatter(X[m, a], X[m, b], s=s, color=colour, zorder=zorder + 1, alpha=alpha, linewidths=0)


def _legend_below(fig, handles=None, ncol=2):
    """One legend for the whole figure (or subfigure), below the panels (outside the data; the constrained layout
    makes room for it). Without ``handles``: every labelled artist of every panel, once per label."""
    if handles is None:
        handles, seen = [], set()
        for ax in fig.axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in seen and not lab.startswith("_"):
                    seen.add(lab)
                    handles.append(h)
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, frameon=False)


def _page(height: float, **kw):
    """A figure :data:`lfm.plots.PAGE_WIDTH` wide and ``height`` inches tall in the paper style (text 8-10 pt at
    its printed size), with a constrained layout."""
    plots.style(paper=True)
    return plt.figure(figsize=(plots.PAGE_WIDTH, height), layout="constrained", **kw)


def _centred(X, mask):
    """``X`` moved so that its visible centroid is at 0 (to compare shapes in one panel)."""
    X = np.asarray(X, np.float64)
    return X - X[np.asarray(mask, bool)].mean(0)


def _equal(ax, pad=0.08):
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(pad)


def fig_projection(ex: Example, distance: float = 2.0):
    """Orthographic vs perspective projection of ``ex``'s body: (a, b) seen from above with the rays of each
    camera; (c) the two images; (d) how far apart they are against the camera distance."""
    X, m, E, u = ex.camera3d, ex.mask, ex.edges, ex.units
    r = ex.radius
    d = distance * r
    ortho, persp = project(X, "orthographic"), project(X, "perspective", distance)
    fig = _page(7.6)
    axes = fig.subplots(2, 2)
    for ax, kind in ((axes[0, 0], "perspective"), (axes[0, 1], "orthographic")):
        img = persp if kind == "perspective" else ortho
        for k in np.flatnonzero(m):  # each ray from the camera to the keypoint or the image plane, the farther
            z_end = max(X[k, 2], 0.0)
            x_end = X[k, 0] * (d + z_end) / (d + X[k, 2]) if kind == "perspective" else X[k, 0]
            x_cam = 0.0 if kind == "perspective" else X[k, 0]
            ax.plot([x_cam, x_end], [-d, z_end], color=PERSP_COLOUR if kind == "perspective" else "0.3", lw=0.5,
                    alpha=0.45, zorder=1)
        ax.plot([], [], color=PERSP_COLOUR if kind == "perspective" else "0.3", lw=1, label=f"{kind} rays")
        _skeleton(ax, X, E, 0, 2, colour=plots.GT_COLOUR, label="3D body, seen from above", mask=m, lw=1.6, s=6)
        ax.axhline(0, color="0.5", ls="--", lw=0.8, label="image plane (through the body's centre)")
        ax.scatter(img[m, 0], np.zeros(m.sum()), marker="|", s=60, color="k", zorder=5,
                   label="where each keypoint lands in the image")
        if kind == "perspective":
            ax.scatter([0], [-d], marker="v", s=60, color="k", zorder=6, label="camera centre")
            ax.set_title(f"(a) Perspective: rays meet at the camera\n({distance:g} RMS radii from the body)")
        else:
            ax.set_title("(b) Orthographic: parallel rays along\nthe depth axis (a camera infinitely far away)")
        ax.set(xlabel=_label(0, u), ylabel=_label(2, u))
        _equal(ax, 0.05)
    ax = axes[1, 0]
    _skeleton(ax, ortho, E, colour="0.2", label="orthographic image", mask=m, lw=2.0, s=6)
    _skeleton(ax, persp, E, colour=PERSP_COLOUR, label=f"perspective image ({distance:g} RMS radii away)", mask=m,
              ls="--", lw=1.4, s=6)
    ax.set(xlabel=f"image x ({_unit(u)} at the body's depth)", ylabel=f"image y ({_unit(u)} at the body's depth)",
           title="(c) The two images of the same body: near\nparts grow, far parts shrink under perspective")
    _equal(ax)
    ax = axes[1, 1]
    ds = np.geomspace(1.2, 100, 60)
    gap = []
    for dd in ds:
        p = project(X, "perspective", dd)
        a, _ = _fit2d(p[m], ortho[m])
        gap.append(np.sqrt(((a - ortho[m]) ** 2).sum(-1).mean()) / r)
    ax.plot(ds, gap, color=PERSP_COLOUR, lw=1.6, label="perspective vs orthographic image, matched in position "
            "and size")
    ax.axvspan(2.5, 4.0, color="0.85", zorder=0, label="the benchmark's realistic cameras (2.5-4 RMS radii)")
    ax.axvline(distance, color="0.3", ls=":", label=f"the camera of (a) and (c): {distance:g} RMS radii")
    ax.set(xscale="log", yscale="log", xlabel="camera distance (RMS radii of the body)",
           ylabel="image difference (RMS radii)",
           title="(d) What is left after matching position\nand size shrinks like 1 / distance")
    fig.suptitle(f"Projection: one 3D body ({ex.name}, test view {ex.frame}) through two cameras")
    _legend_below(fig)
    return fig


def _fit2d(p: np.ndarray, q: np.ndarray):
    """``p`` moved onto ``q`` by the best translation and scale (what normalisation removes), and the scale."""
    pc, qc = p - p.mean(0), q - q.mean(0)
    s = (pc * qc).sum() / (pc ** 2).sum()
    return s * pc + q.mean(0), s


def fig_mirror(ex: Example, distance: float = 2.0):
    """The depth ambiguity: ``ex``'s body and its depth mirror differ in 3D (side, top) but their orthographic
    images coincide; only perspective (a weak cue) tells them apart."""
    X, m, E, u = ex.camera3d, ex.mask, ex.edges, ex.units
    Y = depth_mirror(X, m)
    kw_b = dict(colour=plots.GT_COLOUR, label="the body", mask=m, lw=2.0, s=6)
    kw_m = dict(colour=MIRROR_COLOUR, label="its depth mirror (z reflected about the body's centre)", mask=m,
                ls="--", lw=1.4, s=6)
    fig = _page(7.4)
    axes = fig.subplots(2, 2).ravel()
    panels = [((2, 1), "(a) Side view: two different 3D shapes"),
              ((0, 2), "(b) Top view: what was near the camera\nis now far, and vice versa")]
    for ax, ((a, b), title) in zip(axes[:2], panels):
        _skeleton(ax, X, E, a, b, **kw_b)
        _skeleton(ax, Y, E, a, b, **kw_m)
        ax.set(xlabel=_label(a, u), ylabel=_label(b, u), title=title)
        _equal(ax)
    for ax, kind, title in ((axes[2], "orthographic", "(c) Orthographic images: identical"),
                            (axes[3], "perspective", f"(d) Perspective images ({distance:g} RMS radii\n"
                             "away): different, a depth cue")):
        img_x = project(X, kind, distance)
        img_y = project(Y - np.r_[0, 0, Y[m, 2].mean()], kind, distance)
        _skeleton(ax, img_x, E, **kw_b)
        _skeleton(ax, img_y, E, **kw_m)
        diff = np.sqrt(((img_x - img_y)[m] ** 2).sum(-1).max())
        txt = "0 to float precision" if diff < 1e-9 * ex.radius else f"{diff:.2g} {_unit(u)}"
        ax.set(xlabel=f"image x ({_unit(u)})", ylabel=f"image y ({_unit(u)})",
               title=f"{title}\n(largest difference: {txt})")
        _equal(ax)
    fig.suptitle("The depth ambiguity: one 2D view cannot tell a body from its mirror image in depth")
    _legend_below(fig)
    return fig


def fig_flat_guess(ex: Example):
    """The flat guess (the 2D input as 3D, depth 0) aligned to the truth as the benchmark scores it (similarity,
    reflection allowed): front and side views with the error drawn, and the error of each keypoint."""
    X, m, E, u = ex.camera3d, ex.mask, ex.edges, ex.units
    flat, err = align(flat_guess(ex.points2d), X, m, allow_reflection=True)
    pa = err[m].mean()
    idx = np.flatnonzero(m)
    fig = _page(7.0)
    gs = fig.add_gridspec(2, 2, height_ratios=[1.5, 1])
    for col, (a, b), title in ((0, (0, 1), "(a) Front view: close, the 2D is known"),
                               (1, (2, 1), "(b) Side view: a plane, tilted by the\nalignment to fit best")):
        ax = fig.add_subplot(gs[0, col])
        for k in idx:
            ax.plot(*np.stack([X[k, [a, b]], flat[k, [a, b]]], 1), color="0.55", lw=0.7, zorder=1)
        ax.plot([], [], color="0.55", lw=0.7, label="error of each keypoint")
        _skeleton(ax, X, E, a, b, colour=plots.GT_COLOUR, label="ground truth", mask=m, lw=2.0, s=6)
        _skeleton(ax, flat, E, a, b, colour=FLAT_COLOUR, label="flat guess (aligned to the truth)", mask=m,
                  ls="--", lw=1.4, s=6)
        ax.set(xlabel=_label(a, u), ylabel=_label(b, u), title=title)
        _equal(ax)
    ax = fig.add_subplot(gs[1, :])
    names = [ex.names[k] if ex.names else f"keypoint {k}" for k in idx]
    ax.bar(np.arange(len(idx)), err[idx], color=FLAT_COLOUR, width=0.75)
    ax.axhline(pa, color="k", ls=":", lw=1.2, label=f"mean over the keypoints: PA-MPJPE {pa:.3g} {_unit(u)}")
    ax.set_xticks(np.arange(len(idx)), names, rotation=90)
    ax.set_xlim(-0.6, len(idx) - 0.4)
    ax.set(xlabel="keypoint (name)", ylabel=f"error after\nalignment ({_unit(u)})",
           title="(c) Error of each keypoint after alignment")
    fig.suptitle(f"The flat guess: the 2D input taken as 3D with zero depth. PA-MPJPE {pa:.3g} {_unit(u)} "
                 f"({pa / ex.radius:.2f} RMS radii),\nthe yardstick of every 'ratio to flat' in this bundle")
    _legend_below(fig)
    return fig


def _axes3d(ax, units, title):
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(f"x ({_unit(units)})", labelpad=-2)
    ax.set_ylabel(f"z, depth ({_unit(units)})", labelpad=-2)
    ax.set_zlabel(f"y, up ({_unit(units)})", labelpad=-2)
    ax.set_title(title, y=0.97)
    ax.tick_params(labelsize=plots.MIN_POINTS, pad=0)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(3))
    ax.view_init(elev=18, azim=-62)


def _skeleton3d(ax, X, edges, *, colour, label=None, mask=None, ls="-", lw=1.8):
    m = np.ones(len(X), bool) if mask is None else np.asarray(mask, bool)
    first = True
    for i, j in np.asarray(edges).reshape(-1, 2):
        if m[i] and m[j]:
            ax.plot(X[[i, j], 0], X[[i, j], 2], X[[i, j], 1], color=colour, ls=ls, lw=lw,
                    label=label if first else None)
            first = False


def fig_procrustes(src: np.ndarray, dst: np.ndarray, edges: np.ndarray, mask: np.ndarray | None = None, *,
                   units: str = "m", title: str = "",
                   source_label: str = "shape being aligned: the body mirrored in depth, turned, shrunk and moved"):
    """Similarity alignment of ``src`` onto ``dst`` step by step, one row each: (a) the input and (b) both shapes
    centred, the steps both policies share; then rotated and scaled with rotations only (``det R = +1``; c, d) and
    with reflections allowed (e, f)."""
    fig = _page(9.0)
    rows = fig.subfigures(3, 1, height_ratios=[1, 1, 1.15])
    only, refl = (procrustes_steps(src, dst, mask, allow_reflection=a) for a in (False, True))
    scale_ = rms_radius(dst, mask)
    heads = ["Both policies: the input, then both shapes centred", "Rotations only (det R = +1)",
             "Reflections allowed (det R = +1 or -1)"]
    panels = [[(only, 0, "(a) Input"), (only, 1, "(b) 1 · centre both")],
              [(only, 2, "(c) 2 · rotate"), (only, 3, f"(d) 3 · scale by s = {only.s:.2f}")],
              [(refl, 2, "(e) 2 · rotate"), (refl, 3, f"(f) 3 · scale by s = {refl.s:.2f}")]]
    for sub, head, row in zip(rows, heads, panels):
        sub.suptitle(head, fontweight="bold")
        for k, (st, stage, name) in enumerate(row):
            ax = sub.add_subplot(1, 2, k + 1, projection="3d")
            T = dst if stage == 0 else st.target
            _skeleton3d(ax, T, edges, colour=plots.GT_COLOUR, label="target (ground truth)", mask=mask, lw=1.8)
            _skeleton3d(ax, st.stages[stage][1], edges, colour=plots.PRED_COLOUR, label="shape being aligned",
                        mask=mask, ls="--", lw=1.3)
            both = (np.concatenate([src, dst]) if stage == 0 else
                    np.concatenate([st.stages[1][1], st.target, st.stages[2][1], st.stages[3][1]]))
            lo, hi = both.min(0), both.max(0)
            ctr, half = (lo + hi) / 2, (hi - lo).max() / 2
            ax.set_xlim(ctr[0] - half, ctr[0] + half)
            ax.set_ylim(ctr[2] - half, ctr[2] + half)
            ax.set_zlim(ctr[1] - half, ctr[1] + half)
            ax.set_box_aspect((1, 1, 1), zoom=0.92)
            rms = st.rms[stage]
            dist = "0 to float precision" if rms < 1e-9 * scale_ else f"{rms:.3g} {_unit(units)}"
            if stage == 2:
                name += ": det R = -1, a reflection" if np.linalg.det(st.R) < 0 else ": det R = +1"
            _axes3d(ax, units, f"{name}\nRMS distance to the target: {dist}")
    fig.suptitle(title or "Procrustes (similarity) alignment, step by step: centre, rotate, scale")
    handles = [plt.Line2D([], [], color=plots.GT_COLOUR, lw=1.8, label="target (ground truth)"),
               plt.Line2D([], [], color=plots.PRED_COLOUR, lw=1.3, ls="--", label=source_label)]
    _legend_below(rows[-1], handles, ncol=1)
    return fig


def fig_camera_fit(ex: Example):
    """The orthographic camera fit of ``lfm.lift`` from the body's 3D in its own frame and the test view's 2D
    (no ground-truth camera): the two starting points, the 2D error over the refinement steps, the recovered
    camera-frame 3D and its mirror. One legend: the truth red, the fit blue in every panel."""
    X, W, m, E, u = ex.camera3d, ex.world3d, ex.mask, ex.edges, ex.units
    persp = camera_fit_path(ex.points2d, W, m)
    ortho = camera_fit_path(project(X, "orthographic"), W, m)
    final = persp["fits"][-1]
    cam = final.camera3d[0].numpy()
    mirror = final.camera3d_mirror[0].numpy()
    angle = rotation_angle(ex.R, final.R[0].numpy())
    truth = dict(colour=plots.GT_COLOUR, label="the body's 3D: (a) in its own frame, (d) in the true camera frame",
                 mask=m, lw=1.8, s=6)
    fitted = dict(colour=plots.PRED_COLOUR, label="the fit after 100 refinement steps: (b) its 2D, (d) its 3D",
                  mask=m, ls="--", lw=1.4, s=6)
    fig = _page(7.9)
    axes = fig.subplots(2, 2).ravel()
    ax = axes[0]
    _skeleton(ax, W, E, 0, 1, **truth)
    ax.set(xlabel=f"x of the shape's frame ({_unit(u)})", ylabel=f"y of the shape's frame ({_unit(u)})",
           title="(a) Given: a 3D shape in its own frame\n(front view of that frame)")
    _equal(ax)
    ax = axes[1]
    _skeleton(ax, ex.points2d, E, colour="k", label="(b) the 2D input (the perspective test view)", mask=m, lw=2.2,
              s=6)
    p0 = persp["fits"][0].camera3d[0].numpy()
    _skeleton(ax, p0, E, colour=plots.PALETTE[3], label="(b) step 1: the least-squares affine camera, made a "
              "scaled rotation", mask=m, ls=":", lw=1.8, s=6)
    _skeleton(ax, cam, E, 0, 1, **fitted)
    ax.set(xlabel=f"image x ({_unit(u)})", ylabel=f"image y ({_unit(u)})",
           title="(b) The 3D shape put through the fitted\ncamera lands on the 2D input")
    _equal(ax)
    ax = axes[2]
    floor = 1e-15 * ex.radius  # an exact fit (0) is drawn at this floor of the log axis
    steps = np.array(persp["steps"]) + 1
    ax.plot(steps, np.maximum(persp["residual"], floor) / ex.radius, marker="o", ms=4, color=plots.PRED_COLOUR,
            label="(c) fit to the perspective 2D (the test view)")
    ax.plot(steps, np.maximum(ortho["residual"], floor) / ex.radius, marker="s", ms=4, ls="--",
            color=plots.PALETTE[1], label="(c) fit to the orthographic 2D of the same view")
    ax.set(xscale="log", yscale="log", xlabel="refinement steps + 1 (count, log axis)",
           ylabel="RMS 2D error (RMS radii)",
           title="(c) 2D error over the steps: an orthographic\nview is fitted exactly at once (to rounding)")
    ax = axes[3]
    _skeleton(ax, X, E, 2, 1, **truth)
    _skeleton(ax, _centred(cam, m), E, 2, 1, **fitted)
    _skeleton(ax, _centred(mirror, m), E, 2, 1, colour=MIRROR_COLOUR,
              label="(d) the fit's depth mirror (equally good in 2D)", mask=m, ls=":", lw=1.4, s=6)
    ax.set(xlabel=_label(2, u), ylabel=_label(1, u),
           title=f"(d) Side view of the recovered 3D (camera\nrotation off by {angle:.1f} degrees)")
    _equal(ax)
    fig.suptitle("Camera recovery without ground truth: the orthographic camera fit of lfm.lift\n"
                 "(lfm.geometry.fit_orthographic_camera)")
    _legend_below(fig, ncol=1)
    return fig


LABEL = "keypoint label"  # gid of the labels placed by :func:`place_labels`


def place_labels(ax, points: np.ndarray, labels, *, avoid: np.ndarray | None = None, fontsize: float = 8,
                 marker: float = 3.5) -> list:
    """Write ``labels[k]`` next to ``points[k]`` (data units) so that no two labels overlap and no label covers a
    point of ``points`` or ``avoid`` (markers ``marker`` printed points in radius) nor leaves the axes: each label
    tries 8 directions at growing distances (printed points) and takes the first free place (else the least
    covered one), with a thin leader line when it sits away from its point. Call it once the figure's layout is
    final: the places are found on the drawn figure. Returns the texts (gid :data:`LABEL`)."""
    fig = ax.figure
    ax.apply_aspect()
    renderer = fig.canvas.get_renderer()
    px = fig.dpi / 72  # display pixels per printed point
    dots = ax.transData.transform(np.concatenate([np.asarray(points, float).reshape(-1, 2),
                                                  np.zeros((0, 2)) if avoid is None else np.asarray(avoid, float)]))
    frame = ax.get_window_extent(renderer)
    r = marker * px
    directions = [(1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]

    def cost(box):
        if box.x0 < frame.x0 or box.x1 > frame.x1 or box.y0 < frame.y0 or box.y1 > frame.y1:
            return 1e9
        hits = sum(box.overlaps(b) for b in placed)
        hits += int(((dots[:, 0] > box.x0 - r) & (dots[:, 0] < box.x1 + r) & (dots[:, 1] > box.y0 - r)
                     & (dots[:, 1] < box.y1 + r)).sum())
        return hits

    placed, texts = [], []
    for (x, y), label in zip(np.asarray(points, float).reshape(-1, 2), labels):
        best = None
        for dist in (4, 8, 13, 19, 26):
            for dx, dy in directions:
                off = (dx * dist / np.hypot(dx, dy), dy * dist / np.hypot(dx, dy))
                t = ax.annotate(str(label), (x, y), xytext=off, textcoords="offset points", fontsize=fontsize,
                                color="0.15", ha={1: "left", -1: "right", 0: "center"}[dx],
                                va={1: "bottom", -1: "top", 0: "center"}[dy], gid=LABEL)
                box = t.get_window_extent(renderer).expanded(1.0, 1.0)
                c = cost(box)
                if best is None or c < best[0]:
                    if best is not None:
                        best[1].remove()
                    best = (c, t, box, dist)
                else:
                    t.remove()
                if c == 0:
                    break
            if best[0] == 0:
                break
        _, t, box, dist = best
        if dist >= 8:
            here = ax.transData.transform((x, y))
            centre = ((box.x0 + box.x1) / 2 - here[0]) / px, ((box.y0 + box.y1) / 2 - here[1]) / px
            ax.annotate("", (x, y), xytext=centre, textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.5, "shrinkA": 4, "shrinkB": 2})
        placed.append(box)
        texts.append(t)
    return texts


def fig_model_view(inp: ModelView, edges: np.ndarray, *, title: str = "", width: float = plots.PAGE_WIDTH):
    """What the model sees, drawn ``width`` wide (paper text sizes): (a) the normalised tokens, numbered, and the
    hidden keypoints, (b) the skeleton graph and (c) the fallback k-nearest-neighbour graph as adjacency images,
    (d) the mask."""
    plots.style(paper=True)
    N = len(inp.mask)
    fig = plt.figure(figsize=(width, 0.64 * width))
    gs = fig.add_gridspec(2, 3, height_ratios=[1, 0.08], width_ratios=[1.75, 1, 1], hspace=1.4, wspace=0.45,
                          left=0.075, right=0.99, top=0.8, bottom=0.22)
    ax = fig.add_subplot(gs[:, 0])
    vis = inp.mask
    for i, j in np.asarray(edges).reshape(-1, 2):
        if vis[i] and vis[j]:
            ax.plot(*inp.tokens[[i, j]].T, color="0.75", lw=1.0, zorder=1)
    ax.scatter(*inp.tokens[vis].T, s=18, color=plots.PRED_COLOUR, zorder=3, label="visible token (its index)")
    ax.scatter(*inp.positions[~vis].T, s=30, marker="x", color="k", zorder=4,
               label="hidden keypoint: its token is set to 0\nand no other token attends to it")
    ax.add_patch(plt.Rectangle((-1, -1), 2, 2, fill=False, ls="--", color="0.5", lw=0.8))
    ax.set(xlim=(-1.2, 1.2), ylim=(-1.2, 1.2), xlabel="normalised image x\n(1 = largest visible |coordinate|)",
           ylabel="normalised image y (same unit)", title="(a) Tokens: the 2D centred on the visible\nmean, "
           "scaled into [-1, 1] (no joint\nindex, no category)")
    ax.set_aspect("equal")
    ax.legend(loc="upper left", bbox_to_anchor=(-0.1, -0.23), frameon=False)
    cmap = plt.matplotlib.colors.ListedColormap(["white", plots.PRED_COLOUR])
    for c, (A, name) in enumerate(((inp.adjacency, "(b) Graph of the local\nattention branch: the\nskeleton "
                                    "(with self-loops)"),
                                   (inp.adjacency_knn, "(c) Fallback graph without\na skeleton: 3 nearest 2D\n"
                                    "neighbours (self-loops)"))):
        ax2 = fig.add_subplot(gs[0, c + 1])
        ax2.imshow(A, cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        ax2.set(xlabel="token attended to\n(key index)", ylabel="token attending (query index)", title=name)
        ax2.set_xticks(range(0, N, 10))
        ax2.set_yticks(range(0, N, 10))
        mk = fig.add_subplot(gs[1, c + 1], sharex=ax2)
        mk.imshow(inp.mask[None], cmap=cmap, vmin=0, vmax=1, interpolation="nearest", aspect="auto")
        mk.set_yticks([])
        mk.set_xticks(range(0, N, 10))
        mk.set_xlabel("token (index)")
        mk.set_title("(d) The mask: blue = visible,\nwhite = hidden" if c == 0 else "the same mask", fontsize=8)
    fig.suptitle(title or "What the model sees: tokens, mask and graph")
    k = np.flatnonzero(vis)
    place_labels(ax, inp.tokens[k], [str(i) for i in k], avoid=inp.positions[~vis])
    return fig


def fig_tpe(model, inp: ModelView, *, n_fields: int = 3, grid: int = 121):
    """The token positional encoding (random Fourier features, paper Eq. 4): (a) the (N, D) matrix that enters
    the first layer, (b..) ``n_fields`` (1 to 3) of its features over the normalised image plane with the tokens,
    (last) the dot products of token encodings against 2D distance with the Gaussian kernel they approximate."""
    if not 1 <= n_fields <= 3:
        raise ValueError(f"n_fields = {n_fields}: the figure has room for 1 to 3 feature panels.")
    tpe, N = inp.tpe, len(inp.mask)
    D = tpe.shape[1]
    sigma = float(model.cfg.rff_sigma)
    g = torch.linspace(-1, 1, grid)
    pts = torch.stack(torch.meshgrid(g, g, indexing="xy"), -1).reshape(1, -1, 2)
    with torch.no_grad():
        field = model.embed(pts)[0].reshape(grid, grid, -1).numpy()
    vmax = float(np.abs(tpe).max())
    letters = "abcde"
    fig = _page(7.2)
    gs = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(gs[0, 0])
    top = [ax]
    im = ax.imshow(np.where(inp.mask[:, None], tpe, np.nan), cmap="RdBu_r", vmin=-vmax, vmax=vmax,
                   aspect="auto", interpolation="nearest")
    ax.set(xlabel=f"feature (index; first {D // 2}:\nsines, last {D // 2}: cosines)", ylabel="token (index)",
           title=f"(a) {N} tokens x {D} features\n(hidden tokens left blank)")
    for k, (row, col) in enumerate([(0, 1), (0, 2), (1, 0)][:n_fields]):
        ax = fig.add_subplot(gs[row, col])
        top += [ax] if row == 0 else []
        f = k * (D // 2) // n_fields
        w = model.embed.omega[:, f].numpy()
        ax.imshow(field[..., f], extent=(-1, 1, -1, 1), origin="lower", cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax.scatter(*inp.tokens[inp.mask].T, s=5, color="k", label=f"(b)-({letters[n_fields]}) the tokens of this body")
        ax.set(xlabel="x (normalised units)", ylabel="y (normalised units)")
        ax.set_title(f"({letters[k + 1]}) Feature {f}: a plane wave,\n{np.linalg.norm(w):.2f} cycles per unit",
                     pad=9)  # clear of the tick label at the top edge
    fig.colorbar(im, ax=top, location="bottom", fraction=0.04, aspect=50,
                 label=f"feature value (dimensionless; one scale for (a) to ({letters[n_fields]}))")
    ax = fig.add_subplot(gs[1, 1:] if n_fields == 3 else gs[1, :])
    vis = np.flatnonzero(inp.mask)
    T = inp.tokens[vis]
    dist = np.linalg.norm(T[:, None] - T[None], axis=-1)
    gram = tpe_gram(tpe[vis])
    iu = np.triu_indices(len(vis), 1)
    ax.scatter(dist[iu], gram[iu], s=6, color=plots.PRED_COLOUR, alpha=0.6, linewidths=0,
               label=f"({letters[n_fields + 1]}) one pair of tokens of this body")
    dd = np.linspace(0, dist.max() * 1.02, 200)
    ax.plot(dd, tpe_kernel(dd, sigma), color="k", lw=1.6,
            label=rf"({letters[n_fields + 1]}) $\exp(-2\pi^2\sigma^2 d^2)$, $\sigma$ = {sigma:g}: the limit for "
            "infinitely many features")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xlabel="2D distance d between two tokens (normalised units)",
           ylabel="dot product of their encodings (no unit)",
           title=f"({letters[n_fields + 1]}) Nearby keypoints get similar encodings: the dot\nproduct is close to "
           f"a Gaussian of the 2D distance\n(the scatter about it: only {D // 2} frequencies)")
    fig.suptitle("Token positional encoding (TPE): fixed random Fourier features of the 2D position")
    _legend_below(fig, ncol=1)
    return fig


def fig_lift(ex: Example, lifted, *, checkpoint_name: str = ""):
    """One lift against the ground truth: (a) the 2D input; (b, c) front and side views of the truth and the
    prediction aligned to it (similarity, reflection allowed, as the benchmark scores); (d) the camera-frame output
    and its depth mirror next to the truth (side view); (e) PA-MPJPE of the flat guess and of the model."""
    X, m, E, u = ex.camera3d, ex.mask, ex.edges, ex.units
    pred_refl, err_refl = align(lifted.canonical, X, m, allow_reflection=True)
    _, err_det = align(lifted.canonical, X, m, allow_reflection=False)
    _, err_flat = align(flat_guess(ex.points2d), X, m, allow_reflection=True)
    e = {"flat guess": err_flat[m].mean(), "LFM, reflection allowed": err_refl[m].mean(),
         "LFM, det = +1": err_det[m].mean()}
    truth = dict(colour=plots.GT_COLOUR, label="ground truth", mask=m, lw=2.0, s=6)
    pred = dict(colour=plots.PRED_COLOUR, label="LFM prediction", mask=m, ls="--", lw=1.4, s=6)
    fig = _page(7.2)
    gs = fig.add_gridspec(2, 3)
    ax = fig.add_subplot(gs[0, 0])
    _skeleton(ax, ex.points2d, E, colour="k", label="2D input", mask=m, lw=1.8, s=6)
    ax.set(xlabel=f"image x ({_unit(u)})", ylabel=f"image y ({_unit(u)})",
           title="(a) The 2D input\n(perspective test view)")
    _equal(ax)
    for col, (a, b), t in ((1, (0, 1), "(b) Front view"), (2, (2, 1), "(c) Side view")):
        ax = fig.add_subplot(gs[0, col])
        _skeleton(ax, X, E, a, b, **truth)
        _skeleton(ax, pred_refl, E, a, b, **pred)
        ax.set(xlabel=_label(a, u), ylabel=_label(b, u), title=f"{t}, the prediction\naligned to the truth")
        _equal(ax)
    ax = fig.add_subplot(gs[1, 0])
    _skeleton(ax, X, E, 2, 1, **truth)
    _skeleton(ax, _centred(lifted.camera, m), E, 2, 1, **pred)
    _skeleton(ax, _centred(lifted.camera_mirror, m), E, 2, 1, colour=MIRROR_COLOUR,
              label="its depth mirror (the same 2D)", mask=m, ls=":", lw=1.4, s=6)
    ax.set(xlabel=_label(2, u), ylabel=_label(1, u),
           title="(d) Side view, no alignment:\nlfm.lift's camera-frame\noutput and its mirror")
    _equal(ax)
    ax = fig.add_subplot(gs[1, 1:])
    names = list(e)
    cols = [FLAT_COLOUR, plots.PRED_COLOUR, plots.PALETTE[4]]
    ax.barh(range(3), [e[k] for k in names], color=cols, height=0.6)
    for k, v in enumerate(e.values()):
        ax.text(v, k, f" {v:.2f} {_unit(u)} = {v / ex.radius:.2f} RMS radii", va="center")
    ax.set_yticks(range(3), names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(e.values()) * 2.0)
    ax.set(xlabel=f"PA-MPJPE ({_unit(u)})", title=f"(e) Error: {e['LFM, reflection allowed'] / e['flat guess']:.2f}"
           " x the flat guess (reflection allowed)")
    fig.suptitle(f"One lift{' with ' + checkpoint_name if checkpoint_name else ''}: {ex.name}, test view "
                 f"{ex.frame}")
    _legend_below(fig, ncol=4)
    return fig
