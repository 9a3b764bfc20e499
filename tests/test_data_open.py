"""Schema rules and the open-data loaders on the real files (counts from each folder's SOURCE.md)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lfm.data.schema import CategorySet, knn_edges, skeleton_from_motion

from .conftest import needs_mirror


def random_articulated_motion(rng, n_joints=15, frames=60):
    """A random tree with rigid bones, each joint rotating randomly per frame: the true edges are known."""
    parent = [-1] + [int(rng.integers(0, j)) for j in range(1, n_joints)]
    offsets = rng.normal(size=(n_joints, 3)) * rng.uniform(0.5, 2.0, size=(n_joints, 1))
    P = np.zeros((frames, n_joints, 3))
    for f in range(frames):
        rot = Rotation.random(n_joints, random_state=int(rng.integers(1 << 30))).as_matrix()
        glob = [np.eye(3)] * n_joints
        for j in range(1, n_joints):
            glob[j] = glob[parent[j]] @ rot[j]
            P[f, j] = P[f, parent[j]] + glob[j] @ offsets[j]
    edges = sorted((min(j, parent[j]), max(j, parent[j])) for j in range(1, n_joints))
    return P, np.array(edges)


def test_skeleton_from_motion_recovers_a_known_tree(rng):
    for _ in range(3):
        P, true_edges = random_articulated_motion(rng)
        got = skeleton_from_motion(P)
        assert got.tolist() == true_edges.tolist()


def test_skeleton_from_motion_ignores_invisible_frames(rng):
    P, true_edges = random_articulated_motion(rng, frames=80)
    V = rng.random(P.shape[:2]) > 0.2
    P_bad = P.copy()
    P_bad[~V] = 1e6  # garbage where hidden
    assert skeleton_from_motion(P_bad, V).tolist() == true_edges.tolist()


def test_knn_edges_on_a_line():
    x = np.array([[0, 0, 0], [1, 0, 0], [2.1, 0, 0], [10, 0, 0], [50, 0, 0]], float)
    assert knn_edges(x, k=1).tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert knn_edges(x, k=1, valid=np.array([1, 1, 0, 1, 1], bool)).tolist() == [[0, 1], [1, 3], [3, 4]]


def test_nonfinite_coordinates_become_invisible_and_are_counted():
    P = np.ones((2, 4, 3))
    P[0, 1, 2] = np.nan
    P[1, 3, 0] = np.inf
    V = np.ones((2, 4), bool)
    V[1, 2] = False
    P[1, 2] = np.nan  # already invisible: not counted
    cs = CategorySet("x", "x4", P, V, [[0, 1]], ["a", "a"], "m", "test", "none")
    assert cs.n_nonfinite == 2
    assert cs.visible.tolist() == [[True, False, True, True], [True, True, False, False]]
    assert np.isfinite(cs.points3d).all() and cs.points3d.dtype == np.float32


def test_schema_bad_input_names_the_field():
    with pytest.raises(ValueError, match=r"points3d has shape \(2, 4\)"):
        CategorySet("x", "r", np.zeros((2, 4)), np.ones((2, 4), bool), [], ["a", "a"], "m", "s", "l")
    with pytest.raises(ValueError, match=r"visible has shape \(2, 3\); expected \(2, 4\)"):
        CategorySet("x", "r", np.zeros((2, 4, 3)), np.ones((2, 3), bool), [], ["a", "a"], "m", "s", "l")
    with pytest.raises(ValueError, match=r"edges reference keypoints outside 0..3"):
        CategorySet("x", "r", np.zeros((2, 4, 3)), np.ones((2, 4), bool), [[0, 4]], ["a", "a"], "m", "s", "l")
    with pytest.raises(ValueError, match=r"sequence has shape \(1,\); expected \(2,\)"):
        CategorySet("x", "r", np.zeros((2, 4, 3)), np.ones((2, 4), bool), [], ["a"], "m", "s", "l")


NRSFM_SIZES = {"drink": (1102, 41), "pickup": (357, 41), "stretch": (370, 41), "yoga": (307, 41),
               "dance": (264, 75), "walking": (260, 55), "face": (316, 40), "jaws": (240, 91)}


@needs_mirror
@pytest.mark.parametrize("seq", sorted(NRSFM_SIZES))
def test_nrsfm_loader(seq, offline_cache):
    from lfm.data.nrsfm import load_nrsfm

    cs = load_nrsfm(seq)
    assert (cs.n_frames, cs.n_keypoints) == NRSFM_SIZES[seq]
    assert cs.visible.all() and np.isfinite(cs.points3d).all()
    assert len(cs.edges) == cs.n_keypoints - 1  # a spanning tree
    assert set(cs.sequence) == {seq} and cs.synthetic == (seq == "jaws")
    assert cs.category == {"drink": "human41", "pickup": "human41", "stretch": "human41", "yoga": "human41",
                           "jaws": "shark"}.get(seq, seq)


@needs_mirror
def test_human41_sequences_share_one_graph(offline_cache):
    from lfm.data.nrsfm import load_nrsfm

    e = [load_nrsfm(s).edges.tolist() for s in ("drink", "pickup", "stretch", "yoga")]
    assert e[0] == e[1] == e[2] == e[3]


@needs_mirror
def test_dog_loader(offline_cache):
    from lfm.data import load

    cs = load("dog")
    assert (cs.n_frames, cs.n_keypoints) == (13772, 27) and cs.units == "m"
    counts = dict(zip(*np.unique(cs.sequence, return_counts=True)))
    assert counts["walk09"] == 4336 and counts["pace"] == 39 and len(counts) == 15
    # the motion MST recovers the four legs named in SOURCE.md: hip -> ... -> toe chains
    adj = {i: set() for i in range(27)}
    for a, b in cs.edges:
        adj[a].add(b)
        adj[b].add(a)
    for hip, toe in [(6, 10), (11, 15), (16, 19), (20, 23)]:
        seen, frontier = {hip}, [hip]
        while frontier:
            nxt = [n for f in frontier for n in adj[f] if n not in seen and n >= min(hip, toe) and n <= toe]
            seen.update(nxt)
            frontier = nxt
        assert toe in seen, f"no chain from hip {hip} to toe {toe} in {cs.edges.tolist()}"


@needs_mirror
def test_chair_loader_keeps_variable_keypoints(offline_cache):
    from lfm.data import load

    cs = load("chair")
    n_vis = cs.visible.sum(1)
    assert cs.n_frames == 999 and cs.n_keypoints == 21
    assert n_vis.min() == 8 and n_vis.max() == 17 and abs(n_vis.mean() - 12.1) < 0.1
    assert len(np.unique(cs.sequence)) == 999  # one instance per frame, split by model id
    assert (cs.points3d[~cs.visible] == 0).all()
    assert cs.meta["duplicate_ids_dropped"] == 0


@needs_mirror
@pytest.mark.parametrize("dataset,frames,joints", [("icvl", 1596, 16), ("nyu", 8252, 14)])
def test_hand_loader_real_2d_3d_pairs(dataset, frames, joints, offline_cache):
    """The real (u, v) must be the pinhole projection of the camera-frame 3D (the 2D-3D pair is consistent)."""
    from lfm.data.hands import load_hands

    cs = load_hands(dataset)
    assert (cs.n_frames, cs.n_keypoints) == (frames, joints) and cs.units == "mm"
    K = cs.camera
    X = cs.points3d.astype(np.float64)
    uv = np.stack([K["fx"] * X[..., 0] / X[..., 2] + K["cx"], K["fy"] * X[..., 1] / X[..., 2] + K["cy"]], -1)
    np.testing.assert_allclose(uv, cs.points2d, atol=2e-3)
    assert len(cs.edges) == joints - 1  # a tree
    extent = np.linalg.norm(X - X.mean(1, keepdims=True), axis=-1).max(1).mean() * 2
    assert 100 < extent < 300  # a hand, in mm
    if dataset == "icvl":
        assert dict(zip(*np.unique(cs.sequence, return_counts=True))) == {"test_seq_1": 702, "test_seq_2": 894}


def test_points2d_shape_is_checked():
    with pytest.raises(ValueError, match=r"points2d has shape \(2, 4, 3\)"):
        CategorySet("x", "r", np.zeros((2, 4, 3)), np.ones((2, 4), bool), [], ["a", "a"], "m", "s", "l",
                    points2d=np.zeros((2, 4, 3)))


@needs_mirror
def test_mediapipe_face_template_is_mirror_symmetric(offline_cache):
    from lfm.data import load

    cs = load("face_template")
    assert (cs.n_frames, cs.n_keypoints) == (1, 478) and cs.units == "cm"
    face = cs.points3d[0, :468].astype(np.float64)
    mirrored = face * [-1, 1, 1]
    d = np.linalg.norm(face[:, None] - mirrored[None], axis=-1).min(1)
    assert d.max() < 1e-3  # every face landmark has an x-mirror partner (SOURCE.md)
    assert len(cs.edges) >= 478 * 2


def test_nonfinite_2d_hides_the_joint_in_3d_too():
    P = np.ones((1, 3, 3))
    p2 = np.ones((1, 3, 2))
    p2[0, 1, 0] = np.nan
    cs = CategorySet("x", "r", P, np.ones((1, 3), bool), [], ["a"], "m", "s", "l", points2d=p2)
    assert cs.visible.tolist() == [[True, False, True]] and cs.n_nonfinite == 1
    assert (cs.points3d[0, 1] == 0).all() and (cs.points2d[0, 1] == 0).all()
