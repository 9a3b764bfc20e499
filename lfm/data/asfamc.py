"""CMU Graphics Lab motion capture in the Acclaim format (ASF skeleton + AMC motion) into :class:`CategorySet`:
parsers, forward kinematics of the bone tree (:func:`asf_amc_positions`) and the loader
(:func:`load_cmu_asfamc`; +y up as recorded, metres, the ASF hierarchy as edges).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .fetch import cached_arrays, fetch, licence as _licence
from .forward_kinematics import euler, forward_kinematics, tree_edges
from .schema import CategorySet

__all__ = ["CMU_SUBJECTS", "CMU_CLIPS", "parse_asf", "parse_amc", "asf_amc_positions", "cmu_metres_per_unit",
           "load_cmu_asfamc"]

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
        C = euler(np.deg2rad(asf["axis"][j])[::-1], asf["axis_order"][j][::-1].lower())
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
            M = euler(np.stack(rot_vals[::-1], -1), rot_axes[::-1])  # first listed channel applied first
        else:
            M = np.broadcast_to(np.eye(3), (n_frames, 3, 3))
        local[:, j] = C @ M @ C.T
        if j:
            trans[:, j] = asf["length"][j] * asf["direction"][j]
    # unlike a joint-based tree, a bone's offset turns with the bone's own rotation
    return forward_kinematics(parents, local, trans, root_pos, bone_offsets=True)


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
        edges=tree_edges(parents), sequence=np.array(seq), units="m",
        source="CMU Graphics Lab Motion Capture Database, subjects 01-03 ASF/AMC (human_cmu_asfamc)",
        licence=_licence("human_cmu_asfamc/subjects/01/01.asf"),
        edges_rule="ASF :hierarchy (bone end point -> parent bone's end point; root point = pelvis)",
        meta={"joint_names": list(names), "parents": list(parents), "up_rule": "data +y (CMU ASF/AMC is y-up)",
              "fps": fps, "subject": np.array(subj), "frame": np.concatenate(frame)},
    )
