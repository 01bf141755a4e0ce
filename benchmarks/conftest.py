"""Fixtures for the CPU benchmark suite: one parametrised `workload` per runnable registry entry, and one
`bench_workload` per ``gpudcm bench --quick`` workload (the files and calls ``gpudcm bench`` times).

Run with ``pytest benchmarks`` (timings) or ``pytest benchmarks --benchmark-disable`` (each
benchmark runs once, as a plain correctness test).
"""

from __future__ import annotations

import pytest

from workloads import Workload, available, bench_skipped, bench_workloads, unavailable


def pytest_report_header(config: pytest.Config) -> list[str]:
    """List the workloads skipped on this machine and why."""
    lines = [f"benchmark workload {name} skipped: {why}" for name, why in unavailable().items()]
    return lines + [f"gpudcm bench workload {name} skipped: {why}" for name, why in bench_skipped().items()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise `workload` over every runnable workload, `batch_workload` over those with a batch."""
    runnable = available()
    if "workload" in metafunc.fixturenames:
        metafunc.parametrize("workload", runnable, ids=[w.name for w in runnable])
    if "batch_workload" in metafunc.fixturenames:
        batched = [w for w in runnable if w.batch_size > 0]
        metafunc.parametrize("batch_workload", batched, ids=[w.name for w in batched])
    if "bench_workload" in metafunc.fixturenames:
        built = bench_workloads()
        metafunc.parametrize("bench_workload", built, ids=[w.name for w in built])


@pytest.fixture
def paths(workload: Workload) -> list[str]:
    """Absolute paths of the workload's files."""
    return workload.paths
