"""Loaders for the paper's datasets, which need registration and so cannot ship: users point them at their files.

Each loader reads the dataset's common distribution format into :class:`CategorySet` and is tested on the real
format fixtures in ``../shared/data/open/mmpose_format_samples``. A missing file raises
:class:`~lfm.data.DataUnavailableError` saying how to obtain the dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .fetch import DataUnavailableError
from .schema import CategorySet

__all__ = ["load_h36m_npz", "load_h3wb_npz", "H36M_EDGES", "WHOLEBODY_EDGES", "HOW_TO_OBTAIN"]

HOW_TO_OBTAIN = {
    "human36m": "register at vision.imar.ro/human3.6m, then build the 17-joint npz (mmpose 'part/S' format) with "
                "mmpose's tools/dataset_converters/preprocess_h36m.py",
    "mpi_inf_3dhp": "request access at vcai.mpi-inf.mpg.de/3dhp-dataset, then convert with mmpose's "
                    "tools/dataset_converters/preprocess_mpi_inf_3dhp.py",
    "h3wb": "follow github.com/wholebody3d/wholebody3d (H3WB annotations, MIT) and download the npz files it names; "
            "the images need the Human3.6M licence",
}

# Human3.6M 17 joints (pelvis, R hip/knee/ankle, L hip/knee/ankle, spine, thorax, neck/nose, head, L shoulder/elbow/
# wrist, R shoulder/elbow/wrist): the usual parent list
_H36M_PARENTS = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15]
H36M_EDGES = [(p, j) for j, p in enumerate(_H36M_PARENTS) if p >= 0]


def _wholebody_edges() -> list[tuple[int, int]]:
    """COCO-WholeBody 133: COCO body, feet, the 68-point face contours (iBUG layout), two 21-joint hands."""
    body = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
            (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
    feet = [(15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22)]
    f = 23  # face 23..90 (68 points)
    chains = [range(0, 17), range(17, 22), range(22, 27), range(27, 31), range(31, 36)]
    loops = [range(36, 42), range(42, 48), range(48, 60), range(60, 68)]
    face = [(f + a, f + b) for c in chains for a, b in zip(list(c)[:-1], list(c)[1:])]
    face += [(f + a, f + b) for c in loops for a, b in zip(c, list(c)[1:] + [c[0]])]
    hands = []
    for root, wrist in ((91, 9), (112, 10)):  # hand root 91 / 112 joins the body wrist 9 / 10
        hands.append((wrist, root))
        for finger in range(5):
            joints = [root] + [root + 1 + 4 * finger + k for k in range(4)]
            hands += list(zip(joints[:-1], joints[1:]))
    return body + feet + face + hands


WHOLEBODY_EDGES = _wholebody_edges()


def _need(path, dataset: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataUnavailableError(f"{dataset} not available: {p} does not exist. To obtain it: {HOW_TO_OBTAIN[dataset]}.")
    return p


def load_h36m_npz(path, dataset: str = "human36m") -> CategorySet:
    """A 17-joint npz in mmpose's body3d format (Human3.6M or MPI-INF-3DHP): ``S (F, 17, 4)`` camera-frame 3D in
    metres + visibility, ``part (F, 17, 3)`` 2D pixels + visibility, ``imgname (F,)``. 3D is returned in mm; the
    real 2D is kept; the sequence id is the image folder (subject, action, camera)."""
    p = _need(path, dataset)
    d = np.load(p)
    missing = {"S", "part", "imgname"} - set(d.files)
    if missing:
        raise ValueError(f"{p}: keys {sorted(missing)} missing; expected mmpose body3d npz keys S, part, imgname.")
    S, part, names = d["S"], d["part"], d["imgname"]
    if S.shape[1:] != (17, 4) or part.shape[1:] != (17, 3):
        raise ValueError(f"{p}: S {S.shape} and part {part.shape}; expected (F, 17, 4) and (F, 17, 3).")
    seq = np.array([str(n).split("/")[-2] if "/" in str(n) else str(n).rsplit("_", 1)[0] for n in names])
    return CategorySet(
        category=dataset, rig="h36m17", points3d=1000.0 * S[..., :3], visible=(S[..., 3] > 0) & (part[..., 2] > 0),
        edges=np.array(H36M_EDGES), sequence=seq, units="mm", source=f"{dataset} npz (mmpose body3d) {p.name}",
        licence="dataset licence of the user's copy (registration)", edges_rule="Human3.6M 17-joint skeleton",
        points2d=part[..., :2], camera={"frame": "points3d is camera-frame (per image)"},
        meta={"image": np.asarray(names).astype(str)},
    )


def load_h3wb_npz(path) -> CategorySet:
    """H3WB in the npz format its authors recommend: ``train_data[subject][action]`` holds ``global_3d`` and, per
    camera id, ``camera_3d (1, 133, 3)`` and ``pose_2d (1, 133, 2)``. One view per (subject, action, camera),
    camera-frame 3D in mm, real 2D in pixels, COCO-WholeBody skeleton; sequence = subject/action."""
    p = _need(path, "h3wb")
    d = np.load(p, allow_pickle=True)
    if "train_data" not in d.files:
        raise ValueError(f"{p}: no 'train_data' key; expected the H3WB npz layout (train_data, metadata).")
    data = d["train_data"].item()
    pts3d, pts2d, seq, cams = [], [], [], []
    for subject in sorted(data):
        for action in sorted(data[subject]):
            entry = data[subject][action]
            for cam in sorted(k for k in entry if isinstance(entry[k], dict)):
                c3 = np.asarray(entry[cam]["camera_3d"]).reshape(-1, 133, 3)
                c2 = np.asarray(entry[cam]["pose_2d"]).reshape(-1, 133, 2)
                pts3d.append(c3)
                pts2d.append(c2)
                seq += [f"{subject}/{action}"] * len(c3)
                cams += [cam] * len(c3)
    if not pts3d:
        raise ValueError(f"{p}: no camera views found under train_data[subject][action][camera_id].")
    P = np.concatenate(pts3d)
    return CategorySet(
        category="h3wb", rig="coco_wholebody133", points3d=P, visible=np.ones(P.shape[:2], bool),
        edges=np.array(WHOLEBODY_EDGES), sequence=np.array(seq), units="mm", source=f"H3WB npz {p.name}",
        licence="H3WB annotations MIT; Human3.6M images under its EULA", edges_rule="COCO-WholeBody skeleton",
        points2d=np.concatenate(pts2d), camera={"frame": "points3d is camera-frame (per view)"},
        meta={"camera": np.array(cams)},
    )
