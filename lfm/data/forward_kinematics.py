"""Rotations and forward kinematics shared by the rotation-based motion formats (:mod:`~lfm.data.asfamc`,
:mod:`~lfm.data.bvh`, :mod:`~lfm.data.deepmimic`, :mod:`~lfm.data.pig`): rotation matrices (column vectors,
right-handed) about an axis, from Euler angles and from quaternions, joint positions over a parent table, the
tree's edges and the z-up -> y-up change of axes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Z_UP_TO_Y_UP", "axis_rotation", "euler", "quat_matrix", "forward_kinematics", "tree_edges"]

Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # row vectors: (x, y, z) -> (x, z, -y)


def axis_rotation(axis: str, angle) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` about ``axis`` ('x', 'y' or 'z') by ``angle`` radians (column vectors)."""
    a = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i = "xyz".index(axis.lower())
    j, k = (i + 1) % 3, (i + 2) % 3
    R[..., i, i] = 1.0
    R[..., j, j], R[..., j, k], R[..., k, j], R[..., k, k] = c, -s, s, c
    return R


def euler(angles, axes: str) -> np.ndarray:
    """``R = R_axes[0](angles[..., 0]) @ R_axes[1](angles[..., 1]) @ ...`` (radians): the product in the listed order,
    i.e. intrinsic rotations about the listed axes (the BVH channel convention); ``(..., 3, 3)``."""
    angles = np.asarray(angles, dtype=np.float64)
    R = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for n, ax in enumerate(axes):
        R = R @ axis_rotation(ax, angles[..., n])
    return R


def quat_matrix(q, order: str = "wxyz") -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of (normalised) quaternions stored as ``wxyz`` or ``xyzw``."""
    q = np.asarray(q, dtype=np.float64)
    if order == "xyzw":
        q = q[..., [3, 0, 1, 2]]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def forward_kinematics(parents, local_rot, local_trans, root_pos, *, bone_offsets: bool = False) -> np.ndarray:
    """Joint positions ``(F, N, 3)`` of a tree: joint ``j`` sits at its parent's position plus the parent's global
    rotation applied to ``local_trans[..., j, :]``; its global rotation is the parent's times ``local_rot[:, j]``.
    ``parents[j] < j`` (a topological order), ``parents[0] == -1``; the root sits at ``root_pos (F, 3)``.
    ``bone_offsets``: ``local_trans[..., j, :]`` is turned by joint ``j``'s own global rotation instead (a bone
    whose end point moves with the bone, as in Acclaim ASF/AMC)."""
    local_rot = np.asarray(local_rot, np.float64)
    F, N = local_rot.shape[:2]
    t = np.broadcast_to(np.asarray(local_trans, np.float64), (F, N, 3))
    G = np.empty((F, N, 3, 3))
    P = np.empty((F, N, 3))
    for j, p in enumerate(parents):
        if p < 0:
            G[:, j], P[:, j] = local_rot[:, j], root_pos
        else:
            if p >= j:
                raise ValueError(f"joint {j} has parent {p}: the parent table is not in topological order.")
            G[:, j] = G[:, p] @ local_rot[:, j]
            P[:, j] = P[:, p] + np.einsum("fab,fb->fa", G[:, j] if bone_offsets else G[:, p], t[:, j])
    return P


def tree_edges(parents) -> np.ndarray:
    """``(N - 1, 2)`` edges ``(parent, child)`` of a parent table (root: parent -1)."""
    return np.array([(p, j) for j, p in enumerate(parents) if p >= 0], dtype=np.int64).reshape(-1, 2)
