"""How close the CPU path comes to what the machine allows: gpudcm's CPU decode of a ``gpudcm bench``
workload beside the raw limits of moving the same bytes, and beside dicomsdl and pydicom, in one run.

Usage::

    python benchmarks/cpu_limits.py [--workloads native-ct,rle-ct] [--rounds 11] [--threads 2]

Limits (no parsing, no decoding; the pixel element's position is found once, before timing):

* **read, fresh arrays**: ``os.preadv`` of each file's pixel bytes into a new ``np.empty`` array that is
  kept (what any reader returning new arrays pays: the page faults of new memory and the copy out of the
  page cache); 1 thread and `--threads` threads.
* **read, one buffer**: the same reads into one reused buffer (the page cache copy alone).
* **memcpy, fresh arrays**: a copy of the decoded bytes into new arrays (the cost of producing the output).
* **codec alone** (compressed workloads): the registry's fastest backend (gpudcm.codecs) on every frame,
  its bytes read beforehand, no parse, no checks, no pydicom rules; 1 thread and `--threads` threads. Its
  time over pydicom's is the most any decoder built on that codec can reach on this machine.

Contenders (interleaved round by round, rotating order; medians; the same calls as ``gpudcm bench``):
``gpudcm.decode_batch(paths, device="cpu")`` (all cores: worker processes for a series), ``workers=1``,
the same on threads only (``GPUDCM_CPU_PROCESSES=0``), dicomsdl (when installed),
``pydicom.pixels.pixel_array``. The last column is the row's time over gpudcm's (all cores): below 1 is faster than gpudcm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from gpudcm.bench import workloads as bench
from gpudcm.bench.others import dicomsdl_call, version
from gpudcm.reader import open_pixels


def _extents(paths: Sequence[str]) -> list[tuple[str, int, int]]:
    """(path, file offset, bytes) of each file's pixel element value."""
    out = []
    for p in paths:
        with open_pixels(p) as r:
            data = r.data
            start = data.start if hasattr(data, "start") else os.path.getsize(p) - r.spec.pixel_nbytes
            out.append((p, start, r.spec.pixel_nbytes))
    return out


def _read_fresh(ext: tuple[str, int, int]) -> np.ndarray:
    path, start, n = ext
    fd = os.open(path, os.O_RDONLY)
    try:
        arr = np.empty(n, dtype=np.uint8)
        os.preadv(fd, [arr], start)
    finally:
        os.close(fd)
    return arr


def limits(paths: Sequence[str], decoded_nbytes: int, threads: int) -> dict[str, Callable[[], object]]:
    ext = _extents(paths)
    buf = np.empty(max(n for _, _, n in ext), dtype=np.uint8)
    per_file = decoded_nbytes // len(paths)
    src = np.ones(per_file, dtype=np.uint8)
    pool = ThreadPoolExecutor(threads)

    def read_buffer() -> None:
        for path, start, n in ext:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.preadv(fd, [buf[:n]], start)
            finally:
                os.close(fd)

    return {
        "limit: read, fresh arrays, 1 thread": lambda: [_read_fresh(e) for e in ext],
        f"limit: read, fresh arrays, {threads} threads": lambda: list(pool.map(_read_fresh, ext)),
        "limit: read, one buffer, 1 thread": read_buffer,
        "limit: memcpy, fresh arrays, 1 thread": lambda: [src.copy() for _ in ext],
        f"limit: memcpy, fresh arrays, {threads} threads": lambda: list(pool.map(lambda _: src.copy(), ext)),
    }


# rows computed from another row, not timed: label -> (the row it divides, by how many cores)
IDEAL: dict[str, tuple[str, int]] = {}


def codec_limits(paths: Sequence[str], threads: int) -> dict[str, Callable[[], object]]:
    """The registry's backend alone on each file's pre-read frames (none for native workloads). Where the
    backend is pydicom's plugin (a codec that holds the GIL, so threads do not scale), its decode alone
    without the colour conversion to RGB, on 1 thread, and that time over the cores: what any decoder
    giving pydicom's values (that codec's) could reach on this machine with perfect processes."""
    from gpudcm import codecs

    jobs = []
    for p in paths:
        with open_pixels(p) as r:
            if not r.spec.is_encapsulated:
                return {}
            for i in range(r.spec.number_of_frames):
                data = bytes(r.frame_bytes(i))
                info = codecs.frame_info(r.spec, data)
                backend, _ = codecs.choose(r.spec, info)
                jobs.append((backend, data, r.spec, info))
    name = jobs[0][0].name
    if jobs[0][0].finished:
        alone = f"limit: codec alone ({name}, no colour conversion), 1 thread"
        IDEAL[f"limit: codec alone ({name}, no colour conversion), {threads} cores (1 thread / {threads})"] = (alone, threads)
        return {alone: lambda: [b.decode(d, sp, i, raw=False, as_rgb=False) for b, d, sp, i in jobs]}
    pool = ThreadPoolExecutor(threads)

    def one(job) -> object:
        backend, data, spec, info = job
        return backend.decode(data, spec, info)

    return {
        f"limit: codec alone ({name}), 1 thread": lambda: [one(j) for j in jobs],
        f"limit: codec alone ({name}), {threads} threads": lambda: list(pool.map(one, jobs)),
    }


def _threads_only(paths: tuple[str, ...]) -> object:
    """decode_batch on the batch threads, its worker processes (gpudcm.file_pool) turned off."""
    os.environ["GPUDCM_CPU_PROCESSES"] = "0"
    try:
        return gpudcm.decode_batch(paths, device="cpu")
    finally:
        del os.environ["GPUDCM_CPU_PROCESSES"]


def contenders(paths: tuple[str, ...]) -> dict[str, Callable[[], object]]:
    out: dict[str, Callable[[], object]] = {
        "gpudcm cpu (all cores)": lambda: gpudcm.decode_batch(paths, device="cpu"),
        "gpudcm cpu 1 thread": lambda: gpudcm.decode_batch(paths, device="cpu", workers=1),
        "gpudcm cpu (all cores, threads only)": lambda: _threads_only(paths),
    }
    if version("dicomsdl"):
        out[f"dicomsdl {version('dicomsdl')} (1 core)"] = dicomsdl_call(paths)
    out["pydicom 1 core"] = lambda: [pydicom_pixel_array(p) for p in paths]
    return out


def measure(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    for k, fn in list(fns.items()):  # warm-up (page cache, pools, imports); a contender that fails is left out
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - e.g. dicomsdl has no HTJ2K codec
            print(f"- {k}: left out ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})")
            del fns[k]
    times: dict[str, list[float]] = {k: [] for k in fns}
    keys = list(fns)
    for r in range(rounds):
        for k in keys[r % len(keys):] + keys[: r % len(keys)]:
            t = time.perf_counter()
            result = fns[k]()
            times[k].append(time.perf_counter() - t)
            del result
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="native-ct,rle-ct", help="gpudcm bench workloads (default native-ct,rle-ct)")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--cache", default=None, help="workload cache folder (default: gpudcm bench's)")
    args = ap.parse_args(argv)
    cache = args.cache or bench.default_cache()
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({len(os.sched_getaffinity(0))} usable cores)\n")
    for w in bench.build_all(cache, names=[n.strip() for n in args.workloads.split(",")]):
        if not isinstance(w, bench.Workload):
            print(f"## {w.name}: not built here\n")
            continue
        decoded = sum(a.nbytes for a in gpudcm.decode_batch(w.paths, device="cpu"))
        fns = {**contenders(w.paths), **limits(w.paths, decoded, args.threads), **codec_limits(w.paths, args.threads)}
        med = measure(fns, args.rounds)
        med.update({label: med[row] / cores for label, (row, cores) in IDEAL.items() if row in med})
        gp = med["gpudcm cpu (all cores)"]
        py = med["pydicom 1 core"]
        print(f"## {w.name}: {len(w.paths)} files, {decoded / 1e6:.1f} MB decoded, {w.compressed_bytes / 1e6:.1f} MB "
              f"stored (median of {args.rounds} interleaved rounds)\n")
        print("| row | ms | MB/s decoded | time / gpudcm cpu (all cores) | vs pydicom 1 core |\n|---|---:|---:|---:|---:|")
        for k, t in med.items():
            print(f"| {k} | {t * 1e3:.1f} | {decoded / t / 1e6:,.0f} | {t / gp:.2f}x | {py / t:.2f}x |")
        print()
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
