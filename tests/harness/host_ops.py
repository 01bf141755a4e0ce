"""The pipeline's device operations on the host: NumPy buffers and the g++ build of the kernels."""

from __future__ import annotations

import numpy as np

from gpudcm.routing import FULL_ENV
from tests.harness import standins
from tests.harness.hostbuild import host_launcher, host_upsample_launcher, host_ybr_launcher
from tests.harness.rle_host import host_launch_rle


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

    def pinned(self, slot: int, nbytes: int) -> np.ndarray:
        return np.empty(nbytes, dtype=np.uint8)

    def wait(self, slot: int) -> None:
        self.waits.append(slot)

    def upload(self, slot: int, host: np.ndarray) -> np.ndarray:
        self.uploads.append(host.size)
        return host.copy()

    def empty(self, shape, dtype) -> np.ndarray:
        return np.empty(shape, dtype=dtype)

    def launch_native(self, slot, plan, src, frame_offsets, out) -> int:
        self.launches.append(plan.n_frames)
        return self._launch(plan, src, frame_offsets, out)

    def status(self, pending: int) -> int:
        return pending
