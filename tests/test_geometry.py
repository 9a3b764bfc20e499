"""lfm.geometry against independent oracles: scipy's Rotation.align_vectors (SO(3)) and
linalg.orthogonal_procrustes (O(3)), known transforms, and per-sample unpadded computation."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from lfm.geometry import denormalize_2d, fit_orthographic_camera, normalize_2d, similarity_align

from .conftest import apply_similarity, random_similarity


def t64(x):
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


def scipy_similarity(x, y, w, allow_reflection):
    """Oracle for one sample: weighted centring, then scipy for R, then the least-squares scale given R."""
    mx, my = (w[:, None] * x).sum(0) / w.sum(), (w[:, None] * y).sum(0) / w.sum()
    xc, yc = x - mx, y - my
    if allow_reflection:
        R, _ = orthogonal_procrustes(np.sqrt(w)[:, None] * xc, np.sqrt(w)[:, None] * yc)  # min ||xc R - yc||
    else:
        rot, _ = Rotation.align_vectors(yc, xc, weights=w)  # yc_i ~ C xc_i (column) -> R = C^T (rows)
        R = rot.as_matrix().T
    s = (w * ((xc @ R) * yc).sum(-1)).sum() / (w * (xc**2).sum(-1)).sum()
    return R, s, my - s * mx @ R


@pytest.mark.parametrize("scale", [True, False])
@pytest.mark.parametrize("reflected_target", [False, True])
@pytest.mark.parametrize("allow_reflection", [False, True])
def test_recovers_random_similarity(rng, scale, reflected_target, allow_reflection):
    B, N = 16, 12
    x = rng.normal(size=(B, N, 3))
    R, s, t = random_similarity(rng, B, reflect=reflected_target)
    if not scale:
        s = np.ones(B)
    y = apply_similarity(x, R, s, t)
    out = similarity_align(t64(x), t64(y), scale=scale, allow_reflection=allow_reflection)
    flags = f"scale={scale} reflected_target={reflected_target} allow_reflection={allow_reflection}"
    det = torch.linalg.det(out.R)
    if allow_reflection or not reflected_target:
        # exact recovery of the transform that made the data
        torch.testing.assert_close(out.R, t64(R), atol=1e-9, rtol=0, msg=flags)
        torch.testing.assert_close(out.s, t64(s), atol=1e-9, rtol=0, msg=flags)
        torch.testing.assert_close(out.t, t64(t), atol=1e-9, rtol=0, msg=flags)
        torch.testing.assert_close(out.aligned, t64(y), atol=1e-9, rtol=0, msg=flags)
    else:
        # a reflection cannot be absorbed by a rotation: residual stays, det = +1
        assert torch.all(det > 0), flags
        assert float((out.aligned - t64(y)).abs().max()) > 1e-3, flags
    # and, in every case, agreement with scipy's optimum
    w = np.ones(N)
    for b in range(B):
        Ro, so, to = scipy_similarity(x[b], y[b], w, allow_reflection)
        if not scale:
            so, to = 1.0, y[b].mean(0) - x[b].mean(0) @ Ro
        np.testing.assert_allclose(out.R[b].numpy(), Ro, atol=1e-8, err_msg=flags)
        np.testing.assert_allclose(float(out.s[b]), so, atol=1e-8, err_msg=flags)
        np.testing.assert_allclose(out.t[b].numpy(), to, atol=1e-8, err_msg=flags)


@pytest.mark.parametrize("allow_reflection", [False, True])
def test_noisy_weighted_matches_scipy(rng, allow_reflection):
    B, N = 8, 20
    x = rng.normal(size=(B, N, 3))
    R, s, t = random_similarity(rng, B, reflect=rng.random() < 0.5)
    y = apply_similarity(x, R, s, t) + 0.3 * rng.normal(size=(B, N, 3))
    w = rng.uniform(0.1, 2.0, size=(B, N))
    out = similarity_align(t64(x), t64(y), t64(w), allow_reflection=allow_reflection)
    for b in range(B):
        Ro, so, to = scipy_similarity(x[b], y[b], w[b], allow_reflection)
        np.testing.assert_allclose(out.R[b].numpy(), Ro, atol=1e-8)
        np.testing.assert_allclose(float(out.s[b]), so, atol=1e-8)
        np.testing.assert_allclose(out.t[b].numpy(), to, atol=1e-8)


def test_padded_batch_with_mask_equals_unpadded(rng):
    sizes = [3, 7, 17, 5]
    Nmax = max(sizes)
    x = rng.normal(size=(len(sizes), Nmax, 3))
    y = rng.normal(size=(len(sizes), Nmax, 3)) * 5.0
    mask = np.zeros((len(sizes), Nmax), bool)
    for b, n in enumerate(sizes):
        mask[b, :n] = True
    x[~mask] = 1e3  # garbage in the padding must not matter
    y[~mask] = np.nan
    out = similarity_align(t64(x), t64(y), torch.as_tensor(mask))
    for b, n in enumerate(sizes):
        one = similarity_align(t64(x[b : b + 1, :n]), t64(y[b : b + 1, :n]))
        torch.testing.assert_close(out.R[b], one.R[0], atol=1e-10, rtol=0)
        torch.testing.assert_close(out.s[b], one.s[0], atol=1e-10, rtol=0)
        torch.testing.assert_close(out.aligned[b, :n], one.aligned[0], atol=1e-10, rtol=0)


def test_bool_and_float_masks_agree(rng):
    x, y = t64(rng.normal(size=(4, 9, 3))), t64(rng.normal(size=(4, 9, 3)))
    mask = torch.as_tensor(rng.random((4, 9)) < 0.7)
    mask[:, :3] = True
    a = similarity_align(x, y, mask)
    b = similarity_align(x, y, mask.double())
    torch.testing.assert_close(a.aligned, b.aligned)


DEGENERATE = {
    "0 valid": (np.random.default_rng(1).normal(size=(6, 3)), np.zeros(6, bool)),
    "1 valid": (np.random.default_rng(2).normal(size=(6, 3)), np.eye(6, dtype=bool)[0]),
    "2 valid": (np.random.default_rng(3).normal(size=(6, 3)), np.array([1, 1, 0, 0, 0, 0], bool)),
    "collinear": (np.outer(np.linspace(-1, 1, 6), [1.0, 2.0, -0.5]), np.ones(6, bool)),
    "collapsed src": (np.tile([[0.3, -1.2, 2.0]], (6, 1)), np.ones(6, bool)),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("allow_reflection", [False, True])
def test_degenerate_inputs_are_finite(case, dtype, allow_reflection):
    x, m = DEGENERATE[case]
    y = np.random.default_rng(9).normal(size=(6, 3))
    out = similarity_align(
        torch.as_tensor(x[None], dtype=dtype), torch.as_tensor(y[None], dtype=dtype), torch.as_tensor(m[None]),
        allow_reflection=allow_reflection,
    )
    for name, v in out._asdict().items():
        assert torch.isfinite(v).all(), f"{case}: {name} not finite"
    RtR = out.R[0].T @ out.R[0]
    torch.testing.assert_close(RtR, torch.eye(3, dtype=dtype), atol=1e-5, rtol=0)
    if case in ("0 valid", "1 valid", "collapsed src"):  # documented fallback: identity, unit scale
        torch.testing.assert_close(out.R[0], torch.eye(3, dtype=dtype))
        assert float(out.s[0]) == 1.0
    if case == "1 valid":  # the single valid point lands on its target
        torch.testing.assert_close(out.aligned[0, 0], torch.as_tensor(y[0], dtype=dtype), atol=1e-5, rtol=0)
    if case == "collapsed src":  # every point goes to the target centroid: the least-squares optimum
        torch.testing.assert_close(out.aligned[0], torch.as_tensor(y.mean(0), dtype=dtype).expand(6, 3), atol=1e-5, rtol=0)
    if case == "2 valid":  # two points: the segment direction and length are matched exactly
        a = out.aligned[0, :2].double()
        torch.testing.assert_close(a[1] - a[0], torch.as_tensor(y[1] - y[0]), atol=1e-5, rtol=0)


def test_float32_and_autocast(rng):
    x = torch.as_tensor(rng.normal(size=(5, 10, 3)), dtype=torch.float32)
    R, s, t = random_similarity(rng, 5)
    y = torch.as_tensor(apply_similarity(x.double().numpy(), R, s, t), dtype=torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = similarity_align(x, y)
    assert out.aligned.dtype == torch.float32
    torch.testing.assert_close(out.R, t64(R).float(), atol=1e-4, rtol=0)
    # bf16 inputs are computed in float32, not in bf16
    out16 = similarity_align(x.bfloat16(), y.bfloat16())
    assert out16.R.dtype == torch.float32
    torch.testing.assert_close(out16.R, t64(R).float(), atol=0.05, rtol=0)


def test_bad_inputs_raise_clear_errors():
    x = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"dst has shape \(2, 4, 3\)"):
        similarity_align(x, torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\).*\(2, 5\)"):
        similarity_align(x, x, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"src has shape \(5, 3\)"):
        similarity_align(torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="negative"):
        similarity_align(x, x, -torch.ones(2, 5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        similarity_align(np.zeros((2, 5, 3)), x)


def test_orthographic_camera_recovers_rotation_and_scale(rng):
    B, N = 10, 15
    shape = rng.normal(size=(B, N, 3))
    R, s, t = random_similarity(rng, B)
    cam = apply_similarity(shape, R, s, t)
    p2d = cam[..., :2] + 0  # orthographic: drop depth
    fit = fit_orthographic_camera(t64(p2d), t64(shape))
    torch.testing.assert_close(fit.R, t64(R), atol=1e-9, rtol=0)
    torch.testing.assert_close(fit.s, t64(s), atol=1e-9, rtol=0)
    # camera-frame shape equals the truth with its visible centroid moved to depth 0
    truth = cam - np.array([0, 0, 1.0]) * cam.mean(1, keepdims=True)
    torch.testing.assert_close(fit.camera3d, t64(truth), atol=1e-9, rtol=0)
    assert float(fit.residual.max()) < 1e-9
    # the depth mirror projects onto the same 2D points
    torch.testing.assert_close(fit.camera3d_mirror[..., :2], t64(p2d), atol=1e-9, rtol=0)
    torch.testing.assert_close(fit.camera3d_mirror[..., 2], -fit.camera3d[..., 2])


def test_orthographic_camera_depth_flip(rng):
    """A depth-mirrored canonical shape fits the same 2D; its camera3d is the mirror of the truth (the ambiguity)."""
    B, N = 6, 12
    shape = rng.normal(size=(B, N, 3))
    R, s, t = random_similarity(rng, B)
    cam = apply_similarity(shape, R, s, t)
    truth = cam - np.array([0, 0, 1.0]) * cam.mean(1, keepdims=True)
    mirrored_canonical = shape @ np.diag([1.0, 1.0, -1.0])  # a reflection of the shape
    # the mirror of the truth in the camera frame is reachable by a proper rotation of the mirrored shape
    fit = fit_orthographic_camera(t64(cam[..., :2]), t64(mirrored_canonical))
    assert float(fit.residual.max()) < 1e-9
    torch.testing.assert_close(fit.camera3d_mirror, t64(truth), atol=1e-9, rtol=0)
    assert torch.allclose(torch.linalg.det(fit.R), torch.ones(B, dtype=torch.float64))


def test_orthographic_camera_with_mask_ignores_hidden(rng):
    shape = rng.normal(size=(1, 10, 3))
    R, s, t = random_similarity(rng, 1)
    p2d = apply_similarity(shape, R, s, t)[..., :2]
    p2d[0, 7:] = 50.0  # corrupted, but hidden
    mask = torch.ones(1, 10, dtype=torch.bool)
    mask[0, 7:] = False
    fit = fit_orthographic_camera(t64(p2d), t64(shape), mask)
    torch.testing.assert_close(fit.R, t64(R), atol=1e-9, rtol=0)


def test_normalize_2d_closed_form_and_inverse(rng):
    p = rng.normal(size=(3, 8, 2)) * [4.0, 1.0] + 10
    m = rng.random((3, 8)) < 0.75
    m[:, :2] = True
    p_nan = p.copy()
    p_nan[~m] = np.nan
    out = normalize_2d(t64(p_nan), torch.as_tensor(m))
    for b in range(3):
        v = p[b][m[b]]
        c = v.mean(0)
        sc = np.abs(v - c).max()
        np.testing.assert_allclose(out.points[b][m[b]].numpy(), (v - c) / sc, atol=1e-12)
        assert np.all(out.points[b][~m[b]].numpy() == 0)
    assert float(out.points.abs().max()) == pytest.approx(1.0)
    torch.testing.assert_close(denormalize_2d(out)[torch.as_tensor(m)], t64(p)[torch.as_tensor(m)])
    again = normalize_2d(out.points, torch.as_tensor(m))  # idempotent
    torch.testing.assert_close(again.points, out.points)


def test_orthographic_camera_noisy_matches_bruteforce_optimum(rng):
    """With noise (no exact fit), compare with scipy.optimize.least_squares over (rotation, scale, 2D shift)
    from 24 random starts: our 2D error must be as low as the best of them."""
    from scipy.optimize import least_squares

    N = 14
    shape = rng.normal(size=(N, 3)) * [1.0, 0.6, 0.3]
    R, s, t = random_similarity(rng, 1)
    p2d = apply_similarity(shape[None], R, s, t)[0, :, :2] + 0.15 * rng.normal(size=(N, 2))

    def resid(theta):
        Rm = Rotation.from_rotvec(theta[:3]).as_matrix()
        return (np.exp(theta[3]) * shape @ Rm[:, :2] + theta[4:6] - p2d).ravel()

    best = min(
        least_squares(resid, np.r_[Rotation.random(random_state=k).as_rotvec(), 0.0, 0.0, 0.0]).cost
        for k in range(24)
    )
    fit = fit_orthographic_camera(t64(p2d[None]), t64(shape[None]))
    ours = 0.5 * float((fit.camera3d[0, :, :2] - t64(p2d)).square().sum())
    assert ours <= best * (1 + 1e-5), (ours, best)
    init_only = fit_orthographic_camera(t64(p2d[None]), t64(shape[None]), n_iter=0)
    assert float(fit.residual) <= float(init_only.residual) + 1e-12


@pytest.mark.parametrize("allow_reflection", [False, True])
@pytest.mark.parametrize("kind", ["generic", "reflected", "rank 2", "rank 1", "zero", "isotropic", "huge", "tiny"])
def test_fast_rotation_equals_svd_optimum(rng, allow_reflection, kind):
    """The Horn/Newton path (used with detach=True) reaches the same objective tr(R^T M) as the SVD path,
    with an orthogonal R of the right determinant, also on rank-deficient and repeated-eigenvalue matrices."""
    from lfm.geometry import _best_rotation_horn, _best_rotation_svd

    B = 64
    M = rng.normal(size=(B, 3, 3))
    if kind == "reflected":
        M = M * np.sign(np.linalg.det(M))[:, None, None] * -1
    elif kind == "rank 2":
        M = M @ np.diag([1.0, 1.0, 0.0]) @ rng.normal(size=(3, 3))
    elif kind == "rank 1":
        M = np.einsum("bi,bj->bij", rng.normal(size=(B, 3)), rng.normal(size=(B, 3)))
    elif kind == "zero":
        M = np.zeros((B, 3, 3))
    elif kind == "isotropic":
        M = np.tile(np.eye(3), (B, 1, 1)) * rng.uniform(0.5, 2, size=(B, 1, 1))
    elif kind == "huge":
        M = M * 1e12
    elif kind == "tiny":
        M = M * 1e-12
    for dtype in (torch.float64, torch.float32):
        Mt = torch.as_tensor(M, dtype=dtype)
        R_fast, tr_fast = _best_rotation_horn(Mt, allow_reflection)
        R_svd, tr_svd = _best_rotation_svd(Mt.double(), allow_reflection)
        tol = 1e-9 if dtype == torch.float64 else 1e-5
        scale = np.abs(M).max() + 1e-300
        np.testing.assert_allclose(tr_fast.double().numpy() / scale, tr_svd.numpy() / scale, atol=tol, err_msg=kind)
        eye = torch.eye(3, dtype=torch.float64).expand(B, 3, 3)
        torch.testing.assert_close(R_fast.double().transpose(1, 2) @ R_fast.double(), eye, atol=10 * tol, rtol=0)
        det = torch.linalg.det(R_fast.double())
        if not allow_reflection:
            assert torch.all(det > 0), kind
        # the objective value is what the rotation really achieves
        np.testing.assert_allclose((R_fast.double() * Mt.double()).sum((1, 2)).numpy() / scale,
                                   tr_svd.numpy() / scale, atol=10 * tol)


@pytest.mark.parametrize("offset", [0.0, 10.0, 100.0, 1000.0])
def test_float32_far_from_origin_matches_float64(offset):
    """Camera-frame data in mm sit far from the origin: float32 must still match float64 (no cancellation)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 17, 3, generator=g, dtype=torch.float64) + torch.tensor([offset, -offset / 2, 2 * offset])
    y = torch.randn(64, 17, 3, generator=g, dtype=torch.float64) + torch.tensor([-offset, offset, offset])
    ref = similarity_align(x, y)
    got = similarity_align(x.float(), y.float())
    tol = 1e-5 * (1 + offset)  # the float32 resolution of the input itself
    torch.testing.assert_close(got.R.double(), ref.R, atol=tol, rtol=0)
    torch.testing.assert_close(got.aligned.double(), ref.aligned, atol=10 * tol, rtol=0)


def test_orthographic_camera_translation_and_early_stop(rng):
    """The fitted translation maps the shape onto the 2D (camera = s * shape @ R + t), with and without ``tol``."""
    B, N = 4, 12
    shape = rng.normal(size=(B, N, 3))
    R, s, t = random_similarity(rng, B)
    p2d = apply_similarity(shape, R, s, t)[..., :2] + 0.01 * rng.normal(size=(B, N, 2))
    full = fit_orthographic_camera(t64(p2d), t64(shape), n_iter=100)
    early = fit_orthographic_camera(t64(p2d), t64(shape), n_iter=100, tol=1e-8)
    for fit in (full, early):
        assert fit.t.shape == (B, 3)
        recon = fit.s[:, None, None] * (t64(shape) @ fit.R) + fit.t[:, None]
        torch.testing.assert_close(recon, fit.camera3d, atol=1e-10, rtol=0)
        torch.testing.assert_close(fit.t[:, :2], t64(p2d).mean(1) - (fit.s[:, None, None] * t64(shape) @ fit.R
                                                                     ).mean(1)[:, :2], atol=1e-10, rtol=0)
    torch.testing.assert_close(early.residual, full.residual, atol=1e-6, rtol=0)  # converged to the same optimum


def test_small_shapes_keep_their_scale(rng):
    """A shape of size 1e-4 is aligned like any other (eps must not clamp a real variance)."""
    x = 1e-4 * rng.normal(size=(3, 9, 3))
    R, s, t = random_similarity(rng, 3)
    y = apply_similarity(x, R, s, t)
    fit = similarity_align(t64(x), t64(y))
    torch.testing.assert_close(fit.s, t64(s), atol=1e-9, rtol=1e-6)
    fit = fit_orthographic_camera(t64(y[..., :2]), t64(x))
    torch.testing.assert_close(fit.s, t64(s), rtol=1e-6, atol=0)


def test_collapsed_sample_in_a_batch_of_other_scales(rng):
    """A collapsed sample (all points equal) falls back to identity without changing its batch neighbours."""
    x = rng.normal(size=(3, 8, 3)) * np.array([1.0, 1e3, 1e-3])[:, None, None]
    x[1] = 5.0  # collapsed, far from the origin
    R, s, t = random_similarity(rng, 3)
    y = apply_similarity(x, R, s, t)
    fit = similarity_align(t64(x), t64(y))
    torch.testing.assert_close(fit.R[1], torch.eye(3, dtype=torch.float64))
    for b in (0, 2):
        torch.testing.assert_close(fit.R[b], t64(R[b]), atol=1e-8, rtol=0)
    # float32: the collapse test is per sample, so the 1e-3 shape is not mistaken for a collapsed one
    f32 = similarity_align(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    torch.testing.assert_close(f32.R[2], torch.tensor(R[2], dtype=torch.float32), atol=2e-3, rtol=0)
