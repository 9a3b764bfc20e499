"""The fused pointwise kernels of lfm/csrc/pointwise_cpu.c (LayerNorm written in the linears' dtype; bias + exact
GELU, forward and backward) against float64 oracles (torch's layer_norm / linear / gelu in double, erf from the
math module), against the model's PyTorch ops, and their fallbacks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lfm import native
from lfm.config import ModelConfig
from lfm.graph import knn_adjacency
from lfm.model import LFM

from .test_native import assert_models_agree, model_output_and_grads

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no lfm CPU kernels: {native.why_unavailable()}")


def _modules(K=64, C=256, seed=0):
    torch.manual_seed(seed)
    ln, lin = torch.nn.LayerNorm(K), torch.nn.Linear(K, C)
    with torch.no_grad():  # not the identity, so that gamma and beta matter
        ln.weight.normal_(1.0, 0.5), ln.bias.normal_(0.0, 0.5)
    return ln, lin


def _grads(y, g, tensors):
    return torch.autograd.grad((y.double() * g).sum(), tensors)


def _run(fn, x, ln, lin, amp):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        return fn(x, ln, lin)


def _native(x, ln, lin):
    return native.linear(native.layer_norm(x, ln), lin, gelu=True)


def _torch(x, ln, lin):
    return F.gelu(lin(ln(x)))


@pytest.mark.parametrize("amp", [False, True])
def test_layernorm_bias_gelu_match_the_float64_oracle(amp):
    """Outputs and all five gradients; float32 to float32 rounding, bf16 no worse than PyTorch's own bf16 ops."""
    ln, lin = _modules()
    x = torch.randn(300, 7, 64, requires_grad=True)  # 2,100 rows: not a multiple of the 64-row blocks
    params = [x, lin.weight, lin.bias, ln.weight, ln.bias]
    g = torch.randn(300, 7, 256, dtype=torch.float64)
    x64 = [p.detach().double().requires_grad_() for p in params]
    ref = F.gelu(F.linear(F.layer_norm(x64[0], (64,), x64[3], x64[4]), x64[1], x64[2]))
    ref_grads = _grads(ref, g, x64)

    def errors(fn):
        y = _run(fn, x, ln, lin, amp)
        assert y.dtype == (torch.bfloat16 if amp else torch.float32)
        return [((a.double() - b).norm() / b.norm()).item() for a, b in zip([y, *_grads(y, g, params)],
                                                                            [ref, *ref_grads])]

    ours, theirs = errors(_native), errors(_torch)
    if not amp:
        assert max(ours) < 2e-6, ours
    else:
        assert max(ours) < 1e-2, ours
        assert all(o < 1.5 * t + 1e-4 for o, t in zip(ours, theirs)), (ours, theirs)


@pytest.mark.parametrize("amp", [False, True])
def test_linear_with_bias_and_residual_matches_the_float64_oracle(amp):
    """``native.linear(x, lin, residual=r)`` = r + x W^T + b, and without a residual x W^T + b; outputs and the
    gradients of x, W, b and r."""
    torch.manual_seed(1)
    lin = torch.nn.Linear(128, 64)
    x = torch.randn(50, 13, 128, requires_grad=True)
    r = torch.randn(50, 13, 64, requires_grad=True)
    g = torch.randn(50, 13, 64, dtype=torch.float64)
    tol = 2e-6 if not amp else 1e-2
    for res in (r, None):
        params = [x, lin.weight, lin.bias] + ([r] if res is not None else [])
        p64 = [t.detach().double().requires_grad_() for t in params]
        ref = F.linear(p64[0], p64[1], p64[2]) + (p64[3] if res is not None else 0)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            y = native.linear(x, lin, residual=res)
        assert y.dtype == (torch.float32 if res is not None or not amp else torch.bfloat16)
        for a, b in zip([y, *_grads(y, g, params)], [ref, *_grads(ref, g, p64)]):
            assert ((a.double() - b).norm() / b.norm()) < tol


def test_gelu_is_the_exact_erf_form_over_a_wide_range():
    """GELU(x) = x (1 + erf(x / sqrt 2)) / 2 from math.erf, and its derivative, at 20,000 points in [-12, 12]."""
    x = torch.linspace(-12, 12, 20000)
    lin = torch.nn.Linear(16, 16)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(16)), lin.bias.zero_()
    xi = x.view(-1, 16).clone().requires_grad_()
    y = native.linear(xi, lin, gelu=True)
    (dx,) = torch.autograd.grad(y.sum(), xi)
    xs = x.double().tolist()
    exact = torch.tensor([v * (1 + math.erf(v / math.sqrt(2))) / 2 for v in xs], dtype=torch.float64)
    slope = torch.tensor([(1 + math.erf(v / math.sqrt(2))) / 2 + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
                          for v in xs], dtype=torch.float64)
    assert (y.reshape(-1).double() - exact).abs().max() < 2e-6
    assert (dx.reshape(-1).double() - slope).abs().max() < 2e-6


def test_column_sums_do_not_depend_on_the_thread_count():
    """Bias, gamma and beta gradients are summed over fixed row blocks: 1 and 2 threads give the same bits."""
    ln, lin = _modules()
    x = torch.randn(1001, 64)
    threads, res = torch.get_num_threads(), []
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            xi = x.clone().requires_grad_()
            y = _run(_native, xi, ln, lin, True)
            res.append([y, *torch.autograd.grad(y.float().square().sum(), [xi, lin.bias, ln.weight, ln.bias])])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(*res))


@pytest.mark.parametrize("positional", ["tpe", "mlp"])
@pytest.mark.parametrize("amp", [False, True])
def test_model_with_fused_pointwise_equals_pytorch_ops(amp, positional, monkeypatch):
    """The whole model (attention kernel in both) with and without the fused LayerNorm / bias + GELU; the learned
    positional encoding makes a bf16 residual stream under autocast, which keeps PyTorch's ops."""
    torch.manual_seed(0)
    m = LFM(ModelConfig(d_model=64, n_heads=4, n_layers=2, pe_every_layer=True, xy_residual=True,
                        positional=positional))
    x = torch.randn(6, 19, 2)
    mask = torch.rand(6, 19) < 0.8
    adj = knn_adjacency(x, mask, k=3)
    res = {}
    for fused in (True, False):
        monkeypatch.setattr(native, "fuse_pointwise", fused)
        res[fused] = model_output_and_grads(m, x, mask, adj, amp)
    assert_models_agree(res[True], res[False], amp)


def test_widths_that_are_not_multiples_of_16_keep_pytorch_ops():
    ln, lin = _modules(K=24, C=40)
    assert not native.pointwise_fits(torch.randn(3, 24), ln, lin)
    assert native.pointwise_fits(torch.randn(3, 64), *_modules())
    assert not native.pointwise_fits(torch.randn(3, 64, dtype=torch.float64), *_modules())
    m = LFM(ModelConfig(d_model=24, n_heads=4, n_layers=1))  # runs, through PyTorch's LayerNorm and GELU
    x = torch.randn(2, 9, 2)
    assert m(x, adjacency=knn_adjacency(x, torch.ones(2, 9, dtype=torch.bool), k=3)).shape == (2, 9, 3)


def test_bad_inputs_are_named():
    ln, lin = _modules()
    with pytest.raises(ValueError, match=r"layer_norm takes float32 \(\.\.\., 64\); got torch.float64"):
        native.layer_norm(torch.randn(3, 64, dtype=torch.float64), ln)
    with pytest.raises(ValueError, match="gelu and residual do not go together"):
        native.linear(torch.randn(3, 64), lin, gelu=True, residual=torch.randn(3, 256))
    with pytest.raises(ValueError, match=r"residual must be float32 \(3, 256\); got torch.float32 \(3, 64\)"):
        native.linear(torch.randn(3, 64), lin, residual=torch.randn(3, 64))
    with pytest.raises(ValueError, match=r"float32 or bfloat16 on the CPU; got torch.float32 on cpu under a float16"):
        with torch.autocast("cpu", dtype=torch.float16):
            native.linear(torch.randn(3, 64), lin, gelu=True)
