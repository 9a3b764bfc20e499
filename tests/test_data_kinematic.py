"""Forward-kinematics sampling of MJCF / URDF models from wheels (lfm.data.kinematic): rigid bones, joint limits
read back against the models, tree skeletons, seeded determinism, +y up, the excluded models refused."""

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco", reason="the mujoco wheel (mujoco-core) is not installed")
pytest.importorskip("dm_control", reason="the dm-control wheel (model files) is not installed")

from lfm.data import kinematic  # noqa: E402
from lfm.data.kinematic import MODELS, Z_TO_Y_UP, load_kinematic  # noqa: E402

from .conftest import is_tree  # noqa: E402

HAVE_PYBULLET = all(kinematic.importlib.util.find_spec(p) is not None for p in ("pybullet", "pybullet_data"))
HAVE_MYO = kinematic.importlib.util.find_spec("myo_sim") is not None
needs_pybullet = pytest.mark.skipif(not HAVE_PYBULLET, reason="the pybullet wheel is not installed")
needs_myo = pytest.mark.skipif(not HAVE_MYO, reason="the myo-sim wheel is not installed")

# a few models per engine and joint kind: hinges (humanoid), tendon coupling (quadruped), unlimited hinges (fish),
# URDF revolute + prismatic (panda), URDF spherical (pybullet humanoid), joint couplings (myo arm)
SMALL = dict(n_sequences=3, frames_per_sequence=25)
CASES = [
    "dmc_humanoid", "dmc_quadruped", "dmc_fish",
    pytest.param("pb_franka_panda", marks=needs_pybullet), pytest.param("pb_humanoid", marks=needs_pybullet),
    pytest.param("myo_arm", marks=needs_myo),
]


@pytest.fixture(scope="module")
def sets():
    cache = {}

    def get(name, **kw):
        key = (name, tuple(sorted({**SMALL, **kw}.items())))
        if key not in cache:
            cache[key] = load_kinematic(name, **{**SMALL, **kw})
        return cache[key]

    return get


@pytest.mark.parametrize("name", CASES)
def test_bones_are_rigid_and_form_a_tree(sets, name):
    cs = sets(name)
    F, N, _ = cs.points3d.shape
    assert F == 75 and cs.units == "m" and cs.synthetic and cs.rig == name and cs.licence
    assert kinematic._version(MODELS[name].package) in cs.source  # the file and the wheel version
    assert len(cs.meta["keypoint_names"]) == N and len(set(cs.meta["keypoint_names"])) == N
    assert 4 <= N <= 120 and cs.visible.all()
    # a tree: N - 1 distinct edges, connected
    E = cs.edges
    assert is_tree(E, N)
    # rigid links: every bone keeps its length in every frame, and no bone is degenerate
    P = cs.points3d.astype(np.float64)
    L = np.linalg.norm(P[:, E[:, 0]] - P[:, E[:, 1]], axis=-1)
    assert np.abs(L - L[0]).max() < 1e-6
    assert L[0].min() > 1e-3
    # the poses move (not a frozen rest pose), smoothly within a sequence: consecutive frames are much closer than
    # frames drawn at random
    assert P.std(0).max() > 1e-3
    step = np.linalg.norm(np.diff(P, axis=0), axis=-1).mean(-1)
    same_seq = cs.sequence[1:] == cs.sequence[:-1]
    perm = np.random.default_rng(0).permutation(F)
    apart = np.linalg.norm(P - P[perm], axis=-1).mean(-1)
    assert step[same_seq].mean() < 0.3 * apart.mean()


def _mujoco_model(name):
    spec = MODELS[name]
    if spec.engine == "myo_sim":
        import warnings

        import myo_sim

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # myo_sim's compose warns about attaching with an empty prefix
            return myo_sim.load_spec(spec.path).compile()
    return mujoco.MjModel.from_xml_path(str(kinematic._site_file(spec.path)))


@pytest.mark.parametrize("name", ["dmc_humanoid", "dmc_quadruped", "dmc_fish", "dmc_jaco_arm",
                                  pytest.param("myo_arm", marks=needs_myo)])
def test_mujoco_joint_angles_within_limits_and_fk_reproduced(sets, name):
    cs = sets(name)
    m = _mujoco_model(name)  # a fresh model, independent of the sampler's
    Q = cs.meta["qpos"]
    assert Q.shape == (cs.n_frames, m.nq)
    hinge_or_slide = np.isin(m.jnt_type, [int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)])
    checked = 0
    for j in np.flatnonzero(m.jnt_limited.astype(bool) & hinge_or_slide):
        q = Q[:, m.jnt_qposadr[j]]
        lo, hi = m.jnt_range[j]
        assert (q >= lo - 1e-9).all() and (q <= hi + 1e-9).all(), mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j)
        checked += 1
    assert checked >= (1 if name != "dmc_fish" else 0)
    # every sampled hinge stays within its sampled range (the model's limits, or the assumed one where it has none)
    for jn, kind, (lo, hi) in zip(cs.meta["joint_names"], cs.meta["joint_kind"], cs.meta["joint_range"]):
        assert lo < hi
        if kind == "hinge":
            q = Q[:, m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, jn)]]
            assert (q >= lo - 1e-9).all() and (q <= hi + 1e-9).all() and np.ptp(q) > 0, jn
    # the root stays where the model puts it (free joints at qpos0)
    for j in np.flatnonzero(m.jnt_type == int(mujoco.mjtJoint.mjJNT_FREE)):
        a = m.jnt_qposadr[j]
        if m.jnt_bodyid[j] != 0 and m.body_parentid[m.jnt_bodyid[j]] == 0:
            np.testing.assert_allclose(Q[:, a:a + 7], np.broadcast_to(m.qpos0[a:a + 7], (len(Q), 7)))
    # read back: the model's own forward kinematics at the stored qpos gives the stored points
    d = mujoco.MjData(m)
    names = cs.meta["keypoint_names"]
    plain = [(k, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)) for k, n in enumerate(names)
             if "@" not in n and "/" not in n]
    plain = [(k, b) for k, b in plain if b >= 0 and not any(
        m.jnt_type[j] in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_BALL))
        for j in range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b]))]  # keypoint = body origin
    assert plain
    for f in range(0, cs.n_frames, 7):
        d.qpos[:] = Q[f]
        mujoco.mj_kinematics(m, d)
        for k, b in plain:
            np.testing.assert_allclose(cs.points3d[f, k], Z_TO_Y_UP @ d.xpos[b], atol=1e-5)


def test_quadruped_coupling_respected(sets):
    cs = sets("dmc_quadruped")
    m = _mujoco_model("dmc_quadruped")
    Q = cs.meta["qpos"]
    for leg in ("front_left", "front_right", "back_right", "back_left"):
        adr = [m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"{j}_{leg}")]
               for j in ("pitch", "knee", "ankle")]
        np.testing.assert_allclose(Q[:, adr].sum(1), 0.0, atol=1e-6)  # the fixed tendon's equality


@needs_pybullet
@pytest.mark.parametrize("name", ["pb_franka_panda", "pb_humanoid", "pb_spirit40"])
def test_pybullet_joint_angles_within_limits(sets, name):
    import pybullet as p

    cs = sets(name)
    cid = p.connect(p.DIRECT)
    try:
        b = p.loadURDF(str(kinematic._site_file(MODELS[name].path)), useFixedBase=True,
                       globalScaling=MODELS[name].scale, physicsClientId=cid)
        info = {p.getJointInfo(b, j, physicsClientId=cid)[1].decode(): p.getJointInfo(b, j, physicsClientId=cid)
                for j in range(p.getNumJoints(b, physicsClientId=cid))}
    finally:
        p.disconnect(cid)
    Q, c, checked = cs.meta["qpos"], 0, 0
    for jn, kind, (lo, hi) in zip(cs.meta["joint_names"], cs.meta["joint_kind"], cs.meta["joint_range"]):
        if kind == "hinge":
            q = Q[:, c]
            flo, fhi = info[jn][8], info[jn][9]
            if fhi > flo:  # the file's limits
                assert (q >= flo - 1e-6).all() and (q <= fhi + 1e-6).all(), jn
                checked += 1
            assert (q >= lo - 1e-6).all() and (q <= hi + 1e-6).all(), jn
            c += 1
        else:  # spherical: a unit quaternion rotating at most the sampled bound
            q = Q[:, c:c + 4]
            np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
            angle = 2 * np.arccos(np.clip(np.abs(q[:, 3]), 0, 1))
            assert (angle <= hi * np.sqrt(3) + 1e-6).all(), jn
            c += 4
    assert c == Q.shape[1] and checked >= 2


def test_seeded_and_deterministic(sets):
    a = sets("dmc_humanoid", seed=3)
    b = load_kinematic("dmc_humanoid", seed=3, **SMALL)
    c = sets("dmc_humanoid", seed=4)
    np.testing.assert_array_equal(a.points3d, b.points3d)
    np.testing.assert_array_equal(a.meta["qpos"], b.meta["qpos"])
    assert np.abs(a.points3d - c.points3d).max() > 1e-3
    # sequence s does not depend on how many sequences were asked for
    d = load_kinematic("dmc_humanoid", seed=3, n_sequences=1, frames_per_sequence=25)
    np.testing.assert_array_equal(d.points3d, a.points3d[:25])
    assert list(np.unique(a.sequence)) == [f"dmc_humanoid/traj{s:03d}" for s in range(3)]
    np.testing.assert_array_equal(a.meta["frame"], np.tile(np.arange(25), 3))


@pytest.mark.parametrize("name, top, bottoms", [
    ("dmc_humanoid", "head", ["left_foot", "right_foot"]),
    ("dmc_cmu_humanoid", "head", ["ltoes", "rtoes"]),
    pytest.param("pb_humanoid", "neck", ["left_ankle", "right_ankle"], marks=needs_pybullet),
])
def test_y_is_up(sets, name, top, bottoms):
    cs = sets(name)
    names = cs.meta["keypoint_names"]
    head = cs.points3d[:, names.index(top), 1]
    for foot in bottoms:
        assert (head > cs.points3d[:, names.index(foot), 1] + 0.5).all()
    assert "y" in cs.meta["up_rule"]


@pytest.mark.parametrize("name", ["dmc_rodent", "rodent", "rat", "dmc_rat", "fly", "fruitfly", "dmc_fruitfly_v2",
                                  "insect"])
def test_forbidden_models_refused(name):
    with pytest.raises(ValueError, match="excluded"):
        load_kinematic(name)


def test_registry_is_clean():
    for name, spec in MODELS.items():
        assert not kinematic.FORBIDDEN.search(name) and not kinematic.FORBIDDEN.search(spec.path)
        assert spec.engine in ("mujoco", "pybullet", "myo_sim")
        assert spec.licence or name not in kinematic.available_models() or kinematic.licence(name)
    assert set(kinematic.available_models()) <= set(MODELS)
    with pytest.raises(ValueError, match="planar"):
        load_kinematic("dmc_walker")


# ------------------------------------------------------------------------------------------------ data v2 (issue 11)
# Each model added in data v2: the keypoints the record promises, a tree, rigid bones, not planar, a dimension read
# from the model file (an XML reader independent of the engines), the licence as the files state it.
V2_SMALL = dict(n_sequences=2, frames_per_sequence=20)  # few frames: the time goes into loading the model
# name -> (keypoint a, keypoint b, file, "joint" (URDF <joint><origin xyz>) or "body" (MJCF <body pos>), element name)
V2_SIZES = {
    "pb_spirit40": ("upper0", "lower0", "pybullet_data/quadruped/spirit40.urdf", "joint", "1"),  # thigh 0.206
    "pb_vision60": ("lower0", "toe0", "pybullet_data/quadruped/vision60.urdf", "joint", "jtoe0"),  # shin 0.284
    "pb_pusher": ("shoulder_lift_link", "elbow_flex_link", "pybullet_data/mjcf/pusher.xml", "body",
                  "elbow_flex_link"),  # upper arm 0.4
    "dmc_jaco_arm": ("b_2", "b_3", "dm_control/third_party/kinova/jaco_arm.xml", "body", "b_3"),  # 0.41
    "dmc_jaco_hand": ("b_finger_1", "b_finger_tip_1", "dm_control/third_party/kinova/jaco_hand.xml", "body",
                      "b_finger_tip_1"),  # proximal phalanx 0.044
    "pb_r2d2": ("base_link", "head", "pybullet_data/r2d2.urdf", "joint", "head_swivel"),  # 0.3
    "pb_racecar": ("chassis", "left_steering_hinge", "pybullet_data/racecar/racecar.urdf", "joint",
                   "left_steering_hinge_joint"),
    "pb_husky": ("base_link", "front_left_wheel_link", "pybullet_data/husky/husky.urdf", "joint", "front_left_wheel"),
    "pb_humanoid_symmetric": ("right_upper_arm", "right_lower_arm", "pybullet_data/mjcf/humanoid_symmetric.xml",
                              "body", "right_lower_arm"),  # upper arm 0.31
    "myo_hand": ("3proxph_r", "midph3_r", "myo_sim/models/arm/assets/myoarm_r_chain.xml", "body", "midph3_r"),
    "myo_legs": ("tibia_r", "talus_r", "myo_sim/models/leg/assets/myolegs_chain.xml", "body", "talus_r"),  # 0.40
}
V2_RIGID = {"pb_racecar", "pb_husky"}  # every joint turns about an axis through its keypoint: one shape
# what the licence must say, and where it is read: a header line of the model file, else the wheel's metadata
V2_LICENCE = {
    "pb_spirit40": "MIT License (modified); Copyright (c) 2020 Ghost Robotics",
    "pb_vision60": "MIT License (modified); Copyright (c) 2018 Ghost Robotics",
    "pb_husky": "Software License Agreement (BSD); Copyright (c) 2015, Clearpath Robotics",
    "myo_hand": "Apache License, Version 2.0",
    "myo_legs": "Apache License, Version 2.0",
}


def _needs_for(name):
    pkg = MODELS[name].package
    return [pytest.mark.skipif(not (HAVE_PYBULLET if pkg == "pybullet" else HAVE_MYO if pkg == "myo-sim" else True),
                               reason=f"the {pkg} wheel is not installed")]


V2_CASES = [pytest.param(n, marks=_needs_for(n)) for n in V2_SIZES]


def _file_dimension(rel, kind, element):
    import xml.etree.ElementTree as ET

    root = ET.parse(kinematic._site_file(rel)).getroot()
    if kind == "joint":
        (el,) = [j for j in root.findall("joint") if j.get("name") == element]  # not <transmission> joints
        xyz = el.find("origin").get("xyz")
    else:
        (el,) = [b for b in root.iter("body") if b.get("name") == element]
        xyz = el.get("pos")
    return float(np.linalg.norm([float(v) for v in xyz.split()]))


@pytest.mark.parametrize("name", V2_CASES)
def test_v2_models_tree_rigid_non_planar_and_sized_as_the_file(sets, name):
    from lfm.data import catalog

    cs = sets(name, **V2_SMALL)
    rec = catalog.record(name)
    F, N, _ = cs.points3d.shape
    names = cs.meta["keypoint_names"]
    assert F == 40 and N == rec.keypoints and cs.rig == rec.rig and cs.units == "m" and cs.synthetic
    assert len(set(names)) == N and cs.visible.all() and np.isfinite(cs.points3d).all()
    assert MODELS[name].path in cs.source and kinematic._version(MODELS[name].package) in cs.source
    # the parent table is a tree: one root, every other keypoint has exactly one parent, all connected
    E = cs.edges
    assert is_tree(E, N)
    children = E[:, 1].tolist()
    assert len(np.setdiff1d(np.arange(N), children)) == 1 and len(set(children)) == len(children) == N - 1
    # rigid links: constant bone lengths over frames, none degenerate
    P = cs.points3d.astype(np.float64)
    L = np.linalg.norm(P[:, E[:, 0]] - P[:, E[:, 1]], axis=-1)
    assert np.abs(L - L[0]).max() < 1e-6 and L[0].min() > 1e-3
    # a 3D body: the smallest singular value of the centred points is not ~0 in any frame (a chain arm passes close
    # to a plane now and then), and typically well away from it
    sv = np.linalg.svd(P - P.mean(1, keepdims=True), compute_uv=False)  # (F, 3)
    ratio = sv[:, 2] / sv[:, 0]
    assert ratio.min() > 1e-3 and np.median(ratio) > 0.02, (ratio.min(), np.median(ratio))
    # a known size: a distance between two keypoints equals the model file's offset between them
    a, b, rel, kind, element = V2_SIZES[name]
    d = np.linalg.norm(P[:, names.index(a)] - P[:, names.index(b)], axis=-1)
    np.testing.assert_allclose(d, _file_dimension(rel, kind, element), rtol=1e-5, atol=1e-6)
    # articulated models move; the rigid ones (every joint turns about its own keypoint) are one shape
    if name in V2_RIGID:
        assert not rec.articulated and np.abs(P - P[:1]).max() < 1e-6
    else:
        assert rec.articulated and P.std(0).max() > 5e-3


@pytest.mark.parametrize("name", V2_CASES)
def test_v2_licences_are_read_from_the_files(name):
    from importlib import metadata

    spec = MODELS[name]
    assert spec.licence == ""  # nothing retyped: read at load time
    lic = kinematic.licence(name)
    if name in V2_LICENCE:  # the model file's header states it
        rel = spec.licence_from or spec.path
        assert V2_LICENCE[name] in lic and rel in lic
        text = kinematic._site_file(rel).read_text(errors="replace")
        assert all(part.strip() in text for part in V2_LICENCE[name].split(";"))
    else:  # the file states none: the wheel's licence, and the file named as silent
        assert lic.startswith(metadata.metadata(spec.package)["License"]) and "states none" in lic


@needs_myo
def test_v2_excluded_subtree_and_added_material():
    legs = load_kinematic("myo_legs", n_sequences=1, frames_per_sequence=2)
    names = legs.meta["keypoint_names"]
    assert not [n for n in names if n.startswith(("lumbar", "torso", "head"))]  # the passive scaffold is left out
    assert {"femur_r", "femur_l", "toes_r/tip", "toes_l/tip"} <= set(names)
    assert not [j for j in legs.meta["joint_names"] if j.startswith(("flex_extension", "L4_L5"))]


@pytest.mark.parametrize("name, top, bottoms", [
    pytest.param("pb_humanoid_symmetric", "torso", ["left_foot", "right_foot"], marks=needs_pybullet),
    pytest.param("myo_legs", "Full Body", ["toes_r", "toes_l"], marks=needs_myo),
    pytest.param("pb_vision60", "body", ["toe0", "toe1", "toe2", "toe3"], marks=needs_pybullet),
])
def test_v2_y_is_up(sets, name, top, bottoms):
    cs = sets(name, **V2_SMALL)
    names = cs.meta["keypoint_names"]
    for foot in bottoms:
        assert (cs.points3d[:, names.index(top), 1] > cs.points3d[:, names.index(foot), 1] + 0.2).all()


def test_v2_skipped_candidates_say_why():
    why = kinematic.SKIPPED
    for name, word in [("pb_bicycle", "planar"), ("pb_pendulum5", "planar"), ("pb_pr2_gripper", "degenerate"),
                       ("pb_ant", "dmc_ant"), ("pb_striker", "pb_pusher"), ("pb_thrower", "pb_pusher"),
                       ("dmc_dog_v2", "dmc_dog"), ("pb_minitaur", "loops")]:
        assert word in why[name], name
        with pytest.raises(ValueError, match="unknown kinematic model"):
            load_kinematic(name)
    assert not set(why) & set(MODELS)
