"""CuPy implementation of the pipeline's device operations: pinned staging, two streams, launches.

Stream ordering (CuPy 14.2 ``cupy/cuda/memory.pyx``): the memory pool keeps one arena per stream,
``SingleDeviceMemoryPool._malloc`` takes a block from the arena of the *current* stream, and
``PooledMemory.free`` puts it back there at once, with no event. A block is therefore safe only for work
ordered on that stream. The outputs are allocated on the caller's current stream, while the kernels
run on gpudcm's two non-blocking streams; so before each launch the work stream waits on an event
recorded on the current stream (:meth:`CupyOps.follow_current`), and :meth:`CupyOps.status`
synchronises the work stream before any result is returned, so the caller's later work sees it done.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from .kernels import NativeLaunch, get_function
from .pool import Pool


class CupyOps:
    """Device operations on CUDA device `device_id`; leased by one decode call at a time (:func:`lease_ops`)."""

    def __init__(self, device_id: int | None = None) -> None:
        import cupy

        self.xp = cupy
        self.device_id = cupy.cuda.Device().id if device_id is None else device_id
        with cupy.cuda.Device(self.device_id):
            self._streams = [cupy.cuda.Stream(non_blocking=True) for _ in range(2)]
        self._pinned: list[tuple[Any, np.ndarray] | None] = [None, None]
        self._events: list[Any] = [None, None]
        self._alive: list[list[Any]] = [[], []]  # device buffers a slot's kernels may still read

    def pinned(self, slot: int, nbytes: int) -> np.ndarray:
        import cupy

        held = self._pinned[slot]
        if held is None or held[1].size < nbytes:
            size = max(nbytes, 1)
            mem = cupy.cuda.alloc_pinned_memory(size)
            held = (mem, np.frombuffer(mem, dtype=np.uint8, count=size))
            self._pinned[slot] = held
        return held[1]

    def wait(self, slot: int) -> None:
        if self._events[slot] is not None:
            self._events[slot].synchronize()
            self._events[slot] = None
        self._alive[slot].clear()

    def follow_current(self, slot: int) -> None:
        """Stream `slot` waits for the work queued so far on CuPy's current stream (the outputs were
        allocated there: its pool may have handed out a block that queued work still reads)."""
        cupy = self.xp
        event = cupy.cuda.Event(block=False, disable_timing=True)
        event.record(cupy.cuda.get_current_stream())
        self._streams[slot].wait_event(event)

    def idle(self) -> None:
        """Drop the device buffers kept for the last batches (their work has finished)."""
        for slot in (0, 1):
            self.wait(slot)

    def close(self) -> None:
        """Release the streams and the pinned staging now (pooled instances beyond the cap)."""
        self.idle()
        for stream in self._streams:
            stream.synchronize()
        self._streams, self._pinned = [], [None, None]

    def upload(self, slot: int, host: np.ndarray):
        stream = self._streams[slot]
        with stream:
            dev = self.xp.empty(host.size, dtype=self.xp.uint8)
        dev.set(host, stream=stream)
        self._alive[slot].append(dev)
        return dev

    def empty(self, shape: tuple[int, ...], dtype: np.dtype):
        return self.xp.empty(shape, dtype=dtype)

    def launch_native(self, slot: int, plan: NativeLaunch, src, frame_offsets: np.ndarray, out):
        cupy = self.xp
        stream = self._streams[slot]
        with stream:
            d_offsets = cupy.asarray(frame_offsets)
            status = cupy.zeros(1, dtype=cupy.uint32)
            kernel = get_function("native.cu", plan.kernel)
            g = plan.geometry
            kernel((g.grid,), (g.block,), (src, np.uint64(src.size), d_offsets, *plan.scalars(), out, status))
        event = cupy.cuda.Event()
        event.record(stream)
        self._events[slot] = event
        self._alive[slot] += [d_offsets, status]
        return status, stream

    @property
    def colour_launcher(self):
        from .colour import cupy_ybr_launcher

        return cupy_ybr_launcher

    jpeg_decoders = None  # jpeg_path's defaults: nvJPEG and nvImageCodec

    @property
    def native_launcher(self):
        """Native-kernel launcher on the current stream (jpeg_path's Bits Stored correction)."""
        from .native import cupy_launcher

        return cupy_launcher

    @property
    def upsample_launcher(self):
        from .upsample import cupy_upsample_launcher

        return cupy_upsample_launcher

    @property
    def jpeg_env(self):
        from ..routing import detect_env

        return detect_env()

    @property
    def rle_launchers(self):
        """(RLE launcher, native launcher) for per-file RLE decodes on the current stream."""
        from .native import cupy_launcher
        from .rle import cupy_launch_rle

        return cupy_launch_rle, cupy_launcher

    def status(self, pending) -> int:
        status, stream = pending
        stream.synchronize()
        return int(status.get(stream=stream)[0])


def _new_ops(device_id: int) -> CupyOps:
    return CupyOps(device_id)


def _close_ops(ops: CupyOps) -> None:
    ops.close()


OPS_POOL: Pool[CupyOps] = Pool(_new_ops, _close_ops, cap=4)


@contextmanager
def lease_ops() -> Iterator[CupyOps]:
    """A CupyOps (two streams, pinned staging) for the current device, from a bounded pool shared by all
    threads: any number of calls and worker threads keep at most ``OPS_POOL.cap`` idle per device."""
    import cupy

    with OPS_POOL.lease(cupy.cuda.Device().id) as ops:
        try:
            yield ops
        finally:
            ops.idle()
