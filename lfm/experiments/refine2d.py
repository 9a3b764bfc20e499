"""What 2D alone adds on held-out categories: the shipped model's lifts against the same lifts refined together from
their 2D (:func:`lfm.selfsup.refine_2d`), on every held-out set of the benchmark. No 3D of these sets is used
except to score. Run: ``python -m lfm.experiments.refine2d`` -> ``results/refine_2d.json``.

Protocol: each held-out set's fixed test views (``realistic``: upright perspective cameras, seeded per set), lifted
by the checkpoint with the set's skeleton; the refinement sees the 2D and the lifts of all test views of the set
(a user's whole file); PA-MPJPE with reflection allowed, divided by the flat guess's, mean over views, then over
sets. The shape modes (``lfm.selfsup.DEFAULT_MODES``) and the ridge were chosen on the first 8 sets of
:data:`lfm.data.benchmark.OOD` (``TUNED_ON``); the other sets are the check.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import benchmark
from ..losses import procrustes_mse
from ..lifting import DEFAULT_CHECKPOINT, lift, load_model
from ..paths import root
from ..results import provenance, write_json
from ..selfsup import DEFAULT_MODES, refine_2d

TUNED_ON = benchmark.OOD[:8]


def _ratio(pred, views) -> float:
    m = torch.as_tensor(views.visible)
    gt = torch.as_tensor(views.points3d, dtype=torch.float32)
    err = lambda y: float(procrustes_mse(torch.as_tensor(y, dtype=torch.float32), gt, m,  # noqa: E731
                                         allow_reflection=True).sqrt())
    return err(pred) / err(np.pad(views.points2d, ((0, 0), (0, 0), (0, 1))))


def run(sets=benchmark.OOD, modes=(0, DEFAULT_MODES), checkpoint=None, out=None, log=print) -> dict:
    model, _ = load_model(checkpoint)
    rows = []
    for name in sets:
        split = benchmark.split_category(name)
        views = benchmark.test_views(split)
        lifted = lift(views.points2d, views.visible, edges=split.test.edges, model=model)
        row = {"set": name, "views": int(len(views.points2d)), "keypoints": int(views.points2d.shape[1]),
               "tuned_on": name in TUNED_ON, "lift": _ratio(lifted.camera, views)}
        for k in modes:
            row[f"refined_{k}_modes"] = _ratio(refine_2d(views.points2d, views.visible, lifted.camera,
                                                         n_basis=k).camera, views)
        rows.append(row)
        log(f"{name:16s} lift {row['lift']:.3f}  " + "  ".join(f"{k} modes {row[f'refined_{k}_modes']:.3f}"
                                                              for k in modes))
    summary = {}
    for part, keep in (("all", lambda r: True), ("tuned_on", lambda r: r["tuned_on"]),
                       ("check", lambda r: not r["tuned_on"])):
        sel = [r for r in rows if keep(r)]
        summary[part] = {"sets": len(sel), "lift": float(np.mean([r["lift"] for r in sel])),
                         **{f"refined_{k}_modes": float(np.mean([r[f"refined_{k}_modes"] for r in sel]))
                            for k in modes},
                         **{f"refined_{k}_modes_worse_on": int(sum(r[f"refined_{k}_modes"] > r["lift"] for r in sel))
                            for k in modes}}
    body = {"protocol": {"2d": "realistic test views of each held-out set (upright perspective cameras, fixed seed)",
                         "lifts": str(checkpoint or DEFAULT_CHECKPOINT.name) + ", the set's skeleton",
                         "refinement": "lfm.selfsup.refine_2d on all test views of a set at once (2D and lifts only)",
                         "metric": "PA-MPJPE with reflection allowed / the flat guess's, mean over views, then sets",
                         "tuning": f"modes and ridge chosen on {list(TUNED_ON)}; 'check' is the other sets"},
            "summary": summary, "rows": rows, "provenance": provenance()}
    write_json(out or root() / "results" / "refine_2d.json", body)
    return body


if __name__ == "__main__":
    torch.set_num_threads(1)
    s = run()["summary"]
    for part, v in s.items():
        print(part, {k: round(x, 3) if isinstance(x, float) else x for k, x in v.items()})
