"""The PIG pig (An et al. 2023, MAMMAL): posed skeletons by forward kinematics of its rest pose, into
:class:`CategorySet` (synthetic, metres, +y up).

The model (``pig_model_mammal/pkl_files/PIG_core.pkl``) gives a rest pose of 62 joints with a kinematic tree and no
pose data or prior. Poses are therefore sampled here: each joint turns about the model's own axes (+x forward, +y
the animal's left, +z up; roll, pitch, yaw, ``R = Rx Ry Rz``) within the ranges of :data:`PIG_RANGES`, degrees
either side of the rest pose, which is a standing pose. The ranges are set by body part for a walking / standing /
rooting quadruped (no joint limits exist for this model; the values are mild so that no pose is implausible):

* spine segments: pitch (arch / sag) +-10, yaw (side bend) +-10, roll +-5;
* neck: pitch +-20, yaw +-25, roll +-10; head: pitch +-20, yaw +-20, roll +-15; jaw: opens 0-25 (pitch only);
* ears (five joints each side): +-20 about each axis (soft, mobile ears);
* tail (eight joints): pitch +-15, yaw +-15 each;
* legs: the shoulder (clavicle) and hip joints swing fore-aft (pitch) +-30, sideways (roll) +-10, twist (yaw)
  +-10; elbow / knee and carpus / hock bend (pitch) +-30, with +-5 sideways and twist; fetlocks and toes bend
  (pitch) +-20 / +-15. The ranges are symmetric about the rest pose: the legs are slightly bent at rest, and the
  model gives no flexion direction, so half of each range bends each way.

The root stays at the rest orientation and position (the benchmark adds cameras). Trajectories are smooth like the
kinematic models' (:func:`lfm.data.kinematic.smooth_trajectory`, per-trajectory amplitude 0.3-0.8 of each range,
a per-trajectory postural offset), seeded per (seed, trajectory), so splits are by trajectory.

Keypoints: the joints, less four that sit 4 mm from their parents (5 and 13 on the front hip 4, 38 and 54 on the
hip 0; ``merge_tol`` 5 mm as in :mod:`lfm.data.kinematic`): they are held at their rest rotation, so every edge of
the 58-keypoint tree is a rigid bone, and each is merged into its parent. Source z-up: ``(x, y, z) -> (x, z, -y)``.
"""

from __future__ import annotations

import io
import pickle
import zlib

import numpy as np

from .fetch import cached_arrays, fetch, licence as _licence
from .schema import CategorySet

__all__ = ["PIG_JOINTS", "PIG_RANGES", "read_pig", "pig_angles", "pig_positions", "load_pig"]

PIG_FILE = "pig_model_mammal/pkl_files/PIG_core.pkl"
# joint names transcribed from pics/Jointnames.jpg (pig_model_mammal/SOURCE.md); RF/LF: right / left front leg
_FRONT = ("hip", "clavicle", "leg", "knee", "foot", "heel", "toe_base", "toe_end")
_HIND = ("leg", "leg2", "knee", "foot", "foot_base", "heel", "ball_back", "toe")
PIG_JOINTS = (("hip", "spine1", "spine2", "spine3", "front_hip") + tuple(f"rf_{n}" for n in _FRONT) +
              tuple(f"lf_{n}" for n in _FRONT) + ("neck1", "neck2", "head", "r_eye", "l_eye") +
              ("r_ear",) + tuple(f"r_ear{i}" for i in range(1, 5)) + ("l_ear",) + tuple(f"l_ear{i}" for i in range(1, 5))
              + ("jaw", "jaw_end") + tuple(f"r_{n}" for n in _HIND) + tuple(f"tail{i}" for i in range(1, 9)) +
              tuple(f"l_{n}" for n in _HIND))
# degrees either side of the rest pose: (roll about +x, pitch about +y, yaw about +z); a (lo, hi) pair: asymmetric
_SPINE, _SWING, _BEND = (5, 10, 10), (10, 30, 10), (5, 30, 5)
PIG_RANGES = {
    "spine1": _SPINE, "spine2": _SPINE, "spine3": _SPINE, "front_hip": _SPINE,
    "neck1": (10, 20, 25), "neck2": (10, 20, 25), "head": (15, 20, 20), "jaw": (0, (0, 25), 0),
    **{f"{s}_ear{i}": (20, 20, 20) for s in "rl" for i in ("", 1, 2, 3, 4)},
    **{f"tail{i}": (0, 15, 15) for i in range(1, 9)},
    **{f"{s}_clavicle": _SWING for s in ("rf", "lf")}, **{f"{s}_leg2": _SWING for s in "rl"},
    **{f"{s}_{j}": _BEND for s in ("rf", "lf") for j in ("leg", "knee")},
    **{f"{s}_{j}": _BEND for s in "rl" for j in ("knee", "foot")},
    **{f"{s}_foot": (0, 20, 0) for s in ("rf", "lf")}, **{f"{s}_foot_base": (0, 20, 0) for s in "rl"},
    **{f"{s}_toe_base": (0, 15, 0) for s in ("rf", "lf")}, **{f"{s}_ball_back": (0, 15, 0) for s in "rl"},
}  # every other joint (the root, the four merged joints, leaves: eyes, jaw end, heels, toe ends) stays at rest
MERGE_TOL = 0.005  # metres
_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # rows: (x, y, z) -> (x, z, -y)


def read_pig(raw: bytes | None = None) -> dict:
    """``joints (62, 3)`` (rest pose, metres, z up) and ``parents (62,)`` of ``PIG_core.pkl`` (the Python-2 pickle
    is read with an unpickler that resolves numpy arrays and scipy sparse matrices only, so no other code can run).
    A file of another structure gives a one-line error naming it."""
    if raw is None:
        raw = fetch(PIG_FILE, progress=False).read_bytes()
    allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("scipy.sparse.csc", "csc_matrix"),
               ("scipy.sparse._csc", "csc_matrix")}

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) not in allowed:
                raise pickle.UnpicklingError(f"unexpected object {module}.{name}")
            if module.startswith("scipy"):
                from scipy.sparse import csc_matrix

                return csc_matrix
            if name == "_reconstruct":
                return (np._core if hasattr(np, "_core") else np.core).multiarray._reconstruct
            return getattr(np, name)

    fix = f"fetch it again (it must be the PIG_core.pkl of anl13/PIG_model)."
    try:
        d = Unpickler(io.BytesIO(raw), encoding="latin1").load()
    except Exception as e:  # noqa: BLE001 -- any unreadable pickle is one error that names the file
        raise ValueError(f"{PIG_FILE}: not a readable PIG model pickle ({type(e).__name__}: {e}); {fix}") from None
    try:
        J = np.asarray(d["t_pose_joints"], np.float64)
        parents = np.asarray(d["parents"]).astype(np.int64)
    except (KeyError, TypeError, IndexError, ValueError):
        raise ValueError(f"{PIG_FILE}: no t_pose_joints / parents arrays in the pickle; {fix}") from None
    n = len(PIG_JOINTS)
    if J.shape != (n, 3) or parents.shape != (n,) or parents[0] != -1 or \
            np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, n)):
        raise ValueError(f"{PIG_FILE}: t_pose_joints {J.shape} and parents {parents.shape} are not a {n}-joint tree "
                         f"in topological order; {fix}")
    return {"joints": J, "parents": parents}


def _limits() -> tuple[np.ndarray, np.ndarray]:
    """Per joint and axis ``(62, 3)`` lower / upper angle bounds in radians."""
    lo, hi = np.zeros((len(PIG_JOINTS), 3)), np.zeros((len(PIG_JOINTS), 3))
    for j, name in enumerate(PIG_JOINTS):
        for a, r in enumerate(PIG_RANGES.get(name, (0, 0, 0))):
            lo[j, a], hi[j, a] = (-r, r) if np.isscalar(r) else r
    return np.radians(lo), np.radians(hi)


def pig_angles(n_sequences: int, frames_per_sequence: int, seed: int = 0) -> np.ndarray:
    """Joint angles ``(F, 62, 3)`` (radians; roll, pitch, yaw about the model axes): ``n_sequences`` smooth
    trajectories within :data:`PIG_RANGES`, each seeded by (seed, trajectory)."""
    from .kinematic import smooth_trajectory

    lo, hi = (x.reshape(-1) for x in _limits())
    tag = zlib.crc32(b"pig_mammal")
    A = [smooth_trajectory(np.random.default_rng([seed, tag, s]), lo, hi, np.zeros_like(lo), frames_per_sequence,
                           "smooth", (0.3, 0.8), 0.25) for s in range(n_sequences)]
    return np.concatenate(A).reshape(-1, len(PIG_JOINTS), 3)


def pig_positions(joints: np.ndarray, parents: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Joint positions ``(F, 62, 3)`` (model axes) of the rest ``joints`` posed by ``angles (F, 62, 3)``."""
    from .forward_kinematics import euler, forward_kinematics

    offsets = np.concatenate([joints[:1], joints[1:] - joints[parents[1:]]])
    R = euler(angles, "xyz")
    return forward_kinematics(parents, R, offsets, np.broadcast_to(joints[0], (len(angles), 3)))


def _kept(joints: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kept joints and the ``(E, 2)`` tree over them (indices into the kept list): a joint within
    :data:`MERGE_TOL` of its parent at rest is merged into it."""
    owner = np.arange(len(parents))
    for j, p in enumerate(parents):
        if p >= 0 and np.linalg.norm(joints[j] - joints[p]) < MERGE_TOL:
            owner[j] = owner[p]
    kept = np.flatnonzero(owner == np.arange(len(parents)))
    index = {int(k): i for i, k in enumerate(kept)}
    edges = [(index[int(owner[p])], index[int(j)]) for j, p in enumerate(parents) if p >= 0 and owner[j] == j]
    return kept, np.array(edges, dtype=np.int64)


def load_pig(n_sequences: int = 20, frames_per_sequence: int = 100, seed: int = 0) -> CategorySet:
    """``n_sequences`` smooth trajectories of ``frames_per_sequence`` frames of the PIG pig (see the module
    docstring): 58 keypoints in metres, +y up, ``sequence`` = ``"pig/trajNNN"``. ``meta``: ``frame``,
    ``joint_index`` (the PIG joint of each keypoint), ``joint_names``, ``parents`` (over the keypoints),
    ``ranges_deg`` and ``up_rule``."""
    if n_sequences < 1 or frames_per_sequence < 1:
        raise ValueError("n_sequences and frames_per_sequence must be positive.")
    m = read_pig()
    for name in PIG_RANGES:
        if name not in PIG_JOINTS:
            raise ValueError(f"PIG_RANGES names an unknown joint {name!r}.")
    kept, edges = _kept(m["joints"], m["parents"])
    merged = np.setdiff1d(np.arange(len(PIG_JOINTS)), kept)
    if any(PIG_RANGES.get(PIG_JOINTS[j]) for j in merged):
        raise ValueError("PIG_RANGES turns a merged joint; its bone would not be rigid.")

    def build():
        X = pig_positions(m["joints"], m["parents"], pig_angles(n_sequences, frames_per_sequence, seed))
        return {"points": (X[:, kept] @ _Z_UP_TO_Y_UP).astype(np.float32)}

    P = cached_arrays(f"pig_{n_sequences}_{frames_per_sequence}_{seed}", [PIG_FILE], build)["points"]
    parents = np.full(len(kept), -1)
    parents[edges[:, 1]] = edges[:, 0]
    return CategorySet(
        category="pig", rig=f"pig_mammal{len(kept)}", points3d=P, visible=np.ones(P.shape[:2], bool), edges=edges,
        sequence=np.repeat([f"pig/traj{s:03d}" for s in range(n_sequences)], frames_per_sequence), units="m",
        source="PIG model (anl13/PIG_model pkl_files/PIG_core.pkl), posed by lfm.data.pig", licence=_licence(PIG_FILE),
        synthetic=True, edges_rule="PIG kinematic tree (parents), the four joints 4 mm from their parents merged",
        meta={"frame": np.tile(np.arange(frames_per_sequence), n_sequences), "joint_index": kept,
              "joint_names": [PIG_JOINTS[k] for k in kept], "parents": parents.tolist(),
              "ranges_deg": {k: v for k, v in PIG_RANGES.items()}, "seed": seed,
              "up_rule": "source z-up: (x, y, z) -> (x, z, -y)"},
    )
