"""The fused CPU attention of ``lfm/csrc/attention_cpu.c``: built on first use, called through ctypes.

:func:`attention` is masked softmax attention of all branches and heads of a :class:`lfm.model.HybridLayer` in one
call, forward and backward, read straight from the qkv linear's output ``(B, N, nb, 3, H, hd)`` and written as the
concat ``(B, N, nb * H * hd)`` the output projection takes: no permute copies, no ``N x N`` tensors kept for the
backward (it recomputes the softmax from the saved log-sum-exp), softmax in float32 on float32 or bfloat16 inputs.

Building: the machine's C compiler (``$CC``, else ``cc``, ``gcc``, ``clang``) with ``-O3 -march=native -fopenmp``,
(without ``-fopenmp`` where the compiler has no OpenMP: then one thread per call), once per source, compiler,
flags and machine, into ``$LFM_NATIVE_CACHE`` (default ``~/.cache/lfm/native``),
written atomically. With AVX512-BF16 (and ``-march=native`` finding it) bfloat16 inputs take bf16 dot products;
``LFM_NATIVE_MARCH=x86-64`` builds the portable code (what a CPU without AVX-512 runs), as the tests do. Where no
compiler is found or the build fails, :func:`available` is False, says why once, and the model keeps its PyTorch
matmul attention (same numbers within float rounding; ``tests/test_native.py``). ``LFM_NATIVE=0`` turns the kernel
off.
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

__all__ = ["attention", "available", "bf16_dot", "why_unavailable", "build"]

SOURCE = Path(__file__).with_name("csrc") / "attention_cpu.c"


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
    """Compile the kernel (or find it compiled) and return the shared library's path; raises ``RuntimeError`` with
    the compiler's message when it cannot."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler (set CC, or install gcc / clang) for the fused CPU attention")
    src, fl = SOURCE.read_bytes(), flags()
    key = hashlib.sha256(src + " ".join([cc, *fl, platform.machine(), _cpu_id()]).encode()).hexdigest()[:16]
    lib = cache_dir() / f"attention_cpu-{key}.so"
    if lib.exists() and not force:
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
    os.close(fd)
    try:
        r = subprocess.run([cc, *fl, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True)
        if r.returncode:  # a compiler without OpenMP (Apple's clang): one thread per call is still the kernel
            serial = [f for f in fl if f != "-fopenmp"]
            r = subprocess.run([cc, *serial, str(SOURCE), "-o", tmp, "-lm"], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"{Path(cc).name} failed on {SOURCE.name}: {(r.stderr or r.stdout).strip()[:800]}")
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
        lib.lfm_attention_forward.argtypes = [p, i, p, p, p, p, p, i, i, i, i, i, f, i]
        lib.lfm_attention_backward.argtypes = [p, i, p, i, p, p, p, p, p, i, i, i, i, i, f, i]
        lib.lfm_attention_forward.restype = lib.lfm_attention_backward.restype = i
        lib.lfm_attention_bf16_dot.argtypes, lib.lfm_attention_bf16_dot.restype = [], i
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


class _Attention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, qkv, keys, adj, kinds, scale):
        B, N, nb, _, H, hd = qkv.shape
        lib = _state["lib"]
        out = torch.empty(B, N, nb * H * hd, dtype=qkv.dtype)
        lse = torch.empty(B, nb, H, N, dtype=torch.float32)
        rc = lib.lfm_attention_forward(qkv.data_ptr(), _DTYPES[qkv.dtype], out.data_ptr(), lse.data_ptr(),
                                       keys.data_ptr(), adj.data_ptr(), kinds.data_ptr(), B, N, nb, H, hd,
                                       scale, torch.get_num_threads())
        if rc:
            raise MemoryError("fused CPU attention: no memory for its work buffers")
        ctx.save_for_backward(qkv, lse, keys, adj, kinds)
        ctx.scale = scale
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
            torch.get_num_threads())
        if rc:
            raise MemoryError("fused CPU attention: no memory for its work buffers")
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
