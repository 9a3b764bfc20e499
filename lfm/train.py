"""Training of one LFM over all in-distribution categories of the open benchmark, resumable.

``train(model_cfg, train_cfg, out_dir)`` writes ``out_dir/last.pt`` (every epoch, atomically) and
``out_dir/best.pt`` (best validation), each holding the model, the optimiser, the scheduler, the sampler's and
torch's RNG states, the resolved configs, the metrics history, data hashes and versions. With ``resume=True``
(default) an existing ``last.pt`` is continued exactly: a killed run resumed from its last checkpoint ends with
the same metrics as an uninterrupted run with the same seed (tested).

One step: a batch of frame indices from :class:`lfm.data.dataset.BatchSampler`, fresh random views
(``train_camera`` / ``train_projection``; a fraction ``so3_fraction`` of steps uses SO(3) orthographic views),
the model's 3D, and the Procrustes-aligned MSE against the unit-radius camera-frame 3D. On CUDA the forward
runs under bf16 autocast; the alignment and the loss stay in float32.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .results import provenance, write_json
from .checkpoint import CheckpointError
from .env import resolve_device
from .config import ModelConfig, TrainConfig
from .data import benchmark
from .data.dataset import BatchSampler, FrameDataset
from .evaluate import evaluate_category
from .losses import procrustes_mse
from .model import LFM

__all__ = ["train", "validation_views"]


def _hash_sets(sets) -> str:
    h = hashlib.sha256()
    for name in sorted(sets):
        s = sets[name]
        h.update(name.encode())
        h.update(np.ascontiguousarray(s.points3d).tobytes())
        h.update(np.ascontiguousarray(s.visible).tobytes())
    return h.hexdigest()[:16]


def validation_views(splits: dict, max_frames: int) -> dict:
    """Fixed, seeded validation inputs (realistic protocol) of each category: at most ``max_frames`` frames."""
    from .data.views import synthesize_views

    out = {}
    for c, sp in splits.items():
        v = sp.val
        if v is None or v.n_frames == 0:
            continue
        idx = np.linspace(0, v.n_frames - 1, min(max_frames, v.n_frames)).round().astype(int)
        sub = v.subset(np.unique(idx))
        views = synthesize_views(sub.points3d, sub.visible, seed=benchmark.protocol_seed(c, "val"),
                                 **benchmark.PROTOCOLS["realistic"])
        out[c] = (sub, views)
    return out


def _validate(model, val: dict, cfg: TrainConfig, mcfg: ModelConfig, device, train_sets: dict) -> dict:
    per = {}
    for c, (cs, v) in val.items():
        r = evaluate_category(model, cs, v.points2d, v.points3d, v.visible, graph=cfg.graph, device=device,
                              attention=mcfg.attention, graph_set=train_sets[c])
        per[c] = {k: r[k] for k in ("model_det", "model_refl", "ratio_det", "ratio_refl")}
    mean = {k: float(np.mean([p[k] for p in per.values()])) for k in ("model_det", "model_refl", "ratio_det", "ratio_refl")}
    return {"mean": mean, "per_category": per}


def _epoch_line(epoch, loss, val, lr, elapsed):
    return (f"epoch {epoch:4d}  loss {loss:.4f}  val PA/rms det {val['mean']['model_det']:.4f} "
            f"refl {val['mean']['model_refl']:.4f}  (x flat {val['mean']['ratio_refl']:.3f})  lr {lr:.1e}  "
            f"{elapsed / 60:.1f} min")


def train(model_cfg: ModelConfig, cfg: TrainConfig, out_dir, *, resume: bool = True, progress: bool = True,
          splits: dict | None = None, log=print) -> dict:
    """Train (or continue) a model; returns the final summary (also in ``out_dir/summary.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    if splits is None:
        splits = {c: benchmark.split_category(c, train_stride=cfg.train_stride) for c in cfg.train_sets}
    train_sets = {c: splits[c].train for c in cfg.train_sets}
    ds = FrameDataset(train_sets, graph=cfg.graph)
    sampler = BatchSampler(ds, cfg.batch_size, balance=cfg.balance, bucket=cfg.bucket, seed=cfg.seed)
    val = validation_views({c: splits[c] for c in cfg.train_sets}, cfg.val_frames)
    model = LFM.from_config(model_cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                       patience=cfg.plateau_patience)
    if cfg.init_from:
        model.load_state_dict(ckpt.load(cfg.init_from, map_location=device)["model"])
    view_rng = np.random.default_rng(cfg.seed + 1)
    state = {"epoch": 0, "step": 0, "history": [], "best": math.inf, "best_epoch": 0, "elapsed_s": 0.0,
             "stopped": None}
    last = out_dir / "last.pt"
    if resume and last.exists():
        ck = ckpt.load(last, map_location=device)
        budget = ("max_minutes", "max_epochs", "threads", "device")  # may change between sessions
        same = {k: v for k, v in ck["train_config"].items() if k not in budget} == \
            {k: v for k, v in _plain_cfg(cfg).items() if k not in budget}
        if ck["model_config"] != dataclasses.asdict(model_cfg) or not same:
            raise CheckpointError(f"{last} was written with other settings; resume with the same parameters, "
                                  f"or choose another output folder (or delete {last} to start over).")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        sampler.load_state_dict(ck["sampler"])
        view_rng.bit_generator.state = ck["view_rng"]
        torch.set_rng_state(ck["torch_rng"])
        state = ck["state"]
        if state["stopped"] in ("max_minutes", "max_epochs"):  # a larger budget continues the run
            state["stopped"] = None
        log(f"resumed {last} at epoch {state['epoch']} (step {state['step']})")
    data_hash = _hash_sets(train_sets)
    amp = device.type == "cuda"
    t0 = time.time() - state["elapsed_s"]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epoch_steps, leave=False, mininterval=2.0)
    while state["stopped"] is None:
        if state["epoch"] >= cfg.max_epochs:
            state["stopped"] = "max_epochs"
            break
        if cfg.max_minutes and state["elapsed_s"] >= 60 * cfg.max_minutes:
            state["stopped"] = "max_minutes"
            break
        model.train()
        losses = []
        if bar is not None:
            bar.reset(total=cfg.epoch_steps)
            bar.set_description(f"epoch {state['epoch'] + 1}")
        for _ in range(cfg.epoch_steps):
            idx = sampler.next()
            so3 = cfg.so3_fraction > 0 and view_rng.random() < cfg.so3_fraction
            kw = ({"camera": "so3", "projection": "orthographic"} if so3 else
                  {"camera": cfg.train_camera, "projection": cfg.train_projection})
            b = ds.batch(idx, seed=int(view_rng.integers(2**63)), noise=cfg.noise, p_joint=cfg.p_joint,
                         mirror=cfg.mirror, bend=cfg.bend, **kw).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                pred = model(b.points2d, b.mask, b.adjacency)
            loss = procrustes_mse(pred.float(), b.target, b.mask, allow_reflection=cfg.allow_reflection,
                                  align=cfg.procrustes)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            state["step"] += 1
            if bar is not None:
                bar.update()
                if state["step"] % 20 == 0:
                    bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        state["epoch"] += 1
        v = _validate(model, val, cfg, model_cfg, device, train_sets)
        metric = v["mean"]["model_refl"]
        sched.step(metric)
        elapsed = time.time() - t0
        state["elapsed_s"] = elapsed
        lr = opt.param_groups[0]["lr"]
        state["history"].append({"epoch": state["epoch"], "step": state["step"], "loss": float(np.mean(losses)),
                                 "val": v["mean"], "lr": lr, "elapsed_s": elapsed})
        improved = metric < state["best"]
        if improved:
            state["best"], state["best_epoch"] = metric, state["epoch"]
        if state["epoch"] - state["best_epoch"] >= cfg.early_stop:
            state["stopped"] = "early_stop"
        elif cfg.max_minutes and elapsed >= 60 * cfg.max_minutes:
            state["stopped"] = "max_minutes"
        ck = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
              "sampler": sampler.state_dict(), "view_rng": view_rng.bit_generator.state,
              "torch_rng": torch.get_rng_state(), "state": state, "model_config": dataclasses.asdict(model_cfg),
              "train_config": _plain_cfg(cfg), "val_per_category": v["per_category"], "data_hash": data_hash,
              "benchmark": benchmark.VERSION, "provenance": provenance(device.type)}
        if improved:
            ckpt.save(out_dir / "best.pt", ck)
        ckpt.save(last, ck)
        log(_epoch_line(state["epoch"], float(np.mean(losses)), v, lr, elapsed))
    if bar is not None:
        bar.close()
    summary = {"stopped": state["stopped"], "epochs": state["epoch"], "steps": state["step"],
               "best_val_refl": state["best"], "best_epoch": state["best_epoch"], "elapsed_s": state["elapsed_s"],
               "history": state["history"], "model_config": dataclasses.asdict(model_cfg),
               "train_config": _plain_cfg(cfg), "data_hash": data_hash, "provenance": provenance(device.type)}
    write_json(out_dir / "summary.json", summary)
    return summary


def _plain_cfg(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
