"""The NumPy path: pydicom's own decoders (and its pylibjpeg/pyjpegls/... plugins), errors wrapped.

The result equals ``pydicom.pixels.pixel_array`` for the same options, with the dtype converted to
native byte order (pydicom returns big-endian dtypes for big-endian transfer syntaxes).
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import Decoder

from .errors import DecodeError, GpudcmError, UnsupportedTransferSyntax
from .spec import PixelSpec


def decoder_for(spec: PixelSpec) -> Decoder:
    """pydicom's decoder for the transfer syntax, or a clear error naming what is missing."""
    try:
        decoder = get_decoder(spec.transfer_syntax)
    except NotImplementedError as exc:
        raise UnsupportedTransferSyntax(
            f"{spec.source}: pydicom has no decoder for {spec.transfer_syntax.name} ({spec.transfer_syntax})"
        ) from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies) or "no plugin"
        raise UnsupportedTransferSyntax(
            f"{spec.source}: no CPU plugin is installed for {spec.transfer_syntax.name}: {missing} "
            "(pip install 'gpudcm[codecs]')"
        )
    return decoder


def native_order(arr: np.ndarray) -> np.ndarray:
    """`arr` with its dtype in native byte order (values unchanged)."""
    if arr.dtype.isnative:
        return arr
    return arr.astype(arr.dtype.newbyteorder("="))


_INTERRUPTS = (KeyboardInterrupt, SystemExit, GeneratorExit)


def _wrap(exc: BaseException, spec: PixelSpec, frame: int | None) -> GpudcmError:
    if isinstance(exc, GpudcmError):
        return exc
    msg = " ".join(str(exc).split())
    return DecodeError(f"{spec.transfer_syntax.name} decode failed: {type(exc).__name__}: {msg}", source=spec.source, frame=frame)


def decode(ds: Dataset, spec: PixelSpec, *, index: int | None = None, raw: bool = False, as_rgb: bool = True,
           threads: int | None = None) -> np.ndarray:
    """All frames (``index=None``) or one frame of `ds` (which holds its pixel element), as
    ``pydicom.pixels.pixel_array`` gives them (through :func:`gpudcm.frame_decode.decode_frames`)."""
    from .frame_decode import decode_frames
    from .reader import PixelReader

    reader = PixelReader(ds, spec, ds[spec.pixel_keyword].value, dataset_given=True)
    if index is None:
        return decode_frames(reader, None, raw=raw, as_rgb=as_rgb, threads=threads)
    return decode_frames(reader, [index], raw=raw, as_rgb=as_rgb, threads=threads)[0]
