"""Whole files decoded on worker processes (``decode_batch(device="cpu")`` of many paths).

A file's header parse is pydicom's and holds the GIL, as do pydicom's plugins: on 2 cores two threads
decode a series of small files no faster than one (native CT 0.33 vs 0.37 ms a file, RLE 0.45 vs 0.53),
while two processes each decode their share at full speed. Each worker opens and decodes a chunk of files
with the same code as this process (:func:`gpudcm.api._cpu_decode`, so the same values) straight into a
shared slab (gpudcm.shared_slabs) and returns only shapes; this process copies each result out into
private memory (gpudcm.host_memory) as the chunks arrive, in order, and hands the slab to the next chunk.

Used only where it can be: Linux memory files, at least :data:`MIN_FILES` paths, more than one worker,
outside a pool worker and outside daemonic processes (DataLoader workers), unless
``GPUDCM_CPU_PROCESSES=0``. The pool is gpudcm.codecs.processes' forked pool (started once, kept). A
result larger than its slot comes back pickled; a pool that breaks leaves the remaining files to this
process."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from typing import Any, Callable, Sequence

import numpy as np

from . import host_memory, shared_slabs
from .errors import GpudcmError
from .frame_decode import check_out

MIN_FILES = 8  # below this the chunk hand-over costs more than the second core gains
MAX_CHUNK_FILES = 16
MAX_SLAB_BYTES = 64 << 20  # one chunk's slab; a file decoding to more than this is decoded here
_in_worker = False


def usable(sources: Sequence[Any], workers: int) -> bool:
    return (workers > 1 and len(sources) >= MIN_FILES and not _in_worker
            and all(isinstance(s, (str, os.PathLike)) for s in sources)
            and os.environ.get("GPUDCM_CPU_PROCESSES", "1") != "0"
            and not multiprocessing.current_process().daemon and shared_slabs.available())


def _decode_chunk(slab: tuple[int, str, int], slot: int, paths: list[str], index: int | None, raw: bool,
                  as_rgb: bool, infos: bool) -> list[tuple]:
    """In a worker: each file of `paths` decoded into its slot of the slab; per file ``("slot", shape,
    dtype, frames)``, ``("array", array, frames)`` (it did not fit its slot) or ``("error", exception)``."""
    global _in_worker
    _in_worker = True
    from .api import _cpu_decode, _selected
    from .frame_decode import decoded_shape
    from .reader import open_pixels

    try:
        mapping = shared_slabs.attach(*slab)
    except OSError:
        mapping = None
    done: list[tuple] = []
    for k, path in enumerate(paths):
        try:
            with open_pixels(path) as reader:
                spec = reader.spec
                sel = None if index is None else reader.check_indices([index])[0]
                shape = spec.frame_shape if sel is not None else decoded_shape(reader)
                frames = _selected(spec, sel) if infos else None
                nbytes = None if shape is None else int(np.prod(shape, dtype=np.int64)) * spec.dtype.itemsize
                if mapping is not None and nbytes is not None and nbytes <= slot:
                    out = np.frombuffer(mapping, dtype=spec.dtype, count=nbytes // spec.dtype.itemsize,
                                        offset=k * slot).reshape(shape)
                    _cpu_decode(reader, sel, raw=raw, as_rgb=as_rgb, out=out, threads=1)
                    del out
                    done.append(("slot", shape, spec.dtype.str, frames))
                else:
                    done.append(("array", _cpu_decode(reader, sel, raw=raw, as_rgb=as_rgb, threads=1), frames))
        except BaseException as exc:  # noqa: BLE001 - raised (or returned) in the caller's process, in order
            done.append(("error", _picklable(exc)))
    return done


def _picklable(exc: BaseException) -> BaseException:
    """`exc`, or where it would not survive the trip back, a GpudcmError (a ValueError) naming it."""
    try:
        again = pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to pickle
        again = None
    if type(again) is type(exc) and str(again) == str(exc):
        return exc
    return GpudcmError(f"{type(exc).__name__}: {exc}")


def _page(nbytes: int) -> int:
    return max(4096, -(-int(nbytes) // 4096) * 4096)


def files_per_chunk(files: int, processes: int, slot: int) -> int:
    """Files in a chunk: four chunks a worker or more, at most MAX_CHUNK_FILES, the slab within MAX_SLAB_BYTES."""
    return max(1, min(MAX_CHUNK_FILES, -(-files // (processes * 4)), MAX_SLAB_BYTES // slot))


def decode_rest(paths: Sequence, first_result: np.ndarray, decode_here: Callable[[int], Any], *, processes: int,
                index: int | None, raw: bool, as_rgb: bool, on_error: str, tick: Callable[[Any], None], out=None,
                infos: list | None = None) -> list | None:
    """Files 1.. of `paths` decoded on `processes` workers (file 0 was decoded here: `first_result` sizes
    the slots), as ``[result or exception]`` in order (exceptions only with ``on_error="return"``; the
    first error otherwise raised once the chunks under way have finished); written into ``out[k]`` when
    given. None when the pool cannot start (the caller decodes them itself); should the pool break
    (a worker killed), ``decode_here(k)`` decodes the files from the first one not returned."""
    from concurrent.futures.process import BrokenProcessPool

    from .codecs import processes as frame_processes

    slot = _page(first_result.nbytes)
    if slot > MAX_SLAB_BYTES:
        return None
    sizing = [slot]  # the slot of the next chunk: grows to a file that came back pickled (a mixed batch)
    n = len(paths)
    names = [os.fspath(p) for p in paths]
    try:
        pool = frame_processes._pool(processes)
    except (OSError, RuntimeError):
        return None
    results: list[Any] = []
    start = [1]  # the first file not yet submitted

    def submit(chunks: frame_processes.SlabChunks) -> None:
        """The next chunk of files, while there are any and the pool has room."""
        while chunks.room() and start[0] < n:
            a, slot = start[0], sizing[0]
            b = start[0] = min(n, a + files_per_chunk(n - 1, processes, slot))
            chunks.submit((a, slot), slot * (b - a), _decode_chunk, slot, names[a:b], index, raw, as_rgb,
                          infos is not None)

    def collect(a: int, slab: shared_slabs.Slab, done: list, slot: int) -> BaseException | None:
        """The chunk's results appended (copied out of `slab`); the error that ends the batch, if any."""
        for k, item in enumerate(done, a):
            if item[0] == "error":
                if not isinstance(item[1], GpudcmError) or on_error != "return":
                    return item[1]
                result = item[1]
            elif item[0] == "slot":
                _, shape, dtype, frames = item
                dtype = np.dtype(dtype)
                if out is None:
                    result = host_memory.empty(shape, dtype)
                else:  # as the threads would check it (before the slab is viewed: an error holds no view)
                    try:
                        result = check_out(out[k], tuple(shape), dtype, names[k])
                    except GpudcmError as exc:
                        return exc
                view = np.frombuffer(slab.mapping, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)),
                                     offset=(k - a) * slot).reshape(shape)
                np.copyto(result, view)
                del view
                _note(infos, names[k], frames)
            else:
                result = item[1]
                if isinstance(result, np.ndarray) and _page(result.nbytes) <= MAX_SLAB_BYTES:
                    sizing[0] = max(sizing[0], _page(result.nbytes))
                if out is not None:
                    try:
                        check_out(out[k], result.shape, result.dtype, names[k])
                    except GpudcmError as exc:
                        return exc
                    out[k] = result
                    result = out[k]
                _note(infos, names[k], item[2])
            results.append(result)
            tick(result)
        return None

    with frame_processes.SlabChunks(pool, processes) as chunks:
        try:
            submit(chunks)
        except (OSError, RuntimeError, BrokenProcessPool):
            frame_processes._pool.cache_clear()
            return None
        try:
            while chunks:
                (a, slot), slab, done = chunks.next()
                try:
                    failure = collect(a, slab, done, slot)
                finally:
                    shared_slabs.give(slab)
                if failure is not None:
                    chunks.finish()  # the chunks under way finish before their slabs go back
                    raise failure
                submit(chunks)
        except BrokenProcessPool:  # a worker died: the pool is dropped, what was not returned decoded here
            frame_processes._pool.cache_clear()
            chunks.close()
            results.extend(decode_here(k) for k in range(1 + len(results), n))
        return results


def _note(infos: list | None, name: str, frames) -> None:
    if infos is not None and frames is not None:
        from .routing import FrameInfo

        infos.extend(FrameInfo(name, f, "cpu-plugin", "CPU codec registry (gpudcm.codecs)") for f in frames)
