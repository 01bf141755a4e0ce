"""YBR_FULL -> RGB kernel without a GPU: the host build of kernels/colour.cuh, run over the runtime's launch
geometry, equals pydicom's convert_color_space on every 8-bit input, on 16-bit inputs and on every YBR file
of the corpus; NVRTC keeps the float operations as written; the sanitized build runs clean."""

from __future__ import annotations

import ctypes
import dataclasses
import re
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels.processing import _convert_YBR_FULL_to_RGB, convert_color_space
from pydicom.uid import ExplicitVRLittleEndian

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases
from gpudcm.cuda import kernels
from gpudcm.cuda.colour import (
    COLOUR_UNFUSED,
    needs_rgb_conversion,
    plan_ybr_to_rgb,
    ybr_to_rgb,
)
from gpudcm.source import load_dataset
from gpudcm.spec import pixel_spec
from tests.harness import hostbuild, nvrtc
from tests.harness.hostbuild import host_ybr_launcher

ROOT = Path(__file__).resolve().parent.parent
EDGES_16 = np.array([0, 1, 127, 128, 129, 254, 255, 256, 32767, 32768, 65534, 65535], dtype=np.uint16)


def host_convert(arr: np.ndarray, geometry: kernels.Geometry | None = None) -> np.ndarray:
    """`arr` converted by the host build (a copy), optionally over another geometry."""
    out = np.array(arr, copy=True, order="C")
    plan = plan_ybr_to_rgb(out.shape, out.dtype)
    if geometry is not None:
        plan = dataclasses.replace(plan, geometry=geometry)
    assert host_ybr_launcher()(plan, out) == 0
    return out


@lru_cache(maxsize=1)
def all_triples() -> np.ndarray:
    """Every (Y, Cb, Cr) uint8 triple once, as a (4096, 4096, 3) image."""
    i = np.arange(1 << 24, dtype=np.uint32)
    out = np.empty((1 << 24, 3), dtype=np.uint8)
    out[:, 0], out[:, 1], out[:, 2] = i >> 16, (i >> 8) & 0xFF, i & 0xFF
    return out.reshape(4096, 4096, 3)


def _mismatching_pixels(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype
    return int((a != b).any(axis=-1).sum())


def test_every_8bit_triple_equals_pydicom():
    src = all_triples()
    assert _mismatching_pixels(ybr_to_rgb(src.copy(), launcher=host_ybr_launcher()), convert_color_space(src, "YBR_FULL", "RGB")) == 0


def test_every_8bit_triple_in_one_column_images_equals_pydicom():
    """NumPy computes (1, 3) @ (3, 3) without FMA; the plan's unfused variant follows it."""
    src = all_triples().reshape(-1, 1, 3)
    assert plan_ybr_to_rgb(src.shape, src.dtype).flags == COLOUR_UNFUSED
    assert _mismatching_pixels(ybr_to_rgb(src.copy(), launcher=host_ybr_launcher()), convert_color_space(src, "YBR_FULL", "RGB")) == 0


@lru_cache(maxsize=1)
def near_boundary_triples() -> np.ndarray:
    """The triples whose exact R, G or B lies within 2e-5 of a rounding boundary (k + 0.5)."""
    m = np.array([[1, 1, 1], [0, -0.114 * 1.772 / 0.587, 1.772], [1.402, -0.299 * 1.402 / 0.587, 0]], dtype=np.float32)
    picked = []
    for chunk in all_triples().reshape(64, -1, 3):
        v = (chunk - np.array([0.0, 128.0, 128.0])) @ m.astype(np.float64) + 0.5
        picked.append(chunk[(np.abs(v - np.round(v)) < 2e-5).any(axis=-1)])
    return np.concatenate(picked)


@pytest.mark.parametrize("cols", [1, 2, 3, 5, 8, 17, 64, 255, 257])
def test_rounding_sensitive_triples_in_any_image_width(cols):
    """The triples closest to a rounding boundary, in images of many widths, with and without frames."""
    near = near_boundary_triples()
    assert len(near) > 100_000
    for frames in (1, 3):
        n = len(near) // (cols * frames) * cols * frames
        img = near[:n].reshape(-1, frames, cols, 3) if frames > 1 else near[:n].reshape(-1, cols, 3)
        assert _mismatching_pixels(host_convert(img), convert_color_space(img, "YBR_FULL", "RGB")) == 0


def _random_16bit(rng: np.random.Generator, n: int) -> np.ndarray:
    edges = np.stack(np.meshgrid(EDGES_16, EDGES_16, EDGES_16, indexing="ij"), axis=-1).reshape(-1, 3)
    wide = rng.integers(0, 1 << 16, size=(n, 3), dtype=np.uint16)
    near = rng.integers(0, 512, size=(n // 2, 3), dtype=np.uint16)  # where the clip to 0..255 bites
    return np.concatenate([edges, wide, near])


def test_16bit_triples_equal_pydicom_arithmetic():
    """pydicom's conversion (``_convert_YBR_FULL_to_RGB``, which convert_color_space refuses to call for
    uint16) on edges and a few million random triples: clipped to 0..255, kept uint16."""
    flat = _random_16bit(np.random.default_rng(16), 2_000_000)
    for img in (flat[: len(flat) // 8 * 8].reshape(-1, 8, 3), flat.reshape(-1, 1, 3)):
        plan = plan_ybr_to_rgb(img.shape, img.dtype)
        assert plan.kernel == "gpudcm_ybr_to_rgb_16"
        got = ybr_to_rgb(img.copy(), launcher=host_ybr_launcher(), allow_16bit=True)
        ref = _convert_YBR_FULL_to_RGB(img)
        assert got.dtype == np.uint16 and int(got.max()) <= 255
        assert _mismatching_pixels(got, ref) == 0


@pytest.mark.parametrize("dtype", [np.uint16, np.int8, np.int16, np.dtype(">u2")])
def test_other_dtypes_refused_as_pydicom_refuses_them(dtype):
    arr = np.zeros((2, 2, 3), dtype=dtype)
    with pytest.raises(ValueError):
        convert_color_space(arr, "YBR_FULL", "RGB")
    with pytest.raises(gpudcm.GpudcmError):
        ybr_to_rgb(arr, launcher=host_ybr_launcher())
    if np.dtype(dtype) != np.uint16:
        with pytest.raises(gpudcm.InvalidPixelData):
            plan_ybr_to_rgb(arr.shape, dtype)


def test_16bit_ybr_file_raises_on_the_cpu_path_too():
    """What makes ybr_to_rgb refuse uint16 by default: pixel_array on 16-bit YBR_FULL data raises."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 2, 2, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "YBR_FULL", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(12, dtype="<u2").tobytes()
    with pytest.raises(gpudcm.GpudcmError, match="uint16"):
        gpudcm.pixel_array(ds, device="cpu")
    np.testing.assert_array_equal(gpudcm.pixel_array(ds, device="cpu", raw=True), np.arange(12).reshape(2, 2, 3))


def _photometric(path: Path) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return dcmread(path, stop_before_pixels=True, force=True).get("PhotometricInterpretation")
        except Exception:
            return None


YBR_FILES = [p for p in corpus_files() if _photometric(p) in ("YBR_FULL", "YBR_FULL_422")]
YBR_GENERATED = [c for c in generated_cases() if c.name.startswith("ybr")]


def _cpu(src, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(src, device="cpu", **kwargs)


def _spec(src):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, name = load_dataset(src)
    return pixel_spec(ds, source=name)


def test_ybr_corpus_is_covered():
    assert len(YBR_FILES) >= 12
    assert any(_spec(p).is_encapsulated for p in YBR_FILES) and any(not _spec(p).is_encapsulated for p in YBR_FILES)
    assert len(YBR_GENERATED) >= 4


@pytest.mark.parametrize("path", YBR_FILES, ids=corpus_id)
def test_host_kernel_equals_cpu_on_ybr_corpus(path):
    spec = _spec(path)
    assert needs_rgb_conversion(spec, raw=False, as_rgb=True)
    ref = _cpu(path)
    got = ybr_to_rgb(_cpu(path, raw=True), launcher=host_ybr_launcher())
    assert got.dtype == ref.dtype and got.shape == ref.shape
    assert _mismatching_pixels(got, ref) == 0
    last = spec.number_of_frames - 1
    frame = ybr_to_rgb(_cpu(path, as_rgb=False, index=last), launcher=host_ybr_launcher())
    np.testing.assert_array_equal(frame, _cpu(path, index=last))


@pytest.mark.parametrize("case", YBR_GENERATED, ids=lambda c: c.name)
def test_host_kernel_equals_cpu_on_generated_ybr(case):
    raw = _cpu(case.path, raw=True)
    np.testing.assert_array_equal(raw, case.expected_raw)
    got = ybr_to_rgb(raw, launcher=host_ybr_launcher())
    np.testing.assert_array_equal(got, case.expected)
    np.testing.assert_array_equal(got, _cpu(case.path))


def test_needs_rgb_conversion_follows_pydicom():
    by_name = {c.name: c for c in generated_cases()}
    ybr422 = _spec(next(c for c in YBR_GENERATED if c.name.startswith("ybr422")).path)
    ybr = _spec(next(c for c in YBR_GENERATED if c.name.startswith("ybr_full")).path)
    rgb = _spec(by_name["rgb8_planar1_le_explicit"].path)
    for spec in (ybr422, ybr):
        assert needs_rgb_conversion(spec, raw=False, as_rgb=True)
        assert not needs_rgb_conversion(spec, raw=True, as_rgb=True)
        assert not needs_rgb_conversion(spec, raw=False, as_rgb=False)
    assert not needs_rgb_conversion(rgb, raw=False, as_rgb=True)


@pytest.mark.parametrize("grid,block", [(1, 1), (1, 32), (3, 7), (2, 256)])
def test_grid_stride_covers_every_pixel(grid, block):
    """Any geometry converts every pixel once and touches nothing past the last one."""
    rng = np.random.default_rng(grid * 1000 + block)
    img = rng.integers(0, 256, size=(7, 143, 3), dtype=np.uint8)
    buf = np.concatenate([img.reshape(-1), np.full(6, 0xA5, dtype=np.uint8)])
    plan = dataclasses.replace(plan_ybr_to_rgb(img.shape, img.dtype), geometry=kernels.Geometry(grid, block))
    fn = hostbuild.function("gpudcm_host_ybr_to_rgb", ctypes.c_uint32, [ctypes.c_uint32] * 3 + [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32])
    assert fn(plan.bits, grid, block, hostbuild.ptr(buf), plan.n_pixels, plan.flags) == 0
    np.testing.assert_array_equal(buf[: img.size].reshape(img.shape), convert_color_space(img, "YBR_FULL", "RGB"))
    assert (buf[img.size :] == 0xA5).all()
    img16 = img.astype(np.uint16) * 257
    np.testing.assert_array_equal(host_convert(img16, kernels.Geometry(grid, block)), _convert_YBR_FULL_to_RGB(img16))


def test_plan():
    p = plan_ybr_to_rgb((2, 300, 400, 3), np.uint8)
    assert (p.kernel, p.bits, p.n_pixels, p.flags) == ("gpudcm_ybr_to_rgb_8", 8, 240_000, 0)
    assert p.geometry == kernels.launch_geometry(240_000)
    assert [int(s) for s in p.scalars()] == [240_000, 0]
    assert plan_ybr_to_rgb((5, 1, 3), np.uint16).flags == COLOUR_UNFUSED
    assert plan_ybr_to_rgb((3,), np.uint8).flags == COLOUR_UNFUSED and plan_ybr_to_rgb((3,), np.uint8).n_pixels == 1
    assert plan_ybr_to_rgb((0, 4, 3), np.uint8).n_pixels == 0
    for shape in ((), (4, 4), (4, 4, 4)):
        with pytest.raises(gpudcm.InvalidPixelData):
            plan_ybr_to_rgb(shape, np.uint8)
    with pytest.raises(gpudcm.InvalidPixelData):
        plan_ybr_to_rgb((4, 3), np.float32)
    empty = np.empty((0, 4, 3), dtype=np.uint8)
    assert ybr_to_rgb(empty, launcher=lambda *a: pytest.fail("launched over nothing")).shape == (0, 4, 3)


def test_non_contiguous_input_is_converted_into_a_copy():
    img = all_triples()[:64, :128]
    view = img[:, ::2]
    got = ybr_to_rgb(view, launcher=host_ybr_launcher())
    np.testing.assert_array_equal(got, convert_color_space(view, "YBR_FULL", "RGB"))
    np.testing.assert_array_equal(view, all_triples()[:64, :128:2])


def test_nvrtc_keeps_each_rounding_as_written():
    """Every float add/mul/fma in the PTX is an explicit round-to-nearest one (never contracted by ptxas),
    with the fma chain of the fused variant and the separate products of the unfused one."""
    ptx = nvrtc.ptx("colour.cu")
    entries = re.split(r"\.visible \.entry ", ptx)[1:]
    assert sorted(e.split("(")[0] for e in entries) == ["gpudcm_ybr_to_rgb_16", "gpudcm_ybr_to_rgb_8"]
    for body in entries:
        ops = re.findall(r"\b(?:add|sub|mul|fma|mad)(?:\.[a-z]+)*\.f32\b", body)
        assert ops and all(op.split(".")[1] == "rn" for op in ops), ops
        assert len(re.findall(r"\bfma\.rn\.f32\b", body)) == 4
        assert len(re.findall(r"\bmul\.rn\.f32\b", body)) == 4


def sanitized_run() -> int:
    """Odd sizes (0 and 1 pixels included), both widths and variants, tiny and planned geometries, through
    the sanitized build; run in a process with libasan preloaded (see test_sanitized_host_build)."""
    launch = host_ybr_launcher(sanitize=True)
    rng = np.random.default_rng(7)
    cases = 0
    for dtype, ref_fn in ((np.uint8, lambda a: convert_color_space(a, "YBR_FULL", "RGB")), (np.uint16, _convert_YBR_FULL_to_RGB)):
        for n in (0, 1, 2, 3, 5, 31, 256, 257, 1000):
            for cols in (1, n) if n else (1, 4):
                img = rng.integers(0, 1 << (8 * np.dtype(dtype).itemsize), size=(max(n // max(cols, 1), 0), cols, 3), dtype=dtype)
                ref = ref_fn(img)
                base = plan_ybr_to_rgb(img.shape, dtype)
                for geometry in (base.geometry, kernels.Geometry(1, 1), kernels.Geometry(3, 7), kernels.Geometry(2, 256)):
                    out = np.array(img, copy=True)  # exactly sized: one sample past the end is an ASan report
                    assert launch(dataclasses.replace(base, geometry=geometry), out) == 0
                    np.testing.assert_array_equal(out, ref)
                    cases += 1
    bad = hostbuild.function("gpudcm_host_ybr_to_rgb", ctypes.c_uint32, [ctypes.c_uint32] * 3 + [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32], True)
    assert bad(32, 1, 1, None, 0, 0) == kernels.STATUS_BAD_PARAMS
    print(f"colour sanitized: {cases} cases completed; {hostbuild.sanitizer_line()}")
    return 0


def test_sanitized_host_build():
    """ASan + UBSan build of the same logic on odd sizes, including 0 and 1 pixels."""
    code = "import sys; sys.path.insert(0, 'tests'); import test_colour; sys.exit(test_colour.sanitized_run())"
    found = hostbuild.run_sanitized(["-c", code], r"colour sanitized: (\d+) cases completed", timeout=300)
    assert int(found.group(1)) == 2 * 9 * 2 * 4, found.group(0)  # 2 widths x 9 sizes x 2 shapes x 4 geometries
