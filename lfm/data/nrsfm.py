"""The NRSfM benchmark sequences (3D marker positions over time, ``*_rearranged.mat``) into :class:`CategorySet`:
the four CMU human sequences (one 41-marker rig), dance, walking, face and the synthetic shark (``jaws``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .fetch import fetch, licence as _licence
from .schema import CategorySet, skeleton_from_motion

__all__ = ["NRSFM", "load_nrsfm"]

# NRSfM benchmark sequences -> benchmark category (the four CMU sequences share one 41-marker rig)
NRSFM = {
    "drink": "human41", "pickup": "human41", "stretch": "human41", "yoga": "human41",
    "dance": "dance", "walking": "walking", "face": "face", "jaws": "shark",
}


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
