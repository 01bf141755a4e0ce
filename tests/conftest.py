"""Shared fixtures, the `gpu` marker's skip, and the parity report printed at the end of the run.

``GPUDCM_REQUIRE_GPU=1`` (ci/gpu.sh sets it): a `gpu` test fails instead of skipping, and fails when CUDA,
nvJPEG or nvImageCodec's GPU JPEG 2000 backend (nvjpeg2k) is missing, so a device run cannot pass by
testing nothing.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

PARITY_LOG: list[tuple[str, str]] = []


def _cuda_ok() -> tuple[bool, str]:
    from gpudcm.cuda.runtime import cuda_status

    return cuda_status()


def _require_gpu() -> bool:
    return os.environ.get("GPUDCM_REQUIRE_GPU", "") not in ("", "0")


@functools.lru_cache(maxsize=1)
def _missing_gpu_backends() -> tuple[str, ...]:
    """Why an expected GPU backend is unusable (empty when CUDA, nvJPEG and nvjpeg2k all work)."""
    ok, why = _cuda_ok()
    if not ok:
        return (f"CUDA: {why}",)
    missing = []
    try:
        from gpudcm.cuda import nvjpeg

        nvjpeg.require_version()
    except Exception as exc:
        missing.append(f"nvJPEG: {exc}")
    from gpudcm.cuda.j2k import gpu_backend_here

    j2k_ok, j2k_why = gpu_backend_here()
    if not j2k_ok:
        missing.append(f"nvImageCodec + nvjpeg2k: {j2k_why}")
    return tuple(missing)


def pytest_runtest_setup(item):
    if _require_gpu() and "gpu" in item.keywords and _missing_gpu_backends():
        pytest.fail("GPUDCM_REQUIRE_GPU=1 but " + "; ".join(_missing_gpu_backends()), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if _require_gpu() and "gpu" in item.keywords and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"  # a gpu test that skips proves nothing on the device
        report.longrepr = f"GPUDCM_REQUIRE_GPU=1: a gpu test skipped ({report.longrepr})"


def pytest_collection_modifyitems(config, items):
    ok, why = _cuda_ok()
    if ok or _require_gpu():
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA device: {why}")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def generated():
    from corpus import generated_cases

    return {c.name: c for c in generated_cases()}


def _native_and_rle(tmp_path_factory, name: str, frames_native: int, frames_rle: int):
    import shutil

    import bigfiles

    d = tmp_path_factory.mktemp(name)
    yield {"native": bigfiles.write_native(d / "native.dcm", frames=frames_native),
           "rle": bigfiles.write_rle(d / "rle.dcm", frames=frames_rle)}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """~126 MB native (240 frames) and ~85 MB RLE (160 frames) files, 512 x 512 uint16."""
    yield from _native_and_rle(tmp_path_factory, "big", 240, 160)


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    """Files just above the one-read size (so they are read lazily): 12 native and 12 RLE frames."""
    yield from _native_and_rle(tmp_path_factory, "medium", 12, 12)


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
