"""Metrics: MPJPE under explicit alignments, the H3WB 2D->3D protocol, the C3DPO protocol.

Every function returns *per-sample* values ``(B,)`` (or a dict of them) so callers aggregate explicitly: per
category first, then the mean over categories (:func:`per_group_mean`). A sample with no valid joint gives NaN,
never a silent 0. Units are those of the inputs (mm for the human datasets; "units" for normalised data).

Alignments (``align=``), all applied to the prediction, with the mask inside the fit:

=============  ===========================================================================================
``none``       raw Euclidean error (the prediction must already be in the ground truth's frame)
``root``       translation: the visible centroids coincide (or joint ``root``, when an index is given)
``scale``      translation + least-squares scale (N-MPJPE)
``similarity`` translation + rotation + scale (PA-MPJPE; ``allow_reflection`` picks SO(3) or O(3))
=============  ===========================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .geometry import _check_points, _weights, masked_mean, similarity_align

__all__ = ["mpjpe", "pa_mpjpe", "h3wb_metrics", "c3dpo_metrics", "per_group_mean", "rms_radius", "H3WB_PARTS"]

ALIGNMENTS = ("none", "root", "scale", "similarity")


def _per_sample_mean(err: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mean over joints of ``err (B, N)``; NaN for a sample without valid joints."""
    wsum = w.sum(-1)
    out = (torch.where(w > 0, err, 0.0) * w).sum(-1) / wsum.clamp_min(1e-12)
    return torch.where(wsum > 0, out, torch.full_like(out, float("nan")))


def mpjpe(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    align: str = "none",
    allow_reflection: bool = False,
    root: int | None = None,
) -> torch.Tensor:
    """Mean per-joint position error of each sample, ``(B,)``, after the alignment ``align``.

    Args:
        pred, gt: ``(B, N, 3)``.
        mask: ``(B, N)`` bool/float; the mask weights both the alignment fit and the average over joints.
        align: ``'none' | 'root' | 'scale' | 'similarity'`` (see the module docstring).
        allow_reflection: only for ``align='similarity'``: allow ``det(R) = -1``.
        root: only for ``align='root'``: align this joint instead of the visible centroid.
    """
    _check_points("pred", pred)
    _check_points("gt", gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but gt has shape {tuple(gt.shape)}; they must match.")
    if align not in ALIGNMENTS:
        raise ValueError(f"align={align!r} is not one of {ALIGNMENTS}.")
    if root is not None and align != "root":
        raise ValueError(f"root={root} only applies to align='root', got align={align!r}.")
    dtype = torch.float64 if torch.float64 in (pred.dtype, gt.dtype) else torch.float32
    pred, gt = pred.to(dtype), gt.to(dtype)
    w = _weights(mask, pred)
    if align == "root":
        if root is None:
            pred = pred - masked_mean(pred, w)[:, None] + masked_mean(gt, w)[:, None]
        else:
            if not -pred.shape[1] <= root < pred.shape[1]:
                raise ValueError(f"root={root} is out of range for {pred.shape[1]} joints.")
            pred = pred - pred[:, root : root + 1] + gt[:, root : root + 1]
    elif align == "scale":
        mu_p, mu_g = masked_mean(pred, w)[:, None], masked_mean(gt, w)[:, None]
        pc, gc = pred - mu_p, gt - mu_g
        valid = w > 0
        num = torch.where(valid, (pc * gc).sum(-1), 0.0)  # hidden joints may hold NaN
        den = torch.where(valid, pc.square().sum(-1), 0.0)
        s = (w * num).sum(-1) / (w * den).sum(-1).clamp_min(1e-12)  # (B,)
        pred = s[:, None, None] * pc + mu_g
    elif align == "similarity":
        pred = similarity_align(pred, gt, w, scale=True, allow_reflection=allow_reflection, detach=True).aligned
    return _per_sample_mean((pred - gt).norm(dim=-1), w)


def pa_mpjpe(pred, gt, mask=None, allow_reflection: bool = False) -> torch.Tensor:
    """PA-MPJPE per sample: :func:`mpjpe` after a masked similarity alignment."""
    return mpjpe(pred, gt, mask, align="similarity", allow_reflection=allow_reflection)


def rms_radius(points: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Root-mean-square distance of the visible points from their centroid, ``(B,)``: the unit of the open
    benchmark's unit-free errors (error / RMS radius of the ground truth)."""
    w = _weights(mask, points)
    c = points - masked_mean(points, w)[:, None]
    return torch.sqrt(_per_sample_mean(c.square().sum(-1), w))


# H3WB (COCO-WholeBody, 133 keypoints), from the benchmark's README and test_leaderboard.py:
# body = keypoints 1-23 (17 body + 6 feet), face = 24-91, left hand = 92-112, right hand = 113-133 (1-indexed).
H3WB_PARTS = {
    "body": range(0, 23),
    "face": range(23, 91),
    "left_hand": range(91, 112),
    "right_hand": range(112, 133),
}
_H3WB_PELVIS = (11, 12)  # left and right hip (0-indexed): the pelvis is their mean
_H3WB_NOSE = 0
_H3WB_WRISTS = (91, 112)  # the hands' root keypoints


def h3wb_metrics(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """The H3WB 2D->3D scoring, per sample ``(B,)`` for each key (mm if the inputs are mm).

    ``diff = pred - gt``; whole-body, body, face and hands are scored after subtracting the pelvis difference
    (mean of joints 11 and 12); ``face_aligned`` subtracts the nose difference (joint 0) instead; ``hand_aligned``
    subtracts each hand's wrist difference (joints 91 and 112) and averages the two hands. No rotation or scale.
    """
    _check_points("pred", pred)
    if pred.shape[1:] != (133, 3) or gt.shape != pred.shape:
        raise ValueError(
            f"h3wb_metrics needs pred and gt of shape (B, 133, 3) (COCO-WholeBody order), got "
            f"{tuple(pred.shape)} and {tuple(gt.shape)}."
        )
    diff = pred - gt  # (B, 133, 3)
    pelvis = diff[:, list(_H3WB_PELVIS)].mean(1, keepdim=True)  # (B, 1, 3)
    d_pelvis = (diff - pelvis).norm(dim=-1)  # (B, 133)
    body, face = list(H3WB_PARTS["body"]), list(H3WB_PARTS["face"])
    hands = list(H3WB_PARTS["left_hand"]) + list(H3WB_PARTS["right_hand"])
    out = {
        "whole_body": d_pelvis.mean(1),
        "body": d_pelvis[:, body].mean(1),
        "face": d_pelvis[:, face].mean(1),
        "face_aligned": (diff[:, face] - diff[:, _H3WB_NOSE : _H3WB_NOSE + 1]).norm(dim=-1).mean(1),
        "hand": d_pelvis[:, hands].mean(1),
    }
    per_hand = []
    for part, wrist in zip(("left_hand", "right_hand"), _H3WB_WRISTS):
        idx = list(H3WB_PARTS[part])
        per_hand.append((diff[:, idx] - diff[:, wrist : wrist + 1]).norm(dim=-1).mean(1))
    out["hand_aligned"] = (per_hand[0] + per_hand[1]) / 2
    return out


def c3dpo_metrics(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    categories: Sequence[str] | None = None,
) -> dict:
    """The C3DPO evaluation protocol (``eval_zoo.py``): zero mean depth, best over a depth flip, per class.

    Both ``pred`` and ``gt`` (camera frame, ``(B, N, 3)``) get their visible mean depth (z) set to 0; then
    ``mpjpe_best = min(MPJPE(pred), MPJPE(pred with z negated))`` per sample. No rotation or scale alignment.

    Returns ``{'mpjpe': (B,), 'mpjpe_flip': (B,), 'mpjpe_best': (B,), 'flipped': (B,) bool}`` and, when
    ``categories`` (one name per sample) is given, ``'per_class': {name: mean mpjpe_best}`` and ``'mean'``: the
    mean over classes (C3DPO's ``eval_results_per_class``).
    """
    _check_points("pred", pred)
    if pred.shape != gt.shape:
        raise ValueError(f"pred has shape {tuple(pred.shape)} but gt has shape {tuple(gt.shape)}; they must match.")
    w = _weights(mask, pred)
    zero_depth = torch.tensor([0.0, 0.0, 1.0], dtype=pred.dtype, device=pred.device)

    def fix_depth(x):
        return x - masked_mean(x, w)[:, None] * zero_depth

    p, g = fix_depth(pred), fix_depth(gt)
    flip = p * torch.tensor([1.0, 1.0, -1.0], dtype=p.dtype, device=p.device)
    e = _per_sample_mean((p - g).norm(dim=-1), w)
    e_flip = _per_sample_mean((flip - g).norm(dim=-1), w)
    out = {"mpjpe": e, "mpjpe_flip": e_flip, "mpjpe_best": torch.minimum(e, e_flip), "flipped": e_flip < e}
    if categories is not None:
        if len(categories) != pred.shape[0]:
            raise ValueError(f"categories has {len(categories)} names for {pred.shape[0]} samples; give one each.")
        out["per_class"] = per_group_mean(out["mpjpe_best"], categories)
        out["mean"] = sum(out["per_class"].values()) / len(out["per_class"])
    return out


def per_group_mean(values: torch.Tensor, groups: Sequence[str]) -> dict[str, float]:
    """Mean of per-sample ``values`` within each group (e.g. category), ignoring NaN samples; sorted by name."""
    if len(groups) != values.shape[0]:
        raise ValueError(f"{len(groups)} group names for {values.shape[0]} values; give one name per sample.")
    out = {}
    for name in sorted(set(groups)):
        sel = torch.tensor([g == name for g in groups], device=values.device)
        v = values[sel]
        out[name] = float(v[~torch.isnan(v)].mean()) if bool((~torch.isnan(v)).any()) else float("nan")
    return out
