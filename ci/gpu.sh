#!/usr/bin/env bash
# The device suite (run through the device tool, carrying .whl from ci/wheels.sh). One device call may run
# at most 10 minutes, so the suite comes in parts:
#   bash ci/gpu.sh tests memcheck        # gpu tests (cuda == cpu on the corpus), compute-sanitizer memcheck
#   bash ci/gpu.sh bench loader          # gpudcm bench --device cuda, the PyTorch loader against MONAI
#   bash ci/gpu.sh wsi                   # slide regions against wsidicom (benchmarks/wsi.py)
#   bash ci/gpu.sh micro                 # gpu_report, gpu_preprocess, gpu_jpeg, CPU report
#   bash ci/gpu.sh                       # all of them (on a machine without the 10-minute limit)
# Each call writes one result file (device, driver, CUDA, commit, results) to $OUT (or benchmarks/results/)
# to commit under benchmarks/results/; gpudcm bench also writes its .md/.json there (draw its PNG here with
# `gpudcm bench --from-json FILE --out benchmarks/results` when the device lacks matplotlib).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
OUTDIR=${OUT:-benchmarks/results}
mkdir -p "$OUTDIR"
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(tests memcheck bench loader wsi micro)
RESULT="$OUTDIR/gpu-$(date -u +%Y%m%dT%H%M%SZ)-$(IFS=-; echo "${PARTS[*]}").md"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
export PATH=/tmp/site/bin:$PATH

part_tests() {
  echo "## gpu tests"
  echo '```'
  python3 -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tail -n 40
  echo '```'
}
part_memcheck() {
  echo "## compute-sanitizer memcheck (CUDA decode of the corpus)"
  echo '```'
  compute-sanitizer --tool memcheck --error-exitcode 9 python3 -m tests.harness.decode_corpus --device cuda 2>&1 | tail -n 15
  echo "exit: ${PIPESTATUS[0]}"
  echo '```'
}
part_bench() {
  echo "## gpudcm bench --device cuda"
  echo '```'
  # .whl/bench-cache holds the HTJ2K workload built by ci/wheels.sh; the rest are built here
  timeout 420 python3 -m gpudcm bench --device cuda --cache .whl/bench-cache --out "$OUTDIR" --name bench-cuda 2>&1 | tail -n 45
  echo '```'
}
part_wsi() {
  echo "## whole-slide regions against wsidicom (2048 and 4096 square, JPEG tiles)"
  echo '```'
  timeout 300 python3 benchmarks/wsi.py --device cuda --cache .whl/bench-cache --out "$OUTDIR" 2>&1 | tail -n 25
  echo '```'
}
part_loader() {
  echo "## PyTorch loader against MONAI LoadImage(PydicomReader), 16 workers"
  echo '```'
  timeout 300 python3 benchmarks/gpu_loader.py 2>&1 | tail -n 25
  echo '```'
}
part_micro() {
  echo "## micro-benchmarks"
  echo '```'
  python3 benchmarks/gpu_report.py --rounds 15 2>&1 | tail -n 30
  echo
  python3 benchmarks/gpu_preprocess.py 2>&1 | tail -n 20
  echo
  python3 benchmarks/gpu_jpeg.py 2>&1 | tail -n 20
  echo
  python3 benchmarks/report.py --rounds 9 --no-batch 2>&1 | grep -E "^\\|" | head -n 20
  echo '```'
}

{
  echo "# gpudcm GPU suite: ${PARTS[*]}"
  echo
  echo "- date: $(date -u +%FT%TZ)"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || cat .commit 2>/dev/null || echo unknown)"
  echo "- device: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"
  echo "- CUDA (CuPy runtime): $(python3 -c 'import cupy; print(cupy.cuda.runtime.runtimeGetVersion())' 2>&1)"
  echo "- cupy: $(python3 -c 'import cupy; print(cupy.__version__)' 2>&1), pydicom: $(python3 -c 'import pydicom; print(pydicom.__version__)' 2>&1), torch: $(python3 -c 'import torch; print(torch.__version__)' 2>&1)"
  echo
  for part in "${PARTS[@]}"; do
    "part_$part"
    echo
  done
} 2>&1 | tee "$RESULT"
echo "wrote $RESULT"
