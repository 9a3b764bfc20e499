"""The open benchmark (v3): splits and two seeded test-view protocols, over the records of the category table.

Every later notebook builds its data through :func:`build` (splits) and :func:`test_views` (the fixed 2D test
inputs). Which sets exist, their roles (in distribution, held-out category, held-out rig) and their split rules live
in :mod:`lfm.data.categories`; the rules are written into every result file and the README.

Splits are always by sequence / instance / time block, never by random frames. Validation (early stopping) is
carved from the *training* part: the last 10 % of the frames of each training sequence (a time block) where
sequences are long (>= 20 frames on average), else the last 10 % of the training sequences sorted by id.

Test views: ``realistic`` = upright cameras (the category's up axis, +y after loading, turned up; azimuth
free, elevation within +-30 degrees, roll within +-10 degrees), perspective from 2.5-4 x the shape's RMS radius;
``so3_ortho`` = rotations uniform over SO(3), orthographic. Both are regenerated from a fixed seed per
(set, protocol), identical on every machine. ``Record.test_views`` views per test frame (4 for chairs).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from . import catalog as table
from .lab_capture import load_cheetah_real2d
from .schema import CategorySet
from .views import Views, synthesize_views

__all__ = ["CATEGORIES", "OOD", "RIG_TRANSFER", "HELD_OUT", "SPLIT_RULES", "PROTOCOLS", "Split", "load_category", "split_category", "build",
           "test_views", "VERSION"]

VERSION = "open-benchmark-v3"
SEED_NAMESPACE = "open-benchmark-v1"  # test-view seeds; fixed forever so that every version scores the same frames
CATEGORIES = tuple(r.name for r in table.records("train"))  # in distribution
OOD = tuple(r.name for r in table.records("ood"))  # held-out categories
RIG_TRANSFER = tuple(r.name for r in table.records("rig_transfer"))  # held-out rigs of trained categories
SPLIT_RULES = {r.name: r.split for r in table.records() if r.role != "extra"}
VALIDATION_RULE = ("last 10% of the frames of each training sequence (sequences >= 20 frames on average), else "
                   "the last 10% of training sequences sorted by id")
PROTOCOLS = {
    "realistic": {"camera": "upright", "projection": "perspective", "elevation": 30.0, "roll": 10.0,
                  "distance": (2.5, 4.0)},
    "so3_ortho": {"camera": "so3", "projection": "orthographic", "distance": (2.5, 4.0)},
}
HELD_OUT = OOD + RIG_TRANSFER


# what "all" meant when a run was trained: the label a checkpoint stores (``benchmark``) -> its training sets. The
# label stayed "open-benchmark-v1" through data v2 (data v2 added held-out sets only); v3 adds training sets.
_V3_TRAIN = tuple(r.name for r in table.V3_RECORDS if r.role == "train")
TRAIN_SETS_OF = {"open-benchmark-v1": tuple(c for c in CATEGORIES if c not in _V3_TRAIN), VERSION: CATEGORIES}


def resolve(names, version: str | None = None) -> tuple[str, ...]:
    """Set names with ``"all"`` expanded in place to every in-distribution set of benchmark ``version`` (default:
    this one; a checkpoint's ``benchmark`` label gives what "all" meant when it was trained), other names kept,
    duplicates dropped."""
    version = VERSION if version is None else version
    if version not in TRAIN_SETS_OF:
        raise ValueError(f"unknown benchmark version {version!r}; known: {sorted(TRAIN_SETS_OF)}.")
    everything = TRAIN_SETS_OF[version]
    return tuple(dict.fromkeys(x for n in names for x in (everything if n == "all" else (n,))))


def load_category(name: str) -> CategorySet:
    """All frames of one benchmark set (before splitting)."""
    rec = table.record(name)
    if rec.role == "extra":
        raise ValueError(f"{name!r} is not a benchmark set (role 'extra'); benchmark sets: "
                         f"{list(CATEGORIES + HELD_OUT)}.")
    return table.load(name)


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
    rec = table.record(name)
    cs = load_category(name) if cs is None else cs
    test_all = rec.test(cs)
    test = test_all[::rec.test_stride if test_stride is None else test_stride]
    if rec.held_out:
        return Split(name, None, None, cs.subset(test), rec.split)
    train_all = np.setdiff1d(np.arange(cs.n_frames), test_all)
    train, val = _validation(cs, train_all)
    return Split(name, cs.subset(train[::train_stride]), cs.subset(val[::train_stride]), cs.subset(test), rec.split)


def split_present(name: str, cs: CategorySet | None = None, *, frac: float = 0.2, train_stride: int = 1) -> Split:
    """A held-out set split as if it were trained on (Table 2's 'present' condition): its sequences sorted by name,
    the last ``frac`` test (every ``test_stride``-th frame, as the record's), the others train and validation. The
    'absent' condition scores the same test frames (this split's ``test``) with a model that never saw the set."""
    rec = table.record(name)
    if not rec.held_out:
        raise ValueError(f"{name!r} is trained on in every run; split_present is for held-out sets "
                         f"{list(HELD_OUT)}.")
    cs = load_category(name) if cs is None else cs
    if len(np.unique(cs.sequence)) < 5:
        raise ValueError(f"{name!r} has {len(np.unique(cs.sequence))} sequence(s); a present/absent split needs at "
                         "least 5, so that no test sequence is seen in training.")
    test_all = table.last_sequences(frac)(cs)
    train, val = _validation(cs, np.setdiff1d(np.arange(cs.n_frames), test_all))
    return Split(name, cs.subset(train[::train_stride]), cs.subset(val[::train_stride]),
                 cs.subset(test_all[::rec.test_stride]), f"present: the last {frac:.0%} of sequences test")


def split_for_training(name: str, *, train_stride: int = 1) -> Split:
    """The split a run trains on: :func:`split_category` for an in-distribution set, :func:`split_present` for a
    held-out one (which only Table 2's 'present' condition or a rig-transfer run trains on)."""
    split = split_present if table.record(name).held_out else split_category
    return split(name, train_stride=train_stride)


def pick(splits: dict, names, where: str) -> dict:
    """``{name: splits[name]}`` for ``names``, or a :class:`ValueError` that starts with ``where`` and names the
    missing sets (splits made elsewhere: a prepared file, a recipe stage, a caller of :func:`lfm.train.setup`)."""
    missing = [c for c in names if c not in splits]
    if missing:
        raise ValueError(f"{where} {missing} (it has {sorted(splits)}); write the splits again with these sets "
                         "(python -m lfm.data.bundle ... --sets ...).")
    return {c: splits[c] for c in names}


def build(categories=CATEGORIES + HELD_OUT, *, train_stride: int = 1) -> dict[str, Split]:
    """The whole benchmark: ``{set: Split}`` (held-out sets have only a test part)."""
    unknown = [c for c in categories if c not in CATEGORIES + HELD_OUT]
    if unknown:
        raise ValueError(f"unknown benchmark sets {unknown}; known: {list(CATEGORIES + HELD_OUT)}.")
    return {c: split_category(c, train_stride=train_stride) for c in categories}


def protocol_seed(category: str, protocol: str) -> int:
    """The fixed seed of one (category, protocol): a CRC32 of the names, identical on every machine."""
    return zlib.crc32(f"{SEED_NAMESPACE}/{category}/{protocol}".encode())


def test_views(split: Split, protocol: str = "realistic") -> Views:
    """The fixed 2D test inputs of one category under ``protocol`` (``realistic`` or ``so3_ortho``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol={protocol!r} is not one of {list(PROTOCOLS)}.")
    t = split.test
    return synthesize_views(t.points3d, t.visible, seed=protocol_seed(split.category, protocol),
                            views_per_frame=table.record(split.category).test_views, **PROTOCOLS[protocol])


def real2d_test(min_likelihood: float = 0.5) -> CategorySet:
    """The OOD cheetah with real DeepLabCut 2D (camera-frame 3D), views with >= 3 confident markers."""
    cs = load_cheetah_real2d(min_likelihood=min_likelihood)
    return cs.subset(cs.visible.sum(1) >= 3)


def real2d_inputs(cs: CategorySet) -> tuple[np.ndarray, np.ndarray]:
    """The model's input and target for :func:`real2d_test`'s views: the DLC pixels with y turned up (as the
    synthetic views) and the camera-frame 3D turned the same way, centred on each view's visible markers."""
    p2 = cs.points2d * np.array([1.0, -1.0], np.float32)
    gt = cs.points3d * np.array([1.0, -1.0, 1.0], np.float32)
    w = cs.visible[..., None]
    return p2, np.where(w, gt - (gt * w).sum(1, keepdims=True) / w.sum(1, keepdims=True), 0.0)
