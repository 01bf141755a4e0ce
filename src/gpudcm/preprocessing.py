"""Grey preprocessing for training and inference: rescale, window, normalise, resize and cast in one pass.

``preprocess(arr, ds, ...)`` computes, for stored values ``x`` of a ``(rows, cols)`` or ``(frames, rows,
cols)`` MONOCHROME1/2 array, every float operation in float32 with one rounding each, in this order:

1. rescale: ``v = float32(x) * slope + intercept`` (Rescale Slope/Intercept when both are present, else
   1 and 0);
2. window (``window="auto"``: the first Window Center/Width of `ds`; ``(center, width)``: those): pydicom's
   LINEAR function (``apply_windowing``) with ``c = center - 0.5``, ``w = width - 1``, its output range
   ``[y_min, y_max]`` (Bits Stored and Pixel Representation, rescaled) and thresholds ``c -+ w / 2``
   computed in float64 and rounded to float32: ``v <= lower -> y_min``, ``v > upper -> y_max``, else
   ``((v - c) / w + 0.5) * (y_max - y_min) + y_min``, clamped to ``[y_min, y_max]`` (so rounding cannot step
   outside the range, and the whole transform stays monotonic). MONOCHROME1 is not inverted, as pydicom;
3. normalise: ``(v - sub) / div``, with ``sub, div = mean, std`` for ``normalize=(mean, std)``; for
   ``"minmax"`` ``sub = min(v)`` and ``div = max(v) - min(v)`` (1 when that is 0) over the whole array (all
   frames); ``None`` leaves ``v``;
4. resize each frame to ``size=(h, w)`` (None: no resize) separably, columns first: for output ``(i, j)``
   ``out = (sum_a wy[i, a] * (sum_b wx[j, b] * v[ry[i, a], cx[j, b]])) / (dy * dx)``, sums accumulated in
   tap order from 0. An axis whose size does not change is copied (one tap, weight 1). Otherwise, with
   ``n`` source and ``m`` output samples on the axis:

   - ``"bilinear"`` (align_corners=False, half-pixel centres, edge clamp, no antialiasing): in float64,
     ``s = max((i + 0.5) * n / m - 0.5, 0)``, ``i0 = floor(s)``, ``l = s - i0``; taps ``i0`` and
     ``min(i0 + 1, n - 1)`` with weights ``float32(1 - l)`` and ``float32(l)``; ``d = 1``;
   - ``"area"`` (the exact average over each output pixel's footprint): with ``g = gcd(n, m)``, ``p = n / g``
     and ``q = m / g``, output ``i`` covers ``[i p, (i + 1) p)`` and source ``k`` covers ``[k q, (k + 1) q)``;
     the weight of ``k`` is the integer length of their overlap and ``d = p``. For integer factors
     (``n = k m``) every weight is 1 and ``d = k``: the plain box average;
5. cast to `dtype` (float32, or float16 rounded to nearest even from the float32 result).

The returned spacing is ``old * (old size / new size)`` per axis, from Pixel Spacing or else Imager Pixel
Spacing (None when neither is present).

A NumPy array runs :func:`_reference`, the vectorised definition above. A CuPy array runs the kernel in
``kernels/preprocess.cuh`` once over every output sample (plus a min/max reduction of the input for
``"minmax"``: the transform is monotonic, so the range of ``v`` is the transformed input range), bit for
bit the reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from .cuda.kernels import Geometry, launch_geometry
from .errors import InvalidPixelData
from .transforms import _output_range, _xp

__all__ = ["PreprocessPlan", "new_pixel_spacing", "plan_preprocess", "preprocess"]

Array = Any  # numpy.ndarray or cupy.ndarray

INTERPOLATIONS = ("bilinear", "area")
_MAX_SIDE = (1 << 24) - 1  # weights and tap indices stay exact in float32 / int32

# Shared with kernels/preprocess.cuh: flags (GD_PRE_*), float parameter slots (GD_PRE_P_*), header size.
FLAG_WINDOW = 1
FLAG_MINMAX = 2
(P_SLOPE, P_INTERCEPT, P_LOWER, P_UPPER, P_CENTER, P_WIDTH, P_Y_MIN, P_Y_MAX, P_Y_RANGE, P_CLAMP_LO,
 P_CLAMP_HI, P_NORM_SUB, P_NORM_DIV, P_OUT_DIV) = range(14)
N_PARAMS = 14
N_DIMS = 8

# Stored types the kernel reads (its name suffix and the host build's code), and the output types.
IN_TYPES = {np.dtype(t): (name, code) for code, (t, name) in enumerate(
    [(np.uint8, "u8"), (np.int8, "i8"), (np.uint16, "u16"), (np.int16, "i16"), (np.uint32, "u32"),
     (np.int32, "i32"), (np.float32, "f32"), (np.float64, "f64")])}
OUT_TYPES = {np.dtype(np.float32): ("f32", 0), np.dtype(np.float16): ("f16", 1)}


@dataclass(frozen=True)
class Taps:
    """One axis of the separable resize: per output index, `taps` source indices (-1: no more) and
    weights, and the axis divisor."""

    idx: np.ndarray  # int32, (n_out, taps)
    w: np.ndarray  # float32, (n_out, taps)
    div: int

    @property
    def n_out(self) -> int:
        return self.idx.shape[0]

    @property
    def taps(self) -> int:
        return self.idx.shape[1]


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@lru_cache(maxsize=256)
def axis_taps(n_in: int, n_out: int, interpolation: str) -> Taps:
    """The tap table resizing one axis from `n_in` to `n_out` samples (see the module docstring)."""
    if n_in == n_out:
        return Taps(_frozen(np.arange(n_in, dtype=np.int32)[:, None]), _frozen(np.ones((n_in, 1), np.float32)), 1)
    i = np.arange(n_out, dtype=np.int64)
    if interpolation == "bilinear":
        s = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
        frac = s - i0
        idx = np.stack([i0, np.minimum(i0 + 1, n_in - 1)], axis=1)
        w = np.stack([(1.0 - frac).astype(np.float32), frac.astype(np.float32)], axis=1)
        return Taps(_frozen(idx.astype(np.int32)), _frozen(w), 1)
    g = math.gcd(n_in, n_out)
    p, q = n_in // g, n_out // g
    lo, hi = i * p, (i + 1) * p
    k0, k1 = lo // q, (hi - 1) // q
    taps = int((k1 - k0).max()) + 1
    k = k0[:, None] + np.arange(taps)[None, :]
    valid = k <= k1[:, None]
    overlap = np.minimum(hi[:, None], (k + 1) * q) - np.maximum(lo[:, None], k * q)
    idx = np.where(valid, k, -1).astype(np.int32)
    w = np.where(valid, overlap, 0).astype(np.float32)
    return Taps(_frozen(idx), _frozen(w), p)


@dataclass(frozen=True)
class PreprocessPlan:
    """Everything one preprocessing launch needs, without any array module."""

    n_frames: int
    rows_in: int
    cols_in: int
    in_dtype: np.dtype
    out_dtype: np.dtype
    flags: int
    params: np.ndarray  # float32[N_PARAMS]
    y: Taps
    x: Taps
    squeeze: bool  # 2-D input: drop the frame axis of the output

    @property
    def rows_out(self) -> int:
        return self.y.n_out

    @property
    def cols_out(self) -> int:
        return self.x.n_out

    @property
    def out_shape(self) -> tuple[int, ...]:
        shape = (self.n_frames, self.rows_out, self.cols_out)
        return shape[1:] if self.squeeze else shape

    @property
    def n_out(self) -> int:
        return self.n_frames * self.rows_out * self.cols_out

    @property
    def kernel(self) -> str:
        return f"gpudcm_preprocess_{IN_TYPES[self.in_dtype][0]}_{OUT_TYPES[self.out_dtype][0]}"

    @property
    def geometry(self) -> Geometry:
        return launch_geometry(self.n_out)

    @property
    def words(self) -> np.ndarray:
        """The plan as the kernel reads it (layout in kernels/preprocess.cuh)."""
        dims = np.array([self.n_frames, self.rows_in, self.cols_in, self.rows_out, self.cols_out,
                         self.y.taps, self.x.taps, self.flags], dtype=np.uint32)
        parts = [dims, self.params, self.y.idx, self.x.idx, self.y.w, self.x.w]
        return np.concatenate([np.ascontiguousarray(a).reshape(-1).view(np.uint32) for a in parts])


def _grey(ds: Dataset, shape: tuple[int, ...], dtype: np.dtype) -> None:
    pi = ds.get("PhotometricInterpretation", None)
    if pi not in ("MONOCHROME1", "MONOCHROME2") or ds.get("SamplesPerPixel", 1) != 1:
        raise InvalidPixelData(
            f"preprocess takes grey (MONOCHROME1/2, one sample) data, not Photometric Interpretation {pi!r} "
            f"with Samples per Pixel {ds.get('SamplesPerPixel', 1)}"
        )
    if len(shape) not in (2, 3):
        raise InvalidPixelData(f"preprocess takes (rows, cols) or (frames, rows, cols) arrays, not shape {shape}")
    if 0 in shape:
        raise InvalidPixelData(f"nothing to preprocess in an array of shape {shape}")
    if max(shape[-2:]) > _MAX_SIDE:
        raise InvalidPixelData(f"frames of {shape[-2]} x {shape[-1]} are larger than {_MAX_SIDE} a side")
    if dtype not in IN_TYPES:
        raise InvalidPixelData(f"preprocess takes stored values of {', '.join(d.name for d in IN_TYPES)}, not {dtype}")
    if ds.get("ModalityLUTSequence"):
        raise InvalidPixelData(
            "preprocess rescales with Rescale Slope/Intercept; this dataset has a Modality LUT Sequence: apply "
            "gpudcm.apply_modality_lut and gpudcm.apply_voi_lut instead"
        )


def _window_params(ds: Dataset, window) -> tuple[float, float]:
    if isinstance(window, str):
        if window != "auto":
            raise ValueError(f"window must be None, 'auto' or (center, width), not {window!r}")
        if "WindowCenter" not in ds or "WindowWidth" not in ds:
            raise InvalidPixelData("window='auto' needs (0028,1050) Window Center and (0028,1051) Window Width")
        func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        if func != "LINEAR":
            raise InvalidPixelData(
                f"window='auto': the dataset's (0028,1056) VOI LUT Function is {func}, preprocess applies "
                "LINEAR only; pass (center, width) to window linearly anyway"
            )
        values = []
        for kw in ("WindowCenter", "WindowWidth"):
            elem = ds[kw]
            values.append(float(elem.value[0] if elem.VM > 1 else elem.value))
        center, width = values
    else:
        try:
            center, width = (float(v) for v in window)
        except (TypeError, ValueError):
            raise ValueError(f"window must be None, 'auto' or (center, width), not {window!r}") from None
    if not width >= 1:
        raise ValueError(f"the window width must be at least 1 for a LINEAR window, not {width}")
    return center, width


def _normalize_params(normalize) -> tuple[int, float, float]:
    if normalize is None:
        return 0, 0.0, 1.0
    if isinstance(normalize, str):
        if normalize != "minmax":
            raise ValueError(f"normalize must be 'minmax', (mean, std) or None, not {normalize!r}")
        return FLAG_MINMAX, 0.0, 1.0
    try:
        mean, std = (float(v) for v in normalize)
    except (TypeError, ValueError):
        raise ValueError(f"normalize must be 'minmax', (mean, std) or None, not {normalize!r}") from None
    if not (math.isfinite(mean) and math.isfinite(std)) or std == 0 or not math.isfinite(np.float32(std)):
        raise ValueError(f"normalize=(mean, std) needs a finite mean and a finite non-zero std, not {normalize!r}")
    return 0, mean, std


def _out_size(size, rows: int, cols: int) -> tuple[int, int]:
    if size is None:
        return rows, cols
    try:
        h, w = size
        h, w = int(h), int(w)
        ok = (h, w) == tuple(size)
    except (TypeError, ValueError):
        ok = False
    if not ok or not (1 <= h <= _MAX_SIDE and 1 <= w <= _MAX_SIDE):
        raise ValueError(f"size must be None or (height, width), positive integers up to {_MAX_SIDE}, not {size!r}")
    return h, w


def plan_preprocess(
    shape: tuple[int, ...],
    dtype,
    ds: Dataset,
    *,
    window=None,
    out_dtype=np.float32,
    normalize="minmax",
    size=None,
    interpolation: str = "bilinear",
) -> PreprocessPlan:
    """Validate the arguments of :func:`preprocess` for an array of `shape` and `dtype`, and plan it."""
    shape = tuple(int(d) for d in shape)
    dtype = np.dtype(dtype).newbyteorder("=")
    _grey(ds, shape, dtype)
    out_dt = np.dtype(out_dtype)
    if out_dt not in OUT_TYPES:
        raise ValueError(f"dtype must be numpy.float32 or numpy.float16, not {out_dtype!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}")
    rows, cols = shape[-2:]
    h, w = _out_size(size, rows, cols)

    p = np.zeros(N_PARAMS, dtype=np.float64)
    p[P_SLOPE], p[P_INTERCEPT] = 1.0, 0.0
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:  # apply_modality_lut's rule
        p[P_SLOPE], p[P_INTERCEPT] = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    flags = 0
    if window is not None:
        center, width = _window_params(ds, window)
        if "BitsStored" not in ds or "PixelRepresentation" not in ds:
            raise InvalidPixelData("windowing needs (0028,0101) Bits Stored and (0028,0103) Pixel Representation")
        c, wd = center - 0.5, width - 1
        y_min, y_max = (float(v) for v in _output_range(ds))
        p[P_LOWER], p[P_UPPER], p[P_CENTER], p[P_WIDTH] = c - wd / 2, c + wd / 2, c, wd
        p[P_Y_MIN], p[P_Y_MAX], p[P_Y_RANGE] = y_min, y_max, y_max - y_min
        flags |= FLAG_WINDOW
    norm_flag, sub, div = _normalize_params(normalize)
    flags |= norm_flag
    p[P_NORM_SUB], p[P_NORM_DIV] = sub, div
    y, x = axis_taps(rows, h, interpolation), axis_taps(cols, w, interpolation)
    p[P_OUT_DIV] = y.div * x.div
    params = p.astype(np.float32)
    if flags & FLAG_WINDOW:
        params[P_CLAMP_LO] = min(params[P_Y_MIN], params[P_Y_MAX])
        params[P_CLAMP_HI] = max(params[P_Y_MIN], params[P_Y_MAX])
    return PreprocessPlan(
        n_frames=shape[0] if len(shape) == 3 else 1,
        rows_in=rows,
        cols_in=cols,
        in_dtype=dtype,
        out_dtype=out_dt,
        flags=flags,
        params=_frozen(params),
        y=y,
        x=x,
        squeeze=len(shape) == 2,
    )


def new_pixel_spacing(ds: Dataset, old_size: tuple[int, int], new_size: tuple[int, int]) -> tuple[float, float] | None:
    """(row, column) spacing after resizing `old_size` to `new_size`, from Pixel Spacing or else Imager
    Pixel Spacing; None when the dataset has neither."""
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        if kw not in ds or ds[kw].value in (None, "", []):
            continue
        elem = ds[kw]
        spacing = elem.value if elem.VM > 1 else [elem.value]
        if len(spacing) != 2:
            raise InvalidPixelData(f"({elem.tag.group:04X},{elem.tag.element:04X}) {kw} has {len(spacing)} values, not 2")
        return (float(spacing[0]) * (old_size[0] / new_size[0]), float(spacing[1]) * (old_size[1] / new_size[1]))
    return None


# ---------------------------------------------------------------------------------------------------
# The NumPy definition


def _rescale_window(v: np.ndarray, plan: PreprocessPlan) -> np.ndarray:
    """Steps 1 and 2 on float32 stored values."""
    p = plan.params
    v = v * p[P_SLOPE]
    v += p[P_INTERCEPT]
    if plan.flags & FLAG_WINDOW:
        linear = (((v - p[P_CENTER]) / p[P_WIDTH] + np.float32(0.5)) * p[P_Y_RANGE]) + p[P_Y_MIN]
        linear = np.where(linear < p[P_CLAMP_LO], p[P_CLAMP_LO], np.where(linear > p[P_CLAMP_HI], p[P_CLAMP_HI], linear))
        v = np.where(v <= p[P_LOWER], p[P_Y_MIN], np.where(v > p[P_UPPER], p[P_Y_MAX], linear))
    return v


def _resample(v: np.ndarray, y: Taps, x: Taps) -> np.ndarray:
    """Step 4's sums (before the division) over float32 frames ``v`` of shape (frames, rows, cols)."""
    h = np.zeros(v.shape[:2] + (x.n_out,), dtype=np.float32)
    for b in range(x.taps):
        c = x.idx[:, b]
        ok = c >= 0
        term = x.w[:, b] * v[:, :, np.where(ok, c, 0)]
        h = h + term if ok.all() else np.where(ok, h + term, h)
    out = np.zeros((v.shape[0], y.n_out, x.n_out), dtype=np.float32)
    for a in range(y.taps):
        r = y.idx[:, a]
        ok = r >= 0
        term = y.w[:, a, None] * h[:, np.where(ok, r, 0), :]
        out = out + term if ok.all() else np.where(ok[:, None], out + term, out)
    return out


def _reference(arr: np.ndarray, plan: PreprocessPlan) -> np.ndarray:
    """:func:`preprocess` for a NumPy array: the vectorised definition (module docstring)."""
    p = plan.params
    with np.errstate(all="ignore"):  # width-0 windows divide by zero where the result is discarded
        v = _rescale_window(np.asarray(arr).reshape(plan.n_frames, plan.rows_in, plan.cols_in).astype(np.float32), plan)
        if plan.flags & FLAG_MINMAX:
            sub, span = v.min(), v.max() - v.min()
            div = span if span != 0 else np.float32(1)
        else:
            sub, div = p[P_NORM_SUB], p[P_NORM_DIV]
        v = (v - sub) / div
        out = _resample(v, plan.y, plan.x) / p[P_OUT_DIV]
        return out.astype(plan.out_dtype).reshape(plan.out_shape)


# ---------------------------------------------------------------------------------------------------
# The kernel path

# launcher(plan, src, range, out) -> status: src C-contiguous native stored values, range = (min, max) of
# src in its dtype (or None without FLAG_MINMAX), out C-contiguous float32 or uint16 (float16 bits).
Launcher = Callable[[PreprocessPlan, Any, Any, Any], Any]


def _run_kernel(arr: Array, plan: PreprocessPlan, *, launcher: Launcher, xp=np, check_status: bool = True) -> Array:
    """:func:`preprocess` through the kernel: `launcher` runs it on the device (CuPy) or, in the tests,
    through the host build of the same logic (``xp=numpy``)."""
    src = xp.ascontiguousarray(arr.astype(plan.in_dtype, copy=False))
    rng = xp.stack((src.min(), src.max())).astype(plan.in_dtype) if plan.flags & FLAG_MINMAX else None
    bits = np.dtype(np.uint16) if plan.out_dtype == np.float16 else plan.out_dtype
    out = xp.empty(plan.out_shape, dtype=bits)
    status = launcher(plan, src, rng, out)
    if check_status:
        status = int(status) if isinstance(status, (int, np.integer)) else int(status.get()[0])
        if status:
            raise InvalidPixelData(f"the preprocessing kernel {plan.kernel} reported status {status}")
    return out.view(plan.out_dtype) if bits != plan.out_dtype else out


@lru_cache(maxsize=64)
def _device_words(device_id: int, stream_ptr: int, words: bytes):
    """A plan's table on the device, cached per (device, stream): allocated and copied on the stream its
    kernels run on, so every read is stream-ordered after the copy, and a table evicted from the cache
    goes back to that stream's pool arena, where only later work on the same stream can reuse it (CuPy's
    pool semantics: gpudcm/cuda/ops.py)."""
    import cupy

    with cupy.cuda.Device(device_id):
        return cupy.asarray(np.frombuffer(words, dtype=np.uint32))


def cupy_preprocess_launcher(plan: PreprocessPlan, src, rng, out):
    """Launch the kernel on CuPy's current stream; returns the device status word (not read: the tables
    are built and checked here, so only a broken plan could set it)."""
    import cupy

    from .cuda.kernels import get_function

    words = _device_words(cupy.cuda.Device().id, cupy.cuda.get_current_stream().ptr, plan.words.tobytes())
    status = cupy.zeros(1, dtype=cupy.uint32)
    g = plan.geometry
    kernel = get_function("preprocess.cu", plan.kernel)
    kernel((g.grid,), (g.block,), (src, src if rng is None else rng, words, out, status))
    return status


def preprocess(
    arr: Array,
    ds: Dataset,
    *,
    window: None | str | tuple[float, float] = None,
    dtype=np.float32,
    normalize: None | str | tuple[float, float] = "minmax",
    size: tuple[int, int] | None = None,
    interpolation: str = "bilinear",
) -> tuple[Array, tuple[float, float] | None]:
    """Rescale, window, normalise, resize and cast grey stored values `arr` of dataset `ds` (definition in
    the module docstring); returns ``(out, (row spacing, column spacing) or None)``.

    NumPy in, NumPy out (the reference); CuPy in, CuPy out (one fused kernel, bit for bit the same).
    Raises :class:`~gpudcm.InvalidPixelData` for colour data, a Modality LUT Sequence, or a window
    the dataset does not provide; ``ValueError`` for bad arguments.
    """
    xp = _xp(arr)
    plan = plan_preprocess(arr.shape, arr.dtype, ds, window=window, out_dtype=dtype, normalize=normalize,
                           size=size, interpolation=interpolation)
    spacing = new_pixel_spacing(ds, (plan.rows_in, plan.cols_in), (plan.rows_out, plan.cols_out))
    if xp is np:
        return _reference(arr, plan), spacing
    with arr.device:
        return _run_kernel(arr, plan, launcher=cupy_preprocess_launcher, xp=xp, check_status=False), spacing
