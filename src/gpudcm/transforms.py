"""pydicom's pixel transforms for NumPy and CuPy arrays.

Every public function has the signature of its namesake in ``pydicom.pixels.processing``. A NumPy array
goes to pydicom's own function, so the result is pydicom's. A CuPy array goes through the array-module
generic implementation (``_apply_windowing(arr, ds, index, xp=...)`` and its siblings), which repeats
pydicom's arithmetic step by step: the same dtypes, the same order of float operations, the same
clipping and rounding, NumPy 2's rules for Python scalars made explicit. The tests run that generic code
with ``xp=numpy`` against pydicom; on a GPU the same code runs with ``xp=cupy``. Integer results are
exact; float results are too, except SIGMOID windows, whose ``exp`` may differ by an ulp on the device.

Lookup tables and palettes are parsed on the host (they are small); only the per-pixel work runs on the
array's device. YBR_FULL -> RGB on CuPy runs the colour kernel (``kernels/colour.cu``, bit for bit as
pydicom); RGB -> YBR_FULL reproduces NumPy's float32 matmul exactly in float64 (see
:func:`_rgb_to_ybr`).

Known pydicom 3.0.2 quirks kept for equality: ``apply_color_lut(palette="FALL")`` loads the WINTER
palette and ``palette="WINTER"`` the FALL one (the UIDs given by number are right); a float value cast
to an unsigned LUT index outside its range follows NumPy on x86-64 (truncate to int32, wrap; NaN and
values beyond int32 give 0), which C leaves undefined.
"""

from __future__ import annotations

import operator
import struct
import sys
import warnings
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.data import get_palette_files
from pydicom.dataset import Dataset
from pydicom.pixels import processing as _pd
from pydicom.uid import UID
from pydicom.valuerep import VR

__all__ = [
    "apply_color_lut",
    "apply_modality_lut",
    "apply_presentation_lut",
    "apply_rescale",
    "apply_voi",
    "apply_voi_lut",
    "apply_windowing",
    "convert_color_space",
]

Array = Any  # numpy.ndarray or cupy.ndarray


def _xp(arr: Array):
    """NumPy for a NumPy array, CuPy for a CuPy array (CuPy is never imported here: a CuPy array exists
    only once something else imported it)."""
    if isinstance(arr, np.ndarray):
        return np
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(arr, cupy.ndarray):
        return cupy.get_array_module(arr)
    raise TypeError(f"expected a numpy.ndarray or cupy.ndarray, not {type(arr).__name__}")


def _index(index: int) -> int:
    return operator.index(index)


# ---------------------------------------------------------------------------------------------------
# NumPy 2 semantics, spelled out so that CuPy follows them


def _out_of_bounds(value: int, dtype: np.dtype) -> OverflowError:
    return OverflowError(f"Python integer {value} out of bounds for {np.dtype(dtype).name}")


def _fits(value: int, dtype: np.dtype) -> bool:
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def _ge_int(xp, arr: Array, value: int) -> Array:
    """``arr >= value`` for a Python int: exact for integer arrays whatever the value; a float array
    compares with the value cast to its dtype."""
    dt = arr.dtype
    if dt.kind in "iu" and not _fits(value, dt):
        return xp.full(arr.shape, value < 0, dtype=bool)
    return arr >= dt.type(value)


def _sub_weak(arr: Array, value: int) -> Array:
    """``arr - value`` for a Python int: the array's dtype (wrapping), OverflowError if the value does not
    fit it."""
    dt = arr.dtype
    if dt.kind in "iu" and not _fits(value, dt):
        raise _out_of_bounds(value, dt)
    return arr - dt.type(value)


def _sub_int32(arr: Array, value: int) -> Array:
    """``arr - numpy.int32(value)``: computed in ``result_type(arr.dtype, int32)``."""
    rt = np.result_type(arr.dtype, np.int32)
    return arr.astype(rt, copy=False) - rt.type(value)


def _cast_index(xp, values: Array, dtype: np.dtype) -> Array:
    """``values`` cast to an index `dtype` narrower than 32 bits (uint8 or uint16 here) as NumPy's unsafe
    cast does on x86-64. Integers wrap. Floats truncate towards zero through int32; NaN and values outside
    int32 become INT32_MIN, whose low bits are 0. No undefined float -> integer cast is ever performed.
    """
    dtype = np.dtype(dtype)
    if values.dtype.kind != "f" or dtype.kind not in "iu":
        return values.astype(dtype)
    t = xp.trunc(values)
    ok = (t >= -2.0**31) & (t < 2.0**31)  # False for NaN
    t = xp.where(ok, t, -(2.0**31))
    return t.astype(np.int64).astype(dtype)


def _clip_index(xp, idx: Array, nr_entries: int) -> Array:
    """``np.clip(idx, 0, nr_entries - 1)``: a Python-int bound beyond the dtype's range clips nothing."""
    hi = nr_entries - 1
    if idx.dtype.kind in "iu":
        hi = min(hi, int(np.iinfo(idx.dtype).max))
    return xp.clip(idx, idx.dtype.type(0), idx.dtype.type(hi))


def _lookup(xp, table: np.ndarray, idx: Array, max_index: int) -> Array:
    """``table[idx]`` with NumPy's errors, for indices known to be at most `max_index` (CuPy would wrap
    out-of-range indices silently; the device is asked only when the table is that short)."""
    if idx.dtype.kind not in "iub":
        raise IndexError("arrays used as indices must be of integer (or boolean) type")
    if table.ndim == 0:
        raise IndexError("too many indices for array: array is 0-dimensional, but 1 were indexed")
    n = table.shape[0]
    if idx.size and n <= max_index:
        top = int(idx.max())
        if top >= n:
            raise IndexError(f"index {top} is out of bounds for axis 0 with size {n}")
    return xp.asarray(table)[idx.astype(np.intp, copy=False)]


def _lut_index(xp, arr: Array, first_map: int, nr_entries: int, idx_dtype, int32_offset: bool) -> Array:
    """pydicom's LUT input index: 0 below `first_map`, ``arr - first_map`` stored into an `idx_dtype`
    array, clipped to the table."""
    mapped = _ge_int(xp, arr, first_map)
    diff = _sub_int32(arr, first_map) if int32_offset else _sub_weak(arr, first_map)
    idx = xp.where(mapped, _cast_index(xp, diff, idx_dtype), np.dtype(idx_dtype).type(0))
    return _clip_index(xp, idx, nr_entries)


def _is_little_endian(ds: Dataset) -> bool:
    """The dataset's byte order as pydicom decides it for OW LUT data."""
    if hasattr(ds, "file_meta"):
        ts = ds.file_meta.get("TransferSyntaxUID", None)
        little = None if (not ts or ts.is_private or not ts.is_transfer_syntax) else ts.is_little_endian
    else:
        little = ds.original_encoding[1]
    if little is None:
        raise AttributeError(
            "Unable to determine the endianness of the dataset, please set an appropriate Transfer "
            f"Syntax UID in '{type(ds).__name__}.file_meta'"
        )
    return little


def _words(ds: Dataset, item: Dataset, nr_entries: int, exact: bool) -> Any:
    """LUT Data of `item` (US values, or OW bytes unpacked in the dataset's byte order)."""
    if item["LUTData"].VR != VR.OW:
        return item.LUTData
    fmt = f"{'><'[_is_little_endian(ds)]}{nr_entries}H"
    return struct.unpack(fmt, item.LUTData) if exact else struct.unpack_from(fmt, item.LUTData)


# ---------------------------------------------------------------------------------------------------
# Modality LUT / rescale


def _apply_modality_lut(arr: Array, ds: Dataset, *, xp=np) -> Array:
    if ds.get("ModalityLUTSequence"):
        item = ds.ModalityLUTSequence[0]
        nr_entries = item.LUTDescriptor[0] or 2**16
        first_map = item.LUTDescriptor[1]
        table = np.asarray(_words(ds, item, nr_entries, exact=True), dtype=f"uint{item.LUTDescriptor[2]}")
        idx = _lut_index(xp, arr, first_map, nr_entries, arr.dtype, int32_offset=False)
        return _lookup(xp, table, idx, nr_entries - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        out = arr.astype(np.float64) * np.float64(ds.RescaleSlope)
        out += np.float64(ds.RescaleIntercept)
        return out
    return arr


def apply_modality_lut(arr: Array, ds: Dataset) -> Array:
    """The Modality LUT or Rescale Slope/Intercept of `ds` applied to `arr` (pydicom's function)."""
    xp = _xp(arr)
    if xp is np:
        return _pd.apply_modality_lut(arr, ds)
    with arr.device:  # tables and kernels go to the array's device
        return _apply_modality_lut(arr, ds, xp=xp)


apply_rescale = apply_modality_lut
_apply_rescale = _apply_modality_lut


# ---------------------------------------------------------------------------------------------------
# VOI LUT and windowing


def _apply_voi(arr: Array, ds: Dataset, index: int = 0, *, xp=np) -> Array:
    if not ds.get("VOILUTSequence"):
        return arr
    if arr.dtype.kind not in "iu":
        warnings.warn("Applying a VOI LUT on a float input array may give incorrect results", UserWarning)
    item = ds.VOILUTSequence[index]
    nr_entries = item.LUTDescriptor[0] or 2**16
    first_map = item.LUTDescriptor[1]
    depth = item.LUTDescriptor[2]
    if depth == 8:
        dtype = np.dtype(np.uint8)
    elif 10 <= depth <= 16:
        dtype = np.dtype(np.uint16)
    else:
        raise NotImplementedError(f"'{depth}' bits per LUT entry is not supported")
    table = np.asarray(_words(ds, item, nr_entries, exact=False), dtype=dtype)
    idx = _lut_index(xp, arr, first_map, nr_entries, dtype, int32_offset=False)
    return _lookup(xp, table, idx, nr_entries - 1)


def _output_range(ds: Dataset) -> tuple[float, float]:
    """pydicom's windowing output range: from the Modality LUT depth or Bits Stored, then rescaled."""
    if ds.get("ModalityLUTSequence"):
        y_min, y_max = 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    elif ds.PixelRepresentation == 0:
        y_min, y_max = 0, 2**ds.BitsStored - 1
    else:
        y_min, y_max = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    slope = ds.get("RescaleSlope", None)
    intercept = ds.get("RescaleIntercept", None)
    if slope is not None and intercept is not None:
        y_min = y_min * ds.RescaleSlope + ds.RescaleIntercept
        y_max = y_max * ds.RescaleSlope + ds.RescaleIntercept
    return y_min, y_max


def _apply_windowing(arr: Array, ds: Dataset, index: int = 0, *, xp=np) -> Array:
    if "WindowWidth" not in ds and "WindowCenter" not in ds:
        return arr
    if ds.PhotometricInterpretation not in ["MONOCHROME1", "MONOCHROME2"]:
        raise ValueError(
            "When performing a windowing operation only 'MONOCHROME1' and 'MONOCHROME2' are allowed for "
            "(0028,0004) Photometric Interpretation"
        )
    voi_func = getattr(ds, "VOILUTFunction", "LINEAR").upper()
    elem = ds["WindowCenter"]
    center = elem.value[index] if elem.VM > 1 else elem.value
    elem = ds["WindowWidth"]
    width = elem.value[index] if elem.VM > 1 else elem.value
    y_min, y_max = _output_range(ds)
    y_range = y_max - y_min
    a = arr.astype(np.float64)
    f64 = np.float64

    if voi_func in ["LINEAR", "LINEAR_EXACT"]:
        if voi_func == "LINEAR":
            if width < 1:
                raise ValueError(
                    "The (0028,1051) Window Width must be greater than or equal to 1 for a 'LINEAR' "
                    "windowing operation"
                )
            center -= 0.5
            width -= 1
        elif width <= 0:
            raise ValueError(
                "The (0028,1051) Window Width must be greater than 0 for a 'LINEAR_EXACT' windowing operation"
            )
        below = a <= f64(center - width / 2)
        above = a > f64(center + width / 2)
        with np.errstate(divide="ignore", invalid="ignore"):  # width 0: every value is below or above
            linear = ((a - f64(center)) / f64(width) + 0.5) * f64(y_range) + f64(y_min)
        return xp.where(below, f64(y_min), xp.where(above, f64(y_max), linear))
    if voi_func == "SIGMOID":
        if width <= 0:
            raise ValueError(
                "The (0028,1051) Window Width must be greater than 0 for a 'SIGMOID' windowing operation"
            )
        with np.errstate(over="ignore"):
            return xp.divide(f64(y_range), 1 + xp.exp(-4 * (a - f64(center)) / f64(width))) + f64(y_min)
    raise ValueError(f"Unsupported (0028,1056) VOI LUT Function value '{voi_func}'")


def _apply_voi_lut(arr: Array, ds: Dataset, index: int = 0, prefer_lut: bool = True, *, xp=np) -> Array:
    valid_voi = False
    if ds.get("VOILUTSequence"):
        first = ds.VOILUTSequence[0]
        valid_voi = None not in [first.get("LUTDescriptor", None), first.get("LUTData", None)]
    valid_windowing = None not in [ds.get("WindowCenter", None), ds.get("WindowWidth", None)]
    if valid_voi and (prefer_lut or not valid_windowing):
        return _apply_voi(arr, ds, index, xp=xp)
    if valid_windowing:
        return _apply_windowing(arr, ds, index, xp=xp)
    return arr


def apply_voi(arr: Array, ds: Dataset, index: int = 0) -> Array:
    """The VOI LUT Sequence item `index` of `ds` applied to `arr` (pydicom's function)."""
    xp, index = _xp(arr), _index(index)
    if xp is np:
        return _pd.apply_voi(arr, ds, index)
    with arr.device:  # tables and kernels go to the array's device
        return _apply_voi(arr, ds, index, xp=xp)


def apply_windowing(arr: Array, ds: Dataset, index: int = 0) -> Array:
    """Window `index` of `ds` (LINEAR, LINEAR_EXACT or SIGMOID) applied to `arr` (pydicom's function)."""
    xp, index = _xp(arr), _index(index)
    if xp is np:
        return _pd.apply_windowing(arr, ds, index)
    with arr.device:  # tables and kernels go to the array's device
        return _apply_windowing(arr, ds, index, xp=xp)


def apply_voi_lut(arr: Array, ds: Dataset, index: int = 0, prefer_lut: bool = True) -> Array:
    """The VOI LUT or window of `ds` applied to `arr`; `prefer_lut` picks when both exist (pydicom's
    function)."""
    xp, index = _xp(arr), _index(index)
    if xp is np:
        return _pd.apply_voi_lut(arr, ds, index, prefer_lut)
    with arr.device:  # tables and kernels go to the array's device
        return _apply_voi_lut(arr, ds, index, prefer_lut, xp=xp)


# ---------------------------------------------------------------------------------------------------
# Presentation LUT


def _presentation_table(item: Dataset) -> tuple[np.ndarray, int]:
    nr_entries, _first_map, bit_depth = item.LUTDescriptor
    nr_entries = 2**16 if nr_entries == 0 else nr_entries
    itemsize = 8 if bit_depth <= 8 else 16
    elem = item["LUTData"]
    if elem.VR == VR.US:
        table = np.asarray(elem.value, dtype="u2")
    else:
        table = np.frombuffer(item.LUTData[: nr_entries * (itemsize // 8)], dtype=f"uint{itemsize}")
    shift = itemsize - bit_depth
    if shift:
        table = (table.copy() << shift) >> shift  # unused high bits cleared, in the table's own dtype
    return table, nr_entries


def _apply_presentation_lut(arr: Array, ds: Dataset, *, xp=np) -> Array:
    if "PresentationLUTSequence" in ds:
        table, nr_entries = _presentation_table(ds.PresentationLUTSequence[0])
        a = arr.astype(np.float32)
        a -= a.min()
        a /= a.max() / np.float32(nr_entries - 1)
        return _lookup(xp, table, _cast_index(xp, a, np.uint16), nr_entries - 1)
    if "PresentationLUTShape" in ds:
        transform = ds.PresentationLUTShape.strip().upper()
        if transform not in ("IDENTITY", "INVERSE"):
            raise NotImplementedError(
                f"A (2050,0020) 'Presentation LUT Shape' value of '{ds.PresentationLUTShape}' is not supported"
            )
        if transform == "INVERSE":
            arr = arr.max() - arr
    return arr


def apply_presentation_lut(arr: Array, ds: Dataset) -> Array:
    """The Presentation LUT Sequence or Presentation LUT Shape of `ds` applied to `arr` (pydicom's
    function)."""
    xp = _xp(arr)
    if xp is np:
        return _pd.apply_presentation_lut(arr, ds)
    with arr.device:  # tables and kernels go to the array's device
        return _apply_presentation_lut(arr, ds, xp=xp)


# ---------------------------------------------------------------------------------------------------
# Palette colour LUT

_PALETTE_FILES = {  # PS3.6 Annex B well-known palettes
    "1.2.840.10008.1.5.1": "hotiron.dcm",
    "1.2.840.10008.1.5.2": "pet.dcm",
    "1.2.840.10008.1.5.3": "hotmetalblue.dcm",
    "1.2.840.10008.1.5.4": "pet20step.dcm",
    "1.2.840.10008.1.5.5": "spring.dcm",
    "1.2.840.10008.1.5.6": "summer.dcm",
    "1.2.840.10008.1.5.7": "fall.dcm",
    "1.2.840.10008.1.5.8": "winter.dcm",
}
# By name, as pydicom 3.0.2 resolves them: FALL and WINTER point at each other's UID (kept for equality).
_PALETTE_NAMES = {
    "HOT_IRON": "1.2.840.10008.1.5.1",
    "PET": "1.2.840.10008.1.5.2",
    "HOT_METAL_BLUE": "1.2.840.10008.1.5.3",
    "PET_20_STEP": "1.2.840.10008.1.5.4",
    "SPRING": "1.2.840.10008.1.5.5",
    "SUMMER": "1.2.840.10008.1.5.6",
    "FALL": "1.2.840.10008.1.5.8",
    "WINTER": "1.2.840.10008.1.5.7",
}


@lru_cache(maxsize=None)
def _palette_dataset(uid: str) -> Dataset:
    try:
        fname = _PALETTE_FILES[uid]
    except KeyError:
        raise ValueError(f"Unknown palette '{uid}'") from None
    return dcmread(get_palette_files(fname)[0])


def _expand_segmented(data: tuple[int, ...], little: bool, eight_bit: bool,
                      max_segments: int | None = None, previous: int | None = None) -> list[int]:
    """A Segmented Palette Color LUT (PS3.3 C.7.9.2) expanded to its entries, as pydicom expands it.
    An indirect segment expands `max_segments` segments from a word offset, continuing from `previous`."""
    out: list[int] = []
    pos, done = 0, 0
    while pos + 1 < len(data):  # a trailing pad word is not a segment
        opcode, length = data[pos], data[pos + 1]
        pos += 2
        if opcode == 0:  # discrete
            out += data[pos : pos + length]
            pos += length
        elif opcode == 1:  # linear, from the last entry so far
            if out:
                y0 = out[-1]
            elif previous:
                y0 = previous
            else:
                raise ValueError(
                    "Error expanding a segmented palette color lookup table: the first segment cannot be a "
                    "linear segment"
                )
            y1 = data[pos]
            pos += 1
            if y0 == y1:
                out += [y1] * length
            else:
                step = (y1 - y0) / length
                out += [int(v) for v in np.around(np.linspace(y0 + step, y1, length))]
        elif opcode == 2:  # indirect
            if not out:
                raise ValueError(
                    "Error expanding a segmented palette color lookup table: the first segment cannot be an "
                    "indirect segment"
                )
            if eight_bit:
                b = [data[pos + i] for i in ((3, 2, 1, 0) if little else (2, 3, 0, 1))]
                offset = (b[0] << 8 | b[1]) << 16 | (b[2] << 8 | b[3])
                pos += 4
            else:
                offset = data[pos + 1] << 16 | data[pos]
                pos += 2
            out += _expand_segmented(data[offset:], little, eight_bit, length, out[-1])
        else:
            raise ValueError(f"Error expanding a segmented palette lookup table: unknown segment type '{opcode}'")
        done += 1
        if done == max_segments:
            break
    return out


def _palette_table(ds: Dataset) -> tuple[np.ndarray, int, int]:
    """(entries x channels table, first mapped value, number of entries) of the dataset's palette."""
    if getattr(ds, "PixelPresentation", None) in ["MIXED", "COLOR"]:
        raise ValueError(
            "Use of this function with the Supplemental Palette Color Lookup Table Module is not currently "
            "supported"
        )
    if "RedPaletteColorLookupTableDescriptor" not in ds:
        raise ValueError("No suitable Palette Color Lookup Table Module found")
    desc = ds.RedPaletteColorLookupTableDescriptor
    nr_entries, first_map, nominal_depth = desc[0] or 2**16, desc[1], desc[2]
    dtype = np.dtype(f"uint{nominal_depth:.0f}")
    luts: list[np.ndarray] = []
    if "RedPaletteColorLookupTableData" in ds:
        channels = [ds.RedPaletteColorLookupTableData, ds.GreenPaletteColorLookupTableData,
                    ds.BluePaletteColorLookupTableData, getattr(ds, "AlphaPaletteColorLookupTableData", None)]
        depth = len(channels[0]) / nr_entries * 8
        dtype = np.dtype(f"uint{depth:.0f}")
        luts = [np.frombuffer(c, dtype=dtype) for c in channels if c]
    elif "SegmentedRedPaletteColorLookupTableData" in ds:
        channels = [ds.SegmentedRedPaletteColorLookupTableData, ds.SegmentedGreenPaletteColorLookupTableData,
                    ds.SegmentedBluePaletteColorLookupTableData,
                    getattr(ds, "SegmentedAlphaPaletteColorLookupTableData", None)]
        little = _is_little_endian(ds)
        nbytes = nominal_depth // 8
        depth = nominal_depth
        for seg in channels:
            if seg:
                words = struct.unpack(f"{'><'[little]}{len(seg) // nbytes}{'B' if nbytes == 1 else 'H'}", seg)
                luts.append(np.asarray(_expand_segmented(words, little, nbytes == 1), dtype=dtype))
    else:
        raise ValueError("No suitable Palette Color Lookup Table Module found")
    if depth not in [8, 16]:
        raise ValueError(f"The bit depth of the LUT data '{depth:.1f}' is invalid (only 8 or 16 bits per entry allowed)")
    if any(len(lut) != len(luts[0]) for lut in luts[1:]):
        raise ValueError("LUT data must be the same length")
    return np.stack(luts, axis=-1), first_map, nr_entries


def _apply_color_lut(arr: Array, ds: Dataset | None = None, palette: str | UID | None = None, *, xp=np) -> Array:
    if not ds and not palette:
        raise ValueError("Either 'ds' or 'palette' is required")
    if palette:
        uid = palette
        if not UID(palette).is_valid:
            try:
                uid = _PALETTE_NAMES[palette]
            except KeyError:
                raise ValueError(f"Unknown palette '{palette}'") from None
        ds = _palette_dataset(str(uid))
    table, first_map, nr_entries = _palette_table(ds)
    idx = _lut_index(xp, arr, first_map, nr_entries, table.dtype, int32_offset=True)
    return _lookup(xp, table, idx, nr_entries - 1)


def apply_color_lut(arr: Array, ds: Dataset | None = None, palette: str | UID | None = None) -> Array:
    """RGB(A) from the palette of `ds` (normal, segmented, 8- or 16-bit) or a well-known `palette`
    (pydicom's function)."""
    xp = _xp(arr)
    if xp is np:
        return _pd.apply_color_lut(arr, ds, palette)
    with arr.device:  # tables and kernels go to the array's device
        return _apply_color_lut(arr, ds, palette, xp=xp)


# ---------------------------------------------------------------------------------------------------
# Colour space

# pydicom's RGB -> YBR_FULL matrix, float32 as it builds it; held as float64 for the exact products.
_RGB_TO_YBR = np.asarray(
    [[+0.299, -0.299 / 1.772, +0.701 / 1.402],
     [+0.587, -0.587 / 1.772, -0.587 / 1.402],
     [+0.114, +0.886 / 1.772, -0.114 / 1.402]],
    dtype=np.float32,
).astype(np.float64)


def _rgb_to_ybr(xp, arr: Array) -> Array:
    """pydicom's ``_convert_RGB_to_YBR_FULL`` (float32 matmul, + 0.5, floor, clip), bit for bit.

    NumPy sends images more than one column wide to BLAS sgemm, which accumulates each output sample as
    fma(b, M2, fma(g, M1, r * M0)) (one rounding a step), and one-column images to gemv, which rounds every
    product and sum. With 8-bit samples every product and partial sum is exact in float64 (at most 37
    significant bits), so a float64 operation followed by a cast to float32 is exactly one float32
    rounding: both orders are reproduced without an FMA. Checked on all 2**24 triples in both layouts.
    """
    if arr.shape[-1:] != (3,):
        raise ValueError(f"matmul: the last dimension of shape {arr.shape} must be 3 for RGB -> YBR_FULL")
    m = xp.asarray(_RGB_TO_YBR)
    a = arr.astype(np.float64)
    r, g, b = a[..., 0:1], a[..., 1:2], a[..., 2:3]
    f32 = np.float32
    acc = (r * m[0]).astype(f32)
    if arr.ndim > 1 and arr.shape[-2] > 1:  # sgemm
        acc = (g * m[1] + acc).astype(f32)
        acc = (b * m[2] + acc).astype(f32)
    else:  # gemv
        acc = (acc + (g * m[1]).astype(f32)).astype(f32)
        acc = (acc + (b * m[2]).astype(f32)).astype(f32)
    acc += xp.asarray([0.5, 128.5, 128.5], dtype=f32)
    acc = xp.clip(xp.floor(acc), f32(0), f32(255))
    return acc.astype(arr.dtype)


def _ybr_launcher_for(xp):
    if xp is np:
        raise TypeError("YBR_FULL -> RGB through the colour kernel needs a launcher for NumPy arrays")
    from .cuda.colour import cupy_ybr_launcher

    return cupy_ybr_launcher


def _convert_color_space(
    arr: Array, current: str, desired: str, per_frame: bool = False, *, xp=np, ybr_launcher: Callable | None = None
) -> Array:
    """`ybr_launcher` runs the colour kernel (the CuPy launcher by default; the tests pass the host build's)."""
    from .cuda.colour import ybr_to_rgb

    if arr.dtype != np.dtype("u1"):
        raise ValueError(
            f"Invalid ndarray.dtype '{arr.dtype}' for color space conversion, must be 'uint8' or an equivalent"
        )

    def no_change(a: Array) -> Array:
        return a

    def to_rgb(a: Array) -> Array:
        return ybr_to_rgb(xp.array(a, copy=True, order="C"), launcher=ybr_launcher or _ybr_launcher_for(xp), xp=xp)

    def to_ybr(a: Array) -> Array:
        return _rgb_to_ybr(xp, a)

    converters: dict[str, dict[str, Callable[[Array], Array]]] = {
        "YBR_FULL_422": {"YBR_FULL_422": no_change, "YBR_FULL": no_change, "RGB": to_rgb},
        "YBR_FULL": {"YBR_FULL": no_change, "YBR_FULL_422": no_change, "RGB": to_rgb},
        "RGB": {"RGB": no_change, "YBR_FULL": to_ybr, "YBR_FULL_422": to_ybr},
    }
    try:
        converter = converters[current][desired]
    except KeyError:
        raise NotImplementedError(f"Conversion from {current} to {desired} is not supported.") from None
    if len(arr.shape) == 4 and per_frame:
        for i in range(arr.shape[0]):
            arr[i] = converter(arr[i])
        return arr
    return converter(arr)


def convert_color_space(arr: Array, current: str, desired: str, per_frame: bool = False) -> Array:
    """`arr` (uint8, ``(..., 3)``) converted between RGB, YBR_FULL and YBR_FULL_422 (pydicom's function)."""
    xp = _xp(arr)
    if xp is np:
        if current in ("YBR_FULL", "YBR_FULL_422") and desired == "RGB":
            from .ybr import to_rgb

            done = to_rgb(arr)  # the same values from lookup tables (8-bit samples two or more pixels wide)
            if done is not None:
                return done
        return _pd.convert_color_space(arr, current, desired, per_frame)
    with arr.device:  # tables and kernels go to the array's device
        return _convert_color_space(arr, current, desired, per_frame, xp=xp)
