"""What a file in an archive is: a DICOM image, a DICOM object without pixel data, or not DICOM at all.

One answer for every consumer (``gpudcm decode``, :func:`gpudcm.dask.decode_to_zarr`, ``convert``,
:func:`gpudcm.series.group_series`, :class:`gpudcm.torch.DicomDataset`): real archives hold DICOMDIRs,
structured reports, RT plans, key object selections, presentation states and stray non-DICOM files
(``README.txt``, ``.DS_Store``) beside the images; those are skipped and listed, not failures.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

IMAGE, NON_IMAGE, NOT_DICOM = "image", "non-image", "not-dicom"
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage (DICOMDIR)


@dataclass(frozen=True)
class Classification:
    """``kind``: "image", "non-image" (DICOM without an Image Pixel module) or "not-dicom"; `reason`
    says why for the last two (e.g. "no pixel data (Basic Text SR Storage)", "not a DICOM file")."""

    path: str
    kind: str
    reason: str = ""
    sop_class: str = ""

    @property
    def is_image(self) -> bool:
        return self.kind == IMAGE


def _sop_class_name(ds: Dataset) -> str:
    uid = ds.get("SOPClassUID") or getattr(ds, "file_meta", Dataset()).get("MediaStorageSOPClassUID") or ""
    if not uid:
        return ""
    uid = UID(str(uid))
    return uid.name if uid.is_valid and uid.name != str(uid) else str(uid)


def read_classified(path: str | os.PathLike, specific_tags: list[int] | None = None) -> tuple[Dataset | None, Classification]:
    """The header of `path` (up to the pixel data; only `specific_tags` when given, plus what
    classifying needs) and its :class:`Classification`. The dataset is None unless the file is DICOM.
    A missing or unreadable file raises the usual ``OSError``."""
    path = os.fspath(path)
    tags = None if specific_tags is None else [*specific_tags, 0x00080016, 0x00280010, 0x00280011]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True, force=True, specific_tags=tags)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception:  # noqa: BLE001 - pydicom raises many types on bytes that are not DICOM
        return None, Classification(path, NOT_DICOM, "not a DICOM file")
    meta = getattr(ds, "file_meta", None)
    has_meta = meta is not None and ("TransferSyntaxUID" in meta or "MediaStorageSOPClassUID" in meta)
    if not has_meta and not any(e.tag.group in (0x0008, 0x0010, 0x0020, 0x0028) for e in ds):
        return None, Classification(path, NOT_DICOM, "not a DICOM file")  # force=True read noise
    sop = _sop_class_name(ds)
    media = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    if media == _MEDIA_DIRECTORY or "DirectoryRecordSequence" in ds:
        return ds, Classification(path, NON_IMAGE, "no pixel data (DICOMDIR)", sop or "Media Storage Directory Storage")
    if "Rows" not in ds or "Columns" not in ds:
        return ds, Classification(path, NON_IMAGE, f"no pixel data ({sop or 'unknown SOP Class'})", sop)
    return ds, Classification(path, IMAGE, "", sop)


def classify(path: str | os.PathLike) -> Classification:
    """Whether `path` is a DICOM image, a DICOM object without pixel data, or not DICOM (reads the
    header only)."""
    return read_classified(path, [])[1]
