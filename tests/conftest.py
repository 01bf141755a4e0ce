"""Shared fixtures, the `gpu` marker's skip, and the parity report printed at the end of the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

PARITY_LOG: list[tuple[str, str]] = []


def _cuda_ok() -> tuple[bool, str]:
    from gpudcm.cuda.runtime import cuda_status

    return cuda_status()


def pytest_collection_modifyitems(config, items):
    ok, why = _cuda_ok()
    if ok:
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA device: {why}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def generated():
    from corpus import generated_cases

    return {c.name: c for c in generated_cases()}


@pytest.fixture
def parity_log():
    return PARITY_LOG


def pytest_terminal_summary(terminalreporter):
    if not PARITY_LOG:
        return
    tr = terminalreporter
    tr.section("parity with pydicom (CPU path)")
    width = max(len(n) for n, _ in PARITY_LOG)
    for name, result in sorted(PARITY_LOG):
        tr.write_line(f"{name.ljust(width)}  {result}")
    equal = sum(1 for _, r in PARITY_LOG if r.startswith("equal"))
    raised = sum(1 for _, r in PARITY_LOG if r.startswith("both raise"))
    tr.write_line(f"parity: {equal} equal to pydicom, {raised} raise a GpudcmError where pydicom fails too, "
                  f"{len(PARITY_LOG) - equal - raised} other, of {len(PARITY_LOG)} files")
