"""Lift 2D keypoints to 3D with a trained model: ``lfm.lift(points2d, mask=None, edges=None, rig=None)`` (the
package-level function calls :func:`lift` here).

The shipped checkpoint (``lfm/checkpoints/lfm_open_v1.pt``, trained by ``params/train_open_v1.yaml`` on the open
benchmark) is used unless ``checkpoint=`` names another one. Inputs are image coordinates of any scale;
normalisation (centre on the visible mean, scale into [-1, 1]) and its inverse happen inside.

Graph of the local attention branch, in order of preference:

1. ``edges`` ``(E, 2)`` int: your skeleton;
2. ``rig=NAME``: a rig the checkpoint knows (``lfm.lift.rigs()``), keypoints in that rig's order;
3. neither: k = 3 nearest neighbours of each 2D input (the documented fallback; the README gives its cost).

Outputs (:class:`Lifted`): ``canonical`` 3D in the model's frame at the input's scale, ``camera`` 3D = the
canonical shape placed by the best orthographic camera (its x, y match the input, depth from the shape; the
depth mirror ``camera_mirror`` projects onto the same 2D), and the fitted ``rotation``, ``scale``, ``translation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import checkpoint
from .geometry import fit_orthographic_camera, normalize_2d
from .graph import edges_to_adjacency, knn_adjacency

__all__ = ["lift", "Lifted", "LiftInputError", "rigs", "DEFAULT_CHECKPOINT", "load_model"]

DEFAULT_CHECKPOINT = checkpoint.DEFAULT
FALLBACK_K = 3


class LiftInputError(ValueError):
    """Input to :func:`lift` that cannot be lifted (the message says what to fix)."""


@dataclass
class Lifted:
    canonical: np.ndarray  # (B, N, 3) model-frame 3D at the input's scale, centred on the visible mean (0 if hidden)
    camera: np.ndarray  # (B, N, 3) camera-frame 3D: x, y fitted to the input 2D (orthographic), z = depth
    camera_mirror: np.ndarray  # (B, N, 3) its depth mirror (projects onto the same 2D)
    rotation: np.ndarray  # (B, 3, 3) canonical -> camera (rows convention: camera = scale * canonical @ R + t)
    scale: np.ndarray  # (B,)
    translation: np.ndarray  # (B, 3)
    mask: np.ndarray  # (B, N) bool, the keypoints that were lifted
    graph: str  # "edges", "rig:<name>" or "fallback:2d-knn(k=3)"

    def squeeze(self) -> "Lifted":
        """Drop the batch axis of a single input."""
        return Lifted(*(getattr(self, k)[0] for k in ("canonical", "camera", "camera_mirror", "rotation", "scale",
                                                      "translation", "mask")), self.graph)


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    return checkpoint.load_model(path, device)


def load_model(checkpoint=None, device: str = "cpu"):
    """(model, checkpoint dict) of a checkpoint path (default: the shipped one); cached."""
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    return _load(str(path.resolve()), str(device))


def rigs(checkpoint=None) -> dict[str, dict]:
    """The rigs a checkpoint knows: ``{name: {"keypoints": N, "edges": [[i, j], ...], "category": ...}}``."""
    return load_model(checkpoint)[1].get("rigs", {})


def _as_points(points2d) -> np.ndarray:
    if isinstance(points2d, torch.Tensor):
        points2d = points2d.detach().cpu().numpy()
    a = np.asarray(points2d)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)) \
            or a.dtype == bool:
        raise LiftInputError(f"points2d has dtype {a.dtype}; pass real numbers (float32/float64 image coordinates).")
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3 or a.shape[-1] != 2:
        raise LiftInputError(f"points2d has shape {np.shape(points2d)}; expected (N, 2) or (B, N, 2) "
                             "(x, y per keypoint).")
    return a.astype(np.float32)


def lift(points2d, mask=None, edges=None, checkpoint=None, *, rig: str | None = None, y_down: bool = False,
         device: str = "cpu") -> Lifted:
    """Lift ``points2d`` ``(N, 2)`` or ``(B, N, 2)`` (numpy or torch) to 3D; see the module docstring.

    Args:
        mask: ``(N,)`` or ``(B, N)`` bool, True = keypoint present (default: all). Hidden keypoints may hold NaN.
        edges: ``(E, 2)`` int keypoint pairs (0-based) of a skeleton.
        checkpoint: path of a checkpoint written by ``lfm train`` (default: the shipped one).
        rig: a rig name known to the checkpoint (see :func:`rigs`), instead of ``edges``.
        y_down: True for pixel coordinates whose y axis points down (most image tools); the model was trained
            with y up, so they are flipped on the way in and out.
    Returns a :class:`Lifted` with a batch axis (``.squeeze()`` drops it for one input).
    """
    single = np.ndim(points2d) == 2 if not isinstance(points2d, torch.Tensor) else points2d.dim() == 2
    P = _as_points(points2d)
    B, N, _ = P.shape
    if mask is None:
        M = np.ones((B, N), bool)
    else:
        M = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
        if M.ndim == 1 and single:
            M = M[None]
        if M.shape != (B, N):
            raise LiftInputError(f"mask has shape {np.shape(mask)} but points2d has {N} keypoints"
                                 f"{'' if single else f' in {B} samples'}; pass one entry per keypoint, shape "
                                 f"{(N,) if single else (B, N)}.")
        M = M.astype(bool)
    bad = M & ~np.isfinite(P).all(-1)
    if bad.any():
        b, j = np.argwhere(bad)[0]
        raise LiftInputError(f"points2d has NaN/inf at {int(bad.sum())} visible keypoint(s) (first: sample {b}, "
                             f"keypoint {j}); mark missing keypoints with mask=False instead.")
    few = M.sum(1) < 3
    if few.any():
        raise LiftInputError(f"sample(s) {np.flatnonzero(few)[:10].tolist()} have fewer than 3 visible keypoints; "
                             "a 3D shape needs at least 3 (drop them or unmask more keypoints).")
    if edges is not None and rig is not None:
        raise LiftInputError("pass either edges or rig, not both.")
    model, ck = load_model(checkpoint, device)
    P = np.where(M[..., None], P, 0.0).astype(np.float32)
    if y_down:
        P = P * np.array([1.0, -1.0], np.float32)
    p = torch.from_numpy(P)
    m = torch.from_numpy(M)
    if edges is not None:
        e = np.asarray(edges)
        if e.ndim != 2 or e.shape[1] != 2 or not np.issubdtype(e.dtype, np.integer):
            raise LiftInputError(f"edges has shape {e.shape} and dtype {e.dtype}; expected (E, 2) integer pairs.")
        if e.size and (e.min() < 0 or e.max() >= N):
            raise LiftInputError(f"edges reference keypoint {int(e.max()) if e.max() >= N else int(e.min())}, "
                                 f"outside 0..{N - 1}; each edge must join two of the {N} keypoints.")
        A = edges_to_adjacency(torch.from_numpy(e.astype(np.int64)), N, batch=B)
        graph = "edges"
    elif rig is not None:
        known = ck.get("rigs", {})
        if rig not in known:
            raise LiftInputError(f"unknown rig {rig!r}; this checkpoint knows {sorted(known)}.")
        if known[rig]["keypoints"] != N:
            raise LiftInputError(f"rig {rig!r} has {known[rig]['keypoints']} keypoints but points2d has {N}; "
                                 "give the keypoints in the rig's order, all of them (mask the missing).")
        A = edges_to_adjacency(torch.as_tensor(known[rig]["edges"], dtype=torch.int64).reshape(-1, 2), N, batch=B)
        graph = f"rig:{rig}"
    else:
        A = knn_adjacency(p, m, k=FALLBACK_K)
        graph = f"fallback:2d-knn(k={FALLBACK_K})"
    A = (A & m[:, :, None] & m[:, None, :]) | torch.eye(N, dtype=torch.bool)
    with torch.no_grad():
        y = model(p.to(device), m.to(device), A.to(device)).float().cpu()  # normalised units
    norm = normalize_2d(p, m)
    canon = torch.where(m[..., None], y * norm.scale[:, None, None], 0.0)
    canon = torch.where(m[..., None], canon - (canon * m[..., None]).sum(1, keepdim=True)
                        / m.sum(1)[:, None, None], 0.0)
    fit = fit_orthographic_camera(p, canon, m, tol=1e-6)
    flip = torch.tensor([1.0, -1.0, 1.0]) if y_down else torch.ones(3)
    cam = torch.where(m[..., None], fit.camera3d * flip, 0.0)
    mirror = torch.where(m[..., None], fit.camera3d_mirror * flip, 0.0)
    R = fit.R * flip  # camera = s * canonical @ R + t, with the output's y axis flipped back
    out = Lifted(canon.numpy(), cam.numpy(), mirror.numpy(), R.numpy(), fit.s.numpy(), (fit.t.reshape(B, 3)
                 * flip).numpy(), M, graph)
    return out.squeeze() if single else out
