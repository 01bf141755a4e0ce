"""Turn what the caller hands us (path, file-like, bytes, Dataset) into a pydicom Dataset."""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Union

from pydicom import dcmread
from pydicom.dataset import Dataset

from .errors import InvalidPixelData

Source = Union[str, "os.PathLike[str]", BinaryIO, bytes, bytearray, Dataset]

_PIXEL_TAG = {"PixelData": 0x7FE00010, "FloatPixelData": 0x7FE00008, "DoubleFloatPixelData": 0x7FE00009}
_PIXEL_KEYWORDS = tuple(_PIXEL_TAG)


def source_name(src: Source) -> str:
    """A short label for messages: the path, or the kind of object."""
    if isinstance(src, Dataset):
        name = getattr(src, "filename", None)
        return str(name) if isinstance(name, str) and name else "<dataset>"
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    return str(getattr(src, "name", "<file-like>"))


def _has_pixels(ds: Dataset) -> bool:
    return any(kw in ds for kw in _PIXEL_KEYWORDS)


def _read_header_then_pixels(fp: BinaryIO, specific_tags: list[int] | None = None) -> Dataset | None:
    """pydicom's path-based ``pixel_array`` way of reading: the header up to the pixel element (only
    `specific_tags` when given), then that element's value straight from the file. Cheaper than a full
    ``dcmread`` and it recovers pixel data a full read drops (encapsulated data missing its delimiter).
    None when the file is not read this way (no file meta, deflated, no pixel element)."""
    from .reader import read_header

    found = read_header(fp, specific_tags)
    if found is None:
        return None
    ds, elem = found
    fp.seek(elem.offset)
    ds.add_new(_PIXEL_TAG[elem.keyword], elem.vr, fp.read(elem.length))
    ds[elem.keyword].is_undefined_length = elem.undefined
    return ds


def load_dataset(src: Source, *, header_only: bool = False) -> tuple[Dataset, str]:
    """Parse `src` with pydicom and return the dataset (pixel data included) with its label.

    ``header_only=True`` reads just the pixel module and the pixel element, as pydicom's path-based
    ``pixel_array`` does (falling back to a full read where that does not work, e.g. deflated files).
    A missing file raises the usual ``FileNotFoundError``; anything pydicom cannot parse raises
    :class:`InvalidPixelData` naming the file.
    """
    name = source_name(src)
    if isinstance(src, Dataset):
        return src, name
    if isinstance(src, (bytes, bytearray)):
        src = io.BytesIO(src)
    if header_only:
        from .reader import HEADER_TAGS

        fast = _try_read(src, HEADER_TAGS)
        if fast is not None:
            return fast, name
    if hasattr(src, "seek"):
        src.seek(0)
    try:
        ds = dcmread(src, force=True)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # pydicom raises many types on malformed input
        raise InvalidPixelData(f"{name}: could not be parsed as DICOM: {type(exc).__name__}: {exc}") from exc
    if not _has_pixels(ds):
        recovered = _try_read(src, None)
        if recovered is not None:
            return recovered, name
    return ds, name


def _try_read(src, specific_tags: list[int] | None) -> Dataset | None:
    try:
        if isinstance(src, (str, os.PathLike)):
            with open(src, "rb") as fp:
                ds = _read_header_then_pixels(fp, specific_tags)
            if ds is not None:
                ds.filename = os.fspath(src)
            return ds
        return _read_header_then_pixels(src, specific_tags)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception:  # anything odd: the caller falls back to a full dcmread
        return None
