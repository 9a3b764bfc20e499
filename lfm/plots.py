"""Figures for people: one style, byte-stable files, and the plots that several notebooks share.

* :func:`style` sets readable font sizes, a colour-blind-safe palette (Okabe-Ito) and tight layouts; every figure
  function here uses it, and notebooks call it once.
* :func:`savefig` writes PNG and PDF with fixed metadata (no dates, no software version), so the same figure
  gives the same bytes on every run (a test reruns one).
* :func:`ratio_bars`, :func:`training_curve`, :func:`lever_bars`: the per-set bars of ``03``, the training curve of
  ``02`` and the lever comparison of ``04``; axis labels name the quantity and its unit, legends sit outside the
  data, reference lines (flat guess, targets) are grey or dashed, never a data colour.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["style", "savefig", "PALETTE", "ratio_bars", "training_curve", "lever_bars", "FLAT_LABEL", "RATIO_LABEL", "ROLE_LABELS", "montage", "lever_curves", "ratio_heatmap",
           "GT_COLOUR", "PRED_COLOUR"]

GT_COLOUR, PRED_COLOUR = "#D55E00", "#0072B2"  # ground truth red (vermillion), prediction blue, as the paper

# Okabe & Ito (2008): distinguishable with every common colour-vision deficiency
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FLAT_LABEL = "flat guess (2D as 3D) = 1"
RATIO_LABEL = "PA-MPJPE / flat guess (lower is better)"
ROLE_LABELS = {"train": "in distribution", "ood": "held-out category", "rig_transfer": "held-out rig",
               "untrained": "not trained on (other benchmark version)"}


def style() -> None:
    """Apply the bundle's figure style (idempotent)."""
    plt.rcParams.update({
        "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
        "xtick.labelsize": 10, "ytick.labelsize": 10, "axes.prop_cycle": plt.cycler(color=PALETTE),
        "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100, "savefig.dpi": 150,
        "savefig.bbox": "tight", "pdf.fonttype": 42, "svg.hashsalt": "lfm",
    })


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


def ratio_bars(table, *, title: str, targets: dict | None = None, ax=None):
    """Grouped horizontal bars of ratios to flat: ``table`` is a DataFrame indexed by set (one row of bars each),
    one column per series (view protocols, graphs). ``targets``: ``{label: value}`` drawn as dashed lines."""
    style()
    n = len(table.columns)
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.13 * n * len(table) + 0.12 * len(table) + 1.4))
    y = np.arange(len(table))
    h = 0.8 / max(n, 1)
    for k, col in enumerate(table.columns):
        ax.barh(y + h * (k - (n - 1) / 2), table[col].to_numpy(), height=h, label=str(col), color=PALETTE[k % 8])
    ax.axvline(1.0, color="0.4", ls=":", lw=1.2, label=FLAT_LABEL)
    for i, (label, v) in enumerate((targets or {}).items()):
        ax.axvline(v, color="0.25", ls="--", lw=0.9, dashes=(4 + 2 * i, 2), label=label)
    ax.set_yticks(y, [str(i) for i in table.index])
    ax.invert_yaxis()
    ax.set_xlabel(RATIO_LABEL)
    ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def ratio_heatmap(table, *, title: str, vmax: float = 2.0, vmin: float = 0.0):
    """Ratios to flat as a table of colours with the values written in: rows = sets, columns = series (e.g. the
    graphs given to the model). Below 1 (better than flat) is purple, above (worse) orange (a colour-blind-safe
    diverging map centred on the flat guess)."""
    from matplotlib.colors import TwoSlopeNorm

    style()
    R, C = table.shape
    fig, ax = plt.subplots(figsize=(1.3 * C + 3.2, 0.27 * R + 1.6))
    im = ax.imshow(table.to_numpy(dtype=float), cmap="PuOr_r", norm=TwoSlopeNorm(1.0, vmin, vmax), aspect="auto")
    for i in range(R):
        for j in range(C):
            v = table.iat[i, j]
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if abs(v - 1) > 0.6 * (vmax - 1) else "black")
    ax.set_xticks(range(C), [str(c) for c in table.columns], rotation=30, ha="right")
    ax.set_yticks(range(R), [str(i) for i in table.index])
    ax.set_title(title)
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
    a panel title to ``{lever: legend label}``; ``rows`` are :func:`lfm.ablations.run_levers` rows (with history)."""
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


def montage(items: list[dict], *, title: str, cols: int = 4):
    """3D shapes side by side, two viewpoints each (front: x-y, side: z-y): ground truth in red, the prediction
    (aligned to it) in blue, skeleton edges drawn. ``items``: dicts with ``title``, ``gt`` and ``pred`` ``(N, 3)``
    (visible keypoints only) and ``edges`` ``(E, 2)``; units are the ground truth's RMS radius."""
    style()
    rows = -(-len(items) // cols)
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.1 * 2 * cols, 2.5 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for k, it in enumerate(items):
        r, c = divmod(k, cols)
        for v, (a, b, name) in enumerate(((0, 1, "front"), (2, 1, "side"))):
            ax = axes[r, 2 * c + v]
            for pts, col, lw in ((it["gt"], GT_COLOUR, 1.6), (it["pred"], PRED_COLOUR, 1.2)):
                for i, j in np.asarray(it["edges"]).reshape(-1, 2):
                    ax.plot(pts[[i, j], a], pts[[i, j], b], color=col, lw=lw, alpha=0.9)
                ax.scatter(pts[:, a], pts[:, b], s=6, color=col, zorder=3)
            ax.set_aspect("equal")
            ax.set_title(f"{it['title']}\n({name})" if v == 0 else f"({name})", fontsize=9)
    handles = [plt.Line2D([], [], color=GT_COLOUR, lw=2, label="ground truth"),
               plt.Line2D([], [], color=PRED_COLOUR, lw=2, label="LFM (aligned to the truth)")]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
