"""lfm.data.bundle (prepared splits for machines without the data) and the ablation rows file it feeds."""

import json

import numpy as np
import pytest

from lfm.data.benchmark import Split
from lfm.data.bundle import load_splits, save_splits
from lfm.data.schema import CategorySet
from lfm.experiments import ablations


def _split(name="toy", F=12, N=5, seed=0):
    rng = np.random.default_rng(seed)
    cs = CategorySet(name, f"{name}_rig", rng.normal(size=(F, N, 3)), np.ones((F, N), bool),
                     [(i, i + 1) for i in range(N - 1)], np.array([f"s{i // 4}" for i in range(F)]), "m", "test",
                     "CC0")
    return Split(name, cs.subset(np.arange(8)), cs.subset(np.arange(8, 10)), cs.subset(np.arange(10, 12)), "toy")


def test_splits_round_trip_exactly_and_test_parts_can_be_dropped(tmp_path):
    splits = {"a": _split("a"), "b": _split("b", seed=1)}
    path = save_splits(tmp_path / "s.pkl.xz", splits, test_sets=["a"])
    back = load_splits(path)
    assert sorted(back) == ["a", "b"]
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(back["a"], part).points3d, getattr(splits["a"], part).points3d)
    np.testing.assert_array_equal(back["b"].train.points3d, splits["b"].train.points3d)
    assert back["b"].test.n_frames == 0 and back["a"].test.n_frames == 2
    assert list(load_splits(path, sets=["b"])) == ["b"]


def test_bad_splits_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m lfm.data.bundle"):
        load_splits(tmp_path / "missing.pkl.xz")
    bad = tmp_path / "bad.pkl.xz"
    bad.write_bytes(b"not xz at all")
    with pytest.raises(ValueError, match="bad.pkl.xz: not a readable lfm splits file"):
        load_splits(bad)
    path = save_splits(tmp_path / "s.pkl.xz", {"a": _split("a")})
    with pytest.raises(ValueError, match=r"holds no split for \['zebra'\]"):
        load_splits(path, sets=["zebra"])
    with pytest.raises(ValueError, match=r"test_sets \['zebra'\] are not among the sets written"):
        save_splits(tmp_path / "t.pkl.xz", {"a": _split("a")}, test_sets=["zebra"])


def test_rows_file_is_checked_and_sorted_in_lever_order(tmp_path):
    with pytest.raises(FileNotFoundError, match="rows_file"):
        ablations.read_rows(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="needs 'params' and 'rows'"):
        ablations.read_rows(tmp_path / "bad.json")
    rows = [{"lever": "global_attention", "seed": 1}, {"lever": "baseline", "seed": 1},
            {"lever": "global_attention", "seed": 0}, {"lever": "baseline", "seed": 0}]
    (tmp_path / "ok.json").write_text(json.dumps({"params": {"levers": ["baseline", "global_attention"]},
                                                  "rows": rows}))
    got = [(r["lever"], r["seed"]) for r in ablations.read_rows(tmp_path / "ok.json")["rows"]]
    assert got == [("baseline", 0), ("baseline", 1), ("global_attention", 0), ("global_attention", 1)]


def test_the_figure_6a_levers_change_what_they_name():
    from lfm.config import ModelConfig, TrainConfig

    assert ablations.LEVERS["local_attention"] == ({"attention": "local"}, {})
    assert ablations.LEVERS["no_procrustes_loss"] == ({}, {"procrustes": False})
    m, t = ablations.base_configs(train_sets=["dog"], epoch_steps=3, max_epochs=2, minutes_per_run=0,
                                  train_stride=4, val_frames=5, threads=1)
    assert isinstance(m, ModelConfig) and isinstance(t, TrainConfig)
    assert (t.categories, t.epoch_steps, t.max_epochs, t.train_stride) == (("dog",), 3, 2, 4)


@pytest.mark.skipif(not (__import__("lfm.paths").paths.mirror_dir() / "MANIFEST.json").is_file(),
                    reason="needs the open-data mirror")
def test_parallel_lever_runner_writes_every_row_in_lever_order(tmp_path, offline_cache):
    """python -m lfm.experiments.ablations: two worker processes, two levers, from a prepared splits file."""
    import yaml

    from lfm.data import benchmark

    splits = {c: benchmark.split_category(c, train_stride=4) for c in ("mouse_sleap", "mouse_dannce")}
    save_splits(tmp_path / "s.pkl.xz", splits)
    params = {"minutes_per_run": 0, "max_epochs": 1, "epoch_steps": 2, "train_stride": 4, "val_frames": 5,
              "train_sets": ["mouse_sleap"], "eval_sets": ["mouse_sleap", "mouse_dannce"],
              "levers": ["global_attention", "baseline"], "seeds": [0], "threads": 1, "rows_file": "ignored"}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "rows.json"
    ablations.main(["-f", str(tmp_path / "p.yaml"), "--splits", str(tmp_path / "s.pkl.xz"), "--workers", "2",
                    "--device", "cpu", "--runs", str(tmp_path / "runs"), "--set", "epoch_steps=3",
                    "--out", str(out)])
    data = ablations.read_rows(out)
    assert data["complete"] and data["params"]["epoch_steps"] == 3 and "rows_file" not in data["params"]
    assert [r["lever"] for r in data["rows"]] == ["global_attention", "baseline"]
    for r in data["rows"]:
        assert r["steps"] == 3 and r["history"][-1]["step"] == 3
        assert 0 < r["train/realistic/trained refl"] < 3 and "untrained/realistic/trained refl" in r
    with pytest.raises(SystemExit, match="not a parameter"):
        ablations.main(["-f", str(tmp_path / "p.yaml"), "--splits", "x", "--set", "epochs=2", "--out", str(out)])
