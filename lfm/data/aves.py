"""Synthetic birds from the AVES parametric model (Wang et al. 2021) into :class:`CategorySet`: linear blend
skinning in numpy (:func:`aves_pose`), seeded sampling from its shape, pose and bone priors
(:func:`sample_birds`) and the loader (:func:`load_bird`; +y up, one ``sequence`` id per individual).
"""

from __future__ import annotations

import numpy as np

from .fetch import cached_arrays, fetch, licence as _licence
from .forward_kinematics import tree_edges
from .schema import CategorySet

__all__ = ["BIRD_KEYPOINTS", "BIRD_PARENTS", "aves_pose", "aves_keypoints", "aves_joint_rig", "sample_birds",
           "bird_up_rotation", "load_bird"]

BIRD_KEYPOINTS = ("left_eye", "right_eye", "forehead", "crown", "nape", "back", "throat", "breast", "bill_base",
                  "bill_tip", "left_foot", "left_shin", "right_foot", "right_shin", "tail_base", "tail_tip",
                  "left_wingtip", "right_wingtip")  # AVES keypoints_list.txt order
# the keypoints are regressed from the mesh, not joints of the model's tree: an anatomical tree over them
BIRD_PARENTS = (2, 2, -1, 2, 3, 4, 8, 6, 2, 8, 11, 7, 13, 7, 5, 14, 5, 5)


def _rodrigues(aa) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of axis-angle vectors ``(..., 3)`` (radians)."""
    aa = np.asarray(aa, np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    k = aa / np.maximum(theta, 1e-12)
    K = np.zeros(aa.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2], K[..., 1, 0] = -k[..., 2], k[..., 1], k[..., 2]
    K[..., 1, 2], K[..., 2, 0], K[..., 2, 1] = -k[..., 0], -k[..., 1], k[..., 0]
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    return np.eye(3) + s * K + (1 - c) * (K @ K)


def aves_pose(model: dict, pose, bone, beta) -> tuple[np.ndarray, np.ndarray]:
    """The AVES model's 18 keypoints ``(B, 18, 3)`` and its posed joints ``(B, J, 3)`` (model units) by linear blend
    skinning, in numpy.

    ``pose (B, J, 3)``: axis-angle per joint (joint 0 = global orientation); ``bone (B, J)``: per-joint scale of
    the offset from its parent (joint 0: 1); ``beta (B, K)``: standardised shape coefficients (the basis is
    ``Beta * Beta_sigma``). Joint ``j``'s transform is its parent's times ``[R_j | bone_j (J_j - J_parent)]``;
    a vertex moves by the skinning-weighted sum of ``T_j`` with the rest joint removed
    (``T_j [v; 1] - G_j J_j``); keypoints = ``vert2kpt @ vertices``. At zero pose, unit bones and zero beta the
    keypoints are those of the template and the joints are ``J``."""
    pose, bone, beta = (np.asarray(a, np.float64) for a in (pose, bone, beta))
    J, parents = model["J"], model["parents"]
    used = np.flatnonzero(np.any(model["vert2kpt"] != 0, axis=0))  # only the vertices the keypoints read
    W, reg = model["weights"][used], model["vert2kpt"][:, used]
    n = len(J)
    V = model["V"][used][None] + np.einsum("bk,kvc->bvc", beta, model["basis"][:, used])  # (B, V, 3)
    rel = np.concatenate([J[:1], J[1:] - J[parents[1:]]])  # (J, 3)
    R = _rodrigues(pose)  # (B, J, 3, 3)
    B = len(pose)
    G = np.empty((B, n, 3, 3))
    t = np.empty((B, n, 3))
    for j in range(n):
        off = rel[j] * bone[:, j, None]
        if parents[j] < 0:
            G[:, j], t[:, j] = R[:, j], off
        else:
            p = parents[j]
            G[:, j] = G[:, p] @ R[:, j]
            t[:, j] = t[:, p] + np.einsum("bxy,by->bx", G[:, p], off)
    t_skin = t - np.einsum("bjxy,jy->bjx", G, J)  # remove the rest joint: T_j @ [v - J_j; 1]
    A = np.einsum("vj,bjxy->bvxy", W, G)
    a = np.einsum("vj,bjx->bvx", W, t_skin)
    verts = np.einsum("bvxy,bvy->bvx", A, V) + a
    return np.einsum("kv,bvx->bkx", reg, verts), t


def aves_keypoints(model: dict, pose, bone, beta) -> np.ndarray:
    """The AVES model's 18 keypoints ``(B, 18, 3)`` (see :func:`aves_pose`)."""
    return aves_pose(model, pose, bone, beta)[0]


def aves_joint_rig(J, parents, tol: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The kept joints and the ``(E, 2)`` tree over them (indices into the kept list) of the AVES joint rig: a joint
    within ``tol`` model units (about 1 mm) of a lower-numbered joint at rest is one keypoint with it (AVES: 3, 5
    and 21 sit on 1, the roots of the tail, body and legs; 13 and 17 on 9, the roots of the neck and the wings)."""
    J = np.asarray(J, np.float64)
    owner = np.arange(len(J))
    for j in range(len(J)):
        near = np.flatnonzero(np.linalg.norm(J[:j] - J[j], axis=-1) < tol)
        if len(near):
            owner[j] = owner[near[0]]
    kept = np.flatnonzero(owner == np.arange(len(J)))
    index = {int(k): i for i, k in enumerate(kept)}
    edges = sorted({(index[int(owner[p])], index[j]) for j, p in enumerate(parents)
                    if p >= 0 and owner[j] == j})
    return kept, np.array(edges, dtype=np.int64).reshape(-1, 2)


def _gaussian_draws(rng, mean, cov, n: int, clip: float) -> np.ndarray:
    """``n`` draws of ``N(mean, cov)`` whose standardised coordinates are truncated to ``|z| <= clip`` (redrawn)."""
    w, U = np.linalg.eigh(np.asarray(cov, np.float64))
    L = U * np.sqrt(np.clip(w, 0, None))
    z = rng.standard_normal((n, len(w)))
    while np.any(bad := np.abs(z) > clip):
        z[bad] = rng.standard_normal(int(bad.sum()))
    return np.asarray(mean, np.float64) + z @ L.T


def _read_aves(model_raw: dict, prior_raw: dict) -> tuple[dict, dict]:
    def a(x):
        return np.asarray(x.numpy() if hasattr(x, "numpy") else x, np.float64)

    kin = a(model_raw["kintree_table"]).astype(int)
    parents = kin[0].copy()
    parents[0] = -1
    if np.any(parents[1:] >= np.arange(1, len(parents))) or np.any(parents[1:] < 0):
        raise ValueError("aves.pt: kintree_table parents are not in topological order.")
    model = {"V": a(model_raw["V"]), "J": a(model_raw["J"]), "parents": parents, "weights": a(model_raw["weights"]),
             "vert2kpt": a(model_raw["vert2kpt"]),
             "basis": a(model_raw["Beta"]) * a(model_raw["Beta_sigma"])[:, None, None]}
    key = {"p_m": "pose_mean", "p_cov": "pose_cov", "b_m": "bone_mean", "b_cov": "bone_cov"}
    prior = {k: a(prior_raw[k] if k in prior_raw else prior_raw[v]) for k, v in key.items()}
    n = len(parents)
    if model["vert2kpt"].shape[0] != len(BIRD_KEYPOINTS) or prior["p_m"].shape != (3 * (n - 1),) or \
            prior["b_m"].shape != (n - 1,):
        raise ValueError(f"aves model: {model['vert2kpt'].shape[0]} keypoints, {n} joints, pose prior "
                         f"{prior['p_m'].shape}, bone prior {prior['b_m'].shape}; expected 18 keypoints and "
                         f"{3 * (n - 1)} / {n - 1} prior dimensions.")
    return model, prior


def sample_birds(model: dict, prior: dict, n_frames: int, n_individuals: int, seed: int = 0, clip: float = 1.0,
                 max_ratio: float = 3.0) -> dict:
    """Seeded AVES samples: ``n_individuals`` shapes (15 standardised coefficients, each within ``clip`` sigma),
    each posed ``~n_frames / n_individuals`` times from the Gaussian pose and bone priors (within ``clip`` sigma,
    identity global orientation). A sample whose anatomical edge lengths leave ``[1 / max_ratio, max_ratio]``
    times those of the mean bird is drawn again. Returns ``points (F, 18, 3)`` and ``joints (F, J, 3)`` (model
    axes and units), ``individual (F,)``, ``beta (F, K)``, ``pose (F, J - 1, 3)`` and ``bone (F, J - 1)``."""
    rng = np.random.default_rng(seed)
    n = len(model["parents"])
    K = model["basis"].shape[0]
    edges = tree_edges(BIRD_PARENTS)

    def lengths(P):
        return np.linalg.norm(P[:, edges[:, 0]] - P[:, edges[:, 1]], axis=-1)

    def kp(pose72, bone24, beta):
        B = len(pose72)
        pose = np.concatenate([np.zeros((B, 1, 3)), pose72.reshape(B, n - 1, 3)], 1)
        return aves_pose(model, pose, np.concatenate([np.ones((B, 1)), bone24], 1), beta)

    ref = lengths(kp(prior["p_m"][None], prior["b_m"][None], np.zeros((1, K)))[0])[0]
    counts = np.full(n_individuals, n_frames // n_individuals)
    counts[: n_frames % n_individuals] += 1
    pts, joints, poses, bones, ind, betas = [], [], [], [], [], []
    for i, c in enumerate(counts):
        for _ in range(100):
            beta = np.clip(rng.standard_normal(K), -clip, clip)
            rest = kp(prior["p_m"][None], prior["b_m"][None], beta[None])[0]
            r = lengths(rest)[0] / np.maximum(ref, 1e-12)
            if np.all((r > 1 / max_ratio) & (r < max_ratio)):
                break
        else:
            raise ValueError("sample_birds: no shape within max_ratio in 100 draws; raise max_ratio or lower clip.")
        got = [np.empty((0, len(BIRD_KEYPOINTS), 3)), np.empty((0, n, 3)), np.empty((0, 3 * (n - 1))),
               np.empty((0, n - 1))]
        for _ in range(100):
            if len(got[0]) >= c:
                break
            m = 2 * (c - len(got[0]))
            pose = _gaussian_draws(rng, prior["p_m"], prior["p_cov"], m, clip)
            bone = _gaussian_draws(rng, prior["b_m"], prior["b_cov"], m, clip)
            P, X = kp(pose, bone, np.repeat(beta[None], m, 0))
            r = lengths(P) / np.maximum(ref, 1e-12)
            ok = np.all((r > 1 / max_ratio) & (r < max_ratio), 1)
            got = [np.concatenate([g, x[ok]]) for g, x in zip(got, (P, X, pose, bone))]
        if len(got[0]) < c:
            raise ValueError("sample_birds: too many poses rejected; raise max_ratio or lower clip.")
        pts.append(got[0][:c])
        joints.append(got[1][:c])
        poses.append(got[2][:c].reshape(c, n - 1, 3))
        bones.append(got[3][:c])
        ind += [i] * c
        betas.append(np.repeat(beta[None], c, 0))
    return {"points": np.concatenate(pts), "joints": np.concatenate(joints), "individual": np.array(ind),
            "beta": np.concatenate(betas), "pose": np.concatenate(poses), "bone": np.concatenate(bones)}


def bird_up_rotation(points) -> np.ndarray:
    """Rows ``(forward, up, side)`` of a rotation that puts a bird (``(18, 3)`` keypoints, :data:`BIRD_KEYPOINTS`)
    upright: +y from the feet midpoint to the back, +x from the tail tip to the bill tip (made orthogonal to +y),
    +z = x cross y. Points turn with ``P @ R.T``."""
    P = np.asarray(points, np.float64)
    k = {n: i for i, n in enumerate(BIRD_KEYPOINTS)}
    up = P[k["back"]] - 0.5 * (P[k["left_foot"]] + P[k["right_foot"]])
    up /= np.linalg.norm(up)
    fwd = P[k["bill_tip"]] - P[k["tail_tip"]]
    fwd -= up * (fwd @ up)
    fwd /= np.linalg.norm(fwd)
    return np.stack([fwd, up, np.cross(fwd, up)])


def load_bird(n_frames: int = 2000, n_individuals: int = 40, seed: int = 0, clip: float = 1.0,
              rig: str = "keypoints") -> CategorySet:
    """Synthetic birds from the AVES parametric model (Wang et al. 2021): model units, +y up, one of two rigs:
    ``rig="keypoints"``: the 18 keypoints regressed from the mesh (``aves_bird18``); ``rig="joints"``: the model's
    25 joints with the near-coincident ones merged (:func:`aves_joint_rig`: ``aves_joints20``).

    Shapes: ``n_individuals`` draws of the 15 standardised shape coefficients (the 17-species shape space), each
    posed about ``n_frames / n_individuals`` times from the pose and bone-length priors fitted to real cowbirds
    (``models/pose_bone_prior.pth``), all within ``clip`` sigma; :func:`aves_pose` (linear blend skinning in
    numpy, no torch code runs beyond reading the tensors) gives keypoints and joints; see :func:`sample_birds`.
    Seeded: the same arguments give the same frames whatever the rig. ``sequence`` = the individual
    (``"bird007"``), so splits are by individual. Up: :func:`bird_up_rotation` of the mean bird's keypoints
    (``meta['up_rule']``, ``meta['up_rotation']``: points = model points ``@ R.T``). Edges: an anatomical tree over
    the keypoints (:data:`BIRD_PARENTS`: they are regressed from the mesh, so the joint tree does not apply), the
    kinematic tree over the joints. ``meta`` keeps each frame's ``pose (F, 24, 3)``, ``bone (F, 24)`` and ``beta``.
    """
    if rig not in ("keypoints", "joints"):
        raise ValueError(f"rig={rig!r}: expected 'keypoints' (18 regressed keypoints) or 'joints' (the model's joints).")
    model_name, prior_name = "bird_aves/models/aves.pt", "bird_aves/models/pose_bone_prior.pth"

    def read():
        import torch  # only to read the two tensor files (weights_only: no pickled code runs)

        raw_model = torch.load(fetch(model_name, progress=False), map_location="cpu", weights_only=True)
        raw_prior = torch.load(fetch(prior_name, progress=False), map_location="cpu", weights_only=True)
        return _read_aves(raw_model, raw_prior)

    def build():
        model, prior = read()
        s = sample_birds(model, prior, n_frames, n_individuals, seed, clip)
        K = model["basis"].shape[0]
        n = len(model["parents"])
        mean = aves_keypoints(model, np.concatenate([np.zeros(3), prior["p_m"]]).reshape(1, n, 3),
                              np.concatenate([[1.0], prior["b_m"]])[None], np.zeros((1, K)))[0]
        R = bird_up_rotation(mean)
        kept, edges = aves_joint_rig(model["J"], model["parents"])
        return {"points": (s["points"] @ R.T).astype(np.float32), "joints": (s["joints"] @ R.T).astype(np.float32),
                "individual": s["individual"], "beta": s["beta"].astype(np.float32),
                "pose": s["pose"].astype(np.float32), "bone": s["bone"].astype(np.float32), "up_rotation": R,
                "joint_kept": kept, "joint_edges": edges, "joint_parents": model["parents"]}

    a = cached_arrays(f"aves_birds_{n_frames}_{n_individuals}_{seed}_{clip}", [model_name, prior_name], build,
                      version=2)
    if rig == "keypoints":
        P, edges, name, names, parents = a["points"], tree_edges(BIRD_PARENTS), "aves_bird18", list(BIRD_KEYPOINTS), \
            list(BIRD_PARENTS)
        rule = ("anatomical tree over the 18 keypoints (BIRD_PARENTS): eyes/bill/crown to the forehead, nape, "
                "back, tail and wing tips off the back, throat-breast, shins off the breast")
    else:
        kept, edges = a["joint_kept"], a["joint_edges"]
        P, name, names = a["joints"][:, kept], f"aves_joints{len(kept)}", [f"joint{k}" for k in kept]
        parents = np.full(len(kept), -1)
        parents[edges[:, 1]] = edges[:, 0]
        parents = parents.tolist()
        rule = ("AVES kinematic tree (kintree_table) over the joints, joints within 0.1 units of a lower-numbered "
                "one at rest merged into it")
    return CategorySet(
        category="bird", rig=name, points3d=P, visible=np.ones(P.shape[:2], bool),
        edges=edges, sequence=np.array([f"bird{i:03d}" for i in a["individual"]]),
        units="arbitrary", source="AVES parametric bird model (yufu-wang/aves models/aves.pt + pose_bone_prior.pth)",
        licence=_licence(model_name), synthetic=True, edges_rule=rule,
        meta={"joint_names": names, "parents": parents,
              "up_rule": "mean bird: feet midpoint -> back = +y, tail tip -> bill tip = +x",
              "up_rotation": a["up_rotation"].tolist(), "individual": a["individual"], "beta": a["beta"],
              "pose": a["pose"], "bone": a["bone"], "seed": seed},
    )
