"""Public decode functions: ``pixel_array``, ``iter_frames``, ``decode_batch``.

``device="auto"`` decodes on CUDA when CuPy sees a device, else on the CPU; ``"cpu"`` always returns
NumPy arrays equal to ``pydicom.pixels.pixel_array`` (dtype in native byte order).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from . import cpu
from .capabilities import backend_for
from .cuda.runtime import on_device, resolve_device
from .errors import GpudcmError, UnsupportedTransferSyntax
from .frames import check_codestream_sizes, check_rle_capacity, encapsulated_extents
from .frames import extended_offsets as _extended_offsets
from .source import Source, load_dataset, source_name
from .spec import PixelSpec, pixel_spec


def _validated(ds, name: str):
    spec = pixel_spec(ds, source=name)
    if spec.is_encapsulated:
        # checks every fragment and offset table entry before any decoder sees the bytes
        frames = encapsulated_extents(spec, ds.PixelData, extended_offsets=_extended_offsets(ds))
        if spec.transfer_syntax == RLELossless:
            check_rle_capacity(spec, frames)
        else:
            check_codestream_sizes(spec, ds.PixelData, frames)
    return ds, spec


def _prepare(src: Source):
    """Parse and validate `src`: the pixel module and pixel element only, as pydicom's path reader does,
    with a full ``dcmread`` as the second opinion (it copes with files whose encoding contradicts
    their meta, e.g. implicit VR data under an explicit VR transfer syntax)."""
    ds, name = load_dataset(src, header_only=True)
    try:
        return _validated(ds, name)
    except GpudcmError:
        if ds is src:
            raise
    return _validated(*load_dataset(src))


def _device_decode(prepared: Sequence[tuple[Any, PixelSpec]], ops, *, index, raw: bool, as_rgb: bool, stack: bool = False,
                   infos: list | None = None):
    """Decode parsed sources on the device behind `ops` (CuPy, or the host stand-in in CI): native frames
    batched through the pipeline, RLE files batched per layout, YBR converted by the colour kernel, the
    rest decoded by pydicom on the CPU and copied over; JPEG-family frames routed one by one (nvJPEG,
    nvImageCodec or the CPU plugin). Returns a list, or one array with `stack`; `infos` (a list) receives
    one FrameInfo per decoded frame."""
    from .cuda.colour import needs_rgb_conversion, ybr_to_rgb
    from .cuda.pipeline import Request, decode_native_batch, stackable
    from .cuda.jpeg_path import decode_jpeg_family
    from .cuda.rle import RleRequest, decode_rle_batch, layout_key
    from .routing import FrameInfo

    results: list[Any] = [None] * len(prepared)
    native: list[int] = []
    rle: dict[tuple, list[int]] = {}
    for i, (ds, spec) in enumerate(prepared):
        cap = backend_for(spec, "cuda", raw=raw, as_rgb=as_rgb)
        if infos is not None and cap.backend in ("kernel", "cpu-plugin"):
            infos += [FrameInfo(spec.source, f, cap.backend, cap.reason) for f in _frame_numbers(spec, index)]
        if cap.backend == "kernel" and spec.transfer_syntax == RLELossless:
            rle.setdefault(layout_key(spec), []).append(i)
        elif cap.backend == "kernel":
            native.append(i)
        elif cap.backend in ("nvjpeg", "j2k"):
            results[i], frame_infos = decode_jpeg_family(
                ds, spec, index=index, raw=raw, as_rgb=as_rgb, ops=ops, env=ops.jpeg_env,
                decoders=ops.jpeg_decoders, extended_offsets=_extended_offsets(ds))
            if infos is not None:
                infos += frame_infos
        elif cap.backend == "cpu-plugin":
            results[i] = ops.xp.asarray(cpu.decode(ds, spec, index=index, raw=raw, as_rgb=as_rgb))
        else:
            raise UnsupportedTransferSyntax(f"{spec.source}: {cap.reason}")
    launch_rle, launch_native = ops.rle_launchers if rle else (None, None)
    for group in rle.values():  # RLE Lossless: one RLE launch (and one native launch) per layout
        requests = [RleRequest(prepared[i][1], prepared[i][0].PixelData, index, _extended_offsets(prepared[i][0]))
                    for i in group]
        decoded = decode_rle_batch(requests, launch_rle=launch_rle, launch_native=launch_native, xp=ops.xp,
                                   staging=lambda n: ops.pinned(0, n))
        for i, arr in zip(group, decoded):
            if needs_rgb_conversion(prepared[i][1], raw, as_rgb):
                arr = ybr_to_rgb(arr, launcher=ops.colour_launcher, xp=ops.xp)
            results[i] = arr
    if native:
        requests = [Request(prepared[i][1], prepared[i][0][prepared[i][1].pixel_keyword].value, index) for i in native]
        whole = stack and len(native) == len(prepared) and stackable(requests)
        decoded = decode_native_batch(requests, ops, stack=whole)
        for k, i in enumerate(native):
            arr = decoded[k]
            if needs_rgb_conversion(prepared[i][1], raw, as_rgb):
                arr = ybr_to_rgb(arr, launcher=ops.colour_launcher, xp=ops.xp)  # in place (a view of a stack too)
            results[i] = arr
        if whole:
            return decoded
    if not stack:
        return results
    return _stack(results, [spec.source for _, spec in prepared], ops.xp)


def _frame_numbers(spec: PixelSpec, index: int | None) -> list[int]:
    return [index] if index is not None else list(range(spec.number_of_frames))


def _cuda_decode(ds, spec: PixelSpec, index: int | None, raw: bool, as_rgb: bool, device: str = "cuda"):
    return _cuda_batch([(ds, spec)], device, index=index, raw=raw, as_rgb=as_rgb)[0]


def _cuda_batch(prepared, device: str, **kwargs):
    """:func:`_device_decode` on the CUDA device `device` names (``"cuda:N"``: device N), with pooled
    device resources (gpudcm/cuda/ops.py lease_ops)."""
    from .cuda.ops import lease_ops

    with on_device(device), lease_ops() as ops:
        return _device_decode(prepared, ops, **kwargs)


def pixel_array(
    src: Source,
    *,
    index: int | None = None,
    device: str = "auto",
    raw: bool = False,
    as_rgb: bool = True,
):
    """Decode the pixel data of `src` (path, file-like, bytes or pydicom Dataset).

    Returns all frames (``index=None``) or the frame `index` shaped as pydicom shapes them:
    (rows, cols[, samples]) or (frames, rows, cols[, samples]). NumPy on the CPU, CuPy on CUDA.
    ``raw=True`` skips colour conversion; ``as_rgb=False`` keeps YBR data as YBR.
    """
    dev = resolve_device(device)
    ds, spec = _prepare(src)
    if index is not None:
        index = spec.check_index(index)
    if dev == "cpu":
        return cpu.decode(ds, spec, index=index, raw=raw, as_rgb=as_rgb)
    return _cuda_decode(ds, spec, index, raw, as_rgb, device)


def iter_frames(
    src: Source,
    *,
    indices: Iterable[int] | None = None,
    device: str = "auto",
    raw: bool = False,
    as_rgb: bool = True,
) -> Iterator:
    """Yield frames of `src` one at a time (all, or those in `indices`), each shaped (rows, cols[, samples])."""
    dev = resolve_device(device)
    ds, spec = _prepare(src)
    wanted = [spec.check_index(i) for i in indices] if indices is not None else None
    if dev == "cpu":
        yield from cpu.iter_decode(ds, spec, wanted, raw=raw, as_rgb=as_rgb)
        return
    for i in wanted if wanted is not None else range(spec.number_of_frames):
        yield _cuda_decode(ds, spec, i, raw, as_rgb, device)


def decode_batch(
    sources: Sequence[Source],
    *,
    device: str = "auto",
    stream=None,
    index: int | None = None,
    raw: bool = False,
    as_rgb: bool = True,
    stack: bool = False,
    workers: int | None = None,
    on_error: str = "raise",
    return_info: bool = False,
    progress: bool | Callable[[int, int], None] = False,
) -> list | Any:
    """Decode many sources; results keep input order.

    `workers` threads parse and decode on the CPU. The default on the CPU is all cores when the codecs of
    the first source release the GIL (gpudcm.codecs: imagecodecs and NumPy do, pydicom's plugins do not),
    else 1; a single source spends them on its frames (or, for GIL-holding codecs, on worker processes).
    On CUDA the default is 1.
    On CUDA the native frames of all sources are batched through the device pipeline.
    ``stack=True`` returns one array (``xp.stack``) when every result has the same shape and dtype.
    ``on_error="raise"`` raises the first failure; ``"return"`` puts the exception in its slot instead.
    ``return_info=True`` also returns one :class:`gpudcm.routing.FrameInfo` per frame: which
    backend decoded it (kernel, nvjpeg, j2k, cpu-plugin) and why.
    `stream` (a ``cupy.cuda.Stream``) is used for device work when decoding on CUDA.
    ``progress=True`` draws a progress line on stderr (files done, files/s, MB/s); a callable is called
    as ``progress(done, total)`` after each source (on the batched CUDA path: as each is parsed, before
    the one device pass).
    """
    if on_error not in ("raise", "return"):
        raise ValueError(f"on_error must be 'raise' or 'return', not {on_error!r}")
    dev = resolve_device(device)
    sources = list(sources)
    with _progress(progress, len(sources)) as tick:
        return _decode_batch(sources, dev, tick, stream=stream, index=index, raw=raw, as_rgb=as_rgb, stack=stack,
                             workers=workers, on_error=on_error, return_info=return_info, device=device)


@contextmanager
def _progress(progress: bool | Callable[[int, int], None], total: int) -> Iterator[Callable[[Any], None]]:
    """A tick(result) function: updates a stderr Progress line, calls the user's callback, or nothing."""
    lock = threading.Lock()
    done = [0]
    bar = None
    if progress is True:
        from .progress import Progress

        bar = Progress(total)

    def tick(result: Any = None) -> None:
        with lock:
            done[0] += 1
            if bar is not None:
                bar.update(int(getattr(result, "nbytes", 0) or 0), failed=isinstance(result, Exception))
            elif callable(progress):
                progress(done[0], total)

    try:
        yield tick
    finally:
        if bar is not None:
            bar.close()


def _decode_batch(sources: list, dev: str, tick: Callable[[Any], None], *, stream, index, raw, as_rgb, stack, workers,
                  on_error, return_info, device: str):
    if dev == "cuda":
        on_cuda = device if device and device.lower().startswith("cuda") else "cuda"
        return _decode_batch_cuda(sources, on_cuda, tick, stream=stream, index=index, raw=raw, as_rgb=as_rgb,
                                  stack=stack, workers=workers, on_error=on_error, return_info=return_info)

    from .routing import FrameInfo

    infos: list = []
    frame_threads = workers if len(sources) == 1 else 1  # one file: its frames go to the threads (or processes)
    if workers is None and len(sources) > 1:
        workers = _cpu_workers(sources)

    def one(src: Source):
        result = _one(src)
        tick(result)
        return result

    def _one(src: Source):
        try:
            ds, spec = _prepare(src)
            arr = cpu.decode(ds, spec, index=None if index is None else spec.check_index(index), raw=raw, as_rgb=as_rgb,
                             threads=frame_threads)
            infos.extend(FrameInfo(spec.source, f, "cpu-plugin", "CPU codec registry (gpudcm.codecs)")
                         for f in _frame_numbers(spec, index))
            return arr
        except GpudcmError as exc:
            if on_error == "return":
                return exc
            raise

    results = _map(one, sources, workers if len(sources) > 1 else 1)
    if stack:
        results = _stack(results, [source_name(s) for s in sources], np)
    if return_info:
        order = {source_name(s): k for k, s in enumerate(sources)}
        infos.sort(key=lambda f: (order.get(f.source, 0), f.frame))  # threads finish in any order
        return results, infos
    return results


def _decode_batch_cuda(sources: list, device: str, tick: Callable[[Any], None], *, stream, index, raw: bool,
                       as_rgb: bool, stack: bool, workers: int | None, on_error: str, return_info: bool):
    """decode_batch on CUDA: sources parsed on `workers` CPU threads, then decoded in one device batch
    on this thread. With ``on_error="return"`` a source that fails to parse gets its exception in its
    slot and the rest still decode as one batch; should the batch itself fail, its sources are decoded
    one by one so the failure lands on the source that caused it."""

    def prepare(src):
        try:
            out = _prepare(src)
        except GpudcmError as exc:
            if on_error == "raise":
                raise
            out = exc
        tick(out if isinstance(out, Exception) else None)
        return out

    prepared = _map(prepare, sources, workers)  # parse (and read bytes) on CPU threads
    good = [k for k, p in enumerate(prepared) if not isinstance(p, Exception)]
    infos: list | None = [] if return_info else None
    results: list[Any] = list(prepared)
    with stream if stream is not None else nullcontext():
        try:
            decoded = _cuda_batch([prepared[k] for k in good], device, index=index, raw=raw, as_rgb=as_rgb,
                                  stack=stack and len(good) == len(sources), infos=infos)
        except GpudcmError:
            if on_error == "raise":
                raise
            decoded, infos = _one_by_one([prepared[k] for k in good], device, index, raw, as_rgb, infos)
        else:
            if stack and len(good) == len(sources):
                return (decoded, infos) if return_info else decoded
    for k, arr in zip(good, decoded):
        results[k] = arr
    if stack:
        import cupy

        results = _stack(results, [source_name(s) for s in sources], cupy)
    return (results, infos) if return_info else results


def _one_by_one(prepared: list, device: str, index, raw: bool, as_rgb: bool, infos: list | None):
    out: list[Any] = []
    kept: list | None = [] if infos is not None else None
    for item in prepared:
        mine: list | None = [] if infos is not None else None
        try:
            out.append(_cuda_batch([item], device, index=index, raw=raw, as_rgb=as_rgb, infos=mine)[0])
        except GpudcmError as exc:
            out.append(exc)
            continue
        if kept is not None:
            kept += mine
    return out, kept


def _cpu_workers(sources: list) -> int:
    """All cores when the first source's codec releases the GIL, else 1 (threads would contend)."""
    from .codecs import default_threads

    if not sources or not isinstance(sources[0], (str, os.PathLike, Dataset)):
        return 1  # a stream is read once: not peeked at
    try:
        ds, spec = _prepare(sources[0])
        return default_threads() if cpu.releases_gil(ds, spec) else 1
    except GpudcmError:
        return 1


def _map(fn, items: list, workers: int | None) -> list:
    n = workers or 1
    if n == 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(n, len(items))) as pool:
        return list(pool.map(fn, items))


def _stack(results: list, names: Sequence[str], xp):
    failed = [n for n, r in zip(names, results) if isinstance(r, Exception)]
    if failed:
        raise GpudcmError(f"cannot stack: {len(failed)} source(s) failed to decode, e.g. {failed[0]}")
    if not results:
        raise GpudcmError("cannot stack an empty batch")
    first = results[0]
    for n, r in zip(names, results):
        if r.shape != first.shape or r.dtype != first.dtype:
            raise GpudcmError(
                f"cannot stack: {names[0]} is {first.shape} {first.dtype} but {n} is {r.shape} {r.dtype}"
            )
    return xp.stack(results)
