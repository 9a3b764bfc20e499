"""Batch-size study on CPU at d = 64: validation error (x flat) against samples seen and against wall time for
batch 64 / 256 / 1024 / 4096, equal samples per batch size, the v2 recipe's data and augmentation from scratch, one
seed, lr = 5e-4 * sqrt(B / 64) (Adam's square-root rule) after a linear warm-up over the first 10 % of the samples.

Writes results/bench/batch_size_study.json and figures/batch_size_study.png/.pdf. Run (about 25 CPU minutes):
``python bench/batch_size_study.py --samples 200000`` (``--quick`` checks that it runs).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
from common import write

from lfm import paths
from lfm.train import _validate, draw_batch, read_recipe, recipe_configs, setup, train_step


def curve(batch: int, samples: int, evals: int, overrides: dict, precision: str = "float32", log=print) -> dict:
    out = tempfile.mkdtemp(prefix="lfm-bs-")
    lr = 5e-4 * math.sqrt(batch / 64)
    (_, m, t), *_ = recipe_configs(read_recipe("params/train_open_v2.yaml"), out,
                                   {"threads": 1, "init_from": "", "batch_size": batch, "lr": lr,
                                    "precision": precision, **overrides})
    run = setup(m, t, out)
    steps = max(1, samples // batch)
    warm = max(1, steps // 10)
    every = max(1, steps // evals)
    rows, train_s = [], 0.0
    for s in range(1, steps + 1):
        for g in run.opt.param_groups:
            g["lr"] = lr * min(1.0, s / warm)
        t0 = time.perf_counter()
        run.model.train()
        train_step(run.forward, run.opt, draw_batch(run), amp=run.amp)
        train_s += time.perf_counter() - t0
        if s % every == 0 or s == steps:
            v = _validate(run)["mean"]
            rows.append({"step": s, "samples": s * batch, "train_s": train_s, "val_ratio_refl": v["ratio_refl"],
                         "val_refl": v["model_refl"]})
            log(f"batch {batch:5d} {precision} step {s:5d} samples {s * batch:7d} {train_s:6.0f} s  x flat {v['ratio_refl']:.3f}")
    return {"batch": batch, "precision": precision, "lr": lr, "warmup_steps": warm, "curve": rows}


def figure(curves: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    for c in curves:
        x = [r["samples"] / 1e3 for r in c["curve"]]
        y = [r["val_ratio_refl"] for r in c["curve"]]
        lab = f"batch {c['batch']}, {c['precision']}, lr {c['lr']:.1e}"
        ax[0].plot(x, y, marker="o", ms=3, label=lab)
        ax[1].plot([r["train_s"] / 60 for r in c["curve"]], y, marker="o", ms=3, label=lab)
    ax[0].set_xlabel("training samples seen (thousands)")
    ax[1].set_xlabel("training wall time, 1 CPU thread (minutes)")
    ax[0].set_ylabel("validation error / flat-guess error (lower is better)")
    fig.legend(*ax[0].get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False, fontsize=9)
    for a in ax:
        a.grid(alpha=0.3)
    fig.suptitle("Batch size at d = 64: the v2 recipe's augmentation on benchmark v3's 32 training sets, from "
                 "scratch, one seed\n(wall time measured on a shared 2-core CPU: compare samples, not minutes)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    out = paths.root() / "figures" / "batch_size_study"
    for ext in ("png", "pdf"):
        fig.savefig(f"{out}.{ext}", dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200_000, help="training samples per batch size")
    ap.add_argument("--batches", nargs="+", default=["64", "256", "1024", "4096"],
                    help="batch sizes, each optionally with a precision: 256:bfloat16 (default float32)")
    ap.add_argument("--evals", type=int, default=8, help="validation points per curve")
    ap.add_argument("--quick", action="store_true", help="tiny run (checks that the script works)")
    ap.add_argument("--plot", action="store_true", help="redraw the figure from results/bench/batch_size_study.json")
    ap.add_argument("--batch-path", default="", help="TrainConfig.batches (empty = the default)")
    args = ap.parse_args()
    if args.plot:
        import json

        figure(json.loads((paths.root() / "results" / "bench" / "batch_size_study.json").read_text())["curves"])
        return
    torch.set_num_threads(1)
    over = {"val_frames": 100}
    if args.batch_path:
        over["batches"] = args.batch_path
    if args.quick:
        args.samples, args.batches, args.evals, over = 256, ["16", "64:bfloat16"], 2, {**over, "val_frames": 4,
                                                                                      "train_stride": 50}
    configs = [(int(b.split(":")[0]), b.split(":")[1] if ":" in b else "float32") for b in args.batches]
    curves = [curve(b, args.samples, args.evals, over, p) for b, p in configs]
    key = lambda c: f"{c['batch']}:{c['precision']}"  # noqa: E731
    best = {key(c): min(r["val_ratio_refl"] for r in c["curve"]) for c in curves}
    per_hour = {key(c): c["curve"][-1]["samples"] / c["curve"][-1]["train_s"] * 3600 for c in curves}
    write("batch_size_study" + ("_quick" if args.quick else ""),
          {"curves": curves, "best_val_ratio": best, "samples_per_cpu_hour": per_hour,
           "samples_per_batch_size": args.samples, "overrides": over,
           "note": "v2 recipe augmentation on benchmark v3's training sets from scratch (no init_from), d = 64, 1 "
                   "thread, one seed; wall times were measured on a shared CPU (other trainings running); "
                   "lr = 5e-4 sqrt(B/64), linear warm-up over 10 % of the steps; train_s excludes validation"})
    if not args.quick:
        figure(curves)


if __name__ == "__main__":
    main()
