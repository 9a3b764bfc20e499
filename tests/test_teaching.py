"""lfm.experiments.teaching (the pictures of notebooks/10_geometry_lecture.ipynb): the computations against
independent oracles (the pinhole formula, scipy's Procrustes, a closed-form SVD, scipy's rotations, the
random-Fourier-feature identity) and the figure functions (labelled axes with units, titles, one suptitle)."""

import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy.spatial import procrustes as scipy_procrustes  # noqa: E402
from scipy.spatial.transform import Rotation  # noqa: E402

from lfm import lifting, plots  # noqa: E402
from lfm.experiments import teaching  # noqa: E402
from lfm.model import TPE  # noqa: E402

from .conftest import needs_mirror  # noqa: E402


def _body(rng, n=15):
    """A random tree-shaped 3D body (N, 3) and its edges (E, 2): each keypoint hangs off an earlier one."""
    parent = np.r_[0, [rng.integers(0, i) for i in range(1, n)]]
    X = np.zeros((n, 3))
    for i in range(1, n):
        X[i] = X[parent[i]] + rng.normal(scale=0.3, size=3)
    return X - X.mean(0), np.stack([np.arange(1, n), parent[1:]], 1)


def _umeyama(src, dst, reflect):
    """Closed-form similarity alignment (Umeyama 1991) in numpy, rows convention: s * src @ R + t."""
    mx, my = src.mean(0), dst.mean(0)
    xc, yc = src - mx, dst - my
    U, S, Vt = np.linalg.svd(xc.T @ yc)
    d = np.ones(3)
    if not reflect and np.linalg.det(U @ Vt) < 0:
        d[-1] = -1
    R = (U * d) @ Vt
    s = (S * d).sum() / (xc ** 2).sum()
    return s * xc @ R + my, s, R


@pytest.fixture
def body(rng):
    return _body(rng)[0]


@pytest.fixture
def example(rng):
    X, edges = _body(rng)
    R = Rotation.random(random_state=1).as_matrix()
    cam = X @ R
    return teaching.Example("synthetic", 0, cam, X, R, teaching.project(cam, "perspective", 3.0),
                            np.ones(len(X), bool), edges, "m", None)


# ---------------------------------------------------------------------------------------------------- geometry

def test_mirror_projects_onto_the_same_orthographic_2d(body):
    Y = teaching.depth_mirror(body)
    assert np.array_equal(teaching.project(Y, "orthographic"), teaching.project(body, "orthographic"))
    np.testing.assert_allclose(Y[:, 2], 2 * body[:, 2].mean() - body[:, 2], atol=1e-15)
    np.testing.assert_allclose(teaching.depth_mirror(Y), body, atol=1e-15)  # an involution
    # a different 3D shape: no proper rotation maps it back, a reflection does (scipy's Procrustes allows both)
    assert scipy_procrustes(body, Y)[2] < 1e-20
    aligned, _, _ = _umeyama(Y, body, reflect=False)
    assert np.abs(aligned - body).max() > 0.05
    # perspective tells them apart
    assert np.abs(teaching.project(Y, "perspective", 3.0) - teaching.project(body, "perspective", 3.0)).max() > 1e-3


def test_mirror_uses_the_visible_centroid(body):
    mask = np.ones(len(body), bool)
    mask[:3] = False
    Y = teaching.depth_mirror(body, mask)
    np.testing.assert_allclose(Y[mask, 2].mean(), body[mask, 2].mean(), atol=1e-12)


def test_projection_is_the_pinhole_formula(body):
    d = 2.5 * np.sqrt((body ** 2).sum(-1).mean())  # the body is centred: RMS radius about 0
    expected = d * body[:, :2] / (d + body[:, 2:])  # focal length = distance
    np.testing.assert_allclose(teaching.project(body, "perspective", 2.5), expected, rtol=1e-12)
    np.testing.assert_array_equal(teaching.project(body, "orthographic"), body[:, :2])
    # far away, perspective tends to orthographic (focal = distance keeps the size)
    far = teaching.project(body, "perspective", 1e6)
    np.testing.assert_allclose(far, body[:, :2], atol=1e-5)


def test_flat_guess_and_rms_radius(body):
    p = body[:, :2]
    flat = teaching.flat_guess(p)
    assert flat.shape == body.shape and np.all(flat[:, 2] == 0) and np.array_equal(flat[:, :2], p)
    assert teaching.rms_radius(body) == pytest.approx(np.sqrt(((body - body.mean(0)) ** 2).sum(-1).mean()))


@pytest.mark.parametrize("reflect", [False, True])
def test_procrustes_steps_end_at_the_closed_form_alignment(rng, body, reflect):
    src = teaching.similar_copy(body, seed=3, reflect=True) + rng.normal(scale=0.05, size=body.shape)
    st = teaching.procrustes_steps(src, body, allow_reflection=reflect)
    expected, s, R = _umeyama(src, body, reflect)
    np.testing.assert_allclose(st.stages[-1][1] + st.mu_dst, expected, atol=1e-9)
    assert st.s == pytest.approx(s, rel=1e-9)
    np.testing.assert_allclose(st.R, R, atol=1e-9)
    assert np.linalg.det(st.R) == pytest.approx(-1.0 if reflect else 1.0)  # src is mirrored: det -1 when allowed
    # the steps: centred on the centroid, then a rotation (norms kept), then the scale
    names = [n for n, _ in st.stages]
    assert names[0] == "input" and "centre" in names[1] and "rotate" in names[2] and "scale" in names[3]
    np.testing.assert_allclose(st.stages[1][1].mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(st.stages[2][1], axis=1), np.linalg.norm(st.stages[1][1], axis=1))
    np.testing.assert_allclose(st.stages[3][1], st.s * st.stages[2][1])
    assert st.rms == sorted(st.rms, reverse=True)  # each step only brings the source closer


def test_procrustes_steps_with_reflection_match_scipy(rng, body):
    src = teaching.similar_copy(body, seed=5) + rng.normal(scale=0.05, size=body.shape)
    st = teaching.procrustes_steps(src, body, allow_reflection=True)
    mtx1, mtx2, _ = scipy_procrustes(body, src)  # both standardised, mtx2 fitted to mtx1 (reflections allowed)
    norm = np.linalg.norm(body - body.mean(0))
    np.testing.assert_allclose(mtx1 * norm, st.target, atol=1e-12)
    np.testing.assert_allclose(mtx2 * norm + body.mean(0), st.stages[-1][1] + st.mu_dst, atol=1e-9)


def test_procrustes_steps_under_a_mask_ignore_the_hidden_points(rng, body):
    src = teaching.similar_copy(body, seed=7, reflect=False) + rng.normal(scale=0.05, size=body.shape)
    mask = np.ones(len(body), bool)
    mask[[1, 4, 9]] = False
    src_bad = src.copy()
    src_bad[~mask] = 1e3  # garbage where hidden
    st = teaching.procrustes_steps(src_bad, body, mask)
    expected, _, _ = _umeyama(src[mask], body[mask], reflect=False)
    np.testing.assert_allclose((st.stages[-1][1] + st.mu_dst)[mask], expected, atol=1e-9)


def test_a_mirrored_similar_copy_is_undone_only_with_reflection(body):
    src = teaching.similar_copy(body, seed=0)
    assert teaching.procrustes_steps(src, body, allow_reflection=True).rms[-1] < 1e-9
    assert teaching.procrustes_steps(src, body, allow_reflection=False).rms[-1] > 0.05
    proper = teaching.similar_copy(body, seed=0, reflect=False)
    assert teaching.procrustes_steps(proper, body).rms[-1] < 1e-9
    aligned, err = teaching.align(proper, body, allow_reflection=False)
    assert err.max() < 1e-9 and np.allclose(aligned, body, atol=1e-9)


def test_camera_fit_recovers_an_orthographic_camera(body):
    R = Rotation.from_euler("xyz", [20, -50, 10], degrees=True).as_matrix()
    p2d = (1.7 * body @ R)[:, :2] + np.array([3.0, -2.0])
    path = teaching.camera_fit_path(p2d, body)
    assert path["residual"][0] < 1e-9  # the affine start is already exact for a noise-free view
    assert max(path["residual"]) < 1e-9
    fit = path["fits"][-1]
    assert teaching.rotation_angle(R, fit.R[0].numpy()) < 1e-5
    assert float(fit.s[0]) == pytest.approx(1.7, rel=1e-9)


def test_camera_fit_error_never_grows_on_a_perspective_view(example):
    path = teaching.camera_fit_path(example.points2d, example.world3d, example.mask)
    res = np.array(path["residual"])
    assert res[0] > 1e-3 and np.all(np.diff(res) <= 1e-12)  # perspective: no exact orthographic fit


def test_rotation_angle_matches_scipy():
    a = Rotation.random(random_state=2)
    b = Rotation.random(random_state=3)
    expected = math.degrees((a.inv() * b).magnitude())
    # rows convention: R1^T R2 of the row matrices is the relative rotation
    assert teaching.rotation_angle(a.as_matrix().T, b.as_matrix().T) == pytest.approx(expected, abs=1e-6)
    assert teaching.rotation_angle(np.eye(3), np.eye(3)) == pytest.approx(0.0, abs=1e-6)


def test_hide_is_seeded_and_keeps_three(body):
    mask = np.ones(len(body), bool)
    a, b = teaching.hide(mask, 4, seed=1), teaching.hide(mask, 4, seed=1)
    assert np.array_equal(a, b) and a.sum() == len(body) - 4 and mask.all()
    assert teaching.hide(mask, 100).sum() == 3


# ---------------------------------------------------------------------------------------------------- the model's input

@pytest.fixture(scope="module")
def model():
    return lifting.load_model()[0]


def test_model_input_tokens_graph_and_tpe(model, example):
    mask = teaching.hide(example.mask, 3, seed=0)
    inp = teaching.model_view(model, example.points2d, mask, example.edges)
    N, D = len(mask), model.cfg.d_model
    # tokens: centred on the visible mean, the largest visible |coordinate| is 1, hidden are 0
    p = example.points2d
    c = p[mask].mean(0)
    scale = np.abs(p[mask] - c).max()
    np.testing.assert_allclose(inp.tokens[mask], (p[mask] - c) / scale, atol=1e-5)
    np.testing.assert_array_equal(inp.tokens[~mask], 0)
    np.testing.assert_allclose(inp.positions, (p - c) / scale, atol=1e-5)
    assert inp.scale == pytest.approx(scale, rel=1e-5)
    # graphs: symmetric, self-loops, the visible skeleton edges exactly
    for A in (inp.adjacency, inp.adjacency_knn):
        assert A.shape == (N, N) and A.dtype == bool and np.array_equal(A, A.T) and A.diagonal().all()
        assert not (A & ~np.eye(N, dtype=bool))[~mask].any()  # hidden tokens only see themselves
    want = np.eye(N, dtype=bool)
    for i, j in example.edges:
        if mask[i] and mask[j]:
            want[i, j] = want[j, i] = True
    np.testing.assert_array_equal(inp.adjacency, want)
    # TPE image: (N, D), the formula of paper Eq. 4 with the model's fixed frequencies and phases
    assert inp.tpe.shape == (N, D)
    W, b = model.embed.omega.numpy().astype(np.float64), model.embed.phase.numpy().astype(np.float64)
    arg = 2 * np.pi * inp.tokens.astype(np.float64) @ W + b
    np.testing.assert_allclose(inp.tpe, np.sqrt(2 / D) * np.concatenate([np.sin(arg), np.cos(arg)], -1), atol=1e-5)


def test_tpe_gram_is_the_cosine_average_and_approaches_the_gaussian_kernel(model, rng):
    x = rng.uniform(-1, 1, size=(20, 2))
    with torch.no_grad():
        phi = model.embed(torch.as_tensor(x, dtype=torch.float32)[None])[0].double().numpy()
    W = model.embed.omega.numpy().astype(np.float64)
    diff = x[:, None] - x[None]  # (N, N, 2)
    expected = np.cos(2 * np.pi * diff @ W).mean(-1)  # the phase cancels: sin a sin b + cos a cos b = cos(a - b)
    np.testing.assert_allclose(teaching.tpe_gram(phi), expected, atol=1e-5)
    # with many features the dot product converges to exp(-2 pi^2 sigma^2 |d|^2) (Rahimi & Recht)
    big = TPE(8192, sigma=1.0, seed=0)
    with torch.no_grad():
        phi = big(torch.as_tensor(x, dtype=torch.float32)[None])[0].double().numpy()
    dist = np.linalg.norm(diff, axis=-1)
    np.testing.assert_allclose(teaching.tpe_gram(phi), teaching.tpe_kernel(dist, 1.0), atol=0.05)
    assert teaching.tpe_kernel(0.0, 2.0) == 1.0


# ---------------------------------------------------------------------------------------------------- figures

def _drawn_texts(fig):
    """The texts a reader sees: visible, non-empty, inside the figure; tick labels only where a tick is drawn
    (matplotlib keeps labels for ticks outside the view limits, never drawn)."""
    fig.canvas.draw()
    undrawn = set()
    for ax in fig.axes:
        for axis in ax._axis_map.values():
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * (hi - lo)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - eps <= tick.get_loc() <= hi + eps:
                    undrawn.update({id(tick.label1), id(tick.label2)})
    return [t for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text().strip() and id(t) not in undrawn
            and t.get_window_extent().width > 0]


def _overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of drawn texts whose boxes overlap. Only texts at 0 or 90 degrees: the box of a slanted text (the
    axis labels of a 3D panel) is much larger than its letters."""
    texts = [t for t in _drawn_texts(fig) if t.get_rotation() % 90 == 0]
    boxes = [t.get_window_extent() for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(texts)) for j in range(i + 1, len(texts))
            if boxes[i].overlaps(boxes[j])]


def _colours_of_data(fig) -> set[tuple]:
    """The RGB colours of the lines, markers and bars of ``fig`` (images and colour bars aside)."""
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    out = set()
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        for ln in ax.findobj(Line2D):
            out.add(matplotlib.colors.to_rgb(ln.get_color()))
        for c in ax.findobj(Collection):
            if getattr(c, "get_array", lambda: None)() is None:  # a colour-mapped collection is an image
                out.update(matplotlib.colors.to_rgb(tuple(rgba)) for rgba in c.get_facecolors())
        for patch in ax.patches:
            if isinstance(patch, Rectangle) and patch.get_fill():
                out.add(matplotlib.colors.to_rgb(patch.get_facecolor()))
    return out


def _check_figure(fig, tmp_path=None):
    """A lecture figure as the notebook saves it: a suptitle; every panel titled, its axes named with a unit;
    drawn at the page width with every text >= 8 pt; no two texts overlapping; data in the colour-blind-safe
    palette of lfm.plots (or grey)."""
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig._suptitle is not None and fig._suptitle.get_text()
    fig.canvas.draw()  # tick labels are made at draw time
    axes = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert axes
    for ax in axes:
        assert ax.get_title(), f"an axes without a title in {fig._suptitle.get_text()!r}"
        assert ax.get_xlabel(), f"{ax.get_title()!r}: no x label"
        yticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        categorical = any(not re.fullmatch(r"[-\u2212\d., $^{}\\mathdefault]+", t) for t in yticks)
        if yticks and not categorical:  # numbers on the axis need a name and a unit; named bars do not
            assert ax.get_ylabel(), f"{ax.get_title()!r}: no y label"
        labels = [ax.get_xlabel(), ax.get_ylabel()] + ([ax.get_zlabel()] if hasattr(ax, "get_zlabel") else [])
        for lab in filter(None, labels):
            assert "(" in lab and ")" in lab, f"{lab!r} names no unit"
    title = fig._suptitle.get_text()
    assert fig.get_size_inches()[0] == plots.PAGE_WIDTH, f"{title!r} is not drawn at the page width"
    smallest = plots.printed_text_sizes(fig)[0]
    assert smallest[0] >= plots.MIN_POINTS, f"{title!r}: {smallest[1]!r} prints at {smallest[0]:.1f} pt"
    assert not _overlapping_texts(fig), f"{title!r}: overlapping texts {_overlapping_texts(fig)}"
    safe = {matplotlib.colors.to_rgb(c) for c in plots.PALETTE}
    odd = [c for c in _colours_of_data(fig) if c not in safe and not (c[0] == c[1] == c[2])]
    assert not odd, f"{title!r}: colours outside the Okabe-Ito palette and greys: {odd}"
    if tmp_path is not None:
        paths = plots.savefig(fig, tmp_path / "figure.png")
        assert all(p.stat().st_size > 1000 for p in paths)
    plt.close(fig)


def _figures(model, ex, hidden=2, seed=0):
    """Every figure function of lfm.experiments.teaching, called as notebooks/10_geometry_lecture.ipynb calls it."""
    inp = teaching.model_view(model, ex.points2d, teaching.hide(ex.mask, hidden, seed), ex.edges)
    return {
        "fig_projection": lambda: teaching.fig_projection(ex, 3.0),
        "fig_mirror": lambda: teaching.fig_mirror(ex, 3.0),
        "fig_flat_guess": lambda: teaching.fig_flat_guess(ex),
        "fig_procrustes": lambda: teaching.fig_procrustes(teaching.similar_copy(ex.camera3d, seed=seed), ex.camera3d,
                                                          ex.edges, ex.mask, units=ex.units),
        "fig_camera_fit": lambda: teaching.fig_camera_fit(ex),
        "fig_model_view": lambda: teaching.fig_model_view(inp, ex.edges),
        "fig_tpe": lambda: teaching.fig_tpe(model, inp),
        "fig_lift": lambda: teaching.fig_lift(ex, lifting.lift(ex.points2d, ex.mask, ex.edges),
                                              checkpoint_name="lfm_open_v3.pt"),
    }


def test_every_figure_function_is_checked(model, example):
    made = {n for n in teaching.__all__ if n.startswith("fig_")}
    assert made == set(_figures(model, example)), "a new fig_* needs an entry in _figures"


@pytest.mark.parametrize("name", sorted(n for n in teaching.__all__ if n.startswith("fig_")))
def test_figure_at_page_width_legible_and_labelled(model, example, name, tmp_path):
    _check_figure(_figures(model, example)[name](), tmp_path if name == "fig_projection" else None)


def test_the_checks_catch_small_overlapping_text_and_other_colours():
    fig, ax = plt.subplots(figsize=(plots.PAGE_WIDTH, 3))
    ax.plot([0, 1], [0, 1], color="tab:red")
    ax.text(0.5, 0.5, "first", fontsize=9)
    ax.text(0.5, 0.5, "second", fontsize=6)
    assert plots.printed_text_sizes(fig)[0][0] < plots.MIN_POINTS
    assert ("first", "second") in _overlapping_texts(fig)
    assert matplotlib.colors.to_rgb("tab:red") in _colours_of_data(fig)
    plt.close(fig)


def test_units_label_for_unit_free_data():
    assert teaching._label(2, "arbitrary") == "z, depth (away from the camera) (arbitrary units)"


# ---------------------------------------------------------------------------------------------------- real data

@needs_mirror
def test_example_of_the_notebook():
    ex = teaching.example("human_cmu31", 1952)
    N = len(ex.mask)
    assert ex.camera3d.shape == (N, 3) and ex.points2d.shape == (N, 2) and ex.units == "m" and len(ex.names) == N
    np.testing.assert_allclose(ex.camera3d.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(ex.world3d @ ex.R, ex.camera3d, atol=1e-5)
    np.testing.assert_allclose(ex.R @ ex.R.T, np.eye(3), atol=1e-5)
    # the test view is a perspective image of the camera-frame body: p = f X_xy / (d + z) with f = 3.25 RMS radii
    # (lfm.data.views) and one distance d for all keypoints
    f = 3.25 * ex.radius
    far = np.linalg.norm(ex.camera3d[:, :2], axis=1) > 0.1 * ex.radius
    xy, p = np.linalg.norm(ex.camera3d[far, :2], axis=1), np.linalg.norm(ex.points2d[far], axis=1)
    d = f * xy / p - ex.camera3d[far, 2]
    assert np.ptp(d) < 1e-4 * ex.radius and 2.5 <= d.mean() / ex.radius <= 4.0
    with pytest.raises(IndexError, match="outside"):
        teaching.example("human_cmu31", 10 ** 6)


def _label_boxes(fig):
    fig.canvas.draw()
    texts = [t for t in fig.findobj(plt.Text) if t.get_gid() == teaching.LABEL]
    return texts, [t.get_window_extent() for t in texts]


def test_place_labels_keeps_labels_apart_and_off_the_points():
    fig, ax = plt.subplots(figsize=(3, 3))
    rng = np.random.default_rng(0)
    pts = np.concatenate([rng.normal(scale=0.03, size=(8, 2)), rng.uniform(-1, 1, size=(12, 2))])  # a tight knot
    ax.scatter(*pts.T, s=10)
    ax.set(xlim=(-1.3, 1.3), ylim=(-1.3, 1.3), aspect="equal")
    texts = teaching.place_labels(ax, pts, [str(k) for k in range(len(pts))])
    texts_, boxes = _label_boxes(fig)
    assert len(texts) == len(texts_) == len(pts) and all(t.get_fontsize() >= plots.MIN_POINTS for t in texts)
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            assert not boxes[a].overlaps(boxes[b]), (texts[a].get_text(), texts[b].get_text())
    frame = ax.get_window_extent()
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    plt.close(fig)


def test_model_view_labels_do_not_overlap_at_page_width(model, example):
    inp = teaching.model_view(model, example.points2d, teaching.hide(example.mask, 2), example.edges)
    fig = teaching.fig_model_view(inp, example.edges)
    texts, boxes = _label_boxes(fig)
    assert sorted(int(t.get_text()) for t in texts) == np.flatnonzero(inp.mask).tolist()  # every visible token
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            assert not boxes[a].overlaps(boxes[b]), (texts[a].get_text(), texts[b].get_text())
    assert fig.get_size_inches()[0] == plots.PAGE_WIDTH
    assert plots.printed_text_sizes(fig)[0][0] >= plots.MIN_POINTS
    plt.close(fig)


@pytest.fixture(scope="module")
def notebook_example():
    return teaching.example("human_cmu31", 1952)  # the body and view of notebooks/10_geometry_lecture.ipynb


@needs_mirror
@pytest.mark.parametrize("name", sorted(n for n in teaching.__all__ if n.startswith("fig_")))
def test_figures_of_the_notebook_at_page_width_legible_and_labelled(model, notebook_example, name):
    """The same checks on the notebook's own body (31 named keypoints, metres) and its 4 hidden keypoints."""
    _check_figure(_figures(model, notebook_example, hidden=4)[name]())
