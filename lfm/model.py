"""The 3D-LFM lifter (paper Sec. 3, Fig. 2): TPE -> L hybrid graph-transformer layers -> per-token MLP decoder.

Shapes: B batch, N keypoints (padded maximum of the batch), D width, H heads, hd = D / H.

    points2d (B, N, 2), mask (B, N) bool, adjacency (B, N, N) bool
      -> normalise (centre on visible mean, scale into [-1, 1])        paper Eq. 3
      -> TPE: sqrt(2/D) [sin(2 pi x w + b), cos(2 pi x w + b)]         paper Eq. 4, fixed random Fourier features
      -> L x HybridLayer: concat(GA(x, A), MHSA(x)) -> Linear -> MLP    paper Eqs. 5-7
      -> decoder: per-token GeLU MLP -> (B, N, 3) canonical 3D          paper Sec. 3.5

Decisions the paper leaves open (paper.md Sec. 9), each stated where it is made:

* TPE: ``w ~ sigma * N(0, 1)`` of shape (2, D/2) with the 2 pi factor of the cited RFF code, phase ``b ~ N(0, 1)``
  (the paper: "drawn from a normal distribution"), prefactor sqrt(2/D), D = d_model, drawn once from a fixed
  seed and stored as buffers (never trained, saved in checkpoints). ``positional='mlp'`` is the ablation's
  learnable projection (Linear(2, D), GeLU, Linear(D, D)).
* Graph attention: masked multi-head *dot-product* attention restricted to the adjacency plus self-loops
  (a graph-transformer form of GA that runs on the fused SDPA kernels), not GAT's additive scoring.
* Hybrid wiring: pre-norm. ``u = concat(GA(LN(x)), MHSA(LN(x)))`` (Eq. 6) is mapped back to width D by a linear
  layer (the paper's concat doubles the width and says nothing of how it returns to D), ``x = x + u``, then
  ``x = x + MLP(LN(x))`` with GeLU and expansion ``mlp_ratio``. Eq. 7 and Fig. 2 disagree on norm placement;
  pre-norm trains without warm-up. ``attention='global'|'local'`` keeps one branch (the Fig. 6a ablation).
* Padding: padded/invisible tokens are never keys, so they never change a valid token's output; each token
  always sees itself, so no attention row is empty (no NaN for an all-masked sample).
* Decoder: LN -> Linear(D, D) -> GeLU -> Linear(D, 3). ``xy_residual=True`` adds the normalised (x, y, 0) to
  the output (a lever from calibration.md; on in the shipped models, off in the paper).
* ``pe_every_layer=True`` adds a (zero-initialised) linear projection of the positional encoding before every
  layer (2D-LFM, CVPR 2026, reports this as its largest lever); off = the paper's input-only TPE.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import native
from .config import ATTENTIONS, POSITIONALS, ModelConfig
from .geometry import normalize_2d

__all__ = ["LFM", "TPE", "HybridLayer", "model_flops"]

class TPE(nn.Module):
    """Analytical token positional encoding: fixed random Fourier features of the 2D coordinates (Eq. 4)."""

    def __init__(self, d_model: int, sigma: float, seed: int):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"d_model = {d_model} must be even for TPE (D/2 sines and D/2 cosines).")
        if not sigma > 0:
            raise ValueError(f"rff_sigma = {sigma} must be > 0.")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("omega", sigma * torch.randn(2, d_model // 2, generator=g))  # (2, D/2)
        self.register_buffer("phase", torch.randn(d_model // 2, generator=g))  # (D/2,)
        self.d_model = d_model

    def forward(self, x2d: torch.Tensor) -> torch.Tensor:
        # sin/cos of large arguments in bf16 would be noise: always float32
        with torch.autocast(device_type=x2d.device.type, enabled=False):
            arg = 2 * math.pi * (x2d.float() @ self.omega) + self.phase  # (B, N, D/2)
            return math.sqrt(2.0 / self.d_model) * torch.cat([arg.sin(), arg.cos()], dim=-1)  # (B, N, D)


class HybridLayer(nn.Module):
    """One graph-transformer layer: local graph attention and global MHSA in parallel, concatenated (Eqs. 5-7)."""

    def __init__(self, d_model: int, n_heads: int, attention: str, mlp_ratio: int, dropout: float):
        super().__init__()
        self.branches = {"hybrid": ("local", "global"), "global": ("global",), "local": ("local",)}[attention]
        nb, self.n_heads, self.dropout = len(self.branches), n_heads, dropout
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model * nb)  # one matmul for both branches
        self.proj = nn.Linear(d_model * nb, d_model)  # concat(L, G) (B, N, 2D) -> (B, N, D)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, mlp_ratio * d_model), nn.GELU(), nn.Linear(mlp_ratio * d_model, d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, masks: dict[str, torch.Tensor]) -> torch.Tensor:
        B, N, D = x.shape
        H, nb = self.n_heads, len(self.branches)
        # masks["fused"] (LFM.forward): the pointwise work around the linears fused by lfm.native (LayerNorm written
        # in the linears' dtype; bias + GELU; bias + residual), each one pass forward and one backward
        fused = masks.get("fused", False)
        if fused:
            qkv = native.linear(native.layer_norm(x, self.ln1), self.qkv)
        else:
            qkv = self.qkv(self.ln1(x))
        qkv = qkv.view(B, N, nb, 3, H, D // H)
        if "native" in masks:  # the fused CPU kernel reads this layout (B, N, nb, 3, H, hd) and writes the concat
            u = native.attention(qkv, *masks["native"], self.branches, (D // H) ** -0.5)  # (B, N, nb*D)
        else:
            u = self._torch_attention(qkv, masks)
        if fused:  # no dropout here (the kernel path has none)
            x = native.linear(u, self.proj, residual=x)
            h = native.linear(native.layer_norm(x, self.ln2), self.mlp[0], gelu=True)
            return native.linear(h, self.mlp[2], residual=x)
        x = x + self.drop(self.proj(u))
        return x + self.drop(self.mlp(self.ln2(x)))

    def _torch_attention(self, qkv: torch.Tensor, masks: dict) -> torch.Tensor:
        """Attention in PyTorch ops: the chunked matmul path on a CPU (``masks['blocked']``), SDPA elsewhere.
        ``qkv`` ``(B, N, nb, 3, H, hd)`` -> ``(B, N, nb * H * hd)``, the concat of the branches."""
        B, N, nb, _, H, hd = qkv.shape
        # (B, nb, H, N, hd) each; unbind's backward stacks (a select's backward fills zeros)
        q, k, v = qkv.permute(3, 0, 2, 4, 1, 5).unbind(0)
        p = self.dropout if self.training else 0.0
        if "blocked" in masks:  # plain matmul attention, both branches in one batched matmul (CPU)
            # contiguous operands (a transposed view makes the CPU's batched matmul several times slower)
            q, k, v = (q * hd**-0.5).contiguous(), k.contiguous(), v.contiguous()
            if N < SOFTMAX_MIN_KEYS:  # keys padded with zero values (blocked in _chunked_attention)
                k, v = (F.pad(t, (0, 0, 0, SOFTMAX_MIN_KEYS - N)) for t in (k, v))
            o = _chunked_attention(q, k, v, masks["blocked"], p)  # (B, nb, H, N, hd)
        else:  # fused SDPA kernels (a GPU), one call per branch
            o = torch.stack([F.scaled_dot_product_attention(qi, ki, vi, attn_mask=masks[name], dropout_p=p)
                             for qi, ki, vi, name in zip(q.unbind(1), k.unbind(1), v.unbind(1), self.branches)], 1)
        return o.permute(0, 3, 1, 2, 4).reshape(B, N, nb * H * hd)  # concat(L, G), heads in order


class LFM(nn.Module):
    """3D Lifting Foundation Model: ``forward(points2d, mask, adjacency) -> (B, N, 3)`` canonical-frame 3D.

    No per-joint or per-category embedding: the only input to a token is its 2D position, so any N works and
    the model is permutation-equivariant (permuting tokens and adjacency permutes the output).
    """

    def __init__(self, cfg: ModelConfig | None = None):
        super().__init__()
        cfg = ModelConfig() if cfg is None else cfg  # validated (choices, ranges, divisibility) by ModelConfig
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"LFM takes a lfm.config.ModelConfig, got {type(cfg).__name__}; "
                            "build one with ModelConfig(d_model=..., ...).")
        self.cfg = cfg
        self.attention, self.xy_residual = cfg.attention, cfg.xy_residual
        D = cfg.d_model
        if cfg.positional == "tpe":
            self.embed = TPE(D, cfg.rff_sigma, seed=cfg.tpe_seed)
        else:
            self.embed = nn.Sequential(nn.Linear(2, D), nn.GELU(), nn.Linear(D, D))
        self.layers = nn.ModuleList(HybridLayer(D, cfg.n_heads, cfg.attention, cfg.mlp_ratio, cfg.dropout)
                                    for _ in range(cfg.n_layers))
        # positional encoding injected before every layer (2D-LFM's lever): a zero-initialised projection per
        # layer, so training starts from the paper's input-only encoding
        self.pe_proj = nn.ModuleList(nn.Linear(D, D) for _ in range(cfg.n_layers)) if cfg.pe_every_layer else None
        if self.pe_proj is not None:
            for lin in self.pe_proj:
                nn.init.zeros_(lin.weight)
                nn.init.zeros_(lin.bias)
        self.decoder = nn.Sequential(nn.LayerNorm(D), nn.Linear(D, D), nn.GELU(), nn.Linear(D, 3))

    @classmethod
    def from_config(cls, cfg) -> "LFM":
        """Build from a :class:`lfm.config.ModelConfig` (the same as ``LFM(cfg)``)."""
        return cls(cfg)

    def forward(
        self, points2d: torch.Tensor, mask: torch.Tensor | None = None, adjacency: torch.Tensor | None = None,
        *, return_norm: bool = False,
    ):
        """points2d ``(B, N, 2)``; mask ``(B, N)`` bool (True = visible); adjacency ``(B, N, N)`` or ``(N, N)``
        bool (needed unless ``attention='global'``). Returns ``(B, N, 3)`` canonical 3D in normalised units, and
        with ``return_norm=True`` also the :class:`lfm.geometry.Normalisation` of the input (centre, scale)."""
        valid, adjacency = self._check(points2d, mask, adjacency)
        norm = normalize_2d(points2d, valid)
        x2d = norm.points  # (B, N, 2), hidden points set to 0 (W_m = W * M)
        path = attention_path(x2d.device, self.cfg.dropout if self.training else 0.0)
        masks = _attention_masks(valid, adjacency if self.attention != "global" else None,
                                 self.layers[0].branches, path=path)
        pe = self.embed(x2d)  # (B, N, D)
        x = pe
        # the CPU kernels' pointwise work around the linears, decided once for every layer and the decoder: where
        # the attention kernel runs and the residual stream is float32 (native.pointwise_fits)
        fused = path == "native" and native.pointwise_fits(pe, *self._pointwise_modules())
        masks["fused"] = fused
        pe_in = native.compute_dtype_of(pe) if fused and self.pe_proj is not None else pe  # cast once for all layers
        for i, layer in enumerate(self.layers):
            if self.pe_proj is not None:
                x = native.linear(pe_in, self.pe_proj[i], residual=x) if fused else x + self.pe_proj[i](pe)
            x = layer(x, masks)
        # the decoder writes the 3D itself: in float32 also under autocast (a bf16 decoder rounded the output
        # enough to raise the v2 model's validation error by 11 %; its cost is 2 N D^2 of the whole forward)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x, dec = x.float(), self.decoder
            if fused:  # as in HybridLayer
                out = dec[3](native.linear(native.layer_norm(x, dec[0]), dec[1], gelu=True))
            else:
                out = dec(x)  # (B, N, 3)
        if self.xy_residual:
            out = out + F.pad(x2d, (0, 1))
        return (out, norm) if return_norm else out

    def _pointwise_modules(self) -> list[nn.Module]:
        """The LayerNorms and linears whose pointwise work the CPU kernels fuse (all but the decoder's last)."""
        pe = list(self.pe_proj) if self.pe_proj is not None else []
        return [m for layer in self.layers for m in (layer.ln1, layer.qkv, layer.proj, layer.ln2, *layer.mlp[::2])] + \
            pe + [self.decoder[0], self.decoder[1]]

    def _check(self, points2d, mask, adjacency):
        if not isinstance(points2d, torch.Tensor) or points2d.dim() != 3 or points2d.shape[-1] != 2:
            got = tuple(points2d.shape) if isinstance(points2d, torch.Tensor) else type(points2d).__name__
            raise ValueError(f"points2d has shape {got}; expected (B, N, 2).")
        B, N, _ = points2d.shape
        if mask is None:
            mask = torch.ones(B, N, dtype=torch.bool, device=points2d.device)
        if tuple(mask.shape) != (B, N):
            raise ValueError(
                f"mask has shape {tuple(mask.shape)} but points2d has shape {tuple(points2d.shape)}; "
                f"pass one mask entry per keypoint, shape ({B}, {N})."
            )
        if self.attention == "global":
            return mask.bool(), None
        if adjacency is None:
            raise ValueError(
                f"attention={self.attention!r} needs an adjacency (B, N, N) bool; build one with "
                "lfm.graph.edges_to_adjacency(edges, N) or lfm.graph.knn_adjacency(points2d, mask, k)."
            )
        if adjacency.dim() == 2:
            adjacency = adjacency.expand(B, N, N)
        if tuple(adjacency.shape) != (B, N, N):
            raise ValueError(
                f"adjacency has shape {tuple(adjacency.shape)} but points2d has shape {tuple(points2d.shape)}; "
                f"expected ({B}, {N}, {N}) or ({N}, {N})."
            )
        return mask.bool(), adjacency.bool()


# On a CPU the model attends through the fused kernel of lfm.native (lfm/csrc/attention_cpu.c) wherever a C compiler
# builds it: it reads q, k, v straight from the qkv linear's output and writes the concat, so the permute copies, the
# float casts of the scores and the (B, 2, H, N, N) tensors of the path below disappear. Replaying 150 batches of the
# v2 stream (d = 64, batch 256, bf16 linears, 1 thread): 1,150-1,280 samples/s with the matmul path, 1,550-1,650
# with the kernel; at 2 threads 1,690-1,860 -> 2,500-2,630 (docs/training.md).
# Without a compiler (or with dropout, which the kernel does not do), plain matmul attention on contiguous operands,
# over cache-sized chunks of the batch, which beat the CPU's SDPA kernels at every N of the benchmark. Measured at
# d = 64, one thread, batch 256, bf16 linears, on 120 replayed batches of the v2 stream against the layer before
# (matmul to N = 48, SDPA above): mean step at N <= 16 98 -> 77 ms (the key padding below), N 49-80 564 -> 462 ms,
# N > 80 961 -> 847 ms, 16 < N <= 48 unchanged; the whole stream 1,210-1,260 -> 1,370-1,394 samples/s.
# The CPU's softmax over fewer than 16 values per row runs a scalar path about 13x slower per element (measured:
# 17 ns at 7-15 keys, 1.3 ns at 16); the matmul path pads the keys of shorter samples to 16 (masked, zero values).
SOFTMAX_MIN_KEYS = 16
ADDITIVE_MASK_MAX_BYTES = 64 << 20  # above (large inference batches) the masks stay bool, made additive per chunk
# float32 scores per chunk (4, 16, 64 MiB measured on the v2 stream: 1,367, 1,386, 1,160 samples/s)
ATTENTION_CHUNK_BYTES = 16 << 20


def _chunked_attention(q, k, v, blocked, p):
    """Softmax attention of ``q`` ``(B, nb, H, N, hd)`` over ``k``, ``v`` ``(B, nb, H, Nk, hd)`` (``Nk >= N``, keys
    beyond N are padding). ``blocked``: the additive mask ``(B, nb, 1, N, Nk)`` (0 or -inf) or, for batches whose
    mask would be large, one bool mask per branch ``(B, 1, 1 or N, N)`` (True = may not attend), made additive per
    chunk. Runs over the batch in chunks whose float32 scores fit a CPU core's cache (the whole step 10-20 % faster
    at N >= 60 than one pass)."""
    B, N, Nk = q.shape[0], q.shape[3], k.shape[3]
    step = max(1, ATTENTION_CHUNK_BYTES // (q.shape[1] * q.shape[2] * N * Nk * 4))
    parts = (q, k, v, blocked) if torch.is_tensor(blocked) else (q, k, v, *blocked)
    # split, not slices: a slice's backward writes into a zero tensor of the whole batch
    chunks = [parts] if step >= B else zip(*(t.split(step) for t in parts))
    outs = []
    for qc, kc, vc, *bc in chunks:
        a = (qc @ kc.transpose(-1, -2)).float()  # softmax in float32
        if len(bc) == 1 and bc[0].dtype != torch.bool:  # the additive mask
            a = a + bc[0]
        else:  # bool masks per branch
            a = a.masked_fill_(_stack_blocked(bc, N, Nk), -math.inf)
        outs.append(F.dropout(a.softmax(-1).to(vc.dtype), p, p > 0) @ vc)
    return torch.cat(outs) if len(outs) > 1 else outs[0]


def _stack_blocked(blocked, N: int, Nk: int) -> torch.Tensor:
    """Per-branch bool masks ``(b, 1, 1 or N, N)`` -> ``(b, nb, 1, N, Nk)``, the padded keys blocked."""
    no = torch.stack([m.expand(m.shape[0], 1, N, N) for m in blocked], 1)
    return F.pad(no, (0, Nk - N), value=True) if Nk > N else no


def attention_path(device: torch.device, dropout: float = 0.0) -> str:
    """How :class:`HybridLayer` attends: ``'sdpa'`` (the fused SDPA kernels, a GPU), ``'native'`` (the fused CPU
    kernel of :mod:`lfm.native`, where it builds and no dropout is active) or ``'matmul'`` (the chunked PyTorch
    matmul attention, any other CPU case)."""
    if device.type != "cpu":
        return "sdpa"
    return "native" if dropout == 0 and native.available() else "matmul"


def _attention_masks(valid: torch.Tensor, adjacency: torch.Tensor | None, branches=("global",), *,
                     path: str = "sdpa") -> dict[str, torch.Tensor]:
    """SDPA boolean masks (True = may attend), built once per forward and shared by all layers; for the
    ``'matmul'`` path also ``blocked``: their negations, one per branch in order; for ``'native'`` the kernel's
    ``(keys (B, N), local (B, N, N) or None)``."""
    B, N = valid.shape
    eye = torch.eye(N, dtype=torch.bool, device=valid.device)
    # global: every valid key; a sample without any valid token lets its tokens see each other (finite output)
    keys = valid | ~valid.any(-1, keepdim=True)  # (B, N)
    masks = {"global": keys[:, None, None, :]}  # (B, 1, 1, N), broadcast over heads and queries
    if adjacency is not None:
        local = (adjacency & valid[:, :, None] & valid[:, None, :]) | eye  # (B, N, N)
        masks["local"] = local[:, None]  # (B, 1, N, N)
    if path == "native":
        masks["native"] = (keys, masks["local"][:, 0] if "local" in masks else None)
    if path == "matmul":  # what each branch may not attend, for _chunked_attention: additive unless that is large
        blocked = [~masks[b] for b in branches]
        Nk = max(N, SOFTMAX_MIN_KEYS)
        if B * len(branches) * N * Nk * 4 <= ADDITIVE_MASK_MAX_BYTES:
            blocked = torch.zeros(B, len(branches), 1, N, Nk, device=valid.device).masked_fill_(
                _stack_blocked(blocked, N, Nk), -math.inf)
        masks["blocked"] = blocked
    return masks


def model_flops(cfg: ModelConfig, n_points: int) -> int:
    """Forward FLOPs of one sample of ``n_points`` tokens (matmuls and attention, 2 FLOPs per multiply-add), as
    :class:`LFM` built from ``cfg`` computes them.

    Attention is dense (masked SDPA computes all N x N scores), so its cost is 4 N^2 D per branch whatever the
    graph. A training step (forward + backward) costs about 3x this.
    """
    D, N, r = cfg.d_model, n_points, cfg.mlp_ratio
    nb = 2 if cfg.attention == "hybrid" else 1
    embed = 2 * N * 2 * (D // 2) if cfg.positional == "tpe" else 2 * N * 2 * D + 2 * N * D * D
    per_layer = (
        2 * N * D * 3 * D * nb  # qkv
        + nb * 4 * N * N * D  # QK^T and AV per branch
        + 2 * N * nb * D * D  # output projection of the concat
        + 2 * 2 * N * D * r * D  # MLP
        + (2 * N * D * D if cfg.pe_every_layer else 0)  # the layer's projection of the positional encoding
    )
    decoder = 2 * N * D * D + 2 * N * D * 3
    return embed + cfg.n_layers * per_layer + decoder
