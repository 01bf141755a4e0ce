"""JPEG 2000 / HTJ2K on the GPU through nvImageCodec's Python API, finished as pydicom finishes J2K frames.

:func:`pydicom_j2k_finish` is array-module generic (NumPy or CuPy): it turns a decoder's raw frame
(dtype from the codestream: container by precision, signedness by the SIZ Ssiz bit) into pydicom's
values (``pylibjpeg`` plugin + ``decoders/base.py`` ``_apply_sign_correction``). nvImageCodec is
imported only when :func:`decode_batch` runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DecodeError, DeviceUnavailable
from ..jpeg_markers import J2kInfo
from ..spec import PixelSpec


def container_bits(precision: int) -> int:
    """Bits of the container pylibjpeg-openjpeg (and pydicom) uses for a J2K `precision`."""
    if precision <= 8:
        return 8
    if precision <= 16:
        return 16
    return 32


def finished_photometric(photometric: str) -> str:
    """pydicom's photometric interpretation after a J2K decode: YBR_ICT/YBR_RCT come back as RGB
    (the decoder inverts the codestream's component transform)."""
    return "RGB" if photometric in ("YBR_ICT", "YBR_RCT") else photometric


def pydicom_j2k_finish(raw, info: J2kInfo, spec: PixelSpec, xp=np):
    """pydicom's values for one decoded J2K frame `raw` (shape (rows, cols[, samples])).

    pydicom reads the decoder's bytes as a (PixelRepresentation)-signed integer of the precision's
    container size, casts that into the Bits Allocated dtype, and, for MONOCHROME data only
    (``DecodeRunner._test_for("sign_correction")``), where the codestream's signedness differs from Pixel
    Representation sign-extends (or masks) from the J2K precision within the output dtype.
    """
    bits = container_bits(info.precision)
    if raw.dtype.itemsize * 8 != bits:
        raise DecodeError(f"J2K decoder returned {raw.dtype} for precision {info.precision}", source=spec.source)
    kind = "i" if spec.pixel_representation else "u"
    arr = raw.view(np.dtype(f"{kind}{bits // 8}")).astype(spec.dtype, copy=True)
    if spec.photometric_interpretation not in ("MONOCHROME1", "MONOCHROME2"):
        return arr
    shift = 8 * arr.dtype.itemsize - info.precision
    if shift and int(info.is_signed) != spec.pixel_representation:
        arr <<= shift
        arr >>= shift
    return arr


def finish_frame(item, info: J2kInfo, spec: PixelSpec, xp=np):
    """pydicom's values from one item nvImageCodec returned ((H, W, C) in its dtype; see
    tests/harness/standins.py for the contract); DecodeError for a failed item or an unexpected dtype."""
    if item is None:
        raise DecodeError("nvImageCodec could not decode the frame", source=spec.source)
    arr = xp.asarray(item)  # __cuda_array_interface__: no host copy
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    want = np.dtype(("i" if info.is_signed else "u") + str(container_bits(info.precision) // 8))
    if arr.dtype != want:
        raise DecodeError(f"nvImageCodec returned {arr.dtype} for {info.precision}-bit "
                          f"{'signed' if info.is_signed else 'unsigned'} data", source=spec.source)
    return pydicom_j2k_finish(arr, info, spec, xp=xp)


def _nvimgcodec():
    try:
        from nvidia import nvimgcodec
    except ImportError as exc:
        raise DeviceUnavailable(f"nvImageCodec is not importable ({exc}); pip install 'gpudcm[j2k]'") from exc
    return nvimgcodec


_decoders: dict[int, object] = {}


# color_spec UNCHANGED: on a bare codestream nvImageCodec sets no RGB output (its nvjpeg2k extension's
# rgb_output is only for sRGB JP2 boxes), so YBR_FULL samples come back as coded; allow_any_depth keeps
# the codestream's precision instead of rescaling to uint8.
DECODE_PARAMS = {"color_spec": "UNCHANGED", "allow_any_depth": True}


def decode_batch(frames: Sequence[bytes], infos: Sequence[J2kInfo], spec: PixelSpec) -> list:
    """Decode J2K/HTJ2K frames of one dataset with one nvImageCodec batch; returns what nvImageCodec
    returns, one item per frame: a CuPy array (H, W, C) in nvImageCodec's dtype, or None where it failed.
    :func:`finish_frame` turns an item into pydicom's values."""
    import cupy

    nvimgcodec = _nvimgcodec()
    device = cupy.cuda.Device().id
    dec = _decoders.get(device)
    if dec is None:
        dec = _decoders[device] = nvimgcodec.Decoder(device_id=device)
    params = nvimgcodec.DecodeParams(color_spec=getattr(nvimgcodec.ColorSpec, DECODE_PARAMS["color_spec"]),
                                     allow_any_depth=DECODE_PARAMS["allow_any_depth"])
    streams = [nvimgcodec.CodeStream(bytes(f)) for f in frames]
    images = dec.decode(streams, params=params, cuda_stream=cupy.cuda.get_current_stream().ptr)
    return [None if img is None else cupy.asarray(img) for img in images]
