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
from typing import Any, Union

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from .capabilities import backend_for
from .cuda.runtime import on_device, resolve_device
from .errors import GpudcmError, UnsupportedTransferSyntax
from .frame_decode import check_out, decode_frames, iter_decode
from .reader import PixelReader, open_pixels, reading
from .reader import _extended_offsets as extended_offsets_of
from .source import Source, source_name
from .spec import PixelSpec


def _prepare(src: Source, tags: Sequence[int] = ()):
    """Parse and validate `src` through the lazy reader and return ``(dataset, spec)`` with the pixel
    element in the dataset (for callers that ship or hold the element's bytes, e.g. loader workers);
    `tags`: elements read beside the pixel module."""
    with open_pixels(src, tags=tags) as reader:
        return reader.dataset(), reader.spec


def _extended_offsets(ds) -> tuple[Any, Any] | None:
    return extended_offsets_of(ds)


def _as_reader(item) -> PixelReader:
    """A reader for a ``(dataset, spec)`` pair (the dataset holds its element) or the reader itself."""
    if isinstance(item, PixelReader):
        return item
    ds, spec = item
    return PixelReader(ds, spec, ds[spec.pixel_keyword].value, dataset_given=True)


Selection = Union[int, list, None]  # one frame, frames in order (always with a frame axis), or all


def _selected(spec: PixelSpec, sel: Selection) -> list[int]:
    if sel is None:
        return list(range(spec.number_of_frames))
    return [sel] if isinstance(sel, int) else list(sel)


def _shape_of(spec: PixelSpec, sel: Selection) -> tuple[int, ...]:
    return (len(sel), *spec.frame_shape) if isinstance(sel, list) else spec.shape(sel)


def _device_decode(prepared: Sequence, ops, *, index: Selection, raw: bool, as_rgb: bool, stack: bool = False,
                   infos: list | None = None, out=None):
    """Decode sources on the device behind `ops` (CuPy, or the host stand-in in CI): native frames
    batched through the pipeline (read from the file straight into the staging buffer), RLE files batched
    per layout, YBR converted by the colour kernel, the rest decoded by pydicom on the CPU and copied over;
    JPEG-family frames routed one by one (nvJPEG, nvImageCodec or the CPU plugin). `prepared` holds
    :class:`PixelReader` objects (or ``(dataset, spec)`` pairs); `index` selects frames (an int, a list,
    or None for all). Returns a list, or one array with `stack`; `infos` (a list) receives one FrameInfo
    per decoded frame. `out` (a device array, C-contiguous: the stack's, or with one source its result's
    shape and dtype) is written by the kernels directly, with no temporary of its size (the
    ``cpu-plugin`` route copies its host result in; a result whose shape is known only after decoding,
    e.g. excess frames, comes back in its own array for the caller to check and copy)."""
    from .cuda.colour import needs_rgb_conversion, ybr_to_rgb
    from .cuda.pipeline import Request, decode_native_batch, stackable
    from .cuda.jpeg_path import decode_jpeg_family
    from .cuda.rle import RleRequest, decode_rle_batch, layout_key
    from .routing import FrameInfo

    readers = [_as_reader(p) for p in prepared]
    sels = [_selection(r, None, index) if isinstance(index, (list, tuple, slice)) else _selection(r, index, None)
            for r in readers]
    results: list[Any] = [None] * len(readers)
    outs: list[Any] = [None] * len(readers)  # each source's slot of `out`
    if out is not None and (stack or len(readers) == 1):
        outs = [out[i] for i in range(len(readers))] if stack else [out]
    native: list[int] = []
    rle: dict[tuple, list[int]] = {}
    for i, reader in enumerate(readers):
        spec, sel = reader.spec, sels[i]
        cap = backend_for(spec, "cuda", raw=raw, as_rgb=as_rgb)
        if infos is not None and cap.backend in ("kernel", "cpu-plugin"):
            infos += [FrameInfo(spec.source, f, cap.backend, cap.reason) for f in _selected(spec, sel)]
        if cap.backend == "kernel" and spec.transfer_syntax == RLELossless:
            rle.setdefault(layout_key(spec), []).append(i)  # frames read from the file batch by batch
        elif cap.backend == "kernel":
            native.append(i)
        elif cap.backend in ("nvjpeg", "j2k"):  # frames read from the file batch by batch
            arr, frame_infos = decode_jpeg_family(
                reader, spec, index=sel, raw=raw, as_rgb=as_rgb, ops=ops, env=ops.jpeg_env,
                decoders=ops.jpeg_decoders, out=outs[i])
            results[i] = arr if sel is None else arr.reshape(_shape_of(spec, sel))
            if infos is not None:
                infos += frame_infos
        elif cap.backend == "cpu-plugin":
            results[i] = _to_device(_cpu_decode(reader, sel, raw=raw, as_rgb=as_rgb), outs[i], ops.xp)
        else:
            raise UnsupportedTransferSyntax(f"{spec.source}: {cap.reason}")
    launch_rle, launch_native = ops.rle_launchers if rle else (None, None)
    for group in rle.values():  # RLE Lossless: per layout, one RLE launch (and one native launch) a batch
        requests = [RleRequest(readers[i].spec, readers[i], sels[i]) for i in group]
        decoded = decode_rle_batch(requests, launch_rle=launch_rle, launch_native=launch_native, xp=ops.xp,
                                   staging=lambda n: ops.pinned(0, n), outs=[outs[i] for i in group])
        for i, arr in zip(group, decoded):
            if needs_rgb_conversion(readers[i].spec, raw, as_rgb):
                arr = ybr_to_rgb(arr, launcher=ops.colour_launcher, xp=ops.xp)
            results[i] = arr if sels[i] is None else arr.reshape(_shape_of(readers[i].spec, sels[i]))
    if native:
        requests = [Request(readers[i].spec, readers[i], sels[i]) for i in native]
        whole = stack and len(native) == len(readers) and stackable(requests)
        into = None
        if out is not None and (whole or len(readers) == 1) and _fits(out, requests, whole):
            into = out if whole else out.reshape((1, *requests[0].shape))
        decoded = decode_native_batch(requests, ops, stack=whole or into is not None, out=into)
        if into is not None and not whole:
            decoded = [decoded[0]]
        for k, i in enumerate(native):
            arr = decoded[k]
            if needs_rgb_conversion(readers[i].spec, raw, as_rgb):
                arr = ybr_to_rgb(arr, launcher=ops.colour_launcher, xp=ops.xp)  # in place (a view of a stack too)
            results[i] = arr
        if whole:
            return decoded
    if not stack:
        return results
    names = [r.spec.source for r in readers]
    return _stack(results, names, ops.xp) if out is None else _stack_into(results, names, out)


def _stack_into(results: list, names: Sequence[str], out):
    """The results in the slots of `out`, each copied there unless a kernel wrote it in place."""
    for n, r in zip(names, results):
        if tuple(r.shape) != tuple(out.shape[1:]) or r.dtype != out.dtype:
            raise GpudcmError(f"cannot stack: {n} is {r.shape} {r.dtype} but out= holds {out.shape[1:]} {out.dtype}")
    for i, r in enumerate(results):
        if _data_pointer(r) != _data_pointer(out[i]):
            out[i] = r
    return out


def _cpu_decode(reader: PixelReader, sel: Selection, *, raw: bool, as_rgb: bool, out=None, threads: int | None = None):
    if sel is None:
        return decode_frames(reader, None, out=out, raw=raw, as_rgb=as_rgb, threads=threads)
    if isinstance(sel, int):
        flat = None if out is None else out.reshape((1, *reader.spec.frame_shape))
        arr = decode_frames(reader, [sel], out=flat, raw=raw, as_rgb=as_rgb, threads=threads)
        return arr.reshape(reader.spec.frame_shape) if out is None else out
    return decode_frames(reader, sel, out=out, raw=raw, as_rgb=as_rgb, threads=threads)


def _fits(out, requests: Sequence, stacked: bool) -> bool:
    """Whether the caller's `out` is the native batch's output (so the kernels write it directly)."""
    first = requests[0]
    shape = (len(requests), *first.shape) if stacked else first.shape
    return tuple(out.shape) == tuple(shape) and out.dtype == first.spec.dtype and out.flags.c_contiguous


def _to_device(arr: np.ndarray, out, xp):
    """A host result on the device: copied into `out` when it is the result's (no device temporary)."""
    if out is not None and tuple(out.shape) == arr.shape and out.dtype == arr.dtype:
        if hasattr(out, "set"):  # CuPy: host -> device into the array itself
            out.set(np.ascontiguousarray(arr))
        else:
            out[...] = arr
        return out
    return xp.asarray(arr)


def _data_pointer(arr) -> int | None:
    face = getattr(arr, "__cuda_array_interface__", None) or getattr(arr, "__array_interface__", None)
    return face["data"][0] if face else None


def _selection(reader: PixelReader, index, indices) -> Selection:
    """One frame (`index`), a subset (`indices`: ints or a slice, negative counting from the end), or all."""
    if index is not None and indices is not None:
        raise GpudcmError(f"{reader.name}: give index= or indices=, not both")
    if index is not None:
        return reader.check_indices([index])[0]
    if indices is not None:
        return reader.check_indices(indices)
    return None


def _device_into(arr, out, name: str):
    """`out` holding `arr`: as it is when the kernels wrote it, else checked and copied in."""
    if out is None:
        return arr
    check_out(out, arr.shape, arr.dtype, name)
    if arr is not out and _data_pointer(arr) != _data_pointer(out):
        out[...] = arr
    return out


def pixel_array(
    src: Source,
    *,
    index: int | None = None,
    indices: Iterable[int] | slice | None = None,
    device: str = "auto",
    raw: bool = False,
    as_rgb: bool = True,
    out=None,
):
    """Decode the pixel data of `src` (path, file-like, bytes or pydicom Dataset).

    Returns all frames (``index=None``) or the frame `index` shaped as pydicom shapes them:
    (rows, cols[, samples]) or (frames, rows, cols[, samples]); ``indices=[...]`` (or a slice) returns
    those frames as (len, rows, cols[, samples]). Negative numbers count from the end, as in Python. Only
    the frames asked for are read from a path or file-like. ``out=`` (NumPy on the CPU, CuPy on CUDA, of
    the result's shape and dtype, checked before anything is read) receives the frames.
    NumPy on the CPU, CuPy on CUDA. ``raw=True`` skips colour conversion; ``as_rgb=False`` keeps YBR
    data as YBR.
    """
    dev = resolve_device(device)
    with reading(src) as reader:
        sel = _selection(reader, index, indices)
        if out is not None:
            check_out(out, _shape_of(reader.spec, sel) if sel is not None or not reader.spec.is_encapsulated
                      or len(reader.frames) <= reader.spec.number_of_frames else out.shape,
                      reader.spec.dtype, reader.name)
        if dev == "cpu":
            if out is not None and not isinstance(out, np.ndarray):
                raise GpudcmError(f"{reader.name}: out= must be a NumPy array for device='cpu', not {type(out).__name__}")
            return _cpu_decode(reader, sel, raw=raw, as_rgb=as_rgb, out=out)
        return _device_into(_cuda_decode(reader, sel, raw, as_rgb, device, out=out), out, reader.name)


def _cuda_decode(reader: PixelReader, sel: Selection, raw: bool, as_rgb: bool, device: str = "cuda", out=None):
    return _cuda_batch([reader], device, index=sel, raw=raw, as_rgb=as_rgb, out=out)[0]


def _cuda_batch(prepared, device: str, **kwargs):
    """:func:`_device_decode` on the CUDA device `device` names (``"cuda:N"``: device N), with pooled
    device resources (gpudcm/cuda/ops.py lease_ops)."""
    from .cuda.ops import lease_ops

    with on_device(device), lease_ops() as ops:
        return _device_decode(prepared, ops, **kwargs)


def iter_frames(
    src: Source,
    *,
    indices: Iterable[int] | slice | None = None,
    device: str = "auto",
    raw: bool = False,
    as_rgb: bool = True,
) -> Iterator:
    """Yield frames of `src` one at a time (all, or those in `indices`; negative ones count from the end),
    each shaped (rows, cols[, samples]). Each frame is read from the file when it is reached: memory
    stays at one frame and its compressed bytes."""
    dev = resolve_device(device)
    with reading(src) as reader:
        wanted = reader.check_indices(indices) if indices is not None else range(reader.spec.number_of_frames)
        if dev == "cpu":
            yield from iter_decode(reader, wanted, raw=raw, as_rgb=as_rgb)
            return
        for i in wanted:
            yield _cuda_decode(reader, i, raw, as_rgb, device)


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
    out=None,
) -> list | Any:
    """Decode many sources; results keep input order.

    Each source is opened with the lazy reader and only its frames (all, or frame `index`) are read, when
    the batch reaches them. On the CPU, 8 or more paths on Linux are decoded on `workers` forked processes
    (default: all cores; gpudcm.file_pool, results copied back into this process's memory); otherwise
    each of `workers` threads, the calling one among them, opens and decodes the next source (default: all
    cores when the first source's codec releases the GIL, native data included; 1, a plain loop, for
    GIL-holding plugins). On CUDA the native frames of all
    sources are batched through the device pipeline (`workers` threads open the sources).
    ``stack=True`` returns one array (``xp.stack``) when every result has the same shape and dtype;
    ``out=`` (implies ``stack``) is a preallocated (sources, *shape) NumPy/CuPy array that receives it.
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
    if out is not None:
        if on_error != "raise":
            raise ValueError("out= needs on_error='raise' (a failed source has no slot to fill)")
        if len(out) != len(sources):
            raise GpudcmError(f"out= holds {len(out)} item(s) for {len(sources)} source(s)")
        stack = True
    with _progress(progress, len(sources)) as tick:
        return _decode_batch(sources, dev, tick, stream=stream, index=index, raw=raw, as_rgb=as_rgb, stack=stack,
                             workers=workers, on_error=on_error, return_info=return_info, out=out, device=device)


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
                  on_error, return_info, out, device: str):
    if dev == "cuda":
        on_cuda = device if device and device.lower().startswith("cuda") else "cuda"
        return _decode_batch_cuda(sources, on_cuda, tick, stream=stream, index=index, raw=raw, as_rgb=as_rgb,
                                  stack=stack, workers=workers, on_error=on_error, return_info=return_info, out=out)

    from .routing import FrameInfo

    infos: list = []
    frame_threads = workers if len(sources) == 1 else 1  # one file: its frames go to the threads (or processes)

    def opened(k: int):
        """Source k opened (header parsed, validated): the GIL-bound half, done in order on this thread."""
        try:
            return open_pixels(sources[k])
        except GpudcmError as exc:
            if on_error == "return":
                return exc
            raise

    def decoded(k: int, reader):
        """Source k's frames decoded and its file closed: the half that reads files and runs codecs (which
        release the GIL), done on the batch threads."""
        try:
            if isinstance(reader, Exception):
                result = reader
            else:
                try:
                    sel = None if index is None else reader.check_indices([index])[0]
                    slot = None if out is None else out[k]
                    result = _cpu_decode(reader, sel, raw=raw, as_rgb=as_rgb, out=slot, threads=frame_threads)
                    if return_info:
                        infos.extend(FrameInfo(reader.name, f, "cpu-plugin", "CPU codec registry (gpudcm.codecs)")
                                     for f in _selected(reader.spec, sel))
                except GpudcmError as exc:
                    if on_error != "return":
                        raise
                    result = exc
                finally:
                    if reader is not sources[k]:
                        reader.close()
        except BaseException:
            tick(None)
            raise
        tick(result)
        return result

    if out is not None and not isinstance(out, np.ndarray):
        raise GpudcmError(f"decode_batch: out= must be a NumPy array for device='cpu', not {type(out).__name__}")
    if workers is None and not all(isinstance(s, _SHAREABLE) for s in sources):
        workers = 1  # a caller's stream is read in place: one source at a time
    results = _in_processes(sources, opened, decoded, workers, index=index, raw=raw, as_rgb=as_rgb,
                            on_error=on_error, tick=tick, out=out, infos=infos if return_info else None)
    if results is None:
        results = _pipeline(len(sources), opened, decoded, workers if len(sources) > 1 else 1)
    if out is not None:
        results = out
    elif stack:
        results = _stack(results, [source_name(s) for s in sources], np)
    if return_info:
        order = {source_name(s): k for k, s in enumerate(sources)}
        infos.sort(key=lambda f: (order.get(f.source, 0), f.frame))  # threads finish in any order
        return results, infos
    return results


def _decode_batch_cuda(sources: list, device: str, tick: Callable[[Any], None], *, stream, index, raw: bool,
                       as_rgb: bool, stack: bool, workers: int | None, on_error: str, return_info: bool, out=None):
    """decode_batch on CUDA: sources opened by the lazy reader on `workers` CPU threads (headers and
    extents only), then decoded in one device batch on this thread (frames read from the files into the
    staging buffer). With ``on_error="return"`` a source that fails to open gets its exception in its
    slot and the rest still decode as one batch; should the batch itself fail, its sources are decoded
    one by one so the failure lands on the source that caused it. `out` (CuPy) receives the stack."""

    def prepare(src):
        try:
            reader = open_pixels(src)
        except GpudcmError as exc:
            if on_error == "raise":
                raise
            reader = exc
        tick(reader if isinstance(reader, Exception) else None)
        return reader

    prepared = _map(prepare, sources, workers)
    good = [k for k, p in enumerate(prepared) if not isinstance(p, Exception)]
    opened = [p for p, s in zip(prepared, sources) if isinstance(p, PixelReader) and p is not s]
    infos: list | None = [] if return_info else None
    results: list[Any] = list(prepared)
    try:
        with stream if stream is not None else nullcontext():
            try:
                whole = stack and len(good) == len(sources)
                decoded = _cuda_batch([prepared[k] for k in good], device, index=index, raw=raw, as_rgb=as_rgb,
                                      stack=whole, infos=infos, out=out if whole else None)
            except GpudcmError:
                if on_error == "raise":
                    raise
                decoded, infos = _one_by_one([prepared[k] for k in good], device, index, raw, as_rgb, infos)
            else:
                if stack and len(good) == len(sources):
                    decoded = _device_into(decoded, out, "decode_batch") if out is not None else decoded
                    return (decoded, infos) if return_info else decoded
    finally:
        for r in opened:
            r.close()
    for k, arr in zip(good, decoded):
        results[k] = arr
    if stack:
        import cupy

        results = _stack(results, [source_name(s) for s in sources], cupy)
        results = _device_into(results, out, "decode_batch") if out is not None else results
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


# Sources that threads may read side by side (each opened on its own; a caller's file object is not).
_SHAREABLE = (str, os.PathLike, bytes, bytearray, memoryview, Dataset, PixelReader)


def _in_processes(sources: list, opened, decoded, workers: int | None, *, out, infos: list | None, **kw) -> list | None:
    """The batch with its files decoded on worker processes (gpudcm.file_pool) where that is usable: file 0
    here (it sizes the workers' slots), the rest there; None where it is not (the threads decide)."""
    from . import file_pool
    from .codecs import default_threads

    processes = default_threads() if workers is None else workers
    if not file_pool.usable(sources, processes):
        return None
    first = decoded(0, opened(0))
    rest = None
    if not isinstance(first, Exception):
        rest = file_pool.decode_rest(sources, first, lambda k: decoded(k, opened(k)), processes=processes, out=out,
                                     infos=infos, **kw)
    if rest is None:  # the pool cannot take them: this process's threads do, file 0 done
        rest = _pipeline(len(sources) - 1, lambda k: opened(k + 1), lambda k, r: decoded(k + 1, r), workers)
    return [first, *rest]


def _cpu_workers(reader) -> int:
    """All cores when the codec of `reader`'s first frame releases the GIL, else 1 (threads would contend)."""
    from .codecs import default_threads
    from .frame_decode import releases_gil

    if isinstance(reader, Exception):
        return 1
    try:
        return default_threads() if releases_gil(reader) else 1
    except GpudcmError:
        return 1


def _pipeline(n: int, opened: Callable[[int], Any], decoded: Callable[[int, Any], Any], workers: int | None) -> list:
    """``[decoded(k, opened(k)) for k in range(n)]`` on `workers` threads (default: all cores when the
    first source's codec releases the GIL, else this one): this thread and ``workers - 1`` batch threads
    each take the next source and open and decode it, so one thread's header parse (pydicom's, holding
    the GIL) overlaps another's reads and codec calls (which release it). Measured on 2 cores against
    this thread opening for decoding threads: native 0.28 vs 0.33 ms a file, RLE 0.46 vs 0.59 (fewer GIL
    hand-overs). At most `workers` sources are open at a time. After an error no new source is started;
    those started finish (and close their files) before the error of the lowest index is raised."""
    from .codecs.decode import thread_map

    if n == 0:
        return []
    first = opened(0)
    if workers is None:
        workers = _cpu_workers(first)
    if workers <= 1 or n == 1:
        return [decoded(k, first if k == 0 else opened(k)) for k in range(n)]
    failed = threading.Event()

    def one(k: int) -> Any:
        if failed.is_set() and k:  # source 0 is open already: decoded (and closed) whatever happens
            return None
        try:
            return decoded(k, first if k == 0 else opened(k))
        except BaseException:
            failed.set()
            raise

    return thread_map(one, range(n), workers)


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
