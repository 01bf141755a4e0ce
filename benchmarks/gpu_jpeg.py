"""GPU JPEG-family benchmark: 64-frame JPEG lossless 16-bit batch (nvJPEG vs pydicom, 1 core) and
JPEG 2000 lossless (nvImageCodec vs pylibjpeg-openjpeg).

``python benchmarks/gpu_jpeg.py`` exits 0 with a message without a GPU; ``--dry-run`` only builds the
workloads (from corpus frames: pydicom 3 has no JPEG lossless encoder) and decodes them on the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

BATCH = 64


def workloads() -> dict[str, tuple]:
    """name -> (spec, [frame bytes] * BATCH): the first 16-bit SV1 lossless and J2K lossless corpus frames."""
    from test_jpeg_markers import jpeg_family_frames

    from gpudcm.jpeg_markers import parse_jpeg

    out = {}
    for path, ds, spec, frames in jpeg_family_frames():
        ts = str(spec.transfer_syntax)
        if ts == "1.2.840.10008.1.2.4.70" and "jpeg-lossless-16" not in out and parse_jpeg(frames[0]).precision == 16:
            out["jpeg-lossless-16"] = (spec, [frames[0]] * BATCH)
        if ts == "1.2.840.10008.1.2.4.90" and "j2k-lossless" not in out and spec.bits_allocated == 16:
            out["j2k-lossless"] = (spec, [frames[0]] * BATCH)
    return out


def cpu_decode(name: str, frames: list[bytes]) -> float:
    t = time.perf_counter()
    if name.startswith("jpeg"):
        from libjpeg import decode
    else:
        from openjpeg import decode
    for f in frames:
        decode(f)
    return time.perf_counter() - t


def gpu_decode(name: str, spec, frames: list[bytes]) -> float:
    import cupy

    from gpudcm.cuda import j2k, nvjpeg
    from gpudcm.jpeg_markers import parse_j2k, parse_jpeg

    def run():
        if name.startswith("jpeg"):
            nvjpeg.decode_batch(frames, [parse_jpeg(f) for f in frames], "lossless")
        else:
            j2k.decode_batch(frames, [parse_j2k(f) for f in frames], spec)
        cupy.cuda.get_current_stream().synchronize()

    run()  # warm-up: handles, states, allocations
    t = time.perf_counter()
    for _ in range(5):
        run()
    return (time.perf_counter() - t) / 5


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dry-run", action="store_true", help="build the workloads and time the CPU only")
    args = ap.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loads = workloads()
    if not loads:
        print("no JPEG lossless / J2K lossless frames in the corpus (pip install pydicom-data)")
        return 0
    from gpudcm.cuda.runtime import cuda_status

    ok, why = cuda_status()
    if not ok and not args.dry_run:
        print(f"no usable GPU ({why}); nothing to benchmark (use --dry-run to check the workloads)")
        return 0
    for name, (spec, frames) in loads.items():
        px = spec.rows * spec.columns * len(frames)
        cpu = cpu_decode(name, frames)
        line = f"{name}: {len(frames)} frames {spec.rows}x{spec.columns}  cpu(1 core) {cpu * 1e3:.1f} ms ({px / cpu / 1e6:.1f} MPx/s)"
        if not args.dry_run:
            gpu = gpu_decode(name, spec, frames)
            line += f"  gpu {gpu * 1e3:.1f} ms ({px / gpu / 1e6:.1f} MPx/s)  speed-up {cpu / gpu:.1f}x"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
