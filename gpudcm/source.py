"""Turn what the caller hands us (path, file-like, bytes, Dataset) into a pydicom Dataset."""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO, Union

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from .errors import InvalidPixelData

Source = Union[str, "os.PathLike[str]", BinaryIO, bytes, bytearray, Dataset]

_PIXEL_TAGS = {(0x7FE0, 0x0010): "PixelData", (0x7FE0, 0x0008): "FloatPixelData", (0x7FE0, 0x0009): "DoubleFloatPixelData"}
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


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
    return any(kw in ds for kw in _PIXEL_TAGS.values())


# What the pixel path reads of a file's header (as pydicom's own path-based pixel_array does).
HEADER_TAGS = [
    0x00080005,  # Specific Character Set
    0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011,
    0x00280100, 0x00280101, 0x00280102, 0x00280103,
    0x7FE00001, 0x7FE00002,  # Extended Offset Table (and Lengths)
]


def _read_header_then_pixels(fp: BinaryIO, specific_tags: list[int] | None = None) -> Dataset | None:
    """pydicom's path-based ``pixel_array`` way of reading: the header up to the pixel element (only
    `specific_tags` when given), then that element's value straight from the file. Cheaper than a full
    ``dcmread`` and it recovers pixel data a full read drops (encapsulated data missing its delimiter).
    None when the file is not read this way (no file meta, deflated, no pixel element)."""
    from .pydicom_compat import at_pixel_data as _at_pixel_data, read_file_meta_info as _read_file_meta_info, read_dataset, read_preamble

    fp.seek(0)
    read_preamble(fp, force=True)
    meta = _read_file_meta_info(fp)
    tsyntax = meta.get("TransferSyntaxUID")
    if not tsyntax or UID(tsyntax).is_deflated:
        return None
    tsyntax = UID(tsyntax)
    ds = read_dataset(
        fp, is_implicit_VR=tsyntax.is_implicit_VR, is_little_endian=tsyntax.is_little_endian,
        stop_when=_at_pixel_data, specific_tags=specific_tags,
    )
    ds.file_meta = meta
    head = fp.read(8)
    if len(head) != 8:
        return None
    order = "<" if tsyntax.is_little_endian else ">"
    if tsyntax.is_implicit_VR:
        group, elem, length = struct.unpack(f"{order}HHL", head)
        vr = "OB"
    else:
        group, elem, raw_vr, _ = struct.unpack(f"{order}HH2sH", head)
        vr = raw_vr.decode("ascii", "replace")
        length = struct.unpack(f"{order}L", fp.read(4))[0]
    keyword = _PIXEL_TAGS.get((group, elem))
    if keyword is None:
        return None
    undefined = length == 0xFFFFFFFF
    value = fp.read() if undefined else fp.read(length)
    if undefined and value.endswith(_SEQ_DELIMITER):
        value = value[: -len(_SEQ_DELIMITER)]
    ds.add_new((group << 16) | elem, vr, value)
    ds[keyword].is_undefined_length = undefined
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
