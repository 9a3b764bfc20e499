"""Fit the model to your own category: ``lfm finetune DATA -o RUN`` / :func:`finetune`.

DATA is 3D keypoints of a body or object the model may not know (:func:`read_motion`):

* ``.npz`` with ``points3d`` ``(F, N, 3)`` and optionally ``edges`` ``(E, 2)``, ``sequence`` ``(F,)`` (one id per
  frame: trajectory / clip / individual) and ``visible`` ``(F, N)``;
* ``.c3d`` (motion-capture markers, read by ezc3d; z up by the C3D habit, turned to y up; missing markers hidden);
* ``.bvh`` (joint positions by forward kinematics, :func:`lfm.data.bvh.bvh_positions`; y up);
* ``.amc`` with its ``.asf`` skeleton beside it (:func:`lfm.data.asfamc.asf_amc_positions`; y up);
* a folder of such files (one sequence per file).

The graph: the file's edges, else the kinematic tree (BVH, ASF/AMC), else the motion MST of the schema
(:func:`lfm.data.schema.skeleton_from_motion`).

What it does, in order:

1. splits DATA by trajectory (:func:`split_motion`): with >= 5 sequences the last ``test_frac`` of them (sorted by
   id) are held out, else the last ``test_frac`` of every sequence's frames (a time block); validation is the last
   10 % of each training sequence;
2. scores the starting checkpoint (``before``) on the held-out part (realistic cameras, fixed seed) and on the
   benchmark's in-distribution sets (at most ``eval_frames`` test frames of each, evenly spaced);
3. trains from the checkpoint's weights with :func:`lfm.train.train` (its checkpoints: a rerun resumes; the
   budget ``max_minutes`` / ``max_epochs``; a progress bar): your set plus ``mix`` benchmark training sets, each
   drawn equally often (``balance='category'``: your set is 1 / (1 + len(mix)) of the batches), the checkpoint's
   own augmentation, learning rate ``lr``;
4. exports ``RUN/model.pt`` (usable by ``lfm lift --checkpoint RUN/model.pt``; your rig is among its rigs, so
   ``--rig <name>`` gives your skeleton) and writes ``RUN/report.json`` with ``before`` and ``after``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from .data.schema import CategorySet, skeleton_from_motion

__all__ = ["read_motion", "split_motion", "score_split", "benchmark_mean", "finetune", "DEFAULT_MIX", "MotionError",
           "write_benchmark_set", "present_reference", "train_config_from"]

# benchmark training sets mixed in by default: a human, a quadruped, a hand, an animal with a tail and a rigid
# object, so that each kind of body the model knows keeps being seen
DEFAULT_MIX = ("human41", "dog", "hand_icvl", "mouse_sleap", "chair")
MOTION_SUFFIXES = (".npz", ".c3d", ".bvh", ".amc")


class MotionError(ValueError):
    """3D data that cannot be fine-tuned on (the message names the file and the fix)."""


def _name(path: Path) -> str:
    return "yours_" + re.sub(r"[^A-Za-z0-9]+", "_", path.stem).strip("_").lower()


def read_motion(path, *, up: str | None = None, name: str | None = None) -> CategorySet:
    """3D keypoints of one file or a folder of files (see the module docstring) as a :class:`CategorySet`
    (category and rig ``name``, default ``yours_<file stem>``). ``up``: the file's up axis, ``"y"`` or ``"z"``
    (default: z for C3D, y otherwise); z-up data are turned to y up (the training cameras are upright)."""
    path = Path(path)
    if not path.exists():
        raise MotionError(f"{path} does not exist; give a 3D file ({', '.join(MOTION_SUFFIXES)}) or a folder of them.")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in MOTION_SUFFIXES)
        if not files:
            raise MotionError(f"{path} holds no 3D files ({', '.join(MOTION_SUFFIXES)}).")
        parts = [read_motion(f, up=up, name=name or _name(path)) for f in files]
        if len({p.n_keypoints for p in parts}) > 1:
            raise MotionError(f"{path}: its files have different keypoint counts "
                              f"{ {f.name: p.n_keypoints for f, p in zip(files, parts)} }; keep one body per folder.")
        for f, p in zip(files, parts):
            p.sequence = np.array([f"{f.stem}/{s}" for s in p.sequence])
        cs = CategorySet.concat(parts)
        cs.edges = parts[0].edges
        return cs
    suffix = path.suffix.lower()
    if suffix not in MOTION_SUFFIXES:
        raise MotionError(f"{path}: unknown 3D file extension {suffix or '(none)'!r}; give .npz (points3d (F, N, 3), "
                          "optional edges, sequence), .c3d, .bvh or .amc (with its .asf).")
    up = up or ("z" if suffix == ".c3d" else "y")
    if up not in ("y", "z"):
        raise MotionError(f"up={up!r}: 'y' or 'z'.")
    reader = {".npz": _read_npz, ".c3d": _read_c3d, ".bvh": _read_bvh, ".amc": _read_amc}[suffix]
    P, V, edges, seq, units, note = reader(path)
    if P.ndim != 3 or P.shape[-1] != 3 or P.shape[0] == 0 or P.shape[1] < 3:
        raise MotionError(f"{path}: points3d has shape {P.shape}; expected (F, N, 3) with F >= 1 frames and N >= 3 "
                          "keypoints.")
    if up == "z":
        from .data.forward_kinematics import Z_UP_TO_Y_UP

        P = P @ Z_UP_TO_Y_UP
    V = np.isfinite(P).all(-1) if V is None else (np.asarray(V, bool) & np.isfinite(P).all(-1))
    if V.sum(1).max() < 3:
        raise MotionError(f"{path}: no frame has 3 keypoints with finite coordinates.")
    if edges is None:
        edges, rule = skeleton_from_motion(P, V), "motion MST (lfm.data.schema.skeleton_from_motion)"
    else:
        edges, rule = np.asarray(edges, np.int64).reshape(-1, 2), note or "the file's skeleton"
        if edges.size and (edges.min() < 0 or edges.max() >= P.shape[1]):
            raise MotionError(f"{path}: edges join keypoint {int(edges.max())}, but there are {P.shape[1]} "
                              "keypoints; correct the edges (0-based pairs).")
    nm = name or _name(path)
    return CategorySet(nm, nm, P.astype(np.float32), V, edges, np.asarray(seq).astype(str), units,
                       source=str(path), licence="yours", synthetic=False, edges_rule=rule)


def _read_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if "points3d" not in z.files:
                raise MotionError(f"{path} has no array 'points3d' (found {sorted(z.files)}); save it with "
                                  "np.savez(path, points3d=(F, N, 3) array, edges=..., sequence=...).")
            a = {k: z[k] for k in ("points3d", "edges", "sequence", "visible") if k in z.files}
    except MotionError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file
        raise MotionError(f"{path} is not a readable .npz ({type(e).__name__}); save it with np.savez(path, "
                          "points3d=..., edges=..., sequence=...).") from None
    P = np.asarray(a["points3d"], np.float64)
    F = P.shape[0] if P.ndim == 3 else 0
    seq = a.get("sequence", np.zeros(F, int))
    if np.shape(seq) != (F,):
        raise MotionError(f"{path}: sequence has shape {np.shape(seq)}; give one id per frame ({F},).")
    return P, a.get("visible"), a.get("edges"), seq, "file units", None


def _read_c3d(path: Path):
    import ezc3d

    try:
        c = ezc3d.c3d(str(path))
    except Exception as e:  # noqa: BLE001 - ezc3d raises RuntimeError / IOError for a foreign file
        raise MotionError(f"{path} is not a readable C3D file ({type(e).__name__}: {' '.join(str(e).split())[:100]})"
                          "; export it again from the capture software.") from None
    pts = np.asarray(c["data"]["points"], np.float64)  # (4, N, F)
    P = np.transpose(pts[:3], (2, 1, 0))  # (F, N, 3)
    res = c["data"].get("meta_points", {}).get("residuals")
    V = np.isfinite(P).all(-1)
    if res is not None and np.size(res):
        V &= np.asarray(res)[0].T >= 0  # C3D: a negative residual marks a missing marker
    units = str((list(c["parameters"]["POINT"].get("UNITS", {}).get("value", [])) or ["mm"])[0])
    return P, V, None, np.zeros(P.shape[0], int), units, None


def _read_bvh(path: Path):
    from .data.bvh import bvh_positions, parse_bvh
    from .data.forward_kinematics import tree_edges

    try:
        bvh = parse_bvh(path.read_text())
        P = bvh_positions(bvh)
    except (ValueError, IndexError, KeyError) as e:
        raise MotionError(f"{path} is not a readable BVH file ({type(e).__name__}: {e}).") from None
    return P, None, tree_edges(bvh["parents"]), np.zeros(len(P), int), "file units", "BVH joint tree"


def _read_amc(path: Path):
    from .data.asfamc import asf_amc_positions, parse_amc, parse_asf
    from .data.forward_kinematics import tree_edges

    asfs = sorted(path.parent.glob("*.asf"))
    if len(asfs) != 1:
        raise MotionError(f"{path}: an AMC motion needs its ASF skeleton: put exactly one .asf beside it (found "
                          f"{len(asfs)}).")
    try:
        asf = parse_asf(asfs[0].read_text())
        motion, numbers = parse_amc(path.read_text(), asf)
        P = asf_amc_positions(asf, motion, len(numbers))
    except (ValueError, IndexError, KeyError) as e:
        raise MotionError(f"{path} with {asfs[0].name} could not be read ({type(e).__name__}: {e}).") from None
    return P, None, tree_edges(asf["parents"]), np.zeros(len(P), int), "file units", "ASF bone tree"


def check_sets(name: str, mix, error=None) -> tuple[str, ...]:
    """The mixed benchmark sets (``'all'`` expanded) after checking that the user's set ``name`` is not a benchmark
    set's and that every mixed set is an in-distribution one (``error``: the exception class, MotionError by
    default); shared by :func:`finetune` and :func:`lfm.selfsup.finetune_2d`."""
    from .data import benchmark

    error = error or MotionError
    if name in benchmark.CATEGORIES + benchmark.HELD_OUT:
        raise error(f"name={name!r} is a benchmark set's name; choose another name for your data.")
    mix = tuple(benchmark.resolve(mix))
    wrong = [c for c in mix if c not in benchmark.CATEGORIES]
    if wrong:
        raise error(f"mix {wrong}: not in-distribution sets of the benchmark; choose from "
                    f"{list(benchmark.CATEGORIES)} (or 'all').")
    return mix


def split_motion(cs: CategorySet, test_frac: float = 0.2, val_frac: float = 0.1):
    """A :class:`lfm.data.benchmark.Split` of your data by trajectory: with >= 5 sequences the last ``test_frac``
    of them (sorted by id) test, else the last ``test_frac`` of each sequence's frames; validation the last
    ``val_frac`` of each training sequence's frames. No test frame is ever trained on."""
    from .data.benchmark import Split

    seqs = np.unique(cs.sequence)
    idx = np.arange(cs.n_frames)
    if len(seqs) >= 5:
        n_test = max(1, int(round(test_frac * len(seqs))))
        test = idx[np.isin(cs.sequence, seqs[len(seqs) - n_test:])]
        rule = f"the last {n_test} of {len(seqs)} sequences (sorted by id) test"
    else:
        test = np.concatenate([idx[cs.sequence == s][-max(1, int(round(test_frac * (cs.sequence == s).sum()))):]
                               for s in seqs])
        rule = f"the last {test_frac:.0%} of the frames of each of {len(seqs)} sequence(s) test"
    train_all = np.setdiff1d(idx, test)
    val = np.concatenate([train_all[cs.sequence[train_all] == s][-max(1, int(round(
        val_frac * (cs.sequence[train_all] == s).sum()))):] for s in np.unique(cs.sequence[train_all])])
    train = np.setdiff1d(train_all, val)
    if len(train) < 2 or len(test) < 1:
        raise MotionError(f"{cs.source}: {cs.n_frames} frames are too few to hold some out for testing; give at "
                          "least 10 frames.")
    return Split(cs.category, cs.subset(train), cs.subset(val), cs.subset(np.sort(test)), rule + "; validation "
                 f"the last {val_frac:.0%} of each training sequence")


def _views(cs: CategorySet, name: str, frames: int):
    from .data import benchmark
    from .data.views import synthesize_views

    idx = np.unique(np.linspace(0, cs.n_frames - 1, min(frames, cs.n_frames)).round().astype(int))
    sub = cs.subset(idx)
    return sub, synthesize_views(sub.points3d, sub.visible, seed=benchmark.protocol_seed(name, "realistic"),
                                 **benchmark.PROTOCOLS["realistic"])


def score_split(model, ck: dict, split, *, frames: int = 400, device: str = "cpu") -> dict:
    """Errors on the test part of ``split`` (realistic cameras, seeded by the set's name; at most ``frames``
    frames, evenly spaced): ``model_det``, ``model_refl``, ``flat_*``, ``ratio_det``, ``ratio_refl`` (x flat)."""
    from .evaluate import evaluate_category

    sub, v = _views(split.test, split.category, frames)
    r = evaluate_category(model, sub, v.points2d, v.points3d, v.visible, graph="trained", device=device,
                          attention=ck["model_config"].get("attention", "hybrid"), trained=ck["train_config"]["graph"],
                          graph_set=split.train if split.train is not None else sub)
    r.pop("_pred")
    return r


def benchmark_mean(model, ck: dict, splits: dict, *, frames: int = 100, device: str = "cpu") -> dict:
    """The mean over the benchmark's in-distribution sets of :func:`score_split` (``frames`` test frames each)."""
    per = {c: score_split(model, ck, sp, frames=frames, device=device) for c, sp in splits.items()}
    keys = ("model_det", "model_refl", "ratio_det", "ratio_refl")
    return {"mean": {k: float(np.mean([p[k] for p in per.values()])) for k in keys}, "per_set": per,
            "frames_per_set": frames}


def finetune(data, out_dir, *, checkpoint=None, mix=DEFAULT_MIX, max_minutes: float = 10.0, max_epochs: int = 1000,
             epoch_steps: int = 100, batch_size: int = 64, lr: float = 2e-4, eval_frames: int = 200,
             bench_frames: int = 60, train_stride: int = 1, threads: int = 0, seed: int = 0, up: str | None = None,
             name: str | None = None, progress: bool = True, resume: bool = True, log=print) -> dict:
    """Fine-tune a checkpoint (default: the shipped one) on ``data`` (see the module docstring); returns the
    report, also written to ``out_dir/report.json``, and exports ``out_dir/model.pt``."""
    from . import checkpoint as ckpt
    from .config import ModelConfig
    from .data import benchmark
    from .lifting import DEFAULT_CHECKPOINT, load_model
    from .results import provenance, write_json
    from .train import train

    out_dir = Path(out_dir)
    src = Path(checkpoint) if checkpoint else DEFAULT_CHECKPOINT
    model0, ck0 = load_model(src)
    cs = read_motion(data, up=up, name=name)
    mix = check_sets(cs.category, mix)
    split = split_motion(cs)
    log(f"finetune: {cs.category}: {cs.n_frames} frames x {cs.n_keypoints} keypoints; split: {split.rule} "
        f"({split.counts()}); mixing {len(mix)} benchmark sets, yours is 1/{len(mix) + 1} of the batches")
    mixed = {c: benchmark.split_for_training(c, train_stride=train_stride) for c in mix}
    bench = {c: benchmark.split_category(c) for c in benchmark.CATEGORIES}
    before = {"yours": score_split(model0, ck0, split, frames=eval_frames),
              "benchmark": benchmark_mean(model0, ck0, bench, frames=bench_frames)}
    log(f"finetune: before: yours {before['yours']['ratio_refl']:.3f} x flat, benchmark in-distribution mean "
        f"{before['benchmark']['mean']['ratio_refl']:.3f} x flat (reflection allowed)")
    tcfg = train_config_from(ck0, src, categories=(cs.category, *mix), lr=lr, epoch_steps=epoch_steps,
                             max_epochs=max_epochs, max_minutes=max_minutes, val_frames=min(100, eval_frames),
                             batch_size=batch_size, threads=threads, seed=seed)
    mcfg = ModelConfig(**ck0["model_config"])
    summary = train(mcfg, tcfg, out_dir / "train", resume=resume, progress=progress, log=log,
                    splits={cs.category: split} | mixed)
    model1, ck1 = ckpt.load_model(out_dir / "train" / "best.pt")
    after = {"yours": score_split(model1, ck1, split, frames=eval_frames),
             "benchmark": benchmark_mean(model1, ck1, bench, frames=bench_frames)}
    rigs = dict(ck0.get("rigs", {}))
    rigs[cs.rig] = {"keypoints": cs.n_keypoints, "edges": cs.edges.tolist(), "category": cs.category,
                    "edges_rule": cs.edges_rule, "trained_on": True}
    report = {
        "data": str(data), "name": cs.category, "frames": cs.n_frames, "keypoints": cs.n_keypoints,
        "split": {"rule": split.rule, **split.counts()}, "from": str(src), "mix": list(mix),
        "your_share_of_batches": 1 / (len(mix) + 1),
        "protocol": "realistic cameras (upright, perspective), fixed seed; PA-MPJPE / RMS radius, x flat = ratio to "
                    "the flat guess (depth 0); det = rotation only, refl = reflection allowed; benchmark: "
                    f"{bench_frames} test frames of each in-distribution set, evenly spaced",
        "before": before, "after": after,
        "training": {k: summary[k] for k in ("stopped", "epochs", "steps", "elapsed_s", "best_epoch")},
        "provenance": provenance(),
    }
    ckpt.export(out_dir / "train" / "best.pt", out_dir / "model.pt", rigs=rigs,
                licences=dict(ck0.get("data_licences", {})) | {cs.category: "yours"},
                evaluation={"finetune": {k: report[k] for k in ("before", "after", "split", "mix")}},
                recipe=f"finetune:{cs.category}")
    write_json(out_dir / "report.json", report)
    for part in ("yours", "benchmark"):
        b = before[part] if part == "yours" else before[part]["mean"]
        a = after[part] if part == "yours" else after[part]["mean"]
        log(f"finetune: {part:9s} x flat  det {b['ratio_det']:.3f} -> {a['ratio_det']:.3f}   refl "
            f"{b['ratio_refl']:.3f} -> {a['ratio_refl']:.3f}")
    log(f"finetune: {summary['stopped']} after {summary['epochs']} epochs; {out_dir / 'model.pt'} (lfm lift "
        f"--checkpoint {out_dir / 'model.pt'} --rig {cs.rig}); report {out_dir / 'report.json'}")
    return report


def train_config_from(ck: dict, src, *, categories, lr: float, batch_size: int, threads: int, seed: int,
                      epoch_steps: int = 100, max_epochs: int = 1000, max_minutes: float = 0.0, val_frames: int = 100,
                      early_stop: int = 30):
    """The :class:`lfm.config.TrainConfig` of a fine-tuning run: the checkpoint's own augmentation, graph rule and
    loss settings, its weights as ``init_from``, the given sets, budget and optimiser settings; no procedural
    bodies."""
    from .config import TrainConfig

    keep = {f.name for f in dataclasses.fields(TrainConfig)} - {"categories", "present", "init_from", "lr",
                                                                "epoch_steps", "max_epochs", "max_minutes",
                                                                "val_frames", "train_stride", "batch_size", "threads",
                                                                "device", "seed", "early_stop", "procedural"}
    return TrainConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in ck["train_config"].items()
                          if k in keep},
                       categories=tuple(categories), init_from=str(Path(src).resolve()), lr=lr,
                       epoch_steps=epoch_steps, max_epochs=max_epochs, max_minutes=max_minutes, val_frames=val_frames,
                       train_stride=1, batch_size=batch_size, threads=threads, device="cpu" if threads else "auto",
                       seed=seed, early_stop=early_stop, procedural=0.0)


def write_benchmark_set(category: str, path, *, stride: int = 1) -> Path:
    """Write a benchmark set as a user would give it (``.npz`` with ``points3d``, ``edges``, ``sequence``,
    ``visible``; every ``stride``-th frame), e.g. a held-out category treated as your own data."""
    from .data import benchmark

    cs = benchmark.load_category(category)
    idx = np.arange(0, cs.n_frames, stride)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, points3d=cs.points3d[idx], edges=cs.edges, sequence=cs.sequence[idx], visible=cs.visible[idx])
    return path


def present_reference(category: str, results_file=None) -> dict | None:
    """Table 2's 'absent' and 'present' ratios (x flat, mean over seeds) of a held-out set from
    ``results/ood_present.json`` (notebook 11's paper run: models trained from scratch with and without the set),
    or None where that file or set is missing."""
    from . import paths
    from .results import read_json

    f = Path(results_file) if results_file else paths.root() / "results" / "ood_present.json"
    if not f.is_file():
        return None
    for row in read_json(f).get("tables", {}).get("realistic", []):
        if row.get("set") == category:
            return {k: row[k] for k in ("absent det", "present det", "absent refl", "present refl", "seeds")} | {
                "steps": read_json(f).get("rows", [{}])[0].get("steps"), "file": str(f)}
    return None
