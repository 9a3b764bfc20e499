"""Run the numbered notebooks in order with papermill (``make reproduce``, ``make paper``, ``lfm reproduce``), and
check a notebook's parameters (:func:`check_parameters`).

* ``smoke``: each notebook's own defaults (the CPU smoke size) plus ``run_mode='smoke'``; executed copies go to
  ``results/smoke/notebooks/`` and every output under ``results/smoke/``, ``figures/smoke/`` (git-ignored).
* ``paper``: parameters from ``params/paper/<notebook stem>.yaml`` plus ``run_mode='paper'``; executed copies go to
  ``results/notebooks/``.
* ``params_file`` (``lfm reproduce -f FILE``): your own parameters for one notebook, on top of the above.
* ``output`` (``lfm reproduce --output DIR``): every output under ``DIR`` instead of the repository (it sets
  ``LFM_OUTPUT``, see :mod:`lfm.paths`).

Parameters are checked before anything runs: a key the notebook does not declare, or a value whose type differs
from the one its parameters cell declares, is a one-line :class:`lfm.config.ConfigError` (papermill alone only
logs unknown keys and injects any type).

The log is one ``[lfm]`` line when a notebook starts and one when it ends: the kernel runs with
:data:`KERNEL_ARGUMENTS` (errors only) and third-party C output is silenced where it starts
(:func:`lfm.data.kinematic.quiet_c_output`).

Each notebook is executed into a temporary file; its executed copy replaces the previous one only on success.
The runner stops at the first failing notebook, leaves the previous executed copy untouched, keeps the failed copy
(papermill writes the error into it) under ``runs/failed/<run>/`` and returns a non-zero exit status.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
import typing
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import paths
from .config import type_ok

__all__ = ["list_notebooks", "notebook_parameters", "check_parameters", "run_notebooks"]

# names IPython puts into a notebook's namespace; never parameters
_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}
# the kernel logs errors only: its one warning per start (the local TCP transport is unencrypted) drowned the
# runner's [lfm] lines; the kernel's errors and every cell's output still reach the executed notebook
KERNEL_ARGUMENTS = ("--IPKernelApp.log_level=ERROR",)
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "tuple": tuple, "dict": dict,
          "typing": typing, "Any": Any}


def list_notebooks(nb_dir: Path | None = None) -> list[Path]:
    """The numbered notebooks ``NN_name.ipynb`` in execution order."""
    nb_dir = Path(nb_dir or paths.root() / "notebooks")
    return sorted(p for p in nb_dir.glob("[0-9][0-9]_*.ipynb"))


def _type_of(t: Any) -> Any:
    """A type from an annotation or papermill's ``inferred_type_name`` ('int', 'list[str]'); None if unknown."""
    if isinstance(t, str):
        try:
            t = eval(t, {"__builtins__": {}}, _TYPES)  # noqa: S307 - names limited to _TYPES
        except Exception:  # noqa: BLE001 - an annotation we cannot read is not checked
            return None
    return t if isinstance(t, type) or typing.get_origin(t) is not None else None


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) if typing.get_origin(t) is None else str(t).replace("typing.", "")


def check_parameters(namespace: Mapping[str, Any], spec: Mapping[str, Any] | None = None, *,
                     choices: Mapping[str, Sequence] | None = None, only_declared: bool = False,
                     source: str = "the parameters cell, params/paper/<notebook>.yaml or the -f/-p values") -> dict:
    """Check parameter values against their declared types; return ``{name: value}`` of the declared ones.

    In a notebook, call it first thing in the cell after the ``parameters`` cell::

        import lfm.pipeline, lfm.paths
        lfm.pipeline.check_parameters(globals(), choices={"run_mode": lfm.paths.RUNS})

    ``spec`` (``{name: type}``) defaults to ``namespace["__annotations__"]``: the annotations of the parameters
    cell (``frame: int = 100  # ...``), which papermill's injected values (plain assignments) do not change. A
    value of another type (``frame = "hundred"``) raises a one-line :class:`lfm.config.ConfigError` naming the
    parameter, its value, the declared type and where to fix it. ``int`` is accepted for ``float``; ``bool`` is
    never an ``int``; ``list[str]`` checks the items. ``choices`` restricts some parameters to listed values.

    ``only_declared=True`` also rejects keys of ``namespace`` that ``spec`` does not declare (the runner checks a
    parameters file this way before running; inside a notebook leave it False: the namespace holds other names).
    ``spec`` may also be papermill's ``inspect_notebook`` result (``{name: {"inferred_type_name": "int", ...}}``).
    Ranges that depend on data (a frame index within a category) stay with the notebook that knows them.
    """
    from .config import ConfigError

    if spec is None:
        spec = namespace.get("__annotations__", {})
    types = {k: _type_of(v["inferred_type_name"] if isinstance(v, Mapping) else v) for k, v in spec.items()}
    if only_declared:
        unknown = sorted(k for k in namespace if k not in types and not k.startswith("_") and k not in _IPYTHON_NAMES)
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown} in {source}; the notebook declares {sorted(types)}: "
                              "fix the name or remove it.")
    out = {}
    for name, t in types.items():
        if name not in namespace:
            continue
        value = namespace[name]
        if not type_ok(value, t):
            raise ConfigError(f"parameter {name} = {value!r} ({type(value).__name__}) must be of type "
                              f"{_type_name(t)}, as its parameters cell declares; set {name} to "
                              f"{'an' if _type_name(t)[0] in 'aeiou' else 'a'} {_type_name(t)} in {source}.")
        if choices and name in choices and value not in choices[name]:
            raise ConfigError(f"parameter {name} = {value!r} must be one of {list(choices[name])}; set it in {source}.")
        out[name] = value
    return out


def _read_yaml(path: Path) -> dict:
    import yaml

    from .config import ConfigError

    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"parameter file {path} does not exist; give the path of a YAML file of name: value "
                          "lines (examples in params/paper/).") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML ({' '.join(str(e).split())}); fix the file.") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} must hold a mapping of parameter: value, got {type(loaded).__name__}; write one "
                          "'name: value' per line.")
    return loaded


def notebook_parameters(nb: Path, run: str, params_dir: Path | None = None, params_file: Path | None = None) -> dict:
    """Parameters to inject into ``nb`` for a ``run`` ('smoke' or 'paper'), checked against its parameters cell:
    ``params/paper/<stem>.yaml`` for paper runs, then ``params_file`` on top, then ``run_mode``. Raises
    :class:`lfm.config.ConfigError` (one line) for an unknown key or a value of the wrong type."""
    import papermill as pm

    from .config import ConfigError

    nb = Path(nb)
    declared = pm.inspect_notebook(str(nb))
    if "run_mode" not in declared:
        raise ConfigError(
            f"{nb.name} has no 'run_mode' parameter; add `run_mode: str = \"smoke\"  # smoke or paper` to its "
            "parameters cell."
        )
    files = []
    if run == "paper":
        params_dir = Path(params_dir or paths.root() / "params" / "paper")
        if (params_dir / f"{nb.stem}.yaml").is_file():
            files.append(params_dir / f"{nb.stem}.yaml")
    if params_file is not None:
        files.append(Path(params_file))
    params: dict = {}
    for yml in files:
        loaded = _read_yaml(yml)
        if "run_mode" in loaded:
            raise ConfigError(f"{yml} sets run_mode; the runner sets it (lfm reproduce --smoke or --paper): remove "
                              "the line.")
        check_parameters(loaded, declared, only_declared=True, source=f"{yml} (for {nb.name})")
        params.update(loaded)
    params["run_mode"] = run
    return params


@contextlib.contextmanager
def _output_env(output: Path | None):
    """Set ``LFM_OUTPUT`` for this process and the kernels it starts; restore it afterwards."""
    if output is None:
        yield
        return
    old = os.environ.get("LFM_OUTPUT")
    os.environ["LFM_OUTPUT"] = str(Path(output).expanduser().resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LFM_OUTPUT", None)
        else:
            os.environ["LFM_OUTPUT"] = old


def run_notebooks(
    run: str = "smoke",
    only: list[str] | None = None,
    nb_dir: Path | None = None,
    out_dir: Path | None = None,
    params_dir: Path | None = None,
    timeout: int | None = 3600,
    *,
    params_file: Path | None = None,
    output: Path | None = None,
    failed_dir: Path | None = None,
) -> int:
    """Execute the notebooks; return 0 on success, 1 at the first failure.

    ``params_file`` applies to exactly one selected notebook (``only``); ``output`` redirects every output (see
    the module docstring); ``failed_dir`` (default ``runs/failed/<run>``) receives the executed copy of a
    failed notebook, while ``out_dir`` keeps the previous successful copy.
    """
    import papermill as pm

    from .config import ConfigError
    from .results import atomic_write_bytes

    if run not in paths.RUNS:
        raise ValueError(f"run={run!r} must be one of {paths.RUNS}.")
    nbs = list_notebooks(nb_dir)
    if only:
        nbs = [nb for nb in nbs if any(nb.name.startswith(o) for o in only)]
    if not nbs:
        print(f"lfm reproduce: no notebooks to run in {nb_dir or paths.root() / 'notebooks'} (only={only}); "
              "--only takes name prefixes such as 00 or 03_evaluate.", file=sys.stderr)
        return 1
    if params_file is not None and len(nbs) != 1:
        raise ConfigError(f"a parameters file (-f {params_file}) is for one notebook, but {len(nbs)} are selected "
                          f"({[nb.name for nb in nbs]}); choose one with --only, e.g. --only {nbs[0].name[:2]}.")
    # every notebook's parameters are checked before the first one runs
    all_params = [notebook_parameters(nb, run, params_dir, params_file) for nb in nbs]
    with _output_env(output):
        out_dir = Path(out_dir or paths.results_dir(run) / "notebooks")
        failed_dir = Path(failed_dir or paths.runs_dir() / "failed" / run)
        out_dir.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("MPLBACKEND", "agg")
        for nb, params in zip(nbs, all_params):
            out = out_dir / nb.name
            print(f"[lfm] {nb.name} ({run}) -> {paths.show(out)}", flush=True)
            t0 = time.perf_counter()
            tmp = Path(tempfile.mkdtemp(prefix="lfm-run-")) / nb.name
            try:
                try:
                    pm.execute_notebook(
                        str(nb), str(tmp), parameters=params, kernel_name="python3", cwd=str(nb.parent),
                        log_output=False, progress_bar=False, execution_timeout=timeout,
                        extra_arguments=list(KERNEL_ARGUMENTS),
                    )
                except Exception as e:  # noqa: BLE001 - a cell's error, a timeout, a dead kernel: all stop the run
                    if isinstance(e, pm.PapermillExecutionError):
                        what = f"in cell {e.exec_count}: {e.ename}: {e.evalue}"
                    else:
                        what = f"{type(e).__name__}: {e}"
                    kept = failed_dir / nb.name
                    if tmp.is_file():
                        atomic_write_bytes(kept, tmp.read_bytes())
                    where = f"the failed copy is {paths.show(kept)}" if tmp.is_file() else "no executed copy was made"
                    kept_old = (f"the previous {paths.show(out)} is untouched" if out.exists()
                                else f"nothing was written to {paths.show(out)}")
                    print(f"[lfm] FAILED {nb.name} {' '.join(what.split())} | {kept_old}; {where}", file=sys.stderr)
                    return 1
                atomic_write_bytes(out, tmp.read_bytes())
            finally:
                shutil.rmtree(tmp.parent, ignore_errors=True)
            print(f"[lfm] ok {nb.name} in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
