"""Paper-dataset loaders on the real format fixtures (mmpose_format_samples), and the not-available message."""

import numpy as np
import pytest

from lfm import paths
from lfm.data import DataUnavailableError
from lfm.data.registered import H36M_EDGES, WHOLEBODY_EDGES, load_h36m_npz, load_h3wb_npz

FIX = paths.mirror_dir() / "mmpose_format_samples"
needs_fixtures = pytest.mark.skipif(not FIX.is_dir(), reason=f"no format fixtures at {FIX}")


def pinhole_residual(points3d, points2d, visible):
    """Per frame, fit u = fx X/Z + cx and v = fy Y/Z + cy by least squares over the visible joints; return the
    max residual (pixels)."""
    worst = 0.0
    for X, uv, v in zip(points3d.astype(np.float64), points2d.astype(np.float64), visible):
        X, uv = X[v], uv[v]
        for k in range(2):
            A = np.stack([X[:, k] / X[:, 2], np.ones(len(X))], 1)
            coef, *_ = np.linalg.lstsq(A, uv[:, k], rcond=None)
            worst = max(worst, np.abs(A @ coef - uv[:, k]).max())
    return worst


@needs_fixtures
@pytest.mark.parametrize("name,dataset", [("h36m/test_h36m_body3d.npz", "human36m"),
                                          ("mpi_inf_3dhp/test_3dhp_test.npz", "mpi_inf_3dhp")])
def test_h36m_format(name, dataset):
    cs = load_h36m_npz(FIX / name, dataset=dataset)
    assert cs.n_keypoints == 17 and cs.units == "mm" and cs.points2d is not None
    diag = np.array([np.linalg.norm(np.ptp(p[v], axis=0)) for p, v in zip(cs.points3d, cs.visible)])
    assert np.all((diag > 500) & (diag < 2500)), diag  # people (standing or sitting), in mm
    assert pinhole_residual(cs.points3d, cs.points2d, cs.visible) < 10.0  # real 2D is a perspective image of the 3D (px)
    if dataset == "human36m":
        assert cs.sequence[0] == "S1_Directions_1.54138969"


@needs_fixtures
def test_h3wb_format():
    cs = load_h3wb_npz(FIX / "h3wb" / "h3wb_train_sub.npz")
    assert cs.n_keypoints == 133 and cs.category == "h3wb"
    assert set(s.split("/")[0] for s in cs.sequence) == {"S1", "S5", "S6", "S7"}
    diag = np.linalg.norm(np.ptp(cs.points3d[:, :17], axis=1), axis=-1)
    assert np.all((diag > 500) & (diag < 2500)), diag
    assert pinhole_residual(cs.points3d, cs.points2d, cs.visible) < 10.0


def test_skeletons_are_trees_over_their_rigs():
    assert len(H36M_EDGES) == 16 and {j for e in H36M_EDGES for j in e} == set(range(17))
    used = {j for e in WHOLEBODY_EDGES for j in e}
    assert used == set(range(133)), sorted(set(range(133)) - used)


def test_missing_paper_dataset_says_how_to_obtain(tmp_path):
    with pytest.raises(DataUnavailableError, match=r"human36m not available: .*vision.imar.ro"):
        load_h36m_npz(tmp_path / "nope.npz")
    with pytest.raises(DataUnavailableError, match=r"h3wb not available: .*wholebody3d"):
        load_h3wb_npz(tmp_path / "nope.npz")


def test_wrong_npz_layout_names_the_keys(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, S=np.zeros((2, 17, 4)))
    with pytest.raises(ValueError, match=r"keys \['imgname', 'part'\] missing"):
        load_h36m_npz(bad)
    with pytest.raises(ValueError, match="no 'train_data' key"):
        load_h3wb_npz(bad)


@needs_fixtures
def test_panoptic_world_and_camera_frames():
    import json

    from lfm.data.registered import PANOPTIC19_EDGES, load_panoptic

    seq = FIX / "panoptic_body3d" / "160906_band2"
    files = sorted((seq / "hdPose3d_stage1_coco19").glob("*.json"))
    world = load_panoptic(files)
    raw = json.loads(files[0].read_text())
    assert world.n_frames == sum(len(json.loads(f.read_text())["bodies"]) for f in files)
    np.testing.assert_allclose(world.points3d[0], np.reshape(raw["bodies"][0]["joints19"], (19, 4))[:, :3], rtol=1e-6)
    height = np.linalg.norm(world.points3d[:, 0] - world.points3d[:, 14], axis=-1)  # neck to right ankle, cm
    assert (70 < height).all() and (height < 140).all()
    cam = load_panoptic(files, seq / "calibration_160906_band2.json", camera="00_00")
    assert (cam.points3d[..., 2] > 0).all()  # in front of the camera
    d = np.linalg.norm(cam.points3d[:, :, None] - cam.points3d[:, None], axis=-1)
    np.testing.assert_allclose(d, np.linalg.norm(world.points3d[:, :, None] - world.points3d[:, None], axis=-1),
                               rtol=1e-4, atol=1e-3)  # a rigid move
    inside = (cam.points2d >= 0).all(-1) & (cam.points2d < [1920, 1080]).all(-1)
    assert inside[cam.visible].mean() > 0.7  # camera 00_00 sees most joints; some leave its frame
    assert pinhole_residual(cam.points3d, cam.points2d, cam.visible) < 1e-2
    assert len(PANOPTIC19_EDGES) == 18
    with pytest.raises(ValueError, match="no camera named"):
        load_panoptic(files, seq / "calibration_160906_band2.json", camera="99_99")


@needs_fixtures
def test_interhand_views_fall_inside_their_boxes():
    import json

    from lfm.data.registered import load_interhand

    d = FIX / "interhand2.6m"
    cs = load_interhand(d / "test_interhand2.6m_joint_3d.json", d / "test_interhand2.6m_camera.json",
                        d / "test_interhand2.6m_data.json")
    assert cs.points3d.shape[1:] == (42, 3) and len(cs.edges) == 40
    ann = {a["image_id"]: a["bbox"] for a in json.loads((d / "test_interhand2.6m_data.json").read_text())["annotations"]}
    for uv, v, img in zip(cs.points2d, cs.visible, cs.meta["image_id"]):
        x, y, w, h = ann[int(img)]
        ok = (uv[v, 0] > x - 0.1 * w) & (uv[v, 0] < x + 1.1 * w) & (uv[v, 1] > y - 0.1 * h) & (uv[v, 1] < y + 1.1 * h)
        assert ok.mean() > 0.9
    world = load_interhand(d / "test_interhand2.6m_joint_3d.json")
    bone = np.linalg.norm(world.points3d[:, 19] - world.points3d[:, 20], axis=-1)  # little-finger root to wrist
    assert ((bone[world.visible[:, 19] & world.visible[:, 20]] > 40) & (bone[world.visible[:, 19]
            & world.visible[:, 20]] < 120)).all()  # mm


@needs_fixtures
def test_ubody3d_back_projection_reprojects():
    import ast
    import json

    from lfm.data.registered import load_ubody3d

    path = FIX / "ubody3d" / "ubody3d_train.json"
    cs = load_ubody3d(path)
    a = json.loads(path.read_text())["annotations"][0]
    lit = lambda v: ast.literal_eval(v) if isinstance(v, str) else v  # noqa: E731
    k3 = np.array(lit(a["keypoints_3d"]))
    cp = lit(a["camera_param"])
    uv = cs.points3d[0, :, :2] / cs.points3d[0, :, 2:] * cp["focal"] + cp["princpt"]
    np.testing.assert_allclose(uv, k3[:, :2], rtol=1e-5, atol=1e-2)
    assert cs.edges.max() < 133


def test_demo_pickle_round_trip_and_bad_files(tmp_path):
    import pickle

    from lfm.data.registered import load_demo_pickle
    from lfm.evaluate import demo_dump

    rng = np.random.default_rng(0)
    d = demo_dump(rng.normal(size=(4, 6, 2)), rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6, 3)),
                  rng.random((4, 6)) > 0.2, "dog")
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(d))
    back = load_demo_pickle(tmp_path / "ok.pkl")
    for k in ("inputs_2d", "labels_3d", "outputs_3d", "masks"):
        np.testing.assert_array_equal(back[k], d[k])
    assert back["category"] == "dog"
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps({"inputs_2d": d["inputs_2d"]}))
    with pytest.raises(ValueError, match="demo schema needs"):
        load_demo_pickle(tmp_path / "bad.pkl")
    d["outputs_3d"] = d["outputs_3d"][:, :5]
    (tmp_path / "shape.pkl").write_bytes(pickle.dumps(d))
    with pytest.raises(ValueError, match="outputs_3d has shape"):
        load_demo_pickle(tmp_path / "shape.pkl")
    with pytest.raises(DataUnavailableError, match="how to obtain|To obtain"):
        load_demo_pickle(tmp_path / "absent.pkl")
