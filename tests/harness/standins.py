"""CI stand-ins for the GPU JPEG libraries, keeping their contracts (what the library returns, not what
gpudcm's CPU path returns). Each produces the library's kind of output with an independent CPU codec;
gpudcm's device path then does everything it does after the real library (upsampling, Bits Stored
correction, sign correction, colour conversion) through the host build of its kernels.

nvJPEG (``gpudcm.cuda.nvjpeg.decode_batch``; contract from ``nvjpeg.h`` 13.3 in the ``nvidia-nvjpeg``
wheel and https://docs.nvidia.com/cuda/nvjpeg/index.html):

- ``mode="dct"`` (``NVJPEG_OUTPUT_UNCHANGED``, default/hardware backend): per frame a list of uint8
  component planes, each at the component's own size (ceil(X * H / Hmax) x ceil(Y * V / Vmax), T.81 A.1.1):
  chroma is not upsampled, nothing is colour converted, Bits Stored is not applied. Here: the system
  libjpeg-turbo's ``jpeg_read_raw_data`` (tests/harness/raw_jpeg.c), which returns exactly those planes.
- ``mode="lossless"`` (``NVJPEG_BACKEND_LOSSLESS_JPEG``, ``NVJPEG_OUTPUT_UNCHANGEDI_U16``): per frame one
  uint16 (rows, cols, components) array of the decoded samples as coded (no mask, no sign extension);
  the backend takes process 14 with selection value 1 and at most 2 components ("Lossless JPEG ...
  supported with ... up to 2 channels"). Here: imagecodecs' jpegsof3 decoder, cast to uint16.
- A stream the chosen backend does not take makes ``nvjpegDecodeBatched`` return an error status for the
  whole call (``NVJPEG_STATUS_JPEG_NOT_SUPPORTED`` / ``NVJPEG_STATUS_BAD_JPEG``): the binding raises
  :class:`~gpudcm.errors.DecodeError` through ``nvjpeg.check``; so does this stand-in.

nvImageCodec (``gpudcm.cuda.j2k.decode_batch``; contract from the nvImageCodec 0.9 sources:
``python/decoder.cpp``, ``extensions/nvjpeg2k/cuda_decoder.cpp``, https://docs.nvidia.com/cuda/nvimagecodec/):

- ``Decoder.decode(code_streams, params)`` returns one item per stream: an image whose array is
  (H, W, C) interleaved, C = 1 for grey (never 2-D), or ``None`` where that stream failed.
- dtype (``allow_any_depth=True``): from component 0's SIZ precision and sign: uint8 for unsigned <= 8
  bits, uint16 for unsigned 9-16, int16 for signed 9-16; signed <= 8 bits and precision > 16 fail
  (``None``). Every component gets component 0's type. Values are the codestream's, not rescaled.
- ``color_spec=UNCHANGED`` on a bare codestream: no colour conversion besides the codestream's own
  inverse component transform (``rgb_output`` is set only for sRGB JP2 boxes).
Here: imagecodecs' OpenJPEG binding (a different binding from pydicom's pylibjpeg-openjpeg).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gpudcm.cuda.nvjpeg import check
from gpudcm.cuda.upsample import component_shapes
from gpudcm.jpeg_markers import J2kInfo, JpegInfo
from tests.harness.hostbuild import build

HERE = Path(__file__).resolve().parent
NVJPEG_STATUS_BAD_JPEG = 3
NVJPEG_STATUS_JPEG_NOT_SUPPORTED = 4


@functools.lru_cache(maxsize=1)
def _raw_jpeg() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build(sources=[HERE / "raw_jpeg.c"], libs=("-ljpeg",), name="gpudcm_raw_jpeg")))
    vp, ul, ip, cp, i = ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_int
    lib.gd_raw_jpeg_decode.argtypes = [cp, ul, ctypes.POINTER(vp), cp, i]
    lib.gd_raw_jpeg_decode.restype = i
    return lib


def _nvjpeg_takes(info: JpegInfo, mode: str) -> bool:
    """Whether the backend of `mode` decodes the stream (else nvjpegDecodeBatched fails)."""
    if info.sof == 0xF7 or info.hierarchical or info.arithmetic:
        return False
    if mode == "dct":
        return info.sof in (0xC0, 0xC1, 0xC2) and info.precision == 8 and info.samples in (1, 3)
    return info.sof == 0xC3 and info.predictor == 1 and not info.point_transform and info.samples <= 2


def raw_planes(frame: bytes, info: JpegInfo) -> list[np.ndarray]:
    """The component planes libjpeg's raw-data decode returns, at their real size."""
    planes = [np.zeros(s, dtype=np.uint8) for s in component_shapes(info)]
    ptrs = (ctypes.c_void_p * len(planes))(*[p.ctypes.data for p in planes])
    msg = ctypes.create_string_buffer(256)
    if _raw_jpeg().gd_raw_jpeg_decode(bytes(frame), len(frame), ptrs, msg, 256):
        check(NVJPEG_STATUS_BAD_JPEG, f"nvjpegDecodeBatched (stand-in: {msg.value.decode(errors='replace')})")
    return planes


def nvjpeg_decode_batch(frames: Sequence[bytes], infos: Sequence[JpegInfo], mode: str) -> list:
    """Stand-in for :func:`gpudcm.cuda.nvjpeg.decode_batch` (contract in the module docstring)."""
    import imagecodecs

    if any(not _nvjpeg_takes(info, mode) for info in infos):
        check(NVJPEG_STATUS_JPEG_NOT_SUPPORTED, "nvjpegDecodeBatched")
    if mode == "dct":
        return [raw_planes(f, info) for f, info in zip(frames, infos)]
    out = []
    for f, info in zip(frames, infos):
        arr = imagecodecs.jpegsof3_decode(bytes(f)).astype(np.uint16)
        out.append(arr.reshape(info.rows, info.columns, info.samples))
    return out


def _nvimgcodec_dtype(info: J2kInfo) -> np.dtype | None:
    precision, signed = info.precisions[0], info.signed[0]
    if precision > 16 or (signed and precision <= 8):
        return None
    return np.dtype(("i" if signed else "u") + ("1" if precision <= 8 else "2"))


def nvimgcodec_decode_batch(frames: Sequence[bytes], infos: Sequence[J2kInfo], spec) -> list:
    """Stand-in for :func:`gpudcm.cuda.j2k.decode_batch` (contract in the module docstring)."""
    import imagecodecs

    out: list = []
    for f, info in zip(frames, infos):
        dtype = _nvimgcodec_dtype(info)
        try:
            arr = imagecodecs.jpeg2k_decode(bytes(f)) if dtype is not None else None
        except Exception:  # nvImageCodec reports a failed stream as None, it does not raise
            arr = None
        if arr is None:
            out.append(None)
            continue
        arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
        out.append(arr.astype(np.int64).astype(dtype) if arr.dtype.itemsize != dtype.itemsize else arr.view(dtype))
    return out


def decoders() -> dict:
    """The stand-ins keyed as ``jpeg_path`` names its decoders."""
    return {"nvjpeg": nvjpeg_decode_batch, "j2k": nvimgcodec_decode_batch}
