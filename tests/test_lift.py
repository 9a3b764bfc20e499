"""lfm.lift with the shipped checkpoint: geometry of the outputs (closed forms), equivariance, and every named
bad input; the CLI round trip."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from lfm import lifting as L
from lfm.checkpoint import CheckpointError

pytestmark = pytest.mark.skipif(not L.DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint")


@pytest.fixture
def pose(rng):
    """A 15-keypoint 3D chain seen orthographically by a random rotation: 2D input, edges."""
    X = np.cumsum(rng.normal(size=(15, 3)), 0)
    from scipy.spatial.transform import Rotation

    R = Rotation.random(random_state=1).as_matrix()
    p2 = (X @ R)[:, :2].astype(np.float32)
    edges = np.stack([np.arange(14), np.arange(1, 15)], 1)
    return p2, edges


def test_outputs_obey_their_definitions(pose):
    p2, edges = pose
    out = L.lift(p2, edges=edges)
    assert out.canonical.shape == out.camera.shape == (15, 3) and out.graph == "edges"
    R = out.rotation.astype(np.float64)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(R) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(out.camera, out.scale * out.canonical @ R + out.translation, atol=1e-4)
    np.testing.assert_allclose(out.camera_mirror[:, :2], out.camera[:, :2], atol=1e-4)  # same 2D
    np.testing.assert_allclose(out.canonical.mean(0), 0, atol=1e-4)
    # the fitted camera puts the shape onto the input 2D (orthographic least squares: centroids coincide)
    np.testing.assert_allclose(out.camera[:, :2].mean(0), p2.mean(0), atol=1e-3)


def test_batch_equals_single_and_permutation_is_equivariant(pose):
    p2, edges = pose
    one = L.lift(p2, edges=edges)
    batch = L.lift(np.stack([p2, 2 * p2 + 5]), edges=edges)
    np.testing.assert_allclose(batch.canonical[0], one.canonical, atol=1e-4)
    np.testing.assert_allclose(batch.canonical[1], 2 * one.canonical, atol=1e-3)  # scale and shift invariant
    perm = np.random.default_rng(0).permutation(15)
    inv = np.argsort(perm)
    out_p = L.lift(p2[perm], edges=inv[edges])
    np.testing.assert_allclose(out_p.canonical[inv], one.canonical, atol=1e-4)


def test_torch_input_mask_and_y_down(pose):
    p2, edges = pose
    mask = np.ones(15, bool)
    mask[[3, 7]] = False
    p_nan = p2.copy()
    p_nan[[3, 7]] = np.nan  # hidden keypoints may hold NaN
    out = L.lift(torch.as_tensor(p_nan), mask, edges)
    assert np.isfinite(out.camera).all() and (out.camera[[3, 7]] == 0).all()
    flipped = L.lift(p2 * [1, -1], edges=edges, y_down=True)
    np.testing.assert_allclose(flipped.camera, L.lift(p2, edges=edges).camera * [1, -1, 1], atol=1e-4)
    # the rotation stays a rotation (det +1); the axis flip is the documented last step
    assert np.linalg.det(flipped.rotation) == pytest.approx(1.0, abs=1e-5) and flipped.axes.tolist() == [1, -1, 1]
    np.testing.assert_allclose((flipped.scale * flipped.canonical @ flipped.rotation + flipped.translation)
                               * flipped.axes, flipped.camera, atol=1e-4)


def test_known_rig_and_fallback_graph():
    rigs = L.rigs()
    assert rigs["mann_dog27"]["keypoints"] == 27
    p = np.random.default_rng(0).normal(size=(27, 2))
    assert L.lift(p, rig="mann_dog27").graph == "rig:mann_dog27"
    assert L.lift(p).graph.startswith("fallback:2d-knn")


@pytest.mark.parametrize("kwargs, match", [
    ({"points2d": np.zeros((5, 3))}, "expected \\(N, 2\\)"),
    ({"points2d": np.array([["a", "b"]] * 4)}, "dtype"),
    ({"points2d": np.full((4, 2), np.inf)}, "NaN/inf"),
    ({"points2d": np.zeros((4, 2)), "mask": np.ones(5, bool)}, "mask has shape"),
    ({"points2d": np.random.rand(4, 2), "mask": np.array([1, 1, 0, 0], bool)}, "fewer than 3"),
    ({"points2d": np.random.rand(4, 2), "edges": [[0, 9]]}, "outside 0..3"),
    ({"points2d": np.random.rand(4, 2), "edges": [[0.5, 1]]}, "integer"),
    ({"points2d": np.random.rand(4, 2), "rig": "unicorn"}, "unknown rig"),
    ({"points2d": np.random.rand(4, 2), "rig": "mann_dog27"}, "27 keypoints"),
    ({"points2d": np.random.rand(4, 2), "rig": "mann_dog27", "edges": [[0, 1]]}, "either edges or rig"),
])
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(L.LiftInputError, match=match):
        L.lift(**kwargs)


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="broken.pt could not be read"):
        L.lift(np.random.rand(5, 2), checkpoint=bad)


def test_cli_lift_round_trip_and_bad_file(tmp_path, pose):
    p2, edges = pose
    np.savez(tmp_path / "in.npz", points2d=p2, edges=edges)
    r = subprocess.run([sys.executable, "-m", "lfm.cli", "lift", str(tmp_path / "in.npz"), "-o",
                        str(tmp_path / "out.npz")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_allclose(z["canonical"], L.lift(p2, edges=edges).canonical, atol=1e-5)
    np.savez(tmp_path / "wrong.npz", keypoints=p2)
    r = subprocess.run([sys.executable, "-m", "lfm.cli", "lift", str(tmp_path / "wrong.npz"), "-o",
                        str(tmp_path / "x.npz")], capture_output=True, text=True)
    assert r.returncode != 0 and "no array 'points2d'" in r.stderr and not (tmp_path / "x.npz").exists()


def test_cli_help_explains_each_command():
    r = subprocess.run([sys.executable, "-m", "lfm.cli", "--help"], capture_output=True, text=True)
    for cmd in ("reproduce", "train", "lift", "evaluate"):
        assert cmd in r.stdout


def test_package_level_lift_is_the_same_function(pose):
    import lfm

    p2, edges = pose
    np.testing.assert_array_equal(lfm.lift(p2, edges=edges).canonical, L.lift(p2, edges=edges).canonical)


def test_mask_accepts_bool_and_01_integers_only(pose):
    p2, edges = pose
    keep = np.ones(15, bool)
    keep[[2, 9]] = False
    ref = L.lift(p2, keep, edges)
    for m in (keep.astype(np.int64), keep.astype(np.uint8), torch.as_tensor(keep.astype(np.int32))):
        np.testing.assert_array_equal(L.lift(p2, m, edges).canonical, ref.canonical)
    soft = np.where(keep, 0.9, 0.4)  # confidences: 0.4 must not silently become True
    with pytest.raises(L.LiftInputError, match=r"mask has dtype float64; pass bool .* mask = confidence > 0.5"):
        L.lift(p2, soft, edges)
    with pytest.raises(L.LiftInputError, match=r"mask holds the value\(s\) \[2\].*0 \(hidden\) or 1 \(visible\)"):
        L.lift(p2, keep.astype(int) * 2, edges)
    with pytest.raises(L.LiftInputError, match="mask has dtype"):
        L.lift(p2, keep.astype(np.float32), edges)  # even 0.0/1.0 floats: say what is meant


def test_lift_is_its_three_steps(pose):
    """check_inputs -> choose_graph -> model(return_norm=True) -> fit_camera gives lift's outputs exactly."""
    p2, edges = pose
    mask = np.ones(15, bool)
    mask[4] = False
    p, m, single = L.check_inputs(p2 * [1, -1], mask, y_down=True)
    assert single and p.shape == (1, 15, 2) and (p[0, 4] == 0).all()
    np.testing.assert_allclose(p[0, mask].numpy(), p2[mask], atol=1e-6)  # y flipped back to up
    A, graph = L.choose_graph(p, m, edges)
    assert graph == "edges" and A.shape == (1, 15, 15) and A[0].diagonal().all() and not A[0, 4, 3]
    assert (A == A.transpose(1, 2)).all()
    model, _ = L.load_model()
    with torch.no_grad():
        y, norm = model(p, m, A, return_norm=True)
    canon = torch.where(m[..., None], y * norm.scale[:, None, None], 0.0)
    canon = torch.where(m[..., None], canon - (canon * m[..., None]).sum(1, keepdim=True) / m.sum(1)[:, None, None], 0)
    cam = L.fit_camera(p, canon, m, y_down=True)
    out = L.lift(p2 * [1, -1], mask, edges, y_down=True)
    np.testing.assert_array_equal(out.canonical, canon[0].numpy())
    for k in ("camera", "camera_mirror", "rotation", "scale", "translation"):
        np.testing.assert_array_equal(getattr(out, k), cam[k][0])
    with pytest.raises(L.LiftInputError, match="unknown rig"):
        L.choose_graph(p, m, rig="nope", known_rigs={})


def test_docs_name_functions_that_exist():
    import lfm

    assert "lfm.lift.rigs" not in (L.__doc__ + lfm.__doc__ + L.lift.__doc__)
    assert "lfm.lifting.rigs()" in L.__doc__ and callable(L.rigs)
    for name in L.__all__:
        assert hasattr(L, name), name


def test_the_previous_checkpoint_stays_loadable_and_differs():
    """v3 is the default; v1 and v2 are still shipped, load, lift, and are other models."""
    v1 = L.checkpoint.SHIPPED / "lfm_open_v1.pt"
    v2 = L.checkpoint.SHIPPED / "lfm_open_v2.pt"
    assert L.DEFAULT_CHECKPOINT.name == "lfm_open_v3.pt" and v1.is_file() and v2.is_file()
    assert np.abs(L.lift(np.random.default_rng(1).normal(size=(17, 2)), rig="coco17", checkpoint=v2).canonical -
                  L.lift(np.random.default_rng(1).normal(size=(17, 2)), rig="coco17").canonical).max() > 1e-3
    p = np.random.default_rng(0).normal(size=(17, 2))
    a = L.lift(p, rig="coco17")
    b = L.lift(p, rig="coco17", checkpoint=v1)
    assert a.canonical.shape == b.canonical.shape == (17, 3)
    assert np.abs(a.canonical - b.canonical).max() > 1e-3
    assert L.load_model(v1)[1]["model_config"].get("pe_every_layer", False) is False
    assert L.load_model()[1]["model_config"]["pe_every_layer"] is True and L.load_model()[1]["recipe"] == "lfm_open_v3"


def test_lift_with_a_loaded_model_equals_lift_with_its_checkpoint(pose):
    """``model=`` (a loaded model, as lfm.experiments.h3wb scores one) gives what its checkpoint path gives; the
    model's mode is restored; a checkpoint and a model together are refused."""
    p2, edges = pose
    v1 = L.checkpoint.SHIPPED / "lfm_open_v1.pt"
    model, _ = L.checkpoint.load_model(v1)  # a fresh instance, not the cached one lift loads from the path
    model.train()
    P = np.stack([p2, p2 * 3.0 + 7.0])
    a, b = L.lift(P, edges=edges, checkpoint=v1), L.lift(P, edges=edges, model=model)
    assert model.training and a.graph == b.graph == "edges"
    for k in ("canonical", "camera", "camera_mirror", "rotation", "scale", "translation", "mask", "axes"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    with pytest.raises(L.LiftInputError, match="either checkpoint or model"):
        L.lift(p2, checkpoint=v1, model=model)
