"""Learn a new category from 2D keypoints alone: ``lfm finetune --2d DATA -o RUN`` / :func:`finetune_2d`.

No 3D of the new category is needed. What ``lfm finetune --2d`` does (:func:`finetune_2d`):

1. every row of the 2D is lifted by the checkpoint (:func:`pseudo_3d`, as ``lfm lift``);
2. the lifts are refined together from their 2D (:func:`refine_2d`): a low-rank shape model (mean + modes, by
   generalised Procrustes and PCA of the lifts) whose per-row camera and coefficients are refitted to the 2D, so
   the reprojection holds and the lifter's view-specific depth errors average out (NRSfM's low-rank prior);
3. :func:`lfm.finetune.finetune` trains on the refined 3D (``RUN/pseudo3d.npz``) as on any user's 3D.

On the benchmark's 24 held-out sets step 2 takes the shipped model from 0.812 to 0.625 x flat
(``python -m lfm.experiments.refine2d``; docs/lifting.md).

The training objectives below (reprojection, C3DPO-style self-consistency, multi-view; :func:`objective_2d`) were
the first design; they are kept for ``bench/selfsup_toy.py``, which measures them, and are not used by the command.

* **reprojection** (:func:`reprojection_loss`): the predicted 3D, put into the image by its best orthographic
  camera, must land on the input 2D (the camera held fixed in the backward pass). Alone it is satisfied by the
  flat guess.
* **self-consistency** (:func:`self_consistency_loss`): the model's own 3D, turned at random and projected, must
  lift back to itself up to a similarity (the first lift held fixed).
* **multi-view** (:func:`multiview_loss`): views of the same instant (a group) must agree up to a similarity.

2D input (:func:`read_2d`): any file ``lfm lift`` reads (one view per row; an ``.npz`` may add ``group`` (B,),
rows with the same id being views of the same instant), or a folder of such files, one per synchronised camera:
rows with the same (frame, instance) across the files form a group.

The training objectives, measured (``bench/selfsup_toy.py`` -> ``results/bench/selfsup_toy.json``: a rigid
12-point shape with a skeleton, random SO(3) orthographic views, a small LFM from scratch; 3D supervision reaches
0.37 x flat in 1,000 steps): this objective, its variant with gradients through both lifts, a cycle term (Chen et
al. 2019), agreement of two real views' lifts, and a camera-fit-free variant all end at 1.00-1.67 x flat. Failure
modes: with the first lift held fixed the model learns to lift its own turned views (projections of its own,
nearly flat, guesses) without changing how it lifts the real ones, so the flat guess stays a fixed point; with
gradients through both lifts, camera fits scaled to the image let the depth grow without bound (consistency errors
of 10-20 image radii). What the literature adds and these lack: a prior on what a real 2D view looks like (Chen et
al.'s discriminator, ElePose's flow) or a low-rank shape bottleneck (C3DPO, PAUL), which the refinement supplies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .geometry import fit_orthographic_camera
from .losses import procrustes_mse

__all__ = ["Keypoints2D", "TwoDError", "read_2d", "unit_radius", "reprojection_loss",
           "random_rotations", "camera_frame", "self_consistency_loss", "multiview_loss", "objective_2d", "WEIGHTS",
           "Refined", "refine_2d", "DEFAULT_MODES", "pseudo_3d", "finetune_2d", "PAPER_2DLFM"]

DEFAULT_MODES = 10  # refine_2d's shape modes, chosen on 8 held-out sets (Procrustes RMS error / flat's: 5 modes 0.67,
# 10 0.62, 20 0.61; ridge 0.03 / 0.1 / 0.3 / 1 at 10 modes: 0.69 / 0.62 / 0.62 / 0.67)
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


# ------------------------------------------------------------------------------------------- the refinement

@dataclass
class Refined:
    """:func:`refine_2d`'s result: ``camera (B, N, 3)`` the refined 3D in the camera frame (x, y fitted to the input,
    z = depth; 0 where hidden), the category's shape model ``mean (N, 3)`` + ``basis (K, N, 3)`` (unit RMS radius)
    with each row's ``coeffs (B, K)``, ``rms_2d (B,)`` the RMS reprojection error in the input's units."""

    camera: np.ndarray
    mean: np.ndarray
    basis: np.ndarray
    coeffs: np.ndarray
    rms_2d: np.ndarray


def refine_2d(points2d, mask, lifted, *, n_basis: int = DEFAULT_MODES, iters: int = 4, ridge: float = 0.1,
              gpa_iters: int = 6) -> Refined:
    """Refine the lifts of many views of one body from their 2D alone (a low-rank shape model, as in NRSfM).

    ``points2d (B, N, 2)`` (y up), ``mask (B, N)`` bool, ``lifted (B, N, 3)`` any 3D of each row (e.g.
    :attr:`lfm.lifting.Lifted.camera`). Steps: (1) generalised Procrustes: every lift, at unit RMS radius, is aligned
    to the running mean shape by a similarity (reflection allowed: a lift's depth mirror gets the mean's chirality);
    (2) PCA of the aligned shapes: the mean and the ``n_basis`` leading modes (hidden keypoints take the mean's
    values); (3) per row, alternately, the orthographic camera that best projects the row's shape onto its 2D
    (:func:`lfm.geometry.fit_orthographic_camera`) and the mode coefficients that best reproject under that camera
    (ridge least squares, ``ridge`` in units of the image), ``iters`` times. The result reprojects onto the input
    as well as ``n_basis`` modes allow; its depth comes from the modes that every view's lift contributed to, so a
    view-specific depth error of the lifter is averaged out. With ``n_basis = 0`` it is a rigid body's mean shape;
    at most B - 1 and 3N - 1 modes are used.
    """
    from .geometry import fit_orthographic_camera, similarity_align

    p = torch.as_tensor(np.asarray(points2d), dtype=torch.float64)
    m = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    y = torch.as_tensor(np.asarray(lifted), dtype=torch.float64)
    if p.dim() != 3 or p.shape[-1] != 2 or tuple(y.shape) != (*p.shape[:2], 3) or tuple(m.shape) != p.shape[:2]:
        raise TwoDError(f"refine_2d: points2d {tuple(p.shape)}, mask {tuple(m.shape)} and lifted {tuple(y.shape)} "
                        "must be (B, N, 2), (B, N) and (B, N, 3).")
    B, N = m.shape
    if B < 2 or n_basis < 0:
        raise TwoDError(f"refine_2d: {B} rows and n_basis = {n_basis}; give >= 2 rows and n_basis >= 0.")
    n_basis = min(n_basis, B - 1, 3 * N - 1)  # a shape has 3N numbers; B rows span at most B - 1 modes
    m = m & (m.sum(1, keepdim=True) >= 3)
    X = unit_radius(torch.where(m[..., None], y, 0.0), m, eps=1e-12)
    p = torch.where(m[..., None], p, 0.0)
    mean = X[int(m.sum(1).argmax())]
    for _ in range(gpa_iters):
        aligned = similarity_align(X, mean.expand_as(X), m, allow_reflection=True).aligned
        w = m[..., None].to(X.dtype)
        mean = unit_radius(((aligned * w).sum(0) / w.sum(0).clamp_min(1))[None], m.any(0)[None], eps=1e-12)[0]
    D = torch.where(m[..., None], aligned, mean).sub(mean).flatten(1)  # (B, 3N)
    Vt = torch.linalg.svd(D, full_matrices=False).Vh[:n_basis]  # (K, 3N)
    basis, coeffs = Vt.reshape(n_basis, N, 3), D @ Vt.T
    eye = torch.eye(n_basis, dtype=X.dtype)
    for _ in range(iters if n_basis else 0):
        fit = fit_orthographic_camera(p, mean + torch.einsum("bk,knd->bnd", coeffs, basis), m, n_iter=20)
        R2 = fit.R[..., :2]  # (B, 3, 2): 3D row vector -> image x, y
        modes = fit.s[:, None, None, None] * torch.einsum("knd,bde->bkne", basis, R2)  # (B, K, N, 2)
        rest = (p - fit.s[:, None, None] * (mean @ R2) - fit.t[:, None, :2]) * m[..., None]
        A = (modes * m[:, None, :, None]).flatten(2)  # (B, K, 2N)
        scale2 = fit.s.square()[:, None, None]
        G = A @ A.transpose(1, 2) + ridge * scale2 * eye  # ridge relative to the camera's scale
        coeffs = torch.linalg.solve(G, A @ rest.flatten(1)[..., None])[..., 0]
    shape = mean + torch.einsum("bk,knd->bnd", coeffs, basis)
    fit = fit_orthographic_camera(p, shape, m, n_iter=20)
    cam = fit.s[:, None, None] * (shape @ fit.R) + fit.t[:, None, :]
    err = torch.where(m, (cam[..., :2] - p).square().sum(-1), 0.0).sum(1) / m.sum(1).clamp_min(1)
    return Refined(torch.where(m[..., None], cam, 0.0).float().numpy(), mean.float().numpy(),
                   basis.float().numpy(), coeffs.float().numpy(), err.sqrt().float().numpy())


# ------------------------------------------------------------------------------------------------ your data

def pseudo_3d(data: Keypoints2D, *, checkpoint=None, model=None,
              n_basis: int = DEFAULT_MODES) -> tuple[np.ndarray, Refined]:
    """Lift every row of ``data`` (the checkpoint's model, the file's skeleton or the 2D kNN graph, as ``lfm lift``)
    and refine the lifts together (:func:`refine_2d`): the 3D that ``lfm finetune --2d`` trains on. Returns the
    lifts' camera-frame 3D and the refinement."""
    from .lifting import lift

    lifted = lift(data.points2d, data.mask, edges=data.edges, checkpoint=None if model is not None else checkpoint,
                  model=model)
    return lifted.camera, refine_2d(data.points2d, data.mask, lifted.camera, n_basis=n_basis)


def finetune_2d(data, out_dir, *, checkpoint=None, n_basis: int = DEFAULT_MODES,
                min_confidence: float | None = None, name: str | None = None, log=print, **finetune_kw) -> dict:
    """``lfm finetune --2d``: fine-tune a checkpoint (default: the shipped one) on 2D keypoints alone. The rows of
    DATA (:func:`read_2d`) are lifted and refined together (:func:`pseudo_3d`); the refined 3D, saved as
    ``out_dir/pseudo3d.npz`` (one sequence, in the file's order), is the 3D that :func:`lfm.finetune.finetune` then
    trains on (``finetune_kw``: ``mix``, ``max_minutes``, ``seed``, ...). The report (``out_dir/report.json``) adds
    the refinement (modes, RMS reprojection error); its ``yours`` scores are against the pseudo-3D, not a truth
    (there is none): they say how well the model learnt the refined shapes, not how right those are."""
    from .finetune import finetune
    from .results import write_json

    out_dir = Path(out_dir)
    d = read_2d(data, min_confidence=min_confidence, name=name)
    if len(np.unique(d.group)) < 10:
        raise TwoDError(f"{data}: {len(np.unique(d.group))} frames are too few to learn a shape from; give at "
                        "least 10.")
    if n_basis >= len(d.points2d):
        raise TwoDError(f"{data}: {len(d.points2d)} rows cannot give {n_basis} shape modes; lower --modes.")
    _, ref = pseudo_3d(d, checkpoint=checkpoint, n_basis=n_basis)
    log(f"finetune --2d: {d.name}: {len(d.points2d)} views x {d.points2d.shape[1]} keypoints lifted and refined "
        f"({n_basis} shape modes; RMS reprojection {np.median(ref.rms_2d):.3g} input units, median)")
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = out_dir / "pseudo3d.npz"
    order = np.argsort(d.group, kind="stable")  # one sequence in the file's order, views of an instant together:
    arrays = {"points3d": ref.camera[order], "visible": d.mask[order]}  # the last 20 % are held out (a time block)
    if d.edges is not None:
        arrays["edges"] = d.edges
    tmp = out_dir / ".pseudo3d.part.npz"
    np.savez(tmp, **arrays)
    tmp.replace(npz)
    report = finetune(npz, out_dir, checkpoint=checkpoint, name=d.name, log=log, **finetune_kw)
    report = {**report, "source_2d": str(data), "refinement": {
        "n_basis": n_basis, "rms_2d_median": float(np.median(ref.rms_2d)),
        "what": "lifts of every row, generalised Procrustes, PCA to n_basis modes, per-row camera + mode refit to "
                "the 2D (lfm.selfsup.refine_2d); 'yours' is scored against this pseudo-3D"}}
    write_json(out_dir / "report.json", report)
    return report
