#!/usr/bin/env bash
# The device run: ONE command, at most 8 minutes (GPUDCM_GPU_BUDGET_S, default 420 s), through the device
# tool with `.whl` carried (built here by `bash ci/wheels.sh`):
#   bash ci/gpu.sh
# Steps, each under its own timeout, each writing its full log to $OUT as it goes (partial results come
# back when the run is cut off), a summary table printed last and written to $OUT/summary.md:
#   setup     install .whl into /tmp/site (checkout first on PYTHONPATH), versions, compute-sanitizer --version
#   probes    one probe per defect of issue 14 (tests/harness/gpu_probes.py): PASS/FAIL with numbers
#   tests     the `gpu` tests, GPUDCM_REQUIRE_GPU=1 (a missing GPU backend fails, never skips), per-test timeout
#   memcheck  compute-sanitizer memcheck on the files gpudcm's kernels decode, CuPy's memory pool off
#   bench     headline `gpudcm bench --quick` rows, if time is left
# `bash ci/gpu.sh loader` (PyTorch loader against MONAI) / `wsi` (slide regions against wsidicom) / `micro`:
# the longer benchmarks, one call each (GPUDCM_GPU_BUDGET_S=540 for them).
# GPUDCM_GPU_DRY_RUN=1 runs the same steps on a machine without a GPU (the local venv, short limits): every
# step fails cleanly at the CUDA import, which checks the script's structure. $OUT holds at most 8 files.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
DRY=${GPUDCM_GPU_DRY_RUN:-0}
OUTDIR=${OUT:-benchmarks/results/gpu-run}
mkdir -p "$OUTDIR"
BUDGET=${GPUDCM_GPU_BUDGET_S:-420}
START=$(date +%s)
PY=python3
SITE=/tmp/site
if [ "$DRY" = 1 ]; then
  PY=$PWD/.venv/bin/python
  [ -x "$PY" ] || PY=python3
  SITE=$(mktemp -d)
fi
export PYTHONPATH=$PWD/src:$PWD:$SITE
export GPUDCM_REQUIRE_GPU=1 GPUDCM_PREGENERATED_HTJ2K=$PWD/.whl/htj2k GPUDCM_KERNEL_CACHE=/tmp/gpudcm-kernels
SUMMARY=()

elapsed() { echo $(( $(date +%s) - START )); }

# step NAME LIMIT_S CMD...: runs CMD with at most LIMIT_S (less if the budget is nearly spent), its output
# into $OUTDIR/NAME.log, and one summary row
step() {
  local name=$1 limit=$2 left rc t0 last
  shift 2
  left=$(( BUDGET - $(elapsed) - 15 ))
  if [ "$left" -lt 20 ]; then
    SUMMARY+=("| $name | SKIP | - | 0 | no time left in the ${BUDGET} s budget |")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  t0=$(date +%s)
  echo "== $name (limit ${limit} s) =="
  timeout -k 10 "$limit" bash -c '"$@"' _ "$@" > "$OUTDIR/$name.log" 2>&1
  rc=$?
  local verdict=PASS
  [ $rc -ne 0 ] && verdict=FAIL
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict=TIMEOUT
  last=$(grep -v '^\s*$' "$OUTDIR/$name.log" | tail -n 1 | cut -c1-150 | tr '|' '/')
  SUMMARY+=("| $name | $verdict | $rc | $(( $(date +%s) - t0 )) | $last |")
  tail -n 3 "$OUTDIR/$name.log"
}

setup() {
  if [ "$DRY" = 1 ]; then
    echo "dry run: no install (the local venv); .whl holds:"
    ls .whl 2>/dev/null || echo "(no .whl: run bash ci/wheels.sh)"
  else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || return 1
    tar -C "$SITE" -xzf .whl/pydicom-data-trimmed.tar.gz || return 1
    # one `nvidia` package spanning every nvidia/ folder on sys.path (the wheels' own __init__ files differ)
    echo "__path__ = __import__('pkgutil').extend_path(__path__, __name__)" > "$SITE/nvidia/__init__.py"
  fi
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -n 2
  "$PY" -c "import sys, numpy, pydicom; print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'pydicom', pydicom.__version__)" || return 1
  "$PY" -c "import cupy; print('cupy', cupy.__version__, 'CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(), 'devices', cupy.cuda.runtime.getDeviceCount())" || return 1
  "$PY" -m gpudcm capabilities 2>&1 | grep -iE "jpeg|rle|explicit vr little" | head -n 12
  (command -v compute-sanitizer && compute-sanitizer --version | tail -n 1) || echo "compute-sanitizer: not found"
}

probes() { "$PY" -m tests.harness.gpu_probes --timeout "${1:-60}"; }

gpu_tests() {
  local opts=(-q -p no:cacheprovider -m gpu -o addopts="" -rfE)
  if "$PY" -c "import pytest_timeout" 2>/dev/null; then opts+=(--timeout=60); fi
  # 16 cores: the CPU reference decode of each corpus file dominates; 8 processes share the GPU
  if [ "$DRY" != 1 ] && "$PY" -c "import xdist" 2>/dev/null; then opts+=(-n 8); fi
  [ "$DRY" = 1 ] && opts+=(-x)
  "$PY" -m pytest "${opts[@]}" tests
}

memcheck() {
  if ! command -v compute-sanitizer >/dev/null; then echo "compute-sanitizer not found"; return 1; fi
  compute-sanitizer --version | tail -n 1
  compute-sanitizer --tool memcheck --leak-check no --error-exitcode 9 --print-limit 20 \
    "$PY" -m tests.harness.decode_corpus --device cuda --kernels-only --no-pool --limit "${1:-80}"
}

bench() {
  "$PY" -m gpudcm bench --device cuda --quick --no-plot --cache .whl/bench-cache --size htj2k=16 \
    --out "$OUTDIR" --name bench-cuda
}

loader() { "$PY" benchmarks/gpu_loader.py; }
wsi() { "$PY" benchmarks/wsi.py --device cuda --cache .whl/bench-cache --out "$OUTDIR"; }
micro() {
  "$PY" benchmarks/gpu_report.py --rounds 15 && "$PY" benchmarks/gpu_preprocess.py && "$PY" benchmarks/gpu_jpeg.py
}

export DRY PY SITE OUTDIR
export -f setup probes gpu_tests memcheck bench loader wsi micro
if [ $# -gt 0 ]; then  # the longer benchmarks, one device call each: bash ci/gpu.sh loader | wsi | micro
  step setup 60 setup
  for part in "$@"; do
    case $part in
      loader|wsi|micro) step "$part" 480 "$part" ;;
      *) echo "unknown part $part (loader, wsi, micro; no argument: the verification run)" >&2; exit 2 ;;
    esac
  done
elif [ "$DRY" = 1 ]; then
  step setup 60 setup
  step probes 60 probes 10
  step tests 120 gpu_tests
  step memcheck 30 memcheck 2
  step bench 30 bench
else
  step setup 60 setup
  step probes 100 probes 45
  step tests 170 gpu_tests
  step memcheck 80 memcheck 80
  step bench 70 bench
fi

{
  echo "# gpudcm device run ($(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(elapsed) s of ${BUDGET} s)"
  echo
  echo "| step | result | rc | s | last line |"
  echo "| --- | --- | --- | --- | --- |"
  printf '%s\n' "${SUMMARY[@]}"
  echo
  echo "## probes"
  echo
  grep '^PROBE' "$OUTDIR/probes.log" 2>/dev/null | sed 's/^/- /' || echo "(no probe ran)"
  echo
  echo "## gpu tests"
  echo
  grep -E "passed|failed|error" "$OUTDIR/tests.log" 2>/dev/null | tail -n 3 | sed 's/^/    /'
} > "$OUTDIR/summary.md"
cat "$OUTDIR/summary.md"
grep -q '| \(FAIL\|TIMEOUT\) |' "$OUTDIR/summary.md" && exit 1
exit 0
