"""The project's promises: pyproject and environment.yml agree, CI runs the README's test command, notebooks are
clean and papermill-ready, paper parameter files only set declared parameters."""

import json
import re
import tomllib
from pathlib import Path

import papermill as pm
import pytest
import yaml
from IPython.core.interactiveshell import InteractiveShell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {_name(r): r for r in project["dependencies"] + extras["test"] + extras["kinematic"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_name(r): r for r in pip if not r.startswith("-")}
    assert set(listed) == set(wanted), f"only in environment.yml: {set(listed) - set(wanted)}; only in pyproject: {set(wanted) - set(listed)}"
    for name, req in wanted.items():
        if name == "torch":
            assert listed[name] == "torch==2.13.0", "environment.yml must pin torch==2.13.0"
        else:
            assert listed[name].replace(" ", "") == req.replace(" ", ""), f"{name}: {listed[name]} vs {req}"
    assert "-e .[test,kinematic]" in pip
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].lstrip(">=")
    assert tuple(map(int, py.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    first = readme.split("\n## ", 2)[1]  # the first section after the title
    commands = re.findall(r"^(make \w+)\s*$", first, flags=re.M)
    assert commands == ["make reproduce", "make test"], commands
    ci = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ci[-1] == "make test", ci


def test_makefile_installs_pinned_torch_first():
    mk = (ROOT / "Makefile").read_text()
    torch_at = mk.index("pip install --quiet torch==2.13.0")
    assert torch_at < mk.index("pip install --quiet -e '.[test,kinematic]'")


def test_numbered_notebooks_are_contiguous():
    nums = [int(p.name[:2]) for p in NOTEBOOKS]
    assert nums and all(re.match(r"^\d\d_[a-z0-9_]+\.ipynb$", p.name) for p in NOTEBOOKS), [p.name for p in NOTEBOOKS]
    assert len(set(nums)) == len(nums), "two notebooks share a number"
    assert nums[0] == 0
    # contiguous within each decade block (00-08 pipeline, 09 teaching, 1x figures ...)
    blocks = {}
    for n in nums:
        blocks.setdefault(n // 10, []).append(n)
    for b, ns in blocks.items():
        if b == 0:
            core = [n for n in ns if n != 9]
            assert core == list(range(core[0], core[0] + len(core))), f"gap in notebook numbers: {ns}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(nb_path):
    nb = json.loads(nb_path.read_text())
    ks = nb["metadata"].get("kernelspec", {})
    assert ks.get("name") == "python3" and ks.get("language") == "python", f"{nb_path.name}: kernelspec missing"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for c in code:
        assert not c.get("outputs") and not c.get("execution_count"), f"{nb_path.name} has stored outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{nb_path.name}: {len(params)} parameters cells"
    assert nb["cells"].index(params[0]) <= 1, f"{nb_path.name}: the parameters cell must come first or second"
    # every line of the parameters cell is a typed, commented literal that papermill can parse
    lines = [ln for ln in "".join(params[0]["source"]).splitlines() if ln.strip()]
    for ln in lines:
        assert re.match(r"^\w+: [\w\[\], ]+ = .+  # .+$", ln), f"{nb_path.name}: untyped or uncommented: {ln!r}"
    declared = pm.inspect_notebook(str(nb_path))
    assert len(declared) == len(lines), f"{nb_path.name}: papermill parsed {sorted(declared)} of {len(lines)} lines"
    assert "run_mode" in declared and declared["run_mode"]["default"] == '"smoke"'
    # IPython automagic turns `run: str = ...` into `%run : str = ...`: no parameter may be named like a magic
    magics = set(InteractiveShell.instance().magics_manager.lsmagic()["line"])
    assert not set(declared) & magics, f"{nb_path.name}: parameters named like IPython magics: {set(declared) & magics}"

    src = "\n".join("".join(c["source"]) for c in code)
    for bad in ("input(", "pip install", "%pip", "!pip", "conda install", "/work/", "/home/", "C:\\"):
        assert bad not in src, f"{nb_path.name} contains {bad!r}"
    assert not re.search(r"""["'](/[A-Za-z])""", src), f"{nb_path.name} contains an absolute path"


@pytest.mark.parametrize("yml", sorted((ROOT / "params" / "paper").glob("*.yaml")), ids=lambda p: p.name)
def test_paper_params_match_notebooks(yml):
    nb = ROOT / "notebooks" / f"{yml.stem}.ipynb"
    assert nb.is_file(), f"{yml.name} has no notebook {nb.name}"
    declared = pm.inspect_notebook(str(nb))
    keys = set(yaml.safe_load(yml.read_text()) or {})
    assert keys <= set(declared), f"{yml.name} sets undeclared {keys - set(declared)}"


def test_every_package_file_is_tracked_by_git():
    """A .gitignore pattern once swallowed lfm/data/: every source file of the package must be in git."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = set(subprocess.run(["git", "ls-files", "lfm", "tests", "bench", "notebooks"], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.split())
    wanted = {str(p.relative_to(ROOT)) for d in ("lfm", "tests", "bench", "notebooks")
              for p in (ROOT / d).rglob("*") if p.is_file() and p.suffix in (".py", ".json", ".ipynb")
              and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}
    assert wanted <= tracked, f"files not tracked by git (check .gitignore): {sorted(wanted - tracked)}"


def test_readme_front_page_is_short_and_its_links_resolve():
    """The README is a front page (about 150 lines); every relative link in it and in docs/ points at a file."""
    readme = (ROOT / "README.md").read_text()
    assert readme.count("\n") <= 160
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (doc.parent / target).exists(), f"{doc.name}: link {target} does not exist"


def test_every_numbered_notebook_checks_its_parameters():
    """docs/notebooks.md promises it: the cell after the parameters cell calls lfm.pipeline.check_parameters."""
    for nb_path in NOTEBOOKS:
        cells = json.loads(nb_path.read_text())["cells"]
        at = next(i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", []))
        assert "check_parameters(" in "".join(cells[at + 1]["source"]), nb_path.name


def test_only_the_experiments_import_the_experiments():
    """Imports go one way (lfm/experiments/__init__.py): the core, data, training and lifting modules never import
    lfm.experiments, so a user's lift never loads the paper's experiment code."""
    import ast

    bad = []
    for p in sorted((ROOT / "lfm").rglob("*.py")):
        if "experiments" in p.relative_to(ROOT / "lfm").parts:
            continue
        pkg = ".".join(p.relative_to(ROOT).with_suffix("").parts[:-1])  # the module's package, for relative imports
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[:len(pkg.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            if any(n == "lfm.experiments" or n.startswith("lfm.experiments.") for n in names):
                bad.append(f"{p.relative_to(ROOT)}:{node.lineno}")
    assert not bad, f"modules outside lfm/experiments import it: {bad}"
