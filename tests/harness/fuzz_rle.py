"""Feed the host build of the RLE kernel logic with lying segment tables, random buffers and mutated frames.

Run in a subprocess with the sanitized build (``python -m tests.harness.fuzz_rle --sanitize N``) so
AddressSanitizer/UBSan abort on any out-of-bounds access or undefined behaviour. Most cases call the kernel
directly with random tables (ranges outside the buffer, reversed, huge; random pylibjpeg-rle rooms; too
small outputs; odd geometries); every tenth decodes random and mutated RLE frames through plan_rle and
decode_rle. Prints the case counts and how many reported refused reads or writes.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from gpudcm.cuda.kernels import RLE_NO_ROOM, RLE_STATUS_WRITE_OOB, STATUS_READ_OOB, Geometry
from gpudcm.cuda.rle import RleLaunch, decode_rle
from gpudcm.errors import GpudcmError
from gpudcm.spec import PixelSpec
from tests.harness.hostbuild import Exact, host_launcher, sanitizer_line
from tests.harness.rle_host import host_launch_rle

_EDGES = (-(1 << 63), (1 << 63) - 1, -1, 1 << 40)


def _int64(r: random.Random, lo: int, hi: int) -> int:
    return r.choice(_EDGES) if r.random() < 0.05 else r.randrange(lo, hi)


def table_case(r: random.Random, launch) -> int:
    """The kernel on a random table; returns its status."""
    src = np.frombuffer(r.randbytes(r.randrange(300)), dtype=np.uint8)
    n_entries = r.randrange(24)
    starts = [_int64(r, -20, src.size + 20) for _ in range(n_entries)]
    ends = [min(max(a + _int64(r, -5, 200), -(1 << 63)), (1 << 63) - 1) for a in starts]
    rooms = [RLE_NO_ROOM if r.random() < 0.3 else _int64(r, -10, 400) for _ in range(n_entries)]
    bps = r.choice((1, 2, 4, 8, 3, 0))
    n_segments = r.choice((0, 1, 2, 3, 4, 6, 8, 12, 15)) if r.random() < 0.3 else max(bps, 1) * r.choice((1, 3))
    n_slots = r.randrange(n_entries + 2)
    plane = r.randrange(40)
    frames = -(-n_slots // max(n_segments, 1))
    out = np.zeros(r.randrange(frames * max(n_segments, 1) * plane + 8), dtype=np.uint8)
    lengths = np.zeros(2 * n_entries, dtype=np.int64)
    geometry = Geometry(r.randrange(1, 4), r.choice((1, 7, 32, 64, 256)))
    plan = RleLaunch("gpudcm_rle", geometry, n_entries, n_slots, n_segments, bps, plane)
    table = np.array([starts, ends, rooms], dtype=np.int64).reshape(3, n_entries)
    exact = Exact()
    try:
        return launch(plan, exact(src), exact(table), exact(out), exact(lengths))
    finally:
        exact.free()


def _packbits(r: random.Random, n: int) -> bytes:
    out = bytearray()
    while n > 0:
        x = r.random()
        if x < 0.05:
            out.append(128)
            continue
        k = r.randrange(1, min(n, 128) + 1)
        if x < 0.5:
            out += bytes([257 - k if k > 1 else 0, r.randrange(256)])
        else:
            out.append(k - 1)
            out += r.randbytes(k)
        n -= k
    return bytes(out)


def _frame(r: random.Random, n_seg: int, plane: int, mutate: bool) -> bytes:
    segments = [_packbits(r, plane + (r.randrange(-2, 3) if mutate else 0)) for _ in range(n_seg)]
    offsets, pos = [], 64
    for s in segments:
        offsets.append(pos)
        pos += len(s)
    data = bytearray(struct.pack("<16L", n_seg, *(offsets + [0] * 15)[:15]) + b"".join(segments))
    if not mutate:
        return bytes(data)
    count = n_seg
    if r.random() < 0.2:
        count = r.randrange(17)
    if r.random() < 0.2:
        offsets[r.randrange(len(offsets))] = r.randrange(pos + 8)
    if r.random() < 0.1:
        offsets.append(r.randrange(pos + 8))
    data = bytearray(struct.pack("<16L", count, *(offsets + [0] * 15)[:15]) + b"".join(segments))
    if r.random() < 0.3:
        data[r.randrange(len(data))] = r.randrange(256)
    if r.random() < 0.1:
        del data[r.randrange(len(data) + 1) :]
    return bytes(data) or b"\0"


def frame_case(r: random.Random, launch_rle, launch_native) -> bool:
    """plan_rle + decode_rle on random frames; returns whether it decoded (else a GpudcmError)."""
    bits = r.choice((1, 8, 16, 32, 64))
    samples = 1 if bits in (1, 64) else r.choice((1, 3))
    rows, cols = r.randrange(1, 5), r.randrange(1, 6)
    n_frames = r.randrange(1, 4)
    bps = max(bits // 8, 1)
    mutate = r.random() < 0.5
    frames = [_frame(r, samples * bps, rows * cols, mutate) for _ in range(n_frames + r.randrange(2))]
    buffer = encapsulate(frames, has_bot=True)  # a Basic Offset Table keeps any excess frame
    stored = r.randrange(1, bits + 1)
    spec = PixelSpec(
        "<fuzz>", RLELossless, "PixelData", "OB", rows, cols, n_frames, samples, bits, stored, stored - 1,
        r.randrange(2), 0, "RGB" if samples == 3 else "MONOCHROME2", len(buffer),
    )
    index = r.randrange(n_frames) if r.random() < 0.3 else None
    exact = Exact()
    try:
        decode_rle(spec, exact(np.frombuffer(buffer, np.uint8)), index=index, launch_rle=launch_rle,
                   launch_native=launch_native)
        return True
    except GpudcmError:
        return False
    finally:
        exact.free()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", type=int, nargs="?", default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sanitize", action="store_true")
    args = parser.parse_args(argv)
    r = random.Random(args.seed)
    launch_rle = host_launch_rle(sanitize=args.sanitize)
    launch_native = host_launcher(sanitize=args.sanitize)
    tables = frames = refused = decoded = 0
    for i in range(args.cases):  # each count grows only once its launch has returned
        if i % 10 == 9:
            decoded += frame_case(r, launch_rle, launch_native)
            frames += 1
        else:
            refused += bool(table_case(r, launch_rle) & (STATUS_READ_OOB | RLE_STATUS_WRITE_OOB))
            tables += 1
    print(
        f"fuzz_rle: {tables + frames} cases completed ({tables} tables, {refused} with refused reads or writes; "
        f"{frames} frame sets, {decoded} decoded); {sanitizer_line()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
