"""lfm.plots: the same figure gives the same bytes (PNG and PDF), the style is applied, reference lines are grey."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lfm import plots  # noqa: E402


def figure():
    t = pd.DataFrame({"realistic": [0.3, 0.5, 0.9], "SO(3)": [0.8, 0.95, 1.1]}, index=["dog", "chair", "human41"])
    return plots.ratio_bars(t, title="test", targets={"target": 0.3})


def test_savefig_is_byte_stable(tmp_path):
    a = plots.savefig(figure(), tmp_path / "a.png")
    b = plots.savefig(figure(), tmp_path / "b.png")
    plt.close("all")
    assert [p.suffix for p in a] == [".png", ".pdf"]
    for x, y in zip(a, b):
        assert x.read_bytes() == y.read_bytes(), x.name
    assert b"CreationDate" not in a[1].read_bytes()  # no date in the PDF


def test_reference_lines_are_not_data_colours():
    fig = figure()
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if ln.get_linestyle() in (":", "--")]  # vertical reference lines
    assert len(lines) == 2
    data = {matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches}
    assert not data & {matplotlib.colors.to_hex(ln.get_color()) for ln in lines}
    assert ax.get_xlabel() and "flat" in ax.get_xlabel()
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1  # outside the data
    plt.close("all")


# ------------------------------------------------------------------------------------------------ 03's figures

TARGETS = (("in-distribution mean", "train", "trained", "ratio_refl", 0.3),
           ("in-distribution worst set", "train", "trained", "max_ratio_refl", 0.6),
           ("leave-category-out mean", "ood", "trained", "ratio_refl", 0.6),
           ("no skeleton", "train", "input_knn", "ratio_refl", 0.8))


def result(recipe="ckpt_a", scale=1.0):
    """A small evaluation result: two trained sets, a held-out category with real 2D, a held-out rig."""
    sets = {"dog": "train", "chair": "train", "cheetah": "ood", "human_bandai21": "rig_transfer"}
    rows = []
    for k, (c, role) in enumerate(sets.items()):
        for p, two_d in (("realistic", "synthetic"), ("so3_ortho", "synthetic"), ("real_dlc_2d", "DeepLabCut")):
            if two_d != "synthetic" and c != "cheetah":
                continue
            for j, g in enumerate(("trained", "input_knn")):
                rows.append({"category": c, "role": role, "protocol": p, "two_d": two_d, "graph": g,
                             "ratio_refl": scale * (0.3 + 0.2 * k + 0.1 * j + (0.4 if p != "realistic" else 0))})
    return {"recipe": recipe, "checkpoint": f"results/{recipe}/model.pt", "rows": rows}


def test_per_set_figure_panels_targets_and_real_2d():
    fig = plots.per_set_figure(result(), targets=TARGETS)
    assert "ckpt_a" in fig._suptitle.get_text()
    panels = {ax.get_title(loc="left").split(":")[0]: ax for ax in fig.axes}
    assert list(panels) == [plots.ROLE_LABELS[r] for r in ("train", "ood", "rig_transfer")]
    dashed = {name: sorted(round(ln.get_xdata()[0], 3) for ln in ax.get_lines() if ln.get_linestyle() == "--")
              for name, ax in panels.items()}
    assert dashed == {"in distribution": [0.3, 0.6], "held-out category": [0.6], "held-out rig": []}
    labels = [t.get_text() for ax in fig.axes for t in ax.get_yticklabels()]
    assert "cheetah" in labels and not any("(" in s for s in labels)
    n_bars = {name: len(ax.patches) for name, ax in panels.items()}
    assert n_bars == {"in distribution": 4, "held-out category": 3, "held-out rig": 2}  # cheetah: its real 2D too
    assert fig.get_size_inches()[0] == plots.PAGE_WIDTH
    assert plots.printed_text_sizes(fig)[0][0] >= plots.MIN_POINTS
    plt.close("all")


def test_graphs_figure_title_names_the_checkpoint_and_colour_scale_fits_the_data():
    a, b = plots.graphs_figure(result("ckpt_a")), plots.graphs_figure(result("ckpt_b", scale=1.5))
    ta, tb = a.axes[0].get_title(), b.axes[0].get_title()
    assert "ckpt_a" in ta and "ckpt_b" in tb and ta != tb
    for fig, res in ((a, result("ckpt_a")), (b, result("ckpt_b", scale=1.5))):
        vals = [r["ratio_refl"] for r in res["rows"] if r["protocol"] == "realistic"]
        im = fig.axes[0].get_images()[0]
        assert (im.norm.vmin, im.norm.vmax) == pytest.approx((min(min(vals), 1.0 - 1e-3), max(max(vals), 1.0 + 1e-3)))
        assert plots.printed_text_sizes(fig)[0][0] >= plots.MIN_POINTS
    # the middle (white) of the diverging map sits at the flat guess
    im = b.axes[0].get_images()[0]
    assert np.allclose(im.cmap(im.norm(1.0))[:3], plt.get_cmap("PuOr_r")(0.5)[:3], atol=0.02)
    plt.close("all")


def test_seed_bars_draw_the_sample_sd_and_no_seed_in_the_title():
    means = pd.DataFrame({"TPE": [0.5, 0.7], "MLP": [0.6, 0.9]}, index=["a to b", "b to a"])
    sds = pd.DataFrame({"TPE": [0.05, 0.1], "MLP": [0.02, 0.0]}, index=means.index)
    fig = plots.seed_bars(means, sds, title="Rig transfer", seeds=3)
    ax = fig.axes[0]
    whiskers = [seg for c in ax.collections for seg in c.get_segments()]
    half = sorted(round((s[1][0] - s[0][0]) / 2, 6) for s in whiskers)
    assert half == sorted([0.05, 0.1, 0.02, 0.0])
    assert "seed" not in fig._suptitle.get_text() and "3 seeds" in ax.get_xlabel()
    assert plots.printed_text_sizes(fig)[0][0] >= plots.MIN_POINTS
    one = plots.seed_bars(means, sds, title="x", seeds=1)
    assert not [c for c in one.axes[0].collections if c.get_segments()]  # one run: no whisker
    plt.close("all")


def test_paper_figures_are_byte_stable(tmp_path):
    for k in range(2):
        plots.savefig(plots.per_set_figure(result(), targets=TARGETS), tmp_path / f"p{k}.png")
        plots.savefig(plots.graphs_figure(result()), tmp_path / f"g{k}.png")
        plt.close("all")
    for stem in ("p", "g"):
        for ext in (".png", ".pdf"):
            assert (tmp_path / f"{stem}0{ext}").read_bytes() == (tmp_path / f"{stem}1{ext}").read_bytes()


# ------------------------------------------------------------------------------------------------ 05's montage

def _frame(rng, n, edges, title):
    gt = rng.normal(size=(n, 3))
    return {"title": title, "set": title.split(":")[0], "error": 0.2, "gt": gt,
            "pred": gt + 0.1 * rng.normal(size=(n, 3)), "edges": np.asarray(edges, np.int64).reshape(-1, 2)}


def test_montage_edges_connect_every_frame():
    rng = np.random.default_rng(0)
    chain = np.stack([np.arange(5), np.arange(1, 6)], 1)
    pts = rng.normal(size=(6, 3))
    assert plots.montage_edges(pts, chain).tolist() == chain.tolist()  # a connected skeleton is kept as it is
    for edges in (np.zeros((0, 2)), [[0, 1]], [[0, 1], [1, 2], [3, 4], [4, 5]]):  # dots, a lone bone, two pieces
        e = plots.montage_edges(pts, edges)
        assert {tuple(p) for p in np.asarray(edges, int).reshape(-1, 2)} <= {tuple(p) for p in e}
        root = list(range(6))  # every point reached from point 0
        for _ in range(6):
            for i, j in e:
                root[i] = root[j] = min(root[i], root[j])
        assert root == [0] * 6
    # two pieces: exactly one bridge, the shortest pair between them
    e = plots.montage_edges(pts, [[0, 1], [1, 2], [3, 4], [4, 5]])
    bridge = [tuple(p) for p in e if (p[0] < 3) != (p[1] < 3)]
    d = {(i, j): np.linalg.norm(pts[i] - pts[j]) for i in range(3) for j in range(3, 6)}
    assert bridge == [min(d, key=d.get)]


def test_montage_panels_share_limits_scale_bar_and_skeleton():
    rng = np.random.default_rng(1)
    items = [_frame(rng, 8, [[i, i + 1] for i in range(7)], "dog: 0.20"),
             _frame(rng, 6, [], "table: 0.30"),  # no edges among the visible keypoints: a graph is drawn anyway
             _frame(rng, 5, [[0, 1], [2, 3]], "bird18: 0.25")]
    fig = plots.montage(items, title="ckpt on dog, table, bird18", cols=2)
    axes = fig.axes
    assert len(axes) == 2 * len(items)
    assert len({(ax.get_xlim(), ax.get_ylim()) for ax in axes}) == 1  # the same limits in every panel
    L = axes[0].get_xlim()[1]
    assert axes[0].get_xlim() == (-L, L) and L >= max(np.abs(it["gt"] - it["gt"].mean(0)).max() for it in items)
    for ax in axes:
        bars = [ln for ln in ax.get_lines() if ln.get_gid() == plots.SCALE_BAR]
        assert len(bars) == 1 and np.ptp(bars[0].get_xdata()) == pytest.approx(1.0)  # one RMS radius
        bones = [ln for ln in ax.get_lines() if ln.get_gid() != plots.SCALE_BAR]
        n = len(ax.collections[0].get_offsets())  # the prediction's dots
        assert len({ln.get_color() for ln in bones}) == 2 and len(bones) >= 2 * (n - 1)  # a connected skeleton
        widths = {ln.get_color(): ln.get_linewidth() for ln in bones}
        assert widths[plots.GT_COLOUR] > 2 * widths[plots.PRED_COLOUR]  # told apart without colour too
        assert any(ln.get_linestyle() == "--" for ln in bones if ln.get_color() == plots.PRED_COLOUR)
    titles = " ".join(ax.get_title(loc="left") for ax in axes)
    assert all(name in titles for name in ("dog", "table", "bird18"))
    assert "RMS radius" in " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert fig.get_size_inches()[0] == plots.PAGE_WIDTH
    assert plots.printed_text_sizes(fig)[0][0] >= plots.MIN_POINTS
    plt.close("all")


def test_montage_is_byte_stable(tmp_path):
    for k in range(2):
        items = [_frame(np.random.default_rng(2), 6, [[i, i + 1] for i in range(5)], "dog: 0.2")]
        plots.savefig(plots.montage(items, title="t"), tmp_path / f"m{k}.png")
        plt.close("all")
    for ext in (".png", ".pdf"):
        assert (tmp_path / f"m0{ext}").read_bytes() == (tmp_path / f"m1{ext}").read_bytes()
