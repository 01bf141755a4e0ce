"""HTJ2K / JPEG 2000 encoding on the GPU with nvImageCodec, straight from a CuPy array, one batch per call.

The contract relied on (nvImageCodec's Python API, ``python/encoder.cpp`` ``Encoder.encode`` docstring
and body, and ``jpeg2k_encode_params.cpp``; NVIDIA/nvImageCodec):

- ``nvimgcodec.as_image(cupy_array)`` wraps device memory (``__cuda_array_interface__``) without a copy;
  shape (rows, cols) or (rows, cols, channels), dtype uint8/uint16/int16.
- ``Encoder.encode(list_of_images, "jpeg2k", params=EncodeParams(...), cuda_stream=int)`` returns a list
  of ``bytes``; an image that fails is logged and *left out of the list* (the list is then shorter, so
  which one failed is unknown), newer releases may put ``None`` in its place. A single image (not a
  list) gives ``bytes`` or ``None``. Both cases are handled here: a short list or a ``None`` sends the
  batch's frames one by one, and a frame that still fails goes to the CPU encoder.
- ``EncodeParams(quality_type=QualityType.LOSSLESS | PSNR | QUANTIZATION_STEP, quality_value=float,
  jpeg2k_encode_params=Jpeg2kEncodeParams)``; ``Jpeg2kEncodeParams`` has ``reversible``,
  ``num_resolutions`` (decompositions + 1), ``code_block_size``, ``bitstream_type`` (J2K: a raw
  codestream, what DICOM holds; the default is JP2), ``prog_order`` (default RPCL) and ``ht`` (HT block
  coding).

Single-sample frames only (the colour transform is not exposed the way DICOM names it). Every codestream is
checked by :mod:`gpudcm.encoders.verify` before it is written; one that fails the check is encoded again
on the CPU.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .syntaxes import Request
from .verify import rpcl_levels

_encoders: dict[int, Any] = {}


def unavailable(req: Request | None = None) -> str | None:
    """Why the GPU encoder cannot take `req` (or cannot run at all), or None."""
    if req is not None and req.rule.family == "jpegls":
        return "nvImageCodec has no JPEG-LS encoder"
    if req is not None and req.samples != 1:
        return "the GPU encoder takes single-sample frames (colour goes to the CPU encoder)"
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed"
    try:
        spec = importlib.util.find_spec("nvidia.nvimgcodec")
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return "nvImageCodec is not installed (pip install 'gpudcm[j2k]')"
    return None


def _module():
    from nvidia import nvimgcodec

    return nvimgcodec


def params(nvimgcodec, req: Request):
    """nvImageCodec EncodeParams for `req`."""
    j2k = nvimgcodec.Jpeg2kEncodeParams()
    j2k.reversible = req.lossless
    j2k.bitstream_type = nvimgcodec.Jpeg2kBitstreamType.J2K
    j2k.prog_order = nvimgcodec.Jpeg2kProgOrder.RPCL
    j2k.num_resolutions = rpcl_levels(req.rows, req.columns) + 1
    j2k.code_block_size = (64, 64)
    j2k.ht = req.rule.family == "htj2k"
    if req.lossless:
        quality = {"quality_type": nvimgcodec.QualityType.LOSSLESS}
    elif req.rule.family == "htj2k":
        # nvImageCodec: "by how much pixel data will be divided", in sample units; ours is relative to 2**BitsStored
        quality = {"quality_type": nvimgcodec.QualityType.QUANTIZATION_STEP,
                   "quality_value": float(req.quality) * 2.0 ** req.bits_stored}
    else:
        quality = {"quality_type": nvimgcodec.QualityType.PSNR, "quality_value": float(req.quality)}
    return nvimgcodec.EncodeParams(jpeg2k_encode_params=j2k, **quality)


def encode_batch(frames, req: Request, *, nvimgcodec=None) -> list[bytes | None]:
    """Encode the frames of a CuPy array (frames, rows, cols) in one nvImageCodec call; ``None`` where a
    frame could not be encoded. `nvimgcodec` replaces the module (the test stand-in)."""
    import cupy

    nv = nvimgcodec or _module()
    device = cupy.cuda.Device().id
    key = (id(nv), device)
    enc = _encoders.get(key)
    if enc is None:
        enc = _encoders[key] = nv.Encoder(device_id=device)
    p = params(nv, req)
    frames = cupy.ascontiguousarray(frames)
    images = [nv.as_image(frames[i]) for i in range(frames.shape[0])]
    return collect(enc, images, p, cupy.cuda.get_current_stream().ptr)


def collect(enc, images: list, p, stream: int) -> list[bytes | None]:
    """One batched ``enc.encode`` call; where the list comes back short or with ``None`` (a frame failed,
    see the contract above), the frames again one by one: ``bytes`` or ``None`` each."""
    out = enc.encode(images, "jpeg2k", params=p, cuda_stream=stream)
    if out is not None and len(out) == len(images) and all(b is not None for b in out):
        return [bytes(b) for b in out]
    return [None if (b := enc.encode(img, "jpeg2k", params=p, cuda_stream=stream)) is None else bytes(b)
            for img in images]
