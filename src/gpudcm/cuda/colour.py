"""YBR_FULL -> RGB on the device, bit for bit as pydicom's ``convert_color_space(arr, "YBR_FULL", "RGB")``.

:func:`plan_ybr_to_rgb` and :func:`needs_rgb_conversion` are NumPy-only; :func:`ybr_to_rgb` takes a
`launcher` so CI runs the same plan through the host build of ``kernels/colour.cuh``.

pydicom computes in float32 through ``np.matmul``, whose rounding depends on the path NumPy picks: BLAS
sgemm (products fused into the sums) for arrays more than one column wide, gemv (each product rounded)
for one column. The plan picks the kernel variant the same way; both were checked on all 2**24 8-bit
inputs against NumPy with OpenBLAS on x86-64.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import DecodeError, InvalidPixelData
from ..spec import PixelSpec
from .kernels import Geometry, launch_geometry

# Flags shared with kernels/colour.cuh (GD_COLOUR_*).
COLOUR_UNFUSED = 1

YBR_PHOTOMETRICS = ("YBR_FULL", "YBR_FULL_422")
_BITS = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}  # native byte order only


@dataclass(frozen=True)
class ColourLaunch:
    """One in-place YBR_FULL -> RGB launch over `n_pixels` interleaved triples."""

    kernel: str
    bits: int
    geometry: Geometry
    n_pixels: int
    flags: int

    def scalars(self) -> tuple:
        """The scalar arguments after the array, with explicit C types."""
        return (np.uint64(self.n_pixels), np.uint32(self.flags))


# launcher(plan, contiguous array of 3 * n_pixels samples, converted in place) -> status bits
Launcher = Callable[[ColourLaunch, object], int]


def plan_ybr_to_rgb(arr_shape: tuple[int, ...], dtype) -> ColourLaunch:
    """Pure plan of the launch converting a C-contiguous ``(..., 3)`` array of `dtype` (uint8 or uint16)."""
    shape = tuple(int(d) for d in arr_shape)
    dt = np.dtype(dtype)
    if not shape or shape[-1] != 3:
        raise InvalidPixelData(f"YBR_FULL -> RGB needs 3 samples a pixel, not shape {shape}")
    if dt not in _BITS:
        raise InvalidPixelData(f"no YBR_FULL -> RGB kernel for dtype {dt.str}")
    n_pixels = math.prod(shape[:-1])
    # np.matmul's rows are the columns of a (..., rows, cols, 3) image; a 1-d (3,) is one row
    matmul_rows = shape[-2] if len(shape) > 1 else 1
    return ColourLaunch(
        kernel=f"gpudcm_ybr_to_rgb_{_BITS[dt]}",
        bits=_BITS[dt],
        geometry=launch_geometry(n_pixels),
        n_pixels=n_pixels,
        flags=COLOUR_UNFUSED if matmul_rows == 1 else 0,
    )


def needs_rgb_conversion(spec: PixelSpec, raw: bool, as_rgb: bool) -> bool:
    """pydicom's rule (``_process_color_space``): YBR_FULL or YBR_FULL_422 data, ``as_rgb`` and not ``raw``.

    For JPEG data pydicom first conforms the photometric interpretation to the codestream (JFIF marker,
    RGB component ids); this reads only the dataset's value.
    """
    return not raw and as_rgb and spec.photometric_interpretation in YBR_PHOTOMETRICS


def ybr_to_rgb(arr, *, launcher: Launcher, xp=np, allow_16bit: bool = False):
    """`arr` (shape ``(..., 3)``, YBR_FULL) converted to RGB; in place when it is C-contiguous and writeable.

    pydicom 3.0 converts only uint8 arrays (``pixel_array`` raises for other YBR data), so other dtypes
    raise a :class:`DecodeError` unless `allow_16bit` asks for pydicom's arithmetic on uint16.
    """
    if arr.dtype != np.uint8 and not (allow_16bit and arr.dtype == np.uint16):
        raise DecodeError(f"invalid dtype '{arr.dtype}' for YBR_FULL -> RGB conversion, must be 'uint8'")
    arr = xp.ascontiguousarray(arr)
    if not getattr(arr.flags, "writeable", True):  # NumPy views of read-only buffers; CuPy has no such flag
        arr = arr.copy()
    plan = plan_ybr_to_rgb(arr.shape, arr.dtype)
    if plan.n_pixels:
        status = launcher(plan, arr)
        if status:
            raise DecodeError(f"the colour kernel {plan.kernel} reported status {status}")
    return arr


def cupy_ybr_launcher(plan: ColourLaunch, arr) -> int:
    """Run the colour kernel over the CuPy array `arr` (C-contiguous) on CuPy's current stream."""
    from .kernels import get_function

    if not arr.flags.c_contiguous or arr.size != 3 * plan.n_pixels:
        raise InvalidPixelData(f"{plan.kernel} needs a C-contiguous array of {3 * plan.n_pixels} samples")
    kernel = get_function("colour.cu", plan.kernel)
    g = plan.geometry
    kernel((g.grid,), (g.block,), (arr, *plan.scalars()))
    return 0
