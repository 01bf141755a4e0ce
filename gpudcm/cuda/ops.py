"""CuPy implementation of the pipeline's device operations: pinned staging, two streams, launches."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .kernels import NativeLaunch, get_function


class CupyOps:
    """Device operations on the current CUDA device; one instance per decode call (not thread-shared)."""

    def __init__(self) -> None:
        import cupy

        self.xp = cupy
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


_local = threading.local()


def thread_ops() -> CupyOps:
    """This thread's CupyOps (its own streams and staging buffers), created on first use per device."""
    import cupy

    device = cupy.cuda.Device().id
    cache = getattr(_local, "ops", None)
    if cache is None:
        cache = _local.ops = {}
    if device not in cache:
        cache[device] = CupyOps()
    return cache[device]
