"""Checkpoint files: save (atomic), load (clear errors), verify against a config, export for inference.

Two kinds of file, both plain ``torch.save`` dicts:

* a *training* checkpoint (``last.pt`` / ``best.pt`` of a run): model, optimiser, scheduler, sampler and RNG
  states, the resolved configs, history, data hash, provenance (written by :mod:`lfm.train`);
* an *inference* checkpoint (:func:`export`): weights, configs, the rigs of the training categories (name ->
  keypoint count and skeleton, for ``lfm.lift(rig=...)``), data licences, metrics; no optimiser.

Training, lifting and the CLI import this module; none of them imports the training loop to read a file.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from .results import atomic_write_bytes

__all__ = ["CheckpointError", "save", "load", "verify", "export", "load_model", "of_run", "SHIPPED", "DEFAULT"]

SHIPPED = Path(__file__).parent / "checkpoints"
DEFAULT = SHIPPED / "lfm_open_v3.pt"  # the checkpoint lfm.lift uses unless told otherwise (v1 and v2 stay loadable)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not belong to this code (the message says what to do)."""


def save(path, state: dict) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place (never half-written)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :mod:`lfm.train` or :func:`export`; a clear :class:`CheckpointError` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; train one (lfm train) or pass the shipped "
                              f"checkpoint (default: {DEFAULT.relative_to(SHIPPED.parent.parent)}).")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a corrupt file
        raise CheckpointError(f"checkpoint {path} could not be read ({type(e).__name__}: {e}); it is corrupt or "
                              "not a torch file: delete it and train again, or fetch the shipped one.") from None
    if not isinstance(ck, dict) or "model" not in ck or "model_config" not in ck:
        raise CheckpointError(f"checkpoint {path} has no 'model'/'model_config' entries: it was not written by "
                              "lfm.train; pass a checkpoint made by `lfm train`.")
    return ck


def verify(ck: dict, model_config: dict, train_config: dict, *, path, ignore=()) -> None:
    """Raise :class:`CheckpointError` unless ``ck`` was written with these configs (``ignore``: fields that may
    change between sessions, such as the time budget)."""
    a = {k: v for k, v in ck.get("train_config", {}).items() if k not in ignore}
    b = {k: v for k, v in train_config.items() if k not in ignore}
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if ck["model_config"] != model_config:
        diff += sorted(f"model.{k}" for k in set(ck["model_config"]) | set(model_config)
                       if ck["model_config"].get(k) != model_config.get(k))
    if diff:
        best = Path(path).with_name("best.pt")
        raise CheckpointError(
            f"{path} was written with other settings (differs in {diff}); resume with the same parameters, "
            f"choose another output folder, or start over with --restart (deletes nothing but overwrites "
            f"last.pt{'; ' + str(best) + ' is intact' if best.exists() else ''}).")


def export(src, dst, *, rigs: dict, licences: dict, evaluation: dict | None = None, recipe: str = "") -> Path:
    """A small inference checkpoint from a training one: weights, configs, ``rigs`` (``{name: {"keypoints",
    "edges", "category", "trained_on", ...}}``), data ``licences``, history and metrics; no optimiser."""
    ck = load(src)
    out = {"model": ck["model"], "model_config": ck["model_config"], "train_config": ck["train_config"],
           "state": {k: ck["state"][k] for k in ("epoch", "step", "best", "best_epoch", "elapsed_s", "stopped")},
           "history": ck["state"]["history"], "val_per_category": ck["val_per_category"], "rigs": rigs,
           "data_licences": licences, "data_hash": ck["data_hash"], "benchmark": ck["benchmark"],
           "provenance": ck["provenance"], "evaluation": evaluation, "recipe": recipe}
    return save(dst, out)


def load_model(path=None, device: str = "cpu"):
    """``(model, checkpoint dict)``: an :class:`lfm.model.LFM` in eval mode with the checkpoint's weights."""
    from .config import ModelConfig
    from .model import LFM

    path = DEFAULT if path is None else Path(path)
    ck = load(path, map_location=device)
    model = LFM(ModelConfig(**ck["model_config"])).to(device)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: weights do not fit its model_config ({e}).") from None
    return model.eval(), ck


def of_run(results_dir, train_run: str, checkpoint: str = "") -> Path:
    """The checkpoint a notebook scores: ``checkpoint`` (relative to the repository) when given, else the export of
    02_train's run ``<results_dir>/<train_run>/model.pt``; a missing file is an error that says what to do."""
    from . import paths

    path = paths.root() / checkpoint if checkpoint else Path(results_dir) / train_run / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run 02_train first (it exports <results>/{train_run}/"
                                "model.pt), or set checkpoint to a file such as lfm/checkpoints/lfm_open_v3.pt.")
    return path
