"""Frames of codecs that hold the GIL (pydicom's plugins) on a process pool: a long multi-frame file is
split into chunks of frames, each decoded in a worker by :func:`gpudcm.codecs.decode_frame` (so with the
same values) and sent back. The pool is forked on first use (as torch's DataLoader forks its workers:
no re-import of the caller's ``__main__``, which spawn and forkserver would run again) and stays up. It is
used only on Linux, for at least :data:`MIN_FRAMES` frames, outside daemonic processes (DataLoader
workers), unless ``GPUDCM_CPU_PROCESSES=0``; any failure of the pool itself falls back to decoding in
this process."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache

import numpy as np

from ..spec import PixelSpec

MIN_FRAMES = 16  # below this, the hand-over costs more than a second core gains


@lru_cache(maxsize=4)
def _pool(processes: int) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("fork"))
    atexit.register(pool.shutdown, wait=False, cancel_futures=True)
    return pool


def _chunk(spec: PixelSpec, frames: list[bytes], raw: bool, as_rgb: bool) -> np.ndarray:
    from .decode import decode_frame

    out = np.empty((len(frames), *spec.frame_shape), dtype=spec.dtype)
    for k, data in enumerate(frames):
        decode_frame(spec, data, raw=raw, as_rgb=as_rgb, out=out[k])
    return out


def usable(n_frames: int, processes: int) -> bool:
    return (processes > 1 and n_frames >= MIN_FRAMES and sys.platform.startswith("linux")
            and os.environ.get("GPUDCM_CPU_PROCESSES", "1") != "0" and not multiprocessing.current_process().daemon)


def decode_in_processes(spec: PixelSpec, frames, out: np.ndarray, *, raw: bool, as_rgb: bool, processes: int) -> bool:
    """Decode `frames` into `out` on `processes` worker processes; False (nothing written) when the pool
    cannot be used here. Decoding errors are raised as in this process."""
    from concurrent.futures.process import BrokenProcessPool

    n = len(frames)
    bounds = [n * k // (processes * 2) for k in range(processes * 2 + 1)]  # two chunks a worker
    try:
        pool = _pool(processes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the workers only decode
            futures = [(a, pool.submit(_chunk, spec, [bytes(f) for f in frames[a:b]], raw, as_rgb))
                       for a, b in zip(bounds, bounds[1:]) if b > a]
    except (OSError, RuntimeError, BrokenProcessPool):
        return False
    try:
        for a, fut in futures:
            part = fut.result()
            out[a : a + len(part)] = part
    except BrokenProcessPool:
        _pool.cache_clear()
        return False
    return True
