"""Other DICOM libraries as bench contenders: dicomsdl and python-gdcm, each decoding every file of a
workload to NumPy arrays shaped as pydicom shapes them (checked against pydicom before timing).

python-gdcm is also a pydicom plugin (listed first for JPEG, JPEG-LS and JPEG 2000 when installed):
:func:`keep_pydicom_plugins` removes it from pydicom's decoders for the run, so the pydicom rows measure
the plugins of ``gpudcm[codecs]`` whether or not gdcm is installed, and gdcm is timed on its own row.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

import numpy as np


def version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def keep_pydicom_plugins() -> list[str]:
    """Remove python-gdcm from pydicom's decoder plugins (this process only); returns the syntaxes it left."""
    from pydicom.pixels.decoders import base

    removed = []
    for name in dir(base):
        dec = getattr(base, name)
        if isinstance(dec, base.Decoder) and "gdcm" in dec.available_plugins:
            dec.remove_plugin("gdcm")
            removed.append(str(dec.UID))
    return removed


# --------------------------------------------------------------------------- dicomsdl


def dicomsdl_call(paths: tuple[str, ...]) -> Callable[[], list[np.ndarray]]:
    """``dicomsdl.open(path).pixelData(storedvalue=True)`` on each file (stored values, as pydicom's)."""
    import dicomsdl

    def one(path: str) -> np.ndarray:
        ds = dicomsdl.open(path)
        frames = int(ds.NumberOfFrames or 1) if "NumberOfFrames" in dir(ds) or ds.NumberOfFrames else 1
        if frames <= 1:
            return ds.pixelData(storedvalue=True)
        return np.stack([ds.pixelData(i, storedvalue=True) for i in range(frames)])

    return lambda: [one(p) for p in paths]


# --------------------------------------------------------------------------- python-gdcm

_GDCM_DTYPES = {"UINT8": "u1", "INT8": "i1", "UINT16": "u2", "INT16": "i2", "UINT32": "u4", "INT32": "i4",
                "FLOAT32": "f4", "FLOAT64": "f8"}


def gdcm_call(paths: tuple[str, ...]) -> Callable[[], list[np.ndarray]]:
    """``gdcm.ImageReader`` then ``Image.GetBuffer`` on each file, shaped (frames, rows, cols[, samples])."""
    import gdcm
    from pydicom.pixels.processing import convert_color_space

    names = {getattr(gdcm.PixelFormat, k): v for k, v in _GDCM_DTYPES.items() if hasattr(gdcm.PixelFormat, k)}

    def one(path: str) -> np.ndarray:
        reader = gdcm.ImageReader()
        reader.SetFileName(path)
        if not reader.Read():
            raise RuntimeError(f"gdcm cannot read {path}")
        image = reader.GetImage()
        fmt = image.GetPixelFormat()
        dtype = names[fmt.GetScalarType()]
        cols, rows = image.GetDimension(0), image.GetDimension(1)
        frames = image.GetDimension(2) if image.GetNumberOfDimensions() == 3 else 1
        samples = fmt.GetSamplesPerPixel()
        arr = np.frombuffer(image.GetBuffer().encode("utf-8", "surrogateescape"), dtype=dtype)
        shape = (frames, rows, cols, samples) if samples > 1 else (frames, rows, cols)
        arr = arr.reshape(shape)
        if str(image.GetPhotometricInterpretation()).strip() in ("YBR_FULL", "YBR_FULL_422"):
            arr = convert_color_space(arr, "YBR_FULL", "RGB")  # gdcm returns JPEG's YCbCr; pydicom converts
        return arr[0] if frames == 1 else arr

    return lambda: [one(p) for p in paths]
