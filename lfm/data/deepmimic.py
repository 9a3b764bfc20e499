"""The characters of Peng et al. into :class:`CategorySet`: DeepMimic reference motions (JSON motion rows +
character files; humanoid and dog, :func:`load_deepmimic`) and the IsaacGym AMP humanoid motions (poselib
``SkeletonMotion`` ``.npy`` files read without poselib, :func:`load_amp`), both by forward kinematics.

Every loader returns +y up (``meta['up_rule']`` says how), its own kinematic tree as edges (``meta['parents']``,
``meta['joint_names']``) and one ``sequence`` id per clip.
"""

from __future__ import annotations

import json

import numpy as np

from .fetch import cached_arrays, fetch, licence as _licence
from .forward_kinematics import Z_UP_TO_Y_UP, axis_rotation, forward_kinematics, quat_matrix, tree_edges
from .schema import CategorySet

__all__ = ["DEEPMIMIC_CLIPS", "DEEPMIMIC_LONG", "deepmimic_positions", "load_deepmimic",
           "AMP_CLIPS", "read_skeleton_motion", "load_amp"]

DEEPMIMIC_CLIPS = {
    "humanoid": ("backflip", "cartwheel", "crawl", "dance_a", "dance_b", "dance_spin", "getup_facedown", "getup_faceup",
                 "jog", "jump", "kick", "punch", "roll", "run", "sideflip", "spin", "spinkick", "stealthy_walk",
                 "walk", "zombie_walk"),
    "dog": ("canter", "pace", "spin", "trot"),
}
DEEPMIMIC_LONG = ("long_walk1", "long_walk1_mirror", "long_walk2", "long_walk2_mirror", "long_walk3",
                  "long_walk3_mirror", "long_zombie", "stealthy_walk0", "stealthy_walk1")
_DEEPMIMIC_DOF = {"none": 0, "spherical": 4, "revolute": 1, "fixed": 0}


def _deepmimic_character(character: str) -> dict:
    name = f"human_dog_deepmimic/data/characters/{character}3d.txt"
    joints = json.loads(fetch(name, progress=False).read_text())["Skeleton"]["Joints"]
    joints = sorted(joints, key=lambda j: j["ID"])
    if [j["ID"] for j in joints] != list(range(len(joints))):
        raise ValueError(f"{name}: joint IDs are not 0..{len(joints) - 1}.")
    for j in joints:
        if j["Type"] not in _DEEPMIMIC_DOF:
            raise ValueError(f"{name}: joint {j['Name']!r} has unknown type {j['Type']!r}.")
        if any(float(j.get(f"AttachTheta{a}", 0)) for a in "XYZ"):
            raise ValueError(f"{name}: joint {j['Name']!r} has a rotated attach frame (not supported).")
        if (j["Parent"] < 0) != (j["ID"] == 0) or j["Parent"] >= j["ID"]:
            raise ValueError(f"{name}: joint {j['Name']!r}: parents must precede children, joint 0 is the root.")
    return {"names": [j["Name"] for j in joints], "parents": [int(j["Parent"]) for j in joints],
            "types": [j["Type"] for j in joints],
            "attach": np.array([[j["AttachX"], j["AttachY"], j["AttachZ"]] for j in joints], np.float64)}


def deepmimic_positions(char: dict, frames) -> np.ndarray:
    """Forward kinematics of DeepMimic motion rows ``(F, 1 + 3 + 4 + dofs)``: duration, root position, root
    quaternion (w, x, y, z), then per joint in ID order a quaternion (spherical), one angle about the local z axis
    in radians (revolute) or nothing (fixed). A joint sits at its parent's position plus the parent's global
    rotation applied to its ``Attach`` offset (the root's own Attach is ignored: the motion places it)."""
    frames = np.asarray(frames, np.float64)
    ndof = 8 + sum(_DEEPMIMIC_DOF[t] for t in char["types"][1:])
    if frames.ndim != 2 or frames.shape[1] != ndof:
        raise ValueError(f"motion rows have {frames.shape[-1]} values; the character needs {ndof}.")
    F, N = len(frames), len(char["names"])
    rot = np.empty((F, N, 3, 3))
    rot[:, 0] = quat_matrix(frames[:, 4:8], "wxyz")
    col = 8
    for j, t in enumerate(char["types"][1:], start=1):
        if t == "spherical":
            rot[:, j] = quat_matrix(frames[:, col:col + 4], "wxyz")
        elif t == "revolute":
            rot[:, j] = axis_rotation("z", frames[:, col])
        else:
            rot[:, j] = np.eye(3)
        col += _DEEPMIMIC_DOF[t]
    return forward_kinematics(char["parents"], rot, char["attach"], frames[:, 1:4])


def load_deepmimic(character: str = "humanoid", clips=None, include_long: bool = False,
                   fps: float | None = None) -> CategorySet:
    """DeepMimic reference motions (Peng et al. 2018): ``"humanoid"`` (15 joints) or ``"dog"`` (23 joints), metres,
    +y up, joint positions by forward kinematics of the character file (:func:`deepmimic_positions`).

    Keypoints: the character's joints in ID order (``meta['joint_names']``; the humanoid has no head, hand or toe
    end points: its top point is the neck joint). ``clips``: names such as ``"walk"`` (default: the base clips of
    :data:`DEEPMIMIC_CLIPS`; ``include_long`` adds the humanoid's long walks, 120 fps, ~22,000 frames, some of them
    mirror images of others). ``fps``: subsample each clip to about this rate (default: every frame; clip rates
    differ, 16-120 fps). ``sequence`` = the clip; ``meta['source_clip']`` = the clip without ``_mirror`` (split
    on it so a clip and its mirror image fall on the same side).
    """
    if character not in DEEPMIMIC_CLIPS:
        raise ValueError(f"character={character!r}: 'humanoid' or 'dog'.")
    char_name = f"human_dog_deepmimic/data/characters/{character}3d.txt"
    char = _deepmimic_character(character)
    clips = list(DEEPMIMIC_CLIPS[character] if clips is None else clips)
    if include_long:
        if character != "humanoid":
            raise ValueError("include_long: only the humanoid has long clips.")
        clips += [c for c in DEEPMIMIC_LONG if c not in clips]
    pts, seq, frame = [], [], []
    for clip in clips:
        sub = "long/" if clip in DEEPMIMIC_LONG else ""
        name = f"human_dog_deepmimic/data/motions/{sub}{character}3d_{clip}.txt"

        def build(name=name):
            rows = np.asarray(json.loads(fetch(name, progress=False).read_text())["Frames"], np.float64)
            step = 1
            if fps is not None and len(rows) > 1:
                step = max(1, int(round(1.0 / (float(np.median(rows[:-1, 0])) * fps))))
            return {"points": deepmimic_positions(char, rows[::step]).astype(np.float32),
                    "frame": np.arange(len(rows))[::step]}

        a = cached_arrays(f"deepmimic_{character}_{clip}_fps{fps}", [name, char_name], build)
        pts.append(a["points"])
        seq += [clip] * len(a["points"])
        frame.append(a["frame"])
    P = np.concatenate(pts)
    seq = np.array(seq)
    return CategorySet(
        category=f"{'human' if character == 'humanoid' else character}_deepmimic{len(char['names'])}", rig=f"deepmimic_{character}{len(char['names'])}",
        points3d=P, visible=np.ones(P.shape[:2], bool), edges=tree_edges(char["parents"]), sequence=seq,
        units="m", source=f"DeepMimic data/motions/{character}3d_*.txt + characters/{character}3d.txt",
        licence=_licence(char_name),
        edges_rule="character file joint hierarchy (Parent of each joint)",
        meta={"joint_names": char["names"], "parents": char["parents"], "up_rule": "data +y (DeepMimic is y-up)",
              "source_clip": np.char.replace(seq, "_mirror", ""), "frame": np.concatenate(frame)},
    )



# ================================================================================================ IsaacGym AMP
AMP_CLIPS = ("backflip", "cartwheel", "dance", "hop", "run", "walk")


def read_skeleton_motion(raw: bytes, where: str) -> dict:
    """A poselib ``SkeletonMotion`` saved with ``np.save`` (a pickled dict), read without poselib: the unpickler
    resolves only numpy arrays/dtypes and ``OrderedDict`` (no other code can run). Returns ``rotation (F, J, 4)``
    (local quaternions x, y, z, w), ``root_translation (F, 3)``, ``node_names``, ``parent_indices (J,)``,
    ``local_translation (J, 3)``, ``fps`` and ``is_local``."""
    import io
    import pickle
    from collections import OrderedDict

    allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"{where}: unexpected object {module}.{name} in a motion file.")
            if module == "collections":
                return OrderedDict
            if name == "_reconstruct":
                core = np._core if hasattr(np, "_core") else np.core  # numpy >= 2 / numpy 1
                return core.multiarray._reconstruct
            return getattr(np, name)

    buf = io.BytesIO(raw)
    version = np.lib.format.read_magic(buf)
    shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)(buf)
    if dtype != np.dtype(object) or shape != ():
        raise ValueError(f"{where}: a {dtype} array of shape {shape}; expected one pickled object.")
    d = Unpickler(buf).load()
    d = d.item() if isinstance(d, np.ndarray) else d

    def arr(x):
        return np.asarray(x["arr"] if isinstance(x, dict) else x)

    try:
        tree = d["skeleton_tree"]
        out = {"rotation": arr(d["rotation"]), "root_translation": arr(d["root_translation"]),
               "node_names": list(tree["node_names"]), "parent_indices": arr(tree["parent_indices"]).astype(int),
               "local_translation": arr(tree["local_translation"]), "fps": float(d["fps"]),
               "is_local": bool(d["is_local"])}
    except (KeyError, TypeError) as e:
        raise ValueError(f"{where}: not a poselib SkeletonMotion dict ({e!r}).") from None
    F, J = out["rotation"].shape[:2]
    if out["rotation"].shape != (F, J, 4) or out["root_translation"].shape != (F, 3) or \
            out["local_translation"].shape != (J, 3) or len(out["node_names"]) != J:
        raise ValueError(f"{where}: inconsistent array shapes in the motion file.")
    return out


def load_amp(clips=AMP_CLIPS, fps: float | None = None) -> CategorySet:
    """IsaacGymEnvs AMP humanoid motions (from CMU mocap): 15 joints, metres, forward kinematics of the poselib
    skeleton tree (local quaternions x, y, z, w; joint = parent + parent rotation x local translation).

    The source is z-up: points are turned to +y up by ``(x, y, z) -> (x, z, -y)`` (``meta['up_rule']``). Clips are
    60 fps (backflip: 16 fps), subsampled to about ``fps`` (``None``: every frame; ``meta['fps']`` per frame).
    ``sequence`` = the clip name (SOURCE.md lists the six CMU trials, not which clip came from which). The body is
    the DeepMimic humanoid's (same bone lengths) and the ``backflip`` clip *is* the DeepMimic backflip (equal joint
    positions): keep the two on the same side of a split.
    """
    pts, seq, frame, rate = [], [], [], []
    names = parents = None
    for clip in clips:
        name = f"human_amp_isaacgym/assets/amp/motions/amp_humanoid_{clip}.npy"
        m = read_skeleton_motion(fetch(name, progress=False).read_bytes(), name)
        if not m["is_local"]:
            raise ValueError(f"{name}: rotations are global (is_local False); expected local rotations.")
        step = 1 if fps is None else max(1, int(round(m["fps"] / fps)))
        if names is None:
            names, parents = m["node_names"], m["parent_indices"].tolist()
        elif m["node_names"] != names or m["parent_indices"].tolist() != parents:
            raise ValueError(f"{name}: its skeleton differs from the other clips'.")
        rot = quat_matrix(m["rotation"][::step], "xyzw")
        P = forward_kinematics(parents, rot, m["local_translation"], m["root_translation"][::step])
        pts.append(P @ Z_UP_TO_Y_UP)
        seq += [clip] * len(P)
        frame.append(np.arange(len(m["rotation"]))[::step])
        rate.append(np.full(len(P), m["fps"] / step))
    P = np.concatenate(pts)
    return CategorySet(
        category="human_amp15", rig="amp_humanoid15", points3d=P, visible=np.ones(P.shape[:2], bool),
        edges=tree_edges(parents), sequence=np.array(seq), units="m",
        source="IsaacGymEnvs assets/amp/motions/amp_humanoid_*.npy (poselib SkeletonMotion, from CMU mocap)",
        licence=_licence("human_amp_isaacgym/assets/amp/motions/amp_humanoid_walk.npy"),
        edges_rule="poselib skeleton tree parent_indices",
        meta={"joint_names": names, "parents": parents, "up_rule": "source z-up: (x, y, z) -> (x, z, -y)",
              "fps": np.concatenate(rate), "frame": np.concatenate(frame)},
    )
