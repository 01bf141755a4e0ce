"""pydicom on all cores: a warmed process pool decoding files (or frame ranges of multi-frame files).

The pool is started (forkserver: safe after CUDA is initialised in the parent) and warmed once per run, so
its start-up is reported apart from the timings; each timed call still pays for handing the work out and
for pickling the decoded arrays back to the parent, which is what a caller of such a pool gets.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

import numpy as np

Task = tuple[str, int, int]  # (path, first frame, stop frame); (path, 0, 0) = the whole file


def _ready(_: int) -> int:
    importlib.import_module("pydicom.pixels")  # the import is the warm-up
    from .others import keep_pydicom_plugins

    keep_pydicom_plugins()  # the same plugins as the parent's pydicom rows

    time.sleep(0.05)  # keep this worker busy so the next warm-up task starts another one
    return 0


def _decode(tasks: Sequence[Task]) -> list[np.ndarray]:
    from pydicom.pixels import iter_pixels, pixel_array

    out = []
    for path, start, stop in tasks:
        if stop == 0:
            out.append(pixel_array(path))
        else:
            out.append(np.stack(list(iter_pixels(path, indices=range(start, stop)))))
    return out


def plan(paths: Sequence[str], frames: Sequence[int], workers: int) -> list[list[Task]]:
    """Split the work into about 4 chunks per worker: whole files when there are enough of them, else
    frame ranges of the multi-frame files (whose parts the caller concatenates)."""
    target = max(1, 4 * workers)
    if len(paths) >= 2 * workers or all(n <= 1 for n in frames):
        per = math.ceil(len(paths) / target)
        return [[(p, 0, 0) for p in paths[i:i + per]] for i in range(0, len(paths), per)]
    chunks: list[list[Task]] = []
    for path, n in zip(paths, frames):
        if n <= 1:
            chunks.append([(path, 0, 0)])
            continue
        per = math.ceil(n / target)
        chunks += [[(path, i, min(i + per, n))] for i in range(0, n, per)]
    return chunks


class DecodePool:
    """`workers` processes running pydicom; :meth:`decode` returns one array per file, in order."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        start = time.perf_counter()
        self._ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
        list(self._ex.map(_ready, range(workers)))
        self.startup_s = time.perf_counter() - start

    def decode(self, chunks: Sequence[list[Task]]) -> list[np.ndarray]:
        futures = [self._ex.submit(_decode, chunk) for chunk in chunks]
        out: list[np.ndarray] = []
        parts: list[np.ndarray] = []  # frame ranges of the multi-frame file being assembled
        for chunk, fut in zip(chunks, futures):
            for (_, start, stop), arr in zip(chunk, fut.result()):
                if parts and (stop == 0 or start == 0):  # the previous multi-frame file is complete
                    out.append(np.concatenate(parts))
                    parts = []
                if stop == 0:
                    out.append(arr)
                else:
                    parts.append(arr)
        if parts:
            out.append(np.concatenate(parts))
        return out

    def close(self) -> None:
        self._ex.shutdown(wait=True, cancel_futures=True)
