"""Static shapes (one rigid 3D keypoint set per instance) into :class:`CategorySet`: KeypointNet chairs and the
MediaPipe canonical face template.
"""

from __future__ import annotations

import json

import numpy as np

from .fetch import fetch, licence as _licence
from .schema import CategorySet, knn_edges

__all__ = ["load_chairs", "load_mediapipe_face"]


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
