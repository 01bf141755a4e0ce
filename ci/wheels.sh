#!/usr/bin/env bash
# Download the wheels the device machine (Python 3.12, manylinux x86_64, CuPy 14 / CUDA 13 preinstalled,
# no registry) lacks, plus gpudcm's own wheel, into .whl/ (git-ignored). ci/gpu.sh installs them there.
#   bash ci/wheels.sh        # pydicom + plugins + pydicom-data (the whole corpus) + nvJPEG + MONAI (~49 MB)
#   bash ci/wheels.sh --j2k  # the same with nvImageCodec instead of pydicom-data                   (~41 MB)
# The device tool carries at most 64 MiB a call, and nvImageCodec (25 MB) plus pydicom-data (34 MB) do
# not fit together: run the suite once per set.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64)
# pure-Python and binary packages the GPU suite imports that the device image does not have
PACKAGES=(
  "pydicom==3.0.2"
  "pylibjpeg==2.1.0"
  "pylibjpeg-libjpeg==2.5.0"
  "pylibjpeg-openjpeg==2.6.0"
  "pylibjpeg-rle==2.2.0"
  "pyjpegls==1.5.1"
  "nvidia-nvjpeg==13.3.2.43"
  "monai==1.6.1"            # the loader benchmark's baseline (the device image has torch)
  # wsidicom (the wsi bench's baseline) and its pure-Python dependencies
  "wsidicom==0.36.1" "marshmallow==4.4.0" "dicomweb-client==0.61.2" "requests==2.34.2" "urllib3==2.8.0"
  "idna==3.20" "charset-normalizer==3.5.3" "certifi==2026.10.19.post1" "universal-pathlib==0.3.10"
  "pathlib-abc==0.5.2" "cachetools==8.0.2" "retrying==1.4.2" "fsspec==2026.9.0" "pillow==13.0.0"
)
if [ "${1:-}" = "--j2k" ]; then
  PACKAGES+=("nvidia-nvimgcodec-cu13==0.9.0.20")
else
  PACKAGES+=("pydicom-data==1.0.0")
fi
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${PACKAGES[@]}" 2>&1 | grep -v "^WARNING: Location" || true
python3 -m pip wheel -q --no-deps -w .whl . 2>&1 | grep -v "^WARNING: Location" || true
if [ "${1:-}" != "--j2k" ]; then
  # the HTJ2K bench workload (~7 MB), built here: the device has no imagecodecs (OpenJPH's encoder)
  ${PYTHON:-python3} -c "from gpudcm.bench.workloads import build; print(build('htj2k', '.whl/bench-cache', 64))"
  # the wsi bench slide (~3.5 MB of JPEG tiles, encoded by Pillow here)
  ${PYTHON:-python3} -c "from gpudcm.bench.wsi import build_slide; print(build_slide('.whl/bench-cache', 4096))"
fi
ls -la .whl
du -sh .whl
