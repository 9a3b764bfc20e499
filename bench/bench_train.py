"""End-to-end training throughput on the open benchmark (view synthesis + forward + loss + backward + AdamW) and
the cost of padding: bucketed batches (one category per batch, nothing padded) vs mixed batches padded to the
longest sample in the batch vs mixed batches padded to a global maximum (what we avoid).

Writes results/bench/train.json. Run: ``make bench`` or ``python bench/bench_train.py`` (needs the open data).
"""

import time

import numpy as np
import torch
from common import devices, write

from lfm.config import ModelConfig
from lfm.data import benchmark
from lfm.data.dataset import BatchSampler, FrameDataset
from lfm.model import LFM, model_flops
from lfm.train import train_step


def run(ds, sampler, model, opt, device, steps, pad_to=None):
    amp = device.type == "cuda"
    rng = np.random.default_rng(0)
    samples = tokens = real = 0
    t0 = time.perf_counter()
    for _ in range(steps):
        b = ds.batch(sampler.next(), seed=int(rng.integers(2**63)), camera="upright", projection="perspective")
        if pad_to is not None and b.points2d.shape[1] < pad_to:  # a global maximum: pad every batch to it
            n = pad_to - b.points2d.shape[1]
            b.points2d = torch.nn.functional.pad(b.points2d, (0, 0, 0, n))
            b.target = torch.nn.functional.pad(b.target, (0, 0, 0, n))
            b.mask = torch.nn.functional.pad(b.mask, (0, n))
            b.adjacency = torch.nn.functional.pad(b.adjacency, (0, n, 0, n))
        train_step(model, opt, b.to(device), amp=amp)  # the step of lfm.train
        samples += b.points2d.shape[0]
        tokens += b.points2d.shape[0] * b.points2d.shape[1]
        real += int(b.mask.sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return {"samples_per_s": samples / dt, "padding_fraction": 1 - real / tokens, "steps": steps, "seconds": dt}


def main():
    splits = {c: benchmark.split_category(c) for c in benchmark.CATEGORIES}
    ds = FrameDataset({c: s.train for c, s in splits.items()})
    n_max = max(s.train.n_keypoints for s in splits.values())
    cfg = ModelConfig(d_model=64, n_heads=4, n_layers=4, xy_residual=True)
    rows = []
    for device in devices():
        B = 256 if device.type == "cuda" else 64
        steps = 200 if device.type == "cuda" else 60
        for mode, bucket, pad in (("bucketed", True, None), ("mixed, pad to batch max", False, None),
                                  ("mixed, pad to global max", False, n_max)):
            torch.manual_seed(0)
            model = LFM.from_config(cfg).to(device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
            sampler = BatchSampler(ds, B, bucket=bucket, seed=0)
            run(ds, sampler, model, opt, device, 5, pad)  # warm-up
            r = run(ds, sampler, model, opt, device, steps, pad)
            rows.append({"device": device.type, "batch": B, "mode": mode, **r})
            print(f"{device.type} {mode:26s} {r['samples_per_s']:8.0f} samples/s, padding {r['padding_fraction']:.0%}")
    flops = {n: model_flops(cfg, n) for n in (12, 27, 91)}
    write("train", {"config": {"model": cfg.__dict__, "categories": list(benchmark.CATEGORIES)}, "rows": rows,
                    "forward_flops_per_sample": flops,
                    "note": "samples/s include 2D view synthesis on the CPU; 3 x forward FLOPs per training sample"})


if __name__ == "__main__":
    main()
