"""Batches: padding to the longest sample in the batch, bucketing, balanced sampling, mirroring, resumable state."""

import numpy as np
import pytest
import torch

from lfm.data.dataset import BatchSampler, FrameDataset, collate
from lfm.data.schema import CategorySet
from lfm.geometry import similarity_align


def toy_set(name, n, frames=40, seed=0, drop=None):
    rng = np.random.default_rng(seed)
    P = rng.normal(size=(frames, n, 3))
    V = np.ones((frames, n), bool)
    if drop is not None:
        V[:, drop] = False
    edges = np.stack([np.arange(n - 1), np.arange(1, n)], 1)
    return CategorySet(name, name, P, V, edges, np.full(frames, "s"), "m", "toy", "none")


def test_collate_pads_to_the_longest_sample_and_keeps_only_visible():
    A5 = np.eye(5, dtype=bool)
    A5[0, 1] = A5[1, 0] = A5[3, 4] = A5[4, 3] = True
    p = [np.arange(10, dtype=np.float32).reshape(5, 2)] * 2
    t = [np.arange(15, dtype=np.float32).reshape(5, 3)] * 2
    vis = [np.array([1, 1, 0, 1, 0], bool), np.array([1, 1, 1, 1, 1], bool)]
    b = collate(p, t, vis, [A5, A5], ["a", "b"], [0, 1])
    assert b.points2d.shape == (2, 5, 2)  # longest sample has 5 visible keypoints, not a global maximum
    assert b.mask.tolist() == [[True, True, True, False, False], [True] * 5]
    assert b.slots[0].tolist() == [0, 1, 3, -1, -1]
    np.testing.assert_array_equal(b.points2d[0, :3].numpy(), p[0][[0, 1, 3]])
    assert b.adjacency[0, 0, 1] and not b.adjacency[0, 1, 2] and not b.adjacency[0, 2, 3]
    short = collate(p[:1], t[:1], vis[:1], [A5], ["a"], [0])
    assert short.points2d.shape == (1, 3, 2)  # a batch of short samples stays short


def test_bucketed_batches_hold_one_category_and_balance_is_uniform():
    ds = FrameDataset({"a": toy_set("a", 5, frames=400), "b": toy_set("b", 9, frames=40)})
    s = BatchSampler(ds, 16, balance="category", bucket=True, seed=0)
    cats = []
    for _ in range(400):
        idx = s.next()
        c = set(ds.cat_of[idx])
        assert len(c) == 1
        cats.append(c.pop())
    assert 0.4 < np.mean(cats) < 0.6  # category-balanced despite 10x more frames of "a"
    f = BatchSampler(ds, 16, balance="frames", bucket=False, seed=0)
    share_b = np.mean([np.mean(ds.cat_of[f.next()]) for _ in range(200)])
    assert 0.05 < share_b < 0.15  # by frames: 40 / 440


def test_sampler_state_resumes_the_same_stream():
    ds = FrameDataset({"a": toy_set("a", 5)})
    s = BatchSampler(ds, 8, seed=3)
    s.next()
    state = s.state_dict()
    ahead = [s.next() for _ in range(3)]
    t = BatchSampler(ds, 8, seed=99)
    t.load_state_dict(state)
    for x in ahead:
        np.testing.assert_array_equal(t.next(), x)


def test_views_have_unit_radius_targets_and_mirroring_reflects():
    ds = FrameDataset({"a": toy_set("a", 7)})
    idx = np.arange(16)
    plain = ds.batch(idx, seed=5, mirror=0.0, camera="upright", projection="orthographic")
    r = plain.target.square().sum(-1).mean(-1).sqrt()
    torch.testing.assert_close(r, torch.ones(16), atol=1e-5, rtol=0)
    mirrored = ds.batch(idx, seed=5, mirror=1.0, camera="upright", projection="orthographic")
    rigid = similarity_align(mirrored.target.double(), plain.target.double(), mirrored.mask, scale=False)
    refl = similarity_align(mirrored.target.double(), plain.target.double(), mirrored.mask, scale=False,
                            allow_reflection=True)
    err = lambda a: (a.aligned - plain.target.double()).norm(dim=-1).mean()  # noqa: E731
    assert err(refl) < 1e-4 < err(rigid)  # the mirrored pose is the reflection, not a rotation, of the original


def test_absent_keypoints_never_enter_a_batch():
    ds = FrameDataset({"c": toy_set("c", 8, drop=[2, 5])})
    b = ds.batch(np.arange(4), seed=0, camera="so3", projection="orthographic")
    assert b.points2d.shape[1] == 6 and b.mask.all()
    assert not np.isin(b.slots, [2, 5]).any()


def test_bad_settings_are_named():
    ds = FrameDataset({"a": toy_set("a", 5)})
    with pytest.raises(ValueError, match="balance"):
        BatchSampler(ds, 8, balance="random")
    with pytest.raises(ValueError, match="graph"):
        FrameDataset({"a": toy_set("a", 5)}, graph="fully_connected")


def test_limb_bending_keeps_bones_and_moves_only_the_limb():
    from lfm.data.dataset import bend_limbs, limb_pivots

    # a star of three 2-bone limbs around joint 0, plus a triangle (a cycle: never bent)
    edges = np.array([(0, 1), (1, 2), (0, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (8, 6)])
    pivots = limb_pivots(edges, 9)
    got = sorted((p, tuple(np.flatnonzero(m))) for p, m in pivots)
    assert got == sorted([(0, (1, 2)), (1, (2,)), (0, (3, 4)), (3, (4,)), (0, (5, 6, 7, 8)), (5, (6, 7, 8))])
    rng = np.random.default_rng(0)
    P = rng.normal(size=(20, 9, 3))
    Q = bend_limbs(P, pivots, rng, p=1.0)
    bone = lambda X: np.linalg.norm(X[:, edges[:, 0]] - X[:, edges[:, 1]], axis=-1)  # noqa: E731
    np.testing.assert_allclose(bone(Q), bone(P), atol=1e-9)
    assert (np.abs(Q - P).max(axis=(0, 2)) > 1e-6).sum() >= 2  # limbs moved
    # the triangle is moved only as a whole (as part of a limb), so it stays rigid
    np.testing.assert_allclose(np.linalg.norm(Q[:, 7] - Q[:, 8], axis=-1), np.linalg.norm(P[:, 7] - P[:, 8], axis=-1))
    np.testing.assert_allclose(Q[:, 0], P[:, 0])  # the hub is the pivot of every limb: it never moves
    np.testing.assert_array_equal(bend_limbs(P, pivots, rng, p=0.0), P)
