"""Forward-kinematics loaders: lfm.data.asfamc (CMU ASF/AMC), lfm.data.bvh (Bandai Namco BVH), lfm.data.deepmimic
(DeepMimic, IsaacGym AMP) and lfm.data.aves (AVES birds).

Independent numbers: hand-computed Acclaim frames, bone lengths read from the files' own skeleton text (ASF length,
BVH OFFSET, DeepMimic Attach, poselib local translations), the AMP rig against the DeepMimic character file (two
repositories, one body), heights from SOURCE.md. Bone-length tolerance: the points are stored as float32, whose
spacing at the largest coordinates here (|x| < 10 m) is about 1e-6 m, so a length computed from two stored points is
exact to a few 1e-6 m; 2e-5 m leaves margin and is still 100x below any real bone-length change.
"""

import io
import pickle
import re

import numpy as np
import pytest

from lfm.data import asfamc, aves, bvh, deepmimic
from lfm.data.fetch import DataUnavailableError, fetch, licence, registry
from lfm.data.forward_kinematics import tree_edges

from .conftest import is_tree, needs_mirror

BONE_ATOL = 2e-5  # m, see the module docstring


def bone_lengths(cs):
    e = cs.edges
    return np.linalg.norm(cs.points3d[:, e[:, 1]] - cs.points3d[:, e[:, 0]], axis=-1)  # (F, E)


def assert_rigid_per_clip(cs, atol=BONE_ATOL):
    L = bone_lengths(cs)
    for s in np.unique(cs.sequence):
        Ls = L[cs.sequence == s]
        assert np.abs(Ls - Ls[0]).max() < atol, f"{cs.rig} {s}: bone lengths vary by {np.abs(Ls - Ls[0]).max():.2e}"


def assert_tree(cs):
    """N - 1 edges, connected, matching meta['parents'], named joints, +y rule and units stated."""
    N = cs.n_keypoints
    assert is_tree(cs.edges, N), f"{cs.rig}: the edges are not a tree over all {N} keypoints"
    parents = cs.meta["parents"]
    assert sorted(map(tuple, cs.edges.tolist())) == sorted((p, j) for j, p in enumerate(parents) if p >= 0)
    assert len(cs.meta["joint_names"]) == N and len(set(cs.meta["joint_names"])) == N
    assert cs.meta["up_rule"] and cs.edges_rule and cs.source and cs.licence
    assert cs.units in ("m", "arbitrary")
    assert cs.visible.all() and cs.n_nonfinite == 0


# ------------------------------------------------------------------------------------------- CMU ASF/AMC (no data)
TOY_ASF = """:version 1.10
:units
  mass 1.0
  length 0.45
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name a
     direction 0 1 0
     length 2
     axis 0 0 90  XYZ
    dof rx
  end
  begin
     id 2
     name b
     direction 0 1 0
     length 1
     axis 0 0 0  XYZ
    dof rz
  end
:hierarchy
  begin
    root a
    a b
  end
"""
TOY_AMC = """:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 90 0
a 90
b 90
2
root 0 0 0 90 90 0
a 0
b 0
"""


def test_asf_amc_forward_kinematics_against_hand_computed_frames():
    asf = asfamc.parse_asf(TOY_ASF)
    assert asf["names"] == ["root", "a", "b"] and asf["parents"] == [-1, 0, 1]
    motion, numbers = asfamc.parse_amc(TOY_AMC, asf)
    assert numbers.tolist() == [1, 2]
    P = asfamc.asf_amc_positions(asf, motion, 2)
    # frame 1: root at (1,2,3) turned Ry(90). Bone a: C = Rz(90), M = Rx(90), so C M C^-1 = Ry(90) and
    # G_a = Ry(180); a's end = root + Ry(180) (0,2,0) = (1,4,3). Bone b: G_b = Ry(180) Rz(90);
    # Rz(90) (0,1,0) = (-1,0,0); Ry(180) (-1,0,0) = (1,0,0); b's end = (2,4,3).
    np.testing.assert_allclose(P[0], [[1, 2, 3], [1, 4, 3], [2, 4, 3]], atol=1e-12)
    # frame 2: root rx = ry = 90 with x applied first: G = Ry(90) Rx(90); Rx(90) (0,2,0) = (0,0,2);
    # Ry(90) (0,0,2) = (2,0,0). (The other order, Rx(90) Ry(90), would give (0,0,2).) b continues along a.
    np.testing.assert_allclose(P[1], [[0, 0, 0], [2, 0, 0], [3, 0, 0]], atol=1e-12)
    assert asfamc.cmu_metres_per_unit(asf) == pytest.approx(0.0254 / 0.45)


def test_amc_rejects_a_bone_with_the_wrong_channel_count():
    asf = asfamc.parse_asf(TOY_ASF)
    with pytest.raises(ValueError, match="bone 'a' has 2 values"):
        asfamc.parse_amc(TOY_AMC.replace("a 90\n", "a 90 1\n"), asf)


# ------------------------------------------------------------------------------------------- CMU ASF/AMC (mirror)
def _amc_frame_count(name):
    return len(re.findall(r"^\d+\s*$", fetch(name, progress=False).read_text(), flags=re.M))


@needs_mirror
def test_cmu_loader(offline_cache):
    cs = asfamc.load_cmu_asfamc(clips=["02_01", "03_01"], fps=30)
    assert cs.rig == "cmu_asf31" and cs.n_keypoints == 31 and cs.units == "m"
    assert_tree(cs)
    assert_rigid_per_clip(cs)
    assert set(cs.sequence) == {"02_01", "03_01"} and set(cs.meta["subject"]) == {"02", "03"}
    assert cs.licence == licence("human_cmu_asfamc/subjects/02/02.asf")
    n = _amc_frame_count("human_cmu_asfamc/subjects/02/02_01.amc")
    assert (cs.sequence == "02_01").sum() == len(range(0, n, 4))  # 120 fps -> every 4th frame
    # a bone length from the ASF text: 02.asf lfemur "length 7.59371" (file units = inches x 0.45)
    names = cs.meta["joint_names"]
    lf = names.index("lfemur")
    femur = np.linalg.norm(cs.points3d[:, lf] - cs.points3d[:, cs.meta["parents"][lf]], axis=-1)
    np.testing.assert_allclose(femur[cs.sequence == "02_01"], 7.59371 / 0.45 * 0.0254, atol=BONE_ATOL)
    # SOURCE.md: "the 02_01 walk spans 1.62 m" (height over the clip); +y up: head above the toes in every frame
    walk = cs.points3d[cs.sequence == "02_01"]
    assert walk[..., 1].max() - walk[..., 1].min() == pytest.approx(1.62, abs=0.03)
    head, toes = names.index("head"), [names.index("ltoes"), names.index("rtoes")]
    assert (walk[:, head, 1] - walk[:, toes, 1].max(1) > 1.3).all()


@needs_mirror
def test_cmu_euler_order_keeps_the_stance_foot_still(offline_cache, monkeypatch):
    """The Acclaim order (x first: Rz Ry Rx) plants the walker's lowest foot point; the reversed order slides it
    3x faster (measured 0.09 vs 0.29 m/s median on 02_01): a check of the convention on real data."""
    def sliding(cs):
        names = cs.meta["joint_names"]
        feet = cs.points3d[:, [names.index(n) for n in ("lfoot", "rfoot", "ltoes", "rtoes")]]
        low = feet[:-1, :, 1].argmin(1)
        v = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=0), axis=-1)[np.arange(len(low)), low] * 120
        return np.median(v)

    ok = sliding(asfamc.load_cmu_asfamc(clips=["02_01"], fps=120))
    euler = asfamc.euler
    monkeypatch.setattr(asfamc, "euler", lambda a, axes: euler(a[..., ::-1], axes[::-1]))
    monkeypatch.setattr(asfamc, "cached_arrays", lambda key, sources, build, **kw: build())
    reversed_order = sliding(asfamc.load_cmu_asfamc(clips=["02_01"], fps=120))
    assert ok < 0.15 < 0.25 < reversed_order


# ------------------------------------------------------------------------------------------- Bandai Namco BVH
WALK = "dataset-1_walk_normal_001"


@needs_mirror
def test_bvh_position_channels_replace_the_offset(offline_cache):
    """SOURCE.md: every joint has 6 channels whose positions equal its OFFSET; reading them as an addition doubles
    every bone. The OFFSETs are read from the file text here (independent of the parser)."""
    text = fetch(f"human_bandai_namco/data/{WALK}.bvh", progress=False).read_text()
    foot_offset = [float(v) for v in re.search(r"JOINT Foot_L\s*\{\s*OFFSET ([-\d.e ]+)\n", text).group(1).split()]
    assert np.linalg.norm(foot_offset) == pytest.approx(40.9854, abs=1e-4)
    parsed = bvh.parse_bvh(text)
    assert all(len(c) == 6 for c in parsed["channels"])
    i, p = parsed["names"].index("Foot_L"), parsed["names"].index("LowerLeg_L")
    right = bvh.bvh_positions(parsed, slice(0, 30))
    doubled = bvh.bvh_positions(parsed, slice(0, 30), position_channels="add")
    shin = np.linalg.norm(right[:, i] - right[:, p], axis=-1)
    np.testing.assert_allclose(shin, 40.9854, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(doubled[:, i] - doubled[:, p], axis=-1), 2 * 40.9854, atol=2e-3)
    # every bone of the loader equals its OFFSET length (cm -> m)
    cs = bvh.load_bandai_namco(clips=[WALK])
    offs = {n: np.linalg.norm(o) for n, o in zip(parsed["names"], parsed["offsets"])}
    expect = np.array([offs[cs.meta["joint_names"][j]] for j in cs.edges[:, 1]]) / 100
    np.testing.assert_allclose(bone_lengths(cs), np.broadcast_to(expect, (cs.n_frames, len(expect))), atol=BONE_ATOL)


@needs_mirror
def test_bandai_loader(offline_cache):
    clips = [WALK, "dataset-1_bow_tired_001", "dataset-1_walk_proud_002", "dataset-1_walk_normal_002"]
    cs = bvh.load_bandai_namco(clips=clips, fps=10)
    assert cs.rig == "bandai21" and cs.n_keypoints == 21 and cs.units == "m"
    assert_tree(cs)
    assert_rigid_per_clip(cs)
    assert cs.licence == licence("human_bandai_namco/LICENSE")
    assert list(dict.fromkeys(cs.sequence)) == clips
    s = cs.sequence == "dataset-1_walk_proud_002"
    assert set(cs.meta["content"][s]) == {"walk"} and set(cs.meta["style"][s]) == {"proud"}
    assert set(cs.meta["take"][s]) == {"002"}
    n = int(re.search(r"Frames:\s*(\d+)", fetch(f"human_bandai_namco/data/{WALK}.bvh", progress=False)
                      .read_text()).group(1))
    assert (cs.sequence == WALK).sum() == len(range(0, n, 3))  # 30 fps -> 10 fps
    names = cs.meta["joint_names"]
    walk = cs.points3d[cs.sequence == WALK]
    head, toes = names.index("Head"), [names.index("Toes_L"), names.index("Toes_R")]
    # +y up; the head joint (base of the skull) stands 1.2-1.5 m above the toes of a walking adult
    stand = walk[:, head, 1] - walk[:, toes, 1].min(1)
    assert (1.2 < stand).all() and (stand < 1.5).all()
    # in 4 clips joint_Root (dropped) carries the travel: the hips' own channels move < 3 cm from it, yet the hips
    # travel 1.5 m, so the travel comes from the root's channels
    hips = cs.points3d[cs.sequence == "dataset-1_walk_normal_002", names.index("Hips")]
    assert np.ptp(hips[:, 2]) > 1.0 and (0.8 < hips[:, 1]).all() and (hips[:, 1] < 1.05).all()
    first = sorted(n.split("/")[-1][:-4] for n in registry()
                   if n.startswith("human_bandai_namco/data/") and n.endswith(".bvh"))[:2]
    assert list(dict.fromkeys(bvh.load_bandai_namco(max_clips=2).sequence)) == first


# ------------------------------------------------------------------------------------------- DeepMimic
def _attach_lengths(character, cs):
    import json

    text = fetch(f"human_dog_deepmimic/data/characters/{character}3d.txt", progress=False).read_text()
    joints = {j["Name"]: j for j in json.loads(text)["Skeleton"]["Joints"]}
    names = cs.meta["joint_names"]
    return np.array([np.linalg.norm([joints[names[j]][f"Attach{a}"] for a in "XYZ"]) for j in cs.edges[:, 1]])


@needs_mirror
def test_deepmimic_humanoid(offline_cache):
    cs = deepmimic.load_deepmimic("humanoid", clips=["walk", "run", "backflip"])
    assert cs.rig == "deepmimic_humanoid15" and cs.n_keypoints == 15 and cs.units == "m"
    assert_tree(cs)
    assert_rigid_per_clip(cs)
    np.testing.assert_allclose(bone_lengths(cs)[0], _attach_lengths("humanoid", cs), atol=BONE_ATOL)
    assert [int((cs.sequence == c).sum()) for c in ("walk", "run", "backflip")] == [39, 25, 29]
    names = cs.meta["joint_names"]
    walk = cs.points3d[cs.sequence == "walk"]
    neck, ankles = names.index("neck"), [names.index("left_ankle"), names.index("right_ankle")]
    stand = walk[:, neck, 1] - walk[:, ankles, 1].min(1)  # SOURCE.md: ankle to top joint about 1.25 m
    assert (stand > 1.15).all() and (stand < 1.3).all()
    fast = deepmimic.load_deepmimic("humanoid", clips=["jump"], fps=30)  # 60 fps clip -> every 2nd frame
    assert fast.meta["frame"].tolist() == list(range(0, 107, 2))


@needs_mirror
def test_deepmimic_dog(offline_cache):
    cs = deepmimic.load_deepmimic("dog")
    assert cs.rig == "deepmimic_dog23" and cs.n_keypoints == 23 and cs.n_frames == 144  # SOURCE.md: 144 frames
    assert_tree(cs)
    assert_rigid_per_clip(cs)
    np.testing.assert_allclose(bone_lengths(cs)[0], _attach_lengths("dog", cs), atol=BONE_ATOL)
    names = cs.meta["joint_names"]
    paws = [names.index(n) for n in ("left_finger", "right_finger", "left_toe", "right_toe")]
    back = cs.points3d[:, names.index("spine1"), 1]
    assert (back - cs.points3d[:, paws, 1].min(1) > 0.4).all()  # +y up: the back above the lowest paw
    assert (back > cs.points3d[:, paws, 1].mean(1)).all()
    with pytest.raises(ValueError, match="'humanoid' or 'dog'"):
        deepmimic.load_deepmimic("cat")


# ------------------------------------------------------------------------------------------- IsaacGym AMP
@needs_mirror
def test_amp_loader(offline_cache):
    cs = deepmimic.load_amp()
    assert cs.rig == "amp_humanoid15" and cs.n_keypoints == 15 and cs.units == "m"
    assert cs.n_frames == 1751  # SOURCE.md
    assert_tree(cs)
    assert_rigid_per_clip(cs)
    names = cs.meta["joint_names"]

    def bone(a, b):
        return np.linalg.norm(cs.points3d[:, names.index(a)] - cs.points3d[:, names.index(b)], axis=-1)

    # the AMP humanoid is the DeepMimic humanoid: thigh and shin lengths from DeepMimic's character file
    np.testing.assert_allclose(bone("right_thigh", "right_shin"), 0.421546, atol=BONE_ATOL)
    np.testing.assert_allclose(bone("left_shin", "left_foot"), 0.40987, atol=BONE_ATOL)
    walk = cs.points3d[cs.sequence == "walk"]
    feet = [names.index("left_foot"), names.index("right_foot")]
    assert (walk[:, names.index("head"), 1] - walk[:, feet, 1].max(1) > 1.0).all()  # z-up source turned to +y
    assert walk[:, feet, 1].min() == pytest.approx(0.0, abs=0.05)  # feet on the floor (y = 0 after the turn)
    half = deepmimic.load_amp(clips=["walk"], fps=30)
    assert half.n_frames == 77 and half.meta["frame"][1] == 2


AMP_TO_DEEPMIMIC = {"pelvis": "root", "torso": "chest", "head": "neck", "right_upper_arm": "right_shoulder",
                    "right_lower_arm": "right_elbow", "right_hand": "right_wrist", "left_upper_arm": "left_shoulder",
                    "left_lower_arm": "left_elbow", "left_hand": "left_wrist", "right_thigh": "right_hip",
                    "right_shin": "right_knee", "right_foot": "right_ankle", "left_thigh": "left_hip",
                    "left_shin": "left_knee", "left_foot": "left_ankle"}


@needs_mirror
def test_amp_backflip_is_the_deepmimic_backflip(offline_cache):
    """Two formats, two forward kinematics, one motion: the AMP backflip (poselib pickle, z-up, xyzw) is the
    DeepMimic backflip (JSON, y-up, wxyz) retargeted to the same body. Equal to the float32 precision of the AMP
    file (2e-5 m) checks both readers, both quaternion orders and the z-up turn at once."""
    a = deepmimic.load_amp(clips=["backflip"])
    d = deepmimic.load_deepmimic("humanoid", clips=["backflip"])
    an, dn = a.meta["joint_names"], d.meta["joint_names"]
    A = a.points3d[:, [an.index(k) for k in AMP_TO_DEEPMIMIC]]
    D = d.points3d[:, [dn.index(v) for v in AMP_TO_DEEPMIMIC.values()]]
    np.testing.assert_allclose(A, D, atol=5e-5)


def test_skeleton_motion_reader_runs_no_foreign_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    np.save(buf, np.array(Evil(), dtype=object), allow_pickle=True)
    with pytest.raises(pickle.UnpicklingError, match="unexpected object builtins.print"):
        deepmimic.read_skeleton_motion(buf.getvalue(), "evil.npy")


# ------------------------------------------------------------------------------------------- AVES birds
def toy_bird(rng, n_joints=25, n_verts=60, n_basis=3):
    """A random AVES-shaped model: a chain of joints, random skin weights, each keypoint one vertex."""
    J = np.cumsum(rng.normal(size=(n_joints, 3)), 0)
    W = rng.random((n_verts, n_joints)) ** 4
    reg = np.zeros((18, n_verts))
    reg[np.arange(18), rng.choice(n_verts, 18, replace=False)] = 1.0
    model = {"V": J[rng.integers(0, n_joints, n_verts)] + rng.normal(size=(n_verts, 3)) * 0.3, "J": J,
             "parents": np.arange(-1, n_joints - 1), "weights": W / W.sum(1, keepdims=True), "vert2kpt": reg,
             "basis": rng.normal(size=(n_basis, n_verts, 3)) * 0.05}
    A = rng.normal(size=(3 * (n_joints - 1),) * 2) * 0.1
    prior = {"p_m": rng.normal(size=3 * (n_joints - 1)) * 0.1, "p_cov": A @ A.T,
             "b_m": np.ones(n_joints - 1), "b_cov": np.eye(n_joints - 1) * 1e-3}
    return model, prior


def test_aves_rest_pose_is_the_template_and_two_joints_by_hand(rng):
    model, _ = toy_bird(rng)
    kp = aves.aves_keypoints(model, np.zeros((1, 25, 3)), np.ones((1, 25)), np.zeros((1, 3)))[0]
    np.testing.assert_allclose(kp, model["vert2kpt"] @ model["V"], atol=1e-12)
    # two joints: J0 = 0, J1 = (1,0,0); vertex v = (2,0,0) fully on joint 1. Rotate joint 0 by 90 deg about z
    # and double bone 1: joint 1 goes to Rz(90) (2,0,0) = (0,2,0); v = J1' + Rz(90) (v - J1) = (0,2,0) + (0,1,0).
    m2 = {"V": np.array([[2.0, 0, 0]]), "J": np.array([[0.0, 0, 0], [1, 0, 0]]), "parents": np.array([-1, 0]),
          "weights": np.array([[0.0, 1.0]]), "vert2kpt": np.ones((18, 1)), "basis": np.zeros((1, 1, 3))}
    pose = np.array([[[0, 0, np.pi / 2], [0, 0, 0]]])
    out = aves.aves_keypoints(m2, pose, np.array([[1.0, 2.0]]), np.zeros((1, 1)))
    np.testing.assert_allclose(out[0, 0], [0, 3, 0], atol=1e-12)


def test_sample_birds_is_seeded_and_one_shape_per_individual(rng):
    model, prior = toy_bird(rng)
    a = aves.sample_birds(model, prior, n_frames=50, n_individuals=4, seed=3)
    b = aves.sample_birds(model, prior, n_frames=50, n_individuals=4, seed=3)
    c = aves.sample_birds(model, prior, n_frames=50, n_individuals=4, seed=4)
    np.testing.assert_array_equal(a["points"], b["points"])
    assert not np.allclose(a["points"], c["points"])
    assert a["points"].shape == (50, 18, 3) and np.bincount(a["individual"]).tolist() == [13, 13, 12, 12]
    for i in range(4):
        betas = a["beta"][a["individual"] == i]
        assert (betas == betas[0]).all() and np.abs(betas).max() <= 1.0
    assert len({tuple(a["beta"][a["individual"] == i][0]) for i in range(4)}) == 4


def test_bird_up_rotation_is_proper_and_puts_the_back_above_the_feet(rng):
    P = rng.normal(size=(18, 3))
    k = {n: i for i, n in enumerate(aves.BIRD_KEYPOINTS)}
    R = aves.bird_up_rotation(P)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    Q = P @ R.T
    assert Q[k["back"], 1] > (Q[k["left_foot"], 1] + Q[k["right_foot"], 1]) / 2
    assert Q[k["bill_tip"], 0] > Q[k["tail_tip"], 0]
    assert len(tree_edges(aves.BIRD_PARENTS)) == 17


@needs_mirror
def test_bird_pose_prior_file(offline_cache):
    import torch

    d = torch.load(fetch("bird_aves/models/pose_bone_prior.pth", progress=False), weights_only=True)
    assert d["p_m"].shape == (72,) and d["p_cov"].shape == (72, 72) and d["b_m"].shape == (24,)


@needs_mirror
def test_bird_loader(offline_cache):
    try:
        fetch("bird_aves/models/aves.pt", progress=False)
    except DataUnavailableError:
        pytest.skip("bird_aves/models/aves.pt is listed in MANIFEST.json but missing from this mirror")
    cs = aves.load_bird(n_frames=200, n_individuals=10, seed=0)
    assert cs.rig == "aves_bird18" and cs.points3d.shape == (200, 18, 3) and cs.synthetic
    assert_tree(cs)
    assert len(np.unique(cs.sequence)) == 10
    again = aves.load_bird(n_frames=200, n_individuals=10, seed=0)
    np.testing.assert_array_equal(cs.points3d, again.points3d)
    k = {n: i for i, n in enumerate(aves.BIRD_KEYPOINTS)}
    P = cs.points3d
    assert np.mean(P[:, k["back"], 1] > P[:, [k["left_foot"], k["right_foot"]], 1].max(1)) > 0.9


@needs_mirror
def test_load_bird_reads_an_aves_file(offline_cache, tmp_path, monkeypatch, rng):
    """load_bird end to end on a toy model saved like aves.pt (legacy torch pickle, the upstream key names) with the
    real pose prior: the reader, the sampler, the up rule and the schema (test_data_v3.py checks the real aves.pt)."""
    import torch

    model, _ = toy_bird(rng)
    kintree = np.stack([np.concatenate([[4294967295], model["parents"][1:]]), np.arange(25)])
    raw = {"kintree_table": torch.tensor(kintree), "weights": torch.tensor(model["weights"], dtype=torch.float32),
           "vert2kpt": torch.tensor(model["vert2kpt"], dtype=torch.float32),
           "V": torch.tensor(model["V"], dtype=torch.float32), "J": torch.tensor(model["J"], dtype=torch.float32),
           "Beta": torch.tensor(model["basis"], dtype=torch.float32), "Beta_sigma": torch.ones(3)}
    path = tmp_path / "aves.pt"
    torch.save(raw, path, _use_new_zipfile_serialization=False)
    real_fetch = aves.fetch
    monkeypatch.setattr(aves, "fetch", lambda name, **kw: path if name.endswith("aves.pt") else real_fetch(name, **kw))
    monkeypatch.setattr(aves, "cached_arrays", lambda key, sources, build, **kw: build())
    cs = aves.load_bird(n_frames=30, n_individuals=3, seed=1)
    assert cs.points3d.shape == (30, 18, 3) and cs.rig == "aves_bird18" and cs.synthetic
    assert_tree(cs)
    assert sorted(set(cs.sequence)) == ["bird000", "bird001", "bird002"]
    np.testing.assert_array_equal(cs.points3d, aves.load_bird(n_frames=30, n_individuals=3, seed=1).points3d)
    assert cs.licence == licence("bird_aves/models/aves.pt")
