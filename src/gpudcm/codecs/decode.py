"""Decode frames from their bytes: the registry's backend, then pydicom's rules applied by us.

After a (non-pydicom) backend returns the codec's samples, the steps pydicom's ``Decoder.as_array``
takes are applied in its order: the samples are read with Pixel Representation's sign at the codec's
container size and cast to the output dtype; JPEG 2000 sign correction (monochrome, codestream
signedness differs), JPEG-LS sign extension (signed data) or, for every other syntax, the unused-bit
correction to Bits Stored; then, unless ``raw``, YBR_FULL / YBR_FULL_422 (after JPEG colour-space
conformance) to RGB when ``as_rgb``, with pydicom's own ``convert_color_space``. A fast backend that
fails on a frame hands it to pydicom's plugins, which decide (values or the error pydicom raises).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom.pixels.processing import convert_color_space

from .. import ybr
from ..errors import DecodeError, GpudcmError
from ..spec import PixelSpec
from . import pydicom_plugins
from .parallel import lending_threads, sharing_gil
from .registry import PYDICOM, PYDICOM_NATIVE, Backend, choose

_INTERRUPTS = (KeyboardInterrupt, SystemExit, GeneratorExit)
_YBR = ("YBR_FULL", "YBR_FULL_422")


def default_threads() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=8)
def _pool(threads: int, pid: int) -> ThreadPoolExecutor:
    # keyed by process: a forked child (a DataLoader worker) inherits the pool object but not its threads
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gpudcm-cpu")


def thread_map(fn, items: Sequence, threads: int | None) -> list:
    """``[fn(x) for x in items]`` on `threads` threads (default: all cores): the calling thread and
    threads - 1 of a shared pool take the next item until none is left, so the caller never waits for a
    pool thread to be scheduled before work starts (on a busy machine that wait is milliseconds), and a
    pool thread that starts late takes less. Raises the error of the first item that failed."""
    n = min(threads or default_threads(), len(items))
    if n <= 1:
        return [fn(x) for x in items]
    results: list = [None] * len(items)
    errors: dict[int, BaseException] = {}
    counter = itertools.count()  # next() is atomic under the GIL

    def work() -> None:
        with sharing_gil():
            while (k := next(counter)) < len(items):
                try:
                    results[k] = fn(items[k])
                except BaseException as exc:  # noqa: BLE001 - re-raised below, in item order
                    errors[k] = exc

    pool = _pool(n - 1, os.getpid())
    helpers = [pool.submit(work) for _ in range(n - 1)]
    work()
    for h in helpers:
        if not h.cancel():  # started: it is finishing its last item
            h.result()
    if errors:
        raise errors[min(errors)]
    return results


def _shift(arr: np.ndarray, bits: int) -> None:
    if bits > 0:
        np.left_shift(arr, bits, out=arr)
        np.right_shift(arr, bits, out=arr)


def correct_unused_bits(spec: PixelSpec, out: np.ndarray, src: np.ndarray | None = None) -> None:
    """pydicom's ``_correct_unused_bits`` (Pixel Data with Bits Stored < Bits Allocated: the bits above Bits
    Stored cleared when unsigned, set from the sign bit when signed) written into `out`, from `src` (same
    dtype and shape: the copy and the correction in one pass) or in place."""
    src = out if src is None else src
    if not spec.corrects_unused_bits:
        if src is not out:
            np.copyto(out, src)
        return
    shift = spec.bits_allocated - spec.bits_stored
    if spec.pixel_representation == 0:  # one pass: the two shifts of an unsigned value are a mask
        np.bitwise_and(src, out.dtype.type((1 << spec.bits_stored) - 1), out=out)
    else:
        np.left_shift(src, shift, out=out)
        np.right_shift(out, shift, out=out)


def finish(samples: np.ndarray, spec: PixelSpec, info: dict, out: np.ndarray, *, raw: bool, as_rgb: bool) -> None:
    """Write `samples` (a codec's output) into `out` (one frame, spec's dtype) with pydicom's rules."""
    kind = "ui"[spec.pixel_representation]
    if not spec.is_float and samples.dtype.kind in "ui" and samples.dtype.kind != kind:
        # pydicom reads the codec's bytes with the dataset's sign, at the codec's container size
        signed = np.dtype(f"{kind}{samples.dtype.itemsize}")
        order = samples.dtype.byteorder
        samples = samples.view(signed.newbyteorder(order) if order in "<>" else signed)
    fam = pydicom_plugins.family(spec.transfer_syntax)
    fused = fam not in ("j2k", "jls") and samples.dtype == out.dtype  # RLE, JPEG: copy and correct in one pass
    if fused:
        correct_unused_bits(spec, out, samples)
    else:
        np.copyto(out, samples, casting="unsafe")
    width = 8 * out.dtype.itemsize
    if fam == "j2k":
        if spec.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2") and not spec.is_float:
            if info.get("is_signed", spec.pixel_representation) != spec.pixel_representation:
                _shift(out, width - info.get("precision", spec.bits_stored))
    elif fam == "jls":
        if spec.pixel_representation == 1:
            _shift(out, width - info.get("precision", spec.bits_stored))
    elif not fused and spec.corrects_unused_bits:
        _shift(out, spec.bits_allocated - spec.bits_stored)
    if not raw and as_rgb and pydicom_plugins.conformed_photometric(spec, info) in _YBR:
        ybr_to_rgb(out)


def ybr_to_rgb(arr: np.ndarray) -> np.ndarray:
    """`arr` converted from YBR_FULL to RGB in place, as pydicom's ``convert_color_space`` computes it
    (gpudcm.ybr's tables for 8-bit samples, pydicom's function otherwise)."""
    if ybr.to_rgb(arr, out=arr) is None:
        arr[...] = convert_color_space(arr, "YBR_FULL", "RGB")
    return arr


def _fallback(spec: PixelSpec) -> Backend:
    return PYDICOM if spec.is_encapsulated else PYDICOM_NATIVE


def _wrap(exc: BaseException, spec: PixelSpec, frame: int | None) -> GpudcmError:
    if isinstance(exc, GpudcmError):
        return exc
    msg = " ".join(str(exc).split())
    return DecodeError(f"{spec.transfer_syntax.name} decode failed: {type(exc).__name__}: {msg}",
                       source=spec.source, frame=frame)


class FastBackendFailed(Exception):
    """A fast backend failed on a frame and the caller asked to decide itself (``fallback=False``)."""


def _into(spec: PixelSpec, data, out: np.ndarray, raw: bool, as_rgb: bool, bit_offset: int,
          backend: Backend | None, info: dict | None, frame: int | None, fallback: bool = True) -> str:
    """Decode one frame into `out`; returns the name of the backend that did."""
    if info is None:
        info = pydicom_plugins.frame_info(spec, data)
    if bit_offset:
        info = {**info, "bit_offset": bit_offset}
    if backend is None:
        backend, _ = choose(spec, info)
    try:
        if not backend.finished:
            try:
                if backend.decode_into is not None and backend.decode_into(data, spec, info, out):
                    samples = out  # the stored samples are in place; pydicom's rules run on them there
                else:
                    samples = backend.decode(data, spec, info)
                finish(samples, spec, info, out, raw=raw, as_rgb=as_rgb)
                return backend.name
            except _INTERRUPTS:
                raise
            except Exception as exc:
                if not fallback:
                    raise FastBackendFailed(f"{backend.name} failed on frame {frame}") from exc
                backend = _fallback(spec)  # pydicom's plugins decide: its values, or its error
        arr = backend.decode(data, spec, info, raw=raw, as_rgb=as_rgb)
        if arr.shape != out.shape:
            raise ValueError(f"pydicom decoded the frame as {arr.shape}, not {out.shape}")
        np.copyto(out, arr, casting="unsafe")
        return backend.name
    except (*_INTERRUPTS, FastBackendFailed):
        raise
    except BaseException as exc:  # pylibjpeg-rle's Rust panics are BaseExceptions (pyo3 PanicException)
        raise _wrap(exc, spec, frame) from exc


def decode_frame(spec: PixelSpec, data, *, raw: bool = False, as_rgb: bool = True, out: np.ndarray | None = None,
                 bit_offset: int = 0, info: dict | None = None, backend: Backend | None = None) -> np.ndarray:
    """One frame from its bytes (`data`: the frame's codestream, or its native bytes starting
    `bit_offset` bits into the first byte), shaped ``spec.frame_shape`` in ``spec.dtype``, equal to
    pydicom's decode of that frame. `out` (that shape and dtype) is filled and returned when given.
    `info` and `backend`, when the caller has them (gpudcm.codecs.frame_classes), are the frame's
    ``frame_info`` and ``choose(spec, info)[0]``."""
    if out is None:
        out = np.empty(spec.frame_shape, dtype=spec.dtype)
    _into(spec, data, out, raw, as_rgb, bit_offset, backend, info, None)
    return out


# A file's frames go to the thread pool only when each thread gets at least this much codec work (CPU
# seconds, estimated from the first frames' decode) and at least MIN_THREAD_BYTES of decoded samples:
# below either, handing frames over costs more than a second core gains
# (`python benchmarks/thread_threshold.py` measures where two threads start to win). The byte floor keeps
# tiny frames on this thread however long a first (cold) decode took.
MIN_THREAD_SECONDS = 300e-6
MIN_THREAD_BYTES = 16 << 10


def frame_threads(frames: int, seconds_per_frame: float, threads: int | None, bytes_per_frame: int) -> int:
    """Threads for `frames` more frames that take `seconds_per_frame` each and decode to
    `bytes_per_frame` (at most `threads`, default all cores): 1 when they are too little work to pay for
    the hand-over, else as many as get ``MIN_THREAD_SECONDS`` and ``MIN_THREAD_BYTES`` each."""
    most = min(threads or default_threads(), frames)
    if most <= 1:
        return 1
    by_time = int(frames * seconds_per_frame / max(MIN_THREAD_SECONDS, 1e-9))
    by_bytes = frames * bytes_per_frame // max(MIN_THREAD_BYTES, 1)
    return max(1, min(most, by_time, by_bytes))


def decode_frames(spec: PixelSpec, frames: Sequence, out: np.ndarray, *, raw: bool = False, as_rgb: bool = True,
                  threads: int | None = None, bit_offsets: Sequence[int] | None = None,
                  first_index: Sequence[int] | None = None, fallback: bool = True) -> list[str]:
    """Decode every frame of `frames` (bytes-like) into ``out[k]`` (``out`` shaped (len(frames),
    *spec.frame_shape)), on `threads` threads (default: all cores) when every chosen backend releases
    the GIL, else on as many worker processes for long files (gpudcm/codecs/processes.py). `first_index`
    names the frames (for error messages). Returns each frame's backend name. With ``fallback=False`` a
    frame a fast backend fails on raises :class:`FastBackendFailed` instead of going to pydicom's plugins
    (the CPU path then decodes the whole file with pydicom, whose plugin choice carries over between
    frames)."""
    n = len(frames)
    if out.shape[0] != n:
        raise ValueError(f"out holds {out.shape[0]} frames, {n} given")
    infos = [pydicom_plugins.frame_info(spec, f) for f in frames]
    chosen = []
    for k, info in enumerate(infos):  # frames with the same codestream parameters take the same backend
        chosen.append(chosen[k - 1] if k and info == infos[k - 1] else choose(spec, info)[0])
    names = [i if first_index is None else first_index[i] for i in range(n)]
    offsets = bit_offsets or [0] * n

    def one(k: int) -> str:
        return _into(spec, frames[k], out[k], raw, as_rgb, offsets[k], chosen[k], infos[k], names[k], fallback)

    parallel = all(b.releases_gil for b in chosen)
    if not parallel:
        from . import processes

        workers = threads or default_threads()
        if processes.usable(n, workers) and processes.decode_in_processes(
                spec, frames, out, raw=raw, as_rgb=as_rgb, processes=workers):
            return [b.name for b in chosen]
    if not parallel or n <= 2 or (threads or default_threads()) <= 1:
        with lending_threads(threads or default_threads()):  # frames decoded one by one: codecs may thread
            return [one(k) for k in range(n)]
    # the cost of a frame: the cheaper of the first two, in this thread's CPU time (what the codec costs,
    # not how loaded the machine is; the first may pay for a first import)
    done, costs = [], []
    for k in range(2):
        start = time.thread_time()
        done.append(one(k))
        costs.append(time.thread_time() - start)
    return done + thread_map(one, range(2, n), frame_threads(n - 2, min(costs), threads, out[0].nbytes))
