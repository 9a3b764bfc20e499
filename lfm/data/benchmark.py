"""The open benchmark v1: fixed categories, split rules, and two seeded test-view protocols.

Every later notebook builds its data through :func:`build` (splits) and :func:`test_views` (the fixed 2D test
inputs). The split rules are data (:data:`SPLIT_RULES`), written into every result file and the README.

Split rules (always by sequence / instance / time block, never by random frames):

========================  ======================================================================================
category                  rule
========================  ======================================================================================
human41                   train NRSfM drink + pickup + stretch; test yoga
dance, walking, face,     single sequence: first 80 % of the frames train, last 20 % test
shark
dog                       test clip walk09 (every 4th frame, as in calibration.md); train every other clip
chair                     KeypointNet chairs sorted by model_id: first 80 % train, last 20 % test
hand_icvl                 by recording sequence: test_seq_1 train, test_seq_2 test
hand_nyu                  one sequence in the file lists: first 80 % train, last 20 % test
zebrafish                 by video: within each recording set, videos sorted by name, the last 20 % test
mouse_dannce              mouse 1 train, mouse 2 test
mouse_sleap               first 80 % of the frames train, last 20 % test
mvor                      by recording day: days 1-3 train, day 4 (the last) test
cheetah (OOD)             never trained on; every frame is test (synthetic 2D and, separately, real DLC 2D)
========================  ======================================================================================

Validation (early stopping) is carved from the *training* part: the last 10 % of the frames of each training
sequence (a time block) where sequences are long (>= 20 frames on average), else the last 10 % of the training
sequences sorted by id (chairs, fish videos). The MediaPipe face template (one shape) is not a benchmark category.

Test views: ``realistic`` = upright cameras (the category's up axis, +y after loading, turned up; azimuth
free, elevation within +-30 degrees, roll within +-10 degrees), perspective from 2.5-4 x the shape's RMS radius;
``so3_ortho`` = rotations uniform over SO(3), orthographic. Both are regenerated from a fixed seed per
(category, protocol), identical on every machine. Chairs get 4 views per test shape, every other category one.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .capture import load_cheetah, load_cheetah_real2d, load_mouse_dannce, load_mouse_sleap, load_mvor, load_zebrafish
from .open import load_chairs, load_dog, load_hands, load_nrsfm
from .schema import CategorySet
from .views import Views, synthesize_views

__all__ = ["CATEGORIES", "OOD", "SPLIT_RULES", "PROTOCOLS", "Split", "load_category", "split_category", "build",
           "test_views", "VERSION"]

VERSION = "open-benchmark-v1"
CATEGORIES = ("human41", "dance", "walking", "face", "shark", "dog", "chair", "hand_icvl", "hand_nyu", "zebrafish",
              "mouse_dannce", "mouse_sleap", "mvor")
OOD = ("cheetah",)
SPLIT_RULES = {
    "human41": "train NRSfM drink+pickup+stretch; test yoga",
    "dance": "first 80% of frames train, last 20% test",
    "walking": "first 80% of frames train, last 20% test",
    "face": "first 80% of frames train, last 20% test",
    "shark": "first 80% of frames train, last 20% test",
    "dog": "test clip walk09 (every 4th frame); train all other clips",
    "chair": "sorted model_id: first 80% train, last 20% test (4 views per test shape)",
    "hand_icvl": "by sequence: test_seq_1 train, test_seq_2 test",
    "hand_nyu": "first 80% of frames train, last 20% test (one sequence in the file lists)",
    "zebrafish": "by video: per recording set, videos sorted by name, last 20% test",
    "mouse_dannce": "mouse 1 train, mouse 2 test",
    "mouse_sleap": "first 80% of frames train, last 20% test",
    "mvor": "by recording day: days 1-3 train, day 4 test",
    "cheetah": "OOD: never trained on; all 110 frames test (synthetic 2D), 6 cameras x 110 frames (real DLC 2D)",
}
VALIDATION_RULE = ("last 10% of the frames of each training sequence (sequences >= 20 frames on average), else "
                   "the last 10% of training sequences sorted by id")
PROTOCOLS = {
    "realistic": {"camera": "upright", "projection": "perspective", "elevation": 30.0, "roll": 10.0,
                  "distance": (2.5, 4.0)},
    "so3_ortho": {"camera": "so3", "projection": "orthographic", "distance": (2.5, 4.0)},
}
_NRSFM_SINGLE = {"dance": "dance", "walking": "walking", "face": "face", "shark": "jaws"}


def _concat(sets: list[CategorySet]) -> CategorySet:
    a = sets[0]
    meta = {k: np.concatenate([s.meta[k] for s in sets]) for k, v in a.meta.items()
            if isinstance(v, np.ndarray) and all(k in s.meta for s in sets)}
    return CategorySet(a.category, a.rig, np.concatenate([s.points3d for s in sets]),
                       np.concatenate([s.visible for s in sets]), a.edges,
                       np.concatenate([s.sequence for s in sets]), a.units, a.source, a.licence, a.synthetic,
                       a.edges_rule, meta, sum(s.n_nonfinite for s in sets))


def load_category(name: str) -> CategorySet:
    """All frames of one benchmark category (before splitting)."""
    if name == "human41":
        return _concat([load_nrsfm(s) for s in ("drink", "pickup", "stretch", "yoga")])
    if name in _NRSFM_SINGLE:
        return load_nrsfm(_NRSFM_SINGLE[name])
    loaders = {"dog": load_dog, "chair": load_chairs, "hand_icvl": lambda: load_hands("icvl"),
               "hand_nyu": lambda: load_hands("nyu"), "zebrafish": load_zebrafish, "mouse_dannce": load_mouse_dannce,
               "mouse_sleap": load_mouse_sleap, "mvor": load_mvor, "cheetah": load_cheetah}
    if name not in loaders:
        raise ValueError(f"unknown benchmark category {name!r}; known: {list(CATEGORIES + OOD)}.")
    cs = loaders[name]()
    if name.startswith("hand_"):  # the hand loaders keep real 2D; the benchmark synthesises its own views
        cs.points2d, cs.camera = None, None
    return cs


def _time_split(n: int, frac: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    k = int(round(frac * n))
    return np.arange(k), np.arange(k, n)


def _test_indices(name: str, cs: CategorySet) -> np.ndarray:
    seq = cs.sequence
    if name == "human41":
        return np.flatnonzero(seq == "yoga")
    if name in _NRSFM_SINGLE or name in ("hand_nyu", "mouse_sleap"):
        return _time_split(cs.n_frames)[1]
    if name == "dog":
        return np.flatnonzero(seq == "walk09")
    if name == "chair":
        order = np.argsort(seq, kind="stable")
        return np.sort(order[int(round(0.8 * len(order))):])
    if name == "hand_icvl":
        return np.flatnonzero(seq == "test_seq_2")
    if name == "zebrafish":
        test = []
        sets = cs.meta["set"]
        for s in np.unique(sets):
            vids = np.unique(seq[sets == s])
            test += list(vids[int(round(0.8 * len(vids))):])
        return np.flatnonzero(np.isin(seq, test))
    if name == "mouse_dannce":
        return np.flatnonzero(seq == "mouse2")
    if name == "mvor":
        return np.flatnonzero(seq == "day4")
    if name == "cheetah":
        return np.arange(cs.n_frames)
    raise ValueError(f"unknown benchmark category {name!r}; known: {list(CATEGORIES + OOD)}.")


def _validation(cs: CategorySet, train: np.ndarray, frac: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    seq = cs.sequence[train]
    seqs = np.unique(seq)
    if len(train) / max(len(seqs), 1) >= 20:
        val = []
        for s in seqs:
            idx = train[seq == s]
            val += list(idx[len(idx) - max(1, int(round(frac * len(idx)))):])
    else:
        held = seqs[len(seqs) - max(1, int(round(frac * len(seqs)))):]
        val = list(train[np.isin(seq, held)])
    val = np.array(sorted(val), dtype=np.int64)
    return np.setdiff1d(train, val), val


@dataclass
class Split:
    """One category split into train / val / test :class:`CategorySet` objects, with its rule."""

    category: str
    train: CategorySet | None
    val: CategorySet | None
    test: CategorySet
    rule: str

    def counts(self) -> dict:
        n = lambda s: 0 if s is None else s.n_frames  # noqa: E731
        return {"train": n(self.train), "val": n(self.val), "test": n(self.test)}


def split_category(name: str, cs: CategorySet | None = None, *, train_stride: int = 1,
                   test_stride: int | None = None) -> Split:
    """Split one category by its rule. ``train_stride`` subsamples train/val frames (a parameter for smoke runs);
    ``test_stride`` defaults to the benchmark's (4 for dog, 1 elsewhere) and must stay at it for comparable
    numbers."""
    cs = load_category(name) if cs is None else cs
    test = _test_indices(name, cs)
    if test_stride is None:
        test_stride = 4 if name == "dog" else 1
    test = test[::test_stride]
    if name in OOD:
        return Split(name, None, None, cs.subset(test), SPLIT_RULES[name])
    train_all = np.setdiff1d(np.arange(cs.n_frames), _test_indices(name, cs))
    train, val = _validation(cs, train_all)
    return Split(name, cs.subset(train[::train_stride]), cs.subset(val[::train_stride]), cs.subset(test),
                 SPLIT_RULES[name])


def build(categories=CATEGORIES + OOD, *, train_stride: int = 1) -> dict[str, Split]:
    """The whole benchmark: ``{category: Split}`` (OOD categories have only a test part)."""
    unknown = [c for c in categories if c not in CATEGORIES + OOD]
    if unknown:
        raise ValueError(f"unknown benchmark categories {unknown}; known: {list(CATEGORIES + OOD)}.")
    return {c: split_category(c, train_stride=train_stride) for c in categories}


def protocol_seed(category: str, protocol: str) -> int:
    """The fixed seed of one (category, protocol): a CRC32 of the names, identical on every machine."""
    return zlib.crc32(f"{VERSION}/{category}/{protocol}".encode())


def test_views(split: Split, protocol: str = "realistic") -> Views:
    """The fixed 2D test inputs of one category under ``protocol`` (``realistic`` or ``so3_ortho``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not one of {list(PROTOCOLS)}.")
    t = split.test
    return synthesize_views(t.points3d, t.visible, seed=protocol_seed(split.category, protocol),
                            views_per_frame=4 if split.category == "chair" else 1, **PROTOCOLS[protocol])


def real2d_test(min_likelihood: float = 0.5) -> CategorySet:
    """The OOD cheetah with real DeepLabCut 2D (camera-frame 3D), views with >= 3 confident markers."""
    cs = load_cheetah_real2d(min_likelihood=min_likelihood)
    return cs.subset(cs.visible.sum(1) >= 3)
