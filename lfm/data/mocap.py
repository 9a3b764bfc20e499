"""Motion capture of bodies (3D joint or marker positions over time) into :class:`CategorySet`: the NRSfM benchmark
sequences (CMU humans, dance, walking, face, the synthetic shark) and the AI4Animation dog.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .fetch import fetch, licence as _licence
from .schema import CategorySet, skeleton_from_motion

__all__ = ["NRSFM", "DOG_CLIPS", "load_nrsfm", "load_dog"]

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
