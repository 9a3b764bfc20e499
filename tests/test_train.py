"""Training: a killed run resumed from its checkpoint ends exactly like an uninterrupted one; bad checkpoints."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from lfm.checkpoint import CheckpointError
from lfm.checkpoint import load as load_checkpoint

from .conftest import needs_mirror

TINY = {
    "model": {"d_model": 16, "n_heads": 2, "n_layers": 1},
    "train": {"categories": ["mouse_sleap", "face"], "batch_size": 8, "epoch_steps": 4, "max_epochs": 6,
              "val_frames": 8, "seed": 1, "threads": 1, "device": "cpu"},
}


def run_train(params, out, env):
    return subprocess.Popen([sys.executable, "-m", "lfm.cli", "train", "-f", str(params), "-o", str(out),
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@needs_mirror
def test_kill_and_resume_reaches_the_same_metrics(tmp_path):
    params = tmp_path / "tiny.yaml"
    params.write_text(yaml.safe_dump(TINY))
    env = dict(os.environ, LFM_OFFLINE="1", LFM_DATA=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    full = run_train(params, tmp_path / "full", env)
    assert full.wait(timeout=300) == 0, full.stdout.read()
    # the second run is killed (SIGKILL, no clean-up) once it has written a checkpoint of epoch >= 2
    killed = run_train(params, tmp_path / "killed", env)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and killed.poll() is None:
        if last.exists() and torch.load(last, weights_only=False)["state"]["epoch"] >= 2:
            break
        time.sleep(0.05)
    epoch_at_kill = torch.load(last, weights_only=False)["state"]["epoch"]
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert epoch_at_kill < 6, "the run finished before it could be killed; make TINY longer"
    load_checkpoint(last)  # whole and readable after SIGKILL (atomic writes)
    resumed = run_train(params, tmp_path / "killed", env)
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and "resumed" in out, out
    a = yaml.safe_load((tmp_path / "full" / "summary.json").read_text())
    b = yaml.safe_load((tmp_path / "killed" / "summary.json").read_text())
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-6)
    assert a["best_val_refl"] == pytest.approx(b["best_val_refl"], rel=1e-6)
    assert a["epochs"] == b["epochs"] == 6


@needs_mirror
def test_resume_with_other_settings_is_refused(tmp_path):
    from lfm.config import ModelConfig, TrainConfig
    from lfm.train import train

    os.environ.setdefault("LFM_OFFLINE", "1")
    cfg = TrainConfig(categories=("mouse_sleap",), batch_size=4, epoch_steps=2, max_epochs=1, val_frames=4,
                      device="cpu")
    train(ModelConfig(d_model=8, n_heads=2, n_layers=1), cfg, tmp_path, progress=False, log=lambda s: None)
    with pytest.raises(CheckpointError, match="other settings"):
        train(ModelConfig(d_model=16, n_heads=2, n_layers=1), cfg, tmp_path, progress=False, log=lambda s: None)


def test_unreadable_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match="not written by lfm.train"):
        load_checkpoint(other)


@needs_mirror
def test_warmup_raises_the_learning_rate_linearly_then_holds_it(tmp_path, monkeypatch):
    """lr of step s (0-based) is lr * (s + 1) / warmup_steps during the warm-up, then the configured lr."""
    import lfm.train as T
    from lfm.config import ModelConfig, TrainConfig

    os.environ.setdefault("LFM_OFFLINE", "1")
    seen, real = [], T.train_step
    monkeypatch.setattr(T, "train_step", lambda model, opt, *a, **k: seen.append(opt.param_groups[0]["lr"]) or
                        real(model, opt, *a, **k))
    cfg = TrainConfig(categories=("mouse_sleap",), batch_size=4, epoch_steps=3, max_epochs=2, val_frames=4,
                      device="cpu", lr=2e-3, warmup_steps=4)
    T.train(ModelConfig(d_model=8, n_heads=2, n_layers=1), cfg, tmp_path, progress=False, log=lambda s: None)
    assert seen == pytest.approx([2e-3 * s / 4 for s in (1, 2, 3, 4)] + [2e-3, 2e-3])


@needs_mirror
def test_training_sets_the_long_lived_objects_aside_from_the_collector_and_gives_them_back(tmp_path, monkeypatch):
    """run_epochs steps with the imports, data and model frozen out of Python's collector (gc.freeze), and unfreezes
    them when it ends, also when a step fails, so that a process training many models frees each one."""
    import gc

    import lfm.train as T
    from lfm.config import ModelConfig, TrainConfig

    os.environ.setdefault("LFM_OFFLINE", "1")
    frozen, real = [], T.train_step
    monkeypatch.setattr(T, "train_step", lambda *a, **k: frozen.append(gc.get_freeze_count()) or real(*a, **k))
    cfg = TrainConfig(categories=("mouse_sleap",), batch_size=4, epoch_steps=2, max_epochs=1, val_frames=4,
                      device="cpu")
    T.train(ModelConfig(d_model=8, n_heads=2, n_layers=1), cfg, tmp_path / "a", progress=False, log=lambda s: None)
    assert len(frozen) == 2 and min(frozen) > 10_000  # the imports alone are tens of thousands of objects
    assert gc.get_freeze_count() == 0

    def fail(*a, **k):
        raise RuntimeError("a failing step")

    monkeypatch.setattr(T, "train_step", fail)
    with pytest.raises(RuntimeError, match="a failing step"):
        T.train(ModelConfig(d_model=8, n_heads=2, n_layers=1), cfg, tmp_path / "b", progress=False,
                log=lambda s: None)
    assert gc.get_freeze_count() == 0
