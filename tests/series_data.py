"""Synthetic CT series written slice by slice with pydicom, with the geometry they were written from."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

import gpudcm

CT_IMAGE = UID("1.2.840.10008.5.1.4.1.1.2")


def tilted_orientation(degrees: float = 20.0) -> tuple[float, ...]:
    """Row and column directions rotated about the z axis then the x axis (an oblique acquisition)."""
    a, b = np.radians(degrees), np.radians(degrees / 2)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    m = rx @ rz
    return tuple(float(v) for v in np.round(np.concatenate([m[:, 0], m[:, 1]]), 6))


@dataclass
class WrittenSeries:
    uid: str
    volume: np.ndarray  # (slices, rows, cols) in slice-normal order
    paths: list[str]  # paths[k] holds volume[k]
    orientation: tuple[float, ...]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]  # (slice, row, column)
    positions: list[tuple[float, float, float]]


def write_series(folder: str | os.PathLike, volume: np.ndarray, *, prefix: str = "s", uid: str | None = None,
                 orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                 origin: tuple[float, float, float] = (-10.0, 20.5, 30.0),
                 spacing: tuple[float, float, float] = (2.5, 0.75, 0.8),
                 names: list[str] | None = None, position: bool = True, instance: bool = True,
                 instance_numbers: list[int] | None = None, rescale: tuple[float, float] | None = None,
                 transfer_syntax: UID = ExplicitVRLittleEndian) -> WrittenSeries:
    """Write `volume` (slices, rows, cols) as one file per slice; slice k lies at origin + k*spacing*normal.
    `names` (default: shuffled-looking names) decide the file order on disk."""
    uid = uid or generate_uid()
    normal = np.cross(orientation[:3], orientation[3:])
    n = volume.shape[0]
    names = names or [f"{(k * 7919) % 1000:03d}_{prefix}{k}.dcm" for k in range(n)]  # interleaves series
    paths, positions = [], []
    for k in range(n):
        pos = tuple(float(v) for v in np.round(np.asarray(origin) + k * spacing[0] * normal, 4))
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CT_IMAGE
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.StudyInstanceUID = "1.2.3.4"
        ds.SeriesInstanceUID = uid
        if instance:
            ds.InstanceNumber = instance_numbers[k] if instance_numbers else k + 1
        if position:
            ds.ImagePositionPatient = list(pos)
            ds.ImageOrientationPatient = list(orientation)
        ds.PixelSpacing = [spacing[1], spacing[2]]
        ds.SliceThickness = spacing[0]
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = rescale
        gpudcm.set_pixel_data(ds, volume[k], "MONOCHROME2", 16, transfer_syntax=transfer_syntax)
        path = os.path.join(os.fspath(folder), names[k])
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        positions.append(pos)
    return WrittenSeries(uid, volume, paths, tuple(orientation), positions[0], tuple(spacing), positions)


def random_volume(slices: int, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1024, 3000, size=(slices, rows, cols), dtype=np.int16)
