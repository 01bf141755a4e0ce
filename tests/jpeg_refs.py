"""What the JPEG-family device path must do per file: the backend routing gives each frame
(:func:`expected_routes`), and a second reference decode for 8-bit DCT JPEG files: libjpeg-turbo (through Pillow), with fancy upsampling
and the accurate integer IDCT, converted to RGB with pydicom's own ``convert_color_space``.

pydicom's default JPEG plugin is pylibjpeg-libjpeg, which wraps Thomas Richter's libjpeg (the JPEG XT
reference implementation), not IJG's. The two disagree by up to 3 levels on a few samples of some files
(e.g. 480 of 110,592,000 Cr samples of pydicom-data's color3d_jpeg_baseline.dcm): Richter's 4:2:2 upsampler
computes output column 8k+1 from the already upsampled column 8k+2 instead of input sample 4k+1 (it filters
rows in place; tests/test_lossy_jpeg.py shows it), so
``gpudcm.tolerance.agreement`` judges a lossy decode against this reference where the two references
themselves differ by more than the tolerance."""

from __future__ import annotations

import io
import warnings
from functools import lru_cache

import numpy as np
from pydicom.pixels import convert_color_space

from gpudcm.api import _extended_offsets, _prepare
from gpudcm.cuda.jpeg_path import conformed_photometric
from gpudcm.frames import frame_bytes, frame_extents
from gpudcm.jpeg_markers import parse_jpeg
from gpudcm.routing import FULL_ENV, GpuEnv, J2K_SYNTAXES, JPEG_SYNTAXES, route_bytes


def expected_routes(path, env: GpuEnv = FULL_ENV) -> list[str]:
    """The backend routing gives each frame of JPEG-family file `path` under `env` (what the FrameInfo
    records of a device decode must say: a GPU frame that fell back to the CPU is a failure)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, spec = _prepare(path)
    if str(spec.transfer_syntax) not in JPEG_SYNTAXES | J2K_SYNTAXES:
        raise ValueError(f"{path} is not a JPEG-family file")
    extents = frame_extents(spec, ds.PixelData, extended_offsets=_extended_offsets(ds))
    return [route_bytes(spec, bytes(frame_bytes(ds.PixelData, f)), env).backend for f in extents]


@lru_cache(maxsize=8)
def _turbo(path, raw: bool):
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, spec = _prepare(path)
    if str(spec.transfer_syntax) not in JPEG_SYNTAXES or spec.samples_per_pixel != 3 or spec.bits_allocated != 8:
        return None
    frames = [bytes(frame_bytes(ds.PixelData, f)) for f in frame_extents(spec, ds.PixelData, extended_offsets=_extended_offsets(ds))]
    try:
        infos = [parse_jpeg(f) for f in frames]
    except Exception:
        return None
    if any(i.sof != 0xC0 or i.adobe_transform is not None for i in infos):
        return None
    pi = conformed_photometric(spec, frames[0])
    if "YBR" not in pi:
        return None
    out = []
    for f in frames:
        im = Image.open(io.BytesIO(f))
        im.draft("YCbCr", im.size)  # libjpeg-turbo's YCbCr output: no colour conversion
        a = np.asarray(im)
        out.append(a if raw else convert_color_space(a, "YBR_FULL", "RGB"))
    arr = np.stack(out)
    return arr if len(frames) > 1 else arr[0]


def turbo_reference(path, raw: bool):
    """libjpeg-turbo's decode of an 8-bit baseline YCbCr JPEG file shaped as pydicom's, else None."""
    return _turbo(path, raw)
