"""lfm.metrics on hand-made cases with known answers, the H3WB protocol on a constructed 133-joint example,
the C3DPO protocol, and PA-MPJPE against a scipy-based oracle."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes

from lfm.metrics import c3dpo_metrics, h3wb_metrics, mpjpe, pa_mpjpe, per_group_mean, rms_radius

from .conftest import apply_similarity, random_similarity


def T(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def test_mpjpe_hand_made():
    gt = T([[[0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    pred = T([[[3, 4, 0], [1, 0, 0], [0, 1, 2]]])  # errors 5, 0, 2
    assert float(mpjpe(pred, gt)) == pytest.approx(7 / 3)
    mask = torch.tensor([[False, True, True]])
    assert float(mpjpe(pred, gt, mask)) == pytest.approx(1.0)
    # root alignment on joint 1 (error 0 there): same as none here
    assert float(mpjpe(pred, gt, align="root", root=1)) == pytest.approx(7 / 3)
    # a pure translation is removed by centroid alignment
    assert float(mpjpe(gt + T([5, -2, 1]), gt, align="root")) == pytest.approx(0.0, abs=1e-12)


def test_scale_alignment_closed_form():
    gt = T([[[1, 0, 0], [-1, 0, 0]]])
    pred = 3 * gt + T([0, 0, 7])
    assert float(mpjpe(pred, gt, align="scale")) == pytest.approx(0.0, abs=1e-12)
    assert float(mpjpe(pred, gt, align="root")) == pytest.approx(2.0)  # centred errors: |3-1| = 2 per joint


def test_empty_sample_is_nan_not_zero():
    gt = torch.zeros(2, 4, 3)
    m = torch.ones(2, 4, dtype=torch.bool)
    m[1] = False
    out = mpjpe(gt + 1, gt, m)
    assert float(out[0]) == pytest.approx(3**0.5) and torch.isnan(out[1])


@pytest.mark.parametrize("allow_reflection", [False, True])
def test_pa_mpjpe_invariant_and_matches_oracle(rng, allow_reflection):
    B, N = 6, 13
    pred, gt = rng.normal(size=(B, N, 3)), rng.normal(size=(B, N, 3))
    base = pa_mpjpe(T(pred), T(gt), allow_reflection=allow_reflection)
    R, s, t = random_similarity(rng, B)
    moved = pa_mpjpe(T(apply_similarity(pred, R, s, t)), T(gt), allow_reflection=allow_reflection)
    torch.testing.assert_close(base, moved, atol=1e-10, rtol=0)
    if allow_reflection:  # O(3) oracle: orthogonal_procrustes, then the least-squares scale
        for b in range(B):
            pc, gc = pred[b] - pred[b].mean(0), gt[b] - gt[b].mean(0)
            Rb, _ = orthogonal_procrustes(pc, gc)
            sb = ((pc @ Rb) * gc).sum() / (pc**2).sum()
            assert float(base[b]) == pytest.approx(np.linalg.norm(sb * pc @ Rb - gc, axis=-1).mean(), rel=1e-10)


def test_aligned_squared_error_never_exceeds_centred(rng):
    pred, gt = T(rng.normal(size=(20, 8, 3))), T(rng.normal(size=(20, 8, 3)))
    from lfm.geometry import similarity_align

    al = similarity_align(pred, gt).aligned
    sq_aligned = (al - gt).square().sum((1, 2))
    c = lambda x: x - x.mean(1, keepdim=True)  # noqa: E731
    assert torch.all(sq_aligned <= (c(pred) - c(gt)).square().sum((1, 2)) + 1e-12)


def test_rms_radius():
    pts = T([[[1, 0, 0], [-1, 0, 0], [0, 3, 0], [0, -3, 0]]])
    assert float(rms_radius(pts)) == pytest.approx(np.sqrt((1 + 1 + 9 + 9) / 4))


def test_h3wb_protocol_on_constructed_example(rng):
    """pred = gt + a per-part constant offset (+ a global shift); every number is known in closed form."""
    gt = rng.normal(size=(2, 133, 3)) * 100
    offset = np.zeros((133, 3))
    offset[0:23] = [10.0, 0, 0]  # body (incl. hips 11, 12 and the nose 0)
    offset[23:91] = [10.0, 30.0, 40.0]  # face: 50 from the pelvis offset... see below
    offset[91:112] = [10.0, 0, 20.0]  # left hand
    offset[112:133] = [10.0, 0, -60.0]  # right hand
    offset[95] += [0, 0, 3.0]  # one left-hand joint moves relative to its wrist
    pred = gt + offset + [7.0, -3.0, 2.0]  # a global shift is removed by pelvis alignment
    m = {k: v.numpy() for k, v in h3wb_metrics(T(pred), T(gt)).items()}
    # pelvis offset = body offset (10, 0, 0): relative offsets are body 0, face (0,30,40) = 50, hands 20 and 60
    assert m["body"] == pytest.approx([0, 0], abs=1e-9)
    assert m["face"] == pytest.approx([50, 50])
    assert m["face_aligned"] == pytest.approx([50, 50])  # nose is a body joint: same offset as the pelvis
    left = (20 * 20 + 23) / 21  # 20 joints at 20, one at 23
    assert m["hand"] == pytest.approx([(left * 21 + 60 * 21) / 42] * 2)
    assert m["hand_aligned"] == pytest.approx([(3 / 21 + 0) / 2] * 2)
    whole = (0 * 23 + 50 * 68 + left * 21 + 60 * 21) / 133
    assert m["whole_body"] == pytest.approx([whole] * 2)
    with pytest.raises(ValueError, match=r"\(B, 133, 3\)"):
        h3wb_metrics(T(pred[:, :17]), T(gt[:, :17]))


def test_c3dpo_protocol_depth_flip_and_per_class():
    gt = T([[[0, 0, 1], [1, 0, 3], [0, 1, 5]], [[0, 0, 0], [2, 0, 0], [0, 2, 0]]])
    pred = gt.clone()
    pred[0, :, 2] = -pred[0, :, 2] + 100  # a depth mirror with a depth offset: the best-of-flip error is 0
    pred[1] = pred[1] + T([0, 0, 9]) + T([[1, 0, 0], [0, 0, 0], [0, 0, 0]])  # one joint off by 1 in x
    out = c3dpo_metrics(pred, gt, categories=["car", "chair"])
    assert float(out["mpjpe_best"][0]) == pytest.approx(0.0, abs=1e-12) and bool(out["flipped"][0])
    assert float(out["mpjpe"][0]) > 1.0
    assert float(out["mpjpe_best"][1]) == pytest.approx(1 / 3)
    assert out["per_class"] == pytest.approx({"car": 0.0, "chair": 1 / 3})
    assert out["mean"] == pytest.approx(1 / 6)


def test_per_group_mean_is_per_class_then_ignores_nan():
    v = torch.tensor([1.0, 3.0, 10.0, float("nan")])
    assert per_group_mean(v, ["a", "a", "b", "b"]) == {"a": 2.0, "b": 10.0}


def test_metric_bad_inputs():
    x = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match="align='bogus'"):
        mpjpe(x, x, align="bogus")
    with pytest.raises(ValueError, match=r"gt has shape \(2, 4, 3\)"):
        mpjpe(x, torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="root=7 is out of range"):
        mpjpe(x, x, align="root", root=7)
    with pytest.raises(ValueError, match="categories has 1 names for 2 samples"):
        c3dpo_metrics(x, x, categories=["a"])


@pytest.mark.parametrize("align", ["none", "root", "scale", "similarity"])
def test_nan_in_hidden_joints_never_leaks(rng, align):
    pred, gt = T(rng.normal(size=(3, 8, 3))), T(rng.normal(size=(3, 8, 3)))
    mask = torch.ones(3, 8, dtype=torch.bool)
    mask[:, 5:] = False
    ref = mpjpe(pred[:, :5], gt[:, :5], align=align)
    pred[:, 6], gt[:, 5], gt[:, 7] = float("nan"), float("inf"), float("nan")
    torch.testing.assert_close(mpjpe(pred, gt, mask, align=align), ref)
    out = c3dpo_metrics(pred, gt, mask)
    torch.testing.assert_close(out["mpjpe_best"], c3dpo_metrics(pred[:, :5], gt[:, :5])["mpjpe_best"])
