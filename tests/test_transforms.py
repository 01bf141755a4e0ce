"""gpudcm.transforms equals pydicom.pixels.processing.

One test body per transform runs the array-module generic implementation with ``xp=numpy`` (always) and the
public function on CuPy arrays (``gpu``-marked, only with a device) against pydicom's function, on every
corpus file carrying the module (every window and LUT index, several windows and VOI LUT functions, real
pixel data and the full range of stored values) and on generated LUTs, palettes and edge cases.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import pydicom
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import processing as pd
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from corpus import corpus_files, corpus_id, reference
from gpudcm import transforms
from tests.harness.hostbuild import host_ybr_launcher

ROOT = Path(__file__).resolve().parent.parent
XP = [pytest.param("numpy", id="numpy"), pytest.param("cupy", id="cupy", marks=pytest.mark.gpu)]
MAX_SAMPLES = 20_000  # pixels kept from each real image (strided): the same values, fewer of them


# ---------------------------------------------------------------------------------------------------
# Running one implementation and comparing with pydicom


def native(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in "=|" else a


def run(xp_name: str, name: str, arr: np.ndarray, *args, **kwargs):
    """The generic ``_name`` with xp=numpy, or the public ``name`` on a CuPy copy of `arr` (back as NumPy)."""
    if xp_name == "numpy":
        if name == "convert_color_space":
            kwargs["ybr_launcher"] = host_ybr_launcher()
        return getattr(transforms, "_" + name)(arr, *args, xp=np, **kwargs)
    import cupy

    out = getattr(transforms, name)(cupy.asarray(native(arr)), *args, **kwargs)
    assert isinstance(out, cupy.ndarray)
    return cupy.asnumpy(out)


def outcome(fn, *args, **kwargs):
    """fn's result, or the type of the exception it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure must be the same failure
            return type(exc)


def assert_same(got, want, xp_name: str, what: str = "") -> None:
    """Same exception type, or same dtype (native byte order on CuPy), shape and values: exact on NumPy and for
    integers; floats within 1e-6 relative on CuPy (exp in SIGMOID windows)."""
    if isinstance(want, type):
        assert got is want, f"{what}: pydicom raised {want.__name__}, got {got!r}"
        return
    assert not isinstance(got, type), f"{what}: raised {got.__name__}, pydicom did not"
    want_dtype = want.dtype if xp_name == "numpy" else want.dtype.newbyteorder("=")
    assert got.dtype == want_dtype and got.shape == want.shape, (what, got.dtype, want.dtype, got.shape, want.shape)
    if xp_name == "numpy" or got.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
    else:
        scale = float(np.nanmax(np.abs(want))) if want.size else 0.0
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * scale, err_msg=what)


def check(xp_name: str, name: str, arr: np.ndarray, *args, what: str = "", **kwargs) -> None:
    want = outcome(getattr(pd, name), arr, *args, **kwargs)
    assert_same(outcome(run, xp_name, name, arr, *args, **kwargs), want, xp_name, f"{name} {what}")


# ---------------------------------------------------------------------------------------------------
# The corpus


@lru_cache(maxsize=None)
def header(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            return None


def files_with(*keywords: str) -> list[Path]:
    return [p for p in corpus_files() if header(p) is not None and any(k in header(p) for k in keywords)]


@lru_cache(maxsize=None)
def pixels(path: Path, **kwargs) -> np.ndarray | None:
    """pydicom's pixel data of `path` (a strided sample of large images), or None when pydicom cannot decode it.
    Datasets without file meta get the transfer syntax their encoding implies."""
    frames = int(header(path).get("NumberOfFrames", 1) or 1) if header(path) is not None else 1
    if frames > 2 and "index" not in kwargs:
        parts = [pixels(path, index=i, **kwargs) for i in (0, frames - 1)]
        return None if any(p is None for p in parts) else np.stack(parts)
    arr = reference(path, **kwargs)
    if isinstance(arr, Exception):
        ds = header(path)
        if ds is None or "TransferSyntaxUID" in ds.file_meta:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, force=True)
            ds.file_meta.TransferSyntaxUID = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
                                              (False, False): ExplicitVRBigEndian}[ds.original_encoding]
            try:
                arr = pydicom.pixels.pixel_array(ds, **kwargs)
            except Exception:
                return None
    if arr.ndim >= 3 and arr.shape[-1] != 3 or arr.ndim == 4:
        arr = arr[[0, -1]] if arr.shape[0] > 1 else arr
    step = 1
    while arr.size // step**2 > MAX_SAMPLES:
        step += 1
    if step > 1:
        arr = arr[..., ::step, ::step, :] if arr.shape[-1] == 3 and arr.ndim >= 3 else arr[..., ::step, ::step]
    return arr


def stored_range(ds: Dataset) -> np.ndarray:
    """Every stored value Bits Stored allows (a strided subset beyond 2**13 of them, with the extremes), and
    values of the container type outside that range."""
    bits = int(ds.get("BitsStored", 16) or 16)
    allocated = int(ds.get("BitsAllocated", 16) or 16)
    signed = ds.get("PixelRepresentation", 0) == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{max(allocated, 8) // 8}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    step = max(1, (hi - lo + 1) >> 13)
    values = np.concatenate([np.arange(lo, hi + 1, step), [lo, lo + 1, hi - 1, hi]])
    info = np.iinfo(dtype)
    outside = np.array([v for v in (info.min, info.max, lo - 1, hi + 1, info.max // 2) if info.min <= v <= info.max and not lo <= v <= hi])
    return np.concatenate([values, outside]).astype(dtype)


def inputs(path: Path) -> list[tuple[str, np.ndarray]]:
    ds = header(path)
    out = [("range", stored_range(ds))]
    real = pixels(path)
    if real is not None:
        out.append(("pixels", real))
    return out


def cid(p: Path) -> str:
    return corpus_id(p)


MODALITY_FILES = files_with("ModalityLUTSequence", "RescaleSlope", "RescaleIntercept")
VOI_FILES = files_with("VOILUTSequence", "WindowCenter", "WindowWidth")
PRESENTATION_FILES = files_with("PresentationLUTSequence", "PresentationLUTShape")
PALETTE_FILES = files_with("RedPaletteColorLookupTableDescriptor")
YBR_FILES = [p for p in corpus_files() if header(p) is not None and header(p).get("PhotometricInterpretation") in ("YBR_FULL", "YBR_FULL_422")]


def test_corpus_coverage():
    """The files pydicom's own tests use for these transforms are all here, with every module."""
    names = {p.name for p in MODALITY_FILES + VOI_FILES + PALETTE_FILES}
    for name in ("mlut_18.dcm", "vlut_04.dcm", "CT_small.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm", "OT-PAL-8-face.dcm",
                 "gdcm-US-ALOKA-16.dcm", "gdcm-US-ALOKA-16_big.dcm", "OBXXXX1A.dcm"):
        assert name in names, name
    assert len(MODALITY_FILES) >= 25 and len(VOI_FILES) >= 60 and len(PRESENTATION_FILES) >= 15
    assert len(PALETTE_FILES) >= 11 and len(YBR_FILES) >= 12
    assert any("SegmentedRedPaletteColorLookupTableData" in header(p) for p in PALETTE_FILES)


@pytest.mark.parametrize("xp_name", XP)
@pytest.mark.parametrize("path", MODALITY_FILES, ids=cid)
def test_modality_lut_on_corpus(path, xp_name):
    ds = header(path)
    for label, arr in inputs(path):
        check(xp_name, "apply_modality_lut", arr, ds, what=label)
        check(xp_name, "apply_rescale", arr, ds, what=label)


def _with_more_windows(ds: Dataset) -> Dataset:
    """A copy of `ds` with its first window and four more: shifted, narrow, wide, and width 1."""
    wds = copy.deepcopy(ds)
    def first(kw):
        elem = ds[kw]
        return float(elem.value[0] if elem.VM > 1 else elem.value)

    c, w = first("WindowCenter"), first("WindowWidth")
    wds.WindowCenter = [c, c - w / 4, c + w / 3, c, c + 0.5]
    wds.WindowWidth = [w, max(w / 8, 1.5), w * 3, 1, 2.5]
    return wds


@pytest.mark.parametrize("xp_name", XP)
@pytest.mark.parametrize("path", VOI_FILES, ids=cid)
def test_voi_lut_and_windowing_on_corpus(path, xp_name):
    ds = header(path)
    datasets = [ds]
    if "WindowCenter" in ds and "WindowWidth" in ds:
        datasets.append(_with_more_windows(ds))
    for label, stored in inputs(path):
        arrays = [(label, stored)]
        rescaled = pd.apply_modality_lut(stored, ds) if "RescaleSlope" in ds or "ModalityLUTSequence" in ds else None
        if rescaled is not None and rescaled is not stored:
            arrays.append((label + " after modality LUT", rescaled))
        for what, arr in arrays:
            for d in datasets:
                n_windows = max(d["WindowCenter"].VM if "WindowCenter" in d else 0, len(d.get("VOILUTSequence", [])))
                for index in range(max(n_windows, 1)):
                    tag = f"{what} index {index}"
                    check(xp_name, "apply_voi_lut", arr, d, index, what=tag)
                    check(xp_name, "apply_voi_lut", arr, d, index, prefer_lut=False, what=tag)
                    check(xp_name, "apply_voi", arr, d, index, what=tag)
                    for func in ("LINEAR", "LINEAR_EXACT", "SIGMOID", None):
                        fd = copy.copy(d)
                        if func is None:
                            if "VOILUTFunction" in fd:
                                del fd.VOILUTFunction
                        else:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                fd.VOILUTFunction = func
                        check(xp_name, "apply_windowing", arr, fd, index, what=f"{tag} {func}")


@pytest.mark.parametrize("xp_name", XP)
@pytest.mark.parametrize("path", PRESENTATION_FILES, ids=cid)
def test_presentation_lut_on_corpus(path, xp_name):
    ds = header(path)
    for label, arr in inputs(path):
        check(xp_name, "apply_presentation_lut", arr, ds, what=label)
        inverse = copy.copy(ds)
        inverse.PresentationLUTShape = "INVERSE"
        check(xp_name, "apply_presentation_lut", arr, inverse, what=label + " INVERSE")


@pytest.mark.parametrize("xp_name", XP)
@pytest.mark.parametrize("path", PALETTE_FILES, ids=cid)
def test_color_lut_on_corpus(path, xp_name):
    ds = header(path)
    for label, arr in inputs(path):
        check(xp_name, "apply_color_lut", arr, ds, what=label)
    if ds.get("PixelPresentation") not in ("MIXED", "COLOR"):
        assert not isinstance(outcome(pd.apply_color_lut, stored_range(ds), ds), type)  # a real palette, not an error


def _ybr_raw(path: Path) -> np.ndarray | None:
    return pixels(path, raw=True)


@pytest.mark.parametrize("xp_name", XP)
@pytest.mark.parametrize("path", YBR_FILES, ids=cid)
def test_convert_color_space_on_corpus(path, xp_name):
    ybr = _ybr_raw(path)
    assert ybr is not None
    rgb = pd.convert_color_space(ybr, "YBR_FULL", "RGB")
    for current, desired, arr in [("YBR_FULL", "RGB", ybr), ("YBR_FULL_422", "RGB", ybr), ("RGB", "YBR_FULL", rgb),
                                  ("RGB", "YBR_FULL_422", rgb), ("YBR_FULL", "YBR_FULL_422", ybr), ("RGB", "RGB", rgb)]:
        check(xp_name, "convert_color_space", arr, current, desired, what=corpus_id(path))
        if arr.ndim == 4:
            want = pd.convert_color_space(arr.copy(), current, desired, per_frame=True)
            got_in = arr.copy()
            got = run(xp_name, "convert_color_space", got_in, current, desired, per_frame=True)
            assert_same(got, want, xp_name)
            if xp_name == "numpy":
                assert got is got_in  # converted in place, as pydicom does


# ---------------------------------------------------------------------------------------------------
# Generated LUTs, palettes and edge cases


def lut_item(nr_entries: int, first_map: int, depth: int, data, vr: str = "US") -> Dataset:
    item = Dataset()
    item.LUTDescriptor = [nr_entries, first_map, depth]
    if vr == "US":
        item.add_new("LUTData", "US", [int(v) for v in data])
    else:
        item.add_new("LUTData", "OW", np.asarray(data, dtype="<u2").tobytes())
    return item


def grey(bits=12, signed=False, little=True) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16 if bits > 8 else 8, bits, int(signed)
    return ds


RNG = np.random.default_rng(2024)
ARRAYS = {
    "u8": np.arange(256, dtype=np.uint8),
    "i8": np.arange(-128, 128, dtype=np.int8),
    "u16": np.concatenate([np.arange(0, 65536, 7), [65535]]).astype(np.uint16),
    "i16": np.concatenate([np.arange(-32768, 32768, 5), [32767]]).astype(np.int16),
    "u32": RNG.integers(0, 1 << 32, 5000, dtype=np.uint64).astype(np.uint32),
    "i32": np.concatenate([RNG.integers(-(1 << 31), 1 << 31, 5000), [-(1 << 31), (1 << 31) - 1, 0, 70000]]).astype(np.int32),
    "f64": np.concatenate([RNG.normal(0, 3000, 5000), [np.nan, np.inf, -np.inf, 1e10, -1e10, 70000.7, -3.2, 0.5]]),
    "f32": np.concatenate([RNG.normal(0, 3000, 5000), [np.nan, np.inf, 1e10, 70000.7, -3.2]]).astype(np.float32),
    "u16_be": np.arange(0, 4096, dtype=">u2"),
}


@pytest.mark.parametrize("xp_name", XP)
@pytest.mark.parametrize("vr", ["US", "OW"])
def test_generated_modality_and_voi_luts(xp_name, vr):
    """Every stored type against LUTs of 8 to 16 bits, positive, zero and negative first mapped values, 2**16
    entries (descriptor 0), LUTs longer and shorter than declared."""
    luts = []
    for nr, first, depth in [(4096, 0, 12), (256, 0, 8), (300, -100, 16), (0, 0, 16), (1000, 70, 10), (50, 32767, 16)]:
        n = nr or 65536
        luts.append(lut_item(nr, first, depth, RNG.integers(0, 1 << depth, n)))
    luts.append(lut_item(100, 5, 16, RNG.integers(0, 1 << 16, 60)))  # shorter than declared: values past it fail
    luts.append(lut_item(100, 5, 16, RNG.integers(0, 1 << 16, 160)))  # longer than declared
    if vr == "OW":
        luts = [lut_item(*i.LUTDescriptor, i.LUTData, "OW") for i in luts]
    for i, item in enumerate(luts):
        for little in ((True, False) if vr == "OW" else (True,)):
            ds = grey(16)
            if not little:
                ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
            ds.ModalityLUTSequence = [item]
            ds.VOILUTSequence = [luts[(i + 1) % len(luts)], item]
            for name, arr in ARRAYS.items():
                check(xp_name, "apply_modality_lut", arr, ds, what=f"lut {i} {name}")
                for index in (0, 1, -1, 2):
                    check(xp_name, "apply_voi", arr, ds, index, what=f"lut {i} {name} {index}")
                    check(xp_name, "apply_voi_lut", arr, ds, index, what=f"lut {i} {name} {index}")


def test_endianness_of_ow_luts_must_be_known():
    item = lut_item(16, 0, 16, range(16), "OW")
    ds = Dataset()
    ds.ModalityLUTSequence = [item]
    ds.VOILUTSequence = [item]
    for name in ("apply_modality_lut", "apply_voi"):
        assert_same(outcome(run, "numpy", name, ARRAYS["u8"], ds), outcome(getattr(pd, name), ARRAYS["u8"], ds), "numpy", name)


@pytest.mark.parametrize("xp_name", XP)
def test_generated_windows(xp_name):
    """Windows on every stored type, signed and unsigned output ranges, rescaled ranges with negative slope,
    bad widths and functions."""
    cases = []
    for bits, signed in [(8, False), (12, True), (16, False), (16, True), (32, True)]:
        for slope, intercept in [(None, None), (1.0, -1024.0), (-0.5, 20.0), (3.774114, 0.000061)]:
            ds = grey(bits, signed)
            if slope is not None:
                ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
            ds.WindowCenter = [40.0, -600.0, 0.5, 1e6]
            ds.WindowWidth = [400.0, 1500.0, 1.0, 0.5]
            cases.append(ds)
    for ds in cases:
        for func in ("LINEAR", "LINEAR_EXACT", "SIGMOID", "linear", "BOGUS"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns about the lower-case value
                ds.VOILUTFunction = func
            for name, arr in ARRAYS.items():
                for index in range(4):
                    check(xp_name, "apply_windowing", arr, ds, index, what=f"{func} {name} {index}")
    mono = grey()
    mono.PhotometricInterpretation = "RGB"
    mono.WindowCenter, mono.WindowWidth = 1, 2
    check(xp_name, "apply_windowing", ARRAYS["u16"], mono)
    one = grey()
    one.WindowCenter = 5
    check(xp_name, "apply_windowing", ARRAYS["u16"], one)  # a center without a width


@pytest.mark.parametrize("xp_name", XP)
def test_generated_presentation_luts(xp_name):
    for nr, depth, vr in [(256, 8, "US"), (4096, 12, "US"), (4096, 10, "OW"), (0, 16, "OW"), (1024, 8, "OW"), (256, 16, "US")]:
        n = nr or 65536
        data = RNG.integers(0, 1 << 16, n)
        ds = Dataset()
        if vr == "OW" and depth <= 8:
            item = Dataset()
            item.LUTDescriptor = [nr, 0, depth]
            item.add_new("LUTData", "OW", RNG.integers(0, 256, n, dtype=np.uint8).tobytes())
        else:
            item = lut_item(nr, 0, depth, data, vr)
        ds.PresentationLUTSequence = [item]
        for name, arr in ARRAYS.items():
            check(xp_name, "apply_presentation_lut", arr, ds, what=f"{nr} {depth} {vr} {name}")
        check(xp_name, "apply_presentation_lut", np.full(10, 7, np.int16), ds, what="constant input")
    for shape in ("IDENTITY", " inverse ", "LOG"):
        ds = Dataset()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.PresentationLUTShape = shape
        for name, arr in ARRAYS.items():
            check(xp_name, "apply_presentation_lut", arr, ds, what=f"{shape} {name}")


def _segmented(values: list[int], little: bool, eight_bit: bool) -> bytes:
    fmt = "u1" if eight_bit else ("<u2" if little else ">u2")
    return np.asarray(values, dtype=fmt).tobytes()


def palette_ds(kind: str, little: bool = True) -> Dataset:
    """Palettes: 8- and 16-bit entries, RGBA, a negative first mapped value, 8- and 16-bit segmented ones
    with discrete, linear and indirect segments."""
    ds = grey(16, signed=kind == "negative", little=little)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    if kind.startswith("segmented"):
        eight = kind == "segmented8"
        depth = 8 if eight else 16
        top = 255 if eight else 65535
        indirect = [0, 0, 0, 0] if eight else [0, 0]  # word offset 0: the first two segments again
        red = [0, 3, 0, 10, 20, 1, 100, top, 2, 2] + indirect + [1, 7, 3]  # 3 + 100 + (3 + 100) + 7 = 213 entries
        green = [0, 3, top, top, 1, 1, 100, 0, 1, 103, top // 2, 1, 7, 9]
        blue = [0, 13] + list(range(0, 130, 10)) + [1, 200, top]
        for colour, seg in zip(("Red", "Green", "Blue"), (red, green, blue)):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [213, 0, depth])
            ds.add_new(pydicom.datadict.tag_for_keyword(f"Segmented{colour}PaletteColorLookupTableData"), "OW",
                       _segmented(seg, little, eight))
        return ds
    nr, first, depth = {"8bit": (256, 0, 8), "16bit": (4096, 0, 16), "negative": (2048, -1024, 16), "rgba": (300, 10, 16),
                        "8in16": (256, 0, 16)}[kind]
    entry_dtype = np.uint8 if depth == 8 else np.uint16
    if kind == "8in16":
        entry_dtype = np.uint8
    for colour in ("Red", "Green", "Blue") + (("Alpha",) if kind == "rgba" else ()):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [nr, first, depth])
        data = RNG.integers(0, np.iinfo(entry_dtype).max + 1, nr).astype(entry_dtype)
        if kind == "8in16":
            data = data.astype(np.uint16)  # 8-bit entries in 16 bits allocated: actual depth 16
        ds.add_new(pydicom.datadict.tag_for_keyword(f"{colour}PaletteColorLookupTableData"), "OW", data.tobytes())
    return ds


@pytest.mark.parametrize("xp_name", XP)
@pytest.mark.parametrize("kind", ["8bit", "16bit", "negative", "rgba", "8in16", "segmented8", "segmented16"])
def test_generated_palettes(xp_name, kind):
    for little in (True, False):
        ds = palette_ds(kind, little)
        for name, arr in ARRAYS.items():
            check(xp_name, "apply_color_lut", arr, ds, what=f"{kind} {little} {name}")


def test_segmented_expansion_follows_pydicom():
    """The segment decoder: an indirect segment repeats earlier segments; malformed tables fail as in pydicom."""
    for kind in ("segmented8", "segmented16"):
        for little in (True, False):
            ds = palette_ds(kind, little)
            table = transforms._palette_table(ds)[0]
            assert table.shape == (213, 3)
            np.testing.assert_array_equal(table[103:206, 0], table[:103, 0])
            np.testing.assert_array_equal(table, pd.apply_color_lut(np.arange(213), ds))
    bad = palette_ds("segmented16")
    for words in ([1, 5, 3], [2, 5, 0, 0], [7, 5, 0, 0]):  # linear first, indirect first, unknown opcode
        bad.SegmentedRedPaletteColorLookupTableData = _segmented(words, True, False)
        want = outcome(pd.apply_color_lut, ARRAYS["u8"], bad)
        assert want is ValueError
        assert_same(outcome(run, "numpy", "apply_color_lut", ARRAYS["u8"], bad), want, "numpy")


@pytest.mark.parametrize("xp_name", XP)
def test_well_known_palettes(xp_name):
    """By name (pydicom 3.0.2's mapping, FALL and WINTER swapped included) and by UID; unknown ones fail alike."""
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    names = list(transforms._PALETTE_NAMES) + list(transforms._PALETTE_FILES) + ["NOPE", "1.2.3.4"]
    for palette in names:
        check(xp_name, "apply_color_lut", arr, None, palette, what=palette)
    check(xp_name, "apply_color_lut", arr, None, None)


@pytest.mark.parametrize("xp_name", XP)
def test_palette_errors_match(xp_name):
    ds = palette_ds("16bit")
    for mutate in ("no_descriptor", "bad_depth", "uneven", "supplemental", "no_data"):
        d = copy.deepcopy(ds)
        if mutate == "no_descriptor":
            del d.RedPaletteColorLookupTableDescriptor
        elif mutate == "bad_depth":
            d.RedPaletteColorLookupTableDescriptor = [4096, 0, 16]
            d.RedPaletteColorLookupTableData = d.RedPaletteColorLookupTableData[:3072]
        elif mutate == "uneven":
            d.GreenPaletteColorLookupTableData = d.GreenPaletteColorLookupTableData[:4000]
        elif mutate == "supplemental":
            d.PixelPresentation = "MIXED"
        else:
            del d.RedPaletteColorLookupTableData
        check(xp_name, "apply_color_lut", ARRAYS["u16"], d, what=mutate)


def _near_boundary_rgb(rng: np.random.Generator) -> np.ndarray:
    """RGB triples whose exact YBR value lies within 2e-5 of a rounding boundary, from 4M random triples."""
    m = transforms._RGB_TO_YBR
    t = rng.integers(0, 256, size=(1 << 22, 3), dtype=np.uint8)
    v = t @ m + np.array([0.5, 128.5, 128.5])
    return t[(np.abs(v - np.round(v)) < 2e-5).any(axis=-1)]


@pytest.mark.parametrize("xp_name", XP)
def test_rgb_to_ybr_is_bit_exact_near_rounding_boundaries(xp_name):
    near = _near_boundary_rgb(np.random.default_rng(3))
    assert len(near) > 1000
    for cols in (1, 2, 3, 7, 64):
        n = len(near) // cols * cols
        for img in (near[:n].reshape(-1, cols, 3), near[:n].reshape(1, -1, cols, 3)):
            check(xp_name, "convert_color_space", img, "RGB", "YBR_FULL", what=f"{cols} columns")
    for img in (near[0], near[:1], near[:5], near[:6].reshape(2, 3, 3)):  # (3,), (1, 3), (5, 3): gemv or sgemm
        check(xp_name, "convert_color_space", img, "RGB", "YBR_FULL", what=str(img.shape))


@pytest.mark.parametrize("xp_name", XP)
def test_colour_space_errors_match(xp_name):
    for arr, current, desired in [(np.zeros((2, 2, 3), np.uint16), "YBR_FULL", "RGB"), (np.zeros((2, 2, 3), np.uint8), "RGB", "XYZ"),
                                  (np.zeros((2, 2, 3), np.uint8), "PALETTE COLOR", "RGB"), (np.zeros((2, 2, 4), np.uint8), "RGB", "YBR_FULL")]:
        want = outcome(pd.convert_color_space, arr, current, desired)
        got = outcome(run, xp_name, "convert_color_space", arr, current, desired)
        assert isinstance(want, type) and isinstance(got, type) and issubclass(got, want if want is not ValueError else ValueError), (got, want)


def x86_float_casts() -> bool:
    """Whether NumPy here casts out-of-range floats to unsigned types as on x86-64 (the rule transforms follows)."""
    with np.errstate(invalid="ignore"):
        return list(np.array([70000.7, -3.2, 1e10, np.nan]).astype(np.uint16)) == [4464, 65533, 0, 0]


def test_numpy_edge_semantics_are_the_platform_s():
    """The generic code spells out NumPy 2's rules; the cases below are where they bite (Python ints outside
    the array's dtype, clip bounds beyond it, wrapping index casts, float -> unsigned casts out of range,
    float LUT indices): each raises or returns what pydicom does here. The float cast rule is NumPy's on
    x86-64."""
    if not x86_float_casts():
        pytest.skip("NumPy's float -> unsigned casts on this platform differ from x86-64's")
    ds = grey(16)
    ds.ModalityLUTSequence = [lut_item(4096, -5, 16, range(4096))]  # negative first map: uint arrays overflow
    ds.VOILUTSequence = [lut_item(70, 3, 8, range(70)), lut_item(4096, 0, 8, [v % 256 for v in range(4096)])]
    for name, arr in ARRAYS.items():
        check("numpy", "apply_modality_lut", arr, ds, what=name)
        check("numpy", "apply_voi", arr, ds, 0, what=name)
        check("numpy", "apply_voi", arr, ds, 1, what=name)  # 8-bit LUT of 4096 entries: indices wrap in uint8
    assert outcome(pd.apply_modality_lut, ARRAYS["u16"], ds) is OverflowError
    assert outcome(pd.apply_modality_lut, ARRAYS["f64"], ds) is IndexError
    assert not isinstance(outcome(pd.apply_voi, ARRAYS["u16"], ds, 1), type)


def test_index_casts_and_lookups_never_rely_on_undefined_behaviour():
    """What CuPy would do differently is never reached: float -> index casts never cast NaN or an out-of-range
    value (NumPy would warn), and an index past a short table raises before any device indexing (CuPy
    would wrap)."""
    values = np.array([1.5, 70000.7, -3.2, 1e10, -1e10, 2.0**31, -(2.0**31), 2.0**31 - 1, np.nan, np.inf, -np.inf])
    for src in (values, values.astype(np.float32)):
        for dtype in (np.uint8, np.uint16):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                got = transforms._cast_index(np, src, dtype)
            with np.errstate(invalid="ignore"):
                want = src.astype(dtype)
            if x86_float_casts():
                np.testing.assert_array_equal(got, want)

    class NoDevice:
        @staticmethod
        def asarray(_):
            raise AssertionError("indexed before checking the table's length")

    with pytest.raises(IndexError, match="out of bounds"):
        transforms._lookup(NoDevice, np.arange(10, dtype=np.uint16), np.array([3, 12], np.uint16), 99)
    with pytest.raises(IndexError):
        transforms._lookup(NoDevice, np.arange(10, dtype=np.uint16), np.array([1.0]), 9)


def test_public_functions_take_numpy_to_pydicom_and_refuse_other_arrays():
    ds = grey(12)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -7
    ds.WindowCenter, ds.WindowWidth = 100, 50
    arr = ARRAYS["u16"]
    np.testing.assert_array_equal(transforms.apply_modality_lut(arr, ds), pd.apply_modality_lut(arr, ds))
    np.testing.assert_array_equal(transforms.apply_voi_lut(arr, ds), pd.apply_voi_lut(arr, ds))
    np.testing.assert_array_equal(transforms.apply_windowing(arr, ds), pd.apply_windowing(arr, ds))
    assert transforms.apply_voi(arr, ds) is arr and transforms.apply_presentation_lut(arr, ds) is arr
    rgb = np.zeros((2, 2, 3), np.uint8)
    np.testing.assert_array_equal(transforms.convert_color_space(rgb, "RGB", "YBR_FULL"), pd.convert_color_space(rgb, "RGB", "YBR_FULL"))
    assert transforms.apply_rescale is transforms.apply_modality_lut
    for fn, args in [(transforms.apply_modality_lut, (ds,)), (transforms.apply_voi_lut, (ds,)), (transforms.apply_color_lut, (ds,)),
                     (transforms.convert_color_space, ("RGB", "RGB"))]:
        with pytest.raises(TypeError):
            fn(arr.tolist(), *args)
    with pytest.raises(TypeError):
        transforms.apply_windowing(arr, ds, 1.5)


def test_importing_transforms_does_not_import_cupy():
    code = "import sys, gpudcm.transforms, gpudcm.preprocessing; sys.exit('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
