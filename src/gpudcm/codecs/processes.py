"""Frames of codecs that hold the GIL (pydicom's plugins) on a process pool: a long multi-frame file is
split into chunks of frames, each decoded in a worker by :func:`gpudcm.codecs.decode_frame` (so with the
same values) into a shared slab (gpudcm.shared_slabs) and copied into the output as it returns (no
pickled arrays). The pool is forked on first use (as torch's DataLoader forks its workers:
no re-import of the caller's ``__main__``, which spawn and forkserver would run again) and stays up. It is
used only on Linux, for at least :data:`MIN_FRAMES` frames, outside daemonic processes (DataLoader
workers), unless ``GPUDCM_CPU_PROCESSES=0``; any failure of the pool itself falls back to decoding in
this process."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import numpy as np

from .. import shared_slabs
from ..spec import PixelSpec

MIN_FRAMES = 16  # below this, the hand-over costs more than a second core gains
MAX_CHUNK_FRAMES = 16
MAX_SLAB_BYTES = 64 << 20  # one chunk's slab


@lru_cache(maxsize=4)
def _pool(processes: int) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork"))
    atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


class SlabChunks:
    """Chunks of work on the pool, each writing into a slab of its own (gpudcm.shared_slabs), taken back
    in the order submitted. The caller submits at most two chunks a worker ahead (memory: those slabs),
    gives each slab back (``shared_slabs.give``) once it has copied the chunk out, and leaves the ``with``
    block to close the slabs of chunks still under way (a worker may still write there: not kept)."""

    def __init__(self, pool: ProcessPoolExecutor, processes: int) -> None:
        self.pool, self.ahead = pool, processes * 2
        self._pending: deque = deque()

    def __enter__(self) -> SlabChunks:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Cancel the chunks under way and close their slabs."""
        while self._pending:
            _, slab, fut = self._pending.popleft()
            fut.cancel()
            slab.close()

    def __len__(self) -> int:
        return len(self._pending)

    def room(self) -> bool:
        return len(self._pending) < self.ahead

    def submit(self, key, nbytes: int, fn, *args) -> None:
        """``fn((slab id, path, size), *args)`` on the pool with a slab of at least `nbytes`."""
        slab = shared_slabs.take(nbytes)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the workers only decode
                fut = self.pool.submit(fn, (slab.id, slab.path, slab.size), *args)
        except BaseException:
            shared_slabs.give(slab)
            raise
        self._pending.append((key, slab, fut))

    def next(self):
        """(key, slab, result) of the oldest chunk, once it is done; should it raise, its slab is closed."""
        key, slab, fut = self._pending.popleft()
        try:
            return key, slab, fut.result()
        except BaseException:
            slab.close()
            raise

    def finish(self) -> None:
        """Let the chunks under way finish (their errors dropped: the caller raises its own) and keep their slabs."""
        for _, _, fut in self._pending:
            fut.cancel()
        while self._pending:
            _, slab, fut = self._pending.popleft()
            if not fut.cancelled():
                try:
                    fut.result()
                except BaseException:  # noqa: BLE001 - the caller's failure is the one raised
                    pass
            shared_slabs.give(slab)


def _chunk(slab: tuple[int, str, int], spec: PixelSpec, frames: list[bytes], raw: bool, as_rgb: bool) -> None:
    """In a worker: `frames` decoded into the slab (gpudcm.shared_slabs), one after the other."""
    from .decode import decode_frame

    out = np.frombuffer(shared_slabs.attach(*slab), dtype=spec.dtype,
                        count=len(frames) * int(np.prod(spec.frame_shape))).reshape((len(frames), *spec.frame_shape))
    for k, data in enumerate(frames):
        decode_frame(spec, data, raw=raw, as_rgb=as_rgb, out=out[k])


def usable(n_frames: int, processes: int) -> bool:
    return (processes > 1 and n_frames >= MIN_FRAMES and sys.platform.startswith("linux")
            and os.environ.get("GPUDCM_CPU_PROCESSES", "1") != "0" and not multiprocessing.current_process().daemon)


def decode_in_processes(spec: PixelSpec, frames, out: np.ndarray, *, raw: bool, as_rgb: bool, processes: int) -> bool:
    """Decode `frames` into `out` on `processes` worker processes, chunk by chunk through shared slabs
    (gpudcm.shared_slabs: copied into `out` as each chunk returns; at most two chunks a worker under way,
    so memory is `out` plus those chunks); False when the pool cannot be used here or breaks (the caller
    then decodes them itself). Decoding errors are raised as in this process."""
    from concurrent.futures.process import BrokenProcessPool

    if not shared_slabs.available():
        return False
    n, frame_bytes = len(frames), max(1, int(np.prod(spec.frame_shape)) * spec.dtype.itemsize)
    per = max(1, min(MAX_CHUNK_FRAMES, -(-n // (processes * 4)), MAX_SLAB_BYTES // frame_bytes))
    spans = iter([(a, min(n, a + per)) for a in range(0, n, per)])
    try:
        with SlabChunks(_pool(processes), processes) as chunks:
            while True:
                while chunks.room() and (span := next(spans, None)) is not None:
                    a, b = span
                    chunks.submit(span, frame_bytes * (b - a), _chunk, spec, [bytes(f) for f in frames[a:b]], raw, as_rgb)
                if not chunks:
                    break
                (a, b), slab, _ = chunks.next()
                out[a:b] = np.frombuffer(slab.mapping, dtype=spec.dtype, count=(b - a) * (frame_bytes // spec.dtype.itemsize)
                                         ).reshape((b - a, *spec.frame_shape))
                shared_slabs.give(slab)
    except BrokenProcessPool:  # a worker died: the next call gets a new pool
        _pool.cache_clear()
        return False
    except (OSError, RuntimeError):  # a frame the pool could not decode: this process decides (and raises)
        return False
    return True
