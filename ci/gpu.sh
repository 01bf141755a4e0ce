#!/usr/bin/env bash
# The one command a session with a device runs (through the device tool, carrying .whl from ci/wheels.sh):
#   bash ci/gpu.sh
# It installs the carried wheels, runs the `gpu` tests (cuda == cpu on the whole corpus), compute-sanitizer
# memcheck over a CUDA decode of the corpus, and the benchmarks, and writes one result file (device, driver,
# CUDA, commit, results) to $OUT (or benchmarks/results/) to commit under benchmarks/results/.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUTDIR=${OUT:-benchmarks/results}
mkdir -p "$OUTDIR"
RESULT="$OUTDIR/gpu-$(date -u +%Y%m%dT%H%M%SZ).md"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD

{
  echo "# gpudcm GPU suite"
  echo
  echo "- date: $(date -u +%FT%TZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || cat .commit 2>/dev/null || echo unknown)"
  echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"
  echo "- CUDA (CuPy runtime): $(python3 -c 'import cupy; print(cupy.cuda.runtime.runtimeGetVersion())' 2>&1)"
  echo "- cupy: $(python3 -c 'import cupy; print(cupy.__version__)' 2>&1), pydicom: $(python3 -c 'import pydicom; print(pydicom.__version__)' 2>&1)"
  echo
  echo "## gpu tests"
  echo '```'
  python3 -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tail -n 25
  echo '```'
  echo
  echo "## compute-sanitizer memcheck (CUDA decode of the corpus)"
  echo '```'
  compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m tests.harness.decode_corpus --device cuda 2>&1 | tail -n 15
  echo "exit: ${PIPESTATUS[0]}"
  echo '```'
  echo
  echo "## benchmarks"
  echo '```'
  python3 benchmarks/gpu_report.py --rounds 15 2>&1 | tail -n 30
  echo
  python3 benchmarks/gpu_preprocess.py 2>&1 | tail -n 20
  echo
  python3 benchmarks/gpu_jpeg.py 2>&1 | tail -n 20
  echo
  python3 benchmarks/report.py --rounds 9 --no-batch 2>&1 | grep -E "^\\|" | head -n 20
  echo '```'
} 2>&1 | tee "$RESULT"
echo "wrote $RESULT"
