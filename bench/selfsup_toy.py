"""Which 2D-only objective recovers depth? A toy for issue 25 (lfm.selfsup), measured, not a test.

A rigid shape of 12 random points with a fixed skeleton (a chain and 3 chords), seen in uniformly random SO(3)
orthographic views; a small LFM (d = 32, 3 hybrid layers, xy residual) trained from scratch, batch 64, Adam 2e-3.
Score: PA-MPJPE / RMS radius (reflection allowed, ``lfm.evaluate.score``) of 300 held-out views divided by the flat
guess's (< 1 beats flat). Each objective trains for ``--steps`` steps; 3D supervision (``sup``) is the ceiling. Writes
results/bench/selfsup_toy.json (or ``--out``). Run: ``python bench/selfsup_toy.py [--steps 1000] [--only sup,frame]``.

Objectives (every one adds the reprojection term; the camera-fit ones use lfm.selfsup's fitted orthographic
camera, the ``frame`` ones read the model's x, y as the image and its z as depth):

* ``c3dpo``: lfm.selfsup.objective_2d (self-consistency with the first lift held fixed);
* ``live``: the same with gradients through both lifts;
* ``cycle``: the relift, turned back and projected, must give the input (Chen et al. 2019), plus 3D agreement;
* ``pair``: lifts of two real views agree up to a similarity (true for a rigid body only);
* ``frame`` / ``frame_fixed``: no camera fit; consistency of the turned lift in the input's units.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from common import write

N, BATCH = 12, 64


def setup(seed: int = 0):
    from lfm.config import ModelConfig
    from lfm.graph import edges_to_adjacency
    from lfm.model import LFM
    from lfm.selfsup import random_rotations

    g = torch.Generator().manual_seed(seed)
    shape = torch.randn(N, 3, generator=g)
    shape -= shape.mean(0)
    shape /= shape.square().sum(1).mean().sqrt()
    edges = torch.tensor([[i, i + 1] for i in range(N - 1)] + [[0, 5], [3, 9], [2, 11]])

    def views(n, s):
        Y = shape @ random_rotations(n, torch.Generator().manual_seed(s))
        return Y[..., :2].contiguous(), Y

    torch.manual_seed(seed)
    model = LFM(ModelConfig(d_model=32, n_heads=4, n_layers=3, attention="hybrid", xy_residual=True))
    return shape, edges_to_adjacency(edges, N), views, model


def camera_live(pred, p, m):
    """``pred`` in the camera frame of its best orthographic camera onto ``p`` (fitted on detached values, applied
    to the live prediction), centred; and ``p`` at unit RMS radius."""
    from lfm.geometry import fit_orthographic_camera
    from lfm.selfsup import unit_radius

    pu = unit_radius(p, m)
    fit = fit_orthographic_camera(pu, pred.detach(), m, n_iter=10)
    cam = fit.s[:, None, None] * (pred @ fit.R) + fit.t[:, None, :]
    return cam - cam.mean(1, keepdim=True), pu - pu.mean(1, keepdim=True)


def loss_of(name, model, adj, shape, p, mask, gen):
    from lfm.losses import procrustes_mse
    from lfm.selfsup import objective_2d, random_rotations

    if name == "sup":
        Y = shape @ random_rotations(len(p), gen)
        return procrustes_mse(model(Y[..., :2].contiguous(), mask, adj), Y, mask, allow_reflection=True)
    if name == "c3dpo":
        return objective_2d(lambda a, m, A: model(a, m, adj), p, mask, None, np.arange(len(p)),
                            weights={"multiview": 0}, generator=gen)[0]
    Q = random_rotations(len(p), gen)
    if name.startswith("frame"):
        out, norm = model(p, mask, adj, return_norm=True)
        rep = (out[..., :2] - norm.points).square().sum(-1).mean()
        YQ = (out - out.mean(1, keepdim=True)) @ Q
        target = YQ if name == "frame" else YQ.detach()
        out2, norm2 = model(YQ[..., :2].contiguous(), mask, adj, return_norm=True)
        Y2 = out2 * norm2.scale[:, None, None]
        return rep + ((Y2 - Y2.mean(1, keepdim=True)) - (target - target.mean(1, keepdim=True))).square().sum(-1).mean()
    y, pu = camera_live(model(p, mask, adj), p, mask)
    rep = (y[..., :2] - pu).square().sum(-1).mean()
    if name == "pair":
        return rep + procrustes_mse(y, y.roll(1, 0).detach(), mask)
    yQ = y @ Q
    y2 = model(yQ[..., :2].contiguous(), mask, adj)
    if name == "live":
        return rep + procrustes_mse(y2, yQ, mask)
    y2c, _ = camera_live(y2, yQ[..., :2], mask)  # cycle
    back = y2c @ Q.transpose(1, 2)
    return rep + (back[..., :2] - y[..., :2]).square().sum(-1).mean() + (y2c - yQ).square().sum(-1).mean()


def run(name: str, steps: int) -> dict:
    from lfm.losses import procrustes_mse

    shape, adj, views, model = setup()
    train2d, _ = views(4000, 1)
    test2d, test3d = views(300, 2)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    mask = torch.ones(BATCH, N, dtype=torch.bool)
    gen = torch.Generator().manual_seed(5)

    def ratio():  # as every table of the bundle scores (lfm.evaluate.score)
        from lfm.evaluate import flat_guess, score

        model.eval()
        with torch.no_grad():
            pred = model(test2d, None, adj).numpy()
        model.train()
        vis = np.ones(test2d.shape[:2], bool)
        err = lambda y: float(score(y, test3d.numpy(), vis)["refl"].mean())  # noqa: E731
        return err(pred) / err(flat_guess(test2d.numpy()))

    curve, t0 = [], time.time()
    for step in range(steps + 1):
        if step % 100 == 0:
            curve.append({"step": step, "ratio_to_flat": ratio()})
        if step == steps:
            break
        p = train2d[torch.randint(0, len(train2d), (BATCH,), generator=gen)]
        loss = loss_of(name, model, adj, shape, p, mask, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"{name}: {curve[-1]['ratio_to_flat']:.3f} x flat after {steps} steps ({time.time() - t0:.0f} s)", flush=True)
    return {"final_ratio_to_flat": curve[-1]["ratio_to_flat"], "curve": curve}


NAMES = ("sup", "c3dpo", "live", "cycle", "pair", "frame", "frame_fixed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--only", default=",".join(NAMES), help="comma-separated objectives")
    ap.add_argument("--out", help="output JSON (default results/bench/selfsup_toy.json)")
    args = ap.parse_args()
    unknown = set(args.only.split(",")) - set(NAMES)
    if unknown:
        ap.error(f"--only: unknown objectives {sorted(unknown)}; choose from {', '.join(NAMES)}")
    torch.set_num_threads(1)
    rows = {n: run(n, args.steps) for n in args.only.split(",")}
    body = {"objectives": rows, "steps": args.steps, "batch": BATCH, "keypoints": N,
                          "protocol": "rigid 12-point shape, uniform SO(3) orthographic views; PA-MPJPE with "
                                      "reflection over 300 held-out views / the flat guess's; LFM d=32, 3 hybrid "
                                      "layers, from scratch, Adam 2e-3, seed 0"}
    if args.out:
        from lfm.results import provenance, write_json

        write_json(Path(args.out), {"provenance": provenance(), **body})
    else:
        write("selfsup_toy", body)


if __name__ == "__main__":
    main()
