"""Throughput of lfm.geometry.similarity_align vs roma.rigid_points_registration (weights + scale), same batch.

Goal (issue 3): not slower than roma. B = 4096, N = 17 and 133, float32, masks with ~15 % hidden points;
CPU always, CUDA when present. Writes results/bench/align.json. Run: ``make bench`` or
``python bench/bench_align.py`` (needs ``pip install -e .[bench]`` for roma).
"""

import torch
from common import devices, timeit, write

from lfm.geometry import similarity_align


def main():
    try:
        import roma
    except ImportError:
        raise SystemExit("roma is not installed: pip install -e '.[bench]' (or make bench)") from None
    rows = []
    for device in devices():
        for N in (17, 133):
            B = 4096
            g = torch.Generator().manual_seed(0)
            x = torch.randn(B, N, 3, generator=g).to(device)
            y = torch.randn(B, N, 3, generator=g).to(device)
            mask = (torch.rand(B, N, generator=g) < 0.85).to(device)
            w = mask.float()
            t_ours = timeit(lambda: similarity_align(x, y, mask, scale=True), device, repeat=30)
            t_roma = timeit(lambda: roma.rigid_points_registration(x, y, weights=w, compute_scaling=True), device,
                            repeat=30)
            ours = similarity_align(x, y, mask, scale=True)
            R_roma, t_r, s_roma = roma.rigid_points_registration(x, y, weights=w, compute_scaling=True)
            agree = float((ours.R - R_roma.transpose(1, 2)).abs().max())  # roma: columns, lfm: rows
            row = {
                "device": device.type, "B": B, "N": N, "dtype": "float32",
                "lfm_ms": 1e3 * t_ours, "roma_ms": 1e3 * t_roma,
                "lfm_samples_per_s": B / t_ours, "roma_samples_per_s": B / t_roma,
                "speedup_vs_roma": t_roma / t_ours, "max_abs_R_difference": agree,
            }
            rows.append(row)
            print(f"{device.type} N={N}: lfm {1e3 * t_ours:.1f} ms, roma {1e3 * t_roma:.1f} ms "
                  f"(x{t_roma / t_ours:.2f}), max |R diff| {agree:.1e}")
    write("align", {"benchmark": "similarity_align vs roma.rigid_points_registration",
                    "roma": roma.__version__ if hasattr(roma, "__version__") else None,
                    "protocol": "median wall time of one batched call, weights = bool mask (~85% valid), scale on",
                    "rows": rows})


if __name__ == "__main__":
    main()
