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


_NPZ_HOW = "save it with np.savez(path, points2d=..., mask=..., edges=...)"


def read_lift_input(path) -> dict:
    """The arrays ``points2d`` (and ``mask``, ``edges`` if present) of an ``.npz`` file for ``lfm lift``;
    a :class:`CLIError` naming the file and the fix for anything else (a ``.npy``, a text file, a damaged zip)."""
    import zipfile
    import zlib

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise CLIError(f"input {path} {'is a folder' if path.is_dir() else 'does not exist'}; give the path of an "
                       f".npz file ({_NPZ_HOW}).")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        raise CLIError(f"{path} is a .npy file (one array without a name); lfm lift reads an .npz with named arrays: "
                       f"np.savez('{path.with_suffix('.npz').name}', points2d=np.load('{path.name}')).")
    if not head.startswith(b"PK"):
        kind = "an empty file" if not head else (
            "a text file" if all(32 <= c < 127 or c in b"\t\r\n" for c in head) else "not a zip archive")
        raise CLIError(f"{path} is {kind}, not an .npz; {_NPZ_HOW}.")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "points2d" not in z.files:
                raise CLIError(f"{path} has no array 'points2d' (found {sorted(z.files)}); {_NPZ_HOW}.")
            return {k: z[k] for k in ("points2d", "mask", "edges") if k in z.files}
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        raise CLIError(f"{path} is damaged or truncated ({type(e).__name__}: {_one_line(e)}); write it again "
                       f"({_NPZ_HOW}).") from None
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise CLIError(f"{path} holds an object (pickled) array; store plain numbers: "
                           f"np.savez(path, points2d=np.asarray(points, dtype=np.float32), ...).") from None
        raise CLIError(f"{path} is damaged or not written by numpy ({_one_line(e)}); {_NPZ_HOW}.") from None


def _same_file(a: Path, b: Path) -> bool:
    import os

    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _lift(args: argparse.Namespace) -> int:
    import io

    import numpy as np

    from .lifting import lift
    from .results import atomic_write_bytes

    src, dst = Path(args.input), Path(args.output)
    if _same_file(src, dst) and not args.force:
        raise CLIError(f"-o {dst} is the input file: writing the 3D there would replace your 2D keypoints; choose "
                       "another output name (or pass --force to replace the input).")
    arrays = read_lift_input(src)
    try:
        out = lift(arrays["points2d"], arrays.get("mask"), arrays.get("edges"), args.checkpoint, rig=args.rig,
                   y_down=args.y_down)
    except ValueError as e:  # LiftInputError, CheckpointError
        raise CLIError(f"{src}: {_one_line(e)}") from e
    buf = io.BytesIO()
    np.savez(buf, canonical=out.canonical, camera=out.camera, camera_mirror=out.camera_mirror,
             rotation=out.rotation, scale=out.scale, translation=out.translation, mask=out.mask,
             graph=np.array(out.graph))
    atomic_write_bytes(dst, buf.getvalue())
    print(f"lfm lift: {out.canonical.shape} 3D ({out.graph}) -> {dst}")
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
        help="lift 2D keypoints in an .npz to 3D",
        description="Read INPUT.npz (array points2d (N, 2) or (B, N, 2); optional mask (B, N) bool or 0/1 and "
        "edges (E, 2) int), lift with the shipped checkpoint (or --checkpoint), write OUTPUT.npz with canonical, "
        "camera, camera_mirror (B, N, 3), rotation, scale, translation, mask and the graph used. Without edges or "
        "--rig the graph is k=3 nearest neighbours of each 2D input (see README for its accuracy cost).",
    )
    lf.add_argument("input", help="input .npz with points2d (and optionally mask, edges)")
    lf.add_argument("-o", "--output", required=True, help="output .npz (not the input file)")
    lf.add_argument("--force", action="store_true", help="allow -o to be the input file (replaces it)")
    lf.add_argument("--checkpoint", help="checkpoint path (default: the shipped lfm/checkpoints/lfm_open_v2.pt; lfm_open_v1.pt is the previous one)")
    lf.add_argument("--rig", help="a rig of the checkpoint or a named skeleton (coco17, h36m17, mediapipe_hand21, "
                    "openpose_hand21, mediapipe_pose33, coco_wholebody133), keypoints in its order; python -c "
                    "'import lfm.lifting as L; print(list(L.rigs()))' lists them")
    lf.add_argument("--y-down", action="store_true", help="input y axis points down (pixel coordinates)")
    lf.set_defaults(func=_lift)
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
