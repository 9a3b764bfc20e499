"""Ablations: short runs that differ from a baseline in one lever each, at equal wall time, over several seeds.

:data:`LEVERS` names each lever and the config fields it changes; :func:`run_levers` trains every (lever, seed)
into ``out_dir/<lever>/seed<k>/`` (resumable, like any run), evaluates the best epoch on the test splits of the
given sets with the trained graph and without a skeleton, and returns one row per run; :func:`lever_table`
averages the seeds (mean and standard deviation). ``04_ablations`` is a thin caller.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path


from . import checkpoint as ckpt
from .config import ModelConfig, TrainConfig
from .evaluate import evaluate_benchmark
from .train import train

__all__ = ["LEVERS", "run_levers", "lever_table"]

# lever -> (ModelConfig changes, TrainConfig changes), each relative to the baseline
LEVERS: dict[str, tuple[dict, dict]] = {
    "baseline": ({}, {}),
    "reflection_allowed": ({}, {"allow_reflection": True}),
    "graph_input_knn": ({}, {"graph": "input_knn"}),
    "graph_mean_knn": ({}, {"graph": "mean_knn"}),
    "graph_mix": ({}, {"graph": "mix", "edge_drop": 0.1}),
    "rig_aug": ({}, {"rig_aug": 0.5}),
    "procedural": ({}, {"procedural": 0.2}),
    "pe_every_layer": ({"pe_every_layer": True}, {}),
    "width_128": ({"d_model": 128}, {}),
    "no_so3_views": ({}, {"so3_fraction": 0.0}),
    "no_mirror": ({}, {"mirror": 0.0}),
    "bend_limbs": ({}, {"bend": 0.5}),
    "mlp_positional": ({"positional": "mlp"}, {}),
    "global_attention": ({"attention": "global"}, {}),
}


def run_levers(levers, base_model: ModelConfig, base_train: TrainConfig, splits: dict, eval_sets, out_dir, *,
               seeds=(0,), graphs=("trained", "input_knn"), log=print) -> list[dict]:
    """Train and evaluate every (lever, seed); see the module docstring. ``splits`` holds the training sets and
    ``eval_sets`` (names of ``splits``) the scored ones."""
    unknown = [k for k in levers if k not in LEVERS]
    if unknown:
        raise ValueError(f"levers {unknown} are unknown; choose from {list(LEVERS)} (lfm.ablations.LEVERS).")
    rows = []
    for name in levers:
        m_kw, t_kw = LEVERS[name]
        for seed in seeds:
            mcfg = dataclasses.replace(base_model, **m_kw)
            tcfg = dataclasses.replace(base_train, **t_kw, seed=seed)
            out = Path(out_dir) / name / f"seed{seed}"
            summary = train(mcfg, tcfg, out, progress=False, splits=splits, log=lambda s: None)
            model, ck = ckpt.load_model(out / "best.pt")
            ev = evaluate_benchmark(model, ck, {c: splits[c] for c in eval_sets}, graphs=graphs, real2d=False)
            row = {"lever": name, "seed": seed, "steps": summary["steps"], "minutes": summary["elapsed_s"] / 60}
            for m in ev["means"]:
                tag = f"{m['role']}/{m['protocol']}/{m['graph']}"
                row[f"{tag} refl"], row[f"{tag} det"] = m["ratio_refl"], m["ratio_det"]
            rows.append(row)
            log(f"{name:20s} seed {seed} {summary['steps']:6d} steps  " + "  ".join(
                f"{k.split(' ')[0]} {v:.3f}" for k, v in row.items() if k.endswith(" refl")))
    return rows


def lever_table(rows: list[dict]):
    """Mean and standard deviation over seeds per lever (pandas DataFrame indexed by lever, in run order)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    metrics = [c for c in df.columns if c.endswith((" refl", " det"))] + ["steps"]
    g = df.groupby("lever", sort=False)[metrics]
    out = g.mean()
    std = g.std(ddof=0).add_suffix(" sd")
    out = out.join(std)
    out["seeds"] = g.size()
    return out
