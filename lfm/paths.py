"""Where things live: the repository root, the data cache, the offline mirror, run outputs.

Paths never depend on the current directory (papermill runs notebooks from the caller's cwd, nbval from the
notebook's folder). Settings, read when called:

* ``LFM_ROOT``: the repository root (default: the folder above this package that holds ``pyproject.toml``).
* ``LFM_DATA``: the data cache (default ``<root>/data``, git-ignored).
* ``LFM_MIRROR``: an offline mirror of the open data (default ``<root>/../shared/data/open``).
* ``LFM_OUTPUT``: a folder that receives every output instead of the repository: ``results/``, ``figures/`` and
  ``runs/`` are then made under it (default: the repository root). ``make test`` sets it to
  ``.pytest_cache/lfm-output`` so that tests never touch ``results/smoke`` or ``figures/smoke``;
  ``lfm reproduce --output DIR`` sets it for one run.

Runs: ``run='paper'`` writes to ``results/`` and ``figures/`` (committed); ``run='smoke'`` writes to
``results/smoke/`` and ``figures/smoke/`` (git-ignored), so a smoke run never overwrites a paper result.
``runs/`` (git-ignored) holds the CLI's default outputs (``lfm train``, ``lfm evaluate``) and the executed copies
of notebooks that failed.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["root", "data_dir", "mirror_dir", "output_dir", "results_dir", "figures_dir", "runs_dir", "show", "RUNS"]

RUNS = ("smoke", "paper")


def root() -> Path:
    """The repository root (``LFM_ROOT`` or the nearest parent of this package with a ``pyproject.toml``)."""
    env = os.environ.get("LFM_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    here = Path(__file__).resolve().parent
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "lfm").is_dir():
            return p
    raise FileNotFoundError(
        f"no pyproject.toml above {here}: lfm is installed outside its repository; set LFM_ROOT to the "
        "repository folder (the one with pyproject.toml)."
    )


def data_dir() -> Path:
    env = os.environ.get("LFM_DATA")
    return Path(env).expanduser().resolve() if env else root() / "data"


def mirror_dir() -> Path:
    env = os.environ.get("LFM_MIRROR")
    return Path(env).expanduser().resolve() if env else (root().parent / "shared" / "data" / "open").resolve()


def output_dir() -> Path:
    """The folder under which ``results/``, ``figures/`` and ``runs/`` are written: ``LFM_OUTPUT`` or the root."""
    env = os.environ.get("LFM_OUTPUT")
    return Path(env).expanduser().resolve() if env else root()


def _run_dir(base: str, run: str) -> Path:
    if run not in RUNS:
        raise ValueError(f"run={run!r} must be one of {RUNS} (set run_mode in the parameters cell).")
    return output_dir() / base / ("smoke" if run == "smoke" else "")


def results_dir(run: str = "smoke") -> Path:
    """``results/`` for paper runs, ``results/smoke/`` for smoke runs (created on demand by writers)."""
    return _run_dir("results", run)


def figures_dir(run: str = "smoke") -> Path:
    """``figures/`` for paper runs, ``figures/smoke/`` for smoke runs."""
    return _run_dir("figures", run)


def runs_dir() -> Path:
    """``runs/`` (git-ignored): default outputs of ``lfm train`` / ``lfm evaluate``, failed notebook copies."""
    return output_dir() / "runs"


def show(path) -> str:
    """``path`` relative to the repository root when it lies inside it, else absolute (for messages)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(root()))
    except ValueError:
        return str(p)
