"""What this machine offers the bundle: versions, device, threads, where the data mirror and cache are."""

from __future__ import annotations

import importlib.metadata as md

import torch

from . import paths
from .io import provenance

__all__ = ["report"]

PACKAGES = ("torch", "numpy", "scipy", "pandas", "matplotlib", "seaborn", "papermill", "nbformat", "pyyaml", "tqdm")


def report() -> dict:
    """A dict describing the environment (the body of ``environment.json`` written by ``00_environment``)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    mirror = paths.mirror_dir()
    manifest = mirror / "MANIFEST.json"
    return {
        "provenance": provenance(),
        "packages": versions,
        "cuda_available": torch.cuda.is_available(),
        "bf16_autocast": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        "root": str(paths.root()),
        "data_cache": str(paths.data_dir()),
        "mirror": str(mirror),
        "mirror_found": manifest.is_file(),
    }
