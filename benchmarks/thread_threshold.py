"""Where a file's frames start paying for the thread pool: ``gpudcm.decode_batch([path], device="cpu")`` of
generated multi-frame RLE Lossless and JPEG 2000 Lossless files (a cheap and an expensive codec per byte),
frames decoded on one thread against two (``MIN_THREAD_SECONDS`` and ``MIN_THREAD_BYTES`` of
gpudcm/codecs/decode.py set to 0 so the pool is always used), interleaved rounds, median per call. Prints a
Markdown table by codec CPU time per thread (what the rule in ``frame_threads`` looks at); the threshold
is where two threads start to win, for both codecs. Timings on a shared machine are noisy.

    PYTHONPATH=src .venv/bin/python benchmarks/thread_threshold.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import gpudcm  # noqa: E402
from datagen import _base_dataset  # noqa: E402
from gpudcm.codecs import decode as codec_decode  # noqa: E402


def rle_file(path: Path, frames: int, side: int, samples: int, syntax=RLELossless) -> Path:
    rng = np.random.default_rng(side * frames + samples)
    bits = 8 if samples == 3 else 16
    ds = _base_dataset(ExplicitVRLittleEndian, rows=side, cols=side, frames=frames, spp=samples,
                       photometric="RGB" if samples == 3 else "MONOCHROME2", bits_allocated=bits,
                       bits_stored=bits, pixel_rep=0)
    shape = (frames, side, side) + ((samples,) if samples > 1 else ())
    # smooth-ish data (a ramp plus noise) so RLE runs are as in images, not random bytes
    ramp = np.add.outer(np.arange(side), np.arange(side)).astype(np.int64)
    ramp = ramp.reshape((1, side, side) + ((1,) if samples > 1 else ()))
    arr = ((ramp + rng.integers(0, 4, size=shape)) % (1 << bits)).astype(np.uint8 if bits == 8 else np.uint16)
    ds.set_original_encoding(False, True)
    ds.PixelData = arr.tobytes()
    ds.compress(syntax, arr)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def frame_cost(path: Path) -> float:
    """CPU seconds one frame's decode takes (median over the file's frames, decoded on this thread)."""
    with gpudcm.open_pixels(str(path)) as reader:
        spec = reader.spec
        frames = [bytes(reader.frame_bytes(i)) for i in range(spec.number_of_frames)]
    out = np.empty(spec.frame_shape, dtype=spec.dtype)
    costs = []
    for data in frames:
        t0 = time.thread_time()
        codec_decode.decode_frame(spec, data, out=out)
        costs.append(time.thread_time() - t0)
    return statistics.median(costs)


def measure(path: Path, rounds: int) -> tuple[float, float]:
    """Median seconds per call on one thread and on two (the pool always used)."""
    one = lambda: gpudcm.decode_batch([path], device="cpu", workers=1)  # noqa: E731
    two = lambda: gpudcm.decode_batch([path], device="cpu", workers=2)  # noqa: E731
    np.testing.assert_array_equal(one()[0], two()[0])
    n = max(1, min(200, int(0.02 / max(_time(one, 1), 1e-6))))
    a, b = [], []
    for r in range(rounds):
        for acc, fn in ((a, one), (b, two)) if r % 2 == 0 else ((b, two), (a, one)):
            acc.append(_time(fn, n))
    return statistics.median(a), statistics.median(b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args(argv)
    from pydicom.uid import JPEG2000Lossless

    saved = codec_decode.MIN_THREAD_SECONDS, codec_decode.MIN_THREAD_BYTES
    codec_decode.MIN_THREAD_SECONDS, codec_decode.MIN_THREAD_BYTES = 0.0, 0
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, syntax in (("RLE", RLELossless), ("J2K", JPEG2000Lossless)):
                for samples in (1, 3):
                    for frames in (4, 8, 32):
                        for side in (16, 32, 64, 128, 256):
                            path = Path(tmp) / f"{name}_{samples}_{frames}_{side}.dcm"
                            try:
                                rle_file(path, frames, side, samples, syntax)
                            except Exception as exc:  # noqa: BLE001 - no encoder installed for it
                                print(f"{name}: not encodable here ({exc})", file=sys.stderr)
                                continue
                            one, two = measure(path, args.rounds)
                            work = (frames - 2) * frame_cost(path) / 2  # the first two decode before the split
                            rows.append((work, name, samples, frames, side, one, two))
                            print(f"{name} {work * 1e6:8.0f} us/thread samples {samples} frames {frames:3d} "
                                  f"{side}x{side}: 1 thread {one * 1e6:8.0f} us, 2 threads {two * 1e6:8.0f} us, "
                                  f"{one / two:5.2f}x", file=sys.stderr, flush=True)
    finally:
        codec_decode.MIN_THREAD_SECONDS, codec_decode.MIN_THREAD_BYTES = saved
    print("| codec CPU us per thread | codec | samples | frames | size | 1 thread (us) | 2 threads (us) | 2 / 1 |")
    print("|---:|---|---:|---:|---|---:|---:|---:|")
    for work, name, samples, frames, side, one, two in sorted(rows):
        print(f"| {work * 1e6:.0f} | {name} | {samples} | {frames} | {side}x{side} | {one * 1e6:.0f} | "
              f"{two * 1e6:.0f} | {one / two:.2f}x |")
    print(f"\nMIN_THREAD_SECONDS {saved[0] * 1e6:.0f} us, MIN_THREAD_BYTES {saved[1]:,d} (gpudcm/codecs/decode.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
