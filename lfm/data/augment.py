"""Rig and graph augmentation: one body yields many rigs and many graphs, so no rig or graph identifies a category.

* :func:`rig_variant` turns a batch of frames of one rig into another valid rig of the same body: a random subset
  of its keypoints (30-100 %), virtual markers on its bones (a point along a bone, offset from it in the bone's own
  frame, so it moves rigidly with the bone), and merged neighbours (two joined keypoints become their midpoint).
  The skeleton follows each change (a removed keypoint's neighbours are joined through it; a marker splits its
  bone; a merge contracts its edge), so the result is still a connected tree when the input was one.
* :func:`graph_variant` draws the graph the model sees for a batch: the rig skeleton, the motion MST of the batch's
  frames, k nearest neighbours of the batch's mean 3D shape (k = 2-4), or k = 3 nearest neighbours of each 2D input
  (the graph ``lfm.lift`` falls back to without a skeleton), then drops each edge with a probability.

All functions are pure numpy and seeded through the ``rng`` passed in. Points are rows, ``(F, N, 3)``.
"""

from __future__ import annotations

import numpy as np

from .schema import knn_edges, mean_shape, skeleton_from_motion

__all__ = ["rig_variant", "graph_variant", "GRAPH_CHOICES", "edges_to_matrix"]

GRAPH_CHOICES = ("skeleton", "motion_mst", "mean_knn", "input_knn")


def edges_to_matrix(edges: np.ndarray, n: int) -> np.ndarray:
    """Symmetric ``(n, n)`` bool adjacency from ``(E, 2)`` edges, without self-loops (the model adds those)."""
    A = np.zeros((n, n), dtype=bool)
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if len(e):
        A[e[:, 0], e[:, 1]] = A[e[:, 1], e[:, 0]] = True
    return A


def _subset(P, V, edges, keep: np.ndarray):
    """Keep the keypoints ``keep`` (bool, N). Kept neighbours stay joined; the kept keypoints around each connected
    group of removed ones are joined to one of them (a star), so a tree stays a tree and a graph stays connected."""
    n = len(keep)
    adj = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    new_id = -np.ones(n, np.int64)
    new_id[keep] = np.arange(keep.sum())
    out = {(min(new_id[a], new_id[b]), max(new_id[a], new_id[b])) for a, b in edges if keep[a] and keep[b]}
    seen = np.zeros(n, bool)
    for s0 in np.flatnonzero(~keep):
        if seen[s0]:
            continue
        seen[s0], stack, boundary = True, [s0], set()
        while stack:  # one connected group of removed keypoints and the kept ones around it
            u = stack.pop()
            for v in adj[u]:
                if keep[v]:
                    boundary.add(int(new_id[v]))
                elif not seen[v]:
                    seen[v] = True
                    stack.append(v)
        hub, *rest = sorted(boundary) or [None]
        out |= {(min(hub, r), max(hub, r)) for r in rest}
    e = np.array(sorted(out), np.int64).reshape(-1, 2)
    return P[:, keep], V[:, keep], e


def _virtual_markers(P, V, edges, rng, k: int, log=None):
    """Add ``k`` markers on random bones: ``a + t (b - a)`` plus an offset in the bone's frame (rigid with it)."""
    P, V, edges = P.copy(), V.copy(), [tuple(e) for e in edges]
    for _ in range(k):
        if not edges:
            break
        i = int(rng.integers(len(edges)))
        a, b = edges.pop(i)
        d = P[:, b] - P[:, a]  # (F, 3)
        length = np.linalg.norm(d, axis=-1, keepdims=True)
        u = d / np.maximum(length, 1e-9)
        ref = np.where(np.abs(u[:, 1:2]) < 0.9, np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]))
        e1 = np.cross(u, ref)
        e1 /= np.maximum(np.linalg.norm(e1, axis=-1, keepdims=True), 1e-9)
        e2 = np.cross(u, e1)
        t = rng.uniform(0.15, 0.85)
        o1, o2 = rng.normal(scale=0.15, size=2)
        if log is not None:
            log.append(("marker", a, b, t, o1, o2))
        m = P[:, a] + t * d + length * (o1 * e1 + o2 * e2)
        n = P.shape[1]
        P = np.concatenate([P, m[:, None]], 1)
        V = np.concatenate([V, (V[:, a] & V[:, b])[:, None]], 1)
        edges += [(a, n), (n, b)]
    return P, V, np.array(edges, np.int64).reshape(-1, 2)


def _merge(P, V, edges, rng, k: int, log=None):
    """Contract ``k`` random edges: the two keypoints become one at their midpoint."""
    for _ in range(k):
        if len(edges) < 2:
            break
        a, b = edges[int(rng.integers(len(edges)))]
        if log is not None:
            log.append(("merge", int(a), int(b)))
        P = P.copy()
        P[:, a] = 0.5 * (P[:, a] + P[:, b])
        V = V.copy()
        V[:, a] = V[:, a] & V[:, b]
        e = np.where(edges == b, a, edges)
        e = e[e[:, 0] != e[:, 1]]
        e = np.unique(np.sort(e, 1), axis=0)
        keep = np.ones(P.shape[1], bool)
        keep[b] = False
        new_id = np.cumsum(keep) - 1
        P, V, edges = P[:, keep], V[:, keep], new_id[e]
    return P, V, edges


def rig_variant(points3d: np.ndarray, visible: np.ndarray, edges: np.ndarray, rng: np.random.Generator, *,
                min_keep: float = 0.3, max_markers: float = 0.3, max_merges: float = 0.15, min_points: int = 5,
                log: list | None = None):
    """Another rig of the same body for frames ``(F, N, 3)`` of one rig (see the module docstring).

    Returns ``(points3d, visible, edges)`` with a new keypoint count ``N'``; the same rig change applies to every
    frame. Keypoints that are never visible in these frames are dropped first. ``log``: a list that receives the
    change as operations ``("subset", keep)``, ``("merge", a, b)``, ``("marker", a, b, t, o1, o2)`` in order (what
    :mod:`lfm.data.device_batches` replays in torch).
    """
    P = np.asarray(points3d, np.float64)
    V = np.asarray(visible, bool)
    e = np.asarray(edges, np.int64).reshape(-1, 2)
    used = V.any(0)
    if not used.all():
        P, V, e = _subset(P, V, e, used)
        if log is not None:
            log.append(("subset", used))
    n = P.shape[1]
    P, V, e = _merge(P, V, e, rng, int(rng.integers(0, int(max_merges * n) + 1)), log)
    P, V, e = _virtual_markers(P, V, e, rng, int(rng.integers(0, int(max_markers * n) + 1)), log)
    n = P.shape[1]
    if n > min_points:
        k = max(min_points, int(round(rng.uniform(min_keep, 1.0) * n)))
        keep = np.zeros(n, bool)
        keep[rng.choice(n, size=k, replace=False)] = True
        P, V, e = _subset(P, V, e, keep)
        if log is not None:
            log.append(("subset", keep))
    return P.astype(np.float32), V, e


def graph_variant(points3d: np.ndarray, visible: np.ndarray, edges: np.ndarray, rng: np.random.Generator, *,
                  choices=GRAPH_CHOICES, edge_drop: float = 0.0) -> np.ndarray | None:
    """The ``(N, N)`` bool adjacency of a batch of frames of one rig, drawn from ``choices``;
    ``None`` means "k = 3 nearest neighbours of each 2D input" (built per sample at collation). ``edge_drop`` is the
    probability of dropping each edge."""
    n = points3d.shape[1]
    kind = choices[int(rng.integers(len(choices)))]
    if kind == "input_knn":
        return None
    if kind == "skeleton":
        e = np.asarray(edges, np.int64).reshape(-1, 2)
    elif kind == "motion_mst":
        e = skeleton_from_motion(points3d, visible) if len(points3d) >= 2 else np.asarray(edges).reshape(-1, 2)
    elif kind == "mean_knn":
        e = knn_edges(mean_shape(points3d, visible), k=int(rng.integers(2, 5)), valid=visible.any(0))
    else:
        raise ValueError(f"graph choice {kind!r} is not one of {GRAPH_CHOICES}.")
    if edge_drop > 0 and len(e):
        e = e[rng.random(len(e)) >= edge_drop]
    return edges_to_matrix(e, n)
