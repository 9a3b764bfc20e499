"""Data v3 loaders on the real mirror files: the 12 KeypointNet object categories, the PIG pig and the AVES bird's
two rigs; counts from each folder's SOURCE.md, independent checks (the raw JSON, the pickle read directly, a
homogeneous-matrix skinning written here), and one-line errors naming damaged files."""

import json
import pickle
import warnings

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lfm.data import aves, pig, shapes
from lfm.data.fetch import fetch, licence

from .conftest import components, is_tree, needs_mirror

pytestmark = [needs_mirror, pytest.mark.usefixtures("offline_cache")]

# keypointnet_objects/SOURCE.md: models, keypoints per model min / median / max, semantic ids, keypoints total
KPN = {"bathtub": (492, 8, 16, 24, 24, 7880), "bed": (146, 8, 12, 16, 20, 1841), "bottle": (380, 4, 17, 18, 18, 6260),
       "cap": (38, 5, 6, 6, 6, 226), "guitar": (697, 4, 9, 9, 9, 5900), "helmet": (90, 5, 9, 9, 9, 776),
       "knife": (270, 4, 6, 6, 6, 1358), "laptop": (439, 6, 6, 6, 6, 2634), "motorcycle": (298, 7, 13, 14, 14, 3878),
       "skateboard": (141, 6, 10, 10, 10, 1323), "table": (1124, 7, 8, 12, 12, 9047),
       "vessel": (910, 5, 15, 21, 24, 12988)}


# ----------------------------------------------------------------------------------------------- KeypointNet
@pytest.mark.parametrize("category", sorted(KPN))
def test_keypointnet_category_matches_its_source_and_the_raw_json(category):
    n, lo, med, hi, ids, total = KPN[category]
    cs = shapes.load_keypointnet(category)
    assert cs.points3d.shape == (n, ids, 3) and cs.rig == f"keypointnet_{category}{ids}"
    per_model = cs.visible.sum(1)
    assert (per_model.min(), int(np.median(per_model)), per_model.max(), per_model.sum()) == (lo, med, hi, total)
    assert not cs.points3d[~cs.visible].any()  # absent slots are masked and zero
    assert np.abs(cs.points3d).max() < 0.93 and cs.units == "normalised"
    assert len(set(cs.sequence)) == n  # one frame per model: splits by model id
    raw = json.loads(fetch(f"keypointnet_objects/{category}.json", progress=False).read_text())
    for f in (0, n // 2, n - 1):
        for kp in raw[f]["keypoints"]:
            np.testing.assert_allclose(cs.points3d[f, kp["semantic_id"]], kp["xyz"], atol=1e-6)
        assert cs.sequence[f] == raw[f]["model_id"] and per_model[f] == len(raw[f]["keypoints"])
    used = cs.visible.any(0)
    assert used.all() or category == "vessel"  # vessel: 24 ids, 21 at most on one model, every id used somewhere
    assert components(cs.edges, ids) == 1
    assert cs.licence == licence(f"keypointnet_objects/{category}.json") and "MIT" in cs.licence


def test_chair_is_the_generalised_loader_with_its_own_file():
    cs = shapes.load_chairs()
    assert cs.rig == "keypointnet_chair21" and cs.n_frames == 999 and cs.category == "chair"
    assert cs.licence == licence("keypointnet_chair/chair.json")
    with pytest.raises(ValueError, match="airplane.*known"):
        shapes.load_keypointnet("airplane")


@pytest.mark.parametrize("text, why", [('[{"model_id": "a", "keypoints": [{"semantic_id": 0, "xyz": [0, 0', "JSON"),
                                       ('[{"model_id": "a"}]', "not a KeypointNet annotation file"),
                                       ('[]', "no models")])
def test_a_damaged_keypointnet_file_is_one_line_naming_it(text, why, tmp_path, monkeypatch):
    bad = tmp_path / "knife.json"
    bad.write_text(text)
    monkeypatch.setattr(shapes, "fetch", lambda name, **kw: bad)
    with pytest.raises(ValueError, match=why) as e:
        shapes.load_keypointnet("knife")
    msg = str(e.value)
    assert msg.startswith("keypointnet_objects/knife.json: ") and "\n" not in msg


# ----------------------------------------------------------------------------------------------- the PIG pig
@pytest.fixture(scope="module")
def pig_set():
    import os

    os.environ.setdefault("LFM_OFFLINE", "1")
    return pig.load_pig()


def _raw_pig():
    with open(fetch(pig.PIG_FILE, progress=False), "rb") as f:
        with warnings.catch_warnings():  # scipy's old csc module path in the pickle
            warnings.simplefilter("ignore", DeprecationWarning)
            return pickle.load(f, encoding="latin1")  # the plain unpickler: an independent reading of the file


def test_pig_shapes_units_tree_and_up(pig_set):
    cs = pig_set
    assert cs.points3d.shape == (2000, 58, 3) and cs.rig == "pig_mammal58" and cs.units == "m" and cs.synthetic
    assert cs.visible.all() and is_tree(cs.edges, 58)
    assert len(set(cs.sequence)) == 20 and cs.licence == licence(pig.PIG_FILE) and "MIT" in cs.licence
    names = cs.meta["joint_names"]
    k = {n: i for i, n in enumerate(names)}
    assert {"rf_hip", "lf_hip", "r_leg", "l_leg"}.isdisjoint(names)  # 4 mm from their parents: merged
    length = cs.points3d[:, k["jaw_end"], 0] - cs.points3d[:, k["tail8"], 0]
    assert 0.55 < length.min() and length.max() < 0.7  # about 0.64 m snout to tail tip (SOURCE.md)
    feet = cs.points3d[:, [k["rf_toe_end"], k["lf_toe_end"], k["r_toe"], k["l_toe"]], 1]
    assert (feet < cs.points3d[:, [k["hip"]], 1] - 0.05).all()  # +y up: the feet are below the hip in every frame


def test_pig_bones_keep_their_rest_length_in_every_frame(pig_set):
    raw = _raw_pig()
    J = np.asarray(raw["t_pose_joints"], float)[pig_set.meta["joint_index"]]
    e = pig_set.edges
    rest = np.linalg.norm(J[e[:, 0]] - J[e[:, 1]], axis=-1)
    posed = np.linalg.norm(pig_set.points3d[:, e[:, 0]] - pig_set.points3d[:, e[:, 1]], axis=-1)
    np.testing.assert_allclose(posed, np.broadcast_to(rest, posed.shape), atol=2e-6)
    assert rest.min() > 0.005
    # the tree is the file's: every kept joint's parent (through merged ones) is its edge's other end
    parents = np.asarray(raw["parents"])
    kept = list(pig_set.meta["joint_index"])
    for a, b in e:
        p = parents[kept[b]]
        while p not in kept:
            p = parents[p]
        assert kept[a] == p


def test_pig_angles_stay_in_their_ranges_and_move_smoothly():
    A = pig.pig_angles(4, 100, seed=0)
    lo, hi = pig._limits()
    assert A.shape == (400, 62, 3) and (A >= lo - 1e-12).all() and (A <= hi + 1e-12).all()
    jaw = pig.PIG_JOINTS.index("jaw")
    assert (A[:, jaw, 1] >= 0).all() and A[:, jaw, 1].max() > 0.05  # the jaw only opens
    assert not A[:, pig.PIG_JOINTS.index("rf_hip")].any()  # merged joints stay at rest
    steps = np.abs(np.diff(A.reshape(4, 100, -1), axis=1)).max()
    assert steps < np.radians(6)  # smooth: a few degrees per frame at most
    np.testing.assert_array_equal(A[:100], pig.pig_angles(1, 100, seed=0))  # trajectory 0 does not depend on n


@pytest.mark.parametrize("payload, why", [(b"not a pickle", "not a readable PIG model pickle"),
                                          (pickle.dumps({"vertices": np.zeros((3, 3))}), "no t_pose_joints"),
                                          (pickle.dumps({"t_pose_joints": np.zeros((61, 3)),
                                                         "parents": np.arange(-1, 60)}), "not a 62-joint tree"),
                                          (pickle.dumps(print), "not a readable PIG model pickle")])
def test_a_pig_pickle_of_another_structure_is_one_line_naming_it(payload, why):
    with pytest.raises(ValueError, match=why) as e:
        pig.read_pig(payload)
    assert str(e.value).startswith(pig.PIG_FILE + ": ") and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------- AVES bird
def _raw_aves():
    import torch

    d = torch.load(fetch("bird_aves/models/aves.pt", progress=False), map_location="cpu", weights_only=True)
    return {k: v.numpy().astype(np.float64) for k, v in d.items()}


def _skin_numpy(raw, pose, bone, beta):
    """Linear blend skinning over every vertex with 4x4 homogeneous transforms (scipy rotations): keypoints
    ``vert2kpt @ vertices`` and the joints."""
    parents = raw["kintree_table"][0].astype(int)
    parents[0] = -1
    J = raw["J"]
    V = raw["V"] + np.einsum("k,kvc->vc", beta * raw["Beta_sigma"], raw["Beta"])
    G = []
    for j, p in enumerate(parents):
        L = np.eye(4)
        L[:3, :3] = Rotation.from_rotvec(pose[j]).as_matrix()
        L[:3, 3] = J[0] if p < 0 else bone[j] * (J[j] - J[p])
        G.append(L if p < 0 else G[p] @ L)
    A = []
    for j, g in enumerate(G):
        undo = np.eye(4)
        undo[:3, 3] = -J[j]
        A.append(g @ undo)
    T = np.einsum("vj,jab->vab", raw["weights"], np.array(A))
    verts = np.einsum("vab,vb->va", T, np.concatenate([V, np.ones((len(V), 1))], 1))[:, :3]
    return raw["vert2kpt"] @ verts, np.array([g[:3, 3] for g in G])


def test_aves_rest_pose_reproduces_the_template():
    raw = _raw_aves()
    model, _ = aves._read_aves(raw, {"p_m": raw["pose_mean"], "p_cov": raw["pose_cov"], "b_m": raw["bone_mean"],
                                      "b_cov": raw["bone_cov"]})
    kp, joints = aves.aves_pose(model, np.zeros((1, 25, 3)), np.ones((1, 25)), np.zeros((1, 15)))
    np.testing.assert_allclose(joints[0], raw["J"], atol=1e-9)
    np.testing.assert_allclose(kp[0], raw["vert2kpt"] @ raw["V"], atol=1e-4)  # SOURCE.md: max error 4e-6


@pytest.mark.parametrize("rig, n", [("keypoints", 18), ("joints", 20)])
def test_posed_birds_are_the_regressor_on_directly_skinned_vertices(rig, n):
    cs = aves.load_bird(n_frames=60, n_individuals=3, seed=5, rig=rig)
    assert cs.points3d.shape == (60, n, 3) and cs.units == "arbitrary" and is_tree(cs.edges, n)
    raw = _raw_aves()
    R = np.asarray(cs.meta["up_rotation"])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
    kept = [int(x[len("joint"):]) for x in cs.meta["joint_names"]] if rig == "joints" else None
    for f in (0, 25, 59):
        pose = np.concatenate([np.zeros((1, 3)), cs.meta["pose"][f]])
        bone = np.concatenate([[1.0], cs.meta["bone"][f]])
        kp, joints = _skin_numpy(raw, pose, bone, cs.meta["beta"][f].astype(float))
        want = kp if rig == "keypoints" else joints[kept]
        np.testing.assert_allclose(cs.points3d[f], want @ R.T, atol=2e-4)


def test_bird_joint_rig_merges_only_coincident_joints():
    raw = _raw_aves()
    parents = raw["kintree_table"][0].astype(int)
    parents[0] = -1
    kept, edges = aves.aves_joint_rig(raw["J"], parents)
    assert len(kept) == 20 and is_tree(edges, 20)
    dropped = sorted(set(range(25)) - set(kept.tolist()))
    assert dropped == [3, 5, 13, 17, 21]
    d = np.linalg.norm(raw["J"][dropped][:, None] - raw["J"][kept][None], axis=-1).min(1)
    assert d.max() < 0.1  # each dropped joint sits on a kept one (1 mm in a 20-unit bird)
    D = np.linalg.norm(raw["J"][kept][:, None] - raw["J"][kept][None], axis=-1) + np.eye(20) * 9
    assert D.min() > 0.5  # the kept ones are distinct


def test_bird_rig_transfer_set_is_other_birds():
    from lfm.data import catalog

    a, b = catalog.load("bird18"), catalog.load("bird_joints20")
    assert a.rig == "aves_bird18" and b.rig == "aves_joints20" and b.n_frames == 1000
    assert not {r.tobytes() for r in a.meta["beta"]} & {r.tobytes() for r in b.meta["beta"]}  # seed 1: other shapes
