"""Named skeletons of common 2D formats (lfm.skeletons): counts, unique names, edges in range, connected graphs,
trees where the format is one, left/right symmetry, and their use as rigs by lfm.lift and `lfm lift --rig`."""

import numpy as np
import pytest

from lfm import skeletons as S
from lfm.data.registered import H36M_EDGES, WHOLEBODY_EDGES

from .conftest import components

COUNTS = {"coco17": 17, "h36m17": 17, "mediapipe_hand21": 21, "openpose_hand21": 21, "mediapipe_pose33": 33,
          "coco_wholebody133": 133}
TREES = {"h36m17", "openpose_hand21"}  # the formats whose skeleton is a tree


def _mirror(name: str) -> str:
    for a, b in (("left", "right"), ("right", "left")):
        if a in name:
            return name.replace(a, b)
    return name


def test_the_listed_formats_exist_with_their_counts():
    assert S.names() == list(COUNTS)
    for name, n in COUNTS.items():
        sk = S.get(name)
        assert sk.n == n == len(sk.keypoints) and sk.name == name and sk.source


@pytest.mark.parametrize("name", list(COUNTS))
def test_names_unique_edges_valid_and_connected(name):
    sk = S.get(name)
    assert len(set(sk.keypoints)) == sk.n, "keypoint names must be unique"
    e = np.array(sk.edges)
    assert e.shape[1] == 2 and e.min() >= 0 and e.max() < sk.n
    assert (e[:, 0] != e[:, 1]).all(), "no self loops"
    assert len({tuple(sorted(x)) for x in sk.edges}) == len(sk.edges), "no duplicate edges"
    assert components(sk.edges, sk.n) == 1, f"{name}: the graph is not connected"
    if name in TREES:
        assert len(sk.edges) == sk.n - 1


@pytest.mark.parametrize("name", ["coco17", "h36m17", "mediapipe_pose33", "coco_wholebody133"])
def test_left_right_symmetry(name):
    """Swapping left and right names is a permutation that maps the edge set onto itself."""
    sk = S.get(name)
    index = {k: i for i, k in enumerate(sk.keypoints)}
    perm = [index[_mirror(k)] for k in sk.keypoints]
    assert sorted(perm) == list(range(sk.n))
    assert any(p != i for i, p in enumerate(perm))
    edges = {frozenset(e) for e in sk.edges}
    assert {frozenset((perm[a], perm[b])) for a, b in sk.edges} == edges


def test_hands_share_the_order_and_differ_in_edges():
    mp, op = S.get("mediapipe_hand21"), S.get("openpose_hand21")
    assert mp.keypoints == op.keypoints and mp.keypoints[0] == "wrist" and mp.keypoints[4] == "thumb_tip"
    assert mp.keypoints[8] == "index_finger_tip" and mp.keypoints[20] == "pinky_tip"
    assert len(mp.edges) == 21 and components(mp.edges, 21) == 1  # MediaPipe closes the palm: one cycle
    assert {(0, 1), (0, 5), (0, 9), (0, 13), (0, 17)} <= set(op.edges)  # OpenPose: every finger from the wrist


def test_known_layouts():
    coco = S.get("coco17").keypoints
    assert coco[0] == "nose" and coco[5] == "left_shoulder" and coco[16] == "right_ankle"
    assert S.get("h36m17").keypoints[0] == "root" and S.get("h36m17").keypoints[10] == "head"
    pose = S.get("mediapipe_pose33").keypoints
    assert pose[11] == "left_shoulder" and pose[23] == "left_hip" and pose[32] == "right_foot_index"
    wb = S.get("coco_wholebody133")
    assert wb.keypoints[:17] == coco and wb.keypoints[91] == "left_hand_root" and wb.keypoints[112] == "right_hand_root"
    # reused, not copied
    assert list(wb.edges[:len(WHOLEBODY_EDGES)]) == list(WHOLEBODY_EDGES)
    assert list(S.get("h36m17").edges) == list(H36M_EDGES)
    assert set(S.get("coco17").edges) <= set(wb.edges)  # the body part of whole-body is COCO's skeleton


def test_unknown_name_lists_the_known():
    with pytest.raises(KeyError, match="coco17"):
        S.get("coco18")


def test_every_named_skeleton_is_a_rig_of_lift():
    import lfm
    from lfm import lifting as L

    if not L.DEFAULT_CHECKPOINT.is_file():
        pytest.skip("no shipped checkpoint")
    rigs = L.rigs()
    assert "mann_dog27" in rigs  # the checkpoint's rigs stay
    rng = np.random.default_rng(0)
    for name, n in COUNTS.items():
        assert rigs[name]["keypoints"] == n and rigs[name]["names"] == list(S.get(name).keypoints)
        assert rigs[name]["trained_on"] is False
        out = lfm.lift(rng.normal(size=(n, 2)), rig=name)
        assert out.graph == f"rig:{name}" and out.canonical.shape == (n, 3) and np.isfinite(out.camera).all()
    with pytest.raises(L.LiftInputError, match=r"rig 'coco17' has 17 keypoints but points2d has 18"):
        lfm.lift(rng.normal(size=(18, 2)), rig="coco17")
    with pytest.raises(L.LiftInputError, match=r"unknown rig 'coco18'; closest: coco17.*`lfm rigs` lists all"):
        lfm.lift(rng.normal(size=(17, 2)), rig="coco18")
