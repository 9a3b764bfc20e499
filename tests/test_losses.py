"""lfm.losses.procrustes_mse: value against a scipy-aligned oracle, invariances, and the gradient of the detached
alignment against autograd through the SVD."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from lfm.geometry import similarity_align
from lfm.losses import procrustes_mse

from .conftest import apply_similarity, random_similarity


def oracle_loss(pred, gt, mask, allow_reflection):
    """numpy/scipy: per sample, align (weighted centroids, scipy rotation, LS scale), mean squared distance."""
    vals = []
    for p, g, m in zip(pred, gt, mask):
        if m.sum() == 0:
            continue
        p, g = p[m], g[m]
        pc, gc = p - p.mean(0), g - g.mean(0)
        if allow_reflection:
            R, _ = orthogonal_procrustes(pc, gc)
        else:
            R = Rotation.align_vectors(gc, pc)[0].as_matrix().T
        s = ((pc @ R) * gc).sum() / (pc**2).sum()
        vals.append(((s * pc @ R - gc) ** 2).sum(-1).mean())
    return np.mean(vals)


@pytest.mark.parametrize("allow_reflection", [False, True])
def test_value_matches_scipy_oracle(rng, allow_reflection):
    B, N = 6, 11
    pred, gt = rng.normal(size=(B, N, 3)), rng.normal(size=(B, N, 3))
    mask = rng.random((B, N)) < 0.8
    mask[:, :3] = True
    mask[5] = False  # an empty sample is excluded from the mean, not counted as 0
    got = procrustes_mse(torch.as_tensor(pred), torch.as_tensor(gt), torch.as_tensor(mask),
                         allow_reflection=allow_reflection)
    assert float(got) == pytest.approx(oracle_loss(pred, gt, mask, allow_reflection), rel=1e-10)


def test_invariant_to_similarity_of_prediction(rng):
    B, N = 5, 9
    pred, gt = rng.normal(size=(B, N, 3)), rng.normal(size=(B, N, 3))
    R, s, t = random_similarity(rng, B)
    moved = apply_similarity(pred, R, s, t)
    a = procrustes_mse(torch.as_tensor(pred), torch.as_tensor(gt))
    b = procrustes_mse(torch.as_tensor(moved), torch.as_tensor(gt))
    assert float(a) == pytest.approx(float(b), rel=1e-10)
    assert float(procrustes_mse(torch.as_tensor(moved), torch.as_tensor(apply_similarity(pred, R, s, t)))) < 1e-20


def test_no_procrustes_ablation_is_centred_mse(rng):
    pred, gt = rng.normal(size=(3, 7, 3)), rng.normal(size=(3, 7, 3))
    got = procrustes_mse(torch.as_tensor(pred), torch.as_tensor(gt), align=False)
    pc, gc = pred - pred.mean(1, keepdims=True), gt - gt.mean(1, keepdims=True)
    assert float(got) == pytest.approx(((pc - gc) ** 2).sum(-1).mean(), rel=1e-12)
    # and it is not rotation invariant
    R, _, _ = random_similarity(rng, 3)
    rotated = np.einsum("bni,bij->bnj", pred, R)
    assert abs(float(procrustes_mse(torch.as_tensor(rotated), torch.as_tensor(gt), align=False)) - float(got)) > 1e-3


def _loss_through_svd(pred, gt, mask, allow_reflection, scale=True):
    al = similarity_align(pred, gt, mask, scale=scale, allow_reflection=allow_reflection, detach=False)
    w = mask.to(pred.dtype)
    return ((w * (al.aligned - gt).square().sum(-1)).sum(-1) / w.sum(-1)).mean()


@pytest.mark.parametrize("allow_reflection", [False, True])
@pytest.mark.parametrize("scale", [True, False])
def test_detached_gradient_equals_gradient_through_svd(rng, allow_reflection, scale):
    """Envelope theorem: (s, R, t) minimise the same masked squared error, so holding them fixed is exact."""
    B, N = 4, 10
    gt = torch.as_tensor(rng.normal(size=(B, N, 3)))
    mask = torch.as_tensor(rng.random((B, N)) < 0.8)
    mask[:, :4] = True
    p1 = torch.as_tensor(rng.normal(size=(B, N, 3)), dtype=torch.float64).requires_grad_()
    p2 = p1.detach().clone().requires_grad_()
    procrustes_mse(p1, gt, mask, allow_reflection=allow_reflection, scale=scale).backward()
    _loss_through_svd(p2, gt, mask, allow_reflection, scale).backward()
    torch.testing.assert_close(p1.grad, p2.grad, atol=1e-10, rtol=0)
    assert float(p1.grad.abs().max()) > 1e-3  # a real, non-zero gradient


def test_gradient_finite_on_cube_aligned_to_itself():
    cube = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)], dtype=torch.float64)
    pred = cube[None].clone().requires_grad_()
    procrustes_mse(pred, cube[None]).backward()
    assert torch.isfinite(pred.grad).all()
    # the through-SVD route is the one that breaks here (repeated singular values)
    p2 = cube[None].clone().requires_grad_()
    _loss_through_svd(p2, cube[None], torch.ones(1, 8, dtype=torch.bool), False).backward()
    assert not torch.isfinite(p2.grad).all()


@pytest.mark.parametrize("case", ["all masked", "one point", "collinear", "collapsed"])
def test_loss_and_gradient_finite_on_degenerate_inputs(case):
    N = 6
    pred = torch.randn(2, N, 3, generator=torch.Generator().manual_seed(0))
    gt = torch.randn(2, N, 3, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, N, dtype=torch.bool)
    if case == "all masked":
        mask[:] = False
    elif case == "one point":
        mask[:, 1:] = False
    elif case == "collinear":
        pred = torch.linspace(-1, 1, N)[None, :, None] * torch.tensor([1.0, 2.0, 3.0]) + torch.zeros(2, 1, 1)
    elif case == "collapsed":
        pred = torch.ones(2, N, 3)
    pred.requires_grad_()
    loss = procrustes_mse(pred, gt, mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all(), case
    if case == "all masked":
        assert float(loss.detach()) == 0.0


def test_float32_under_autocast(rng):
    pred = torch.as_tensor(rng.normal(size=(4, 9, 3)), dtype=torch.float32)
    gt = torch.as_tensor(rng.normal(size=(4, 9, 3)), dtype=torch.float32)
    ref = procrustes_mse(pred.double(), gt.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = procrustes_mse(pred.bfloat16(), gt)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(float(ref), rel=2e-2)  # bf16 rounding of the input only


@pytest.mark.parametrize("align", [True, False])
def test_nan_in_hidden_joints_never_leaks(rng, align):
    pred, gt = torch.as_tensor(rng.normal(size=(2, 7, 3))), torch.as_tensor(rng.normal(size=(2, 7, 3)))
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 4:] = False
    ref = procrustes_mse(pred[:, :4], gt[:, :4], align=align)
    gt[:, 5] = float("nan")
    pred[:, 6] = float("inf")
    assert float(procrustes_mse(pred, gt, mask, align=align)) == pytest.approx(float(ref), rel=1e-12)


def test_float32_inputs_give_a_float32_loss_equal_to_float64(rng):
    """The training path is float32: the loss keeps the input dtype and agrees with the float64 value."""
    from lfm.losses import procrustes_mse

    pred = rng.normal(size=(6, 11, 3))
    gt = rng.normal(size=(6, 11, 3))
    mask = torch.as_tensor(rng.random((6, 11)) > 0.2)
    for align in (True, False):
        l32 = procrustes_mse(torch.tensor(pred, dtype=torch.float32), torch.tensor(gt, dtype=torch.float32), mask,
                             align=align)
        l64 = procrustes_mse(torch.tensor(pred), torch.tensor(gt), mask, align=align)
        assert l32.dtype == torch.float32 and l64.dtype == torch.float64, align
        assert float(l32) == pytest.approx(float(l64), rel=1e-5)
