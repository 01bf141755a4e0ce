"""Thread safety: the corpus decoded from 8 threads at once, decode_batch from several threads, and the
host-device path from several threads (each its own HostOps) all equal the serial results."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import gpudcm
import malformed
from corpus import corpus_files, generated_cases, reference_shape, report
from tests.harness.host_ops import HostOps

MAX_BYTES = 2 << 20  # keeps the run short; the big files add time, not coverage of shared state


@pytest.fixture(scope="module")
def paths() -> list[Path]:
    files = [p for p in corpus_files() if p.stat().st_size <= MAX_BYTES and reference_shape(p)]
    return files + [c.path for c in generated_cases()]


def _outcome(fn, *args, **kw):
    """The array, or the (type, message) of the GpudcmError: both must repeat across threads."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kw)
    except gpudcm.GpudcmError as exc:
        return (type(exc).__name__, str(exc))


def _equal(a, b) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return a == b
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


def _cpu(p):
    return gpudcm.pixel_array(p, device="cpu")


def test_corpus_from_eight_threads_equals_serial(paths):
    serial = [_outcome(_cpu, p) for p in paths]
    jobs = paths * 2  # every file decoded twice, interleaved over 8 threads
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(lambda p: _outcome(_cpu, p), jobs))
    bad = [str(p) for p, got in zip(jobs, threaded) if not _equal(got, serial[paths.index(p)])]
    line = f"reliability/threads: {len(jobs)} decodes of {len(paths)} files on 8 threads, {len(bad)} differ from serial"
    report(line)
    assert not bad, line + "\n" + "\n".join(bad[:20])


def test_decode_batch_from_several_threads_equals_serial(paths):
    batch = paths[:60]
    serial = gpudcm.decode_batch(batch, device="cpu", on_error="return")

    def run(workers: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gpudcm.decode_batch(batch, device="cpu", on_error="return", workers=workers)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, [1, 2, 3, 4]))
    diffs = 0
    for res in results:
        for a, b in zip(res, serial):
            if isinstance(a, Exception) or isinstance(b, Exception):
                diffs += (type(a), str(a)) != (type(b), str(b))
            else:
                diffs += not _equal(a, b)
    line = f"reliability/decode_batch: 4 threads x {len(batch)} files, {diffs} differ from serial"
    report(line)
    assert diffs == 0, line


def test_host_device_path_from_several_threads_equals_serial(paths):
    batch = paths[:80]
    serial = [_outcome(malformed.decode_host_device, p, ops=HostOps()) for p in batch]

    def run(k: int):
        ops = HostOps()  # each thread its own ops, as lease_ops() gives each decode call on a GPU
        order = batch[k:] + batch[:k]
        return order, [_outcome(malformed.decode_host_device, p, ops=ops) for p in order]

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(run, range(4)))
    diffs = sum(not _equal(got, serial[batch.index(p)]) for order, outs in runs for p, got in zip(order, outs))
    line = f"reliability/host-device threads: 4 threads x {len(batch)} files, {diffs} differ from serial"
    report(line)
    assert diffs == 0, line
    cpu = [_outcome(_cpu, p) for p in batch]
    assert all(_equal(np.asarray(a) if not isinstance(a, tuple) else a, b) or isinstance(b, tuple)
               for a, b in zip(serial, cpu))
