"""What 2D alone adds on held-out categories.

* :func:`run`: the shipped model's lifts against the same lifts refined together from their 2D
  (:func:`lfm.selfsup.refine_2d`), on every held-out set of the benchmark. No 3D of these sets is used except to
  score. Run: ``python -m lfm.experiments.refine2d`` -> ``results/refine_2d.json``.
* :func:`table2`: Table 2 with a 2D-only column (``15_2d_only``): per held-out set and seed, the shipped model
  *absent* (as shipped), *mix only* (fine-tuned on the mixed benchmark sets alone, the same steps: the control),
  *2D-only* (``lfm finetune --2d`` on 2D views of the set's training sequences, its 3D
  hidden) and *3D-present* (``lfm finetune`` on the 3D of the same sequences), the same steps and mix, all scored
  on the same test frames (:func:`lfm.data.benchmark.split_present`).

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
from ..lifting import DEFAULT_CHECKPOINT, lift, load_model
from ..paths import root
from ..results import provenance, write_json
from ..selfsup import DEFAULT_MODES, refine_2d

TUNED_ON = benchmark.OOD[:8]
CONDITIONS = ("absent", "mix_only", "2d_only", "present")


def _ratio(pred, points2d, points3d, visible) -> float:
    """PA-MPJPE / RMS radius with reflection allowed, mean over views, divided by the flat guess's
    (:func:`lfm.evaluate.score`, as every table of the bundle)."""
    from ..evaluate import flat_guess, score

    return float(np.nanmean(score(pred, points3d, visible)["refl"]) /
                 np.nanmean(score(flat_guess(points2d), points3d, visible)["refl"]))


def _refine_row(model, name, points2d, points3d, visible, edges, modes, *, tuned_on: bool) -> dict:
    """One set's row: the lifts and the lifts refined with each number of ``modes``, as ratios to flat."""
    lifted = lift(points2d, visible, edges=edges, model=model)
    row = {"set": name, "views": int(len(points2d)), "keypoints": int(points2d.shape[1]), "tuned_on": tuned_on,
           "lift": _ratio(lifted.camera, points2d, points3d, visible)}
    for k in modes:
        ref = refine_2d(points2d, visible, lifted.camera, n_basis=k)
        row[f"refined_{k}_modes"] = _ratio(ref.camera, points2d, points3d, visible)
    return row


def run(sets=benchmark.OOD, modes=(0, DEFAULT_MODES), checkpoint=None, out=None, log=print) -> dict:
    model, _ = load_model(checkpoint)
    rows = []
    for name in sets:
        split = benchmark.split_category(name)
        views = benchmark.test_views(split)
        rows.append(_refine_row(model, name, views.points2d, views.points3d, views.visible, split.test.edges,
                                modes, tuned_on=name in TUNED_ON))
    if "cheetah" in sets:  # its real DeepLabCut 2D (6 cameras x 110 frames), as lfm.evaluate scores it
        cs = benchmark.real2d_test()
        p2, gt = benchmark.real2d_inputs(cs)
        rows.append(_refine_row(model, "cheetah_real_dlc_2d", p2, gt, cs.visible, cs.edges, modes, tuned_on=False))
    for row in rows:
        log(f"{row['set']:16s} lift {row['lift']:.3f}  " + "  ".join(f"{k} modes {row[f'refined_{k}_modes']:.3f}"
                                                                     for k in modes))
    summary = {}
    real = "cheetah_real_dlc_2d"
    for part, keep in (("all", lambda r: r["set"] != real), ("tuned_on", lambda r: r["tuned_on"]),
                       ("check", lambda r: not r["tuned_on"] and r["set"] != real),
                       ("real_dlc_2d", lambda r: r["set"] == real)):
        sel = [r for r in rows if keep(r)]
        if not sel:
            continue
        summary[part] = {"sets": len(sel), "lift": float(np.mean([r["lift"] for r in sel])),
                         **{f"refined_{k}_modes": float(np.mean([r[f"refined_{k}_modes"] for r in sel]))
                            for k in modes},
                         **{f"refined_{k}_modes_worse_on": int(sum(r[f"refined_{k}_modes"] > r["lift"] for r in sel))
                            for k in modes}}
    body = {"protocol": {"2d": "realistic test views of each held-out set (upright perspective cameras, fixed seed); "
                               "cheetah_real_dlc_2d: the cheetah's real DeepLabCut 2D of 6 cameras (likelihood >= 0.5)",
                         "lifts": str(checkpoint or DEFAULT_CHECKPOINT.name) + ", the set's skeleton",
                         "refinement": "lfm.selfsup.refine_2d on all test views of a set at once (2D and lifts only)",
                         "metric": "PA-MPJPE / RMS radius with reflection allowed (lfm.evaluate.score), mean over "
                                   "views, divided by the flat guess's; mean over sets",
                         "tuning": f"modes and ridge chosen on {list(TUNED_ON)}; 'check' is the other sets"},
            "summary": summary, "rows": rows, "provenance": provenance()}
    write_json(out or root() / "results" / "refine_2d.json", body)
    return body


REAL_CHEETAH = "cheetah_real_dlc_2d"  # table2's name for the cheetah with its real DeepLabCut 2D


def _present_task(name: str):
    """A held-out set's split_present: the scorer of its test part, its training 2D for a seed (one realistic view
    per frame) and its training 3D."""
    from ..data.views import synthesize_views
    from ..evaluate import evaluate_category

    split = benchmark.split_present(name)
    train, v = split.train, benchmark.test_views(split)

    def score(model):
        return evaluate_category(model, split.test, v.points2d, v.points3d, v.visible)

    def two_d(seed):
        w = synthesize_views(train.points3d, train.visible, **benchmark.PROTOCOLS["realistic"],
                             seed=1000 * seed + benchmark.protocol_seed(name, "realistic"))
        return {"points2d": w.points2d, "mask": w.visible, "edges": train.edges}

    return score, two_d, {"points3d": train.points3d, "visible": train.visible, "edges": train.edges,
                          "sequence": train.sequence}


def _cheetah_task(test_frac: float = 0.2):
    """The cheetah's real DeepLabCut 2D (6 cameras, :func:`lfm.data.benchmark.real2d_test`) split in time: the last
    ``test_frac`` of its 110 frames test (scored on their real 2D against their 3D), the others give the 2D-only run
    its input (the real 2D, views of a frame grouped) and the present run the same views' camera-frame 3D."""
    from ..evaluate import evaluate_category

    cs = benchmark.real2d_test()
    frame = np.asarray(cs.meta["frame"])
    test = frame >= np.quantile(np.unique(frame), 1 - test_frac)
    p2, gt = benchmark.real2d_inputs(cs)
    p2, gt = p2.astype(np.float32), gt.astype(np.float32)
    te, tr = np.flatnonzero(test), np.flatnonzero(~test)

    def score(model):
        return evaluate_category(model, cs.subset(te), p2[te], gt[te], cs.visible[te])

    def two_d(seed):
        return {"points2d": p2[tr], "mask": cs.visible[tr], "edges": cs.edges, "group": frame[tr]}

    camera = np.unique(cs.sequence, return_inverse=True)[1]
    return score, two_d, {"points3d": gt[tr], "visible": cs.visible[tr], "edges": cs.edges, "sequence": camera[tr]}


def table2(sets, out_dir, *, seeds=(0,), mix=("human41", "dog", "hand_icvl", "mouse_sleap", "chair"),
           max_epochs: int = 3, epoch_steps: int = 100, bench_frames: int = 30, n_basis: int = DEFAULT_MODES,
           threads: int = 1, log=print) -> list[dict]:
    """Rows ``{set, condition, seed, frames, ratio_det, ratio_refl, bench_refl}`` (see the module docstring).

    Per set: :func:`lfm.data.benchmark.split_present` (the last 20 % of sequences test). The 2D-only run's input is
    one realistic view (upright perspective camera, seeded by set and seed) of every training frame, written as an
    ``.npz`` of 2D, visibility and the skeleton; the present run's input is the same frames' 3D. ``REAL_CHEETAH``
    is the cheetah with its real DeepLabCut 2D, split in time (:func:`_cheetah_task`). Both runs start from the
    shipped checkpoint and mix ``mix`` as ``lfm finetune`` does (each fine-tuning holds out the last 20 % of its own
    input for its report); ``bench_refl`` is the in-distribution benchmark mean after the run (``bench_frames`` test
    frames per set). Runs are resumable (their folders under ``out_dir``)."""
    from pathlib import Path

    from .. import checkpoint as ckpt
    from ..finetune import benchmark_mean, finetune
    from ..selfsup import finetune_2d

    out_dir = Path(out_dir)
    model0, ck0 = load_model(None)
    bench = {c: benchmark.split_category(c) for c in benchmark.CATEGORIES}
    bench0 = benchmark_mean(model0, ck0, bench, frames=bench_frames)["mean"]["ratio_refl"]
    quiet = lambda *a, **k: None  # noqa: E731
    _keep = lambda r: {k: r[k] for k in ("frames", "ratio_det", "ratio_refl")}  # noqa: E731 (one scoring each)
    mix_only = {seed: _mix_only(out_dir / "mix_only" / f"seed{seed}", ck0, bench, mix=mix, max_epochs=max_epochs,
                                epoch_steps=epoch_steps, bench_frames=bench_frames, threads=threads, seed=seed)
                for seed in seeds}
    rows = []
    for name in sets:
        score, two_d, three_d = _cheetah_task() if name == REAL_CHEETAH else _present_task(name)
        base = _keep(score(model0))
        for seed in seeds:
            rows.append({"set": name, "condition": "absent", "seed": seed, **base, "bench_refl": bench0})
            model, bench_mix = mix_only[seed]
            rows.append({"set": name, "condition": "mix_only", "seed": seed, **_keep(score(model)),
                         "bench_refl": bench_mix})
            d = out_dir / name / f"seed{seed}"
            d.mkdir(parents=True, exist_ok=True)
            np.savez(d / "train_2d.npz", **two_d(seed))
            np.savez(d / "train_3d.npz", **three_d)
            kw = dict(mix=tuple(mix), max_epochs=max_epochs, epoch_steps=epoch_steps, max_minutes=1e6,
                      bench_frames=bench_frames, threads=threads, seed=seed, name=f"yours_{name}", progress=False,
                      log=quiet)
            reports = {"2d_only": finetune_2d(d / "train_2d.npz", d / "2d_only", n_basis=n_basis, **kw),
                       "present": finetune(d / "train_3d.npz", d / "present", **kw)}
            for cond, rep in reports.items():
                model, _ = ckpt.load_model(d / cond / "model.pt")
                rows.append({"set": name, "condition": cond, "seed": seed, **_keep(score(model)),
                             "bench_refl": rep["after"]["benchmark"]["mean"]["ratio_refl"]})
            log("  ".join(f"{r['set']} {r['condition']} seed {r['seed']}: {r['ratio_refl']:.3f}" for r in rows[-4:]))
    return rows


def _mix_only(run_dir, ck0, bench, *, mix, max_epochs, epoch_steps, bench_frames, threads, seed):
    """The control of :func:`table2`: the shipped model fine-tuned on the mix alone with the settings and steps of
    ``lfm finetune`` (so that 2D-only and present are compared with a model that trained as long); returns the
    model and its in-distribution benchmark mean."""
    from .. import checkpoint as ckpt
    from ..config import ModelConfig
    from ..finetune import benchmark_mean, train_config_from
    from ..train import train

    tcfg = train_config_from(ck0, DEFAULT_CHECKPOINT, categories=mix, lr=2e-4, batch_size=64, threads=threads,
                             seed=seed, epoch_steps=epoch_steps, max_epochs=max_epochs, max_minutes=1e6,
                             val_frames=100)
    train(ModelConfig(**ck0["model_config"]), tcfg, run_dir, progress=False, log=lambda *a, **k: None,
          splits={c: benchmark.split_for_training(c) for c in mix})
    model, ck = ckpt.load_model(run_dir / "best.pt")
    return model, benchmark_mean(model, ck, bench, frames=bench_frames)["mean"]["ratio_refl"]


def table2_summary(rows: list[dict]) -> dict:
    """Per set and condition the mean and sample sd over seeds (reflection allowed and det = +1), the gap closed by
    2D-only (``(absent - 2d_only) / (absent - present)``, reflection allowed; also from the mix-only control) and
    the benchmark mean's change."""
    out = {}
    for name in dict.fromkeys(r["set"] for r in rows):
        per = {}
        for c in CONDITIONS:
            sel = [r for r in rows if r["set"] == name and r["condition"] == c]
            per[c] = {k: float(np.mean([r[k] for r in sel])) for k in ("ratio_refl", "ratio_det", "bench_refl")}
            per[c]["ratio_refl_sd"] = float(np.std([r["ratio_refl"] for r in sel], ddof=1)) if len(sel) > 1 else 0.0
            per[c]["seeds"] = len(sel)
        for ref, key in (("absent", "gap_closed_by_2d_only"), ("mix_only", "gap_closed_vs_mix_only")):
            gap = per[ref]["ratio_refl"] - per["present"]["ratio_refl"]
            per[key] = (per[ref]["ratio_refl"] - per["2d_only"]["ratio_refl"]) / gap if gap else None
        per["bench_change_2d_only"] = per["2d_only"]["bench_refl"] - per["absent"]["bench_refl"]
        out[name] = per
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    s = run()["summary"]
    for part, v in s.items():
        print(part, {k: round(x, 3) if isinstance(x, float) else x for k, x in v.items()})
