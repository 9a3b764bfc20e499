"""Ablations: short runs that differ from a baseline in one lever each, at equal wall time, over several seeds.

:data:`LEVERS` names each lever and the config fields it changes; :func:`run_levers` trains every (lever, seed)
into ``out_dir/<lever>/seed<k>-<config hash>/`` (resumable, like any run; other settings, another folder), evaluates the best epoch on the test splits of the
given sets with the trained graph and without a skeleton, and returns one row per run (with its validation
history); :func:`lever_table` averages the seeds (mean and standard deviation). ``04_ablations`` is a thin caller.

On a machine with many cores or a GPU, the runs go in parallel processes from a prepared splits file
(:mod:`lfm.data.bundle`); the rows file it writes is what ``04_ablations`` reads with ``rows_file``::

    python -m lfm.experiments.ablations -f params/paper/04_ablations.yaml --splits splits.pkl.xz --workers 12 \
        --set minutes_per_run=0 --set max_epochs=20 --out results/ablations/rows_gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
from pathlib import Path

import numpy as np

from .. import checkpoint as ckpt
from ..config import ModelConfig, TrainConfig
from ..env import resolve_device
from ..evaluate import evaluate_benchmark
from ..train import run_folder, train

__all__ = ["LEVERS", "base_configs", "run_levers", "lever_table", "read_rows", "present_vs_absent",
           "present_table", "rig_transfer", "rig_transfer_table", "imbalance", "imbalance_table"]

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
    "local_attention": ({"attention": "local"}, {}),
    "no_procrustes_loss": ({}, {"procrustes": False}),
}


def base_configs(*, train_sets, epoch_steps: int, max_epochs: int, minutes_per_run: float, train_stride: int,
                 val_frames: int, threads: int, **_) -> tuple[ModelConfig, TrainConfig]:
    """The baseline of every lever run (the other parameters of 04 are ignored here)."""
    return ModelConfig(), TrainConfig(categories=tuple(train_sets), epoch_steps=epoch_steps, max_epochs=max_epochs,
                                      max_minutes=minutes_per_run, train_stride=train_stride, val_frames=val_frames,
                                      so3_fraction=0.1, threads=threads, early_stop=1000)


def _fit_and_score(mcfg: ModelConfig, tcfg: TrainConfig, out: Path, splits: dict, scored: dict, **eval_kw):
    """Every run of this module: train (resumable) into ``out`` from ``splits``, then score the best epoch on the
    test splits of ``scored`` (:func:`lfm.evaluate.evaluate_benchmark`, synthetic 2D). Returns (summary, result)."""
    summary = train(mcfg, tcfg, out, progress=False, splits=splits, log=lambda s: None)
    dev = str(resolve_device(tcfg.device))
    model, ck = ckpt.load_model(out / "best.pt", device=dev)
    return summary, evaluate_benchmark(model, ck, scored, real2d=False, device=dev, **eval_kw)


def _check_levers(levers) -> None:
    unknown = [k for k in levers if k not in LEVERS]
    if unknown:
        raise ValueError(f"levers {unknown} are unknown; choose from {list(LEVERS)} "
                         "(lfm.experiments.ablations.LEVERS).")


def _one(name: str, seed: int, base_model, base_train, splits, eval_sets, out_dir, graphs, device="auto") -> dict:
    """Train and score one (lever, seed); the row of :func:`run_levers`."""
    m_kw, t_kw = LEVERS[name]
    mcfg = dataclasses.replace(base_model, **m_kw)
    tcfg = dataclasses.replace(base_train, **t_kw, seed=seed, device=device)
    summary, ev = _fit_and_score(mcfg, tcfg, run_folder(Path(out_dir) / name, f"seed{seed}", mcfg, tcfg), splits,
                                 {c: splits[c] for c in eval_sets}, graphs=graphs)
    row = {"lever": name, "seed": seed, "steps": summary["steps"], "minutes": summary["elapsed_s"] / 60,
           "history": [{"step": h["step"], "val_refl": h["val"]["ratio_refl"], "val_det": h["val"]["ratio_det"]}
                       for h in summary["history"]]}
    for m in ev["means"]:
        tag = f"{m['role']}/{m['protocol']}/{m['graph']}"
        row[f"{tag} refl"], row[f"{tag} det"] = m["ratio_refl"], m["ratio_det"]
    return row


def run_levers(levers, base_model: ModelConfig, base_train: TrainConfig, splits: dict, eval_sets, out_dir, *,
               seeds=(0,), graphs=("trained", "input_knn"), log=print) -> list[dict]:
    """Train and evaluate every (lever, seed); see the module docstring. ``splits`` holds the training sets and
    ``eval_sets`` (names of ``splits``) the scored ones."""
    _check_levers(levers)
    rows = []
    for name in levers:
        for seed in seeds:
            row = _one(name, seed, base_model, base_train, splits, eval_sets, out_dir, graphs)
            rows.append(row)
            log(_line(row))
    return rows


def _line(row: dict) -> str:
    return f"{row['lever']:20s} seed {row['seed']} {row['steps']:6d} steps  " + "  ".join(
        f"{k.split(' ')[0]} {v:.3f}" for k, v in row.items() if k.endswith(" refl"))


def lever_table(rows: list[dict]):
    """Mean and standard deviation over seeds per lever (pandas DataFrame indexed by lever, in run order)."""
    import pandas as pd

    df = pd.DataFrame([{k: v for k, v in r.items() if k != "history"} for r in rows])
    metrics = [c for c in df.columns if c.endswith((" refl", " det"))] + ["steps"]
    g = df.groupby("lever", sort=False)[metrics]
    out = g.mean()
    std = g.std(ddof=1).fillna(0.0).add_suffix(" sd")  # sample sd over seeds (0 with one seed)
    out = out.join(std)
    out["seeds"] = g.size()
    return out


def present_vs_absent(ood_sets, base_model: ModelConfig, base_train: TrainConfig, out_dir, *, seeds=(0,),
                      protocols=("realistic",), log=print) -> list[dict]:
    """Table 2 on the open benchmark: per seed, one model trained on the in-distribution sets ('absent') and one
    trained on them plus the first 80 % of the sequences of every set in ``ood_sets`` ('present',
    :func:`lfm.data.benchmark.split_present`), the same steps; both scored on the same test frames and views (the
    last 20 % of those sequences), with the set's own graph. One row per (set, protocol, condition, seed)."""
    from ..data import benchmark

    present = {c: benchmark.split_present(c, train_stride=base_train.train_stride) for c in ood_sets}
    splits = {c: benchmark.split_for_training(c, train_stride=base_train.train_stride) for c in base_train.train_sets}
    rows = []
    for seed in seeds:
        for condition in ("absent", "present"):
            tcfg = dataclasses.replace(base_train, seed=seed, present=tuple(ood_sets) if condition == "present" else ())
            summary, ev = _fit_and_score(base_model, tcfg, run_folder(Path(out_dir) / condition, f"seed{seed}",
                                                                      base_model, tcfg),
                                         splits | (present if condition == "present" else {}), present,
                                         protocols=protocols, graphs=("trained",))
            for r in ev["rows"]:
                rows.append({"set": r["category"], "body": r["body"], "condition": condition, "seed": seed,
                             "protocol": r["protocol"], "steps": summary["steps"], "frames": r["frames"],
                             **{k: r[k] for k in ("model_det", "model_refl", "flat_det", "flat_refl", "ratio_det",
                                                  "ratio_refl")}})
            log(f"{condition:8s} seed {seed}: " + "  ".join(f"{r['set']} {r['ratio_refl']:.3f}" for r in rows
                                                           if r["condition"] == condition and r["seed"] == seed))
    return rows


def present_table(rows: list[dict], protocol: str = "realistic"):
    """Per set: ratio to flat absent and present (mean and sd over seeds, both policies) and absent / present."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["protocol"] == protocol])
    g = df.groupby(["set", "condition"], sort=False)
    mean, sd = g[["ratio_refl", "ratio_det"]].mean(), g[["ratio_refl", "ratio_det"]].std(ddof=1).fillna(0.0)
    sets = list(dict.fromkeys(df["set"]))
    out = pd.DataFrame({"body": df.groupby("set")["body"].first()}).loc[sets]
    for pol in ("refl", "det"):
        for cond in ("absent", "present"):
            out[f"{cond} {pol}"] = [mean.loc[(s, cond), f"ratio_{pol}"] for s in sets]
            out[f"{cond} {pol} sd"] = [sd.loc[(s, cond), f"ratio_{pol}"] for s in sets]
        out[f"absent / present {pol}"] = out[f"absent {pol}"] / out[f"present {pol}"]
    out["seeds"] = df.groupby("set")["seed"].nunique().loc[sets]
    return out


def rig_transfer(pairs, base_model: ModelConfig, base_train: TrainConfig, out_dir, *, positionals=("tpe", "mlp"),
                 seeds=(0,), graphs=("trained", "input_knn"), log=print) -> list[dict]:
    """Fig. 7 / Table 3 on the open benchmark: for each pair (a, b) of rigs of one body, a model trained on rig a
    alone is scored on rig b's test frames, and the other way round, once per positional encoding and seed (same
    steps). A held-out rig trains on its first 80 % of sequences (:func:`lfm.data.benchmark.split_present`) and is
    tested on the rest, so no direction tests on a frame it trained on. One row per (source, target, positional,
    seed, graph)."""
    from ..data import benchmark

    rows = []
    names = sorted({n for p in pairs for n in p})
    splits = {n: benchmark.split_for_training(n, train_stride=base_train.train_stride) for n in names}
    for a, b in pairs:
        for src, dst in ((a, b), (b, a)):
            held = benchmark.table.record(src).held_out
            tcfg0 = dataclasses.replace(base_train, categories=() if held else (src,), present=(src,) if held else ())
            for positional in positionals:
                mcfg = dataclasses.replace(base_model, positional=positional)
                for seed in seeds:
                    tcfg = dataclasses.replace(tcfg0, seed=seed)
                    out = run_folder(Path(out_dir) / f"{src}_to_{dst}", f"{positional}-seed{seed}", mcfg, tcfg)
                    summary, ev = _fit_and_score(mcfg, tcfg, out, {src: splits[src]},
                                                 {src: splits[src], dst: splits[dst]}, protocols=("realistic",),
                                                 graphs=graphs)
                    for r in ev["rows"]:
                        rows.append({"source": src, "target": dst, "scored": r["category"], "positional": positional,
                                     "seed": seed, "graph": r["graph"], "steps": summary["steps"],
                                     "frames": r["frames"], **{k: r[k] for k in ("ratio_det", "ratio_refl",
                                                                                  "model_det", "flat_det")}})
                    got = {r["scored"]: r["ratio_det"] for r in rows[-len(ev["rows"]):] if r["graph"] == graphs[0]}
                    log(f"{src} -> {dst} {positional} seed {seed}: own {got[src]:.3f}, other rig {got[dst]:.3f}")
    return rows


def rig_transfer_table(rows: list[dict], graph: str = "trained"):
    """Per direction: the ratio to flat (det = +1) on the other rig and on the own rig, for each positional
    encoding (mean and sample sd over seeds), and the TPE-vs-MLP gain on the other rig (1 - TPE / MLP)."""
    import pandas as pd

    df = pd.DataFrame([r for r in rows if r["graph"] == graph])
    df["on"] = ["other rig" if s == t else "own rig" for s, t in zip(df["scored"], df["target"])]
    g = df.groupby(["source", "target", "on", "positional"], sort=False)["ratio_det"]
    t = pd.concat({"mean": g.mean(), "sd": g.std(ddof=1).fillna(0.0), "seeds": g.size()}, axis=1).reset_index()
    out = t.pivot_table(index=["source", "target"], columns=["on", "positional"], values=["mean", "sd"], sort=False)
    out.columns = [f"{on}, {pos} ({stat})" for stat, on, pos in out.columns]
    if {"other rig, tpe (mean)", "other rig, mlp (mean)"} <= set(out.columns):
        out["TPE gain on the other rig"] = 1 - out["other rig, tpe (mean)"] / out["other rig, mlp (mean)"]
    return out


def imbalance(minor: str, keep: float, widths, base_model: ModelConfig, base_train: TrainConfig, out_dir, *,
              positionals=("tpe", "mlp"), seeds=(0,), log=print) -> list[dict]:
    """Table 3's imbalance experiment on the open benchmark: every in-distribution set trains as usual, except
    ``minor``, of which only every k-th training frame is kept (k = round(1 / keep)); per width, positional
    encoding and seed one model (same steps) is scored on ``minor``'s full test split with its skeleton. One row
    per (width, positional, seed)."""
    from ..data import benchmark

    splits = {c: benchmark.split_category(c, train_stride=base_train.train_stride) for c in base_train.train_sets}
    if minor not in splits:
        raise ValueError(f"minor {minor!r} is not among the training sets {list(splits)}.")
    k = max(1, round(1 / keep))
    sp = splits[minor]
    splits[minor] = dataclasses.replace(sp, train=sp.train.subset(np.arange(0, sp.train.n_frames, k)))
    rows = []
    for width in widths:
        for positional in positionals:
            mcfg = dataclasses.replace(base_model, d_model=width, positional=positional)
            for seed in seeds:
                tcfg = dataclasses.replace(base_train, seed=seed)
                out = run_folder(Path(out_dir) / f"{minor}_keep{k}", f"d{width}-{positional}-seed{seed}", mcfg, tcfg)
                summary, ev = _fit_and_score(mcfg, tcfg, out, splits, {minor: splits[minor]},
                                             protocols=("realistic",))
                r = ev["rows"][0]
                rows.append({"minor": minor, "train_frames": splits[minor].train.n_frames, "width": width,
                             "positional": positional, "seed": seed, "steps": summary["steps"],
                             "frames": r["frames"], **{x: r[x] for x in ("ratio_det", "ratio_refl", "model_det")}})
                log(f"d {width} {positional} seed {seed}: {minor} {r['ratio_det']:.3f} x flat")
    return rows


def imbalance_table(rows: list[dict]):
    """Per width: the minor set's ratio to flat (det = +1) with TPE and with the MLP (mean, sample sd over seeds)
    and the TPE gain 1 - TPE / MLP."""
    import pandas as pd

    df = pd.DataFrame(rows)
    g = df.groupby(["width", "positional"])["ratio_det"]
    t = pd.concat({"mean": g.mean(), "sd": g.std(ddof=1).fillna(0.0)}, axis=1).unstack("positional")
    t.columns = [f"{pos} ({stat})" for stat, pos in t.columns]
    if {"tpe (mean)", "mlp (mean)"} <= set(t.columns):
        t["TPE gain"] = 1 - t["tpe (mean)"] / t["mlp (mean)"]
    return t


def read_rows(path) -> dict:
    """A rows file written by ``python -m lfm.experiments.ablations`` (``{"params", "rows", "provenance", ...}``)."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rows_file {path}: no such file; write it with `python -m lfm.experiments.ablations "
                                f"... --out {path}` or leave rows_file empty to train here.")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or "params" not in data:
        raise ValueError(f"rows_file {path}: not a rows file of `python -m lfm.experiments.ablations` "
                         "(needs 'params' and 'rows').")
    order = {name: i for i, name in enumerate(data["params"]["levers"])}
    data["rows"].sort(key=lambda r: (order.get(r["lever"], len(order)), r["seed"]))  # the workers finish unordered
    return data


# ------------------------------------------------------------------------------------------- parallel runner
_SPLITS: dict = {}


def _worker(task) -> dict:
    """One (lever, seed) in a worker process; the splits file is read once per process."""
    import torch

    name, seed, params, splits_file, out_dir, device = task
    if splits_file not in _SPLITS:
        from ..data.bundle import load_splits

        _SPLITS.clear()
        _SPLITS[splits_file] = load_splits(splits_file)
    torch.set_num_threads(params["threads"])
    splits = _SPLITS[splits_file]
    base_model, base_train = base_configs(**params)
    return _one(name, seed, base_model, base_train, splits, params["eval_sets"], out_dir, ("trained", "input_knn"),
                device=device)


def main(argv=None) -> None:
    import yaml

    from ..results import provenance, write_json

    ap = argparse.ArgumentParser(prog="python -m lfm.experiments.ablations",
                                 description="Train and score every (lever, seed) of 04_ablations in parallel "
                                 "processes, from a prepared splits file; writes a rows file for 04's rows_file.")
    ap.add_argument("-f", "--file", required=True, help="04 parameters (e.g. params/paper/04_ablations.yaml)")
    ap.add_argument("--splits", required=True, help="prepared splits (python -m lfm.data.bundle) holding every "
                    "train and eval set")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="replace one parameter (YAML value), e.g. --set max_epochs=20")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--runs", default="runs/ablations", help="folder of the run checkpoints")
    ap.add_argument("--out", required=True, help="rows file (JSON), rewritten after every finished run")
    args = ap.parse_args(argv)
    params = yaml.safe_load(Path(args.file).read_text()) or {}
    for kv in args.set:
        key, _, value = kv.partition("=")
        if key not in params:
            raise SystemExit(f"--set {kv}: {key!r} is not a parameter of {args.file} ({sorted(params)}).")
        params[key] = yaml.safe_load(value)
    params.pop("rows_file", None)
    try:
        _check_levers(params["levers"])
    except ValueError as e:
        raise SystemExit(f"{args.file}: {e}") from None
    from ..data import benchmark
    from ..data.bundle import load_splits

    # every set there, or say which, before any worker starts
    load_splits(args.splits, sets=benchmark.resolve(params["train_sets"] + params["eval_sets"]))
    # seed-major order: an interrupted pool still has every lever at the first seeds
    tasks = [(name, seed, params, args.splits, args.runs, args.device) for seed in params["seeds"]
             for name in params["levers"]]
    rows = []
    header = {"params": params, "device": args.device, "workers": args.workers, "splits": Path(args.splits).name}

    def save():
        write_json(args.out, {**header, "rows": rows, "complete": len(rows) == len(tasks),
                              "provenance": provenance()})

    ctx = mp.get_context("spawn")  # CUDA cannot be shared with forked children
    with ctx.Pool(args.workers, maxtasksperchild=None) as pool:
        for row in pool.imap_unordered(_worker, tasks):
            rows.append(row)
            print(_line(row), flush=True)
            save()
    save()


if __name__ == "__main__":
    main()
