"""A stand-in for the parts of nvImageCodec's Python encoder gpudcm uses, keeping its contract.

From NVIDIA/nvImageCodec ``python/encoder.cpp`` (``Encoder.encode`` docstring and body),
``python/jpeg2k_encode_params.cpp`` and ``python/quality_type.cpp``:

- ``Encoder.encode(image_s, codec, params=None, cuda_stream=0)``: a list of images gives a list of
  ``bytes`` in which an image that failed is *left out* ("it will not be included in output"; the list is
  shorter), or, with ``failed_as_none=True`` here, ``None`` in its place (how newer releases may answer);
  a single image gives ``bytes`` or ``None``.
- ``Jpeg2kEncodeParams``: ``reversible`` (default False), ``num_resolutions`` (6: decompositions + 1),
  ``code_block_size`` (64, 64), ``bitstream_type`` (default JP2), ``prog_order`` (default RPCL), ``ht``.
- The codestream is JPEG 2000 Part 1 (``ht`` False) or Part 15 (``ht`` True) with the image's sample type
  as precision (uint8 -> 8, uint16 -> 16, int16 -> signed 16: ``as_image`` has no precision argument) and
  no TLM marker segment (nothing asks nvImageCodec for one).

The codestreams are produced by OpenJPEG / OpenJPH (imagecodecs) with those settings: real codestreams, not
the CPU path's answer (that one writes Bits Stored as precision and TLM for RPCL). ``fail(array) -> bool``
picks the images that fail. Host (NumPy) arrays stand for the device arrays. Known difference: the JPEG 2000
(non-HT) codestreams come in OpenJPEG's LRCP order (imagecodecs sets no progression), nvImageCodec's in RPCL;
the writer accepts either outside HTJ2K Lossless RPCL, for which the missing TLM already sends frames to the
CPU.
"""

from __future__ import annotations

import enum
from types import SimpleNamespace

import imagecodecs
import numpy as np


class QualityType(enum.Enum):
    DEFAULT = 0
    LOSSLESS = 1
    QUALITY = 2
    QUANTIZATION_STEP = 3
    PSNR = 4
    SIZE_RATIO = 5


class Jpeg2kBitstreamType(enum.Enum):
    J2K = 0
    JP2 = 1


class Jpeg2kProgOrder(enum.Enum):
    LRCP = 0
    RLCP = 1
    RPCL = 2
    PCRL = 3
    CPRL = 4


class Jpeg2kEncodeParams:
    def __init__(self):
        self.reversible = False
        self.num_resolutions = 6
        self.code_block_size = (64, 64)
        self.bitstream_type = Jpeg2kBitstreamType.JP2
        self.prog_order = Jpeg2kProgOrder.RPCL
        self.ht = False


class EncodeParams:
    def __init__(self, quality_type=QualityType.DEFAULT, quality_value=0.0, jpeg2k_encode_params=None, **_):
        self.quality_type = quality_type
        self.quality_value = quality_value
        self.jpeg2k_encode_params = jpeg2k_encode_params or Jpeg2kEncodeParams()


def as_image(arr):
    return SimpleNamespace(array=np.asarray(arr))


class Encoder:
    calls: list  # (number of images, codec) per encode call

    def __init__(self, device_id=0, *, fail=lambda arr: False, failed_as_none=False):
        self.fail = fail
        self.failed_as_none = failed_as_none
        self.calls = []

    def _one(self, image, params: EncodeParams) -> bytes | None:
        arr = image.array
        if self.fail(arr) or arr.dtype not in (np.uint8, np.uint16, np.int16):
            return None
        j2k = params.jpeg2k_encode_params
        if j2k.bitstream_type != Jpeg2kBitstreamType.J2K:
            raise NotImplementedError("the stand-in writes raw codestreams only")
        lossless = params.quality_type == QualityType.LOSSLESS
        levels = j2k.num_resolutions - 1
        if j2k.ht:
            level = None if lossless else float(params.quality_value)
            return bytes(imagecodecs.htj2k_encode(arr, level, reversible=lossless, resolutions=levels))
        level = None if lossless else float(params.quality_value)
        return bytes(imagecodecs.jpeg2k_encode(arr, level, codecformat="J2K", reversible=lossless,
                                               resolutions=levels + 1, bitspersample=arr.dtype.itemsize * 8))

    def encode(self, image_s, codec, params=None, cuda_stream=0):
        assert codec == "jpeg2k"
        params = params or EncodeParams()
        if not isinstance(image_s, list):
            self.calls.append((1, codec))
            return self._one(image_s, params)
        self.calls.append((len(image_s), codec))
        out = [self._one(img, params) for img in image_s]
        return out if self.failed_as_none else [b for b in out if b is not None]


module = SimpleNamespace(Encoder=Encoder, EncodeParams=EncodeParams, Jpeg2kEncodeParams=Jpeg2kEncodeParams,
                         Jpeg2kBitstreamType=Jpeg2kBitstreamType, Jpeg2kProgOrder=Jpeg2kProgOrder,
                         QualityType=QualityType, as_image=as_image)
