"""Static shapes (one rigid 3D keypoint set per instance) into :class:`CategorySet`: KeypointNet chairs and the
12 further KeypointNet object categories, and the MediaPipe canonical face template.
"""

from __future__ import annotations

import json

import numpy as np

from .fetch import fetch, licence as _licence
from .schema import CategorySet, knn_edges

__all__ = ["KEYPOINTNET_OBJECTS", "load_keypointnet", "load_chairs", "load_mediapipe_face"]

# the KeypointNet categories of keypointnet_objects/ (SOURCE.md): category -> semantic ids (slots)
KEYPOINTNET_OBJECTS = {"bathtub": 24, "bed": 20, "bottle": 18, "cap": 6, "guitar": 9, "helmet": 9, "knife": 6,
                       "laptop": 6, "motorcycle": 14, "skateboard": 10, "table": 12, "vessel": 24}


def _connect(edges: np.ndarray, X: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``edges`` plus, while the valid keypoints fall into several components, the shortest edge between the
    component of the first valid keypoint and the rest (a kNN graph of a clustered shape can split)."""
    ok = np.flatnonzero(valid)
    edges = [tuple(e) for e in edges.tolist()]
    while True:
        comp = {int(ok[0])}
        grew = True
        while grew:
            grew = False
            for a, b in edges:
                if (a in comp) != (b in comp):
                    comp |= {a, b}
                    grew = True
        rest = [i for i in ok if i not in comp]
        if not rest:
            return np.array(sorted(edges), dtype=np.int64).reshape(-1, 2)
        inside = sorted(comp)
        d = np.linalg.norm(X[inside][:, None] - X[rest][None], axis=-1)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        edges.append((min(inside[i], rest[j]), max(inside[i], rest[j])))


def _read_keypointnet(name: str) -> list:
    """The models of one KeypointNet JSON file, checked: a one-line error naming the file otherwise."""
    path = fetch(name, progress=False)
    try:
        models = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{name}: not valid JSON ({e}); the file is damaged or truncated: delete {path} and fetch "
                         "it again.") from None
    try:
        for m in models:
            str(m["model_id"])
            for kp in m["keypoints"]:
                if int(kp["semantic_id"]) < 0 or len(kp["xyz"]) != 3:
                    raise ValueError
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ValueError(f"{name}: not a KeypointNet annotation file (a list of models with model_id and keypoints "
                         "[{semantic_id, xyz}]); fetch it again.") from None
    if not models:
        raise ValueError(f"{name}: holds no models; fetch it again.")
    return models


def load_keypointnet(category: str) -> CategorySet:
    """One KeypointNet category (You et al. 2020): one rigid shape per ShapeNet model, a varying subset of the
    category's semantic keypoint ids on each.

    Stored in slots (slot = semantic id, ``visible`` = annotated on this model); rig ``keypointnet_<category><ids>``.
    Units: ShapeNetCore.v2's normalised model frame (unit bounding-box diagonal), +y up as in ShapeNet (unchanged).
    Edges: 3 nearest neighbours on the mean position of each semantic id over all models, plus the shortest edges
    that join its components where the 3-NN graph splits (no skeleton exists for objects). ``sequence`` is the
    model id (splits are by instance). A semantic id annotated twice on one model keeps its first point.
    """
    if category == "chair":
        name, source = "keypointnet_chair/chair.json", "KeypointNet (You et al. 2020), annotations/chair.json"
    elif category in KEYPOINTNET_OBJECTS:
        name = f"keypointnet_objects/{category}.json"
        source = f"KeypointNet (You et al. 2020), {category}.json of the KeypointNet homepage"
    else:
        raise ValueError(f"unknown KeypointNet category {category!r}; known: {['chair', *KEYPOINTNET_OBJECTS]}.")
    models = _read_keypointnet(name)
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
    valid = V.any(0)
    edges = _connect(knn_edges(mean, k=3, valid=valid), mean, valid)
    return CategorySet(
        category=category, rig=f"keypointnet_{category}{n_ids}", points3d=P, visible=V, edges=edges,
        sequence=np.array([m["model_id"] for m in models]), units="normalised", source=source,
        licence=_licence(name), edges_rule="3-NN on the mean shape of the semantic ids (components joined by their "
                                           "shortest edges)",
        meta={"semantic_id": np.arange(n_ids), "duplicate_ids_dropped": duplicates,
              "up_rule": "ShapeNet +y up (unchanged); the front faces -z"},
    )


def load_chairs() -> CategorySet:
    """KeypointNet chairs (:func:`load_keypointnet` of ``"chair"``): 8-17 keypoints out of 21 semantic ids."""
    return load_keypointnet("chair")
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
