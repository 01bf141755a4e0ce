"""Feed the host build of the chroma-upsampling logic with lying plane tables and short buffers.

Run in a subprocess with the sanitized build (``python -m tests.harness.fuzz_upsample --sanitize N``) so
AddressSanitizer/UBSan abort on any out-of-bounds access or undefined behaviour. Prints the count of cases
and how many reported a read outside the buffer or bad parameters.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from gpudcm.cuda.kernels import Geometry
from gpudcm.cuda.upsample import MAX_PLANES, UpsampleLaunch
from tests.harness.hostbuild import Exact, host_upsample_launcher, sanitizer_line


def one_case(rng: np.random.Generator, launch, exact: Exact) -> int:
    rows, cols = int(rng.integers(0, 12)), int(rng.integers(0, 12))
    planes = int(rng.integers(0, MAX_PLANES + 2))
    n_frames = int(rng.integers(1, 4))
    meta: list[int] = []
    offset = 0
    for _ in range(min(planes, MAX_PLANES)):
        h, w = int(rng.integers(0, 8)), int(rng.integers(0, 8))
        fy, fx = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        off = offset if rng.random() < 0.8 else int(rng.integers(0, 1 << 62))
        meta += [off, h, w, fy, fx]
        offset += h * w
    stride = offset if rng.random() < 0.8 else int(rng.integers(0, 1 << 62))
    # malloc'd blocks of exactly their size, so AddressSanitizer sees a read one byte past the end
    src = exact(rng.integers(0, 256, size=int(rng.integers(0, n_frames * max(offset, 1) + 8)), dtype=np.uint8))
    geometry = Geometry(int(rng.integers(1, 4)), int(rng.choice([1, 7, 32, 256])))
    mode = int(rng.integers(0, 3))  # turbo, richter, or a mode the kernel must reject
    plan = UpsampleLaunch("gpudcm_upsample_8", geometry, n_frames, rows, cols, planes, stride, tuple(meta), mode)
    out = exact(np.empty(plan.n_elements, dtype=np.uint8))
    return launch(plan, src, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", type=int, nargs="?", default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sanitize", action="store_true")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    launch = host_upsample_launcher(sanitize=args.sanitize)
    exact = Exact()
    flagged = 0
    for _ in range(args.cases):
        flagged += bool(one_case(rng, launch, exact))
        exact.free()
    print(f"fuzz_upsample: {args.cases} cases, {flagged} reported bad reads or parameters; {sanitizer_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
