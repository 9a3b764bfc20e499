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


def test_selfsup_toy_runs_small_and_scores_against_flat(tmp_path):
    """The 2D-only toy's score is the flat guess's ratio: an untrained xy-residual model starts near flat (its
    decoder's output is small next to the xy it adds), and 3D supervision moves it."""
    out = tmp_path / "toy.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "selfsup_toy.py"), "--steps", "100", "--only",
                        "sup,c3dpo", "--out", str(out)], capture_output=True, text=True, timeout=600,
                       cwd=ROOT / "bench")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = json.loads(out.read_text())["objectives"]
    for row in rows.values():
        assert [c["step"] for c in row["curve"]] == [0, 100]
        assert 0.8 < row["curve"][0]["ratio_to_flat"] < 1.3
    assert rows["sup"]["final_ratio_to_flat"] < rows["sup"]["curve"][0]["ratio_to_flat"] - 0.05
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "selfsup_toy.py"), "--only", "nope"],
                         capture_output=True, text=True, cwd=ROOT / "bench")
    assert bad.returncode == 2 and "unknown objectives ['nope']" in bad.stderr
