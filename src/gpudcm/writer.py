"""The copy-back writer: a NumPy or CuPy array -> the dataset's pixel data (native or RLE Lossless).

:func:`set_pixel_data` is pydicom's ``Dataset.set_pixel_data`` (which it calls for 8/16-bit integer
data) widened to what gpudcm decodes: 32/64-bit integers, Float/Double Float Pixel Data, RLE Lossless
output, big endian source datasets, float arrays requantized to integers with a new Rescale
Slope/Intercept, and Pixel Spacing after a resize. Everything is checked before the dataset changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.multival import MultiValue
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.pixels.encoders.base import ENCODING_PROFILES
from pydicom.pixels.utils import set_pixel_data as _pydicom_set_pixel_data
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from .encoders import COMPRESSED_SYNTAXES, Encoded, encode_frames, plan
from .errors import InvalidPixelData, UnsupportedTransferSyntax
from .host import to_host
from .pydicom_compat import forget_pixel_array
from .spec import _SAMPLES_FOR_PI

__all__ = ["Requantized", "rescale_to_integers", "set_pixel_data"]

NATIVE_SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
WRITABLE_SYNTAXES = (*NATIVE_SYNTAXES, RLELossless, *COMPRESSED_SYNTAXES)
BOT_LIMIT = 2**32 - 1  # offsets beyond this need the Extended Offset Table (PS3.5 A.4)

# Samples per pixel for the Photometric Interpretations pydicom's set_pixel_data accepts.
_SAMPLES = {pi: _SAMPLES_FOR_PI[pi]
            for pi in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422")}
_FLOAT_KEYWORDS = {4: ("FloatPixelData", "OF"), 8: ("DoubleFloatPixelData", "OD")}
_FLOAT_KEYWORDS_ALL = ("FloatPixelData", "DoubleFloatPixelData")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Stored-value statistics: no longer true for new pixel data.
_PIXEL_STATISTICS = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
)
_PADDING = ("PixelPaddingValue", "PixelPaddingRangeLimit")
_PALETTE = (
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "PaletteColorLookupTableUID",
)
# SOP Classes whose IOD holds the (Double) Floating Point Image Pixel module (PS3.3 C.7.6.24/25, A.75)
FLOAT_PIXEL_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.30": "Parametric Map Storage"}
_RESCALE = ("RescaleSlope", "RescaleIntercept", "RescaleType", "ModalityLUTSequence")
_VALUES = ("stored", "modality")
_SWAP_ITEMSIZE = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}
_RLE_MAX_SEGMENTS = 15  # PS3.5 Annex G.5


class Requantized(NamedTuple):
    """Integers that reproduce the float input as ``slope * stored + intercept``, to within `max_error`."""

    stored: np.ndarray
    slope: float
    intercept: float
    max_error: float


def _ds_value(value: float) -> float:
    """`value` as a Decimal String (16 characters) gives it back."""
    return float(format_number_as_ds(float(value)))


def rescale_to_integers(values: np.ndarray, bits_stored: int) -> Requantized:
    """Integers of `bits_stored` bits (1 to 32; signed when the data has negative values) and a
    Rescale Slope/Intercept with ``|slope * stored + intercept - values| <= max_error``.

    Integer-valued data that fits in `bits_stored` bits after an integer offset is kept exactly:
    slope 1, ``max_error`` 0. Otherwise the step is ``slope = (max - min) / (2**bits_stored - 1)``,
    the range is centred, and ``max_error = slope / 2 + 8 * eps * max(|values|, |intercept|)`` (half
    a step plus float64 rounding of the reader's ``slope * stored + intercept``). Slope and intercept
    are rounded to 16-character DS values before the stored integers are computed from them, so the
    bound holds for what a reader gets back. A DS keeps 13 significant digits for magnitudes 1 to
    1e13 and 10 elsewhere, so the intercept's rounding can exceed half a step only when the range is
    tiny next to the offset: ``(max - min) / max|value|`` below ``2**bits_stored * 1e-13`` (``* 1e-9``
    outside 1 to 1e13). Such data raises :class:`InvalidPixelData` (Float Pixel Data can hold it).
    """
    values = np.asarray(values)
    if values.dtype.kind not in "fiub":
        raise InvalidPixelData(f"requantize: cannot store an array of dtype {values.dtype} as integers")
    if not 1 <= bits_stored <= 32:
        raise InvalidPixelData(f"requantize: bits_stored is {bits_stored}; it must be 1 to 32")
    if values.size == 0:
        raise InvalidPixelData("requantize: the array is empty")
    data = values.astype(np.float64, copy=False)
    vmin, vmax = float(data.min()), float(data.max())
    if not (math.isfinite(vmin) and math.isfinite(vmax)):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise InvalidPixelData(
            f"requantize: the array holds {bad} NaN or infinite value(s); only finite values can be stored as integers"
        )
    signed = vmin < 0
    if signed and bits_stored == 1:
        raise InvalidPixelData(f"requantize: the data has negative values (min {vmin!r}); signed integers need bits_stored >= 2")
    lo, hi = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    dtype = np.dtype(f"{'iu'[not signed]}{1 if bits_stored <= 8 else 2 if bits_stored <= 16 else 4}")

    span = vmax - vmin
    if span <= hi - lo and np.array_equal(data, np.rint(data)):
        # integer-valued and narrow enough: exact, with an integer offset only where it does not fit
        intercept = 0.0 if lo <= vmin and vmax <= hi else vmin - lo
        if _ds_value(intercept) == intercept:
            return Requantized((data - intercept).astype(dtype), 1.0, intercept, 0.0)

    if span == 0:
        slope, intercept = 1.0, _ds_value(vmin)
        stored = np.zeros(data.shape, dtype)
    else:
        slope = _ds_value(span / (hi - lo))
        intercept = _ds_value((vmin + vmax) / 2 - slope * (lo + hi) / 2)
        stored = np.clip(np.rint((data - intercept) / slope), lo, hi).astype(dtype)
    bound = slope / 2 + 8 * np.finfo(np.float64).eps * max(abs(vmin), abs(vmax), abs(intercept))
    error = float(np.max(np.abs(stored.astype(np.float64) * slope + intercept - data)))
    if error > bound:
        raise InvalidPixelData(
            f"requantize: values in [{vmin!r}, {vmax!r}] cannot be stored in {bits_stored} bits within half a "
            f"step ({slope / 2!r}): Rescale Intercept {intercept!r} rounded to a 16-character decimal string "
            f"shifts them by more than that (error {error!r}); float_pixel_data=True keeps them as floats"
        )
    return Requantized(stored, slope, intercept, bound)


def _target_syntax(ds: Dataset, transfer_syntax: str | None) -> UID:
    if transfer_syntax is None:
        meta = getattr(ds, "file_meta", None)
        current = meta.get("TransferSyntaxUID") if meta is not None else None
        return UID(current) if current in NATIVE_SYNTAXES else ExplicitVRLittleEndian
    uid = UID(str(transfer_syntax))
    if uid not in WRITABLE_SYNTAXES:
        names = ", ".join(f"{u.name} ({u})" for u in WRITABLE_SYNTAXES)
        raise UnsupportedTransferSyntax(f"set_pixel_data cannot write '{uid.name}' ({uid}); it writes {names}")
    return uid


def _frame_layout(shape: tuple[int, ...], photometric_interpretation: str) -> tuple[int, int, int, int]:
    """(frames, rows, columns, samples) from the array shape, checked the way pydicom checks it."""
    if photometric_interpretation not in _SAMPLES:
        raise InvalidPixelData(
            f"Photometric Interpretation '{photometric_interpretation}' is not supported; use one of "
            f"{', '.join(_SAMPLES)}"
        )
    samples = _SAMPLES[photometric_interpretation]
    ndim = len(shape)
    if samples == 1:
        if ndim not in (2, 3):
            raise InvalidPixelData(
                f"'{photometric_interpretation}' data must be shaped (rows, columns) or (frames, rows, columns), "
                f"not {shape}"
            )
        frames, rows, columns = (1, *shape) if ndim == 2 else shape
    else:
        if ndim not in (3, 4) or shape[-1] != samples:
            raise InvalidPixelData(
                f"'{photometric_interpretation}' data must be shaped (rows, columns, 3) or "
                f"(frames, rows, columns, 3), not {shape}"
            )
        frames, rows, columns = (1, *shape[:2]) if ndim == 3 else shape[:3]
    for name, n, top in (("Rows", rows, 0xFFFF), ("Columns", columns, 0xFFFF), ("frames", frames, 0x7FFFFFFF)):
        if not 1 <= n <= top:
            raise InvalidPixelData(f"the array shape {shape} gives {n} {name}; it must be 1 to {top}")
    return frames, rows, columns, samples


def _check_range(arr: np.ndarray, bits_stored: int) -> None:
    bits = arr.dtype.itemsize * 8
    if not 1 <= bits_stored <= bits:
        raise InvalidPixelData(f"bits_stored is {bits_stored}; for a {arr.dtype} array it must be 1 to {bits}")
    signed = arr.dtype.kind == "i"
    lo, hi = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
    amin, amax = int(arr.min()), int(arr.max())
    if amin < lo or amax > hi:
        raise InvalidPixelData(
            f"the array's values span [{amin}, {amax}] but Bits Stored {bits_stored} "
            f"({'signed' if signed else 'unsigned'} {arr.dtype}) allows [{lo}, {hi}]"
        )


def _check_rle(arr: np.ndarray, photometric_interpretation: str, bits_stored: int, samples: int) -> bool:
    """Check RLE Lossless can hold the data; return whether pydicom's profile check applies.

    8/16-bit data follows PS3.5 Table 8.2.2-1 (pydicom's profile). 32/64-bit data is outside that
    table but within Annex G's 15 segments; it gets the same rules as the table's 16-bit rows
    (signed only for MONOCHROME, no YBR_FULL)."""
    bits_allocated = arr.dtype.itemsize * 8
    pixel_rep = int(arr.dtype.kind == "i")
    if photometric_interpretation == "YBR_FULL_422":
        raise InvalidPixelData(
            "RLE Lossless stores every chroma sample, so YBR_FULL_422 cannot be RLE encoded; "
            "pass photometric_interpretation='YBR_FULL' (the array already holds full-resolution chroma)"
        )
    segments = arr.dtype.itemsize * samples
    if segments > _RLE_MAX_SEGMENTS:
        raise InvalidPixelData(
            f"RLE Lossless allows at most {_RLE_MAX_SEGMENTS} segments per frame; {samples} sample(s) of "
            f"{bits_allocated} bits need {segments}"
        )
    check_bits = bits_allocated if bits_allocated <= 16 else 16
    for pi, spp, reps, allocated, _stored in ENCODING_PROFILES[RLELossless]:
        if pi == photometric_interpretation and spp == samples and pixel_rep in reps and check_bits in allocated:
            return bits_allocated <= 16
    raise InvalidPixelData(
        f"RLE Lossless (PS3.5 Table 8.2.2-1) does not allow {photometric_interpretation} with "
        f"{'signed' if pixel_rep else 'unsigned'} {bits_allocated}-bit data (Bits Stored {bits_stored})"
    )


def _encode_rle(arr: np.ndarray, options: dict[str, Any], validate: bool) -> list[bytes]:
    try:
        return list(RLELosslessEncoder.iter_encode(arr, validate=validate, **options))
    except (ValueError, RuntimeError) as exc:
        raise InvalidPixelData(f"RLE Lossless encoding failed: {exc}") from exc


def _parse_all(ds: Dataset) -> None:
    """Convert every raw element now, so ambiguous VRs (US or SS) resolve against the original
    Pixel Representation and big endian values are read as big endian."""
    for _ in ds.iterall():
        pass


def _datasets(ds: Dataset):
    yield ds
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _datasets(item)


def _to_little_endian(ds: Dataset) -> None:
    """Re-express a dataset read as big endian so that it is written as little endian: pydicom
    re-encodes parsed numbers itself but leaves OW/OL/OF/OD/OV bytes as read (its dcmwrite docs), so
    they are byte swapped here. UN values have no known structure and stay as they are."""
    for item in _datasets(ds):
        for elem in item:
            size = _SWAP_ITEMSIZE.get(elem.VR)
            if size and elem.keyword not in _PIXEL_KEYWORDS and isinstance(elem.value, (bytes, bytearray)):
                usable = len(elem.value) - len(elem.value) % size
                data = np.frombuffer(elem.value, f">u{size}", count=usable // size).astype(f"<u{size}")
                elem.value = data.tobytes() + bytes(elem.value[usable:])
        if item.original_encoding[1] is False:
            item.set_original_encoding(item.original_encoding[0], True)


def _is_big_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if tsyntax and UID(tsyntax).is_transfer_syntax and not UID(tsyntax).is_little_endian:
        return True
    return ds.original_encoding[1] is False


def _set_module(ds: Dataset, arr: np.ndarray, pi: str, bits_stored: int, layout: tuple[int, int, int, int]) -> None:
    """pydicom's set_pixel_data for any integer itemsize (it accepts 8/16 bits only): the same
    elements added, changed and removed, the same YBR_FULL_422 subsampling and VR."""
    frames, rows, columns, samples = layout
    ndim_frames = arr.ndim == (3 if samples == 1 else 4)
    changes: dict[str, Any] = {
        "NumberOfFrames": frames if ndim_frames else None,
        "Rows": rows,
        "Columns": columns,
        "SamplesPerPixel": samples,
        "PlanarConfiguration": 0 if samples > 1 else None,
        "PhotometricInterpretation": pi,
        "BitsAllocated": arr.dtype.itemsize * 8,
        "BitsStored": bits_stored,
        "HighBit": bits_stored - 1,
        "PixelRepresentation": int(arr.dtype.kind == "i"),
    }
    for keyword, value in changes.items():
        if value is not None:
            setattr(ds, keyword, value)
        elif keyword in ds:
            del ds[keyword]
    if pi == "YBR_FULL_422":
        flat = arr.ravel()
        out = np.empty(flat.size // 3 * 2, dtype=arr.dtype)
        out[0::4], out[1::4], out[2::4], out[3::4] = flat[0::6], flat[3::6], flat[1::6], flat[2::6]
        arr = out
    data = arr.tobytes()
    ds.PixelData = data + b"\x00" * (len(data) % 2)
    elem = ds["PixelData"]
    elem.VR = "OB" if arr.dtype.itemsize == 1 else "OW"
    elem.is_undefined_length = False
    forget_pixel_array(ds)


def _set_float_module(ds: Dataset, arr: np.ndarray, layout: tuple[int, int, int, int]) -> None:
    """Floating Point Image Pixel module: no Bits Stored, High Bit or Pixel Representation."""
    frames, rows, columns, _ = layout
    keyword, vr = _FLOAT_KEYWORDS[arr.dtype.itemsize]
    for kw in ("BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", *_FLOAT_KEYWORDS_ALL):
        if kw in ds:
            del ds[kw]
    if arr.ndim == 3:
        ds.NumberOfFrames = frames
    elif "NumberOfFrames" in ds:
        del ds.NumberOfFrames
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.add_new(0x7FE00008 if keyword == "FloatPixelData" else 0x7FE00009, vr, arr.tobytes())
    forget_pixel_array(ds)


def _spacing_sites(ds: Dataset) -> list[tuple[Dataset, str]]:
    """Where pixel spacing lives, the primary first: Pixel Spacing (top level, then the shared and
    per-frame Pixel Measures of enhanced objects), then Imager Pixel Spacing."""
    sites: list[tuple[Dataset, str]] = [(ds, "PixelSpacing")]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group) or []:
            for measures in item.get("PixelMeasuresSequence") or []:
                sites.append((measures, "PixelSpacing"))
    sites.append((ds, "ImagerPixelSpacing"))
    found = []
    for item, keyword in sites:
        try:
            value = [float(v) for v in item.get(keyword) or []]
        except (TypeError, ValueError):
            continue
        if len(value) == 2 and all(math.isfinite(v) and v > 0 for v in value):
            found.append((item, keyword))
    return found


def _check_spacing(pixel_spacing: Sequence[float]) -> tuple[float, float]:
    try:
        row, col = (float(v) for v in pixel_spacing)
    except (TypeError, ValueError) as exc:
        raise InvalidPixelData(f"pixel_spacing must be two numbers (row, column), not {pixel_spacing!r}") from exc
    if not all(math.isfinite(v) and v > 0 for v in (row, col)):
        raise InvalidPixelData(f"pixel_spacing must be positive and finite, not {pixel_spacing!r}")
    return row, col


def _set_spacing(ds: Dataset, spacing: tuple[float, float]) -> None:
    """The primary spacing becomes `spacing`; every other one present is scaled by the same factor
    (Imager Pixel Spacing may differ from Pixel Spacing by the magnification)."""
    sites = _spacing_sites(ds)
    if not sites:
        ds.PixelSpacing = [format_number_as_ds(v) for v in spacing]
        return
    primary, keyword = sites[0]
    old = [float(v) for v in primary.get(keyword)]
    factors = [new / was for new, was in zip(spacing, old)]
    for item, kw in sites:
        if item is primary and kw == keyword:
            values = spacing
        else:
            values = [float(v) * f for v, f in zip(item.get(kw), factors)]
        setattr(item, kw, [format_number_as_ds(v) for v in values])


def _set_rescale(ds: Dataset, slope: float, intercept: float) -> None:
    """New Rescale Slope/Intercept at the top level (what pydicom reads) and in the Pixel Value
    Transformation functional groups enhanced objects use. A Modality LUT would override them and
    Real World Value Mappings are keyed on the old stored values, so those go."""
    values = {"RescaleSlope": format_number_as_ds(slope), "RescaleIntercept": format_number_as_ds(intercept)}
    for kw, value in values.items():
        setattr(ds, kw, value)
    for kw in ("ModalityLUTSequence", "RealWorldValueMappingSequence"):
        if kw in ds:
            del ds[kw]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group) or []:
            if "RealWorldValueMappingSequence" in item:
                del item.RealWorldValueMappingSequence
            for transform in item.get("PixelValueTransformationSequence") or []:
                for kw, value in values.items():
                    setattr(transform, kw, value)


def _drop_stale(
    ds: Dataset, *, old_pi: str | None, old_pixel_rep: int | None, requantized: bool, bits_stored: int | None, signed: bool
) -> None:
    """Remove what no longer describes the new pixel data (`bits_stored` None: float pixel data)."""
    for kw in (*_PIXEL_STATISTICS, "ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if kw in ds:
            del ds[kw]
    for kw in _PADDING:
        if kw not in ds:
            continue
        value = ds[kw].value
        if bits_stored is None or requantized or old_pixel_rep != int(signed) or not isinstance(value, int):
            del ds[kw]
            continue
        lo, hi = (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1) if signed else (0, (1 << bits_stored) - 1)
        if not lo <= value <= hi:
            del ds[kw]
    if old_pi == "PALETTE COLOR" and ds.PhotometricInterpretation != "PALETTE COLOR":
        for kw in _PALETTE:
            if kw in ds:
                del ds[kw]


def set_pixel_data(
    ds: Dataset,
    arr: Any,
    photometric_interpretation: str,
    bits_stored: int,
    *,
    transfer_syntax: str | None = None,
    generate_instance_uid: bool = True,
    requantize: bool = False,
    float_pixel_data: bool = False,
    pixel_spacing: Sequence[float] | None = None,
    values: str | None = None,
    quality: float | None = None,
    mct: bool = True,
    device: str = "auto",
    workers: int | None = None,
    offset_table: str = "auto",
) -> Dataset:
    """Replace the pixel data of `ds` (in place; returned too) with `arr` (NumPy, or CuPy: copied to
    the host once) and set the Image Pixel module to match, as pydicom's ``set_pixel_data`` does.
    Everything is checked before `ds` changes.

    `arr` is shaped (rows, cols), (frames, rows, cols), (rows, cols, 3) or (frames, rows, cols, 3).
    Integer dtypes of 8, 16, 32 or 64 bits set Bits Allocated and Pixel Representation; bool is
    written as uint8. Values outside `bits_stored` raise :class:`InvalidPixelData` naming the range
    found and allowed. 1-bit data is written as pydicom does: uint8, Bits Allocated 8, Bits Stored 1.

    `transfer_syntax`: None keeps the dataset's native little endian syntax (explicit, implicit or
    deflated) and otherwise writes Explicit VR Little Endian (big endian datasets are converted);
    or one of those, or RLE Lossless: 8/16-bit per PS3.5 Table 8.2.2-1 (pydicom's encoder profile);
    32-bit and single-sample 64-bit beyond that table, up to RLE's 15 segments; not YBR_FULL_422
    (RLE stores every chroma sample: write YBR_FULL).

    Float arrays need one of:

    - ``requantize=True``: integers of `bits_stored` bits, signed when the data has negative values,
      with a new Rescale Slope/Intercept such that ``|slope * stored + intercept - arr| <= slope / 2``
      (plus float64 rounding; exact for integer-valued data that fits), see
      :func:`rescale_to_integers`. Integer arrays are written unchanged.
    - ``float_pixel_data=True``: Float Pixel Data (float32) or Double Float Pixel Data (float64);
      MONOCHROME2, `bits_stored` 32 or 64, native syntaxes only.

    `pixel_spacing` (row, col) after a resize: the primary spacing (Pixel Spacing at the top level or
    in the enhanced Pixel Measures, else Imager Pixel Spacing) becomes this value and every other one
    present is scaled by the same factor (Imager Pixel Spacing differs from Pixel Spacing by the
    magnification); Pixel Spacing is added when none is present. Rows/Columns always follow `arr`.

    `values` says what `arr` holds, so no modality tag is left stale:

    - ``"stored"`` (the default for integer arrays): stored values; Rescale Slope/Intercept and the
      Modality LUT are kept, a reader applies them as before.
    - ``"modality"`` (the default when a float array is requantized or written as float): modality values
      (HU, say). Integer arrays get Rescale Slope 1 / Intercept 0 (the Modality LUT goes); with
      ``requantize=True`` a new slope/intercept is computed.

    Float/Double Float Pixel Data has no rescale: Rescale Slope/Intercept/Type and the Modality LUT are
    removed (top level and functional groups), and the SOP Class must be one whose IOD holds float
    pixel data (Parametric Map Storage); ``values="stored"`` is refused there unless the dataset's
    rescale is the identity.

    `generate_instance_uid` gives a new SOP Instance UID (and Media Storage SOP Instance UID).

    Compressed syntaxes (:mod:`gpudcm.encoders`), one fragment per frame: HTJ2K Lossless, HTJ2K Lossless
    RPCL (RPCL progression, a lowest resolution of at most 64 x 64, TLM markers: PS3.5 10.18), JPEG 2000
    Lossless, JPEG-LS Lossless; 8/16-bit arrays (Bits Stored 1-16 for JPEG 2000 / HTJ2K, 2-16 for
    JPEG-LS), 1 or 3 samples, signed only for MONOCHROME. The lossy HTJ2K, JPEG 2000 and JPEG-LS
    Near-Lossless syntaxes need `quality` (HTJ2K: quantization step relative to the Bits Stored range;
    JPEG 2000: target PSNR in dB; JPEG-LS: NEAR, the largest absolute error) and then set Lossy Image
    Compression "01" and append the ratio and method (ISO_15444_15, ISO_15444_1, ISO_14495_1) to Lossy Image Compression Ratio /
    Method. RGB is written with the JPEG 2000 colour transform as YBR_RCT (lossless) or YBR_ICT (lossy)
    unless ``mct=False``; decoders give RGB back. `device`: "auto" encodes a CuPy array on the GPU
    (nvImageCodec, HTJ2K/JPEG 2000, single-sample) when it can, "cuda" insists, "cpu" never; `workers`:
    CPU encoder threads. `offset_table`: "auto" writes a Basic Offset Table, or the Extended Offset
    Table when offsets exceed 32 bits; "basic" / "extended" force one (RLE too).

    Removed as no longer true: Number of Frames (one frame), Planar Configuration (one sample), the
    Extended Offset Table, Smallest/Largest (Image) Pixel Value (in Series), Pixel Padding Value and
    Range Limit when the stored values' meaning or range changed, Palette Color LUTs when leaving
    PALETTE COLOR, the Modality LUT and Real World Value Mappings when requantizing.
    """
    device_arr = arr if hasattr(arr, "__cuda_array_interface__") else None
    host = to_host(arr)
    tsyntax = _target_syntax(ds, transfer_syntax)
    if offset_table not in ("auto", "basic", "extended"):
        raise InvalidPixelData(f"offset_table must be 'auto', 'basic' or 'extended', not {offset_table!r}")
    if host.dtype.kind == "b":
        host = host.view(np.uint8)
    elif host.dtype.kind not in "uif":
        raise InvalidPixelData(f"unsupported array dtype {host.dtype}; use an integer, bool or float array")
    if host.dtype.kind in "ui" and host.dtype.itemsize not in (1, 2, 4, 8):
        raise InvalidPixelData(f"unsupported array dtype {host.dtype}")
    if host.size == 0:
        raise InvalidPixelData(f"the array is empty (shape {host.shape})")
    if requantize and float_pixel_data:
        raise InvalidPixelData("requantize=True and float_pixel_data=True exclude each other")
    values = _values_mode(ds, values, requantize=requantize and host.dtype.kind == "f",
                          float_pixel_data=float_pixel_data and host.dtype.kind == "f")

    pi = str(photometric_interpretation).strip()
    layout = _frame_layout(host.shape, pi)
    present = next((kw for kw in _PIXEL_KEYWORDS if kw in ds), None)
    rescale: Requantized | None = None

    if host.dtype.kind == "f":
        if float_pixel_data:
            if tsyntax == RLELossless:
                raise InvalidPixelData("Float Pixel Data cannot be RLE encoded (only native transfer syntaxes hold it)")
            if pi != "MONOCHROME2":
                raise InvalidPixelData(f"Float Pixel Data is MONOCHROME2 only, not '{pi}'")
            if host.dtype.itemsize < 4:
                host = host.astype(np.float32)
            if bits_stored != host.dtype.itemsize * 8:
                raise InvalidPixelData(
                    f"bits_stored is {bits_stored}; a {host.dtype} array is written with Bits Allocated "
                    f"{host.dtype.itemsize * 8}, pass that"
                )
            if present == "PixelData":
                raise InvalidPixelData(
                    "the dataset has (7FE0,0010) 'Pixel Data', so its SOP Class is not one for float pixel "
                    "data; delete it and change the SOP Class UID to write Float Pixel Data"
                )
            _check_float_sop_class(ds)
        elif requantize:
            rescale = rescale_to_integers(host, bits_stored)
            host = rescale.stored
        else:
            raise InvalidPixelData(
                f"the array is {host.dtype}; pass requantize=True to store integers with a new Rescale "
                "Slope/Intercept, or float_pixel_data=True to write Float/Double Float Pixel Data"
            )
    if host.dtype.kind in "ui":
        if present in _FLOAT_KEYWORDS_ALL:
            raise InvalidPixelData(
                f"the dataset has '{present}', so its SOP Class is not one for integer pixel data; "
                f"delete it and change the SOP Class UID to write (7FE0,0010) 'Pixel Data'"
            )
        _check_range(host, bits_stored)
    host = np.ascontiguousarray(host.astype(host.dtype.newbyteorder("<"), copy=False))

    frames, rows, columns, samples = layout
    encoded: list[bytes] | None = None
    if tsyntax == RLELossless:
        validate = _check_rle(host, pi, bits_stored, samples)
        options = {
            "rows": rows,
            "columns": columns,
            "samples_per_pixel": samples,
            "number_of_frames": frames,
            "bits_allocated": host.dtype.itemsize * 8,
            # pydicom's encoder shrinks the array to the container Bits Stored needs but segments it
            # by Bits Allocated (broken frames for e.g. 10 of 32 bits); RLE is byte-wise, so say all bits
            "bits_stored": host.dtype.itemsize * 8,
            "pixel_representation": int(host.dtype.kind == "i"),
            "photometric_interpretation": pi,
            "planar_configuration": 0,
        }
        encoded = _encode_rle(host, options, validate)
    compressed: Encoded | None = None
    if tsyntax in COMPRESSED_SYNTAXES:
        if host.dtype.kind == "f":
            raise InvalidPixelData(f"Float Pixel Data cannot be written as '{tsyntax.name}' (only native syntaxes hold it)")
        req = plan(tsyntax, rows=rows, columns=columns, samples=samples, itemsize=host.dtype.itemsize,
                   signed=host.dtype.kind == "i", bits_stored=bits_stored, photometric=pi, quality=quality, mct=mct)
        shape = (frames, rows, columns) if samples == 1 else (frames, rows, columns, samples)
        src = host
        if device_arr is not None and rescale is None:  # encode from device memory where the GPU can
            import cupy

            dev = cupy.asarray(device_arr)
            src = dev if dev.dtype == host.dtype else host
        compressed = encode_frames(src.reshape(shape), req, device=device, workers=workers)
        encoded = compressed.frames
    elif quality is not None:
        raise InvalidPixelData(f"quality= is for the lossy compressed syntaxes, not '{tsyntax.name}'")
    spacing = _check_spacing(pixel_spacing) if pixel_spacing is not None else None

    # validated: from here on the dataset changes
    _parse_all(ds)
    if _is_big_endian(ds):
        _to_little_endian(ds)
    if not hasattr(ds, "file_meta"):
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = tsyntax
    old_pi = ds.get("PhotometricInterpretation")
    old_pixel_rep = ds.get("PixelRepresentation")

    is_float = host.dtype.kind == "f"
    if is_float:
        _set_float_module(ds, host, layout)
    elif host.dtype.itemsize <= 2:
        _pydicom_set_pixel_data(ds, host, pi, bits_stored, generate_instance_uid=False)
    else:
        _set_module(ds, host, pi, bits_stored, layout)
    _drop_stale(
        ds,
        old_pi=str(old_pi) if old_pi else None,
        old_pixel_rep=old_pixel_rep,
        requantized=rescale is not None,
        bits_stored=None if is_float else bits_stored,
        signed=host.dtype.kind == "i",
    )
    if rescale is not None:
        _set_rescale(ds, rescale.slope, rescale.intercept)
    elif is_float:
        _drop_rescale(ds)
    elif values == "modality":
        _set_rescale(ds, 1.0, 0.0)
        if "ModalityLUTSequence" in ds:
            del ds.ModalityLUTSequence
    if spacing is not None:
        _set_spacing(ds, spacing)
    if encoded is not None:
        _encapsulate(ds, encoded, offset_table)
    if compressed is not None:
        _set_compression(ds, compressed, host.nbytes)
    ds.file_meta.TransferSyntaxUID = tsyntax
    if generate_instance_uid:
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
    return ds


def _values_mode(ds: Dataset, values: str | None, *, requantize: bool, float_pixel_data: bool) -> str:
    """What the array holds ("stored" or "modality"), checked against the other options."""
    if values is None:
        return "modality" if requantize or float_pixel_data else "stored"
    if values not in _VALUES:
        raise InvalidPixelData(f"values must be 'stored' or 'modality', not {values!r}")
    if values == "stored" and requantize:
        raise InvalidPixelData("requantize=True stores a new Rescale Slope/Intercept for modality values; "
                               "pass values='modality' (or no values)")
    if values == "stored" and float_pixel_data:
        slope, intercept = ds.get("RescaleSlope", 1), ds.get("RescaleIntercept", 0)
        if float(slope) != 1 or float(intercept) != 0 or ds.get("ModalityLUTSequence"):
            raise InvalidPixelData(
                f"Float Pixel Data has no Rescale Slope/Intercept, so stored values would lose this dataset's "
                f"rescale (slope {slope}, intercept {intercept}); write modality values (values='modality')"
            )
    return values


def _check_float_sop_class(ds: Dataset) -> None:
    sop = str(ds.get("SOPClassUID") or getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID") or "")
    if sop not in FLOAT_PIXEL_SOP_CLASSES:
        allowed = ", ".join(f"{name} ({uid})" for uid, name in FLOAT_PIXEL_SOP_CLASSES.items())
        name = UID(sop).name if sop else "none"
        raise InvalidPixelData(
            f"SOP Class {name} ({sop or 'no SOP Class UID'}) does not allow Float/Double Float Pixel Data; "
            f"only {allowed} does: set SOPClassUID to it, or store integers (requantize=True)"
        )


def _drop_rescale(ds: Dataset) -> None:
    """Float pixel data carries no rescale: the tags go, at the top level and in the functional groups."""
    for kw in _RESCALE:
        if kw in ds:
            del ds[kw]
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(group) or []:
            if "PixelValueTransformationSequence" in item:
                del item.PixelValueTransformationSequence


def _set_compression(ds: Dataset, encoded: Encoded, raw_nbytes: int) -> None:
    """Photometric Interpretation of the codestreams and, for a lossy write, Lossy Image Compression "01"
    with this compression's ratio and method appended to the earlier ones (PS3.3 C.7.6.1.1.5)."""
    req = encoded.request
    ds.PhotometricInterpretation = req.photometric
    if req.lossless:
        return
    ds.LossyImageCompression = "01"
    for keyword, value in (("LossyImageCompressionRatio", format_number_as_ds(raw_nbytes / max(1, encoded.nbytes))),
                           ("LossyImageCompressionMethod", req.rule.method)):
        old = ds.get(keyword)
        values = [] if old is None or old == "" else list(old) if isinstance(old, MultiValue) else [old]
        setattr(ds, keyword, [*values, value] if values else value)


def _encapsulate(ds: Dataset, frames: list[bytes], offset_table: str = "auto") -> None:
    """One fragment per frame and a Basic Offset Table, or the Extended Offset Table (with an empty
    Basic one) when offsets exceed :data:`BOT_LIMIT` or ``offset_table="extended"``."""
    total = (len(frames) - 1) * 8 + sum(len(f) for f in frames[:-1])
    if offset_table == "extended" or (offset_table == "auto" and total > BOT_LIMIT):
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(frames)
    else:
        ds.PixelData = encapsulate(frames)
    elem = ds["PixelData"]
    elem.VR = "OB"
    elem.is_undefined_length = True
    forget_pixel_array(ds)
