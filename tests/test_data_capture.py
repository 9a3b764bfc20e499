"""Capture-dataset loaders on the real files: counts and physical facts from each SOURCE.md, raw-file oracles."""

import io
import tarfile

import numpy as np
import pytest
import torch

from lfm.data import lab_capture as capture
from lfm.data.fetch import fetch

from .conftest import needs_mirror

pytestmark = [needs_mirror, pytest.mark.usefixtures("offline_cache")]


def pairwise(P):
    return np.linalg.norm(P[:, :, None] - P[:, None, :], axis=-1)


def test_zebrafish_counts_videos_and_body_length():
    cs = capture.load_zebrafish()
    assert cs.points3d.shape == (3000, 12, 3) and cs.units == "mm" and cs.n_nonfinite == 0
    assert len(np.unique(cs.sequence)) == 148 + 117 + 124  # videos per set, SOURCE.md
    backbone = np.linalg.norm(np.diff(cs.points3d[:, :10], axis=1), axis=-1).sum(1)
    assert 2.8 < np.median(backbone) < 3.4  # "backbone length 3.1 +- 0.15 mm"


def test_zebrafish_reader_equals_torch_load():
    with tarfile.open(fetch("fish_zebrafish_larva_3d/coor_3d_ann_fs.tar", progress=False)) as t:
        m = next(m for m in t.getmembers() if m.name.endswith(".pt"))
        raw = t.extractfile(m).read()
    ours = capture._read_pt(raw, m.name)
    ref = torch.load(io.BytesIO(raw), weights_only=True).numpy()
    np.testing.assert_array_equal(ours, ref)


def test_zebrafish_reader_rejects_non_tensor_files():
    with pytest.raises(ValueError, match="not a torch zip archive"):
        capture._read_pt(b"not a zip", "x.pt")


def test_mouse_dannce_matches_raw_file_and_floor_is_down():
    from scipy.io import loadmat

    cs = capture.load_mouse_dannce()
    assert cs.points3d.shape == (81 + 91, 22, 3) and len(cs.edges) == 24
    assert 0 < cs.n_nonfinite < 0.05 * 172 * 22  # "2-4 % NaN" become invisible joints
    raw = loadmat(fetch("mouse_dannce_label3d/markerless_mouse_1_label3d_dannce.mat", progress=False))
    X = raw["labelData"][0, 0]["data_3d"][0, 0].reshape(-1, 22, 3)
    ok = np.isfinite(X).all(-1) & cs.visible[:81]
    # a rotation keeps distances: pairwise distances of the loaded frame equal the raw ones
    f = int(np.argmax(ok.all(1)))
    np.testing.assert_allclose(pairwise(cs.points3d[f:f + 1]), pairwise(X[f:f + 1]), rtol=1e-4, atol=1e-3)
    names = cs.meta["joint_names"]
    snout, paw = names.index("Snout"), names.index("HindpawL")
    assert np.nanmean(cs.points3d[:, snout, 1]) > np.nanmean(cs.points3d[:, paw, 1]) + 10  # +y is up (mm)


def test_mouse_sleap_counts_and_extent():
    cs = capture.load_mouse_sleap()
    assert cs.points3d.shape == (120, 15, 3) and len(cs.edges) == 14
    n = cs.meta["joint_names"]
    extent = np.linalg.norm(cs.points3d[:, n.index("Nose")] - cs.points3d[:, n.index("TailTip")], axis=-1)
    assert 120 < np.median(extent) < 220  # "nose to tail tip about 169 mm"


def test_mvor_room_frame_keeps_shapes_and_head_is_up():
    import json

    cs = capture.load_mvor()
    assert cs.points3d.shape == (1061, 12, 3)
    assert dict(zip(*np.unique(cs.sequence, return_counts=True))).keys() == {"day1", "day2", "day3", "day4"}
    raw = json.loads(fetch("human_upperbody_mvor/camma_mvor_2018.json", progress=False).read_text())
    K = np.array([a["keypoints3D"] for a in raw["annotations3D"]], float).reshape(-1, 12, 4)[..., :3]
    np.testing.assert_allclose(pairwise(cs.points3d[:50]), pairwise(K[:50]), rtol=1e-4, atol=1e-2)
    head_above = cs.points3d[:, 0, 1] > cs.points3d[:, [4, 5], 1].mean(1)
    assert head_above.mean() > 0.95


def test_fisheye_projection_closed_form():
    K = np.array([[1000.0, 0, 500], [0, 900.0, 400], [0, 0, 1]])
    X = np.array([[0.3, -0.2, 2.0], [0.0, 0.0, 5.0]])
    uv = capture._fisheye_project(X, K, np.zeros(4))  # zero coefficients: equidistant, r_d = atan(r)
    r = np.hypot(0.15, 0.1)
    np.testing.assert_allclose(uv[0], [500 + 1000 * 0.15 * np.arctan(r) / r, 400 - 900 * 0.1 * np.arctan(r) / r])
    np.testing.assert_allclose(uv[1], [500, 400])


def test_cheetah_real_2d_matches_the_3d():
    cs = capture.load_cheetah_real2d()
    assert cs.points3d.shape == (660, 18, 3) and cs.points2d.shape == (660, 18, 2)
    assert 70 <= cs.meta["frame_offset"] <= 90  # SOURCE.md: "frame offset ~80"
    assert max(cs.meta["reprojection_px"]) < 30  # median DLC-vs-projection error per camera, pixels
    parts, _ = capture._read_dlc(fetch("acinoset_cheetah/dlc_2d/LilyRun1_CAM1.csv", progress=False), "csv")
    assert set(capture.CHEETAH_MARKERS) <= set(parts) and "lure" in parts
    assert 0.3 < cs.visible.mean() < 1.0  # low-likelihood detections are hidden, most are kept
    w = capture.load_cheetah()
    assert w.points3d.shape == (110, 18, 3) and len(w.edges) == 17
