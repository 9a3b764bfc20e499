"""Rig, graph and pose augmentation, and that training really applies its levers (each lever changes a batch or
the loss; a lever silently ignored makes one of these tests fail)."""

import dataclasses

import numpy as np
import pytest
import torch

from lfm.config import ModelConfig, TrainConfig
from lfm.data.augment import edges_to_matrix, graph_variant, rig_variant
from lfm.data.benchmark import Split
from lfm.data.dataset import mirror_poses
from lfm.data.schema import CategorySet

from .conftest import is_tree
from .test_data_open import random_articulated_motion


@pytest.mark.parametrize("seed", range(8))
def test_rig_variant_is_another_rig_of_the_same_body(seed):
    P, edges = random_articulated_motion(np.random.default_rng(seed), n_joints=20, frames=12)
    V = np.ones(P.shape[:2], bool)
    Q, W, e = rig_variant(P, V, edges, np.random.default_rng(100 + seed))
    n = Q.shape[1]
    assert n >= 5 and W.all() and is_tree(e.tolist(), n), (n, e)
    again = rig_variant(P, V, edges, np.random.default_rng(100 + seed))
    np.testing.assert_array_equal(again[0], Q)  # seeded
    # markers only: every marker splits a bone and moves rigidly with it, so every edge keeps its length
    M, _, em = rig_variant(P, V, edges, np.random.default_rng(seed), min_keep=1.0, max_merges=0.0)
    lengths = np.linalg.norm(M[:, em[:, 0]] - M[:, em[:, 1]], axis=-1)  # (F, E)
    np.testing.assert_allclose(lengths, lengths[:1].repeat(len(M), 0), rtol=1e-4, atol=1e-5)
    # subsets only: every kept keypoint is an input keypoint, unchanged
    S, _, es = rig_variant(P, V, edges, np.random.default_rng(seed), max_markers=0.0, max_merges=0.0)
    idx = [int(np.argmin(np.abs(P[0] - q).sum(-1))) for q in S[0]]
    np.testing.assert_allclose(S, P[:, idx], atol=1e-5)
    assert is_tree(es.tolist(), S.shape[1])


def test_rig_variant_subset_keeps_the_points_and_bridges_removed_ones():
    # a chain 0-1-2-3-4-5: keeping {0, 2, 5} must join 0-2 and 2-5 (through the removed 1, 3, 4)
    from lfm.data.augment import _subset

    P = np.arange(6 * 3, dtype=float).reshape(1, 6, 3)
    keep = np.array([1, 0, 1, 0, 0, 1], bool)
    Q, V, e = _subset(P, np.ones((1, 6), bool), np.array([[i, i + 1] for i in range(5)]), keep)
    np.testing.assert_array_equal(Q[0], P[0, [0, 2, 5]])
    assert e.tolist() == [[0, 1], [1, 2]]


def test_graph_variant_choices():
    rng = np.random.default_rng(0)
    P, edges = random_articulated_motion(rng, n_joints=12, frames=30)
    V = np.ones(P.shape[:2], bool)
    A = graph_variant(P, V, edges, rng, choices=("skeleton",))
    np.testing.assert_array_equal(A, edges_to_matrix(edges, 12))
    assert not A.diagonal().any()  # no self-loops: the model adds them
    mst = graph_variant(P, V, edges, rng, choices=("motion_mst",))
    np.testing.assert_array_equal(mst, A)  # rigid bones: the motion MST is the skeleton
    assert graph_variant(P, V, edges, rng, choices=("input_knn",)) is None
    dropped = graph_variant(P, V, edges, rng, choices=("skeleton",), edge_drop=0.5)
    assert dropped.sum() < A.sum() and not (dropped & ~A).any()


def test_mirror_negates_x_only():
    rng = np.random.default_rng(0)
    P = rng.normal(size=(5, 7, 3))
    M = mirror_poses(P, rng, 1.0)
    np.testing.assert_array_equal(M, P * np.array([-1.0, 1.0, 1.0]))
    assert mirror_poses(P, rng, 0.0) is P


def test_the_model_adds_self_loops_itself():
    from lfm.model import LFM

    torch.manual_seed(0)
    model = LFM(ModelConfig(d_model=16, n_heads=2, n_layers=2, attention="local")).eval()
    x = torch.randn(3, 7, 2)
    with torch.no_grad():
        empty = model(x, None, torch.zeros(7, 7, dtype=torch.bool))
        eye = model(x, None, torch.eye(7, dtype=torch.bool))
    assert torch.isfinite(empty).all()
    torch.testing.assert_close(empty, eye)


# ---------------------------------------------------------------------------------- levers reach the training step

def toy_splits(rng, name="dog"):
    P, edges = random_articulated_motion(rng, n_joints=10, frames=40)
    mk = lambda X: CategorySet(name, "mann_dog27", X, np.ones(X.shape[:2], bool), edges,  # noqa: E731
                               np.zeros(len(X)), "m", "", "")
    return {name: Split(name, mk(P[:30]), mk(P[30:35]), mk(P[35:]), "toy")}


def toy_cfg(**kw):
    base = dict(categories=("dog",), batch_size=8, epoch_steps=1, max_epochs=1, val_frames=4, device="cpu",
                so3_fraction=0.0, mirror=0.0)
    return TrainConfig(**(base | kw))


@pytest.mark.parametrize("lever", [{"bend": 1.0}, {"mirror": 1.0}, {"rig_aug": 1.0}, {"graph": "mix"},
                                   {"p_joint": 0.5}, {"noise": 0.1}])
def test_each_lever_changes_the_training_batch(lever, tmp_path):
    from lfm.train import draw_batch, setup

    splits = toy_splits(np.random.default_rng(0))
    mcfg = ModelConfig(d_model=8, n_heads=2, n_layers=1)
    plain = draw_batch(setup(mcfg, toy_cfg(), tmp_path / "a", splits=splits))
    changed = draw_batch(setup(mcfg, toy_cfg(**lever), tmp_path / "b", splits=splits))
    differs = (plain.target.shape != changed.target.shape or not torch.equal(plain.target, changed.target)
               or not torch.equal(plain.points2d, changed.points2d)
               or not torch.equal(plain.adjacency, changed.adjacency) or not torch.equal(plain.mask, changed.mask))
    assert differs, f"{lever} did not change the batch"


def test_allow_reflection_reaches_the_training_loss(tmp_path):
    from lfm.train import train

    splits = toy_splits(np.random.default_rng(1))
    mcfg = ModelConfig(d_model=8, n_heads=2, n_layers=1)
    losses = {}
    for refl in (False, True):
        s = train(mcfg, toy_cfg(allow_reflection=refl), tmp_path / str(refl), splits=splits, progress=False,
                  log=lambda m: None)
        losses[refl] = s["history"][0]["loss"]
    assert losses[True] < losses[False]  # O(3) alignment can only lower the aligned error of the same prediction


def test_procedural_bodies_are_mixed_in(tmp_path, monkeypatch):
    pytest.importorskip("lfm.data.procedural")
    from lfm.train import draw_batch, setup

    splits = toy_splits(np.random.default_rng(0))
    run = setup(ModelConfig(d_model=8, n_heads=2, n_layers=1), toy_cfg(procedural=0.5, procedural_bodies=5, batch_size=2),
                tmp_path, splits=splits)
    cats = {c for _ in range(40) for c in draw_batch(run).category}
    assert any(c != "dog" for c in cats) and "dog" in cats


def test_compile_falls_back_to_eager_when_compilation_fails(tmp_path, monkeypatch):
    from lfm.train import draw_batch, setup, train_step

    def broken(model, **kw):
        def call(*a, **k):
            raise RuntimeError("no C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    splits = toy_splits(np.random.default_rng(0))
    said = []
    run = setup(ModelConfig(d_model=8, n_heads=2, n_layers=1), toy_cfg(compile=True), tmp_path, splits=splits)
    import lfm.train as T

    run.forward = T._compiled(run.model, log=said.append)
    loss = train_step(run.forward, run.opt, draw_batch(run))
    assert np.isfinite(loss) and run.forward.fallback() and "training eagerly" in said[0]
    assert run.forward is not run.model and len(said) == 1
    train_step(run.forward, run.opt, draw_batch(run))
    assert len(said) == 1  # said once
