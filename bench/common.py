"""Shared helpers of the benchmark scripts: timing, peak matmul rate, output files (results/bench/*.json)."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lfm import paths, results  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device: torch.device, warmup: int = 2, repeat: int = 10, budget_s: float = 20.0) -> float:
    """Median wall time of ``fn()`` in seconds (at least 3 and at most ``repeat`` runs within ``budget_s``)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times, t_start = [], time.perf_counter()
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() - t_start < budget_s):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 2048) -> float:
    """Measured dense matmul rate (FLOP/s) on this device: the reference for 'utilisation'."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = timeit(lambda: a @ b, device, warmup=2, repeat=10, budget_s=10)
    return 2 * n**3 / t


def devices() -> list[torch.device]:
    return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


def write(name: str, body: dict) -> Path:
    out = paths.root() / "results" / "bench" / f"{name}.json"
    results.write_json(out, {"provenance": results.provenance(), **body})
    print(f"wrote {out.relative_to(paths.root())}")
    return out
