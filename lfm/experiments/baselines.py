"""3D-supervised peers of LFM (paper Fig. 3) and combined vs isolated training (Sec. IV.3.1) on the open benchmark.

The peers know *joint identity*: each keypoint of each rig has its own input slot. LFM does not (one token per
visible keypoint, any count, permutation-equivariant).

* :class:`SlotLayout`: the fixed-length slot vector. ``stacked`` (C3DPO's released layout, the paper's "M x N
  array"): every rig its own slot range, the ranges disjoint; ``shared`` (the paper's "no object info", an N-max
  array): keypoint ``i`` of every rig in slot ``i``, so a slot means different things in different categories.
* :class:`SlotMLP`: normalised 2D (:func:`lfm.geometry.normalize_2d`, as LFM's input) scattered into the slots as
  ``(x, y, visible)`` (absent slots 0), optionally a one-hot category, an MLP, and per slot 3D added to
  ``(x, y, 0)`` (as LFM's decoder with ``xy_residual``). :class:`FixedSlotLifter` is the C3DPO-style joint model
  (no dropout), :class:`SimpleBaseline` the Martinez et al. (2017) MLP for one rig: Linear 1024, two residual
  blocks of 2 x (Linear, BatchNorm, ReLU, Dropout 0.5).
* :func:`fit` trains a peer through LFM's own loop (:func:`lfm.train.setup` with the built model,
  :func:`lfm.train.run_epochs`): the same training views (:func:`lfm.train.draw_batch`: cameras, projection, noise,
  occlusion), the same Procrustes-aligned loss and optimiser step (:func:`lfm.train.train_step`), AdamW with
  ReduceLROnPlateau, the same seeded validation views (:func:`lfm.train.validation_views`, scored as :func:`score`
  scores) and the same early stopping; it keeps the best epoch's weights in memory (nothing is written). What
  differs for the peers is :data:`PEER_OVERRIDES`: left-right mirroring of the 3D is off (a mirrored pose keeps its
  slot labels, so it would teach a fixed-slot model the wrong chirality); rig augmentation and procedural bodies
  are off (a fixed-slot model cannot take another rig); batches come from the numpy path, mixed sets padded
  (``bucket`` off); the graph is the skeleton (the peers ignore it); float32, no warm-up, no compilation and no
  ``init_from`` (an LFM checkpoint does not fit a peer).
* :func:`score` scores any model with the protocol code of :mod:`lfm.evaluate` (the fixed test views of
  :func:`lfm.data.benchmark.test_views`, :func:`lfm.evaluate.evaluate_category`: ratio to the flat guess, det = +1
  and reflection allowed).
* :func:`run_comparison` trains and scores every model of :data:`MODELS` for each seed (``07_baselines`` is a thin
  caller); :func:`comparison_table`, :func:`combined_vs_isolated` and :func:`comparison_bars` summarise.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..data import benchmark
from ..evaluate import evaluate_benchmark, evaluate_category
from ..geometry import normalize_2d
from ..train import run_epochs, run_folder, setup, train

__all__ = ["SlotLayout", "SlotMLP", "FixedSlotLifter", "SimpleBaseline", "ForCategory", "fit", "score",
           "run_comparison", "comparison_table", "combined_vs_isolated", "comparison_bars", "MODELS", "C3DPO_VARIANTS",
           "PEER_OVERRIDES", "PAPER", "PROTOCOL", "LABELS"]

# C3DPO-style variants: (shared slots, one-hot category input)
C3DPO_VARIANTS = {
    "c3dpo_no_info": (True, False),  # the paper's "no object info": one N-max slot array for every rig
    "c3dpo_info": (False, True),  # object info: stacked slot ranges (C3DPO's layout) and a one-hot category
    "c3dpo_stacked": (False, False),  # stacked slot ranges alone (which slots are filled already names the rig)
}
MODELS = (*C3DPO_VARIANTS, "simple_baseline", "lfm_isolated", "lfm_joint")
LABELS = {"c3dpo_no_info": "C3DPO-style, no object info (shared slots)",
          "c3dpo_info": "C3DPO-style, object info (stacked slots + one-hot)",
          "c3dpo_stacked": "C3DPO-style, stacked slots, no one-hot",
          "simple_baseline": "SimpleBaseline, per category",
          "lfm_isolated": "LFM, per category (isolated)",
          "lfm_joint": "LFM, joint (combined)"}
PEER_OVERRIDES = {"mirror": 0.0, "rig_aug": 0.0, "procedural": 0.0, "bucket": False, "batches": "numpy",
                  "graph": "skeleton", "precision": "float32", "warmup_steps": 0, "compile": False, "init_from": ""}

# Fig. 3 (PASCAL3D+, MPJPE in CAD-model units; bar-to-value mapping inferred, paper.md Sec. 2) and Sec. IV.3.1
PAPER = {
    "fig3": {"c3dpo_no_info": 41.08, "c3dpo_info": 7.5, "lfm_joint": 3.27, "lfm_isolated": 3.97,
             "metric": "MPJPE on PASCAL3D+ (C3DPO protocol, CAD-model units); mapping of labels to bars inferred"},
    "combined_vs_isolated": {"animals (OpenMonkey + Animal3D)": (21.22, 12.5), "PASCAL3D+": (4.31, 1.1),
                             "OpenMonkey": (19.45, 9.59), "AMASS": (1.67, 1.66),
                             "metric": "(isolated, combined), paper units"},
}
PROTOCOL = {
    "two_d": "the fixed seeded test views of lfm.data.benchmark.test_views (synthetic 2D from the test split's 3D)",
    "alignment": "both policies of lfm.evaluate: det = similarity with det(R) = +1; refl = reflection allowed (O(3))",
    "error": "PA-MPJPE / RMS radius of the ground truth, per frame; ratio = model / flat guess (2D as 3D) on the same "
             "views; mean over frames per set (lfm.evaluate.evaluate_category)",
    "masks": "only visible keypoints enter the models, the alignment and the average",
    "aggregation": "per set, then the plain mean over the sets; mean and sample sd over seeds",
    "units": "unit-free (the ground truth's RMS radius)",
    "training": "the same splits (lfm.data.benchmark.split_category), training loop (lfm.train.run_epochs), "
                "training views (lfm.train.draw_batch), loss (lfm.losses.procrustes_mse via lfm.train.train_step), "
                "optimiser and steps for every model; best epoch by the same validation views; peers without "
                "mirroring, rig augmentation and procedural bodies, in float32 (PEER_OVERRIDES)",
    "combined_vs_isolated": "lfm.train.train on one set alone vs on all sets, the same steps; gain = "
                            "1 - joint / isolated (positive: the joint model is better)",
}


@dataclass(frozen=True)
class SlotLayout:
    """Where each rig's keypoints go in a fixed-length slot vector (see the module docstring).

    ``sizes``: ``{set name: keypoint count}`` in a fixed order; ``shared=False`` stacks the rigs' slot ranges,
    ``shared=True`` puts keypoint ``i`` of every rig in slot ``i``."""

    sizes: dict
    shared: bool = False
    offsets: dict = field(init=False)
    width: int = field(init=False)

    def __post_init__(self):
        if not self.sizes:
            raise ValueError("SlotLayout needs at least one rig: sizes = {set name: keypoint count}.")
        starts = np.cumsum([0] + list(self.sizes.values()))[:-1]
        offsets = {c: 0 if self.shared else int(s) for c, s in zip(self.sizes, starts)}
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "width", int(max(self.sizes.values()) if self.shared else sum(self.sizes.values())))

    @property
    def names(self) -> list[str]:
        return list(self.sizes)

    def index(self, name: str) -> int:
        """The category id of ``name`` (its one-hot position)."""
        if name not in self.sizes:
            raise KeyError(f"{name!r} has no slots in this layout; it holds {self.names}.")
        return self.names.index(name)

    def global_slots(self, slots: torch.Tensor, categories) -> torch.Tensor:
        """``(B, L)`` slot of each token: its keypoint index ``slots`` (``-1`` = padding) in the range of its
        sample's rig (``categories``: one set name per sample); padding stays ``-1``."""
        slots = torch.as_tensor(slots, dtype=torch.long)
        off = torch.tensor([self.offsets[c] for c in categories], dtype=torch.long, device=slots.device)
        n = torch.tensor([self.sizes[c] for c in categories], dtype=torch.long, device=slots.device)
        if bool((slots >= n[:, None]).any()):
            raise ValueError("a keypoint index exceeds its rig's keypoint count in this layout.")
        return torch.where(slots >= 0, slots + off[:, None], -1)

    def scatter(self, values: torch.Tensor, gslots: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Tokens ``(B, L, k)`` into slots ``(B, width, k)``; only tokens with ``mask`` are written, the rest 0."""
        B, _, k = values.shape
        keep = mask.bool() & (gslots >= 0)
        out = values.new_zeros(B, self.width + 1, k)  # one spare slot receives what is not kept
        idx = torch.where(keep, gslots, self.width)
        out.scatter_(1, idx[..., None].expand(-1, -1, k), torch.where(keep[..., None], values, 0.0))
        return out[:, :self.width]

    def gather(self, slotted: torch.Tensor, gslots: torch.Tensor) -> torch.Tensor:
        """Slots ``(B, width, k)`` back to tokens ``(B, L, k)`` (padding tokens get 0)."""
        idx = gslots.clamp_min(0)[..., None].expand(-1, -1, slotted.shape[-1])
        return torch.where((gslots >= 0)[..., None], slotted.gather(1, idx), 0.0)


class _Block(nn.Sequential):
    def __init__(self, d_in: int, d_out: int, dropout: float):
        super().__init__(nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), nn.ReLU(), nn.Dropout(dropout))


class _Residual(nn.Module):
    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.f = nn.Sequential(_Block(d, d, dropout), _Block(d, d, dropout))

    def forward(self, x):
        return x + self.f(x)


class SlotMLP(nn.Module):
    """A fixed-slot lifter: ``forward(points2d (B, L, 2), mask (B, L), slots (B, L), categories) -> (B, L, 3)``.

    Tokens are the visible keypoints (as in an :class:`lfm.data.dataset.Batch`: ``slots`` = each token's keypoint
    index in its rig, ``-1`` = padding; for a full rig ``arange(N)``). Input: the normalised 2D as ``(x, y, 1)``
    in each filled slot, 0 elsewhere, plus a one-hot category when ``one_hot``; width ``3 * layout.width
    (+ len(layout.sizes))``. Output: per slot 3D added to ``(x, y, 0)``; hidden and padded tokens give 0.
    """

    def __init__(self, layout: SlotLayout, *, one_hot: bool = False, hidden: int = 1024, blocks: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        self.layout, self.one_hot = layout, one_hot
        self.in_features = 3 * layout.width + (len(layout.sizes) if one_hot else 0)
        self.net = nn.Sequential(_Block(self.in_features, hidden, dropout),
                                 *[_Residual(hidden, dropout) for _ in range(blocks)],
                                 nn.Linear(hidden, 3 * layout.width))

    def forward(self, points2d: torch.Tensor, mask: torch.Tensor, slots, categories) -> torch.Tensor:
        mask = mask.bool()
        B = points2d.shape[0]
        gs = self.layout.global_slots(torch.as_tensor(slots, device=points2d.device), categories)  # (B, L)
        x2d = normalize_2d(points2d.float(), mask).points  # (B, L, 2), hidden 0
        tokens = torch.cat([x2d, mask[..., None].float()], -1)  # (B, L, 3)
        feats = self.layout.scatter(tokens, gs, mask).reshape(B, -1)  # (B, 3 W)
        if self.one_hot:
            ids = torch.tensor([self.layout.index(c) for c in categories], device=points2d.device)
            feats = torch.cat([feats, nn.functional.one_hot(ids, len(self.layout.sizes)).float()], -1)
        out = self.net(feats).view(B, self.layout.width, 3)  # (B, W, 3)
        out = self.layout.gather(out, gs) + nn.functional.pad(x2d, (0, 1))  # (B, L, 3)
        return torch.where(mask[..., None], out, 0.0)


class FixedSlotLifter(SlotMLP):
    """The C3DPO-style joint model over several rigs (``variant`` of :data:`C3DPO_VARIANTS`)."""

    def __init__(self, sizes: dict, variant: str = "c3dpo_info", *, hidden: int = 1024, blocks: int = 2,
                 dropout: float = 0.0):
        if variant not in C3DPO_VARIANTS:
            raise ValueError(f"variant={variant!r} is not one of {list(C3DPO_VARIANTS)}.")
        shared, one_hot = C3DPO_VARIANTS[variant]
        super().__init__(SlotLayout(dict(sizes), shared=shared), one_hot=one_hot, hidden=hidden, blocks=blocks,
                         dropout=dropout)
        self.variant = variant


class SimpleBaseline(SlotMLP):
    """Martinez et al. (2017) for one rig: Linear(3N, 1024), two residual blocks of 2 x (Linear, BN, ReLU,
    Dropout 0.5), Linear(1024, 3N). Our input adds a visibility flag per keypoint to its (x, y)."""

    def __init__(self, name: str, n_keypoints: int, *, hidden: int = 1024, blocks: int = 2, dropout: float = 0.5):
        super().__init__(SlotLayout({name: n_keypoints}), hidden=hidden, blocks=blocks, dropout=dropout)


class ForCategory(nn.Module):
    """A slot model fixed to one rig, with LFM's call ``(points2d (B, N, 2), mask, adjacency) -> (B, N, 3)``, so
    that :func:`lfm.evaluate.evaluate_category` scores it (the adjacency is ignored)."""

    def __init__(self, model: nn.Module, name: str):
        super().__init__()
        self.model, self.name = model, name

    def forward(self, points2d, mask=None, adjacency=None):
        B, N, _ = points2d.shape
        mask = torch.ones(B, N, dtype=torch.bool, device=points2d.device) if mask is None else mask
        slots = torch.arange(N, device=points2d.device).expand(B, N)
        return self.model(points2d, mask, slots, [self.name] * B)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters(), torch.empty(0)).device


VAL_KEYS = ("model_det", "model_refl", "ratio_det", "ratio_refl")


def _validate(run) -> dict:
    """:class:`lfm.train.Run`'s validation of a slot model: its validation views scored as :func:`score` scores."""
    per = {}
    for c, (cs, v) in run.val.items():
        r = evaluate_category(ForCategory(run.model, c), cs, v.points2d, v.points3d, v.visible, attention="global",
                              device=run.device)
        per[c] = {k: r[k] for k in VAL_KEYS}
    return {"mean": {k: float(np.mean([p[k] for p in per.values()])) for k in VAL_KEYS}, "per_category": per}


def _slot_call(forward, batch):
    """What a training step calls on ``batch`` (LFM's call ``(points2d, mask, adjacency)``): the slot model with
    the batch's keypoint slots and set names; the adjacency is ignored."""
    return lambda points2d, mask, adjacency: forward(points2d, mask, batch.slots, batch.category)


def fit(model: SlotMLP, cfg: TrainConfig, splits: dict, *, log=print) -> dict:
    """Train a slot model on ``cfg.train_sets`` through LFM's loop (see the module docstring); the model ends in eval
    mode with the weights of its best validation epoch. ``cfg`` is used with :data:`PEER_OVERRIDES`. Returns a
    summary: ``steps``, ``best_epoch``, ``best_val_refl``, ``elapsed_s`` and the per-epoch ``history``."""
    cfg = dataclasses.replace(cfg, **PEER_OVERRIDES)
    run = setup(None, cfg, None, splits=splits, model=model, validate=_validate, forward_for=_slot_call)
    run_epochs(run, log=lambda *a: None)  # one line below instead of one per epoch
    if run.best_weights is not None:  # None only if every validation was NaN: keep the last weights
        model.load_state_dict(run.best_weights)
    model.eval()
    st = run.state
    log(f"{type(model).__name__} on {list(cfg.train_sets)}: {st['step']} steps, best epoch {st['best_epoch']} (val x "
        f"flat {st['history'][max(st['best_epoch'], 1) - 1]['val']['ratio_refl']:.3f}), {st['elapsed_s'] / 60:.1f} min")
    return {"steps": st["step"], "best_epoch": st["best_epoch"], "best_val_refl": st["best"],
            "elapsed_s": st["elapsed_s"], "history": st["history"]}


METRICS = ("frames", "model_det", "model_refl", "flat_det", "flat_refl", "ratio_det", "ratio_refl")


def score(model: nn.Module, splits: dict, sets, protocols=("realistic",)) -> list[dict]:
    """Rows ``{category, protocol, frames, model_*, flat_*, ratio_*}`` of a slot model (or any model with its call)
    on the test views of ``sets``, through :func:`lfm.evaluate.evaluate_category`."""
    rows = []
    for c in sets:
        for proto in protocols:
            v = benchmark.test_views(splits[c], proto)
            r = evaluate_category(ForCategory(model, c), splits[c].test, v.points2d, v.points3d, v.visible,
                                  attention="global", device=_device(model))
            rows.append({"category": c, "protocol": proto} | {k: r[k] for k in METRICS})
    return rows


def _lfm_rows(model_cfg, cfg, splits, sets, protocols, out_dir, tag, log) -> tuple[list[dict], dict]:
    from .. import checkpoint as ckpt

    out = run_folder(out_dir, tag, model_cfg, cfg)
    summary = train(model_cfg, cfg, out, progress=False, splits=splits, log=lambda s: None)
    model, ck = ckpt.load_model(out / "best.pt")
    ev = evaluate_benchmark(model, ck, {c: splits[c] for c in sets}, protocols=tuple(protocols), real2d=False)
    rows = [{k: r[k] for k in ("category", "protocol", *METRICS)} for r in ev["rows"]]
    log(f"LFM {tag}: {summary['steps']} steps, {summary['elapsed_s'] / 60:.1f} min")
    return rows, summary


def run_comparison(sets, base_model: ModelConfig, base_train: TrainConfig, splits: dict, out_dir, *,
                   models=MODELS, seeds=(0,), protocols=("realistic",), hidden: int = 1024, log=print) -> list[dict]:
    """Train and score every model of ``models`` (:data:`MODELS`) for each seed: the joint models (C3DPO-style
    variants, ``lfm_joint``) on all ``sets``, the per-category ones (``simple_baseline``, ``lfm_isolated``) on each
    set alone, every run with ``base_train``'s steps and views. LFM runs are resumable under ``out_dir``.
    Returns one row per (model, seed, set, protocol) with the :func:`score` columns plus ``steps`` and
    ``minutes``."""
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"models {unknown} are unknown; choose from {list(MODELS)} "
                         "(lfm.experiments.baselines.MODELS).")
    sets = tuple(sets)
    sizes = {c: splits[c].train.n_keypoints for c in sets}
    rows = []

    def add(model_name, seed, scored, summary):
        for r in scored:
            rows.append({"model": model_name, "seed": seed, "steps": summary["steps"],
                         "minutes": summary["elapsed_s"] / 60} | r)

    for seed in seeds:
        joint = dataclasses.replace(base_train, categories=sets, seed=seed)
        for name in models:
            if name in C3DPO_VARIANTS:
                torch.manual_seed(seed)
                m = FixedSlotLifter(sizes, name, hidden=hidden)
                summary = fit(m, joint, splits, log=log)
                add(name, seed, score(m, splits, sets, protocols), summary)
            elif name == "lfm_joint":
                r, s = _lfm_rows(base_model, joint, splits, sets, protocols, out_dir, f"joint_seed{seed}", log)
                add(name, seed, r, s)
            else:
                for c in sets:
                    one = dataclasses.replace(base_train, categories=(c,), seed=seed)
                    if name == "simple_baseline":
                        torch.manual_seed(seed)
                        m = SimpleBaseline(c, sizes[c], hidden=hidden)
                        summary = fit(m, one, splits, log=log)
                        add(name, seed, score(m, splits, (c,), protocols), summary)
                    else:
                        r, s = _lfm_rows(base_model, one, splits, (c,), protocols, out_dir, f"{c}_seed{seed}", log)
                        add(name, seed, r, s)
    return rows


def comparison_table(rows: list[dict], protocol: str = "realistic"):
    """Ratios to flat per set (and their ``mean`` over sets) for each model and policy: mean and sd over seeds.
    A pandas DataFrame indexed by set, columns ``(statistic, model, policy)`` with statistic ``mean`` or ``sd``."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["protocol"] == protocol])
    per = df.pivot_table(index=["seed", "category"], columns="model", values=["ratio_refl", "ratio_det"])
    per.columns = [(m, p.split("_")[1]) for p, m in per.columns]
    mean_sets = per.groupby(level="seed").mean()
    mean_sets.index = pd.MultiIndex.from_tuples([(s, "mean") for s in mean_sets.index], names=per.index.names)
    per = pd.concat([per, mean_sets])
    g = per.groupby(level="category", sort=False)
    order = [m for m in MODELS if m in set(df.model)]
    cols = [(m, p) for m in order for p in ("refl", "det")]
    out = pd.concat({"mean": g.mean()[cols], "sd": g.std(ddof=1).fillna(0.0)[cols]}, axis=1)  # sample sd over seeds
    out.columns = pd.MultiIndex.from_tuples([(s, m, p) for s, (m, p) in out.columns],
                                            names=["statistic", "model", "policy"])
    return out.loc[[c for c in dict.fromkeys(df.category)] + ["mean"]]


def combined_vs_isolated(rows: list[dict]):
    """LFM per set: isolated and joint ratio to flat (mean over seeds) and the relative gain ``1 - joint /
    isolated`` per protocol and policy; a DataFrame with a ``mean`` row (the gain of the means over sets)."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["model"] in ("lfm_isolated", "lfm_joint")])
    out = []
    for (proto, c), g in df.groupby(["protocol", "category"], sort=False):
        row = {"protocol": proto, "category": c}
        for p in ("refl", "det"):
            iso = g[g.model == "lfm_isolated"][f"ratio_{p}"].mean()
            jnt = g[g.model == "lfm_joint"][f"ratio_{p}"].mean()
            row |= {f"isolated_{p}": iso, f"joint_{p}": jnt, f"gain_{p}": 1 - jnt / iso}
        out.append(row)
    t = pd.DataFrame(out)
    means = []
    for proto, g in t.groupby("protocol", sort=False):
        row = {"protocol": proto, "category": "mean"}
        for p in ("refl", "det"):
            iso, jnt = g[f"isolated_{p}"].mean(), g[f"joint_{p}"].mean()
            row |= {f"isolated_{p}": iso, f"joint_{p}": jnt, f"gain_{p}": 1 - jnt / iso}
        means.append(row)
    return pd.concat([t, pd.DataFrame(means)], ignore_index=True).set_index(["protocol", "category"])


def comparison_bars(tables: dict, *, title: str):
    """Grouped vertical bars: a row of panels per view protocol of ``tables`` (``{protocol: comparison_table}``), a
    column per alignment policy; a group per set and the mean over sets (values written on it), a bar per model
    with the sd over seeds; the flat guess is the dotted line at 1."""
    import matplotlib.pyplot as plt

    from .. import plots

    plots.style()
    protos = list(tables)
    first = tables[protos[0]]
    sets = list(first.index)
    models = list(dict.fromkeys(m for _, m, _ in first.columns))
    fig, axes = plt.subplots(len(protos), 2, figsize=(max(11.0, 1.9 * len(sets) + 2), 3.9 * len(protos) + 1.3),
                             squeeze=False)
    w = 0.84 / len(models)
    x = np.arange(len(sets))
    for i, proto in enumerate(protos):
        t = tables[proto]
        for j, (policy, name) in enumerate((("refl", "reflection allowed"), ("det", "det = +1"))):
            ax = axes[i, j]
            top = 0.0
            for k, m in enumerate(models):
                y = t[("mean", m, policy)].to_numpy(dtype=float)
                sd = t[("sd", m, policy)].to_numpy(dtype=float)
                top = max(top, float(np.nanmax(y + np.nan_to_num(sd))))
                xs = x + w * (k - (len(models) - 1) / 2)
                ax.bar(xs, y, width=w, yerr=sd if np.nanmax(sd) > 0 else None, color=plots.PALETTE[k % 8],
                       label=LABELS.get(m, m), capsize=1.5, error_kw={"lw": 0.8})
                ax.text(xs[-1], y[-1] + np.nan_to_num(sd[-1]) + 0.02, f"{y[-1]:.2f}", ha="center", va="bottom",
                        rotation=90, fontsize=8, bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3},
                        zorder=4)  # the value of the mean over sets
            ax.axhline(1.0, color="0.4", ls=":", lw=1.2, label=plots.FLAT_LABEL)
            ax.axvline(len(sets) - 1.5, color="0.75", lw=0.8)  # the mean over sets stands apart
            ax.set_xticks(x, [str(s) for s in sets], rotation=25 if len(sets) > 4 else 0,
                          ha="right" if len(sets) > 4 else "center")
            ax.set_ylim(0, max(1.2, top) + 0.18)  # room for the written values
            ax.set_title(f"{'realistic cameras' if proto == 'realistic' else 'SO(3) orthographic'}, {name}")
            if j == 0:
                ax.set_ylabel(plots.RATIO_LABEL if len(protos) == 1 else "PA-MPJPE / flat guess")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.1 if len(protos) == 1 else 0.06, 1, 1))
    return fig
