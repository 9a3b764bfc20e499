"""Figures for people: one style, byte-stable files, and the plots that several notebooks share.

* :func:`style` sets readable font sizes, a colour-blind-safe palette (Okabe-Ito) and tight layouts; every figure
  function here uses it, and notebooks call it once.
* :func:`savefig` writes PNG and PDF with fixed metadata (no dates, no software version), so the same figure
  gives the same bytes on every run (a test reruns one).
* :func:`ratio_bars`, :func:`training_curve`, :func:`lever_bars`: the per-set bars of ``03``, the training curve of
  ``02`` and the lever comparison of ``04``; axis labels name the quantity and its unit, legends sit outside the
  data, reference lines (flat guess, targets) are grey or dashed, never a data colour.
* Figures for a paper page are drawn at their printed size (:data:`PAGE_WIDTH` wide, ``style(paper=True)``: text
  8-9 pt); :func:`printed_text_sizes` reads the size of every text back from a figure at that width (tests).
* :func:`per_set_figure`, :func:`graphs_figure`: one checkpoint's ``03_evaluate`` result file drawn per set and per
  graph; :func:`seed_bars`: the mean over seeds with the sample standard deviation (``11``-``13``).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["style", "savefig", "PALETTE", "PAGE_WIDTH", "printed_text_sizes", "per_set_figure", "graphs_figure",
           "seed_bars", "checkpoint_name", "ratio_bars", "training_curve", "lever_bars", "FLAT_LABEL", "RATIO_LABEL", "ROLE_LABELS", "montage", "lever_curves", "ratio_heatmap",
           "montage_edges", "SCALE_BAR",
           "GT_COLOUR", "PRED_COLOUR"]

GT_COLOUR, PRED_COLOUR = "#D55E00", "#0072B2"  # ground truth red (vermillion), prediction blue, as the paper

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FLAT_LABEL = "flat guess (2D as 3D) = 1"
RATIO_LABEL = "PA-MPJPE / flat guess (lower is better)"
ROLE_LABELS = {"train": "in distribution", "ood": "held-out category", "rig_transfer": "held-out rig",
               "untrained": "not trained on (other benchmark version)"}


PAGE_WIDTH = 7.0  # inches: the text width of a paper page; paper figures are drawn at this width
MIN_POINTS = 8.0  # smallest text size on the printed page


def style(paper: bool = False) -> None:
    """Apply the bundle's figure style (idempotent). ``paper=True``: text sizes for a figure drawn at its printed
    size (:data:`PAGE_WIDTH` wide): 9 pt, ticks and legends 8 pt."""
    big, small = (9, 8) if paper else (11, 10)
    plt.rcParams.update({
        "font.size": big, "axes.titlesize": big + (0 if paper else 1), "axes.labelsize": big,
        "legend.fontsize": small, "xtick.labelsize": small, "ytick.labelsize": small, "figure.titlesize": big + 1,
        "axes.prop_cycle": plt.cycler(color=PALETTE),
        "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100, "savefig.dpi": 150 if not paper
        else 300, "savefig.bbox": "tight", "pdf.fonttype": 42, "svg.hashsalt": "lfm",
    })


def printed_text_sizes(fig, width: float = PAGE_WIDTH) -> list[tuple[float, str]]:
    """``(points, text)`` of every visible, non-empty text of ``fig`` as printed ``width`` inches wide (a figure
    wider than that is shrunk to fit; a narrower one keeps its size), smallest first."""
    fig.canvas.draw()
    shrink = min(1.0, width / fig.get_size_inches()[0])
    texts = [t for t in fig.findobj(plt.Text) if t.get_visible() and t.get_text().strip()
             and t.get_window_extent().width > 0]
    return sorted((t.get_fontsize() * shrink, t.get_text()) for t in texts)


def checkpoint_name(res: dict) -> str:
    """The name of the checkpoint of an evaluation result: its recipe, else its file's stem."""
    return res.get("recipe") or Path(str(res.get("checkpoint", "checkpoint"))).stem


def savefig(fig, path, *, formats=("png", "pdf")) -> list[Path]:
    """Save ``fig`` as ``path`` with each suffix in ``formats`` (the suffix of ``path`` is replaced), with fixed
    metadata so the bytes do not change between runs; written atomically. Returns the paths."""
    import io

    from .results import atomic_write_bytes

    path = Path(path)
    out = []
    for fmt in formats:
        meta = {"png": {"Software": None}, "pdf": {"Creator": None, "Producer": None, "CreationDate": None}}[fmt]
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata=meta)
        out.append(atomic_write_bytes(path.with_suffix("." + fmt), buf.getvalue()))
    return out


def ratio_bars(table, *, title: str, targets: dict | None = None, ax=None, errors=None, width: float | None = None,
               xlabel: str = RATIO_LABEL):
    """Grouped horizontal bars of ratios to flat: ``table`` is a DataFrame indexed by set (one row of bars each),
    one column per series (view protocols, graphs). ``targets``: ``{label: value}`` drawn as dashed lines;
    ``errors``: a DataFrame like ``table`` of whisker half-lengths (e.g. the sample sd over seeds; NaN or 0: none).
    ``width``: draw at this printed width (paper text sizes, the legend above the data, full width)."""
    style(paper=width is not None)
    n = len(table.columns)
    if ax is None:
        size = (width or 10, 0.13 * n * len(table) + 0.12 * len(table) + 1.4 + (0.5 + 0.15 * ((n + 2) // 2) if width else 0))
        _, ax = plt.subplots(figsize=size)
    y = np.arange(len(table))
    h = 0.8 / max(n, 1)
    for k, col in enumerate(table.columns):
        err = None if errors is None else np.nan_to_num(errors[col].to_numpy(dtype=float))
        ax.barh(y + h * (k - (n - 1) / 2), table[col].to_numpy(), height=h, label=str(col), color=PALETTE[k % 8],
                xerr=err if err is not None and err.any() else None, error_kw={"lw": 1.0, "capsize": 2.5})
    ax.axvline(1.0, color="0.4", ls=":", lw=1.2, label=FLAT_LABEL)
    for i, (label, v) in enumerate((targets or {}).items()):
        ax.axvline(v, color="0.25", ls="--", lw=0.9, dashes=(4 + 2 * i, 2), label=label)
    ax.set_yticks(y, [str(i) for i in table.index])
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if width:  # title and legend above the data, over the figure's full width
        import textwrap

        fig, H = ax.figure, ax.figure.get_size_inches()[1]
        lines = textwrap.wrap(title, 100)
        fig.suptitle("\n".join(lines), y=1 - 0.04 / H, va="top")
        handles, labels = ax.get_legend_handles_labels()
        rows = -(-len(labels) // 2)
        top = 0.08 + 0.17 * len(lines)
        fig.legend(handles, labels, loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1 - top / H))
        fig.tight_layout()  # left and bottom margins for the labels; the top is the legend's
        fig.subplots_adjust(top=1 - (top + 0.155 * rows + 0.12) / H)
        return fig
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def seed_bars(means, sds, *, title: str, seeds: int, width: float = PAGE_WIDTH):
    """:func:`ratio_bars` of the mean over ``seeds`` training runs with whiskers of the sample standard deviation
    (``sds``, same shape as ``means``), drawn at the printed ``width``; the x label says what bar and whisker are."""
    spread = (f"bar: mean over {seeds} seeds, whisker: sample standard deviation" if seeds > 1
              else "bar: one training run (a single seed: no spread to show)")
    return ratio_bars(means, title=title, errors=sds if seeds > 1 else None, width=width,
                      xlabel=f"{RATIO_LABEL}\n{spread}")


def _diverging(lo: float, hi: float, centre: float = 1.0, cmap: str = "PuOr_r"):
    """A colour map and norm for values in ``[lo, hi]``: a colour-blind-safe diverging map whose middle colour sits
    at ``centre`` with the same change of colour per unit on both sides, cut to the data range (the colour bar
    spans the data, not twice it)."""
    from matplotlib.colors import ListedColormap, Normalize

    half = max(centre - lo, hi - centre, 1e-9)
    a, b = (lo - (centre - half)) / (2 * half), (hi - (centre - half)) / (2 * half)
    return ListedColormap(plt.get_cmap(cmap)(np.linspace(a, b, 256))), Normalize(lo, hi)


def _ink(rgba) -> str:
    """Black or white text, whichever reads better on a cell of colour ``rgba``."""
    r, g, b = rgba[:3]
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45 else "black"


def ratio_heatmap(table, *, title: str, vmax: float | None = None, vmin: float | None = None, groups=None,
                  width: float | None = None):
    """Ratios to flat as a table of colours with the values written in: rows = sets, columns = series (e.g. the
    graphs given to the model). Below 1 (better than flat) is purple, above (worse) orange, white at 1 (a
    colour-blind-safe diverging map centred on the flat guess); the colour bar spans ``[vmin, vmax]``, by default
    the data range. ``groups``: ``[(label, n_rows)]`` in row order, drawn as separated blocks named on the right.
    ``width``: the figure's width in inches (paper text sizes; default: wide enough for the columns)."""
    style(paper=width is not None)
    vals = table.to_numpy(dtype=float)
    lo = float(np.nanmin(vals)) if vmin is None else vmin
    hi = float(np.nanmax(vals)) if vmax is None else vmax
    cmap, norm = _diverging(min(lo, 1.0 - 1e-3), max(hi, 1.0 + 1e-3))
    R, C = table.shape
    size = (width, 0.17 * R + 1.5) if width else (1.3 * C + 3.2, 0.27 * R + 1.6)
    fig, ax = plt.subplots(figsize=size)
    im = ax.imshow(vals, cmap=cmap, norm=norm, aspect="auto", interpolation="nearest")
    for i in range(R):
        for j in range(C):
            v = vals[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color=_ink(cmap(norm(v))))
    ax.set_xticks(range(C), [str(c) for c in table.columns], rotation=30 if not width else 0,
                  ha="right" if not width else "center")
    ax.set_yticks(range(R), [str(i) for i in table.index])
    ax.tick_params(length=0)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    start = 0
    for label, n in groups or []:
        if start:
            ax.axhline(start - 0.5, color="black", lw=1.5)
        ax.text(C - 0.4, start - 0.4, label, ha="left", va="top", fontsize=8)
        start += n
    ax.set_title(title)
    if width:
        ax.xaxis.tick_top()
        fig.colorbar(im, ax=ax, label=RATIO_LABEL, orientation="horizontal", location="bottom", pad=0.02,
                     fraction=0.03, aspect=40)
    else:
        fig.colorbar(im, ax=ax, label=RATIO_LABEL, shrink=0.6)
    fig.tight_layout()
    return fig


def training_curve(history: list[dict], *, title: str = "Training"):
    """Loss and validation ratio to flat over steps, from a run's history (``summary.json`` / checkpoint)."""
    style()
    step = [h["step"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    ax[0].plot(step, [h["loss"] for h in history], color=PALETTE[0])
    ax[0].set(xlabel="optimiser step", ylabel="training loss (Procrustes MSE, radius$^2$)", yscale="log",
              title=f"{title}: loss")
    ax[1].plot(step, [h["val"]["ratio_refl"] for h in history], color=PALETTE[0], label="reflection allowed")
    ax[1].plot(step, [h["val"]["ratio_det"] for h in history], color=PALETTE[1], label="det = +1")
    ax[1].axhline(1.0, color="0.4", ls=":", label=FLAT_LABEL)
    ax[1].set(xlabel="optimiser step", ylabel="validation PA-MPJPE / flat", title=f"{title}: validation (mean over sets)")
    ax[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def lever_bars(table, *, columns: dict, title: str, errors: dict | None = None):
    """Horizontal bars per lever: ``columns`` maps table columns to legend labels (e.g. both alignment policies);
    ``errors`` maps the same columns to spread columns (standard deviation over seeds)."""
    style()
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(table) * len(columns) / 2 + 2))
    y = np.arange(len(table))
    h = 0.8 / len(columns)
    for k, (col, label) in enumerate(columns.items()):
        err = None if not errors or col not in errors else table[errors[col]].to_numpy()
        ax.barh(y + h * (k - (len(columns) - 1) / 2), table[col].to_numpy(), height=h, xerr=err, label=label,
                color=PALETTE[k % 8], capsize=2)
    ax.axvline(1.0, color="0.4", ls=":", label=FLAT_LABEL)
    ax.set_yticks(y, [str(i) for i in table.index])
    ax.invert_yaxis()
    ax.set_xlabel(RATIO_LABEL)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def lever_curves(rows: list[dict], panels: dict, *, title: str, key: str = "val_refl"):
    """Validation ratio to flat over steps, mean over seeds with a band of one standard deviation: ``panels`` maps
    a panel title to ``{lever: legend label}``; ``rows`` are :func:`lfm.experiments.ablations.run_levers` rows
    (with history)."""
    style()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels) + 2.2, 4.0), squeeze=False)
    for ax, (name, levers) in zip(axes[0], panels.items()):
        for k, (lever, label) in enumerate(levers.items()):
            runs = [r["history"] for r in rows if r["lever"] == lever and r.get("history")]
            if not runs:
                continue
            n = min(len(h) for h in runs)
            step = np.array([h["step"] for h in runs[0][:n]])
            vals = np.array([[e[key] for e in h[:n]] for h in runs])
            m, sd = vals.mean(0), vals.std(0)
            ax.plot(step, m, color=PALETTE[k % 8], label=f"{label} ({len(runs)} seeds)")
            ax.fill_between(step, m - sd, m + sd, color=PALETTE[k % 8], alpha=0.2, lw=0)
        ax.axhline(1.0, color="0.4", ls=":", label=FLAT_LABEL)
        policy = "reflection allowed" if key.endswith("refl") else "det = +1"
        ax.set(xlabel="optimiser step", ylabel=f"validation PA-MPJPE / flat ({policy})", title=name)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


SCALE_BAR = "scale bar"  # gid of the bar of one RMS radius drawn in every montage panel


def montage_edges(points: np.ndarray, edges, k: int = 2) -> np.ndarray:
    """The edges to draw between ``points (N, 3)`` (one frame's visible keypoints): the set's ``edges``; where they
    leave a point alone (a rigid object whose keypoint graph, built over every keypoint, falls apart among the ones
    a frame shows: KeypointNet's chair) each point's ``k`` nearest neighbours too; and where the drawing is still
    in pieces, the shortest edges that join the pieces (Kruskal's algorithm started from the edges above)."""
    from .data.schema import knn_edges

    n = len(points)
    e = [tuple(sorted(map(int, p))) for p in np.asarray(edges, dtype=np.int64).reshape(-1, 2)]
    if n > 1 and len({i for p in e for i in p}) < n:
        e += [tuple(p) for p in knn_edges(points, k=min(k, n - 1)).tolist()]
    root = list(range(n))

    def find(i):
        while root[i] != i:
            i = root[i]
        return i

    for i, j in e:
        root[find(i)] = find(j)
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    for i, j in sorted(((i, j) for i in range(n) for j in range(i + 1, n)), key=lambda p: d[p]):
        if find(i) != find(j):
            root[find(i)] = find(j)
            e.append((i, j))
    return np.array(sorted(set(e)), dtype=np.int64).reshape(-1, 2)


def montage(items: list[dict], *, title: str, cols: int = 3, width: float = PAGE_WIDTH, limit: float | None = None):
    """3D shapes side by side at one scale, two views each (front: x-y, the camera's view; side: z-y, the depth
    the model inferred): ground truth as thick vermillion lines, the prediction (aligned to it) as thin dashed
    blue lines with dots. ``items``: dicts with ``title``, ``gt`` and ``pred`` ``(N, 3)`` (visible keypoints
    only) in units of the truth's RMS radius, and ``edges`` ``(E, 2)`` (:func:`montage_edges` connects them).
    Every panel has the same axis limits, ``+-limit`` RMS radii about the middle of the frame's drawing (default:
    the largest coordinate drawn, rounded up to a quarter), and below them a grey scale bar one RMS radius long. Drawn
    ``width`` wide, ``cols`` frames (two panels each) a row."""
    style(paper=True)
    shapes = []
    for it in items:
        both = np.concatenate([it["gt"], it["pred"]])
        c = (both.min(0) + both.max(0)) / 2  # the middle of the drawing: as little empty space as possible
        gt, pred = np.asarray(it["gt"]) - c, np.asarray(it["pred"]) - c
        shapes.append((gt, pred, montage_edges(gt, it["edges"])))
    L = limit or np.ceil(4 * 1.04 * max(np.abs(np.concatenate([g, p])).max() for g, p, _ in shapes)) / 4
    cols = min(cols, len(items))
    rows = -(-len(items) // cols)
    panel = width / (2 * cols)
    import textwrap

    lines = textwrap.wrap(title, 95)
    top, bottom, gap = 0.12 + 0.17 * len(lines) + 0.32, 0.3, 0.4  # inches: title, legend, panel titles
    H = rows * 1.075 * panel + (rows - 1) * gap + top + bottom
    fig = plt.figure(figsize=(width, H))
    grid = fig.add_gridspec(rows, 2 * cols, left=0.005, right=0.995, wspace=0.05, hspace=gap / (1.075 * panel),
                            bottom=bottom / H, top=1 - top / H)
    views = ((0, 1, "front (x-y)"), (2, 1, "side (z-y)"))
    for k, (it, (gt, pred, e)) in enumerate(zip(items, shapes)):
        r, c = divmod(k, cols)
        for v, (a, b, name) in enumerate(views):
            ax = fig.add_subplot(grid[r, 2 * c + v])
            for i, j in e:
                ax.plot(gt[[i, j], a], gt[[i, j], b], color=GT_COLOUR, lw=2.2, solid_capstyle="round", zorder=2)
                ax.plot(pred[[i, j], a], pred[[i, j], b], color=PRED_COLOUR, lw=0.9, dashes=(3, 1.5), zorder=3)
            ax.scatter(pred[:, a], pred[:, b], s=4, color=PRED_COLOUR, zorder=4, linewidths=0)
            bar, = ax.plot([-0.93 * L, 1.0 - 0.93 * L], [-1.08 * L] * 2, color="0.45", lw=1.6,
                           solid_capstyle="butt", zorder=1)  # below the drawing's square
            bar.set_gid(SCALE_BAR)
            ax.set(xlim=(-L, L), ylim=(-1.15 * L, L), aspect="equal", xticks=[], yticks=[])
            for side in ax.spines.values():
                side.set_visible(True)
                side.set_color("0.8")
                side.set_linewidth(0.6)
            ax.set_title(f"{it['title']}\n{name}" if v == 0 else f"\n{name}", fontsize=8, loc="left" if v == 0
                         else "right")
    handles = [plt.Line2D([], [], color=GT_COLOUR, lw=2.2, label="ground truth"),
               plt.Line2D([], [], color=PRED_COLOUR, lw=0.9, dashes=(3, 1.5), marker="o", ms=2,
                          label="LFM, aligned to the truth"),
               plt.Line2D([], [], color="0.45", lw=1.6, label=f"scale bar: 1 RMS radius of the truth "
                          f"(every panel \u00b1{L:g})")]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.suptitle("\n".join(lines), y=1 - 0.06 / H, va="top")
    return fig


# ------------------------------------------------------------------------------------------------ 03_evaluate

ROLES = ("train", "ood", "rig_transfer", "untrained")
SERIES = {"realistic": "realistic cameras", "so3_ortho": "SO(3) orthographic cameras",
          "real_2d": "the set's real 2D (DeepLabCut)"}


def _per_set(res: dict, graph: str = "trained"):
    """Per set of an evaluation result: role and the ratio to flat (reflection allowed) of each 2D source, the
    sets of each role sorted by the realistic ratio, roles in :data:`ROLES` order."""
    import pandas as pd

    df = pd.DataFrame([r for r in res["rows"] if r["graph"] == graph])
    df["series"] = [p if d == "synthetic" else "real_2d" for p, d in zip(df["protocol"], df["two_d"])]
    t = df.pivot_table(index="category", columns="series", values="ratio_refl")
    t["role"] = df.groupby("category")["role"].first()
    t["order"] = [(ROLES.index(r) if r in ROLES else len(ROLES), v) for r, v in zip(t["role"], t["realistic"])]
    return t.sort_values("order").drop(columns="order")


TARGET_STYLES = {"ratio_refl": ("target: mean of the panel's sets", (5, 2)),
                 "max_ratio_refl": ("target: every set of the panel", (6, 1.5, 1, 1.5))}
TARGET_SHORT = {"ratio_refl": "mean", "max_ratio_refl": "every set"}


def _target_lines(targets, role: str):
    """``(statistic, bound)`` of the targets (``lfm.evaluate.TARGETS`` rows: name, role, graph, statistic, bound)
    on the trained graph that apply to the sets of ``role``."""
    return [(stat, bound) for _, r, g, stat, bound in targets if r == role and g == "trained" and stat in TARGET_STYLES]


def per_set_figure(res: dict, *, targets=(), width: float = PAGE_WIDTH):
    """One checkpoint's ``03_evaluate`` result (``res``: its JSON) per set on the trained graph with reflection
    allowed: one bar per 2D source (realistic and SO(3) cameras, and the real 2D where a set has one), one panel
    per role (in distribution, held-out category, held-out rig, not trained on); each target is drawn in the panel
    of the sets it applies to (``targets``: ``lfm.evaluate.TARGETS``), its bound written in the panel's title."""
    style(paper=True)
    t = _per_set(res)
    series = [k for k in SERIES if k in t.columns]
    roles = [r for r in ROLES if (t["role"] == r).any()]
    counts = [int((t["role"] == r).sum()) for r in roles]
    row_h = 0.055 * (len(series) + 1)
    H = row_h * sum(counts) + 0.42 * len(roles) + 1.0
    fig, axes = plt.subplots(len(roles), 1, sharex=True, squeeze=False, height_ratios=counts, figsize=(width, H))
    hi = max(1.1, float(np.nanmax(t[series].to_numpy())) * 1.04)
    handles = {}
    for ax, role in zip(axes[:, 0], roles):
        sub = t[t["role"] == role]
        h = 0.8 / len(series)
        for i, (_, row) in enumerate(sub.iterrows()):
            have = [k for k in series if np.isfinite(row[k])]
            for j, k in enumerate(have):
                handles[SERIES[k]] = ax.barh(i + h * (j - (len(have) - 1) / 2), row[k], height=h,
                                             color=PALETTE[series.index(k)], label=SERIES[k])
        handles[FLAT_LABEL] = ax.axvline(1.0, color="0.4", ls=":", lw=1.2)
        lines = _target_lines(targets, role)
        for stat, bound in lines:
            label, dashes = TARGET_STYLES[stat]
            handles[label] = ax.axvline(bound, color="0.15", ls="--", lw=1.0, dashes=dashes)
        ax.set_yticks(np.arange(len(sub)), list(sub.index))
        ax.set_ylim(len(sub) - 0.5, -0.5)
        ax.set_xlim(0, hi)
        bounds = ", ".join(f"{TARGET_SHORT[st]} ≤ {b}" for st, b in lines)
        ax.set_title(f"{ROLE_LABELS[role]}: {len(sub)} set{'s' if len(sub) > 1 else ''}"
                     + (f"; targets: {bounds}" if len(lines) > 1 else f"; target: {bounds}" if lines else ""),
                     loc="left")
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    axes[-1, 0].set_xlabel(RATIO_LABEL)
    order = [SERIES[k] for k in series] + [FLAT_LABEL] + [v[0] for v in TARGET_STYLES.values()]
    order = [k for k in order if k in handles]
    fig.legend([handles[k] for k in order], order, loc="upper center", ncol=2, frameon=False,
               bbox_to_anchor=(0.5, 1.0 - 0.3 / H))
    fig.suptitle(f"Checkpoint {checkpoint_name(res)}: PA-MPJPE / flat guess per set, trained graph, reflection "
                 "allowed", y=1.0 - 0.05 / H, va="top")
    rows = -(-len(handles) // 2)
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.3 + 0.15 * rows) / H))
    return fig


def graphs_figure(res: dict, graphs=None, *, width: float = PAGE_WIDTH):
    """One checkpoint's ``03_evaluate`` result per set and per graph given to the model (realistic cameras,
    synthetic 2D, reflection allowed), the sets grouped by role in the order of :func:`per_set_figure`."""
    import pandas as pd

    t = _per_set(res)
    df = pd.DataFrame([r for r in res["rows"] if r["protocol"] == "realistic" and r["two_d"] == "synthetic"])
    g = df.pivot_table(index="category", columns="graph", values="ratio_refl")
    graphs = [c for c in (graphs or dict.fromkeys(df["graph"])) if c in g.columns]  # the evaluation's order
    g = g.loc[[c for c in t.index if c in g.index], graphs]
    roles = t.loc[g.index, "role"]
    short = {"train": "in\ndistribution", "ood": "held-out\ncategory", "rig_transfer": "held-out\nrig",
             "untrained": "not\ntrained on"}
    groups = [(short[r], int((roles == r).sum())) for r in ROLES if (roles == r).any()]
    return ratio_heatmap(g, width=width, groups=groups,
                         title=f"Checkpoint {checkpoint_name(res)}: PA-MPJPE / flat guess per graph given to the "
                               "model\n(realistic cameras, reflection allowed)")
