"""Feed the host build of the native kernel logic with lying parameters and random buffers.

Run in a subprocess with the sanitized build (``python -m tests.harness.fuzz_native --sanitize N``)
so AddressSanitizer/UBSan abort on any out-of-bounds access or undefined behaviour. Source buffers are
malloc'd at their exact size (a read one byte past the end hits a red zone). Prints the count of cases
completed, how many reported a read outside the buffer (status bit 1), and whether the sanitizer is live.
``--inject-oob`` ends with one launch told its buffer is larger than it is: the sanitizer must abort it
(the tests check that a sanitized run fails then).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gpudcm.cuda.kernels import NATIVE_BIG_ENDIAN, NATIVE_CORRECT_BITS, NATIVE_PLANAR, NATIVE_SIGNED, NATIVE_SWAP_OW, NATIVE_YBR422, STATUS_READ_OOB, Geometry, NativeLaunch
import ctypes

from tests.harness.hostbuild import Exact, function, host_launcher, ptr, sanitizer_line

FLAG_BITS = (NATIVE_SIGNED, NATIVE_BIG_ENDIAN, NATIVE_PLANAR, NATIVE_SWAP_OW, NATIVE_YBR422, NATIVE_CORRECT_BITS)
DTYPES = {1: np.uint8, 8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def one_case(rng: np.random.Generator, launch) -> tuple[int, bool]:
    """Run one random case; return (status, whether an in-bounds-only run was expected)."""
    bits = int(rng.choice(list(DTYPES)))
    rows, cols = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    samples = int(rng.choice([1, 3]))
    n_frames = int(rng.integers(1, 5))
    flags = 0
    for f in FLAG_BITS:
        if rng.random() < 0.3:
            flags |= f
    bits_stored = int(rng.integers(0, bits + 2))
    itembits = bits
    need_bits = n_frames * rows * cols * samples * itembits
    src_len = int(rng.integers(0, need_bits // 8 + 16))
    src = rng.integers(0, 256, size=src_len, dtype=np.uint8)
    frame_bits = rows * cols * samples * itembits
    offsets = np.array([i * (frame_bits if bits == 1 else frame_bits // 8) for i in range(n_frames)], dtype=np.int64)
    if rng.random() < 0.3:
        offsets += rng.integers(-50, 1 << 20, size=n_frames)
    if rng.random() < 0.05:
        offsets[0] = np.iinfo(np.int64).max - int(rng.integers(0, 100))
    geometry = Geometry(int(rng.integers(1, 4)), int(rng.choice([1, 7, 32, 256])))
    plan = NativeLaunch(f"gpudcm_native_{bits}", bits, geometry, n_frames, rows, cols, samples, bits_stored, flags)
    out = np.empty(plan.n_elements, dtype=DTYPES[bits])
    exact = Exact()
    try:
        status = launch(plan, exact(src), offsets, out)
    finally:
        exact.free()
    return status, bool(status & STATUS_READ_OOB)


def inject_oob(sanitize: bool) -> int:
    """One 16-bit launch over a 64-byte buffer that the kernel is told holds 128 bytes: its bounds check
    passes, so it reads past the block (a real out-of-bounds read for the sanitizer to catch)."""
    u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    fn = function("gpudcm_host_native", u32, [u32, u32, u32, vp, u64, vp, u32, u32, u32, u32, u32, u32, vp], sanitize)
    exact = Exact()
    src = exact(np.arange(64, dtype=np.uint8))
    offsets = np.zeros(1, np.int64)
    out = np.empty(64, np.uint16)
    try:
        return fn(16, 1, 64, ptr(src), 128, ptr(offsets), 1, 8, 8, 1, 16, 0, ptr(out))
    finally:
        exact.free()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", type=int, nargs="?", default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sanitize", action="store_true")
    parser.add_argument("--inject-oob", action="store_true", help="end with one out-of-bounds read")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    launch = host_launcher(sanitize=args.sanitize)
    done = oob = 0
    for _ in range(args.cases):
        _, was_oob = one_case(rng, launch)
        oob += was_oob
        done += 1
    if args.inject_oob:
        inject_oob(args.sanitize)
    print(f"fuzz_native: {done} cases completed, {oob} reported reads outside the buffer; {sanitizer_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
