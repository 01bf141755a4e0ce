"""Decode frames a :class:`~gpudcm.reader.PixelReader` reads, into a preallocated output: the one place the
CPU path turns frame bytes into pydicom's values.

Encapsulated frames go to the CPU codec registry (gpudcm.codecs: imagecodecs first, pydicom's plugins
last) where a fast backend takes them; otherwise frames go through pydicom's own decoders (and its
plugins), handed only the bytes of the frames asked for: native frames as a buffer of k frames (Number of Frames = k), encapsulated frames one at
a time re-encapsulated as a one-frame element. A whole encapsulated file goes to pydicom as a file-like
window on the element, so pydicom reads one frame at a time there too (and keeps its rules for frames past
Number of Frames). ``decode_frames`` is the seam where a codec registry decoding straight from frame
bytes plugs in.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from . import host_memory
from .codecs.decode import correct_unused_bits
from .cpu import _INTERRUPTS, _wrap, decoder_for, native_order
from .errors import GpudcmError
from .reader import PixelReader
from .spec import PixelSpec

# Native frames are decoded in runs of at most this many bytes (bounds the memory of a whole-file decode
# to the output plus one run and its decoded copy).
NATIVE_RUN_BYTES = 16 << 20


_DECODERS: dict = {}


def _decoder(spec: PixelSpec):
    """pydicom's decoder for the syntax (the object looked up once per syntax, its plugins' availability
    asked every time: they may be installed or patched at run time)."""
    decoder = _DECODERS.get(spec.transfer_syntax)
    if decoder is None or not decoder.is_available:
        decoder = decoder_for(spec)
        _DECODERS[spec.transfer_syntax] = decoder
    return decoder


def pixel_options(spec: PixelSpec, frames: int, extended_offsets=None, **extra) -> dict[str, Any]:
    """pydicom decoder options for `frames` frames of `spec`, from the spec (no dataset lookups)."""
    opts = {
        "transfer_syntax_uid": spec.transfer_syntax,
        "rows": spec.rows,
        "columns": spec.columns,
        "samples_per_pixel": spec.samples_per_pixel,
        "bits_allocated": spec.bits_allocated,
        "bits_stored": spec.bits_stored,
        "pixel_representation": spec.pixel_representation,
        "photometric_interpretation": spec.photometric_interpretation,
        "number_of_frames": frames,
        "pixel_keyword": spec.pixel_keyword,
        "pixel_vr": spec.pixel_vr,
    }
    if spec.samples_per_pixel > 1:
        opts["planar_configuration"] = spec.planar_configuration
    if extended_offsets is not None:
        opts["extended_offsets"] = extended_offsets
    opts.update(extra)
    return opts


def _pydicom(spec: PixelSpec, src, opts: dict, *, index: int | None, raw: bool, frame: int | None,
             validate: bool = False) -> np.ndarray:
    """pydicom's decode of `src`; `validate` only where pydicom's checks change what it does (a whole
    element: it drops a mismatched Extended Offset Table); pixel_spec has checked every size."""
    decoder = _decoder(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pydicom's padding notes; sizes are checked in spec
            arr, _ = decoder.as_array(src, index=index, raw=raw, validate=validate, **opts)
    except _INTERRUPTS:
        raise
    except BaseException as exc:  # pylibjpeg-rle's Rust panics are BaseExceptions (pyo3 PanicException)
        raise _wrap(exc, spec, frame) from exc
    return arr


# ------------------------------------------------------------------------------------------ native


def unpack_bits(reader: PixelReader, a: int, b: int) -> np.ndarray:
    """Frames a..b of native 1-bit data as 0/1 uint8 samples, flat (frames may start mid-byte)."""
    spec = reader.spec
    first, bit = divmod(a * spec.frame_bits, 8)
    last = -(-(b * spec.frame_bits) // 8)
    raw = np.frombuffer(reader.read_range(first, last), dtype=np.uint8)
    return np.unpackbits(raw, bitorder="little")[bit : bit + (b - a) * spec.frame_pixels]


def _native_run(reader: PixelReader, a: int, b: int, *, raw: bool, as_rgb: bool) -> np.ndarray:
    """Frames a..b (b > a) of a native element, shaped (b - a, *frame_shape), as pydicom decodes them."""
    spec = reader.spec
    if spec.bits_allocated == 1:
        return unpack_bits(reader, a, b).reshape((b - a, *spec.frame_shape))
    flen = spec.frame_bits // 8
    a0 = a - 1 if spec.swaps_ow and (a * flen) % 2 else a  # OW byte pairs: start on an even byte
    end = b * flen
    if spec.swaps_ow and end % 2:
        end = min(end + 1, spec.pixel_nbytes)
    data = reader.read_range(a0 * flen, end)
    opts = pixel_options(spec, b - a0, as_rgb=as_rgb)
    arr = _pydicom(spec, data, opts, index=None, raw=raw, frame=a)
    return arr.reshape((b - a0, *spec.frame_shape))[a - a0 :]


# Photometric interpretations pydicom's pixel_array leaves as stored (no colour conversion).
_AS_STORED = frozenset({"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB"})


def stored_as_decoded(spec: PixelSpec) -> bool:
    """Whether pydicom's decode of these native frames is their bytes as they are, up to its unused-bit
    correction (:func:`gpudcm.codecs.decode.correct_unused_bits`): little endian on a little-endian machine,
    whole bytes, no 4:2:2 expansion or colour conversion, interleaved samples. Such frames are read straight
    into the output (one read, no intermediate copy)."""
    return (spec.is_little_endian and _LITTLE_HOST and spec.bits_allocated >= 8
            and spec.photometric_interpretation in _AS_STORED and spec.planar_configuration == 0
            and not spec.is_ybr422_native)


_LITTLE_HOST = sys.byteorder == "little"


def swapped_as_decoded(spec: PixelSpec) -> bool:
    """Whether pydicom's decode of these native frames is their bytes with each sample's bytes reversed, up
    to its unused-bit correction: big endian on a little-endian machine, 8 to 64 bits a sample (8-bit OB
    samples: nothing to reverse; 8-bit OW: byte pairs across samples, taken only when every frame is an
    even number of bytes, so each frame's pairs are its own), otherwise as :func:`stored_as_decoded`.
    Such frames are read straight into the output and swapped there in place (:func:`swap_unit` bytes)."""
    return (not spec.is_little_endian and _LITTLE_HOST and spec.bits_allocated in (8, 16, 32, 64)
            and (not spec.swaps_ow or spec.frame_bits % 16 == 0) and spec.photometric_interpretation in _AS_STORED
            and spec.planar_configuration == 0 and not spec.is_ybr422_native)


def swap_unit(spec: PixelSpec) -> int:
    """Bytes reversed together for :func:`swapped_as_decoded` frames: a sample, or a pair for 8-bit OW."""
    return 2 if spec.swaps_ow else spec.itemsize


def swap_in_place(arr: np.ndarray) -> None:
    """Reverse the bytes of every sample of the C-contiguous `arr` in place: NumPy's byte-order cast of a
    flat view onto itself (element by element, no temporary; 4-5x faster than ``ndarray.byteswap``)."""
    flat = arr.reshape(-1)
    np.copyto(flat, flat.view(flat.dtype.newbyteorder("S")))


def _runs(indices: list[int], per_run: int) -> Iterator[tuple[int, int, int]]:
    """(position in `indices`, first frame, end frame) of consecutive runs, at most `per_run` frames each."""
    k = 0
    while k < len(indices):
        j = k + 1
        while j < len(indices) and j - k < per_run and indices[j] == indices[j - 1] + 1:
            j += 1
        yield k, indices[k], indices[j - 1] + 1
        k = j


# ------------------------------------------------------------------------------------ encapsulated


def _encapsulated_frame(reader: PixelReader, index: int, *, raw: bool, as_rgb: bool) -> np.ndarray:
    """Frame `index` of an encapsulated element: its fragments as a one-frame element, as pydicom's
    ``pixel_array(index=...)`` decodes it (each frame is decoded from its own bytes there too)."""
    from pydicom.encaps import encapsulate

    spec = reader.spec
    value = encapsulate([bytes(reader.frame_bytes(index))], has_bot=False)
    arr = _pydicom(spec, value, pixel_options(spec, 1, as_rgb=as_rgb), index=None, raw=raw, frame=index)
    return arr.reshape(spec.frame_shape)


def _whole_encapsulated(reader: PixelReader, *, raw: bool, as_rgb: bool) -> np.ndarray:
    spec = reader.spec
    src = reader.ds if reader.dataset_given else reader.file_like()
    opts = pixel_options(spec, spec.declared_frames, reader.extended_offsets, as_rgb=as_rgb)
    return _pydicom(spec, src, opts, index=None, raw=raw, frame=None, validate=True)


# ------------------------------------------------------------------------------------------ public


def output_shape(spec: PixelSpec, indices: list[int] | None) -> tuple[int, ...]:
    """pydicom's shape for all frames (None), else (len(indices), *frame shape)."""
    if indices is None:
        return spec.shape(None)
    return (len(indices), *spec.frame_shape)


def check_out(out, shape: tuple[int, ...], dtype: np.dtype, name: str):
    """Refuse a caller's output array of the wrong shape, dtype or layout before anything is read."""
    if tuple(out.shape) != tuple(shape) or np.dtype(out.dtype) != np.dtype(dtype):
        raise GpudcmError(f"{name}: out= is {tuple(out.shape)} {np.dtype(out.dtype)} but the frames decode to "
                          f"{tuple(shape)} {np.dtype(dtype)}")
    flags = getattr(out, "flags", None)
    if flags is not None and not flags.c_contiguous:
        raise GpudcmError(f"{name}: out= must be C-contiguous")
    if flags is not None and hasattr(flags, "writeable") and not flags.writeable:
        raise GpudcmError(f"{name}: out= is read-only")
    return out


REGISTRY_CHUNK = 32  # compressed frames read ahead of the codec registry (>= processes.MIN_FRAMES)


def _registry_takes(reader: PixelReader, n_frames: int, first_index: int):
    """Frame `first_index`'s bytes when the CPU codec registry (gpudcm.codecs) takes the `n_frames` frames
    that start with it: whenever it has a backend for that frame (pydicom's plugins included, frame by
    frame: with the colour step of gpudcm.ybr that is faster than pydicom's whole-element decode, 1.56
    against 1.77-1.90 s for the 240-frame ultrasound bench file on one thread, and long files go to the
    process pool); None leaves them to pydicom (fragments that do not split into Number of Frames
    frames, or no backend)."""
    from . import codecs

    spec = reader.spec
    if len(reader.frames) != spec.number_of_frames or not n_frames:
        return None
    first = reader.frame_bytes(first_index)
    try:
        codecs.choose(spec, codecs.frame_info(spec, first))
    except GpudcmError:
        return None
    return first


def _registry_chunk(reader: PixelReader, chunk: list[int], out: np.ndarray, first, *, raw: bool, as_rgb: bool,
                    threads: int | None) -> None:
    """Frames `chunk` through the registry into `out` (`first`: chunk[0]'s bytes when already read);
    raises FastBackendFailed where a fast backend fails on a frame (pydicom then decides)."""
    from . import codecs

    frames = [first if k == 0 and first is not None else reader.frame_bytes(i) for k, i in enumerate(chunk)]
    codecs.decode_frames(reader.spec, frames, out, raw=raw, as_rgb=as_rgb, threads=threads, first_index=chunk,
                         fallback=False)


def _registry(reader: PixelReader, indices: list[int], out: np.ndarray, *, raw: bool, as_rgb: bool,
              threads: int | None) -> bool:
    """Encapsulated frames through the CPU codec registry into `out` when it takes them
    (:func:`_registry_takes`); False leaves them to pydicom (also after a frame the fast backend failed
    on: pydicom then decides, its plugin choice carried from frame to frame)."""
    from .codecs.decode import FastBackendFailed

    first = _registry_takes(reader, len(indices), indices[0] if indices else 0)
    if first is None:
        return False
    for a in range(0, len(indices), REGISTRY_CHUNK):  # memory: the output plus one chunk of compressed frames
        chunk = indices[a : a + REGISTRY_CHUNK]
        try:
            _registry_chunk(reader, chunk, out[a : a + len(chunk)], first if a == 0 else None, raw=raw,
                            as_rgb=as_rgb, threads=threads)
        except FastBackendFailed:
            return False
    return True


def releases_gil(reader: PixelReader) -> bool:
    """Whether the registry's backend for frame 0 releases the GIL (threads then scale)."""
    from . import codecs

    spec = reader.spec
    if not spec.is_encapsulated:
        return True
    try:
        return not codecs.choose(spec, codecs.frame_info(spec, reader.frame_bytes(0)))[0].finished
    except GpudcmError:
        return False


def decode_frames(reader: PixelReader, indices: list[int] | None = None, *, out: np.ndarray | None = None,
                  raw: bool = False, as_rgb: bool = True, threads: int | None = None) -> np.ndarray:
    """Frames `indices` (checked frame numbers, any order, repeats allowed) of `reader`, or all of them
    (None, pydicom's shape), as NumPy in native byte order; written into `out` when given (its shape
    and dtype checked first). Memory: the output plus one run of native frames or one compressed frame."""
    spec = reader.spec
    if out is not None:
        check_out(out, output_shape(spec, indices), spec.dtype, spec.source)
    if indices is None:
        if spec.is_encapsulated:
            every = list(range(spec.number_of_frames))
            flat = out if out is not None else host_memory.empty((len(every), *spec.frame_shape), spec.dtype)
            if _registry(reader, every, flat.reshape((len(every), *spec.frame_shape)), raw=raw, as_rgb=as_rgb,
                         threads=threads):
                return flat.reshape(spec.shape(None))
            if out is None or len(reader.frames) > spec.number_of_frames:  # pydicom may keep excess frames
                arr = native_order(_whole_encapsulated(reader, raw=raw, as_rgb=as_rgb))
                if out is None:
                    return arr
                check_out(arr, out.shape, out.dtype, spec.source)
                out[...] = arr
                return out
        indices = list(range(spec.number_of_frames))
        flat = out.reshape((len(indices), *spec.frame_shape)) if out is not None else None
        result = decode_frames(reader, indices, out=flat, raw=raw, as_rgb=as_rgb)
        return result.reshape(spec.shape(None))
    if out is None:
        out = host_memory.empty(output_shape(spec, indices), spec.dtype)
    if spec.is_encapsulated:
        if _registry(reader, indices, out, raw=raw, as_rgb=as_rgb, threads=threads):
            return out
        for k, i in enumerate(indices):
            out[k] = _encapsulated_frame(reader, i, raw=raw, as_rgb=as_rgb)
        return out
    flen = spec.frame_bits // 8
    swapped = swapped_as_decoded(spec)
    if (swapped or stored_as_decoded(spec)) and out.flags.c_contiguous:
        for k, a, b in _runs(indices, len(indices)):  # file -> output, one read a run, no copy
            reader.read_range_into(a * flen, out[k : k + b - a].reshape(-1).view(np.uint8))
        if swapped and swap_unit(spec) > 1:
            swap_in_place(out.reshape(-1).view(np.uint8).view(f"u{swap_unit(spec)}"))
        correct_unused_bits(spec, out)
        return out
    per_run = max(1, NATIVE_RUN_BYTES // max(1, flen))
    for k, a, b in _runs(indices, per_run):
        out[k : k + b - a] = _native_run(reader, a, b, raw=raw, as_rgb=as_rgb)
    return out


def iter_decode(reader: PixelReader, indices: Iterable[int] | None = None, *, raw: bool = False,
                as_rgb: bool = True) -> Iterator[np.ndarray]:
    """Yield frames one at a time (each read when it is reached), shaped (rows, cols[, samples])."""
    spec = reader.spec
    for i in indices if indices is not None else range(spec.number_of_frames):
        yield decode_frames(reader, [i], raw=raw, as_rgb=as_rgb)[0]


def decoded_shape(reader: PixelReader) -> tuple[int, ...] | None:
    """The shape of ``decode_frames(reader, None)`` as the header gives it (pydicom's rules: no frame axis
    for one frame, native excess frames counted), or None where it is known only after decoding (an
    encapsulated element whose fragments do not split into Number of Frames frames: pydicom may keep
    frames past Number of Frames, or raise)."""
    spec = reader.spec
    if spec.is_encapsulated and len(reader.frames) != spec.number_of_frames:
        return None
    return spec.shape(None)


def iter_chunks(reader: PixelReader, frames_per_chunk: int, *, raw: bool = False, as_rgb: bool = True,
                threads: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first frame, frames)`` blocks, in order, that together hold ``decode_frames(reader, None)``
    (its values; blocks shaped (n, *frame shape)), `frames_per_chunk` frames at a time, decoded into one
    reused buffer: use or copy each block before asking for the next. Memory: one chunk and its
    compressed bytes. Where values would depend on decoding the element whole (pydicom decides for
    encapsulated frames the registry does not take: its plugin choice carries from frame to frame, or it
    keeps excess frames), one block holds every frame; a block starting at 0 again (a fast backend failed
    on a later frame) replaces everything yielded before."""
    from .codecs.decode import FastBackendFailed

    spec = reader.spec
    n, per = spec.number_of_frames, max(1, frames_per_chunk)
    if decoded_shape(reader) is not None:
        first = None
        if spec.is_encapsulated:
            first = _registry_takes(reader, n, 0)
        if first is not None or not spec.is_encapsulated:
            buffer = np.empty((min(per, n), *spec.frame_shape), dtype=spec.dtype)
            try:
                for a in range(0, n, per):
                    chunk, block = list(range(a, min(n, a + per))), buffer[: min(n, a + per) - a]
                    if spec.is_encapsulated:
                        _registry_chunk(reader, chunk, block, first if a == 0 else None, raw=raw, as_rgb=as_rgb,
                                        threads=threads)
                    else:
                        decode_frames(reader, chunk, out=block, raw=raw, as_rgb=as_rgb)
                    yield a, block
                return
            except FastBackendFailed:
                pass
    whole = decode_frames(reader, None, raw=raw, as_rgb=as_rgb, threads=threads)
    yield 0, whole.reshape((-1, *spec.frame_shape))
