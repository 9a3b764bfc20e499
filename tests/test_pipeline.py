"""The notebook runner: order, parameter checks, stop at the first failure keeping the executed copy."""

import nbformat
import pytest

from lfm.pipeline import list_notebooks, notebook_parameters, run_notebooks


def _nb(path, body, params='run_mode: str = "smoke"  # smoke or paper'):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(params)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)


def test_runner_stops_at_first_failure_and_keeps_the_executed_notebook(tmp_path):
    nbs, out = tmp_path / "notebooks", tmp_path / "out"
    nbs.mkdir()
    marker = tmp_path / "ran.txt"
    _nb(nbs / "00_ok.ipynb", f"open({str(marker)!r}, 'a').write('00 ' + run_mode + '\\n')")
    _nb(nbs / "01_fails.ipynb", "raise RuntimeError('boom in 01')")
    _nb(nbs / "02_never.ipynb", f"open({str(marker)!r}, 'a').write('02\\n')")
    assert [p.name for p in list_notebooks(nbs)] == ["00_ok.ipynb", "01_fails.ipynb", "02_never.ipynb"]
    assert run_notebooks("smoke", nb_dir=nbs, out_dir=out, timeout=120) == 1
    assert marker.read_text() == "00 smoke\n"  # 02 never ran
    failed = nbformat.read(out / "01_fails.ipynb", as_version=4)
    assert failed.metadata.papermill.exception is True
    assert "boom in 01" in str(failed.cells)
    assert not (out / "02_never.ipynb").exists()


def test_paper_params_are_checked(tmp_path):
    nbs, params = tmp_path / "nb", tmp_path / "params"
    nbs.mkdir()
    params.mkdir()
    _nb(nbs / "00_a.ipynb", "pass", 'run_mode: str = "smoke"  # smoke or paper\nsteps: int = 10  # training steps')
    (params / "00_a.yaml").write_text("steps: 5000\n")
    assert notebook_parameters(nbs / "00_a.ipynb", "paper", params) == {"steps": 5000, "run_mode": "paper"}
    assert notebook_parameters(nbs / "00_a.ipynb", "smoke", params) == {"run_mode": "smoke"}
    (params / "00_a.yaml").write_text("steps: 5000\nstesp: 1\n")
    with pytest.raises(ValueError, match=r"sets \['stesp'\], which 00_a.ipynb does not declare"):
        notebook_parameters(nbs / "00_a.ipynb", "paper", params)
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
