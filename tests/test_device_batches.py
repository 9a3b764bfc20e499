"""Batches made in torch (lfm.data.device_batches) against the numpy reference path: the same distributions
(moments and two-sample Kolmogorov-Smirnov tests from scipy), closed forms for the rotations, and resumable
streams."""

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.spatial.transform import Rotation

from lfm.data.dataset import FrameDataset, limb_pivots
from lfm.data.device_batches import DeviceBatches, bend, rotations_so3, rotations_upright
from lfm.data.schema import CategorySet
from lfm.data.views import random_cameras


def _set(F=400, N=9, seed=0):
    """A chain body of N keypoints moving a little, a few keypoints hidden."""
    rng = np.random.default_rng(seed)
    base = np.cumsum(rng.normal(size=(N, 3)), 0)
    P = base[None] + 0.1 * rng.normal(size=(F, N, 3))
    V = rng.random((F, N)) > 0.1
    V[:, :4] = True
    edges = np.stack([np.arange(N - 1), np.arange(1, N)], 1)
    return CategorySet(category="toy", rig="toy", points3d=P.astype(np.float32), visible=V, edges=edges,
                       sequence=np.zeros(F).astype(str), units="arbitrary", source="test", licence="test")


def _ks(a, b):
    return stats.ks_2samp(np.ravel(a), np.ravel(b)).pvalue


def test_upright_cameras_follow_scipy_euler():
    g = torch.Generator().manual_seed(0)
    R = rotations_upright(2000, g, "cpu").double().numpy()
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(R), 1, atol=1e-5)
    ref = random_cameras(2000, np.random.default_rng(0), "upright")
    for i, j in ((1, 1), (0, 1), (2, 2), (1, 0)):  # the up axis's image and the depth axis: same law
        assert _ks(R[:, i, j], ref[:, i, j]) > 1e-3, (i, j)
    # the closed form: u = (az, el, ro) -> Rz(ro) Rx(el) Ry(az), transposed (rows convention)
    g = torch.Generator().manual_seed(1)
    u = torch.rand(5, 3, generator=torch.Generator().manual_seed(1)).double().numpy()
    R = rotations_upright(5, g, "cpu").double().numpy()
    want = Rotation.from_euler("yxz", np.stack([360 * u[:, 0], 30 * (2 * u[:, 1] - 1), 10 * (2 * u[:, 2] - 1)], 1),
                               degrees=True).as_matrix().transpose(0, 2, 1)
    assert np.allclose(R, want, atol=1e-5)


def test_so3_rotations_are_uniform():
    R = rotations_so3(4000, torch.Generator().manual_seed(0), "cpu").double().numpy()
    assert np.allclose(np.linalg.det(R), 1, atol=1e-5)
    ref = Rotation.random(4000, random_state=1).as_matrix()
    for i in range(3):
        assert _ks(R[:, i, 2], ref[:, i, 2]) > 1e-3  # uniform on the sphere: each entry ~ U(-1, 1)
        assert _ks(R[:, i, 2], np.random.default_rng(2).uniform(-1, 1, 4000)) > 1e-3


def test_bending_keeps_bone_lengths_and_moves_limbs():
    cs = _set()
    piv = limb_pivots(cs.edges, cs.n_keypoints)
    P = torch.from_numpy(cs.points3d[:200]).double()
    out = bend(P, torch.tensor([p for p, _ in piv]), torch.from_numpy(np.array([s for _, s in piv])),
               torch.Generator().manual_seed(0), p=0.5)
    e = cs.edges
    bone = lambda X: (X[:, e[:, 0]] - X[:, e[:, 1]]).norm(dim=-1)  # noqa: E731
    torch.testing.assert_close(bone(out), bone(P))
    moved = (out - P).abs().amax((1, 2)) > 1e-6
    assert 0.35 < moved.double().mean() < 0.65  # p = 0.5 per frame


@pytest.mark.parametrize("kw", [dict(), dict(noise=0.05, p_joint=0.2, mirror=0.5),
                                dict(camera="so3", projection="orthographic")])
def test_device_views_match_the_numpy_reference(kw):
    cs = _set()
    B = 1500
    ds = FrameDataset({"toy": cs})
    ref = ds.batch(np.random.default_rng(0).integers(0, cs.n_frames, B), seed=1, **kw)
    dev = DeviceBatches({"toy": cs}, B, seed=2).draw(**kw)
    for name in ("points2d", "target"):
        a, b = getattr(ref, name), getattr(dev, name)
        for j in range(a.shape[-1]):  # each coordinate of every visible keypoint: same law
            x, y = a[..., j][ref.mask].numpy(), b[..., j][dev.mask].numpy()
            assert _ks(x, y) > 1e-3, (name, j, x.std(), y.std())
            assert abs(x.std() / y.std() - 1) < 0.08
    assert abs(ref.mask.sum(1).double().mean() - dev.mask.sum(1).double().mean()) < 0.1
    assert (dev.mask.sum(1) >= 3).all() and dev.points2d.shape[1] == int(dev.mask.sum(1).max())
    # padding is zero and never a graph neighbour
    assert (dev.points2d[~dev.mask] == 0).all() and not (dev.adjacency & ~dev.mask[:, None, :]).any()


def test_rig_augmentation_and_graphs_run_and_are_valid():
    cs = _set(N=14)
    db = DeviceBatches({"toy": cs}, 64, graph="mix", seed=0)
    sizes = set()
    for _ in range(30):
        b = db.draw(rig_aug=0.5, edge_drop=0.1, bend_p=0.3, mirror=0.5)
        sizes.add(b.points2d.shape[1])
        assert torch.isfinite(b.points2d).all() and torch.isfinite(b.target).all()
        assert (b.adjacency == b.adjacency.transpose(1, 2)).all()
        r = (b.target.square().sum(-1).sum(1) / b.mask.sum(1)).sqrt()
        torch.testing.assert_close(r, torch.ones_like(r), rtol=1e-4, atol=1e-4)  # unit-radius targets
    assert len(sizes) > 3  # rig variants change the keypoint count


def test_streams_resume_exactly():
    cs = _set()
    a = DeviceBatches({"toy": cs}, 32, graph="mix", seed=5)
    a.draw(rig_aug=0.5)
    state = a.state_dict()
    want = [a.draw(rig_aug=0.5, p_joint=0.1).points2d for _ in range(3)]
    b = DeviceBatches({"toy": cs}, 32, graph="mix", seed=5)
    b.load_state_dict(state)
    for w in want:
        torch.testing.assert_close(b.draw(rig_aug=0.5, p_joint=0.1).points2d, w)
    other = DeviceBatches({"toy": cs}, 32, graph="mix", seed=5, rank=1).draw().points2d
    assert not torch.equal(other, DeviceBatches({"toy": cs}, 32, graph="mix", seed=5).draw().points2d)
