"""The CPU codec registry: per transfer syntax, the backends that decode its frames, fastest first.

Each :class:`Backend` says whether its library is installed (``is_available``), what frames it takes
(``reason_not(spec, info)`` gives why not, or None) and whether it releases the GIL (so frames may go to
threads). ``capabilities()``, the CPU path and the device path's CPU fallback all ask :func:`choose`.
A fast backend is registered for a lossless syntax only where it is bit-exact with pydicom on every
corpus file (tests/test_codecs.py); pydicom's own plugins are always last, so whatever pydicom decodes
is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.uid import (
    UID,
    HTJ2K,
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from ..spec import PixelSpec
from . import imagecodecs_codecs as icc
from . import native, pydicom_plugins

# decode(data, spec) -> raw samples shaped (rows, cols[, samples]) in the codec's container dtype,
# before pydicom's rules (unused bits, sign, colour); a `finished` backend applies them itself.
DecodeFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Backend:
    name: str  # e.g. "imagecodecs-libjpeg-turbo"
    library: str  # the distribution a user installs
    decode: DecodeFn
    available: Callable[[str], bool]  # installed for this transfer syntax
    reason_not: Callable[[PixelSpec, Any], str | None]  # None when it takes the frame
    releases_gil: bool
    finished: bool = False  # output already has pydicom's post-processing applied (raw/as_rgb passed in)
    # decode_into(data, spec, info, out) -> bool: the codec's samples written straight into the output frame
    # (True), or not taken (False: `decode` then runs); pydicom's rules follow either way
    decode_into: Callable[..., bool] | None = None

    def is_available(self, transfer_syntax: str) -> bool:
        return self.available(str(transfer_syntax))


def _always(spec: PixelSpec, info: Any) -> str | None:
    return None


def _anywhere(transfer_syntax: str) -> bool:
    return True


NUMPY = Backend("numpy", "numpy", native.decode, _anywhere, native.reason_not, True)
PYDICOM_NATIVE = Backend("pydicom", "pydicom", pydicom_plugins.decode, _anywhere, _always, False, finished=True)
PYDICOM = Backend("pydicom-plugins", "pydicom plugins (gpudcm[codecs])", pydicom_plugins.decode,
                  pydicom_plugins.usable, _always, False, finished=True)
LIBJPEG_TURBO = Backend("imagecodecs-libjpeg-turbo", "imagecodecs", icc.jpeg_decode, icc.has("jpeg8"),
                        icc.jpeg_reason_not, True, decode_into=icc.jpeg_decode_into)
CHARLS = Backend("imagecodecs-charls", "imagecodecs", icc.jpegls_decode, icc.has("jpegls"), icc.jpegls_reason_not, True)
OPENJPH = Backend("imagecodecs-openjph", "imagecodecs", icc.htj2k_decode, icc.has("htj2k"), icc.htj2k_reason_not, True)
OPENJPEG = Backend("imagecodecs-openjpeg", "imagecodecs", icc.j2k_decode, icc.has("jpeg2k"), icc.j2k_reason_not, True)
RLE = Backend("imagecodecs-dicomrle", "imagecodecs", icc.rle_decode, icc.has("dicomrle"), icc.rle_reason_not, True,
              decode_into=icc.rle_decode_into)

_NATIVE = (NUMPY, PYDICOM_NATIVE)
_LOSSY_JPEG = frozenset({str(JPEGBaseline8Bit), str(JPEGExtended12Bit)})
REGISTRY: dict[str, tuple[Backend, ...]] = {
    ImplicitVRLittleEndian: _NATIVE,
    ExplicitVRLittleEndian: _NATIVE,
    ExplicitVRBigEndian: _NATIVE,
    DeflatedExplicitVRLittleEndian: _NATIVE,
    JPEGBaseline8Bit: (LIBJPEG_TURBO, PYDICOM),
    JPEGExtended12Bit: (LIBJPEG_TURBO, PYDICOM),
    JPEGLossless: (LIBJPEG_TURBO, PYDICOM),
    JPEGLosslessSV1: (LIBJPEG_TURBO, PYDICOM),
    JPEGLSLossless: (CHARLS, PYDICOM),
    JPEGLSNearLossless: (CHARLS, PYDICOM),
    JPEG2000Lossless: (OPENJPEG, PYDICOM),
    JPEG2000: (OPENJPEG, PYDICOM),
    HTJ2KLossless: (OPENJPH, OPENJPEG, PYDICOM),
    HTJ2KLosslessRPCL: (OPENJPH, OPENJPEG, PYDICOM),
    HTJ2K: (OPENJPH, OPENJPEG, PYDICOM),
    RLELossless: (RLE, PYDICOM),
}


def backends(transfer_syntax: str) -> tuple[Backend, ...]:
    """The registered backends for `transfer_syntax`, fastest first (pydicom's plugins last)."""
    return REGISTRY.get(str(transfer_syntax), (PYDICOM,))


def available(transfer_syntax: str) -> tuple[Backend, ...]:
    """The installed backends for `transfer_syntax`, fastest first."""
    return tuple(b for b in backends(transfer_syntax) if b.is_available(transfer_syntax))


def choose(spec: PixelSpec, info: Any = None) -> tuple[Backend, str]:
    """The first installed backend that takes a frame of `spec` (with its codestream `info`), and why
    the faster ones did not (empty when the first took it). Raises when nothing is installed."""
    from ..errors import UnsupportedTransferSyntax

    skipped = []
    ts = str(spec.transfer_syntax)
    for b in backends(ts):
        if not b.is_available(ts):  # asked only when reached: pydicom's availability check takes ~40 us
            continue
        why = b.reason_not(spec, info)
        if why is None:
            return b, "; ".join(skipped)
        skipped.append(f"{b.name}: {why}")
    raise UnsupportedTransferSyntax(
        f"{spec.source}: no CPU decoder for {spec.transfer_syntax.name} ({pydicom_plugins.missing(spec.transfer_syntax)})"
    )


def describe(transfer_syntax: UID) -> tuple[bool, str]:
    """(some backend is installed, "CPU backends, fastest first: ...") for ``capabilities()``."""
    from pydicom.pixels import get_decoder

    try:
        get_decoder(transfer_syntax)
    except NotImplementedError:
        return False, "pydicom has no decoder for this transfer syntax"
    found = available(str(transfer_syntax))
    if not found:
        return False, pydicom_plugins.missing(transfer_syntax)
    names = [
        f"pydicom ({', '.join(pydicom_plugins.plugin_names(transfer_syntax))})" if b is PYDICOM else b.name
        for b in found
    ]
    text = "CPU backends, fastest first: " + ", ".join(names)
    if LIBJPEG_TURBO in found and str(transfer_syntax) in _LOSSY_JPEG:
        text += (f" ({LIBJPEG_TURBO.name} for frames whose header class is proven within the lossy tolerance "
                 "of pydicom's decode: 8-bit grey and stored RGB 4:4:4; YCbCr colour and 12-bit go to pydicom)")
    return True, text
