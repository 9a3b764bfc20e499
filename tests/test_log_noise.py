"""The smoke log is the runner's [lfm] lines: PyBullet's C output (its build time on import, a b3Warning per URDF
oddity) and the kernel's start-up warning never reach file descriptors 1 and 2."""

import json
import os
import subprocess
import sys

import pytest

from lfm import pipeline
from lfm.data import kinematic

HAVE_PYBULLET = all(kinematic.importlib.util.find_spec(p) is not None for p in ("pybullet", "pybullet_data"))
NOISY = "pb_humanoid"  # its URDF has joints without an axis: PyBullet warns once per joint when it loads


@pytest.mark.skipif(not HAVE_PYBULLET, reason="pybullet not installed")
def test_loading_a_pybullet_record_prints_nothing(capfd):
    kinematic._rig.cache_clear()  # load the URDF again in this process
    kinematic.load_kinematic(NOISY, 1, 2)
    # a fresh process also imports pybullet (its build-time line) and writes to the same descriptors
    subprocess.run([sys.executable, "-c", f"from lfm.data import kinematic; kinematic.load_kinematic({NOISY!r}, 1, 2)"],
                   check=True)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


@pytest.mark.skipif(kinematic.importlib.util.find_spec("myo_sim") is None, reason="myo-sim not installed")
def test_composing_a_myosuite_model_prints_nothing(capfd):
    """myo_sim composes its MJCF parts with MjSpec.attach, and MuJoCo writes a warning from C for each one."""
    kinematic._rig.cache_clear()
    kinematic.load_kinematic("myo_arm", 1, 2)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_quiet_c_output_restores_the_descriptors(capfd):
    with kinematic.quiet_c_output():
        kinematic.ctypes.CDLL(None).puts(b"from C, buffered")
        os.write(2, b"straight to fd 2")
    os.write(1, b"shown")
    out, err = capfd.readouterr()
    assert out == "shown" and err == ""


def _notebook(path, source):
    cells = [{"id": "parameters", "cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": 'run_mode: str = "smoke"',
              "outputs": [], "execution_count": None},
             {"id": "load", "cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}]
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
                       "language_info": {"name": "python"}}}
    path.write_text(json.dumps(nb))


@pytest.mark.skipif(not HAVE_PYBULLET, reason="pybullet not installed")
def test_the_runner_prints_two_lfm_lines_per_notebook(tmp_path, capfd):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    _notebook(nbs / "00_quiet.ipynb", f"from lfm.data import kinematic\nkinematic.load_kinematic({NOISY!r}, 1, 2)")
    assert pipeline.run_notebooks("smoke", nb_dir=nbs, out_dir=tmp_path / "out", output=tmp_path / "output") == 0
    out, err = capfd.readouterr()
    lines = (out + err).splitlines()
    assert len(lines) == 2 and all(ln.startswith("[lfm] ") for ln in lines), lines
