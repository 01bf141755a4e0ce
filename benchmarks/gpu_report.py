"""GPU benchmarks for the native and RLE device paths, measured in one run on one device.

    python benchmarks/gpu_report.py [--rounds N] [--out FILE]

Rows (medians over N rounds, each synchronised):
- native 16-bit CT series, 256 files of 512x512, host datasets -> one CuPy array
  (``decode_batch(..., device="cuda", stack=True)``), against a pinned CuPy host-to-device copy of the
  same pixel bytes (the physical limit) and pydicom on one core;
- RLE Lossless, 64 frames of 512x512 16-bit in one file, against pylibjpeg-rle via pydicom on one core
  and a device-to-device copy of the decoded size;
- per-call overhead of one small frame (CT_small.dcm), CPU path and CUDA path.

Without a CUDA device it prints why and exits 0 (so CI can smoke-test the workload generation with
``--dry-run``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from io import BytesIO

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

import gpudcm
from gpudcm.bench.limits import d2d, pinned_h2d


def _dataset(frames: np.ndarray, tsyntax=ExplicitVRLittleEndian) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.set_pixel_data(frames, "MONOCHROME2", 12)
    if tsyntax == RLELossless:
        ds.compress(RLELossless, encoding_plugin="pydicom")
    return ds


def _roundtrip(ds: Dataset) -> Dataset:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return dcmread(BytesIO(buf.getvalue()))


def ct_series(n: int = 256, size: int = 512, seed: int = 0) -> list[Dataset]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 4096, size=(size, size), dtype=np.uint16)
    return [_roundtrip(_dataset(np.roll(base, i, axis=0))) for i in range(n)]


def rle_volume(frames: int = 64, size: int = 512, seed: int = 1) -> Dataset:
    rng = np.random.default_rng(seed)
    # CT-like content: smooth regions compress into replicate runs, noise into literal runs
    yy, xx = np.mgrid[0:size, 0:size]
    body = ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < (size / 2.3) ** 2) * 1000
    vol = np.stack([body + rng.integers(0, 40, size=(size, size)) * (i % 3 == 0) for i in range(frames)]).astype(np.uint16)
    return _roundtrip(_dataset(vol, RLELossless))


def median_s(fn: Callable[[], object], rounds: int, sync: Callable[[], None] = lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run(rounds: int) -> list[str]:
    import cupy

    sync = cupy.cuda.Device().synchronize
    lines = ["| workload | contender | median ms | GB/s (decoded) | ratio |", "|---|---|---:|---:|---:|"]

    series = ct_series()
    nbytes = sum(len(ds.PixelData) for ds in series)
    out = gpudcm.decode_batch(series, device="cuda", stack=True)
    ref = np.stack([pydicom_pixel_array(ds) for ds in series[:4]])
    assert np.array_equal(out[:4].get(), ref), "native series differs from pydicom"
    t_gpu = median_s(lambda: gpudcm.decode_batch(series, device="cuda", stack=True), rounds, sync)
    t_h2d = median_s(pinned_h2d(b"".join(ds.PixelData for ds in series)), rounds, sync)
    t_cpu = median_s(lambda: [pydicom_pixel_array(ds) for ds in series], max(3, rounds // 5))
    for name, t in (("gpudcm cuda (decode_batch, stack)", t_gpu), ("pinned H2D copy of the same bytes", t_h2d), ("pydicom, 1 core", t_cpu)):
        lines.append(f"| native CT 256x512x512 u16 | {name} | {t * 1e3:.2f} | {nbytes / t / 1e9:.2f} | {t_h2d / t:.2f} of H2D |")

    vol = rle_volume()
    decoded = vol.Rows * vol.Columns * 2 * int(vol.NumberOfFrames)
    arr = gpudcm.pixel_array(vol, device="cuda")
    assert np.array_equal(arr.get(), pydicom_pixel_array(vol)), "RLE differs from pydicom"
    backend = gpudcm.backend_for(gpudcm.pixel_spec(vol), "cuda").backend
    t_rle = median_s(lambda: gpudcm.pixel_array(vol, device="cuda"), rounds, sync)
    t_pylj = median_s(lambda: pydicom_pixel_array(vol, decoding_plugin="pylibjpeg"), max(3, rounds // 5))
    t_d2d = median_s(d2d(decoded), rounds, sync)
    for name, t in ((f"gpudcm cuda ({backend})", t_rle), ("pylibjpeg-rle via pydicom, 1 core", t_pylj), ("device-to-device copy of the output size", t_d2d)):
        lines.append(f"| RLE 64x512x512 u16 | {name} | {t * 1e3:.2f} | {decoded / t / 1e9:.2f} | {t_pylj / t:.1f}x pylibjpeg |")

    from pydicom.data import get_testdata_file

    small = get_testdata_file("CT_small.dcm")
    t_small_gpu = median_s(lambda: gpudcm.pixel_array(small, device="cuda"), rounds * 4, sync)
    t_small_cpu = median_s(lambda: gpudcm.pixel_array(small, device="cpu"), rounds * 4)
    lines.append(f"| one small frame (CT_small 128x128) | gpudcm cuda per call | {t_small_gpu * 1e3:.3f} | | |")
    lines.append(f"| one small frame (CT_small 128x128) | gpudcm cpu per call | {t_small_cpu * 1e3:.3f} | | |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out")
    parser.add_argument("--dry-run", action="store_true", help="only build the workloads (no GPU needed)")
    args = parser.parse_args(argv)
    if args.dry_run:
        series, vol = ct_series(n=4, size=64), rle_volume(frames=4, size=64)
        assert np.array_equal(gpudcm.pixel_array(vol, device="cpu"), pydicom_pixel_array(vol))
        print(f"dry run: {len(series)} native datasets, RLE volume {vol.NumberOfFrames} frames")
        return 0
    from gpudcm.cuda.runtime import cuda_status

    ok, why = cuda_status()
    if not ok:
        print(f"gpu_report: no CUDA device ({why}); nothing measured")
        return 0
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    head = [f"device: {props['name'].decode()}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
            f"driver {cupy.cuda.runtime.driverGetVersion()}, cupy {cupy.__version__}, gpudcm {gpudcm.__version__}", ""]
    text = "\n".join(head + run(args.rounds))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
