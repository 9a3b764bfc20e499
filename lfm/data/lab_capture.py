"""Loaders of the open *capture* datasets (animals and people filmed by calibrated cameras) into :class:`CategorySet`.

Every loader returns 3D with +y up (the source's up axis is named in ``meta['up_rule']``), so the benchmark's
upright cameras can treat all categories alike. Sources with real 2D keep it (``points2d``) where the 2D and the
3D describe the same frames:

* AcinoSet cheetah: the DeepLabCut 2D of six calibrated cameras matched to the 3D trajectory (:func:`load_cheetah_real2d`);
* the rest are 3D-only here (their 2D labels exist upstream; see each docstring for what was and was not used).
"""

from __future__ import annotations

import io
import json
import pickle
import re
import tarfile
import zipfile
from functools import lru_cache

import numpy as np

from .fetch import fetch, licence as _licence
from .schema import CategorySet
from .views import _up_to_y

__all__ = ["load_zebrafish", "load_mouse_dannce", "load_mouse_sleap", "load_mvor", "load_cheetah",
           "load_cheetah_real2d", "CHEETAH_MARKERS"]

Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # rows: (x, y, z) -> (x, z, -y)


# ---------------------------------------------------------------------------------------------- zebrafish
def _read_pt(raw: bytes, where: str) -> np.ndarray:
    """One tensor saved by ``torch.save`` (zip format), read with the standard library only (no pickle code runs:
    the unpickler resolves nothing but tensor storages)."""
    dtypes = {"FloatStorage": np.float32, "DoubleStorage": np.float64}
    try:
        z = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as e:
        raise ValueError(f"{where}: not a torch zip archive ({e}); delete the cached tar and fetch again.") from None
    prefix = z.namelist()[0].split("/")[0]

    def rebuild(storage, offset, size, stride, *_):
        key, dtype = storage
        buf = np.frombuffer(z.read(f"{prefix}/data/{key}"), dtype=dtype)
        return np.lib.stride_tricks.as_strided(buf[offset:], size, [s * buf.itemsize for s in stride]).copy()

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if name == "_rebuild_tensor_v2":
                return rebuild
            if name in dtypes:
                return name
            if module == "collections" and name == "OrderedDict":
                from collections import OrderedDict
                return OrderedDict
            raise pickle.UnpicklingError(f"{where}: unexpected object {module}.{name} in a tensor file.")

        def persistent_load(self, pid):
            return pid[2], dtypes[pid[1]]

    return np.asarray(Unpickler(z.open(f"{prefix}/data.pkl")).load())


FISH_SETS = ("er", "fs", "ob_newCal")


def load_zebrafish() -> CategorySet:
    """Larval zebrafish (Ravan et al. 2023): 10 backbone points (head to tail) + 2 eyes, mm, 3 x 1,000 frames.

    ``sequence`` = the video (``<set>_<date>_<time>_<trial>`` from the file name), so splits never cut a video.
    Edges: the backbone chain plus each eye to the first two backbone points. Up: the source's z (the axis of
    least within-fish spread: larvae swim flat) becomes +y.
    """
    pts, seq = [], []
    for s in FISH_SETS:
        name = f"fish_zebrafish_larva_3d/coor_3d_ann_{s}.tar"
        with tarfile.open(fetch(name, progress=False)) as tar:
            members = sorted((m for m in tar.getmembers() if m.name.endswith(".pt")), key=lambda m: m.name)
            for m in members:
                x = _read_pt(tar.extractfile(m).read(), f"{name}:{m.name}")
                if x.shape != (3, 12):
                    raise ValueError(f"{name}:{m.name}: tensor of shape {x.shape}; expected (3, 12) = xyz x 12 points.")
                pts.append(x.T)
                stem = re.match(r"coor_3d_ann_(\d+_\d+_\d+)_\d+\.pt$", m.name.rsplit("/", 1)[-1])
                if stem is None:
                    raise ValueError(f"{name}:{m.name}: file name does not follow coor_3d_ann_<date>_<time>_<trial>_<frame>.pt")
                seq.append(f"{s}_{stem.group(1)}")
    P = np.stack(pts) @ Z_UP_TO_Y_UP
    edges = [(i, i + 1) for i in range(9)] + [(10, 0), (11, 0), (10, 1), (11, 1), (10, 11)]
    return CategorySet(
        category="zebrafish", rig="zebrafish12", points3d=P, visible=np.ones(P.shape[:2], bool), edges=edges,
        sequence=np.array(seq), units="mm", source="3D-fish-pose validation annotations (Ravan et al. 2023)",
        licence=_licence("fish_zebrafish_larva_3d/coor_3d_ann_er.tar"),
        edges_rule="backbone chain head->tail, eyes to the first two backbone points and to each other",
        meta={"up_rule": "source z (least within-fish spread) -> +y", "set": np.array([q.split("_")[0] for q in seq])},
    )


# ---------------------------------------------------------------------------------------------- mouse (DANNCE)
def load_mouse_dannce() -> CategorySet:
    """DANNCE demo Label3D mouse (Dunn et al. 2021): 22 hand-labelled keypoints, mm, mouse 1 (81 frames) and
    mouse 2 (91 frames); unlabelled keypoints (NaN) are invisible. Edges: the 24 bones of ``mouse22_skeleton.mat``.
    Up: arena z (the floor is z = 0) becomes +y. ``sequence`` = ``mouse1`` / ``mouse2``. The six cameras' 2D
    labels and calibration stay in the file (not used here)."""
    from scipy.io import loadmat

    skel_name = "mouse_dannce_label3d/mouse22_skeleton.mat"
    skel = loadmat(fetch(skel_name, progress=False))
    names = [str(n[0]) for n in skel["joint_names"][0]]
    edges = np.asarray(skel["joints_idx"], np.int64) - 1  # MATLAB 1-based
    pts, seq = [], []
    for k in (1, 2):
        name = f"mouse_dannce_label3d/markerless_mouse_{k}_label3d_dannce.mat"
        m = loadmat(fetch(name, progress=False))
        X = np.asarray(m["labelData"][0, 0]["data_3d"][0, 0], float)
        if X.ndim != 2 or X.shape[1] != 3 * len(names):
            raise ValueError(f"{name}: data_3d has shape {X.shape}; expected (F, {3 * len(names)}).")
        pts.append(X.reshape(-1, len(names), 3))
        seq += [f"mouse{k}"] * len(X)
    P = np.concatenate(pts) @ Z_UP_TO_Y_UP
    return CategorySet(
        category="mouse_dannce", rig="dannce_mouse22", points3d=P, visible=np.ones(P.shape[:2], bool), edges=edges,
        sequence=np.array(seq), units="mm", source="DANNCE demo label3d_dannce.mat (Dunn et al. 2021)",
        licence=_licence(skel_name), edges_rule="mouse22_skeleton.mat joints_idx (upstream bones)",
        meta={"joint_names": names, "up_rule": "arena z -> +y"},
    )


# ---------------------------------------------------------------------------------------------- mouse (SLEAP)
def _anipose_cameras(text: str) -> dict:
    import tomllib

    cams = {}
    for key, c in tomllib.loads(text).items():
        if key.startswith("cam_"):
            cams[c["name"]] = c
    return cams


def _rodrigues(r) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.asarray(r, float)).as_matrix()  # column convention: x_cam = R x + t


def load_mouse_sleap() -> CategorySet:
    """sleap-anipose minimal session: one mouse with tail, 15 nodes, 120 frames, mm (anipose triangulation of
    proofread SLEAP 2D from 4 views). Edges: the SLEAP skeleton (``edge_inds`` of the analysis files). Up: the
    anipose frame has no floor axis, so up = minus the viewing direction of the ``top`` camera (it looks down).
    One sequence: the benchmark splits it by time."""
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a declared dependency
        raise ImportError("the SLEAP mouse needs h5py: pip install h5py (it is in lfm's dependencies).") from None
    base = "mouse_sleap_anipose_minimal"
    with h5py.File(fetch(f"{base}/points3d.h5", progress=False), "r") as f:
        T = np.asarray(f["tracks"][:], float)
    if T.ndim != 4 or T.shape[1:] != (1, 15, 3):
        raise ValueError(f"{base}/points3d.h5: tracks has shape {T.shape}; expected (F, 1, 15, 3).")
    with h5py.File(fetch(f"{base}/minimal_top_proofread.analysis.h5", progress=False), "r") as g:
        names = [n.decode() for n in g["node_names"][:]]
        edges = np.asarray(g["edge_inds"][:], np.int64)
    cams = _anipose_cameras(fetch(f"{base}/calibration.toml", progress=False).read_text())
    R_top = _rodrigues(cams["top"]["rotation"])
    up = -R_top[2]  # the camera's optical axis in world coordinates is row 2 of R (x_cam = R x + t)
    P = T[:, 0] @ _up_to_y(tuple(up))
    return CategorySet(
        category="mouse_sleap", rig="sleap_mouse15", points3d=P, visible=np.ones(P.shape[:2], bool), edges=edges,
        sequence=np.full(len(P), "minimal_session"), units="mm",
        source="sleap-anipose tests/data/minimal_session (SLEAP + anipose)",
        licence=_licence(f"{base}/points3d.h5"), edges_rule="SLEAP skeleton edge_inds",
        meta={"joint_names": names, "up_rule": "minus the top camera's viewing direction -> +y",
              "frame": np.arange(len(P))},
    )


# ---------------------------------------------------------------------------------------------- MVOR
def load_mvor() -> CategorySet:
    """MVOR (Srivastav et al. 2018): 1,061 manually annotated 3D upper bodies in an operating room, mm, 12 points
    (10 named upper-body keypoints, then 2 the repository does not document; kept, each joined to its nearest
    named keypoint on the mean shape). Points are moved from their reference camera to the room frame with the
    published extrinsics; the room's up axis (the one along which the head sits above the hips) becomes +y.
    ``sequence`` = ``day<k>`` (the benchmark tests on the last day). Flag 1 (occluded/estimated) stays visible.
    """
    name = "human_upperbody_mvor/camma_mvor_2018.json"
    d = json.loads(fetch(name, progress=False).read_text())
    cp = d["cameras_info"]["camParams"]
    ext = [np.asarray(e, float).reshape(4, 4) for e in cp["extrinsics"]]  # camera 1 -> camera k
    to_room = np.asarray(cp["firstCamToRoomRef"], float).reshape(4, 4)
    K = np.array([a["keypoints3D"] for a in d["annotations3D"]], float)
    if K.ndim != 2 or K.shape[1] != 48:
        raise ValueError(f"{name}: keypoints3D has {K.shape[1:]} values per pose; expected 48 (12 x (x, y, z, flag)).")
    K = K.reshape(-1, 12, 4)
    X = np.empty((len(K), 12, 3))
    for i, a in enumerate(d["annotations3D"]):
        M = to_room @ np.linalg.inv(ext[int(a["ref_camera"])])  # reference camera -> camera 1 -> room
        X[i] = K[i, :, :3] @ M[:3, :3].T + M[:3, 3]
    V = (K[..., 3] > 0) & np.isfinite(X).all(-1)
    names = d["categories"][0]["keypoints"]
    # up: the room axis along which head (0) - mean hip (4, 5) is largest on average
    h = np.nanmean(np.where(V[:, [0]], X[:, 0], np.nan) - X[:, [4, 5]].mean(1), 0)
    axis = int(np.argmax(np.abs(h)))
    up = np.zeros(3)
    up[axis] = np.sign(h[axis])
    P = X @ _up_to_y(tuple(up))
    edges = [tuple(np.array(e) - 1) for e in d["categories"][0]["skeleton"]]
    mean = np.nanmean(np.where(V[..., None], P - np.nanmean(np.where(V[..., None], P, np.nan), 1, keepdims=True),
                               np.nan), 0)
    for extra in (10, 11):
        dist = np.linalg.norm(mean[:10] - mean[extra], axis=-1)
        edges.append((int(np.nanargmin(dist)), extra))
    day = np.array([f"day{str(a['image_ids']).split('_')[0][0]}" for a in d["annotations3D"]])
    return CategorySet(
        category="mvor", rig="mvor_upper12", points3d=P, visible=V, edges=np.array(edges), sequence=day,
        units="mm", source="MVOR camma_mvor_2018.json annotations3D (Srivastav et al. 2018)", licence=_licence(name),
        edges_rule="MVOR 2D skeleton over the 10 named points; points 10, 11 joined to their nearest named point",
        meta={"joint_names": names + ["undocumented_10", "undocumented_11"],
              "up_rule": f"room axis {'xyz'[axis]} (head above hips) -> +y", "image_ids": np.array(
                  [a["image_ids"] for a in d["annotations3D"]])},
    )


# ---------------------------------------------------------------------------------------------- cheetah
CHEETAH_MARKERS = ("nose", "neck_base", "spine", "tail_base", "tail1", "tail2", "l_shoulder", "l_front_knee",
                   "l_front_ankle", "r_shoulder", "r_front_knee", "r_front_ankle", "l_hip", "l_back_knee",
                   "l_back_ankle", "r_hip", "r_back_knee", "r_back_ankle")


@lru_cache(maxsize=None)
def _cheetah_world() -> tuple[np.ndarray, np.ndarray]:
    name = "acinoset_cheetah/cheetah_serious.pickle"
    with open(fetch(name, progress=False), "rb") as fh:
        res = pickle.load(fh)
    skel_name = "acinoset_cheetah/skeleton_cheetah_serious.pickle"
    with open(fetch(skel_name, progress=False), "rb") as fh:
        skel = pickle.load(fh)
    if tuple(skel["markers"]) != CHEETAH_MARKERS:
        raise ValueError(f"{skel_name}: marker order {skel['markers']} differs from the documented one.")
    P = np.asarray(res["positions"], float)
    if P.ndim != 3 or P.shape[1:] != (18, 3):
        raise ValueError(f"{name}: positions has shape {P.shape}; expected (F, 18, 3).")
    idx = {m: i for i, m in enumerate(CHEETAH_MARKERS)}
    edges = np.array([(idx[a], idx[b]) for a, b in skel["links"]])
    return P, edges


def load_cheetah() -> CategorySet:
    """AcinoSet cheetah (Joska et al. 2021), 18 markers, metres, one 110-frame run (09_03_2019 Lily Run1, FTE
    3D). Out of distribution: never in training by default. Edges: the 17 links of the AcinoSet skeleton.
    Up: world z -> +y."""
    P, edges = _cheetah_world()
    return CategorySet(
        category="cheetah", rig="acinoset_cheetah18", points3d=P @ Z_UP_TO_Y_UP, visible=np.ones(P.shape[:2], bool),
        edges=edges, sequence=np.full(len(P), "LilyRun1"), units="m",
        source="AcinoSet cheetah_serious.pickle (acinoset_viewer)",
        licence=_licence("acinoset_cheetah/cheetah_serious.pickle"), edges_rule="AcinoSet skeleton links",
        meta={"up_rule": "world z -> +y", "frame": np.arange(len(P)), "joint_names": list(CHEETAH_MARKERS)},
    )


def _fisheye_project(Xc: np.ndarray, K: np.ndarray, d: np.ndarray) -> np.ndarray:
    """OpenCV fisheye model (equidistant with 4 coefficients) for camera-frame points ``(..., 3)``."""
    a, b = Xc[..., 0] / Xc[..., 2], Xc[..., 1] / Xc[..., 2]
    r = np.hypot(a, b)
    th = np.arctan(r)
    thd = th * (1 + d[0] * th**2 + d[1] * th**4 + d[2] * th**6 + d[3] * th**8)
    s = np.where(r > 1e-12, thd / np.maximum(r, 1e-12), 1.0)
    return np.stack([K[0, 0] * a * s + K[0, 2], K[1, 1] * b * s + K[1, 2]], -1)


def _read_dlc(path, where: str) -> tuple[list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    if len(lines) < 4 or not lines[1].startswith("bodyparts") or not lines[2].startswith("coords"):
        raise ValueError(f"{where}: not a DeepLabCut CSV (expected header rows scorer/bodyparts/coords).")
    parts = lines[1].split(",")[1::3]
    a = np.array([[float(v) for v in ln.split(",")[1:]] for ln in lines[3:] if ln.strip()])
    return parts, a.reshape(len(a), len(parts), 3)  # (T, parts, x/y/likelihood)


def load_cheetah_real2d(min_likelihood: float = 0.5, trial: str = "LilyRun1") -> CategorySet:
    """The cheetah's 3D seen by its six real cameras, with the real DeepLabCut 2D of the same frames.

    How the 2D is matched: the 110 3D frames are a window of the 219-frame DLC video, so each camera's DLC 2D
    is compared with the 3D projected through the bundle-adjusted calibration (``scene_sba.json``; OpenCV fisheye
    model); the offset with the smallest median error over all cameras is used (``meta['frame_offset']``,
    ``meta['reprojection_px']``). A marker becomes invisible where DLC's likelihood is below ``min_likelihood``
    (all 18 markers are among DLC's 25 parts; the paws, eyes and the lure are not used). ``points3d`` is each view's camera-frame 3D (metres) and
    ``points2d`` the raw DLC pixels (distorted image); ``sequence`` = ``CAM<k>``.
    """
    P, edges = _cheetah_world()
    scene_name = "acinoset_cheetah/scene_sba.json"
    scene = json.loads(fetch(scene_name, progress=False).read_text())
    cams = scene["cameras"]
    if isinstance(cams, str):  # the published file stores a Python literal
        import ast
        cams = ast.literal_eval(cams)
    uv, lik = [], []
    for c in range(1, 7):
        name = f"acinoset_cheetah/dlc_2d/{trial}_CAM{c}.csv"
        parts, a = _read_dlc(fetch(name, progress=False), name)
        idx = [parts.index(m) if m in parts else -1 for m in CHEETAH_MARKERS]
        sel = a[:, np.maximum(idx, 0)]
        sel[:, np.array(idx) < 0, 2] = 0.0
        uv.append(sel[..., :2])
        lik.append(sel[..., 2])
    T = min(len(u) for u in uv)
    F = len(P)
    proj, cam3d = [], []
    for c, cam in enumerate(cams):
        K, dist = np.asarray(cam["k"], float), np.asarray(cam["d"], float).ravel()
        R, t = np.asarray(cam["r"], float), np.asarray(cam["t"], float).ravel()
        Xc = P @ R.T + t
        cam3d.append(Xc)
        proj.append(_fisheye_project(Xc, K, dist))
    best, errs = None, None
    for off in range(0, T - F + 1):
        e = [np.linalg.norm(proj[c] - uv[c][off:off + F], axis=-1)[lik[c][off:off + F] >= min_likelihood]
             for c in range(6)]
        med = float(np.median(np.concatenate(e)))
        if best is None or med < best[1]:
            best, errs = (off, med), [float(np.median(x)) for x in e]
    off = best[0]
    pts3, pts2, vis, seq = [], [], [], []
    for c in range(6):
        pts3.append(cam3d[c])
        pts2.append(uv[c][off:off + F])
        vis.append(lik[c][off:off + F] >= min_likelihood)
        seq += [f"CAM{c + 1}"] * F
    return CategorySet(
        category="cheetah", rig="acinoset_cheetah18", points3d=np.concatenate(pts3), visible=np.concatenate(vis),
        edges=edges, sequence=np.array(seq), units="m", source=f"AcinoSet {trial}: FTE 3D + DeepLabCut 2D, 6 cameras",
        licence=_licence("acinoset_cheetah/cheetah_serious.pickle"), edges_rule="AcinoSet skeleton links",
        points2d=np.concatenate(pts2),
        camera={"model": "opencv_fisheye", "calibration": scene_name, "frame": "points3d is camera-frame",
                "image_y": "down"},
        meta={"frame_offset": off, "reprojection_px": errs, "min_likelihood": min_likelihood,
              "frame": np.tile(np.arange(F), 6), "joint_names": list(CHEETAH_MARKERS)},
    )
