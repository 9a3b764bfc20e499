"""Training batches made in torch on the training device, vectorised over the batch (the fast path of lfm.train).

The 3D frames of the training sets live as tensors on the device; one :meth:`DeviceBatches.draw` picks a category
(bucketing: one keypoint count per batch, nothing padded except hidden keypoints), frames, and draws in torch:
limb bending, mirroring, rig augmentation (:func:`lfm.data.augment.rig_variant` drawn on the rig's edges in numpy,
replayed on the frames in torch), the graph (skeleton, motion MST, mean-shape kNN or per-input kNN, edge drop),
cameras (upright or SO(3)), projection, noise and occlusion, then compacts each sample's visible keypoints to the
front. It follows the numpy reference (:meth:`lfm.data.dataset.FrameDataset.batch`) in distribution, not bit for bit
(tests/test_device_batches.py compares moments and two-sample KS tests). Differences: a rig variant drops the
keypoints never visible in the whole set (numpy: in the batch's frames); the motion MST is computed on the batch's
frames as in numpy, its spanning tree on the host (one (N, N) copy, the step's only one besides the batch size).

Random draws come from a ``torch.Generator`` on the device and a numpy generator for the per-batch choices
(category, rig plan, graph kind); both are in :meth:`state_dict`, so a resumed run draws what an uninterrupted one
would.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..graph import knn_adjacency
from .augment import GRAPH_CHOICES, edges_to_matrix, rig_variant
from .dataset import Batch, category_graph, limb_pivots, _articulated
from .schema import CategorySet

__all__ = ["DeviceBatches", "rotations_upright", "rotations_so3", "bend", "views"]


def _rodrigues(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(B, 3, 3)`` (column convention) of unit ``axis (B, 3)`` by ``angle (B,)`` radians."""
    x, y, z = axis.unbind(-1)
    O = torch.zeros_like(x)
    K = torch.stack([O, -z, y, z, O, -x, -y, x, O], -1).view(-1, 3, 3)
    s, c = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return torch.eye(3, device=axis.device, dtype=axis.dtype) + s * K + (1 - c) * K @ K


def rotations_upright(B: int, g: torch.Generator, device, elevation=30.0, roll=10.0) -> torch.Tensor:
    """World -> camera rotations, rows convention (``X_cam = X @ R``): azimuth uniform, elevation within
    +-``elevation``, roll within +-``roll`` degrees, up = +y (as :func:`lfm.data.views.random_cameras`)."""
    u = torch.rand(B, 3, generator=g, device=device)
    az, el, ro = (math.pi / 180) * torch.stack([360 * u[:, 0], elevation * (2 * u[:, 1] - 1),
                                                roll * (2 * u[:, 2] - 1)])
    e = torch.eye(3, device=device)
    cam = _rodrigues(e[2].expand(B, 3), ro) @ _rodrigues(e[0].expand(B, 3), el) @ _rodrigues(e[1].expand(B, 3), az)
    return cam.transpose(1, 2)  # columns -> rows convention


def rotations_so3(B: int, g: torch.Generator, device) -> torch.Tensor:
    """Uniform random rotations ``(B, 3, 3)``: normalised Gaussian quaternions."""
    q = torch.randn(B, 4, generator=g, device=device)
    w, x, y, z = (q / q.norm(dim=-1, keepdim=True)).unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
                        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
                        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1).view(B, 3, 3)


def bend(P: torch.Tensor, pivot: torch.Tensor, side: torch.Tensor, g: torch.Generator, p: float,
         max_deg: float = 30.0) -> torch.Tensor:
    """:func:`lfm.data.dataset.bend_limbs` in torch: with probability ``p`` per frame, rotate 1 or 2 distinct limbs
    (``pivot (K,)``, ``side (K, N)`` bool) about their pivot by a random axis and an angle within +-``max_deg``."""
    B, K = len(P), len(pivot)
    if K == 0 or p <= 0:
        return P
    u = torch.rand(B, 2, generator=g, device=P.device)
    on = torch.stack([u[:, 0] < p, (u[:, 0] < p) & (u[:, 1] < 0.5) & (K > 1)], 1)  # (B, 2): 1..2 limbs
    k1 = torch.randint(K, (B,), generator=g, device=P.device)
    k2 = (k1 + torch.randint(1, max(K, 2), (B,), generator=g, device=P.device)) % K  # distinct from k1
    for k, active in ((k1, on[:, 0]), (k2, on[:, 1])):
        axis = torch.randn(B, 3, generator=g, device=P.device, dtype=P.dtype)
        angle = (torch.rand(B, generator=g, device=P.device, dtype=P.dtype) * 2 - 1) * math.radians(max_deg)
        R = _rodrigues(axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12), angle)  # (B, 3, 3)
        c = P[torch.arange(B, device=P.device), pivot[k]][:, None]  # (B, 1, 3)
        moved = (P - c) @ R.transpose(1, 2) + c
        P = torch.where((side[k] & active[:, None])[..., None], moved, P)
    return P


def views(P: torch.Tensor, V: torch.Tensor, g: torch.Generator, *, camera="upright", projection="perspective",
          distance=(2.5, 4.0), noise=0.0, p_joint=0.0, min_visible: int = 3):
    """:func:`lfm.data.views.synthesize_views` in torch, one view per frame: ``(points2d, cam3d, visible)``."""
    B, N, _ = P.shape
    dev = P.device
    w = V[..., None].to(P.dtype)
    X = (P - (P * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)) * w
    R = rotations_so3(B, g, dev) if camera == "so3" else rotations_upright(B, g, dev)
    cam = X @ R  # (B, N, 3)
    rms = ((cam**2).sum((1, 2)) / V.sum(1).clamp_min(1)).sqrt().clamp_min(1e-12)  # (B,)
    d = (distance[0] + (distance[1] - distance[0]) * torch.rand(B, generator=g, device=dev)) * rms
    f = (sum(distance) / 2 * rms)[:, None, None]
    if projection == "orthographic":
        p2 = cam[..., :2]
    elif projection == "weak_perspective":
        p2 = cam[..., :2] * f / d[:, None, None]
    else:
        p2 = cam[..., :2] * f / (d[:, None, None] + cam[..., 2:])
    if noise > 0:
        p2 = p2 + noise * rms[:, None, None] * torch.randn(p2.shape, generator=g, device=dev)
    vis = V
    if p_joint > 0:
        vis = V & ~(torch.rand(B, N, generator=g, device=dev) < p_joint)
        too_few = vis.sum(1) < V.sum(1).clamp_max(min_visible)
        vis = torch.where(too_few[:, None], V, vis)
    wv = vis[..., None].to(P.dtype)
    cam = (cam - (cam * wv).sum(1, keepdim=True) / wv.sum(1, keepdim=True).clamp_min(1)) * wv
    return p2 * wv, cam, vis


def _motion_mst(P: torch.Tensor, V: torch.Tensor) -> np.ndarray:
    """:func:`lfm.data.schema.skeleton_from_motion` of frames ``(F, N, 3)``: weights in torch, the tree on the host."""
    from scipy.sparse.csgraph import minimum_spanning_tree

    d = torch.cdist(P.double(), P.double())  # (F, N, N)
    both = (V[:, :, None] & V[:, None, :]).double()
    cnt = both.sum(0)
    mean = (d * both).sum(0) / cnt.clamp_min(1)
    var = ((d - mean) ** 2 * both).sum(0) / (cnt - 1).clamp_min(1)
    ok = cnt > 1
    scale = mean[ok & (mean > 0)].median() if bool((ok & (mean > 0)).any()) else torch.tensor(1.0)
    w = var.sqrt() / mean.clamp_min(1e-9 * float(scale)) + 1e-3 * mean / scale
    w = torch.where(ok, w + 1e-12, torch.zeros_like(w)).fill_diagonal_(0).cpu().numpy()
    tree = minimum_spanning_tree(np.triu(w)).tocoo()
    return np.stack([tree.row, tree.col], 1).astype(np.int64)


def _replay_rig(P: torch.Tensor, V: torch.Tensor, ops: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a rig change recorded by :func:`lfm.data.augment.rig_variant` to frames ``(B, N, 3)`` in torch."""
    for op in ops:
        if op[0] == "subset":
            keep = torch.from_numpy(np.flatnonzero(op[1])).to(P.device)
            P, V = P[:, keep], V[:, keep]
        elif op[0] == "merge":
            _, a, b = op
            P, V = P.clone(), V.clone()
            P[:, a] = 0.5 * (P[:, a] + P[:, b])
            V[:, a] = V[:, a] & V[:, b]
            keep = torch.tensor([i for i in range(P.shape[1]) if i != b], device=P.device)
            P, V = P[:, keep], V[:, keep]
        else:  # a virtual marker on bone (a, b), rigid with the bone
            _, a, b, t, o1, o2 = op
            dv = P[:, b] - P[:, a]  # (B, 3)
            length = dv.norm(dim=-1, keepdim=True)
            u = dv / length.clamp_min(1e-9)
            ref = torch.where(u[:, 1:2].abs() < 0.9, u.new_tensor([0.0, 1.0, 0.0]), u.new_tensor([1.0, 0.0, 0.0]))
            e1 = torch.linalg.cross(u, ref)
            e1 = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(1e-9)
            e2 = torch.linalg.cross(u, e1)
            m = P[:, a] + t * dv + length * (float(o1) * e1 + float(o2) * e2)
            P = torch.cat([P, m[:, None]], 1)
            V = torch.cat([V, (V[:, a] & V[:, b])[:, None]], 1)
    return P, V


class _Set:
    """One category's frames and graph on the device."""

    def __init__(self, name: str, cs: CategorySet, graph: str, knn_k: int, device):
        V = np.asarray(cs.visible, bool)
        self.name, self.n_frames, self.edges = name, cs.n_frames, np.asarray(cs.edges, np.int64).reshape(-1, 2)
        self.P = torch.from_numpy(np.where(V[..., None], cs.points3d, 0.0).astype(np.float32)).to(device)
        self.V = torch.from_numpy(V).to(device)
        self.used = V.any(0)
        A = category_graph(cs, graph, knn_k)
        self.A = None if A is None else torch.from_numpy(A).to(device)
        piv = limb_pivots(cs.edges, cs.n_keypoints) if _articulated(name) else []
        self.pivot = torch.tensor([p for p, _ in piv], dtype=torch.long, device=device)
        self.side = torch.from_numpy(np.array([s for _, s in piv], bool).reshape(len(piv), cs.n_keypoints)).to(device)


class DeviceBatches:
    """Seeded training batches of ``batch_size`` samples over ``sets``, made on ``device`` (module docstring).

    ``balance``: 'category' (each category equally often) or 'frames' (by frame count); one category per batch.
    ``rank``: a data-parallel rank draws its own stream (seeded by ``seed`` and ``rank``)."""

    def __init__(self, sets: dict[str, CategorySet], batch_size: int, *, graph: str = "skeleton", knn_k: int = 3,
                 balance: str = "category", seed: int = 0, rank: int = 0, device="cpu"):
        if balance not in ("category", "frames"):
            raise ValueError(f"balance={balance!r} is not one of ('category', 'frames').")
        if batch_size < 1:
            raise ValueError(f"batch_size = {batch_size} must be >= 1.")
        self.device = torch.device(device)
        self.sets = [_Set(c, s, graph, knn_k, self.device) for c, s in sets.items() if s is not None and s.n_frames]
        if not self.sets:
            raise ValueError("DeviceBatches needs at least one category with frames.")
        self.batch_size, self.graph, self.knn_k = batch_size, graph, knn_k
        sizes = np.array([s.n_frames for s in self.sets], float)
        self.p = np.full(len(sizes), 1 / len(sizes)) if balance == "category" else sizes / sizes.sum()
        self.rng = np.random.default_rng([seed, rank, 19])
        self.gen = torch.Generator(self.device).manual_seed(int(self.rng.integers(2**62)))

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.gen.set_state(state["gen"].cpu())

    def draw(self, *, mirror=0.0, bend_p=0.0, rig_aug=0.0, edge_drop=0.0, camera="upright",
             projection="perspective", noise=0.0, p_joint=0.0) -> Batch:
        """One batch (the arguments as :meth:`lfm.data.dataset.FrameDataset.batch`'s), on the device."""
        s = self.sets[self.rng.choice(len(self.sets), p=self.p)]
        g, dev, B = self.gen, self.device, self.batch_size
        idx = torch.randint(s.n_frames, (B,), generator=g, device=dev)
        P, V = s.P[idx], s.V[idx]  # (B, N, 3), (B, N)
        P = bend(P, s.pivot, s.side, g, bend_p)
        if mirror > 0:
            flip = torch.where(torch.rand(B, generator=g, device=dev) < mirror, -1.0, 1.0)
            P = P * torch.stack([flip, torch.ones_like(flip), torch.ones_like(flip)], 1)[:, None]
        A, edges = s.A, s.edges
        if rig_aug > 0 and self.rng.random() < rig_aug:
            ops = []
            _, _, edges = rig_variant(np.zeros((1, len(s.used), 3)), s.used[None], s.edges, self.rng, log=ops)
            P, V = _replay_rig(P, V, ops)
            A = edges_to_matrix(edges, P.shape[1]) if self.graph == "skeleton" else None
            A = None if A is None else torch.from_numpy(A).to(dev)
        kind = None
        if self.graph == "mix":
            kind = GRAPH_CHOICES[int(self.rng.integers(len(GRAPH_CHOICES)))]
        elif self.graph == "mean_knn" and A is None:
            kind = "mean_knn"
        elif self.graph == "input_knn":
            kind = "input_knn"
        if kind is not None:
            A = self._graph(kind, P, V, edges, edge_drop)
        p2, cam, vis = views(P, V, g, camera=camera, projection=projection, noise=noise, p_joint=p_joint)
        r = ((cam**2).sum((1, 2)) / vis.sum(1).clamp_min(1)).sqrt().clamp_min(1e-12)
        return _compact(p2, cam / r[:, None, None], vis, A, idx, s.name, self.knn_k)

    def _graph(self, kind: str, P, V, edges, edge_drop: float):
        """:func:`lfm.data.augment.graph_variant` on the device; None = kNN of each 2D input (after the views)."""
        n, dev = P.shape[1], P.device
        if kind == "input_knn":
            return None
        if kind == "skeleton":
            A = torch.from_numpy(edges_to_matrix(edges, n)).to(dev)
        elif kind == "motion_mst":
            A = torch.from_numpy(edges_to_matrix(_motion_mst(P, V) if len(P) >= 2 else edges, n)).to(dev)
        else:  # mean_knn, k = 2..4, on the batch's mean shape
            w = V[..., None].to(P.dtype)
            X = (P - (P * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)) * w
            mean = X.sum(0) / w.sum(0).clamp_min(1)  # (N, 3)
            A = knn_adjacency(mean[None], V.any(0)[None], k=int(self.rng.integers(2, 5)))[0]
        if edge_drop > 0:
            keep = torch.rand(n, n, generator=self.gen, device=dev) >= edge_drop
            keep = torch.triu(keep, 1)
            A = A & (keep | keep.T)
        return A


def _compact(p2, target, vis, A, frame, name: str, knn_k: int) -> Batch:
    """Each sample's visible keypoints first (in order), padded to the batch's most visible: :func:`collate`."""
    B, N = vis.shape
    order = torch.sort((~vis).to(torch.uint8), dim=1, stable=True).indices  # (B, N) visible first
    L = max(1, int(vis.sum(1).max()))  # the step's one sync
    order = order[:, :L]
    mask = vis.gather(1, order)
    p2 = p2.gather(1, order[..., None].expand(B, L, 2)) * mask[..., None]
    target = target.gather(1, order[..., None].expand(B, L, 3)) * mask[..., None]
    if A is None:
        adj = knn_adjacency(p2, mask, k=knn_k)
    else:
        adj = A[order[:, :, None], order[:, None, :]] & mask[:, :, None] & mask[:, None, :]
    slots = torch.where(mask, order, torch.full_like(order, -1))
    return Batch(p2, target, mask, adj, [name] * B, frame, slots)
