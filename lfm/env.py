"""What this machine offers the bundle: versions, device, threads, where the data mirror and cache are."""

from __future__ import annotations

import importlib.metadata as md

import torch

from . import paths
from .results import provenance

__all__ = ["report", "resolve_device"]

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


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` = CUDA when torch sees a GPU, else CPU; ``cuda`` without a GPU is an error that says so."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no CUDA device; set device to 'auto' or 'cpu'.")
    return torch.device(name)
