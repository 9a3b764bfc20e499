"""The AI4Animation / MANN dog motion capture (27 joint positions per frame, ``dog_*_joint_pos.txt``) into
:class:`CategorySet`.
"""

from __future__ import annotations

import numpy as np

from .fetch import fetch, licence as _licence
from .schema import CategorySet, skeleton_from_motion

__all__ = ["DOG_CLIPS", "load_dog"]

DOG_CLIPS = ("pace", "trot", "run00", "run01", "run02", "run04", "turn00", "walk00", "walk01", "walk02", "walk03",
             "walk04", "walk05", "walk06", "walk09")


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
