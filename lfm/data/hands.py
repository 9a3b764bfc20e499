"""Depth-camera hands (ICVL 16 joints, NYU 14 joints) into :class:`CategorySet`: camera-frame 3D from (u, v, depth)
and the upstream intrinsics, with the real 2D kept beside it.
"""

from __future__ import annotations

import numpy as np

from .fetch import fetch, licence as _licence
from .schema import CategorySet

__all__ = ["HANDS", "load_hands"]


# Hands: (u, v, depth) per joint with the upstream evaluation intrinsics; anatomical skeletons
HANDS = {
    "icvl": {"n": 16, "K": (240.99, 240.96, 160.0, 120.0), "edges": [  # palm 0; thumb, index, middle, ring, little
        (0, 1), (1, 2), (2, 3), (0, 4), (4, 5), (5, 6), (0, 7), (7, 8), (8, 9), (0, 10), (10, 11), (11, 12),
        (0, 13), (13, 14), (14, 15)]},
    "nyu": {"n": 14, "K": (588.03, -587.07, 320.0, 240.0), "edges": [  # tip-mid per finger, thumb tip-mid-root,
        (0, 1), (1, 13), (2, 3), (3, 13), (4, 5), (5, 13), (6, 7), (7, 13),  # wrist 11, 12, palm centre 13
        (8, 9), (9, 10), (10, 13), (11, 13), (12, 13)]},
}


def load_hands(dataset: str) -> CategorySet:
    """ICVL (16 joints) or NYU (14 joints) test-set hands: real depth-camera 2D-3D pairs, right hand, mm.

    ``points3d`` is camera-frame xyz from (u, v, depth) and the upstream intrinsics; ``points2d`` is the real
    (u, v) in pixels. Sequences: ICVL's two test sequences (from the image list); NYU's list names one camera
    only, so every NYU frame is one sequence (the benchmark splits it by time).
    """
    if dataset not in HANDS:
        raise ValueError(f"unknown hand dataset {dataset!r}; known: {sorted(HANDS)}.")
    spec = HANDS[dataset]
    name = f"hand_icvl_nyu_depth_gt/{dataset}_test_groundtruth_label.txt"
    raw = np.loadtxt(fetch(name, progress=False))
    if raw.ndim != 2 or raw.shape[1] != 3 * spec["n"]:
        raise ValueError(f"{name}: {raw.shape} values; expected one line of {3 * spec['n']} numbers per frame.")
    uvd = raw.reshape(len(raw), spec["n"], 3)
    fx, fy, cx, cy = spec["K"]
    xyz = np.stack([(uvd[..., 0] - cx) * uvd[..., 2] / fx, (uvd[..., 1] - cy) * uvd[..., 2] / fy, uvd[..., 2]], -1)
    images = fetch(f"hand_icvl_nyu_depth_gt/{dataset}_test_list.txt", progress=False).read_text().split()
    if len(images) != len(uvd):
        raise ValueError(f"{dataset}: {len(images)} image names for {len(uvd)} label lines; the files do not match.")
    seq = [im.split("/")[0] if dataset == "icvl" else "test" for im in images]
    return CategorySet(
        category=f"hand_{dataset}", rig=f"{dataset}_hand{spec['n']}", points3d=xyz,
        visible=np.ones(uvd.shape[:2], bool), edges=np.array(spec["edges"]), sequence=np.array(seq), units="mm",
        source=f"{dataset.upper()} hand test set GT via awesome-hand-pose-estimation", licence=_licence(name),
        edges_rule="hand anatomy (upstream joint order)", points2d=uvd[..., :2],
        camera={"model": "pinhole", "fx": fx, "fy": fy, "cx": cx, "cy": cy, "frame": "points3d is camera-frame"},
        meta={"image": np.array(images)},
    )
