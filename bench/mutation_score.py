"""Mutation score of the test suite on a few modules, at one commit (mutmut 3.x).

    .venv/bin/python bench/mutation_score.py --rev HEAD --modules lfm/geometry.py lfm/losses.py lfm/evaluate.py

What it does:

1. ``git worktree add --detach`` of ``--rev`` in a temporary folder (the checkout's own files, and other people's
   edits in it, are never touched), with a ``setup.cfg`` ``[mutmut]`` section written into the worktree only.
2. mutmut generates every mutant of ``--modules`` into ``<worktree>/mutants`` (mutmut 3 "trampolines": all
   mutants of a function live in one copy of the package and an environment variable picks one). The package
   that the tests import is checked to be that copy (``lfm.__file__`` is printed).
3. A fixed, seeded sample of the mutants (``--sample-fraction``, default 0.25; 1.0 tests all): a mutant is kept iff
   ``sha256(f"{seed}:{mutant name}")`` falls below the fraction, so one mutant is kept or dropped alike at every
   commit where its function is unchanged, whatever else changed.
4. ``mutmut run``: each mutant runs only the tests, of ``--tests``, that call the mutated function (mutmut's
   stats run maps tests to functions), stopping at the first failure (``-x``), under a CPU-time limit of
   ``2 * timeout_multiplier * (clean duration of those tests + timeout_constant)`` seconds.
5. ``results/bench/mutation_<short sha>.json``: counts per module and in total, and every surviving mutant with
   ``file:line``, function, the original line and the mutated line (``--out`` to write elsewhere). ``commit`` is
   the measured commit; ``provenance.git`` is the checkout that ran this script.

Survival rate = (survived + no tests) / tested, where "no tests" is a mutant of a function that no selected test
calls (the suite cannot kill it) and "tested" counts every mutant with a verdict (killed, timeout, survived, no
tests, suspicious). A timeout counts as killed, as mutmut counts it. The rate without "no tests" is written
too. It is a measurement for the notes, not a CI step: it takes minutes to tens of minutes on 2 cores.

Environment of the tests: ``LFM_OFFLINE=1``, ``MPLBACKEND=agg``, ``LFM_MIRROR`` (the open-data mirror that this
checkout finds), ``LFM_OUTPUT`` (a temporary folder), one BLAS/OpenMP thread per worker.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (puts the repository root on sys.path)

from lfm import paths  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODULES = ["lfm/geometry.py", "lfm/losses.py", "lfm/evaluate.py"]
# the test files that exercise these modules; those absent at a commit are left out (and listed in the JSON)
DEFAULT_TESTS = ["tests/test_geometry.py", "tests/test_losses.py", "tests/test_metrics.py",
                 "tests/test_evaluate.py", "tests/test_model.py"]
STATUS_BY_EXIT_CODE = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
                       35: "suspicious", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
                       255: "timeout", -11: "segfault", -9: "segfault", 37: "caught by type check", None: "not checked"}


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def keep(name: str, seed: int, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "big")
    return h < fraction * 2**64


def setup_cfg(modules: list[str], tests: list[str], args) -> str:
    lines = ["[mutmut]", "source_paths = lfm", "only_mutate ="] + [f"    {m}" for m in modules]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args =", "    -p", "    no:cacheprovider",
              f"timeout_multiplier = {args.timeout_multiplier}", f"timeout_constant = {args.timeout_constant}",
              f"process_isolation = {args.isolation}", "use_git_change_detection = false"]
    return "\n".join(lines) + "\n"


def test_env(wt: Path, out_dir: Path) -> dict:
    env = dict(os.environ)
    for k in ("PYTHONPATH", "LFM_ROOT", "LFM_DATA", "MUTANT_UNDER_TEST", "CI"):
        env.pop(k, None)
    env.update(LFM_OFFLINE="1", MPLBACKEND="agg", LFM_MIRROR=str(paths.mirror_dir()), LFM_OUTPUT=str(out_dir),
               LFM_DATA=str(out_dir / "data"), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def which_lfm(cwd: Path, env: dict, extra_path: Path) -> str:
    code = f"import sys; sys.path.insert(0, {str(extra_path)!r}); import lfm; print(lfm.__file__)"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def locate(orig_code: str, mutant_code: str, file_lines: list[str]) -> tuple[int | None, str, str]:
    """(line in the original file, original line, mutated line) of the first change between two function texts."""
    a, b = orig_code.split("\n"), mutant_code.split("\n")
    ops = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes() if op[0] != "equal"]
    if not ops:
        return None, "", ""
    _, i1, i2, j1, j2 = ops[0]
    before = " / ".join(s.strip() for s in a[i1:i2])
    after = " / ".join(s.strip() for s in b[j1:j2]) or "(line removed)"
    sa, sf = [s.strip() for s in a], [s.strip() for s in file_lines]
    for k in range(len(sf) - len(sa) + 1):
        if sf[k] == sa[0] and sf[k:k + len(sa)] == sa:
            return k + i1 + 1, before, after
    return None, before, after


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rev", default="HEAD", help="commit to measure (default HEAD)")
    ap.add_argument("--modules", nargs="+", default=DEFAULT_MODULES)
    ap.add_argument("--tests", nargs="+", default=None, help=f"test files (default: those of {DEFAULT_TESTS} "
                                                             "present at the commit)")
    ap.add_argument("--sample-fraction", type=float, default=0.25,
                    help="share of the mutants tested (seeded); 1.0 = all (about 40-55 min per commit on 2 cores)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-children", type=int, default=2, help="parallel mutant workers")
    ap.add_argument("--timeout-multiplier", type=float, default=3.0)
    ap.add_argument("--timeout-constant", type=float, default=5.0)
    ap.add_argument("--isolation", choices=["fork", "forkserver"], default="forkserver",
                    help="mutmut process_isolation (forkserver: torch is not fork-safe after a test run)")
    ap.add_argument("--budget-s", type=float, default=None, help="stop mutmut after this many seconds; mutants "
                                                                 "not reached count as 'not checked'")
    ap.add_argument("--worktree", type=Path, default=None, help="where to put the worktree (default: a temp dir)")
    ap.add_argument("--keep-worktree", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    sha = git("rev-parse", "--verify", f"{args.rev}^{{commit}}")
    short = sha[:7]
    tmp = Path(tempfile.mkdtemp(prefix=f"lfm_mutation_{short}_"))
    wt = (args.worktree or tmp / "wt").resolve()
    print(f"rev {args.rev} = {sha}; worktree {wt}")
    git("worktree", "add", "--detach", str(wt), sha)
    t_start = time.perf_counter()
    try:
        missing = [m for m in args.modules if not (wt / m).is_file()]
        if missing:
            raise SystemExit(f"not at {short}: {missing}")
        tests = args.tests or [t for t in DEFAULT_TESTS if (wt / t).is_file()]
        tests_absent = [t for t in (args.tests or DEFAULT_TESTS) if not (wt / t).is_file()]
        tests = [t for t in tests if (wt / t).is_file()]
        pyproject = (wt / "pyproject.toml").read_text()
        if "[tool.mutmut]" in pyproject or (wt / "setup.cfg").exists():
            raise SystemExit("the commit configures mutmut itself (pyproject [tool.mutmut] or setup.cfg); "
                             "this script writes its own setup.cfg")
        (wt / "setup.cfg").write_text(setup_cfg(args.modules, tests, args))
        env = test_env(wt, tmp / "output")

        # the tests must import the worktree's package, then the mutated copy of it
        print("lfm (worktree):", which_lfm(wt, env, wt))

        os.chdir(wt)
        os.environ.update(env)  # mutmut's generation pool and config read from here
        from mutmut import __version__ as mutmut_version  # noqa: PLC0415
        from mutmut.__main__ import copy_also_copy_files, copy_src_dir, create_mutants  # noqa: PLC0415
        from mutmut.mutation.diff_apply import read_functions_from_index  # noqa: PLC0415

        t0 = time.perf_counter()
        (wt / "mutants").mkdir(exist_ok=True)
        copy_src_dir()
        copy_also_copy_files()
        create_mutants(max(1, args.max_children))
        t_generate = time.perf_counter() - t0
        lfm_mutants = which_lfm(wt, env, wt / "mutants")
        print("lfm (mutated copy):", lfm_mutants)
        if not lfm_mutants.startswith(str(wt / "mutants")):
            raise SystemExit(f"the mutated package is not the one imported: {lfm_mutants}")

        def meta(module: str) -> dict:
            return json.loads((wt / "mutants" / f"{module}.meta").read_text())

        generated = {m: sorted(meta(m)["exit_code_by_key"]) for m in args.modules}
        chosen = {m: [k for k in names if keep(k, args.seed, args.sample_fraction)]
                  for m, names in generated.items()}
        n_gen, n_chosen = sum(map(len, generated.values())), sum(map(len, chosen.values()))
        print(f"{n_gen} mutants generated, {n_chosen} chosen (fraction {args.sample_fraction}, seed {args.seed})")

        cmd = [str(Path(sys.executable).with_name("mutmut")), "run", "--max-children", str(args.max_children)]
        if args.sample_fraction < 1.0:
            cmd += [k for names in chosen.values() for k in names]
        print("running:", " ".join(cmd[:4]), f"[{n_chosen} mutant names]" if len(cmd) > 4 else "",
              f"in {wt} with tests {tests}", flush=True)
        t0 = time.perf_counter()
        log_path = tmp / "mutmut.log"
        with open(log_path, "w") as log:
            try:
                rc = subprocess.run(cmd, cwd=wt, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    timeout=args.budget_s).returncode
            except subprocess.TimeoutExpired:
                rc = "budget"
        t_run = time.perf_counter() - t0
        tail = log_path.read_text(errors="replace")[-3000:]
        print(tail)
        if rc not in (0, "budget"):
            raise SystemExit(f"mutmut run exited {rc} (log {log_path})")

        per_module, survivors = {}, []
        for m in args.modules:
            codes = meta(m)["exit_code_by_key"]
            counts: dict[str, int] = {}
            for k in chosen[m]:
                st = STATUS_BY_EXIT_CODE.get(codes.get(k), "suspicious")
                counts[st] = counts.get(st, 0) + 1
            file_lines = (wt / m).read_text().split("\n")
            for k in chosen[m]:
                st = STATUS_BY_EXIT_CODE.get(codes.get(k), "suspicious")
                if st not in ("survived", "no tests"):
                    continue
                fns = read_functions_from_index(k, m)
                import libcst as cst  # noqa: PLC0415
                line, before, after = (locate(*(cst.Module([f]).code.strip() for f in fns), file_lines)
                                       if fns else (None, "", ""))
                survivors.append({"mutant": k, "status": st, "file": m, "line": line,
                                  "where": f"{m}:{line}", "function": k.rpartition(".")[2].split("__mutmut_")[0]
                                  .removeprefix("x_").replace("ǁ", "."),
                                  "original": before, "mutated": after})
            per_module[m] = summarize(counts, len(generated[m]))
        total_counts: dict[str, int] = {}
        for s in per_module.values():
            for k, v in s["counts"].items():
                total_counts[k] = total_counts.get(k, 0) + v
        body = {
            "tool": f"mutmut {mutmut_version}",
            "rev": args.rev, "commit": sha,
            "modules": args.modules, "tests": tests, "tests_absent_at_commit": tests_absent,
            "sample": {"fraction": args.sample_fraction, "seed": args.seed,
                       "rule": "kept iff sha256(f'{seed}:{mutant name}')[:8] < fraction * 2**64"},
            "per_mutant_timeout": {"kind": "CPU seconds (SIGXCPU), per mutant",
                                   "formula": "2 * multiplier * (clean duration of the selected tests + constant)",
                                   "multiplier": args.timeout_multiplier, "constant": args.timeout_constant},
            "max_children": args.max_children, "isolation": args.isolation,
            "environment": {k: env[k] for k in ("LFM_OFFLINE", "MPLBACKEND", "LFM_MIRROR", "OMP_NUM_THREADS")},
            "lfm_imported_from": lfm_mutants.replace(str(wt), "<worktree>"),
            "command": " ".join(["bench/mutation_score.py", *sys.argv[1:]]),
            "mutmut_command": " ".join(["mutmut", *cmd[1:4]]) + (" <sampled mutant names>" if len(cmd) > 4 else ""),
            "mutmut_exit": rc,
            "time_s": {"generate": round(t_generate, 1), "mutmut_run": round(t_run, 1),
                       "total": round(time.perf_counter() - t_start, 1)},
            "per_module": per_module, "total": summarize(total_counts, n_gen),
            "survivors": sorted(survivors, key=lambda s: (s["file"], s["line"] or 0, s["mutant"])),
        }
        out = args.out or REPO / "results" / "bench" / f"mutation_{short}.json"
        if args.out:
            from lfm import results  # noqa: PLC0415
            results.write_json(out, {"provenance": results.provenance(), **body})
        else:
            os.chdir(REPO)
            common.write(f"mutation_{short}", body)
        for m, s in {**per_module, "total": body["total"]}.items():
            print(f"{m:20s} tested {s['tested']:4d}  survived {s['survived']:4d}  no tests {s['no_tests']:3d}  "
                  f"survival {s['survival_rate']:.3f}")
        print(f"time: {body['time_s']}")
        return 0
    finally:
        os.chdir(REPO)
        if not args.keep_worktree:
            subprocess.run(["git", "worktree", "remove", "--force", str(wt)], cwd=REPO, check=False)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {wt} (remove with: git worktree remove --force {wt})")


def summarize(counts: dict[str, int], generated: int) -> dict:
    checked = {k: v for k, v in counts.items() if k not in ("not checked", "skipped")}
    tested = sum(checked.values())
    survived, no_tests = counts.get("survived", 0), counts.get("no tests", 0)
    return {"generated": generated, "tested": tested, "counts": dict(sorted(counts.items())),
            "killed": counts.get("killed", 0) + counts.get("timeout", 0), "survived": survived,
            "no_tests": no_tests,
            "survival_rate": (survived + no_tests) / tested if tested else None,
            "survival_rate_excluding_no_tests": survived / (tested - no_tests) if tested - no_tests else None}


if __name__ == "__main__":
    raise SystemExit(main())
