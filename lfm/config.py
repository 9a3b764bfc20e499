"""Typed, validated configuration: the only place a default is written, one path from notebook to package.

The defaults below are the recipe of the shipped checkpoint's architecture and training. Run sizes live in
files: the notebooks' parameters cells hold the CPU smoke sizes, ``params/paper/NN_*.yaml`` the paper-scale runs,
``params/train_*.yaml`` the recipes of shipped checkpoints. Allowed values (choices) are listed once, here.

A notebook's ``parameters`` cell holds literal assignments named like the fields below; the next cell calls
``cfg = lfm.config.from_params(globals(), lfm.config.ModelConfig)``, which picks the fields, checks types and
ranges (papermill injects ``-p d_model 1.5`` unchecked) and returns a frozen dataclass. Field metadata carries
the help text, the allowed range or choices, and where the value comes from in the paper.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

from .data.views import CAMERAS, PROJECTIONS

__all__ = ["ModelConfig", "TrainConfig", "from_params", "validate", "ConfigError", "ATTENTIONS", "POSITIONALS", "GRAPHS"]

ATTENTIONS = ("hybrid", "global", "local")  # hybrid = graph attention + MHSA (paper); one branch (Fig. 6a)
POSITIONALS = ("tpe", "mlp")  # fixed random Fourier features (paper) or a learned MLP (Table 3)
GRAPHS = ("skeleton", "mean_knn", "input_knn", "mix")  # graph of the local branch in training (mix: drawn per batch)


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range."""


def _f(default, help: str, *, min=None, max=None, choices=None, above=None, below=None):
    """A field with its help text and allowed values: ``min``/``max`` inclusive, ``above``/``below`` strict."""
    return field(default=default, metadata={"help": help, "min": min, "max": max, "choices": choices,
                                            "above": above, "below": below})


@dataclass(frozen=True)
class ModelConfig:
    """The :class:`lfm.model.LFM` architecture. Paper: 4 layers; width/heads 64/4, 256/4 or 512/8 by data size."""

    d_model: int = _f(64, "token width D (paper: 64 / 256 / 512 by data size)", min=2)
    n_heads: int = _f(4, "attention heads per branch (paper: 4 / 4 / 8)", min=1)
    n_layers: int = _f(4, "hybrid graph-transformer layers L (paper: 4)", min=1)
    attention: str = _f("hybrid", "hybrid = graph attention + MHSA (paper); global / local = one branch (Fig. 6a)",
                        choices=ATTENTIONS)
    positional: str = _f("tpe", "tpe = fixed random Fourier features (paper); mlp = learned projection (Tab. 3)",
                         choices=POSITIONALS)
    rff_sigma: float = _f(1.0, "std of the TPE frequencies (not stated in the paper)", above=0.0)
    mlp_ratio: int = _f(4, "MLP expansion ratio (not stated in the paper)", min=1)
    dropout: float = _f(0.0, "dropout in attention and MLP (not stated in the paper)", min=0.0, max=0.99)
    xy_residual: bool = _f(True, "decoder adds the normalised (x, y, 0) to its output (not in the paper; calibration "
                                  "found it better, the shipped models use it)")
    tpe_seed: int = _f(0, "seed of the fixed TPE frequencies", min=0)
    pe_every_layer: bool = _f(False, "inject the positional encoding before every layer (2D-LFM), not only at the input")

    def __post_init__(self):
        validate(self)
        if self.d_model % self.n_heads:
            raise ConfigError(f"ModelConfig.d_model = {self.d_model} must be divisible by n_heads = {self.n_heads}.")
        if self.positional == "tpe" and self.d_model % 2:
            raise ConfigError(f"ModelConfig.d_model = {self.d_model} must be even for positional='tpe'.")


@dataclass(frozen=True)
class TrainConfig:
    """Training on the open benchmark. Paper: lr 1e-3, ReduceLROnPlateau (patience 20), early stopping after 30
    epochs without validation gain. What the paper leaves open is decided here and documented in the README.

    Views are drawn fresh every step (on-the-fly 2D from 3D), so an "epoch" is ``epoch_steps`` optimiser steps,
    followed by one validation pass and one checkpoint; patience and early stopping count these epochs.
    """

    categories: tuple = _f(("all",), "benchmark sets trained on; 'all' = every in-distribution record of the "
                          "category table (lfm.data.categories); held-out sets are never trained on")
    present: tuple = _f((), "held-out sets trained on anyway, for Table 2's 'present' condition: the first 80 % "
                        "of their trajectories train, the rest test (lfm.data.benchmark.split_present)")
    batch_size: int = _f(64, "samples per step (not stated in the paper)", min=1)
    lr: float = _f(1e-3, "AdamW learning rate (paper: 1e-3)", above=0.0)
    warmup_steps: int = _f(0, "linear learning-rate warm-up over the first optimiser steps, 0 = none (large "
                           "batches and fresh AdamW state on a trained model)", min=0)
    weight_decay: float = _f(1e-4, "AdamW weight decay (not stated in the paper)", min=0.0)
    epoch_steps: int = _f(200, "optimiser steps per epoch (one validation + checkpoint each)", min=1)
    max_epochs: int = _f(1000, "upper bound on epochs", min=1)
    max_minutes: float = _f(0.0, "wall-clock budget in minutes, 0 = none (checkpointed, resumable)", min=0.0)
    plateau_patience: int = _f(20, "ReduceLROnPlateau patience in epochs (paper: 20)", min=1)
    plateau_factor: float = _f(0.5, "ReduceLROnPlateau factor (not stated in the paper)", above=0.0, below=1.0)
    early_stop: int = _f(30, "stop after this many epochs without validation gain (paper: 30)", min=1)
    balance: str = _f("category", "category = each category equally often; frames = by frame count",
                      choices=("category", "frames"))
    bucket: bool = _f(True, "one category (one keypoint count) per batch: no padding")
    graph: str = _f("skeleton", "graph of the local branch: skeleton, mean_knn (per category), input_knn (per 2D "
                    "input), mix (per batch one of skeleton, motion MST, mean-shape kNN, input kNN)", choices=GRAPHS)
    edge_drop: float = _f(0.0, "graph='mix': probability of dropping each graph edge", min=0.0, max=0.9)
    rig_aug: float = _f(0.0, "probability that a batch's frames get another rig of the same body (keypoint subsets, "
                        "virtual markers, merged neighbours)", min=0.0, max=1.0)
    procedural: float = _f(0.0, "fraction of batches drawn from procedural random bodies (training only)", min=0.0,
                           max=0.9)
    procedural_bodies: int = _f(200, "number of procedural bodies generated for training", min=1)
    allow_reflection: bool = _f(False, "loss alignment in O(3) (paper's R = U V^T) instead of SO(3)")
    procrustes: bool = _f(True, "align prediction to target in the loss (False = centroid only, Fig. 6a ablation)")
    train_camera: str = _f("upright", "training cameras: upright (elevation/roll ranges) or so3", choices=CAMERAS)
    train_projection: str = _f("perspective", "training projection", choices=PROJECTIONS)
    so3_fraction: float = _f(0.0, "fraction of steps drawn with SO(3) orthographic views instead", min=0.0, max=1.0)
    noise: float = _f(0.0, "2D noise std as a fraction of the RMS radius", min=0.0)
    mirror: float = _f(0.5, "probability of mirroring a 3D training frame left-right (pose augmentation)", min=0.0, max=1.0)
    bend: float = _f(0.0, "probability of bending 1-2 limbs of an articulated training pose (pose augmentation)",
                     min=0.0, max=1.0)
    init_from: str = _f("", "start from the weights of this checkpoint (fine-tuning); empty = random init")
    p_joint: float = _f(0.0, "probability of hiding each joint (occlusion augmentation)", min=0.0, max=1.0)
    train_stride: int = _f(1, "use every k-th training frame (smoke runs)", min=1)
    val_frames: int = _f(200, "validation frames per category (fixed, seeded views)", min=1)
    seed: int = _f(0, "seed of sampling, views and initialisation", min=0)
    device: str = _f("auto", "auto = cuda if available (bf16 autocast), else cpu", choices=("auto", "cpu", "cuda"))
    threads: int = _f(0, "torch CPU threads, 0 = torch's default", min=0)
    compile: bool = _f(False, "torch.compile the model (dynamic shapes); falls back to eager if compilation fails. "
                       "CPU: +14-41 % samples/s at d = 64 after 15-40 s of compilation (results/bench/cpu.json)")
    batches: str = _f("device", "device = batches drawn in torch on the training device, vectorised "
                      "(lfm.data.device_batches, always bucketed); numpy = the per-category numpy reference path "
                      "(lfm.data.dataset.FrameDataset.batch)", choices=("device", "numpy"))
    precision: str = _f("auto", "auto = bf16 autocast on CUDA and on CPUs with bf16 instructions (AVX512-BF16, "
                        "AMX; attention stays float32 there), else float32; bfloat16 = bf16 autocast everywhere; "
                        "float32 = none", choices=("auto", "float32", "bfloat16"))

    def __post_init__(self):
        validate(self)
        if self.batches == "device" and not self.bucket:
            raise ConfigError("TrainConfig.batches = 'device' always buckets (one keypoint count per batch); set "
                              "bucket: true, or batches: numpy for mixed padded batches.")
        if not self.categories and not self.present:
            raise ConfigError("TrainConfig.categories is empty; list at least one benchmark set, or 'all'.")
        from .data import benchmark

        held = [c for c in self.categories if c in benchmark.HELD_OUT]
        if held:
            raise ConfigError(f"TrainConfig.categories has {held}: held out of training by the benchmark (train on "
                              "them only for Table 2's 'present' condition, in TrainConfig.present); choose from "
                              f"{list(benchmark.CATEGORIES)} or 'all'.")
        wrong = [c for c in self.present if c not in benchmark.HELD_OUT]
        if wrong:
            trained = [c for c in wrong if c in benchmark.CATEGORIES]
            raise ConfigError(f"TrainConfig.present has {wrong}: " + (
                f"{trained} are in-distribution sets (they go in categories); " if trained else
                "not held-out sets of the benchmark; ") + f"held-out sets: {list(benchmark.HELD_OUT)}.")

    def check_sets(self) -> None:
        """The training sets must be benchmark sets when their splits come from the benchmark (``lfm.train.setup``
        without prepared ``splits``; with them, any name the splits hold, e.g. ``lfm.experiments.h3wb``'s)."""
        from .data import benchmark

        unknown = [c for c in self.categories if c != "all" and c not in benchmark.CATEGORIES]
        if unknown:
            raise ConfigError(f"TrainConfig.categories has {unknown}: not sets of the open benchmark; choose from "
                              f"{list(benchmark.CATEGORIES)} or 'all' (or pass prepared splits that hold them).")

    @property
    def train_sets(self) -> tuple[str, ...]:
        """The resolved list of training sets ('all' expanded)."""
        from .data import benchmark

        return benchmark.resolve(self.categories) + tuple(self.present)


def type_ok(value: Any, typ: Any) -> bool:
    """Whether ``value`` has the declared type ``typ`` (the one type rule of configs and notebook parameters): an
    int is a float, a bool is never an int, ``list[str]`` checks the items, ``None``/``Any``/unions are not
    checked."""
    if typ is None or typ is Any:
        return True
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(typ)
    if origin in (list, tuple):
        args = [a for a in typing.get_args(typ) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(type_ok(v, args[0] if args else None) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if origin is not None:
        return True  # Union and other forms: not checked
    return isinstance(value, typ)


def validate(cfg: Any, where: str = "the parameters cell or params/paper/*.yaml") -> None:
    """Check every field of a config dataclass against its type and metadata; raise :class:`ConfigError`."""
    hints = typing.get_type_hints(type(cfg))
    name = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        v, typ, meta = getattr(cfg, f.name), hints[f.name], f.metadata
        if not type_ok(v, typ):
            tname = getattr(typ, "__name__", str(typ))
            raise ConfigError(f"{name}.{f.name} = {v!r} must be of type {tname}; set {f.name} in {where}.")
        if meta.get("choices") is not None and v not in meta["choices"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be one of {meta['choices']}; set {f.name} in {where}.")
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be >= {meta['min']}; set {f.name} in {where}.")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be <= {meta['max']}; set {f.name} in {where}.")
        if meta.get("above") is not None and not v > meta["above"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be > {meta['above']}; set {f.name} in {where}.")
        if meta.get("below") is not None and not v < meta["below"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be < {meta['below']}; set {f.name} in {where}.")


def from_params(namespace: Mapping[str, Any], cls: type, **overrides: Any):
    """Build ``cls`` from the names in ``namespace`` (e.g. a notebook's ``globals()``) that are its fields.

    Integers are accepted for float fields (converted); everything else must already have the field's type.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {k: namespace[k] for k in names if k in namespace}
    values.update(overrides)
    for k, v in values.items():
        if hints[k] is float and isinstance(v, int) and not isinstance(v, bool):
            values[k] = float(v)
        if hints[k] is tuple and isinstance(v, list):  # YAML and notebook literals give lists
            values[k] = tuple(v)
    return cls(**values)
