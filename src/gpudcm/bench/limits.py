"""The physical limits a GPU decoder is measured against: a pinned host-to-device copy of given bytes,
and a device-to-device copy of the output size (both CuPy; callers check for a device first)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def pinned_h2d(data: bytes | np.ndarray) -> Callable[[], None]:
    """A call copying `data` from page-locked host memory into a device buffer, synchronised."""
    import cupy

    src = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data.view(np.uint8).ravel()
    nbytes = src.nbytes
    pinned = cupy.cuda.alloc_pinned_memory(max(nbytes, 1))
    host = np.frombuffer(pinned, np.uint8, nbytes)  # keeps the pinned block alive
    host[:] = src
    dev = cupy.empty(nbytes, cupy.uint8)
    sync = cupy.cuda.Device().synchronize

    def run() -> None:
        dev.set(host)  # cudaMemcpyAsync from pinned memory on the current stream
        sync()

    return run


def d2d(nbytes: int) -> Callable[[], None]:
    """A call copying `nbytes` between two device buffers (cudaMemcpyAsync device to device), synchronised."""
    import cupy

    src = cupy.zeros(max(nbytes, 1), cupy.uint8)
    dst = cupy.empty_like(src)
    stream = cupy.cuda.get_current_stream()
    sync = cupy.cuda.Device().synchronize

    def run() -> None:
        dst.data.copy_from_device_async(src.data, src.nbytes, stream)
        sync()

    return run
