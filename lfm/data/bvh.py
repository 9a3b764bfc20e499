"""BVH motion files into :class:`CategorySet`: the parser, forward kinematics of the joint tree
(:func:`bvh_positions`) and the Bandai Namco Research motion dataset 1 (:func:`load_bandai_namco`; +y up,
metres, the BVH hierarchy as edges).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

import numpy as np

from .fetch import cached_arrays, fetch, licence as _licence
from .forward_kinematics import euler, forward_kinematics, tree_edges
from .schema import CategorySet

__all__ = ["parse_bvh", "bvh_positions", "load_bandai_namco"]

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
        rot[:, j] = euler(np.stack(angles, -1), axes) if axes else np.eye(3)
        for k, v in pos.items():
            trans[:, j, k] = v if position_channels == "replace" else trans[:, j, k] + v
    return forward_kinematics(bvh["parents"], rot, trans, trans[:, 0])


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
        edges=tree_edges(parents), sequence=np.array(seq), units="m",
        source="Bandai Namco Research Motiondataset-1 BVH (human_bandai_namco)",
        licence=_licence("human_bandai_namco/LICENSE"), edges_rule="BVH joint hierarchy (joint_Root dropped)",
        meta={"joint_names": names, "parents": parents, "up_rule": "data +y (BVH is y-up)", "fps": fps,
              "source_units": "cm (x 0.01 -> m)", "content": np.array(meta_c), "style": np.array(meta_s),
              "take": np.array(meta_t), "frame": np.concatenate(frame)},
    )
