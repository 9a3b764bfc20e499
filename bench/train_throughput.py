"""Training throughput at scale: samples/s, achieved TFLOP/s (from lfm.model.model_flops), utilisation of the
device's measured bf16 (GPU) or float32 (CPU) matmul peak, and peak memory, for d = 256 and 512 at N = 17, 26 and
133 and for a mixed stream (70 % N = 17, 20 % N = 26, 10 % N = 133), bucketed (one N per batch, no padding) vs padded
to the stream's maximum (the useful-token fraction says what padding wastes).

Run on a GPU: ``python bench/train_throughput.py`` (bf16 autocast, fused AdamW, SDPA; ``--compile`` adds
torch.compile). On CPU it runs a small size (``--quick``; tests/test_bench.py runs it so the script stays working).
Writes results/bench/train_throughput_<device>.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from common import peak_matmul_flops, sync, write

from lfm.config import ModelConfig
from lfm.model import LFM, model_flops
from lfm.results import write_json
from lfm.train import train_step

from bench_cpu import toy_batch

MIX = ((17, 0.7), (26, 0.2), (133, 0.1))


def run(cfg: ModelConfig, device, stream, B: int, steps: int, compile_: bool, pad_to: int | None) -> dict:
    torch.manual_seed(0)
    model = LFM(cfg).to(device)
    fwd = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), 1e-4, fused=device.type == "cuda")
    amp = device.type == "cuda"
    batches = []
    for i, N in enumerate(stream[: min(len(stream), 16)]):  # a few distinct batches, reused
        b = toy_batch(B, N, seed=i)
        if pad_to and N < pad_to:
            n = pad_to - N
            b = type(b)(torch.nn.functional.pad(b.points2d, (0, 0, 0, n)), torch.nn.functional.pad(b.target, (0, 0, 0, n)),
                        torch.nn.functional.pad(b.mask, (0, n)), torch.nn.functional.pad(b.adjacency, (0, n, 0, n)),
                        b.category, b.frame, b.slots)
        batches.append(b.to(device))
    for b in batches[:3]:
        train_step(fwd, opt, b, amp=amp)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t0 = time.perf_counter()
    flops = useful = tokens = 0
    for s in range(steps):
        b, N = batches[s % len(batches)], stream[s % len(batches)]
        train_step(fwd, opt, b, amp=amp)
        L = b.points2d.shape[1]
        flops += 3 * model_flops(cfg, L) * B  # what the device computes (padding included)
        useful += N * B
        tokens += L * B
    sync(device)
    dt = time.perf_counter() - t0
    return {"samples_per_s": steps * B / dt, "tflop_per_s": flops / dt / 1e12, "useful_token_fraction": useful / tokens,
            "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes and few steps (CPU check)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--out", help="output JSON (default results/bench/train_throughput_<device>.json)")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    quick = args.quick or device.type == "cpu"
    widths = ((32, 4),) if quick else ((256, 4), (512, 8))
    sizes = (17, 26, 133)
    B, steps = (8, 4) if quick else (256, 50)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = peak_matmul_flops(device, dtype, n=512 if quick else 8192)
    rng = np.random.default_rng(0)
    mixed = list(rng.choice([n for n, _ in MIX], size=200, p=[p for _, p in MIX]))
    rows = []
    for d, h in widths:
        cfg = ModelConfig(d_model=d, n_heads=h, n_layers=4)
        for N in sizes:
            r = run(cfg, device, [N], B, steps, args.compile, None)
            rows.append({"d_model": d, "stream": f"N={N}", "batching": "one N", **r})
        for batching, pad in (("bucketed", None), ("padded to 133", 133)):
            r = run(cfg, device, mixed, B, steps, args.compile, pad)
            rows.append({"d_model": d, "stream": "mixed 70/20/10 % of N=17/26/133", "batching": batching, **r})
    for r in rows:
        r["utilisation_of_peak"] = r["tflop_per_s"] * 1e12 / peak
        print(r, flush=True)
    body = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
            "peak_matmul_tflop_per_s": peak / 1e12, "peak_dtype": str(dtype), "batch": B, "steps": steps,
            "compile": args.compile, "quick": quick, "rows": rows,
            "note": "toy batches (all tokens valid, random graph); forward + Procrustes loss + backward + AdamW; "
                    "3 x forward FLOPs per sample; padded batches count their padding as computed FLOPs"}
    if args.out:
        from lfm.results import provenance

        write_json(Path(args.out), {"provenance": provenance(), **body})
    else:
        write(f"train_throughput_{device.type}", body)


if __name__ == "__main__":
    main()
