"""The category table: every record loads from the mirror and agrees with its record (rig, keypoint count, units,
licence); splits are by sequence; the public ``lfm.data.categories()`` view."""

import numpy as np
import pytest

import lfm.data
from lfm.data import benchmark, catalog

from .conftest import components, needs_mirror


@needs_mirror
@pytest.mark.parametrize("rec", catalog.records(), ids=lambda r: r.name)
def test_every_record_loads_and_agrees_with_its_record(rec, offline_cache):
    cs = lfm.data.load(rec.name)
    assert cs.rig == rec.rig and cs.n_keypoints == rec.keypoints
    assert cs.units == rec.units, f"{rec.name}: loader says {cs.units!r}, table {rec.units!r}"
    assert rec.licence and cs.licence == rec.licence, f"{rec.name}: licence {cs.licence!r} vs table {rec.licence!r}"
    used = cs.visible.any(0)
    e = cs.edges[used[cs.edges].all(1)]
    remap = np.cumsum(used) - 1
    assert components(remap[e], int(used.sum())) == 1, f"{rec.name}: skeleton not connected"
    assert np.isfinite(cs.points3d).all() and cs.n_frames > 0
    if rec.role == "extra":
        return
    sp = benchmark.split_category(rec.name, cs)
    assert sp.test.n_frames > 0
    if rec.role == "train":  # by sequence or time block: no frame is in two parts
        assert sp.train.n_frames > 0 and sp.val.n_frames > 0
        test_all = rec.test(cs)
        train_frames = np.setdiff1d(np.arange(cs.n_frames), test_all)
        assert len(np.intersect1d(train_frames, test_all)) == 0
    else:
        assert sp.train is None  # held out of training entirely


def test_categories_view_groups_rigs_by_body():
    cats = {c.name: c for c in lfm.data.categories()}
    assert {"human", "dog", "chair", "cheetah"} <= set(cats)
    human = cats["human"]
    assert len(human.rigs) >= 5 and len({r.keypoints for r in human.rigs}) >= 4  # several rigs of one body
    assert not human.held_out and cats["cheetah"].held_out
    assert all(r.set in human.sets for r in human.rigs) and human.licence and human.split


def test_held_out_sets_are_never_trained_on():
    from lfm.config import ConfigError, TrainConfig

    assert set(benchmark.HELD_OUT).isdisjoint(benchmark.CATEGORIES)
    assert len(benchmark.RIG_TRANSFER) >= 1 and len(benchmark.OOD) >= 1
    with pytest.raises(ConfigError, match="held out of training"):
        TrainConfig(categories=(benchmark.OOD[0],))
    assert set(TrainConfig(categories=("all",)).train_sets) == set(benchmark.CATEGORIES)


def test_unknown_names_and_bad_tables_are_refused():
    with pytest.raises(ValueError, match="did you mean"):
        catalog.record("hman41")
    dup = catalog.RECORDS[:2] + catalog.RECORDS[:1]
    with pytest.raises(ValueError, match="duplicate"):
        catalog._check_table(dup)


# the training sets: the v2 sets (frozen: the committed v2 training state hashes them) plus the data v3 sets
V2_TRAIN_SETS = ("human41", "dance", "walking", "face", "shark", "dog", "chair", "hand_icvl", "hand_nyu", "zebrafish",
                 "mouse_dannce", "mouse_sleap", "mvor", "human_cmu31", "human_deepmimic15", "human_amp15", "dmc_dog",
                 "dmc_quadruped", "dmc_humanoid", "dmc_cmu_humanoid", "pb_humanoid", "myo_fullbody", "myo_arm")
V3_SETS = {"bathtub": "train", "bed": "train", "bottle": "train", "guitar": "train", "laptop": "train",
           "motorcycle": "train", "table": "train", "vessel": "train", "bird18": "train", "cap": "ood",
           "helmet": "ood", "knife": "ood", "skateboard": "ood", "pig": "ood", "bird_joints20": "rig_transfer"}
TRAIN_SETS = V2_TRAIN_SETS + tuple(n for n, r in V3_SETS.items() if r == "train")
V2_SETS = {"pb_spirit40": "ood", "pb_vision60": "ood", "pb_pusher": "ood", "dmc_jaco_arm": "ood", "myo_legs": "ood",
           "dmc_jaco_hand": "ood", "pb_r2d2": "ood", "pb_racecar": "ood", "pb_husky": "ood",
           "pb_humanoid_symmetric": "rig_transfer", "myo_hand": "rig_transfer"}


def test_training_sets_unchanged_and_roles_follow_the_categories():
    assert benchmark.CATEGORIES == TRAIN_SETS
    trained = {r.category for r in catalog.records("train")}
    for r in catalog.records():
        if r.role == "ood":  # leave-category-out: a body never trained on
            assert r.category not in trained, r.name
        elif r.role == "rig_transfer":  # a held-out rig of a trained body
            assert r.category in trained, r.name
    assert {n: catalog.record(n).role for n in V2_SETS} == V2_SETS


def test_v2_records_are_kinematic_models_with_their_licence():
    from lfm.data import kinematic

    for name in V2_SETS:
        rec = catalog.record(name)
        assert rec.licence_file == f"wheel:{name}" and rec.units == "m" and rec.held_out
        assert kinematic.MODELS[name].category and rec.rig == name and rec.keypoints >= 5
        if name in kinematic.available_models():
            assert rec.licence == kinematic.licence(name) and rec.licence
    cats = lfm.data.categories()
    assert {"gripper", "car", "wheeled_robot", "r2d2", "human_legs"} <= {c.name for c in cats if c.held_out}


def test_v3_table_counts_and_roles():
    """Data v3: >= 30 categories and >= 50 rigs, each with a licence from the registry and a citation; a
    leave-category-out set of >= 12 categories with >= 3 new object categories and the pig."""
    from lfm.data.fetch import licence

    assert {n: catalog.record(n).role for n in V3_SETS} == V3_SETS
    cats = lfm.data.categories()
    assert len(cats) == 34 and len({r.name for c in cats for r in c.rigs}) == 62 == len(catalog.RECORDS)
    ood = {c.name for c in cats if c.held_out}
    assert len(ood) == 15 and {"cap", "helmet", "knife", "skateboard", "pig"} <= ood
    assert "bird" not in ood and {r.role for r in catalog.records() if r.category == "bird"} == {"train",
                                                                                                   "rig_transfer"}
    for n in V3_SETS:
        rec = catalog.record(n)
        assert rec.licence == licence(rec.licence_file) and "MIT" in rec.licence and rec.citation, n
    assert all(r.licence_file for r in catalog.records())


def test_reserved_bodies_stay_out_of_the_table():
    """Kept for later work, never in the table: rats, insects / flies, the dm-control rodent and fruit fly, and the
    KeypointNet airplanes and mugs."""
    import re

    reserved = re.compile(r"rat|rodent|insect|fly|flies|drosophila|airplane|aeroplane|plane|mug", re.I)
    for r in catalog.records():
        for text in (r.name, r.category, r.rig, r.licence_file):
            assert not reserved.search(text), (r.name, text)
