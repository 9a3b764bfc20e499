"""Learn a new category from 2D keypoints alone: ``lfm finetune --2d DATA -o RUN`` / :func:`finetune_2d`.

No 3D of the new category is needed. The objective on its 2D (:func:`objective_2d`) has three terms, each in
units of the shape's RMS radius (so every sample weighs the same):

* **reprojection** (:func:`reprojection_loss`): the predicted 3D, put into the image by its best orthographic
  camera (scale, rotation, translation; :func:`lfm.geometry.fit_orthographic_camera`), must land on the input
  2D. The camera is the exact minimiser of this same error, so it is held fixed in the backward pass (the
  envelope argument of :mod:`lfm.losses`). Alone it is satisfied by the flat guess (the 2D itself with depth 0).
* **self-consistency** (:func:`self_consistency_loss`, the canonicalisation idea of C3DPO): the model's own 3D,
  turned by a random rotation and projected orthographically, is a new 2D view of the same shape; lifting that
  view must give the same 3D up to a similarity (rotation det +1, translation, scale). A correct lifter passes
  (every view of a shape lifts to that shape); the flat lifter fails: a tilted plane projects to a squashed
  plane, which it returns flat, not similar to the original. This is the term that rules the flat solution out.
  The target (the first lift) is held fixed.
* **multi-view** (:func:`multiview_loss`): where several views of the same instant exist (a group), each view's
  3D must match the next view's up to a similarity. Rows alone in their group contribute nothing.

Training (:func:`train_2d`) starts from a checkpoint and mixes in benchmark 3D training sets with the ordinary
Procrustes loss (:func:`lfm.train.setup` / :func:`lfm.train.draw_batch`), as ``lfm finetune`` does: a step is a
2D batch of your data with probability ``share`` (default 1 / (1 + number of mixed sets)), else a 3D batch. The
step function is this module's own (the trainer's :func:`lfm.train.train_step` knows only the 3D loss).

2D input (:func:`read_2d`): any file ``lfm lift`` reads (one view per row; an ``.npz`` may add ``group`` (B,),
rows with the same id being views of the same instant), or a folder of such files, one per synchronised camera:
rows with the same (frame, instance) across the files form a group.

Status (work in progress, not yet behind ``lfm finetune --2d``): no 2D-only objective tried so far recovers depth
on a toy (``bench/selfsup_toy.py`` -> ``results/bench/selfsup_toy.json``: a rigid 12-point shape with a skeleton,
random SO(3) orthographic views, a small LFM from scratch; 3D supervision reaches 0.39 x flat in 1,000 steps). This
module's objective, its variant with gradients through both lifts, a cycle term (Chen et al. 2019), agreement of
X. Measured failure modes: with the
first lift held fixed the model learns to lift its own turned views (projections of its own, nearly flat, guesses)
without changing how it lifts the real ones, so the flat guess stays a fixed point; with gradients through both
lifts, camera fits scaled to the image let the depth grow without bound (consistency errors of 10-20 image radii).
What the literature adds and this module lacks: a prior on what a real 2D view looks like (Chen et al.'s
discriminator, ElePose's flow) or a separate canonicalisation network (C3DPO), so that the turned views cannot be
told from real ones.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .geometry import fit_orthographic_camera
from .losses import procrustes_mse

__all__ = ["Keypoints2D", "TwoDError", "read_2d", "views_2d", "unit_radius", "reprojection_loss",
           "random_rotations", "camera_frame", "self_consistency_loss", "multiview_loss", "objective_2d", "WEIGHTS",
           "train_2d", "evaluate_2d", "finetune_2d", "PAPER_2DLFM"]

WEIGHTS = {"reprojection": 1.0, "consistency": 1.0, "multiview": 1.0}
# 2D-LFM (Dabhi, Gill, Jeni, Lucey, CVPR 2026), PA-MPJPE in mm, from third-party notes of the paper (no code or
# checked PDF; ../shared/reference/paper.md section 10): theirs, on their protocol, not comparable with ours
PAPER_2DLFM = {"source": "2D-LFM (CVPR 2026) as reported in third-party notes [S]; PA-MPJPE mm, their protocol",
               "2D-LFM (2D only)": {"Pascal3D+": 8.1, "Human3.6M": 30.9},
               "3D-LFM (3D supervised, as 2D-LFM reports it)": {"Pascal3D+": 5.2, "Human3.6M": 46.3},
               "C3DPO (2D only, one category)": {"Pascal3D+": 15.0, "Human3.6M": 95.6}}


class TwoDError(ValueError):
    """2D data that cannot be trained on (the message names the file and the fix)."""


@dataclass
class Keypoints2D:
    """2D keypoints of one body, y up: ``points2d (B, N, 2)`` (0 where hidden), ``mask (B, N)``, ``group (B,)``
    (rows with the same id are views of the same instant), the skeleton's ``edges`` or None."""

    points2d: np.ndarray
    mask: np.ndarray
    group: np.ndarray
    edges: np.ndarray | None
    name: str
    source: str

    @property
    def n_groups(self) -> int:
        return len(np.unique(self.group))

    def subset(self, rows) -> "Keypoints2D":
        return Keypoints2D(self.points2d[rows], self.mask[rows], self.group[rows], self.edges, self.name, self.source)


# ------------------------------------------------------------------------------------------------------- data

def _one_file(path: Path, min_confidence: float):
    from .poses import PoseFileError, read_poses

    try:
        poses = read_poses(path)
    except PoseFileError as e:
        raise TwoDError(str(e)) from None
    P = np.asarray(poses.points2d, np.float64)
    if poses.single:
        P = P[None]
    if P.ndim != 3 or P.shape[-1] != 2:
        raise TwoDError(f"{path}: points2d has shape {P.shape}; expected (B, N, 2).")
    if poses.format == "npz":
        M = np.isfinite(P).all(-1)
        if poses.mask is not None:
            if np.shape(poses.mask) != M.shape:
                raise TwoDError(f"{path}: mask has shape {np.shape(poses.mask)}; expected {M.shape}.")
            M &= np.asarray(poses.mask, bool)
        if poses.confidence is not None:
            M &= np.asarray(poses.confidence, np.float64).reshape(M.shape) >= min_confidence
        with np.load(path, allow_pickle=False) as z:
            group = np.asarray(z["group"]) if "group" in z.files else np.arange(len(P))
        if group.shape != (len(P),):
            raise TwoDError(f"{path}: group has shape {group.shape}; give one id per row ({len(P)},).")
        key = [str(g) for g in group]
    else:
        M = poses.visible(min_confidence)
        P = P * np.array([1.0, -1.0])  # pixel coordinates: y down -> y up, as the model was trained
        key = [f"{v}/{f}/{i}" for v, f, i in zip(poses.video, poses.frame, poses.instance)]
    edges = None if poses.edges is None or not len(poses.edges) else np.asarray(poses.edges, np.int64)
    return np.where(M[..., None], P, 0.0).astype(np.float32), M, key, edges


def read_2d(path, *, min_confidence: float | None = None, name: str | None = None) -> Keypoints2D:
    """2D keypoints of a pose file or a folder of them (one per synchronised camera; see the module docstring).
    Rows with fewer than 3 visible keypoints are dropped; an error names the file and the fix."""
    from .poses import DEFAULT_MIN_CONFIDENCE, EXTENSIONS

    path = Path(path)
    conf = DEFAULT_MIN_CONFIDENCE if min_confidence is None else min_confidence
    if not path.exists():
        raise TwoDError(f"{path} does not exist; give a 2D pose file (any format lfm lift reads) or a folder with "
                        "one such file per camera.")
    if path.is_dir() and not (path / "data.yaml").is_file():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not files:
            raise TwoDError(f"{path} holds no pose files ({', '.join(sorted(EXTENSIONS))}); give one file per camera.")
        parts = [_one_file(f, conf) for f in files]
        if len({p[0].shape[1] for p in parts}) > 1:
            raise TwoDError(f"{path}: its files have different keypoint counts "
                            f"{ {f.name: p[0].shape[1] for f, p in zip(files, parts)} }; keep one body per folder.")
        P = np.concatenate([p[0] for p in parts])
        M = np.concatenate([p[1] for p in parts])
        key = [k.split("/", 1)[-1] for p in parts for k in p[2]]  # the same (frame, instance) in every camera
        edges = next((p[3] for p in parts if p[3] is not None), None)
    else:
        P, M, key, edges = _one_file(path, conf)
    ok = M.sum(1) >= 3
    if not ok.any():
        raise TwoDError(f"{path}: no row has 3 visible keypoints (confidence >= {conf}); lower --min-confidence or "
                        "check the predictions.")
    _, group = np.unique(np.asarray(key)[ok], return_inverse=True)
    nm = name or "yours_" + "".join(c if c.isalnum() else "_" for c in path.stem).strip("_").lower()
    return Keypoints2D(P[ok], M[ok], group.astype(np.int64), edges, nm, str(path))


def views_2d(cs, *, seed: int, views_per_frame: int = 1, protocol: str = "realistic") -> Keypoints2D:
    """Seeded 2D views of a :class:`~lfm.data.schema.CategorySet`'s frames under a benchmark protocol (its 3D is
    then thrown away): the 2D a user of that body would have. ``views_per_frame`` > 1 makes multi-view groups."""
    from .data import benchmark
    from .data.views import synthesize_views

    v = synthesize_views(cs.points3d, cs.visible, seed=seed, views_per_frame=views_per_frame,
                         **benchmark.PROTOCOLS[protocol])
    return Keypoints2D(v.points2d, v.visible, v.frame.astype(np.int64), cs.edges, cs.category,
                       f"{cs.category}: {protocol} views, seed {seed}, {views_per_frame} per frame")


# ------------------------------------------------------------------------------------------------------ terms

def _w(mask, x):
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.bool()


def unit_radius(x: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-8) -> torch.Tensor:
    """``x (B, N, D)`` centred on its visible centroid and divided by its RMS radius; hidden rows 0."""
    m = _w(mask, x)[..., None].to(x.dtype)
    c = (x * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp_min(1)
    xc = (x - c) * m
    r = (xc.square().sum((1, 2)) / m.sum((1, 2)).clamp_min(1)).sqrt().clamp_min(eps)
    return xc / r[:, None, None]


def reprojection_loss(pred3d: torch.Tensor, points2d: torch.Tensor, mask: torch.Tensor | None = None, *,
                      n_iter: int = 10) -> torch.Tensor:
    """Mean over samples of the mean squared 2D distance between the input (centred, unit RMS radius) and the
    prediction seen by its best orthographic camera (fitted on detached values, held fixed)."""
    m = _w(mask, pred3d)
    p = unit_radius(points2d.float(), m)
    y = pred3d.float()
    fit = fit_orthographic_camera(p.detach(), y.detach(), m, n_iter=n_iter)
    cam = fit.s[:, None, None] * (y @ fit.R) + fit.t[:, None, :]
    sq = torch.where(m, (cam[..., :2] - p).square().sum(-1), 0.0)
    return (sq.sum(1) / m.sum(1).clamp_min(1)).mean()


def random_rotations(n: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """``n`` rotations uniform over SO(3) ``(n, 3, 3)`` (QR of a Gaussian matrix, signs fixed, det +1)."""
    A = torch.randn(n, 3, 3, generator=generator).to(device)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R, dim1=1, dim2=2))[:, None, :]
    flip = torch.linalg.det(Q) < 0
    Q[flip, :, 2] = -Q[flip, :, 2]
    return Q


def camera_frame(pred3d: torch.Tensor, points2d: torch.Tensor, mask: torch.Tensor | None = None, *,
                 n_iter: int = 10) -> torch.Tensor:
    """The prediction (detached) put into the camera frame by its best orthographic camera onto the input 2D
    centred and scaled to unit RMS radius: its x, y match the image, its depth is in the image's units, so a shape
    cannot make the relative errors below small by stretching its depth (a long line along the viewing axis is
    far from every rotated view of itself once measured in image units)."""
    m = _w(mask, pred3d)
    p = unit_radius(points2d.detach().float(), m)
    y = pred3d.detach().float()
    fit = fit_orthographic_camera(p, y, m, n_iter=n_iter)
    cam = fit.s[:, None, None] * (y @ fit.R) + fit.t[:, None, :]
    return torch.where(m[..., None], cam - (cam * m[..., None]).sum(1, keepdim=True) / m.sum(1)[:, None, None]
                       .clamp_min(1), 0.0)


def self_consistency_loss(lifter, pred3d: torch.Tensor, points2d: torch.Tensor, mask: torch.Tensor | None,
                          adjacency, rotations) -> torch.Tensor:
    """The model's own 3D in the camera frame (:func:`camera_frame`, held fixed) turned by ``rotations (B, 3, 3)``
    and projected orthographically is lifted again by ``lifter(points2d, mask, adjacency)``; the loss is the
    similarity-aligned (det +1) squared error of that second lift to the first, in units of the image's RMS
    radius."""
    m = _w(mask, pred3d)
    y = camera_frame(pred3d, points2d, m)
    p2 = torch.where(m[..., None], (y @ rotations.to(y))[..., :2], 0.0)
    y2 = lifter(p2, m, adjacency)
    return procrustes_mse(y2.float(), y, m)


def _partners(group: np.ndarray) -> np.ndarray:
    """For each row the next row of its group (cyclic), -1 for a row alone in its group."""
    out = np.full(len(group), -1, np.int64)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        if len(rows) > 1:
            out[rows] = np.roll(rows, -1)
    return out


def multiview_loss(pred3d: torch.Tensor, points2d: torch.Tensor, mask: torch.Tensor | None, group):
    """Similarity-aligned (det +1) squared error of each view's 3D to the next view's of the same group (that one
    in its camera frame, :func:`camera_frame`, held fixed; on the keypoints visible in both; in units of that
    view's image radius); None when no group has two views."""
    m = _w(mask, pred3d)
    j = _partners(np.asarray(group))
    i = np.flatnonzero(j >= 0)
    if not len(i):
        return None
    i_t, j_t = torch.as_tensor(i, device=pred3d.device), torch.as_tensor(j[i], device=pred3d.device)
    both = m[i_t] & m[j_t]
    target = camera_frame(pred3d[j_t], points2d[j_t], both)
    return procrustes_mse(pred3d[i_t].float(), target, both)


def adjacency_for(points2d: torch.Tensor, mask: torch.Tensor, edges) -> torch.Tensor:
    """The skeleton's adjacency (``edges``) or, without one, 3 nearest neighbours of each 2D input (as lfm.lift)."""
    from .graph import edges_to_adjacency, knn_adjacency

    B, N, _ = points2d.shape
    if edges is None:
        A = knn_adjacency(points2d, mask, k=3)
    else:
        A = edges_to_adjacency(torch.as_tensor(np.asarray(edges), dtype=torch.int64), N, batch=B).to(points2d.device)
    return A & mask[:, :, None] & mask[:, None, :]


def objective_2d(lifter, points2d: torch.Tensor, mask: torch.Tensor, adjacency, group, *, weights=None,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
    """The 2D-only loss of one batch: ``sum_k weights[k] * term_k`` and ``{term: float}`` (a term of weight 0 is
    not computed)."""
    w = WEIGHTS if weights is None else {**WEIGHTS, **weights}
    pred = lifter(points2d, mask, adjacency)
    terms = {}
    if w["reprojection"]:
        terms["reprojection"] = reprojection_loss(pred, points2d, mask)
    if w["consistency"]:
        Q = random_rotations(len(pred), generator, device=pred.device)
        terms["consistency"] = self_consistency_loss(lifter, pred, points2d, mask, adjacency, Q)
    if w["multiview"]:
        mv = multiview_loss(pred, points2d, mask, group)
        if mv is not None:
            terms["multiview"] = mv
    total = sum(w[k] * v for k, v in terms.items()) if terms else pred.sum() * 0.0
    return total, {k: float(v.detach()) for k, v in terms.items()}


# --------------------------------------------------------------------------------------------------- training

class _Groups:
    """Draws batches of whole groups (all views of an instant together) from a :class:`Keypoints2D`."""

    def __init__(self, data: Keypoints2D, batch_size: int, seed: int, max_views: int = 4):
        self.data, self.batch_size, self.max_views = data, batch_size, max_views
        order = np.argsort(data.group, kind="stable")
        _, starts = np.unique(data.group[order], return_index=True)
        self.rows = np.split(order, starts[1:])
        self.rng = np.random.default_rng(seed)

    def draw(self, device) -> tuple:
        mean = np.mean([min(len(r), self.max_views) for r in self.rows])
        k = max(1, int(round(self.batch_size / mean)))
        pick = self.rng.choice(len(self.rows), size=min(k, len(self.rows)), replace=len(self.rows) < k)
        rows = np.concatenate([self.rng.permutation(self.rows[g])[: self.max_views] for g in pick])
        d = self.data
        p = torch.as_tensor(d.points2d[rows], device=device)
        m = torch.as_tensor(d.mask[rows], device=device)
        return p, m, adjacency_for(p, m, d.edges), d.group[rows]


def _lifter(forward, amp: bool):
    def lift(p, m, A):
        with torch.autocast(p.device.type, dtype=torch.bfloat16, enabled=amp):
            return forward(p, m, A).float()
    return lift


def train_2d(mcfg, tcfg, out_dir, *, data2d: Keypoints2D | None, steps: int, share: float | None = None,
             weights=None, splits: dict, val2d: Keypoints2D | None = None, epoch_steps: int = 50, log=print) -> dict:
    """Train from ``tcfg.init_from`` for ``steps`` steps: 3D batches of ``splits`` (:func:`lfm.train.draw_batch`,
    the ordinary Procrustes loss) and, with probability ``share`` (default 1 / (1 + number of 3D sets)), a 2D
    batch of ``data2d`` with :func:`objective_2d`. Writes ``out_dir/last.pt`` (the final weights, exportable
    with :func:`lfm.checkpoint.export`); a rerun with ``last.pt`` present and complete returns its summary
    without training (an interrupted run starts over). Returns ``{steps, elapsed_s, history}``."""
    from . import checkpoint as ckpt
    from .data import benchmark
    from .results import provenance
    from .train import _plain_cfg, draw_batch, setup

    out_dir = Path(out_dir)
    last = out_dir / "last.pt"
    if last.is_file():
        ck = ckpt.load(last)
        if ck["state"].get("stopped") == "done" and ck["state"]["step"] == steps:
            return {"steps": steps, "elapsed_s": ck["state"]["elapsed_s"], "history": ck["state"]["history"],
                    "resumed": True}
    out_dir.mkdir(parents=True, exist_ok=True)
    run = setup(mcfg, tcfg, out_dir, splits=splits)
    share = (1.0 / (1 + len(tcfg.train_sets)) if share is None else share) if data2d is not None else 0.0
    groups = _Groups(data2d, tcfg.batch_size, tcfg.seed + 11) if data2d is not None else None
    gen = torch.Generator().manual_seed(tcfg.seed + 13)
    rng = np.random.default_rng(tcfg.seed + 17)
    lifter = _lifter(run.forward, run.amp)
    history, acc, t0 = [], {}, time.time()
    run.model.train()
    for step in range(steps):
        if rng.random() < share:
            p, m, A, g = groups.draw(run.device)
            loss, terms = objective_2d(lifter, p, m, A, g, weights=weights, generator=gen)
            terms = {f"2d_{k}": v for k, v in terms.items()}
        else:
            b = draw_batch(run)
            loss = procrustes_mse(lifter(b.points2d, b.mask, b.adjacency), b.target, b.mask,
                                  allow_reflection=tcfg.allow_reflection)
            terms = {"3d": float(loss)}
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        for k, v in terms.items():
            acc.setdefault(k, []).append(v)
        if (step + 1) % epoch_steps == 0 or step + 1 == steps:
            row = {"step": step + 1, "elapsed_s": time.time() - t0, **{k: float(np.mean(v)) for k, v in acc.items()}}
            if val2d is not None:
                row |= {f"val_2d_{k}": v for k, v in evaluate_2d(run.model, val2d, seed=tcfg.seed).items()}
                run.model.train()
            history.append(row)
            acc = {}
            log("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    state = {"epoch": len(history), "step": steps, "best": math.nan, "best_epoch": len(history),
             "elapsed_s": time.time() - t0, "stopped": "done", "history": history}
    ckpt.save(last, {"model": run.model.state_dict(), "model_config": dataclasses.asdict(mcfg),
                     "train_config": _plain_cfg(tcfg), "state": state, "val_per_category": {},
                     "data_hash": run.data_hash, "benchmark": benchmark.VERSION, "provenance": provenance("cpu")})
    return {"steps": steps, "elapsed_s": state["elapsed_s"], "history": history, "resumed": False}


@torch.no_grad()
def evaluate_2d(model, data: Keypoints2D, *, seed: int = 0, max_rows: int = 512) -> dict:
    """The 2D-only terms (no gradient) on at most ``max_rows`` rows of ``data`` (whole groups, evenly spaced)."""
    model.eval()
    gids = np.unique(data.group)
    keep = gids[np.unique(np.linspace(0, len(gids) - 1, min(len(gids), max_rows)).round().astype(int))]
    sub = data.subset(np.isin(data.group, keep))
    p, m = torch.as_tensor(sub.points2d), torch.as_tensor(sub.mask)
    _, terms = objective_2d(model, p, m, adjacency_for(p, m, sub.edges), sub.group,
                            generator=torch.Generator().manual_seed(seed))
    return terms


# ------------------------------------------------------------------------------------------------ your data

def finetune_2d(data, out_dir, *, checkpoint=None, mix=None, steps: int = 600, epoch_steps: int = 50,
                max_minutes: float | None = None, batch_size: int = 64, lr: float = 2e-4, weights=None,
                min_confidence: float | None = None, name: str | None = None, bench_frames: int = 60,
                threads: int = 0, seed: int = 0, log=print) -> dict:
    """Fine-tune a checkpoint (default: the shipped one) on 2D keypoints only (see the module docstring); returns
    the report, also ``out_dir/report.json``, and exports ``out_dir/model.pt``. The last 10 % of the groups are
    held out: the 2D terms on them before and after are the report's check on your data (there is no 3D to score);
    the benchmark's in-distribution mean before / after shows what else changed. ``max_minutes`` caps ``steps``
    at the number that fits, measured on the first 10 steps' pace (None: all ``steps``)."""
    from . import checkpoint as ckpt
    from .data import benchmark
    from .finetune import DEFAULT_MIX, benchmark_mean, check_sets, train_config_from
    from .config import ModelConfig
    from .lifting import DEFAULT_CHECKPOINT, load_model
    from .results import provenance, write_json

    out_dir = Path(out_dir)
    src = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    model0, ck0 = load_model(src)
    d = read_2d(data, min_confidence=min_confidence, name=name)
    mix = check_sets(d.name, mix or DEFAULT_MIX, TwoDError)
    gids = np.unique(d.group)
    n_val = max(1, int(round(0.1 * len(gids))))
    if len(gids) < 10:
        raise TwoDError(f"{data}: {len(gids)} frames are too few to learn from and hold some out; give at least 10.")
    val_rows = np.isin(d.group, gids[-n_val:])
    train2d, val2d = d.subset(~val_rows), d.subset(val_rows)
    views = np.bincount(np.unique(d.group, return_inverse=True)[1])
    log(f"finetune --2d: {d.name}: {len(d.points2d)} views of {len(gids)} instants ({views.max()} views at most) x "
        f"{d.points2d.shape[1]} keypoints; {n_val} instants held out; mixing {len(mix)} benchmark 3D sets")
    bench = {c: benchmark.split_category(c) for c in benchmark.CATEGORIES}
    before = {"yours_2d": evaluate_2d(model0, val2d, seed=seed),
              "benchmark": benchmark_mean(model0, ck0, bench, frames=bench_frames)}
    if threads:
        torch.set_num_threads(threads)
    tcfg = train_config_from(ck0, src, categories=mix, lr=lr, batch_size=batch_size, threads=threads, seed=seed)
    mcfg = ModelConfig(**ck0["model_config"])
    mixed = {c: benchmark.split_for_training(c) for c in mix}
    if max_minutes:
        t = time.time()
        train_2d(mcfg, tcfg, out_dir / "pace", data2d=train2d, steps=10, weights=weights, splits=mixed,
                 epoch_steps=10, log=lambda *a: None)
        steps = max(1, min(steps, int(60 * max_minutes / max(time.time() - t, 1e-3) * 10)))
    summary = train_2d(mcfg, tcfg, out_dir / "train", data2d=train2d, steps=steps, weights=weights, splits=mixed,
                       val2d=val2d, epoch_steps=epoch_steps, log=lambda s: log(f"finetune --2d: {s}"))
    model1, ck1 = ckpt.load_model(out_dir / "train" / "last.pt")
    after = {"yours_2d": evaluate_2d(model1, val2d, seed=seed),
             "benchmark": benchmark_mean(model1, ck1, bench, frames=bench_frames)}
    rigs = dict(ck0.get("rigs", {}))
    if d.edges is not None:
        rigs[d.name] = {"keypoints": int(d.points2d.shape[1]), "edges": d.edges.tolist(), "category": d.name,
                        "edges_rule": "the file's skeleton", "trained_on": True}
    report = {"data": str(data), "name": d.name, "views": int(len(d.points2d)), "instants": int(len(gids)),
              "keypoints": int(d.points2d.shape[1]), "held_out_instants": n_val, "from": str(src), "mix": list(mix),
              "steps": steps, "weights": {**WEIGHTS, **(weights or {})},
              "protocol": "yours_2d: the 2D-only terms on the held-out instants (unit RMS radius, lower is better; "
                          "no 3D exists to score); benchmark: PA-MPJPE / RMS radius x flat, realistic cameras, "
                          f"{bench_frames} test frames of each in-distribution set",
              "before": before, "after": after, "training": summary, "provenance": provenance()}
    ckpt.export(out_dir / "train" / "last.pt", out_dir / "model.pt", rigs=rigs,
                licences=dict(ck0.get("data_licences", {})) | {d.name: "yours"},
                evaluation={"finetune_2d": {k: report[k] for k in ("before", "after", "mix")}},
                recipe=f"finetune_2d:{d.name}")
    write_json(out_dir / "report.json", report)
    b, a = before["benchmark"]["mean"], after["benchmark"]["mean"]
    log(f"finetune --2d: held-out 2D terms {before['yours_2d']} -> {after['yours_2d']}")
    rig = f" --rig {d.name}" if d.edges is not None else ""
    log(f"finetune --2d: benchmark x flat refl {b['ratio_refl']:.3f} -> {a['ratio_refl']:.3f}; lfm lift --checkpoint "
        f"{out_dir / 'model.pt'}{rig}")
    return report
