"""One prepared training window on a GPU machine (called by bench/gpu_train.sh): train RECIPE's last stage for
MINUTES from a prepared splits file (``python -m lfm.data.bundle``), resuming a checkpoint brought back from an
earlier window, evaluate with lfm.evaluate, and write under OUT: ``model.pt`` (weights only, fp16 if the
evaluation stays within 0.5 %), ``evaluation.json``, ``throughput.json``, ``history.json`` and ``last.pt`` (the
checkpoint to bring back for the next window), each checked to be under 16 MiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lfm import checkpoint as ckpt  # noqa: E402
from lfm.config import ModelConfig  # noqa: E402
from lfm.data.bundle import load_splits  # noqa: E402
from lfm.evaluate import evaluate_benchmark  # noqa: E402
from lfm.model import LFM  # noqa: E402
from lfm.results import atomic_write_bytes, provenance, write_json  # noqa: E402
from lfm.train import read_recipe, recipe_configs, train  # noqa: E402

LIMIT = 16 * 2**20


def _evaluate(state: dict, ck: dict, splits: dict, device) -> float:
    model = LFM(ModelConfig(**ck["model_config"])).to(device)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    res = evaluate_benchmark(model.eval(), ck, splits, protocols=("realistic",), device=device, real2d=False)
    return res, float(sum(r["model_refl"] for r in res["rows"]) / len(res["rows"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, required=True)
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--splits", required=True, help="prepared splits file (python -m lfm.data.bundle)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--resume", default="", help="last.pt of an earlier window (default: OUT/last.pt if present)")
    ap.add_argument("--override", nargs="*", default=[], help="TrainConfig fields, key=value (YAML values)")
    args = ap.parse_args(argv)
    import yaml

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    over = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.override)}
    *_, (stage, mcfg, tcfg) = recipe_configs(read_recipe(args.recipe), out / "run", {"max_minutes": args.minutes,
                                                                                      **over})
    if tcfg.init_from and not Path(tcfg.init_from).is_file() and not (Path(__file__).parents[1] / tcfg.init_from).is_file():
        tcfg = dataclasses.replace(tcfg, init_from="")  # an earlier stage's weights are not here: start fresh
    splits = load_splits(args.splits)
    train_splits = {c: splits[c] for c in tcfg.train_sets}
    run_dir = out / "run"
    run_dir.mkdir(exist_ok=True)
    src = Path(args.resume) if args.resume else out / "last.pt"
    if src.is_file() and not (run_dir / "last.pt").exists():
        shutil.copy(src, run_dir / "last.pt")
    t0 = time.time()
    summary = train(mcfg, tcfg, run_dir, splits=train_splits, progress=False)
    wall = time.time() - t0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ck = ckpt.load(run_dir / "best.pt", map_location="cpu")
    eval_splits = {c: sp for c, sp in splits.items() if sp.test is not None and sp.test.n_frames}
    res32, err32 = _evaluate(ck["model"], ck, eval_splits, device)
    half = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    res16, err16 = _evaluate(half, ck, eval_splits, device)
    fp16 = abs(err16 / err32 - 1) <= 0.005
    weights = {"model": half if fp16 else ck["model"], "model_config": ck["model_config"],
               "train_config": ck["train_config"], "dtype": "float16" if fp16 else "float32",
               "provenance": provenance(device.type)}
    import io

    buf = io.BytesIO()
    torch.save(weights, buf)
    atomic_write_bytes(out / "model.pt", buf.getvalue())
    res = res16 if fp16 else res32
    write_json(out / "evaluation.json", {"rows": res["rows"], "mean": res["mean"], "float32_mean_refl": err32,
                                         "float16_mean_refl": err16, "exported": weights["dtype"]})
    write_json(out / "throughput.json", {"samples": summary["samples"], "train_elapsed_s": summary["elapsed_s"],
                                         "samples_per_s": summary["samples"] / max(summary["elapsed_s"], 1e-9),
                                         "window_wall_s": wall, "device": provenance(device.type),
                                         "batch_size": tcfg.batch_size, "d_model": mcfg.d_model})
    write_json(out / "history.json", {"stage": stage, "history": summary["history"], "stopped": summary["stopped"],
                                      "model_config": summary["model_config"], "train_config": summary["train_config"]})
    shutil.copy(run_dir / "last.pt", out / "last.pt")
    for f in ("model.pt", "evaluation.json", "throughput.json", "history.json", "last.pt"):
        size = (out / f).stat().st_size
        if size > LIMIT:
            raise SystemExit(f"{out / f} is {size / 2**20:.1f} MiB, over the 16 MiB limit.")
    print(f"{out}: trained {summary['samples']} samples in {summary['elapsed_s']:.0f} s, val refl "
          f"{summary['best_val_refl']:.4f}, exported {weights['dtype']}")


if __name__ == "__main__":
    main()
