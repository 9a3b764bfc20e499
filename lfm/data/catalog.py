"""The category table: one record per (category, rig) of the open data, the single place where its facts live.

A record says how to load the set (a loader function of :mod:`lfm.data.nrsfm`, :mod:`~lfm.data.bvh`, :mod:`~lfm.data.shapes`,
:mod:`~lfm.data.hands`, :mod:`~lfm.data.lab_capture`, ...), which body it is (``category``, e.g. ``human``) and
which keypoint layout (``rig`` with its keypoint count; the skeleton comes from the loaded data), its units, how
its +y up axis was obtained, how it is split (a rule text and the function that applies it), how its graph was made,
its licence (from the data registry, never retyped) and citation, and its role in the benchmark:

* ``train``: in distribution (train / validation / test splits);
* ``ood``: a category held out of training entirely (leave-category-out protocol);
* ``rig_transfer``: a rig of a trained category held out of training entirely (rig-transfer protocol);
* ``extra``: loadable, not part of the benchmark (e.g. the one-shape MediaPipe face template).

Adding a category is one :class:`Record` in :data:`RECORDS` plus its loader function; ``tests/test_catalog.py``
loads every record and checks it against its record. ``lfm.data.categories()`` groups the records by category.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np

from .fetch import licence as _registry_licence
from .schema import CategorySet

__all__ = ["Record", "Rig", "Category", "RECORDS", "ROLES", "record", "records", "categories", "load",
           "last_fraction", "sequences_named", "sorted_ids", "per_group_last", "last_sequences", "everything"]

ROLES = ("train", "ood", "rig_transfer", "extra")


# -------------------------------------------------------------------------------------------------- split rules
# Each returns the test frame indices of a loaded set; never random frames (by sequence, instance or time block).

def last_fraction(frac: float = 0.2) -> Callable[[CategorySet], np.ndarray]:
    """The last ``frac`` of the frames (one long sequence): a time block."""
    return lambda cs: np.arange(int(round((1 - frac) * cs.n_frames)), cs.n_frames)


def sequences_named(*names: str) -> Callable[[CategorySet], np.ndarray]:
    """Every frame of the named sequences (clips, subjects, days)."""
    return lambda cs: np.flatnonzero(np.isin(cs.sequence, names))


def sorted_ids(frac: float = 0.2) -> Callable[[CategorySet], np.ndarray]:
    """Instances sorted by their id (``sequence``), the last ``frac`` of them."""
    def rule(cs):
        order = np.argsort(cs.sequence, kind="stable")
        return np.sort(order[int(round((1 - frac) * len(order))):])
    return rule


def per_group_last(group_key: str, frac: float = 0.2) -> Callable[[CategorySet], np.ndarray]:
    """Within each group ``meta[group_key]``, the sequences sorted by name, the last ``frac`` of them."""
    def rule(cs):
        test, groups = [], cs.meta[group_key]
        for g in np.unique(groups):
            seqs = np.unique(cs.sequence[groups == g])
            test += list(seqs[int(round((1 - frac) * len(seqs))):])
        return np.flatnonzero(np.isin(cs.sequence, test))
    return rule


def last_sequences(frac: float = 0.2, key: str | None = None) -> Callable[[CategorySet], np.ndarray]:
    """The sequences (or the groups ``meta[key]``, e.g. a clip and its mirrored copy) sorted by name, the last
    ``frac`` of them (at least one)."""
    def rule(cs):
        groups = cs.sequence if key is None else np.asarray(cs.meta[key]).astype(str)
        names = np.unique(groups)
        test = names[len(names) - max(1, int(round(frac * len(names)))):]
        return np.flatnonzero(np.isin(groups, test))
    return rule


def everything(cs: CategorySet) -> np.ndarray:
    """Every frame (held-out sets)."""
    return np.arange(cs.n_frames)


# -------------------------------------------------------------------------------------------------- the records

@dataclass(frozen=True)
class Record:
    """One (category, rig) of the open data. See the module docstring."""

    name: str  # benchmark set name, unique, e.g. "human41"
    category: str  # the body, e.g. "human", "dog", "chair"
    kind: str  # "human", "animal", "hand", "face", "object", "robot"
    rig: str  # keypoint layout, e.g. "nrsfm_human41"
    keypoints: int  # keypoint slots of the rig
    loader: Callable[[], CategorySet] = field(repr=False)
    units: str = ""
    up: str = ""  # how +y became the up axis
    split: str = ""  # the split rule, in words
    test: Callable[[CategorySet], np.ndarray] = field(default=everything, repr=False)
    graph: str = ""  # how the skeleton edges were obtained
    licence_file: str = ""  # registry entry whose licence applies; for a model from a wheel: "wheel:<model>"
    citation: str = ""
    role: str = "train"
    articulated: bool = True  # limbs may be bent (pose augmentation); False for rigid shapes, faces, the shark
    test_stride: int = 1  # every k-th test frame (long, slow-moving test clips)
    test_views: int = 1  # seeded test views per test frame

    @property
    def licence(self) -> str:
        if self.licence_file.startswith("wheel:"):  # a kinematic model: its licence lives in its model spec
            from .kinematic import licence

            return licence(self.licence_file[len("wheel:"):])
        return _registry_licence(self.licence_file)

    @property
    def held_out(self) -> bool:
        return self.role in ("ood", "rig_transfer")


def _lazy(module: str, fn: str, *args, **kwargs):
    """A loader that imports its module on first call (so importing the table stays cheap)."""
    def load():
        import importlib

        return getattr(importlib.import_module(f"lfm.data.{module}"), fn)(*args, **kwargs)
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    load.__name__ = f"{module}.{fn}({shown})"
    return load


def _nrsfm_human41():
    from .nrsfm import load_nrsfm

    return CategorySet.concat([load_nrsfm(s) for s in ("drink", "pickup", "stretch", "yoga")])


def _hands_3d_only(dataset):
    def load():
        from .hands import load_hands

        cs = load_hands(dataset)
        cs.points2d, cs.camera = None, None  # the benchmark synthesises its own views
        return cs
    load.__name__ = f"hands.load_hands({dataset!r}) without its real 2D"
    return load


_CMU02 = tuple(f"02_{i:02d}" for i in range(1, 11))  # subject 02's clips
_NRSFM_CITE = "Akhter et al. 2008 (NRSfM trajectory space); Torresani et al. 2008; CMU Graphics Lab mocap"
RECORDS: tuple[Record, ...] = (
    Record("human41", "human", "human", "nrsfm_human41", 41, _nrsfm_human41, "arbitrary", "data +y",
           "train NRSfM drink+pickup+stretch; test yoga", sequences_named("yoga"),
           "motion MST over the category's sequences", "nrsfm_benchmark/yoga_rearranged.mat", _NRSFM_CITE),
    Record("dance", "human", "human", "nrsfm_dance75", 75, _lazy("nrsfm", "load_nrsfm", "dance"), "arbitrary",
           "data +y", "first 80% of frames train, last 20% test", last_fraction(0.2),
           "motion MST over the category's sequences", "nrsfm_benchmark/dance_rearranged.mat", _NRSFM_CITE),
    Record("walking", "human", "human", "nrsfm_walking55", 55, _lazy("nrsfm", "load_nrsfm", "walking"), "arbitrary",
           "data +y", "first 80% of frames train, last 20% test", last_fraction(0.2),
           "motion MST over the category's sequences", "nrsfm_benchmark/walking_rearranged.mat", _NRSFM_CITE),
    Record("face", "face", "face", "nrsfm_face40", 40, _lazy("nrsfm", "load_nrsfm", "face"), "arbitrary",
           "data +y", "first 80% of frames train, last 20% test", last_fraction(0.2),
           "motion MST over the category's sequences", "nrsfm_benchmark/face_rearranged.mat", _NRSFM_CITE,
           articulated=False),
    Record("shark", "shark", "animal", "nrsfm_shark91", 91, _lazy("nrsfm", "load_nrsfm", "jaws"), "arbitrary",
           "data +y", "first 80% of frames train, last 20% test", last_fraction(0.2),
           "motion MST over the category's sequences", "nrsfm_benchmark/jaws_rearranged.mat",
           "Torresani et al. 2008 (synthetic shark)", articulated=False),
    Record("dog", "dog", "animal", "mann_dog27", 27, _lazy("dog_mocap", "load_dog"), "m", "data +y",
           "test clip walk09 (every 4th frame); train all other clips", sequences_named("walk09"),
           "motion MST over all clips", "dog_mocap_ai4animation/LICENSE.txt",
           "Zhang et al. 2018 (Mode-adaptive neural networks, AI4Animation)", test_stride=4),
    Record("chair", "chair", "object", "keypointnet_chair21", 21, _lazy("shapes", "load_chairs"), "normalised",
           "data +y", "sorted model_id: first 80% train, last 20% test (4 views per test shape)", sorted_ids(0.2),
           "3-NN on the mean shape of the semantic ids", "keypointnet_chair/chair.json",
           "You et al. 2020 (KeypointNet)", articulated=False, test_views=4),
    Record("hand_icvl", "hand", "hand", "icvl_hand16", 16, _hands_3d_only("icvl"), "mm", "camera frame as loaded (a hand has no up axis)",
           "by sequence: test_seq_1 train, test_seq_2 test", sequences_named("test_seq_2"),
           "hand anatomy (upstream joint order)", "hand_icvl_nyu_depth_gt/icvl_test_groundtruth_label.txt",
           "Tang et al. 2014 (ICVL)"),
    Record("hand_nyu", "hand", "hand", "nyu_hand14", 14, _hands_3d_only("nyu"), "mm", "camera frame as loaded (a hand has no up axis)",
           "first 80% of frames train, last 20% test (one sequence in the file lists)", last_fraction(0.2),
           "hand anatomy (upstream joint order)", "hand_icvl_nyu_depth_gt/nyu_test_groundtruth_label.txt",
           "Tompson et al. 2014 (NYU hand)"),
    Record("zebrafish", "zebrafish", "animal", "zebrafish12", 12, _lazy("lab_capture", "load_zebrafish"), "mm",
           "source z (least within-fish spread) -> +y", "by video: per recording set, videos sorted by name, last 20% test",
           per_group_last("set", 0.2), "backbone chain + eyes", "fish_zebrafish_larva_3d/coor_3d_ann_er.tar",
           "zebrafish larva 3D pose (Lin et al.)"),
    Record("mouse_dannce", "mouse", "animal", "dannce_mouse22", 22, _lazy("lab_capture", "load_mouse_dannce"), "mm",
           "arena z -> +y", "mouse 1 train, mouse 2 test", sequences_named("mouse2"),
           "upstream skeleton (mouse22_skeleton.mat)", "mouse_dannce_label3d/mouse22_skeleton.mat",
           "Dunn et al. 2021 (DANNCE)"),
    Record("mouse_sleap", "mouse", "animal", "sleap_mouse15", 15, _lazy("lab_capture", "load_mouse_sleap"), "mm",
           "minus the top camera's viewing direction -> +y", "first 80% of frames train, last 20% test", last_fraction(0.2),
           "SLEAP skeleton edge_inds", "mouse_sleap_anipose_minimal/points3d.h5",
           "Pereira et al. 2022 (SLEAP), Karashchuk et al. 2021 (Anipose)"),
    Record("mvor", "human", "human", "mvor_upper12", 12, _lazy("lab_capture", "load_mvor"), "mm",
           "room axis with the head above the hips -> +y", "by recording day: days 1-3 train, day 4 test", sequences_named("day4"),
           "MVOR skeleton + 2 undocumented points joined to the wrists", "human_upperbody_mvor/camma_mvor_2018.json",
           "Srivastav et al. 2018 (MVOR)"),
    Record("human_cmu31", "human", "human", "cmu_asf31", 31, _lazy("asfamc", "load_cmu_asfamc"), "m", "data +y",
           "by subject: subjects 01 and 03 train, subject 02 test", sequences_named(*_CMU02),
           "ASF bone hierarchy", "human_cmu_asfamc/subjects/01/01.asf",
           "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu)"),
    Record("human_deepmimic15", "human", "human", "deepmimic_humanoid15", 15,
           _lazy("deepmimic", "load_deepmimic", "humanoid", include_long=True, fps=30), "m", "data +y",
           "by clip: the last 20% of source clips by name test (a clip and its mirrored copy together)",
           last_sequences(0.2, "source_clip"), "DeepMimic character parent table",
           "human_dog_deepmimic/data/characters/humanoid3d.txt", "Peng et al. 2018 (DeepMimic)"),
    Record("human_amp15", "human", "human", "amp_humanoid15", 15, _lazy("deepmimic", "load_amp"), "m",
           "source z -> +y", "by clip: hop test (a motion no other set has), the other five clips train",
           sequences_named("hop"), "poselib skeleton tree parent indices",
           "human_amp_isaacgym/assets/amp/motions/amp_humanoid_backflip.npy", "Peng et al. 2021 (AMP), CMU mocap"),
    Record("human_bandai21", "human", "human", "bandai21", 21, _lazy("bvh", "load_bandai_namco"), "m", "data +y",
           "rig transfer: the whole Bandai-Namco rig family is held out of training (every clip test)", everything,
           "BVH hierarchy", "human_bandai_namco/LICENSE", "Kobayashi et al. 2023 (Bandai-Namco Research Motion "
           "dataset)", role="rig_transfer", test_stride=2),
    Record("dog_deepmimic23", "dog", "animal", "deepmimic_dog23", 23, _lazy("deepmimic", "load_deepmimic", "dog"), "m",
           "data +y", "rig transfer: the DeepMimic dog rig is held out of training (every clip test)", everything,
           "DeepMimic character parent table", "human_dog_deepmimic/data/characters/dog3d.txt",
           "Peng et al. 2018 (DeepMimic)", role="rig_transfer"),
    Record("cheetah", "cheetah", "animal", "acinoset_cheetah18", 18, _lazy("lab_capture", "load_cheetah"), "m",
           "world z -> +y", "OOD: never trained on; all 110 frames test (synthetic 2D), 6 cameras x 110 frames "
           "(real DLC 2D)", everything, "AcinoSet skeleton links", "acinoset_cheetah/cheetah_serious.pickle",
           "Joska et al. 2021 (AcinoSet)", role="ood"),
    Record("face_template", "face", "face", "mediapipe_face478", 478, _lazy("shapes", "load_mediapipe_face"), "cm",
           "data +y", "not a benchmark set (one template shape)", everything, "4-NN on the template",
           "mediapipe_face/face_model_with_iris_vertices.obj", "MediaPipe canonical face (Kartynnik et al. 2019)",
           role="extra", articulated=False),
)


# Kinematic models from pinned wheels (lfm.data.kinematic): forward kinematics of smooth joint-angle trajectories
# within the joint limits; 50 trajectories x 100 frames each (the sets added in data v2: 20, or 1 for a rigid
# shape); the last 20 % of trajectories test.
def _kin(name, category, kind, role="train", articulated=True, fmt=None, n_sequences=None):
    from_file = {"dmc": "dm-control 1.0.50 MJCF", "pb": "pybullet 3.2.7 URDF", "myo": "myo-sim 0.2.3 MJCF"}
    split = ("by trajectory: the last 20% of trajectory ids test" if role == "train" else
             "leave-category-out: never trained on; every trajectory test" if role == "ood" else
             "rig transfer: this rig is held out of training; every trajectory test")
    kw = {} if n_sequences is None else {"n_sequences": n_sequences}
    if n_sequences is not None:
        split += f" ({n_sequences} trajector{'y' if n_sequences == 1 else 'ies'} x 100 frames" + (
            "; a rigid shape: the frames differ only by the test cameras)" if not articulated else ")")
    return Record(name, category, kind, name, _KIN_KEYPOINTS[name], _lazy("kinematic", "load_kinematic", name, **kw),
                  "m", "model z -> +y (or the model's own +y)", split,
                  last_sequences(0.2) if role == "train" else everything,
                  "kinematic tree of the model (parent -> child joint anchors)", f"wheel:{name}",
                  f"{fmt or from_file[name.split('_')[0]]} model, sampled by lfm.data.kinematic", role=role,
                  articulated=articulated, test_stride=1 if role == "train" else 2 if articulated else 1)


_KIN_KEYPOINTS = {"dmc_dog": 66, "dmc_quadruped": 17, "dmc_humanoid": 20, "dmc_cmu_humanoid": 33, "dmc_ant": 13,
                  "dmc_fish": 10, "pb_kuka_iiwa": 8, "pb_franka_panda": 9, "pb_xarm6": 5, "pb_a1": 17, "pb_aliengo": 17,
                  "pb_laikago": 17, "pb_mini_cheetah": 17, "pb_humanoid": 15, "myo_arm": 37, "myo_fullbody": 100,
                  # data v2
                  "pb_spirit40": 17, "pb_vision60": 17, "pb_pusher": 5, "dmc_jaco_arm": 8, "dmc_jaco_hand": 7,
                  "pb_r2d2": 14, "pb_racecar": 8, "pb_husky": 9, "pb_humanoid_symmetric": 15, "myo_hand": 32,
                  "myo_legs": 15}
KINEMATIC_RECORDS = (
    _kin("dmc_dog", "dog", "animal"),
    _kin("dmc_quadruped", "quadruped", "animal"),
    _kin("dmc_humanoid", "human", "human"),
    _kin("dmc_cmu_humanoid", "human", "human"),
    _kin("pb_humanoid", "human", "human"),
    _kin("myo_fullbody", "human", "human"),
    _kin("myo_arm", "human_arm", "human"),
    # held-out categories of other kinds: robot arms, quadruped robots, a swimming fish model, the ant robot
    _kin("pb_kuka_iiwa", "robot_arm", "robot", "ood"),
    _kin("pb_franka_panda", "robot_arm", "robot", "ood"),
    _kin("pb_xarm6", "robot_arm", "robot", "ood"),
    _kin("pb_a1", "quadruped_robot", "robot", "ood"),
    _kin("pb_aliengo", "quadruped_robot", "robot", "ood"),
    _kin("pb_laikago", "quadruped_robot", "robot", "ood"),
    _kin("pb_mini_cheetah", "quadruped_robot", "robot", "ood"),
    _kin("dmc_fish", "fish", "animal", "ood"),
    _kin("dmc_ant", "ant_robot", "robot", "ood"),
    # data v2 (issue 11): more rigs of held-out robot categories (role ood), new rigs of trained categories (role
    # rig_transfer) and new categories (role ood); never trained on, so the training sets are unchanged
    _kin("pb_spirit40", "quadruped_robot", "robot", "ood", n_sequences=20),
    _kin("pb_vision60", "quadruped_robot", "robot", "ood", n_sequences=20),
    _kin("pb_pusher", "robot_arm", "robot", "ood", fmt="pybullet 3.2.7 MJCF", n_sequences=20),
    _kin("dmc_jaco_arm", "robot_arm", "robot", "ood", n_sequences=20),
    _kin("pb_humanoid_symmetric", "human", "human", "rig_transfer", fmt="pybullet 3.2.7 MJCF", n_sequences=20),
    _kin("myo_hand", "hand", "hand", "rig_transfer", n_sequences=20),
    _kin("myo_legs", "human_legs", "human", "ood", n_sequences=20),
    _kin("dmc_jaco_hand", "gripper", "robot", "ood", n_sequences=20),
    _kin("pb_r2d2", "r2d2", "robot", "ood", n_sequences=20),
    _kin("pb_racecar", "car", "robot", "ood", articulated=False, n_sequences=1),
    _kin("pb_husky", "wheeled_robot", "robot", "ood", articulated=False, n_sequences=1),
)


# Data v3 (issue 20): 12 KeypointNet object categories, the AVES bird (two rigs) and the PIG pig. Eight object
# categories and the bird's 18 keypoints train; four objects (the smallest three and the knife) and the pig are
# held-out categories; the bird's joint rig is a held-out rig of a trained body (see the README, data v3).
_KPN_CITE = ("Y. You, Y. Lou, C. Li, Z. Cheng, L. Li, L. Ma, C. Lu, W. Wang, KeypointNet: A Large-scale 3D Keypoint "
             "Dataset Aggregated from Numerous Human Annotations, CVPR 2020")
_AVES_CITE = ("Y. Wang, N. Kolotouros, K. Daniilidis, M. Badger, Birds of a Feather: Capturing Avian Shape Models "
              "from Images, CVPR 2021 (template and pose prior: Badger et al., ECCV 2020)")


def _keypointnet(category, role="train"):
    from .shapes import KEYPOINTNET_OBJECTS

    n = KEYPOINTNET_OBJECTS[category]
    split = ("sorted model_id: first 80% train, last 20% test (4 views per test shape)" if role == "train" else
             "leave-category-out: never trained on; every model test (4 views per shape)")
    return Record(category, category, "object", f"keypointnet_{category}{n}", n,
                  _lazy("shapes", "load_keypointnet", category), "normalised", "ShapeNet +y (data +y)", split,
                  sorted_ids(0.2) if role == "train" else everything,
                  "3-NN on the mean shape of the semantic ids, components joined by their shortest edges",
                  f"keypointnet_objects/{category}.json", _KPN_CITE, role=role, articulated=False, test_views=4)


V3_RECORDS = (
    *(_keypointnet(c) for c in ("bathtub", "bed", "bottle", "guitar", "laptop", "motorcycle", "table", "vessel")),
    *(_keypointnet(c, "ood") for c in ("cap", "helmet", "knife", "skateboard")),
    Record("bird18", "bird", "animal", "aves_bird18", 18, _lazy("aves", "load_bird"), "arbitrary",
           "mean bird: feet midpoint -> back = +y", "by individual: individuals sorted by id, the last 20% test "
           "(40 sampled birds x 50 poses)", last_sequences(0.2),
           "anatomical tree over the 18 regressed keypoints", "bird_aves/models/aves.pt", _AVES_CITE),
    Record("bird_joints20", "bird", "animal", "aves_joints20", 20,
           _lazy("aves", "load_bird", n_frames=1000, n_individuals=20, seed=1, rig="joints"), "arbitrary",
           "mean bird: feet midpoint -> back = +y", "rig transfer: the AVES joint rig is held out of training; other "
           "birds than bird18's (seed 1: 20 birds x 50 poses), every frame test", everything,
           "AVES kinematic tree, near-coincident joints merged", "bird_aves/models/aves.pt", _AVES_CITE,
           role="rig_transfer"),
    Record("pig", "pig", "animal", "pig_mammal58", 58, _lazy("pig", "load_pig"), "m", "source z -> +y",
           "leave-category-out: never trained on; every trajectory test (20 trajectories x 100 frames, every 2nd "
           "frame)", everything, "PIG kinematic tree (parents), joints 4 mm from their parents merged",
           "pig_model_mammal/pkl_files/PIG_core.pkl",
           "L. An, J. Ren, T. Yu, T. Hai, Y. Jia, Y. Liu, Three-dimensional surface motion capture of multiple freely "
           "moving pigs using MAMMAL, Nature Communications 14, 7727 (2023)", role="ood", test_stride=2),
)
RECORDS = RECORDS + KINEMATIC_RECORDS + V3_RECORDS


def _check_table(recs) -> None:
    names = [r.name for r in recs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"category table: duplicate record names {dup}.")
    bad = [r.name for r in recs if r.role not in ROLES]
    if bad:
        raise ValueError(f"category table: records {bad} have a role outside {ROLES}.")


_check_table(RECORDS)
_BY_NAME = {r.name: r for r in RECORDS}


def records(role: str | None = None) -> list[Record]:
    """All records, or those of one role (``train``, ``ood``, ``rig_transfer``, ``extra``), in table order."""
    if role is not None and role not in ROLES:
        raise ValueError(f"role={role!r} is not one of {ROLES}.")
    return [r for r in RECORDS if role is None or r.role == role]


def record(name: str) -> Record:
    """The record of one set; an unknown name lists the close matches."""
    if name not in _BY_NAME:
        import difflib

        close = difflib.get_close_matches(name, _BY_NAME, n=3)
        raise ValueError(f"unknown data set {name!r}" + (f"; did you mean {close}?" if close else "") +
                         f" Known: {sorted(_BY_NAME)} (lfm.data.categories() lists them).")
    return _BY_NAME[name]


@lru_cache(maxsize=None)
def _load_cached(name: str) -> CategorySet:
    rec = record(name)
    cs = rec.loader()
    if cs.n_keypoints != rec.keypoints or cs.rig != rec.rig:
        raise ValueError(f"{name}: the loader returned rig {cs.rig!r} with {cs.n_keypoints} keypoints; the category "
                         f"table says {rec.rig!r} with {rec.keypoints} (lfm/data/catalog.py).")
    return cs


def load(name: str) -> CategorySet:
    """All frames of one record (before splitting), loaded once per process (a fresh copy each call)."""
    import dataclasses

    cs = _load_cached(name)
    return dataclasses.replace(cs, meta=dict(cs.meta))


@dataclass(frozen=True)
class Rig:
    name: str
    keypoints: int
    set: str  # the record that holds this rig

    @property
    def skeleton(self) -> np.ndarray:
        """``(E, 2)`` edges over the keypoints (loads the set)."""
        return load(self.set).edges


@dataclass(frozen=True)
class Category:
    """One body with all its rigs (``lfm.data.categories()``)."""

    name: str
    kind: str
    rigs: tuple[Rig, ...]
    sets: tuple[str, ...]
    licence: str  # the licences of its sets, joined
    split: str  # the split rules of its sets, joined
    held_out: bool  # every set of it is held out of training (an OOD category)
    roles: tuple[str, ...]


def categories() -> list[Category]:
    """The table grouped by category: name, kind, rigs (keypoint count, skeleton), licence, split, held out."""
    out = []
    for cat in dict.fromkeys(r.category for r in RECORDS):
        recs = [r for r in RECORDS if r.category == cat]
        out.append(Category(
            cat, recs[0].kind, tuple(Rig(r.rig, r.keypoints, r.name) for r in recs), tuple(r.name for r in recs),
            "; ".join(dict.fromkeys(f"{r.name}: {r.licence}" for r in recs)),
            "; ".join(f"{r.name}: {r.split}" for r in recs),
            all(r.held_out or r.role == "extra" for r in recs) and any(r.held_out for r in recs),
            tuple(r.role for r in recs)))
    return out
