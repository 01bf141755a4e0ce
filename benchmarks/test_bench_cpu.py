"""CPU-path benchmarks: gpudcm (device="cpu") against pydicom on the same files.

Groups are per workload, so ``pytest benchmarks`` prints pydicom and gpudcm side by side:
``<workload>`` for one decode of each file, ``<workload>-batch`` for ``decode_batch`` on two
threads against a serial ``pydicom.pixels.pixel_array`` loop over the same repeated file list, and
``bench:<workload>`` for the ``gpudcm bench --quick`` workloads, timed through the same calls
``gpudcm bench`` uses (:func:`gpudcm.bench.runner.pydicom_call`, :func:`~gpudcm.bench.runner.gpudcm_call`).
"""

from __future__ import annotations

import numpy as np
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from gpudcm.bench import workloads as bench
from gpudcm.bench.runner import LOSSY, check, gpudcm_call, pydicom_call
from workloads import Workload

BATCH_WORKERS = 2


def _pydicom_each(paths: list[str]) -> list[np.ndarray]:
    return [pydicom_pixel_array(p) for p in paths]


def _gpudcm_each(paths: list[str]) -> list[np.ndarray]:
    return [gpudcm.pixel_array(p, device="cpu") for p in paths]


def _assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert isinstance(g, np.ndarray)
        assert g.shape == w.shape and g.dtype == w.dtype.newbyteorder("=")
        np.testing.assert_array_equal(g, w)


def test_pydicom(benchmark, workload: Workload, paths: list[str]) -> None:
    """Baseline: ``pydicom.pixels.pixel_array(path)`` on each file."""
    benchmark.group = workload.name
    benchmark.extra_info["syntax"] = workload.syntax
    out = benchmark(_pydicom_each, paths)
    assert len(out) == len(paths)


def test_gpudcm_cpu(benchmark, workload: Workload, paths: list[str]) -> None:
    """``gpudcm.pixel_array(path, device="cpu")`` on each file; result must equal pydicom's."""
    benchmark.group = workload.name
    benchmark.extra_info["syntax"] = workload.syntax
    out = benchmark(_gpudcm_each, paths)
    _assert_same(out, _pydicom_each(paths))


def test_batch_pydicom_serial(benchmark, batch_workload: Workload) -> None:
    """Baseline: a serial pydicom loop over the batch."""
    batch = batch_workload.batch
    benchmark.group = f"{batch_workload.name}-batch"
    benchmark.extra_info["items"] = len(batch)
    out = benchmark(_pydicom_each, batch)
    assert len(out) == len(batch)


def test_batch_gpudcm_threads(benchmark, batch_workload: Workload) -> None:
    """``gpudcm.decode_batch(batch, device="cpu", workers=2)``; results keep order and equal pydicom's."""
    batch = batch_workload.batch
    benchmark.group = f"{batch_workload.name}-batch"
    benchmark.extra_info["items"] = len(batch)
    benchmark.extra_info["workers"] = BATCH_WORKERS
    out = benchmark(gpudcm.decode_batch, batch, device="cpu", workers=BATCH_WORKERS)
    _assert_same(out, _pydicom_each(batch))


def test_bench_pydicom(benchmark, bench_workload: bench.Workload) -> None:
    """``gpudcm bench``'s "pydicom 1 core" row."""
    benchmark.group = f"bench:{bench_workload.name}"
    benchmark.extra_info.update(syntax=bench_workload.syntax, frames=bench_workload.frames)
    out = benchmark(pydicom_call(bench_workload.paths))
    assert len(out) == len(bench_workload.paths)


def test_bench_gpudcm_cpu(benchmark, bench_workload: bench.Workload) -> None:
    """``gpudcm bench``'s "gpudcm cpu" row; its arrays must pass the bench's check against pydicom."""
    benchmark.group = f"bench:{bench_workload.name}"
    benchmark.extra_info.update(syntax=bench_workload.syntax, frames=bench_workload.frames)
    out = benchmark(gpudcm_call(bench_workload.paths, "cpu"))
    want = pydicom_call(bench_workload.paths)()
    assert check(out, want, bench_workload.transfer_syntax in LOSSY) == "equal to pydicom"
