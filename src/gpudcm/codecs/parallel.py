"""Whether this thread decodes beside other decoding threads (a :func:`thread_map` or a batch pipeline of
more than one thread), and how many threads a codec call on it may start itself (OpenJPEG's
``numthreads``): a frame decoded alone may use the cores; beside other decoding threads, one each.

(Tried and left out: sending RLE frames to imagecodecs' DICOM RLE decoder beside other threads, since
PackBits holds the GIL for part of its work: 15 % faster on the CT bench series, 2x slower on noise frames.)"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from collections.abc import Iterator

_state = threading.local()


def in_parallel() -> bool:
    """True inside :func:`sharing_gil` on this thread."""
    return getattr(_state, "parallel", False)


@contextmanager
def sharing_gil() -> Iterator[None]:
    """Mark this thread as decoding beside others for the duration."""
    before = in_parallel()
    _state.parallel = True
    try:
        yield
    finally:
        _state.parallel = before


def codec_threads() -> int:
    """Threads a codec call on this thread may use itself (OpenJPEG's ``numthreads``): 1 unless inside
    :func:`lending_threads` outside :func:`sharing_gil`."""
    return 1 if in_parallel() else getattr(_state, "lent", 1)


@contextmanager
def lending_threads(threads: int) -> Iterator[None]:
    """Let the codec calls of this thread use `threads` threads (a frame decoded alone: its codec may
    use the cores the frame threads would have)."""
    before = getattr(_state, "lent", 1)
    _state.lent = max(1, threads)
    try:
        yield
    finally:
        _state.lent = before
