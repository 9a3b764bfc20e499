"""Loaders of the open data (``../shared/data/open`` mirror or downloaded) into :class:`CategorySet`.

``load(name)`` with a name of :data:`OPEN_SETS`. Every loader fetches its files through :func:`lfm.data.fetch`
(so checksums are verified), converts to the schema, and states units, licence and how the edges were made.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np

from .fetch import fetch, registry
from .schema import CategorySet, knn_edges, skeleton_from_motion

__all__ = ["load", "OPEN_SETS", "load_nrsfm", "load_dog", "load_chairs", "load_hands", "load_mediapipe_face"]

# NRSfM benchmark sequences -> benchmark category (the four CMU sequences share one 41-marker rig)
NRSFM = {
    "drink": "human41", "pickup": "human41", "stretch": "human41", "yoga": "human41",
    "dance": "dance", "walking": "walking", "face": "face", "jaws": "shark",
}
DOG_CLIPS = ("pace", "trot", "run00", "run01", "run02", "run04", "turn00", "walk00", "walk01", "walk02", "walk03",
             "walk04", "walk05", "walk06", "walk09")


def _licence(name: str) -> str:
    return registry()[name]["licence"]


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


def load_chairs() -> CategorySet:
    """KeypointNet chairs: one rigid shape per ShapeNet model, 8-17 keypoints out of 21 semantic ids.

    Stored in 21 slots (slot = semantic id, ``visible`` = annotated on this chair). Edges: 3 nearest neighbours
    on the mean position of each semantic id over all chairs (no skeleton exists for furniture). ``sequence`` is
    the model id (splits are by instance). A semantic id annotated twice on one chair keeps its first point.
    """
    name = "keypointnet_chair/chair.json"
    models = json.loads(fetch(name, progress=False).read_text())
    n_ids = 1 + max(kp["semantic_id"] for m in models for kp in m["keypoints"])
    P = np.zeros((len(models), n_ids, 3))
    V = np.zeros((len(models), n_ids), bool)
    duplicates = 0
    for f, m in enumerate(models):
        for kp in m["keypoints"]:
            sid = kp["semantic_id"]
            if V[f, sid]:
                duplicates += 1
                continue
            P[f, sid], V[f, sid] = kp["xyz"], True
    mean = (P * V[..., None]).sum(0) / np.maximum(V.sum(0), 1)[:, None]
    return CategorySet(
        category="chair", rig="keypointnet_chair21", points3d=P, visible=V,
        edges=knn_edges(mean, k=3, valid=V.any(0)), sequence=np.array([m["model_id"] for m in models]),
        units="normalised", source="KeypointNet (You et al. 2020), annotations/chair.json", licence=_licence(name),
        edges_rule="3-NN on the mean shape of the semantic ids",
        meta={"semantic_id": np.arange(n_ids), "duplicate_ids_dropped": duplicates},
    )


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


def load_mediapipe_face() -> CategorySet:
    """The MediaPipe canonical face (468 FaceMesh landmarks + 10 iris points), ONE template shape, cm-like units.

    A single mean shape with no variation: a category template or an OOD test input, not training data.
    Edges: 4 nearest neighbours on the template (the FaceMesh triangles were not mirrored).
    """
    name = "mediapipe_face/face_model_with_iris_vertices.obj"
    lines = fetch(name, progress=False).read_text().splitlines()
    v = np.array([[float(t) for t in ln.split()[1:4]] for ln in lines if ln.startswith("v ")])
    if v.shape != (478, 3):
        raise ValueError(f"{name}: {v.shape[0]} vertices; expected 478 (468 FaceMesh + 10 iris).")
    return CategorySet(
        category="face_template", rig="mediapipe_face478", points3d=v[None], visible=np.ones((1, 478), bool),
        edges=knn_edges(v, k=4), sequence=np.array(["template"]), units="cm", source="MediaPipe canonical face",
        licence=_licence(name), edges_rule="4-NN on the template", meta={"iris": np.arange(468, 478)},
    )


OPEN_SETS = {
    **{f"nrsfm_{s}": (lambda s=s: load_nrsfm(s)) for s in NRSFM},
    "dog": load_dog,
    "chair": load_chairs,
    "hand_icvl": lambda: load_hands("icvl"),
    "hand_nyu": lambda: load_hands("nyu"),
    "face_template": load_mediapipe_face,
}


def load(name: str) -> CategorySet:
    """Load one open set by name (see :data:`OPEN_SETS`)."""
    if name not in OPEN_SETS:
        raise ValueError(f"unknown open data set {name!r}; known: {sorted(OPEN_SETS)}.")
    return OPEN_SETS[name]()
