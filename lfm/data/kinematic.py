"""Poses sampled from articulated models shipped in PyPI wheels (MJCF via MuJoCo, URDF via PyBullet) into
:class:`CategorySet` (synthetic, metres, +y up).

Keypoints are the joint anchors of the kinematic tree: in MJCF one node per distinct anchor of a body's hinge /
ball joints (a body whose joints sit at two points gives ``"<body>@<joint>"`` and ``"<body>"``), or the body origin
when it has none; in URDF the link frames (= joint origins). MJCF leaf bodies add the far end of their capsule /
cylinder / box / ellipsoid geom (``"<body>/tip"``). An anchor is fixed in the frames on both sides of its joint, so
every edge (parent node -> child node) is a rigid bone. The rig is fixed per model, never by the sampling
arguments: nodes on their parent in every probe pose are merged into it, leaves without geometry are dropped, and
leaves within ``merge_tol`` of another keypoint in every probe pose are dropped.

Joint angles stay within the joint limits (hinges without limits: ``rest +- unlimited_range``; ball / spherical
joints: rotation-vector components within ``+-range / sqrt(3)``). ``style="smooth"`` (animals, humanoids, the human
models): each sequence is a smooth trajectory through random waypoints around the rest pose (per-sequence
amplitude a fraction of each joint's range, a per-sequence postural offset, per-joint phases, smoothstep between
waypoints, so every frame lies inside the limits); ``style="uniform"`` (robot arms): waypoints uniform within the
limits. Free joints / the root stay at the rest pose (the benchmark adds cameras). Joint couplings are enforced
(MJCF joint equalities; fixed-tendon equalities by alternating projection and clipping). Translational joints are
held still so bones stay rigid (MJCF slides at rest, or at their coupled value at rest; URDF prismatic joints, the
Panda fingers, at mid range). Sampling is seeded per (seed, model, sequence), so sequence ``s`` does not change
when ``n_sequences`` grows. z-up sources are rotated ``(x, y, z) -> (x, z, -y)``.

``meta["qpos"]`` (F, nq) keeps the sampled joint coordinates in the engine's layout (MuJoCo ``qpos``; PyBullet:
the movable joints in order, read back from the engine, spherical joints as quaternions xyzw) to check against
the model. Rodent / rat and fly / insect models are refused by name.

The rig of an MJCF model is the subtree of ``ModelSpec.root`` less the subtrees named by ``ModelSpec.exclude`` (e.g.
a passive torso scaffold). A model's licence (:func:`licence`) is the text of its spec for the first models; for the
models added in data v2 it is read from the files: the licence and copyright lines of the model file's header, or,
where the file states none, the ``License`` field of the wheel's metadata. :data:`SKIPPED` says why each model that
was checked and left out was left out (planar, degenerate, a duplicate rig, ...).
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import math
import os
import sys
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from .schema import CategorySet

__all__ = ["MODELS", "SKIPPED", "FORBIDDEN", "ModelSpec", "load_kinematic", "available_models", "smooth_trajectory",
           "licence"]

# z-up -> +y up: a proper rotation (-90 degrees about x)
Z_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
FORBIDDEN = re.compile(r"rodent|(^|[^a-z])rats?([^a-z]|$)|fly|flies|fruitfly|insect|drosophila", re.I)
APACHE_NOTE = "Apache-2.0 (wheel licence)"


@dataclass(frozen=True)
class ModelSpec:
    """Where a model lives and how to sample it."""

    engine: str  # "mujoco" (MJCF) or "pybullet" (URDF)
    package: str  # distribution that ships the file ("dm-control", "pybullet", "myo-sim")
    path: str  # file inside the package (or a myo_sim registry name for engine "myo_sim")
    category: str
    licence: str
    style: str = "smooth"  # "smooth" (around rest) or "uniform" (within limits)
    up: str = "z"  # the source's up axis: "z" (rotated to +y) or "y"
    root: str | None = None  # body / link whose subtree is the rig (default: the largest subtree under world)
    tips: bool = True  # MJCF: add a tip keypoint at the far end of each leaf body's geom
    merge_tol: float = 0.005  # metres: drop leaves this close to another keypoint in every probe pose
    amplitude: tuple = (0.15, 0.5)  # per-sequence fraction of each joint's half range ("smooth")
    bias: float = 0.25  # per-sequence postural offset, fraction of the half range ("smooth")
    unlimited_range: float = math.pi / 3  # radians either side of rest for hinges without limits
    ball_range: float = 0.8  # radians: maximal rotation of unlimited ball / spherical joints
    limits: dict = field(default_factory=dict)  # joint-name regex -> (lo, hi) where the file has none
    rest: dict = field(default_factory=dict)  # joint-name regex -> rest angle (default: 0 / qpos0)
    scale: float = 1.0  # PyBullet globalScaling
    note: str = ""
    files: str = ""  # for composed models (myo_sim): the XML files the model is built from
    exclude: str = ""  # MJCF: regex of body names whose subtrees are left out of the rig (e.g. a passive scaffold)
    add_materials: tuple = ()  # MJCF: visual materials the file uses but never defines (added empty so it compiles)
    licence_from: str = ""  # with licence "": the file whose header states it (default: the model file)


_DMC = "dm-control"
_UNITREE_STANCE = {r"_upper_joint$": 0.8, r"_lower_joint$": -1.5}
_PB = "pybullet"
_GHOST_STANCE = {r"^[0246]$": 0.8, r"^[1357]$": 1.6}  # Ghost Robotics legs: hip, knee (toes under the hips)
_PB_ZLIB = "zlib (pybullet wheel licence; no model-specific licence note in pybullet_data/{})"

MODELS: dict[str, ModelSpec] = {
    "dmc_dog": ModelSpec("mujoco", _DMC, "dm_control/suite/dog.xml", "dog", APACHE_NOTE, root="torso",
                         note="the suite's ball is not part of the rig"),
    "dmc_quadruped": ModelSpec("mujoco", _DMC, "dm_control/suite/quadruped.xml", "quadruped", APACHE_NOTE,
                               root="torso", note="the leg coupling tendons (equality) are enforced"),
    "dmc_humanoid": ModelSpec("mujoco", _DMC, "dm_control/suite/humanoid.xml", "humanoid", APACHE_NOTE),
    "dmc_cmu_humanoid": ModelSpec("mujoco", _DMC, "dm_control/suite/humanoid_CMU.xml", "humanoid", APACHE_NOTE),
    "dmc_ant": ModelSpec("mujoco", _DMC, "dm_control/third_party/ant/ant.xml", "ant",
                         "MIT (file header: Copyright (c) 2020 Philipp Moritz, The dm_control Authors)",
                         amplitude=(0.4, 0.9)),
    "dmc_fish": ModelSpec("mujoco", _DMC, "dm_control/suite/fish.xml", "fish", APACHE_NOTE, merge_tol=0.002,
                          unlimited_range=0.6, note="the fish's hinges have no limits: rest +- 0.6 rad"),
    "pb_kuka_iiwa": ModelSpec("pybullet", _PB, "pybullet_data/kuka_iiwa/model.urdf", "robot_arm",
                              _PB_ZLIB.format("kuka_iiwa"), style="uniform"),
    "pb_franka_panda": ModelSpec("pybullet", _PB, "pybullet_data/franka_panda/panda.urdf", "robot_arm",
                                 "Apache-2.0 (pybullet_data/franka_panda/LICENSE.txt)", style="uniform",
                                 note="finger slides held at mid range"),
    "pb_xarm6": ModelSpec("pybullet", _PB, "pybullet_data/xarm/xarm6_robot.urdf", "robot_arm",
                          _PB_ZLIB.format("xarm"), style="uniform"),
    "pb_a1": ModelSpec("pybullet", _PB, "pybullet_data/a1/a1.urdf", "quadruped_robot", _PB_ZLIB.format("a1"),
                       amplitude=(0.2, 0.6), rest=_UNITREE_STANCE, note="rest: a standing pose (0, 0.8, -1.5)"),
    "pb_aliengo": ModelSpec("pybullet", _PB, "pybullet_data/aliengo/aliengo.urdf", "quadruped_robot",
                            _PB_ZLIB.format("aliengo"), amplitude=(0.2, 0.6), limits={r"_upper_joint$": (-1.2, 1.8)},
                            rest=_UNITREE_STANCE, note="thigh joints have no limits in the URDF: assumed (-1.2, 1.8) "
                                                       "rad; rest: a standing pose (0, 0.8, -1.5)"),
    "pb_laikago": ModelSpec("pybullet", _PB, "pybullet_data/laikago/laikago_toes_limits.urdf", "quadruped_robot",
                            "zlib (pybullet wheel); pybullet_data/laikago/license.txt: URDF by Erwin Coumans, meshes "
                            "derived from the Laikago CAD model used by permission of Unitree; cite PyBullet",
                            up="y", amplitude=(0.2, 0.6), rest={r"upper_leg_2": 0.67, r"lower_leg_2": -1.25},
                            note="rest: pybullet_envs' standing pose (hip 0.67, knee -1.25)"),
    "pb_mini_cheetah": ModelSpec(
        "pybullet", _PB, "pybullet_data/mini_cheetah/mini_cheetah.urdf", "quadruped_robot",
        _PB_ZLIB.format("mini_cheetah"), amplitude=(0.2, 0.6),
        limits={r"^torso_to_abduct": (-0.6, 0.6), r"_to_thigh_": (-2.2, 0.2), r"_to_knee_": (0.6, 2.8)},
        rest={r"^torso_to_abduct": 0.0, r"_to_thigh_": -1.1, r"_to_knee_": 2.3},
        note="the URDF's joints are continuous: assumed limits around pybullet_envs' stance (0, -1.1, 2.3)"),
    "pb_humanoid": ModelSpec("pybullet", _PB, "pybullet_data/humanoid/humanoid.urdf", "humanoid",
                             _PB_ZLIB.format("humanoid"), up="y", scale=0.25, ball_range=0.8,
                             note="DeepMimic humanoid at pybullet's globalScaling 0.25; spherical joints rotate at "
                                  "most 0.8 rad"),
    "myo_arm": ModelSpec("myo_sim", "myo-sim", "myoarm_r", "human_arm",
                         "Apache-2.0 (myo-sim wheel licence and the MyoArm XML headers)", root="myoarm_r_root",
                         merge_tol=0.002, files="myo_sim/models/arm/assets/myoarm_r_chain.xml",
                         note="myo_sim.load_spec('myoarm_r'): models/arm/assets/myoarm_r_chain.xml; joint "
                              "couplings (equalities) are enforced"),
    "myo_fullbody": ModelSpec("myo_sim", "myo-sim", "myofullbody", "human_body",
                              "Apache-2.0 (myo-sim wheel licence and the Myo* XML headers)", merge_tol=0.002,
                              files="myo_sim/models/{torso,arm,leg,head}/assets/*_chain.xml",
                              note="myo_sim.load_spec('myofullbody'); joint couplings (equalities) are enforced "
                                   "except the coupled translations (knees), held at their rest value so bones stay "
                                   "rigid"),
    # data v2 (issue 11): more rigs and categories. Their licence field is "": read from the files by licence().
    "pb_spirit40": ModelSpec("pybullet", _PB, "pybullet_data/quadruped/spirit40.urdf", "quadruped_robot", "",
                             amplitude=(0.2, 0.6), limits={r"^[0246]$": (-0.2, 1.8)}, rest=_GHOST_STANCE,
                             note="Ghost Robotics Spirit 40; the hip joints' URDF limits are +-2 pi: assumed (-0.2, "
                                  "1.8) rad; rest: toes under the hips (hip 0.8, knee 1.6)"),
    "pb_vision60": ModelSpec("pybullet", _PB, "pybullet_data/quadruped/vision60.urdf", "quadruped_robot", "",
                             amplitude=(0.2, 0.6), limits={r"^[0246]$": (-0.2, 1.8)}, rest=_GHOST_STANCE,
                             note="Ghost Robotics Vision 60; the hip joints' URDF limits are +-pi: assumed (-0.2, "
                                  "1.8) rad; rest: toes under the hips (hip 0.8, knee 1.6)"),
    "pb_pusher": ModelSpec("mujoco", _PB, "pybullet_data/mjcf/pusher.xml", "robot_arm", "", style="uniform",
                           note="the 7-DoF PR2 arm of the gym Pusher task (striker.xml and thrower.xml hold the same "
                                "arm: skipped as duplicates)"),
    "dmc_jaco_arm": ModelSpec("mujoco", _DMC, "dm_control/third_party/kinova/jaco_arm.xml", "robot_arm", "",
                              style="uniform", unlimited_range=math.pi,
                              note="Kinova Jaco 6-DoF arm; joints 1, 4, 5, 6 are unlimited in the file: rest +- pi"),
    "dmc_jaco_hand": ModelSpec("mujoco", _DMC, "dm_control/third_party/kinova/jaco_hand.xml", "gripper", "",
                               style="uniform", note="Kinova Jaco 3-finger hand: one hinge per finger"),
    "pb_r2d2": ModelSpec("pybullet", _PB, "pybullet_data/r2d2.urdf", "r2d2", "", style="uniform",
                         note="the URDF tutorial's R2D2; the wheels turn about their own centres (keypoints), so only "
                              "the gripper fingers and the head swivel change the shape"),
    "pb_racecar": ModelSpec("pybullet", _PB, "pybullet_data/racecar/racecar.urdf", "car", "",
                            note="MIT RACECAR; wheels and steering hinges turn about axes through their keypoints: "
                                 "a rigid shape"),
    "pb_husky": ModelSpec("pybullet", _PB, "pybullet_data/husky/husky.urdf", "wheeled_robot", "",
                          note="Clearpath Husky; the wheels turn about their centres (keypoints): a rigid shape"),
    "pb_humanoid_symmetric": ModelSpec(
        "mujoco", _PB, "pybullet_data/mjcf/humanoid_symmetric.xml", "humanoid", "", add_materials=("geom",),
        note="the gym / Roboschool MuJoCo humanoid; the file uses material 'geom' without defining it (added empty: "
             "visual only)"),
    "myo_hand": ModelSpec("myo_sim", "myo-sim", "myohand_r", "hand", "", root="lunate_r", merge_tol=0.002,
                          files="myo_sim/models/arm/assets/myoarm_r_chain.xml",
                          licence_from="myo_sim/models/arm/assets/myoarm_r_chain.xml",
                          note="myo_sim.load_spec('myohand_r') (the MyoArm pruned to the hand); the rig is the wrist "
                               "(lunate) and everything distal"),
    "myo_legs": ModelSpec("myo_sim", "myo-sim", "myolegs", "human_legs", "", merge_tol=0.002, exclude=r"^lumbar5$",
                          files="myo_sim/models/leg/assets/myolegs_chain.xml",
                          licence_from="myo_sim/models/leg/assets/myolegs_chain.xml",
                          note="myo_sim.load_spec('myolegs'); the passive torso scaffold (lumbar5 and above) is left "
                               "out; joint couplings enforced, coupled translations (knees) held at rest"),
}

SKIPPED = {
    "dmc_cheetah": "planar (2D) model", "dmc_walker": "planar (2D) model", "dmc_hopper": "planar (2D) model",
    "dmc_swimmer": "planar (2D) model",
    "pb_minitaur": "closed kinematic loops (four-bar legs closed by constraints in code) and no joint limits",
    "dmc_rodent": "forbidden (rodent model)", "dmc_fruitfly": "forbidden (insect model)",
    # data v2 (issue 11): checked and left out
    "dmc_reacher": "planar (2D) model", "dmc_manipulator": "planar (2D) model", "dmc_finger": "planar (2D) model",
    "dmc_acrobot": "planar (2D) model", "pb_biped2d": "planar (2D) model (pybullet_data/biped/biped2d_pybullet.urdf)",
    "pb_pendulum5": "planar: every hinge of the 5-link chain turns about the same axis",
    "pb_bicycle": "planar: its 4 link frames (frame, handlebar, two wheel centres) lie in the bicycle's mid-plane "
                  "(smallest singular value 2 mm); steering moves the front wheel centre by millimetres",
    "pb_pr2_gripper": "degenerate: 3 keypoints (pole, two finger bases) in one plane",
    "pb_ant": "the rig of dmc_ant again (the gym ant: same tree, same bone lengths)",
    "pb_striker": "the PR2 arm of pb_pusher again (same joints and bones; only the end geom differs)",
    "pb_thrower": "the PR2 arm of pb_pusher again (same joints and bones; only the end geom differs)",
    "pb_xarm6_with_gripper": "the gripper is a four-bar linkage closed by URDF mimic joints, which PyBullet does not "
                             "enforce (sampled fingers would not be a real pose); the arm is pb_xarm6",
    "pb_microtaur": "links are servo brackets (no named legs or feet), all joints continuous without limits",
    "pb_wsg50_gripper": "SDF files only (the sampler reads URDF and MJCF); the finger URDFs are single fingers",
    "dmc_dog_v2": "the dmc_dog skeleton again (dm_control locomotion copy of the suite dog, plus a tail tip)",
    "dmc_cmu_humanoid_v2020": "the 33-keypoint layout of dmc_cmu_humanoid again, proportions differing by <= 7 cm",
    "dmc_boxhead": "degenerate: a soccer toy of 5 keypoints (a ball under a head) in one plane",
    "myo_legs_osl": "legacy model (myo_sim: to be removed); the prosthetic foot is a mesh: the rig ends at the ankle",
    "myo_torso": "near planar: the lumbar spine and head chain (smallest singular value under 1 mm)",
    "myo_head": "two bodies (neck, head) of a rigid chain: no articulated rig",
    "myo_finger": "a 3-link tendon-driven finger (legacy, 4 keypoints), near planar",
}


def _check_allowed(name: str) -> None:
    if FORBIDDEN.search(name):
        raise ValueError(f"{name!r}: rodent / rat and fly / insect models are excluded from this project.")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _site_file(rel: str) -> Path:
    """``"<top-level package>/<path>"`` -> the installed file (the package is located, never imported)."""
    top, _, rest = rel.partition("/")
    found = importlib.util.find_spec(top)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(f"package {top!r} is not installed (needed for {rel}).")
    return Path(next(iter(found.submodule_search_locations))) / rest


def _header_licence(path: Path) -> tuple[str, str]:
    """The first licence line and the first copyright line of a model file's leading XML comments, as written
    there (``""`` where it has none)."""
    text = path.read_text(errors="replace")[:6000]
    lines = [ln.strip(" \t-=|!<>\\") for c in re.findall(r"<!--(.*?)-->", text, re.S) for ln in c.splitlines()]
    lic = cop = ""
    for ln in lines:
        if not lic and re.search(r"licen[cs]e", ln, re.I):
            lic = re.sub(r"^licen[cs]e\s*:+\s*", "", ln, flags=re.I).split(";")[0].strip()
        if not cop and re.search(r"copyright", ln, re.I):
            cop = re.sub(r"^copyright\s+(?=copyright)", "", ln, flags=re.I).strip()
    return lic, cop


@lru_cache(maxsize=None)
def licence(name: str) -> str:
    """The licence of model ``name``: its :class:`ModelSpec` text where one is given (the first models), else read
    from the files: the licence and copyright lines of the model file's header (``licence_from``), or, where the file
    states none, the ``License`` field of the wheel that ships it."""
    spec = MODELS[name]
    if spec.licence:
        return spec.licence
    rel = spec.licence_from or spec.path
    try:
        path = _site_file(rel)
    except ModuleNotFoundError:  # the table stays readable without the wheel
        return f"unknown here: read from {rel} when the {spec.package} wheel is installed"
    lic, cop = _header_licence(path)
    if lic:
        return f"{lic}; {cop} (header of {rel})" if cop else f"{lic} (header of {rel})"
    wheel = metadata.metadata(spec.package)["License"] if _version(spec.package) else None
    if not wheel:
        raise ValueError(f"{name}: no licence in {rel} and no wheel licence of {spec.package!r}.")
    return f"{wheel} ({spec.package} wheel licence; {rel} states none of its own)"


def _needs(spec: ModelSpec) -> tuple:
    return {"mujoco": ("mujoco", spec.path.partition("/")[0]), "myo_sim": ("mujoco", "myo_sim"),
            "pybullet": ("pybullet", "pybullet_data")}[spec.engine]


def available_models() -> list[str]:
    """The registry names whose engine and model package are installed here."""
    return [n for n, s in MODELS.items() if all(importlib.util.find_spec(p) is not None for p in _needs(s))]


# ---------------------------------------------------------------------------------------------------------------
# trajectories


def smooth_trajectory(rng, lo, hi, centre, n_frames: int, style: str = "smooth", amplitude=(0.15, 0.5),
                      bias: float = 0.25, frames_per_segment: int = 20) -> np.ndarray:
    """One smooth trajectory ``(n_frames, D)`` inside the box ``[lo, hi]``.

    Waypoints are drawn per joint (``"smooth"``: around a per-trajectory offset of ``centre`` with amplitude
    ``a * (hi - lo) / 2``, ``a ~ U(amplitude)``; ``"uniform"``: uniform in the box) and joined by smoothstep
    interpolation with a random phase per joint, so the path is C1 and every frame is a convex combination of two
    waypoints, hence inside the box.
    """
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    D = lo.shape[0]
    half = (hi - lo) / 2
    n_seg = max(1, math.ceil((n_frames - 1) / frames_per_segment))
    shape = (n_seg + 2, D)
    if style == "uniform":
        W = rng.uniform(lo, hi, shape)
    elif style == "smooth":
        a = rng.uniform(*amplitude)
        c = np.clip(np.asarray(centre, float) + rng.uniform(-bias, bias, D) * half, lo, hi)
        W = np.clip(c + a * half * rng.uniform(-1.0, 1.0, shape), lo, hi)
    else:
        raise ValueError(f"unknown style {style!r}; expected 'smooth' or 'uniform'.")
    t = np.linspace(0.0, n_seg, n_frames)[:, None] + rng.uniform(0.0, 1.0, D)[None]  # (F, D) in [0, n_seg + 1)
    i = np.minimum(np.floor(t).astype(int), n_seg)
    u = t - i
    s = u * u * (3.0 - 2.0 * u)
    w0 = np.take_along_axis(W, i, 0)
    w1 = np.take_along_axis(W, i + 1, 0)
    return np.clip(w0 + (w1 - w0) * s, lo, hi)


def _rotvec_to_quat_wxyz(r: np.ndarray) -> np.ndarray:
    th = np.linalg.norm(r, axis=-1, keepdims=True)
    k = np.where(th > 1e-12, np.sin(th / 2) / np.maximum(th, 1e-12), 0.5)
    return np.concatenate([np.cos(th / 2), r * k], -1)


def _quat_mul_wxyz(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([aw * bw - ax * bx - ay * by - az * bz, aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw], -1)


@dataclass
class _Dof:
    """One sampled joint: a hinge (1 angle) or a ball (3 rotation-vector components)."""

    name: str
    kind: str  # "hinge" or "ball"
    lo: float  # hinge: range; ball: -max angle per component
    hi: float
    rest: float = 0.0
    limited: bool = True  # False: the range was assumed here (the file has none)


# ---------------------------------------------------------------------------------------------------------------
# engines: each gives body names, parents, geometry flags, the sampled dofs and a batch forward kinematics


class _MujocoRig:
    def __init__(self, name: str, spec: ModelSpec):
        import mujoco

        self.mj = mujoco
        if spec.engine == "myo_sim":
            import warnings

            import myo_sim

            with warnings.catch_warnings(), quiet_c_output():  # MuJoCo prints "Attaching a spec with an empty
                warnings.simplefilter("ignore")  # prefix ..." from C for each composed part: harmless here
                self.m = myo_sim.load_spec(spec.path).compile()
            self.file = f"{spec.files} composed by myo_sim.load_spec({spec.path!r})"
        else:
            path = _site_file(spec.path)
            _check_allowed(str(path))
            if spec.add_materials:  # materials used but never defined (visual only): add them so the file compiles
                mspec = mujoco.MjSpec.from_file(str(path))
                for mat in spec.add_materials:
                    mspec.add_material(name=mat)
                self.m = mspec.compile()
            else:
                self.m = mujoco.MjModel.from_xml_path(str(path))
            self.file = spec.path
        m = self.m
        self.d = mujoco.MjData(m)
        names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b) or f"body{b}" for b in range(m.nbody)]
        parent = m.body_parentid.copy()
        # the rig: the subtree of spec.root, else of the world child with the most descendants
        children = {b: [c for c in range(1, m.nbody) if parent[c] == b] for b in range(m.nbody)}

        def subtree(b):
            out, stack = [], [b]
            while stack:
                x = stack.pop()
                out.append(x)
                stack.extend(reversed(children[x]))
            return sorted(out)

        if spec.root is not None:
            root = names.index(spec.root)
        else:
            root = max(children[0], key=lambda c: (len(subtree(c)), -c))
        bodies = subtree(root)
        if spec.exclude:  # subtrees left out of the rig (their joints are not sampled)
            cut = {c for b in bodies if b != root and re.search(spec.exclude, names[b]) for c in subtree(b)}
            bodies = [b for b in bodies if b not in cut]
        jt, gt = mujoco.mjtJoint, mujoco.mjtGeom
        rot = (int(jt.mjJNT_HINGE), int(jt.mjJNT_BALL))
        # keypoint nodes: one per distinct anchor of a body's hinge / ball joints, in joint order (each anchor is
        # fixed in the frames on both sides of its joint, so every bone between consecutive nodes is rigid), or the
        # body origin when the body has no rotational joint; children hang from the body's last node
        self.node_body, self.node_joint, self.names, par = [], [], [], []
        last = {}
        for bd in bodies:
            groups = []
            for j in range(m.body_jntadr[bd], m.body_jntadr[bd] + m.body_jntnum[bd]):
                if int(m.jnt_type[j]) in rot and not (groups and np.allclose(m.jnt_pos[j], m.jnt_pos[groups[-1]])):
                    groups.append(j)
            up = last.get(int(parent[bd]), -1) if bd != root else -1
            for k, j in enumerate(groups or [-1]):
                jn = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) if j >= 0 else None
                self.names.append(names[bd] if k == len(groups or [-1]) - 1 else f"{names[bd]}@{jn}")
                self.node_body.append(bd)
                self.node_joint.append(j)
                par.append(up)
                up = len(self.names) - 1
            last[bd] = up
        self.parent = np.array(par)
        self.node_body, self.node_joint = np.array(self.node_body), np.array(self.node_joint)
        is_last = np.array([last[bd] == i for i, bd in enumerate(self.node_body)])
        self.has_geom = is_last & (m.body_geomnum[self.node_body] > 0)
        self.bodies = bodies
        # dofs of the rig's joints (free joints and slides stay at qpos0)
        self.q0 = m.qpos0.copy()
        self.dofs, self.dof_adr = [], []  # dof_adr: qpos address of each dof (ball: of its quaternion)
        jbody = set(self.bodies)
        for j in range(m.njnt):
            if m.jnt_bodyid[j] not in jbody:
                continue
            jn = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_JOINT, j) or f"joint{j}"
            adr, typ, lim = m.jnt_qposadr[j], int(m.jnt_type[j]), bool(m.jnt_limited[j])
            lo, hi = (float(x) for x in m.jnt_range[j])
            if typ == int(jt.mjJNT_HINGE):
                rest = float(self.q0[adr])
                if not lim:
                    lo, hi = rest - spec.unlimited_range, rest + spec.unlimited_range
                self.dofs.append(_Dof(jn, "hinge", lo, hi, float(np.clip(rest, lo, hi)), lim))
                self.dof_adr.append(adr)
            elif typ == int(jt.mjJNT_BALL):
                c = (hi if lim and hi > 0 else spec.ball_range) / math.sqrt(3)
                self.dofs.append(_Dof(jn, "ball", -c, c, 0.0, lim))
                self.dof_adr.append(adr)
            elif typ == int(jt.mjJNT_SLIDE) and lim:
                self.q0[adr] = np.clip(self.q0[adr], lo, hi)
        self._equalities()
        # tips of leaf bodies: the far end of a capsule / cylinder / box / ellipsoid geom, in the body frame
        self.tip_local = {}
        for i, bd in enumerate(self.node_body):
            if not is_last[i]:
                continue
            best = None
            for g in range(m.body_geomadr[bd], m.body_geomadr[bd] + m.body_geomnum[bd]):
                typ, size = int(m.geom_type[g]), m.geom_size[g]
                if typ in (int(gt.mjGEOM_CAPSULE), int(gt.mjGEOM_CYLINDER)):
                    ends = [np.array([0, 0, s * size[1]]) for s in (-1, 1)]
                elif typ in (int(gt.mjGEOM_BOX), int(gt.mjGEOM_ELLIPSOID)):
                    k = int(np.argmax(size[:3]))
                    ends = [s * size[k] * np.eye(3)[k] for s in (-1, 1)]
                else:
                    continue
                for e in ends:  # geom frame -> body frame
                    p = m.geom_pos[g] + _quat_rotate_wxyz(m.geom_quat[g], e)
                    if best is None or np.linalg.norm(p) > np.linalg.norm(best):
                        best = p
            if best is not None:
                self.tip_local[i] = best

    def _equalities(self):
        """Joint couplings (mjEQ_JOINT) and fixed-tendon equalities the sampler must respect."""
        m, mj = self.m, self.mj
        self.eq_joint, self.eq_tendon, self.eq_ignored = [], [], []
        for e in range(m.neq):
            if not m.eq_active0[e]:
                continue
            typ, o1, o2, data = int(m.eq_type[e]), m.eq_obj1id[e], m.eq_obj2id[e], m.eq_data[e][:5].copy()
            if typ == int(mj.mjtEq.mjEQ_JOINT):
                if int(m.jnt_type[o1]) == int(mj.mjtJoint.mjJNT_SLIDE):
                    # a coupled translation (e.g. a moving knee centre): held at its value at rest, bones stay rigid
                    a1 = m.jnt_qposadr[o1]
                    lo, hi = (m.jnt_range[o1] if m.jnt_limited[o1] else (-np.inf, np.inf))
                    self.q0[a1] = np.clip(m.qpos0[a1] + data[0], lo, hi)
                    self.eq_ignored.append(e)
                    continue
                a1 = m.jnt_qposadr[o1]
                a2 = m.jnt_qposadr[o2] if o2 >= 0 else -1
                lo, hi = (m.jnt_range[o1] if m.jnt_limited[o1] else (-np.inf, np.inf))
                self.eq_joint.append((a1, a2, data, lo, hi))
            elif typ == int(mj.mjtEq.mjEQ_TENDON) and o2 < 0:
                adr, num = m.tendon_adr[o1], m.tendon_num[o1]
                if not all(int(m.wrap_type[w]) == int(mj.mjtWrap.mjWRAP_JOINT) for w in range(adr, adr + num)):
                    self.eq_ignored.append(e)
                    continue
                jnts = m.wrap_objid[adr:adr + num]
                coef = m.wrap_prm[adr:adr + num].copy()
                target = float(m.tendon_length0[o1] + data[0])
                self.eq_tendon.append((m.jnt_qposadr[jnts], coef, target,
                                       m.jnt_range[jnts, 0].copy(), m.jnt_range[jnts, 1].copy()))
            else:
                self.eq_ignored.append(e)

    def to_qpos(self, A: np.ndarray) -> np.ndarray:
        """Sampled dof values ``(F, D)`` -> ``qpos (F, nq)`` with the equalities applied."""
        F = len(A)
        Q = np.repeat(self.q0[None], F, 0)
        k = 0
        for dof, adr in zip(self.dofs, self.dof_adr):
            if dof.kind == "hinge":
                Q[:, adr] = A[:, k]
                k += 1
            else:
                Q[:, adr:adr + 4] = _quat_mul_wxyz(self.q0[adr:adr + 4], _rotvec_to_quat_wxyz(A[:, k:k + 3]))
                k += 3
        for _ in range(2 if self.eq_joint else 0):  # chained couplings settle in two passes
            for a1, a2, c, lo, hi in self.eq_joint:
                x = Q[:, a2] - self.m.qpos0[a2] if a2 >= 0 else 0.0
                Q[:, a1] = np.clip(self.m.qpos0[a1] + c[0] + c[1] * x + c[2] * x**2 + c[3] * x**3 + c[4] * x**4,
                                   lo, hi)
        for adrs, coef, target, lo, hi in self.eq_tendon:  # alternate projection on coef . q = target and clipping
            for _ in range(50):
                q = Q[:, adrs]
                q = q - np.outer(q @ coef - target, coef) / (coef @ coef)
                Q[:, adrs] = np.clip(q, lo, hi)
        return Q

    def fk(self, Q: np.ndarray) -> np.ndarray:
        """Node positions and leaf tips ``(F, K + T, 3)`` (source axes) for ``qpos`` rows ``Q``."""
        m, d, mj = self.m, self.d, self.mj
        K = len(self.names)
        tips = sorted(self.tip_local)
        X = np.empty((len(Q), K + len(tips), 3))
        anc = self.node_joint >= 0
        ja, ba = self.node_joint[anc], self.node_body[~anc]
        tb = self.node_body[tips] if tips else self.node_body[:0]
        tl = np.array([self.tip_local[i] for i in tips]).reshape(-1, 3)
        for f, q in enumerate(Q):
            d.qpos[:] = q
            mj.mj_kinematics(m, d)
            X[f, :K][anc] = d.xanchor[ja]
            X[f, :K][~anc] = d.xpos[ba]
            if tips:
                X[f, K:] = d.xpos[tb] + np.einsum("tij,tj->ti", d.xmat[tb].reshape(-1, 3, 3), tl)
        return X

    def close(self):
        pass


def _quat_rotate_wxyz(q, v):
    w, x, y, z = q
    R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                  [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                  [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])
    return R @ v


@contextlib.contextmanager
def quiet_c_output():
    """Send what C code writes to the process's stdout and stderr (file descriptors 1 and 2) to the null device
    while the block runs: PyBullet prints its build time on import and a ``b3Warning`` per URDF oddity (a joint
    without an axis, ...) with ``printf``, past Python's ``sys.stdout``, and has no option to stop it. C's buffers
    are flushed before the descriptors come back, so nothing leaks out later."""
    libc = ctypes.CDLL(None)
    for f in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            f.flush()
    saved = [os.dup(fd) for fd in (1, 2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in (1, 2):
            os.dup2(null, fd)
        yield
    finally:
        libc.fflush(None)
        for fd, old in zip((1, 2), saved):
            os.dup2(old, fd)
            os.close(old)
        os.close(null)


class _PybulletRig:
    def __init__(self, name: str, spec: ModelSpec):
        with quiet_c_output():
            import pybullet as p

        self.p = p
        path = _site_file(spec.path)
        _check_allowed(str(path))
        self.file = spec.path
        self.cid = p.connect(p.DIRECT)
        try:
            with quiet_c_output():  # b3Warning lines about the URDF (e.g. joints without an axis): harmless
                self.b = p.loadURDF(str(path), useFixedBase=True, globalScaling=spec.scale,
                                    physicsClientId=self.cid)
        except Exception:
            p.disconnect(self.cid)
            raise
        b, cid = self.b, self.cid
        n = p.getNumJoints(b, physicsClientId=cid)
        info = [p.getJointInfo(b, j, physicsClientId=cid) for j in range(n)]
        base = p.getBodyInfo(b, physicsClientId=cid)[0].decode()
        self.names = [base] + [ji[12].decode() for ji in info]  # keypoint i = link i - 1 (0 = base)
        self.parent = np.array([-1] + [ji[16] + 1 for ji in info])
        vis = {v[1] for v in p.getVisualShapeData(b, physicsClientId=cid)}
        self.has_geom = np.array([(l in vis) or bool(p.getCollisionShapeData(b, l, physicsClientId=cid))
                                  for l in range(-1, n)])
        self.tip_local = {}
        self.dofs, self.joint_idx, self.joint_kind = [], [], []
        self.fixed_pos = {}
        for j, ji in enumerate(info):
            jn, typ, lo, hi = ji[1].decode(), ji[2], float(ji[8]), float(ji[9])
            lim = hi > lo
            for rx, (a, c) in spec.limits.items():
                if re.search(rx, jn):
                    lo, hi, lim = a, c, False
            rest = next((v for rx, v in spec.rest.items() if re.search(rx, jn)), 0.0)
            if typ == p.JOINT_REVOLUTE:
                if not (hi > lo):
                    lo, hi = rest - spec.unlimited_range, rest + spec.unlimited_range
                self.dofs.append(_Dof(jn, "hinge", lo, hi, float(np.clip(rest, lo, hi)), lim))
                self.joint_idx.append(j)
                self.joint_kind.append("hinge")
            elif typ == p.JOINT_SPHERICAL:
                c = spec.ball_range / math.sqrt(3)
                self.dofs.append(_Dof(jn, "ball", -c, c, 0.0, False))
                self.joint_idx.append(j)
                self.joint_kind.append("ball")
            elif typ == p.JOINT_PRISMATIC:
                self.fixed_pos[j] = (lo + hi) / 2 if hi > lo else 0.0
            elif typ != p.JOINT_FIXED:
                raise ValueError(f"{name}: joint {jn!r} has unsupported pybullet type {typ}.")
        dyn = p.getDynamicsInfo(b, -1, physicsClientId=cid)
        self.base_inertial = (dyn[3], dyn[4])

    def to_qpos(self, A: np.ndarray) -> np.ndarray:
        """Sampled dof values -> the movable joints' coordinates (hinge: angle; spherical: quaternion xyzw)."""
        cols, k = [], 0
        for kind in self.joint_kind:
            if kind == "hinge":
                cols.append(A[:, k:k + 1])
                k += 1
            else:
                q = _rotvec_to_quat_wxyz(A[:, k:k + 3])
                cols.append(q[:, [1, 2, 3, 0]])
                k += 3
        return np.concatenate(cols, 1) if cols else np.zeros((len(A), 0))

    def fk(self, Q: np.ndarray, read_back: bool = False):
        p, b, cid = self.p, self.b, self.cid
        n = len(self.names) - 1
        links = list(range(n))
        X = np.empty((len(Q), n + 1, 3))
        back = np.empty_like(Q) if read_back else None
        for j, v in self.fixed_pos.items():
            p.resetJointState(b, j, v, physicsClientId=cid)
        pos, orn = p.getBasePositionAndOrientation(b, physicsClientId=cid)
        inv = p.invertTransform(*self.base_inertial)
        base = np.array(p.multiplyTransforms(pos, orn, *inv)[0])
        for f, q in enumerate(Q):
            c = 0
            for j, kind in zip(self.joint_idx, self.joint_kind):
                if kind == "hinge":
                    p.resetJointState(b, j, q[c], physicsClientId=cid)
                    c += 1
                else:
                    p.resetJointStateMultiDof(b, j, list(q[c:c + 4]), physicsClientId=cid)
                    c += 4
            ls = p.getLinkStates(b, links, computeForwardKinematics=1, physicsClientId=cid)
            X[f, 0] = base
            X[f, 1:] = [s[4] for s in ls]
            if read_back:
                c = 0
                for j, kind in zip(self.joint_idx, self.joint_kind):
                    if kind == "hinge":
                        back[f, c] = p.getJointState(b, j, physicsClientId=cid)[0]
                        c += 1
                    else:
                        back[f, c:c + 4] = p.getJointStateMultiDof(b, j, physicsClientId=cid)[0]
                        c += 4
        return (X, back) if read_back else X

    def close(self):
        try:
            self.p.disconnect(self.cid)
        except Exception:
            pass


# ---------------------------------------------------------------------------------------------------------------
# rig reduction (fixed per model): merge coincident bodies, drop bare leaves and near-duplicate leaves


def _reduce(rig, probes: np.ndarray, merge_tol: float):
    """Keypoint selection from the bodies' probe positions ``(P, B, 3)``.

    Returns ``alive`` (B,) bool, ``parent`` (B,) (the kept parent of each kept body) and ``rep`` (B,) (the body
    each body was merged into; itself if not merged).
    """
    B = len(rig.names)
    parent = list(rig.parent)
    rep = list(range(B))
    alive = np.ones(B, bool)
    geom = rig.has_geom.copy()
    for i in range(B):  # bodies exactly on their parent's origin in every probe: merge (keeps bones rigid)
        pa = parent[i]
        if pa >= 0 and np.all(np.linalg.norm(probes[:, i] - probes[:, pa], axis=-1) <= 1e-6):
            alive[i] = False
            rep[i] = pa
            geom[pa] |= geom[i]
            for c in range(B):
                if parent[c] == i:
                    parent[c] = pa
    for i in range(B):
        while not alive[rep[i]] and rep[rep[i]] != rep[i]:
            rep[i] = rep[rep[i]]
    changed = True
    while changed:  # leaves without geometry, or as good as on another keypoint: drop
        changed = False
        for i in range(B - 1, -1, -1):
            if not alive[i] or parent[i] < 0 or any(alive[c] and parent[c] == i for c in range(B)):
                continue
            near = any(np.all(np.linalg.norm(probes[:, i] - probes[:, k], axis=-1) <= merge_tol)
                       for k in range(B) if alive[k] and k != i)
            if not geom[i] or near:
                alive[i] = False
                changed = True
    return alive, np.array(parent), np.array(rep)


@lru_cache(maxsize=None)
def _rig(name: str):
    """The engine rig and its keypoint selection (cached: loading meshes takes a second)."""
    spec = MODELS[name]
    rig = (_PybulletRig if spec.engine == "pybullet" else _MujocoRig)(name, spec)
    rng = np.random.default_rng(20240607)
    lo = np.array([x for d in rig.dofs for x in ([d.lo] if d.kind == "hinge" else [d.lo] * 3)], float)
    hi = np.array([x for d in rig.dofs for x in ([d.hi] if d.kind == "hinge" else [d.hi] * 3)], float)
    rest = np.array([x for d in rig.dofs for x in ([d.rest] if d.kind == "hinge" else [0.0] * 3)], float)
    A = np.concatenate([rest[None], rng.uniform(lo, hi, (8, len(lo)))])
    probes = rig.fk(rig.to_qpos(A))
    B = len(rig.names)
    alive, parent, rep = _reduce(rig, probes[:, :B], spec.merge_tol)
    kept = [i for i in range(B) if alive[i]]
    pos = {b: k for k, b in enumerate(kept)}
    edges = [(pos[parent[b]], pos[b]) for b in kept if parent[b] >= 0]
    names = [rig.names[b] for b in kept]
    # tips: the far end of a leaf's geom (its own or a merged body's), one per kept leaf, if not on its origin
    tips = []
    if spec.tips:
        leaves = {b for b in kept if not any(alive[c] and parent[c] == b for c in range(B))}
        best = {}
        for t, b in enumerate(sorted(rig.tip_local)):
            r = rep[b]
            if r not in leaves:
                continue
            d = np.linalg.norm(probes[:, B + t] - probes[:, r], axis=-1)
            if d.min() > spec.merge_tol and (r not in best or d[0] > best[r][1]):
                best[r] = (t, d[0])
        for r in sorted(best):
            tips.append(best[r][0])
            edges.append((pos[r], len(names)))
            names.append(f"{rig.names[r]}/tip")
    return rig, spec, lo, hi, rest, kept, tips, np.array(edges, np.int64).reshape(-1, 2), names


def load_kinematic(name: str, n_sequences: int = 50, frames_per_sequence: int = 100, seed: int = 0) -> CategorySet:
    """``n_sequences`` smooth trajectories of ``frames_per_sequence`` frames of model ``name`` (see :data:`MODELS`).

    Sequence ids are ``"<name>/trajNNN"``; ``meta`` holds ``frame`` and ``qpos`` per frame and, as plain lists /
    strings, ``keypoint_names``, ``joint_names``, ``joint_range`` (the sampled range of each dof; ball joints: the
    per-component bound), ``joint_limited`` (False where the range was assumed), ``qpos_layout`` and ``up_rule``.
    """
    _check_allowed(name)
    if name not in MODELS:
        why = f" ({SKIPPED[name]})" if name in SKIPPED else ""
        raise ValueError(f"unknown kinematic model {name!r}{why}; known: {sorted(MODELS)}.")
    if n_sequences < 1 or frames_per_sequence < 1:
        raise ValueError("n_sequences and frames_per_sequence must be positive.")
    rig, spec, lo, hi, rest, kept, tips, edges, names = _rig(name)
    tag = zlib.crc32(name.encode())
    A = np.concatenate([smooth_trajectory(np.random.default_rng([seed, tag, s]), lo, hi, rest, frames_per_sequence,
                                          spec.style, spec.amplitude, spec.bias) for s in range(n_sequences)])
    Q = rig.to_qpos(A)
    if spec.engine == "pybullet":
        X, Q = rig.fk(Q, read_back=True)
    else:
        X = rig.fk(Q)
    B = len(rig.names)
    P = np.concatenate([X[:, kept], X[:, [B + t for t in tips]]], 1)
    if spec.up == "z":
        P = P @ Z_TO_Y_UP.T
        up_rule = "source z-up rotated -90 deg about x: (x, y, z) -> (x, z, -y)"
    else:
        up_rule = "source already +y up (unchanged)"
    version = _version(spec.package)
    seq = np.repeat([f"{name}/traj{s:03d}" for s in range(n_sequences)], frames_per_sequence)
    layout = "mujoco qpos" if spec.engine != "pybullet" else "pybullet movable joints (revolute: angle, " \
                                                              "spherical: quaternion xyzw)"
    return CategorySet(
        category=spec.category, rig=name, points3d=P.astype(np.float32), visible=np.ones(P.shape[:2], bool),
        edges=edges, sequence=seq, units="m", source=f"{rig.file} from {spec.package} {version}",
        licence=licence(name), synthetic=True,
        edges_rule="kinematic tree (parent body -> child body) over the kept bodies; coincident bodies merged, "
                   "bare or near-duplicate leaves dropped, leaf geom tips as extra leaves",
        meta={"frame": np.tile(np.arange(frames_per_sequence), n_sequences), "qpos": Q,
              "keypoint_names": list(names), "joint_names": [d.name for d in rig.dofs],
              "joint_kind": [d.kind for d in rig.dofs], "joint_range": [(d.lo, d.hi) for d in rig.dofs],
              "joint_limited": [d.limited for d in rig.dofs], "qpos_layout": layout, "up_rule": up_rule,
              "style": spec.style, "seed": seed, "engine": spec.engine, "note": spec.note,
              "equalities_ignored": len(getattr(rig, "eq_ignored", []))},
    )
