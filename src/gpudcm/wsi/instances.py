"""Whole-slide instances: the header of each file, which tile (column, row, focal plane, optical path)
each of its frames holds, and the grouping of instances into the levels of one slide.

Tile positions (PS3.3 C.7.6.17.3, Dimension Organization Type): ``TILED_FULL`` frames are implicit,
left to right, top to bottom, then by focal plane, then by optical path, counted across a concatenation
from Concatenation Frame Offset Number; ``TILED_SPARSE`` frames each carry a Plane Position (Slide)
(Row/Column Position In Total Image Pixel Matrix, 1-based; Z Offset In Slide Coordinate System) and an
Optical Path Identification in the Per-Frame (or Shared) Functional Groups.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset

from ..errors import GpudcmError, InvalidPixelData
from .tiles import FrameReader

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
VOLUME_FLAVOURS = ("VOLUME", "NONE", "")


def first_item(ds: Dataset, *path: str):
    """ds.path[0].path[0]...; None when an element or item is missing."""
    cur = ds
    for kw in path:
        if cur is None or kw not in cur:
            return None
        cur = cur[kw].value
        if isinstance(cur, Sequence) and not isinstance(cur, (str, bytes)) and kw.endswith("Sequence"):
            cur = cur[0] if len(cur) else None
    return cur


def _int(ds: Dataset, keyword: str, src: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidPixelData(f"{src}: {keyword} is {value!r}, not a number") from None
    if n < 1:
        raise InvalidPixelData(f"{src}: {keyword} is {n}, it must be at least 1")
    return n


@dataclass
class Instance:
    """One file of a slide: its header (no pixel data) and where its frames lie in the level's tiles."""

    path: str
    header: Dataset
    reader: FrameReader = field(repr=False)

    @property
    def series_uid(self) -> str:
        return str(self.header.get("SeriesInstanceUID", ""))

    @property
    def flavour(self) -> str:
        """Image Type value 3: VOLUME, LABEL, OVERVIEW or THUMBNAIL."""
        it = self.header.get("ImageType") or []
        return str(it[2]).upper() if len(it) > 2 else ""

    @property
    def total(self) -> tuple[int, int]:
        """(rows, columns) of the total pixel matrix."""
        return (_int(self.header, "TotalPixelMatrixRows", self.path, self.header.get("Rows")),
                _int(self.header, "TotalPixelMatrixColumns", self.path, self.header.get("Columns")))

    @property
    def tile(self) -> tuple[int, int]:
        return _int(self.header, "Rows", self.path), _int(self.header, "Columns", self.path)

    @property
    def frames(self) -> int:
        """Number of Frames, refused when the file is too small to hold that many (an encapsulated frame
        takes at least its 8-byte item header), before any tile map is built from it."""
        n = _int(self.header, "NumberOfFrames", self.path, 1)
        size = os.path.getsize(self.path)
        if n * 8 > size:
            raise InvalidPixelData(f"{self.path}: Number of Frames is {n} but the file holds {size} bytes "
                                   f"(too few for {n} frames)")
        return n

    @property
    def optical_paths(self) -> list[str]:
        seq = self.header.get("OpticalPathSequence") or []
        ids = [str(item.get("OpticalPathIdentifier", k)) for k, item in enumerate(seq)]
        return ids or ["0"]

    @property
    def focal_planes(self) -> int:
        return _int(self.header, "TotalPixelMatrixFocalPlanes", self.path, 1)

    @property
    def sparse(self) -> bool:
        kind = str(self.header.get("DimensionOrganizationType", "TILED_FULL")).upper()
        return kind == "TILED_SPARSE" or (kind not in ("TILED_FULL",) and "PerFrameFunctionalGroupsSequence" in self.header
                                          and first_item(self.header.PerFrameFunctionalGroupsSequence[0], "PlanePositionSlideSequence") is not None)

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row spacing, column spacing) in mm."""
        value = first_item(self.header, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "PixelSpacing")
        if value is None:
            value = first_item(self.header, "PerFrameFunctionalGroupsSequence", "PixelMeasuresSequence", "PixelSpacing")
        return (float(value[0]), float(value[1])) if value is not None and len(value) == 2 else None

    @property
    def frame_offset(self) -> int:
        """Concatenation Frame Offset Number: frames of the concatenation before this file's."""
        return int(self.header.get("ConcatenationFrameOffsetNumber", 0) or 0)

    def z_offset(self) -> float:
        origin = first_item(self.header, "SharedFunctionalGroupsSequence", "PlanePositionSlideSequence",
                        "ZOffsetInSlideCoordinateSystem")
        return float(origin) if origin is not None else 0.0

    def sparse_positions(self) -> list[tuple[int, int, float, str | None]]:
        """Per frame: (column, row) of its top-left pixel (0-based), its Z offset, its optical path id."""
        per_frame = self.header.get("PerFrameFunctionalGroupsSequence") or []
        if len(per_frame) < self.frames:
            raise InvalidPixelData(f"{self.path}: TILED_SPARSE with {len(per_frame)} Per-Frame Functional Groups "
                                   f"items for {self.frames} frames")
        shared_path = first_item(self.header, "SharedFunctionalGroupsSequence", "OpticalPathIdentificationSequence",
                             "OpticalPathIdentifier")
        out = []
        for i, fg in enumerate(per_frame[: self.frames]):
            pos = first_item(fg, "PlanePositionSlideSequence")
            if pos is None or "ColumnPositionInTotalImagePixelMatrix" not in pos or "RowPositionInTotalImagePixelMatrix" not in pos:
                raise InvalidPixelData(f"{self.path}: frame {i} has no Plane Position (Slide) with "
                                       "Column/Row Position In Total Image Pixel Matrix (TILED_SPARSE)")
            path = first_item(fg, "OpticalPathIdentificationSequence", "OpticalPathIdentifier")
            z = pos.get("ZOffsetInSlideCoordinateSystem")
            out.append((int(pos.ColumnPositionInTotalImagePixelMatrix) - 1, int(pos.RowPositionInTotalImagePixelMatrix) - 1,
                        float(z) if z is not None else 0.0, str(path) if path is not None else shared_path))
        return out


def read_instance(path: str) -> Instance | None:
    """The instance at `path`, or None when it is not a whole-slide image (a label, a DICOMDIR...)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            header = dcmread(path, stop_before_pixels=True, force=True)
        except Exception as exc:
            raise InvalidPixelData(f"{path}: could not be parsed as DICOM: {type(exc).__name__}: {exc}") from exc
    sop = str(header.get("SOPClassUID", "") or header.get("file_meta", Dataset()).get("MediaStorageSOPClassUID", ""))
    if sop != WSI_SOP_CLASS and "TotalPixelMatrixColumns" not in header:
        return None
    return Instance(str(path), header, FrameReader(str(path)))


def expand(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """A file, a folder (all files below it) or several of either -> the file paths, sorted."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.name != "DICOMDIR")
        elif p.exists():
            out.append(str(p))
        else:
            raise FileNotFoundError(str(p))
    return out


def group_slides(instances: Sequence[Instance]) -> dict[str, dict[tuple[int, int], list[Instance]]]:
    """Series UID -> total pixel matrix (rows, columns) -> the VOLUME instances of that level."""
    out: dict[str, dict[tuple[int, int], list[Instance]]] = defaultdict(lambda: defaultdict(list))
    for inst in instances:
        if inst.flavour in VOLUME_FLAVOURS:
            out[inst.series_uid][inst.total].append(inst)
    if not out:
        raise GpudcmError("no whole-slide VOLUME instances among the files given")
    return {k: dict(v) for k, v in out.items()}
