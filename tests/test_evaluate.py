"""lfm.evaluate against closed forms: a perfect prediction scores 0, the flat guess scores ratio 1, held-out sets stay
outside the in-distribution means, det = +1 is never below reflection-allowed, graphs come from training frames."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lfm import evaluate
from lfm.data.benchmark import Split
from lfm.data.schema import CategorySet, knn_edges

from .test_data_open import random_articulated_motion


class Replay(torch.nn.Module):
    """A stand-in model that returns given 3D (in order) and records the graphs it was given."""

    def __init__(self, out: np.ndarray):
        super().__init__()
        self.out, self.at, self.adjacency = torch.as_tensor(out, dtype=torch.float32), 0, []

    def forward(self, points2d, mask, adjacency=None):
        B = points2d.shape[0]
        self.adjacency.append(None if adjacency is None else adjacency.clone())
        y = self.out[self.at:self.at + B]
        self.at += B
        return y


def views(rng, F=40, N=12):
    P, _ = random_articulated_motion(rng, n_joints=N, frames=F)
    R = Rotation.random(F, random_state=1).as_matrix()
    gt = np.einsum("fnj,fij->fni", P - P.mean(1, keepdims=True), R)  # rotated, centred
    return gt[..., :2].astype(np.float32), gt.astype(np.float32), np.ones((F, N), bool)


def test_perfect_prediction_scores_zero_and_flat_scores_ratio_one(rng):
    p2, gt, vis = views(rng)
    cs = CategorySet("toy", "toy12", gt, vis, knn_edges(gt[0], 2), np.zeros(len(gt)), "m", "", "")
    perfect = evaluate.evaluate_category(Replay(3.0 * gt), cs, p2, gt, vis, graph="skeleton")
    assert perfect["model_det"] < 1e-6 and perfect["model_refl"] < 1e-6 and perfect["ratio_refl"] < 1e-5
    flat = evaluate.evaluate_category(Replay(evaluate.flat_guess(p2) * 0.5), cs, p2, gt, vis, graph="skeleton")
    assert flat["ratio_det"] == pytest.approx(1.0, abs=1e-6) and flat["ratio_refl"] == pytest.approx(1.0, abs=1e-6)
    assert flat["flat_refl"] > 0.05  # the toy has depth: flat is a real error
    mirrored = evaluate.evaluate_category(Replay(gt * np.array([1, 1, -1.0], np.float32)), cs, p2, gt, vis)
    assert mirrored["model_refl"] < 1e-6 < 0.05 < mirrored["model_det"]  # reflection forgives the depth mirror
    worse = evaluate.evaluate_category(Replay(np.random.default_rng(0).normal(size=gt.shape)), cs, p2, gt, vis)
    assert worse["ratio_refl"] > 1.0  # noise is worse than flat: the ratio is model / flat, not its inverse


def test_det_error_is_never_below_the_reflection_allowed_one(rng):
    """O(3) contains SO(3): the least-squares residual with det = +1 is never below the reflection-allowed one (per
    frame). PA-MPJPE averages norms, not squares, so per frame it may dip below by a little (about 2 % of random
    frames here); over many frames the det = +1 mean stays above."""
    from lfm.geometry import similarity_align

    gt = rng.normal(size=(400, 9, 3))
    pred = gt + rng.normal(scale=rng.uniform(0.05, 2.0, size=(400, 1, 1)), size=gt.shape)
    P, G = torch.as_tensor(pred), torch.as_tensor(gt)
    rms = {r: ((similarity_align(P, G, allow_reflection=r).aligned - G) ** 2).sum(-1).mean(-1)
           for r in (False, True)}
    assert (rms[False] >= rms[True] - 1e-12).all() and (rms[False] > rms[True] + 1e-6).any()
    s = evaluate.score(pred, gt, np.ones((400, 9), bool))
    assert s["det"].mean() > s["refl"].mean() and (s["det"] >= s["refl"] - 1e-9).mean() > 0.9


def test_held_out_sets_stay_outside_the_in_distribution_mean():
    rows = [{"category": c, "role": role, "protocol": "realistic", "graph": "trained", "model_det": v, "model_refl": v,
             "flat_det": 1.0, "flat_refl": 1.0, "ratio_det": v, "ratio_refl": v}
            for c, role, v in (("a", "train", 0.2), ("b", "train", 0.4), ("c", "ood", 5.0), ("d", "rig_transfer", 3.0))]
    means = {m["role"]: m for m in evaluate.summarize(rows)}
    assert means["train"]["ratio_refl"] == pytest.approx(0.3) and means["train"]["sets"] == 2
    assert means["train"]["max_ratio_refl"] == pytest.approx(0.4) and means["train"]["worst_set"] == "b"
    assert means["ood"]["ratio_refl"] == pytest.approx(5.0) and means["rig_transfer"]["ratio_refl"] == 3.0


def test_graphs_are_built_from_training_frames_never_from_the_evaluated_ones(rng):
    P, edges = random_articulated_motion(rng, n_joints=10, frames=60)
    train_cs = CategorySet("toy", "t10", P[:40], np.ones((40, 10), bool), edges, np.zeros(40), "m", "", "")
    # test frames of another body shape: its mean-shape kNN differs from the training one
    Q = P[40:] * rng.uniform(0.2, 3.0, size=(1, 10, 1))
    test_cs = CategorySet("toy", "t10", Q, np.ones((20, 10), bool), edges, np.zeros(20), "m", "", "")
    want = evaluate.eval_adjacency("mean_knn", train_cs)
    assert (want != evaluate.eval_adjacency("mean_knn", test_cs)).any(), "toy too easy: graphs coincide"
    p2 = Q[..., :2].astype(np.float32)
    model = Replay(np.zeros_like(Q))
    evaluate.evaluate_category(model, test_cs, p2, Q, test_cs.visible, graph="mean_knn", graph_set=train_cs)
    assert torch.equal(model.adjacency[0][0] if model.adjacency[0].dim() == 3 else model.adjacency[0],
                       torch.as_tensor(want))
    mst = evaluate.eval_adjacency("motion_mst", train_cs)
    assert mst.sum() == 2 * len(edges)  # the motion MST of rigid bones recovers the tree (9 edges, both ways)


def test_evaluate_benchmark_uses_the_training_split_for_graphs(monkeypatch, rng):
    """The whole path: evaluate_benchmark gives evaluate_category the split's *training* frames."""
    from lfm.data import benchmark

    P, edges = random_articulated_motion(rng, n_joints=8, frames=30)
    mk = lambda X: CategorySet("dog", "mann_dog27", X, np.ones(X.shape[:2], bool), edges, np.zeros(len(X)), "m", "", "")  # noqa: E731
    sp = Split("dog", mk(P[:20]), mk(P[20:25]), mk(P[25:]), "toy")
    seen = []
    real = evaluate.evaluate_category

    def spy(*a, **kw):
        seen.append(kw["graph_set"])
        return real(*a, **kw)

    monkeypatch.setattr(evaluate, "evaluate_category", spy)
    monkeypatch.setattr(benchmark, "test_views", lambda split, proto: __import__("lfm").data.synthesize_views(
        split.test.points3d, split.test.visible, seed=0))
    ck = {"train_config": {"graph": "mean_knn", "categories": ["dog"]}, "model_config": {"attention": "hybrid"}}
    res = evaluate.evaluate_benchmark(Replay(np.zeros((100, 8, 3))), ck, {"dog": sp}, protocols=("realistic",),
                                      real2d=False)
    assert seen and all(s is sp.train for s in seen)
    assert res["rows"][0]["role"] == "train" and "realistic" in res["mean"]


def test_targets_report_missing_protocols_as_not_evaluated():
    res = {"means": [{"role": "train", "protocol": "realistic", "graph": "trained", "ratio_refl": 0.25,
                      "max_ratio_refl": 0.9, "model_det": 0.11, "model_refl": 0.1}]}
    t = {r["target"]: r for r in evaluate.targets(res)}
    assert t["in-distribution mean"]["met"] is True and t["in-distribution worst set"]["met"] is False
    assert t["leave-category-out mean"]["value"] is None and t["leave-category-out mean"]["met"] is None
    assert t["depth sign: det=+1 vs reflection allowed"]["value"] == pytest.approx(0.1)
    assert t["SO(3) orthographic views (in distribution)"]["met"] is None
    res["means"].append({"role": "train", "protocol": "so3_ortho", "graph": "trained", "ratio_refl": 0.86})
    t = {r["target"]: r for r in evaluate.targets(res)}
    assert t["SO(3) orthographic views (in distribution)"]["value"] == 0.86
    assert t["SO(3) orthographic views (in distribution)"]["met"] is False  # bound 0.85


def test_score_divides_by_the_truths_radius():
    """A known error on a shape of RMS radius 2: PA-MPJPE 0.3 in units, 0.15 in radii."""
    gt = np.zeros((1, 4, 3))
    gt[0, :, 0] = [-2.0, 2.0, 0, 0]
    gt[0, :, 1] = [0, 0, -2.0, 2.0]  # radius 2
    pred = gt.copy()
    pred[0, :, 2] = [0.3, 0.3, -0.3, -0.3]  # out of plane: no similarity removes it
    s = evaluate.score(pred, gt, np.ones((1, 4), bool))
    from lfm.geometry import similarity_align

    al = similarity_align(torch.as_tensor(pred), torch.as_tensor(gt)).aligned
    want = float(np.linalg.norm((al - torch.as_tensor(gt)).numpy(), axis=-1).mean())
    assert want > 0.1
    assert s["mpjpe_units"][0] == pytest.approx(want, rel=1e-6) and s["det"][0] == pytest.approx(want / 2, rel=1e-6)


def test_roles_graphs_and_predictions_of_evaluate_benchmark(monkeypatch, rng):
    """An in-distribution set the checkpoint did not train on is 'untrained' (not in the train mean); 'mix' is
    scored with the rig skeleton; predictions are kept for the first graph; 'all' means every benchmark set."""
    from lfm.data import benchmark

    P, edges = random_articulated_motion(rng, n_joints=8, frames=30)
    mk = lambda X, n: CategorySet(n, "r", X, np.ones(X.shape[:2], bool), edges, np.zeros(len(X)), "m", "", "")  # noqa: E731
    splits = {n: Split(n, mk(P[:20], n), mk(P[20:25], n), mk(P[25:], n), "toy") for n in ("dog", "chair")}
    monkeypatch.setattr(benchmark, "test_views", lambda split, proto: __import__("lfm").data.synthesize_views(
        split.test.points3d, split.test.visible, seed=0))
    ck = {"train_config": {"graph": "mix", "categories": ["dog"]}, "model_config": {"attention": "hybrid"}}
    model = Replay(np.zeros((1000, 8, 3)))
    res = evaluate.evaluate_benchmark(model, ck, splits, protocols=("realistic",), graphs=("trained", "input_knn"),
                                      real2d=False, keep_predictions=True)
    roles = {(r["category"], r["graph"]): (r["role"], r["ood"]) for r in res["rows"]}
    assert roles[("dog", "trained")] == ("train", False) and roles[("chair", "trained")] == ("untrained", True)
    assert {m["role"] for m in res["means"]} == {"train", "untrained"}
    assert res["mean"]["realistic"]["ratio_refl"] == pytest.approx(
        next(r["ratio_refl"] for r in res["rows"] if r["category"] == "dog" and r["graph"] == "trained"))
    skeleton = torch.as_tensor(evaluate.eval_adjacency("skeleton", splits["dog"].train))
    assert torch.equal(model.adjacency[0][0] if model.adjacency[0].dim() == 3 else model.adjacency[0], skeleton)
    assert set(res["predictions"]) == {("dog", "realistic"), ("chair", "realistic")}
    d = res["predictions"][("dog", "realistic")]
    assert d["outputs_3d"].shape == d["labels_3d"].shape == (5, 8, 3) and d["masks"].all()
    assert evaluate.eval_adjacency("input_knn", splits["dog"].train) == "input_knn"
    assert evaluate.trained_on({"train_config": {"categories": ["all"]}}) == set(benchmark.CATEGORIES)


def test_targets_with_every_protocol_present():
    base = {"protocol": "realistic", "max_ratio_refl": 0.5}
    res = {"means": [
        base | {"role": "train", "graph": "trained", "ratio_refl": 0.25, "model_det": 0.104, "model_refl": 0.1},
        base | {"role": "train", "graph": "skeleton", "ratio_refl": 0.25, "model_det": 0.1, "model_refl": 0.1},
        base | {"role": "train", "graph": "motion_mst", "ratio_refl": 0.3, "model_det": 0.1, "model_refl": 0.105},
        base | {"role": "train", "graph": "mean_knn", "ratio_refl": 0.3, "model_det": 0.1, "model_refl": 0.12},
        base | {"role": "train", "graph": "input_knn", "ratio_refl": 0.85, "model_det": 0.1, "model_refl": 0.1},
        base | {"role": "ood", "graph": "trained", "ratio_refl": 0.59, "model_det": 0.1, "model_refl": 0.1},
        base | {"role": "rig_transfer", "graph": "trained", "ratio_refl": 0.66, "model_det": 0.1, "model_refl": 0.1},
    ]}
    t = {r["target"]: r for r in evaluate.targets(res)}
    assert t["skeleton swap: motion_mst vs rig skeleton"]["value"] == pytest.approx(0.05)
    assert t["skeleton swap: motion_mst vs rig skeleton"]["met"] is True
    assert t["skeleton swap: mean_knn vs rig skeleton"]["value"] == pytest.approx(0.2)
    assert t["skeleton swap: mean_knn vs rig skeleton"]["met"] is False
    assert t["depth sign: det=+1 vs reflection allowed"]["met"] is True  # +4 %
    assert t["leave-category-out mean"]["met"] is True and t["rig transfer mean"]["met"] is False
    assert t["no skeleton (in distribution)"]["met"] is False
