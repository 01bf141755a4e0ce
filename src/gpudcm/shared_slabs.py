"""Shared memory that worker processes decode into (gpudcm.file_pool): slabs of memory-file pages
(``memfd_create``), mapped once by this process and once by each worker, kept for the next batch.

Fresh pages cost a fault each on first touch (2-3 us per 4 KiB on the dev VM, see gpudcm.host_memory), in
the worker that writes them and again in the process that reads them; a slab reused batch after batch is
faulted in once. Nothing is handed to the caller from a slab: results are copied out into private
memory (a slab is MAP_SHARED, and a forked DataLoader worker writing into an array in place must not
change the parent's array), and the slab goes back to :func:`give` as soon as its batch is copied.

What is kept is bounded like gpudcm.host_memory: at most ``GPUDCM_HOST_CACHE_MB`` (default 256) MiB of
unused slabs here, and in each worker at most :data:`WORKER_KEEP_BYTES` of mapped slabs (least recently
used unmapped first)."""

from __future__ import annotations

import itertools
import mmap
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

from . import host_memory

WORKER_KEEP_BYTES = 128 << 20


def available() -> bool:
    """Whether this platform has memory files (Linux: ``os.memfd_create``) and /proc to share them by."""
    return hasattr(os, "memfd_create") and os.path.isdir(f"/proc/{os.getpid()}/fd")


@dataclass
class Slab:
    """One memory file and this process's mapping of it; `path` opens it from another process."""

    id: int
    size: int
    fd: int
    mapping: mmap.mmap
    path: str

    def close(self) -> None:
        try:
            self.mapping.close()
        except BufferError:  # a view still exports it: unmapped when that view is gone
            pass
        os.close(self.fd)


_ids = itertools.count(1)
_free: dict[int, list[Slab]] = {}
_kept = 0
_lock = threading.Lock()


def _forget_in_child() -> None:
    # a forked child must not hand out its parent's slabs (their pages are the parent's too)
    global _free, _kept, _lock, _attached, _attached_bytes
    inherited = [s for kept in _free.values() for s in kept]
    _free, _kept, _lock = {}, 0, threading.Lock()
    for s in inherited:  # this process's copies only: the parent keeps its own
        s.close()
    _attached, _attached_bytes = OrderedDict(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def take(size: int) -> Slab:
    """A slab of at least `size` bytes, rounded up to a power of two (so a batch's shorter last chunk, or
    the next batch, reuses it): a kept one of that size, else a new memory file."""
    global _kept
    size = max(mmap.PAGESIZE, 1 << (max(1, int(size)) - 1).bit_length())
    with _lock:
        kept = _free.get(size)
        if kept:
            _kept -= size
            return kept.pop()
    fd = os.memfd_create(f"gpudcm-slab-{size}", getattr(os, "MFD_CLOEXEC", 0))
    try:
        os.ftruncate(fd, size)
        mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return Slab(next(_ids), size, fd, mapping, f"/proc/{os.getpid()}/fd/{fd}")


def give(slab: Slab) -> None:
    """`slab` back for the next batch (nothing of it may be in use), or closed past the limit."""
    global _kept
    with _lock:
        if _kept + slab.size <= host_memory.limit:
            _free.setdefault(slab.size, []).append(slab)
            _kept += slab.size
            return
    slab.close()


def kept_bytes() -> int:
    return _kept


def clear() -> None:
    """Close every kept slab (workers unmap theirs as they age out)."""
    global _kept
    with _lock:
        slabs = [s for kept in _free.values() for s in kept]
        _free.clear()
        _kept = 0
    for s in slabs:
        s.close()


# ------------------------------------------------------------------------------------------ worker side

_attached: OrderedDict[int, mmap.mmap] = OrderedDict()
_attached_bytes = 0


def attach(slab_id: int, path: str, size: int) -> mmap.mmap:
    """The worker's mapping of slab `slab_id` (opened from `path` the first time), most recently used kept."""
    global _attached_bytes
    mapping = _attached.get(slab_id)
    if mapping is not None:
        _attached.move_to_end(slab_id)
        return mapping
    fd = os.open(path, os.O_RDWR)
    try:
        if os.fstat(fd).st_size < size:
            raise OSError(f"slab {path} holds fewer than {size} bytes")
        mapping = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)  # the mapping keeps the memory file
    _attached[slab_id] = mapping
    _attached_bytes += size
    while _attached_bytes > WORKER_KEEP_BYTES and len(_attached) > 1:
        _, old = _attached.popitem(last=False)
        _attached_bytes -= len(old)
        try:
            old.close()
        except BufferError:  # pragma: no cover - views of a slab die with the task that wrote it
            pass
    return mapping


def attached_bytes() -> int:
    return _attached_bytes
