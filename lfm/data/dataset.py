"""Batches for training and evaluation: a frame dataset over several categories, a sampler, padded collation.

* :class:`FrameDataset` holds the frames of several :class:`CategorySet` (one entry per frame) and each
  category's fixed graph. :meth:`FrameDataset.batch` turns frame indices into 2D views (fresh random cameras
  from a seeded generator, so training sees new views every step) and collates them.
* :class:`BatchSampler` draws index batches: ``balance='category'`` picks categories uniformly (each batch or
  each sample), ``'frames'`` in proportion to their frames; ``bucket=True`` keeps one category (one keypoint
  count) per batch, so nothing is padded except chairs' absent keypoints.
* :func:`collate` keeps only the *visible* keypoints of each sample (compacted to the front) and pads to the
  longest sample **in the batch**. Padded tokens carry ``mask = False`` and are never attended to.

Targets are the camera-frame 3D centred on the visible centroid and divided by its RMS radius, so the
Procrustes MSE is in units of the shape's radius (the metric's unit) and every sample weighs the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import GRAPHS
from ..graph import knn_adjacency
from .augment import edges_to_matrix, graph_variant, rig_variant
from .schema import CategorySet, knn_edges, mean_shape
from .views import synthesize_views

__all__ = ["Batch", "FrameDataset", "BatchSampler", "collate", "category_graph", "GRAPHS", "mirror_poses",
           "limb_pivots", "bend_limbs"]

def mirror_poses(points3d: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """Mirror each frame left-right (x -> -x; the up axis y and the depth axis z kept) with probability ``p``: a
    mirrored pose is another plausible pose of a left-right symmetric body."""
    if p <= 0:
        return points3d
    flip = np.where(rng.random(len(points3d)) < p, -1.0, 1.0)  # (F,)
    out = np.array(points3d, dtype=np.float64, copy=True)
    out[..., 0] *= flip[:, None]
    return out


def _articulated(name: str) -> bool:
    """Whether pose augmentation may bend this set's limbs (the category table's ``articulated``; unknown sets,
    e.g. a test's synthetic one, are treated as rigid)."""
    from .catalog import _BY_NAME

    return name in _BY_NAME and _BY_NAME[name].articulated


def limb_pivots(edges: np.ndarray, n: int) -> list[tuple[int, np.ndarray]]:
    """For every bridge edge of the skeleton (removing it splits the graph), the pivot joint and the bool mask of
    the smaller side: rotating that side about the pivot bends a limb and keeps every bone length."""
    adj = [[] for _ in range(n)]
    for a, b in np.asarray(edges).reshape(-1, 2):
        adj[a].append(b)
        adj[b].append(a)
    out = []
    for a, b in np.asarray(edges).reshape(-1, 2):
        seen, stack = {b}, [b]
        while stack:  # the component of b without the edge (a, b)
            u = stack.pop()
            for v in adj[u]:
                if v not in seen and not (u == b and v == a):
                    seen.add(v)
                    stack.append(v)
        if a in seen:
            continue  # the edge lies on a cycle: not a limb
        side = np.zeros(n, bool)
        side[list(seen)] = True
        pivot = a
        if side.sum() > n / 2:  # rotate the smaller side, about the joint on the other end
            side, pivot = ~side, b
        out.append((int(pivot), side))
    return out


def bend_limbs(points3d: np.ndarray, pivots, rng: np.random.Generator, p: float, max_deg: float = 30.0,
               max_limbs: int = 2) -> np.ndarray:
    """With probability ``p`` per frame, rotate 1..``max_limbs`` random limbs (:func:`limb_pivots`) about their
    pivot joint by a random axis and an angle within +-``max_deg``: new, plausible poses with the same bones."""
    from scipy.spatial.transform import Rotation

    P = np.array(points3d, dtype=np.float64, copy=True)
    if not pivots or p <= 0:
        return P
    for f in np.flatnonzero(rng.random(len(P)) < p):
        for k in rng.choice(len(pivots), size=min(len(pivots), int(rng.integers(1, max_limbs + 1))), replace=False):
            pivot, side = pivots[k]
            axis = rng.normal(size=3)
            rot = Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.radians(rng.uniform(-max_deg, max_deg)))
            P[f, side] = (P[f, side] - P[f, pivot]) @ rot.as_matrix().T + P[f, pivot]
    return P


@dataclass
class Batch:
    points2d: torch.Tensor  # (B, L, 2) image coordinates (the model normalises them)
    target: torch.Tensor  # (B, L, 3) camera-frame 3D / RMS radius, centred on the visible centroid
    mask: torch.Tensor  # (B, L) bool, True = a visible keypoint
    adjacency: torch.Tensor  # (B, L, L) bool
    category: list[str]  # (B,)
    frame: np.ndarray  # (B,) index into the source CategorySet
    slots: np.ndarray  # (B, L) int: which source keypoint each token is (-1 = padding)

    def to(self, device) -> "Batch":
        return Batch(self.points2d.to(device), self.target.to(device), self.mask.to(device),
                     self.adjacency.to(device), self.category, self.frame, self.slots)

    def rows(self, sel: slice) -> "Batch":
        """The samples ``sel`` of this batch (a data-parallel rank's share), padding unchanged."""
        return Batch(self.points2d[sel], self.target[sel], self.mask[sel], self.adjacency[sel], self.category[sel],
                     self.frame[sel], self.slots[sel])


def category_graph(cs: CategorySet, graph: str = "skeleton", k: int = 3) -> np.ndarray | None:
    """The fixed ``(N, N)`` bool adjacency of a category: its skeleton, or k-NN on its mean 3D shape; ``None`` for
    ``input_knn`` (built per 2D input at collation). No self-loops (the model adds them)."""
    if graph == "skeleton":
        edges = cs.edges
    elif graph == "mean_knn":
        edges = knn_edges(mean_shape(cs.points3d, cs.visible), k=k, valid=cs.visible.any(0))
    elif graph in ("input_knn", "mix"):
        return None
    else:
        raise ValueError(f"graph={graph!r} is not one of {GRAPHS}.")
    return edges_to_matrix(edges, cs.n_keypoints)


def collate(points2d, target, visible, adjacency, category, frame, *, input_knn: int = 3) -> Batch:
    """Compact each sample to its visible keypoints and pad to the longest sample in the batch.

    Args are lists (one entry per sample) of ``(N_i, 2)``, ``(N_i, 3)``, ``(N_i,)`` and ``(N_i, N_i)`` arrays; an
    adjacency of ``None`` means k = ``input_knn`` nearest neighbours of that sample's 2D input.
    """
    B = len(points2d)
    idx = [np.flatnonzero(v) for v in visible]
    L = max(1, max(len(i) for i in idx))
    p2 = np.zeros((B, L, 2), np.float32)
    tg = np.zeros((B, L, 3), np.float32)
    m = np.zeros((B, L), bool)
    A = np.zeros((B, L, L), bool)
    slots = np.full((B, L), -1, np.int64)
    for b, i in enumerate(idx):
        n = len(i)
        p2[b, :n], tg[b, :n], m[b, :n], slots[b, :n] = points2d[b][i], target[b][i], True, i
        if adjacency[b] is not None:
            A[b, :n, :n] = adjacency[b][np.ix_(i, i)]
    p2t, mt = torch.from_numpy(p2), torch.from_numpy(m)
    At = torch.from_numpy(A)
    per_input = np.array([a is None for a in adjacency])
    if per_input.any():
        knn = knn_adjacency(p2t[per_input], mt[per_input], k=input_knn)
        At[torch.from_numpy(per_input)] = knn
    return Batch(p2t, torch.from_numpy(tg), mt, At, list(category), np.asarray(frame), slots)


class FrameDataset:
    """Frames of several categories with their fixed graphs; ``len`` = total frames."""

    def __init__(self, sets: dict[str, CategorySet], graph: str = "skeleton", knn_k: int = 3):
        """``graph``: one of :data:`lfm.config.GRAPHS`; ``mix`` draws a graph per batch and category
        (:func:`lfm.data.augment.graph_variant`)."""
        if graph not in GRAPHS:
            raise ValueError(f"graph={graph!r} is not one of {GRAPHS}.")
        self.sets = {c: s for c, s in sets.items() if s is not None and s.n_frames}
        if not self.sets:
            raise ValueError("FrameDataset needs at least one category with frames.")
        self.graph, self.knn_k = graph, knn_k
        self.categories = list(self.sets)
        self.adjacency = {c: category_graph(s, graph, knn_k) for c, s in self.sets.items()}
        self.pivots = {c: limb_pivots(s.edges, s.n_keypoints) if _articulated(c) else []
                       for c, s in self.sets.items()}
        self.offsets = np.cumsum([0] + [s.n_frames for s in self.sets.values()])
        self.cat_of = np.repeat(np.arange(len(self.categories)), np.diff(self.offsets))

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, i: int) -> tuple[str, int]:
        c = int(self.cat_of[i])
        return self.categories[c], int(i - self.offsets[c])

    def indices_of(self, category: str) -> np.ndarray:
        c = self.categories.index(category)
        return np.arange(self.offsets[c], self.offsets[c + 1])

    def batch(self, indices, seed: int, mirror: float = 0.0, bend: float = 0.0, rig_aug: float = 0.0,
              edge_drop: float = 0.0, **view_kw) -> Batch:
        """Views of the frames ``indices`` (fresh cameras from ``seed``; ``view_kw`` go to
        :func:`lfm.data.synthesize_views`), collated. ``mirror`` is the probability of mirroring a 3D frame
        left-right (x -> -x, the up axis y kept) before viewing it: a mirrored pose is another plausible pose.
        ``bend`` is the probability of bending one or two limbs of an articulated category (:func:`bend_limbs`).
        ``rig_aug`` is the probability that a category's frames in this batch get another rig of the same body
        (:func:`lfm.data.augment.rig_variant`); ``edge_drop`` drops graph edges (``graph='mix'`` only)."""
        indices = np.asarray(indices)
        cats = self.cat_of[indices]
        rng = np.random.default_rng(seed)
        p2, tg, vis, adj, cat, fr = [], [], [], [], [], []
        for c in np.unique(cats):
            name = self.categories[c]
            cs = self.sets[name]
            local = indices[cats == c] - self.offsets[c]
            P = cs.points3d[local]
            if bend > 0:
                P = bend_limbs(P, self.pivots[name], rng, bend)
            P = mirror_poses(P, rng, mirror)
            V, A = cs.visible[local], self.adjacency[name]
            if rig_aug > 0 and rng.random() < rig_aug:
                P, V, edges = rig_variant(P, V, cs.edges, rng)
                A = edges_to_matrix(edges, P.shape[1]) if self.graph == "skeleton" else None
            else:
                edges = cs.edges
            if self.graph == "mix":
                A = graph_variant(P, V, edges, rng, edge_drop=edge_drop)
            elif self.graph == "mean_knn" and A is None:
                A = graph_variant(P, V, edges, rng, choices=("mean_knn",))
            v = synthesize_views(P, V, seed=int(rng.integers(2**63)), **view_kw)
            tgt = _unit_radius(v.points3d, v.visible)
            for j in range(len(local)):
                p2.append(v.points2d[j]), tg.append(tgt[j]), vis.append(v.visible[j])
                adj.append(A), cat.append(name), fr.append(local[j])
        return collate(p2, tg, vis, adj, cat, fr, input_knn=self.knn_k)


def _unit_radius(points3d: np.ndarray, visible: np.ndarray) -> np.ndarray:
    r = np.sqrt((points3d**2).sum(-1).sum(1) / np.maximum(visible.sum(1), 1))
    return points3d / np.maximum(r, 1e-12)[:, None, None]


class BatchSampler:
    """Seeded index batches over a :class:`FrameDataset`; its state (``state_dict``) makes a resumed run draw the
    same batches as an uninterrupted one."""

    def __init__(self, dataset: FrameDataset, batch_size: int, *, balance: str = "category", bucket: bool = True,
                 seed: int = 0):
        if balance not in ("category", "frames"):
            raise ValueError(f"balance={balance!r} is not one of ('category', 'frames').")
        if batch_size < 1:
            raise ValueError(f"batch_size = {batch_size} must be >= 1.")
        self.ds, self.batch_size, self.balance, self.bucket = dataset, batch_size, balance, bucket
        self.rng = np.random.default_rng(seed)
        sizes = np.diff(dataset.offsets).astype(float)
        self.p = np.full(len(sizes), 1 / len(sizes)) if balance == "category" else sizes / sizes.sum()

    def next(self) -> np.ndarray:
        ds, B = self.ds, self.batch_size
        if self.bucket:
            c = self.rng.choice(len(self.p), p=self.p)
            return ds.offsets[c] + self.rng.integers(0, ds.offsets[c + 1] - ds.offsets[c], B)
        cats = self.rng.choice(len(self.p), size=B, p=self.p)
        return ds.offsets[cats] + (self.rng.random(B) * (ds.offsets[cats + 1] - ds.offsets[cats])).astype(np.int64)

    def __iter__(self):
        while True:
            yield self.next()

    def state_dict(self) -> dict:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["bit_generator"]
