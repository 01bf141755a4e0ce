"""The CPU path: frames decoded by the codec registry (gpudcm.codecs: imagecodecs first, pydicom's
plugins last) with pydicom's post-processing, or by pydicom's own decoder where no faster backend
applies; errors wrapped.

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
from . import codecs
from .codecs import processes
from .codecs.decode import FastBackendFailed
from .frames import extended_offsets, frame_bytes, frame_extents
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


def _plan(ds: Dataset, spec: PixelSpec) -> tuple[object, list, bool] | None:
    """(pixel bytes, frame extents, whether the first frame's backend releases the GIL) when the registry
    decodes `ds` frame by frame, None when pydicom's own whole-file path should (the fragments do not split
    into exactly Number of Frames frames: pydicom's excess-frame and error rules then apply; or pydicom's
    plugins would decode the first frame anyway)."""
    buffer = ds[spec.pixel_keyword].value
    try:
        extents = frame_extents(spec, buffer, extended_offsets=extended_offsets(ds))
    except GpudcmError:
        return None
    if len(extents) != spec.number_of_frames:
        return None
    first = frame_bytes(buffer, extents[0])
    try:
        backend, _ = codecs.choose(spec, codecs.frame_info(spec, first))
    except GpudcmError:
        return None
    return buffer, extents, not backend.finished


def _use_plan(plan, spec: PixelSpec, frames: int, threads: int | None) -> bool:
    """Fast backends always; pydicom's plugins only for long files on a process pool."""
    if plan is None:
        return False
    if plan[2]:
        return True
    return spec.is_encapsulated and processes.usable(frames, threads or codecs.default_threads())


def releases_gil(ds: Dataset, spec: PixelSpec) -> bool:
    """Whether `ds` decodes through a registry backend that releases the GIL (threads then scale)."""
    plan = _plan(ds, spec)
    return plan is not None and plan[2]


def _decode_planned(plan, spec: PixelSpec, wanted: list[int], raw: bool, as_rgb: bool, threads: int | None) -> np.ndarray:
    buffer, extents, _ = plan
    out = np.empty((len(wanted), *spec.frame_shape), dtype=spec.dtype)
    frames = [frame_bytes(buffer, extents[i]) for i in wanted]
    codecs.decode_frames(spec, frames, out, raw=raw, as_rgb=as_rgb, threads=threads,
                         bit_offsets=[extents[i][0].bit_offset for i in wanted], first_index=wanted, fallback=False)
    return out


def decode(ds: Dataset, spec: PixelSpec, *, index: int | None = None, raw: bool = False, as_rgb: bool = True,
           threads: int | None = None) -> np.ndarray:
    """All frames (``index=None``) or one frame of `ds`, as ``pydicom.pixels.pixel_array`` gives them.

    Frames are decoded from their extents by the codec registry (gpudcm.codecs), on `threads` threads
    (default: all cores) where the codec releases the GIL; files no faster backend takes go through
    pydicom's decoder whole."""
    plan = _plan(ds, spec)
    wanted = list(range(spec.number_of_frames)) if index is None else [index]
    if not _use_plan(plan, spec, len(wanted), threads):
        return _pydicom_decode(ds, spec, index, raw, as_rgb)
    try:
        out = _decode_planned(plan, spec, wanted, raw, as_rgb, threads)
    except FastBackendFailed:  # pydicom decides, with its plugin state carried from frame to frame
        return _pydicom_decode(ds, spec, index, raw, as_rgb)
    return out[0] if index is not None or spec.number_of_frames == 1 else out


def _pydicom_decode(ds: Dataset, spec: PixelSpec, index: int | None, raw: bool, as_rgb: bool) -> np.ndarray:
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
    plan = _plan(ds, spec)
    if plan is not None and plan[2]:
        for i in indices if indices is not None else range(spec.number_of_frames):
            try:
                yield _decode_planned(plan, spec, [i], raw, as_rgb, 1)[0]
            except FastBackendFailed:
                yield _pydicom_decode(ds, spec, i, raw, as_rgb)
        return
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
