#!/usr/bin/env bash
# One GPU training window: bench/gpu_train.sh MINUTES RECIPE [SPLITS]
#   runs tests/test_cuda.py, trains RECIPE's last stage for MINUTES from the prepared splits file SPLITS (default
#   $LFM_SPLITS or splits.pkl.xz; make it with `python -m lfm.data.bundle splits.pkl.xz --sets all`), resuming
#   $RESUME or $OUT/last.pt if present, evaluates with lfm.evaluate and writes under $OUT (default ./gpu_out):
#   model.pt, evaluation.json, throughput.json, history.json, last.pt (see bench/gpu_train.py).
#   SKIP_CUDA_TESTS=1 skips the tests (the CPU test of this script); PYTHON picks the interpreter.
set -euo pipefail
MINUTES=${1:?usage: bench/gpu_train.sh MINUTES RECIPE [SPLITS]}
RECIPE=${2:?usage: bench/gpu_train.sh MINUTES RECIPE [SPLITS]}
SPLITS=${3:-${LFM_SPLITS:-splits.pkl.xz}}
OUT=${OUT:-gpu_out}
PY=${PYTHON:-python}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
if [ -z "${SKIP_CUDA_TESTS:-}" ]; then
  $PY -m pytest tests/test_cuda.py -q -x 2>&1 | tail -5 | tee "$OUT/cuda_tests.txt"
fi
exec $PY bench/gpu_train.py --minutes "$MINUTES" --recipe "$RECIPE" --splits "$SPLITS" --out "$OUT" \
  ${RESUME:+--resume "$RESUME"} ${OVERRIDES:+--override $OVERRIDES}
