"""The pipeline's device operations on the host: NumPy buffers and the g++ build of the kernels."""

from __future__ import annotations

import numpy as np

from gpudcm.routing import FULL_ENV
from tests.harness import standins
from tests.harness.hostbuild import host_launcher, host_upsample_launcher, host_ybr_launcher
from tests.harness.rle_host import host_launch_rle


class StreamOrder:
    """The stream contract of CuPy's memory pool that the pipeline must respect, checked on the host.

    CuPy 14.2, ``cupy/cuda/memory.pyx``: ``SingleDeviceMemoryPool._malloc`` serves an allocation from
    the arena of the current stream (``_get_stream_identifier(get_current_stream_ptr())``), and
    ``PooledMemory.free`` -> ``SingleDeviceMemoryPool.free`` returns the block to that arena at once
    (``chunk.arena.insert_chunk``), with no event or synchronisation. A block is handed out again to the
    next allocation on that stream while work queued earlier on it may still read the old contents;
    that is safe for work on the same stream (stream order) and a race for any other stream. So a
    kernel on a work stream may write a buffer allocated on the current stream only after that work
    stream waited on an event recorded on the current stream after the allocation.

    Model: a clock ticks at every allocation on the current stream (``empty``) and every
    ``follow_current(slot)``; a launch on `slot` writing a buffer allocated at tick t needs a
    ``follow_current(slot)`` at a tick after t, or the write is recorded (and raised) as a race.
    """

    def __init__(self) -> None:
        self.tick = 0
        self._allocated: dict[int, tuple[int, np.ndarray]] = {}  # id(buffer) -> (tick, buffer kept alive)
        self._followed = {0: -1, 1: -1}
        self.races: list[str] = []

    def allocate(self, arr: np.ndarray) -> None:
        self.tick += 1
        self._allocated[id(arr)] = (self.tick, arr)

    def follow(self, slot: int) -> None:
        self.tick += 1
        self._followed[slot] = self.tick

    def write(self, slot: int, arr: np.ndarray) -> None:
        root = arr
        while isinstance(root.base, np.ndarray):
            root = root.base
        entry = self._allocated.get(id(root))
        if entry is not None and self._followed[slot] < entry[0]:
            self.races.append(f"stream {slot} wrote a buffer allocated on the current stream at tick {entry[0]} "
                              f"without waiting on it (last wait at tick {self._followed[slot]})")
            raise AssertionError(self.races[-1])


class HostOps:
    """Stands in for CupyOps in CI: same calls, same arguments; records what a GPU run would do."""

    xp = np
    # JPEG-family frames take the GPU routes, decoded by stand-ins that return what nvJPEG / nvImageCodec
    # return (tests/harness/standins.py); upsampling, Bits Stored, sign and colour run as on the device
    jpeg_env = FULL_ENV
    jpeg_decoders = standins.decoders()

    def __init__(self, sanitize: bool = False) -> None:
        self._launch = host_launcher(sanitize)
        self.colour_launcher = host_ybr_launcher(sanitize)
        self.native_launcher = self._launch
        self.upsample_launcher = host_upsample_launcher(sanitize)
        self.rle_launchers = (host_launch_rle(sanitize), self._launch)
        self.uploads: list[int] = []  # bytes per host-to-device copy
        self.launches: list[int] = []  # frames per launch
        self.waits: list[int] = []
        self.order = StreamOrder()

    def pinned(self, slot: int, nbytes: int) -> np.ndarray:
        return np.empty(nbytes, dtype=np.uint8)

    def wait(self, slot: int) -> None:
        self.waits.append(slot)

    def upload(self, slot: int, host: np.ndarray) -> np.ndarray:
        self.uploads.append(host.size)
        return host.copy()

    def empty(self, shape, dtype) -> np.ndarray:
        arr = np.empty(shape, dtype=dtype)
        self.order.allocate(arr)
        return arr

    def follow_current(self, slot: int) -> None:
        self.order.follow(slot)

    def launch_native(self, slot, plan, src, frame_offsets, out) -> int:
        self.order.write(slot, out)
        self.launches.append(plan.n_frames)
        return self._launch(plan, src, frame_offsets, out)

    def status(self, pending: int) -> int:
        return pending
