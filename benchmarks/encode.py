"""Encode benchmark: gpudcm's HTJ2K / JPEG 2000 / JPEG-LS writers against pydicom's JPEG 2000 Lossless encoder.

Usage::

    python benchmarks/encode.py [--slices 256] [--device cpu|cuda] [--workers N] [--out benchmarks/results]

Same as ``gpudcm bench --encode``; see :mod:`gpudcm.bench.encode` for what each row measures. Writes
``encode-<device>.md`` and ``.json`` into --out and prints the table.
"""

from __future__ import annotations

import sys

from gpudcm.bench.cli import main_encode

if __name__ == "__main__":
    sys.exit(main_encode(sys.argv[1:]))
