"""Fused ``gpudcm.preprocess`` against the same preprocessing as a chain of separate CuPy operations.

    python benchmarks/gpu_preprocess.py [--frames 64] [--size 256 256] [--dtype float16]
                                        [--interpolation bilinear] [--rounds 20] [--strict] [--dry-run]

Workload: a 64-frame 512x512 int16 CT batch (Rescale Intercept -1024, window from the dataset), resized to
256x256 with min/max normalisation. The chain does what one would write without the kernel: cast,
rescale, window (``where``), min/max, normalise, resize (gathers along columns then rows, with the same tap
tables) and cast, each step a separate CuPy kernel with its own round trip through device memory.

Reported per side: median time over the rounds (CUDA events, after warm-up), bytes moved (each step's
input and output arrays; the fused side reads the input once for the kernel and twice for min/max, and
writes the output once) and the effective bandwidth; then the speed-up (target >= 3x) and the largest
difference between the two results. Without a CUDA device it prints why and exits 0; ``--dry-run`` builds
the workload, runs the NumPy reference once and checks the chain, run with NumPy, against it (no GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))  # run from a checkout without installing

from gpudcm import preprocessing as pp  # noqa: E402
from gpudcm.cuda.runtime import cuda_status  # noqa: E402

TARGET_SPEEDUP = 3.0


def workload(frames: int, rows: int = 512, cols: int = 512, seed: int = 0) -> tuple[np.ndarray, Dataset]:
    """int16 CT-like stored values (air, soft tissue, bone) and a matching dataset."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    body = ((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2) < (0.4 * min(rows, cols)) ** 2
    base = np.where(body, 1064, 24).astype(np.int16)
    arr = base[None] + rng.normal(0, 40, size=(frames, rows, cols)).astype(np.int16)
    arr[:, rows // 2 - 20 : rows // 2 + 20, cols // 2 - 60 : cols // 2 - 20] += 900  # bone
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel = 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelSpacing = [0.7, 0.7]
    return arr, ds


def chain(cupy, arr, plan: pp.PreprocessPlan, log: list[int]):
    """The preprocessing as separate CuPy operations, each one's bytes (inputs + output) appended to `log`."""

    def step(out, *inputs):
        log.append(sum(x.nbytes for x in inputs if hasattr(x, "nbytes")) + out.nbytes)
        return out

    p = plan.params
    v = step(arr.astype(cupy.float32), arr)
    v = step(v * p[pp.P_SLOPE], v)
    v = step(v + p[pp.P_INTERCEPT], v)
    if plan.flags & pp.FLAG_WINDOW:
        t = step(v - p[pp.P_CENTER], v)
        t = step(t / p[pp.P_WIDTH], t)
        t = step(t + np.float32(0.5), t)
        t = step(t * p[pp.P_Y_RANGE], t)
        t = step(t + p[pp.P_Y_MIN], t)
        t = step(cupy.clip(t, p[pp.P_CLAMP_LO], p[pp.P_CLAMP_HI]), t)
        below, above = step(v <= p[pp.P_LOWER], v), step(v > p[pp.P_UPPER], v)
        t = step(cupy.where(above, p[pp.P_Y_MAX], t), above, t)
        v = step(cupy.where(below, p[pp.P_Y_MIN], t), below, t)
    if plan.flags & pp.FLAG_MINMAX:
        lo, hi = step(v.min(), v), step(v.max(), v)
        span = hi - lo
        v = step(v - lo, v)
        v = step(v / cupy.where(span == 0, np.float32(1), span), v)
    for taps, axis in ((plan.x, 2), (plan.y, 1)):  # columns, then rows
        acc = None
        for k in range(taps.taps):
            idx = cupy.asarray(np.where(taps.idx[:, k] >= 0, taps.idx[:, k], 0))
            w = cupy.asarray(np.where(taps.idx[:, k] >= 0, taps.w[:, k], 0).astype(np.float32))
            g = step(cupy.take(v, idx, axis=axis), v)
            g = step(g * (w if axis == 2 else w[:, None]), g)
            acc = g if acc is None else step(acc + g, acc, g)
        v = acc
    v = step(v / p[pp.P_OUT_DIV], v)
    return step(v.astype(plan.out_dtype), v)


def median_ms(cupy, fn, rounds: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(rounds):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float16")
    parser.add_argument("--interpolation", choices=pp.INTERPOLATIONS, default="bilinear")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--strict", action="store_true", help=f"exit 1 when the speed-up is below {TARGET_SPEEDUP}x")
    parser.add_argument("--dry-run", action="store_true", help="build the workload and run the NumPy reference once")
    args = parser.parse_args(argv)

    arr, ds = workload(args.frames)
    options = dict(window="auto", dtype=np.dtype(args.dtype), normalize="minmax", size=tuple(args.size),
                   interpolation=args.interpolation)
    plan = pp.plan_preprocess(arr.shape, arr.dtype, ds, window="auto", out_dtype=options["dtype"],
                              normalize="minmax", size=tuple(args.size), interpolation=args.interpolation)
    out_bytes = plan.n_out * plan.out_dtype.itemsize
    fused_bytes = 3 * arr.nbytes + out_bytes  # kernel read, min and max reductions, output write
    print(f"workload: {arr.shape} {arr.dtype} -> {plan.out_shape} {plan.out_dtype}, window auto, minmax, {args.interpolation}")

    if args.dry_run:
        start = time.perf_counter()
        out, spacing = pp.preprocess(arr, ds, **options)
        print(f"dry run: NumPy reference {out.shape} {out.dtype} in {time.perf_counter() - start:.2f} s, "
              f"range [{float(out.min()):.4f}, {float(out.max()):.4f}], spacing {spacing}; "
              f"fused kernel would move {fused_bytes / 1e6:.1f} MB")
        log: list[int] = []
        same = np.array_equal(chain(np, arr, plan, log), out)  # NumPy standing in for CuPy
        print(f"chain ({len(log)} steps, {sum(log) / 1e6:.1f} MB) run with NumPy equals the reference: {same}")
        return 0 if same else 1

    ok, why = cuda_status()
    if not ok:
        print(f"no GPU benchmark: {why}")
        return 0
    import cupy

    dev = cupy.asarray(arr)
    fused_out, _ = pp.preprocess(dev, ds, **options)
    chain_log: list[int] = []
    chain_out = chain(cupy, dev, plan, chain_log)
    chain_bytes = sum(chain_log)
    ref0 = pp.preprocess(arr[:1], ds, **options)[0]  # frame 0 alone: minmax differs, so compare a 1-frame run
    fused0 = cupy.asnumpy(pp.preprocess(dev[:1], ds, **options)[0])
    diff = float(cupy.abs(fused_out.astype(cupy.float32) - chain_out.astype(cupy.float32)).max())

    fused_ms = median_ms(cupy, lambda: pp.preprocess(dev, ds, **options), args.rounds)
    chain_ms = median_ms(cupy, lambda: chain(cupy, dev, plan, []), args.rounds)
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    speedup = chain_ms / fused_ms
    print(f"device: {name}, CuPy {cupy.__version__}")
    print(f"fused:  {fused_ms:8.3f} ms  {fused_bytes / 1e6:8.1f} MB  {fused_bytes / fused_ms / 1e6:7.1f} GB/s")
    print(f"chain:  {chain_ms:8.3f} ms  {chain_bytes / 1e6:8.1f} MB  {chain_bytes / chain_ms / 1e6:7.1f} GB/s  ({len(chain_log)} steps)")
    print(f"speed-up {speedup:.2f}x (target >= {TARGET_SPEEDUP}x: {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}); "
          f"bytes {chain_bytes / fused_bytes:.1f}x fewer")
    print(f"fused equals the NumPy reference on frame 0: {bool(np.array_equal(fused0, ref0))}; "
          f"max |fused - chain| = {diff:.3g}")
    return 1 if args.strict and speedup < TARGET_SPEEDUP else 0


if __name__ == "__main__":
    sys.exit(main())
