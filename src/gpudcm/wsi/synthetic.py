"""Small whole-slide pyramids written with pydicom (VL Whole Slide Microscopy Image Storage), for the tests
and the `wsi` bench workload.

Each pyramid holds `levels` instances (level k is the level-0 image subsampled by 2**k), tiled as the
standard says: tiles left to right, top to bottom, then focal plane, then optical path (TILED_FULL);
or with a Plane Position (Slide) per frame and some tiles left out (TILED_SPARSE). Tiles are encoded
by Pillow (JPEG baseline), OpenJPEG through imagecodecs (JPEG 2000) or OpenJPH through imagecodecs
(HTJ2K), or kept native. The case records what was written, so tests can place pydicom's own decode of
each frame where the standard says and compare.
"""

from __future__ import annotations

import io
import pathlib
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000,
    JPEGBaseline8Bit,
    generate_uid,
)

WSI_SOP_CLASS = UID("1.2.840.10008.5.1.4.1.1.77.1.6")
CODECS = {"jpeg": JPEGBaseline8Bit, "j2k": JPEG2000, "htj2k": HTJ2KLossless, "native": ExplicitVRLittleEndian}


@dataclass
class LevelFile:
    """One written instance: which level, which tiles (col, row, z, path) each frame holds."""

    path: pathlib.Path
    level: int
    frame_tiles: list[tuple[int, int, int, int]]
    total: tuple[int, int]  # (rows, columns) of the total pixel matrix
    tile: tuple[int, int]  # (rows, columns) of a tile


@dataclass
class Pyramid:
    files: list[LevelFile]
    codec: str
    samples: int
    sparse: bool
    missing: dict[int, set[tuple[int, int]]] = field(default_factory=dict)  # level -> (col, row) left out
    images: dict[int, np.ndarray] = field(default_factory=dict)  # level -> source image (rows, cols[, s])

    @property
    def paths(self) -> list[pathlib.Path]:
        return [f.path for f in self.files]


def source_image(rows: int, cols: int, samples: int, seed: int = 0) -> np.ndarray:
    """Smooth content with some texture (JPEG keeps it within a few levels)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    planes = [128 + 90 * np.sin(x / 23.0 + k) * np.cos(y / 31.0 - k) for k in range(samples)]
    img = np.stack(planes, -1) + rng.normal(0, 4, (rows, cols, samples))
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img if samples == 3 else img[..., 0]


def _encode(tile: np.ndarray, codec: str) -> bytes:
    if codec == "jpeg":
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(tile).save(buf, "JPEG", quality=90, subsampling=2)  # 4:2:0 for colour
        return buf.getvalue()
    import imagecodecs

    if codec == "j2k":
        return imagecodecs.jpeg2k_encode(tile, level=80, codecformat="J2K")
    if codec == "htj2k":
        return imagecodecs.htj2k_encode(tile, reversible=True)
    return tile.tobytes()


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    ds = Dataset()
    ds.CodeValue, ds.CodingSchemeDesignator, ds.CodeMeaning = value, scheme, meaning
    return ds


def _optical_path(identifier: str) -> Dataset:
    op = Dataset()
    op.OpticalPathIdentifier = identifier
    op.IlluminationTypeCodeSequence = [_code("111744", "DCM", "Brightfield illumination")]
    op.IlluminationColorCodeSequence = [_code("414298005", "SCT", "Full Spectrum")]
    return op


def _base(level: int, total: tuple[int, int], tile: tuple[int, int], samples: int, ts: UID, uids: dict,
          spacing: float, focal_planes: int, optical_paths: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    ds.file_meta.MediaStorageSOPClassUID = WSI_SOP_CLASS
    sop = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    ds.SOPClassUID, ds.SOPInstanceUID = WSI_SOP_CLASS, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uids["study"], uids["series"]
    ds.FrameOfReferenceUID = uids["frame_of_reference"]
    ds.Modality = "SM"
    ds.PatientName, ds.PatientID = "WSI^Test", "wsi-1"
    ds.StudyDate, ds.StudyTime, ds.ContentDate, ds.ContentTime = "20240101", "120000", "20240101", "120000"
    ds.AcquisitionDateTime = "20240101120000"
    ds.SeriesNumber, ds.InstanceNumber = 1, level + 1
    ds.Manufacturer = "gpudcm tests"
    ds.ContainerIdentifier = "slide-1"
    ds.IssuerOfTheContainerIdentifierSequence = []
    ds.ContainerTypeCodeSequence = [_code("433466003", "SCT", "Microscope slide")]
    ds.SpecimenDescriptionSequence = []
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"] if level == 0 else ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.VolumetricProperties = "VOLUME"
    ds.ImageOrientationSlide = [0, -1, 0, -1, 0, 0]
    ds.TotalPixelMatrixRows, ds.TotalPixelMatrixColumns = total
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem, origin.YOffsetInSlideCoordinateSystem = 20.0, 40.0
    ds.TotalPixelMatrixOriginSequence = [origin]
    ds.ImagedVolumeWidth = total[1] * spacing
    ds.ImagedVolumeHeight = total[0] * spacing
    ds.ImagedVolumeDepth = 0.001
    ds.TotalPixelMatrixFocalPlanes = focal_planes
    ds.NumberOfOpticalPaths = optical_paths
    ds.OpticalPathSequence = [_optical_path(str(k)) for k in range(optical_paths)]
    ds.Rows, ds.Columns = tile
    ds.SamplesPerPixel = samples
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if samples == 3:
        ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = {"jpeg": "YBR_FULL_422"}.get(ts_name(ts), "RGB")
    else:
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.LossyImageCompression = "01" if ts in (JPEGBaseline8Bit, JPEG2000) else "00"
    if ds.LossyImageCompression == "01":
        ds.LossyImageCompressionMethod = "ISO_10918_1" if ts == JPEGBaseline8Bit else "ISO_15444_1"
        ds.LossyImageCompressionRatio = 10
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [spacing, spacing]
    measures.SliceThickness = 0.001
    measures.SpacingBetweenSlices = 0.001
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    return ds


def ts_name(ts: UID) -> str:
    return next(k for k, v in CODECS.items() if v == ts)


def make_pyramid(out_dir: pathlib.Path, *, codec: str = "jpeg", samples: int = 3, size: tuple[int, int] = (300, 420),
                 tile: tuple[int, int] = (64, 80), levels: int = 3, sparse: bool = False,
                 missing: dict[int, set[tuple[int, int]]] | None = None, focal_planes: int = 1, optical_paths: int = 1,
                 concatenations: int = 1, seed: int = 0, background_lab: tuple[int, int, int] | None = None) -> Pyramid:
    """Write a pyramid to `out_dir`; `size` and `tile` are (rows, columns). Sparse levels leave out the
    tiles `missing[level]` (col, row); `concatenations` > 1 splits each level's frames over that many files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ts = CODECS[codec]
    uids = {"study": generate_uid(), "series": generate_uid(), "frame_of_reference": generate_uid()}
    base = source_image(*size, samples, seed)
    pyramid = Pyramid([], codec, samples, sparse, missing or {})
    for level in range(levels):
        image = base[:: 2**level, :: 2**level]
        pyramid.images[level] = image
        total = image.shape[:2]
        spacing = 0.00025 * 2**level
        nrows, ncols = -(-total[0] // tile[0]), -(-total[1] // tile[1])
        absent = pyramid.missing.get(level, set()) if sparse else set()
        order = [(c, r, z, p) for p in range(optical_paths) for z in range(focal_planes)
                 for r in range(nrows) for c in range(ncols) if (c, r) not in absent]
        padded = np.zeros((nrows * tile[0], ncols * tile[1], *image.shape[2:]), np.uint8)
        padded[: total[0], : total[1]] = image
        frames = []
        for c, r, z, p in order:
            t = padded[r * tile[0] : (r + 1) * tile[0], c * tile[1] : (c + 1) * tile[1]]
            t = np.ascontiguousarray(np.clip(t.astype(int) + 7 * z + 13 * p, 0, 255).astype(np.uint8))
            frames.append(_encode(t, codec))
        parts = np.array_split(np.arange(len(order)), concatenations)
        concat_uid = generate_uid() if concatenations > 1 else None
        first_sop = None
        for k, part in enumerate(parts):
            ds = _base(level, total, tile, samples, ts, uids, spacing, focal_planes, optical_paths)
            if background_lab is not None:
                ds.RecommendedAbsentPixelCIELabValue = list(background_lab)
            ds.DimensionOrganizationType = "TILED_SPARSE" if sparse else "TILED_FULL"
            ds.NumberOfFrames = len(part)
            if concat_uid:
                first_sop = first_sop or ds.SOPInstanceUID
                ds.ConcatenationUID = concat_uid
                ds.SOPInstanceUIDOfConcatenationSource = first_sop
                ds.InConcatenationNumber = k + 1
                ds.InConcatenationTotalNumber = concatenations
                ds.ConcatenationFrameOffsetNumber = int(part[0]) if len(part) else 0
            if sparse:
                per_frame = []
                for i in part:
                    c, r, z, p = order[i]
                    fg = Dataset()
                    pos = Dataset()
                    pos.ColumnPositionInTotalImagePixelMatrix = c * tile[1] + 1
                    pos.RowPositionInTotalImagePixelMatrix = r * tile[0] + 1
                    pos.XOffsetInSlideCoordinateSystem = 20.0 - r * tile[0] * spacing
                    pos.YOffsetInSlideCoordinateSystem = 40.0 - c * tile[1] * spacing
                    pos.ZOffsetInSlideCoordinateSystem = 0.001 * z
                    fg.PlanePositionSlideSequence = [pos]
                    ident = Dataset()
                    ident.OpticalPathIdentifier = str(p)
                    fg.OpticalPathIdentificationSequence = [ident]
                    per_frame.append(fg)
                ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
            else:
                fg = ds.SharedFunctionalGroupsSequence[0]
                ident = Dataset()
                ident.OpticalPathIdentifier = "0"
                fg.OpticalPathIdentificationSequence = [ident]
            data = [frames[i] for i in part]
            if codec == "native":
                ds.PixelData = b"".join(data)
            else:
                ds.PixelData = encapsulate(data, has_bot=True)
                ds["PixelData"].VR = "OB"
                ds["PixelData"].is_undefined_length = True
            path = out_dir / f"level{level}_{k}.dcm"
            ds.save_as(path, enforce_file_format=True)
            pyramid.files.append(LevelFile(path, level, [order[i] for i in part], total, tile))
    return pyramid
