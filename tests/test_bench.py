"""The benchmark scripts stay runnable: each runs at its smallest size on CPU and writes its JSON fields."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_throughput_runs_small_on_cpu(tmp_path):
    out = tmp_path / "tt.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "train_throughput.py"), "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT / "bench")
    assert r.returncode == 0, r.stdout + r.stderr
    body = json.loads(out.read_text())
    rows = body["rows"]
    assert {r["stream"] for r in rows} >= {"N=17", "N=133"} and body["peak_matmul_tflop_per_s"] > 0
    padded = next(r for r in rows if r["batching"] == "padded to 133")
    bucketed = next(r for r in rows if r["batching"] == "bucketed")
    assert bucketed["useful_token_fraction"] == 1.0 and 0 < padded["useful_token_fraction"] < 0.5
    assert all(r["samples_per_s"] > 0 and 0 < r["utilisation_of_peak"] for r in rows)
