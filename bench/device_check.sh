#!/usr/bin/env bash
# Everything a lent GPU machine is used for, in one call (README, "On a GPU"): the CUDA tests, the training
# throughput benchmark, then, in the time left, the v2 recipe resumed from its committed state and the 04 lever runs
# in parallel workers. The machine needs PyTorch with CUDA, numpy, scipy, pandas, pyyaml, matplotlib, tqdm, pytest;
# not the data mirror nor the model wheels: the data come as a prepared splits file, made beforehand with
#   python -m lfm.data.bundle .devdata/splits.pkl.xz --sets all <eval sets of params/paper/04_ablations.yaml> \
#       --test-sets <the same eval sets>
# Usage: SPLITS=.devdata/splits.pkl.xz BUDGET=540 OUT=device_out bash bench/device_check.sh
# Outputs in $OUT: env.txt, tests.log, bench.log, train_throughput_cuda.json, v2.log, last.pt, best.pt (when the
# v2 run improved), ablations.log, ablations_rows_h200.json.
set -u
T0=$(date +%s)
BUDGET=${BUDGET:-540}
OUT=${OUT:-device_out}
SPLITS=${SPLITS:-.devdata/splits.pkl.xz}
WORKERS=${WORKERS:-12}
ABL_PARAMS=${ABL_PARAMS:-params/paper/04_ablations.yaml}
ABL_SPLITS=${ABL_SPLITS:-$SPLITS}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=agg
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/steps.log"; }

{ nvidia-smi -L; python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
  nproc; } > "$OUT/env.txt" 2>&1
stamp "tests"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_model.py > "$OUT/tests.log" 2>&1
stamp "tests rc=$?"
timeout 150 python3 bench/train_throughput.py --out "$OUT/train_throughput_cuda.json" > "$OUT/bench.log" 2>&1
stamp "bench rc=$?"

L=$(( $(left) - 40 ))
stamp "training for $L s"
mkdir -p runs/device_v2/stage1
cp results/train_open_v2/stage1/last.pt runs/device_v2/stage1/
V2MIN=$(python3 -c "import torch; ck = torch.load('runs/device_v2/stage1/last.pt', weights_only=False, map_location='cpu'); print(round(ck['state']['elapsed_s'] / 60 + ($L - 60) / 60, 2))")
timeout "$L" python3 -m lfm.cli train -f params/train_open_v2.yaml -o runs/device_v2 --splits "$SPLITS" \
    --max-minutes "$V2MIN" --no-progress > "$OUT/v2.log" 2>&1 &
timeout "$L" python3 -m lfm.experiments.ablations -f "$ABL_PARAMS" --splits "$ABL_SPLITS" --workers "$WORKERS" \
    --device "$DEVICE" --runs runs/device_ablations --out "$OUT/ablations_rows_h200.json" > "$OUT/ablations.log" 2>&1 &
wait
stamp "training done"
cp runs/device_v2/stage1/last.pt "$OUT/" 2>/dev/null
[ -f runs/device_v2/stage1/best.pt ] && cp runs/device_v2/stage1/best.pt "$OUT/"
nvidia-smi --query-gpu=memory.used,memory.total --format=csv >> "$OUT/env.txt" 2>&1
stamp "end"
