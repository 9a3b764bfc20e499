"""The CLI's errors: each bad input gives one line naming the file or option and the fix, exit status 1, nothing
written or lost; --debug shows the traceback; default outputs do not depend on the working directory."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from lfm import checkpoint, cli, paths
from lfm.config import ModelConfig, TrainConfig

HAVE_CHECKPOINT = checkpoint.DEFAULT.is_file()
needs_checkpoint = pytest.mark.skipif(not HAVE_CHECKPOINT, reason="no shipped checkpoint")


def _run(capsys, *argv):
    """``lfm ARGV`` in this process: (exit status, stdout, stderr)."""
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def points():
    rng = np.random.default_rng(0)
    return (rng.normal(size=(12, 2)) * 50 + 200).astype(np.float32)


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# ---- lfm lift: input files -------------------------------------------------------------------------------------

def _bad_inputs(tmp, points):
    good = tmp / "good.npz"
    np.savez(good, points2d=points)
    data = good.read_bytes()
    np.save(tmp / "points.npy", points)
    (tmp / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp / "fake.npz").write_bytes(b"PK\x03\x04 this is not a zip archive at all")
    (tmp / "notes.txt").write_text("x, y\n1, 2\n3, 4\n")
    (tmp / "text.npz").write_text("points2d = [[1, 2], [3, 4]]\n")
    (tmp / "empty.npz").write_bytes(b"")
    np.savez(tmp / "objects.npz", points2d=np.array([[1, 2], "a"], dtype=object))
    np.savez(tmp / "other.npz", keypoints=points)
    return {
        "points.npy": [".npy file", "np.savez('points.npz', points2d=np.load('points.npy'))"],
        "truncated.npz": ["damaged or truncated", "write it again", "np.savez"],
        "fake.npz": ["damaged or truncated", "np.savez"],
        "notes.txt": ["unknown pose file extension '.txt' (a text file)", "--format", "np.savez"],
        "text.npz": ["is a text file, not an .npz", "np.savez"],
        "empty.npz": ["is an empty file", "np.savez"],
        "objects.npz": ["object (pickled) array", "dtype=np.float32"],
        "other.npz": ["no array 'points2d' (found ['keypoints'])", "np.savez"],
        "missing.npz": ["does not exist", "np.savez"],
    }


def test_lift_bad_input_files_give_one_line_each(tmp_path, capsys, points):
    cases = _bad_inputs(tmp_path, points)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for name, wanted in cases.items():
        rc, out, err = _run(capsys, "lift", tmp_path / name, "-o", tmp_path / "out.npz")
        line = _one_line_error(err)
        assert rc == 1 and line.startswith("lfm lift: ") and str(tmp_path / name) in line, line
        for w in wanted:
            assert w in line, (name, line)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written, nothing changed


def test_lift_refuses_to_overwrite_its_input(tmp_path, capsys, points, monkeypatch):
    src = tmp_path / "x.npz"
    np.savez(src, points2d=points)
    data = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    for spelling in ("x.npz", "./x.npz", str(src)):  # the same file however it is written
        rc, _, err = _run(capsys, "lift", src, "-o", spelling)
        line = _one_line_error(err)
        assert rc == 1 and "is the input file" in line and "another output name" in line and "--force" in line
        assert src.read_bytes() == data
    if HAVE_CHECKPOINT:  # --force: the user asked for it
        rc, out, err = _run(capsys, "lift", src, "-o", src, "--force")
        assert rc == 0, err
        with np.load(src) as z:
            assert z["canonical"].shape == (12, 3)
    assert _files(tmp_path) == ["x.npz"]  # no temporary file left


@needs_checkpoint
def test_lift_bad_mask_and_rig_name_the_fix(tmp_path, capsys, points):
    np.savez(tmp_path / "soft.npz", points2d=points, mask=np.full(12, 0.4))
    rc, _, err = _run(capsys, "lift", tmp_path / "soft.npz", "-o", tmp_path / "o.npz")
    line = _one_line_error(err)
    assert rc == 1 and "soft.npz" in line and "mask has dtype float64" in line and "confidence > 0.5" in line
    np.savez(tmp_path / "body.npz", points2d=points)
    rc, _, err = _run(capsys, "lift", tmp_path / "body.npz", "-o", tmp_path / "o.npz", "--rig", "coco17")
    line = _one_line_error(err)
    assert rc == 1 and "rig 'coco17' has 17 keypoints but points2d has 12" in line
    rc, _, err = _run(capsys, "lift", tmp_path / "body.npz", "-o", tmp_path / "o.npz", "--rig", "cocoa")
    line = _one_line_error(err)
    assert "unknown rig 'cocoa'" in line and "closest: coco17" in line and "`lfm rigs` lists all" in line
    assert "mann_dog27" not in line and len(line) < 300  # the closest few, not all 50
    assert not (tmp_path / "o.npz").exists()
    np.savez(tmp_path / "coco.npz", points2d=np.random.default_rng(1).normal(size=(17, 2)))
    rc, out, err = _run(capsys, "lift", tmp_path / "coco.npz", "-o", tmp_path / "o.npz", "--rig", "coco17")
    assert rc == 0 and "rig:coco17" in out
    rc, _, err = _run(capsys, "lift", tmp_path / "coco.npz", "-o", tmp_path / "o2.npz", "--checkpoint",
                      tmp_path / "none.pt")
    line = _one_line_error(err)
    assert "none.pt does not exist" in line and not (tmp_path / "o2.npz").exists()
    assert line.startswith(f"lfm lift: --checkpoint {tmp_path / 'none.pt'}") and "coco.npz" not in line


def test_debug_shows_the_traceback(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((5, 2)))
    cmd = [sys.executable, "-m", "lfm.cli"]
    r = subprocess.run(cmd + ["lift", str(tmp_path / "p.npy"), "-o", str(tmp_path / "o.npz")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    for argv in (["--debug", "lift", str(tmp_path / "p.npy")], ["lift", str(tmp_path / "p.npy"), "--debug"]):
        r = subprocess.run(cmd + argv + ["-o", str(tmp_path / "o.npz")], capture_output=True, text=True)
        assert r.returncode != 0 and "Traceback" in r.stderr and "CLIError" in r.stderr


# ---- lfm train: the run folder ---------------------------------------------------------------------------------

def _fake_train(monkeypatch, calls):
    import lfm.train

    def fake(model_cfg, cfg, out_dir, **kw):
        calls.append(out_dir)
        return {"stopped": "max_epochs", "epochs": 0, "best_val_refl": float("nan")}

    monkeypatch.setattr(lfm.train, "train", fake)


def test_train_damaged_last_pt_says_how_to_start_over(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    buf = run / "full.pt"
    checkpoint.save(buf, {"model": {"w": np.zeros(1000)}, "model_config": {}})
    (run / "last.pt").write_bytes(buf.read_bytes()[:300])  # cut short
    buf.rename(run / "best.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    calls = []
    _fake_train(monkeypatch, calls)
    rc, _, err = _run(capsys, "train", "-o", run)
    line = _one_line_error(err)
    assert rc == 1 and calls == []  # stopped before any training
    assert f"cannot resume {run}" in line and str(run / "last.pt") in line and "could not be read" in line
    assert "--restart" in line and "-o" in line and f"{run / 'best.pt'} is intact" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    (run / "best.pt").unlink()
    rc, _, err = _run(capsys, "train", "-o", run)
    assert "is intact" not in _one_line_error(err)
    rc, _, err = _run(capsys, "train", "-o", run, "--restart")  # --restart does not read last.pt
    assert rc == 0 and calls == [run]


@pytest.mark.usefixtures("offline_cache")
def test_train_other_settings_in_the_run_folder(tmp_path, capsys):
    """A last.pt written with other settings: the real training code refuses, the CLI says how to start over."""
    if not (paths.mirror_dir() / "MANIFEST.json").is_file():
        pytest.skip("no open-data mirror")
    run = tmp_path / "run"
    params = tmp_path / "tiny.yaml"
    params.write_text("model: {d_model: 16, n_heads: 2, n_layers: 1}\n"
                      "train: {categories: [mouse_sleap], val_frames: 4, epoch_steps: 1, max_epochs: 1}\n")
    other = dataclasses.asdict(ModelConfig(d_model=32, n_heads=2, n_layers=1))
    tcfg = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(
        TrainConfig(categories=("mouse_sleap",), val_frames=4, epoch_steps=1, max_epochs=1)).items()}
    checkpoint.save(run / "last.pt", {"model": {}, "model_config": other, "train_config": tcfg})
    checkpoint.save(run / "best.pt", {"model": {}, "model_config": other, "train_config": tcfg})
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    rc, _, err = _run(capsys, "train", "-f", params, "-o", run, "--no-progress")
    line = _one_line_error(err)
    assert rc == 1 and "other settings" in line and "model.d_model" in line
    assert "--restart" in line and "another folder with -o" in line and "best.pt is intact" in line
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_train_bad_parameter_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("train: {lr: -1}\n")
    rc, _, err = _run(capsys, "train", "-f", f, "-o", tmp_path / "run")
    line = _one_line_error(err)
    assert rc == 1 and str(f) in line and "lr" in line
    f.write_text("model: {d_modle: 3}\n")
    assert "unknown model field(s) ['d_modle']" in _one_line_error(_run(capsys, "train", "-f", f)[2])
    assert not (tmp_path / "run").exists()


def test_train_missing_or_damaged_splits_file_is_one_line(tmp_path, capsys):
    rc, _, err = _run(capsys, "train", "-o", tmp_path / "run", "--splits", tmp_path / "none.pkl.xz")
    assert rc == 1 and "no such splits file" in _one_line_error(err) and "lfm.data.bundle" in err
    bad = tmp_path / "bad.pkl.xz"
    bad.write_bytes(b"\x00" * 10)
    rc, _, err = _run(capsys, "train", "-o", tmp_path / "run", "--splits", bad)
    assert rc == 1 and "not a readable lfm splits file" in _one_line_error(err)
    assert not (tmp_path / "run").exists()
    from lfm.data.bundle import save_splits

    from .test_bundle import _split

    save_splits(tmp_path / "s.pkl.xz", {"toy": _split("toy")})
    rc, _, err = _run(capsys, "train", "-o", tmp_path / "run", "--splits", tmp_path / "s.pkl.xz")
    assert rc == 1 and "holds no split for" in _one_line_error(err) and "--sets" in err
    rc, _, err = _run(capsys, "train", "-f", "params/train_open_v2.yaml", "-o", tmp_path / "run", "--splits",
                      tmp_path / "s.pkl.xz")
    assert rc == 1 and "hold no" in _one_line_error(err) and "stage stage1" in err
    rc, _, err = _run(capsys, "train", "-o", tmp_path / "run", "--max-minutes", "-3")
    assert rc == 1 and "--max-minutes -3.0: give a positive number" in _one_line_error(err)


# ---- default outputs -------------------------------------------------------------------------------------------

def test_default_outputs_resolve_against_the_repository(tmp_path, capsys, monkeypatch):
    import lfm.evaluate
    import lfm.lifting
    from lfm.data import benchmark

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LFM_OUTPUT", raising=False)
    assert paths.runs_dir() == paths.root() / "runs"
    out = tmp_path / "elsewhere"
    monkeypatch.setenv("LFM_OUTPUT", str(out))  # so this test writes nothing into the repository
    calls = []
    _fake_train(monkeypatch, calls)
    assert _run(capsys, "train")[0] == 0 and calls == [out / "runs" / "lfm"]
    assert _run(capsys, "train", "-o", "mine")[0] == 0 and calls[-1].resolve() == tmp_path / "mine"  # typed: cwd
    fake_ck = {"train_config": {"seed": 0, "graph": "skeleton"}, "model_config": {}}
    monkeypatch.setattr(lfm.lifting, "load_model", lambda ck=None: (None, fake_ck))
    monkeypatch.setattr(benchmark, "split_category", lambda c: None)
    monkeypatch.setattr(lfm.evaluate, "evaluate_benchmark",
                        lambda model, ck, splits: {"mean": {}, "means": [], "rows": [], "predictions": 1})
    rc, stdout, err = _run(capsys, "evaluate", "--categories", "dog")
    assert rc == 0, err
    assert (out / "runs" / "evaluate_cli.json").is_file() and not (tmp_path / "results").exists()
    rc, _, err = _run(capsys, "evaluate", "--categories", "unicorn")
    assert rc == 1 and "--categories ['unicorn']" in _one_line_error(err)


# ---- lfm reproduce ---------------------------------------------------------------------------------------------

def test_reproduce_parameter_file_errors_are_one_line(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("frame: hundred\n")
    rc, _, err = _run(capsys, "reproduce", "--only", "09", "-f", f, "--output", tmp_path / "out")
    line = _one_line_error(err)
    assert rc == 1 and "parameter frame = 'hundred' (str) must be of type int" in line and str(f) in line
    f.write_text("frmae: 3\n")
    line = _one_line_error(_run(capsys, "reproduce", "--only", "09", "-f", f, "--output", tmp_path / "out")[2])
    assert "unknown parameter(s) ['frmae']" in line and "'frame'" in line
    line = _one_line_error(_run(capsys, "reproduce", "-f", f)[2])
    assert "choose one with --only" in line
    line = _one_line_error(_run(capsys, "reproduce", "--paper", "--only", "09", "-f", f)[2])
    assert "overwrite the committed results" in line and "--output DIR" in line
    line = _one_line_error(_run(capsys, "reproduce", "--only", "09", "-f", tmp_path / "nope.yaml")[2])
    assert "nope.yaml does not exist" in line
    assert not (tmp_path / "out").exists()
