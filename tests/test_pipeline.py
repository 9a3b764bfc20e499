"""The notebook runner: order, parameter checks (check_parameters, parameter files), stop at the first failure
without touching the previous executed copy, outputs redirected by LFM_OUTPUT / --output."""

import nbformat
import pytest

from lfm.config import ConfigError
from lfm.pipeline import check_parameters, list_notebooks, notebook_parameters, run_notebooks


def _nb(path, body, params='run_mode: str = "smoke"  # smoke or paper'):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def test_runner_stops_at_first_failure_and_keeps_the_executed_notebook(tmp_path):
    nbs, out, failed = tmp_path / "notebooks", tmp_path / "out", tmp_path / "failed"
    nbs.mkdir()
    marker = tmp_path / "ran.txt"
    _nb(nbs / "00_ok.ipynb", f"open({str(marker)!r}, 'a').write('00 ' + run_mode + '\\n')")
    _nb(nbs / "01_fails.ipynb", "raise RuntimeError('boom in 01')")
    _nb(nbs / "02_never.ipynb", f"open({str(marker)!r}, 'a').write('02\\n')")
    assert [p.name for p in list_notebooks(nbs)] == ["00_ok.ipynb", "01_fails.ipynb", "02_never.ipynb"]
    assert run_notebooks("smoke", nb_dir=nbs, out_dir=out, timeout=120, failed_dir=failed) == 1
    assert marker.read_text() == "00 smoke\n"  # 02 never ran
    failed_nb = nbformat.read(failed / "01_fails.ipynb", as_version=4)
    assert failed_nb.metadata.papermill.exception is True
    assert "boom in 01" in str(failed_nb.cells)
    assert sorted(p.name for p in out.iterdir()) == ["00_ok.ipynb"]  # no failed or half-written copy there


def test_a_failed_run_leaves_the_committed_copy_untouched(tmp_path, capsys):
    """`lfm reproduce --paper --only 09` that fails must not overwrite results/notebooks/09_*.ipynb."""
    nbs, out, failed = tmp_path / "notebooks", tmp_path / "results" / "notebooks", tmp_path / "failed"
    nbs.mkdir()
    out.mkdir(parents=True)
    _nb(nbs / "09_lift.ipynb", "raise ValueError('bad\\nthing')")
    committed = out / "09_lift.ipynb"
    committed.write_text("the committed executed notebook")
    assert run_notebooks("paper", nb_dir=nbs, out_dir=out, params_dir=tmp_path, timeout=120, failed_dir=failed) == 1
    assert committed.read_text() == "the committed executed notebook"
    assert sorted(p.name for p in out.iterdir()) == ["09_lift.ipynb"]
    assert "bad" in str(nbformat.read(failed / "09_lift.ipynb", as_version=4).cells)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FAILED 09_lift.ipynb in cell" in err[0] and "ValueError: bad thing" in err[0]
    assert "is untouched" in err[0] and str(failed / "09_lift.ipynb") in err[0]
    _nb(nbs / "09_lift.ipynb", "x = 1")  # a success replaces it
    assert run_notebooks("paper", nb_dir=nbs, out_dir=out, params_dir=tmp_path, timeout=120, failed_dir=failed) == 0
    assert not nbformat.read(committed, as_version=4).metadata.papermill.exception


def test_paper_params_are_checked(tmp_path):
    nbs, params = tmp_path / "nb", tmp_path / "params"
    nbs.mkdir()
    params.mkdir()
    _nb(nbs / "00_a.ipynb", "pass", 'run_mode: str = "smoke"  # smoke or paper\nsteps: int = 10  # training steps')
    (params / "00_a.yaml").write_text("steps: 5000\n")
    assert notebook_parameters(nbs / "00_a.ipynb", "paper", params) == {"steps": 5000, "run_mode": "paper"}
    assert notebook_parameters(nbs / "00_a.ipynb", "smoke", params) == {"run_mode": "smoke"}
    (params / "00_a.yaml").write_text("steps: 5000\nstesp: 1\n")
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['stesp'\] in .*00_a.yaml .*declares "
                       r"\['run_mode', 'steps'\]: fix the name or remove it"):
        notebook_parameters(nbs / "00_a.ipynb", "paper", params)
    (params / "00_a.yaml").write_text("steps: many\n")
    with pytest.raises(ConfigError, match=r"steps = 'many' \(str\) must be of type int.*set steps to an int in "):
        notebook_parameters(nbs / "00_a.ipynb", "paper", params)
    (params / "00_a.yaml").write_text("run_mode: paper\n")
    with pytest.raises(ConfigError, match="sets run_mode; the runner sets it"):
        notebook_parameters(nbs / "00_a.ipynb", "paper", params)
    (params / "00_a.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        notebook_parameters(nbs / "00_a.ipynb", "paper", params)
    mine = tmp_path / "mine.yaml"
    mine.write_text("steps: 7\n")
    assert notebook_parameters(nbs / "00_a.ipynb", "smoke", params, mine) == {"steps": 7, "run_mode": "smoke"}
    _nb(nbs / "01_b.ipynb", "pass", "x: int = 1  # something")
    with pytest.raises(ValueError, match="has no 'run_mode' parameter"):
        notebook_parameters(nbs / "01_b.ipynb", "smoke", params)


def test_atomic_writes_get_normal_file_permissions(tmp_path):
    import os
    import stat

    from lfm.results import atomic_write_text

    p = atomic_write_text(tmp_path / "x.json", "{}")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask  # as open(..., "w") would create it, not mkstemp's 0600


def test_check_parameters_types_choices_unknown():
    spec = {"frame": int, "lr": float, "name": str, "flag": bool, "cats": list[str]}
    ok = {"frame": 3, "lr": 1, "name": "a", "flag": True, "cats": ["x", "y"]}
    assert check_parameters(ok, spec) == ok
    for key, bad, want in (("frame", "hundred", "int"), ("frame", True, "int"), ("frame", 2.0, "int"),
                           ("lr", "1e-3", "float"), ("flag", "yes", "bool"), ("cats", ["x", 1], "list[str]"),
                           ("name", None, "str")):
        with pytest.raises(ConfigError, match=rf"parameter {key} = .* must be of type {want.replace('[', '.')}"):
            check_parameters({**ok, key: bad}, spec, source="my.yaml")
    with pytest.raises(ConfigError, match=r"parameter name = 'b' must be one of \['a'\]; set it in"):
        check_parameters({**ok, "name": "b"}, spec, choices={"name": ["a"]})
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['fram'\] in my.yaml"):
        check_parameters({"fram": 1}, spec, only_declared=True, source="my.yaml")
    # a notebook namespace: types from __annotations__, other names ignored
    ns = {"__annotations__": {"frame": int}, "frame": "x", "np": object(), "In": [], "_": None}
    with pytest.raises(ConfigError, match="frame = 'x'"):
        check_parameters(ns)
    assert check_parameters({**ns, "frame": 4}) == {"frame": 4}
    # papermill's inspect_notebook spec ('None' = no annotation: not checked)
    pm_spec = {"frame": {"inferred_type_name": "int"}, "x": {"inferred_type_name": "None"},
               "names": {"inferred_type_name": "list[str]"}}
    assert check_parameters({"frame": 1, "x": object, "names": ["a"]}, pm_spec, only_declared=True)["frame"] == 1
    with pytest.raises(ConfigError, match="names"):
        check_parameters({"names": "a"}, pm_spec)


def test_wrong_parameter_type_stops_before_the_notebook_runs(tmp_path, capsys):
    nbs, out = tmp_path / "nb", tmp_path / "out"
    nbs.mkdir()
    marker = tmp_path / "ran.txt"
    _nb(nbs / "03_x.ipynb", f"open({str(marker)!r}, 'w').write(str(frame))",
        'run_mode: str = "smoke"  # smoke or paper\nframe: int = 1  # a frame')
    mine = tmp_path / "mine.yaml"
    mine.write_text("frame: hundred\n")
    with pytest.raises(ConfigError, match=r"frame = 'hundred' \(str\) must be of type int.*mine.yaml"):
        run_notebooks("smoke", nb_dir=nbs, out_dir=out, params_file=mine, failed_dir=tmp_path / "f")
    assert not marker.exists() and not out.exists()
    mine.write_text("frame: 5\n")
    assert run_notebooks("smoke", nb_dir=nbs, out_dir=out, params_file=mine, failed_dir=tmp_path / "f") == 0
    assert marker.read_text() == "5"


def test_output_folder_receives_every_output(tmp_path, monkeypatch):
    import os

    from lfm import paths

    monkeypatch.delenv("LFM_OUTPUT", raising=False)
    nbs = tmp_path / "nb"
    nbs.mkdir()
    _nb(nbs / "00_w.ipynb", "import lfm.paths, lfm.results\n"
        "lfm.results.write_json(lfm.paths.results_dir(run_mode) / 'x.json', {'a': 1})\n"
        "lfm.paths.figures_dir(run_mode).mkdir(parents=True)")
    dest = tmp_path / "elsewhere"
    assert run_notebooks("smoke", nb_dir=nbs, output=dest) == 0
    assert (dest / "results" / "smoke" / "x.json").is_file() and (dest / "figures" / "smoke").is_dir()
    assert (dest / "results" / "smoke" / "notebooks" / "00_w.ipynb").is_file()
    assert "LFM_OUTPUT" not in os.environ  # restored
    assert paths.results_dir("paper") == paths.root() / "results"
    monkeypatch.setenv("LFM_OUTPUT", str(dest))
    assert paths.results_dir("paper") == dest / "results" and paths.runs_dir() == dest / "runs"
    assert paths.show(paths.root() / "results") == "results" and paths.show(dest) == str(dest)


def test_make_test_writes_outputs_outside_results():
    from lfm import paths

    mk = (paths.root() / "Makefile").read_text()
    recipe = mk.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "LFM_OUTPUT=" in recipe and "pytest" in recipe


@pytest.mark.parametrize("name, param, value", [("09_lift_your_own", "frame", "hundred"),
                                                ("00_environment", "require_mirror", "yes")])
def test_notebooks_check_their_parameters(tmp_path, name, param, value):
    """A wrong type injected by papermill stops 00 / 09 in the cell after the parameters, with one line."""
    import papermill as pm

    from lfm import paths

    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(paths.root() / "notebooks" / f"{name}.ipynb"), str(tmp_path / "out.ipynb"),
                            parameters={param: value}, kernel_name="python3", progress_bar=False,
                            cwd=str(tmp_path))
    assert e.value.ename == "ConfigError" and e.value.exec_count == 3  # parameters, injected parameters, check
    assert f"parameter {param} = {value!r} (str) must be of type" in e.value.evalue and "\n" not in e.value.evalue
