"""``lfm.lift`` with the shipped checkpoint: latency of one input (batch 1) and throughput at batch 1024, for a
17-keypoint body (skeleton given) and a 133-keypoint whole body (fallback kNN graph). Includes normalisation,
the model and the orthographic camera fit (100 refinement steps). Writes results/bench/lift.json."""

import numpy as np
import torch
from common import devices, timeit, write

from lfm import lifting as L


def main():
    rng = np.random.default_rng(0)
    rows = []
    for device in devices():
        for N, edges in ((17, np.stack([np.arange(16), np.arange(1, 17)], 1)), (133, None)):
            for B in (1, 1024):
                p = rng.normal(size=(B, N, 2)).astype(np.float32)
                t = timeit(lambda: L.lift(p, edges=edges, device=str(device)), device, warmup=2, repeat=10,
                           budget_s=20)
                rows.append({"device": device.type, "keypoints": N, "batch": B, "seconds": t,
                             "samples_per_s": B / t, "graph": "edges" if edges is not None else "fallback kNN"})
                print(f"{device.type} N={N:3d} batch {B:5d}: {t * 1e3:8.1f} ms, {B / t:9.0f} samples/s")
    write("lift", {"checkpoint": str(L.DEFAULT_CHECKPOINT.name), "rows": rows, "threads": torch.get_num_threads()})


if __name__ == "__main__":
    main()
