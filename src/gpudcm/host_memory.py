"""Decoded host arrays from reused memory.

Fresh memory costs a page fault per 4 KiB on first touch (the kernel zeroes the page): measured on the
2-core dev VM, 250-370 us for a 512 KiB CT slice, as much as decoding it, paid again for every file of a
batch because glibc returns freed blocks of this size to the system. NumPy's huge pages for arrays of
4 MiB or more are worse there (1.6 ms per 512 KiB: the kernel compacts memory to find them).

:func:`empty` hands out arrays of :data:`MIN_BYTES` to :data:`MAX_BYTES` from mappings that come back here when the
last view of the array is gone, and gives them out again for the next array of the same size (a series
decoded batch after batch, a loader's next batch). What is kept is bounded: at most
``GPUDCM_HOST_CACHE_MB`` (default 256) MiB of unused mappings; :func:`clear` returns them all. Like
CuPy's memory pools, kept memory stays in the process's resident size until then.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
import weakref

import numpy as np

MIN_BYTES = 256 << 10  # below this malloc reuses freed memory itself
MAX_BYTES = 16 << 20  # above this NumPy's huge pages fault in fast enough (64 MB: 9 ms, against 67 ms in 4 KiB pages)
_PAGE = mmap.PAGESIZE


def _limit_from_env() -> int:
    try:
        return max(0, int(float(os.environ.get("GPUDCM_HOST_CACHE_MB", "256")) * (1 << 20)))
    except ValueError:
        return 256 << 20


limit = _limit_from_env()  # bytes of unused mappings kept
_free: dict[int, list[mmap.mmap]] = {}
_kept = 0
_lock = threading.RLock()  # a finalizer may run on any thread, inside this module too


def _reset_lock_in_child() -> None:
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


def anonymous(size: int) -> mmap.mmap:
    """A private anonymous mapping: a forked child (a DataLoader or Dask worker) gets a copy on write, not
    memory shared with this process (``mmap.mmap(-1, n)`` alone is MAP_SHARED on POSIX)."""
    if hasattr(mmap, "MAP_PRIVATE"):
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return mmap.mmap(-1, size)  # Windows: no fork


def _take(size: int) -> mmap.mmap:
    global _kept
    with _lock:
        kept = _free.get(size)
        if kept:
            _kept -= size
            return kept.pop()
    return anonymous(size)


def _give_back(size: int, mapping: mmap.mmap) -> None:
    """The finalizer of a handed-out block: keep its mapping for the next array, or let it go (unmapped
    when the dying block has released its buffer: it is still exported while this runs)."""
    global _kept
    with _lock:
        if _kept + size <= limit:
            _free.setdefault(size, []).append(mapping)
            _kept += size


def empty(shape, dtype) -> np.ndarray:
    """``np.empty(shape, dtype)``, C order; from reused memory from :data:`MIN_BYTES` to :data:`MAX_BYTES`."""
    dtype = np.dtype(dtype)
    shape = tuple(int(s) for s in (shape if isinstance(shape, (tuple, list)) else (shape,)))
    count = 1
    for s in shape:
        count *= s
    nbytes = count * dtype.itemsize
    if not MIN_BYTES <= nbytes <= MAX_BYTES or limit == 0:
        return np.empty(shape, dtype=dtype)
    size = -(-nbytes // _PAGE) * _PAGE
    mapping = _take(size)
    block = (ctypes.c_ubyte * size).from_buffer(mapping)  # holds the mapping's buffer while it lives
    done = weakref.finalize(block, _give_back, size, mapping)
    done.atexit = False
    return np.frombuffer(block, dtype=dtype, count=count).reshape(shape)


def kept_bytes() -> int:
    """Bytes of unused mappings kept for reuse."""
    return _kept


def clear() -> None:
    """Unmap every kept mapping (arrays still in use are not touched), and close the kept shared slabs of
    the worker processes (gpudcm.shared_slabs)."""
    global _kept
    from . import shared_slabs

    shared_slabs.clear()
    with _lock:
        mappings = [m for kept in _free.values() for m in kept]
        _free.clear()
        _kept = 0
    for m in mappings:
        try:
            m.close()
        except BufferError:  # a block dying right now still exports it: unmapped when it is gone
            pass
