"""lfm's CPU kernels (``lfm/csrc``): built on first use into one library, called through ctypes.

:func:`attention` (``attention_cpu.c``) is masked softmax attention of all branches and heads of a
:class:`lfm.model.HybridLayer` in one call, forward and backward, read straight from the qkv linear's output
``(B, N, nb, 3, H, hd)`` and written as the concat ``(B, N, nb * H * hd)`` the output projection takes: no permute
copies, no ``N x N`` tensors kept for the backward (it recomputes the softmax from the saved log-sum-exp), softmax in
float32 on float32 or bfloat16 inputs. A local branch goes over its graph's edges where they are few
(:data:`local_sparse`), a global one over its valid keys only.

:func:`layer_norm` and :func:`linear` (``pointwise_cpu.c``) fuse the pointwise work around the linears: the
LayerNorm writes its output in the dtype the next linear computes in (bf16 under autocast: no cast copy), and the
MLP's bias + exact GELU is one pass forward (which keeps GELU' for the backward) and one backward, where the bias
gradient is summed too. The matmuls stay PyTorch's. What each change gave the whole step: docs/training.md.

Building: the machine's C compiler (``$CC``, else ``cc``, ``gcc``, ``clang``) with ``-O3 -march=native -fopenmp``,
(without ``-fopenmp`` where the compiler has no OpenMP: then one thread per call), once per source, compiler,
flags and machine, into ``$LFM_NATIVE_CACHE`` (default ``~/.cache/lfm/native``),
written atomically. With AVX512-BF16 (and ``-march=native`` finding it) bfloat16 inputs take bf16 dot products;
``LFM_NATIVE_MARCH=x86-64`` builds the portable code (what a CPU without AVX-512 runs), as the tests do. Where no
compiler is found or the build fails, :func:`available` is False, says why once, and the model keeps its PyTorch
matmul attention and ops (same numbers within float rounding; ``tests/test_native.py``,
``tests/test_native_pointwise.py``). ``LFM_NATIVE=0`` turns the kernels off.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch

__all__ = ["attention", "available", "bf16_dot", "why_unavailable", "build", "layer_norm", "linear",
           "compute_dtype_of", "pointwise_fits"]

CSRC = Path(__file__).with_name("csrc")
SOURCES = [CSRC / "attention_cpu.c", CSRC / "pointwise_cpu.c"]  # compiled into one library
HEADERS = [CSRC / "vec.h"]


def flags() -> list[str]:
    """Compiler flags; ``LFM_NATIVE_MARCH`` replaces ``native`` (e.g. ``x86-64`` for the portable code path)."""
    return ["-O3", f"-march={os.environ.get('LFM_NATIVE_MARCH', 'native')}", "-fopenmp", "-fPIC", "-shared"]


_state: dict = {}  # "lib" (the loaded library) or "why" (the reason there is none), set once per process


def cache_dir() -> Path:
    """Where built libraries are kept: ``LFM_NATIVE_CACHE``, else ``$XDG_CACHE_HOME/lfm/native`` (``~/.cache``)."""
    env = os.environ.get("LFM_NATIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lfm" / "native"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def build(force: bool = False) -> Path:
    """Compile the kernels (or find them compiled) and return the shared library's path; raises ``RuntimeError``
    with the compiler's message when it cannot."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (set CC, or install gcc / clang) for the fused CPU attention")
    src, fl = b"".join(f.read_bytes() for f in SOURCES + HEADERS), flags()
    key = hashlib.sha256(src + " ".join([cc, *fl, platform.machine(), _cpu_id()]).encode()).hexdigest()[:16]
    lib = cache_dir() / f"lfm_cpu-{key}.so"
    if lib.exists() and not force:
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
    os.close(fd)
    try:
        srcs = [str(f) for f in SOURCES]
        r = subprocess.run([cc, *fl, *srcs, "-o", tmp, "-lm"], capture_output=True, text=True)
        if r.returncode:  # a compiler without OpenMP (Apple's clang): one thread per call is still the kernel
            serial = [f for f in fl if f != "-fopenmp"]
            r = subprocess.run([cc, *serial, *srcs, "-o", tmp, "-lm"], capture_output=True, text=True)
        if r.returncode:
            names = ", ".join(f.name for f in SOURCES)
            raise RuntimeError(f"{Path(cc).name} failed on {names}: {(r.stderr or r.stdout).strip()[:800]}")
        os.replace(tmp, lib)  # atomic: a second process never loads a half-written library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def _cpu_id() -> str:
    """What -march=native depends on: the CPU's model and flags (a cache shared by several machines stays right)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        return hashlib.sha256("".join(l for l in text.splitlines(True)[:30]
                                      if l.startswith(("model name", "flags"))).encode()).hexdigest()
    except OSError:
        return platform.processor()


def _load():
    if "lib" in _state or "why" in _state:
        return _state.get("lib")
    if os.environ.get("LFM_NATIVE", "1") == "0":
        _state["why"] = "LFM_NATIVE=0"
        return None
    try:
        lib = ctypes.CDLL(str(build()))
        p, i, f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        lib.lfm_attention_forward.argtypes = [p, i, p, p, p, p, p, i, i, i, i, i, f, i, i]
        lib.lfm_attention_backward.argtypes = [p, i, p, i, p, p, p, p, p, i, i, i, i, i, f, i, i]
        lib.lfm_attention_forward.restype = lib.lfm_attention_backward.restype = i
        lib.lfm_attention_bf16_dot.argtypes, lib.lfm_attention_bf16_dot.restype = [], i
        lib.lfm_bias_gelu_forward.argtypes = [p, i, p, p, i, i, i]
        lib.lfm_gelu_backward.argtypes = [p, i, p, i, p, p, i, i, i]
        lib.lfm_layer_norm_forward.argtypes = [p, p, p, f, p, i, p, p, i, i, i]
        lib.lfm_layer_norm_backward.argtypes = [p, p, p, p, p, i, p, p, p, i, i, i]
        lib.lfm_bias_add.argtypes = [p, i, p, p, p, i, i, i]
        lib.lfm_column_sums.argtypes = [p, i, p, p, i, i, i, i]
        for fn in ("lfm_bias_gelu_forward", "lfm_gelu_backward", "lfm_layer_norm_forward", "lfm_layer_norm_backward",
                   "lfm_bias_add", "lfm_column_sums"):
            getattr(lib, fn).restype = i
        _state["lib"] = lib
    except (RuntimeError, OSError) as e:
        _state["why"] = str(e)
        warnings.warn(f"lfm: fused CPU attention unavailable ({str(e).splitlines()[0][:200]}); using the PyTorch "
                      "matmul attention (same results, slower)", RuntimeWarning, stacklevel=3)
    return _state.get("lib")


def available() -> bool:
    """Whether the fused CPU attention is built and loaded (builds it on the first call)."""
    return _load() is not None


def bf16_dot() -> bool:
    """Whether the kernel was built with AVX512-BF16 dot products (used for bfloat16 inputs, i.e. under autocast)."""
    return available() and bool(_state["lib"].lfm_attention_bf16_dot())


def why_unavailable() -> str | None:
    _load()
    return _state.get("why")


_DTYPES = {torch.float32: 0, torch.bfloat16: 1}


# How a local branch attends: "auto" over its graph's edges where they are few (at most 4 a query per 16 keys: the
# training stream's graphs have 2-5 a query), True always over the edges, False always the dense N x N scores (the
# tests compare the three). The results agree to rounding: a blocked key adds exactly nothing to a softmax.
local_sparse: bool | str = "auto"


def _sparse_mode() -> int:
    if local_sparse not in (True, False, "auto"):
        raise ValueError(f"lfm.native.local_sparse = {local_sparse!r}; use True, False or 'auto'")
    return -1 if local_sparse == "auto" else int(local_sparse)


def _check_rc(rc: int, what: str):
    if rc:
        raise MemoryError(f"{what}: no memory for its work buffers")


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, keys, adj, kinds, scale):
        B, N, nb, _, H, hd = qkv.shape
        lib = _state["lib"]
        out = torch.empty(B, N, nb * H * hd, dtype=qkv.dtype)
        ctx.scale, ctx.sparse = scale, _sparse_mode()
        lse = torch.empty(B, nb, H, N, dtype=torch.float32)
        rc = lib.lfm_attention_forward(qkv.data_ptr(), _DTYPES[qkv.dtype], out.data_ptr(), lse.data_ptr(),
                                       keys.data_ptr(), adj.data_ptr(), kinds.data_ptr(), B, N, nb, H, hd,
                                       scale, torch.get_num_threads(), ctx.sparse)
        _check_rc(rc, "fused CPU attention")
        ctx.save_for_backward(qkv, lse, keys, adj, kinds)
        return out

    @staticmethod
    def backward(ctx, dout):
        qkv, lse, keys, adj, kinds = ctx.saved_tensors
        B, N, nb, _, H, hd = qkv.shape
        dout = dout.contiguous()
        if dout.dtype not in _DTYPES:
            dout = dout.float()
        dqkv = torch.empty_like(qkv)
        rc = _state["lib"].lfm_attention_backward(
            qkv.data_ptr(), _DTYPES[qkv.dtype], dout.data_ptr(), _DTYPES[dout.dtype], lse.data_ptr(),
            dqkv.data_ptr(), keys.data_ptr(), adj.data_ptr(), kinds.data_ptr(), B, N, nb, H, hd, ctx.scale,
            torch.get_num_threads(), ctx.sparse)
        _check_rc(rc, "fused CPU attention backward")
        return dqkv, None, None, None, None


def attention(qkv: torch.Tensor, keys: torch.Tensor, adjacency: torch.Tensor | None, branches, scale: float):
    """Masked softmax attention of every branch and head: ``qkv`` ``(B, N, nb, 3, H, hd)`` (float32 or bfloat16,
    on the CPU); ``keys`` ``(B, N)`` bool, the keys a ``'global'`` branch may attend; ``adjacency`` ``(B, N, N)``
    bool, what each query of a ``'local'`` branch may attend (None when no branch is local); ``branches`` the
    branch names in qkv's order. Returns ``(B, N, nb * H * hd)`` in qkv's dtype: the concatenated heads."""
    if _load() is None:
        raise RuntimeError(f"fused CPU attention unavailable: {_state['why']}")
    if qkv.device.type != "cpu" or qkv.dtype not in _DTYPES or qkv.dim() != 6 or qkv.shape[3] != 3:
        raise ValueError(f"qkv must be a CPU float32/bfloat16 tensor (B, N, nb, 3, H, hd); got "
                         f"{tuple(qkv.shape)} {qkv.dtype} on {qkv.device}")
    B, N = qkv.shape[:2]
    if len(branches) != qkv.shape[2]:
        raise ValueError(f"{len(branches)} branch names for {qkv.shape[2]} branches in qkv")
    kinds = torch.tensor([{"global": 0, "local": 1}[b] for b in branches], dtype=torch.int32)
    keys = keys.to(torch.bool).contiguous()
    if tuple(keys.shape) != (B, N):
        raise ValueError(f"keys has shape {tuple(keys.shape)}; expected ({B}, {N})")
    if adjacency is None:
        if "local" in branches:
            raise ValueError("a 'local' branch needs the adjacency (B, N, N)")
        adjacency = keys  # never read
    else:
        adjacency = adjacency.to(torch.bool).expand(B, N, N).contiguous()
    return _Attention.apply(qkv.contiguous(), keys, adjacency, kinds, float(scale))


# ---- the pointwise work around the linears (lfm/csrc/pointwise_cpu.c) ----

fuse_pointwise = True  # False: lfm.model keeps PyTorch's LayerNorm / bias / GELU ops (the tests compare the two)


class _Linear(torch.autograd.Function):
    """``x @ weight.T + bias``, then GELU (``gelu``) or added to the float32 residual stream ``res``; the matmuls are
    PyTorch's, the bias, GELU and residual one pass of pointwise_cpu.c each way."""

    @staticmethod
    def forward(ctx, x, weight, bias, gelu, res):  # x (M, K), weight (C, K) of one dtype; bias (C,), res (M, C) f32
        lib, threads = _state["lib"], torch.get_num_threads()
        h = x @ weight.t()  # (M, C), without the bias
        M, C = h.shape
        if gelu:
            out = torch.empty_like(h)
            _check_rc(lib.lfm_bias_gelu_forward(h.data_ptr(), _DTYPES[h.dtype], bias.data_ptr(), out.data_ptr(), M,
                                                C, threads), "bias + GELU")
        else:
            out = h if res is None else torch.empty(M, C, dtype=torch.float32)
            _check_rc(lib.lfm_bias_add(h.data_ptr(), _DTYPES[h.dtype], bias.data_ptr(),
                                       None if res is None else res.data_ptr(), out.data_ptr(), M, C, threads),
                      "bias")
        ctx.gelu, ctx.res = gelu, res is not None
        ctx.save_for_backward(x, weight, h if gelu else None)  # with gelu, h now holds GELU'(h + bias)
        return out

    @staticmethod
    def backward(ctx, dout):
        x, weight, dgelu = ctx.saved_tensors
        lib, threads = _state["lib"], torch.get_num_threads()
        dout = dout.contiguous()
        if dout.dtype not in _DTYPES:
            dout = dout.float()
        M, C = dout.shape
        db = torch.empty(C, dtype=torch.float32)
        if ctx.gelu:
            dh = torch.empty_like(dgelu)
            _check_rc(lib.lfm_gelu_backward(dgelu.data_ptr(), _DTYPES[dgelu.dtype], dout.data_ptr(),
                                            _DTYPES[dout.dtype], dh.data_ptr(), db.data_ptr(), M, C, threads),
                      "GELU backward")
        else:  # db and the gradient in the matmuls' dtype, one pass
            dh = dout if dout.dtype == x.dtype else torch.empty(M, C, dtype=x.dtype)
            _check_rc(lib.lfm_column_sums(dout.data_ptr(), _DTYPES[dout.dtype], db.data_ptr(),
                                          None if dh is dout else dh.data_ptr(), _DTYPES[dh.dtype], M, C, threads),
                      "bias backward")
        dx = dh @ weight if ctx.needs_input_grad[0] else None
        dw = dh.t() @ x if ctx.needs_input_grad[1] else None
        return dx, dw, db, None, (dout if ctx.res else None)


class _LayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps, out_dtype):  # x (M, D) float32
        M, D = x.shape
        y = torch.empty(M, D, dtype=out_dtype)
        mean, rstd = torch.empty(M), torch.empty(M)
        _check_rc(_state["lib"].lfm_layer_norm_forward(x.data_ptr(), weight.data_ptr(), bias.data_ptr(), eps,
                                                       y.data_ptr(), _DTYPES[out_dtype], mean.data_ptr(),
                                                       rstd.data_ptr(), M, D, torch.get_num_threads()), "LayerNorm")
        ctx.save_for_backward(x, weight, mean, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, rstd = ctx.saved_tensors
        dy = dy.contiguous()
        if dy.dtype not in _DTYPES:
            dy = dy.float()
        M, D = x.shape
        dx, dw, db = torch.empty_like(x), torch.empty(D), torch.empty(D)
        _check_rc(_state["lib"].lfm_layer_norm_backward(
            x.data_ptr(), mean.data_ptr(), rstd.data_ptr(), weight.data_ptr(), dy.data_ptr(), _DTYPES[dy.dtype],
            dx.data_ptr(), dw.data_ptr(), db.data_ptr(), M, D, torch.get_num_threads()), "LayerNorm backward")
        return dx, dw, db, None, None


def _compute_dtype(x: torch.Tensor) -> torch.dtype | None:
    """The dtype a linear computes in here (autocast's on the CPU, else x's), or None where the kernels have none."""
    if x.device.type != "cpu" or x.dtype not in _DTYPES:
        return None
    dt = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    return dt if dt in _DTYPES else None


def _pointwise_dtype(x: torch.Tensor) -> torch.dtype:
    if _load() is None:
        raise RuntimeError(f"lfm's CPU kernels unavailable: {_state['why']}")
    dt = _compute_dtype(x)
    if dt is None:
        raise ValueError(f"the fused CPU pointwise kernels take float32 or bfloat16 on the CPU; got {x.dtype} on "
                         f"{x.device}" + (" under a float16 autocast" if x.device.type == "cpu" else ""))
    return dt


def compute_dtype_of(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the dtype :func:`linear` computes in (a no-op outside autocast): a tensor that several linears
    take is cast once."""
    return x.to(_pointwise_dtype(x))


def pointwise_fits(x: torch.Tensor, *modules: torch.nn.Module) -> bool:
    """Whether :func:`layer_norm` / :func:`linear` take the residual stream ``x`` and these modules: the library
    built, a float32 CPU tensor (a model whose stream is bf16 under autocast, the learned ``positional='mlp'``, keeps
    PyTorch's ops), float32 parameters, widths that are multiples of 16 and a float32 or bfloat16 compute dtype."""
    if not fuse_pointwise or _load() is None or x.dtype != torch.float32 or _compute_dtype(x) is None:
        return False
    if x.shape[-1] % 16:
        return False
    for m in modules:
        ps = [m.weight, m.bias]
        if any(p is None or p.dtype != torch.float32 or p.device.type != "cpu" for p in ps):
            return False
        if isinstance(m, torch.nn.Linear) and m.out_features % 16:
            return False
    return True


def layer_norm(x: torch.Tensor, ln: torch.nn.LayerNorm) -> torch.Tensor:
    """``ln(x)`` for float32 ``x`` ``(..., D)``, written in the dtype the next linear computes in (bfloat16 under
    the CPU's bf16 autocast: the cast is fused); check :func:`pointwise_fits` first."""
    if x.dtype != torch.float32 or tuple(ln.normalized_shape) != (x.shape[-1],):
        raise ValueError(f"layer_norm takes float32 (..., {ln.normalized_shape[0]}); got {x.dtype} "
                         f"{tuple(x.shape)}")
    D, dt = x.shape[-1], _pointwise_dtype(x)
    with torch.autocast("cpu", enabled=False):
        y = _LayerNorm.apply(x.reshape(-1, D).contiguous(), ln.weight, ln.bias, float(ln.eps), dt)
    return y.view(x.shape)


def linear(x: torch.Tensor, lin: torch.nn.Linear, *, gelu: bool = False, residual: torch.Tensor | None = None):
    """``lin(x)``, then ``GELU`` (exact) when ``gelu``, or plus the float32 ``residual`` (``x``'s leading shape,
    ``lin.out_features`` wide); the bias (and GELU or residual) fused into one pass forward and one backward, where
    the bias gradient is summed too. The matmuls are PyTorch's, in bfloat16 under the CPU's bf16 autocast; the
    output is in that dtype (float32 with a residual). Check :func:`pointwise_fits` first."""
    dt, K = _pointwise_dtype(x), x.shape[-1]
    lead = x.shape[:-1]
    if residual is not None:
        if gelu:
            raise ValueError("linear: gelu and residual do not go together")
        if residual.dtype != torch.float32 or tuple(residual.shape) != (*lead, lin.out_features):
            raise ValueError(f"residual must be float32 {(*lead, lin.out_features)}; got {residual.dtype} "
                             f"{tuple(residual.shape)}")
        residual = residual.reshape(-1, lin.out_features).contiguous()
    with torch.autocast("cpu", enabled=False):
        out = _Linear.apply(x.reshape(-1, K).to(dt).contiguous(), lin.weight.to(dt), lin.bias, gelu, residual)
    return out.view(*lead, lin.out_features)
