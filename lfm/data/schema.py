"""One schema for every dataset: :class:`CategorySet`, plus the documented rules that give every rig a graph.

Layout: ``points3d (F, N, 3) float32`` and ``visible (F, N) bool``. A category whose instances have different
keypoint counts (KeypointNet chairs) is stored in *slots* (one per semantic keypoint id, ``N`` = number of ids)
with ``visible = False`` for the absent ones, so one edge list serves every instance; a batch only ever holds the
visible keypoints (the model never needs slot identity). Non-finite coordinates become invisible joints, are set
to 0 and are counted in ``n_nonfinite``, never passed on silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CategorySet", "skeleton_from_motion", "knn_edges", "mean_shape"]


@dataclass
class CategorySet:
    """The frames of one category from one source (see the module docstring for the layout)."""

    category: str  # benchmark category, e.g. "human41", "dog", "chair"
    rig: str  # keypoint layout name, e.g. "nrsfm_human41"
    points3d: np.ndarray  # (F, N, 3) float32
    visible: np.ndarray  # (F, N) bool
    edges: np.ndarray  # (E, 2) int64 skeleton over the N slots
    sequence: np.ndarray  # (F,) str: sequence / clip / instance id of each frame (splits use it, never frames)
    units: str  # "mm", "m", "normalised", "arbitrary"
    source: str  # where the data comes from (dataset, file)
    licence: str
    synthetic: bool = False  # True for synthetic shapes (e.g. the NRSfM "jaws" shark)
    edges_rule: str = ""  # how the edges were obtained (data hierarchy, anatomy, motion MST, kNN)
    meta: dict = field(default_factory=dict)  # e.g. semantic ids of slots, frame indices
    n_nonfinite: int = 0  # joints whose coordinates were NaN/inf in the source (now invisible)
    points2d: np.ndarray | None = None  # (F, N, 2) real 2D of the same frames (a real camera or detector), if any
    camera: dict | None = None  # how points2d relates to points3d (e.g. intrinsics; points3d in that camera frame)

    def __post_init__(self):
        self.points3d = np.asarray(self.points3d, dtype=np.float32)
        if self.points3d.ndim != 3 or self.points3d.shape[-1] != 3:
            raise ValueError(f"{self.category}: points3d has shape {self.points3d.shape}; expected (F, N, 3).")
        F, N, _ = self.points3d.shape
        self.visible = np.asarray(self.visible, dtype=bool)
        if self.visible.shape != (F, N):
            raise ValueError(f"{self.category}: visible has shape {self.visible.shape}; expected ({F}, {N}).")
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if self.edges.size and (self.edges.min() < 0 or self.edges.max() >= N):
            raise ValueError(f"{self.category}: edges reference keypoints outside 0..{N - 1}.")
        arrays = {"points3d": self.points3d}
        if self.points2d is not None:
            self.points2d = np.asarray(self.points2d, dtype=np.float32)
            if self.points2d.shape != (F, N, 2):
                raise ValueError(f"{self.category}: points2d has shape {self.points2d.shape}; expected ({F}, {N}, 2).")
            arrays["points2d"] = self.points2d
        # a joint with a non-finite coordinate in any array becomes invisible (counted), then hidden rows are 0
        bad = self.visible & ~np.logical_and.reduce([np.isfinite(a).all(-1) for a in arrays.values()])
        self.n_nonfinite += int(bad.sum())
        self.visible = self.visible & ~bad
        for name, a in arrays.items():
            setattr(self, name, np.where(self.visible[..., None], np.nan_to_num(a), 0.0).astype(np.float32))
        self.sequence = np.asarray(self.sequence).astype(str)
        if self.sequence.shape != (F,):
            raise ValueError(f"{self.category}: sequence has shape {self.sequence.shape}; expected ({F},).")

    @property
    def n_frames(self) -> int:
        return self.points3d.shape[0]

    @property
    def n_keypoints(self) -> int:
        return self.points3d.shape[1]

    @classmethod
    def concat(cls, sets: list["CategorySet"]) -> "CategorySet":
        """Frames of several sets of one rig, in order (the first set's rig, edges, units and licence)."""
        a = sets[0]
        if any(s.rig != a.rig for s in sets):
            raise ValueError(f"concat: rigs differ ({sorted({s.rig for s in sets})}); only one rig's sets can be joined.")
        meta = {k: np.concatenate([s.meta[k] for s in sets]) for k, v in a.meta.items()
                if isinstance(v, np.ndarray) and all(k in s.meta for s in sets)}
        return cls(a.category, a.rig, np.concatenate([s.points3d for s in sets]),
                   np.concatenate([s.visible for s in sets]), a.edges, np.concatenate([s.sequence for s in sets]),
                   a.units, a.source, a.licence, a.synthetic, a.edges_rule, meta, sum(s.n_nonfinite for s in sets))

    def subset(self, frames) -> "CategorySet":
        """The same set restricted to ``frames`` (indices or a bool mask)."""
        idx = np.arange(self.n_frames)[frames]
        meta = {k: (v[idx] if isinstance(v, np.ndarray) and v.shape[:1] == (self.n_frames,) else v)
                for k, v in self.meta.items()}
        return CategorySet(
            self.category, self.rig, self.points3d[idx], self.visible[idx], self.edges, self.sequence[idx],
            self.units, self.source, self.licence, self.synthetic, self.edges_rule, meta, 0,
            None if self.points2d is None else self.points2d[idx], self.camera,
        )

    def summary(self) -> dict:
        vis = self.visible.sum(1)
        return {
            "category": self.category, "rig": self.rig, "frames": self.n_frames, "keypoints": self.n_keypoints,
            "visible_per_frame": f"{int(vis.min())}-{int(vis.max())}" if vis.size else "0",
            "sequences": int(len(np.unique(self.sequence))), "edges": int(len(self.edges)), "units": self.units,
            "synthetic": self.synthetic, "real_2d": self.points2d is not None, "nonfinite_joints": self.n_nonfinite,
            "licence": self.licence,
            "source": self.source,
        }


def skeleton_from_motion(points3d: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
    """A tree over the keypoints from their motion: the minimum spanning tree of the pairwise distance variability.

    Bones keep their length while a body moves, so a pair's distance varies little across frames when the two
    keypoints sit on one rigid segment. The weight of pair (i, j) is std(d_ij) / mean(d_ij) over the frames where
    both are visible (plus a tiny multiple of the mean distance to break ties towards near neighbours); the MST
    of these weights is returned as ``(N - 1, 2)`` edges (fewer if some keypoint is never visible).
    """
    from scipy.sparse.csgraph import minimum_spanning_tree

    P = np.asarray(points3d, dtype=np.float64)
    F, N, _ = P.shape
    V = np.ones((F, N), bool) if visible is None else np.asarray(visible, bool)
    d = np.linalg.norm(P[:, :, None] - P[:, None, :], axis=-1)  # (F, N, N)
    both = V[:, :, None] & V[:, None, :]
    cnt = both.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):  # pairs never seen together: inf, dropped below
        mean = np.where(cnt > 0, (d * both).sum(0) / np.maximum(cnt, 1), np.inf)
        var = np.where(cnt > 1, ((d - mean) ** 2 * both).sum(0) / np.maximum(cnt - 1, 1), np.inf)
        scale = np.nanmedian(mean[np.isfinite(mean) & (mean > 0)]) if np.isfinite(mean).any() else 1.0
        w = np.sqrt(var) / np.maximum(mean, 1e-9 * scale) + 1e-3 * mean / scale
    w = np.where(np.isfinite(w) & (cnt > 1), w + 1e-12, 0.0)  # 0 = no edge in scipy's sparse graph
    np.fill_diagonal(w, 0.0)
    tree = minimum_spanning_tree(np.triu(w)).tocoo()
    edges = np.stack([tree.row, tree.col], 1).astype(np.int64)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))]


def mean_shape(points3d: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The mean ``(N, 3)`` shape of frames ``(F, N, 3)``: each frame centred on its visible centroid, then each
    keypoint averaged over the frames where it is visible (0 where it never is)."""
    w = np.asarray(visible, bool)[..., None].astype(np.float64)
    c = (points3d * w).sum(1, keepdims=True) / np.maximum(w.sum(1, keepdims=True), 1)
    return ((points3d - c) * w).sum(0) / np.maximum(w.sum(0), 1)


def knn_edges(shape3d: np.ndarray, k: int = 3, valid: np.ndarray | None = None) -> np.ndarray:
    """Symmetric k-nearest-neighbour edges ``(E, 2)`` (i < j) over the valid keypoints of one (mean) shape."""
    X = np.asarray(shape3d, dtype=np.float64)
    N = len(X)
    ok = np.ones(N, bool) if valid is None else np.asarray(valid, bool)
    d = np.linalg.norm(X[:, None] - X[None], axis=-1)
    d[~ok] = np.inf
    d[:, ~ok] = np.inf
    np.fill_diagonal(d, np.inf)
    pairs = set()
    for i in np.flatnonzero(ok):
        for j in np.argsort(d[i], kind="stable")[: min(k, int(ok.sum()) - 1)]:
            if np.isfinite(d[i, j]):
                pairs.add((min(i, j), max(i, j)))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
