"""A MONAI ``ImageReader`` that decodes with gpudcm: ``LoadImage(reader=GpudcmReader())``.

Same data and metadata conventions as ``monai.data.PydicomReader`` (MONAI 1.3-1.6), so a pipeline switches
with one argument: a folder is one series stacked on the last axis in Instance Number order (files without
it skipped with a warning); Rescale Slope/Intercept, when a file has either, give float32 values; the first
two axes are swapped (``swap_ij``); the affine is built from Image Orientation/Position (Patient), Pixel
Spacing and the last slice's position, in RAS (``affine_lps_to_ras``); metadata keeps the orientation,
position and spacing elements as DICOM JSON (``prune_metadata``) plus ``spatial_shape``, ``affine``,
``original_affine``, ``original_channel_dim``, ``spacing``, ``space`` and ``lastImagePositionPatient``.
Several inputs are stacked on a new first (channel) axis. DICOM SEG files are not handled (use
PydicomReader for them).

Only the headers are parsed by pydicom (``stop_before_pixels``); the pixels of a series are decoded in
one ``decode_batch`` call. ``device="cuda"`` returns CuPy arrays (LoadImage makes CUDA tensors of them);
the default ``"cpu"`` is safe inside forked DataLoader workers.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
from monai.data import ImageReader
from monai.data.utils import affine_to_spacing
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
from pydicom.dataset import Dataset

from .api import decode_batch, pixel_array
from .series import device_scope

_KEPT = ("00200037", "00200032", "00280030", "52009229", "52009230")
_PIXEL_JSON = ("7FE00008", "7FE00009", "7FE00010", "FFFCFFFC")


class _Input:
    """One read input: a file, or a folder's files (a series)."""

    def __init__(self, paths: list[str], headers: list[Dataset], series: bool) -> None:
        self.paths, self.headers, self.series = paths, headers, series


class GpudcmReader(ImageReader):
    """``monai.data.PydicomReader``'s conventions, gpudcm's decoding (see the module docstring).

    Args mirror PydicomReader's: `channel_dim`, `affine_lps_to_ras`, `swap_ij`, `prune_metadata`,
    `fname_regex` ("" takes every file of a folder, None only those ``pydicom.misc.is_dicom`` accepts);
    `device` ("cpu", "cuda", "cuda:N", "auto"); other keyword arguments go to ``pydicom.dcmread``.
    """

    def __init__(self, channel_dim: str | int | None = None, affine_lps_to_ras: bool = True, swap_ij: bool = True,
                 prune_metadata: bool = True, fname_regex: str | None = "", device: str = "cpu", **kwargs: Any) -> None:
        super().__init__()
        self.channel_dim = float("nan") if channel_dim == "no_channel" else channel_dim
        self.affine_lps_to_ras = affine_lps_to_ras
        self.swap_ij = swap_ij
        self.prune_metadata = prune_metadata
        self.fname_regex = fname_regex
        self.device = device
        self.kwargs = kwargs

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """True for folders and for files that are ``.dcm`` or start like DICOM (Part 10)."""
        for name in ensure_tuple(filename):
            name = os.fspath(name)
            if not (os.path.isdir(name) or name.lower().endswith(".dcm") or _is_dicom(name)):
                return False
        return True

    def _header(self, path: str, kwargs: dict) -> Dataset:
        return pydicom.dcmread(path, **{**kwargs, "stop_before_pixels": True})

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs: Any) -> _Input | list[_Input]:
        """Parse the headers of each file, or of each folder's files (a series)."""
        options = {**self.kwargs, **kwargs}
        inputs = []
        for name in ensure_tuple(data):
            name = os.fspath(name)
            if not os.path.isdir(name):
                inputs.append(_Input([name], [self._header(name, options)], False))
                continue
            candidates = glob.glob(os.path.join(name, "*"))
            if self.fname_regex is None:
                candidates = [c for c in candidates if _is_dicom(c)]
            else:
                candidates = [c for c in candidates if re.match(self.fname_regex, c)]
            paths, headers = [], []
            for c in candidates:
                try:
                    headers.append(self._header(c, options))
                    paths.append(c)
                except pydicom.errors.InvalidDicomError as exc:
                    warnings.warn(f"Failed to read {c} with exception: \n{exc}.", stacklevel=2)
            if not paths:
                raise ValueError(f"{name}: no DICOM files could be read")
            inputs.append(_Input(paths, headers, len(paths) > 1))
        return inputs[0] if len(inputs) == 1 else inputs

    def get_data(self, img: _Input | list[_Input]) -> tuple[Any, dict]:
        """(array, metadata) as PydicomReader gives them; several inputs stacked on a new first axis."""
        arrays, meta = [], {}
        for k, item in enumerate(img if isinstance(img, list) else [img]):
            data, metadata = self._series(item) if item.series else self._single(item)
            xp = _xp(data)
            if self.swap_ij:
                data = xp.swapaxes(data, 0, 1)
            arrays.append(xp.ascontiguousarray(data))
            affine = self._affine(metadata)
            metadata[MetaKeys.SPACE] = SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS
            if self.swap_ij:
                affine = affine @ np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
                shape = list(metadata[MetaKeys.SPATIAL_SHAPE])
                shape[0], shape[1] = shape[1], shape[0]
                metadata[MetaKeys.SPATIAL_SHAPE] = tuple(shape)
            metadata[MetaKeys.ORIGINAL_AFFINE] = affine
            metadata[MetaKeys.AFFINE] = affine.copy()
            if self.channel_dim is None:
                same = data.ndim == len(metadata[MetaKeys.SPATIAL_SHAPE])
                metadata[MetaKeys.ORIGINAL_CHANNEL_DIM] = float("nan") if same else -1
            else:
                metadata[MetaKeys.ORIGINAL_CHANNEL_DIM] = self.channel_dim
            metadata["spacing"] = affine_to_spacing(affine, r=len(metadata[MetaKeys.SPATIAL_SHAPE]))
            if k == 0:
                meta = dict(metadata)
            else:
                for key in (MetaKeys.AFFINE, MetaKeys.SPATIAL_SHAPE):
                    if not np.allclose(metadata[key], meta[key]):
                        raise RuntimeError(f"{key} of all images should be the same for channel-wise "
                                           f"concatenation. Got {metadata[key]} and {meta[key]}.")
        if len(arrays) == 1:
            return arrays[0], meta
        xp = _xp(arrays[0])
        channel = meta.get(MetaKeys.ORIGINAL_CHANNEL_DIM)
        if channel is not None and not (isinstance(channel, float) and np.isnan(channel)):
            return xp.concatenate(arrays, axis=int(channel)), meta
        meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        return xp.stack(arrays, axis=0), meta

    # -- one input ----------------------------------------------------------------------------------

    def _decode(self, paths: list[str], headers: list[Dataset]):
        """Decoded pixels of `paths`, stacked on a new first axis, rescaled like PydicomReader does."""
        with device_scope(self.device):
            if len(paths) == 1:
                data = pixel_array(paths[0], device=self.device)[None]
            else:
                data = decode_batch(paths, device=self.device, stack=True)
        pairs = [_rescale(h) for h in headers]
        if all(p is None for p in pairs):
            return data
        xp = _xp(data)
        k = xp.asarray(np.array([p or (1.0, 0.0) for p in pairs], dtype=np.float32))
        shape = (len(paths),) + (1,) * (data.ndim - 1)
        return data.astype(xp.float32) * k[:, 0].reshape(shape) + k[:, 1].reshape(shape)

    def _single(self, item: _Input) -> tuple[Any, dict]:
        data = self._decode(item.paths, item.headers)[0]
        metadata = self._meta(item.headers[0])
        metadata[MetaKeys.SPATIAL_SHAPE] = data.shape
        return data, metadata

    def _series(self, item: _Input) -> tuple[Any, dict]:
        kept = []
        for path, header in zip(item.paths, item.headers):
            if "InstanceNumber" in header:
                kept.append((header.InstanceNumber, path, header))
            else:
                warnings.warn(f"slice: {path} does not have InstanceNumber tag, skip it.")
        if not kept:
            raise ValueError("the input does not have valid slices.")
        kept.sort(key=lambda t: t[0])  # stable: equal numbers keep the folder's listing order
        paths, headers = [p for _, p, _ in kept], [h for _, _, h in kept]
        volume = self._decode(paths, headers)
        if len(paths) == 1:
            metadata = self._meta(headers[0])
            metadata[MetaKeys.SPATIAL_SHAPE] = volume.shape[1:]
            return volume[0], metadata
        if "PixelSpacing" in headers[0]:
            # PydicomReader's quirk, kept for equal metadata: the mean |z step| is appended to the first
            # slice's Pixel Spacing (z only, even for tilted slices; its affine uses the positions instead)
            z = [float(h.ImagePositionPatient[2]) if "ImagePositionPatient" in h else float(i) for i, h in enumerate(headers)]
            if "ImagePositionPatient" not in headers[0]:
                z[0] = 0.0
            headers[0].PixelSpacing.append(sum(abs(b - a) for a, b in zip(z, z[1:])) / (len(z) - 1))
        metadata = self._meta(headers[0])
        if "ImagePositionPatient" in headers[-1]:
            metadata["lastImagePositionPatient"] = np.asarray(headers[-1].ImagePositionPatient)
        metadata[MetaKeys.SPATIAL_SHAPE] = volume.shape[1:] + (len(paths),)
        return _xp(volume).moveaxis(volume, 0, -1), metadata

    def _meta(self, header: Dataset) -> dict:
        if self.prune_metadata:
            small = Dataset()
            for key in _KEPT:
                tag = int(key, 16)
                if tag in header:
                    small[tag] = header[tag]
            return small.to_json_dict(suppress_invalid_tags=True)
        metadata = header.to_json_dict(suppress_invalid_tags=True)
        for key in _PIXEL_JSON:
            metadata.pop(key, None)
        return metadata

    def _affine(self, metadata: dict) -> np.ndarray:
        """The voxel-to-patient affine (PydicomReader's construction, also its identity fallback)."""
        affine = np.eye(4)
        if not ("00200037" in metadata and "00200032" in metadata):
            warnings.warn("GpudcmReader: ImageOrientationPatient (0020,0037) and/or ImagePositionPatient "
                          "(0020,0032) are missing, so the affine is the identity (as PydicomReader's).",
                          stacklevel=3)
            return affine
        rx, ry, rz, cx, cy, cz = (float(v) for v in metadata["00200037"]["Value"])
        sx, sy, sz = (float(v) for v in metadata["00200032"]["Value"])
        dr, dc = (float(v) for v in (metadata["00280030"]["Value"] if "00280030" in metadata else (1.0, 1.0))[:2])
        values = (rx, ry, rz, cx, cy, cz, sx, sy, sz, dr, dc)
        if not np.isfinite(values).all():
            raise ValueError(f"GpudcmReader: cannot derive the affine from non-finite values {values}")
        affine[:3, 0] = (cx * dr, cy * dr, cz * dr)  # down the rows: column direction x row spacing
        affine[:3, 1] = (rx * dc, ry * dc, rz * dc)  # along a row: row direction x column spacing
        affine[:3, 3] = (sx, sy, sz)
        last = metadata.get("lastImagePositionPatient")
        n = metadata[MetaKeys.SPATIAL_SHAPE][-1]
        if last is not None and n > 1:
            affine[:3, 2] = (np.asarray(last, dtype=float) - (sx, sy, sz)) / (n - 1)
        if self.affine_lps_to_ras:
            affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
        return affine


def _rescale(header: Dataset) -> tuple[float, float] | None:
    has_slope, has_intercept = "RescaleSlope" in header, "RescaleIntercept" in header
    if not (has_slope or has_intercept):
        return None
    return (float(header.RescaleSlope) if has_slope else 1.0, float(header.RescaleIntercept) if has_intercept else 0.0)


def _is_dicom(path: str) -> bool:
    try:
        return pydicom.misc.is_dicom(path)
    except OSError:
        return False


def _xp(arr: Any):
    if isinstance(arr, np.ndarray):
        return np
    import cupy

    return cupy


def _register_by_name() -> None:
    """``LoadImage(reader="GpudcmReader")`` finds it by name, as MONAI's own readers (its
    ``SUPPORTED_READERS`` table, which MONAI documents for user readers). Added first in the table, so
    LoadImage's automatic choice (which tries the table from last to first) still prefers MONAI's own."""
    from monai.transforms.io import array as io_array

    table = io_array.SUPPORTED_READERS
    if "gpudcmreader" not in table:
        entries = list(table.items())
        table.clear()
        table.update([("gpudcmreader", GpudcmReader), *entries])


_register_by_name()
