"""The fused CPU attention (lfm/csrc/attention_cpu.c through lfm.native) against an independent float64 oracle
(explicit masked softmax), against the model's PyTorch attention paths, and its build / fallback behaviour."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lfm import native
from lfm.config import ModelConfig
from lfm.graph import knn_adjacency
from lfm.model import LFM

pytestmark = pytest.mark.skipif(not native.available(), reason=f"no fused CPU attention: {native.why_unavailable()}")
ROOT = Path(__file__).resolve().parents[1]


def oracle(qkv, keys, adj, branches, scale):
    """float64 masked softmax attention; a query without any allowed key outputs zeros."""
    B, N, nb, _, H, hd = qkv.shape
    x = qkv.double()
    outs = []
    for i, name in enumerate(branches):
        q, k, v = (x[:, :, i, t].permute(0, 2, 1, 3) for t in range(3))  # (B, H, N, hd)
        s = q @ k.transpose(-1, -2) * scale
        allow = keys[:, None, None, :].expand(B, 1, N, N) if name == "global" else adj[:, None]
        p = torch.softmax(s.masked_fill(~allow, -math.inf), -1).nan_to_num(0.0)
        outs.append((p @ v).permute(0, 2, 1, 3))  # (B, N, H, hd)
    return torch.stack(outs, 2).reshape(B, N, -1)


def case(B, N, H, hd, dtype, seed=0, graph=False):
    """Random q, k, v and masks. The local adjacency: each key allowed with probability 1/2, or (``graph``) a
    skeleton's few: itself, the chain neighbours i - 1 and i + 1 and one random key (not symmetric)."""
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(B, N, 2, 3, H, hd, generator=g).to(dtype)
    keys = torch.rand(B, N, generator=g) > 0.3
    keys[0] = False  # a sample whose global branch has no key at all
    if graph:
        i = torch.arange(N)
        adj = ((i[:, None] - i[None, :]).abs() <= 1).expand(B, N, N).clone()
        adj[torch.arange(B)[:, None], i, torch.randint(0, N, (B, N), generator=g)] = True
    else:
        adj = (torch.rand(B, N, N, generator=g) > 0.5) | torch.eye(N, dtype=torch.bool)
    if N > 1:
        adj[1, 0] = False  # a query without any local key
    return qkv, keys, adj


@pytest.mark.parametrize("graph,sparse", [(False, False), (False, True), (True, True), (True, "auto")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("N,hd", [(1, 16), (5, 16), (17, 16), (40, 16), (23, 8), (9, 24), (33, 64)])
def test_matches_the_float64_oracle(N, hd, dtype, graph, sparse, monkeypatch):
    """Outputs and the gradient of qkv, for key counts on and off the 16-key padding and head widths below, at and
    above 16 (padded to 16 / 32 / 64), in float32 and bfloat16 storage; the local branch dense and over its edges
    (native.local_sparse), for half of all keys and for a skeleton's few."""
    monkeypatch.setattr(native, "local_sparse", sparse)
    qkv, keys, adj = case(3, N, 2, hd, dtype, graph=graph)
    qkv.requires_grad_()
    scale = hd**-0.5
    out = native.attention(qkv, keys, adj, ("local", "global"), scale)
    assert out.dtype == dtype and out.shape == (3, N, 2 * 2 * hd)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out.double() * g).sum().backward()
    grad = qkv.grad.double()
    ref_in = qkv.detach().double().requires_grad_()
    ref = oracle(ref_in, keys, adj, ("local", "global"), scale)
    (ref * g).sum().backward()
    tol = dict(rtol=1e-5, atol=2e-6) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out.double(), ref, **tol)
    torch.testing.assert_close(grad, ref_in.grad, **tol)


def test_bf16_dot_products_where_the_cpu_has_them():
    """bfloat16 inputs take the AVX512-BF16 dot products on a CPU that has them (the oracle test above then checks
    that path); elsewhere the float32 path serves both dtypes."""
    from lfm.train import cpu_has_bf16

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "avx512_bf16" in flags and cpu_has_bf16():
        assert native.bf16_dot()


@pytest.mark.parametrize("sparse", [False, True])
def test_queries_without_keys_give_zeros_not_nans(sparse, monkeypatch):
    monkeypatch.setattr(native, "local_sparse", sparse)
    qkv, keys, adj = case(3, 6, 2, 16, torch.float32)
    keys[:] = False
    adj[:] = False
    qkv.requires_grad_()
    out = native.attention(qkv, keys, adj, ("local", "global"), 0.25)
    out.sum().backward()
    assert torch.equal(out, torch.zeros_like(out)) and torch.equal(qkv.grad, torch.zeros_like(qkv))


def _local_out_and_grad(qkv, keys, adj, sparse, monkeypatch):
    monkeypatch.setattr(native, "local_sparse", sparse)
    x = qkv.clone().requires_grad_()
    out = native.attention(x, keys, adj, ("local", "global"), 0.25)
    out.float().square().sum().backward()
    return out, x.grad


def test_auto_goes_over_the_edges_only_where_they_are_few(monkeypatch):
    """'auto' gives bit for bit what the edge path gives for a skeleton graph (3-4 keys a query) and what the dense
    path gives for half of all keys; the two paths differ in their last bits (bf16: the dense path rounds the
    probabilities to bf16 for its dot products, the edge path keeps float32), so the equalities say which ran."""
    for graph, expect in ((True, True), (False, False)):
        qkv, keys, adj = case(4, 40, 2, 16, torch.bfloat16, graph=graph)
        res = {m: _local_out_and_grad(qkv, keys, adj, m, monkeypatch) for m in (False, True, "auto")}
        assert not torch.equal(res[True][0], res[False][0])
        assert torch.equal(res["auto"][0], res[expect][0]) and torch.equal(res["auto"][1], res[expect][1])


@pytest.mark.parametrize("graph", [False, True])
def test_threads_give_the_same_numbers(graph):
    """Each (sample, branch, head) is one task whatever the thread count, so two threads are bit-identical (a local
    branch dense, and over its edges)."""
    qkv, keys, adj = case(8, 21, 4, 16, torch.bfloat16, graph=graph)
    threads = torch.get_num_threads()
    try:
        res = []
        for t in (1, 2):
            torch.set_num_threads(t)
            x = qkv.clone().requires_grad_()
            out = native.attention(x, keys, adj, ("local", "global"), 0.25)
            out.float().square().sum().backward()
            res.append((out, x.grad))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(res[0][0], res[1][0]) and torch.equal(res[0][1], res[1][1])


@pytest.mark.parametrize("attention", ["hybrid", "global", "local"])
def test_model_native_equals_matmul_path(attention, monkeypatch):
    """The whole model (float32 and under bf16 autocast) through the kernel against its PyTorch matmul attention."""
    from lfm import model as M

    torch.manual_seed(0)
    m = LFM(ModelConfig(d_model=64, n_heads=4, n_layers=2, attention=attention))
    x = torch.randn(6, 19, 2)
    mask = torch.rand(6, 19) < 0.8
    adj = knn_adjacency(x, mask, k=3)
    for amp in (False, True):
        res = {}
        for path in ("native", "matmul"):
            monkeypatch.setattr(M, "attention_path", lambda device, dropout=0.0, p=path: p)
            res[path] = model_output_and_grads(m, x, mask, adj, amp)
        assert_models_agree(res["native"], res["matmul"], amp)


def model_output_and_grads(m, x, mask, adj, amp):
    """The model's output and its parameters' gradients of sum(output^2), under bf16 autocast when ``amp``."""
    m.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        out = m(x, mask, adj)
    out.square().sum().backward()
    return out.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]


def assert_models_agree(a, b, amp):
    """Two (output, gradients) of the same model through two paths: float32 rounding apart, or bf16's."""
    tol = dict(rtol=1e-4, atol=1e-5) if not amp else dict(rtol=0.05, atol=0.02)
    torch.testing.assert_close(a[0], b[0], **tol)
    for ga, gb in zip(a[1], b[1]):
        torch.testing.assert_close(ga, gb, **(tol if not amp else dict(rtol=0.1, atol=0.05 * float(gb.abs().max()))))


def test_model_takes_the_kernel_on_cpu_and_not_with_dropout():
    from lfm.model import attention_path

    assert attention_path(torch.device("cpu")) == "native"
    assert attention_path(torch.device("cpu"), dropout=0.1) == "matmul"  # the kernel has no dropout
    assert attention_path(torch.device("cuda")) == "sdpa"


def test_bad_inputs_are_named():
    qkv, keys, adj = case(2, 5, 2, 16, torch.float32)
    with pytest.raises(ValueError, match=r"qkv must be .*\(B, N, nb, 3, H, hd\)"):
        native.attention(qkv[:, :, :, :2], keys, adj, ("local", "global"), 0.25)
    with pytest.raises(ValueError, match="float32/bfloat16"):
        native.attention(qkv.double(), keys, adj, ("local", "global"), 0.25)
    with pytest.raises(ValueError, match=r"keys has shape \(2, 4\)"):
        native.attention(qkv, keys[:, :4], adj, ("local", "global"), 0.25)
    with pytest.raises(ValueError, match="needs the adjacency"):
        native.attention(qkv, keys, None, ("local", "global"), 0.25)
    with pytest.raises(ValueError, match="1 branch names for 2"):
        native.attention(qkv, keys, adj, ("global",), 0.25)
    native.local_sparse = "yes"
    try:
        with pytest.raises(ValueError, match=r"lfm.native.local_sparse = 'yes'; use True, False or 'auto'"):
            native.attention(qkv, keys, adj, ("local", "global"), 0.25)
    finally:
        native.local_sparse = "auto"


def test_build_is_cached_and_atomic(tmp_path, monkeypatch):
    monkeypatch.setenv("LFM_NATIVE_CACHE", str(tmp_path))
    lib = native.build()
    assert lib.parent == tmp_path and lib.stat().st_size > 0
    before = lib.stat().st_mtime_ns
    assert native.build() == lib and lib.stat().st_mtime_ns == before  # found, not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [lib.name]  # no temporary file left behind


PORTABLE = """
import math, torch
from lfm import native
import sys; sys.path.insert(0, "tests")
from test_native import case, oracle
assert native.available() and not native.bf16_dot(), native.why_unavailable()
import itertools
# the local branch dense (half of all keys), and over its edges (a skeleton graph)
for (dtype, tol), (sparse, graph), (N, hd) in itertools.product(((torch.float32, 2e-5), (torch.bfloat16, 3e-2)),
                                                               ((False, False), (True, True)), ((17, 16), (9, 24))):
    native.local_sparse = sparse
    qkv, keys, adj = case(3, N, 2, hd, dtype, graph=graph)
    qkv.requires_grad_()
    out = native.attention(qkv, keys, adj, ("local", "global"), hd ** -0.5)
    out.double().sum().backward()
    x = qkv.detach().double().requires_grad_()
    ref = oracle(x, keys, adj, ("local", "global"), hd ** -0.5)
    ref.sum().backward()
    assert torch.allclose(out.double(), ref, rtol=tol, atol=tol), (dtype, sparse, N, hd)
    assert torch.allclose(qkv.grad.double(), x.grad, rtol=tol, atol=tol), (dtype, sparse, N, hd)
import torch.nn.functional as F  # the pointwise kernels (pointwise_cpu.c), whose bf16 stores are portable code here
ln, lin = torch.nn.LayerNorm(32), torch.nn.Linear(32, 48)
x = torch.randn(130, 32)
x[5, 3] = float("nan")  # a NaN stays a NaN through the rounding to bf16
ref = F.gelu(F.linear(F.layer_norm(x.double(), (32,), ln.weight.double(), ln.bias.double()), lin.weight.double(),
                      lin.bias.double()))
for amp, tol in ((False, 1e-5), (True, 1e-2)):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = native.linear(native.layer_norm(x, ln), lin, gelu=True)
    assert torch.isnan(y[5]).all() and not torch.isnan(y[:5]).any() and not torch.isnan(y[6:]).any()
    keep = torch.ones(130, dtype=torch.bool)
    keep[5] = False
    assert ((y[keep].double() - ref[keep]).norm() / ref[keep].norm()) < tol, amp
print("ok")
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the portable build is checked on x86-64")
def test_portable_build_without_avx512_matches_the_oracle(tmp_path):
    """The code a CPU without AVX-512 runs (-march=x86-64: the vector extensions lowered to SSE2), in a fresh
    process with its own cache: float32 and bfloat16 (no bf16 dot products) against the oracle, attention and the
    pointwise kernels."""
    r = _fresh({"LFM_NATIVE_MARCH": "x86-64", "LFM_NATIVE_CACHE": str(tmp_path)}, PORTABLE)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-2000:] + r.stderr[-2000:]


def _fresh(env: dict, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env})


FALLBACK = """
import torch, warnings
from lfm import native
from lfm.model import LFM, attention_path
from lfm.config import ModelConfig
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    ok = native.available()
print(ok, attention_path(torch.device("cpu")), "|", native.why_unavailable(), "|", [str(x.message) for x in w])
m = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=1, attention="global"))
print(tuple(m(torch.randn(2, 7, 2)).shape))
"""


def test_a_compiler_without_openmp_still_builds_the_kernel(tmp_path):
    """A compiler that rejects -fopenmp (as Apple's clang does): the kernel is built without it and runs."""
    cc = tmp_path / "cc-no-openmp"
    cc.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -fopenmp ] && { echo "unsupported option -fopenmp" >&2; '
                  f'exit 1; }}; done\nexec {native._compiler()} "$@"\n')
    cc.chmod(0o755)
    code = FALLBACK.replace("print(ok,", "print(ok, native.bf16_dot() in (True, False),")
    r = _fresh({"CC": str(cc), "LFM_NATIVE_CACHE": str(tmp_path / "cache")}, code)
    assert r.returncode == 0 and r.stdout.startswith("True True native"), r.stdout + r.stderr


def test_no_compiler_falls_back_to_pytorch_attention(tmp_path):
    """A failing compiler (CC=false, empty cache): a warning naming the failure, the matmul path, a working model."""
    r = _fresh({"CC": "false", "LFM_NATIVE_CACHE": str(tmp_path), "PATH": "/nonexistent"}, FALLBACK)
    assert r.returncode == 0, r.stderr
    head, shape = r.stdout.strip().splitlines()
    assert head.startswith("False matmul |") and "C compiler" in head and "PyTorch matmul attention" in head
    assert shape == "(2, 7, 3)"
    r = _fresh({"LFM_NATIVE": "0"}, FALLBACK)
    assert r.returncode == 0 and r.stdout.startswith("False matmul | LFM_NATIVE=0"), r.stdout + r.stderr
