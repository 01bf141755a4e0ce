"""Fused preprocessing without a GPU: the host build of kernels/preprocess.cuh, run over the runtime's launch
geometry, equals the NumPy reference bit for bit for every option on real CT/MR files and random arrays;
the reference equals an independent float64 computation (pydicom's rescale and window, explicit resize
loops); NVRTC keeps each rounding as written; the sanitized build runs clean on odd sizes."""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import itertools
import re
import warnings
from fractions import Fraction
from functools import lru_cache
from math import floor
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_windowing

import gpudcm
from corpus import corpus_files, corpus_id
from gpudcm import preprocessing as pp
from gpudcm.cuda import kernels
from tests.harness import hostbuild, nvrtc

ROOT = Path(__file__).resolve().parent.parent
u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p


def host_launcher(sanitize: bool = False, geometry: kernels.Geometry | None = None):
    """A launcher with cupy_preprocess_launcher's signature that runs the host build instead."""
    fn = hostbuild.function("gpudcm_host_preprocess", u32, [u32, u32, u32, u32, vp, vp, vp, u64, vp], sanitize)

    def launch(plan: pp.PreprocessPlan, src: np.ndarray, rng, out: np.ndarray) -> int:
        assert src.flags.c_contiguous and src.dtype == plan.in_dtype
        assert src.size == plan.n_frames * plan.rows_in * plan.cols_in
        assert out.flags.c_contiguous and out.size == plan.n_out and out.itemsize == plan.out_dtype.itemsize
        assert (rng is None) == (not plan.flags & pp.FLAG_MINMAX)
        words = plan.words
        g = geometry or plan.geometry
        return fn(pp.IN_TYPES[plan.in_dtype][1], pp.OUT_TYPES[plan.out_dtype][1], g.grid, g.block, hostbuild.ptr(src),
                  None if rng is None else hostbuild.ptr(rng), hostbuild.ptr(words), words.size, hostbuild.ptr(out))

    return launch


def host_run(arr, ds, sanitize=False, geometry=None, **options):
    plan = pp.plan_preprocess(arr.shape, arr.dtype, ds, **options)
    return pp._run_kernel(arr, plan, launcher=host_launcher(sanitize, geometry))


def reference(arr, ds, **options):
    return pp._reference(arr, pp.plan_preprocess(arr.shape, arr.dtype, ds, **options))


def assert_kernel_equals_reference(arr, ds, **options):
    """float32: bit for bit (so within the 1e-6 contract); float16: bit for bit, and the float32 result cast."""
    got = host_run(arr, ds, **options)
    ref = reference(arr, ds, **options)
    assert got.dtype == ref.dtype == np.dtype(options.get("out_dtype", np.float32)) and got.shape == ref.shape, options
    np.testing.assert_array_equal(got, ref, err_msg=str(options))
    if got.dtype == np.float16:
        with np.errstate(over="ignore"):
            ref32 = reference(arr, ds, **{**options, "out_dtype": np.float32}).astype(np.float16)
        np.testing.assert_array_equal(got, ref32, err_msg=str(options))
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-6, err_msg=str(options))


# ---------------------------------------------------------------------------------------------------
# Real CT/MR files


def _find(name: str) -> Path:
    return next(p for p in corpus_files() if corpus_id(p) == name)


@lru_cache(maxsize=None)
def real(name: str) -> tuple[np.ndarray, Dataset]:
    path = _find(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reference_pixels(path), dcmread(path, stop_before_pixels=True)


def reference_pixels(path: Path) -> np.ndarray:
    from corpus import reference as pydicom_reference

    arr = pydicom_reference(path)
    assert isinstance(arr, np.ndarray), arr
    return arr


def _windows(arr: np.ndarray, ds: Dataset) -> list:
    lo, hi = float(np.percentile(arr, 5)), float(np.percentile(arr, 95))
    slope = float(ds.get("RescaleSlope", 1) or 1)
    inter = float(ds.get("RescaleIntercept", 0) or 0)
    c, w = (lo + hi) / 2 * slope + inter, max((hi - lo) * abs(slope), 2.0)
    windows = [None, (c, w), (c, 1)]  # width 1: w - 1 = 0, every value below or above
    if "WindowCenter" in ds and str(ds.get("VOILUTFunction", "LINEAR")).upper() == "LINEAR":
        windows.append("auto")
    return windows


def _sizes(rows: int, cols: int) -> list:
    return [None, (max(rows // 2, 1), max(cols // 4, 1)), (rows * 2 // 3 + 1, cols * 3 // 5 + 1),
            (rows * 3 // 2 + 1, cols * 2 + 1), (rows + 3, max(cols // 3, 1))]


ALL_OPTIONS_FILES = ["test_files/CT_small.dcm", "test_files/MR_small.dcm"]
CORPUS_FILES = ["data/693_UNCI.dcm", "data/MR2_UNCI.dcm", "data/emri_small.dcm", "CT2/17106", "CR1/6154",
                "MR1/4919", "test_files/rtdose.dcm", "data/emri_small_big_endian.dcm"]


@pytest.mark.parametrize("name", ALL_OPTIONS_FILES)
def test_every_option_combination_on_real_files(name):
    arr, ds = real(name)
    n = 0
    for window, normalize, size, interpolation, out_dtype in itertools.product(
        _windows(arr, ds), ["minmax", None, (-20.5, 311.25)], _sizes(*arr.shape[-2:]), pp.INTERPOLATIONS,
        [np.float32, np.float16],
    ):
        assert_kernel_equals_reference(arr, ds, window=window, normalize=normalize, size=size,
                                       interpolation=interpolation, out_dtype=out_dtype)
        n += 1
    assert n >= 180


@pytest.mark.parametrize("name", CORPUS_FILES)
def test_kernel_equals_reference_on_corpus(name):
    arr, ds = real(name)
    if arr.ndim == 2 and arr.size > 100_000:
        arr = arr[100:196, 100:197]  # the same stored values, fewer of them
    rows, cols = arr.shape[-2:]
    for window in _windows(arr, ds):
        for size, interpolation in [(None, "bilinear"), ((rows // 2, cols // 2), "area"),
                                    ((rows * 2 // 3 + 1, cols + 5), "bilinear"), ((rows // 3 + 1, cols * 3 // 4), "area")]:
            for normalize, out_dtype in [("minmax", np.float16), (None, np.float32), ((3.5, 0.25), np.float16)]:
                assert_kernel_equals_reference(arr, ds, window=window, normalize=normalize, size=size,
                                               interpolation=interpolation, out_dtype=out_dtype)


# ---------------------------------------------------------------------------------------------------
# Random arrays of every stored type


def grey_dataset(bits_stored=16, signed=True, slope=1.0, intercept=0.0, window=(40.0, 400.0), spacing=(0.5, 0.75)) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.SamplesPerPixel = 1
    ds.BitsStored = bits_stored
    ds.PixelRepresentation = int(signed)
    if slope is not None:
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if spacing is not None:
        ds.PixelSpacing = list(spacing)
    return ds


def random_array(dtype, shape, rng) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        a = (rng.standard_normal(shape) * 700).astype(dt)
        flat = a.reshape(-1)
        flat[: min(3, flat.size)] = [-1e6, 3e7, 0.0][: min(3, flat.size)]
        return a
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dt)


RANDOM_CASES = [  # dtype, bits stored, signed, rescale slope/intercept, window (center, width)
    (np.uint8, 8, False, 1.0, 0.0, (127.0, 64.0)),
    (np.int8, 8, True, 2.0, -3.0, (0.0, 100.0)),
    (np.uint16, 12, False, 3.774114, 0.000061, (1000.0, 2000.0)),
    (np.int16, 16, True, 1.0, -1024.0, (40.0, 400.0)),
    (np.uint32, 32, False, 0.001, 5.0, (2.0e6, 1.0e6)),
    (np.int32, 32, True, -0.5, 100.0, (0.0, 5.0e8)),
    (np.float32, 16, True, 1.5, 0.25, (10.0, 3000.0)),
    (np.float64, 16, True, 1.0, 0.0, (-50.0, 800.0)),
]


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: np.dtype(c[0]).name)
def test_kernel_equals_reference_on_random_arrays(case):
    dtype, bits, signed, slope, intercept, window = case
    rng = np.random.default_rng(bits * 7 + int(signed))
    ds = grey_dataset(bits, signed, slope, intercept, window)
    for shape in [(37, 23), (3, 19, 41), (1, 1), (1, 17), (17, 1)]:
        arr = random_array(dtype, shape, rng)
        rows, cols = shape[-2:]
        for window_opt, normalize, (size, interpolation), out_dtype in itertools.product(
            [None, "auto", (window[0] / 2, 1.0)], ["minmax", None, (1.0, 3.0)],
            [(None, "area"), ((5, 4), "bilinear"), ((2 * rows + 1, cols + 2), "area"), ((rows // 3 + 1, 2 * cols), "bilinear")],
            [np.float32, np.float16],
        ):
            assert_kernel_equals_reference(arr, ds, window=window_opt, normalize=normalize, size=size,
                                           interpolation=interpolation, out_dtype=out_dtype)


def test_nan_and_infinity_propagate_the_same_way():
    ds = grey_dataset(16, True, 1.0, 0.0, (0.0, 10.0))
    arr = np.array([[np.nan, 1.0, -np.inf], [np.inf, 2.0, 3.0], [4.0, 5.0, 6.0]], dtype=np.float32)
    for window, normalize, size, interpolation in itertools.product([None, "auto"], ["minmax", None], [None, (2, 5)], pp.INTERPOLATIONS):
        assert_kernel_equals_reference(arr, ds, window=window, normalize=normalize, size=size, interpolation=interpolation)
    assert np.isnan(reference(arr, ds, normalize="minmax")).all()


def test_window_clamp_keeps_rounding_inside_the_range():
    """Just inside a threshold the float32 linear part can round past y_min/y_max; the clamp keeps it in
    range, so the transform stays monotonic and minmax from the input's range stays exact."""
    ds = grey_dataset(16, True, 1.0, 0.0, None)  # output range [-32768, 32767]
    rng = np.random.default_rng(11)
    f32, picked = np.float32, []
    while len(picked) < 20:
        c, w = rng.uniform(-1000, 1000), rng.uniform(2, 3000)
        p = pp.plan_preprocess((1, 1), np.float32, ds, window=(c, w), normalize=None).params
        for thr in (p[pp.P_LOWER], p[pp.P_UPPER]):
            v = np.nextafter(thr, f32(np.inf))
            linear = ((v - p[pp.P_CENTER]) / p[pp.P_WIDTH] + f32(0.5)) * p[pp.P_Y_RANGE] + p[pp.P_Y_MIN]
            if p[pp.P_LOWER] < v <= p[pp.P_UPPER] and not p[pp.P_CLAMP_LO] <= linear <= p[pp.P_CLAMP_HI]:
                picked.append((c, w, v))
    for c, w, v in picked:
        arr = np.array([[v, v - 1, v + 1, 0], [thr, -1e5, 1e5, c]], np.float32)
        for normalize in ("minmax", None):
            assert_kernel_equals_reference(arr, ds, window=(c, w), normalize=normalize, size=(3, 3))
        out = reference(arr, ds, window=(c, w), normalize=None)
        assert out.min() == -32768 and out.max() == 32767


def test_minmax_uses_the_whole_array_and_constant_input_gives_zero():
    ds = grey_dataset(16, True, 2.0, 1.0, None)
    arr = np.stack([np.full((4, 4), 5, np.int16), np.full((4, 4), 9, np.int16)])
    out = reference(arr, ds)
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_array_equal(out[1], 1)
    flat = np.full((3, 5), 7, dtype=np.int16)
    np.testing.assert_array_equal(reference(flat, ds), 0)
    np.testing.assert_array_equal(host_run(flat, ds), 0)


# ---------------------------------------------------------------------------------------------------
# The reference against an independent computation


def _bilinear_weights(n: int, m: int) -> np.ndarray:
    """(m, n) matrix of the bilinear weights, one output sample at a time from the written definition."""
    w = np.zeros((m, n))
    for i in range(m):
        if n == m:
            w[i, i] = 1.0
            continue
        s = max((i + 0.5) * n / m - 0.5, 0.0)
        i0 = min(floor(s), n - 1)
        w[i, i0] += 1 - (s - i0)
        w[i, min(i0 + 1, n - 1)] += s - i0
    return w


def _area_weights(n: int, m: int) -> np.ndarray:
    """(m, n) matrix of exact footprint fractions: output i covers [i n / m, (i + 1) n / m) source pixels."""
    w = np.zeros((m, n))
    for i in range(m):
        lo, hi = Fraction(i * n, m), Fraction((i + 1) * n, m)
        for k in range(floor(lo), n):
            if k < hi:
                w[i, k] = float((min(hi, k + 1) - max(lo, k)) / (hi - lo))
    return w


def _independent(arr, ds, window, normalize, size, interpolation) -> tuple[np.ndarray, float]:
    """pydicom's rescale and LINEAR window in float64, plain normalisation, and the resize as weight matrices
    built from the written definitions; also the scale of the float32 rounding the reference may carry
    (largest intermediate magnitude over the normalisation divisor)."""
    rescaled = apply_modality_lut(arr, ds).astype(np.float64)
    v = rescaled
    if window is not None:
        wds = copy.deepcopy(ds)
        if window != "auto":
            wds.WindowCenter, wds.WindowWidth = window
        v = apply_windowing(v, wds)
    div = 1.0
    if normalize == "minmax":
        div = (v.max() - v.min()) or 1.0
        v = (v - v.min()) / div
    elif normalize is not None:
        div = normalize[1]
        v = (v - normalize[0]) / div
    scale = (float(np.abs(rescaled).max()) + float(np.abs(v).max()) * abs(div) + 1.0) / abs(div)
    n_r, n_c = v.shape[-2:]
    h, w = size or (n_r, n_c)
    weights = _bilinear_weights if interpolation == "bilinear" else _area_weights
    return weights(n_r, h) @ v @ weights(n_c, w).T, scale


INDEPENDENT_INPUTS = [
    ("CT2/17106", None),
    ("MR1/4919", None),
    ("test_files/CT_small.dcm", (slice(40, 64), slice(50, 70))),
    ("data/MR2_UNCI.dcm", (slice(500, 521), slice(400, 413))),
    ("CR1/6154", None),
]


@pytest.mark.parametrize("name,crop", INDEPENDENT_INPUTS, ids=[n for n, _ in INDEPENDENT_INPUTS])
def test_reference_equals_an_independent_computation(name, crop):
    arr, ds = real(name)
    if crop is not None:
        arr = arr[crop]
    rows, cols = arr.shape
    c = float(np.median(arr)) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
    windows = [None, (c, 300.0), (c, 1.0)] + (["auto"] if "WindowCenter" in ds else [])
    for window, normalize, size, interpolation in itertools.product(
        windows, ["minmax", None, (100.0, 50.0)],
        [None, (rows // 2, cols // 2), (rows * 2 // 3 + 1, cols * 3 // 5 + 1), (rows * 2 + 1, cols + 3), (1, 1)],
        pp.INTERPOLATIONS,
    ):
        want, scale = _independent(arr, ds, window, normalize, size, interpolation)
        got = reference(arr, ds, window=window, normalize=normalize, size=size, interpolation=interpolation)
        # float32 carries ~6e-8 of the largest intermediate value; a few roundings of it are allowed
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale, err_msg=f"{window} {normalize} {size} {interpolation}")
        got16 = reference(arr, ds, window=window, normalize=normalize, size=size, interpolation=interpolation, out_dtype=np.float16)
        np.testing.assert_allclose(got16.astype(np.float64), want, rtol=1e-3, atol=1e-6 * scale)


def test_interpolation_known_values():
    ds = grey_dataset(16, True, 1.0, 0.0, None)
    ramp = np.array([[0, 10]], dtype=np.int16)
    up = reference(ramp, ds, normalize=None, size=(1, 4))
    np.testing.assert_array_equal(up, [[0, 2.5, 7.5, 10]])  # half-pixel centres, edge clamp
    block = np.arange(36, dtype=np.int16).reshape(6, 6)
    area = reference(block, ds, normalize=None, size=(2, 3), interpolation="area")
    np.testing.assert_array_equal(area, block.reshape(2, 3, 3, 2).mean(axis=(1, 3)))
    third = reference(np.array([[0, 3, 6]], dtype=np.int16), ds, normalize=None, size=(1, 2), interpolation="area")
    np.testing.assert_allclose(third, [[(0 * 2 + 3 * 1) / 3, (3 * 1 + 6 * 2) / 3]], rtol=1e-7)
    down = reference(np.array([[0, 4, 8, 12]], dtype=np.int16), ds, normalize=None, size=(1, 2))
    np.testing.assert_array_equal(down, [[2, 10]])  # no antialiasing: the two middle taps of each pair


@pytest.mark.parametrize("n_in,n_out", [(1, 1), (1, 5), (5, 1), (7, 3), (3, 7), (512, 256), (511, 512), (10, 4), (4, 10)])
def test_axis_tables(n_in, n_out):
    for interp in pp.INTERPOLATIONS:
        t = pp.axis_taps(n_in, n_out, interp)
        assert t.idx.shape == t.w.shape == (n_out, t.taps) and t.idx.dtype == np.int32 and t.w.dtype == np.float32
        valid = t.idx >= 0
        assert (t.idx[valid] < n_in).all() and (t.w[~valid] == 0).all()
        assert valid[:, 0].all() and (valid[:, :-1] | ~valid[:, 1:]).all()  # -1 only ends a list
        if n_in == n_out:
            assert t.taps == 1 and t.div == 1 and (t.w == 1).all()
        elif interp == "area":
            np.testing.assert_array_equal(t.w.sum(axis=1), t.div)  # the overlaps tile the output pixel
            if n_in % n_out == 0:
                assert t.div == n_in // n_out and (t.w[valid] == 1).all()
        else:
            np.testing.assert_allclose(t.w.sum(axis=1), 1, rtol=1e-7)


def test_pixel_spacing():
    ds = grey_dataset(spacing=(0.5, 0.75))
    arr = np.zeros((3, 40, 30), dtype=np.int16)
    assert gpudcm.preprocessing.new_pixel_spacing(ds, (40, 30), (20, 60)) == (1.0, 0.375)
    out, spacing = pp.preprocess(arr, ds, size=(20, 60))
    assert out.shape == (3, 20, 60) and spacing == (0.5 * (40 / 20), 0.75 * (30 / 60))
    assert pp.preprocess(arr[0], ds)[1] == (0.5, 0.75)
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.1, 0.2]
    assert pp.preprocess(arr, ds, size=(80, 15))[1] == (0.1 * 0.5, 0.2 * 2.0)
    del ds.ImagerPixelSpacing
    assert pp.preprocess(arr, ds, size=(80, 15))[1] is None
    ds.PixelSpacing = [0.5]
    with pytest.raises(gpudcm.InvalidPixelData, match="PixelSpacing"):
        pp.preprocess(arr, ds)


def test_public_function_returns_the_reference():
    arr, ds = real("test_files/MR_small.dcm")
    out, spacing = pp.preprocess(arr, ds, window="auto", dtype=np.float16, size=(32, 48), interpolation="area")
    np.testing.assert_array_equal(out, reference(arr, ds, window="auto", out_dtype=np.float16, size=(32, 48), interpolation="area"))
    assert out.dtype == np.float16 and spacing == (0.3125 * (64 / 32), 0.3125 * (64 / 48))
    big_endian = arr.astype(">i2")
    np.testing.assert_array_equal(pp.preprocess(big_endian, ds)[0], pp.preprocess(arr, ds)[0])


def test_errors():
    ds = grey_dataset()
    arr = np.zeros((4, 5), dtype=np.int16)
    rgb = copy.deepcopy(ds)
    rgb.PhotometricInterpretation, rgb.SamplesPerPixel = "RGB", 3
    bad_ds = []
    for d, a in [(rgb, np.zeros((4, 5, 3), np.uint8)), (ds, np.zeros((2, 3, 4, 5), np.int16)), (ds, np.zeros((0, 5), np.int16)),
                 (ds, np.zeros((4, 5), np.int64)), (ds, np.zeros((4, 5), bool))]:
        with pytest.raises(gpudcm.InvalidPixelData):
            pp.preprocess(a, d)
        bad_ds.append(d)
    ybr = copy.deepcopy(ds)
    ybr.PhotometricInterpretation = "YBR_FULL"
    with pytest.raises(gpudcm.InvalidPixelData, match="grey"):
        pp.preprocess(arr, ybr)
    mlut = copy.deepcopy(ds)
    mlut.ModalityLUTSequence = [Dataset()]
    with pytest.raises(gpudcm.InvalidPixelData, match="Modality LUT"):
        pp.preprocess(arr, mlut)
    nowin = grey_dataset(window=None)
    with pytest.raises(gpudcm.InvalidPixelData, match="Window Center"):
        pp.preprocess(arr, nowin, window="auto")
    sigmoid = copy.deepcopy(ds)
    sigmoid.VOILUTFunction = "SIGMOID"
    with pytest.raises(gpudcm.InvalidPixelData, match="LINEAR"):
        pp.preprocess(arr, sigmoid, window="auto")
    pp.preprocess(arr, sigmoid, window=(40, 400))  # explicit windows are LINEAR
    for kwargs in [dict(window="full"), dict(window=(1, 0.5)), dict(window=(1,)), dict(dtype=np.float64), dict(normalize="z"),
                   dict(normalize=(0, 0)), dict(normalize=(0, float("nan"))), dict(size=(0, 4)), dict(size=(2.5, 4)),
                   dict(size=4), dict(interpolation="nearest")]:
        with pytest.raises(ValueError):
            pp.preprocess(arr, ds, **kwargs)
    with pytest.raises(TypeError):
        pp.preprocess(arr.tolist(), ds)
    assert all(issubclass(e, gpudcm.GpudcmError) for e in [gpudcm.InvalidPixelData])


# ---------------------------------------------------------------------------------------------------
# Kernel mechanics


def test_constants_match_the_kernel_header():
    header = (kernels.kernel_dir() / "preprocess.cuh").read_text()
    slots = re.search(r"enum \{\s*(GD_PRE_P_SLOPE[^}]*)\}", header).group(1)
    names = [n.strip() for n in slots.split(",") if n.strip()]
    assert names[-1] == "GD_PRE_NPARAMS" and len(names) - 1 == pp.N_PARAMS
    for i, name in enumerate(names[:-1]):
        assert getattr(pp, name.replace("GD_PRE_", "")) == i, name
    assert re.search(r"GD_PRE_NDIMS = (\d+)", header).group(1) == str(pp.N_DIMS)
    assert re.search(r"GD_PRE_WINDOW = (\d+)u", header).group(1) == str(pp.FLAG_WINDOW)
    assert re.search(r"GD_PRE_MINMAX = (\d+)u", header).group(1) == str(pp.FLAG_MINMAX)


def test_plan_words_and_launch():
    ds = grey_dataset()
    plan = pp.plan_preprocess((2, 30, 40), np.int16, ds, window="auto", out_dtype=np.float16, size=(7, 9), interpolation="area")
    assert plan.kernel == "gpudcm_preprocess_i16_f16" and plan.n_out == 2 * 7 * 9 and plan.out_shape == (2, 7, 9)
    assert plan.geometry == kernels.launch_geometry(2 * 7 * 9)
    words = plan.words
    assert words.dtype == np.uint32
    assert list(words[: pp.N_DIMS]) == [2, 30, 40, 7, 9, plan.y.taps, plan.x.taps, pp.FLAG_WINDOW | pp.FLAG_MINMAX]
    np.testing.assert_array_equal(words[pp.N_DIMS : pp.N_DIMS + pp.N_PARAMS].view(np.float32), plan.params)
    assert words.size == pp.N_DIMS + pp.N_PARAMS + 2 * (7 * plan.y.taps + 9 * plan.x.taps)
    assert plan.params[pp.P_OUT_DIV] == plan.y.div * plan.x.div == 30 * 40  # 30 -> 7 and 40 -> 9 are coprime
    assert pp.plan_preprocess((5, 6), ">u2", ds).in_dtype == np.dtype(np.uint16)
    for dt, name in [(np.uint8, "u8"), (np.int8, "i8"), (np.uint32, "u32"), (np.int32, "i32"), (np.float32, "f32"), (np.float64, "f64")]:
        assert pp.plan_preprocess((5, 6), dt, ds).kernel == f"gpudcm_preprocess_{name}_f32"


@pytest.mark.parametrize("grid,block", [(1, 1), (1, 32), (3, 7), (2, 256)])
def test_grid_stride_covers_every_output_sample(grid, block):
    rng = np.random.default_rng(grid * 100 + block)
    ds = grey_dataset()
    arr = rng.integers(-2000, 3000, size=(3, 23, 17), dtype=np.int16)
    for out_dtype in (np.float32, np.float16):
        plan = pp.plan_preprocess(arr.shape, arr.dtype, ds, window="auto", out_dtype=out_dtype, size=(11, 29))
        bits = np.uint16 if out_dtype == np.float16 else np.float32
        buf = np.full(plan.n_out + 8, 0x7E7E, dtype=bits) if bits == np.uint16 else np.full(plan.n_out + 8, -7.0, dtype=bits)
        rng_arr = np.array([arr.min(), arr.max()], dtype=arr.dtype)
        status = host_launcher(geometry=kernels.Geometry(grid, block))(plan, arr, rng_arr, buf[: plan.n_out])
        assert status == 0
        np.testing.assert_array_equal(buf[: plan.n_out].view(out_dtype).reshape(plan.out_shape), pp._reference(arr, plan))
        assert (buf[plan.n_out :] == buf[-1]).all() and buf[-1] in (0x7E7E, -7.0)


def test_bad_tables_are_reported_not_followed():
    ds = grey_dataset()
    arr = np.arange(20, dtype=np.int16).reshape(4, 5)
    plan = pp.plan_preprocess(arr.shape, arr.dtype, ds, normalize=None, size=(2, 3), interpolation="area")
    bad_y = dataclasses.replace(plan.y, idx=np.where(plan.y.idx >= 0, plan.y.idx + 3, -1).astype(np.int32))
    lying = dataclasses.replace(plan, y=bad_y)
    out = np.empty(plan.out_shape, np.float32)
    assert host_launcher()(lying, arr, None, out) & kernels.STATUS_READ_OOB
    with pytest.raises(gpudcm.InvalidPixelData, match="status"):
        pp._run_kernel(arr, lying, launcher=host_launcher())
    fn = hostbuild.function("gpudcm_host_preprocess", u32, [u32, u32, u32, u32, vp, vp, vp, u64, vp])
    words = plan.words
    for in_code, out_code, n_words in [(0, 0, words.size - 1), (9, 0, words.size), (3, 2, words.size), (3, 0, 5)]:
        assert fn(in_code, out_code, 1, 1, hostbuild.ptr(arr), None, hostbuild.ptr(words), n_words, hostbuild.ptr(out)) == kernels.STATUS_BAD_PARAMS


def _edge_floats(rng) -> np.ndarray:
    """float32 values around every float16 rounding boundary, specials, and random bit patterns."""
    high = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x3000, 0x7FFF, 0x8000, 0xFFFF], dtype=np.uint32)
    near = (high[:, None] | lows[None, :]).reshape(-1)
    sub = np.arange(0x33000000 - 64, 0x38800000 + 64, 997, dtype=np.uint32)  # the half subnormal range
    randoms = rng.integers(0, 1 << 32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    return np.concatenate([near, sub, sub | 0x80000000, randoms]).view(np.float32)


def test_float16_rounding_equals_numpy():
    f = _edge_floats(np.random.default_rng(16))
    fn = hostbuild.function("gpudcm_host_f32_to_f16", None, [vp, vp, u64])
    out = np.empty(f.size, dtype=np.uint16)
    fn(hostbuild.ptr(f), hostbuild.ptr(out), f.size)
    with np.errstate(all="ignore"):
        ref = f.astype(np.float16)
    nan = np.isnan(f)
    np.testing.assert_array_equal(out[~nan], ref.view(np.uint16)[~nan])
    assert np.isnan(out[nan].view(np.float16)).all()


def test_nvrtc_keeps_each_rounding_as_written():
    """Every float add/sub/mul/div in the PTX rounds to nearest on its own: nothing was contracted into an
    FMA, so the device computes exactly what the host build and NumPy compute."""
    entries = re.split(r"\.visible \.entry ", nvrtc.ptx("preprocess.cu"))[1:]
    names = sorted(e.split("(")[0] for e in entries)
    assert names == sorted(f"gpudcm_preprocess_{i}_{o}" for i in ("u8", "i8", "u16", "i16", "u32", "i32", "f32", "f64") for o in ("f32", "f16"))
    for body in entries:
        ops = re.findall(r"\b(?:add|sub|mul|div|fma|mad)(?:\.[a-z0-9]+)*\.f32\b", body)
        assert ops and all(op.split(".")[1] == "rn" for op in ops), ops
        assert not re.search(r"\b(?:fma|mad)\.\w+\.f32\b", body)


def sanitized_run() -> int:
    """Odd sizes (1x1, 1xN, Nx1, up- and non-integer downscales) of every stored type, every option and the
    planned and tiny geometries, through the sanitized build with exactly sized buffers; then lying plans.
    Run in a process with libasan preloaded (see test_sanitized_host_build)."""
    rng = np.random.default_rng(5)
    cases = 0
    shapes = [((1, 1), [None, (1, 1), (3, 4)]), ((1, 9), [(1, 4), (2, 3)]), ((9, 1), [(4, 1), (5, 2)]),
              ((2, 7, 5), [(3, 2), (11, 13)])]
    options = itertools.cycle(itertools.product([None, "auto"], ["minmax", (1.0, 2.0), None], [np.float32, np.float16]))
    geometries = itertools.cycle([None, kernels.Geometry(1, 1), kernels.Geometry(3, 7)])
    for dtype, bits, signed, slope, intercept, window in RANDOM_CASES:
        ds = grey_dataset(bits, signed, slope, intercept, window)
        for shape, sizes in shapes:
            arr = random_array(dtype, shape, rng)
            for size, interp in itertools.product(sizes, pp.INTERPOLATIONS):
                for _ in range(3):
                    win, norm, out_dtype = next(options)
                    opts = dict(window=win, normalize=norm, size=size, interpolation=interp, out_dtype=out_dtype)
                    got = host_run(arr, ds, sanitize=True, geometry=next(geometries), **opts)
                    np.testing.assert_array_equal(got, reference(arr, ds, **opts))
                    cases += 1
    ds = grey_dataset()
    arr = np.arange(12, dtype=np.int16).reshape(3, 4)
    plan = pp.plan_preprocess(arr.shape, arr.dtype, ds, normalize=None, size=(2, 5))
    launch = host_launcher(sanitize=True)
    for shift in (3, 100, 1 << 20):  # a negative index ends a tap list, so only these can lie
        idx = np.where(plan.x.idx >= 0, plan.x.idx + shift, -1).astype(np.int32)
        lying = dataclasses.replace(plan, x=dataclasses.replace(plan.x, idx=idx))
        assert launch(lying, arr, None, np.empty(plan.out_shape, np.float32)) & kernels.STATUS_READ_OOB
        cases += 1
    print(f"preprocess sanitized: {cases} cases completed; {hostbuild.sanitizer_line()}")
    return 0


def test_sanitized_host_build():
    """ASan + UBSan build of the same logic on odd sizes and lying tables."""
    code = "import sys; sys.path.insert(0, 'tests'); import test_preprocess; sys.exit(test_preprocess.sanitized_run())"
    found = hostbuild.run_sanitized(["-c", code], r"preprocess sanitized: (\d+) cases completed", timeout=300)
    assert int(found.group(1)) == len(RANDOM_CASES) * 9 * len(pp.INTERPOLATIONS) * 3 + 3, found.group(0)


# ---------------------------------------------------------------------------------------------------
# On a GPU


@pytest.mark.gpu
@pytest.mark.parametrize("name", ALL_OPTIONS_FILES + ["data/emri_small.dcm"])
def test_cupy_equals_reference(name):
    import cupy

    arr, ds = real(name)
    dev = cupy.asarray(arr.astype(arr.dtype.newbyteorder("=")))
    for window, normalize, size, interpolation, out_dtype in itertools.product(
        _windows(arr, ds), ["minmax", None, (-20.5, 311.25)], _sizes(*arr.shape[-2:]), pp.INTERPOLATIONS, [np.float32, np.float16]
    ):
        opts = dict(window=window, normalize=normalize, size=size, interpolation=interpolation)
        got, spacing = pp.preprocess(dev, ds, dtype=out_dtype, **opts)
        assert isinstance(got, cupy.ndarray)
        ref, ref_spacing = pp.preprocess(arr, ds, dtype=out_dtype, **opts)
        np.testing.assert_array_equal(cupy.asnumpy(got), ref, err_msg=str(opts))
        assert spacing == ref_spacing
    plan = pp.plan_preprocess(arr.shape, arr.dtype, ds, size=(17, 9))
    pp._run_kernel(dev, plan, launcher=pp.cupy_preprocess_launcher, xp=cupy, check_status=True)


def test_benchmark_dry_run():
    """benchmarks/gpu_preprocess.py builds its workload, and its chain of separate steps (run with NumPy)
    equals the reference, so the GPU comparison compares like with like."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_preprocess", ROOT / "benchmarks" / "gpu_preprocess.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for interpolation in pp.INTERPOLATIONS:
        assert bench.main(["--dry-run", "--frames", "3", "--interpolation", interpolation]) == 0
