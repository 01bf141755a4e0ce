"""Lossy JPEG test files: a DICOM writer for encapsulated JPEG frames, and the noisy-chroma files on which
the two chroma upsamplers pydicom can meet (Richter's libjpeg, libjpeg-turbo) differ most."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit, SecondaryCaptureImageStorage, generate_uid


def lossy_jpeg_dicom(path, frames: list[bytes], rows: int, cols: int, samples: int, pi: str, bits: int = 8):
    """A Secondary Capture file of `frames` (JPEG codestreams), JPEG Baseline (8-bit) or Extended (12)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit if bits == 8 else JPEGExtended12Bit
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, cols, samples, pi
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = (8, 8, 7, 0) if bits == 8 else (16, 12, 11, 0)
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.NumberOfFrames = len(frames)
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def noisy_chroma_jpeg(rows: int, cols: int, subsampling: int, seed: int, quality: int = 95) -> bytes:
    """Pillow's JPEG (JFIF YCbCr; `subsampling` 0: 4:4:4, 1: 4:2:2, 2: 4:2:0) of uniform RGB noise: chroma that
    changes from sample to sample, where an upsampler reading the wrong input sample shows most."""
    from PIL import Image

    rgb = np.random.default_rng(seed).integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


# name -> (rows, cols, Pillow subsampling, Photometric Interpretation): odd sizes, several MCU rows
NOISY = {
    "422-45x77-ybr422": (45, 77, 1, "YBR_FULL_422"),
    "422-61x123-ybr": (61, 123, 1, "YBR_FULL"),
    "420-45x77-ybr422": (45, 77, 2, "YBR_FULL_422"),
    "420-61x123-ybr": (61, 123, 2, "YBR_FULL"),
    "422-5x3-ybr422": (5, 3, 1, "YBR_FULL_422"),  # chroma planes 2 samples wide
    "420-33x200-ybr": (33, 200, 2, "YBR_FULL"),
    "444-45x77-ybr": (45, 77, 0, "YBR_FULL"),  # no upsampling: what the IDCT alone leaves
}


def noisy_chroma_files(folder: Path) -> dict[str, Path]:
    """The :data:`NOISY` files (two frames each) written into `folder`."""
    out = {}
    for name, (rows, cols, sub, pi) in NOISY.items():
        frames = [noisy_chroma_jpeg(rows, cols, sub, seed) for seed in (1, 2)]
        out[name] = lossy_jpeg_dicom(Path(folder) / f"{name}.dcm", frames, rows, cols, 3, pi)
    return out
