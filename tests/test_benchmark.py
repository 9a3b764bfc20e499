"""The open benchmark (v3): split rules, counts, disjointness, and the fixed test views."""

import numpy as np
import pytest

from lfm.data import benchmark

from .conftest import needs_mirror

pytestmark = [needs_mirror, pytest.mark.usefixtures("offline_cache")]


@pytest.fixture(scope="module")
def splits():
    import os

    os.environ.setdefault("LFM_OFFLINE", "1")
    return benchmark.build()


def test_counts_match_the_calibration_protocol(splits):
    assert splits["human41"].test.n_frames == 307  # yoga
    assert splits["dog"].test.n_frames == 1084  # walk09, every 4th frame
    assert splits["chair"].test.n_frames == 200 and len(benchmark.test_views(splits["chair"]).frame) == 800
    assert set(splits["human41"].test.sequence) == {"yoga"}
    assert "yoga" not in set(splits["human41"].train.sequence) | set(splits["human41"].val.sequence)
    assert splits["cheetah"].train is None


@pytest.mark.parametrize("cat", benchmark.CATEGORIES)
def test_parts_are_disjoint_and_validation_comes_from_training(cat, splits):
    sp = splits[cat]
    cs = benchmark.load_category(cat)
    # a frame is (sequence, frame index) where the loader records it, else (sequence, its coordinates)
    key = lambda s: ({(q, int(i)) for q, i in zip(s.sequence, s.meta["frame"])} if "frame" in s.meta  # noqa: E731
                     else {(q, f.tobytes()) for q, f in zip(s.sequence, s.points3d)})
    tr, va, te = key(sp.train), key(sp.val), key(sp.test)
    assert not (tr & te) and not (va & te) and not (tr & va)
    assert len(tr) + len(va) + len(te) <= cs.n_frames
    if cat in ("human41", "dog", "chair", "hand_icvl", "zebrafish", "mouse_dannce", "mvor"):
        assert not set(sp.test.sequence) & (set(sp.train.sequence) | set(sp.val.sequence))


def test_test_views_are_fixed_and_follow_their_protocol(splits):
    sp = splits["dog"]
    a, b = benchmark.test_views(sp, "realistic"), benchmark.test_views(sp, "realistic")
    np.testing.assert_array_equal(a.points2d, b.points2d)
    o = benchmark.test_views(sp, "so3_ortho")
    np.testing.assert_allclose(o.points2d, o.points3d[..., :2], atol=1e-5)  # orthographic: x, y kept
    up_in_camera = a.R[:, 1, :]  # rows convention: the world's +y seen in camera coordinates
    tilt = np.degrees(np.arccos(np.clip(up_in_camera[:, 1], -1, 1)))
    assert tilt.max() < 32  # elevation within 30 degrees, roll within 10
    with pytest.raises(ValueError, match="protocol"):
        benchmark.test_views(sp, "upside_down")


def test_unknown_category_names_the_known_ones():
    with pytest.raises(ValueError, match="known: .*human41"):
        benchmark.build(["unicorn"])


def test_v2_held_out_sets_are_test_only(splits):
    # 20 trajectories x 100 frames, every 2nd frame; the rigid shapes: one trajectory of 100 frames, every frame
    for name, n in [("pb_spirit40", 1000), ("myo_hand", 1000), ("dmc_jaco_hand", 1000), ("pb_racecar", 100)]:
        sp = splits[name]
        assert sp.train is None and sp.val is None and sp.test.n_frames == n, name
        assert name in benchmark.HELD_OUT and name not in benchmark.CATEGORIES


def test_v3_sets_split_by_model_individual_or_trajectory():
    """Data v3: KeypointNet objects split by model id (4 views per test shape), the bird by individual; the held-out
    objects, the pig (every 2nd frame) and the bird's joint rig are test only."""
    want = {"bathtub": (355, 39, 98), "bed": (105, 12, 29), "bottle": (274, 30, 76), "guitar": (502, 56, 139),
            "laptop": (316, 35, 88), "motorcycle": (214, 24, 60), "table": (809, 90, 225), "vessel": (655, 73, 182),
            "bird18": (1440, 160, 400), "cap": (0, 0, 38), "helmet": (0, 0, 90), "knife": (0, 0, 270),
            "skateboard": (0, 0, 141), "pig": (0, 0, 1000), "bird_joints20": (0, 0, 1000)}
    for name, (tr, va, te) in want.items():
        sp = benchmark.split_category(name)
        assert tuple(sp.counts().values()) == (tr, va, te), name
        if tr:
            assert not set(sp.test.sequence) & (set(sp.train.sequence) | set(sp.val.sequence)), name
            assert name in benchmark.CATEGORIES
        else:
            assert name in benchmark.HELD_OUT and sp.train is None
    assert len(benchmark.test_views(benchmark.split_category("cap")).frame) == 4 * 38
    assert benchmark.VERSION == "open-benchmark-v3" and benchmark.SEED_NAMESPACE == "open-benchmark-v1"


def test_all_means_what_it_meant_when_a_checkpoint_was_trained():
    from lfm import evaluate

    from .test_catalog import V2_TRAIN_SETS

    assert benchmark.resolve(["all"], "open-benchmark-v1") == V2_TRAIN_SETS  # the shipped v2 model's "all"
    assert benchmark.resolve(["all", "pig"]) == benchmark.CATEGORIES + ("pig",)
    assert evaluate.trained_on({"train_config": {"categories": ["all"]}, "benchmark": "open-benchmark-v1"}) == \
        set(V2_TRAIN_SETS)
    with pytest.raises(ValueError, match="unknown benchmark version"):
        benchmark.resolve(["all"], "open-benchmark-v0")
