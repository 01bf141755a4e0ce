"""Viewing: ``render`` (a uint8 picture of one frame), ``contact_sheet`` (all frames, or an even sample, in a
grid) and ``show`` (a matplotlib figure).

``render`` applies what a DICOM viewer applies, in this order, to the stored values of one frame:

1. grey data (MONOCHROME1/2): the Modality LUT or Rescale Slope/Intercept (``apply_modality_lut``), then the
   VOI transform chosen by `window`, then a linear map of the VOI output range onto 0..255:

   - ``"auto"``: the file's first VOI LUT (preferred, as ``apply_voi_lut``) or else its first window, else
     as ``None``;
   - an ``int`` k: the file's VOI LUT k, or window k when it has no VOI LUT Sequence (an error when absent);
   - ``(center, width)``: that LINEAR window on the modality output (``apply_windowing`` with output range
     0..255);
   - ``None``: no VOI transform; the range is the minimum and maximum of the frame's modality output.

   The VOI output range is ``apply_windowing``'s (Bits Stored and Pixel Representation or the Modality LUT
   depth, rescaled) for a window of the file, 0..255 for ``(center, width)`` and ``0..2**n - 1`` for a VOI
   LUT of n bits per entry. With ``lo, hi`` that range, in float64:
   ``u8 = floor(clip((v - lo) / (hi - lo), 0, 1) * 255 + 0.5)`` (all 0 when ``hi == lo``; NaN -> 0).

   Then the picture is inverted (``255 - u8``) once when Photometric Interpretation is MONOCHROME1 or the
   Presentation LUT Shape is INVERSE, never twice: in image IODs the shape restates the polarity (PS3.3
   (2050,0020): INVERSE with MONOCHROME1, IDENTITY with MONOCHROME2), so both name one inversion; a file
   where they disagree is inverted when either asks. A Presentation LUT Sequence replaces both:
   ``apply_presentation_lut`` (pydicom's, which spreads the frame's VOI output min..max over the LUT)
   maps to P-values, scaled from ``0..2**n - 1`` as above;
2. PALETTE COLOR: ``apply_color_lut`` -> RGB (alpha dropped), scaled from the palette's 8 or 16 bits;
3. RGB (YBR_FULL, YBR_FULL_422, YBR_ICT/RCT are decoded to RGB, pydicom's default): uint8 as it is,
   wider samples scaled from ``0..2**BitsStored - 1``.

Rescale, windows and Pixel Spacing in the Shared or Per-frame Functional Groups of enhanced images are
used for their frame when the top level lacks them. ``size`` downscales the uint8 picture by area
averaging (``preprocessing.axis_taps(n, m, "area")``: integer overlap weights), summed exactly in integers
and rounded half up: ``floor((2 * sum + d) / (2 * d))``.

NumPy in, NumPy out (pydicom's functions do the transforms); CuPy in, CuPy out (the array-module generic
transforms of :mod:`gpudcm.transforms` and the same arithmetic here: every float op is one IEEE operation,
so the bytes are the same). Sources (path, bytes, file-like, Dataset) decode on `device` (default "cpu").
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from . import transforms as _t
from .api import iter_frames, pixel_array
from .errors import InvalidPixelData
from .host import to_host
from .preprocessing import axis_taps, new_pixel_spacing
from .reader import open_pixels
from .source import source_name

__all__ = ["contact_sheet", "render", "show"]

Array = Any  # numpy.ndarray or cupy.ndarray

_GREY = ("MONOCHROME1", "MONOCHROME2")
# Attributes a frame inherits from the functional groups of an enhanced image: (sequence, keywords).
_GROUP_ATTRS = (
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept", "RescaleType")),
    ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction", "WindowCenterWidthExplanation")),
    ("PixelMeasuresSequence", ("PixelSpacing",)),
)


@dataclass(frozen=True)
class _Ops:
    """The transforms render uses: pydicom's through gpudcm.transforms' dispatch (default), or the array-module
    generic bodies with an explicit ``xp`` (the tests run the CuPy code path with NumPy this way)."""

    modality: Callable
    voi: Callable
    windowing: Callable
    presentation: Callable
    color_lut: Callable


PUBLIC_OPS = _Ops(_t.apply_modality_lut, _t.apply_voi, _t.apply_windowing, _t.apply_presentation_lut,
                  _t.apply_color_lut)


def generic_ops(xp) -> _Ops:
    """The array-module generic transforms run with `xp` (what a CuPy array goes through)."""
    return _Ops(partial(_t._apply_modality_lut, xp=xp), partial(_t._apply_voi, xp=xp),
                partial(_t._apply_windowing, xp=xp), partial(_t._apply_presentation_lut, xp=xp), partial(_t._apply_color_lut, xp=xp))


@dataclass(frozen=True)
class RenderInfo:
    """What :func:`render` did: the frame, the VOI transform in words and the pixel spacing of the result."""

    frame: int | None
    window: str
    spacing: tuple[float, float] | None


# ---------------------------------------------------------------------------------------------------
# Inputs


def _frame_dataset(ds: Dataset, frame: int) -> Dataset:
    """`ds`, or a shallow copy holding the frame's rescale, window and spacing from the functional groups
    (per-frame over shared) where the top level has none."""
    found: dict[str, Any] = {}
    for groups_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        groups = ds.get(groups_kw)
        if not groups:
            continue
        item = groups[0] if groups_kw.startswith("Shared") else (groups[frame] if frame < len(groups) else None)
        if item is None:
            continue
        for seq_kw, keywords in _GROUP_ATTRS:
            seq = item.get(seq_kw)
            if seq:
                for kw in keywords:
                    if kw in seq[0]:
                        found[kw] = seq[0][kw]
    missing = {kw: elem for kw, elem in found.items() if kw not in ds}
    if not missing:
        return ds
    out = Dataset()
    out.update(ds)  # shares the elements; nothing is copied but the mapping
    if hasattr(ds, "file_meta"):
        out.file_meta = ds.file_meta
    out.set_original_encoding(*ds.original_encoding, ds.original_character_set)  # for OW LUT byte order
    for elem in missing.values():
        out.add(elem)
    return out


def _samples(ds: Dataset | None, arr: Array) -> int:
    if ds is not None and "SamplesPerPixel" in ds:
        return int(ds.SamplesPerPixel)
    return 3 if arr.ndim in (3, 4) and arr.shape[-1] == 3 else 1


def _frames_axis(ds: Dataset | None, arr: Array) -> bool:
    """Whether `arr` holds several frames (a leading frame axis)."""
    return arr.ndim == 3 + (_samples(ds, arr) > 1)


def _check_frame(frame, n: int, name: str) -> int:
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise InvalidPixelData(f"{name}: frame index must be an int, not {frame!r}")
    if not 0 <= frame < n:
        raise InvalidPixelData(f"{name}: frame index {frame} is out of range for {n} frame(s)")
    return int(frame)


def _pick_frame(arr: Array, ds: Dataset | None, frame: int | None, name: str) -> tuple[Array, int | None]:
    if arr.ndim not in (2, 3, 4):
        raise InvalidPixelData(f"{name}: cannot render an array of shape {arr.shape}")
    if not _frames_axis(ds, arr):
        return arr, None if frame is None else _check_frame(frame, 1, name)
    k = _check_frame(0 if frame is None else frame, arr.shape[0], name)
    return arr[k], k


# ---------------------------------------------------------------------------------------------------
# The uint8 mapping


def _to_u8(xp, v: Array, lo: float, hi: float) -> Array:
    """``floor(clip((v - lo) / (hi - lo), 0, 1) * 255 + 0.5)`` in float64, one IEEE operation a step."""
    if hi == lo:
        return xp.zeros(v.shape, dtype=np.uint8)
    t = v.astype(np.float64)
    t = t - np.float64(lo)
    t = t / np.float64(hi - lo)
    t = xp.where(xp.isnan(t), np.float64(0), t)
    t = xp.clip(t, np.float64(0), np.float64(1))
    t = t * np.float64(255)
    t = t + np.float64(0.5)
    return xp.floor(t).astype(np.uint8)


def _range_u8(xp, v: Array, bits: int) -> Array:
    """Unsigned samples of `bits` bits to uint8 (the same mapping; uint8 of 8 bits unchanged)."""
    if v.dtype == np.uint8 and bits == 8:
        return v
    return _to_u8(xp, v, 0.0, float(2**bits - 1))


def _window_count(ds: Dataset) -> int:
    if "WindowCenter" not in ds or "WindowWidth" not in ds or ds.WindowCenter is None or ds.WindowWidth is None:
        return 0
    return min(ds["WindowCenter"].VM, ds["WindowWidth"].VM)


def _has_voi_lut(ds: Dataset) -> bool:
    """apply_voi_lut's test: a VOI LUT Sequence whose first item has a descriptor and data."""
    seq = ds.get("VOILUTSequence")
    return bool(seq) and None not in (seq[0].get("LUTDescriptor", None), seq[0].get("LUTData", None))


def _custom_window_ds(center: float, width: float) -> Dataset:
    w = Dataset()
    w.PhotometricInterpretation = "MONOCHROME2"
    w.BitsStored, w.PixelRepresentation = 8, 0  # output range 0..255
    w.WindowCenter, w.WindowWidth, w.VOILUTFunction = center, width, "LINEAR"
    return w


def _fmt(x: float) -> str:
    return f"{float(x):g}"


def _grey(xp, arr: Array, ds: Dataset | None, window, ops: _Ops, name: str) -> tuple[Array, str]:
    ds = ds if ds is not None else Dataset()
    v = ops.modality(arr, ds)
    voi = "min/max"
    if isinstance(window, _Range):  # one range for several frames (a contact sheet)
        index, lo, hi = None, window.lo, window.hi
        voi = f"min/max of all frames [{_fmt(lo)}, {_fmt(hi)}]"
    elif isinstance(window, str):
        if window != "auto":
            raise ValueError(f"window must be 'auto', an index, (center, width) or None, not {window!r}")
        index = 0 if (_has_voi_lut(ds) or _window_count(ds)) else None
    elif window is None or (isinstance(window, (int, np.integer)) and not isinstance(window, bool)):
        index = None if window is None else int(window)
    else:
        index = None
        try:
            center, width = (float(x) for x in window)
        except (TypeError, ValueError):
            raise ValueError(f"window must be 'auto', an index, (center, width) or None, not {window!r}") from None
        if not width >= 1:
            raise ValueError(f"a LINEAR window needs a width of at least 1, not {width}")
        v = ops.windowing(v, _custom_window_ds(center, width))
        lo, hi, voi = 0.0, 255.0, f"C {_fmt(center)} W {_fmt(width)}"
    if index is not None:
        if _has_voi_lut(ds):
            n = len(ds.VOILUTSequence)
            if not 0 <= index < n:
                raise InvalidPixelData(f"{name}: VOI LUT {index} requested, the file has {n}")
            with warnings.catch_warnings():  # a rescaled (float) input is what a viewer feeds the LUT too
                warnings.filterwarnings("ignore", "Applying a VOI LUT on a float input")
                v = ops.voi(v, ds, index)
            bits = int(ds.VOILUTSequence[index].LUTDescriptor[2])
            lo, hi = 0.0, float(2**bits - 1)
            expl = ds.VOILUTSequence[index].get("LUTExplanation")
            voi = f"VOI LUT {index}" + (f" ({expl})" if expl else "")
        else:
            n = _window_count(ds)
            if not 0 <= index < n:
                raise InvalidPixelData(f"{name}: window {index} requested, the file has {n}")
            v = ops.windowing(v, ds, index)
            lo, hi = (float(x) for x in _t._output_range(ds))
            c, w = (ds[kw].value[index] if ds[kw].VM > 1 else ds[kw].value for kw in ("WindowCenter", "WindowWidth"))
            func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
            voi = f"C {_fmt(c)} W {_fmt(w)}" + ("" if func == "LINEAR" else f" {func}")
    elif voi == "min/max":
        if v.size == 0:
            lo = hi = 0.0
        elif v.dtype.kind == "f":
            lo, hi = float(xp.nanmin(v)), float(xp.nanmax(v))
        else:
            lo, hi = float(v.min()), float(v.max())
        voi = f"min/max [{_fmt(lo)}, {_fmt(hi)}]"

    if ds.get("PresentationLUTSequence"):
        bits = int(ds.PresentationLUTSequence[0].LUTDescriptor[2])
        return _range_u8(xp, ops.presentation(v, ds), bits), voi + ", Presentation LUT"
    u8 = _to_u8(xp, v, lo, hi)
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    invert = shape == "INVERSE" or ds.get("PhotometricInterpretation") == "MONOCHROME1"
    if invert:
        u8 = xp.invert(u8)  # 255 - u8
        voi += ", inverted"
    return u8, voi


def _colour(xp, arr: Array, ds: Dataset | None, pi: str, ops: _Ops, name: str) -> Array:
    if pi == "PALETTE COLOR":
        if "RedPaletteColorLookupTableDescriptor" not in ds:
            raise InvalidPixelData(f"{name}: PALETTE COLOR without a palette (no Red Palette Color LUT Descriptor)")
        rgb = ops.color_lut(arr, ds)[..., :3]
        return _range_u8(xp, rgb, rgb.dtype.itemsize * 8)
    if arr.shape[-1] != 3:
        raise InvalidPixelData(f"{name}: expected 3 samples per pixel for {pi}, got shape {arr.shape}")
    if arr.dtype.kind not in "ui":
        raise InvalidPixelData(f"{name}: cannot render {arr.dtype} colour samples")
    bits = int(ds.BitsStored) if ds is not None and "BitsStored" in ds else arr.dtype.itemsize * 8
    return _range_u8(xp, arr, bits)


# ---------------------------------------------------------------------------------------------------
# Downscaling


def _out_size(size, rows: int, cols: int) -> tuple[int, int]:
    """``None``: unchanged; an int: the longer side at most `size` (aspect kept, sides rounded half up,
    never upscaled); ``(h, w)``: exactly that."""
    if size is None:
        return rows, cols
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        m = max(rows, cols)
        if size < 1:
            raise ValueError(f"size must be positive, not {size}")
        if m <= size:
            return rows, cols
        return max(1, (2 * rows * size + m) // (2 * m)), max(1, (2 * cols * size + m) // (2 * m))
    try:
        h, w = (int(x) for x in size)
        ok = (h, w) == tuple(size) and h >= 1 and w >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"size must be None, an int or (height, width) of positive integers, not {size!r}")
    return h, w


def _axis_sum(xp, a: Array, n_out: int, axis: int) -> tuple[Array, int]:
    """Area weights summed along `axis` of the int64 array `a` (exact), and the axis divisor."""
    taps = axis_taps(a.shape[axis], n_out, "area")
    acc = None
    for b in range(taps.taps):
        idx = taps.idx[:, b]
        idx_d = xp.asarray(np.where(idx >= 0, idx, 0).astype(np.intp))
        w = xp.asarray(taps.w[:, b].astype(np.int64))  # 0 where a row has fewer taps
        shape = [1] * a.ndim
        shape[axis] = n_out
        term = xp.take(a, idx_d, axis=axis) * w.reshape(shape)
        acc = term if acc is None else acc + term
    return acc, taps.div


def area_downscale(xp, img: Array, h: int, w: int) -> Array:
    """uint8 (rows, cols[, 3]) -> (h, w[, 3]): exact area average, rounded half up."""
    if img.shape[:2] == (h, w):
        return img
    a, dy = _axis_sum(xp, img.astype(np.int64), h, 0)
    a, dx = _axis_sum(xp, a, w, 1)
    d = np.int64(dy * dx)
    return ((a * np.int64(2) + d) // (np.int64(2) * d)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------
# render


def _render_frame(arr: Array, ds: Dataset | None, *, window, size, name: str, xp, ops: _Ops) -> tuple[Array, str]:
    """One frame's stored values (as pixel_array decodes them) -> (uint8 picture, VOI in words)."""
    pi = str(ds.get("PhotometricInterpretation", "") or "") if ds is not None else ""
    samples = _samples(ds, arr)
    if not pi:
        pi = "RGB" if samples > 1 else "MONOCHROME2"
    if pi in _GREY and samples == 1:
        img, voi = _grey(xp, arr, ds, window, ops, name)
    else:
        if not (isinstance(window, str) and window == "auto") and window is not None:
            raise InvalidPixelData(f"{name}: windows apply to MONOCHROME1/2 data, not {pi}")
        img, voi = _colour(xp, arr, ds, pi, ops, name), pi
    h, w = _out_size(size, img.shape[0], img.shape[1])
    return area_downscale(xp, img, h, w), voi


def _load(src, ds: Dataset | None, frame: int | None, device: str) -> tuple[Array, Dataset | None, int | None, str]:
    """(frame array, its dataset, frame index, name) for a source or an array."""
    xp = _array_module(src)
    if xp is not None:
        name = source_name(ds) if ds is not None else "<array>"
        arr, k = _pick_frame(src, ds, frame, name)
        return arr, (_frame_dataset(ds, k or 0) if ds is not None else None), k, name
    with open_pixels(src, full_header=True) as reader:  # the header, then only the frame drawn is read
        dataset, name = reader.ds, reader.name
        frames = reader.spec.number_of_frames  # validated: a clear error for odd values
        k = _check_frame(frame, frames, name) if frame is not None else (0 if frames > 1 else None)
        # index 0 even for single-frame files: pydicom's Dataset reader returns excess whole frames as more frames
        arr = pixel_array(reader, index=k or 0, device=device)
    return arr, _frame_dataset(dataset, k or 0), k, name


def _array_module(obj):
    try:
        return _t._xp(obj)
    except TypeError:
        return None


def pixel_aspect(ds: Dataset | None) -> float:
    """Height / width of one pixel: Pixel Spacing (row, column), else Imager Pixel Spacing, else Pixel
    Aspect Ratio (vertical, horizontal); 1 without any."""
    if ds is None:
        return 1.0
    spacing = new_pixel_spacing(ds, (1, 1), (1, 1))
    if spacing and spacing[0] > 0 and spacing[1] > 0:
        return spacing[0] / spacing[1]
    ratio = ds.get("PixelAspectRatio")
    try:
        vertical, horizontal = (float(v) for v in ratio)
    except (TypeError, ValueError):
        return 1.0
    return vertical / horizontal if vertical > 0 and horizontal > 0 else 1.0


def square_size(rows: int, cols: int, aspect: float) -> tuple[int, int]:
    """(rows, cols) for square pixels on screen: the axis with the finer spacing shrinks (never grows)."""
    if aspect < 1:
        return max(1, round(rows * aspect)), cols
    if aspect > 1:
        return rows, max(1, round(cols / aspect))
    return rows, cols


def _display_size(size, rows: int, cols: int, ds: Dataset | None, square: bool, upscale: int | None = None):
    """The exact (h, w) a frame is drawn at: square pixels when asked, then `size` as _out_size has it;
    `upscale` (a tile size): grown to it when smaller."""
    if not square or (size is not None and not isinstance(size, (int, np.integer))):
        return size
    h, w = square_size(rows, cols, pixel_aspect(ds))
    if upscale and max(h, w) < upscale:
        k = upscale / max(h, w)
        h, w = max(1, min(upscale, round(h * k))), max(1, min(upscale, round(w * k)))
        return h, w
    return _out_size(size, h, w)


def upscale_nearest(xp, img: Array, h: int, w: int) -> Array:
    """`img` grown by whole-pixel repeats (crisp, no new values) to at least (h, w), then area-averaged
    to exactly (h, w)."""
    ky, kx = -(-h // img.shape[0]), -(-w // img.shape[1])
    if ky > 1 or kx > 1:
        img = xp.repeat(xp.repeat(img, ky, axis=0), kx, axis=1)
    return area_downscale(xp, img, h, w)


def _render(src, ds, *, frame, window, size, device, ops: _Ops | None = None,
            square_pixels: bool = False) -> tuple[Array, RenderInfo]:
    arr, fds, k, name = _load(src, ds, frame, device)
    xp = _t._xp(arr)
    ops = ops or PUBLIC_OPS
    ctx = arr.device if xp is not np else nullcontext()
    size = _display_size(size, arr.shape[0], arr.shape[1], fds, square_pixels)
    with ctx:
        img, voi = _render_frame(arr, fds, window=window, size=size, name=name, xp=xp, ops=ops)
    spacing = new_pixel_spacing(fds, arr.shape[:2], img.shape[:2]) if fds is not None else None
    return img, RenderInfo(k, voi, spacing)


def render(
    src_or_array,
    ds: Dataset | None = None,
    *,
    frame: int | None = None,
    window: None | str | int | tuple[float, float] = "auto",
    size: None | int | tuple[int, int] = None,
    device: str = "cpu",
    square_pixels: bool = False,
) -> Array:
    """A uint8 picture of one frame: (rows, cols) grey or (rows, cols, 3) RGB (definition in the module
    docstring). ``square_pixels=True`` (what ``gpudcm show`` does) shrinks the axis with the finer Pixel
    Spacing (or Imager Pixel Spacing, or Pixel Aspect Ratio) so that each picture pixel is square on
    screen (before `size` applies).

    `src_or_array`: a path, bytes, file-like or Dataset (decoded on `device`), or an array as
    ``pixel_array`` returns it with its dataset `ds` (without `ds`, grey data is shown min/max and three
    samples as RGB). `frame`: which frame of multi-frame data (default 0, what a viewer shows first).
    `window`: ``"auto"``, an index into the file's VOI LUTs or windows, ``(center, width)`` or ``None``
    (min/max). `size`: an int bounds the longer side (downscale only), ``(h, w)`` is exact.
    NumPy in, NumPy out; CuPy in (or ``device="cuda"``), CuPy out.
    """
    return _render(src_or_array, ds, frame=frame, window=window, size=size, device=device,
                   square_pixels=square_pixels)[0]


# ---------------------------------------------------------------------------------------------------
# contact_sheet

# 3 x 5 digit glyphs, one string of 15 pixels per digit, rows top to bottom ("#" lit).
_DIGITS = (
    "####.##.##.####", ".#.##..#..#.###", "###..#####..###", "###..####..####", "#.##.####..#..#",
    "####..###..####", "####..####.####", "###..#..#..#..#", "####.#####.####", "####.####..####",
)


def label_mask(text: str, scale: int) -> np.ndarray:
    """The boolean mask of a frame label: digits of the built-in 3 x 5 bitmap font, one blank column
    between digits, a one-pixel margin, all scaled by `scale` (the lit pixels are drawn white on black)."""
    glyphs = [np.array([c == "#" for c in _DIGITS[int(ch)]], dtype=bool).reshape(5, 3) for ch in text]
    gap = np.zeros((5, 1), dtype=bool)
    row = np.concatenate([g for d in glyphs for g in (d, gap)][:-1], axis=1)
    row = np.pad(row, 1)
    return np.kron(row, np.ones((scale, scale), dtype=bool)).astype(bool)


def label_scale(size: int) -> int:
    return max(1, size // 128)


def _draw_label(xp, sheet: Array, top: int, left: int, text: str, scale: int) -> None:
    mask = label_mask(text, scale)
    h = min(mask.shape[0], sheet.shape[0] - top)
    w = min(mask.shape[1], sheet.shape[1] - left)
    m = xp.asarray(mask[:h, :w])
    if sheet.ndim == 3:
        m = m[..., None]
    sheet[top : top + h, left : left + w] = xp.where(m, np.uint8(255), np.uint8(0))


def sample_indices(n: int, max_tiles: int) -> list[int]:
    """All of ``range(n)``, or `max_tiles` of them evenly spread, first and last included."""
    if n <= max_tiles:
        return list(range(n))
    if max_tiles == 1:
        return [0]
    return [k * (n - 1) // (max_tiles - 1) for k in range(max_tiles)]


def _series_paths(paths: Sequence) -> list:
    """Paths in series order (gpudcm.series.group_series: slice position, else Instance Number, else path),
    series after series."""
    from .series import group_series

    ordered = [p for s in group_series(paths) for p in s.paths]
    if not ordered:
        raise InvalidPixelData(f"no DICOM images among {len(paths)} paths")
    return ordered


def _tiles(src, ds, *, max_tiles: int, device: str) -> tuple[list[tuple[int, Array, Dataset | None]], str]:
    """(label, frame array, dataset) per tile, and a name for messages."""
    if _array_module(src) is not None:
        name = "<array>"
        many = _frames_axis(ds, src)
        n = src.shape[0] if many else 1
        return [(k, src[k] if many else src, _frame_dataset(ds, k) if ds is not None else None)
                for k in sample_indices(n, max_tiles)], name
    if isinstance(src, (list, tuple)):
        paths = src
        if all(isinstance(p, (str, os.PathLike)) for p in paths):
            paths = _series_paths(paths)
        chosen = sample_indices(len(paths), max_tiles)
        out = []
        for k in chosen:
            with open_pixels(paths[k], full_header=True) as reader:
                out.append((k, pixel_array(reader, index=0, device=device), _frame_dataset(reader.ds, 0)))
        return out, f"series of {len(paths)}"
    with open_pixels(src, full_header=True) as reader:  # only the frames drawn are read
        dataset, name = reader.ds, reader.name
        n = reader.spec.number_of_frames
        chosen = sample_indices(n, max_tiles)
        if n == 1:
            return [(0, pixel_array(reader, index=0, device=device), dataset)], name
        frames = list(iter_frames(reader, indices=chosen, device=device))
    return [(k, arr, _frame_dataset(dataset, k)) for k, arr in zip(chosen, frames)], name


def contact_sheet(
    src,
    ds: Dataset | None = None,
    *,
    columns: int | None = None,
    size: int = 256,
    window: None | str | int | tuple[float, float] = "auto",
    max_tiles: int = 64,
    device: str = "cpu",
    square_pixels: bool = False,
) -> Array:
    """All frames of `src` (or `max_tiles` evenly spread ones, first and last included) in one uint8 image.

    `src`: a multi-frame file (path, bytes, file-like, Dataset), an array (frames, rows, cols[, 3]) with its
    dataset `ds`, or a list of paths (a series: ordered by ``gpudcm.series.group_series``, one tile per file,
    frame 0 of multi-frame files). Tile k is ``render(frame k, window=window, size=size)``, centred in a
    `size` x `size` cell; cells fill `columns` per row (default ``ceil(sqrt(tiles))``) on black. Each cell's
    top-left corner carries its frame index (the position in the series for a list) in white digits on
    black, drawn with a built-in 3 x 5 bitmap font scaled ``max(1, size // 128)`` times (no font files, no
    Pillow). The sheet is RGB when any tile is. NumPy or CuPy, as the frames.

    ``square_pixels=True`` (what ``gpudcm show --sheet`` does): each tile has square pixels (see
    :func:`render`) and frames smaller than the tile are scaled up to it (whole-pixel repeats, then an
    area fit). With ``window="auto"`` and grey frames whose file has no window or VOI LUT, every tile
    uses one range, the minimum to maximum of all the tiles' modality values, so tiles compare.
    """
    if not (isinstance(size, (int, np.integer)) and size >= 8):
        raise ValueError(f"size must be an int of at least 8, not {size!r}")
    if not (isinstance(max_tiles, (int, np.integer)) and max_tiles >= 1):
        raise ValueError(f"max_tiles must be a positive int, not {max_tiles!r}")
    tiles, name = _tiles(src, ds, max_tiles=int(max_tiles), device=device)
    if columns is None:
        columns = math.ceil(math.sqrt(len(tiles)))
    if not (isinstance(columns, (int, np.integer)) and columns >= 1):
        raise ValueError(f"columns must be a positive int, not {columns!r}")
    columns = min(int(columns), len(tiles))
    xp = _t._xp(tiles[0][1])
    shared = _shared_range(xp, tiles, window)
    images = []
    for k, arr, fds in tiles:
        cell = _display_size(int(size), arr.shape[0], arr.shape[1], fds, square_pixels, upscale=int(size))
        with arr.device if xp is not np else nullcontext():
            img, _ = _render_frame(arr, fds, window=shared or window, size=cell if not isinstance(cell, tuple) else None,
                                   name=f"{name} frame {k}", xp=xp, ops=PUBLIC_OPS)
            if isinstance(cell, tuple) and img.shape[:2] != cell:
                img = upscale_nearest(xp, img, *cell)
        images.append((k, img))
    rgb = any(img.ndim == 3 for _, img in images)
    rows = math.ceil(len(images) / columns)
    sheet = xp.zeros((rows * size, columns * size) + ((3,) if rgb else ()), dtype=np.uint8)
    scale = label_scale(int(size))
    for pos, (k, img) in enumerate(images):
        top, left = (pos // columns) * size, (pos % columns) * size
        h, w = img.shape[:2]
        y, x = top + (size - h) // 2, left + (size - w) // 2
        if rgb and img.ndim == 2:
            img = img[..., None]
        sheet[y : y + h, x : x + w] = img
        _draw_label(xp, sheet, top, left, str(k), scale)
    return sheet


@dataclass(frozen=True)
class _Range:
    """A min/max range given from outside (one across a contact sheet), for `_grey`."""

    lo: float
    hi: float


def _shared_range(xp, tiles, window) -> _Range | None:
    """One min/max range over every grey tile, when `window` is "auto" and the file has no window/VOI LUT."""
    if not (isinstance(window, str) and window == "auto"):
        return None
    lo, hi = math.inf, -math.inf
    for _, arr, fds in tiles:
        ds = fds if fds is not None else Dataset()
        pi = str(ds.get("PhotometricInterpretation", "") or "MONOCHROME2")
        if pi not in _GREY or _samples(fds, arr) != 1 or _has_voi_lut(ds) or _window_count(ds) or \
                ds.get("PresentationLUTSequence"):
            return None
        v = PUBLIC_OPS.modality(arr, ds)
        if v.size:
            lo = min(lo, float(xp.nanmin(v)) if v.dtype.kind == "f" else float(v.min()))
            hi = max(hi, float(xp.nanmax(v)) if v.dtype.kind == "f" else float(v.max()))
    return _Range(lo, hi) if lo <= hi else None


# ---------------------------------------------------------------------------------------------------
# show


def show(
    src_or_array,
    ds: Dataset | None = None,
    *,
    frame: int | None = None,
    window: None | str | int | tuple[float, float] = "auto",
    size: None | int | tuple[int, int] = None,
    ax=None,
    title: str | None = None,
    device: str = "cpu",
):
    """Draw ``render(...)`` with matplotlib (the ``view`` extra): grey colormap over 0..255, aspect ratio
    row spacing / column spacing from Pixel Spacing (or Imager Pixel Spacing; 1 without either), the source,
    frame and window in the title. Draws into `ax` or a new figure; returns ``(figure, axes)``."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - the view extra is missing
        raise ImportError("gpudcm.show needs matplotlib: pip install 'gpudcm[view]'") from exc
    img, info = _render(src_or_array, ds, frame=frame, window=window, size=size, device=device)
    host = to_host(img)
    if ax is None:
        fig, ax = plt.subplots()
    else:
        fig = ax.figure
    aspect = info.spacing[0] / info.spacing[1] if info.spacing and info.spacing[1] > 0 else 1.0
    ax.imshow(host, cmap="gray", vmin=0, vmax=255, aspect=aspect, interpolation="nearest")
    ax.set_axis_off()
    if title is None:
        name = "<array>" if _array_module(src_or_array) is not None else os.path.basename(source_name(src_or_array))
        title = name + (f"  frame {info.frame}" if info.frame is not None else "") + f"  {info.window}"
    ax.set_title(title, fontsize="small")
    return fig, ax
