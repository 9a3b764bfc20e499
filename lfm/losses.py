"""The paper's training loss: Procrustes-aligned masked MSE (Sec. 3.6-3.7, Eq. 8).

``S_p = s * S_c @ R + t`` is the canonical prediction aligned to the reference-frame ground truth ``S_r`` by a
masked similarity Procrustes fit, then ``L = mean_b [ sum_i m_bi ||S_p,bi - S_r,bi||^2 / sum_i m_bi ]``: per sample,
the mean over valid joints of the squared Euclidean distance (= 3 x the per-coordinate MSE), then the mean over
samples that have at least one valid joint.

Why the alignment is detached: ``(s, R, t)`` is the exact minimiser of this same masked squared error, so by the
envelope theorem the gradient with ``(s, R, t)`` held fixed equals the gradient through the SVD (tests check it to
1e-10 in float64), and it avoids the SVD backward's NaN on symmetric point sets (a cube, a regular polygon). This
holds because the fit and the loss use the same weights and the same SO(3)/O(3) choice.
"""

from __future__ import annotations

import torch

from .geometry import _weights, masked_mean, similarity_align

__all__ = ["procrustes_mse"]


def procrustes_mse(
    pred: torch.Tensor,
    gt: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    scale: bool = True,
    allow_reflection: bool = False,
    align: bool = True,
) -> torch.Tensor:
    """Scalar loss: Procrustes-aligned masked MSE of ``pred (B, N, 3)`` against ``gt (B, N, 3)``.

    Args:
        mask: ``(B, N)`` bool/float, True = valid joint; padded and invisible joints never count.
        scale: fit the similarity scale ``gamma`` of the paper (else a rigid fit).
        allow_reflection: ``True`` is the paper's literal ``R = U V^T`` (O(3)); ``False`` (default) forces
            ``det(R) = +1``. A reflection-allowed loss cannot tell a shape from its depth mirror.
        align: ``False`` is the "no Procrustes" ablation (Fig. 6a): only the visible centroids are matched
            (translation), the network must predict the reference-frame orientation and scale itself.

    Computed in float32 (float64 for float64 inputs), also under autocast. A batch without any valid joint
    gives 0 (with a zero gradient), not NaN.
    """
    if align:
        pred_aligned = similarity_align(pred, gt, mask, scale=scale, allow_reflection=allow_reflection, detach=True)
        p = pred_aligned.aligned
    else:
        dtype = torch.float64 if torch.float64 in (pred.dtype, gt.dtype) else torch.float32
        w0 = _weights(mask, pred.to(dtype))
        p = pred.to(dtype) - masked_mean(pred.to(dtype), w0)[:, None] + masked_mean(gt.to(dtype), w0)[:, None]
    g = gt.to(p.dtype)
    w = _weights(mask, p)
    wsum = w.sum(-1)  # (B,)
    sq = torch.where(w > 0, (p - g).square().sum(-1), 0.0)  # (B, N); hidden joints may hold NaN
    per_sample = (w * sq).sum(-1) / wsum.clamp_min(1e-12)  # (B,)
    has_valid = (wsum > 0).to(p.dtype)
    return (per_sample * has_valid).sum() / has_valid.sum().clamp_min(1.0)
