"""lfm.model: permutation equivariance, padding invariance, any N, fixed TPE (closed form, no gradient),
attention masks, FLOP count against torch's FlopCounterMode, and that the model can fit a target."""

import math

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lfm.config import ConfigError, ModelConfig
from lfm.graph import edges_to_adjacency, knn_adjacency
from lfm.losses import procrustes_mse
from lfm.model import LFM, model_flops


def batch(B=3, N=17, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, 2, generator=g)
    mask = torch.rand(B, N, generator=g) < 0.85
    mask[:, :3] = True
    adj = knn_adjacency(x, mask, k=3)
    return x.to(device), mask.to(device), adj.to(device)


@pytest.mark.parametrize("attention", ["hybrid", "global", "local"])
@pytest.mark.parametrize("positional", ["tpe", "mlp"])
def test_permutation_equivariance(attention, positional, device):
    torch.manual_seed(0)
    model = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=2, attention=attention, positional=positional)).to(device).eval()
    x, mask, adj = batch(device=device)
    perm = torch.randperm(x.shape[1], device=device)
    with torch.no_grad():
        out = model(x, mask, adj)
        out_p = model(x[:, perm], mask[:, perm], adj[:, perm][:, :, perm])
    err = (out[:, perm] - out_p)[mask[:, perm]].abs().max()
    assert float(err) < 1e-5, f"f(PW) != P f(W): max error {float(err):.2e}"


def test_padded_tokens_never_change_valid_outputs(device):
    torch.manual_seed(0)
    model = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=3)).to(device).eval()
    x, mask, adj = batch(N=12, device=device)
    B, N = mask.shape
    pad = 9
    x_pad = torch.cat([x, 50 * torch.randn(B, pad, 2, device=device)], 1)  # garbage coordinates
    x_pad[:, N:] = float("nan")  # even NaN
    m_pad = torch.cat([mask, torch.zeros(B, pad, dtype=torch.bool, device=device)], 1)
    a_pad = torch.ones(B, N + pad, N + pad, dtype=torch.bool, device=device)  # edges into padding: ignored
    a_pad[:, :N, :N] = adj
    with torch.no_grad():
        out = model(x, mask, adj)
        out_pad = model(x_pad, m_pad, a_pad)
    assert torch.isfinite(out_pad).all()
    err = (out - out_pad[:, :N])[mask].abs().max()
    assert float(err) < 1e-5, f"padding changed a valid output by {float(err):.2e}"


@pytest.mark.parametrize("N", [3, 5, 17, 64, 133, 140])
def test_any_number_of_keypoints(N):
    model = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=2)).eval()
    x, mask, adj = batch(B=2, N=N)
    with torch.no_grad():
        out = model(x, mask, adj)
    assert out.shape == (2, N, 3) and torch.isfinite(out).all()


def test_all_masked_sample_is_finite():
    model = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=2))
    x, mask, adj = batch(B=2, N=6)
    mask[1] = False
    out = model(x, mask, adj)
    assert torch.isfinite(out).all()
    procrustes_mse(out, torch.randn(2, 6, 3), mask).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("attention", ["local", "global"])
def test_local_attention_sees_only_graph_neighbours(attention):
    """Graph 0-1-2 and 3-4-5 (two components). Moving joints 4 and 5 by +d and -d keeps the normalisation
    (centroid and max |coordinate|, held by joint 0) unchanged, so under attention='local' joints 0-2 must not
    change at all; under attention='global' they must."""
    torch.manual_seed(0)
    model = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=3, attention=attention)).eval()
    x = torch.rand(1, 6, 2) - 0.5
    x[0, 0] = torch.tensor([10.0, 0.0])
    y = x.clone()
    d = torch.tensor([0.2, -0.3])
    y[0, 4] += d
    y[0, 5] -= d
    adj = edges_to_adjacency([[0, 1], [1, 2], [3, 4], [4, 5]], 6, batch=1)
    with torch.no_grad():
        a, b = model(x, adjacency=adj), model(y, adjacency=adj)
    change = float((a[0, :3] - b[0, :3]).abs().max())
    if attention == "local":
        assert change < 1e-6, change
    else:
        assert change > 1e-4, change


def test_tpe_is_the_closed_form_and_never_trained():
    torch.manual_seed(0)
    model = LFM(ModelConfig(d_model=16, n_heads=2, n_layers=1, rff_sigma=2.0, tpe_seed=3))
    tpe = model.embed
    assert {n for n, _ in model.named_buffers()} >= {"embed.omega", "embed.phase"}
    assert not any(n.startswith("embed.") for n, _ in model.named_parameters())
    assert not tpe.omega.requires_grad and not tpe.phase.requires_grad
    # closed form of Eq. 4, in numpy from the stored buffers
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 5, 2))
    arg = 2 * np.pi * x @ tpe.omega.numpy() + tpe.phase.numpy()
    want = np.sqrt(2 / 16) * np.concatenate([np.sin(arg), np.cos(arg)], -1)
    np.testing.assert_allclose(tpe(torch.as_tensor(x, dtype=torch.float32)).numpy(), want, atol=1e-5)
    # the same seed gives the same features (reproducible checkpoints), sigma scales the frequencies
    again = LFM(ModelConfig(d_model=16, n_heads=2, n_layers=1, rff_sigma=2.0, tpe_seed=3)).embed
    torch.testing.assert_close(again.omega, tpe.omega)
    wide = LFM(ModelConfig(d_model=4096, n_heads=1, n_layers=1, rff_sigma=2.0)).embed.omega
    assert float(wide.std()) == pytest.approx(2.0, rel=0.05)
    # a training step leaves the buffers alone
    before = tpe.omega.clone()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    xb, mb, ab = batch(B=2, N=5)
    procrustes_mse(model(xb, mb, ab), torch.randn(2, 5, 3), mb).backward()
    opt.step()
    torch.testing.assert_close(tpe.omega, before)
    assert "embed.omega" in model.state_dict()


def test_mlp_positional_is_learned():
    model = LFM(ModelConfig(d_model=16, n_heads=2, n_layers=1, positional="mlp"))
    assert any(n.startswith("embed.") for n, _ in model.named_parameters())


@pytest.mark.parametrize("attention", ["hybrid", "global", "local"])
@pytest.mark.parametrize("positional", ["tpe", "mlp"])
@pytest.mark.parametrize("d_model,N,pe_every_layer", [(64, 17, False), (32, 133, False), (32, 20, True)])
def test_model_flops_matches_flop_counter(attention, positional, d_model, N, pe_every_layer, monkeypatch):
    from lfm import model as M

    monkeypatch.setattr(M, "attention_path", lambda device, dropout=0.0: "matmul")  # ctypes calls count no FLOPs
    cfg = ModelConfig(d_model=d_model, n_heads=4, n_layers=2, attention=attention, positional=positional,
                      pe_every_layer=pe_every_layer)
    model = LFM(cfg).eval()
    x, mask, adj = batch(B=2, N=N)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model(x, mask, adj)
    want = model_flops(cfg, N)
    assert fc.get_total_flops() / 2 == want


def test_model_can_fit_a_target():
    """A few hundred Adam steps on one batch must reduce the Procrustes loss by 10x: the model really learns."""
    torch.manual_seed(0)
    model = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=2))
    x, mask, adj = batch(B=4, N=10, seed=1)
    gt = torch.randn(4, 10, 3, generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss = procrustes_mse(model(x, mask, adj), gt, mask)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 10, (first, float(loss.detach()))


def test_bad_model_inputs():
    model = LFM(ModelConfig(d_model=16, n_heads=2, n_layers=1))
    x, mask, adj = batch(B=2, N=5)
    with pytest.raises(ValueError, match=r"points2d has shape \(2, 5, 3\)"):
        model(torch.zeros(2, 5, 3), mask, adj)
    with pytest.raises(ValueError, match=r"mask has shape \(2, 4\)"):
        model(x, mask[:, :4], adj)
    with pytest.raises(ValueError, match=r"adjacency has shape \(2, 4, 4\)"):
        model(x, mask, adj[:, :4, :4])
    with pytest.raises(ValueError, match="needs an adjacency"):
        model(x, mask)
    with pytest.raises(ValueError, match="ModelConfig.attention = .both."):
        LFM(ModelConfig(attention="both"))
    with pytest.raises(ValueError, match="divisible"):
        LFM(ModelConfig(d_model=30, n_heads=4))
    with pytest.raises(ValueError, match=r"outside 0..4"):
        edges_to_adjacency([[0, 5]], 5)


def test_config_validation_and_from_config():
    cfg = ModelConfig(d_model=32, n_heads=4, n_layers=2)
    assert isinstance(LFM.from_config(cfg), LFM)
    with pytest.raises(ConfigError, match=r"ModelConfig.d_model = 1.5 must be of type int"):
        ModelConfig(d_model=1.5)
    with pytest.raises(ConfigError, match=r"ModelConfig.attention = 'both' must be one of"):
        ModelConfig(attention="both")
    with pytest.raises(ConfigError, match=r"ModelConfig.rff_sigma = -1.0 must be > 0"):
        ModelConfig(rff_sigma=-1.0)
    from lfm.config import TrainConfig, from_params

    with pytest.raises(ConfigError, match=r"TrainConfig.lr = 0.0 must be > 0"):
        TrainConfig(lr=0.0)
    with pytest.raises(ConfigError, match=r"TrainConfig.plateau_factor = 1.0 must be < 1"):
        TrainConfig(plateau_factor=1.0)
    with pytest.raises(TypeError, match="ModelConfig"):
        LFM({"d_model": 32})

    cfg = from_params({"d_model": 128, "rff_sigma": 2, "unrelated": 1}, ModelConfig)
    assert cfg.d_model == 128 and cfg.rff_sigma == 2.0 and isinstance(cfg.rff_sigma, float)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_bf16_autocast_matches_float32():
    torch.manual_seed(0)
    model = LFM(ModelConfig(d_model=64, n_heads=4, n_layers=2)).cuda().eval()
    x, mask, adj = batch(B=8, N=33, device="cuda")
    with torch.no_grad():
        ref = model(x, mask, adj)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x, mask, adj)
    assert out.dtype == torch.float32
    rel = float((out - ref)[mask].norm() / ref[mask].norm())
    assert rel < 0.05, rel


def test_pe_every_layer_starts_as_the_input_only_model_and_is_used():
    """Zero-initialised projections: the same output as without them; after a weight change, a different one."""
    torch.manual_seed(0)
    base = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=2)).eval()
    torch.manual_seed(0)
    every = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=2, pe_every_layer=True)).eval()
    every.load_state_dict(base.state_dict(), strict=False)
    x, mask, adj = batch(B=2, N=9)
    with torch.no_grad():
        torch.testing.assert_close(every(x, mask, adj), base(x, mask, adj))
        every.pe_proj[1].weight.normal_()
        assert (every(x, mask, adj) - base(x, mask, adj)).abs().max() > 1e-3


@pytest.mark.parametrize("N", [9, 21, 60])  # on a CPU: bf16 linears and the CPU's attention path (model.attention_path)
def test_bf16_autocast_keeps_the_shipped_model_accurate(N):
    """The shipped v2 model writes depths with a large constant offset (|z| ~ 23 in normalised units; the loss is
    translation-free): a bf16 decoder rounded them by ~0.1, an error of 10 % of the body size. The decoder runs in
    float32 under autocast, so the centred bf16 output stays within 1 % of the float32 one."""
    from lfm import checkpoint as ckpt

    model, _ = ckpt.load_model()
    x, mask, adj = batch(B=32, N=N, seed=3)
    mask[:] = True
    with torch.no_grad():
        ref = model(x, mask, adj)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, mask, adj)
    centred = lambda y: y - y.mean(1, keepdim=True)  # noqa: E731
    assert out.dtype == torch.float32
    rel = float((centred(out) - centred(ref)).norm() / centred(ref).norm())
    assert rel < 0.01, rel


def _old_layer_forward(layer, x, masks):
    """HybridLayer.forward before the unbind / matmul-attention rewrite (commit aed1417): the oracle."""
    import torch.nn.functional as F

    B, N, D = x.shape
    H, nb = layer.n_heads, len(layer.branches)
    qkv = layer.qkv(layer.ln1(x)).view(B, N, nb, 3, H, D // H).permute(2, 3, 0, 4, 1, 5)  # (nb, 3, B, H, N, hd)
    outs = [F.scaled_dot_product_attention(qkv[i, 0], qkv[i, 1], qkv[i, 2], attn_mask=masks[name])
            for i, name in enumerate(layer.branches)]
    u = torch.cat([o.transpose(1, 2).reshape(B, N, D) for o in outs], dim=-1)
    x = x + layer.proj(u)
    return x + layer.mlp(layer.ln2(x))


@pytest.mark.parametrize("attention", ["hybrid", "global", "local"])
@pytest.mark.parametrize("N", [9, 17, 100])  # keys padded to 16 (N = 9) or not
@pytest.mark.parametrize("path", ["native", "matmul", "matmul-chunks", "bool-chunks", "sdpa"])
def test_layer_equals_the_old_implementation(attention, N, path, monkeypatch):
    """The CPU paths (the fused kernel of lfm.native where it builds; the matmul attention with an additive mask,
    over 2-sample chunks, with bool masks made additive per chunk as for large inference batches) and the GPU path
    (SDPA) against the old layer, outputs and gradients."""
    from lfm import model as M, native

    if path == "native" and not native.available():
        pytest.skip(f"no fused CPU attention: {native.why_unavailable()}")
    kind = "matmul" if path.endswith("chunks") else path
    monkeypatch.setattr(M, "attention_path", lambda device, dropout=0.0: kind)
    if path.endswith("chunks"):  # scores of 2 samples per chunk: chunks of 2, 2, 1
        monkeypatch.setattr(M, "ATTENTION_CHUNK_BYTES", 2 * 2 * 4 * N * max(N, M.SOFTMAX_MIN_KEYS) * 4)
    if path == "bool-chunks":
        monkeypatch.setattr(M, "ADDITIVE_MASK_MAX_BYTES", 0)
    torch.manual_seed(0)
    m = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=2, attention=attention, pe_every_layer=True))
    for lin in m.pe_proj:
        torch.nn.init.normal_(lin.weight, std=0.1)
    x = torch.randn(5, N, 2)
    mask = torch.rand(5, N) < 0.8
    adj = knn_adjacency(x, mask, k=3)
    new = m(x, mask, adj)
    (new**2).sum().backward()
    g_new = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    monkeypatch.setattr(M.HybridLayer, "forward", _old_layer_forward)
    old = m(x, mask, adj)
    (old**2).sum().backward()
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-5)
    for a, b in zip(g_new, (p.grad for p in m.parameters())):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["lfm_open_v1.pt", "lfm_open_v2.pt", "lfm_open_v3.pt"])
def test_shipped_checkpoints_give_the_old_outputs(name, monkeypatch):
    from pathlib import Path

    from lfm import checkpoint as ckpt
    from lfm import model as M

    path = Path(__file__).resolve().parents[1] / "lfm" / "checkpoints" / name
    model, _ = ckpt.load_model(path)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 26, 2, generator=g)
    mask = torch.rand(8, 26, generator=g) < 0.85
    adj = knn_adjacency(x, mask, k=3)
    with torch.no_grad():
        new = model(x, mask, adj)
        monkeypatch.setattr(M.HybridLayer, "forward", _old_layer_forward)
        old = model(x, mask, adj)
    torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-5)
