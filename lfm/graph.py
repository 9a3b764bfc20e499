"""Keypoint graphs for the local (graph-attention) branch: skeleton edges -> adjacency, k-nearest-neighbour graphs.

An adjacency is ``(B, N, N)`` bool, ``True`` where token ``i`` may attend to token ``j``; it is made symmetric and
never links a padded or invisible keypoint. Self-loops are added by the model itself.
"""

from __future__ import annotations

import torch

from .geometry import _weights

__all__ = ["edges_to_adjacency", "knn_adjacency"]


def edges_to_adjacency(edges, n_points: int, batch: int | None = None) -> torch.Tensor:
    """Symmetric ``(N, N)`` bool adjacency (or ``(B, N, N)`` when ``batch`` is given) from ``(E, 2)`` int edges."""
    e = torch.as_tensor(edges)
    if e.numel() == 0:
        e = e.reshape(0, 2)
    if e.dim() != 2 or e.shape[1] != 2 or e.is_floating_point():
        raise ValueError(f"edges has shape {tuple(e.shape)} and dtype {e.dtype}; expected (E, 2) integer pairs.")
    if e.numel() and (int(e.min()) < 0 or int(e.max()) >= n_points):
        raise ValueError(
            f"edges reference keypoint {int(e.min()) if int(e.min()) < 0 else int(e.max())}, outside 0..{n_points - 1}; "
            "each edge must join two keypoints of this rig."
        )
    adj = torch.zeros(n_points, n_points, dtype=torch.bool)
    adj[e[:, 0], e[:, 1]] = True
    adj[e[:, 1], e[:, 0]] = True
    return adj if batch is None else adj.expand(batch, n_points, n_points).clone()


def knn_adjacency(points: torch.Tensor, mask: torch.Tensor | None = None, k: int = 4) -> torch.Tensor:
    """Symmetric k-nearest-neighbour graph over the visible points, ``(B, N, N)`` bool.

    Works in any dimension (2D inputs for a per-input graph; a category's mean 3D shape for a fixed graph).
    Ties are broken by index, so the graph is permutation-equivariant for distinct distances.
    """
    if points.dim() != 3:
        raise ValueError(f"points has shape {tuple(points.shape)}; expected (B, N, D).")
    B, N, _ = points.shape
    w = _weights(mask, points)
    valid = w > 0  # (B, N)
    d = torch.cdist(points.float(), points.float())  # (B, N, N)
    big = torch.finfo(d.dtype).max
    d = d.masked_fill(~(valid[:, :, None] & valid[:, None, :]), big)
    d.diagonal(dim1=1, dim2=2).fill_(big)
    kk = min(k, max(N - 1, 0))
    adj = torch.zeros(B, N, N, dtype=torch.bool, device=points.device)
    if kk > 0:
        idx = d.topk(kk, dim=-1, largest=False).indices  # (B, N, k)
        adj.scatter_(2, idx, True)
    adj &= valid[:, :, None] & valid[:, None, :]
    adj.diagonal(dim1=1, dim2=2).fill_(False)
    return adj | adj.transpose(1, 2)
