"""Training throughput of the LFM model: forward + Procrustes loss + backward, samples/s and FLOP utilisation.

Paper widths (d_model / heads): 64/4, 256/4, 512/8, 4 layers; N = 17 (a body rig) and 133 (H3WB whole body).
Utilisation = model FLOP/s (3 x forward FLOPs from lfm.model.model_flops x samples/s) / the dense matmul
rate measured on the same device and dtype. CPU float32; CUDA bf16 autocast when present.
Writes results/bench/model.json. Run: ``make bench`` or ``python bench/bench_model.py``.
"""

import torch
from common import devices, peak_matmul_flops, timeit, write

from lfm.graph import knn_adjacency
from lfm.losses import procrustes_mse
from lfm.model import LFM, model_flops

CONFIGS = [(64, 4), (256, 4), (512, 8)]


def main():
    rows = []
    for device in devices():
        amp = device.type == "cuda"
        peak = peak_matmul_flops(device, torch.bfloat16 if amp else torch.float32)
        print(f"{device.type}: measured matmul peak {peak / 1e9:.1f} GFLOP/s")
        for d_model, heads in CONFIGS:
            for N in (17, 133):
                B = (2048 if N == 17 else 512) if amp else (256 if N == 17 else 64)
                torch.manual_seed(0)
                model = LFM(ModelConfig(d_model=d_model, n_heads=heads, n_layers=4)).to(device)
                x = torch.randn(B, N, 2, device=device)
                mask = torch.ones(B, N, dtype=torch.bool, device=device)
                adj = knn_adjacency(x, mask, k=4)
                gt = torch.randn(B, N, 3, device=device)

                def step():
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        loss = procrustes_mse(model(x, mask, adj), gt, mask)
                    loss.backward()
                    model.zero_grad(set_to_none=True)

                t = timeit(step, device, warmup=1, repeat=5, budget_s=30)
                fwd = model_flops(ModelConfig(d_model=d_model, n_heads=heads, n_layers=4), N)
                achieved = 3 * fwd * B / t
                row = {
                    "device": device.type, "dtype": "bf16 autocast" if amp else "float32",
                    "d_model": d_model, "n_heads": heads, "n_layers": 4, "N": N, "batch": B,
                    "params": sum(p.numel() for p in model.parameters()),
                    "forward_gflops_per_sample": fwd / 1e9,
                    "train_samples_per_s": B / t, "step_ms": 1e3 * t,
                    "achieved_gflops": achieved / 1e9, "peak_matmul_gflops": peak / 1e9,
                    "utilisation": achieved / peak,
                }
                rows.append(row)
                print(f"  d={d_model:3d} N={N:3d} B={B}: {B / t:8.1f} samples/s, {achieved / 1e9:6.1f} GFLOP/s "
                      f"({100 * achieved / peak:4.1f} % of matmul peak)")
    write("model", {"benchmark": "LFM forward + procrustes_mse + backward (no optimizer step)",
                    "protocol": "median step time; all tokens valid; kNN(4) graph; training FLOPs = 3 x forward",
                    "rows": rows})


if __name__ == "__main__":
    main()
