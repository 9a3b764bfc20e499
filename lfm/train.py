"""Training of one LFM over the in-distribution sets of the open benchmark, resumable.

``train(model_cfg, train_cfg, out_dir)`` writes ``out_dir/last.pt`` (every epoch, atomically) and
``out_dir/best.pt`` (best validation), each holding the model, the optimiser, the scheduler, the samplers' and
torch's RNG states, the resolved configs, the metrics history, data hashes and versions. With ``resume=True``
(default) an existing ``last.pt`` is continued exactly: a killed run resumed from its last checkpoint ends with
the same metrics as an uninterrupted run with the same seed (tested).

The parts, each usable alone (``bench/bench_train.py`` times :func:`train_step`):

* :func:`setup` builds data, samplers, model, optimiser and scheduler (a :class:`Run`);
* :func:`resume` continues a run from its ``last.pt``;
* :func:`run_epochs` is the one training loop: epochs of steps, each followed by :func:`end_epoch`, until the run
  stops (:func:`train` runs LFM through it; :func:`lfm.experiments.baselines.fit` its fixed-slot peers);
* :func:`draw_batch` draws one training batch: frame indices from the sampler (or, with probability
  ``procedural``, from the procedural bodies), fresh random views, pose / rig / graph augmentation;
* :func:`train_step` is one optimiser step: the model's 3D and the Procrustes-aligned MSE against the unit-radius
  camera-frame 3D (bf16 autocast on CUDA and, with ``precision='bfloat16'``, on CPU; alignment and loss in float32);
* :func:`end_epoch` validates, steps the scheduler, checkpoints and logs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gc
import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from . import paths
from .config import ModelConfig, TrainConfig
from .data import benchmark
from .data.dataset import Batch, BatchSampler, FrameDataset
from .distributed import Context
from .distributed import setup as setup_distributed
from .env import resolve_device
from .evaluate import evaluate_category
from .losses import procrustes_mse
from .model import LFM
from .results import provenance, write_json

__all__ = ["train", "setup", "resume", "run_epochs", "steady_gc", "draw_batch", "train_step", "end_epoch", "Run",
           "validation_views", "resolve_path", "export_run", "BUDGET_FIELDS", "run_folder"]

BUDGET_FIELDS = ("max_minutes", "max_epochs", "threads", "device")  # may change when a run is continued


def run_folder(out_dir, tag: str, *cfgs) -> Path:
    """``out_dir/<tag>-<hash of the configs>``: a rerun with the same settings resumes (the budget fields
    :data:`BUDGET_FIELDS` may differ), other settings get a folder of their own instead of a resume error."""
    import hashlib
    import json

    plain = [{k: v for k, v in dataclasses.asdict(c).items() if k not in BUDGET_FIELDS} for c in cfgs]
    h = hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode())
    return Path(out_dir) / f"{tag}-{h.hexdigest()[:8]}"


def resolve_path(p) -> Path:
    """A relative path in a recipe (``init_from``) is relative to the repository root, never to the cwd."""
    p = Path(p).expanduser()
    return p if p.is_absolute() else paths.root() / p


def _hash_sets(sets) -> str:
    h = hashlib.sha256()
    for name in sorted(sets):
        s = sets[name]
        h.update(name.encode())
        h.update(np.ascontiguousarray(s.points3d).tobytes())
        h.update(np.ascontiguousarray(s.visible).tobytes())
    return h.hexdigest()[:16]


def validation_views(splits: dict, max_frames: int) -> dict:
    """Fixed, seeded validation inputs (realistic protocol) of each set: at most ``max_frames`` frames."""
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


def _plain_cfg(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


@dataclass
class Run:
    """Everything one training run holds between steps."""

    model_cfg: ModelConfig | None  # None for a model built elsewhere (setup's ``model``)
    cfg: TrainConfig
    out_dir: Path | None  # None: no checkpoints, the best epoch's weights are kept in ``best_weights``
    device: torch.device
    model: torch.nn.Module
    opt: torch.optim.Optimizer
    sched: object
    ds: FrameDataset
    sampler: BatchSampler
    val: dict
    train_sets: dict
    view_rng: np.random.Generator
    data_hash: str
    proc_ds: FrameDataset | None = None
    proc_sampler: BatchSampler | None = None
    dev: object = None  # DeviceBatches of the training sets (TrainConfig.batches = 'device')
    proc_dev: object = None  # ... and of the procedural bodies
    ctx: Context = field(default_factory=Context)
    forward: object = None  # what a training step calls: the model, or its torch.compile'd wrapper
    state: dict = field(default_factory=lambda: {"epoch": 0, "step": 0, "history": [], "best": math.inf,
                                                 "best_epoch": 0, "elapsed_s": 0.0, "stopped": None})
    validate: object = None  # run -> {"mean": {...}, "per_category": {...}}; None: LFM's validation
    forward_for: object = None  # (forward, batch) -> what a step calls on that batch; None: forward itself
    best_weights: dict | None = None  # the best epoch's state dict of a run without out_dir

    @property
    def amp(self) -> bool:
        if self.cfg.precision == "auto":
            return self.device.type == "cuda" or cpu_has_bf16()
        return self.cfg.precision == "bfloat16"


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX): there bf16 autocast makes the linear
    layers 2-3 x faster (bench/train_step_cpu.py); without them it is slower than float32."""
    cpu = getattr(torch, "cpu", None)
    return any(getattr(cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def setup(model_cfg: ModelConfig | None, cfg: TrainConfig, out_dir, *, splits: dict | None = None, model=None,
          validate=None, forward_for=None) -> Run:
    """Data (splits, frame dataset, samplers, validation views), model, optimiser and scheduler of a new run.
    Under ``torchrun`` the model is wrapped in DistributedDataParallel (see :mod:`lfm.distributed`).

    ``model``: an already-built model trained instead of ``LFM(model_cfg)``; ``validate`` and ``forward_for``: the
    :class:`Run` hooks for a model with another call (the fixed-slot peers of :mod:`lfm.experiments.baselines`);
    ``out_dir=None``: a run that writes nothing and keeps its best weights in memory."""
    ctx = setup_distributed(resolve_device(cfg.device))
    device = ctx.device
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    names = cfg.train_sets
    if splits is None:
        cfg.check_sets()
        splits = {c: benchmark.split_for_training(c, train_stride=cfg.train_stride) for c in names}
    splits = benchmark.pick(splits, names, "TrainConfig.categories names sets the prepared splits hold no split for:")
    train_sets = {c: splits[c].train for c in names}
    no_val = [c for c in names if splits[c].val is None or splits[c].val.n_frames == 0]
    if no_val:
        raise ValueError(f"sets {no_val} have no validation frames: the best epoch could not be chosen; give each "
                         "set a validation part (lfm.data.benchmark.split_category gives one to every in-distribution "
                         "set, split_present to a held-out one).")
    ds = FrameDataset(train_sets, graph=cfg.graph)
    sampler = BatchSampler(ds, cfg.batch_size, balance=cfg.balance, bucket=cfg.bucket, seed=cfg.seed)
    proc_ds = proc_sampler = None
    if cfg.procedural > 0:
        from .data.procedural import generate

        bodies = generate(cfg.procedural_bodies, 50, seed=cfg.seed)
        proc_ds = FrameDataset({b.rig: b for b in bodies}, graph=cfg.graph)
        proc_sampler = BatchSampler(proc_ds, cfg.batch_size, balance="category", bucket=True, seed=cfg.seed + 7)
    dev = proc_dev = None
    if cfg.batches == "device":  # each rank draws its own rows with its own stream
        from .data.device_batches import DeviceBatches

        rows = ctx.rows(cfg.batch_size)
        kw = {"batch_size": rows.stop - rows.start, "graph": cfg.graph, "rank": ctx.rank, "device": device}
        dev = DeviceBatches(train_sets, balance=cfg.balance, seed=cfg.seed, **kw)
        if proc_ds is not None:
            proc_dev = DeviceBatches(proc_ds.sets, balance="category", seed=cfg.seed + 7, **kw)
    model = (LFM(model_cfg) if model is None else model).to(device)
    if cfg.init_from:
        src = ckpt.load(resolve_path(cfg.init_from), map_location=device)
        missing, unexpected = model.load_state_dict(src["model"], strict=False)
        if unexpected or any(not k.startswith("pe_proj.") for k in missing):
            raise ckpt.CheckpointError(f"init_from {cfg.init_from}: its weights do not fit this model (missing "
                                       f"{missing}, unexpected {unexpected}); use a checkpoint of the same "
                                       "architecture.")
    if ctx.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    fused = device.type in ("cuda", "cpu")  # one kernel for the whole AdamW update (CPU: +1.8 % on the v2 stream)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=cfg.plateau_factor,
                                                       patience=cfg.plateau_patience)
    val = validation_views({c: splits[c] for c in names}, cfg.val_frames)
    forward = _compiled(model, log=print) if cfg.compile else model
    return Run(model_cfg, cfg, None if out_dir is None else Path(out_dir), device, model, opt, sched, ds, sampler, val,
               train_sets, np.random.default_rng(cfg.seed + 1), _hash_sets(train_sets), proc_ds, proc_sampler, dev,
               proc_dev, ctx, forward, validate=validate, forward_for=forward_for)


def _compiled(model, log=print):
    """``torch.compile(model, dynamic=True)`` that falls back to the model itself when compilation fails (no
    compiler, an unsupported op), saying why once."""
    try:
        compiled = torch.compile(model, dynamic=True)
    except Exception as e:  # noqa: BLE001 - any failure means: run eagerly
        log(f"torch.compile unavailable ({type(e).__name__}: {str(e).splitlines()[0][:120]}); training eagerly")
        return model
    state = {"ok": None}

    def forward(*args, **kwargs):
        if state["ok"] is None:
            try:
                out = compiled(*args, **kwargs)
                state["ok"] = True
                return out
            except Exception as e:  # noqa: BLE001
                log(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:120]}); training eagerly")
                state["ok"] = False
        return (compiled if state["ok"] else model)(*args, **kwargs)
    forward.fallback = lambda: state["ok"] is False
    return forward


def _bare(model):
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def _state_dict(run: Run) -> dict:
    return {"model": _bare(run.model).state_dict(), "optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(),
            "sampler": run.sampler.state_dict(),
            "proc_sampler": None if run.proc_sampler is None else run.proc_sampler.state_dict(),
            "device_batches": None if run.dev is None else run.dev.state_dict(),
            "proc_device_batches": None if run.proc_dev is None else run.proc_dev.state_dict(),
            "view_rng": run.view_rng.bit_generator.state, "torch_rng": torch.get_rng_state(), "state": run.state,
            "model_config": dataclasses.asdict(run.model_cfg), "train_config": _plain_cfg(run.cfg),
            "data_hash": run.data_hash, "benchmark": benchmark.VERSION, "provenance": provenance(run.device.type)}


def resume(run: Run, path) -> bool:
    """Continue ``run`` from the training checkpoint ``path`` if it exists (same settings, else
    :class:`lfm.checkpoint.CheckpointError`). Returns whether it resumed."""
    path = Path(path)
    if not path.exists():
        return False
    ck = ckpt.load(path, map_location=run.device)
    defaults = _plain_cfg(TrainConfig())  # fields added after the checkpoint was written keep their default
    stored = {**defaults, **ck["train_config"]}
    ck["model_config"] = {**dataclasses.asdict(ModelConfig()), **ck["model_config"]}  # likewise
    ckpt.verify({**ck, "train_config": stored}, dataclasses.asdict(run.model_cfg), _plain_cfg(run.cfg), path=path,
                ignore=BUDGET_FIELDS)
    if ck.get("data_hash") not in (None, run.data_hash):
        raise ckpt.CheckpointError(f"{path} was trained on other data (training-set hash {ck['data_hash']}, now "
                                   f"{run.data_hash}): other files, sets or splits. Use the same data, another output "
                                   "folder, or start over with --restart.")
    _bare(run.model).load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    run.sampler.load_state_dict(ck["sampler"])
    if run.proc_sampler is not None and ck.get("proc_sampler") is not None:
        run.proc_sampler.load_state_dict(ck["proc_sampler"])
    for name, dev in (("device_batches", run.dev), ("proc_device_batches", run.proc_dev)):
        if dev is not None and ck.get(name) is not None:
            dev.load_state_dict(ck[name])
    run.view_rng.bit_generator.state = ck["view_rng"]
    torch.set_rng_state(ck["torch_rng"].cpu())  # map_location may have moved it to the GPU
    run.state = ck["state"]
    if run.state["stopped"] in ("max_minutes", "max_epochs"):  # a larger budget continues the run
        run.state["stopped"] = None
    return True


def draw_batch(run: Run) -> Batch:
    """One training batch (see the module docstring), on the run's device: this rank's rows of the global batch."""
    cfg, rng = run.cfg, run.view_rng
    so3 = cfg.so3_fraction > 0 and rng.random() < cfg.so3_fraction
    kw = ({"camera": "so3", "projection": "orthographic"} if so3 else
          {"camera": cfg.train_camera, "projection": cfg.train_projection})
    use_proc = run.proc_ds is not None and rng.random() < cfg.procedural
    if run.dev is not None:  # made on the device, this rank's rows only
        return (run.proc_dev if use_proc else run.dev).draw(
            noise=cfg.noise, p_joint=cfg.p_joint, mirror=cfg.mirror, bend_p=cfg.bend, rig_aug=cfg.rig_aug,
            edge_drop=cfg.edge_drop, **kw)
    ds, sampler = (run.proc_ds, run.proc_sampler) if use_proc else (run.ds, run.sampler)
    b = ds.batch(sampler.next(), seed=int(rng.integers(2**63)), noise=cfg.noise, p_joint=cfg.p_joint,
                 mirror=cfg.mirror, bend=cfg.bend, rig_aug=cfg.rig_aug, edge_drop=cfg.edge_drop, **kw)
    if run.ctx.world > 1:
        b = b.rows(run.ctx.rows(len(b.category)))
    return b.to(run.device)


def train_step(model, opt, batch: Batch, *, allow_reflection: bool = False, procrustes: bool = True,
               amp: bool = False) -> float:
    """One optimiser step on ``batch``; returns the loss. ``amp``: bf16 autocast of the model's forward."""
    with torch.autocast(batch.points2d.device.type, dtype=torch.bfloat16, enabled=amp):
        pred = model(batch.points2d, batch.mask, batch.adjacency)
    loss = procrustes_mse(pred.float(), batch.target, batch.mask, allow_reflection=allow_reflection,
                          align=procrustes)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def _validate(run: Run) -> dict:
    per = {}
    for c, (cs, v) in run.val.items():
        r = evaluate_category(_bare(run.model), cs, v.points2d, v.points3d, v.visible, graph="trained", trained=run.cfg.graph,
                              device=run.device, attention=run.model_cfg.attention, graph_set=run.train_sets[c])
        per[c] = {k: r[k] for k in ("model_det", "model_refl", "ratio_det", "ratio_refl")}
    keys = ("model_det", "model_refl", "ratio_det", "ratio_refl")
    return {"mean": {k: float(np.mean([p[k] for p in per.values()])) for k in keys}, "per_category": per}


def end_epoch(run: Run, losses: list[float], t0: float, log=print) -> None:
    """Validate, step the scheduler, update the history, checkpoint (``best.pt`` when improved, ``last.pt``; a run
    without ``out_dir`` keeps the improved weights in ``run.best_weights`` instead)."""
    st, cfg = run.state, run.cfg
    st["epoch"] += 1
    v = (run.validate or _validate)(run)
    metric = v["mean"]["model_refl"]
    run.sched.step(metric)
    st["elapsed_s"] = elapsed = time.time() - t0
    lr = run.opt.param_groups[0]["lr"]
    st["history"].append({"epoch": st["epoch"], "step": st["step"], "loss": float(np.mean(losses)),
                          "val": v["mean"], "lr": lr, "elapsed_s": elapsed})
    improved = metric < st["best"]
    if improved:
        st["best"], st["best_epoch"] = metric, st["epoch"]
    if st["epoch"] - st["best_epoch"] >= cfg.early_stop:
        st["stopped"] = "early_stop"
    elif cfg.max_minutes and elapsed >= 60 * cfg.max_minutes:
        st["stopped"] = "max_minutes"
    if run.out_dir is None:  # nothing written: the best weights stay in memory
        if improved:
            run.best_weights = copy.deepcopy(_bare(run.model).state_dict())
    elif run.ctx.main:
        state = _state_dict(run) | {"val_per_category": v["per_category"]}
        if improved:
            ckpt.save(run.out_dir / "best.pt", state)
        ckpt.save(run.out_dir / "last.pt", state)
    run.ctx.barrier()
    if not run.ctx.main:
        return
    log(f"epoch {st['epoch']:4d}  loss {np.mean(losses):.4f}  val PA/rms det {v['mean']['model_det']:.4f} "
        f"refl {metric:.4f}  (x flat {v['mean']['ratio_refl']:.3f})  lr {lr:.1e}  {elapsed / 60:.1f} min")


def train(model_cfg: ModelConfig, cfg: TrainConfig, out_dir, *, resume: bool = True, progress: bool = True,
          splits: dict | None = None, log=print) -> dict:
    """Train (or continue) a model; returns the final summary (also in ``out_dir/summary.json``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = setup(model_cfg, cfg, out_dir, splits=splits)
    if not run.ctx.main:
        log = lambda *a, **k: None  # noqa: E731  (rank 0 logs)
    if resume and _resume(run, out_dir / "last.pt"):
        log(f"resumed {out_dir / 'last.pt'} at epoch {run.state['epoch']} (step {run.state['step']})")
    run_epochs(run, progress=progress and run.ctx.main, log=log)
    st = run.state
    summary = {"stopped": st["stopped"], "epochs": st["epoch"], "steps": st["step"], "samples": st.get("samples", 0),
               "samples_rank0": st.get("samples_rank", 0), "best_val_refl": st["best"],
               "best_epoch": st["best_epoch"], "elapsed_s": st["elapsed_s"], "history": st["history"],
               "model_config": dataclasses.asdict(model_cfg), "train_config": _plain_cfg(cfg),
               "data_hash": run.data_hash, "processes": run.ctx.world, "provenance": provenance(run.device.type)}
    if run.ctx.main:
        write_json(out_dir / "summary.json", summary)
    return summary


@contextlib.contextmanager
def steady_gc():
    """Python's collector walks every tracked object at each full collection: the millions from the imports, the
    data and the model never become garbage while training, so they are set aside (``gc.freeze``) for the block and
    the collections the steps' short-lived objects trigger stay short (profile of the v2 stream at 1 thread:
    ``gc_collect_main`` was 2-3 % of the step). Given back to the collector afterwards (``gc.unfreeze``), so that a
    process that trains many models (the ablations) frees each one."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_epochs(run: Run, *, progress: bool = False, log=print) -> None:
    """The training loop: epochs of ``cfg.epoch_steps`` steps (:func:`draw_batch`, :func:`train_step`; linear
    warm-up over ``cfg.warmup_steps``), each followed by :func:`end_epoch`, until the run stops (``max_epochs``,
    ``max_minutes`` or early stopping; the reason in ``run.state["stopped"]``)."""
    cfg, st = run.cfg, run.state
    t0 = time.time() - st["elapsed_s"]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epoch_steps, leave=False, mininterval=2.0)
    with steady_gc():
        while st["stopped"] is None:
            if st["epoch"] >= cfg.max_epochs:
                st["stopped"] = "max_epochs"
            elif cfg.max_minutes and st["elapsed_s"] >= 60 * cfg.max_minutes:
                st["stopped"] = "max_minutes"
            if st["stopped"]:
                break
            run.model.train()
            losses = []
            if bar is not None:
                bar.reset(total=cfg.epoch_steps)
                bar.set_description(f"epoch {st['epoch'] + 1}")
            for _ in range(cfg.epoch_steps):
                # linear warm-up; ReduceLROnPlateau acts only at epoch ends after it
                if st["step"] < cfg.warmup_steps:
                    for g in run.opt.param_groups:
                        g["lr"] = cfg.lr * (st["step"] + 1) / cfg.warmup_steps
                batch = draw_batch(run)
                st["samples"] = st.get("samples", 0) + len(batch.category) * run.ctx.world  # global samples seen
                st["samples_rank"] = st.get("samples_rank", 0) + len(batch.category)  # this process's share
                forward = run.forward if run.forward_for is None else run.forward_for(run.forward, batch)
                loss = train_step(forward, run.opt, batch, allow_reflection=cfg.allow_reflection,
                                  procrustes=cfg.procrustes, amp=run.amp)
                losses.append(run.ctx.mean(loss))  # the global batch's loss
                st["step"] += 1
                if bar is not None:
                    bar.update()
                    if st["step"] % 20 == 0:
                        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            end_epoch(run, losses, t0, log)
    if bar is not None:
        bar.close()


_resume = resume  # ``train``'s keyword ``resume`` shadows the function inside it


def export_run(src, dst, *, evaluation: dict | None = None, recipe: str = "") -> Path:
    """:func:`lfm.checkpoint.export` of a run's checkpoint with the rigs and licences of the category table: every
    benchmark set (trained on or held out), so ``lfm.lift(rig=...)`` knows them."""
    from .data import catalog
    from .evaluate import trained_on

    trained = trained_on(ckpt.load(src))
    rigs, licences = {}, {}
    for name in benchmark.CATEGORIES + benchmark.HELD_OUT:
        cs = catalog.load(name)
        rigs[cs.rig] = {"keypoints": cs.n_keypoints, "edges": cs.edges.tolist(), "category": name,
                        "edges_rule": cs.edges_rule, "trained_on": name in trained}
        licences[name] = cs.licence
    return ckpt.export(src, dst, rigs=rigs, licences=licences, evaluation=evaluation, recipe=recipe)


# ------------------------------------------------------------------------------------------------------ recipes
# A recipe file (params/train_*.yaml) is the one description of how a shipped checkpoint was made:
#
#   name: lfm_open_v2            # the exported file's stem
#   stages:                      # trained in order; each stage is resumable on its own
#     - name: stage1
#       model: {d_model: 64, ...}          # ModelConfig fields (a later stage inherits the previous model)
#       train: {max_minutes: 60, ...}      # TrainConfig fields
#     - name: stage2
#       init_from: stage1                  # start from the best weights of an earlier stage, or from a
#                                          # checkpoint file (e.g. lfm/checkpoints/lfm_open_v1.pt)
#       train: {bend: 0.5, ...}
#
# ``run_recipe`` trains the stages into ``out_dir/<stage>/`` and exports ``out_dir/model.pt`` (the recipe's name
# inside) from the last stage's best epoch. ``overrides`` (e.g. a smoke budget) replace TrainConfig fields of every stage.

RECIPE_KEYS = {"name", "stages"}
STAGE_KEYS = {"name", "model", "train", "init_from"}


def read_recipe(path) -> dict:
    """Read and check a recipe file; errors name the file, the key and the fix."""
    import yaml

    from .config import ConfigError

    path = resolve_path(path) if not Path(path).exists() else Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"recipe {path} does not exist; see params/train_*.yaml for the shipped recipes.") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML ({e}).") from None
    if not isinstance(data, dict) or set(data) - RECIPE_KEYS or not data.get("stages"):
        raise ConfigError(f"recipe {path} must hold 'name:' and a non-empty 'stages:' list; found "
                          f"{sorted(data) if isinstance(data, dict) else type(data).__name__}.")
    names = []
    for i, st in enumerate(data["stages"]):
        where = f"recipe {path}, stage {i + 1}"
        if not isinstance(st, dict) or set(st) - STAGE_KEYS or "name" not in st:
            raise ConfigError(f"{where}: a stage holds 'name', 'model', 'train' and optionally 'init_from'; found "
                              f"{sorted(st) if isinstance(st, dict) else type(st).__name__}.")
        if st.get("init_from") and st["init_from"] not in names and not resolve_path(st["init_from"]).is_file():
            raise ConfigError(f"{where}: init_from {st['init_from']!r} is neither an earlier stage ({names}) nor a "
                              "checkpoint file (a path relative to the repository).")
        for key, cls in (("model", ModelConfig), ("train", TrainConfig)):
            unknown = set(st.get(key) or {}) - {f.name for f in dataclasses.fields(cls)}
            if unknown:
                raise ConfigError(f"{where}: unknown {key} field(s) {sorted(unknown)}; known: "
                                  f"{[f.name for f in dataclasses.fields(cls)]}.")
        if "init_from" in (st.get("train") or {}):
            raise ConfigError(f"{where}: set init_from on the stage (a stage name), not in train:.")
        names.append(st["name"])
    return data | {"path": str(path)}


def recipe_configs(recipe: dict, out_dir, overrides: dict | None = None) -> list[tuple[str, ModelConfig, TrainConfig]]:
    """The resolved (stage name, model config, train config) of every stage."""
    from .config import from_params

    out, model_kw, names = [], {}, []
    for st in recipe["stages"]:
        model_kw = {**model_kw, **(st.get("model") or {})}
        train_kw = {**(st.get("train") or {}), **(overrides or {})}
        if st.get("init_from") in names:
            train_kw["init_from"] = str(Path(out_dir) / st["init_from"] / "best.pt")
        elif st.get("init_from"):
            train_kw["init_from"] = st["init_from"]
        names.append(st["name"])
        out.append((st["name"], from_params(model_kw, ModelConfig), from_params(train_kw, TrainConfig)))
    return out


def run_recipe(path, out_dir, *, overrides: dict | None = None, progress: bool = True, log=print,
               splits: dict | None = None) -> Path | None:
    """Train every stage of a recipe (resuming finished or interrupted stages) and export the result; returns the
    exported checkpoint ``out_dir/model.pt``. With ``splits`` (prepared data, :mod:`lfm.data.bundle`) it trains
    only and returns None: the export reads the category table, so it runs where the data are (rerun there)."""
    recipe = read_recipe(path)
    out_dir = Path(out_dir)
    for name, mcfg, tcfg in recipe_configs(recipe, out_dir, overrides):
        log(f"recipe {recipe['name']}: stage {name} -> {out_dir / name}")
        sp = None if splits is None else benchmark.pick(
            splits, tcfg.train_sets, f"stage {name} trains on sets the prepared splits hold no split for:")
        train(mcfg, tcfg, out_dir / name, progress=progress, log=log, splits=sp)
    return None if splits is not None else export_recipe(path, out_dir, overrides=overrides)


def export_recipe(path, out_dir, *, overrides: dict | None = None) -> Path:
    """Export ``out_dir/model.pt`` from the best epoch of a recipe's last stage as it stands (a stopped run too), and
    write ``out_dir/recipe_summary.json`` (every stage's history, configs, state). Trains nothing."""
    recipe = read_recipe(path)
    out_dir = Path(out_dir)
    stages = {}
    for st in recipe["stages"]:
        ck = ckpt.load(out_dir / st["name"] / "last.pt")
        stages[st["name"]] = {k: ck["state"].get(k) for k in ("stopped", "epoch", "step", "samples", "best",
                                                               "best_epoch", "elapsed_s")} | {
            "history": ck["state"]["history"], "train_config": ck["train_config"], "model_config": ck["model_config"]}
    last = recipe["stages"][-1]["name"]
    dst = export_run(out_dir / last / "best.pt", out_dir / "model.pt", recipe=recipe["name"])
    write_json(out_dir / "recipe_summary.json", {"recipe": recipe, "stages": stages, "exported": str(dst),
                                                 "overrides": overrides or {}, "provenance": provenance()})
    return dst
