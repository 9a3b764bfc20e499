"""Random articulated bodies: an unlimited, training-only family of rigs (never a benchmark category).

Each body is its own rig ``"proc_<seed>_<i>"``: a tree of rigid bones drawn from one of four plans,

* ``"quadruped"``: a horizontal spine with 1-4 pairs of mirrored limbs (1-4 segments, hanging down), a neck and
  head in front and an optional tail;
* ``"biped"``: an upright spine with a mirrored pair of legs at the bottom, an optional mirrored pair of arms at the
  top, a neck and head, an optional tail;
* ``"chain"``: a snake / fish-like horizontal chain with optional pairs of fins;
* ``"star"``: radial limbs (3-8, 1-5 segments) around a central hub, flat (starfish) or spider-like (legs out and
  down);

with random bone lengths, random joint limits and optional virtual markers rigidly attached off the bones.
Coordinates are arbitrary units (a body is about 1 long), +y up with the body standing / lying in a plausible
orientation at rest; the root stays fixed.

Kinematics: every non-root node ``i`` has a bone vector ``b_i`` (its rest offset from its parent, world axes at
rest) and a joint at its parent with three Euler angles ``(x, y, z)`` within per-axis limits (a locked axis has
limits ``(0, 0)``, a hinge one free axis). Its frame is ``G_i = G_parent @ Rz @ Ry @ Rx`` and its position
``p_i = p_parent + G_i @ b_i``, so every bone keeps its length. Mirrored limbs have mirrored limits (rotations
about x and y change sign under the z-reflection). Poses are one smooth trajectory per body through random
waypoints within the limits (:func:`lfm.data.kinematic.smooth_trajectory`); forward kinematics is vectorised over
poses and over the nodes of each tree depth.
"""

from __future__ import annotations

import math

import numpy as np

from .schema import CategorySet

__all__ = ["PLANS", "generate", "random_body", "pose_body"]

PLANS = ("quadruped", "biped", "chain", "star")
MAX_KEYPOINTS = 60


class _Builder:
    """Collects nodes: parent, rest bone vector (world axes at rest), per-axis angle limits, a kind label."""

    def __init__(self, root=(0.0, 0.0, 0.0)):
        self.parent, self.bone, self.lo, self.hi, self.kind = [-1], [np.asarray(root, float)], [np.zeros(3)], \
            [np.zeros(3)], ["root"]
        self.frame = [np.eye(3)]

    def add(self, parent: int, bone, lo=(0, 0, 0), hi=(0, 0, 0), kind: str = "", frame=None) -> int:
        self.parent.append(parent)
        self.bone.append(np.asarray(bone, float))
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        self.lo.append(np.minimum(lo, hi))
        self.hi.append(np.maximum(lo, hi))
        self.kind.append(kind)
        self.frame.append(np.eye(3) if frame is None else np.asarray(frame, float))
        return len(self.parent) - 1

    def position(self, i: int) -> np.ndarray:
        p = np.zeros(3)
        while i >= 0:
            p = p + self.bone[i]
            i = self.parent[i]
        return p

    def __len__(self):
        return len(self.parent)


_M = np.diag([1.0, 1.0, -1.0])


def _mirror(v):
    return _M @ v


def _rot_y(phi: float) -> np.ndarray:
    c, s = math.cos(phi), math.sin(phi)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _mirror_limits(lo, hi):
    """Limits of the z-mirrored joint: angles about x and y change sign, about z they do not."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    s = np.array([-1.0, -1.0, 1.0])
    a, b = lo * s, hi * s
    return np.minimum(a, b), np.maximum(a, b)


def _ball(rng, sx, sy, sz):
    """Symmetric-ish limits with half widths drawn up to (sx, sy, sz)."""
    h = np.array([sx, sy, sz]) * rng.uniform(0.3, 1.0, 3)
    skew = rng.uniform(0.5, 1.0, 3)
    return -h * skew, h * (1.5 - skew)


def _hinge_z(rng, bend, other=0.05):
    """A hinge about z (knee / elbow): range on one side of 0 (``bend`` > 0 or < 0), the other axes nearly locked."""
    h = abs(bend) * rng.uniform(0.5, 1.0)
    lo = np.array([-other, -other, -0.1 * h if bend > 0 else -h])
    hi = np.array([other, other, h if bend > 0 else 0.1 * h])
    return lo, hi


def _direction(rng, base, spread):
    v = np.asarray(base, float) + rng.normal(0, spread, 3)
    return v / np.linalg.norm(v)


def _limb(B: _Builder, rng, attach: int, start_dir, n_seg: int, length: float, kind: str, bend: float, girdle=None):
    """A limb hanging from ``attach``: an optional rigid girdle bone, then ``n_seg`` segments (the first a ball
    joint, the rest hinges about z). Returns the node ids of (girdle, segments...)."""
    ids = []
    parent = attach
    if girdle is not None:
        parent = B.add(attach, girdle, kind=f"{kind}_girdle")
        ids.append(parent)
    seg = length / n_seg
    d = np.asarray(start_dir, float)
    for k in range(n_seg):
        if k == 0:
            lo, hi = _ball(rng, 0.5, 0.4, 1.0)
        else:
            lo, hi = _hinge_z(rng, bend)
        ids.append(B.add(parent, d * seg * rng.uniform(0.7, 1.3), lo, hi, kind))
        parent = ids[-1]
        # the next segment bends a little at rest (alternating directions like knee / ankle)
        d = _direction(rng, d + np.array([0.25 * np.sign(bend) * (-1) ** k, 0.0, 0.0]), 0.05)
    return ids


def _mirrored_pair(B: _Builder, rng, attach: int, girdle, start_dir, n_seg: int, length: float, kind: str,
                   bend: float):
    """Right limb built at random, left limb its z-mirror (same bone lengths, mirrored limits)."""
    first = len(B)
    right = _limb(B, rng, attach, start_dir, n_seg, length, f"{kind}_r", bend, girdle=girdle)
    left = []
    old_to_new = {attach: attach}
    for i in range(first, len(B)):
        lo, hi = _mirror_limits(B.lo[i], B.hi[i])
        j = B.add(old_to_new[B.parent[i]], _mirror(B.bone[i]), lo, hi, B.kind[i].replace("_r", "_l"),
                  frame=_M @ B.frame[i] @ _M)
        old_to_new[i] = j
        left.append(j)
    return right, left


def _chain(B: _Builder, rng, attach: int, direction, n: int, length: float, kind: str, yaw: float, pitch: float,
           roll: float = 0.05):
    ids, parent = [], attach
    d = np.asarray(direction, float)
    for _ in range(n):
        lo, hi = _ball(rng, roll, yaw, pitch)
        parent = B.add(parent, d * (length / n) * rng.uniform(0.7, 1.3), lo, hi, kind)
        ids.append(parent)
        d = _direction(rng, d, 0.08)
    return ids


def _quadruped(rng, B_budget: int) -> _Builder:
    k = int(rng.integers(1, 5))  # limb pairs
    n_spine = int(rng.integers(max(2, k), 8))
    spine_len = rng.uniform(0.6, 1.2)
    leg_len = rng.uniform(0.3, 0.9) * spine_len
    segs = int(rng.integers(1, 5))
    height = leg_len * 0.9
    B = _Builder((0.0, height, 0.0))
    spine = [0] + _chain(B, rng, 0, (-1, 0, 0), n_spine, spine_len, "spine", 0.25, 0.25, 0.1)
    # limbs at k spine nodes from front (0) to back
    at = np.unique(np.round(np.linspace(0, len(spine) - 1, k)).astype(int))
    width = rng.uniform(0.08, 0.25) * spine_len
    for a in at:
        girdle = np.array([0.0, -0.02, width]) * rng.uniform(0.8, 1.2)
        bend = rng.choice([-1.0, 1.0]) * rng.uniform(0.8, 2.2)
        _mirrored_pair(B, rng, spine[a], girdle, _direction(rng, (0, -1, 0.1), 0.1), segs, leg_len, "leg", bend)
    neck = _chain(B, rng, 0, _direction(rng, (1, 0.8, 0), 0.2), int(rng.integers(1, 4)), rng.uniform(0.1, 0.4),
                  "neck", 0.6, 0.6, 0.2)
    B.add(neck[-1], _direction(rng, (1, -0.2, 0), 0.2) * rng.uniform(0.08, 0.25), *_ball(rng, 0.3, 0.5, 0.5),
          kind="head")
    if rng.random() < 0.6:
        _chain(B, rng, spine[-1], _direction(rng, (-1, -0.3, 0), 0.3), int(rng.integers(1, 7)),
               rng.uniform(0.2, 0.8) * spine_len, "tail", 0.5, 0.5, 0.1)
    return B


def _biped(rng, B_budget: int) -> _Builder:
    spine_len = rng.uniform(0.4, 0.8)
    leg_len = rng.uniform(0.7, 1.4) * spine_len
    B = _Builder((0.0, leg_len * 0.95, 0.0))
    spine = [0] + _chain(B, rng, 0, (0, 1, 0), int(rng.integers(1, 5)), spine_len, "spine", 0.3, 0.3, 0.2)
    hip = rng.uniform(0.08, 0.2) * spine_len
    _mirrored_pair(B, rng, 0, np.array([0.0, -0.05, hip]), _direction(rng, (0, -1, 0), 0.05),
                   int(rng.integers(2, 5)), leg_len, "leg", rng.uniform(1.2, 2.4))
    if rng.random() < 0.85:
        shoulder = rng.uniform(0.15, 0.35) * spine_len
        _mirrored_pair(B, rng, spine[-1], np.array([0.0, -0.03, shoulder]), _direction(rng, (0, -1, 0.3), 0.2),
                       int(rng.integers(1, 5)), rng.uniform(0.6, 1.2) * spine_len, "arm", -rng.uniform(1.0, 2.4))
    neck = _chain(B, rng, spine[-1], (0, 1, 0), int(rng.integers(1, 3)), rng.uniform(0.05, 0.2), "neck",
                  0.4, 0.6, 0.3)
    B.add(neck[-1], np.array([0.02, 1, 0]) * rng.uniform(0.1, 0.25), *_ball(rng, 0.3, 0.6, 0.5), kind="head")
    if rng.random() < 0.3:
        _chain(B, rng, 0, _direction(rng, (-1, -0.5, 0), 0.2), int(rng.integers(1, 5)), rng.uniform(0.2, 0.8),
               "tail", 0.5, 0.5, 0.1)
    return B


def _chain_body(rng, B_budget: int) -> _Builder:
    n = int(rng.integers(5, min(40, B_budget)))
    length = rng.uniform(0.8, 1.5)
    B = _Builder((0.0, rng.uniform(0.0, 0.3), 0.0))
    yaw = max(0.15, rng.uniform(2.0, 5.0) / n)  # a total bend of a few radians whatever the length
    body = [0] + _chain(B, rng, 0, (-1, 0, 0), n, length, "chain", yaw, 0.3 * yaw * rng.random(), 0.02)
    B.add(0, np.array([1, 0, 0]) * rng.uniform(0.05, 0.15), kind="head")
    if rng.random() < 0.5 and len(B) + 4 <= B_budget:  # fins
        for a in np.unique(rng.integers(1, max(2, len(body) // 2), int(rng.integers(1, 3)))):
            _mirrored_pair(B, rng, body[a], None, _direction(rng, (-0.5, -0.3, 1), 0.2), int(rng.integers(1, 3)),
                           rng.uniform(0.05, 0.2), "fin", rng.uniform(0.3, 1.0))
    return B


def _star(rng, B_budget: int) -> _Builder:
    arms = int(rng.integers(3, 9))
    segs = int(rng.integers(1, 6))
    while arms * segs + 1 > B_budget:
        segs -= 1
    spider = rng.random() < 0.5
    length = rng.uniform(0.3, 0.8)
    B = _Builder((0.0, length * (0.6 if spider else 0.05), 0.0))
    phase = rng.uniform(0, 2 * np.pi)
    for a in range(arms):
        th = phase + 2 * np.pi * a / arms + rng.normal(0, 0.1)
        C = _rot_y(-th)  # the arm's joint frame: local x along the arm, local z horizontal (elevation about it)
        parent = 0
        for k in range(segs):
            if spider:
                d = C @ (np.array([1.0, 0.5, 0.0]) if k == 0 else _direction(rng, (0.35, -1.0, 0.0), 0.1))
                lo, hi = (np.array([-0.05, -0.4, -0.5]), np.array([0.05, 0.4, 0.3])) if k == 0 else \
                    (np.array([-0.05, -0.1, -0.3]), np.array([0.05, 0.1, 0.9]))
            else:
                d = C @ _direction(rng, (1.0, 0.0, 0.0), 0.05)
                lo, hi = _ball(rng, 0.1, 0.4, 0.5)
            lo, hi = lo * rng.uniform(0.5, 1.0, 3), hi * rng.uniform(0.5, 1.0, 3)
            parent = B.add(parent, d / np.linalg.norm(d) * (length / segs) * rng.uniform(0.7, 1.3), lo, hi, "arm",
                           frame=C)
    return B


_PLAN_FN = {"quadruped": _quadruped, "biped": _biped, "chain": _chain_body, "star": _star}


def _add_markers(B: _Builder, rng, per_bone: float, budget: int) -> None:
    """Virtual markers: points off a bone, rigid in its frame (leaf nodes hanging from the bone's distal node)."""
    bones = [i for i in range(1, len(B)) if B.kind[i] != "marker"]
    for i in rng.permutation(bones):
        if len(B) >= budget:
            break
        if rng.random() >= per_bone:
            continue
        b = B.bone[i]
        L = np.linalg.norm(b)
        if L < 1e-6:
            continue
        perp = np.cross(b, rng.normal(size=3))
        perp *= rng.uniform(0.1, 0.3) * L / max(np.linalg.norm(perp), 1e-9)
        B.add(int(i), (rng.uniform(0.2, 0.8) - 1.0) * b + perp, kind="marker")


def random_body(rng, plan: str | None = None, markers: float = 0.0, max_keypoints: int = MAX_KEYPOINTS) -> dict:
    """One random body: ``parent`` (N,), ``bone`` (N, 3) (rest offsets, world axes; row 0 the root position),
    ``lo`` / ``hi`` (N, 3) angle limits, ``kind`` (N,) labels and ``plan``."""
    plan = plan or str(rng.choice(PLANS))
    if plan not in _PLAN_FN:
        raise ValueError(f"unknown plan {plan!r}; expected one of {PLANS}.")
    for _ in range(20):  # redraw until the body fits the keypoint budget
        B = _PLAN_FN[plan](rng, max_keypoints)
        if 6 <= len(B) <= max_keypoints:
            break
    else:
        raise RuntimeError(f"could not draw a {plan} body with 6..{max_keypoints} keypoints.")
    if markers > 0:
        _add_markers(B, rng, markers, max_keypoints)
    return {"plan": plan, "parent": np.array(B.parent), "bone": np.array(B.bone), "lo": np.array(B.lo),
            "hi": np.array(B.hi), "frame": np.array(B.frame), "kind": list(B.kind)}


def _euler_zyx(a: np.ndarray) -> np.ndarray:
    """``Rz(a[..., 2]) @ Ry(a[..., 1]) @ Rx(a[..., 0])`` for angles ``(..., 3)``."""
    cx, cy, cz = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    sx, sy, sz = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    R = np.empty(a.shape[:-1] + (3, 3))
    R[..., 0, 0] = cz * cy
    R[..., 0, 1] = cz * sy * sx - sz * cx
    R[..., 0, 2] = cz * sy * cx + sz * sx
    R[..., 1, 0] = sz * cy
    R[..., 1, 1] = sz * sy * sx + cz * cx
    R[..., 1, 2] = sz * sy * cx - cz * sx
    R[..., 2, 0] = -sy
    R[..., 2, 1] = cy * sx
    R[..., 2, 2] = cy * cx
    return R


def _depths(parent: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(parent), int)
    for i in range(1, len(parent)):  # parents come first
        depth[i] = depth[parent[i]] + 1
    return depth


def pose_body(body: dict, angles: np.ndarray) -> np.ndarray:
    """Forward kinematics: joint angles ``(P, N, 3)`` -> positions ``(P, N, 3)`` (row 0 of the angles unused)."""
    parent, bone = body["parent"], body["bone"]
    P, N = angles.shape[:2]
    C = body.get("frame")
    R = _euler_zyx(angles)
    if C is not None:  # joint axes in each joint's own frame: C E C^T
        R = np.einsum("nij,pnjk,nlk->pnil", C, R, C)
    G = np.empty((P, N, 3, 3))
    X = np.empty((P, N, 3))
    G[:, 0] = np.eye(3)
    X[:, 0] = bone[0]
    depth = _depths(parent)
    for d in range(1, depth.max() + 1 if N > 1 else 1):
        idx = np.flatnonzero(depth == d)
        pa = parent[idx]
        G[:, idx] = G[:, pa] @ R[:, idx]
        X[:, idx] = X[:, pa] + np.einsum("pnij,nj->pni", G[:, idx], bone[idx])
    return X


def generate(n_bodies: int, poses_per_body: int = 50, seed: int = 0, markers: float = 0.0,
             plans=PLANS, frames_per_segment: int = 5, amplitude=(0.5, 1.0)) -> list[CategorySet]:
    """``n_bodies`` random articulated bodies (each its own rig ``"proc_<seed>_<i>"``), ``poses_per_body`` poses each.

    Body ``i`` depends only on ``(seed, i)``. ``markers`` is the probability that a bone gets a virtual marker.
    Poses: one smooth trajectory per body through waypoints every ``frames_per_segment`` poses, each joint angle
    within its limits (waypoint amplitude a fraction ``amplitude`` of the limits). ``meta["angles"]`` (P, N, 3)
    holds the angles, ``meta["limits"]`` the (N, 3, 2) lower and upper limits, ``meta["kind"]`` a label per
    keypoint and ``meta["body"]`` the body (:func:`random_body`), so ``pose_body(meta["body"], meta["angles"])``
    gives the points again.
    """
    from .kinematic import smooth_trajectory

    if n_bodies < 0 or poses_per_body < 1:
        raise ValueError("n_bodies must be >= 0 and poses_per_body >= 1.")
    plans = tuple(plans)
    out = []
    for i in range(n_bodies):
        rng = np.random.default_rng([seed, i, 7919])
        body = random_body(rng, plan=str(rng.choice(plans)), markers=markers)
        lo, hi = body["lo"].reshape(-1), body["hi"].reshape(-1)
        A = smooth_trajectory(rng, lo, hi, np.zeros_like(lo), poses_per_body, "smooth", amplitude, 0.3,
                              frames_per_segment).reshape(poses_per_body, -1, 3)
        X = pose_body(body, A)
        N = X.shape[1]
        rig = f"proc_{seed}_{i}"
        edges = np.stack([body["parent"][1:], np.arange(1, N)], 1)
        out.append(CategorySet(
            category="procedural", rig=rig, points3d=X.astype(np.float32), visible=np.ones((poses_per_body, N), bool),
            edges=edges, sequence=np.full(poses_per_body, rig), units="arbitrary",
            source=f"lfm.data.procedural.generate(seed={seed}), body {i} ({body['plan']})", licence="generated (lfm)",
            synthetic=True, edges_rule="generated kinematic tree (parent -> child); markers hang off their bone",
            meta={"plan": body["plan"], "kind": body["kind"], "angles": A, "body": body,
                  "limits": np.stack([body["lo"], body["hi"]], -1).tolist(), "training_only": True,
                  "frame": np.arange(poses_per_body)},
        ))
    return out
