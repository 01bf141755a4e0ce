"""Decode the whole corpus (pydicom test files, pydicom-data, generated cases) on one device.

Used by ci/gpu.sh under compute-sanitizer; prints one line of counts and exits non-zero when a file that
pydicom decodes fails here.
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
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    paths = [p for p in corpus_files() if reference_shape(p)] + [c.path for c in generated_cases()]
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


if __name__ == "__main__":
    sys.exit(main())
