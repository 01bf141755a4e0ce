"""Native pixel data on the device: stage the frames' bytes, launch the native kernel, shape the result.

:func:`stage_native` and :func:`plan_native` are NumPy-only; :func:`decode_native` takes a `launcher`
so CI runs the same staging, geometry and arguments through the host build of the kernel logic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidPixelData
from ..frames import Frame, native_extents
from ..spec import PixelSpec
from .kernels import STATUS_BAD_OFFSET, STATUS_READ_OOB, NativeLaunch, native_frame_offsets, plan_native


@dataclass(frozen=True)
class StagedNative:
    """The bytes that hold the selected frames and each frame's start within them."""

    data: np.ndarray  # uint8 view into the element (no copy)
    frame_offsets: np.ndarray  # int64: bytes, or bits for 1-bit data


def native_span(spec: PixelSpec, nbytes: int, frames: Sequence[Frame]) -> tuple[int, int, np.ndarray]:
    """(lo, hi, frame offsets from lo): the bytes of an `nbytes` element the frames cover, keeping
    byte-pair parity (OW swaps); offsets in bytes, or bits for 1-bit data."""
    if not frames:
        raise InvalidPixelData(f"{spec.source}: no frames selected")
    lo = min(f[0].offset for f in frames) & ~1
    hi = max(f[0].end for f in frames)
    hi = min(nbytes, hi + (hi & 1))
    if hi > nbytes or lo >= hi:
        raise InvalidPixelData(f"{spec.source}: frames span bytes {lo}..{hi} of a {nbytes}-byte element")
    offsets = native_frame_offsets(spec, frames)
    offsets -= lo * 8 if spec.bits_allocated == 1 else lo
    return lo, hi, offsets


def stage_native(spec: PixelSpec, buffer, frames: Sequence[Frame]) -> StagedNative:
    """Slice the element down to the span the frames cover, keeping byte-pair parity (OW swaps)."""
    view = np.frombuffer(buffer, dtype=np.uint8)
    lo, hi, offsets = native_span(spec, len(view), frames)
    return StagedNative(view[lo:hi], offsets)


# launcher(plan, src_uint8, frame_offsets_int64, out_array) -> status bits
Launcher = Callable[[NativeLaunch, object, object, object], int]


def check_status(spec: PixelSpec, status: int) -> None:
    """Turn kernel status bits into an error (validation should make this unreachable)."""
    if status & STATUS_READ_OOB:
        raise InvalidPixelData(f"{spec.source}: the native kernel read past the pixel data (status {status})")
    if status & STATUS_BAD_OFFSET:
        raise InvalidPixelData(f"{spec.source}: a frame offset was negative (status {status})")
    if status:
        raise InvalidPixelData(f"{spec.source}: the native kernel reported status {status}")


def decode_native(
    spec: PixelSpec, buffer, *, index: int | None = None, launcher: Launcher, xp=np
):
    """Decode all frames (or frame `index`) of native `spec` with `launcher`; returns an `xp` array shaped
    like pydicom's (raw samples: no colour conversion)."""
    frames = native_extents(spec)
    selected = frames if index is None else [frames[spec.check_index(index)]]
    staged = stage_native(spec, buffer, selected)
    plan = plan_native(spec, len(selected))
    out = xp.empty(plan.n_elements, dtype=spec.dtype)
    check_status(spec, launcher(plan, staged.data, staged.frame_offsets, out))
    return out.reshape(spec.shape(index))


def cupy_launcher(plan: NativeLaunch, src: np.ndarray, frame_offsets: np.ndarray, out) -> int:
    """Copy the staged bytes to the device and run the native kernel on CuPy's current stream."""
    import cupy

    from .kernels import get_function

    d_src = cupy.asarray(src)
    d_offsets = cupy.asarray(frame_offsets)
    status = cupy.zeros(1, dtype=cupy.uint32)
    kernel = get_function("native.cu", plan.kernel)
    g = plan.geometry
    kernel((g.grid,), (g.block,), (d_src, np.uint64(d_src.size), d_offsets, *plan.scalars(), out, status))
    return int(status.get()[0])
