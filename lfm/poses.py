"""Read the 2D pose files people already have, for ``lfm lift`` / :func:`lfm.lift_file`.

One reader, :func:`read_poses`, turns a file into :class:`Poses`: one row per (frame, instance) in the file's
frame order, each with its keypoints ``(N, 2)`` (NaN where missing), their confidences where the file has them,
the keypoint names and the skeleton's edges where the file has one.

=================  ==================================  ============================================================
``format``         extension                           read by
=================  ==================================  ============================================================
``npz``            ``.npz``                            numpy: ``points2d`` (N, 2) or (B, N, 2), optional ``mask``,
                                                       ``edges``, ``confidence``
``slp``            ``.slp``                            sleap-io (SLEAP labels and predictions)
``analysis_h5``    ``.h5`` (SLEAP analysis)            sleap-io
``dlc``            ``.csv`` (DeepLabCut table)         pandas (DeepLabCut's predictions ``<video>DLC_*.csv`` and
                                                       labelled-data ``CollectedData_*.csv``, single- and
                                                       multi-animal; edges from the project's ``config.yaml``
                                                       ``skeleton`` when one lies beside the file or up to two
                                                       folders above)
``sleap_csv``      ``.csv`` (SLEAP analysis CSV)       sleap-io
``coco``           ``.json``                           json (COCO keypoint annotations, or the results list of
                                                       mmpose / Detectron2 / YOLO-pose: image_id, keypoints,
                                                       score)
``nwb``            ``.nwb``                            sleap-io (ndx-pose ``PoseEstimation``)
``ultralytics``    a folder with ``data.yaml``         sleap-io (YOLO-pose labels, image size from the images)
``jabs``           ``.h5`` (JABS pose)                 sleap-io
=================  ==================================  ============================================================

sleap-io's own DeepLabCut and COCO readers keep only the rows whose image files they find, so predictions without
their images would come back empty; these two formats are therefore read here (tested on files sleap-io writes
and on real DeepLabCut output). A DeepLabCut ``.h5`` (a pandas
HDF table) is refused with the fix: DeepLabCut writes the same table as CSV (``save_as_csv=True``).

Every problem is a :class:`PoseFileError` whose one-line message names the file and the fix; nothing is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Poses", "PoseFileError", "read_poses", "FORMATS", "sniff_format", "DEFAULT_MIN_CONFIDENCE"]

FORMATS = ("npz", "slp", "analysis_h5", "dlc", "sleap_csv", "coco", "nwb", "ultralytics", "jabs")
EXTENSIONS = {".npz": "npz", ".slp": "slp", ".h5": "analysis_h5", ".hdf5": "analysis_h5", ".csv": "dlc",
              ".json": "coco", ".nwb": "nwb", ".yaml": "ultralytics", ".yml": "ultralytics"}
# keypoints whose confidence (DeepLabCut likelihood, SLEAP score) is below this are hidden; DeepLabCut's own
# plotting cut-off (pcutoff in config.yaml) is 0.6 by default, SLEAP draws every predicted point
DEFAULT_MIN_CONFIDENCE = 0.5
_NPZ_HOW = "save it with np.savez(path, points2d=..., mask=..., edges=...)"


class PoseFileError(ValueError):
    """A pose file that cannot be lifted (the message names the file and the fix)."""


@dataclass
class Poses:
    """The 2D poses of one file: one row per (frame, instance), in the file's frame order."""

    points2d: np.ndarray  # (B, N, 2) float32, NaN where a keypoint is missing
    confidence: np.ndarray | None  # (B, N) float32 (DeepLabCut likelihood, SLEAP score) or None
    frame: np.ndarray  # (B,) int64: the frame index in its video (row number where the file has none)
    instance: np.ndarray  # (B,) int64: the instance's index within its frame
    track: np.ndarray  # (B,) str: track / individual name ("" where none)
    video: np.ndarray  # (B,) int64: the video index (files with several videos)
    names: list[str]  # N keypoint names ([] where the file has none)
    edges: np.ndarray | None  # (E, 2) int64, the file's skeleton, or None
    format: str
    path: Path
    mask: np.ndarray | None = None  # (B, N) bool given by the file (npz); else from the confidences
    single: bool = False  # an npz with points2d (N, 2): one pose without a batch axis
    notes: list[str] = field(default_factory=list)

    @property
    def n_keypoints(self) -> int:
        return self.points2d.shape[1]

    def visible(self, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> np.ndarray:
        """``(B, N)`` bool: keypoints with finite coordinates, given by the file's mask (npz) and, where the file
        has confidences, not below ``min_confidence`` (a keypoint whose confidence is empty is kept)."""
        vis = np.isfinite(self.points2d).all(-1)
        if self.mask is not None:
            vis &= self.mask
        if self.confidence is not None:
            with np.errstate(invalid="ignore"):
                vis &= ~(self.confidence < min_confidence)  # an empty (NaN) confidence hides nothing
        return vis


def _fail(path, what: str, fix: str) -> PoseFileError:
    return PoseFileError(f"{path}: {what}; {fix}")


def _how_formats() -> str:
    return (f"give a pose file ({', '.join(sorted(set(EXTENSIONS)))} or an Ultralytics folder) or name its format "
            f"with --format ({', '.join(FORMATS)})")


def sniff_format(path) -> str:
    """The format of ``path`` from its extension, refined by its first bytes where one extension has several
    formats (``.h5``: SLEAP analysis, JABS or a DeepLabCut table; ``.csv``: DeepLabCut or SLEAP analysis CSV)."""
    path = Path(path)
    if path.is_dir():
        if (path / "data.yaml").is_file():
            return "ultralytics"
        raise _fail(path, "is a folder without data.yaml (not an Ultralytics dataset)", _how_formats())
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        with open(path, "rb") as f:
            head = f.read(8)
        if head.startswith((b"\x93NUMPY", b"PK")):  # numpy's own files: the .npz reader says what to do
            return "npz"
        kind = "an empty file" if not head else (
            "a text file" if all(32 <= c < 127 or c in b"\t\r\n" for c in head) else "a binary file")
        raise _fail(path, f"unknown pose file extension {suffix or '(none)'!r} ({kind})",
                    _how_formats() + f"; for your own arrays: {_NPZ_HOW}")
    fmt = EXTENSIONS[suffix]
    if fmt == "analysis_h5":
        import h5py

        try:
            with h5py.File(path, "r") as f:
                keys = set(f.keys())
        except OSError:
            raise _fail(path, "is not an HDF5 file (damaged, or another format under the .h5 extension)",
                        "export it again from SLEAP (File > Export Analysis HDF5) or give the right --format") \
                from None
        if "tracks" in keys and "node_names" in keys:
            return "analysis_h5"
        if "df_with_missing" in keys or any(k.startswith("df") for k in keys):
            raise _fail(path, "is a DeepLabCut HDF table (pandas), which needs PyTables to read",
                        "use the CSV DeepLabCut writes beside it (analyze_videos(..., save_as_csv=True) or "
                        "deeplabcut.analyze_videos_converth5_to_csv)")
        if "poseest" in keys:
            return "jabs"
        raise _fail(path, f"is an HDF5 file but not a SLEAP analysis file (groups {sorted(keys)[:6]})",
                    "export it from SLEAP (File > Export Analysis HDF5), or give a DeepLabCut CSV, .slp or .nwb")
    if fmt == "dlc":
        with open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace").lower()
        first = head.split("\n", 1)[0]
        if first.startswith("scorer"):
            return "dlc"
        if "frame_idx" in first and "instance.score" in first:
            return "sleap_csv"
        raise _fail(path, "is a CSV file but neither a DeepLabCut table (first row 'scorer,...') nor a SLEAP "
                    "analysis CSV", "give the CSV DeepLabCut or SLEAP wrote, or put your keypoints in an .npz "
                    f"({_NPZ_HOW})")
    return fmt


def read_poses(path, format: str | None = None) -> Poses:
    """Read a pose file (see the module docstring for the formats); ``format`` overrides the extension."""
    path = Path(path)
    if not path.exists():
        raise _fail(path, "does not exist", "give the path of a pose file (" + ", ".join(FORMATS) + "); for your "
                    f"own arrays: {_NPZ_HOW}")
    if format is not None and format not in FORMATS:
        raise _fail(path, f"unknown --format {format!r}", f"choose one of {', '.join(FORMATS)}")
    fmt = format or sniff_format(path)
    if path.is_dir() and fmt != "ultralytics":
        raise _fail(path, "is a folder", "give the path of a pose file")
    if fmt == "npz":
        poses = _read_npz(path)
    elif fmt == "dlc":
        poses = _read_dlc(path)
    elif fmt == "coco":
        poses = _read_coco(path)
    else:
        poses = _read_sleap_io(path, fmt)
    if fmt != "npz":  # an .npz goes to lfm.lift as it is, which checks it with its own messages
        _check(poses)
    return poses


# ------------------------------------------------------------------------------------------------------- checks

def _check(p: Poses) -> None:
    if p.points2d.shape[0] == 0:
        raise _fail(p.path, f"holds no poses (no frame with an instance; a {p.format} file)",
                    "run the pose estimator on the video first, or check that this is the predictions file")
    if p.n_keypoints == 0:
        raise _fail(p.path, "has no keypoints (its skeleton has no nodes)", "give a file whose skeleton lists the "
                    "keypoints")
    if p.edges is not None and len(p.edges) and (p.edges.min() < 0 or p.edges.max() >= p.n_keypoints):
        raise _fail(p.path, f"its skeleton joins keypoint {int(p.edges.max())}, but it has {p.n_keypoints} "
                    "keypoints", "fix the skeleton's edges, or pass --rig / no skeleton")
    if not np.isfinite(p.points2d).all(-1).any(-1).any():
        raise _fail(p.path, "holds instances but every keypoint is missing (NaN)", "check the file's predictions")


# -------------------------------------------------------------------------------------------------------- numpy

def _read_npz(path: Path) -> Poses:
    import zipfile
    import zlib

    if not path.is_file():
        raise _fail(path, "is not a file", f"give the path of an .npz file ({_NPZ_HOW})")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        raise PoseFileError(f"{path} is a .npy file (one array without a name); lfm lift reads an .npz with named "
                            f"arrays: np.savez('{path.with_suffix('.npz').name}', points2d=np.load('{path.name}')).")
    if not head.startswith(b"PK"):
        kind = "an empty file" if not head else (
            "a text file" if all(32 <= c < 127 or c in b"\t\r\n" for c in head) else "not a zip archive")
        raise PoseFileError(f"{path} is {kind}, not an .npz; {_NPZ_HOW}.")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "points2d" not in z.files:
                raise PoseFileError(f"{path} has no array 'points2d' (found {sorted(z.files)}); {_NPZ_HOW}.")
            a = {k: z[k] for k in ("points2d", "mask", "edges", "confidence") if k in z.files}
    except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
        raise PoseFileError(f"{path} is damaged or truncated ({type(e).__name__}: {' '.join(str(e).split())}); "
                            f"write it again ({_NPZ_HOW}).") from None
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise PoseFileError(f"{path} holds an object (pickled) array; store plain numbers: "
                                "np.savez(path, points2d=np.asarray(points, dtype=np.float32), ...).") from None
        raise PoseFileError(f"{path} is damaged or not written by numpy ({' '.join(str(e).split())}); "
                            f"{_NPZ_HOW}.") from None
    # the arrays are passed on as they are: lfm.lift checks shapes, dtypes and the mask with its own messages
    P = a["points2d"]
    single = P.ndim == 2
    B = 1 if single else (P.shape[0] if P.ndim == 3 else 0)
    return Poses(P, a.get("confidence"), np.arange(B), np.zeros(B, np.int64), np.full(B, ""), np.zeros(B, np.int64),
                 [], a.get("edges"), "npz", path, a.get("mask"), single)


# ------------------------------------------------------------------------------------------------- DeepLabCut

def _dlc_config_edges(path: Path, names: list[str]) -> tuple[np.ndarray | None, list[str]]:
    """Edges from the ``skeleton`` of a DeepLabCut ``config.yaml`` beside the CSV or up to two folders above."""
    import yaml

    for folder in (path.parent, path.parent.parent, path.parent.parent.parent):
        cfg_path = folder / "config.yaml"
        if not cfg_path.is_file():
            continue
        try:
            cfg = yaml.safe_load(cfg_path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if not isinstance(cfg, dict) or "bodyparts" not in cfg and "multianimalbodyparts" not in cfg:
            continue  # some other project's config
        pairs = cfg.get("skeleton") or []
        unknown = sorted({n for pair in pairs for n in pair if n not in names})
        if unknown:
            raise _fail(path, f"the skeleton of {cfg_path} names bodyparts {unknown[:5]} that the file does not "
                        f"have (it has {names[:8]}{'...' if len(names) > 8 else ''})",
                        f"correct the skeleton in {cfg_path} or move the CSV out of that project")
        if pairs:
            return np.array([[names.index(a), names.index(b)] for a, b in pairs], np.int64), [
                f"edges from {cfg_path}"]
    return None, []


def _read_dlc(path: Path) -> Poses:
    import pandas as pd

    try:
        head = pd.read_csv(path, header=None, nrows=5, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise _fail(path, f"is not a DeepLabCut table ({type(e).__name__})", "give the CSV DeepLabCut wrote") from None
    col0 = head.iloc[:, 0].str.lower().tolist()
    if not col0 or col0[0] != "scorer":
        raise _fail(path, "is not a DeepLabCut table (its first cell is not 'scorer')",
                    "give the CSV DeepLabCut wrote, or --format for another format")
    multi = len(col0) > 1 and col0[1] == "individuals"
    n_head = 4 if multi else 3
    coords_row = head.iloc[n_head - 1].tolist()
    # the index: one column (frame number or image path) or three (labeled-data, video, image)
    n_index = next((i for i, c in enumerate(coords_row) if c in ("x", "y", "likelihood")), 1)
    if n_index == 0 or head.shape[0] < n_head:
        raise _fail(path, "has a DeepLabCut header without coordinate columns (x, y, likelihood)",
                    "give the CSV DeepLabCut wrote")
    try:
        df = pd.read_csv(path, header=None, skiprows=n_head, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(np.zeros((0, len(coords_row)), str))
    if df.shape[1] != len(coords_row):
        raise _fail(path, f"has rows of {df.shape[1]} columns under a header of {len(coords_row)}",
                    "the table is damaged: export it again from DeepLabCut")
    hdr = head.iloc[:n_head, n_index:].to_numpy()
    coords = hdr[-1]
    bodyparts = hdr[-2]
    individuals = hdr[1] if multi else np.full(len(coords), "")
    # group the columns per (individual, bodypart) in the file's order
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for j, (ind, bp, c) in enumerate(zip(individuals, bodyparts, coords)):
        groups.setdefault((ind, bp), {})[c] = j
    inds = list(dict.fromkeys(individuals))
    parts = {ind: [bp for (i, bp) in groups if i == ind] for ind in inds}
    counts = {ind: len(v) for ind, v in parts.items()}
    if len(set(map(tuple, parts.values()))) > 1:
        raise _fail(path, f"mixes keypoint sets: individuals have {counts} bodyparts (e.g. DeepLabCut's "
                    "'single' unique bodyparts)", "lift one set of bodyparts at a time: save the individuals that "
                    "share their bodyparts into their own CSV (pandas: df.drop(columns='single', level=1))")
    names = parts[inds[0]]
    if any(not {"x", "y"} <= set(g) for g in groups.values()):
        raise _fail(path, "has a bodypart without both x and y columns", "export the table again from DeepLabCut")
    values = df.iloc[:, n_index:].replace("", "nan").to_numpy()
    try:
        values = values.astype(np.float64)
    except ValueError:
        raise _fail(path, "holds non-numbers in its coordinate columns", "export the table again from DeepLabCut") \
            from None
    F, N, I = len(df), len(names), len(inds)
    xy = np.full((F, I, N, 2), np.nan)
    conf = np.full((F, I, N), np.nan) if "likelihood" in coords else None
    for i, ind in enumerate(inds):
        for n, bp in enumerate(names):
            g = groups[(ind, bp)]
            xy[:, i, n, 0], xy[:, i, n, 1] = values[:, g["x"]], values[:, g["y"]]
            if conf is not None and "likelihood" in g:
                conf[:, i, n] = values[:, g["likelihood"]]
    index = df.iloc[:, n_index - 1].astype(str).tolist()
    frames = np.array([_frame_number(s, r) for r, s in enumerate(index)], np.int64)
    video_names = df.iloc[:, n_index - 2].astype(str).tolist() if n_index >= 2 else [
        str(Path(s).parent) for s in index]
    video = np.unique(video_names, return_inverse=True)[1].astype(np.int64) if F else np.zeros(0, np.int64)
    # one row per (frame, individual) that has at least one keypoint
    has = np.isfinite(xy).all(-1).any(-1)  # (F, I)
    fi, ii = np.nonzero(has)
    edges, notes = _dlc_config_edges(path, names)
    return Poses(xy[fi, ii].astype(np.float32), None if conf is None else conf[fi, ii].astype(np.float32),
                 frames[fi], ii.astype(np.int64), np.array(inds, dtype=str)[ii] if I else np.zeros(0, str),
                 video[fi], list(names), edges, "dlc", path, notes=notes)


def _frame_number(s: str, row: int) -> int:
    """The frame of an index entry: an integer (predictions), else the last number in an image name
    (``labeled-data/video/img0042.png``), else the row number."""
    if s.strip().lstrip("-").isdigit():
        return int(s)
    m = re.findall(r"\d+", Path(s).stem)
    return int(m[-1]) if m else row


# ---------------------------------------------------------------------------------------------------- sleap-io

_SIO_FORMAT = {"slp": "slp", "analysis_h5": "analysis_h5", "nwb": "nwb", "ultralytics": "ultralytics",
               "jabs": "jabs", "sleap_csv": "csv"}


def _read_sleap_io(path: Path, fmt: str) -> Poses:
    import warnings

    import sleap_io as sio

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "sleap_csv":
                labels = sio.load_csv(str(path))
            elif fmt == "ultralytics":
                labels = sio.load_ultralytics(str(path.parent if path.is_file() else path))
            else:
                labels = sio.load_file(str(path), format=_SIO_FORMAT[fmt])
    except PoseFileError:
        raise
    except Exception as e:  # noqa: BLE001 - every reader raises its own kinds for a file of another format
        msg = " ".join(str(e).split())[:160]
        raise _fail(path, f"could not be read as {fmt} ({type(e).__name__}: {msg})",
                    "check that the file is what its extension says, or name its format with --format "
                    f"({', '.join(FORMATS)})") from None
    return _from_labels(labels, path, fmt)


def _read_coco(path: Path) -> Poses:
    """COCO keypoints: an annotation file (``images``, ``annotations``, ``categories``; the third value of each
    keypoint is the visibility flag, 0 = not labelled) or a results list (``[{"image_id", "keypoints", "score"},
    ...]`` as mmpose / Detectron2 write; the third value is the keypoint's score). Rows follow the ``images`` list
    (results: the order of first appearance of each image), then the annotations' order."""
    import json

    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"is not valid JSON ({type(e).__name__})", "give the COCO keypoint JSON your tool wrote") \
            from None
    results = isinstance(data, list)
    if results:
        anns = data
        if not all(isinstance(a, dict) and "keypoints" in a and "image_id" in a for a in anns):
            raise _fail(path, "is a JSON list but not COCO keypoint results (each item needs 'image_id' and "
                        "'keypoints')", "give the COCO annotation or results file your tool wrote")
        cats = {}
    else:
        if not isinstance(data, dict) or "annotations" not in data or "categories" not in data:
            keys = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
            raise _fail(path, f"is JSON ({keys}) but not a COCO keypoint file (needs 'annotations' and "
                        "'categories')", "give the COCO annotation file, or a results list of "
                        "{image_id, keypoints, score}")
        cats = {c.get("id"): c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")}
        if not cats:
            raise _fail(path, "has no category with 'keypoints'", "give a COCO keypoint file "
                        "(person_keypoints_*.json)")
        anns = [a for a in data["annotations"] if a.get("category_id") in cats and a.get("keypoints")]
    sizes = {len(a["keypoints"]) for a in anns}
    if any(s % 3 for s in sizes):
        raise _fail(path, f"has keypoint lists of length {sorted(sizes)}, not x, y, v triplets",
                    "write each keypoint as x, y, visibility (or score)")
    used = sorted({a.get("category_id") for a in anns}, key=str) if cats else []
    if len(sizes) > 1 or len(used) > 1:
        what = {cats[c].get("name", c): len(cats[c]["keypoints"]) for c in used} if used else sorted(
            s // 3 for s in sizes)
        raise _fail(path, f"mixes keypoint sets ({what})", "lift one category at a time: keep one category's "
                    "annotations in a file of their own")
    cat = cats[used[0]] if used else (next(iter(cats.values())) if cats else None)
    names = list(cat["keypoints"]) if cat else []
    N = sizes.pop() // 3 if anns else len(names)
    edges = None
    if cat and cat.get("skeleton"):
        sk = np.asarray(cat["skeleton"], np.int64).reshape(-1, 2)
        if sk.size and (sk.min() < 1 or sk.max() > N):
            raise _fail(path, f"category {cat.get('name')!r}: its skeleton joins keypoints outside 1..{N} (COCO's "
                        "skeleton is 1-based, one number per keypoint name)", "correct the category's 'skeleton'")
        edges = sk - 1
    order = {}
    for i, im in enumerate([] if results else data.get("images", [])):
        order.setdefault(im.get("id"), i)
    for a in anns:
        order.setdefault(a["image_id"], len(order))
    anns = sorted(anns, key=lambda a: order[a["image_id"]])  # stable: annotations keep their order per image
    K = np.array([a["keypoints"] for a in anns], np.float64).reshape(-1, N, 3)
    xy = K[..., :2].copy()
    conf = None
    if results:
        conf = K[..., 2].astype(np.float32)
    else:
        xy[K[..., 2] <= 0] = np.nan  # v = 0: not labelled (x = y = 0 by COCO's rule)
    img = np.array([order[a["image_id"]] for a in anns], np.int64)
    inst = np.zeros(len(anns), np.int64)
    for i in range(1, len(anns)):
        inst[i] = inst[i - 1] + 1 if img[i] == img[i - 1] else 0
    track = np.array([str(a.get("track_id", a.get("attributes", {}).get("object_id", "")))
                      if isinstance(a.get("attributes", {}), dict) else "" for a in anns], dtype=str)
    return Poses(xy.astype(np.float32), conf, img, inst, track if len(anns) else np.zeros(0, str),
                 np.zeros(len(anns), np.int64), names, edges, "coco", path)


def _from_labels(labels, path: Path, fmt: str) -> Poses:
    skels = list(labels.skeletons)
    if not skels:
        raise _fail(path, f"has no skeleton (a {fmt} file without keypoints)", "give a file with pose keypoints")
    sizes = {s.name or f"skeleton {i}": len(s.nodes) for i, s in enumerate(skels)}
    if len(set(sizes.values())) > 1 or len({tuple(s.node_names) for s in skels}) > 1:
        raise _fail(path, f"mixes skeletons with different keypoints {sizes}", "lift one skeleton at a time: save "
                    "the instances of each skeleton into a file of their own")
    sk = skels[0]
    names = list(sk.node_names)
    edges = np.array(sk.edge_inds, np.int64).reshape(-1, 2) if sk.edges else None
    videos = {id(v): i for i, v in enumerate(labels.videos)}
    tracks = {id(t): (t.name or f"track{i}") for i, t in enumerate(labels.tracks)}
    rows = []
    frames = sorted(labels.labeled_frames, key=lambda lf: (videos.get(id(lf.video), 0), lf.frame_idx))
    for lf in frames:
        insts = list(lf.user_instances) + list(lf.unused_predictions)  # a user's correction replaces its prediction
        for k, inst in enumerate(insts):
            if len(inst.skeleton.nodes) != len(names):
                raise _fail(path, f"frame {lf.frame_idx} holds an instance with {len(inst.skeleton.nodes)} "
                            f"keypoints, the others {len(names)}", "lift one skeleton at a time")
            pts = inst.numpy(invisible_as_nan=True)
            score = None
            if hasattr(inst, "score") and "score" in (inst.points.dtype.names or ()):
                score = np.asarray(inst.points["score"], np.float64)
            rows.append((pts[:, :2], score, lf.frame_idx, k, tracks.get(id(inst.track), "") if inst.track else "",
                         videos.get(id(lf.video), 0)))
    B, N = len(rows), len(names)
    P = np.stack([r[0] for r in rows]).astype(np.float32) if B else np.zeros((0, N, 2), np.float32)
    has_score = B and any(r[1] is not None for r in rows)
    conf = None
    if has_score:  # user-labelled instances count as certain
        conf = np.stack([r[1] if r[1] is not None else np.ones(N) for r in rows]).astype(np.float32)
    return Poses(P, conf, np.array([r[2] for r in rows], np.int64), np.array([r[3] for r in rows], np.int64),
                 np.array([r[4] for r in rows], dtype=str) if B else np.zeros(0, str),
                 np.array([r[5] for r in rows], np.int64), names, edges, fmt, path)


# ------------------------------------------------------------------------------------------------------ outputs

OUTPUTS = ("npz", "csv", "json")
TABLE_COLUMNS = ("frame", "video", "instance", "track", "keypoint", "name", "x2d", "y2d", "visible", "x_cam",
                 "y_cam", "z_cam", "x_canon", "y_canon", "z_canon")


def output_format(path) -> str:
    """The output format of ``-o PATH`` from its extension: ``.npz``, ``.csv`` or ``.json``."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in OUTPUTS:
        raise PoseFileError(f"-o {path}: unknown output extension {'.' + suffix if suffix else '(none)'!r}; end the "
                            "name in .npz (arrays), .csv or .json (one row per frame x instance x keypoint)")
    return suffix


def table(poses: Poses, lifted) -> dict[str, np.ndarray]:
    """The output as columns of one row per frame x instance x keypoint (file order, then keypoint order):
    ``frame``, ``video``, ``instance``, ``track``, ``keypoint`` (index), ``name``, the input ``x2d``, ``y2d``,
    ``visible`` (lifted), the camera-frame ``x_cam``, ``y_cam``, ``z_cam`` and the canonical ``x_canon``,
    ``y_canon``, ``z_canon`` (NaN where not visible)."""
    B, N = lifted.mask.shape
    names = poses.names if len(poses.names) == N else [str(k) for k in range(N)]
    rep = lambda a: np.repeat(np.asarray(a), N)  # noqa: E731
    vis = lifted.mask.reshape(-1)
    P = np.asarray(poses.points2d, np.float64).reshape(B, N, 2)
    cols = {"frame": rep(poses.frame), "video": rep(poses.video), "instance": rep(poses.instance),
            "track": rep(poses.track), "keypoint": np.tile(np.arange(N), B), "name": np.tile(np.array(names), B),
            "x2d": P[..., 0].reshape(-1), "y2d": P[..., 1].reshape(-1), "visible": vis}
    for key, arr in (("cam", lifted.camera), ("canon", lifted.canonical)):
        a = np.where(vis[:, None], arr.reshape(-1, 3).astype(np.float64), np.nan)
        for j, ax in enumerate("xyz"):
            cols[f"{ax}_{key}"] = a[:, j]
    return cols


def encode(poses: Poses, lifted, fmt: str, meta: dict) -> bytes:
    """The bytes of the output file in ``fmt`` (``npz``, ``csv`` or ``json``); ``meta``: what produced it."""
    import io
    import json

    if fmt == "npz":
        if poses.single:  # an (N, 2) input gives (N, 3) outputs, as lfm.lift does
            lifted = lifted.squeeze()
        buf = io.BytesIO()
        np.savez(buf, canonical=lifted.canonical, camera=lifted.camera, camera_mirror=lifted.camera_mirror,
                 rotation=lifted.rotation, scale=lifted.scale, translation=lifted.translation, axes=lifted.axes,
                 mask=lifted.mask, graph=np.array(lifted.graph), points2d=np.asarray(poses.points2d),
                 frame=poses.frame, video=poses.video, instance=poses.instance, track=poses.track.astype(str),
                 names=np.array(poses.names, dtype=str), meta=np.array(json.dumps(meta)))
        return buf.getvalue()
    cols = table(poses, lifted)
    if fmt == "csv":
        import pandas as pd

        buf = io.StringIO()
        pd.DataFrame(cols).to_csv(buf, index=False, float_format="%.6g")
        return buf.getvalue().encode()
    if fmt == "json":
        rows = [{k: _plain(cols[k][i]) for k in TABLE_COLUMNS} for i in range(len(cols["frame"]))]
        return json.dumps({"meta": meta, "columns": list(TABLE_COLUMNS), "rows": rows}, allow_nan=False).encode()
    raise ValueError(f"unknown output format {fmt!r}; one of {OUTPUTS}")


def _plain(v):
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else round(float(v), 6)
    return str(v)


def html_page(poses: Poses, lifted, *, title: str, max_frames: int = 300) -> str:
    """One self-contained HTML page (plotly's JavaScript embedded, works offline): the 3D skeleton in the camera
    frame beside the 2D input, a slider over the frames (at most ``max_frames``, evenly spaced; the title says
    when frames were left out). Every instance of a frame is drawn."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    keys = list(dict.fromkeys(zip(poses.video.tolist(), poses.frame.tolist())))
    shown = keys if len(keys) <= max_frames else [keys[i] for i in np.linspace(0, len(keys) - 1, max_frames)
                                                  .round().astype(int)]
    rows_of = {}
    for r, k in enumerate(zip(poses.video.tolist(), poses.frame.tolist())):
        rows_of.setdefault(k, []).append(r)
    N = lifted.mask.shape[1]
    edges = (poses.edges if poses.edges is not None and len(poses.edges) else
             np.stack([np.arange(N - 1), np.arange(1, N)], 1))  # no skeleton: keypoints joined in order
    M = lifted.mask
    vis2d = np.isfinite(poses.points2d).all(-1)

    def lines(X, rows, ok):  # polyline of every edge of every instance, None between segments
        xs = [[] for _ in range(X.shape[-1])]
        for r in rows:
            for a, b in edges:
                if ok[r, a] and ok[r, b]:
                    for d in range(X.shape[-1]):
                        xs[d] += [float(X[r, a, d]), float(X[r, b, d]), None]
        return xs

    def traces(key):
        rows = rows_of[key]
        c = lines(lifted.camera, rows, M)
        p = lines(np.asarray(poses.points2d, np.float64), rows, vis2d)
        pts = np.concatenate([lifted.camera[r][M[r]] for r in rows]) if rows else np.zeros((0, 3))
        q = np.concatenate([poses.points2d[r][vis2d[r]] for r in rows]) if rows else np.zeros((0, 2))
        return [go.Scatter3d(x=c[0], y=c[2], z=c[1], mode="lines", line={"color": "#0072B2", "width": 5},
                             name="3D (camera frame)", showlegend=False),
                go.Scatter3d(x=pts[:, 0], y=pts[:, 2], z=pts[:, 1], mode="markers", marker={"size": 3,
                             "color": "#D55E00"}, showlegend=False, name="keypoints"),
                go.Scatter(x=p[0], y=p[1], mode="lines", line={"color": "#0072B2"}, showlegend=False),
                go.Scatter(x=q[:, 0], y=q[:, 1], mode="markers", marker={"color": "#D55E00", "size": 5},
                           showlegend=False)]

    cam = lifted.camera[M]
    lo, hi = cam.min(0), cam.max(0)
    span = float((hi - lo).max()) / 2 or 1.0
    mid = (lo + hi) / 2
    rng = lambda d: [float(mid[d] - span), float(mid[d] + span)]  # noqa: E731  equal axes
    y_down = bool(lifted.axes[1] < 0)
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "scene"}, {"type": "xy"}]],
                        subplot_titles=("3D, camera frame (x, depth z, y)", "2D input"))
    for t in traces(shown[0]):
        fig.add_trace(t, row=1, col=1 if isinstance(t, go.Scatter3d) else 2)
    fig.frames = [go.Frame(data=traces(k), name=f"{k[0]}:{k[1]}") for k in shown]
    steps = [{"method": "animate", "label": str(k[1]) if len({v for v, _ in keys}) == 1 else f"{k[0]}:{k[1]}",
              "args": [[f"{k[0]}:{k[1]}"], {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
                                            "transition": {"duration": 0}}]} for k in shown]
    left = f" ({len(shown)} of {len(keys)} frames shown)" if len(shown) < len(keys) else ""
    fig.update_layout(
        title=f"{title}{left}", height=620, margin={"l": 20, "r": 20, "t": 60, "b": 20},
        sliders=[{"steps": steps, "currentvalue": {"prefix": "frame "}, "pad": {"t": 30}}],
        scene={"xaxis": {"range": rng(0), "title": "x"}, "yaxis": {"range": rng(2), "title": "z (depth)"},
               "zaxis": {"range": rng(1)[::-1] if y_down else rng(1), "title": "y"}, "aspectmode": "cube"},
        yaxis2={"autorange": "reversed" if y_down else True, "scaleanchor": "x2", "title": "y"},
        xaxis2={"title": "x"})
    return fig.to_html(include_plotlyjs=True, full_html=True, auto_play=False)
