"""Typed, validated configuration: one place for defaults (the CPU smoke values), one path from notebook to package.

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

__all__ = ["ModelConfig", "from_params", "validate", "ConfigError"]


class ConfigError(ValueError):
    """A configuration value of the wrong type or out of range."""


def _f(default, help: str, *, min=None, max=None, choices=None):
    return field(default=default, metadata={"help": help, "min": min, "max": max, "choices": choices})


@dataclass(frozen=True)
class ModelConfig:
    """The :class:`lfm.model.LFM` architecture. Paper: 4 layers; width/heads 64/4, 256/4 or 512/8 by data size."""

    d_model: int = _f(64, "token width D (paper: 64 / 256 / 512 by data size)", min=2)
    n_heads: int = _f(4, "attention heads per branch (paper: 4 / 4 / 8)", min=1)
    n_layers: int = _f(4, "hybrid graph-transformer layers L (paper: 4)", min=1)
    attention: str = _f("hybrid", "hybrid = graph attention + MHSA (paper); global / local = one branch (Fig. 6a)",
                        choices=("hybrid", "global", "local"))
    positional: str = _f("tpe", "tpe = fixed random Fourier features (paper); mlp = learned projection (Tab. 3)",
                         choices=("tpe", "mlp"))
    rff_sigma: float = _f(1.0, "std of the TPE frequencies (not stated in the paper)", min=1e-6)
    mlp_ratio: int = _f(4, "MLP expansion ratio (not stated in the paper)", min=1)
    dropout: float = _f(0.0, "dropout in attention and MLP (not stated in the paper)", min=0.0, max=0.99)
    xy_residual: bool = _f(False, "decoder adds the normalised (x, y, 0) to its output (not in the paper)")
    tpe_seed: int = _f(0, "seed of the fixed TPE frequencies", min=0)

    def __post_init__(self):
        validate(self)
        if self.d_model % self.n_heads:
            raise ConfigError(f"ModelConfig.d_model = {self.d_model} must be divisible by n_heads = {self.n_heads}.")
        if self.positional == "tpe" and self.d_model % 2:
            raise ConfigError(f"ModelConfig.d_model = {self.d_model} must be even for positional='tpe'.")


def _type_ok(value: Any, typ: Any) -> bool:
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    origin = typing.get_origin(typ)
    if origin in (list, tuple):
        (inner, *_) = typing.get_args(typ) or (Any,)
        return isinstance(value, (list, tuple)) and all(inner is Any or _type_ok(v, inner) for v in value)
    return isinstance(value, typ)


def validate(cfg: Any, where: str = "the parameters cell or params/paper/*.yaml") -> None:
    """Check every field of a config dataclass against its type and metadata; raise :class:`ConfigError`."""
    hints = typing.get_type_hints(type(cfg))
    name = type(cfg).__name__
    for f in dataclasses.fields(cfg):
        v, typ, meta = getattr(cfg, f.name), hints[f.name], f.metadata
        if not _type_ok(v, typ):
            tname = getattr(typ, "__name__", str(typ))
            raise ConfigError(f"{name}.{f.name} = {v!r} must be of type {tname}; set {f.name} in {where}.")
        if meta.get("choices") is not None and v not in meta["choices"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be one of {meta['choices']}; set {f.name} in {where}.")
        if meta.get("min") is not None and v < meta["min"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be >= {meta['min']}; set {f.name} in {where}.")
        if meta.get("max") is not None and v > meta["max"]:
            raise ConfigError(f"{name}.{f.name} = {v!r} must be <= {meta['max']}; set {f.name} in {where}.")


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
    return cls(**values)
