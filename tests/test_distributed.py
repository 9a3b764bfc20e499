"""Data-parallel training (torchrun, gloo on CPU): two processes with a global batch of B follow the trajectory of one
process with batch B on the numpy reference path (every rank draws the global batch, takes its rows); with batches
made on the device each rank draws its own rows from its own stream. Tolerance: relative 1e-4 on every epoch's mean loss and the validation metric (the two differ
only in the order of floating-point sums: gradients are averaged across ranks instead of over one batch)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import yaml

from .conftest import needs_mirror

TINY = {
    "model": {"d_model": 16, "n_heads": 2, "n_layers": 1},
    "train": {"categories": ["mouse_sleap", "face"], "batch_size": 8, "epoch_steps": 3, "max_epochs": 2,
              "val_frames": 8, "seed": 3, "threads": 1, "device": "cpu", "bucket": False, "rig_aug": 0.5,
              "graph": "mix", "batches": "numpy", "precision": "float32"},  # exact 1 vs 2 processes: no bf16
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_mirror
def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump(TINY))
    env = dict(os.environ, LFM_OFFLINE="1", LFM_DATA=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               MASTER_ADDR="127.0.0.1")
    one = subprocess.run([sys.executable, "-m", "lfm.cli", "train", "-f", str(params), "-o", str(tmp_path / "one"),
                          "--no-progress"], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stdout + one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "lfm.cli", "train",
                          "-f", str(params), "-o", str(tmp_path / "two"), "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stdout + two.stderr
    a = yaml.safe_load((tmp_path / "one" / "summary.json").read_text())
    b = yaml.safe_load((tmp_path / "two" / "summary.json").read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    assert a["samples"] == b["samples"] == 2 * 3 * 8 and 2 * b["samples_rank0"] == a["samples_rank0"]  # split, not copied
    assert [h["loss"] for h in b["history"]] == pytest.approx([h["loss"] for h in a["history"]], rel=1e-4)
    assert b["best_val_refl"] == pytest.approx(a["best_val_refl"], rel=1e-4)
    assert sorted(p.name for p in (tmp_path / "two").glob("*.pt")) == ["best.pt", "last.pt"]  # rank 0 wrote them


@needs_mirror
def test_two_processes_with_device_batches_draw_their_own_rows(tmp_path):
    params = tmp_path / "tiny.yaml"
    tiny = {"model": TINY["model"], "train": {**TINY["train"], "bucket": True, "batches": "device", "max_epochs": 1}}
    params.write_text(yaml.safe_dump(tiny))
    env = dict(os.environ, LFM_OFFLINE="1", LFM_DATA=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               MASTER_ADDR="127.0.0.1")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "lfm.cli", "train",
                          "-f", str(params), "-o", str(tmp_path / "two"), "--no-progress"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stdout + two.stderr
    b = yaml.safe_load((tmp_path / "two" / "summary.json").read_text())
    assert b["processes"] == 2 and b["samples"] == 3 * 8 and b["samples_rank0"] == 3 * 4
    assert np.isfinite(b["history"][0]["loss"])
