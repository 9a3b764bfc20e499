"""lfm.experiments.baselines: the slot layout, the fixed-slot lifters, their training through lfm's views and loss,
and their scores through lfm.evaluate's protocol code (a perfect prediction 0, the flat guess 1)."""

import dataclasses

import numpy as np
import pytest
import torch

from lfm.config import ModelConfig, TrainConfig
from lfm.data.benchmark import Split
from lfm.data.dataset import FrameDataset
from lfm.data.schema import CategorySet
from lfm.experiments import baselines as B
from lfm.metrics import pa_mpjpe, rms_radius
from lfm.train import train_step

from .test_data_open import random_articulated_motion


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared CPU: one torch thread is ~10x faster than two (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy_set(name, rng, n=8, frames=30):
    """Synthetic frames under a real benchmark name (the catalog knows its test-view count)."""
    P, edges = random_articulated_motion(rng, n_joints=n, frames=frames)
    return CategorySet(name, f"toy{n}", P, np.ones(P.shape[:2], bool), edges, np.arange(frames) // 5, "m", "", "")


def toy_split(name, rng, n=8):
    cs = toy_set(name, rng, n, frames=40)
    return Split(name, cs.subset(np.arange(0, 24)), cs.subset(np.arange(24, 30)), cs.subset(np.arange(30, 40)), "toy")


def test_stacked_layout_gives_each_rig_disjoint_slots_and_round_trips(rng):
    sizes = {"chair": 3, "dog": 5, "face": 2}
    lay = B.SlotLayout(sizes)
    ranges = {c: set(range(lay.offsets[c], lay.offsets[c] + n)) for c, n in sizes.items()}
    assert lay.width == 10 and set().union(*ranges.values()) == set(range(10))
    assert sum(len(r) for r in ranges.values()) == 10  # disjoint and covering
    # tokens as a Batch holds them: visible keypoints compacted in any order, padded with slot -1
    cats = ["dog", "chair", "face", "dog"]
    slots = torch.tensor([[4, 0, 2, -1], [2, 1, -1, -1], [1, 0, -1, -1], [0, 1, 2, 3]])
    mask = slots >= 0
    vals = torch.as_tensor(rng.normal(size=(4, 4, 3)), dtype=torch.float32)
    gs = lay.global_slots(slots, cats)
    assert gs[0].tolist() == [3 + 4, 3 + 0, 3 + 2, -1] and gs[1].tolist() == [2, 1, -1, -1]
    assert gs[2].tolist() == [9, 8, -1, -1]
    slotted = lay.scatter(vals, gs, mask)  # (4, 10, 3)
    assert slotted.shape == (4, 10, 3)
    for b, c in enumerate(cats):  # nothing written outside the sample's own rig range
        outside = [s for s in range(10) if s not in ranges[c]]
        assert torch.all(slotted[b, outside] == 0)
    back = lay.gather(slotted, gs)
    assert torch.equal(back[mask], vals[mask]) and torch.all(back[~mask] == 0)
    with pytest.raises(ValueError, match="exceeds"):
        lay.global_slots(torch.tensor([[3]]), ["chair"])  # chair has keypoints 0..2


def test_shared_layout_puts_keypoint_i_of_every_rig_in_slot_i():
    lay = B.SlotLayout({"chair": 3, "dog": 5}, shared=True)
    assert lay.width == 5 and set(lay.offsets.values()) == {0}
    gs = lay.global_slots(torch.tensor([[2, 0], [4, 2]]), ["chair", "dog"])
    assert gs.tolist() == [[2, 0], [4, 2]]


def test_one_hot_switch_changes_the_input_width():
    sizes = {"chair": 6, "dog": 8, "face": 4}
    widths = {v: B.FixedSlotLifter(sizes, v, hidden=16).in_features for v in B.C3DPO_VARIANTS}
    assert widths == {"c3dpo_no_info": 3 * 8, "c3dpo_stacked": 3 * 18, "c3dpo_info": 3 * 18 + 3}
    m = B.FixedSlotLifter(sizes, "c3dpo_info", hidden=16)
    assert m.net[0][0].in_features == widths["c3dpo_info"]
    # the one-hot is an input: the same 2D under another category name gives another output
    m.eval()
    p = torch.randn(2, 4, 2)
    mask, slots = torch.ones(2, 4, dtype=torch.bool), torch.arange(4).expand(2, 4)
    with torch.no_grad():
        assert not torch.allclose(m(p, mask, slots, ["chair", "chair"]), m(p, mask, slots, ["face", "face"]))
    with pytest.raises(ValueError, match="variant"):
        B.FixedSlotLifter(sizes, "c3dpo_magic")


def test_simple_baseline_is_martinez_shaped_and_returns_one_point_per_keypoint():
    m = B.SimpleBaseline("dog", 27)
    lin = [x for x in m.modules() if isinstance(x, torch.nn.Linear)]
    assert [(x.in_features, x.out_features) for x in lin] == [(81, 1024)] + [(1024, 1024)] * 4 + [(1024, 81)]
    assert sum(isinstance(x, torch.nn.BatchNorm1d) for x in m.modules()) == 5
    assert {x.p for x in m.modules() if isinstance(x, torch.nn.Dropout)} == {0.5}
    m.eval()
    p = torch.randn(5, 27, 2)
    vis = torch.rand(5, 27) > 0.2
    out = B.ForCategory(m, "dog")(p, vis)
    assert out.shape == (5, 27, 3) and torch.all(out[~vis] == 0) and torch.isfinite(out).all()


def test_fixed_slot_lifter_fits_a_tiny_synthetic_set(rng):
    torch.manual_seed(0)
    sets = {"chair": toy_set("chair", rng, 6, 8), "dog": toy_set("dog", rng, 9, 8)}
    ds = FrameDataset(sets)
    batch = ds.batch(np.arange(len(ds)), seed=0, camera="so3", projection="orthographic")  # 16 fixed views
    m = B.FixedSlotLifter({c: s.n_keypoints for c, s in sets.items()}, "c3dpo_info", hidden=128)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    fwd = lambda p, mask, a: m(p, mask, batch.slots, batch.category)  # noqa: E731
    losses = [train_step(fwd, opt, batch) for _ in range(400)]
    assert losses[-1] < 0.02 * losses[0] and losses[-1] < 2e-3
    m.eval()
    with torch.no_grad():
        pred = m(batch.points2d, batch.mask, batch.slots, batch.category)
    err = pa_mpjpe(pred, batch.target, batch.mask) / rms_radius(batch.target, batch.mask)
    assert float(err.mean()) < 0.05  # near zero training error (the depth of every keypoint recovered)


class Replay(torch.nn.Module):
    """Returns given 3D in order, with a slot model's call."""

    def __init__(self, out):
        super().__init__()
        self.out, self.at = torch.as_tensor(out, dtype=torch.float32), 0

    def forward(self, points2d, mask, slots, categories):
        y = self.out[self.at:self.at + len(points2d)]
        self.at += len(points2d)
        return y


@pytest.mark.parametrize("protocol", ["realistic", "so3_ortho"])
def test_scores_are_ratios_to_flat_through_the_shared_protocol_code(rng, protocol):
    from lfm.data import benchmark

    sp = {"dog": toy_split("dog", rng)}
    v = benchmark.test_views(sp["dog"], protocol)  # what score() scores: the benchmark's fixed test views
    perfect = B.score(Replay(2.0 * v.points3d), sp, ["dog"], (protocol,))[0]
    assert perfect["model_refl"] < 1e-6 and perfect["model_det"] < 1e-6 and perfect["ratio_det"] < 1e-5
    assert perfect["frames"] == len(v.points2d) and perfect["flat_refl"] > 0.05
    flat = B.FixedSlotLifter({"dog": 8}, "c3dpo_stacked", hidden=8)
    torch.nn.init.zeros_(flat.net[-1].weight)
    torch.nn.init.zeros_(flat.net[-1].bias)  # its output is then (x, y, 0) of the normalised input
    r = B.score(flat, sp, ["dog"], (protocol,))[0]
    assert r["ratio_refl"] == pytest.approx(1.0, abs=1e-5) and r["ratio_det"] == pytest.approx(1.0, abs=1e-5)
    mirrored = B.score(Replay(v.points3d * np.array([1, 1, -1], np.float32)), sp, ["dog"], (protocol,))[0]
    assert mirrored["model_refl"] < 1e-6 < 0.05 < mirrored["model_det"]  # both policies are reported


def test_fit_draws_lfm_training_views_without_mirroring_and_keeps_the_best_epoch(rng, monkeypatch):
    sp = {"dog": toy_split("dog", rng), "chair": toy_split("chair", rng, 6)}
    import lfm.train

    seen = []
    real = lfm.train.draw_batch

    def spy(run):
        seen.append(run.cfg)
        return real(run)

    monkeypatch.setattr(lfm.train, "draw_batch", spy)  # the peers train through lfm.train's loop
    cfg = TrainConfig(categories=("dog", "chair"), batch_size=16, epoch_steps=3, max_epochs=2, val_frames=4,
                      early_stop=1000, noise=0.01)
    m = B.FixedSlotLifter({"dog": 8, "chair": 6}, "c3dpo_no_info", hidden=32)
    s = B.fit(m, cfg, sp, log=lambda *a: None)
    assert s["steps"] == 6 and len(s["history"]) == 2 and not m.training
    assert set(s) == {"steps", "best_epoch", "best_val_refl", "elapsed_s", "history"}
    assert s["best_val_refl"] == min(h["val"]["model_refl"] for h in s["history"])
    assert len(seen) == 6 and all(c.mirror == 0 and c.rig_aug == 0 and c.noise == 0.01 for c in seen)
    assert all(c.train_camera == cfg.train_camera and c.train_projection == cfg.train_projection for c in seen)



def test_fit_restores_the_weights_of_the_best_epoch_not_the_last(rng, monkeypatch):
    sp = {"dog": toy_split("dog", rng)}
    real, seen = B._validate, []

    def val(run):  # the real validation, with the epochs ranked 1st, 3rd, 2nd
        v = real(run)
        seen.append({k: t.clone() for k, t in run.model.state_dict().items()})
        v["mean"]["model_refl"] = (0.5, 0.9, 0.7)[len(seen) - 1]
        return v

    monkeypatch.setattr(B, "_validate", val)
    cfg = TrainConfig(categories=("dog",), batch_size=8, epoch_steps=2, max_epochs=3, val_frames=4, early_stop=1000)
    m = B.SimpleBaseline("dog", 8, hidden=16)
    s = B.fit(m, cfg, sp, log=lambda *a: None)
    assert s["best_epoch"] == 1 and s["best_val_refl"] == 0.5 and len(s["history"]) == 3
    now = m.state_dict()
    assert all(torch.equal(now[k], t) for k, t in seen[0].items())  # epoch 1's weights, BatchNorm statistics too
    assert not all(torch.equal(now[k], t) for k, t in seen[2].items())

def test_tables_average_seeds_and_gain_is_one_minus_joint_over_isolated():
    rows = []
    for seed, (iso, jnt) in enumerate([(0.8, 0.6), (0.6, 0.4)]):
        for c, k in (("dog", 1.0), ("chair", 0.5)):
            for model, v in (("lfm_isolated", iso), ("lfm_joint", jnt), ("simple_baseline", 0.3)):
                rows.append({"model": model, "seed": seed, "category": c, "protocol": "realistic",
                             "ratio_refl": k * v, "ratio_det": k * v + 0.1})
    g = B.combined_vs_isolated(rows).loc["realistic"]
    assert g.loc["dog", "isolated_refl"] == pytest.approx(0.7) and g.loc["dog", "joint_refl"] == pytest.approx(0.5)
    assert g.loc["dog", "gain_refl"] == pytest.approx(1 - 0.5 / 0.7)
    assert g.loc["mean", "isolated_refl"] == pytest.approx(0.75 * 0.7)
    t = B.comparison_table(rows)
    assert list(t.index) == ["dog", "chair", "mean"]
    assert t.loc["dog", ("mean", "lfm_joint", "refl")] == pytest.approx(0.5)
    assert t.loc["dog", ("sd", "lfm_joint", "refl")] == pytest.approx(0.1 * 2 ** 0.5)  # sample sd of 0.4 and 0.6
    assert t.loc["mean", ("mean", "lfm_joint", "det")] == pytest.approx(0.75 * 0.5 + 0.1)
    assert [m for m in dict.fromkeys(t.columns.get_level_values("model"))] == ["simple_baseline", "lfm_isolated",
                                                                              "lfm_joint"]


def test_run_comparison_trains_every_model_on_the_same_splits_and_scores_each_set(rng, tmp_path):
    sp = {"dog": toy_split("dog", rng), "chair": toy_split("chair", rng, 6)}
    cfg = TrainConfig(categories=("dog",), batch_size=8, epoch_steps=2, max_epochs=1, val_frames=4, early_stop=1000,
                      threads=1)
    rows = B.run_comparison(["dog", "chair"], dataclasses.replace(ModelConfig(), d_model=16), cfg, sp, tmp_path,
                            hidden=16, log=lambda *a: None)
    got = {(r["model"], r["category"]) for r in rows}
    assert got == {(m, c) for m in B.MODELS for c in ("dog", "chair")} and len(rows) == len(got)
    assert all(r["steps"] == 2 and np.isfinite(r["ratio_refl"]) for r in rows)
    assert {p.name.split("-")[0] for p in tmp_path.iterdir()} == {"dog_seed0", "chair_seed0", "joint_seed0"}
    again = B.run_comparison(["dog", "chair"], dataclasses.replace(ModelConfig(), d_model=16), cfg, sp, tmp_path,
                             models=("lfm_joint",), hidden=16, log=lambda *a: None)  # resumes the finished run
    assert [r["ratio_refl"] for r in again] == [r["ratio_refl"] for r in rows if r["model"] == "lfm_joint"]
    with pytest.raises(ValueError, match="unknown"):
        B.run_comparison(["dog"], ModelConfig(), cfg, sp, tmp_path, models=("c3dpo_magic",))
