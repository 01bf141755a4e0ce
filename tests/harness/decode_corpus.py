"""Decode the whole corpus (pydicom test files, pydicom-data, generated cases) on one device.

Used by ci/gpu.sh under compute-sanitizer (``--kernels-only --no-pool``: the files gpudcm's own kernels
decode, with CuPy's memory pool off so that every buffer is its own cudaMalloc and an access past its end
is caught); prints one line of counts and exits non-zero when a file that pydicom decodes fails here.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gpudcm  # noqa: E402
from corpus import corpus_files, generated_cases, reference_shape  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-pool", action="store_true", help="CuPy allocates with cudaMalloc (no pool)")
    parser.add_argument("--kernels-only", action="store_true", help="only files gpudcm's kernels decode")
    parser.add_argument("--limit", type=int, default=0, help="at most this many files (0: all)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.no_pool:
        import cupy

        cupy.cuda.set_allocator(None)
        cupy.cuda.set_pinned_memory_allocator(None)
    paths = corpus_files() + [c.path for c in generated_cases()]
    if args.kernels_only:  # filtered first: the reference decode below is the slow part
        paths = [p for p in paths if _kernel_decoded(p)]
    paths = [p for p in paths if reference_shape(p)]
    if args.limit:
        paths = paths[: args.limit]
    failed = 0
    for p in paths:
        try:
            arr = gpudcm.pixel_array(p, device=args.device)
            if hasattr(arr, "get"):
                arr.get()
        except Exception as exc:  # report and go on: the sanitizer run must cover every file
            failed += 1
            print(f"FAILED {p}: {type(exc).__name__}: {exc}")
    print(f"decode_corpus: {len(paths)} files on {args.device}, {failed} failed")
    return 1 if failed else 0


def _kernel_decoded(path) -> bool:
    from pydicom import dcmread

    from gpudcm.capabilities import backend_for
    from gpudcm.spec import pixel_spec

    try:
        return backend_for(pixel_spec(dcmread(path), source=str(path)), "cuda").backend == "kernel"
    except Exception:
        return False


if __name__ == "__main__":
    sys.exit(main())
