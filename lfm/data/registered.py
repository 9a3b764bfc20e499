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

__all__ = ["load_h36m_npz", "load_h3wb_npz", "load_panoptic", "load_interhand", "load_ubody3d", "load_demo_pickle",
           "H36M_EDGES", "WHOLEBODY_EDGES", "PANOPTIC19_EDGES", "INTERHAND42_EDGES", "HOW_TO_OBTAIN"]

HOW_TO_OBTAIN = {
    "human36m": "register at vision.imar.ro/human3.6m, then build the 17-joint npz (mmpose 'part/S' format) with "
                "mmpose's tools/dataset_converters/preprocess_h36m.py",
    "mpi_inf_3dhp": "request access at vcai.mpi-inf.mpg.de/3dhp-dataset, then convert with mmpose's "
                    "tools/dataset_converters/preprocess_mpi_inf_3dhp.py",
    "panoptic": "download sequences with the CMU Panoptic toolbox (github.com/CMU-Perceptual-Computing-Lab/"
                "panoptic-toolbox, getData.sh); non-commercial research use",
    "interhand": "download InterHand2.6M annotations from mks0601.github.io/InterHand2.6M (CC BY-NC 4.0)",
    "ubody3d": "request UBody from github.com/IDEA-Research/OSX and build the 3D json with mmpose's "
               "tools/dataset_converters/ubody_smplx_to_coco.py",
    "demo": "run the official 3D-LFM demo (github.com/mosamdabhi/3dlfm) or lfm's 03_evaluate (predictions/*.pkl)",
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


# CMU Panoptic coco19: neck, nose, body centre, l shoulder/elbow/wrist, l hip/knee/ankle, r shoulder/elbow/wrist,
# r hip/knee/ankle, l eye, l ear, r eye, r ear (the toolbox's joint order and bone list)
PANOPTIC19_EDGES = [(0, 1), (0, 2), (0, 3), (3, 4), (4, 5), (2, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
                    (2, 12), (12, 13), (13, 14), (1, 15), (15, 16), (1, 17), (17, 18)]


def _panoptic_calibration(path, camera: str) -> dict:
    import json

    cal = json.loads(Path(path).read_text())
    for c in cal.get("cameras", []):
        if c["name"] == camera:
            as_array = lambda v: np.array(json.loads(v) if isinstance(v, str) else v, float)  # noqa: E731
            return {"K": as_array(c["K"]), "R": as_array(c["R"]), "t": as_array(c["t"]).reshape(3)}
    raise ValueError(f"{path}: no camera named {camera!r}; names look like '00_00' (HD) or '01_01' (VGA).")


def load_panoptic(scene_files, calibration=None, camera: str = "00_00", min_conf: float = 0.1) -> CategorySet:
    """CMU Panoptic ``hdPose3d_stage1_coco19/body3DScene_*.json`` files: one frame per body (19 joints, cm, world
    frame; a joint with confidence below ``min_conf`` is invisible). With ``calibration`` (the sequence's
    ``calibration_<seq>.json``) the bodies are moved into ``camera``'s frame and its pinhole 2D is attached
    (lens distortion ignored). ``sequence`` = the sequence folder name."""
    import json

    files = [scene_files] if isinstance(scene_files, (str, Path)) else list(scene_files)
    if not files:
        raise ValueError("load_panoptic needs at least one body3DScene_*.json file.")
    pts, conf, seq, ids = [], [], [], []
    for f in files:
        p = _need(f, "panoptic")
        d = json.loads(p.read_text())
        if "bodies" not in d:
            raise ValueError(f"{p}: no 'bodies' list; expected a Panoptic body3DScene json.")
        for b in d["bodies"]:
            j = np.asarray(b["joints19"], float).reshape(-1, 4)
            if j.shape != (19, 4):
                raise ValueError(f"{p}: body {b.get('id')} has {j.size} numbers; expected 76 (19 x (x, y, z, conf)).")
            pts.append(j[:, :3])
            conf.append(j[:, 3])
            seq.append(p.parent.parent.name)
            ids.append(f"{p.stem}/{b.get('id')}")
    P, C = np.stack(pts), np.stack(conf)
    points2d, cam_info = None, None
    if calibration is not None:
        cam = _panoptic_calibration(_need(calibration, "panoptic"), camera)
        P = P @ cam["R"].T + cam["t"]
        uvw = P @ cam["K"].T
        points2d = uvw[..., :2] / uvw[..., 2:]
        cam_info = {"model": "pinhole", "camera": camera, "K": cam["K"].tolist(), "frame": "points3d is camera-frame"}
    return CategorySet(
        category="panoptic", rig="panoptic_coco19", points3d=P, visible=C >= min_conf, edges=np.array(PANOPTIC19_EDGES),
        sequence=np.array(seq), units="cm", source="CMU Panoptic body3DScene json",
        licence="CMU Panoptic: non-commercial research", edges_rule="Panoptic coco19 skeleton", points2d=points2d,
        camera=cam_info, meta={"body": np.array(ids)},
    )


def _interhand_edges() -> list[tuple[int, int]]:
    edges = []
    for base in (0, 21):  # right hand 0-20, left hand 21-41; per finger tip..root (4 joints), wrist last
        wrist = base + 20
        for finger in range(5):
            chain = [base + 4 * finger + k for k in range(4)] + [wrist]
            edges += list(zip(chain[:-1], chain[1:]))
    return edges


INTERHAND42_EDGES = _interhand_edges()


def load_interhand(joint_3d_json, camera_json=None, data_json=None) -> CategorySet:
    """InterHand2.6M: ``*_joint_3d.json`` (capture -> frame -> ``world_coord (42, 3)`` mm, ``joint_valid``,
    ``hand_type``), 42 joints (right 0-20, left 21-41; per finger tip to root, wrist last). With ``camera_json``
    and ``data_json`` every image of ``data_json`` becomes one view: 3D in that camera's frame
    (``camrot (X - campos)``) and its pinhole 2D. ``sequence`` = capture id."""
    import json

    d = json.loads(_need(joint_3d_json, "interhand").read_text())
    frames = {}
    for cap, per in d.items():
        for fr, e in per.items():
            frames[(str(cap), str(fr))] = (np.asarray(e["world_coord"], float), np.asarray(e["joint_valid"], bool).reshape(-1),
                                           e.get("hand_type", ""))
    if not frames:
        raise ValueError(f"{joint_3d_json}: no capture/frame entries; expected InterHand2.6M joint_3d json.")
    common = dict(category="interhand", rig="interhand42", edges=np.array(INTERHAND42_EDGES), units="mm",
                  source="InterHand2.6M json", licence="InterHand2.6M: CC BY-NC 4.0", edges_rule="hand anatomy (42)")
    if camera_json is None:
        keys = sorted(frames)
        return CategorySet(points3d=np.stack([frames[k][0] for k in keys]),
                           visible=np.stack([frames[k][1] for k in keys]), sequence=np.array([k[0] for k in keys]),
                           meta={"frame": np.array([k[1] for k in keys]),
                                 "hand_type": np.array([frames[k][2] for k in keys])}, **common)
    if data_json is None:
        raise ValueError("load_interhand: camera_json needs data_json too (it says which camera saw which frame).")
    cams = json.loads(_need(camera_json, "interhand").read_text())
    data = json.loads(_need(data_json, "interhand").read_text())
    pts, vis, p2, seq, img = [], [], [], [], []
    for im in data["images"]:
        key = (str(im["capture"]), str(im["frame_idx"]))
        if key not in frames:
            continue
        c = cams[str(im["capture"])]
        cam = str(im["camera"])
        R, pos = np.asarray(c["camrot"][cam], float), np.asarray(c["campos"][cam], float)
        f, pp = np.asarray(c["focal"][cam], float), np.asarray(c["princpt"][cam], float)
        X = (frames[key][0] - pos) @ R.T
        pts.append(X)
        vis.append(frames[key][1])
        p2.append(X[:, :2] / X[:, 2:] * f + pp)
        seq.append(key[0])
        img.append(im["id"])
    if not pts:
        raise ValueError(f"{data_json}: none of its images has a frame in {joint_3d_json}.")
    return CategorySet(points3d=np.stack(pts), visible=np.stack(vis), sequence=np.array(seq), points2d=np.stack(p2),
                       camera={"model": "pinhole", "frame": "points3d is camera-frame (per image)"},
                       meta={"image_id": np.array(img)}, **common)


def load_ubody3d(path) -> CategorySet:
    """UBody3D (mmpose's COCO-style json): per annotation ``keypoints_3d (133, 3)`` = (u, v, depth) with the
    image's ``camera_param`` (focal, princpt), ``keypoints (133, 2)`` the 2D and ``keypoints_valid``. Returned as
    camera-frame 3D by back-projection (units of the depth), real 2D kept, COCO-WholeBody skeleton; sequence =
    the video folder of the image."""
    import ast
    import json

    d = json.loads(_need(path, "ubody3d").read_text())
    if "annotations" not in d:
        raise ValueError(f"{path}: no 'annotations'; expected UBody3D COCO-style json.")
    images = {str(im["id"]): im for im in d.get("images", [])}
    lit = lambda v: ast.literal_eval(v) if isinstance(v, str) else v  # noqa: E731 - the file stores literals as text
    pts, vis, p2, seq = [], [], [], []
    for a in d["annotations"]:
        k3 = np.asarray(lit(a["keypoints_3d"]), float)
        k2 = np.asarray(lit(a["keypoints"]), float).reshape(-1, 2)
        if k3.shape != (133, 3):
            raise ValueError(f"{path}: keypoints_3d of annotation {a.get('id')} has shape {k3.shape}; expected (133, 3).")
        cp = lit(a["camera_param"])
        f, c = np.asarray(cp["focal"], float), np.asarray(cp["princpt"], float)
        xy = (k3[:, :2] - c) * k3[:, 2:] / f
        pts.append(np.concatenate([xy, k3[:, 2:]], 1))
        vis.append(np.asarray(lit(a.get("keypoints_valid", [1] * 133)), bool).reshape(-1))
        p2.append(k2)
        name = images.get(str(a["image_id"]), {}).get("file_name", "unknown/x")
        seq.append(name.rsplit("/", 1)[0])
    return CategorySet(
        category="ubody3d", rig="coco_wholebody133", points3d=np.stack(pts), visible=np.stack(vis),
        edges=np.array(WHOLEBODY_EDGES), sequence=np.array(seq), units="depth units of the file",
        source=f"UBody3D json {Path(path).name}", licence="UBody: research use", edges_rule="COCO-WholeBody skeleton",
        points2d=np.stack(p2), camera={"model": "pinhole", "frame": "points3d is camera-frame (per annotation)"},
    )


DEMO_KEYS = ("inputs_2d", "labels_3d", "outputs_3d", "masks")


def load_demo_pickle(path) -> dict:
    """A prediction file in the official 3D-LFM demo schema: a dict with ``inputs_2d (B, N, 2)``, ``labels_3d``
    and ``outputs_3d (B, N, 3)``, ``masks (B, N)`` (and optionally ``category``). Returns the arrays as numpy,
    checked for consistent shapes (the files lfm's 03_evaluate writes under ``predictions/`` follow it)."""
    import pickle

    p = _need(path, "demo")
    with open(p, "rb") as f:
        try:
            d = pickle.load(f)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{p}: not a readable pickle ({type(e).__name__}: {e}).") from None
    if not isinstance(d, dict) or set(DEMO_KEYS) - set(d):
        have = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise ValueError(f"{p}: keys {have}; the demo schema needs {list(DEMO_KEYS)}.")
    out = {k: np.asarray(d[k].detach().cpu() if hasattr(d[k], "detach") else d[k]) for k in DEMO_KEYS}
    B, N = out["masks"].shape[:2]
    want = {"inputs_2d": (B, N, 2), "labels_3d": (B, N, 3), "outputs_3d": (B, N, 3)}
    for k, shape in want.items():
        if out[k].shape != shape:
            raise ValueError(f"{p}: {k} has shape {out[k].shape}; expected {shape} to match masks {out['masks'].shape}.")
    out["masks"] = out["masks"].astype(bool)
    if "category" in d:
        out["category"] = d["category"]
    return out
