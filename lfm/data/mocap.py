"""Motion capture of bodies (3D joint or marker positions over time) into :class:`CategorySet`: the NRSfM benchmark
sequences (CMU humans, dance, walking, face, the synthetic shark) and the AI4Animation dog; joint positions by
forward kinematics of rotation-based formats: CMU ASF/AMC (:func:`load_cmu_asfamc`), Bandai Namco BVH
(:func:`load_bandai_namco`), DeepMimic humanoid and dog (:func:`load_deepmimic`), IsaacGym AMP poselib motions
(:func:`load_amp`); and synthetic birds from the AVES parametric model (:func:`load_bird`).

Every loader returns +y up (``meta['up_rule']`` says how), its own kinematic tree as edges (``meta['parents']``,
``meta['joint_names']``) and one ``sequence`` id per clip (per individual for the birds).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

import numpy as np

from .fetch import cached_arrays, fetch, licence as _licence
from .schema import CategorySet, skeleton_from_motion

__all__ = ["NRSFM", "DOG_CLIPS", "load_nrsfm", "load_dog",
           "CMU_SUBJECTS", "CMU_CLIPS", "parse_asf", "parse_amc", "asf_amc_positions", "cmu_metres_per_unit",
           "load_cmu_asfamc",
           "parse_bvh", "bvh_positions", "load_bandai_namco",
           "DEEPMIMIC_CLIPS", "DEEPMIMIC_LONG", "deepmimic_positions", "load_deepmimic",
           "AMP_CLIPS", "read_skeleton_motion", "load_amp",
           "BIRD_KEYPOINTS", "BIRD_PARENTS", "aves_pose", "aves_keypoints", "aves_joint_rig", "sample_birds", "bird_up_rotation", "load_bird",
           "Z_UP_TO_Y_UP"]

# NRSfM benchmark sequences -> benchmark category (the four CMU sequences share one 41-marker rig)
NRSFM = {
    "drink": "human41", "pickup": "human41", "stretch": "human41", "yoga": "human41",
    "dance": "dance", "walking": "walking", "face": "face", "jaws": "shark",
}
DOG_CLIPS = ("pace", "trot", "run00", "run01", "run02", "run04", "turn00", "walk00", "walk01", "walk02", "walk03",
             "walk04", "walk05", "walk06", "walk09")


def _nrsfm_points(seq: str) -> np.ndarray:
    from scipy.io import loadmat

    path = fetch(f"nrsfm_benchmark/{seq}_rearranged.mat", progress=False)
    X = loadmat(path)["X"]  # (3, P, F)
    if X.ndim != 3 or X.shape[0] != 3:
        raise ValueError(f"{path}: variable X has shape {X.shape}; expected (3, P, F) (NRSfM '_rearranged' format).")
    return X.transpose(2, 1, 0)  # (F, P, 3)


@lru_cache(maxsize=None)
def _nrsfm_edges(category: str) -> tuple:
    seqs = [s for s, c in NRSFM.items() if c == category]
    pts = np.concatenate([_nrsfm_points(s)[::2] for s in seqs])
    return tuple(map(tuple, skeleton_from_motion(pts)))


def load_nrsfm(seq: str) -> CategorySet:
    """One NRSfM benchmark sequence (Akhter et al. 2008 / Torresani et al. 2008), 3D only, no marker names.

    Edges: the motion MST (:func:`skeleton_from_motion`) over all sequences of the category, so the four
    41-marker human sequences share one graph. ``jaws`` is the synthetic shark.
    """
    if seq not in NRSFM:
        raise ValueError(f"unknown NRSfM sequence {seq!r}; known: {sorted(NRSFM)}.")
    name = f"nrsfm_benchmark/{seq}_rearranged.mat"
    P = _nrsfm_points(seq)
    cat = NRSFM[seq]
    return CategorySet(
        category=cat, rig=f"nrsfm_{cat}{P.shape[1]}" if cat != "human41" else "nrsfm_human41",
        points3d=P, visible=np.ones(P.shape[:2], bool), edges=np.array(_nrsfm_edges(cat)),
        sequence=np.full(len(P), seq), units="arbitrary", source=f"NRSfM benchmark, {name}",
        licence=_licence(name), synthetic=seq == "jaws", edges_rule="motion MST over the category's sequences",
        meta={"frame": np.arange(len(P))},
    )


def load_dog(clips=DOG_CLIPS) -> CategorySet:
    """AI4Animation / MANN dog mocap: 27 joints in metres, 60 fps, one sequence id per clip.

    The files carry no joint hierarchy (only a few named joints in the retargeting code), so the edges are the
    motion MST over all clips; on this rigid-bone skeleton it recovers a 26-edge tree.
    """
    pts, seq, frame = [], [], []
    for clip in clips:
        name = f"dog_mocap_ai4animation/dog_{clip}_joint_pos.txt"
        a = np.loadtxt(fetch(name, progress=False), delimiter=",", dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 81:
            raise ValueError(f"{name}: {a.shape[1] if a.ndim == 2 else a.shape} values per frame; expected 81 "
                             "(27 joints x 3).")
        pts.append(a.reshape(-1, 27, 3))
        seq += [clip] * len(a)
        frame.append(np.arange(len(a)))
    P = np.concatenate(pts)
    edges = skeleton_from_motion(P[::8])
    return CategorySet(
        category="dog", rig="mann_dog27", points3d=P, visible=np.ones(P.shape[:2], bool), edges=edges,
        sequence=np.array(seq), units="m", source="AI4Animation dog mocap (Zhang et al. 2018) via motion_imitation",
        licence=_licence("dog_mocap_ai4animation/LICENSE.txt"), edges_rule="motion MST over all clips",
        meta={"frame": np.concatenate(frame)},
    )


# ================================================================================================ kinematics helpers
# Shared by the loaders below: rotations (column vectors, right-handed), forward kinematics over a parent table,
# the tree's edges and the z-up -> y-up change of axes.

Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # row vectors: (x, y, z) -> (x, z, -y)


def _axis_rotation(axis: str, angle) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` about ``axis`` ('x', 'y' or 'z') by ``angle`` radians (column vectors)."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i = "xyz".index(axis.lower())
    j, k = (i + 1) % 3, (i + 2) % 3
    R[..., i, i] = 1.0
    R[..., j, j], R[..., j, k], R[..., k, j], R[..., k, k] = c, -s, s, c
    return R


def _euler(angles, axes: str) -> np.ndarray:
    """``R = R_axes[0](angles[..., 0]) @ R_axes[1](angles[..., 1]) @ ...`` (radians): the product in the listed order,
    i.e. intrinsic rotations about the listed axes (the BVH channel convention); ``(..., 3, 3)``."""
    angles = np.asarray(angles, dtype=np.float64)
    R = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for n, ax in enumerate(axes):
        R = R @ _axis_rotation(ax, angles[..., n])
    return R


def _quat_matrix(q, order: str = "wxyz") -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of (normalised) quaternions stored as ``wxyz`` or ``xyzw``."""
    q = np.asarray(q, dtype=np.float64)
    if order == "xyzw":
        q = q[..., [3, 0, 1, 2]]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _forward_kinematics(parents, local_rot, local_trans, root_pos) -> np.ndarray:
    """Joint positions ``(F, N, 3)`` of a tree: joint ``j`` sits at its parent's position plus the parent's global
    rotation applied to ``local_trans[..., j, :]``; its global rotation is the parent's times ``local_rot[:, j]``.
    ``parents[j] < j`` (a topological order), ``parents[0] == -1``; the root sits at ``root_pos (F, 3)``."""
    local_rot = np.asarray(local_rot, np.float64)
    F, N = local_rot.shape[:2]
    t = np.broadcast_to(np.asarray(local_trans, np.float64), (F, N, 3))
    G = np.empty((F, N, 3, 3))
    P = np.empty((F, N, 3))
    for j, p in enumerate(parents):
        if p < 0:
            G[:, j], P[:, j] = local_rot[:, j], root_pos
        else:
            if p >= j:
                raise ValueError(f"joint {j} has parent {p}: the parent table is not in topological order.")
            G[:, j] = G[:, p] @ local_rot[:, j]
            P[:, j] = P[:, p] + np.einsum("fab,fb->fa", G[:, p], t[:, j])
    return P


def _tree_edges(parents) -> np.ndarray:
    """``(N - 1, 2)`` edges ``(parent, child)`` of a parent table (root: parent -1)."""
    return np.array([(p, j) for j, p in enumerate(parents) if p >= 0], dtype=np.int64).reshape(-1, 2)


# ================================================================================================ CMU ASF/AMC
CMU_SUBJECTS = ("01", "02", "03")
CMU_CLIPS = {"01": 14, "02": 10, "03": 4}  # AMC clips per subject in the mirror (NN_01 ... NN_MM)
CMU_FPS = 120


def parse_asf(text: str) -> dict:
    """An Acclaim skeleton file (ASF) as plain data: ``names`` (``root`` first, then the bones in file order),
    ``parents`` (indices into ``names``), per entry ``direction`` (unit, global rest frame; zero for the root and
    for zero-length bones), ``length``, ``axis`` (degrees) with its rotation order ``axis_order`` and ``dof`` (the
    AMC channel names in file order); entry 0 holds the root's ``orientation``, ``axis`` and ``order``. Also
    ``root_position`` and the ``:units`` (``length``, ``angle``). Only what forward kinematics needs is kept."""
    units = {"length": 1.0, "angle": "deg", "mass": 1.0}
    bones: list[dict] = []
    root = {"order": ["TX", "TY", "TZ", "RX", "RY", "RZ"], "axis": "XYZ", "position": np.zeros(3),
            "orientation": np.zeros(3)}
    hierarchy: list[list[str]] = []
    section = None
    cur = None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tok = line.split()
        if tok[0].startswith(":"):
            section = tok[0][1:].lower()
            continue
        key = tok[0].lower()
        if section == "units":
            units[key] = tok[1] if key == "angle" else float(tok[1])
        elif section == "root":
            if key == "order":
                root["order"] = [t.upper() for t in tok[1:]]
            elif key == "axis":
                root["axis"] = tok[1].upper()
            elif key in ("position", "orientation"):
                root[key] = np.array([float(v) for v in tok[1:4]])
        elif section == "bonedata":
            if key == "begin":
                cur = {"dof": [], "axis": np.zeros(3), "axis_order": "XYZ"}
            elif key == "end":
                bones.append(cur)
                cur = None
            elif cur is not None:
                if key == "name":
                    cur["name"] = tok[1]
                elif key == "direction":
                    cur["direction"] = np.array([float(v) for v in tok[1:4]])
                elif key == "length":
                    cur["length"] = float(tok[1])
                elif key == "axis":
                    cur["axis"] = np.array([float(v) for v in tok[1:4]])
                    cur["axis_order"] = tok[4].upper() if len(tok) > 4 else "XYZ"
                elif key == "dof":
                    cur["dof"] = [t.lower() for t in tok[1:]]
        elif section == "hierarchy":
            if key not in ("begin", "end"):
                hierarchy.append(tok)
    if not bones:
        raise ValueError("ASF: no :bonedata section with bones.")
    names = ["root"] + [b["name"] for b in bones]
    index = {n: i for i, n in enumerate(names)}
    parent = {}
    for tok in hierarchy:
        for child in tok[1:]:
            if child not in index or tok[0] not in index:
                raise ValueError(f"ASF :hierarchy names an unknown bone in {' '.join(tok)!r}.")
            parent[child] = tok[0]
    missing = [b["name"] for b in bones if b["name"] not in parent]
    if missing:
        raise ValueError(f"ASF: bones without a parent in :hierarchy: {missing}.")
    return {
        "names": names, "parents": [-1] + [index[parent[b["name"]]] for b in bones],
        "direction": np.stack([np.zeros(3)] + [b["direction"] / max(np.linalg.norm(b["direction"]), 1e-300)
                                               for b in bones]),
        "length": np.array([0.0] + [b["length"] for b in bones]),
        "axis": np.stack([root["orientation"]] + [b["axis"] for b in bones]),
        "axis_order": [root["axis"]] + [b["axis_order"] for b in bones],
        "dof": [[o.lower() for o in root["order"]]] + [b["dof"] for b in bones],
        "root_position": root["position"], "units": units,
    }


def parse_amc(text: str, asf: dict, step: int = 1) -> tuple[dict, np.ndarray]:
    """Every ``step``-th frame of an AMC motion: ``({bone: (F, n_dof) values in file units/degrees}, frame
    numbers)``. Frames must list the same bones in the same order (CMU files do); a bone absent from the file keeps
    zero angles."""
    lines = text.splitlines()
    start = next((i + 1 for i, ln in enumerate(lines) if ln.strip().upper() in (":DEGREES", ":RADIANS")), None)
    if start is None:
        raise ValueError("AMC: no :DEGREES / :RADIANS line before the frames.")
    if lines[start - 1].strip().upper() != ":DEGREES" or asf["units"].get("angle", "deg") != "deg":
        raise ValueError("AMC/ASF in radians: only degree files (the CMU convention) are supported.")
    body = [ln for ln in lines[start:] if ln.strip()]
    if not body or not body[0].strip().isdigit():
        raise ValueError("AMC: the first line after :DEGREES is not a frame number.")
    per = 1
    while per < len(body) and not body[per].strip().isdigit():
        per += 1  # lines per frame: the number, then one line per bone
    if len(body) % per:
        raise ValueError(f"AMC: {len(body)} lines are not whole frames of {per} lines.")
    n = len(body) // per
    keep = np.arange(0, n, step)
    names = [body[k].split(None, 1)[0] for k in range(1, per)]
    numbers = np.array([int(body[f * per]) for f in keep])
    index = {nm: i for i, nm in enumerate(asf["names"])}
    out = {}
    for k, nm in enumerate(names, start=1):
        if nm not in index:
            raise ValueError(f"AMC: bone {nm!r} is not in the ASF skeleton.")
        rows = [body[f * per + k].split() for f in keep]
        if any(r[0] != nm for r in rows):
            raise ValueError(f"AMC: frames list their bones in different orders (expected {nm!r} on line {k}).")
        n_dof = len(asf["dof"][index[nm]])
        bad = next((r for r in rows if len(r) != n_dof + 1), None)
        if bad is not None:
            raise ValueError(f"AMC: bone {nm!r} has {len(bad) - 1} values; the ASF lists dof {asf['dof'][index[nm]]}.")
        out[nm] = np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), n_dof)
    return out, numbers


def asf_amc_positions(asf: dict, motion: dict, n_frames: int) -> np.ndarray:
    """Forward kinematics of the Acclaim format, in file length units: ``(F, N, 3)`` = the root position, then the
    end point of every bone (ASF order).

    Conventions (Acclaim / CMU): an Euler triple "XYZ" rotates about x first, so its matrix is ``Rz @ Ry @ Rx``;
    the bone's ``axis`` gives ``C`` (local -> global at rest), its AMC channels give ``M`` (in ``dof`` order);
    a bone's global rotation is ``G_parent @ C @ M @ C^-1`` and its end point is the parent's end point plus
    ``G @ (length * direction)`` (``direction`` is in the global rest frame)."""
    names, parents = asf["names"], asf["parents"]
    N = len(names)
    local = np.empty((n_frames, N, 3, 3))
    trans = np.zeros((n_frames, N, 3))
    root_pos = np.broadcast_to(asf["root_position"], (n_frames, 3)).copy()
    for j, nm in enumerate(names):
        C = _euler(np.deg2rad(asf["axis"][j])[::-1], asf["axis_order"][j][::-1].lower())
        vals = motion.get(nm, np.zeros((n_frames, len(asf["dof"][j]))))
        rot_axes, rot_vals = "", []
        for k, d in enumerate(asf["dof"][j]):
            if d.startswith("r"):
                rot_axes += d[1]
                rot_vals.append(np.deg2rad(vals[:, k]))
            elif d.startswith("t") and j == 0:
                root_pos[:, "xyz".index(d[1])] = vals[:, k]
            elif d.startswith("t") or d == "l":
                raise ValueError(f"ASF bone {nm!r}: translation/length channel {d!r} is not supported.")
        if rot_axes:
            M = _euler(np.stack(rot_vals[::-1], -1), rot_axes[::-1])  # first listed channel applied first
        else:
            M = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
        local[:, j] = C @ M @ C.T
        if j:
            trans[:, j] = asf["length"][j] * asf["direction"][j]
    # unlike a joint-based tree (:func:`_forward_kinematics`), a bone's offset turns with the bone's own rotation
    F = n_frames
    G = np.empty((F, N, 3, 3))
    P = np.empty((F, N, 3))
    for j, p in enumerate(parents):
        if p < 0:
            G[:, j], P[:, j] = local[:, j], root_pos
        else:
            G[:, j] = G[:, p] @ local[:, j]
            P[:, j] = P[:, p] + np.einsum("fab,fb->fa", G[:, j], trans[:, j])
    return P


def cmu_metres_per_unit(asf: dict) -> float:
    """Metres per ASF length unit: the CMU files store inches times ``:units length`` (0.45), so one unit is
    ``0.0254 / length`` m (SOURCE.md; the resulting walkers are 1.6-1.8 m tall)."""
    return 0.0254 / float(asf["units"]["length"])


@lru_cache(maxsize=None)
def _cmu_skeleton(subject: str) -> dict:
    """The parsed ASF of one subject (parsed once per process; tiny)."""
    return parse_asf(fetch(f"human_cmu_asfamc/subjects/{subject}/{subject}.asf", progress=False).read_text())


def load_cmu_asfamc(subjects=CMU_SUBJECTS, clips=None, fps: int = 30) -> CategorySet:
    """CMU Graphics Lab mocap, subjects 01-03 (ASF/AMC), forward kinematics of the 31-point Acclaim skeleton.

    Keypoints: the root (pelvis) position, then the end point of each of the 30 ASF bones, in ASF order
    (``meta['joint_names']``; point ``i`` is named after the bone that ends there). Metres
    (:func:`cmu_metres_per_unit`), +y up as recorded. Frames are subsampled from 120 fps to ``fps`` (every
    ``120 // fps``-th frame). ``clips``: AMC names such as ``"02_01"`` (default: every clip of ``subjects``).
    ``sequence`` = the clip (``"02_01"``), ``meta['subject']`` = ``"02"``. Edges: the ASF :hierarchy (each bone's
    end point to its parent bone's end point, the hip/spine roots to the root point).
    """
    if CMU_FPS % fps:
        raise ValueError(f"fps={fps}: must divide the capture rate {CMU_FPS}.")
    step = CMU_FPS // fps
    if clips is None:
        clips = [f"{s}_{k:02d}" for s in subjects for k in range(1, CMU_CLIPS[s] + 1)]
    pts, seq, subj, frame = [], [], [], []
    names = parents = None
    for clip in clips:
        s = clip.split("_")[0]
        asf_name = f"human_cmu_asfamc/subjects/{s}/{s}.asf"
        amc_name = f"human_cmu_asfamc/subjects/{s}/{clip}.amc"

        def build(asf_name=asf_name, amc_name=amc_name):
            asf = parse_asf(fetch(asf_name, progress=False).read_text())
            motion, numbers = parse_amc(fetch(amc_name, progress=False).read_text(), asf, step)
            P = asf_amc_positions(asf, motion, len(numbers)) * cmu_metres_per_unit(asf)
            return {"points": P.astype(np.float32), "frame": numbers}

        a = cached_arrays(f"cmu_asfamc_{clip}_step{step}", [asf_name, amc_name], build)
        asf = _cmu_skeleton(s)
        if names is None:
            names, parents = asf["names"], asf["parents"]
        elif asf["names"] != names or asf["parents"] != parents:
            raise ValueError(f"{asf_name}: bone names or hierarchy differ from the other subjects' skeletons.")
        pts.append(a["points"])
        seq += [clip] * len(a["points"])
        subj += [s] * len(a["points"])
        frame.append(a["frame"])
    P = np.concatenate(pts)
    return CategorySet(
        category="human_cmu31", rig="cmu_asf31", points3d=P, visible=np.ones(P.shape[:2], bool),
        edges=_tree_edges(parents), sequence=np.array(seq), units="m",
        source="CMU Graphics Lab Motion Capture Database, subjects 01-03 ASF/AMC (human_cmu_asfamc)",
        licence=_licence("human_cmu_asfamc/subjects/01/01.asf"),
        edges_rule="ASF :hierarchy (bone end point -> parent bone's end point; root point = pelvis)",
        meta={"joint_names": list(names), "parents": list(parents), "up_rule": "data +y (CMU ASF/AMC is y-up)",
              "fps": fps, "subject": np.array(subj), "frame": np.concatenate(frame)},
    )


# ================================================================================================ BVH (Bandai Namco)
def parse_bvh(text: str) -> dict:
    """A BVH file as plain data: ``names``, ``parents``, ``offsets (N, 3)``, ``channels`` (list of channel names per
    joint), ``motion (F, C)`` (the channel values, columns in joint order) and ``frame_time``. End Sites are skipped
    (they carry no channels; in the Bandai Namco files their offsets are zero)."""
    tok = text.split()
    names, parents, offsets, channels = [], [], [], []
    stack: list = []  # open blocks: joint indices, "end" for an End Site
    i = 0
    pending = None  # the joint whose block opens next; "end" for an End Site
    while i < len(tok):
        t = tok[i]
        if t in ("ROOT", "JOINT"):
            names.append(tok[i + 1])
            parents.append(stack[-1] if stack else -1)
            offsets.append(np.zeros(3))
            channels.append([])
            pending = len(names) - 1
            i += 2
        elif t == "End":
            pending = "end"
            i += 2
        elif t == "{":
            if pending is None:
                raise ValueError("BVH: a '{' that opens no joint or End Site.")
            stack.append(pending)
            pending = None
            i += 1
        elif t == "}":
            stack.pop()
            i += 1
        elif t == "OFFSET":
            if stack and stack[-1] != "end":
                offsets[stack[-1]] = np.array([float(v) for v in tok[i + 1:i + 4]])
            i += 4
        elif t == "CHANNELS":
            n = int(tok[i + 1])
            channels[stack[-1]] = tok[i + 2:i + 2 + n]
            i += 2 + n
        elif t == "MOTION":
            break
        elif t == "HIERARCHY":
            i += 1
        else:
            raise ValueError(f"BVH: unexpected token {t!r} in the hierarchy.")
    if i >= len(tok) or stack:
        raise ValueError("BVH: no MOTION section, or unbalanced braces in the hierarchy.")
    if tok[i + 1] != "Frames:" or tok[i + 3:i + 5] != ["Frame", "Time:"]:
        raise ValueError("BVH: the MOTION section must start with 'Frames: n' and 'Frame Time: t'.")
    n_frames, frame_time = int(tok[i + 2]), float(tok[i + 5])
    n_ch = sum(len(c) for c in channels)
    vals = np.array(tok[i + 6:], dtype=np.float64)
    if vals.size != n_frames * n_ch:
        raise ValueError(f"BVH: {vals.size} motion values; expected {n_frames} frames x {n_ch} channels.")
    return {"names": names, "parents": parents, "offsets": np.stack(offsets), "channels": channels,
            "motion": vals.reshape(n_frames, n_ch), "frame_time": frame_time}


def bvh_positions(bvh: dict, frames=slice(None), position_channels: str = "replace") -> np.ndarray:
    """Forward kinematics of a parsed BVH: joint positions ``(F, N, 3)`` in file units.

    A joint's local rotation is the product of its rotation channels in the listed order (``Zrotation Xrotation
    Yrotation`` -> ``Rz @ Rx @ Ry``, degrees). Its translation from the parent is its OFFSET, unless it has position
    channels: ``position_channels="replace"`` uses them *instead of* the OFFSET (the Bandai Namco files: every
    joint has 6 channels whose positions equal the OFFSET), ``"add"`` adds them to it (the reading that doubles
    every Bandai Namco bone; kept for the test that shows it)."""
    if position_channels not in ("replace", "add"):
        raise ValueError(f"position_channels={position_channels!r}: 'replace' or 'add'.")
    M = bvh["motion"][frames]
    F, N = len(M), len(bvh["names"])
    rot = np.empty((F, N, 3, 3))
    trans = np.broadcast_to(bvh["offsets"], (F, N, 3)).copy()
    col = 0
    for j, chans in enumerate(bvh["channels"]):
        axes, angles, pos = "", [], {}
        for c in chans:
            kind = c[1:].lower()
            if kind == "rotation":
                axes += c[0].lower()
                angles.append(np.deg2rad(M[:, col]))
            elif kind == "position":
                pos["xyz".index(c[0].lower())] = M[:, col]
            else:
                raise ValueError(f"BVH joint {bvh['names'][j]!r}: unknown channel {c!r}.")
            col += 1
        rot[:, j] = _euler(np.stack(angles, -1), axes) if axes else np.eye(3)
        for k, v in pos.items():
            trans[:, j, k] = v if position_channels == "replace" else trans[:, j, k] + v
    return _forward_kinematics(bvh["parents"], rot, trans, trans[:, 0])


BANDAI_FPS = 30


def _bandai_clips() -> list[str]:
    from .fetch import registry

    return sorted(n.rsplit("/", 1)[1][:-4] for n in registry()
                  if n.startswith("human_bandai_namco/data/") and n.endswith(".bvh"))


@lru_cache(maxsize=None)
def _bandai_labels() -> tuple[tuple[str, ...], tuple[str, ...]]:
    read = lambda n: tuple(ln.strip().removeprefix("dataset-1_")  # noqa: E731
                           for ln in fetch(f"human_bandai_namco/cfg/{n}", progress=False).read_text().splitlines()
                           if ln.strip())
    return read("content_label.txt"), read("style_label.txt")


def load_bandai_namco(clips=None, max_clips: int | None = None, fps: int = 10) -> CategorySet:
    """Bandai Namco Research motion dataset 1 (BVH, 30 fps): 21 joints in metres (the files are in cm), +y up.

    Keypoints: Hips, Spine, Chest, Neck, Head, Shoulder/UpperArm/LowerArm/Hand L and R, UpperLeg/LowerLeg/Foot/Toes
    L and R (file order, ``meta['joint_names']``). The file's ``joint_Root`` (a point on the floor, y = 0: at the
    origin in most clips, following the hips along z in 4 of them) takes part in the forward kinematics but is not
    a body point and is dropped; End Sites have zero offsets.
    Forward kinematics per :func:`bvh_positions` with position channels *replacing* the OFFSET (SOURCE.md).
    ``clips``: file stems such as ``"dataset-1_walk_normal_001"`` (default: all 174, sorted; ``max_clips`` keeps
    the first ones). Frames subsampled from 30 fps to ``fps``. ``sequence`` = the clip (file stem); ``meta``
    ``content`` / ``style`` / ``take`` per frame from the file name (checked against the clip's JSON label
    indices into ``cfg/``). The files do not say which of the 3 actors performed a clip.
    """
    if BANDAI_FPS % fps:
        raise ValueError(f"fps={fps}: must divide the capture rate {BANDAI_FPS}.")
    step = BANDAI_FPS // fps
    clips = _bandai_clips() if clips is None else list(clips)
    if max_clips is not None:
        clips = clips[:max_clips]
    contents, styles = _bandai_labels()
    pts, seq, meta_c, meta_s, meta_t, frame = [], [], [], [], [], []
    names = None
    for clip in clips:
        bvh_name, json_name = f"human_bandai_namco/data/{clip}.bvh", f"human_bandai_namco/data/{clip}.json"

        def build(bvh_name=bvh_name):
            bvh = parse_bvh(fetch(bvh_name, progress=False).read_text())
            P = bvh_positions(bvh, slice(None, None, step))
            if np.abs(P[:, 0, 1]).max() > 1e-3:  # joint_Root: a point on the floor (y = 0) under the body
                raise ValueError(f"{bvh_name}: joint_Root leaves the floor (|y| up to {np.abs(P[:, 0, 1]).max():.3g} "
                                 "cm); expected the ground projection of the hips.")
            return {"points": (P[:, 1:] * 0.01).astype(np.float32),
                    "frame": np.arange(len(bvh["motion"]))[::step],
                    "names": np.array(bvh["names"][1:]), "parents": np.array(bvh["parents"][1:]) - 1}

        a = cached_arrays(f"bandai_{clip}_step{step}", [bvh_name], build)
        if names is None:
            names, parents = [str(n) for n in a["names"]], [int(p) for p in a["parents"]]
            if parents[0] != -1 or names[0] != "Hips":
                raise ValueError(f"{bvh_name}: expected Hips as the only child of joint_Root.")
        elif [str(n) for n in a["names"]] != names or a["parents"].tolist() != parents:
            raise ValueError(f"{bvh_name}: its skeleton differs from the other clips'.")
        m = re.fullmatch(r"dataset-1_(.+)_(.+)_(\d+)", clip)
        if m is None:
            raise ValueError(f"{clip}: not dataset-1_<content>_<style>_<take>.")
        label = json.loads(fetch(json_name, progress=False).read_text())
        if (contents[label["content"]], styles[label["style"]]) != (m.group(1), m.group(2)):
            raise ValueError(f"{json_name}: labels {label} name {contents[label['content']]}/"
                             f"{styles[label['style']]}, but the file name says {m.group(1)}/{m.group(2)}.")
        n = len(a["points"])
        pts.append(a["points"])
        seq += [clip] * n
        meta_c += [m.group(1)] * n
        meta_s += [m.group(2)] * n
        meta_t += [m.group(3)] * n
        frame.append(a["frame"])
    P = np.concatenate(pts)
    return CategorySet(
        category="human_bandai21", rig="bandai21", points3d=P, visible=np.ones(P.shape[:2], bool),
        edges=_tree_edges(parents), sequence=np.array(seq), units="m",
        source="Bandai Namco Research Motiondataset-1 BVH (human_bandai_namco)",
        licence=_licence("human_bandai_namco/LICENSE"), edges_rule="BVH joint hierarchy (joint_Root dropped)",
        meta={"joint_names": names, "parents": parents, "up_rule": "data +y (BVH is y-up)", "fps": fps,
              "source_units": "cm (x 0.01 -> m)", "content": np.array(meta_c), "style": np.array(meta_s),
              "take": np.array(meta_t), "frame": np.concatenate(frame)},
    )


# ================================================================================================ DeepMimic
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
    rot[:, 0] = _quat_matrix(frames[:, 4:8], "wxyz")
    col = 8
    for j, t in enumerate(char["types"][1:], start=1):
        if t == "spherical":
            rot[:, j] = _quat_matrix(frames[:, col:col + 4], "wxyz")
        elif t == "revolute":
            rot[:, j] = _axis_rotation("z", frames[:, col])
        else:
            rot[:, j] = np.eye(3)
        col += _DEEPMIMIC_DOF[t]
    return _forward_kinematics(char["parents"], rot, char["attach"], frames[:, 1:4])


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
        points3d=P, visible=np.ones(P.shape[:2], bool), edges=_tree_edges(char["parents"]), sequence=seq,
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
        rot = _quat_matrix(m["rotation"][::step], "xyzw")
        P = _forward_kinematics(parents, rot, m["local_translation"], m["root_translation"][::step])
        pts.append(P @ Z_UP_TO_Y_UP)
        seq += [clip] * len(P)
        frame.append(np.arange(len(m["rotation"]))[::step])
        rate.append(np.full(len(P), m["fps"] / step))
    P = np.concatenate(pts)
    return CategorySet(
        category="human_amp15", rig="amp_humanoid15", points3d=P, visible=np.ones(P.shape[:2], bool),
        edges=_tree_edges(parents), sequence=np.array(seq), units="m",
        source="IsaacGymEnvs assets/amp/motions/amp_humanoid_*.npy (poselib SkeletonMotion, from CMU mocap)",
        licence=_licence("human_amp_isaacgym/assets/amp/motions/amp_humanoid_walk.npy"),
        edges_rule="poselib skeleton tree parent_indices",
        meta={"joint_names": names, "parents": parents, "up_rule": "source z-up: (x, y, z) -> (x, z, -y)",
              "fps": np.concatenate(rate), "frame": np.concatenate(frame)},
    )


# ================================================================================================ AVES bird model
BIRD_KEYPOINTS = ("left_eye", "right_eye", "forehead", "crown", "nape", "back", "throat", "breast", "bill_base",
                  "bill_tip", "left_foot", "left_shin", "right_foot", "right_shin", "tail_base", "tail_tip",
                  "left_wingtip", "right_wingtip")  # AVES keypoints_list.txt order
# the keypoints are regressed from the mesh, not joints of the model's tree: an anatomical tree over them
BIRD_PARENTS = (2, 2, -1, 2, 3, 4, 8, 6, 2, 8, 11, 7, 13, 7, 5, 14, 5, 5)


def _rodrigues(aa) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle vectors ``(..., 3)`` (radians)."""
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = aa / np.maximum(theta, 1e-12)
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 0] = -k[..., 2], k[..., 1], k[..., 2]
    K[..., 1, 2], K[..., 2, 0], K[..., 2, 1] = -k[..., 0], -k[..., 1], k[..., 0]
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def aves_pose(model: dict, pose, bone, beta) -> tuple[np.ndarray, np.ndarray]:
    """The AVES model's 18 keypoints ``(B, 18, 3)`` and its posed joints ``(B, J, 3)`` (model units) by linear blend
    skinning, in numpy.

    ``pose (B, J, 3)``: axis-angle per joint (joint 0 = global orientation); ``bone (B, J)``: per-joint scale of
    the offset from its parent (joint 0: 1); ``beta (B, K)``: standardised shape coefficients (the basis is
    ``Beta * Beta_sigma``). Joint ``j``'s transform is its parent's times ``[R_j | bone_j (J_j - J_parent)]``;
    a vertex moves by the skinning-weighted sum of ``T_j`` with the rest joint removed
    (``T_j [v; 1] - G_j J_j``); keypoints = ``vert2kpt @ vertices``. At zero pose, unit bones and zero beta the
    keypoints are those of the template and the joints are ``J``."""
    pose, bone, beta = (np.asarray(a, np.float64) for a in (pose, bone, beta))
    J, parents = model["J"], model["parents"]
    used = np.flatnonzero(np.any(model["vert2kpt"] != 0, axis=0))  # only the vertices the keypoints read
    W, reg = model["weights"][used], model["vert2kpt"][:, used]
    n = len(J)
    V = model["V"][used][None] + np.einsum("bk,kvc->bvc", beta, model["basis"][:, used])  # (B, V, 3)
    rel = np.concatenate([J[:1], J[1:] - J[parents[1:]]])  # (J, 3)
    R = _rodrigues(pose)  # (B, J, 3, 3)
    B = len(pose)
    G = np.empty((B, n, 3, 3))
    t = np.empty((B, n, 3))
    for j in range(n):
        off = rel[j] * bone[:, j, None]
        if parents[j] < 0:
            G[:, j], t[:, j] = R[:, j], off
        else:
            p = parents[j]
            G[:, j] = G[:, p] @ R[:, j]
            t[:, j] = t[:, p] + np.einsum("bxy,by->bx", G[:, p], off)
    t_skin = t - np.einsum("bjxy,jy->bjx", G, J)  # remove the rest joint: T_j @ [v - J_j; 1]
    A = np.einsum("vj,bjxy->bvxy", W, G)
    a = np.einsum("vj,bjx->bvx", W, t_skin)
    verts = np.einsum("bvxy,bvy->bvx", A, V) + a
    return np.einsum("kv,bvx->bkx", reg, verts), t


def aves_keypoints(model: dict, pose, bone, beta) -> np.ndarray:
    """The AVES model's 18 keypoints ``(B, 18, 3)`` (see :func:`aves_pose`)."""
    return aves_pose(model, pose, bone, beta)[0]


def aves_joint_rig(J, parents, tol: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The kept joints and the ``(E, 2)`` tree over them (indices into the kept list) of the AVES joint rig: a joint
    within ``tol`` model units (about 1 mm) of a lower-numbered joint at rest is one keypoint with it (AVES: 3, 5
    and 21 sit on 1, the roots of the tail, body and legs; 13 and 17 on 9, the roots of the neck and the wings)."""
    J = np.asarray(J, np.float64)
    owner = np.arange(len(J))
    for j in range(len(J)):
        near = np.flatnonzero(np.linalg.norm(J[:j] - J[j], axis=-1) < tol)
        if len(near):
            owner[j] = owner[near[0]]
    kept = np.flatnonzero(owner == np.arange(len(J)))
    index = {int(k): i for i, k in enumerate(kept)}
    edges = sorted({(index[int(owner[p])], index[j]) for j, p in enumerate(parents)
                    if p >= 0 and owner[j] == j})
    return kept, np.array(edges, dtype=np.int64).reshape(-1, 2)


def _gaussian_draws(rng, mean, cov, n: int, clip: float) -> np.ndarray:
    """``n`` draws of ``N(mean, cov)`` whose standardised coordinates are truncated to ``|z| <= clip`` (redrawn)."""
    w, U = np.linalg.eigh(np.asarray(cov, np.float64))
    L = U * np.sqrt(np.clip(w, 0, None))
    z = rng.standard_normal((n, len(w)))
    while np.any(bad := np.abs(z) > clip):
        z[bad] = rng.standard_normal(int(bad.sum()))
    return np.asarray(mean, np.float64) + z @ L.T


def _read_aves(model_raw: dict, prior_raw: dict) -> tuple[dict, dict]:
    def a(x):
        return np.asarray(x.numpy() if hasattr(x, "numpy") else x, np.float64)

    kin = a(model_raw["kintree_table"]).astype(int)
    parents = kin[0].copy()
    parents[0] = -1
    if np.any(parents[1:] >= np.arange(1, len(parents))) or np.any(parents[1:] < 0):
        raise ValueError("aves.pt: kintree_table parents are not in topological order.")
    model = {"V": a(model_raw["V"]), "J": a(model_raw["J"]), "parents": parents, "weights": a(model_raw["weights"]),
             "vert2kpt": a(model_raw["vert2kpt"]),
             "basis": a(model_raw["Beta"]) * a(model_raw["Beta_sigma"])[:, None, None]}
    key = {"p_m": "pose_mean", "p_cov": "pose_cov", "b_m": "bone_mean", "b_cov": "bone_cov"}
    prior = {k: a(prior_raw[k] if k in prior_raw else prior_raw[v]) for k, v in key.items()}
    n = len(parents)
    if model["vert2kpt"].shape[0] != len(BIRD_KEYPOINTS) or prior["p_m"].shape != (3 * (n - 1),) or \
            prior["b_m"].shape != (n - 1,):
        raise ValueError(f"aves model: {model['vert2kpt'].shape[0]} keypoints, {n} joints, pose prior "
                         f"{prior['p_m'].shape}, bone prior {prior['b_m'].shape}; expected 18 keypoints and "
                         f"{3 * (n - 1)} / {n - 1} prior dimensions.")
    return model, prior


def sample_birds(model: dict, prior: dict, n_frames: int, n_individuals: int, seed: int = 0, clip: float = 1.0,
                 max_ratio: float = 3.0) -> dict:
    """Seeded AVES samples: ``n_individuals`` shapes (15 standardised coefficients, each within ``clip`` sigma),
    each posed ``~n_frames / n_individuals`` times from the Gaussian pose and bone priors (within ``clip`` sigma,
    identity global orientation). A sample whose anatomical edge lengths leave ``[1 / max_ratio, max_ratio]``
    times those of the mean bird is drawn again. Returns ``points (F, 18, 3)`` and ``joints (F, J, 3)`` (model
    axes and units), ``individual (F,)``, ``beta (F, K)``, ``pose (F, J - 1, 3)`` and ``bone (F, J - 1)``."""
    rng = np.random.default_rng(seed)
    n = len(model["parents"])
    K = model["basis"].shape[0]
    edges = _tree_edges(BIRD_PARENTS)

    def lengths(P):
        return np.linalg.norm(P[:, edges[:, 0]] - P[:, edges[:, 1]], axis=-1)

    def kp(pose72, bone24, beta):
        B = len(pose72)
        pose = np.concatenate([np.zeros((B, 1, 3)), pose72.reshape(B, n - 1, 3)], 1)
        return aves_pose(model, pose, np.concatenate([np.ones((B, 1)), bone24], 1), beta)

    ref = lengths(kp(prior["p_m"][None], prior["b_m"][None], np.zeros((1, K)))[0])[0]
    counts = np.full(n_individuals, n_frames // n_individuals)
    counts[: n_frames % n_individuals] += 1
    pts, joints, poses, bones, ind, betas = [], [], [], [], [], []
    for i, c in enumerate(counts):
        for _ in range(100):
            beta = np.clip(rng.standard_normal(K), -clip, clip)
            rest = kp(prior["p_m"][None], prior["b_m"][None], beta[None])[0]
            r = lengths(rest)[0] / np.maximum(ref, 1e-12)
            if np.all((r > 1 / max_ratio) & (r < max_ratio)):
                break
        else:
            raise ValueError("sample_birds: no shape within max_ratio in 100 draws; raise max_ratio or lower clip.")
        got = [np.empty((0, len(BIRD_KEYPOINTS), 3)), np.empty((0, n, 3)), np.empty((0, 3 * (n - 1))),
               np.empty((0, n - 1))]
        for _ in range(100):
            if len(got[0]) >= c:
                break
            m = 2 * (c - len(got[0]))
            pose = _gaussian_draws(rng, prior["p_m"], prior["p_cov"], m, clip)
            bone = _gaussian_draws(rng, prior["b_m"], prior["b_cov"], m, clip)
            P, X = kp(pose, bone, np.repeat(beta[None], m, 0))
            r = lengths(P) / np.maximum(ref, 1e-12)
            ok = np.all((r > 1 / max_ratio) & (r < max_ratio), 1)
            got = [np.concatenate([g, x[ok]]) for g, x in zip(got, (P, X, pose, bone))]
        if len(got[0]) < c:
            raise ValueError("sample_birds: too many poses rejected; raise max_ratio or lower clip.")
        pts.append(got[0][:c])
        joints.append(got[1][:c])
        poses.append(got[2][:c].reshape(c, n - 1, 3))
        bones.append(got[3][:c])
        ind += [i] * c
        betas.append(np.repeat(beta[None], c, 0))
    return {"points": np.concatenate(pts), "joints": np.concatenate(joints), "individual": np.array(ind),
            "beta": np.concatenate(betas), "pose": np.concatenate(poses), "bone": np.concatenate(bones)}


def bird_up_rotation(points) -> np.ndarray:
    """Rows ``(forward, up, side)`` of a rotation that puts a bird (``(18, 3)`` keypoints, :data:`BIRD_KEYPOINTS`)
    upright: +y from the feet midpoint to the back, +x from the tail tip to the bill tip (made orthogonal to +y),
    +z = x cross y. Points turn with ``P @ R.T``."""
    P = np.asarray(points, np.float64)
    k = {n: i for i, n in enumerate(BIRD_KEYPOINTS)}
    up = P[k["back"]] - 0.5 * (P[k["left_foot"]] + P[k["right_foot"]])
    up /= np.linalg.norm(up)
    fwd = P[k["bill_tip"]] - P[k["tail_tip"]]
    fwd -= up * (fwd @ up)
    fwd /= np.linalg.norm(fwd)
    return np.stack([fwd, up, np.cross(fwd, up)])


def load_bird(n_frames: int = 2000, n_individuals: int = 40, seed: int = 0, clip: float = 1.0,
              rig: str = "keypoints") -> CategorySet:
    """Synthetic birds from the AVES parametric model (Wang et al. 2021): model units, +y up, one of two rigs:
    ``rig="keypoints"``: the 18 keypoints regressed from the mesh (``aves_bird18``); ``rig="joints"``: the model's
    25 joints with the near-coincident ones merged (:func:`aves_joint_rig`: ``aves_joints20``).

    Shapes: ``n_individuals`` draws of the 15 standardised shape coefficients (the 17-species shape space), each
    posed about ``n_frames / n_individuals`` times from the pose and bone-length priors fitted to real cowbirds
    (``models/pose_bone_prior.pth``), all within ``clip`` sigma; :func:`aves_pose` (linear blend skinning in
    numpy, no torch code runs beyond reading the tensors) gives keypoints and joints; see :func:`sample_birds`.
    Seeded: the same arguments give the same frames whatever the rig. ``sequence`` = the individual
    (``"bird007"``), so splits are by individual. Up: :func:`bird_up_rotation` of the mean bird's keypoints
    (``meta['up_rule']``, ``meta['up_rotation']``: points = model points ``@ R.T``). Edges: an anatomical tree over
    the keypoints (:data:`BIRD_PARENTS`: they are regressed from the mesh, so the joint tree does not apply), the
    kinematic tree over the joints. ``meta`` keeps each frame's ``pose (F, 24, 3)``, ``bone (F, 24)`` and ``beta``.
    """
    if rig not in ("keypoints", "joints"):
        raise ValueError(f"rig={rig!r}: expected 'keypoints' (18 regressed keypoints) or 'joints' (the model's joints).")
    model_name, prior_name = "bird_aves/models/aves.pt", "bird_aves/models/pose_bone_prior.pth"

    def read():
        import torch  # only to read the two tensor files (weights_only: no pickled code runs)

        raw_model = torch.load(fetch(model_name, progress=False), map_location="cpu", weights_only=True)
        raw_prior = torch.load(fetch(prior_name, progress=False), map_location="cpu", weights_only=True)
        return _read_aves(raw_model, raw_prior)

    def build():
        model, prior = read()
        s = sample_birds(model, prior, n_frames, n_individuals, seed, clip)
        K = model["basis"].shape[0]
        n = len(model["parents"])
        mean = aves_keypoints(model, np.concatenate([np.zeros(3), prior["p_m"]]).reshape(1, n, 3),
                              np.concatenate([[1.0], prior["b_m"]])[None], np.zeros((1, K)))[0]
        R = bird_up_rotation(mean)
        kept, edges = aves_joint_rig(model["J"], model["parents"])
        return {"points": (s["points"] @ R.T).astype(np.float32), "joints": (s["joints"] @ R.T).astype(np.float32),
                "individual": s["individual"], "beta": s["beta"].astype(np.float32),
                "pose": s["pose"].astype(np.float32), "bone": s["bone"].astype(np.float32), "up_rotation": R,
                "joint_kept": kept, "joint_edges": edges, "joint_parents": model["parents"]}

    a = cached_arrays(f"aves_birds_{n_frames}_{n_individuals}_{seed}_{clip}", [model_name, prior_name], build,
                      version=2)
    if rig == "keypoints":
        P, edges, name, names, parents = a["points"], _tree_edges(BIRD_PARENTS), "aves_bird18", list(BIRD_KEYPOINTS), \
            list(BIRD_PARENTS)
        rule = ("anatomical tree over the 18 keypoints (BIRD_PARENTS): eyes/bill/crown to the forehead, nape, "
                "back, tail and wing tips off the back, throat-breast, shins off the breast")
    else:
        kept, edges = a["joint_kept"], a["joint_edges"]
        P, name, names = a["joints"][:, kept], f"aves_joints{len(kept)}", [f"joint{k}" for k in kept]
        parents = np.full(len(kept), -1)
        parents[edges[:, 1]] = edges[:, 0]
        parents = parents.tolist()
        rule = ("AVES kinematic tree (kintree_table) over the joints, joints within 0.1 units of a lower-numbered "
                "one at rest merged into it")
    return CategorySet(
        category="bird", rig=name, points3d=P, visible=np.ones(P.shape[:2], bool),
        edges=edges, sequence=np.array([f"bird{i:03d}" for i in a["individual"]]),
        units="arbitrary", source="AVES parametric bird model (yufu-wang/aves models/aves.pt + pose_bone_prior.pth)",
        licence=_licence(model_name), synthetic=True, edges_rule=rule,
        meta={"joint_names": names, "parents": parents,
              "up_rule": "mean bird: feet midpoint -> back = +y, tail tip -> bill tip = +x",
              "up_rotation": a["up_rotation"].tolist(), "individual": a["individual"], "beta": a["beta"],
              "pose": a["pose"], "bone": a["bone"], "seed": seed},
    )
