"""Kernel harness without a GPU: NVRTC compiles every kernel, and the host build of the kernels' logic,
run over the runtime's launch geometry, equals the CPU path; the sanitized build meets lying inputs."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases, native_ts, reference_shape
from gpudcm.cuda import kernels
from gpudcm.cuda.native import decode_native, stage_native
from gpudcm.frames import native_extents
from gpudcm.source import load_dataset
from gpudcm.spec import pixel_spec
from tests.harness import nvrtc
from tests.harness.hostbuild import host_launcher

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", kernels.kernel_files())
def test_nvrtc_compiles(source, arch):
    ok, log, size = nvrtc.compile_source(source, arch)
    assert ok, log
    assert size > 0
    assert "warning" not in log.lower(), log


def test_every_kernel_has_a_host_build():
    """Each kernels/X.cu has tests/harness/host_X.cpp, so its logic runs in CI without a GPU."""
    files = kernels.kernel_files()
    assert "native.cu" in files
    for name in files:
        assert (ROOT / "tests" / "harness" / f"host_{name[:-3]}.cpp").is_file(), name


def test_source_expands_includes_once():
    text = kernels.load_source("native.cu")
    assert '#include "' not in text
    assert text.count("struct GdNativeParams {") == 1
    assert "GD_STATUS_READ_OOB" in text


def test_kernel_dir_found_from_checkout():
    assert (kernels.kernel_dir() / "native.cuh").is_file()


def _native_corpus():
    return [p for p in corpus_files() if reference_shape(p) and native_ts(p)]


def _host_decode(src, index=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, name = load_dataset(src)
    spec = pixel_spec(ds, source=name)
    return decode_native(spec, ds[spec.pixel_keyword].value, index=index, launcher=host_launcher())


def _cpu_raw(src, index=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(src, device="cpu", raw=True, index=index)


NATIVE = _native_corpus()


def test_native_corpus_is_covered():
    assert len(NATIVE) >= 60


@pytest.mark.parametrize("path", NATIVE, ids=corpus_id)
def test_host_kernel_equals_cpu_on_corpus(path):
    got, ref = _host_decode(path), _cpu_raw(path)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    if got.ndim >= 3 and reference_shape(path)[0] == got.shape[0] and len(reference_shape(path)) > 2 and got.shape[-1] != 3:
        last = got.shape[0] - 1
        np.testing.assert_array_equal(_host_decode(path, index=last), _cpu_raw(path, index=last))


GEN_NATIVE = [c for c in generated_cases() if native_ts(c.path)]


@pytest.mark.parametrize("case", GEN_NATIVE, ids=lambda c: c.name)
def test_host_kernel_equals_cpu_on_generated(case):
    got = _host_decode(case.path)
    expected = case.expected_raw if case.expected_raw is not None else case.expected
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, _cpu_raw(case.path))
    ds, name = load_dataset(case.path)
    frames = pixel_spec(ds, source=name).number_of_frames
    for index in range(frames if frames > 1 else 0):
        np.testing.assert_array_equal(_host_decode(case.path, index=index), got[index])


@pytest.mark.parametrize("grid,block", [(1, 1), (1, 32), (3, 7), (2, 256)])
def test_grid_stride_covers_every_element(grid, block):
    """Any geometry, even far fewer threads than samples, decodes every element."""
    case = next(c for c in generated_cases() if c.name == "rgb16_planar1_be_explicit")
    ds, name = load_dataset(case.path)
    spec = pixel_spec(ds, source=name)
    staged = stage_native(spec, ds.PixelData, native_extents(spec))
    plan = dataclasses.replace(kernels.plan_native(spec, spec.number_of_frames), geometry=kernels.Geometry(grid, block))
    out = np.full(plan.n_elements, 0xDEAD, dtype=spec.dtype)
    assert host_launcher()(plan, staged.data, staged.frame_offsets, out) == 0
    np.testing.assert_array_equal(out.reshape(spec.shape()), case.expected)


def test_launch_geometry():
    assert kernels.launch_geometry(0) == kernels.Geometry(1, 256)
    assert kernels.launch_geometry(257) == kernels.Geometry(2, 256)
    g = kernels.launch_geometry(10**12)
    assert g.grid == kernels.MAX_BLOCKS and g.block == 256
    with pytest.raises(gpudcm.InvalidPixelData):
        kernels.launch_geometry(-1)
    with pytest.raises(ValueError):
        kernels.launch_geometry(10, block=2048)


def test_native_flags_follow_spec():
    by_name = {c.name: c for c in generated_cases()}

    def flags(name):
        ds, src = load_dataset(by_name[name].path)
        return kernels.native_flags(pixel_spec(ds, source=src))

    assert flags("u16_bs12_garbage_be_explicit") == kernels.NATIVE_BIG_ENDIAN | kernels.NATIVE_CORRECT_BITS
    assert flags("i16_bs12_garbage_le_explicit") == kernels.NATIVE_SIGNED | kernels.NATIVE_CORRECT_BITS
    assert flags("rgb8_planar1_le_explicit") == kernels.NATIVE_PLANAR
    assert flags("ybr422_6x4x3_le_explicit") == kernels.NATIVE_YBR422
    assert flags("f32_float_multi_be_explicit") == kernels.NATIVE_BIG_ENDIAN
    assert flags("u1_7x5x13_be_explicit") == 0


def test_host_kernel_reports_reads_past_the_buffer():
    """A plan that lies about the size reads only inside the buffer and says so in its status."""
    case = next(c for c in generated_cases() if c.name == "u16_bs12_garbage_le_explicit")
    ds, name = load_dataset(case.path)
    spec = pixel_spec(ds, source=name)
    staged = stage_native(spec, ds.PixelData, native_extents(spec))
    plan = dataclasses.replace(kernels.plan_native(spec, 1), rows=spec.rows * 4)
    out = np.empty(plan.n_elements, dtype=spec.dtype)
    status = host_launcher()(plan, staged.data[:10], staged.frame_offsets[:1], out)
    assert status & kernels.STATUS_READ_OOB


def test_sanitized_host_build_on_lying_inputs():
    """ASan + UBSan build of the same logic, fed lying parameters, random buffers and bad offsets."""
    from tests.harness.hostbuild import run_sanitized

    found = run_sanitized(["-m", "tests.harness.fuzz_native", "3000", "--sanitize", "--seed", "1"],
                          r"fuzz_native: (\d+) cases completed, (\d+) reported reads outside")
    done, refused = map(int, found.groups())
    assert done == 3000
    assert 300 < refused < 3000  # lying inputs were exercised, honest ones too


def test_sanitized_run_fails_on_an_injected_out_of_bounds_read():
    """The check above is not vacuous: the same run with one launch reading past its buffer fails it."""
    from tests.harness.hostbuild import run_sanitized

    with pytest.raises(AssertionError, match="heap-buffer-overflow"):
        run_sanitized(["-m", "tests.harness.fuzz_native", "10", "--sanitize", "--inject-oob"], r"cases completed")


def test_unsanitized_run_fails_the_sanitizer_check():
    """A fuzzer run without the sanitizer says so, and check_sanitized refuses it."""
    import subprocess
    import sys

    from tests.harness.hostbuild import check_sanitized

    proc = subprocess.run([sys.executable, "-m", "tests.harness.fuzz_native", "10"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "AddressSanitizer NOT loaded" in proc.stdout, proc.stdout + proc.stderr
    with pytest.raises(AssertionError):
        check_sanitized(proc.returncode, proc.stdout, proc.stderr, r"cases completed")
