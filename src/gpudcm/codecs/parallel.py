"""Whether this thread decodes beside other decoding threads (a :func:`thread_map` or a batch pipeline of
more than one thread). Some backends are fastest alone but hold the GIL for part of their work (imagecodecs'
PackBits decoder, used per RLE segment); beside other threads the backend that releases the GIL throughout
(its DICOM RLE decoder) wins, so a backend may ask :func:`in_parallel` which to use."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from collections.abc import Iterator

_state = threading.local()


def in_parallel() -> bool:
    """True inside :func:`sharing_gil` on this thread."""
    return getattr(_state, "parallel", False)


@contextmanager
def sharing_gil(on: bool = True) -> Iterator[None]:
    """Mark this thread as decoding beside others (`on`) for the duration."""
    before = in_parallel()
    _state.parallel = on
    try:
        yield
    finally:
        _state.parallel = before
