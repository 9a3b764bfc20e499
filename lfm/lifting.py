"""Lift 2D keypoints to 3D with a trained model: ``lfm.lift(points2d, mask=None, edges=None, rig=None)`` (the
package-level function calls :func:`lift` here).

The shipped checkpoint ``lfm/checkpoints/lfm_open_v3.pt`` (trained by ``params/train_open_v3.yaml`` on the open
benchmark v3's 32 sets with rig and graph augmentation, from v2's weights) is used unless ``checkpoint=`` names
another one, e.g. the previous ``lfm_open_v2.pt`` (a little better on its own 23 sets, worse on the 9 sets v3 added
and on held-out categories) or ``lfm_open_v1.pt``, or ``model=`` gives a loaded model. Inputs are image coordinates of any scale;
normalisation (centre on the visible mean, scale into [-1, 1]) and its inverse happen inside.

Graph of the local attention branch, in order of preference:

1. ``edges`` ``(E, 2)`` int: your skeleton;
2. ``rig=NAME``: a rig of the checkpoint or a named skeleton of a common 2D format (``coco17``, ``h36m17``,
   ``mediapipe_hand21``, ``openpose_hand21``, ``mediapipe_pose33``, ``coco_wholebody133``; see
   :mod:`lfm.skeletons`), keypoints in that rig's order; ``lfm.lifting.rigs()`` lists them all;
3. neither: k = 3 nearest neighbours of each 2D input (the documented fallback; the README gives its cost).

Outputs (:class:`Lifted`), all at the input's scale (pixels in, pixels out): ``canonical`` 3D in the model's
frame, centred on the visible mean; ``camera`` 3D = the canonical shape placed by the best orthographic camera
(its x, y match the input 2D, in the input's y direction when ``y_down``; z = depth); ``camera_mirror`` its depth
mirror, which projects onto the same 2D (a single view cannot tell the two apart); the fitted ``rotation`` (a proper
rotation), ``scale``, ``translation`` and ``axes`` with ``camera = (scale * canonical @ rotation + translation) *
axes`` (``axes`` = [1, -1, 1] with ``y_down``, else ones); ``mask``; ``graph``, the graph used (``"edges"``, ``"rig:<name>"`` or
``"fallback:2d-knn(k=3)"``).

:func:`lift` runs three steps, each usable alone: :func:`check_inputs`, :func:`choose_graph`, and after the model
:func:`fit_camera`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import checkpoint, skeletons
from .geometry import fit_orthographic_camera
from .graph import edges_to_adjacency, knn_adjacency

__all__ = ["lift", "lift_file", "smooth_camera", "Lifted", "LiftInputError", "rigs", "check_inputs", "choose_graph", "fit_camera", "unknown_rig_message",
           "DEFAULT_CHECKPOINT", "load_model"]

DEFAULT_CHECKPOINT = checkpoint.DEFAULT
FALLBACK_K = 3


class LiftInputError(ValueError):
    """Input to :func:`lift` that cannot be lifted (the message says what to fix)."""


@dataclass
class Lifted:
    canonical: np.ndarray  # (B, N, 3) model-frame 3D at the input's scale, centred on the visible mean (0 if hidden)
    camera: np.ndarray  # (B, N, 3) camera-frame 3D: x, y fitted to the input 2D (orthographic), z = depth
    camera_mirror: np.ndarray  # (B, N, 3) its depth mirror (projects onto the same 2D)
    rotation: np.ndarray  # (B, 3, 3) proper rotation (det +1), canonical -> the model's camera frame (rows)
    scale: np.ndarray  # (B,)
    translation: np.ndarray  # (B, 3) in the model's camera frame (y up)
    mask: np.ndarray  # (B, N) bool, the keypoints that were lifted
    graph: str  # "edges", "rig:<name>" or "fallback:2d-knn(k=3)"
    # (3,) the model's camera frame -> the output's: [1, -1, 1] with y_down (the image's y points down), else ones;
    # camera = (scale * canonical @ rotation + translation) * axes
    axes: np.ndarray = field(default_factory=lambda: np.ones(3, np.float32))

    def squeeze(self) -> "Lifted":
        """Drop the batch axis of a single input."""
        return Lifted(*(getattr(self, k)[0] for k in ("canonical", "camera", "camera_mirror", "rotation", "scale",
                                                      "translation", "mask")), self.graph, self.axes)


@lru_cache(maxsize=4)
def _load(path: str, device: str):
    return checkpoint.load_model(path, device)


def load_model(checkpoint=None, device: str = "cpu"):
    """(model, checkpoint dict) of a checkpoint path (default: the shipped one); cached."""
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    return _load(str(path.resolve()), str(device))


def rigs(checkpoint=None) -> dict[str, dict]:
    """The rigs ``lift(..., rig=NAME)`` accepts: those of the checkpoint (``{name: {"keypoints": N, "edges": [[i, j],
    ...], "category": ..., "trained_on": ...}}``, the categories it was trained on) followed by the named skeletons
    of common 2D formats (:mod:`lfm.skeletons`: ``coco17``, ``h36m17``, ...; entries also hold ``names`` and
    ``source``). A checkpoint rig of the same name comes first and wins."""
    return _known_rigs(load_model(checkpoint)[1])


def _known_rigs(ck: dict) -> dict[str, dict]:
    out = dict(ck.get("rigs", {}))
    for name, sk in skeletons.SKELETONS.items():
        out.setdefault(name, sk.as_rig())
    return out


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


def _as_mask(mask, B: int, N: int, single: bool) -> np.ndarray:
    if mask is None:
        return np.ones((B, N), bool)
    M = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if M.ndim == 1 and single:
        M = M[None]
    if M.shape != (B, N):
        raise LiftInputError(f"mask has shape {np.shape(mask)} but points2d has {N} keypoints"
                             f"{'' if single else f' in {B} samples'}; pass one entry per keypoint, shape "
                             f"{(N,) if single else (B, N)}.")
    if M.dtype == bool:
        return M.copy()  # the output's mask must not share memory with the caller's array
    if np.issubdtype(M.dtype, np.integer):
        other = np.setdiff1d(np.unique(M), [0, 1])
        if other.size:
            raise LiftInputError(f"mask holds the value(s) {other[:5].tolist()}; an integer mask must be 0 (hidden) "
                                 "or 1 (visible): pass mask = values > 0 (or a bool array).")
        return M.astype(bool)
    raise LiftInputError(f"mask has dtype {M.dtype}; pass bool (True = visible) or 0/1 integers. Confidences or "
                         "other numbers are not cast silently: threshold them yourself, e.g. mask = confidence > 0.5.")


def check_inputs(points2d, mask=None, *, y_down: bool = False) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Step 1 of :func:`lift`: check ``points2d`` and ``mask`` and make the model's input.

    Returns ``(p, m, single)``: ``p`` ``(B, N, 2)`` float32 with hidden keypoints set to 0 and y flipped when
    ``y_down``; ``m`` ``(B, N)`` bool; ``single`` when ``points2d`` had no batch axis. Raises
    :class:`LiftInputError` for a wrong shape or dtype, a mask that is not bool or 0/1, NaN/inf at a visible
    keypoint, or fewer than 3 visible keypoints in a sample.
    """
    single = np.ndim(points2d) == 2 if not isinstance(points2d, torch.Tensor) else points2d.dim() == 2
    P = _as_points(points2d)
    B, N, _ = P.shape
    M = _as_mask(mask, B, N, single)
    bad = M & ~np.isfinite(P).all(-1)
    if bad.any():
        b, j = np.argwhere(bad)[0]
        raise LiftInputError(f"points2d has NaN/inf at {int(bad.sum())} visible keypoint(s) (first: sample {b}, "
                             f"keypoint {j}); mark missing keypoints with mask=False instead.")
    few = M.sum(1) < 3
    if few.any():
        raise LiftInputError(f"sample(s) {np.flatnonzero(few)[:10].tolist()} have fewer than 3 visible keypoints; "
                             "a 3D shape needs at least 3 (drop them or unmask more keypoints).")
    P = np.where(M[..., None], P, 0.0).astype(np.float32)
    if y_down:
        P = P * np.array([1.0, -1.0], np.float32)
    return torch.from_numpy(P), torch.from_numpy(M), single


def choose_graph(p: torch.Tensor, m: torch.Tensor, edges=None, rig: str | None = None,
                 known_rigs: dict | None = None) -> tuple[torch.Tensor, str]:
    """Step 2 of :func:`lift`: the graph of the local attention branch, ``(adjacency (B, N, N) bool, label)``.

    ``edges`` (your skeleton), else ``rig`` (a name in ``known_rigs``, default :func:`rigs` of the shipped
    checkpoint), else the k = 3 nearest neighbours of each 2D input. The adjacency keeps only visible pairs and
    always holds the diagonal. Raises :class:`LiftInputError` for bad edges, an unknown rig or a rig whose
    keypoint count differs from ``p``'s.
    """
    B, N, _ = p.shape
    if edges is not None and rig is not None:
        raise LiftInputError("pass either edges or rig, not both.")
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
        known = rigs() if known_rigs is None else known_rigs
        if rig not in known:
            raise LiftInputError(unknown_rig_message(rig, known))
        if known[rig]["keypoints"] != N:
            raise LiftInputError(f"rig {rig!r} has {known[rig]['keypoints']} keypoints but points2d has {N}; "
                                 "give the keypoints in the rig's order, all of them (mask the missing).")
        A = edges_to_adjacency(torch.as_tensor(known[rig]["edges"], dtype=torch.int64).reshape(-1, 2), N, batch=B)
        graph = f"rig:{rig}"
    else:
        A = knn_adjacency(p, m, k=FALLBACK_K)
        graph = f"fallback:2d-knn(k={FALLBACK_K})"
    return (A & m[:, :, None] & m[:, None, :]) | torch.eye(N, dtype=torch.bool), graph


def unknown_rig_message(rig: str, known) -> str:
    """One line for an unknown rig name: the closest few known names and how to list them all."""
    import difflib

    close = difflib.get_close_matches(str(rig), list(known), n=4, cutoff=0.5)
    if not close:
        close = [k for k in known if str(rig).lower()[:3] in k.lower()][:4]
    near = f"closest: {', '.join(close)}; " if close else ""
    return (f"unknown rig {rig!r}; {near}`lfm rigs` lists all {len(known)} with their keypoint counts "
            "(lfm.lifting.rigs() in Python), or pass your own edges.")


def fit_camera(p: torch.Tensor, canonical: torch.Tensor, m: torch.Tensor, *, y_down: bool = False) -> dict:
    """Step 3 of :func:`lift`: the orthographic camera that puts ``canonical`` ``(B, N, 3)`` onto the 2D input
    ``p`` (as made by :func:`check_inputs`, y up). Returns numpy arrays ``camera``, ``camera_mirror``
    ``(B, N, 3)`` (hidden keypoints 0), ``rotation`` ``(B, 3, 3)`` (a proper rotation, det +1), ``scale``
    ``(B,)``, ``translation`` ``(B, 3)`` and ``axes`` ``(3,)`` with
    ``camera = (scale * canonical @ rotation + translation) * axes``: the camera is fitted in the model's frame
    (y up) and ``axes`` = [1, -1, 1] turns its y back to the input's direction when ``y_down`` (else ones); the
    flip is the last step, so that the rotation stays a rotation."""
    B = p.shape[0]
    fit = fit_orthographic_camera(p, canonical, m, tol=1e-6)
    flip = torch.tensor([1.0, -1.0, 1.0]) if y_down else torch.ones(3)
    return {"camera": torch.where(m[..., None], fit.camera3d * flip, 0.0).numpy(),
            "camera_mirror": torch.where(m[..., None], fit.camera3d_mirror * flip, 0.0).numpy(),
            "rotation": fit.R.numpy(), "scale": fit.s.numpy(), "translation": fit.t.reshape(B, 3).numpy(),
            "axes": flip.numpy().astype(np.float32)}


def lift(points2d, mask=None, edges=None, checkpoint=None, *, model: torch.nn.Module | None = None,
         rig: str | None = None, y_down: bool = False, device: str = "cpu", batch_size: int = 4096,
         progress: bool = False, refine: int | None = None) -> Lifted:
    """Lift ``points2d`` ``(N, 2)`` or ``(B, N, 2)`` (numpy or torch) to 3D; see the module docstring.

    Args:
        mask: ``(N,)`` or ``(B, N)``, bool or 0/1 integers, True = keypoint present (default: all). Hidden
            keypoints may hold NaN. Other values (e.g. float confidences) are an error: threshold them first.
        edges: ``(E, 2)`` int keypoint pairs (0-based) of a skeleton.
        checkpoint: path of a checkpoint written by ``lfm train`` (default: the shipped one).
        model: a loaded model (e.g. an :class:`lfm.model.LFM` being trained or scored) instead of ``checkpoint``;
            it runs in eval mode (its mode is restored afterwards) on its own device (``device`` is ignored), and
            ``rig`` names only the named skeletons (a model carries no rigs of its own).
        rig: a rig name (see :func:`rigs`: the checkpoint's rigs and the named skeletons ``coco17``, ``h36m17``,
            ``mediapipe_hand21``, ``openpose_hand21``, ``mediapipe_pose33``, ``coco_wholebody133``), instead of
            ``edges``; the keypoints in that rig's order.
        y_down: True for pixel coordinates whose y axis points down (most image tools); the model was trained
            with y up, so y is flipped on the way in, and ``axes`` = [1, -1, 1] flips ``camera`` back (the fitted
            ``rotation`` stays a proper rotation in the model's y-up frame).
        batch_size: samples per forward pass (memory bound; the result does not depend on it).
        progress: a progress bar (tqdm) over the batches.
        refine: refine the lifts of all rows together from their 2D with this many shape modes
            (:func:`lfm.selfsup.refine_2d`; 0 for a rigid object): for many views of one kind of body (a video,
            several cameras); on the benchmark's held-out sets 0.81 -> 0.63 x flat with 10 modes. None: off.
    Returns a :class:`Lifted` with a batch axis (``.squeeze()`` drops it for one input).

    The three steps are :func:`check_inputs`, :func:`choose_graph` and, after the model, :func:`fit_camera`.
    """
    p, m, single = check_inputs(points2d, mask, y_down=y_down)
    if edges is not None and rig is not None:
        raise LiftInputError("pass either edges or rig, not both.")
    if model is not None and checkpoint is not None:
        raise LiftInputError("pass either checkpoint or model, not both.")
    if model is None:
        model, ck = load_model(checkpoint, device)
    else:
        ck, device = {}, next(model.parameters()).device
    A, graph = choose_graph(p, m, edges, rig, _known_rigs(ck))
    ys, scales = [], []
    starts = range(0, p.shape[0], max(1, int(batch_size)))
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="lift", unit="batch", leave=False, mininterval=1.0)
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in starts:
                sl = slice(i, i + batch_size)
                y, norm = model(p[sl].to(device), m[sl].to(device), A[sl].to(device), return_norm=True)  # normalised
                ys.append(y.float().cpu())
                scales.append(norm.scale.float().cpu())
    finally:
        model.train(training)
    y, scale = torch.cat(ys), torch.cat(scales)
    canon = torch.where(m[..., None], y * scale[:, None, None], 0.0)  # back to the input's scale
    if refine is not None:  # the refined rows are camera-frame 3D: valid model-frame 3D, fitted again below
        from .selfsup import refine_2d

        if p.shape[0] < 2:
            raise LiftInputError("refine needs several poses of the body (a video, several cameras); one pose alone "
                                 "cannot be refined: leave refine out.")
        canon = torch.as_tensor(refine_2d(p.numpy(), m.numpy(), canon.numpy(), n_basis=refine).camera)
    canon = torch.where(m[..., None], canon - (canon * m[..., None]).sum(1, keepdim=True)
                        / m.sum(1)[:, None, None], 0.0)
    cam = fit_camera(p, canon, m, y_down=y_down)
    out = Lifted(canon.numpy(), cam["camera"], cam["camera_mirror"], cam["rotation"], cam["scale"],
                 cam["translation"], m.numpy(), graph, cam["axes"])
    return out.squeeze() if single else out


# ------------------------------------------------------------------------------------------------ pose files

def smooth_camera(camera: np.ndarray, mask: np.ndarray, frame: np.ndarray, group: np.ndarray,
                  sigma: float) -> np.ndarray:
    """A Gaussian filter along time of the camera-frame 3D ``(B, N, 3)``: each keypoint of each group (one track
    / instance of one video) is replaced by the weighted mean of its visible values at frames within 3 sigma,
    weights ``exp(-(df / sigma)^2 / 2)`` by the frame distance ``df``; hidden keypoints stay 0. It removes the
    frame-to-frame jitter of single-frame lifting and blurs fast motion (README gives its effect on a test
    sequence). ``sigma`` in frames; 0 returns ``camera`` unchanged."""
    if sigma <= 0:
        return camera
    out = camera.copy()
    reach = int(np.ceil(3 * sigma))
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        rows = rows[np.argsort(frame[rows], kind="stable")]
        f = frame[rows].astype(np.float64)
        X, M = camera[rows].astype(np.float64), mask[rows].astype(np.float64)  # (T, N, 3), (T, N)
        acc, wsum = np.zeros_like(X), np.zeros_like(M)
        for lag in range(-reach, reach + 1):  # neighbours by position in the track, weighted by frame distance
            src = np.arange(len(rows)) + lag
            ok = (src >= 0) & (src < len(rows))
            dst, src = np.flatnonzero(ok), src[ok]
            w = np.exp(-0.5 * ((f[src] - f[dst]) / sigma) ** 2) * (np.abs(f[src] - f[dst]) <= reach)
            acc[dst] += (w[:, None] * M[src])[..., None] * X[src]
            wsum[dst] += w[:, None] * M[src]
        sm = np.where(M[..., None] > 0, acc / np.maximum(wsum, 1e-12)[..., None], 0.0)
        out[rows] = sm.astype(camera.dtype)
    return out


def lift_file(path, *, format: str | None = None, rig: str | None = None, edges=None, checkpoint=None,
              y_down: bool | None = None, min_confidence: float | None = None, smooth: float = 0.0,
              batch_size: int = 4096, progress: bool = False, device: str = "cpu", refine: int | None = None):
    """Lift every pose of a pose file (:mod:`lfm.poses`: SLEAP, DeepLabCut, COCO, NWB, ``.npz``, ...).

    Returns ``(poses, lifted)``: the :class:`lfm.poses.Poses` read (one row per frame x instance, the file's
    order) and a :class:`Lifted` with one sample per row (no batch axis dropped). Rows with fewer than 3 visible
    keypoints are not lifted (their ``mask`` is all False, their outputs 0); an ``.npz`` keeps :func:`lift`'s
    rules (an error instead).

    Args:
        format: the file's format (default: from the extension, see :data:`lfm.poses.FORMATS`).
        rig / edges: the graph; default the file's skeleton, else the 2D fallback.
        y_down: default True for the tools' files (pixel coordinates), False for ``.npz``.
        min_confidence: keypoints with a lower confidence (DeepLabCut likelihood, SLEAP score, COCO results
            score) are hidden; default :data:`lfm.poses.DEFAULT_MIN_CONFIDENCE` (0.5).
        smooth: sigma in frames of :func:`smooth_camera` applied to ``camera`` and ``camera_mirror`` per track
            (0 = off).
        refine: shape modes of :func:`lift`'s ``refine`` over every lifted row of the file (None = off).
    """
    from .poses import DEFAULT_MIN_CONFIDENCE, read_poses

    poses = read_poses(path, format)
    if min_confidence is None:
        min_confidence = DEFAULT_MIN_CONFIDENCE
    if y_down is None:
        y_down = poses.format != "npz"
    if edges is not None and rig is not None:
        raise LiftInputError("pass either edges or rig, not both.")
    model_ck = load_model(checkpoint, device)[1]
    if rig is not None:
        known = _known_rigs(model_ck)
        if rig not in known:
            raise LiftInputError(unknown_rig_message(rig, known))
        want = known[rig].get("names")
        if want and poses.names and list(poses.names) != list(want):
            if len(want) != len(poses.names):
                raise LiftInputError(f"rig {rig!r} has {len(want)} keypoints but the file has {len(poses.names)} "
                                     f"({poses.names[:5]}...); drop --rig to use the file's own skeleton.")
            i = next(k for k, (a, b) in enumerate(zip(poses.names, want)) if a != b)
            raise LiftInputError(f"the file's keypoint names do not match rig {rig!r}: keypoint {i} is "
                                 f"{poses.names[i]!r}, the rig's is {want[i]!r}; give the keypoints in the rig's "
                                 "order (rename or reorder them), or drop --rig to use the file's own skeleton.")
    elif edges is None and poses.edges is not None and len(poses.edges):
        edges = poses.edges
    if poses.format == "npz":  # the arrays as given: lift checks them with its own messages
        mask = poses.mask
        if poses.confidence is not None:
            conf = np.asarray(poses.confidence, np.float64)
            mask = (np.ones(conf.shape, bool) if mask is None else np.asarray(mask, bool)) & (conf >= min_confidence)
        out = lift(poses.points2d, mask, edges, checkpoint, rig=rig, y_down=y_down, device=device,
                   batch_size=batch_size, progress=progress, refine=refine)
        if poses.single:
            out = Lifted(*(getattr(out, k)[None] for k in ("canonical", "camera", "camera_mirror", "rotation",
                                                           "scale", "translation", "mask")), out.graph, out.axes)
    else:
        M = poses.visible(min_confidence)
        ok = M.sum(1) >= 3
        if not ok.any():
            raise LiftInputError(f"no pose has 3 keypoints at confidence >= {min_confidence} (of "
                                 f"{len(M)}); lower --min-confidence or check the predictions.")
        part = lift(poses.points2d[ok], M[ok], edges, checkpoint, rig=rig, y_down=y_down, device=device,
                    batch_size=batch_size, progress=progress, refine=refine)
        B, N = M.shape
        full = {}
        for k, shape in (("canonical", (B, N, 3)), ("camera", (B, N, 3)), ("camera_mirror", (B, N, 3)),
                         ("rotation", (B, 3, 3)), ("scale", (B,)), ("translation", (B, 3)), ("mask", (B, N))):
            a = np.zeros(shape, getattr(part, k).dtype)
            a[ok] = getattr(part, k)
            full[k] = a
        out = Lifted(**full, graph=part.graph, axes=part.axes)
        if not ok.all():
            poses.notes.append(f"{int((~ok).sum())} of {B} poses have fewer than 3 keypoints at confidence >= "
                               f"{min_confidence}: not lifted (mask False)")
    if smooth > 0:
        group = np.array([f"{v}/{t or i}" for v, t, i in zip(poses.video, poses.track, poses.instance)])
        out.camera = smooth_camera(out.camera, out.mask, poses.frame, group, smooth)
        out.camera_mirror = smooth_camera(out.camera_mirror, out.mask, poses.frame, group, smooth)
    return poses, out
