"""What a training set needs to know about each decoded array, as JSON-able dicts.

:func:`job_metadata` describes one output (a file, or a series of slices): its sources (resolved path,
size, mtime: what a resumed run compares), UIDs, Modality, Rescale Slope/Intercept (per slice for a
series), Pixel Spacing and Pixel Aspect Ratio, slice spacing, orientation and origin, Photometric
Interpretation, window centre/width and transfer syntax. :func:`to_modality` applies the rescale pairs
(float32 values in the modality's units, e.g. HU). Zarr stores it as array attributes, ``.npy`` runs as a
sidecar JSON per array and one manifest line per array.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

STORED, MODALITY = "stored", "modality"


def fingerprint(paths: Sequence[str | os.PathLike]) -> list[list]:
    """(resolved path, size, mtime in ns) of each source: the same files however their paths are
    spelled (relative, absolute, through a link) give the same fingerprint."""
    out = []
    for p in paths:
        real = os.path.realpath(os.fspath(p))
        try:
            st = os.stat(real)
            out.append([real, st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([real, -1, -1])
    return out


def same_output(meta: dict, job: Any, rescale: bool) -> bool:
    """Whether stored metadata `meta` describes what decoding `job` now would give: the same sources
    (resolved path, size, mtime) and the same kind of values."""
    return meta.get("sources") == fingerprint(job.paths) and meta.get("values", STORED) == (MODALITY if rescale else STORED)


def _number(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _numbers(value: Any) -> list[float] | None:
    if value is None or value == "":
        return None
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    out = [_number(v) for v in values]
    return None if any(v is None for v in out) else out


def _first(value: Any) -> float | None:
    values = _numbers(value)
    return values[0] if values else None


def _functional(ds: Dataset, sequence: str, keyword: str) -> Any:
    """`keyword` at the top level, else in the Shared Functional Groups' `sequence` (enhanced objects)."""
    if keyword in ds:
        return ds.get(keyword)
    for group in ds.get("SharedFunctionalGroupsSequence") or []:
        for item in group.get(sequence) or []:
            if keyword in item:
                return item.get(keyword)
    return None


def rescale_pair(ds: Dataset) -> tuple[float, float] | None:
    """(slope, intercept) of `ds` (top level or shared Pixel Value Transformation), None when neither
    is present; a missing one defaults to 1 or 0."""
    slope = _number(_functional(ds, "PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _number(_functional(ds, "PixelValueTransformationSequence", "RescaleIntercept"))
    if slope is None and intercept is None:
        return None
    return (1.0 if slope is None else slope, 0.0 if intercept is None else intercept)


def _header(path: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path, stop_before_pixels=True, force=True)


def header_metadata(ds: Dataset) -> dict[str, Any]:
    """The per-file part: UIDs, Modality, geometry, display and encoding of one header."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None and "TransferSyntaxUID" in meta else None
    pair = rescale_pair(ds)
    return {
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "modality": str(ds.get("Modality", "")),
        "rescale_slope": None if pair is None else pair[0],
        "rescale_intercept": None if pair is None else pair[1],
        "rescale_type": str(_functional(ds, "PixelValueTransformationSequence", "RescaleType") or ""),
        "pixel_spacing": _numbers(_functional(ds, "PixelMeasuresSequence", "PixelSpacing")),
        "pixel_aspect_ratio": _numbers(ds.get("PixelAspectRatio")),
        "slice_thickness": _number(_functional(ds, "PixelMeasuresSequence", "SliceThickness")),
        "spacing_between_slices": _number(_functional(ds, "PixelMeasuresSequence", "SpacingBetweenSlices")),
        "orientation": _numbers(_functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient")),
        "position": _numbers(ds.get("ImagePositionPatient")),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")),
        "window_center": _numbers(_functional(ds, "FrameVOILUTSequence", "WindowCenter")),
        "window_width": _numbers(_functional(ds, "FrameVOILUTSequence", "WindowWidth")),
        "transfer_syntax_uid": str(tsyntax or ""),
        "transfer_syntax": tsyntax.name if tsyntax else "",
        "bits_stored": ds.get("BitsStored"),
    }


def job_metadata(kind: str, paths: Sequence[str], series: Any = None, *, values: str = STORED) -> dict[str, Any]:
    """Metadata of one output array: a file (``kind="file"``) or a series (``series``: its
    gpudcm.series.Series, whose geometry is used). `values`: "stored" or "modality" (what the array holds)."""
    with warnings.catch_warnings():  # pydicom's notes on odd values, raised as the elements are read
        warnings.simplefilter("ignore")
        return _job_metadata(kind, paths, series, values)


def _job_metadata(kind: str, paths: Sequence[str], series: Any, values: str) -> dict[str, Any]:
    headers = [_header(p) for p in paths]
    first = header_metadata(headers[0])
    out: dict[str, Any] = {"kind": kind, "values": values, "sources": fingerprint(paths)}
    if kind == "series":
        per_slice = [header_metadata(h) for h in headers]
        pairs = [rescale_pair(h) for h in headers]
        out.update({k: v for k, v in first.items() if k not in ("sop_instance_uid", "position", "rescale_slope",
                                                                   "rescale_intercept")})
        out.update(
            sop_instance_uids=[m["sop_instance_uid"] for m in per_slice],
            positions=[m["position"] for m in per_slice],
            rescale_slope=None if all(p is None for p in pairs) else [(p or (1.0, 0.0))[0] for p in pairs],
            rescale_intercept=None if all(p is None for p in pairs) else [(p or (1.0, 0.0))[1] for p in pairs],
            spacing=None if series is None or series.spacing is None else list(series.spacing),
            origin=None if series is None or series.origin is None else list(series.origin),
            sorted_by="" if series is None else series.sorted_by,
        )
        if series is not None and series.orientation is not None:
            out["orientation"] = list(series.orientation)
        transfer = {m["transfer_syntax"] for m in per_slice}
        out["transfer_syntax"] = transfer.pop() if len(transfer) == 1 else "mixed"
    else:
        out.update(first)
        out["origin"] = first["position"]
    if values == MODALITY:
        out["modality_values"] = "Rescale Slope/Intercept applied (float32); the rescale fields say what was applied"
    return out


def to_modality(arr: Any, pairs: Sequence[tuple[float, float] | None] | tuple[float, float] | None,
                *, stacked: bool) -> Any:
    """`arr` (NumPy or CuPy) in modality units (float32 ``stored * slope + intercept``): one pair for a
    file, one per slice along the first axis when `stacked` (a single pair applies to every slice).
    Without any pair the array is returned unchanged."""
    from .transforms import _xp

    if stacked and pairs is not None and len(pairs) == 1:
        pairs, stacked = pairs[0], False
    if pairs is None or (stacked and all(p is None for p in pairs)):
        return arr
    xp = _xp(arr)
    if not stacked:
        slope, intercept = pairs
        return arr.astype(xp.float32) * xp.float32(slope) + xp.float32(intercept)
    k = xp.asarray(np.asarray([p or (1.0, 0.0) for p in pairs], dtype=np.float32))
    shape = (len(pairs),) + (1,) * (arr.ndim - 1)
    return arr.astype(xp.float32) * k[:, 0].reshape(shape) + k[:, 1].reshape(shape)
