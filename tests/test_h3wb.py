"""H3WB end to end (lfm.experiments.h3wb): the per-part protocol against hand-computed cases and H3WB's own scoring
code, the subject split, the Table 1 numbers against the paper reference, "not run" without data, and the training
path on the format fixture and on a synthetic npz of H3WB's layout (validation, checkpoints, resume)."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from lfm import paths
from lfm.checkpoint import CheckpointError
from lfm.config import ConfigError, ModelConfig, TrainConfig
from lfm.data.benchmark import Split
from lfm.data.fetch import DataUnavailableError
from lfm.data.schema import CategorySet
from lfm.experiments import h3wb
from lfm.metrics import h3wb_metrics

ROOT = Path(__file__).resolve().parents[1]
PAPER_MD = ROOT.parent / "shared" / "reference" / "paper.md"
FIXTURE = paths.mirror_dir() / h3wb.FIXTURE
needs_fixture = pytest.mark.skipif(not FIXTURE.is_file(), reason=f"no H3WB format fixture at {FIXTURE}")
TINY = ModelConfig(d_model=16, n_heads=2, n_layers=1)

BODY, FACE, LHAND, RHAND = range(0, 23), range(23, 91), range(91, 112), range(112, 133)


def _gt(B=3, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(scale=300.0, size=(B, 133, 3)))


def test_h3wb_metrics_per_part_translations_hand_computed():
    """pred = gt + one translation per part: body t_b, face t_f, left hand t_l, right hand t_r."""
    gt = _gt()
    t = {"b": [10.0, 0, 0], "f": [0, 30.0, 40.0], "l": [0, 0, 12.0], "r": [5.0, 0, 0]}
    pred = gt.clone()
    for part, key in ((BODY, "b"), (FACE, "f"), (LHAND, "l"), (RHAND, "r")):
        pred[:, list(part)] += torch.tensor(t[key], dtype=gt.dtype)
    got = {k: v.numpy() for k, v in h3wb_metrics(pred, gt).items()}
    # the pelvis (hips 11, 12) moved by t_b: subtracting it leaves body 0, face |t_f - t_b|, hands |t_h - t_b|
    face = np.linalg.norm(np.subtract(t["f"], t["b"]))  # sqrt(10^2 + 30^2 + 40^2)
    left, right = np.linalg.norm(np.subtract(t["l"], t["b"])), np.linalg.norm(np.subtract(t["r"], t["b"]))
    expect = {"body": 0.0, "face": face, "face_aligned": face,  # the nose (0) is a body joint: moved by t_b
              "hand": (21 * left + 21 * right) / 42, "hand_aligned": 0.0,  # each wrist moved with its hand
              "whole_body": (68 * face + 21 * left + 21 * right) / 133}
    for k, v in expect.items():
        np.testing.assert_allclose(got[k], v, atol=1e-9, err_msg=k)


def test_h3wb_metrics_one_translation_is_free_and_unaligned_error_is_not():
    gt = _gt()
    shifted = gt + torch.tensor([100.0, -50.0, 2000.0], dtype=gt.dtype)  # a depth error: pelvis alignment removes it
    for k, v in h3wb_metrics(shifted, gt).items():
        np.testing.assert_allclose(v.numpy(), 0.0, atol=1e-9, err_msg=k)
    pred = gt.clone()
    pred[:, 100] += torch.tensor([0.0, 0.0, 42.0], dtype=gt.dtype)  # one left-hand joint off by 42 mm
    got = h3wb_metrics(pred, gt)
    np.testing.assert_allclose(got["whole_body"].numpy(), 42 / 133)
    np.testing.assert_allclose(got["hand"].numpy(), 42 / 42)
    np.testing.assert_allclose(got["hand_aligned"].numpy(), (42 / 21 + 0) / 2)
    np.testing.assert_allclose(got["body"].numpy(), 0.0, atol=1e-12)


def test_h3wb_metrics_equal_the_leaderboard_script():
    """H3WB test_leaderboard.py's formulas (pooled torch.mean over frames and joints), written out here."""
    gt, pred = _gt(5, 1), _gt(5, 2)
    diff = pred - gt
    diff = diff - (diff[:, 11:12] + diff[:, 12:13]) / 2
    d1 = (diff - diff[:, 0:1])[:, 23:91]
    d21, d22 = (diff - diff[:, 91:92])[:, 91:112], (diff - diff[:, 112:113])[:, 112:]
    n = diff.norm(dim=-1)
    board = {"whole_body": n.mean(), "body": n[:, :23].mean(), "face": n[:, 23:91].mean(), "hand": n[:, 91:].mean(),
             "face_aligned": d1.norm(dim=-1).mean(),
             "hand_aligned": (d21.norm(dim=-1).mean() + d22.norm(dim=-1).mean()) / 2}
    ours = h3wb_metrics(pred, gt)
    for k in h3wb.PARTS:
        np.testing.assert_allclose(float(ours[k].mean()), float(board[k]), rtol=1e-12, err_msg=k)


def test_part_pa_is_zero_for_a_similarity_per_part_and_not_for_the_whole_body():
    from scipy.spatial.transform import Rotation

    gt = _gt(2, 3)
    pred = gt.clone()
    for k, part in enumerate((BODY, FACE, LHAND, RHAND)):
        R = torch.from_numpy(Rotation.random(random_state=k).as_matrix())
        pred[:, list(part)] = 1.3 * gt[:, list(part)] @ R + 7.0 * (k + 1)
    pa = h3wb.part_pa_mpjpe(pred, gt)
    for k in ("body", "face", "hand"):
        np.testing.assert_allclose(pa[k].numpy(), 0.0, atol=1e-6, err_msg=k)
    assert (pa["whole_body"] > 10.0).all()  # the parts moved differently: no one similarity fits them all
    # and a single similarity of the whole body is free in every part
    R = torch.from_numpy(Rotation.random(random_state=9).as_matrix())
    whole = h3wb.part_pa_mpjpe(0.5 * gt @ R - 3.0, gt)
    for k, v in whole.items():
        np.testing.assert_allclose(v.numpy(), 0.0, atol=1e-6, err_msg=k)


def test_part_errors_on_exact_predictions_are_zero():
    gt = _gt(2, 4).numpy()
    ev = h3wb.part_errors(gt + 5.0, gt * 0.01, gt)  # camera frame off by a translation; canonical a scaled copy
    for group in ("mpjpe", "pa_mpjpe", "mpjpe_gt_similarity"):
        assert all(abs(v) < 1e-6 for v in ev[group].values()), (group, ev[group])
    assert set(ev["mpjpe"]) == set(h3wb.PARTS) and set(ev["pa_mpjpe"]) == set(h3wb.PA_PARTS)


@needs_fixture
def test_fixture_loads_133_keypoints_and_the_subject_split_is_disjoint():
    cs, source = h3wb.load("")
    assert source["mode"] == "fixture" and "not a result" in source["note"]
    assert cs.n_keypoints == 133 and cs.points2d.shape == (cs.n_frames, 133, 2) and cs.units == "mm"
    train, test = h3wb.split_subjects(cs)
    tr, te = set(h3wb.subjects_of(train)), set(h3wb.subjects_of(test))
    assert tr == {"S1", "S5", "S6"} and te == {"S7"} and not tr & te
    assert train.n_frames + test.n_frames == cs.n_frames
    with pytest.raises(ValueError, match="disjoint"):
        h3wb.split_subjects(cs, ["S1", "S7"], ["S7"])
    with pytest.raises(ValueError, match=r"match no frame; the data holds subjects \['S1', 'S5', 'S6', 'S7'\]"):
        h3wb.split_subjects(cs, ["S1"], ["S8"])


def test_validation_is_the_end_of_each_sequence_and_camera():
    F = 40
    seq = np.array(["S1/a"] * 20 + ["S1/b"] * 20)
    cams = np.array((["c1"] * 10 + ["c2"] * 10) * 2)
    cs = CategorySet("h3wb", "coco_wholebody133", np.zeros((F, 133, 3)), np.ones((F, 133), bool),
                     np.zeros((0, 2)), seq, "mm", "test", "test", meta={"camera": cams})
    val = h3wb.validation_frames(cs)
    assert np.flatnonzero(val).tolist() == [9, 19, 29, 39]


def test_missing_data_folder_says_how_to_obtain_it(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"holds none of \['h3wb_train.npz'.*wholebody3d"):
        h3wb.load(str(tmp_path))


def _fake(mode: str) -> dict:
    ev = {"mpjpe": {p: 50.0 + k for k, p in enumerate(h3wb.PARTS)},
          "pa_mpjpe": {p: 20.0 + k for k, p in enumerate(h3wb.PA_PARTS)}}
    return {"mode": mode, "evaluation": ev, "split": {"train_subjects": ["S1"], "test_subjects": ["S7"],
                                                      "test_frames": 3}, "source": {"note": "x"}}


def test_table_marks_not_run_without_data_and_never_shows_fixture_numbers():
    for result in (None, _fake("fixture")):
        t = h3wb.table1(result)
        assert list(t[h3wb.OURS]) == [h3wb.NOT_RUN] * 6
        assert set(t[h3wb.OURS_PA]) == {h3wb.NOT_RUN, "-"}
        assert t.loc["Whole-body", h3wb.PAPER_LFM] == 64.13
    t = h3wb.table1(_fake("h3wb"))
    assert t.loc["Whole-body", h3wb.OURS] == 50.0 and t.loc["Hand", h3wb.OURS_PA] == 23.0
    assert t.loc["Face (nose-aligned)", h3wb.OURS_PA] == "-"


def test_fig4_draws_ours_only_when_run():
    import matplotlib.pyplot as plt

    for result, has_ours in ((None, False), (_fake("fixture"), False), (_fake("h3wb"), True)):
        fig = h3wb.fig4(result)
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert (h3wb.OURS in labels) == has_ours and h3wb.PAPER_LFM in labels
        assert "mm" in ax.get_ylabel()
        notes = " ".join(t.get_text() for t in ax.texts)
        assert (h3wb.NOT_RUN in notes) != has_ours
        plt.close(fig)


@pytest.mark.skipif(not PAPER_MD.is_file(), reason=f"no paper reference at {PAPER_MD}")
def test_table1_numbers_equal_the_paper_reference():
    text = PAPER_MD.read_text()
    block = text.split("### Table 1", 1)[1].split("**Official H3WB leaderboard", 1)[0]
    rows = {}
    for line in block.splitlines():
        cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and re.match(r"^[\d.]+$", cells[1]):
            rows[cells[0]] = cells[1:7]
    names = {"SimpleBaseline": "SimpleBaseline", "CanonPose w/3D sv.": "CanonPose w/3D sv.",
             "Large SimpleBaseline": "Large SimpleBaseline", "Jointformer (extra data)": "Jointformer (extra data)",
             "Jointformer": "Jointformer", "3D-LFM (Ours)": h3wb.PAPER_LFM}
    assert set(names) <= set(rows), sorted(rows)
    for paper_name, ours in names.items():
        assert [float(v) for v in rows[paper_name]] == list(h3wb.PAPER_TABLE1[ours]), paper_name
    pa = rows["3D-LFM – PA"]
    assert dict(zip(("whole_body", "body", "face", "hand"), map(float, pa[0:3] + pa[4:5]))) == h3wb.PAPER_PA
    # and the experiments table repeats them
    assert ("MPJPE 64.13 / 60.83 / 56.55 (aligned 10.44) / 78.21 (aligned 28.22); "
            "PA 33.13 / 39.36 / 6.02 / 13.56") in text


@needs_fixture
def test_frames_carry_the_wholebody_skeleton_and_train_batches_use_it():
    """lfm.train's data path on the 133-keypoint set: FrameDataset batches and validation views, the skeleton
    graph (the one lift_mm gives), and synthetic 2D with the image orientation of H3WB's pixel 2D (y down)."""
    from lfm.data.dataset import FrameDataset
    from lfm.skeletons import get
    from lfm.train import validation_views

    cs, _ = h3wb.load("")
    assert sorted(map(tuple, cs.edges.tolist())) == sorted(get("coco_wholebody133").edges)
    train, test = h3wb.split_subjects(cs)
    b = FrameDataset({"h3wb": train}, graph="skeleton").batch(np.arange(3), seed=0, camera="upright",
                                                              projection="perspective")
    assert b.points2d.shape == (3, 133, 2) and b.mask.all() and b.category == ["h3wb"] * 3
    assert torch.equal(b.adjacency[0], h3wb._adjacency())
    rms = b.target.square().sum(-1).mean(1).sqrt()
    np.testing.assert_allclose(rms.numpy(), 1.0, rtol=1e-5)  # unit-radius camera-frame targets
    split = Split("h3wb", train, train, test, "test")
    (sub, views), = validation_views({"h3wb": split}, 2).values()
    assert views.points2d.shape == (2, 133, 2) and sub.n_frames == 2
    nose, ankles = 0, [15, 16]  # head above feet: smaller y, as in the real pixel 2D
    for p2 in (views.points2d, b.points2d.numpy(), cs.points2d):
        assert (p2[:, nose, 1] < p2[:, ankles, 1].mean(1)).all()


def test_sets_outside_the_benchmark_train_only_from_prepared_splits(tmp_path):
    """TrainConfig takes the name 'h3wb'; lfm.train refuses it unless prepared splits hold it."""
    from lfm.train import train

    cfg = TrainConfig(categories=("h3wb",), lr=0.01, max_epochs=1, epoch_steps=1)
    assert cfg.train_sets == ("h3wb",)
    with pytest.raises(ConfigError, match="not sets of the open benchmark"):
        train(TINY, cfg, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="fixed for H3WB"):
        h3wb.run("", graph="mean_knn")


@needs_fixture
def test_fixture_run_goes_through_lfm_train_and_is_a_code_check(tmp_path):
    kw = dict(model_cfg=TINY, fixture_steps=3, threads=1, lr=2e-3, seed=4, log=lambda *a: None)
    result = h3wb.run("", run_dir=tmp_path, **kw)
    assert result["mode"] == "fixture" and result["training"]["steps"] == 3
    assert result["split"]["train_frames"] == 3 and result["split"]["test_frames"] == 1
    assert result["split"]["validation_frames"] == 0 and "training frames" in result["split"]["validation"]
    run_dir = tmp_path / "fixture"
    assert {"summary.json", "best.pt", "last.pt"} <= {p.name for p in run_dir.iterdir()}
    summary = json.loads((run_dir / "summary.json").read_text())  # written by lfm.train.train, nobody else
    tc = summary["train_config"]
    assert tc["categories"] == ["h3wb"] and tc["graph"] == "skeleton" and tc["threads"] == 1
    assert (tc["epoch_steps"], tc["max_epochs"], tc["batch_size"], tc["lr"], tc["seed"]) == (3, 1, 8, 2e-3, 4)
    assert summary["model_config"] == dataclasses.asdict(TINY) and summary["stopped"] == "max_epochs"
    assert result["training"]["train_config"] == tc and result["training"]["best_epoch"] == 1
    for group in result["evaluation"].values():
        assert all(np.isfinite(v) and v >= 0 for v in group.values())
    body = h3wb.result_json(result)
    assert body["status"] == h3wb.NOT_RUN and "NOT a result" in body["code_check"]["what"]
    assert "evaluation" not in body and body["protocol"] == h3wb.PROTOCOL
    assert body["two_d"]["training"].startswith("synthesised") and body["two_d"]["test"].startswith("real")
    assert list(h3wb.table1(result)[h3wb.OURS]) == [h3wb.NOT_RUN] * 6
    again = h3wb.run("", run_dir=tmp_path, **kw)  # a fixture run always starts afresh: nothing resumed
    assert again["training"]["steps"] == 3 and len(again["training"]["history"]) == 1
    assert again["evaluation"] == result["evaluation"]  # seeded: the same code check twice
    bare = h3wb.run("", **kw)  # no run_dir: a temporary run folder, removed
    assert bare["training"]["run_dir"] is None and bare["evaluation"] == result["evaluation"]


def _write_h3wb_npz(path: Path, frames: int = 10, seed: int = 0):
    """An npz of H3WB's layout (train_data[subject][action] with one camera), from the fixture's frames jittered."""
    cs, _ = h3wb.load("")
    rng = np.random.default_rng(seed)
    data = {}
    for k, subj in enumerate(h3wb.subjects_of(cs)):
        c3 = cs.points3d[k] + rng.normal(scale=20.0, size=(frames, 133, 3))
        c2 = cs.points2d[k] + rng.normal(scale=2.0, size=(frames, 133, 2))
        data[subj] = {"Walking": {"global_3d": c3, "frame_id": np.arange(frames),
                                  "60457274": {"camera_3d": c3, "pose_2d": c2, "sample_id": np.arange(frames)}}}
    np.savez(path, train_data=np.array(data, dtype=object), metadata=np.array({}, dtype=object))


@needs_fixture
def test_data_path_trains_validates_checkpoints_resumes_and_scores_the_best_epoch(tmp_path):
    from lfm.checkpoint import load_model

    _write_h3wb_npz(tmp_path / "h3wb_train.npz")
    kw = dict(model_cfg=TINY, batch_size=4, epoch_steps=2, threads=1, run_dir=tmp_path / "run", log=lambda *a: None)
    first = h3wb.run(str(tmp_path), max_epochs=2, **kw)
    assert first["mode"] == "h3wb" and first["split"]["validation_frames"] == 3  # 1 of 10 per training subject
    assert first["split"]["train_frames"] == 27 and first["split"]["test_frames"] == 10
    assert first["split"]["validation"] == h3wb.VALIDATION_RULE
    assert 400 < first["split"]["size_prior_mm"] < 700  # a person's RMS radius, from the training subjects only
    hist = first["training"]["history"]
    assert [h["epoch"] for h in hist] == [1, 2] and all(h["val"]["model_refl"] > 0 for h in hist)
    run_dir, = (tmp_path / "run").iterdir()  # run/h3wb-<hash of the settings>
    assert run_dir.name.startswith("h3wb-") and {"last.pt", "best.pt", "summary.json"} <= {p.name for p in run_dir.iterdir()}
    assert first["training"]["stopped"] == "max_epochs" and first["training"]["train_config"]["batch_size"] == 4
    again = h3wb.run(str(tmp_path), max_epochs=3, **kw)  # a larger budget continues the same run
    assert [h["epoch"] for h in again["training"]["history"]] == [1, 2, 3] and again["training"]["steps"] == 6
    assert h3wb.result_json(again)["status"] == "run on H3WB"
    # the best epoch is what was scored: best.pt lifted by hand gives the same numbers
    model, ck = load_model(run_dir / "best.pt")
    assert ck["state"]["best_epoch"] == again["training"]["best_epoch"]
    assert again["training"]["scored"].startswith(f"best.pt (epoch {ck['state']['best_epoch']} of 3")
    cs, _ = h3wb.load(str(tmp_path))
    _, test = h3wb.split_subjects(cs)
    cam, can = h3wb.lift_mm(model, test.points2d, again["split"]["size_prior_mm"])
    assert h3wb.part_errors(cam, can, test.points3d) == again["evaluation"]
    other = h3wb.run(str(tmp_path), max_epochs=1, lr=1e-4, **kw)  # other settings: a folder of their own
    assert other["training"]["epochs"] == 1 and len(list((tmp_path / "run").iterdir())) == 2
    with pytest.raises(CheckpointError, match="trained on other data"):  # same settings, other training subjects
        h3wb.run(str(tmp_path), max_epochs=4, train_subjects=["S1", "S5"], **kw)
