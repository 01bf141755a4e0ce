#!/usr/bin/env bash
# The project's test command (README, second line; .ci/run calls this). On a fresh Debian machine with
# Python >= 3.10 and no GPU: installs what the tests need into .venv, then runs the suite, including the
# kernel harness (NVRTC compile for sm_80/sm_90, host-built kernel logic, ASan/UBSan run).
set -euo pipefail
cd "$(dirname "$0")/.."

# g++ (with AddressSanitizer): the host build of the kernel logic; dcmtk: the writer's interoperability check
need=()
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v dcmdump >/dev/null 2>&1 || need+=(dcmtk)
# libjpeg headers: the nvJPEG stand-in (tests/harness/raw_jpeg.c) decodes raw component planes with libjpeg-turbo
[ -f /usr/include/jpeglib.h ] || need+=(libjpeg-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "install first: sudo apt-get install ${need[*]}" >&2; exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
# torch first, as the CPU build (a plain "torch" requirement would pull a multi-GB CUDA build): the file
# this machine keeps on disk, else PyTorch's CPU index
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "torch==2.13.0" >/dev/null 2>&1 \
    || python -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
python -m pip install -q -e '.[test,codecs,torch,monai,dask,view]' 2>&1 | grep -v "^WARNING: Location" || true
python -c "import gpudcm, pydicom, data_store, pylibjpeg, torch, monai, dask.distributed, zarr, matplotlib, PIL" # fail fast if the install did not take

export GPUDCM_REPORT_DIR=${GPUDCM_REPORT_DIR:-$(mktemp -d)}
python -m pytest -q -p no:cacheprovider "$@"
# the reliability suite's counts (malformed corpus, size bombs, fuzzing, sanitizers, concurrency)
cat "$GPUDCM_REPORT_DIR"/*.txt 2>/dev/null || true
# the benchmark suite must keep working as tests (timings come from benchmarks/report.py)
python -m pytest -q -p no:cacheprovider benchmarks --benchmark-disable
# smoke tests of the reports: gpudcm bench (workloads built, every library checked against pydicom) and
# the loader benchmark on the CPU
gpudcm bench --quick --out "$GPUDCM_REPORT_DIR/bench"
python benchmarks/gpu_loader.py --dry-run
