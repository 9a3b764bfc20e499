"""CPU training-step throughput, side by side: float32 vs bf16 autocast vs torch.compile, 1 vs 2 threads, d = 64 and
128, N = 17 and 41; and the share of a real training step spent in 2D synthesis and batching.

Writes results/bench/cpu.json. Run: ``python bench/bench_cpu.py [--quick]`` on an otherwise idle machine (the
numbers are samples/s; another process on the same cores lowers them). A configuration is a candidate for the CPU
default only if it is faster *and* its loss curve matches float32 (``--curves STEPS`` compares them on the same
batches).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import write

from lfm.config import ModelConfig
from lfm.data.dataset import Batch
from lfm.model import LFM, model_flops
from lfm.train import train_step


def toy_batch(B: int, N: int, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(B, N, 2, generator=g)
    t = torch.randn(B, N, 3, generator=g)
    A = torch.rand(B, N, N, generator=g) < 0.15
    return Batch(p, t, torch.ones(B, N, dtype=torch.bool), A | A.transpose(1, 2), ["toy"] * B, np.zeros(B),
                 np.zeros((B, N), np.int64))


def step_rate(d: int, N: int, mode: str, threads: int, B: int = 64, steps: int = 30) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=d, n_heads=4, n_layers=4)
    model = LFM(cfg)
    fwd = model
    if mode == "compile":
        try:
            fwd = torch.compile(model, dynamic=False)
        except Exception as e:  # noqa: BLE001 - compile is optional: report why it fell back
            return {"error": f"{type(e).__name__}: {e}"}
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    b = toy_batch(B, N)
    amp = mode == "bf16"
    t0 = time.perf_counter()
    try:
        for _ in range(3):  # warm-up (compilation happens here)
            train_step(fwd, opt, b, amp=amp)
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"}
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        train_step(fwd, opt, b, amp=amp)
    dt = time.perf_counter() - t0
    sps = steps * B / dt
    return {"samples_per_s": sps, "gflop_per_s": 3 * model_flops(cfg, N) * sps / 1e9, "warmup_s": warm}


def synthesis_share(steps: int = 40) -> dict:
    """A real training step of the v2 recipe: time in draw_batch (views, augmentation, collation) vs the model."""
    from lfm.train import draw_batch, read_recipe, recipe_configs, setup

    import tempfile

    out = tempfile.mkdtemp(prefix="lfm-bench-")  # setup writes nothing; a run folder is still required
    (name, m, t), *_ = recipe_configs(read_recipe("params/train_open_v2.yaml"), out, {"threads": 1})
    run = setup(m, t, out)
    tb = ts = 0.0
    for i in range(steps + 5):
        t0 = time.perf_counter()
        b = draw_batch(run)
        t1 = time.perf_counter()
        train_step(run.model, run.opt, b)
        t2 = time.perf_counter()
        if i >= 5:
            tb, ts = tb + t1 - t0, ts + t2 - t1
    return {"batch_ms": 1e3 * tb / steps, "model_ms": 1e3 * ts / steps, "batch_share": tb / (tb + ts),
            "recipe": "params/train_open_v2.yaml", "threads": 1}


def curves(steps: int, mode: str, d: int = 64, N: int = 27) -> dict:
    """Loss of float32 and ``mode`` on the same sequence of toy batches (same init)."""
    out = {}
    for m in ("fp32", mode):
        torch.manual_seed(0)
        model = LFM(ModelConfig(d_model=d, n_heads=4, n_layers=4))
        fwd = torch.compile(model) if m == "compile" else model
        opt = torch.optim.AdamW(model.parameters(), 1e-3)
        out[m] = [train_step(fwd, opt, toy_batch(64, N, seed=s % 50), amp=m == "bf16") for s in range(steps)]
    a, b = np.array(out["fp32"]), np.array(out[mode])
    return {"steps": steps, "final_fp32": float(a[-50:].mean()), f"final_{mode}": float(b[-50:].mean()),
            "max_rel_diff_last50": float(np.abs(b[-50:].mean() / a[-50:].mean() - 1))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few steps per row (checks that the script runs)")
    ap.add_argument("--curves", type=int, default=0, help="compare loss curves of float32 and the fastest mode")
    ap.add_argument("--only-curves", metavar="MODE", help="only compare the loss curves of float32 and MODE "
                    "(bf16 or compile) over --curves steps; writes results/bench/cpu_curves_MODE.json")
    args = ap.parse_args()
    if args.only_curves:
        write(f"cpu_curves_{args.only_curves}", {"curves": {args.only_curves: curves(args.curves or 2000,
                                                                                     args.only_curves)},
                                                   "note": "same init, same sequence of toy batches (d = 64, N = 27, "
                                                           "batch 64); mean loss of the last 50 steps"})
        return
    steps = 3 if args.quick else 30
    rows = []
    for threads in (1, 2):
        for d in (64, 128):
            for N in (17, 41):
                for mode in ("fp32", "bf16", "compile"):
                    r = step_rate(d, N, mode, threads, steps=steps)
                    rows.append({"threads": threads, "d_model": d, "N": N, "mode": mode, **r})
                    print(rows[-1], flush=True)
    best = {}
    for r in rows:
        key = (r["threads"], r["d_model"], r["N"])
        if "samples_per_s" in r and r["samples_per_s"] > best.get(key, (0, ""))[0]:
            best[key] = (r["samples_per_s"], r["mode"])
    body = {"rows": rows, "fastest": [{"threads": k[0], "d_model": k[1], "N": k[2], "mode": v[1]}
                                      for k, v in best.items()],
            "synthesis": synthesis_share(8 if args.quick else 40),
            "note": "toy batches of 64 samples, all tokens valid, kNN-like random graph; forward + Procrustes loss + "
                    "backward + AdamW; 3 x forward FLOPs per sample"}
    if args.curves:
        modes = {m for (_, m) in best.values() if m != "fp32"}
        body["curves"] = {m: curves(args.curves, m) for m in sorted(modes)}
    write("cpu" if not args.quick else "cpu_quick", body)


if __name__ == "__main__":
    main()
