"""The NumPy path: pydicom's own decoders (and its pylibjpeg/pyjpegls/... plugins), errors wrapped.

The result equals ``pydicom.pixels.pixel_array`` for the same options, with the dtype converted to
native byte order (pydicom returns big-endian dtypes for big-endian transfer syntaxes).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.pixels.decoders.base import Decoder
from pydicom.pixels.utils import as_pixel_options

from .errors import DecodeError, GpudcmError, UnsupportedTransferSyntax
from .frames import native_extents
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


def _options(ds: Dataset, spec: PixelSpec, as_rgb: bool) -> dict:
    try:
        opts = as_pixel_options(ds, as_rgb=as_rgb)
    except Exception as exc:
        raise DecodeError(f"the pixel module could not be read: {exc}", source=spec.source) from exc
    return opts


_INTERRUPTS = (KeyboardInterrupt, SystemExit, GeneratorExit)


def _wrap(exc: BaseException, spec: PixelSpec, frame: int | None) -> GpudcmError:
    if isinstance(exc, GpudcmError):
        return exc
    msg = " ".join(str(exc).split())
    return DecodeError(f"{spec.transfer_syntax.name} decode failed: {type(exc).__name__}: {msg}", source=spec.source, frame=frame)


def _one_bit_frame(ds: Dataset, spec: PixelSpec, index: int) -> np.ndarray:
    """Frame `index` of native 1-bit data, from its extent.

    pydicom 3.0's per-frame reader reads ``ceil(frame bytes)`` from the frame's first byte, which is
    short when the frame starts mid-byte (it raises a reshape error); the whole-array decode is right,
    and this returns exactly its slice ``[index]``.
    """
    (extent,) = native_extents(spec)[index]
    view = np.frombuffer(ds[spec.pixel_keyword].value, dtype=np.uint8, count=extent.length, offset=extent.offset)
    bits = np.unpackbits(view, bitorder="little")[extent.bit_offset : extent.bit_offset + spec.frame_pixels]
    return bits.reshape(spec.shape(index))


def _uses_own_one_bit(spec: PixelSpec) -> bool:
    return spec.bits_allocated == 1 and not spec.is_encapsulated


def decode(ds: Dataset, spec: PixelSpec, *, index: int | None = None, raw: bool = False, as_rgb: bool = True) -> np.ndarray:
    """All frames (``index=None``) or one frame of `ds`, as ``pydicom.pixels.pixel_array`` gives them."""
    if index is not None and _uses_own_one_bit(spec):
        return _one_bit_frame(ds, spec, index)
    decoder = decoder_for(spec)
    opts = _options(ds, spec, as_rgb)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pydicom's padding notes; sizes are checked in spec
            arr, _ = decoder.as_array(ds, index=index, raw=raw, **opts)
    except _INTERRUPTS:
        raise
    except BaseException as exc:  # pylibjpeg-rle's Rust panics are BaseExceptions (pyo3 PanicException)
        raise _wrap(exc, spec, index) from exc
    return native_order(arr)


def iter_decode(
    ds: Dataset, spec: PixelSpec, indices: Iterable[int] | None = None, *, raw: bool = False, as_rgb: bool = True
) -> Iterator[np.ndarray]:
    """Yield frames one at a time (pydicom's ``iter_array``)."""
    if not spec.is_encapsulated:
        # one fresh pydicom runner per frame: pydicom 3.0's iter_array keeps the runner's state between
        # frames and, after the first YBR_FULL_422 frame, reads the rest as YBR_FULL (wrong values)
        for i in indices if indices is not None else range(spec.number_of_frames):
            yield decode(ds, spec, index=i, raw=raw, as_rgb=as_rgb)
        return
    decoder = decoder_for(spec)
    opts = _options(ds, spec, as_rgb)
    wanted = list(indices) if indices is not None else None
    it = decoder.iter_array(ds, indices=wanted, raw=raw, **opts)
    i = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                arr, _ = next(it)
        except StopIteration:
            return
        except _INTERRUPTS:
            raise
        except BaseException as exc:
            raise _wrap(exc, spec, wanted[i] if wanted and i < len(wanted) else i) from exc
        yield native_order(arr)
        i += 1
