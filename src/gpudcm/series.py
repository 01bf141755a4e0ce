"""Series to volume: group files by SeriesInstanceUID, order slices along the slice normal, stack.

``group_series`` reads headers only; ``load_volume`` decodes a series with ``decode_batch(stack=True)``
into a (slices, rows, columns[, samples]) array. Slices are ordered by the projection of Image Position
(Patient) on the slice normal (row direction x column direction of Image Orientation (Patient)); when a
file lacks position or orientation, or the slices lie in different planes, the series is ordered by
Instance Number, and when a file lacks that too, by path.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import dcmread

from .errors import GpudcmError

# What grouping and ordering read of each header (everything before Pixel Data would be far slower).
_TAGS = [
    0x00200013,  # Instance Number
    0x00200032,  # Image Position (Patient)
    0x00200037,  # Image Orientation (Patient)
    0x0020000E,  # Series Instance UID
    0x00180050,  # Slice Thickness
    0x00180088,  # Spacing Between Slices
    0x00280002,  # Samples per Pixel
    0x00280008,  # Number of Frames
    0x00280010,  # Rows
    0x00280011,  # Columns
    0x00280030,  # Pixel Spacing
    0x00281052,  # Rescale Intercept
    0x00281053,  # Rescale Slope
]


@dataclass(frozen=True)
class Series:
    """One series: its files in slice order and the geometry of the stacked volume."""

    uid: str  # SeriesInstanceUID ("" when missing)
    paths: tuple[str, ...]  # sorted along the slice normal (Instance Number, then path, as fallbacks)
    # (slice, row, column) in mm; slice: median step of the positions along the normal, else Spacing Between
    # Slices, else Slice Thickness, else 1.0; None without Pixel Spacing
    spacing: tuple[float, float, float] | None = None
    orientation: tuple[float, ...] | None = None  # Image Orientation (Patient): row then column direction
    origin: tuple[float, float, float] | None = None  # Image Position (Patient) of the first slice
    shape: tuple[int, ...] | None = None  # volume shape, None when the files' shapes differ
    sorted_by: str = "path"  # "position", "instance" or "path": what ordered the slices
    rescale: tuple[tuple[float, float], ...] | None = None  # (slope, intercept) per file; None: no file has them

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True)
class SliceHeader:
    """What grouping and ordering read of one file's header."""

    path: str
    uid: str
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    instance: int | None
    pixel_spacing: tuple[float, float] | None
    slice_spacing: float | None  # Spacing Between Slices, else Slice Thickness
    shape: tuple[int, ...]  # pydicom's pixel_array shape of this file
    frames: int
    rescale: tuple[float, float] | None  # (slope, intercept) when either is present (defaults 1 and 0)


def _floats(ds, keyword: str, n: int) -> tuple[float, ...] | None:
    try:
        value = ds.get(keyword)
        if value is None:
            return None
        values = tuple(float(v) for v in (value if hasattr(value, "__len__") and not isinstance(value, str) else [value]))
    except (TypeError, ValueError):
        return None
    return values if len(values) == n and all(np.isfinite(values)) else None


def _number(ds, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def read_header(path: str | os.PathLike) -> SliceHeader | None:
    """The grouping/ordering header of `path`, or None when it is not a DICOM image (skipped)."""
    from .classify import read_classified

    path = os.fspath(path)
    ds, kind = read_classified(path, _TAGS)  # the same test as every consumer (gpudcm.classify)
    if not kind.is_image:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows, cols = int(ds.Rows), int(ds.Columns)
            samples = int(ds.get("SamplesPerPixel") or 1)
            frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):  # unreadable Rows/Columns/Number of Frames: not part of any volume
        return None
    shape = ((frames,) if frames > 1 else ()) + (rows, cols) + ((samples,) if samples > 1 else ())
    instance = _number(ds, "InstanceNumber")
    return SliceHeader(
        path=path,
        uid=str(ds.get("SeriesInstanceUID") or ""),
        position=_floats(ds, "ImagePositionPatient", 3),
        orientation=_floats(ds, "ImageOrientationPatient", 6),
        instance=None if instance is None else int(instance),
        pixel_spacing=pixel_spacing_of(ds),
        slice_spacing=_number(ds, "SpacingBetweenSlices") or _number(ds, "SliceThickness"),
        shape=shape,
        frames=frames,
        rescale=rescale_of(ds),
    )


def pixel_spacing_of(ds) -> tuple[float, float] | None:
    """Pixel Spacing (row, column) in mm, or None when absent or unreadable."""
    return _floats(ds, "PixelSpacing", 2)


def rescale_of(ds) -> tuple[float, float] | None:
    """(slope, intercept) when either Rescale Slope or Intercept is present (defaults 1 and 0), else None."""
    slope, intercept = _number(ds, "RescaleSlope"), _number(ds, "RescaleIntercept")
    if slope is None and intercept is None:
        return None
    return 1.0 if slope is None else slope, 0.0 if intercept is None else intercept


def _expand(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    yield os.path.join(root, f)
        else:
            yield p


def slice_normal(orientation: tuple[float, ...]) -> np.ndarray:
    """Unit normal of the slice plane: row direction x column direction."""
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else n


def _order(headers: list[SliceHeader]) -> tuple[list[SliceHeader], str, np.ndarray | None]:
    """(sorted headers, what sorted them, positions along the normal or None)."""
    if all(h.position is not None and h.orientation is not None for h in headers):
        normal = slice_normal(headers[0].orientation)
        parallel = all(np.allclose(h.orientation, headers[0].orientation, atol=1e-4) for h in headers)
        if parallel and np.linalg.norm(normal) > 0:  # slices in several planes (a localizer): no normal
            dist = {h.path: float(np.dot(normal, h.position)) for h in headers}
            ordered = sorted(headers, key=lambda h: (dist[h.path], h.instance if h.instance is not None else 0, h.path))
            return ordered, "position", np.array([dist[h.path] for h in ordered])
    if all(h.instance is not None for h in headers):
        return sorted(headers, key=lambda h: (h.instance, h.path)), "instance", None
    return sorted(headers, key=lambda h: h.path), "path", None


def _series(uid: str, headers: list[SliceHeader]) -> Series:
    ordered, sorted_by, dist = _order(headers)
    first = ordered[0]
    spacing = None
    if first.pixel_spacing is not None:
        between = None
        if dist is not None and len(dist) > 1:
            steps = np.diff(dist)
            steps = steps[steps > 1e-6]  # repeated positions (e.g. several acquisitions) carry no spacing
            between = float(np.median(steps)) if steps.size else None
        if between is None:
            between = first.slice_spacing if first.slice_spacing else 1.0
        spacing = (between, first.pixel_spacing[0], first.pixel_spacing[1])
    shapes = {h.shape for h in ordered}
    shape = None
    if len(shapes) == 1:
        if len(ordered) == 1 and first.frames > 1:
            shape = first.shape
        elif first.frames == 1:
            shape = (len(ordered),) + first.shape
    return Series(
        uid=uid,
        paths=tuple(h.path for h in ordered),
        spacing=spacing,
        orientation=first.orientation,
        origin=first.position,
        shape=shape,
        sorted_by=sorted_by,
        rescale=None if all(h.rescale is None for h in ordered) else tuple(h.rescale or (1.0, 0.0) for h in ordered),
    )


def group_series(paths: Iterable[str | os.PathLike]) -> list[Series]:
    """Group DICOM image files (folders are walked) by SeriesInstanceUID, each series in slice order.

    Reads headers only. Files that are not DICOM images are skipped. Series come in the order their
    first file appears (folder contents in sorted order).
    """
    groups: dict[str, list[SliceHeader]] = {}
    for p in _expand(paths):
        header = read_header(p)
        if header is not None:
            groups.setdefault(header.uid, []).append(header)
    return [_series(uid, headers) for uid, headers in groups.items()]


def _shape_problem(series: Series) -> str:
    headers = [read_header(p) for p in series.paths]
    missing = [p for p, h in zip(series.paths, headers) if h is None]
    if missing:
        return f"{missing[0]} is not a DICOM image"
    first = headers[0]
    for h in headers[1:]:
        if h.shape != first.shape:
            return f"{first.path} is {first.shape} but {h.path} is {h.shape}"
    if first.frames > 1 and len(headers) > 1:
        return f"{len(headers)} multi-frame files (e.g. {first.path}, {first.frames} frames); load them one by one"
    return ""


@contextmanager
def device_scope(device: str) -> Iterator[None]:
    """Make ``cuda:N`` the current CuPy device for the duration (no-op for other devices)."""
    name = (device or "auto").lower()
    if not name.startswith("cuda:"):
        yield
        return
    import cupy

    with cupy.cuda.Device(int(name.split(":", 1)[1])):
        yield


def load_volume(series: Series, *, device: str = "auto", raw: bool = False, as_rgb: bool = True,
                workers: int | None = None, rescale: bool = False) -> Any:
    """Decode `series` into one (slices, rows, columns[, samples]) array (NumPy, or CuPy on CUDA).

    Stored values, as ``pixel_array`` returns them; ``rescale=True``: modality values instead (float32
    ``stored * slope + intercept`` with each slice's own Rescale Slope/Intercept, e.g. HU or PET units;
    unchanged when no file has them). A series of one multi-frame file returns its frames.
    ``device="cuda:N"`` decodes on device N. Raises :class:`GpudcmError` naming the files when the
    slices' shapes differ.
    """
    arr = _load_stored(series, device=device, raw=raw, as_rgb=as_rgb, workers=workers)
    if not rescale:
        return arr
    from .metadata import to_modality

    pairs = series.rescale
    if pairs is None:  # none found by group_series, or a hand-made Series: read the tags
        found = [h.rescale if h is not None else None for h in map(read_header, series.paths)]
        pairs = None if all(r is None for r in found) else tuple(found)
    with device_scope(device):
        return to_modality(arr, pairs, stacked=True)


def _load_stored(series: Series, *, device: str, raw: bool, as_rgb: bool, workers: int | None) -> Any:
    from .api import decode_batch, pixel_array

    if not series.paths:
        raise GpudcmError(f"series {series.uid or '<no uid>'} has no files")
    if series.shape is None:  # shapes differ, or not known (a hand-made Series): say which files
        problem = _shape_problem(series)
        if problem:
            raise GpudcmError(f"series {series.uid or '<no uid>'}: cannot stack slices: {problem}")
    with device_scope(device):
        if len(series.paths) == 1:
            header = read_header(series.paths[0])
            if header is None:
                raise GpudcmError(f"series {series.uid or '<no uid>'}: {series.paths[0]} is not a DICOM image")
            arr = pixel_array(series.paths[0], device=device, raw=raw, as_rgb=as_rgb)
            return arr if header.frames > 1 else arr[None]
        return decode_batch(list(series.paths), device=device, raw=raw, as_rgb=as_rgb, stack=True, workers=workers)
