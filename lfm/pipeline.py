"""Run the numbered notebooks in order with papermill (``make reproduce``, ``make paper``, ``lfm reproduce``).

* ``smoke``: each notebook's own defaults (the CPU smoke size) plus ``run_mode='smoke'``; executed copies go to
  ``results/smoke/notebooks/`` and every output under ``results/smoke/``, ``figures/smoke/`` (git-ignored).
* ``paper``: parameters from ``params/paper/<notebook stem>.yaml`` plus ``run_mode='paper'``; executed copies go to
  ``results/notebooks/``. A YAML key the notebook does not declare is an error (papermill only logs it).

The runner stops at the first failing notebook, keeps its executed copy (papermill writes the error into it) and
returns a non-zero exit status.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from . import paths

__all__ = ["list_notebooks", "notebook_parameters", "run_notebooks"]


def list_notebooks(nb_dir: Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` in execution order."""
    nb_dir = Path(nb_dir or paths.root() / "notebooks")
    return sorted(p for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))


def notebook_parameters(nb: Path, run: str, params_dir: Path | None = None) -> dict:
    """Parameters to inject into ``nb`` for a ``run`` ('smoke' or 'paper'), checked against its parameters cell."""
    import papermill as pm
    import yaml

    declared = pm.inspect_notebook(str(nb))
    if "run_mode" not in declared:
        raise ValueError(
            f"{nb.name} has no 'run_mode' parameter; add `run_mode: str = \"smoke\"  # smoke or paper` to its "
            "parameters cell."
        )
    params: dict = {}
    if run == "paper":
        params_dir = Path(params_dir or paths.root() / "params" / "paper")
        yml = params_dir / f"{nb.stem}.yaml"
        if yml.is_file():
            loaded = yaml.safe_load(yml.read_text()) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{yml} must hold a mapping of parameter: value, got {type(loaded).__name__}.")
            unknown = sorted(set(loaded) - set(declared))
            if unknown:
                raise ValueError(
                    f"{yml} sets {unknown}, which {nb.name} does not declare; known parameters: {sorted(declared)}."
                )
            params.update(loaded)
    params["run_mode"] = run
    return params


def run_notebooks(
    run: str = "smoke",
    only: list[str] | None = None,
    nb_dir: Path | None = None,
    out_dir: Path | None = None,
    params_dir: Path | None = None,
    timeout: int | None = 3600,
) -> int:
    """Execute the notebooks; return 0 on success, 1 at the first failure (its executed copy is kept)."""
    import papermill as pm

    if run not in paths.RUNS:
        raise ValueError(f"run={run!r} must be one of {paths.RUNS}.")
    nbs = list_notebooks(nb_dir)
    if only:
        nbs = [nb for nb in nbs if any(nb.name.startswith(o) for o in only)]
    if not nbs:
        print(f"no notebooks to run in {nb_dir or paths.root() / 'notebooks'} (only={only})", file=sys.stderr)
        return 1
    out_dir = Path(out_dir or paths.results_dir(run) / "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MPLBACKEND", "agg")
    for nb in nbs:
        out = out_dir / nb.name
        params = notebook_parameters(nb, run, params_dir)
        print(f"[lfm] {nb.name} ({run}) -> {out}", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb), str(out), parameters=params, kernel_name="python3", cwd=str(nb.parent),
                log_output=False, progress_bar=False, execution_timeout=timeout,
            )
        except pm.PapermillExecutionError as e:
            print(f"[lfm] FAILED {nb.name} in cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
            print(f"[lfm] the executed notebook with the error is {out}", file=sys.stderr)
            return 1
        print(f"[lfm] ok {nb.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
