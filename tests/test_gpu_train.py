"""bench/gpu_train.sh end to end on CPU at toy size: a prepared splits file, seconds of training, the files under
$OUT, and a second window that resumes the first."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from .conftest import needs_mirror

ROOT = Path(__file__).resolve().parents[1]


@needs_mirror
def test_gpu_train_window_runs_on_cpu_and_resumes(tmp_path):
    from lfm.data import benchmark
    from lfm.data.bundle import save_splits

    splits = {c: benchmark.split_category(c, train_stride=20) for c in ("mouse_sleap", "face")}
    save_splits(tmp_path / "splits.pkl.xz", splits)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "toy", "stages": [{"name": "s1", "model": {
        "d_model": 16, "n_heads": 2, "n_layers": 1}, "train": {"categories": ["mouse_sleap", "face"], "batch_size": 8,
        "epoch_steps": 3, "val_frames": 8, "device": "cpu", "threads": 1}}]}))
    out = tmp_path / "out"
    env = dict(os.environ, OUT=str(out), SKIP_CUDA_TESTS="1", PYTHON=sys.executable, LFM_OFFLINE="1",
               OVERRIDES="max_epochs=2")
    cmd = ["bash", str(ROOT / "bench" / "gpu_train.sh"), "1", str(recipe), str(tmp_path / "splits.pkl.xz")]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for f in ("model.pt", "evaluation.json", "throughput.json", "history.json", "last.pt"):
        assert 0 < (out / f).stat().st_size < 16 * 2**20, f
    ev = json.loads((out / "evaluation.json").read_text())
    assert {row["category"] for row in ev["rows"]} == {"mouse_sleap", "face"}
    w = torch.load(out / "model.pt", weights_only=False)
    assert w["dtype"] in ("float16", "float32") and ev["exported"] == w["dtype"]
    if w["dtype"] == "float16":
        assert abs(ev["float16_mean_refl"] / ev["float32_mean_refl"] - 1) <= 0.005
    assert json.loads((out / "throughput.json").read_text())["samples_per_s"] > 0
    assert len(json.loads((out / "history.json").read_text())["history"]) == 2
    # a second window, with the checkpoint brought back, continues the first
    out2 = tmp_path / "out2"
    env2 = dict(env, OUT=str(out2), RESUME=str(out / "last.pt"), OVERRIDES="max_epochs=3")
    r = subprocess.run(cmd, env=env2, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    h = json.loads((out2 / "history.json").read_text())["history"]
    assert [e["epoch"] for e in h] == [1, 2, 3]
