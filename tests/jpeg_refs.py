"""What the JPEG-family device path must do per file: the backend routing gives each frame
(:func:`expected_routes`), and a second reference decode for 8-bit DCT JPEG files: libjpeg-turbo (through Pillow), with fancy upsampling
and the accurate integer IDCT, converted to RGB with pydicom's own ``convert_color_space``.

pydicom's default JPEG plugin is pylibjpeg-libjpeg, which wraps Thomas Richter's libjpeg (the JPEG XT
reference implementation), not IJG's. The two disagree by up to 3 levels on a few samples of some files
(e.g. 480 of 110,592,000 Cr samples of pydicom-data's color3d_jpeg_baseline.dcm): Richter's 4:2:2 upsampler
computes output column 8k+1 from the already upsampled column 8k+2 instead of input sample 4k+1 (it filters
rows in place; tests/test_lossy_jpeg.py shows it), so
``gpudcm.tolerance.agreement`` judges a lossy decode against the nearer of the two references where they
themselves differ by more than the tolerance.

On the device, nvJPEG's subsampled planes are upsampled as the frame's CPU reference does
(``gpudcm.cuda.jpeg_path.reference_upsampler``): with Richter's filter (kernels/upsample.cuh
``GD_UPSAMPLE_RICHTER``: his 4-fraction-bit arithmetic, the in-place read at 8k+1) where that is pydicom's
plugin, so the device is within 1 of pydicom in YCbCr (the IDCT: nvJPEG's planes are integers, Richter
upsamples with 4 fraction bits) instead of up to 28 off; with libjpeg-turbo's filter (bit-equal to this
module's :func:`turbo_reference` on the same planes) for callers asking for libjpeg-turbo's values
(``gpudcm.wsi`` ``exact=False``). :func:`device_ybr_and_rgb_agreement` is the device contract on YCbCr
files: YCbCr within 1 (the tolerance on real nvJPEG), RGB pydicom's conversion of it (within 3)."""

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


# RGB converted from lossy YCbCr, on the device: a 1 in Y and in Cb (nvJPEG's integer IDCT against Richter's
# 4 fraction bits) is up to 3 after pydicom's conversion (B = Y + 1.772 Cb'), on 4:4:4 as on 4:2:x
DEVICE_YCBCR_RGB_MAX = 3


def assert_device_agrees(got, ref, transfer_syntax, *, alt=None, ycbcr_rgb: bool = False, ybr_pair=None,
                         ybr_max: int = 1):
    """Assert a device decode `got` agrees with pydicom's `ref`: within the tolerance (judged with `alt`
    where the references disagree) or, for RGB converted from lossy YCbCr JPEG (`ycbcr_rgb`), the device
    contract: with ``ybr_pair() -> (device YCbCr, pydicom's YCbCr)`` :func:`device_ybr_and_rgb_agreement`,
    without it RGB within ``DEVICE_YCBCR_RGB_MAX * ybr_max``. Returns the RGB Agreement."""
    from gpudcm.tolerance import agreement

    agree = agreement(got, ref, transfer_syntax, alt=alt)
    if agree.ok:
        return agree
    assert ycbcr_rgb, str(agree)
    if ybr_pair is not None:
        ybr, ref_ybr = ybr_pair()
        return device_ybr_and_rgb_agreement(ybr, got, ref_ybr, ref, transfer_syntax, ybr_max)[1]
    assert agree.shape_ok and agree.dtype_ok and agree.max <= DEVICE_YCBCR_RGB_MAX * ybr_max, str(agree)
    return agree


def device_ybr_and_rgb_agreement(ybr, rgb, ref_ybr, ref_rgb, transfer_syntax, ybr_max: int = 1):
    """The device decode of a YCbCr JPEG file against pydicom's (YCbCr `ybr`, RGB `rgb`; pydicom's
    `ref_ybr`, `ref_rgb`): YCbCr within 1 (nvJPEG's integer IDCT against Richter's, which keeps 4
    fraction bits through upsampling), RGB pydicom's own conversion of that YCbCr, which turns a 1 in Y
    and in Cb into up to 3 (B = Y + 1.772 Cb'; as on 4:4:4, where nothing is upsampled), so RGB within 3.
    `ybr_max` 2 (the tolerance) for the real nvJPEG, whose IDCT is not libjpeg-turbo's (RGB then within 6).
    Asserts all of it; returns the two Agreements."""
    from gpudcm.tolerance import agreement

    agree = agreement(ybr, ref_ybr, transfer_syntax)
    assert agree.ok and agree.max <= ybr_max, f"YCbCr: {agree}"
    np.testing.assert_array_equal(rgb, convert_color_space(np.asarray(ybr), "YBR_FULL", "RGB", per_frame=True))
    rgb_agree = agreement(rgb, ref_rgb, transfer_syntax)
    assert rgb_agree.max <= DEVICE_YCBCR_RGB_MAX * ybr_max, f"RGB: {rgb_agree}"
    return agree, rgb_agree
