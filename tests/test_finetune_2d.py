"""Learning a category from 2D alone (lfm.selfsup): the refinement against known 3D, the 2D-only fine-tuning run, and
its bad inputs."""

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lfm import cli, lifting
from lfm.selfsup import Keypoints2D, TwoDError, pseudo_3d, refine_2d

from .conftest import needs_mirror

needs_checkpoint = pytest.mark.skipif(not lifting.DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")


def _pa_error(pred, truth):
    """Mean per-view RMS error after a similarity alignment (reflection allowed), by scipy's orthogonal Procrustes
    (an oracle independent of lfm.geometry)."""
    from scipy.linalg import orthogonal_procrustes

    out = []
    for p, t in zip(pred, truth):
        p, t = p - p.mean(0), t - t.mean(0)
        R, s = orthogonal_procrustes(p, t)
        out.append(np.sqrt((((s / np.square(p).sum()) * p @ R - t) ** 2).sum(1).mean()))
    return float(np.mean(out))


def _rigid_views(n_views=150, n_points=15, seed=0):
    """A rigid random shape seen in uniformly random orthographic views: 2D (y up) and camera-frame 3D."""
    rng = np.random.default_rng(seed)
    shape = rng.normal(size=(n_points, 3))
    R = Rotation.random(n_views, random_state=seed).as_matrix()  # (V, 3, 3)
    truth = np.einsum("nd,ved->vne", shape, R)  # rows: x R^T
    return truth[..., :2].copy(), truth


def _flat(p2d):
    return np.concatenate([p2d, np.zeros(p2d.shape[:-1] + (1,))], -1)


def test_refine_recovers_a_rigid_shape_from_noisy_and_mirrored_lifts():
    """Lifts = the truth with depth noise of 0.5 (the shape's coordinates are ~1) and every other view's depth
    mirrored (the lifter's ambiguity): with no shape modes the refinement returns the rigid mean shape in each
    view's camera, far closer to the truth than the lifts and the flat guess; it reprojects onto the 2D."""
    p2d, truth = _rigid_views()
    rng = np.random.default_rng(1)
    lifts = truth.copy()
    lifts[..., 2] += rng.normal(scale=0.5, size=lifts.shape[:2])
    lifts[::2, :, 2] *= -1
    mask = np.ones(p2d.shape[:2], bool)
    ref = refine_2d(p2d, mask, lifts, n_basis=0)
    e_ref, e_lift, e_flat = _pa_error(ref.camera, truth), _pa_error(lifts, truth), _pa_error(_flat(p2d), truth)
    assert e_ref < 0.3 * e_lift and e_ref < 0.2 * e_flat, (e_ref, e_lift, e_flat)
    scale = np.sqrt((p2d - p2d.mean(1, keepdims=True)) ** 2).mean()
    assert np.median(ref.rms_2d) < 0.15 * scale
    assert ref.basis.shape == (0, 15, 3) and ref.coeffs.shape == (150, 0)


def test_refine_modes_follow_a_shape_that_changes():
    """A body whose one limb swings (a rank-1 change): with one mode the refinement keeps each view's pose (better
    than the rigid mean shape), and hidden keypoints come back as 0."""
    p2d, truth = _rigid_views(n_views=200, n_points=12, seed=3)
    angle = np.linspace(-1.0, 1.0, 200)
    rng = np.random.default_rng(4)
    R = Rotation.random(200, random_state=5).as_matrix()
    base = rng.normal(size=(12, 3))
    shapes = np.repeat(base[None], 200, 0)
    shapes[:, :3, 1] += 1.5 * angle[:, None]  # three keypoints move together
    truth = np.einsum("vnd,ved->vne", shapes, R)
    p2d = truth[..., :2].copy()
    lifts = truth + np.concatenate([np.zeros_like(p2d), rng.normal(scale=0.4, size=p2d.shape[:2] + (1,))], -1)
    mask = np.ones(p2d.shape[:2], bool)
    mask[::7, 5] = False
    e0 = _pa_error(refine_2d(p2d, mask, lifts, n_basis=0).camera, truth)
    ref1 = refine_2d(p2d, mask, lifts, n_basis=1)
    assert _pa_error(ref1.camera, truth) < 0.7 * e0
    assert (ref1.camera[::7, 5] == 0).all()


def test_refine_names_bad_shapes_and_counts():
    p = np.zeros((5, 4, 2))
    with pytest.raises(TwoDError, match=r"must be \(B, N, 2\)"):
        refine_2d(p, np.ones((5, 4), bool), np.zeros((5, 3, 3)))
    with pytest.raises(TwoDError, match="give >= 2 rows"):
        refine_2d(p[:1], np.ones((1, 4), bool), np.zeros((1, 4, 3)))
    with pytest.raises(TwoDError, match="n_basis >= 0"):
        refine_2d(p, np.ones((5, 4), bool), np.zeros((5, 4, 3)), n_basis=-1)


@needs_checkpoint
def test_a_2d_only_run_on_a_rigid_shape_recovers_its_depth_better_than_flat():
    """The shipped model lifts 150 views of a rigid shape it never saw; refined together from their 2D alone
    (lfm.selfsup.pseudo_3d), the depth is closer to the truth than the flat guess and than the lifts."""
    torch.set_num_threads(1)
    p2d, truth = _rigid_views(seed=7)
    d = Keypoints2D(p2d.astype(np.float32), np.ones(p2d.shape[:2], bool), np.arange(len(p2d)), None, "toy", "test")
    lifts, ref = pseudo_3d(d, n_basis=0)
    e_ref, e_lift, e_flat = _pa_error(ref.camera, truth), _pa_error(lifts, truth), _pa_error(_flat(p2d), truth)
    assert e_ref < 0.8 * e_flat and e_ref < e_lift, (e_ref, e_lift, e_flat)


def _run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("argv, message", [
    (["--modes", "3"], "--modes and --min-confidence apply to 2D data: add --2d"),
    (["--2d", "--up", "z"], "--up is for 3D data"),
    (["--2d", "--modes", "-1"], "--modes -1: give 0"),
])
def test_finetune_2d_cli_refuses_options_that_do_not_fit(tmp_path, capsys, argv, message):
    np.savez(tmp_path / "p.npz", points2d=np.zeros((20, 5, 2)))
    rc, _, err = _run(capsys, "finetune", tmp_path / "p.npz", "-o", tmp_path / "run", *argv)
    assert rc == 1 and message in err


@needs_checkpoint
def test_finetune_2d_names_a_file_with_too_few_frames(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "few.npz", points2d=rng.normal(size=(6, 5, 2)))
    rc, _, err = _run(capsys, "finetune", "--2d", tmp_path / "few.npz", "-o", tmp_path / "run")
    assert rc == 1 and "few.npz: 6 frames are too few" in err and "at least 10" in err
    assert not (tmp_path / "run").exists()


@needs_mirror
@needs_checkpoint
@pytest.mark.usefixtures("offline_cache")
def test_finetune_2d_end_to_end_on_2d_views_of_a_new_body(tmp_path, capsys):
    """2D views (realistic cameras) of a procedural body the model never saw, as the user's .npz with a skeleton:
    the run writes the refined 3D it trained on, the report (with the refinement) and a model that lifts the rig."""
    from lfm.data.procedural import generate
    from lfm.data.views import synthesize_views

    torch.set_num_threads(1)
    body = generate(1, 200, seed=321)[0]
    v = synthesize_views(body.points3d, body.visible, seed=0)  # upright perspective cameras, as "realistic"
    np.savez(tmp_path / "toy2d.npz", points2d=v.points2d, mask=v.visible, edges=body.edges)
    rc, out, err = _run(capsys, "finetune", "--2d", tmp_path / "toy2d.npz", "-o", tmp_path / "run", "--mix", "dog",
                        "--max-epochs", "2", "--epoch-steps", "10", "--threads", "1", "--no-progress", "--modes", "3")
    assert rc == 0, err
    assert "lifted and refined (3 shape modes" in out
    rep = json.loads((tmp_path / "run" / "report.json").read_text())
    assert rep["refinement"]["n_basis"] == 3 and rep["source_2d"].endswith("toy2d.npz")
    with np.load(tmp_path / "run" / "pseudo3d.npz") as z:
        assert z["points3d"].shape == (200, body.n_keypoints, 3)
        np.testing.assert_array_equal(z["edges"], body.edges)
    assert "yours_toy2d" in lifting.rigs(tmp_path / "run" / "model.pt")


@needs_checkpoint
def test_lift_refine_improves_a_video_of_a_rigid_shape_and_keeps_the_camera_contract():
    """lfm.lift(..., refine=0) on 150 views of a rigid shape: closer to the truth than the plain lifts, and the
    returned fields still satisfy camera = (scale * canonical @ rotation + translation) * axes."""
    torch.set_num_threads(1)
    p2d, truth = _rigid_views(seed=11)
    plain = lifting.lift(p2d)
    refined = lifting.lift(p2d, refine=0)
    assert _pa_error(refined.camera, truth) < 0.8 * _pa_error(plain.camera, truth)
    rebuilt = (refined.scale[:, None, None] * refined.canonical @ refined.rotation
               + refined.translation[:, None, :]) * refined.axes
    np.testing.assert_allclose(rebuilt, refined.camera, atol=1e-4)
    with pytest.raises(lifting.LiftInputError, match="one pose alone cannot be refined"):
        lifting.lift(p2d[0], refine=0)


@needs_checkpoint
def test_lift_cli_refines_a_file_and_refuses_negative_modes(tmp_path, capsys):
    p2d, _ = _rigid_views(n_views=40, seed=12)
    np.savez(tmp_path / "video.npz", points2d=p2d.astype(np.float32))
    rc, out, err = _run(capsys, "lift", tmp_path / "video.npz", "-o", tmp_path / "out.npz", "--refine", "0",
                        "--no-progress")
    assert rc == 0, err
    assert "40 of 40 poses" in out and "refined with 0 modes" in out
    rc, _, err = _run(capsys, "lift", tmp_path / "video.npz", "-o", tmp_path / "out2.npz", "--refine", "-1")
    assert rc == 1 and "--refine -1: give a number of shape modes >= 0" in err


def test_table2_summary_gap_closed_from_absent_and_from_the_control():
    """Means over seeds, sample sd, and the gap closed (absent - 2D only) / (absent - present), also from the
    mix-only control, on hand-made rows."""
    from lfm.experiments.refine2d import table2_summary

    vals = {"absent": (1.0, 1.0), "mix_only": (0.9, 0.9), "2d_only": (0.6, 0.8), "present": (0.5, 0.5)}
    rows = [{"set": "s", "condition": c, "seed": k, "ratio_refl": v[k], "ratio_det": v[k],
             "bench_refl": 0.6 + 0.01 * k, "frames": 10} for c, v in vals.items() for k in (0, 1)]
    s = table2_summary(rows)["s"]
    assert s["2d_only"]["ratio_refl"] == pytest.approx(0.7)
    assert s["2d_only"]["ratio_refl_sd"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert s["gap_closed_by_2d_only"] == pytest.approx(0.3 / 0.5)
    assert s["gap_closed_vs_mix_only"] == pytest.approx(0.2 / 0.4)
    assert s["bench_change_2d_only"] == pytest.approx(0.0) and s["absent"]["seeds"] == 2
