"""JPEG component planes (chroma at its real, subsampled size, as nvJPEG's ``NVJPEG_OUTPUT_UNCHANGED``
returns it) to interleaved ``(rows, cols, components)`` samples, upsampled as one of two CPU decoders does
(``kernels/upsample.cuh``): ``"turbo"``, libjpeg-turbo's "fancy" upsampler, or ``"richter"``, Thomas
Richter's libjpeg (pylibjpeg-libjpeg, pydicom's default JPEG plugin), which filters each 8-sample block
in place and so computes output column 8k+1 from output 8k+2.

:func:`plan_upsample` and :func:`stage_planes` are NumPy-only; :func:`upsample_frames` takes a `launcher`
so CI runs the same plan through the host build of the kernel logic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import DecodeError, InvalidPixelData
from ..jpeg_markers import JpegInfo
from .kernels import Geometry, launch_geometry

MAX_PLANES = 4
UPSAMPLERS = {"turbo": 0, "richter": 1}  # kernels/upsample.cuh GD_UPSAMPLE_TURBO, GD_UPSAMPLE_RICHTER


def component_shapes(info: JpegInfo) -> list[tuple[int, int]]:
    """(height, width) of each decoded component plane (subsampled chroma rounded up, as T.81 A.1.1)."""
    hmax = max(c.h for c in info.components)
    vmax = max(c.v for c in info.components)
    return [(-(-info.rows * c.v // vmax), -(-info.columns * c.h // hmax)) for c in info.components]


def expansion(info: JpegInfo) -> list[tuple[int, int]]:
    """(row factor, column factor) each component is upsampled by: Vmax / V and Hmax / H."""
    hmax = max(c.h for c in info.components)
    vmax = max(c.v for c in info.components)
    return [(vmax // c.v, hmax // c.h) for c in info.components]


@dataclass(frozen=True)
class UpsampleLaunch:
    """One launch turning `n_frames` frames of planes into ``(n_frames, rows, cols, planes)`` uint8."""

    kernel: str
    geometry: Geometry
    n_frames: int
    rows: int
    cols: int
    planes: int
    frame_stride: int
    meta: tuple[int, ...]  # per plane: offset, height, width, fy, fx
    mode: int = UPSAMPLERS["turbo"]

    @property
    def n_elements(self) -> int:
        return self.n_frames * self.rows * self.cols * self.planes

    def meta_array(self) -> np.ndarray:
        return np.array(self.meta, dtype=np.uint64)

    def scalars(self) -> tuple:
        """The scalar arguments after (src, src_len), with explicit C types."""
        return (np.uint32(self.n_frames), np.uint32(self.rows), np.uint32(self.cols), np.uint32(self.planes),
                np.uint64(self.frame_stride), np.uint32(self.mode))


def plan_upsample(info: JpegInfo, n_frames: int, upsampler: str = "turbo") -> UpsampleLaunch:
    """Pure plan of the launch for `n_frames` frames sharing `info`'s size and sampling factors, upsampled
    as `upsampler` (a key of :data:`UPSAMPLERS`) does."""
    if upsampler not in UPSAMPLERS:
        raise ValueError(f"upsampler {upsampler!r} is not one of {sorted(UPSAMPLERS)}")
    shapes, factors = component_shapes(info), expansion(info)
    if not 1 <= len(shapes) <= MAX_PLANES:
        raise InvalidPixelData(f"no upsampling kernel for {len(shapes)} components")
    for fy, fx in factors:
        if (fy, fx) not in ((1, 1), (1, 2), (2, 2)):
            raise InvalidPixelData(f"chroma expansion {fx}x{fy} is not 1x1, 2x1 or 2x2")
    meta: list[int] = []
    offset = 0
    for (h, w), (fy, fx) in zip(shapes, factors):
        meta += [offset, h, w, fy, fx]
        offset += h * w
    n = n_frames * info.rows * info.columns * len(shapes)
    return UpsampleLaunch("gpudcm_upsample_8", launch_geometry(n), n_frames, info.rows, info.columns, len(shapes),
                          offset, tuple(meta), UPSAMPLERS[upsampler])


def stage_planes(frames: Sequence[Sequence], plan: UpsampleLaunch, xp=np):
    """Every frame's planes, flattened into one buffer in the plan's order (frame-major)."""
    flat = []
    for planes in frames:
        if len(planes) != plan.planes:
            raise DecodeError(f"the decoder returned {len(planes)} planes, not {plan.planes}")
        for k, p in enumerate(planes):
            h, w = plan.meta[5 * k + 1], plan.meta[5 * k + 2]
            if tuple(p.shape) != (h, w) or p.dtype != np.uint8:
                raise DecodeError(f"plane {k} is {p.dtype} {tuple(p.shape)}, not uint8 {(h, w)}")
            flat.append(p.reshape(-1))
    return xp.concatenate(flat) if flat else xp.empty(0, dtype=xp.uint8)


# launcher(plan, src_uint8, out_uint8) -> status bits
Launcher = Callable[[UpsampleLaunch, object, object], int]


def upsample_frames(frames: Sequence[Sequence], info: JpegInfo, *, launcher: Launcher, xp=np,
                    upsampler: str = "turbo"):
    """Frames of planes (all shaped as `info` says) -> ``(n, rows, cols[, components])`` uint8, upsampled
    as `upsampler` does."""
    plan = plan_upsample(info, len(frames), upsampler)
    src = stage_planes(frames, plan, xp)
    out = xp.empty(plan.n_elements, dtype=xp.uint8)
    status = launcher(plan, src, out) if plan.n_elements else 0
    if status:
        raise DecodeError(f"the upsampling kernel {plan.kernel} reported status {status}")
    shape = (plan.n_frames, plan.rows, plan.cols) + ((plan.planes,) if plan.planes > 1 else ())
    return out.reshape(shape)


def cupy_upsample_launcher(plan: UpsampleLaunch, src, out) -> int:
    """Run the upsampling kernel on CuPy's current stream; returns its status bits."""
    import cupy

    from .kernels import get_function

    meta = cupy.asarray(plan.meta_array())
    status = cupy.zeros(1, dtype=cupy.uint32)
    g = plan.geometry
    get_function("upsample.cu", plan.kernel)((g.grid,), (g.block,),
                                             (src, np.uint64(src.size), *plan.scalars(), meta, out, status))
    return int(status.get()[0])
