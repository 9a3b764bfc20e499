"""The whole CPU training step (draw batch + forward + loss + backward + AdamW) of the v2 recipe at d = 64: the v2
step as shipped (commit aed1417: batch 64, numpy batches, eager; run from a git worktree of that commit) against
the v3 recipe's step (device-made batches, the new layer, the fused CPU attention and pointwise kernels of
lfm.native, bf16 linears where the CPU has bf16 instructions, fused AdamW, batch 256), at 1 and 2 threads, side by
side, on the same 23 training sets.

Each configuration runs in its own process (``OMP_NUM_THREADS`` and ``torch.set_num_threads``), from scratch
(no init_from), with the same seed, after a warm-up; the two alternate in ``--rounds`` rounds (default 3) that
share ``--samples`` training samples per configuration, and the speedup is the median of the rounds' ratios. Writes
results/bench/train_step_cpu.json. Run: ``python bench/train_step_cpu.py [--batch 256] [--samples 20000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import write

ROOT = Path(__file__).resolve().parents[1]
V2_COMMIT = "aed1417"

SNIPPET = """
import json, sys, tempfile, time, torch
from lfm.train import draw_batch, read_recipe, recipe_configs, setup, train_step
threads, samples, over = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
torch.set_num_threads(threads)
out = tempfile.mkdtemp()
(_, m, t), *_ = recipe_configs(read_recipe("params/train_open_v2.yaml"), out,
                               {"threads": threads, "init_from": "", "val_frames": 4, **over})
run = setup(m, t, out)
for _ in range(5):
    train_step(run.forward, run.opt, draw_batch(run), amp=run.amp)
import contextlib, lfm.train
with getattr(lfm.train, "steady_gc", contextlib.nullcontext)():  # what run_epochs does around its loop (not in v2)
    n, t0 = 0, time.perf_counter()
    while n < samples:
        b = draw_batch(run)
        train_step(run.forward, run.opt, b, amp=run.amp)
        n += len(b.category)
    seconds = time.perf_counter() - t0
try:
    from lfm.model import attention_path
    path = attention_path(torch.device("cpu"))
except ImportError:  # the v2 tree: SDPA on every device
    path = "sdpa"
print(json.dumps({"samples": n, "seconds": seconds, "attention": path}))
"""


def measure(root: Path, threads: int, samples: int, over: dict) -> dict:
    from lfm import paths

    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=str(threads), LFM_OFFLINE="1",
               LFM_MIRROR=str(paths.mirror_dir()), LFM_DATA=str(paths.data_dir()))
    r = subprocess.run([sys.executable, "-c", SNIPPET, str(threads), str(samples), json.dumps(over)], cwd=root,
                       env=env, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
    m = json.loads(r.stdout.strip().splitlines()[-1])
    return {**m, "samples_per_s": m["samples"] / m["seconds"], "threads": threads, "overrides": over}


def old_tree() -> Path:
    """A worktree of the v2 commit (made once, in the temp folder)."""
    path = Path(tempfile.gettempdir()) / f"lfm-v2step-{V2_COMMIT}"
    if not (path / "lfm").is_dir():
        subprocess.run(["git", "worktree", "add", "-f", str(path), V2_COMMIT], cwd=ROOT, check=True)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=None, help="the new default's batch (default: TrainConfig's)")
    ap.add_argument("--samples", type=int, default=40000, help="timed samples per configuration")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (the samples are split over them)")
    ap.add_argument("--idle", action="store_true", help="record that nothing else ran on the machine")
    ap.add_argument("--old-root", help="a checkout of the v2 commit (default: a git worktree in the temp folder)")
    args = ap.parse_args()
    from lfm.config import TrainConfig

    from lfm.data.benchmark import TRAIN_SETS_OF
    from lfm.train import cpu_has_bf16, read_recipe

    batch = args.batch or read_recipe(ROOT / "params" / "train_open_v3.yaml")["stages"][-1]["train"]["batch_size"]
    old = Path(args.old_root) if args.old_root else old_tree()
    sets = list(TRAIN_SETS_OF["open-benchmark-v1"])  # the v2 recipe's 23 sets, the same for both trees
    rows = {}
    for threads in (1, 2):
        # the two steps alternate in rounds and the speedup is the median of the rounds' ratios: on a shared
        # machine the speed drifts (the same step measured 10-20 % apart an hour later), a ratio taken within a
        # round is what the drift leaves alone
        per = max(1, args.samples // args.rounds)
        rounds = []
        for _ in range(args.rounds):
            v2 = measure(old, threads, per, {"batch_size": 64, "categories": sets})
            new = measure(ROOT, threads, per, {"batch_size": batch, "batches": "device", "precision": "auto",
                                               "categories": sets})
            rounds.append({"v2_step": v2, "new_default": new, "ratio": new["samples_per_s"] / v2["samples_per_s"]})
            print(threads, rounds[-1]["ratio"], flush=True)
        med = lambda xs: float(np.median(xs))  # noqa: E731
        rows[f"threads_{threads}"] = {
            "v2_step": {**rounds[0]["v2_step"], "samples_per_s": med([r["v2_step"]["samples_per_s"] for r in rounds])},
            "new_default": {**rounds[0]["new_default"],
                            "samples_per_s": med([r["new_default"]["samples_per_s"] for r in rounds])},
            "speedup_vs_v2_step": med([r["ratio"] for r in rounds]),
            "rounds": [{"v2_samples_per_s": r["v2_step"]["samples_per_s"],
                        "new_samples_per_s": r["new_default"]["samples_per_s"], "ratio": r["ratio"]} for r in rounds]}
    write("train_step_cpu", {**rows, "speedup_vs_v2_step": rows["threads_1"]["speedup_vs_v2_step"],
                             "new_batch": batch, "v2_commit": V2_COMMIT, "d_model": 64, "sets": sets,
                             "cpu_bf16": cpu_has_bf16(),
                             "machine_idle": args.idle,
                             "note": "v2 recipe data and augmentation from scratch, whole step timed as one unit "
                                     "(draw batch + forward + loss + backward + AdamW), the two paths alternating "
                                     "in rounds, each run in its own process; samples_per_s and the speedup are "
                                     "medians over the rounds (the speedup: of the rounds' ratios); 'attention' "
                                     "says which attention each step used"})


if __name__ == "__main__":
    main()
