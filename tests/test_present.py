"""Table 2's present/absent comparison: the present split, TrainConfig.present, the role and the table."""

import numpy as np
import pytest

from lfm.config import ConfigError, TrainConfig
from lfm.data import benchmark
from lfm.data.schema import CategorySet
from lfm.evaluate import trained_on
from lfm.experiments import ablations


def _cs(n_seq=10, per=6, N=4):
    rng = np.random.default_rng(0)
    F = n_seq * per
    seq = np.repeat([f"traj{i:03d}" for i in range(n_seq)], per)
    return CategorySet("pb_r2d2", "pb_r2d2", rng.normal(size=(F, N, 3)), np.ones((F, N), bool),
                       [(0, 1), (1, 2), (2, 3)], seq, "m", "test", "zlib")


def test_present_split_tests_the_last_sequences_and_never_trains_on_them():
    cs = _cs()
    sp = benchmark.split_present("pb_r2d2", cs)
    test_seqs = set(sp.test.sequence)
    assert test_seqs == {"traj008", "traj009"}  # the last 20 % of the sorted names
    assert not test_seqs & (set(sp.train.sequence) | set(sp.val.sequence))
    stride = benchmark.table.record("pb_r2d2").test_stride
    assert sp.test.n_frames == len(range(0, 12, stride))
    assert sp.train.n_frames + sp.val.n_frames == 48


def test_present_split_refuses_trained_sets_and_single_sequence_sets():
    with pytest.raises(ValueError, match="trained on in every run"):
        benchmark.split_present("human41", _cs())
    with pytest.raises(ValueError, match="needs at\\s+least 5"):
        benchmark.split_present("pb_r2d2", _cs(n_seq=3))


def test_trainconfig_present_takes_held_out_sets_only_and_adds_them_to_the_training_sets():
    with pytest.raises(ConfigError, match=r"\['human41'\] are in-distribution sets"):
        TrainConfig(categories=("dog",), present=("human41",))
    with pytest.raises(ConfigError, match="not held-out sets of the benchmark"):
        TrainConfig(categories=("dog",), present=("unicorn",))
    cfg = TrainConfig(categories=("dog",), present=("pb_r2d2",))
    assert cfg.train_sets == ("dog", "pb_r2d2")
    assert trained_on({"train_config": {"categories": ["dog"], "present": ["pb_r2d2"]}}) == {"dog", "pb_r2d2"}
    assert trained_on({"train_config": {"categories": ["dog"]}}) == {"dog"}  # checkpoints before the field


def test_present_table_divides_absent_by_present_per_set_and_policy():
    rows = []
    for seed, (a, p) in enumerate([(0.9, 0.6), (1.1, 0.6)]):
        for cond, v in (("absent", a), ("present", p)):
            rows.append({"set": "pb_r2d2", "body": "r2d2", "condition": cond, "seed": seed, "protocol": "realistic",
                         "ratio_refl": v, "ratio_det": v + 0.1})
    t = ablations.present_table(rows)
    row = t.loc["pb_r2d2"]
    assert row["absent refl"] == pytest.approx(1.0) and row["present refl"] == pytest.approx(0.6)
    assert row["absent / present refl"] == pytest.approx(1.0 / 0.6)
    assert row["absent / present det"] == pytest.approx(1.1 / 0.7)
    assert row["absent refl sd"] == pytest.approx(0.1 * 2 ** 0.5) and row["seeds"] == 2 and row["body"] == "r2d2"  # sample sd


def test_a_held_out_rig_can_be_the_only_training_set():
    """Rig transfer both ways: a model trained on a held-out rig alone (its present split), nothing else."""
    cfg = TrainConfig(categories=(), present=("human_bandai21",))
    assert cfg.train_sets == ("human_bandai21",)
    with pytest.raises(ConfigError, match="categories is empty"):
        TrainConfig(categories=())


def test_rig_transfer_table_gives_the_tpe_gain_on_the_other_rig():
    rows = []
    for seed in (0, 1):
        for src, dst in (("a", "b"), ("b", "a")):
            for pos, other in (("tpe", 0.8), ("mlp", 1.0)):
                for scored, v in ((src, 0.5), (dst, other + 0.1 * seed)):
                    rows.append({"source": src, "target": dst, "scored": scored, "positional": pos, "seed": seed,
                                 "graph": "trained", "ratio_det": v})
    t = ablations.rig_transfer_table(rows)
    row = t.loc[("a", "b")]
    assert row["other rig, tpe (mean)"] == pytest.approx(0.85) and row["own rig, mlp (mean)"] == pytest.approx(0.5)
    assert row["TPE gain on the other rig"] == pytest.approx(1 - 0.85 / 1.05)
    assert row["other rig, tpe (sd)"] == pytest.approx(0.1 / 2 ** 0.5)
    assert list(t.index) == [("a", "b"), ("b", "a")]


def test_imbalance_table_gives_the_tpe_gain_per_width():
    rows = [{"width": w, "positional": p, "seed": s, "ratio_det": v + 0.02 * s}
            for w, (tpe, mlp) in ((32, (0.9, 0.9)), (64, (0.8, 1.0))) for p, v in (("tpe", tpe), ("mlp", mlp))
            for s in (0, 1)]
    t = ablations.imbalance_table(rows)
    assert list(t.index) == [32, 64]
    assert t.loc[64, "tpe (mean)"] == pytest.approx(0.81) and t.loc[64, "mlp (mean)"] == pytest.approx(1.01)
    assert t.loc[64, "TPE gain"] == pytest.approx(1 - 0.81 / 1.01) and t.loc[32, "TPE gain"] == pytest.approx(0.0)
    assert t.loc[32, "tpe (sd)"] == pytest.approx(0.02 / 2 ** 0.5)
