"""Random articulated bodies (lfm.data.procedural): trees of rigid bones, joint angles within limits, mirrored
limbs, seeded determinism, +y up, speed."""

import time

import numpy as np
import pytest

from lfm.data.procedural import PLANS, generate, pose_body, random_body

from .conftest import is_tree


@pytest.fixture(scope="module")
def bodies():
    return generate(24, 12, seed=5)


def test_schema_and_tree(bodies):
    assert len(bodies) == 24 and len({cs.rig for cs in bodies}) == 24
    assert {cs.meta["plan"] for cs in bodies} == set(PLANS)
    for i, cs in enumerate(bodies):
        F, N, _ = cs.points3d.shape
        assert cs.rig == f"proc_5_{i}" and cs.category == "procedural" and cs.units == "arbitrary"
        assert cs.synthetic and cs.licence == "generated (lfm)" and cs.meta["training_only"]
        assert F == 12 and 6 <= N <= 60 and cs.visible.all()
        assert (cs.sequence == cs.rig).all()  # one sequence per body
        assert is_tree(cs.edges, N) and (cs.edges[:, 0] < cs.edges[:, 1]).all()
        assert len(cs.meta["kind"]) == N


def test_bones_rigid_and_angles_within_limits(bodies):
    for cs in bodies:
        P = cs.points3d.astype(np.float64)
        E = cs.edges
        L = np.linalg.norm(P[:, E[:, 0]] - P[:, E[:, 1]], axis=-1)
        assert np.abs(L - L[0]).max() < 1e-6, cs.rig
        assert L.min() > 1e-3
        A, lim = cs.meta["angles"], np.asarray(cs.meta["limits"])
        assert A.shape == (cs.n_frames, cs.n_keypoints, 3)
        assert (A >= lim[None, ..., 0] - 1e-12).all() and (A <= lim[None, ..., 1] + 1e-12).all()
        assert np.ptp(A, axis=0).max() > 0.05  # the joints do move
        # read back: forward kinematics of the stored body at the stored angles gives the points
        np.testing.assert_allclose(pose_body(cs.meta["body"], A), P, atol=1e-5)


def test_smooth_poses():
    cs = generate(1, 40, seed=2, plans=["quadruped"])[0]
    P = cs.points3d.astype(np.float64)
    step = np.linalg.norm(np.diff(P, axis=0), axis=-1).mean()
    apart = np.linalg.norm(P[:, None] - P[None], axis=-1).mean()
    assert step < 0.5 * apart


def test_mirrored_limbs_have_equal_bones():
    for cs in generate(6, 2, seed=1, plans=["quadruped", "biped"]):
        body, kind = cs.meta["body"], cs.meta["kind"]
        lengths = np.linalg.norm(body["bone"], axis=1)
        right = sorted(np.round(lengths[[k.endswith("_r") for k in kind]], 9))
        left = sorted(np.round(lengths[[k.endswith("_l") for k in kind]], 9))
        assert right and right == left
        lim = np.asarray(cs.meta["limits"])
        r = [i for i, k in enumerate(kind) if k.endswith("_r")]
        left_ids = [i for i, k in enumerate(kind) if k.endswith("_l")]
        # the left limb is the z-mirror of the right one (same order of construction): limits about z equal
        np.testing.assert_allclose(lim[r, 2], lim[left_ids, 2])
        np.testing.assert_allclose(lim[r, :2], -lim[left_ids, :2][..., ::-1])


def test_seeded_and_deterministic():
    a = generate(5, 8, seed=3)
    b = generate(5, 8, seed=3)
    c = generate(5, 8, seed=4)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.points3d, y.points3d)
        np.testing.assert_array_equal(x.edges, y.edges)
    assert any(x.n_keypoints != y.n_keypoints or np.abs(x.points3d - y.points3d).max() > 1e-3 for x, y in zip(a, c))
    np.testing.assert_array_equal(generate(2, 8, seed=3)[1].points3d, a[1].points3d)  # body i only needs (seed, i)


def test_plausibly_upright():
    for cs in generate(16, 10, seed=7, plans=["quadruped", "biped"]):
        kind = np.array(cs.meta["kind"])
        legs = np.flatnonzero(np.char.startswith(kind.astype(str), "leg"))
        lowest_leg = cs.points3d[:, legs, 1].min(1)
        assert (lowest_leg < cs.points3d[:, 0, 1]).all()  # feet below the root
        if cs.meta["plan"] == "biped":
            head = cs.points3d[:, list(kind).index("head"), 1]
            assert (head > lowest_leg).all() and (head > cs.points3d[:, 0, 1]).all()


def test_markers_are_rigid_leaves():
    sets = generate(8, 6, seed=9, markers=0.5)
    assert any("marker" in cs.meta["kind"] for cs in sets)
    for cs in sets:
        assert cs.n_keypoints <= 60 and is_tree(cs.edges, cs.n_keypoints)
        P = cs.points3d.astype(np.float64)
        L = np.linalg.norm(P[:, cs.edges[:, 0]] - P[:, cs.edges[:, 1]], axis=-1)
        assert np.abs(L - L[0]).max() < 1e-6
        parents = set(cs.edges[:, 0].tolist())
        assert all(i not in parents for i, k in enumerate(cs.meta["kind"]) if k == "marker")


def test_random_body_and_speed():
    with pytest.raises(ValueError, match="unknown plan"):
        random_body(np.random.default_rng(0), plan="octopus")
    t = time.perf_counter()
    sets = generate(200, 50, seed=0)
    assert time.perf_counter() - t < 5.0  # about half a second on one core
    assert sum(cs.n_frames for cs in sets) == 200 * 50
