"""Paper-dataset loaders on the real format fixtures (mmpose_format_samples), and the not-available message."""

import numpy as np
import pytest

from lfm import paths
from lfm.data import DataUnavailableError
from lfm.data.paper import H36M_EDGES, WHOLEBODY_EDGES, load_h36m_npz, load_h3wb_npz

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
