"""The ``lfm`` command line. ``lfm --help`` lists the commands; ``lfm COMMAND --help`` explains each."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _reproduce(args: argparse.Namespace) -> int:
    from .pipeline import run_notebooks

    return run_notebooks(run="paper" if args.paper else "smoke", only=args.only, timeout=args.timeout)


def _load_yaml(path) -> dict:
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise SystemExit(f"lfm: parameter file {path} does not exist; see params/ for examples.") from None
    except yaml.YAMLError as e:
        raise SystemExit(f"lfm: {path} is not valid YAML ({e}).") from None
    if not isinstance(data, dict) or set(data) - {"model", "train"}:
        raise SystemExit(f"lfm: {path} must hold two mappings, 'model:' (ModelConfig fields) and 'train:' "
                         f"(TrainConfig fields); found keys {sorted(data) if isinstance(data, dict) else type(data).__name__}.")
    return data


def _configs(data: dict, where: str):
    import dataclasses

    from .config import ConfigError, ModelConfig, TrainConfig, from_params

    out = []
    for key, cls in (("model", ModelConfig), ("train", TrainConfig)):
        section = data.get(key) or {}
        unknown = set(section) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise SystemExit(f"lfm: {where}: unknown {key} field(s) {sorted(unknown)}; known: "
                             f"{[f.name for f in dataclasses.fields(cls)]}.")
        try:
            out.append(from_params(section, cls))
        except ConfigError as e:
            raise SystemExit(f"lfm: {where}: {e}") from None
    return out


def _train(args: argparse.Namespace) -> int:
    from .train import train

    data = _load_yaml(args.file) if args.file else {}
    mcfg, tcfg = _configs(data, args.file or "defaults")
    summary = train(mcfg, tcfg, args.output, resume=not args.restart, progress=not args.no_progress)
    print(f"lfm train: {summary['stopped']} after {summary['epochs']} epochs; best validation PA-MPJPE/rms "
          f"(reflection allowed) {summary['best_val_refl']:.4f}; checkpoints in {args.output}")
    return 0


def _lift(args: argparse.Namespace) -> int:
    import numpy as np

    from .results import atomic_write_bytes
    from .lifting import LiftInputError, lift
    from .checkpoint import CheckpointError

    try:
        with np.load(args.input, allow_pickle=False) as z:
            if "points2d" not in z:
                raise SystemExit(f"lfm lift: {args.input} has no array 'points2d' (found {sorted(z.files)}); save "
                                 "np.savez(path, points2d=..., mask=..., edges=...).")
            arrays = {k: z[k] for k in ("points2d", "mask", "edges") if k in z}
    except FileNotFoundError:
        raise SystemExit(f"lfm lift: input {args.input} does not exist.") from None
    except (ValueError, OSError) as e:
        raise SystemExit(f"lfm lift: {args.input} is not a readable .npz ({e}).") from None
    try:
        out = lift(arrays["points2d"], arrays.get("mask"), arrays.get("edges"), args.checkpoint, rig=args.rig,
                   y_down=args.y_down)
    except (LiftInputError, CheckpointError) as e:
        raise SystemExit(f"lfm lift: {args.input}: {e}") from None
    import io

    buf = io.BytesIO()
    np.savez(buf, canonical=out.canonical, camera=out.camera, camera_mirror=out.camera_mirror,
             rotation=out.rotation, scale=out.scale, translation=out.translation, mask=out.mask,
             graph=np.array(out.graph))
    atomic_write_bytes(args.output, buf.getvalue())
    print(f"lfm lift: {out.canonical.shape} 3D ({out.graph}) -> {args.output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .data import benchmark
    from .evaluate import evaluate_benchmark
    from .results import provenance, write_json
    from .lifting import load_model
    from .checkpoint import CheckpointError

    try:
        model, ck = load_model(args.checkpoint)
    except CheckpointError as e:
        raise SystemExit(f"lfm evaluate: {e}") from None
    cats = args.categories or list(benchmark.CATEGORIES + benchmark.OOD)
    splits = {c: benchmark.split_category(c) for c in cats}
    res = evaluate_benchmark(model, ck, splits)
    res.pop("predictions")
    write_json(args.output, {"protocol": __import__("lfm.evaluate", fromlist=["PROTOCOL"]).PROTOCOL,
                             "benchmark": benchmark.VERSION, "split_rules": benchmark.SPLIT_RULES,
                             "checkpoint": str(args.checkpoint or "shipped"), "provenance": provenance()} | res)
    for proto, m in sorted(res["mean"].items()):
        print(f"{proto:12s} mean PA-MPJPE/rms  det {m['model_det']:.3f}  refl {m['model_refl']:.3f}  "
              f"(flat {m['flat_refl']:.3f}; x flat {m['ratio_refl']:.2f})")
    print(f"lfm evaluate: per-category table -> {args.output}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lfm", description="3D-LFM reproduction bundle: lift 2D keypoints to 3D.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "reproduce",
        help="run every numbered notebook headless with papermill",
        description="Run notebooks/NN_*.ipynb in order. --smoke (default): the notebooks' CPU smoke defaults, "
        "outputs under results/smoke and figures/smoke. --paper: parameters from params/paper/NN_*.yaml, outputs "
        "under results/ and figures/. Stops at the first failure and keeps that executed notebook.",
    )
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="CPU smoke size (default)")
    mode.add_argument("--paper", action="store_true", help="paper-scale parameters from params/paper/")
    r.add_argument("--only", nargs="+", metavar="PREFIX", help="run only notebooks whose name starts so, e.g. 00 03")
    r.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell (default 3600)")
    r.set_defaults(func=_reproduce)
    t = sub.add_parser(
        "train",
        help="train a model on the open benchmark (resumable)",
        description="Train one LFM on the in-distribution categories of the open benchmark. -f PARAMS.yaml holds "
        "'model:' and 'train:' mappings (fields of lfm.config.ModelConfig / TrainConfig; absent = defaults). "
        "Checkpoints: OUTPUT/last.pt every epoch, OUTPUT/best.pt; rerunning the same command resumes.",
    )
    t.add_argument("-f", "--file", help="YAML parameters (e.g. params/train_open_v1.yaml)")
    t.add_argument("-o", "--output", default="runs/lfm", help="run folder (default runs/lfm)")
    t.add_argument("--restart", action="store_true", help="ignore an existing last.pt and start over")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (logs one line per epoch)")
    t.set_defaults(func=_train)
    lf = sub.add_parser(
        "lift",
        help="lift 2D keypoints in an .npz to 3D",
        description="Read INPUT.npz (array points2d (N, 2) or (B, N, 2); optional mask (B, N) bool and edges "
        "(E, 2) int), lift with the shipped checkpoint (or --checkpoint), write OUTPUT.npz with canonical, camera, "
        "camera_mirror (B, N, 3), rotation, scale, translation, mask and the graph used. Without edges or --rig the "
        "graph is k=3 nearest neighbours of each 2D input (see README for its accuracy cost).",
    )
    lf.add_argument("input", help="input .npz with points2d (and optionally mask, edges)")
    lf.add_argument("-o", "--output", required=True, help="output .npz")
    lf.add_argument("--checkpoint", help="checkpoint path (default: the shipped lfm/checkpoints/lfm_open_v1.pt)")
    lf.add_argument("--rig", help="a rig known to the checkpoint, keypoints in its order (python -c "
                    "'import lfm; print(list(lfm.lifting.rigs()))' lists them)")
    lf.add_argument("--y-down", action="store_true", help="input y axis points down (pixel coordinates)")
    lf.set_defaults(func=_lift)
    ev = sub.add_parser(
        "evaluate",
        help="per-category errors of a checkpoint on the open benchmark",
        description="Evaluate a checkpoint on the test splits of the open benchmark under both view protocols "
        "(realistic, so3_ortho) and the cheetah's real DeepLabCut 2D; PA-MPJPE / RMS radius with det=+1 and with "
        "reflection allowed, the flat guess beside each. Writes a JSON table with its protocol.",
    )
    ev.add_argument("--checkpoint", help="checkpoint path (default: the shipped one)")
    ev.add_argument("-o", "--output", default="results/evaluate_cli.json", help="output JSON")
    ev.add_argument("--categories", nargs="+", help="subset of categories (default: all)")
    ev.set_defaults(func=_evaluate)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
