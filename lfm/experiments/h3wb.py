"""H3WB end to end (paper Table 1 and Fig. 4): train LFM on the 133-keypoint whole body, score it per part.

The task is H3WB's 2D -> 3D: the complete 2D whole body (COCO-WholeBody, 133 keypoints: body 17 + feet 6, face 68,
two hands of 21) in, camera-frame 3D in mm out. :func:`run` does everything:

* **data.** With ``h3wb_dir`` (the user's copy; H3WB needs registration) it reads the npz that H3WB's authors
  recommend, ``h3wb_train.npz`` (or mmpose's ``h3wb_train_bbox.npz``), with
  :func:`lfm.data.registered.load_h3wb_npz`. It holds the four public subjects S1, S5, S6, S7 (S8, the official
  test subject, ships apart). The split is by subject and is the one of H3WB's own data-preparation class
  (``utils/prepare_data_h3wb.py``): train S1, S5, S6; test S7 (held out). Validation: the last 10 % of the frames
  of each (subject, action, camera) of the training subjects (never test data). With ``h3wb_dir=""`` it reads the
  open mirror's **format fixture** instead (``mmpose_format_samples/h3wb/h3wb_train_sub.npz``, one frame per
  subject, through :func:`lfm.data.fetch`, i.e. ``LFM_MIRROR``), trains ``fixture_steps`` steps and scores the one
  S7 frame: a check that the code runs, never a result.
* **training** is :func:`lfm.train.train` (the project's one training loop: AdamW, ReduceLROnPlateau, early
  stopping, a wall-clock budget, ``last.pt`` / ``best.pt`` in the run folder, resumed with the same settings) on
  ``splits={"h3wb": Split(...)}`` with :class:`lfm.config.TrainConfig` (``categories=("h3wb",)``, ``graph="skeleton"``,
  the ``coco_wholebody133`` skeleton of :mod:`lfm.skeletons`). The training 2D is therefore **synthesised** by
  lfm's own view synthesis, as for every other category: each step views the training subjects' camera-frame 3D
  through fresh random upright perspective cameras (:mod:`lfm.data.views`); H3WB's given 2D of the training
  subjects is not used. The target is that view's camera-frame 3D over its RMS radius, the loss the project's
  Procrustes-aligned MSE (det = +1); optional left-right mirroring of the 3D. The camera-frame 3D is taken as
  given (y down, as in the pixel 2D), so the synthetic 2D keep the image orientation of H3WB's. Validation (early
  stopping, the scheduler): lfm.train's seeded realistic views of the validation frames, PA error over the RMS
  radius. The best epoch (``best.pt``, :func:`lfm.checkpoint.load_model`) is scored. The fixture runs the same
  call with one epoch of ``fixture_steps`` steps.
* **scoring** (:data:`PROTOCOL`): H3WB's own protocol (:func:`lfm.metrics.h3wb_metrics`, as its
  ``test_leaderboard.py``) on a prediction made from H3WB's **real** 2D of the held-out subject alone
  (:func:`lift_mm`: :func:`lfm.lifting.lift` with the trained model): the model's shape is placed in the camera
  frame by the orthographic camera fit to the input 2D (:func:`lfm.lifting.fit_camera`, the rotation and the depth
  sign the model chose) and given the mean size (RMS radius, mm) of the *training* subjects' 3D, since a single 2D view carries no metric scale;
  translation is removed by the protocol's pelvis alignment. PA-MPJPE per part (:func:`part_pa_mpjpe`): a
  similarity Procrustes fit (det = +1) on the part's own keypoints.

:func:`table1` and :func:`fig4` put this bundle beside the paper's Table 1 (:data:`PAPER_TABLE1`,
:data:`PAPER_PA`); where no H3WB data was given, this bundle's column reads :data:`NOT_RUN`.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..config import TrainConfig
from ..data.registered import HOW_TO_OBTAIN, load_h3wb_npz
from ..data.schema import CategorySet
from ..metrics import H3WB_PARTS, h3wb_metrics, pa_mpjpe, rms_radius

__all__ = ["run", "load", "split_subjects", "subjects_of", "validation_frames", "size_prior",
           "lift_mm", "part_pa_mpjpe", "part_errors", "table1", "fig4", "result_json", "PAPER_TABLE1", "PAPER_PA",
           "PARTS", "PART_LABELS", "PA_PARTS", "PROTOCOL", "VALIDATION_RULE", "NOT_RUN", "FIXTURE", "DATA_FILES",
           "TRAIN_SUBJECTS", "TEST_SUBJECTS"]

FIXTURE = "mmpose_format_samples/h3wb/h3wb_train_sub.npz"  # the open mirror's format fixture (4 frames)
DATA_FILES = ("h3wb_train.npz", "h3wb_train_bbox.npz")  # H3WB's recommended npz; mmpose's copy with boxes
TRAIN_SUBJECTS = ("S1", "S5", "S6")  # H3WB utils/prepare_data_h3wb.py TRAIN_SUBJECTS
TEST_SUBJECTS = ("S7",)  # its TEST_SUBJECTS (S8, the official test set, is not in h3wb_train.npz)
NOT_RUN = "not run: H3WB data not present"

PARTS = ("whole_body", "body", "face", "face_aligned", "hand", "hand_aligned")  # h3wb_metrics keys, Table 1 order
PART_LABELS = {"whole_body": "Whole-body", "body": "Body", "face": "Face", "face_aligned": "Face (nose-aligned)",
               "hand": "Hand", "hand_aligned": "Hand (wrist-aligned)"}
PA_PARTS = ("whole_body", "body", "face", "hand")  # the PA row of Table 1 has one number per column group

# Paper Table 1 ("Quantitative performance on H3WB"), MPJPE in mm, H3WB hidden test set (S8), task 2D -> 3D;
# /work/shared/reference/paper.md section 1, in PARTS order. Tag [V] (verbatim) for every row.
PAPER_TABLE1 = {
    "SimpleBaseline": (125.4, 125.7, 115.9, 24.6, 140.7, 42.5),
    "CanonPose w/3D sv.": (117.7, 117.5, 112.0, 17.9, 126.9, 38.3),
    "Large SimpleBaseline": (112.3, 112.6, 110.6, 14.6, 114.8, 31.7),
    "Jointformer (extra data)": (81.5, 78.0, 60.4, 16.2, 117.6, 38.8),
    "Jointformer": (88.3, 84.9, 66.5, 17.8, 125.3, 43.7),
    "3D-LFM (paper)": (64.13, 60.83, 56.55, 10.44, 78.21, 28.22),
}
# The "Ours - PA" row: four numbers, one per column group; their assignment to the groups is paper.md's [I].
PAPER_PA = {"whole_body": 33.13, "body": 39.36, "face": 6.02, "hand": 13.56}
PAPER_LFM = "3D-LFM (paper)"
PAPER_LFM_PA = "3D-LFM - PA (paper)"
OURS = "lfm (this bundle)"
OURS_PA = "lfm - PA (this bundle)"

VALIDATION_RULE = "the last 10 % of the frames of each (subject, action, camera) of the training subjects"
PROTOCOL = {
    "task": "H3WB 2D -> 3D: complete 2D whole body (133 COCO-WholeBody keypoints) in, camera-frame 3D (mm) out",
    "data": "H3WB h3wb_train.npz (subjects S1, S5, S6, S7; the official test subject S8 ships apart)",
    "split": "by subject, as H3WB's utils/prepare_data_h3wb.py: train S1, S5, S6; test S7 (held out); validation "
             f"= {VALIDATION_RULE}",
    "training_2d": "synthesised, not H3WB's: lfm.train.train views the training subjects' camera-frame 3D (as "
                   "given, y down like the pixel 2D) through fresh random upright perspective cameras every step "
                   "(lfm's view synthesis, as for every other category: azimuth free, elevation +-30 deg, roll "
                   "+-10 deg, distance 2.5-4 RMS radii), "
                   "mirrored left-right with probability 'mirror'; target = that view's camera-frame 3D over its "
                   "RMS radius; loss = Procrustes-aligned MSE (det = +1); graph = the coco_wholebody133 skeleton",
    "validation": "lfm.train's: fixed seeded realistic synthetic views of the validation frames, PA error (O(3)) "
                  "over the RMS radius; ReduceLROnPlateau and early stopping on it; the best epoch is scored",
    "test_2d": "real: H3WB's given 2D (pixels) of every view of the held-out subject; the test never uses "
               "synthetic views",
    "prediction": "from the 2D alone: the model's 3D placed in the camera frame by the orthographic camera fit to "
                  "the input 2D (rotation, and the depth sign the model chose), scaled to the mean RMS radius of "
                  "the training subjects' 3D (mm); no test ground truth is used",
    "mpjpe": "H3WB test_leaderboard.py via lfm.metrics.h3wb_metrics: diff = pred - gt (mm); whole-body, body "
             "(0-22), face (23-90), hand (91-132) after subtracting the pelvis difference (mean of 11, 12); "
             "face_aligned subtracts the nose (0); hand_aligned subtracts each wrist (91, 112), mean of the two "
             "hands; mean over joints, then over test frames",
    "pa_mpjpe": "per part, a similarity Procrustes fit (rotation det = +1, translation, scale) of the prediction "
                "to the ground truth on that part's keypoints only: whole-body 0-132, body 0-22, face 23-90, hand "
                "= each hand (91-111, 112-132) fitted alone, mean of the two; mean over test frames",
    "mpjpe_gt_similarity": "diagnostic, not in the paper's table: the H3WB parts after one whole-body similarity "
                           "fit to the ground truth (the paper's training alignment, Sec. 3.6)",
    "paper": "paper Table 1 is scored on H3WB's hidden test subject S8 by the H3WB team; this bundle's numbers "
             "are on S7 held out of h3wb_train.npz: the same metric, not the same test frames",
}


# ------------------------------------------------------------------------------------------------------ data
def _data_file(h3wb_dir: str) -> Path:
    """The H3WB npz in ``h3wb_dir`` (the first of :data:`DATA_FILES` present), or an error saying how to get it."""
    from ..data.fetch import DataUnavailableError

    d = Path(h3wb_dir).expanduser()
    for name in DATA_FILES:
        if (d / name).is_file():
            return d / name
    raise DataUnavailableError(
        f"h3wb_dir = {h3wb_dir!r} holds none of {list(DATA_FILES)}. To obtain H3WB: {HOW_TO_OBTAIN['h3wb']} "
        "(the 'new format' npz, h3wb_train.npz); or leave h3wb_dir empty to run the code check on the mirror's "
        "format fixture.")


def load(h3wb_dir: str = "") -> tuple[CategorySet, dict]:
    """``(frames, source)``: the H3WB frames of ``h3wb_dir``'s npz, or (``h3wb_dir=""``) the mirror's format fixture
    (:data:`FIXTURE`, fetched with :func:`lfm.data.fetch`), with the ``coco_wholebody133`` skeleton
    (:mod:`lfm.skeletons`) as their edges. ``source["mode"]`` is ``"h3wb"`` or ``"fixture"``."""
    from .. import paths

    if h3wb_dir:
        path = _data_file(h3wb_dir)
        mode = "h3wb"
    else:
        from ..data import fetch

        path = fetch(FIXTURE, progress=False)
        mode = "fixture"
    cs = load_h3wb_npz(path)
    sk = _skeleton()  # the graph of training, validation and lift_mm: WHOLEBODY_EDGES plus the face joins
    cs = dataclasses.replace(cs, edges=np.asarray(sk.edges), edges_rule=f"lfm.skeletons {sk.name}")
    shown = paths.show(path) if mode == "h3wb" else f"{FIXTURE} (open mirror, via lfm.data.fetch)"
    return cs, {"mode": mode, "file": shown, "frames": cs.n_frames,
                "note": "H3WB" if mode == "h3wb" else "4-frame format fixture (one frame per subject; mmpose unit-"
                                                      "test data): a code check, not a result"}


def subjects_of(cs: CategorySet) -> np.ndarray:
    """The subject of every frame (``sequence`` is ``subject/action``)."""
    return np.array([str(s).split("/", 1)[0] for s in cs.sequence])


def split_subjects(cs: CategorySet, train_subjects=TRAIN_SUBJECTS, test_subjects=TEST_SUBJECTS):
    """``(train, test)`` frames by subject; the two lists must be disjoint and each must find frames."""
    train_subjects, test_subjects = tuple(train_subjects), tuple(test_subjects)
    both = sorted(set(train_subjects) & set(test_subjects))
    if both:
        raise ValueError(f"subjects {both} are both trained on and tested on; train_subjects and test_subjects "
                         "must be disjoint.")
    subj = subjects_of(cs)
    have = sorted(map(str, set(subj)))
    out = []
    for name, wanted in (("train_subjects", train_subjects), ("test_subjects", test_subjects)):
        sel = np.isin(subj, wanted)
        if not sel.any():
            raise ValueError(f"{name} = {list(wanted)} match no frame; the data holds subjects {have}.")
        out.append(cs.subset(np.flatnonzero(sel)))
    return out[0], out[1]


def validation_frames(cs: CategorySet, fraction: float = 0.1) -> np.ndarray:
    """Bool ``(F,)``: the last ``fraction`` (rounded down) of the frames of each (subject, action, camera)."""
    cams = cs.meta.get("camera", np.zeros(cs.n_frames, dtype=str))
    keys = np.char.add(np.char.add(cs.sequence.astype(str), "|"), np.asarray(cams).astype(str))
    val = np.zeros(cs.n_frames, bool)
    for k in np.unique(keys):
        idx = np.flatnonzero(keys == k)
        n = int(math.floor(fraction * len(idx)))
        if n:
            val[idx[-n:]] = True
    return val


def size_prior(cs: CategorySet) -> float:
    """Mean RMS radius (about the centroid) of the frames' 3D, in their units (mm): the metric size a 2D-only
    prediction is given."""
    return float(rms_radius(torch.as_tensor(cs.points3d, dtype=torch.float64)).mean())


# ------------------------------------------------------------------------------------------------------ metrics
def _parts_idx() -> dict[str, list]:
    body, face = list(H3WB_PARTS["body"]), list(H3WB_PARTS["face"])
    return {"whole_body": list(range(133)), "body": body, "face": face}


def part_pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """PA-MPJPE per sample ``(B,)`` for each of :data:`PA_PARTS`: a similarity fit (det = +1) on the part's own
    keypoints; ``hand`` fits each hand alone and averages the two (as H3WB's wrist-aligned hand score)."""
    if pred.shape[1:] != (133, 3) or gt.shape != pred.shape:
        raise ValueError(f"part_pa_mpjpe needs pred and gt of shape (B, 133, 3), got {tuple(pred.shape)} and "
                         f"{tuple(gt.shape)}.")
    out = {k: pa_mpjpe(pred[:, idx], gt[:, idx]) for k, idx in _parts_idx().items()}
    hands = [pa_mpjpe(pred[:, list(H3WB_PARTS[h])], gt[:, list(H3WB_PARTS[h])]) for h in ("left_hand", "right_hand")]
    out["hand"] = (hands[0] + hands[1]) / 2
    return out


def part_errors(camera_mm: np.ndarray, canonical: np.ndarray, gt_mm: np.ndarray) -> dict[str, dict[str, float]]:
    """Means over frames: ``mpjpe`` (H3WB protocol on the 2D-only camera-frame prediction ``camera_mm``),
    ``pa_mpjpe`` (:func:`part_pa_mpjpe`) and the diagnostic ``mpjpe_gt_similarity`` (H3WB parts after one
    whole-body similarity fit of ``canonical`` to the ground truth). All ``(B, 133, 3)``; mm."""
    from ..geometry import similarity_align

    cam, can = torch.as_tensor(camera_mm, dtype=torch.float64), torch.as_tensor(canonical, dtype=torch.float64)
    gt = torch.as_tensor(gt_mm, dtype=torch.float64)
    h = h3wb_metrics(cam, gt)
    pa = part_pa_mpjpe(can, gt)
    sim = similarity_align(can, gt, None, scale=True, allow_reflection=False, detach=True).aligned
    hs = h3wb_metrics(sim, gt)
    return {"mpjpe": {k: float(h[k].mean()) for k in PARTS},
            "pa_mpjpe": {k: float(pa[k].mean()) for k in PA_PARTS},
            "mpjpe_gt_similarity": {k: float(hs[k].mean()) for k in PARTS}}


# ------------------------------------------------------------------------------------------------------ model
def _adjacency() -> torch.Tensor:
    """The ``coco_wholebody133`` skeleton as a ``(133, 133)`` bool adjacency (the frames' graph, :func:`load`)."""
    from ..data.augment import edges_to_matrix

    return torch.from_numpy(edges_to_matrix(np.asarray(_skeleton().edges), 133))


def _skeleton():
    from ..skeletons import get

    return get("coco_wholebody133")


def lift_mm(model, points2d: np.ndarray, size_mm: float, *, device="cpu", batch_size: int = 256):
    """``(camera_mm, canonical)`` for 2D ``(B, 133, 2)``: :func:`lfm.lifting.lift` with ``model`` and the
    ``coco_wholebody133`` skeleton, its camera-frame 3D (the orthographic camera fit to the input 2D) centred and
    scaled to RMS radius ``size_mm``, and its canonical 3D (at the input's scale). Every keypoint is visible
    (H3WB's complete 2D). ``device``: where ``model`` is moved first."""
    from ..lifting import lift

    out = lift(points2d, edges=np.asarray(_skeleton().edges), model=model.to(device), batch_size=batch_size)
    cam = torch.as_tensor(out.camera, dtype=torch.float64)
    cam = cam - cam.mean(1, keepdim=True)
    return (cam / rms_radius(cam).clamp_min(1e-12)[:, None, None] * size_mm).numpy(), out.canonical


# ------------------------------------------------------------------------------------------------------ run
def run(h3wb_dir: str = "", *, model_cfg=None, train_subjects=TRAIN_SUBJECTS, test_subjects=TEST_SUBJECTS,
        fixture_steps: int = 20, fixture_batch: int = 8, run_dir=None, log=print, **train_kw) -> dict:
    """Train on ``train_subjects`` and score ``test_subjects`` (see the module docstring); returns a dict with
    ``mode`` (``"h3wb"`` or ``"fixture"``), ``source``, ``split``, ``training`` (:func:`lfm.train.train`'s summary),
    ``evaluation`` (per part means, mm) and ``protocol``.

    ``train_kw`` are :class:`lfm.config.TrainConfig` fields (``batch_size``, ``lr``, ``epoch_steps``,
    ``max_epochs``, ``max_minutes``, ``mirror``, ``seed``, ``threads``, ``device``, ...; TrainConfig's defaults);
    ``categories`` (``("h3wb",)``) and ``graph`` (``"skeleton"``, the graph :func:`lift_mm` gives) are fixed.
    Training is :func:`lfm.train.train` into ``run_dir`` (resumed when it holds a ``last.pt`` of the same settings
    and data, else :class:`lfm.checkpoint.CheckpointError`); the best epoch (``best.pt``) is scored. On the fixture (``h3wb_dir=""``) the same call runs one
    epoch of ``fixture_steps`` steps of ``min(batch_size, fixture_batch)`` samples from a fresh start into
    ``run_dir/fixture``. Without ``run_dir`` the run folder is a temporary one, deleted after scoring.
    """
    from .. import paths
    from ..checkpoint import load_model
    from ..config import ModelConfig
    from ..data.benchmark import Split
    from ..env import resolve_device
    from ..results import provenance
    from ..train import run_folder, train

    fixed = sorted(set(train_kw) & {"categories", "present", "graph"})
    if fixed:
        raise ValueError(f"{fixed} are fixed for H3WB: categories ('h3wb',), graph 'skeleton' (the "
                         "coco_wholebody133 skeleton, the graph lift_mm gives the model).")
    if min(fixture_steps, fixture_batch) < 1:
        raise ValueError("fixture_steps and fixture_batch must be >= 1.")
    t_start = time.perf_counter()
    model_cfg = model_cfg or ModelConfig()
    cfg = TrainConfig(categories=("h3wb",), graph="skeleton", **train_kw)
    cs, source = load(h3wb_dir)
    fixture = source["mode"] == "fixture"
    if fixture:
        cfg = dataclasses.replace(cfg, batch_size=min(cfg.batch_size, fixture_batch), epoch_steps=fixture_steps,
                                  max_epochs=1, max_minutes=0.0)
    train_all, test = split_subjects(cs, train_subjects, test_subjects)
    vmask = validation_frames(train_all)
    tr = train_all.subset(np.flatnonzero(~vmask))
    val = train_all.subset(np.flatnonzero(vmask)) if vmask.any() else tr
    size_mm = size_prior(tr)
    split = {"train_subjects": sorted(map(str, set(subjects_of(tr)))),
             "test_subjects": sorted(map(str, set(subjects_of(test)))),
             "train_frames": tr.n_frames, "validation_frames": int(vmask.sum()), "test_frames": test.n_frames,
             "validation": VALIDATION_RULE if vmask.any() else
             "none left by the rule (one frame per sequence): the training frames themselves, a code check only",
             "size_prior_mm": size_mm}
    log(f"H3WB {source['mode']}: {source['file']}; train {split['train_subjects']} ({tr.n_frames} frames, "
        f"{split['validation_frames']} validation), test {split['test_subjects']} ({test.n_frames} frame(s))")
    rule = f"{PROTOCOL['split']} (lfm.experiments.h3wb)"
    with tempfile.TemporaryDirectory(prefix="lfm_h3wb_") as tmp:
        out = (Path(tmp) if run_dir is None else Path(run_dir) / "fixture" if fixture else
               run_folder(run_dir, "h3wb", model_cfg, cfg))  # other settings: another folder, not an error
        summary = train(model_cfg, cfg, out, splits={"h3wb": Split("h3wb", tr, val, test, rule)},
                        resume=not fixture, progress=False, log=log)
        dev = resolve_device(cfg.device)
        model, _ = load_model(out / "best.pt", device=dev)
    cam_mm, can = lift_mm(model, test.points2d, size_mm, device=dev)
    evaluation = part_errors(cam_mm, can, test.points3d)
    training = {k: v for k, v in summary.items() if k != "provenance"}
    training |= {"scored": f"best.pt (epoch {summary['best_epoch']} of {summary['epochs']})",
                 "run_dir": None if run_dir is None else paths.show(out)}
    return {"mode": source["mode"], "source": source, "split": split, "training": training,
            "evaluation": evaluation, "protocol": PROTOCOL, "wall_s": time.perf_counter() - t_start,
            "provenance": provenance(dev.type)}


# ------------------------------------------------------------------------------------------------------ outputs
def _ours(result: dict | None) -> dict | None:
    """This bundle's per part numbers, only for a run on real H3WB data (a fixture run is a code check)."""
    return result["evaluation"] if result is not None and result.get("mode") == "h3wb" else None


def table1(result: dict | None = None):
    """Paper Table 1 as a DataFrame (rows = parts in :data:`PARTS` order, columns = methods), with this bundle's
    MPJPE and PA-MPJPE columns: numbers for a run on H3WB, :data:`NOT_RUN` otherwise (a fixture run never
    fills them). Empty cells (the paper has no PA number for the aligned columns) are "-"."""
    import pandas as pd

    ours = _ours(result)
    cols = {m: list(v) for m, v in PAPER_TABLE1.items()}
    cols[PAPER_LFM_PA] = [PAPER_PA.get(p, "-") for p in PARTS]
    if ours is None:
        cols[OURS] = [NOT_RUN] * len(PARTS)
        cols[OURS_PA] = [NOT_RUN if p in PA_PARTS else "-" for p in PARTS]
    else:
        cols[OURS] = [round(ours["mpjpe"][p], 2) for p in PARTS]
        cols[OURS_PA] = [round(ours["pa_mpjpe"][p], 2) if p in PA_PARTS else "-" for p in PARTS]
    df = pd.DataFrame(cols, index=[PART_LABELS[p] for p in PARTS])
    df.index.name = "MPJPE (mm)"
    return df


def code_check_table(result: dict):
    """The fixture run's numbers, labelled as what they are (a code check on 4 frames, not a result)."""
    import pandas as pd

    ev = result["evaluation"]
    df = pd.DataFrame({"MPJPE (mm)": [round(ev["mpjpe"][p], 1) for p in PARTS],
                       "PA-MPJPE (mm)": [round(ev["pa_mpjpe"][p], 1) if p in PA_PARTS else "-" for p in PARTS]},
                      index=[PART_LABELS[p] for p in PARTS])
    df.index.name = "code check, not a result"
    return df


_BASELINE_GREYS = ("#CFCFCF", "#B0B0B0", "#8F8F8F", "#6E6E6E", "#4D4D4D")


def fig4(result: dict | None = None):
    """Fig. 4-style grouped bars: per part (x), the paper's baselines (greys), 3D-LFM and 3D-LFM - PA as the paper
    reports them (blue), and this bundle's MPJPE and PA-MPJPE (orange) where it was run on H3WB; MPJPE in mm."""
    import matplotlib.pyplot as plt

    from ..plots import PALETTE, style

    style()
    ours = _ours(result)
    series = [(m, list(PAPER_TABLE1[m]), _BASELINE_GREYS[i], None) for i, m in enumerate(list(PAPER_TABLE1)[:-1])]
    series.append((PAPER_LFM, list(PAPER_TABLE1[PAPER_LFM]), PALETTE[0], None))
    series.append((PAPER_LFM_PA, [PAPER_PA.get(p, np.nan) for p in PARTS], PALETTE[4], "//"))
    if ours is not None:
        series.append((OURS, [ours["mpjpe"][p] for p in PARTS], PALETTE[5], None))
        series.append((OURS_PA, [ours["pa_mpjpe"].get(p, np.nan) for p in PARTS], PALETTE[1], "//"))
    fig, ax = plt.subplots(figsize=(12.5, 4.8))
    x = np.arange(len(PARTS))
    w = 0.86 / len(series)
    for k, (label, vals, colour, hatch) in enumerate(series):
        pos = x + w * (k - (len(series) - 1) / 2)
        vals = np.asarray(vals, float)
        ax.bar(pos, vals, width=w, color=colour, label=label, hatch=hatch, edgecolor="white" if hatch else None,
               linewidth=0)
        if not label.startswith(("3D-LFM", "lfm")):
            continue
        for xp, v in zip(pos, vals):  # the numbers of the LFM bars, written above them
            if np.isfinite(v):
                ax.text(xp, v + 1.5, f"{v:.1f}", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(x, [PART_LABELS[p].replace(" (", "\n(") for p in PARTS])
    ax.set_ylabel("MPJPE (mm), lower is better")
    top = max(np.nanmax(np.asarray(v, float)) for _, v, _, _ in series)
    ax.set_ylim(0, top * 1.12)
    ax.set_title("H3WB 2D \u2192 3D, per part (paper Table 1 / Fig. 4)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="method")
    pa_note = "\nPA = PA-MPJPE per part (the paper gives none for the aligned columns)."
    if ours is None:
        note = (f"This bundle: {NOT_RUN} (needs H3WB's registration; the code was checked on the open 4-frame "
                "format fixture). Bars: the paper's Table 1.")
    else:
        sp = result["split"]
        note = (f"This bundle: trained on {', '.join(sp['train_subjects'])}, scored on held-out "
                f"{', '.join(sp['test_subjects'])} ({sp['test_frames']} frame(s)); the paper on H3WB's hidden test "
                "subject S8.")
    ax.text(0.0, -0.22, note + pa_note, transform=ax.transAxes, fontsize=9, va="top", color="0.25")
    fig.tight_layout()
    return fig


def result_json(result: dict) -> dict:
    """The body of ``results/h3wb.json``: the protocol, the paper's numbers, and either this bundle's numbers
    (a run on H3WB) or ``status = NOT_RUN`` with the fixture run under ``code_check`` (labelled as such)."""
    paper = {"table1_mpjpe_mm": {m: dict(zip(PARTS, v)) for m, v in PAPER_TABLE1.items()},
             "table1_pa_mpjpe_mm": PAPER_PA, "source": "paper Table 1 (paper.md section 1); PA row assignment [I]"}
    body = {"protocol": PROTOCOL, "paper": paper,
            "two_d": {"training": "synthesised: lfm's view synthesis of the training subjects' camera-frame 3D "
                                  "(protocol.training_2d)",
                      "test": "real: H3WB's 2D of the held-out subject (protocol.test_2d)"},
            "split": result["split"], "source": result["source"], "training": result["training"],
            "wall_s": result["wall_s"], "provenance": result["provenance"]}
    if result["mode"] == "h3wb":
        body |= {"status": "run on H3WB", "evaluation": result["evaluation"]}
    else:
        body |= {"status": NOT_RUN, "code_check": {
            "what": "the same code path (lfm.train.train, one epoch of fixture_steps steps) on the open mirror's "
                    "4-frame H3WB format fixture (train S1, S5, S6: one frame each, also validated on; test S7: "
                    "one frame): checks that loading, training, lifting and scoring run; NOT a result and not "
                    "comparable with the paper", "evaluation": result["evaluation"]}}
    return body
