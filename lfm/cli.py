"""The ``lfm`` command line. ``lfm --help`` lists the commands; ``lfm COMMAND --help`` explains each.

Every known error (bad input file, bad parameters, unreadable checkpoint, missing data, ...) is printed as one line
``lfm COMMAND: what is wrong; what to do`` and the exit status is 1; ``lfm --debug COMMAND ...`` shows the
traceback instead. Default output paths resolve against the repository (:mod:`lfm.paths`), never the working
directory; paths you type are relative to the working directory as usual.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

__all__ = ["main", "build_parser", "CLIError"]


class CLIError(Exception):
    """An error the CLI prints as one line (the message names the file or option and the fix)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _reproduce(args: argparse.Namespace) -> int:
    from .pipeline import run_notebooks

    if args.params and args.paper and not args.output:
        raise CLIError(f"-f {args.params} with --paper would overwrite the committed results with other parameters; "
                       "drop --paper (outputs go to results/smoke/) or add --output DIR.")
    return run_notebooks(run="paper" if args.paper else "smoke", only=args.only, timeout=args.timeout,
                         params_file=args.params, output=args.output)


def _load_yaml(path) -> dict:
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise CLIError(f"parameter file {path} does not exist; see params/ for examples.") from None
    except yaml.YAMLError as e:
        raise CLIError(f"{path} is not valid YAML ({_one_line(e)}); fix the file.") from None
    if isinstance(data, dict) and "stages" in data:
        return data  # a recipe (lfm.train.read_recipe checks it)
    if not isinstance(data, dict) or set(data) - {"model", "train"}:
        raise CLIError(f"{path} must hold two mappings, 'model:' (ModelConfig fields) and 'train:' "
                       f"(TrainConfig fields), or be a recipe ('name:' and 'stages:', see params/train_*.yaml); "
                       f"found keys {sorted(data) if isinstance(data, dict) else type(data).__name__}.")
    return data


def _configs(data: dict, where: str):
    import dataclasses

    from .config import ConfigError, ModelConfig, TrainConfig, from_params

    out = []
    for key, cls in (("model", ModelConfig), ("train", TrainConfig)):
        section = data.get(key) or {}
        unknown = set(section) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise CLIError(f"{where}: unknown {key} field(s) {sorted(unknown)}; known: "
                           f"{[f.name for f in dataclasses.fields(cls)]}.")
        try:
            out.append(from_params(section, cls))
        except ConfigError as e:
            raise CLIError(f"{where}: {e}") from None
    return out


def _start_over(out_dir: Path) -> str:
    best = out_dir / "best.pt"
    kept = (f" {best} is intact; --restart replaces it after the first epoch, so copy it first if you need it."
            if best.is_file() else "")
    return (f"To start over: rerun with --restart (trains from scratch into {out_dir}) or choose another folder "
            f"with -o.{kept}")


def _train(args: argparse.Namespace) -> int:
    from . import checkpoint, paths
    from .train import train

    data = _load_yaml(args.file) if args.file else {}
    out_dir = Path(args.output) if args.output else paths.runs_dir() / "lfm"
    if args.max_minutes < 0:
        raise CLIError(f"--max-minutes {args.max_minutes}: give a positive number of minutes (absent: the file's "
                       "max_minutes).")
    splits = None
    if args.splits:
        from .data.bundle import load_splits

        splits = load_splits(args.splits)
    if "stages" in data:  # a recipe: every stage (resumable), then the export <out>/model.pt
        from .train import run_recipe

        if args.restart:
            raise CLIError(f"--restart does not apply to a recipe; choose another -o than {out_dir} to start over.")
        exported = run_recipe(args.file, out_dir, progress=not args.no_progress, splits=splits,
                              overrides={"max_minutes": args.max_minutes} if args.max_minutes else None)
        if exported is None:
            print(f"lfm train: recipe {data.get('name')} trained from {args.splits}; to export {out_dir}/model.pt, "
                  f"run `lfm train -f {args.file} -o {out_dir}` where the data are (it resumes, then exports)")
        else:
            print(f"lfm train: recipe {data.get('name')} trained; exported {exported}")
        return 0
    mcfg, tcfg = _configs(data, args.file or "defaults")
    if args.max_minutes:
        tcfg = dataclasses.replace(tcfg, max_minutes=args.max_minutes)
    if splits is not None:  # read once above; here only the sets this run trains on (or which are missing)
        from .data.benchmark import pick

        splits = pick(splits, tcfg.train_sets, f"{args.splits} holds no split for")
    last = out_dir / "last.pt"
    try:
        if not args.restart and last.exists():
            checkpoint.load(last)  # a damaged last.pt fails here, before the data are loaded
        summary = train(mcfg, tcfg, out_dir, resume=not args.restart, progress=not args.no_progress, splits=splits)
    except checkpoint.CheckpointError as e:
        raise CLIError(f"cannot resume {out_dir}: {_one_line(e)} {_start_over(out_dir)}") from e
    print(f"lfm train: {summary['stopped']} after {summary['epochs']} epochs; best validation PA-MPJPE/rms "
          f"(reflection allowed) {summary['best_val_refl']:.4f}; checkpoints in {out_dir}")
    return 0


def read_lift_input(path) -> dict:
    """The arrays ``points2d`` (and ``mask``, ``edges`` if present) of an ``.npz`` file for ``lfm lift``;
    a :class:`CLIError` naming the file and the fix for anything else (a ``.npy``, a text file, a damaged zip)."""
    from .poses import PoseFileError, _read_npz

    path = Path(path)
    if not path.is_file():
        raise CLIError(f"input {path} {'is a folder' if path.is_dir() else 'does not exist'}; give the path of an "
                       ".npz file (save it with np.savez(path, points2d=..., mask=..., edges=...)).")
    try:
        p = _read_npz(path)
    except PoseFileError as e:
        raise CLIError(str(e)) from None
    out = {"points2d": p.points2d}
    out.update({k: v for k, v in (("mask", p.mask), ("edges", p.edges)) if v is not None})
    return out


def _same_file(a: Path, b: Path) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output(dst, *, force: bool, option: str = "-o", src=None) -> Path:
    """Refuse an output path that cannot or should not be written, before any work: a missing folder, a folder,
    a place that is not writable (``/proc``, ``/sys``, a read-only folder or file), an existing file without
    ``--force``, the input file itself. Each message names the path and the fix."""
    import os

    dst = Path(dst)
    if src is not None and dst.exists() and _same_file(Path(src), dst) and not force:
        raise CLIError(f"{option} {dst} is the input file: writing the 3D there would replace your 2D keypoints; "
                       "choose another output name (or pass --force to replace the input).")
    if dst.is_dir():
        raise CLIError(f"{option} {dst} is a folder; give a file name in it, e.g. {option} {dst / 'lifted.npz'}.")
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.exists():
        raise CLIError(f"{option} {dst}: the folder {parent} does not exist; create it first (mkdir -p {parent}) "
                       f"or choose another {option}.")
    if not parent.is_dir():
        raise CLIError(f"{option} {dst}: {parent} is not a folder; choose another {option}.")
    real = parent.resolve()
    if real.parts[:2] in (("/", "proc"), ("/", "sys"), ("/", "dev")) or not os.access(real, os.W_OK):
        raise CLIError(f"{option} {dst}: cannot write into {parent} (a system or read-only folder); choose a "
                       f"folder of yours for {option}.")
    if dst.exists() and not force:
        raise CLIError(f"{option} {dst} exists; pass --force to replace it, or choose another name.")
    if dst.exists() and (not os.access(dst, os.W_OK) or not dst.stat().st_mode & 0o222):
        raise CLIError(f"{option} {dst} is read-only; make it writable (chmod u+w {dst}) to replace it, or choose "
                       "another name.")
    return dst


def _write_output(dst: Path, data: bytes, option: str = "-o") -> None:
    from .results import atomic_write_bytes

    try:
        atomic_write_bytes(dst, data)
    except OSError as e:  # the checks above passed, yet the system refused (full disk, a race, ...)
        raise CLIError(f"{option} {dst} could not be written ({e.strerror or type(e).__name__}); nothing was "
                       f"changed there; free space or choose another {option}.") from None


def _load_checkpoint(path):
    """The model of ``--checkpoint`` (default: the shipped one); an error that names the checkpoint."""
    from .checkpoint import CheckpointError
    from .lifting import load_model

    try:
        return load_model(path)
    except CheckpointError as e:
        raise CLIError(f"--checkpoint {path or 'default'}: {_one_line(e)}") from None


def _lift(args: argparse.Namespace) -> int:
    import json

    from . import poses as P
    from .lifting import DEFAULT_CHECKPOINT, LiftInputError, lift_file

    src, dst = Path(args.input), Path(args.output)
    check_output(dst, force=args.force, src=src if src.exists() else None)
    try:
        fmt_out = P.output_format(dst)
    except P.PoseFileError as e:
        raise CLIError(str(e)) from None
    if args.html:
        if Path(args.html).suffix.lower() not in (".html", ".htm"):
            raise CLIError(f"--html {args.html}: end the name in .html.")
        check_output(args.html, force=args.force, option="--html", src=src if src.exists() else None)
        if _same_file(Path(args.html), dst) if Path(args.html).exists() and dst.exists() else \
                Path(args.html).resolve() == dst.resolve():
            raise CLIError(f"--html {args.html} is the -o file; give them different names.")
    if args.min_confidence is not None and not 0 <= args.min_confidence <= 1:
        raise CLIError(f"--min-confidence {args.min_confidence}: give a number in [0, 1] (default "
                       f"{P.DEFAULT_MIN_CONFIDENCE}).")
    if args.smooth < 0:
        raise CLIError(f"--smooth {args.smooth}: give a width in frames > 0 (or leave it out: no smoothing).")
    if args.refine is not None and args.refine < 0:
        raise CLIError(f"--refine {args.refine}: give a number of shape modes >= 0 (10 for a body, 0 for a rigid "
                       "object), or leave it out.")
    _load_checkpoint(args.checkpoint)
    try:
        poses, out = lift_file(src, format=args.format, rig=args.rig, checkpoint=args.checkpoint,
                               y_down=True if args.y_down else None, min_confidence=args.min_confidence,
                               smooth=args.smooth, progress=not args.no_progress, batch_size=args.batch_size,
                               refine=args.refine)
    except (P.PoseFileError, LiftInputError) as e:
        raise CLIError(_one_line(e) if str(e).startswith(str(src)) else f"{src}: {_one_line(e)}") from e
    meta = {"input": str(src), "format": poses.format, "checkpoint": str(args.checkpoint or DEFAULT_CHECKPOINT),
            "graph": out.graph, "y_down": bool(out.axes[1] < 0), "axes": out.axes.tolist(),
            "min_confidence": args.min_confidence if args.min_confidence is not None else P.DEFAULT_MIN_CONFIDENCE,
            "smooth_sigma_frames": args.smooth, "refine_modes": args.refine, "keypoints": poses.names,
            "notes": poses.notes,
            "camera": "camera = (scale * canonical @ rotation + translation) * axes (npz)"}
    pages = {}
    if args.html:
        pages[Path(args.html)] = P.html_page(poses, out, title=f"{src.name}: lifted by lfm ({out.graph})").encode()
    data = P.encode(poses, out, fmt_out, meta)
    _write_output(dst, data)
    for path, page in pages.items():
        _write_output(path, page, "--html")
    B = out.mask.shape[0]
    lifted = int(out.mask.any(1).sum())
    extra = f"; {args.html}" if args.html else ""
    print(f"lfm lift: {lifted} of {B} poses x {out.mask.shape[1]} keypoints ({poses.format}, {out.graph}"
          f"{f', refined with {args.refine} modes' if args.refine is not None else ''}"
          f"{', smoothed' if args.smooth else ''}) -> {dst}{extra}")
    for note in poses.notes:
        print(f"lfm lift: note: {note}")
    return 0


def _finetune(args: argparse.Namespace) -> int:
    from .finetune import DEFAULT_MIX, finetune

    if args.max_minutes <= 0:
        raise CLIError(f"--max-minutes {args.max_minutes}: give a positive number of minutes.")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CLIError(f"-o {out} is a file; give a folder for the run (it holds train/, model.pt, report.json).")
    if not out.exists() and not (out.parent if str(out.parent) else Path(".")).is_dir():
        raise CLIError(f"-o {out}: the folder {out.parent} does not exist; create it first (mkdir -p {out.parent}).")
    if args.checkpoint:
        _load_checkpoint(args.checkpoint)
    mix = tuple(args.mix) if args.mix else DEFAULT_MIX
    kw = dict(checkpoint=args.checkpoint, mix=mix, max_minutes=args.max_minutes, max_epochs=args.max_epochs,
              epoch_steps=args.epoch_steps, name=args.name, threads=args.threads, progress=not args.no_progress)
    if args.two_d:
        from .selfsup import DEFAULT_MODES, finetune_2d

        if args.up:
            raise CLIError("--up is for 3D data; with --2d the file's image axes are used (y down for the tools' "
                           "files, y up for an .npz).")
        modes = DEFAULT_MODES if args.modes is None else args.modes
        if modes < 0:
            raise CLIError(f"--modes {modes}: give 0 (a rigid body) or more shape modes.")
        finetune_2d(args.data, out, n_basis=modes, min_confidence=args.min_confidence, **kw)
    else:
        if args.modes is not None or args.min_confidence is not None:
            raise CLIError("--modes and --min-confidence apply to 2D data: add --2d.")
        finetune(args.data, out, up=args.up, **kw)
    return 0


def _rigs(args: argparse.Namespace) -> int:
    from .lifting import rigs

    _load_checkpoint(args.checkpoint)
    for name, r in rigs(args.checkpoint).items():
        kind = "trained on" if r.get("trained_on") else ("named skeleton" if r.get("names") else "held out")
        print(f"{name:24s} {r['keypoints']:4d} keypoints  {kind}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from . import checkpoint, paths
    from .data import benchmark
    from .evaluate import evaluate_benchmark, write_evaluation
    from .lifting import load_model

    out_path = Path(args.output) if args.output else paths.runs_dir() / "evaluate_cli.json"
    model, ck = load_model(args.checkpoint)
    cats = args.categories or list(benchmark.CATEGORIES + benchmark.HELD_OUT)
    unknown = [c for c in cats if c not in benchmark.CATEGORIES + benchmark.HELD_OUT]
    if unknown:
        raise CLIError(f"--categories {unknown} are not benchmark categories; choose from "
                       f"{list(benchmark.CATEGORIES + benchmark.HELD_OUT)}.")
    splits = {c: benchmark.split_category(c) for c in cats}
    res = evaluate_benchmark(model, ck, splits)
    write_evaluation(out_path, res, ck, args.checkpoint or checkpoint.DEFAULT)
    for proto, m in sorted(res["mean"].items()):
        print(f"{proto:12s} mean PA-MPJPE/rms  det {m['model_det']:.3f}  refl {m['model_refl']:.3f}  "
              f"(flat {m['flat_refl']:.3f}; x flat {m['ratio_refl']:.2f})")
    print(f"lfm evaluate: per-set table -> {out_path} (and {out_path.stem}_rows.csv)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error instead of one line")
    p = argparse.ArgumentParser(prog="lfm", description="3D-LFM reproduction bundle: lift 2D keypoints to 3D. "
                                "Errors print one line; --debug shows the traceback.")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error instead of one line")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "reproduce", parents=[common],
        help="run every numbered notebook headless with papermill",
        description="Run notebooks/NN_*.ipynb in order. --smoke (default): the notebooks' CPU smoke defaults, "
        "outputs under results/smoke and figures/smoke. --paper: parameters from params/paper/NN_*.yaml, outputs "
        "under results/ and figures/. -f FILE: your own parameters (YAML, name: value) for the one notebook chosen "
        "with --only; --output DIR: every output under DIR (sets LFM_OUTPUT). Parameters are checked before "
        "anything runs. Stops at the first failure; the previous executed copy stays, the failed one is kept "
        "under runs/failed/.",
    )
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="CPU smoke size (default)")
    mode.add_argument("--paper", action="store_true", help="paper-scale parameters from params/paper/")
    r.add_argument("--only", nargs="+", metavar="PREFIX", help="run only notebooks whose name starts so, e.g. 00 03")
    r.add_argument("-f", "--params", metavar="FILE", help="YAML parameters for the one notebook chosen with --only")
    r.add_argument("--output", metavar="DIR", help="write results/, figures/ and runs/ under DIR instead of the "
                   "repository")
    r.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell (default 3600)")
    r.set_defaults(func=_reproduce)
    t = sub.add_parser(
        "train", parents=[common],
        help="train a model on the open benchmark (resumable)",
        description="Train one LFM on the in-distribution sets of the open benchmark. -f FILE is a recipe "
        "(params/train_*.yaml: 'name:' and 'stages:', each stage in OUTPUT/<stage>/, then OUTPUT/model.pt) or holds "
        "'model:' and 'train:' mappings (fields of lfm.config.ModelConfig / TrainConfig; absent = defaults). "
        "Checkpoints: last.pt every epoch, best.pt; rerunning the same command resumes. Several processes: "
        "torchrun --nproc_per_node K -m lfm.cli train ... (README, training on the full datasets).",
    )
    t.add_argument("-f", "--file", help="a recipe or a parameter file (e.g. params/train_open_v2.yaml)")
    t.add_argument("-o", "--output", help="run folder (default: runs/lfm in the repository)")
    t.add_argument("--restart", action="store_true", help="ignore an existing last.pt and start over (best.pt is "
                   "replaced after the first epoch)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (logs one line per epoch)")
    t.add_argument("--splits", help="prepared splits file (python -m lfm.data.bundle) instead of the data mirror")
    t.add_argument("--max-minutes", type=float, default=0, help="training budget in minutes (replaces the file's "
                   "max_minutes; counts the minutes already trained, so a resumed run continues up to it; absent or "
                   "0: the file's)")
    t.set_defaults(func=_train)
    lf = sub.add_parser(
        "lift", parents=[common],
        help="lift 2D keypoints (SLEAP, DeepLabCut, COCO, NWB, .npz, ...) to 3D",
        description="Read a pose file (format from the extension or --format: .npz, SLEAP .slp and analysis .h5, "
        "DeepLabCut .csv, COCO keypoint .json, NWB, Ultralytics folder; lfm.poses), lift every pose (one per frame "
        "x instance, frames in order) with the shipped checkpoint (or --checkpoint), write -o: .npz (arrays "
        "canonical, camera, camera_mirror, rotation, scale, translation, axes, mask, frame, instance, ...), .csv "
        "or .json (one row per frame x instance x keypoint: 2D, visible, x y z in the camera frame and the "
        "canonical frame); --html adds a self-contained page. The graph: --rig, else the file's skeleton, else "
        "k=3 nearest neighbours of each 2D input (README: its accuracy cost). The tools' files are pixel "
        "coordinates (y down) and are lifted as such; an .npz is y up unless --y-down. An existing output is "
        "kept unless --force.",
    )
    lf.add_argument("input", help="pose file (.npz, .slp, .h5, .csv, .json, .nwb, or an Ultralytics folder)")
    lf.add_argument("-o", "--output", required=True, help="output file: .npz, .csv or .json")
    lf.add_argument("--format", help="input format when the extension does not say it: npz, slp, analysis_h5, dlc, "
                    "sleap_csv, coco, nwb, ultralytics, jabs")
    lf.add_argument("--html", metavar="PAGE", help="also write one offline HTML page: 3D skeleton, frame slider, 2D "
                    "input beside it")
    lf.add_argument("--force", action="store_true", help="replace an existing output (also the input file)")
    lf.add_argument("--checkpoint", help="checkpoint path (default: the shipped lfm/checkpoints/lfm_open_v3.pt; "
                    "lfm_open_v2.pt and lfm_open_v1.pt are the previous ones; `lfm finetune` writes RUN/model.pt)")
    lf.add_argument("--rig", help="a rig of the checkpoint or a named skeleton (coco17, h36m17, mediapipe_hand21, "
                    "openpose_hand21, mediapipe_pose33, coco_wholebody133), keypoints in its order; `lfm rigs` "
                    "lists them")
    lf.add_argument("--min-confidence", type=float, default=None, help="hide keypoints whose confidence "
                    "(DeepLabCut likelihood, SLEAP score, COCO results score) is below this (default 0.5)")
    lf.add_argument("--refine", type=int, metavar="MODES", help="refine the lifts of all poses of the file "
                    "together from their 2D with MODES shape modes (10 for a body, 0 for a rigid object; "
                    "lfm.selfsup.refine_2d): for a video or several cameras of one kind of body (default: off)")
    lf.add_argument("--smooth", type=float, default=0.0, metavar="SIGMA", help="Gaussian filter along time of "
                    "the camera-frame 3D per track, sigma in frames (e.g. 1.5; default off; README: its cost)")
    lf.add_argument("--y-down", action="store_true", help="an .npz whose y axis points down (pixel coordinates); "
                    "the tools' files are always taken as y down")
    lf.add_argument("--batch-size", type=int, default=4096, help="poses per forward pass (default 4096)")
    lf.add_argument("--no-progress", action="store_true", help="no progress bar")
    lf.set_defaults(func=_lift)
    ft = sub.add_parser(
        "finetune", parents=[common], help="fit the model to your own body or object (3D keypoints, or 2D with --2d)",
        description="Fine-tune a checkpoint (default: the shipped one) on 3D keypoints of your category: DATA is an "
        ".npz (points3d (F, N, 3), optional edges, sequence, visible), a .c3d (ezc3d), a .bvh, an .amc with its .asf "
        "beside it, or a folder of such files. DATA is split by trajectory (the last 20 %% of sequences, or of each "
        "sequence's frames, held out); training mixes in benchmark sets (--mix, default human41 dog hand_icvl "
        "mouse_sleap chair; each as often as yours) and is resumable (rerun the same command); writes RUN/model.pt "
        "(lfm lift --checkpoint RUN/model.pt --rig yours_<name>) and RUN/report.json: before / after x flat on the "
        "held-out part of DATA and on the benchmark's in-distribution mean.")
    ft.add_argument("data", help="3D keypoints: .npz, .c3d, .bvh, .amc (+ .asf), or a folder of them")
    ft.add_argument("-o", "--output", required=True, help="run folder (rerun to resume)")
    ft.add_argument("--from", dest="checkpoint", help="checkpoint to start from (default: the shipped one)")
    ft.add_argument("--max-minutes", type=float, default=10.0, help="training budget in minutes (default 10; "
                    "counts the minutes already trained when resumed)")
    ft.add_argument("--max-epochs", type=int, default=1000, help="at most this many epochs (default 1000)")
    ft.add_argument("--epoch-steps", type=int, default=100, help="optimiser steps per epoch (default 100)")
    ft.add_argument("--mix", nargs="+", metavar="SET", help="benchmark training sets mixed in ('all' for every "
                    "one); your set is 1 / (1 + their number) of the batches")
    ft.add_argument("--up", choices=("y", "z"), help="the data's up axis (default: z for C3D, y otherwise)")
    ft.add_argument("--name", help="the name of your set and rig (default yours_<file name>)")
    ft.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ft.add_argument("--no-progress", action="store_true", help="no progress bar")
    ft.add_argument("--2d", dest="two_d", action="store_true", help="DATA is 2D keypoints only (any file lfm lift "
                    "reads): every row is lifted, the lifts are refined together from the 2D (a low-rank shape "
                    "model, --modes), and the model is fine-tuned on that refined 3D (docs/lifting.md)")
    ft.add_argument("--modes", type=int, help="with --2d: shape modes of the refinement (default 10, "
                    "lfm.selfsup.DEFAULT_MODES; 0 for a rigid object)")
    ft.add_argument("--min-confidence", type=float, help="with --2d: keypoints below this confidence are hidden "
                    "(default 0.5)")
    ft.set_defaults(func=_finetune)
    rg = sub.add_parser("rigs", parents=[common], help="list the rigs lfm lift --rig accepts",
                        description="The rigs of the checkpoint (trained on or held out) and the named skeletons "
                        "of common 2D formats, with their keypoint counts.")
    rg.add_argument("--checkpoint", help="checkpoint path (default: the shipped one)")
    rg.set_defaults(func=_rigs)
    ev = sub.add_parser(
        "evaluate", parents=[common],
        help="per-category errors of a checkpoint on the open benchmark",
        description="Evaluate a checkpoint on the test splits of the open benchmark under both view protocols "
        "(realistic, so3_ortho) and the cheetah's real DeepLabCut 2D; PA-MPJPE / RMS radius with det=+1 and with "
        "reflection allowed, the flat guess beside each. Writes a JSON table with its protocol.",
    )
    ev.add_argument("--checkpoint", help="checkpoint path (default: the shipped one)")
    ev.add_argument("-o", "--output", help="output JSON (default: runs/evaluate_cli.json in the repository)")
    ev.add_argument("--categories", nargs="+", help="subset of categories (default: all)")
    ev.set_defaults(func=_evaluate)
    return p


def _known(e: BaseException) -> bool:
    """Errors of the user's input or environment (printed as one line); anything else is a bug (traceback)."""
    if isinstance(e, (CLIError, ValueError, OSError)):  # CheckpointError, LiftInputError, ConfigError are ValueErrors
        return True
    from .data import DataError

    return isinstance(e, DataError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print(f"lfm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - sorted below
        if getattr(args, "debug", False) or not _known(e):
            raise
        ours = isinstance(e, CLIError) or type(e).__module__.startswith("lfm")
        hint = "" if ours else f" [{type(e).__name__}; lfm --debug {args.command} ... shows the traceback]"
        print(f"lfm {args.command}: {_one_line(e)}{hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
