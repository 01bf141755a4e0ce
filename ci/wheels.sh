#!/usr/bin/env bash
# Build .whl/ (git-ignored), the one set of files the device run needs beside the checkout:
#   bash ci/wheels.sh
# The device machine (Python 3.12, manylinux x86_64, CuPy 14 / CUDA 13 preinstalled, no registry) lacks:
#   - pydicom + the CPU plugins (the reference), nvJPEG, nvImageCodec + nvJPEG2000 (its GPU J2K decoder),
#     MONAI (the loader benchmark's baseline), wsidicom (the wsi bench's): wheels from PyPI, pinned;
#   - pydicom-data, trimmed to the files the gpu tests read (pydicom-data-trimmed.tar.gz: every
#     compressed file and the native ones under 0.6 MB; the large native files add nothing that
#     pydicom's own test files and the generated cases do not cover);
#   - the HTJ2K cases of tests/datagen.py, pre-generated here (htj2k/: the device has no OpenJPH encoder),
#     and the bench's HTJ2K workload and wsi slide (bench-cache/).
# The device tool carries at most 64 MiB (checkout included): this script fails when the set is over
# WHEELS_LIMIT_MB (default 60). nvImageCodec's wheel is repacked without the extension modules of the
# other Python versions and its CPU codecs (OpenCV, libtiff, ...): gpudcm asks it for GPU backends only.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
LIMIT_MB=${WHEELS_LIMIT_MB:-60}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> "$(git rev-parse --git-path info/exclude)"
rm -rf .whl && mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_31_x86_64 --platform manylinux_2_34_x86_64 --platform manylinux_2_35_x86_64)
PACKAGES=(
  "pydicom==3.0.2"
  "pylibjpeg==2.1.0"
  "pylibjpeg-libjpeg==2.5.0"
  "pylibjpeg-openjpeg==2.6.0"
  "pylibjpeg-rle==2.2.0"
  "pyjpegls==1.5.1"
  "nvidia-nvjpeg==13.3.2.43"
  "nvidia-nvimgcodec-cu13==0.9.0.20"
  "nvidia-nvjpeg2k-cu13==0.11.0.51"
  "monai==1.6.1"            # the loader benchmark's baseline (the device image has torch)
  # wsidicom (the wsi bench's baseline) and its pure-Python dependencies
  "wsidicom==0.36.1" "marshmallow==4.4.0" "dicomweb-client==0.61.2" "requests==2.34.2" "urllib3==2.8.0"
  "idna==3.20" "charset-normalizer==3.5.3" "certifi==2026.10.19.post1" "universal-pathlib==0.3.10"
  "pathlib-abc==0.5.2" "cachetools==8.0.2" "retrying==1.4.2" "fsspec==2026.9.0" "pillow==13.0.0"
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${PACKAGES[@]}" 2>&1 | grep -v "^WARNING: Location" || true

"$PY" - <<'EOF'
"""Repack nvImageCodec: keep the cp312 module and the nvjpeg / nvjpeg2k extensions, with a RECORD
that matches what is left (so pip installs it as any wheel)."""
import base64, glob, hashlib, os, zipfile
(path,) = glob.glob(".whl/nvidia_nvimgcodec_cu13-*.whl")
keep_ext = ("libnvjpeg_ext", "libnvjpeg2k_ext")
def wanted(name):
    base = os.path.basename(name)
    if "/nvimgcodec_impl.cpython-" in name and ".cpython-312-" not in name:
        return False
    if "/extensions/" in name and base and not base.startswith(keep_ext):
        return False
    return True
tmp = path + ".tmp"
with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
    names = [n for n in src.namelist() if wanted(n)]
    record = next(n for n in names if n.endswith(".dist-info/RECORD"))
    rows = []
    for n in names:
        if n == record:
            continue
        data = src.read(n)
        dst.writestr(src.getinfo(n), data)
        if not n.endswith("/"):
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{n},sha256={digest},{len(data)}")
    rows.append(f"{record},,")
    dst.writestr(record, "\n".join(rows) + "\n")
os.replace(tmp, path)
print(f"repacked {path}: {os.path.getsize(path) / 1e6:.1f} MB")
EOF

# pydicom-data, trimmed: installed into a scratch tree, unused files removed, packed as a tree to unpack
# into the device's --target folder (its entry point, data_store's DataStore, comes with the dist-info)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
python3 -m pip download -q --no-deps -d "$SCRATCH/dl" "pydicom-data==1.0.0" 2>&1 | grep -v "^WARNING: Location" || true
python3 -m pip install -q --no-deps --no-compile --target "$SCRATCH/tree" "$SCRATCH"/dl/pydicom_data-*.whl 2>&1 | grep -v "^WARNING: Location" || true
"$PY" - "$SCRATCH/tree/data_store/data" <<'EOF'
import os, sys
from pydicom import dcmread
folder = sys.argv[1]
kept = dropped = 0
for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    size = os.path.getsize(path)
    try:
        compressed = dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
    except Exception:
        compressed = True  # unreadable meta: keep (the tests check that it fails cleanly)
    if compressed or size <= 600_000:
        kept += size
    else:
        dropped += size
        os.remove(path)
print(f"pydicom-data trimmed: kept {kept / 1e6:.1f} MB, dropped {dropped / 1e6:.1f} MB of large native files")
EOF
tar -C "$SCRATCH/tree" -czf .whl/pydicom-data-trimmed.tar.gz data_store $(cd "$SCRATCH/tree" && ls -d pydicom_data-*.dist-info)

# the HTJ2K generated cases (files + the values they hold) and the bench's HTJ2K workload
PYTHONPATH=$PWD/src:$PWD:$PWD/tests "$PY" - <<'EOF'
import pathlib, shutil, tempfile
import numpy as np
from datagen import generate_all
out = pathlib.Path(".whl/htj2k")
out.mkdir(parents=True)
with tempfile.TemporaryDirectory() as tmp:
    cases = [c for c in generate_all(pathlib.Path(tmp)) if c.name.startswith("htj2k")]
    if not cases:
        raise SystemExit("no HTJ2K cases generated: pip install imagecodecs (OpenJPH) first")
    for c in cases:
        shutil.copy(c.path, out / f"{c.name}.dcm")
        np.save(out / f"{c.name}.npy", c.expected)
        (out / f"{c.name}.txt").write_text(c.description)
print(f"pre-generated {len(cases)} HTJ2K cases into {out}")
EOF
PYTHONPATH=$PWD/src "$PY" -c "from gpudcm.bench.workloads import build; print(build('htj2k', '.whl/bench-cache', 16))"
# the wsi bench slide (~3.5 MB of JPEG tiles, encoded by Pillow here)
PYTHONPATH=$PWD/src "$PY" -c "from gpudcm.bench.wsi import build_slide; print(build_slide('.whl/bench-cache', 4096))"

ls -la .whl
total=$(du -sb .whl | cut -f1)
tree=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
echo "wheel set: $((total / 1048576)) MiB; checkout: $((tree / 1048576)) MiB; device carry limit 64 MiB"
if [ $((total + tree)) -gt $((LIMIT_MB * 1048576)) ]; then
  echo "FAIL: .whl plus the checkout is over ${LIMIT_MB} MiB" >&2
  exit 1
fi
