"""The copy-back writer: decode -> set_pixel_data -> save -> read -> decode is equal, DCMTK reads what
we write, requantized floats stay within half a step, and bad input is refused before anything changes."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.pixels.utils import set_pixel_data as pydicom_set_pixel_data
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases, reference_shape
from gpudcm.errors import InvalidPixelData, UnsupportedTransferSyntax
from gpudcm.host import to_host
from gpudcm.writer import _set_module, rescale_to_integers, set_pixel_data

NATIVE_OUT = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian)
DCMDUMP = shutil.which("dcmdump")
DCMDRLE = shutil.which("dcmdrle")


def _read(path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path)


def _decode(src, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(src, device="cpu", **kwargs)


def _writable(path: Path) -> bool:
    """Native or RLE Lossless and decoded by pydicom."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tsyntax = dcmread(path, stop_before_pixels=True, force=True).file_meta.get("TransferSyntaxUID")
    except Exception:
        return False
    return bool(tsyntax) and (not tsyntax.is_encapsulated or tsyntax == RLELossless) and reference_shape(path) is not None


pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR UI")  # a corpus file's UID

CORPUS = [p for p in corpus_files() if _writable(p)]
BY_NAME = {p.name: p for p in CORPUS}
GENERATED = {c.name: c for c in generated_cases()}
OUTPUTS = [None, RLELossless]


def _ts_id(ts) -> str:
    return "rle" if ts == RLELossless else "native" if ts is None else ts.name


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def dcmdump_errors(path: Path) -> list[str]:
    """dcmdump's complaints about `path`: a non-zero exit or its "E:" lines."""
    run = subprocess.run([DCMDUMP, str(path)], capture_output=True, text=True, errors="replace")
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("E:")]
    if run.returncode:
        errors.append(f"dcmdump exited {run.returncode}")
    return errors


def require_dcmtk() -> None:
    """Skip without DCMTK, except in CI where it is installed and its absence is a failure."""
    if DCMDUMP and DCMDRLE:
        return
    if os.environ.get("CI"):
        pytest.fail("DCMTK (dcmdump, dcmdrle) is missing; CI installs it with apt-get install dcmtk")
    pytest.skip("DCMTK (dcmdump, dcmdrle) is not installed")


def _output_pi(ds: Dataset, raw: bool) -> str:
    pi = str(ds.PhotometricInterpretation)
    return "RGB" if pi.startswith("YBR") and not raw else pi


def write(src, out: Path, *, raw: bool = False, pi: str | None = None, bits: int | None = None, **kwargs):
    """Decode `src`, write the array back into its dataset and save to `out`; return (array, dataset)."""
    arr = _decode(src, raw=raw)
    ds = _read(src)
    if arr.dtype.kind == "f" and not kwargs.get("requantize"):
        kwargs.setdefault("float_pixel_data", True)
        bits = bits or arr.dtype.itemsize * 8
    set_pixel_data(ds, arr, pi or _output_pi(ds, raw), bits or ds.BitsStored, **kwargs)
    ds.save_as(out, enforce_file_format=True)
    return arr, ds


def check_round_trip(src, out: Path, transfer_syntax, **kwargs) -> np.ndarray:
    source_ts = _read(src).file_meta.TransferSyntaxUID
    arr, _ = write(src, out, transfer_syntax=transfer_syntax, **kwargs)
    back = _read(out)
    if transfer_syntax is None:
        assert back.file_meta.TransferSyntaxUID == (source_ts if source_ts in NATIVE_OUT else ExplicitVRLittleEndian)
    else:
        assert back.file_meta.TransferSyntaxUID == transfer_syntax
    assert_same(_decode(out, raw=kwargs.get("raw", False)), arr)
    return arr


# --- round trips ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transfer_syntax", OUTPUTS, ids=_ts_id)
@pytest.mark.parametrize("path", CORPUS, ids=corpus_id)
def test_round_trip_corpus(path, transfer_syntax, tmp_path):
    check_round_trip(path, tmp_path / "out.dcm", transfer_syntax)


@pytest.mark.parametrize("transfer_syntax", OUTPUTS, ids=_ts_id)
@pytest.mark.parametrize("name", sorted(GENERATED))
def test_round_trip_generated(name, transfer_syntax, tmp_path):
    case = GENERATED[name]
    if case.expected.dtype.kind == "f" and transfer_syntax == RLELossless:
        with pytest.raises(InvalidPixelData, match="Float Pixel Data cannot be RLE encoded"):
            write(case.path, tmp_path / "out.dcm", transfer_syntax=transfer_syntax)
        return
    arr = check_round_trip(case.path, tmp_path / "out.dcm", transfer_syntax)
    assert_same(arr, case.expected)


def test_corpus_covers_the_variants():
    names = {p.name for p in CORPUS}
    assert len(CORPUS) > 100
    for name in ("MR_small_RLE.dcm", "rtdose_rle.dcm", "SC_rgb_rle_32bit_2frame.dcm", "liver.dcm",
                 "MR_small_bigendian.dcm", "image_dfl.dcm", "SC_ybr_full_422_uncompressed.dcm"):
        assert name in names


YBR_SOURCES = [
    BY_NAME["SC_ybr_full_uncompressed.dcm"],
    BY_NAME["SC_ybr_full_422_uncompressed.dcm"],
    *(GENERATED[n].path for n in sorted(GENERATED) if n.startswith("ybr")),
]


@pytest.mark.parametrize("transfer_syntax", OUTPUTS, ids=_ts_id)
@pytest.mark.parametrize("path", YBR_SOURCES, ids=lambda p: p.stem)
def test_ybr_raw_round_trip(path, transfer_syntax, tmp_path):
    """raw=True keeps YBR: native output keeps the source's YBR_FULL / YBR_FULL_422 (pydicom subsamples
    the chroma, exact for decoded 4:2:2 data); RLE stores every sample, so it is written as YBR_FULL."""
    source_pi = str(_read(path).PhotometricInterpretation)
    pi = "YBR_FULL" if transfer_syntax == RLELossless else source_pi
    out = tmp_path / "out.dcm"
    check_round_trip(path, out, transfer_syntax, raw=True, pi=pi)
    assert _read(out).PhotometricInterpretation == pi
    assert_same(_decode(out), _decode(path))  # and the default (RGB) decode is the source's


@pytest.mark.parametrize("path", YBR_SOURCES[:2], ids=lambda p: p.stem)
def test_ybr_as_rgb_is_written_as_rgb(path, tmp_path):
    out = tmp_path / "out.dcm"
    check_round_trip(path, out, None)
    assert _read(out).PhotometricInterpretation == "RGB"


def test_ybr_full_422_refused_for_rle():
    path = BY_NAME["SC_ybr_full_422_uncompressed.dcm"]
    ds = _read(path)
    with pytest.raises(InvalidPixelData, match="YBR_FULL_422 cannot be RLE encoded.*'YBR_FULL'"):
        set_pixel_data(ds, _decode(path, raw=True), "YBR_FULL_422", 8, transfer_syntax=RLELossless)


@pytest.mark.parametrize("transfer_syntax", OUTPUTS, ids=_ts_id)
def test_one_bit_follows_pydicom(transfer_syntax, tmp_path):
    """Decoded 1-bit data is uint8 0/1; written as pydicom writes it: Bits Allocated 8, Bits Stored 1."""
    out = tmp_path / "out.dcm"
    arr = check_round_trip(BY_NAME["liver.dcm"], out, transfer_syntax)
    ds = _read(out)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.NumberOfFrames) == (8, 1, 0, 3)
    assert arr.dtype == np.uint8 and arr.max() == 1


# --- the pixel module -------------------------------------------------------------------------------


def _base(rows=4, cols=5, frames=3, samples=3) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = rows, cols, frames, samples
    ds.PlanarConfiguration = 1
    ds.PhotometricInterpretation = "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = b"\0" * (rows * cols * frames * samples * 2)
    return ds


MODULE_CASES = [
    ("u1-mono", np.uint8, (6, 5), "MONOCHROME2", 8),
    ("i1-multi", np.int8, (2, 6, 5), "MONOCHROME1", 7),
    ("u2-rgb", np.uint16, (6, 5, 3), "RGB", 16),
    ("i2-multi", np.int16, (3, 4, 5), "MONOCHROME2", 12),
    ("u1-ybr422", np.uint8, (2, 4, 6, 3), "YBR_FULL_422", 8),
    ("u2-palette", np.uint16, (1, 4, 6), "PALETTE COLOR", 16),
]


@pytest.mark.parametrize("dtype,shape,pi,bits", [c[1:] for c in MODULE_CASES], ids=[c[0] for c in MODULE_CASES])
def test_own_module_code_matches_pydicom(dtype, shape, pi, bits):
    """The 32/64-bit path (_set_module) does what pydicom's set_pixel_data does for 8/16 bits."""
    signed = np.dtype(dtype).kind == "i"
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    arr = np.random.default_rng(1).integers(lo, hi, shape, dtype=dtype, endpoint=True)
    if pi == "YBR_FULL_422":
        arr[..., 1::2, 1:] = arr[..., 0::2, 1:]
    theirs = _base()
    ours = copy.deepcopy(theirs)
    pydicom_set_pixel_data(theirs, arr, pi, bits, generate_instance_uid=False)
    samples = 3 if arr.shape[-1] == 3 and pi not in ("MONOCHROME2", "MONOCHROME1", "PALETTE COLOR") else 1
    frames = arr.shape[0] if arr.ndim == (3 if samples == 1 else 4) else 1
    rows, cols = (arr.shape[-3:-1] if samples == 3 else arr.shape[-2:])
    _set_module(ours, arr, pi, bits, (frames, rows, cols, samples))
    assert ours == theirs
    assert ours["PixelData"].VR == theirs["PixelData"].VR
    assert ours["PixelData"].is_undefined_length is theirs["PixelData"].is_undefined_length is False


@pytest.mark.parametrize("dtype", [np.uint32, np.int32, np.uint64, np.int64])
@pytest.mark.parametrize("transfer_syntax", OUTPUTS, ids=_ts_id)
def test_wide_integers(dtype, transfer_syntax, tmp_path):
    arr = np.random.default_rng(2).integers(-1000 if np.dtype(dtype).kind == "i" else 0, 1 << 20, (2, 5, 7), dtype=dtype)
    ds = set_pixel_data(_base(), arr, "MONOCHROME2", 21, transfer_syntax=transfer_syntax)
    bits = np.dtype(dtype).itemsize * 8
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (bits, 21, 20)
    assert ds.PixelRepresentation == (np.dtype(dtype).kind == "i")
    assert "PlanarConfiguration" not in ds and ds.NumberOfFrames == 2
    assert ds["PixelData"].VR == ("OB" if transfer_syntax else "OW")
    ds.save_as(tmp_path / "out.dcm", enforce_file_format=True)
    assert_same(_decode(tmp_path / "out.dcm"), arr)


@pytest.mark.parametrize("dtype,bits", [(np.uint16, 8), (np.int16, 5), (np.int32, 10), (np.uint32, 16)])
def test_rle_with_bits_stored_below_the_container(dtype, bits, tmp_path):
    """pydicom 3.0.2's compress breaks these (it shrinks the array to Bits Stored's container but
    segments it by Bits Allocated); the writer encodes every allocated byte."""
    signed = np.dtype(dtype).kind == "i"
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    arr = np.random.default_rng(5).integers(lo, hi, (2, 6, 7), dtype=dtype, endpoint=True)
    set_pixel_data(_base(), arr, "MONOCHROME2", bits, transfer_syntax=RLELossless).save_as(
        tmp_path / "o.dcm", enforce_file_format=True)
    assert_same(_decode(tmp_path / "o.dcm"), arr)


def test_single_frame_drops_number_of_frames_and_planar_configuration():
    ds = set_pixel_data(_base(), np.zeros((4, 5), np.uint16), "MONOCHROME2", 16)
    assert "NumberOfFrames" not in ds and "PlanarConfiguration" not in ds
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation) == (4, 5, 1, "MONOCHROME2")


def test_stale_elements_are_removed():
    ds = _base(samples=1)
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.RedPaletteColorLookupTableDescriptor = [256, 0, 16]
    ds.RedPaletteColorLookupTableData = b"\0\0" * 256
    ds.SmallestImagePixelValue = 0
    ds.LargestImagePixelValue = 4095
    ds.PixelPaddingValue = 4000
    ds.ExtendedOffsetTable = b"\0" * 8
    ds.ExtendedOffsetTableLengths = b"\0" * 8
    set_pixel_data(ds, np.zeros((3, 4, 5), np.int16), "MONOCHROME2", 12)
    for kw in ("RedPaletteColorLookupTableDescriptor", "RedPaletteColorLookupTableData", "SmallestImagePixelValue",
               "LargestImagePixelValue", "PixelPaddingValue", "ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        assert kw not in ds, kw


def test_padding_value_kept_when_still_valid():
    ds = _base(samples=1)
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelPaddingValue = 4000
    set_pixel_data(ds, np.zeros((3, 4, 5), np.uint16), "MONOCHROME2", 12)
    assert ds.PixelPaddingValue == 4000
    set_pixel_data(ds, np.zeros((3, 4, 5), np.uint16), "MONOCHROME2", 10)  # 4000 no longer fits 10 bits
    assert "PixelPaddingValue" not in ds


def test_new_dataset_without_file_meta(tmp_path):
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    arr = np.arange(20, dtype=np.uint8).reshape(4, 5)
    set_pixel_data(ds, arr, "MONOCHROME2", 8)
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.save_as(tmp_path / "out.dcm", enforce_file_format=True)
    assert_same(_decode(tmp_path / "out.dcm"), arr)


def test_bool_is_written_as_uint8(tmp_path):
    arr = np.random.default_rng(3).integers(0, 2, (2, 9, 7)).astype(bool)
    set_pixel_data(ds := _base(), arr, "MONOCHROME2", 1).save_as(tmp_path / "o.dcm", enforce_file_format=True)
    assert (ds.BitsAllocated, ds.BitsStored) == (8, 1)
    assert_same(_decode(tmp_path / "o.dcm"), arr.astype(np.uint8))


def test_big_endian_dtype_is_written_little_endian(tmp_path):
    arr = np.arange(60, dtype=">u2").reshape(3, 4, 5) * 1000
    set_pixel_data(_base(), arr, "MONOCHROME2", 16).save_as(tmp_path / "o.dcm", enforce_file_format=True)
    assert_same(_decode(tmp_path / "o.dcm"), arr.astype("=u2"))


# --- transfer syntaxes and big endian sources ---------------------------------------------------------


@pytest.mark.parametrize("name,expected", [
    ("MR_small_implicit.dcm", ImplicitVRLittleEndian),
    ("image_dfl.dcm", DeflatedExplicitVRLittleEndian),
    ("MR_small_RLE.dcm", ExplicitVRLittleEndian),
    ("MR_small_bigendian.dcm", ExplicitVRLittleEndian),
    ("CT_small.dcm", ExplicitVRLittleEndian),
])
def test_default_transfer_syntax(name, expected):
    path = BY_NAME[name]
    ds = _read(path)
    set_pixel_data(ds, _decode(path), ds.PhotometricInterpretation, ds.BitsStored)
    assert ds.file_meta.TransferSyntaxUID == expected


@pytest.mark.parametrize("tsyntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, str(ImplicitVRLittleEndian)])
def test_explicit_transfer_syntax(tsyntax, tmp_path):
    check_round_trip(BY_NAME["CT_small.dcm"], tmp_path / "o.dcm", tsyntax)


def test_unsupported_transfer_syntax_is_refused():
    ds = _read(BY_NAME["CT_small.dcm"])
    before = copy.deepcopy(ds)
    with pytest.raises(UnsupportedTransferSyntax, match="JPEG Baseline.*RLE Lossless"):
        set_pixel_data(ds, _decode(BY_NAME["CT_small.dcm"]), "MONOCHROME2", 16, transfer_syntax=JPEGBaseline8Bit)
    assert ds == before


def test_big_endian_source_is_converted(tmp_path):
    """OW values other than the pixels are byte swapped: the palette of the big endian file, written as
    little endian, is the palette of its little endian twin (pydicom itself misreads the big endian one)."""
    out = tmp_path / "o.dcm"
    arr, _ = write(BY_NAME["OBXXXX1A_expb.dcm"], out, generate_instance_uid=False)
    twin = _read(BY_NAME["OBXXXX1A.dcm"])
    written = _read(out)
    assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert written.RedPaletteColorLookupTableData == twin.RedPaletteColorLookupTableData
    assert_same(apply_color_lut(_decode(out), written), apply_color_lut(arr, twin))
    original = _read(BY_NAME["OBXXXX1A_expb.dcm"])
    changed = {"PixelData", "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData",
               "BluePaletteColorLookupTableData"}
    for elem in original:
        if elem.keyword not in changed:
            assert written[elem.tag].value == elem.value, elem.keyword


# --- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values,dtype,bits,match", [
    ((0, 4096), np.uint16, 12, r"span \[0, 4096\] but Bits Stored 12 \(unsigned uint16\) allows \[0, 4095\]"),
    ((-2049, 5), np.int16, 12, r"span \[-2049, 5\] but Bits Stored 12 \(signed int16\) allows \[-2048, 2047\]"),
    ((0, 2047), np.int16, 11, r"span \[0, 2047\] but Bits Stored 11 \(signed int16\) allows \[-1024, 1023\]"),
    ((0, 1 << 20), np.uint32, 20, r"allows \[0, 1048575\]"),
    ((0, 1), np.uint8, 9, r"bits_stored is 9; for a uint8 array it must be 1 to 8"),
    ((0, 1), np.uint8, 0, r"bits_stored is 0"),
])
def test_bits_stored_overflow_is_refused(values, dtype, bits, match):
    arr = np.zeros((4, 5), dtype)
    arr.flat[: len(values)] = values
    ds = _base()
    before = copy.deepcopy(ds)
    with pytest.raises(InvalidPixelData, match=match):
        set_pixel_data(ds, arr, "MONOCHROME2", bits)
    assert ds == before


@pytest.mark.parametrize("arr,pi,match", [
    (np.zeros((4, 5, 3), np.uint8), "RGB ", None),
    (np.zeros((4, 5), np.uint8), "RGB", r"shaped \(rows, columns, 3\)"),
    (np.zeros((2, 2, 4, 5), np.uint8), "MONOCHROME2", r"shaped \(rows, columns\) or \(frames"),
    (np.zeros((4, 5, 4), np.uint8), "RGB", "not"),
    (np.zeros((4, 5), np.uint8), "CMYK", "not supported"),
    (np.zeros((4, 5), np.complex64), "MONOCHROME2", "unsupported array dtype"),
    (np.zeros((0, 5), np.uint8), "MONOCHROME2", "empty"),
])
def test_bad_arrays_are_refused(arr, pi, match):
    if match is None:  # surrounding spaces in the PI are tolerated
        assert set_pixel_data(_base(), arr, pi, 8).PhotometricInterpretation == "RGB"
        return
    with pytest.raises(InvalidPixelData, match=match):
        set_pixel_data(_base(), arr, pi, 8)


@pytest.mark.parametrize("arr,pi,match", [
    (np.zeros((4, 5, 3), np.uint64), "RGB", r"at most 15 segments per frame; 3 sample\(s\) of 64 bits need 24"),
    (np.zeros((4, 5, 3), np.int8), "RGB", "does not allow RGB with signed 8-bit"),
    (np.zeros((4, 5, 3), np.uint32), "YBR_FULL", "does not allow YBR_FULL with unsigned 32-bit"),
])
def test_rle_limits(arr, pi, match):
    with pytest.raises(InvalidPixelData, match=match):
        set_pixel_data(_base(), arr, pi, 8, transfer_syntax=RLELossless)


def test_float_without_a_choice_is_refused():
    with pytest.raises(InvalidPixelData, match="float32; pass requantize=True .* or float_pixel_data=True"):
        set_pixel_data(_base(), np.zeros((4, 5), np.float32), "MONOCHROME2", 16)


def test_float_pixel_data_rules():
    with pytest.raises(InvalidPixelData, match="'Pixel Data', so its SOP Class"):
        set_pixel_data(_base(), np.zeros((4, 5), np.float32), "MONOCHROME2", 32, float_pixel_data=True)
    ds = _read(GENERATED["f32_float_single_le_explicit"].path)
    with pytest.raises(InvalidPixelData, match="'FloatPixelData', so its SOP Class"):
        set_pixel_data(ds, np.zeros((4, 5), np.uint16), "MONOCHROME2", 16)
    with pytest.raises(InvalidPixelData, match="pass that"):
        set_pixel_data(ds, np.zeros((4, 5), np.float64), "MONOCHROME2", 32, float_pixel_data=True)
    with pytest.raises(InvalidPixelData, match="exclude each other"):
        set_pixel_data(ds, np.zeros((4, 5)), "MONOCHROME2", 64, float_pixel_data=True, requantize=True)
    set_pixel_data(ds, np.ones((2, 4, 5)), "MONOCHROME2", 64, float_pixel_data=True)  # float32 -> float64
    assert "FloatPixelData" not in ds and ds["DoubleFloatPixelData"].VR == "OD"
    assert "BitsStored" not in ds and ds.BitsAllocated == 64 and ds.NumberOfFrames == 2


# --- requantize -------------------------------------------------------------------------------------


def _ct_hu() -> tuple[Dataset, np.ndarray]:
    ds = _read(BY_NAME["CT_small.dcm"])
    return ds, apply_modality_lut(_decode(BY_NAME["CT_small.dcm"]), ds)


def _read_back_floats(path: Path) -> tuple[np.ndarray, Dataset]:
    ds = _read(path)
    return apply_modality_lut(_decode(path), ds), ds


@pytest.mark.parametrize("transfer_syntax", OUTPUTS, ids=_ts_id)
def test_requantize_integer_valued_floats_is_exact(transfer_syntax, tmp_path):
    ds, hu = _ct_hu()
    assert hu.dtype == np.float64 and hu.min() < 0
    set_pixel_data(ds, hu, "MONOCHROME2", 16, requantize=True, transfer_syntax=transfer_syntax)
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept), ds.PixelRepresentation) == (1.0, 0.0, 1)
    assert "PixelPaddingValue" not in ds
    ds.save_as(tmp_path / "o.dcm", enforce_file_format=True)
    back, _ = _read_back_floats(tmp_path / "o.dcm")
    assert_same(back, hu)


@pytest.mark.parametrize("bits", [8, 12, 16])
@pytest.mark.parametrize("transfer_syntax", OUTPUTS, ids=_ts_id)
def test_requantize_within_half_a_step(bits, transfer_syntax, tmp_path):
    """CT Hounsfield units after a 2x2 mean (a resize): quarter-unit values, lossy below 16 bits."""
    ds, hu = _ct_hu()
    small = hu.reshape(64, 2, 64, 2).mean(axis=(1, 3)).astype(np.float32)
    set_pixel_data(ds, small, "MONOCHROME2", bits, requantize=True, transfer_syntax=transfer_syntax,
                   pixel_spacing=[2 * float(v) for v in ds.PixelSpacing])
    ds.save_as(tmp_path / "o.dcm", enforce_file_format=True)
    back, written = _read_back_floats(tmp_path / "o.dcm")
    slope = float(written.RescaleSlope)
    assert (written.Rows, written.Columns, written.BitsStored, written.PixelRepresentation) == (64, 64, bits, 1)
    assert len(str(written.RescaleSlope)) <= 16 and len(str(written.RescaleIntercept)) <= 16
    assert slope <= (small.max() - small.min()) / (2**bits - 1) * (1 + 1e-9)
    error = np.abs(back - small.astype(np.float64)).max()
    assert error <= slope / 2 + 1e-12
    assert written.PixelSpacing == [2 * float(v) for v in _read(BY_NAME["CT_small.dcm"]).PixelSpacing]


def test_requantize_unsigned_for_non_negative_data():
    values = np.linspace(0.5, 99.5, 300).reshape(15, 20)
    ds = set_pixel_data(_base(), values, "MONOCHROME2", 10, requantize=True)
    assert (ds.PixelRepresentation, ds.BitsAllocated, ds.BitsStored) == (0, 16, 10)
    stored = np.frombuffer(ds.PixelData, "<u2").reshape(15, 20)
    assert stored.min() == 0 and stored.max() == 1023
    assert np.abs(stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept) - values).max() <= float(ds.RescaleSlope) / 2 + 1e-12


def test_requantize_updates_enhanced_functional_groups_and_drops_lut(tmp_path):
    path = BY_NAME["eCT_Supplemental.dcm"]
    ds = _read(path)
    floats = _decode(path) * 0.5 + 0.25
    set_pixel_data(ds, floats, "MONOCHROME2", 12, requantize=True, pixel_spacing=(0.5, 0.75))
    shared = ds.SharedFunctionalGroupsSequence[0]
    transform = shared.PixelValueTransformationSequence[0]
    assert (transform.RescaleSlope, transform.RescaleIntercept) == (ds.RescaleSlope, ds.RescaleIntercept)
    assert "RealWorldValueMappingSequence" not in shared
    assert shared.PixelMeasuresSequence[0].PixelSpacing == [0.5, 0.75]
    ds = _read(BY_NAME["mlut_18.dcm"])
    set_pixel_data(ds, _decode(BY_NAME["mlut_18.dcm"]) / 3, "MONOCHROME2", 12, requantize=True)
    assert "ModalityLUTSequence" not in ds and "RescaleSlope" in ds


def test_requantize_leaves_integer_arrays_alone():
    arr = np.arange(20, dtype=np.uint16).reshape(4, 5)
    ds = set_pixel_data(_base(), arr, "MONOCHROME2", 12, requantize=True)
    assert "RescaleSlope" not in ds and ds.PixelData[:4] == arr.tobytes()[:4]


@pytest.mark.parametrize("values,match", [
    ([0.0, np.nan], "1 NaN or infinite"),
    ([0.0, np.inf], "1 NaN or infinite"),
])
def test_requantize_refuses_non_finite(values, match):
    with pytest.raises(InvalidPixelData, match=match):
        set_pixel_data(_base(), np.array([values]), "MONOCHROME2", 12, requantize=True)


def test_requantize_edges():
    q = rescale_to_integers(np.full((3, 3), 2.75), 12)
    assert q.stored.dtype == np.uint16 and np.abs(q.slope * q.stored + q.intercept - 2.75).max() <= q.max_error
    exact = rescale_to_integers(np.array([-70000.0, -5.0]), 20)  # integers, shifted into 20 signed bits
    assert (exact.slope, exact.max_error, exact.stored.dtype) == (1.0, 0.0, np.int32)
    assert_same(exact.stored * 1.0 + exact.intercept, np.array([-70000.0, -5.0]))
    assert rescale_to_integers(np.array([0.0, 0.5, 1.0]), 1).stored.tolist() == [0, 0, 1]
    with pytest.raises(InvalidPixelData, match="1 to 32"):
        rescale_to_integers(np.zeros(3), 33)
    with pytest.raises(InvalidPixelData, match="negative values .* bits_stored >= 2"):
        rescale_to_integers(np.array([-1.0, 1.0]), 1)
    with pytest.raises(InvalidPixelData, match="shifts them by more than that"):
        rescale_to_integers(np.array([-1000000000.0000246, -1e9]), 32)  # DS intercept: -1000000000.0000


@settings(max_examples=300, deadline=None)
@given(
    bits=st.integers(1, 32),
    low=st.floats(-1e7, 1e7),
    span=st.floats(1e-3, 1e7),
    fractions=st.lists(st.floats(0, 1), min_size=1, max_size=50),
)
def test_rescale_bound_property(bits, low, span, fractions):
    values = low + span * np.array([0.0, 1.0, *fractions])
    if values.min() < 0 and bits == 1:
        bits = 2
    span = float(np.ptp(values))
    largest = float(np.abs(values).max())
    try:
        q = rescale_to_integers(values, bits)
    except InvalidPixelData:
        assert span / largest < 2**bits * 1e-9  # the documented unreachable corner only
        return
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if q.stored.dtype.kind == "i" else (0, (1 << bits) - 1)
    assert lo <= q.stored.min() and q.stored.max() <= hi
    assert (q.stored.dtype.kind == "i") == (values.min() < 0)
    assert np.abs(q.stored.astype(np.float64) * q.slope + q.intercept - values).max() <= q.max_error
    assert q.max_error <= q.slope / 2 + 1e-15 * max(largest, abs(q.intercept)) * 8
    assert float(format_number_as_ds(q.slope)) == q.slope and float(format_number_as_ds(q.intercept)) == q.intercept
    assert q.slope <= span / (2**bits - 1) * (1 + 1e-9) or q.slope == 1.0  # DS keeps >= 10 digits


# --- pixel spacing and UIDs ---------------------------------------------------------------------------


def test_pixel_spacing_scales_imager_pixel_spacing():
    ds = _base(samples=1)
    ds.PixelSpacing = [0.18, 0.18]
    ds.ImagerPixelSpacing = [0.2, 0.2]
    set_pixel_data(ds, np.zeros((2, 3), np.uint16), "MONOCHROME2", 16, pixel_spacing=(0.36, 0.54))
    assert ds.PixelSpacing == [0.36, 0.54]
    assert [round(float(v), 9) for v in ds.ImagerPixelSpacing] == [0.4, 0.6]


def test_pixel_spacing_imager_only_and_none_present():
    path = BY_NAME["6154"]
    ds = _read(path)
    set_pixel_data(ds, _decode(path)[::2, ::2], "MONOCHROME1", 12, pixel_spacing=(0.2, 0.2))
    assert ds.ImagerPixelSpacing == [0.2, 0.2] and "PixelSpacing" not in ds and (ds.Rows, ds.Columns) == (8, 8)
    ds = set_pixel_data(_base(), np.zeros((4, 5), np.uint8), "MONOCHROME2", 8, pixel_spacing=(1, 2))
    assert ds.PixelSpacing == [1, 2]
    for bad in [(0, 1), (1,), ("a", 1), (1, float("nan"))]:
        with pytest.raises(InvalidPixelData, match="pixel_spacing"):
            set_pixel_data(_base(), np.zeros((4, 5), np.uint8), "MONOCHROME2", 8, pixel_spacing=bad)


def test_instance_uid():
    ds = _read(BY_NAME["CT_small.dcm"])
    old = ds.SOPInstanceUID
    set_pixel_data(ds, _decode(BY_NAME["CT_small.dcm"]), "MONOCHROME2", 16, transfer_syntax=RLELossless)
    assert ds.SOPInstanceUID != old and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    new = ds.SOPInstanceUID
    set_pixel_data(ds, _decode(BY_NAME["CT_small.dcm"]), "MONOCHROME2", 16, generate_instance_uid=False)
    assert ds.SOPInstanceUID == new == ds.file_meta.MediaStorageSOPInstanceUID


# --- host copy --------------------------------------------------------------------------------------


def test_host_copy_dispatch_for_numpy():
    arr = np.arange(6, dtype=np.uint16).reshape(2, 3)
    assert to_host(arr) is arr  # no copy, no CuPy import needed
    assert_same(to_host([[1, 2], [3, 4]]), np.array([[1, 2], [3, 4]]))


@pytest.mark.gpu
def test_cupy_array_is_written_like_numpy(tmp_path):
    import cupy

    arr = np.random.default_rng(4).integers(0, 4096, (3, 16, 16), dtype=np.uint16)
    gpu = set_pixel_data(_base(), cupy.asarray(arr), "MONOCHROME2", 12, generate_instance_uid=False)
    cpu = set_pixel_data(_base(), arr, "MONOCHROME2", 12, generate_instance_uid=False)
    assert gpu.PixelData == cpu.PixelData and gpu.Rows == cpu.Rows == 16
    hu = cupy.asarray(arr.astype(np.float32) * 0.5 - 1024)
    q = set_pixel_data(_base(), hu, "MONOCHROME2", 16, requantize=True, transfer_syntax=RLELossless)
    q.save_as(tmp_path / "o.dcm", enforce_file_format=True)
    back = apply_modality_lut(_decode(tmp_path / "o.dcm"), _read(tmp_path / "o.dcm"))
    assert np.abs(back - cupy.asnumpy(hu)).max() <= float(q.RescaleSlope) / 2 + 1e-9


# --- DCMTK ------------------------------------------------------------------------------------------

# (name, source, kwargs): every variant: 8/16/32/64-bit, signed, multi-frame, RGB, YBR, 1-bit, float,
# big endian and RLE sources, requantized, each written native and as RLE where RLE can hold it.
DCMTK_SOURCES = {
    "u8_mono": (BY_NAME["vlut_04.dcm"], {}),
    "i16_ct": (BY_NAME["CT_small.dcm"], {}),
    "u16_bs12_multi": (BY_NAME["emri_small.dcm"], {}),
    "i16_from_rle": (BY_NAME["MR_small_RLE.dcm"], {}),
    "u16_from_big_endian": (BY_NAME["MR_small_bigendian.dcm"], {}),
    "palette_from_big_endian": (BY_NAME["OBXXXX1A_expb.dcm"], {}),
    "rgb8": (BY_NAME["SC_rgb.dcm"], {}),
    "rgb16_multi": (BY_NAME["SC_rgb_16bit_2frame.dcm"], {}),
    "rgb32_multi": (BY_NAME["SC_rgb_32bit_2frame.dcm"], {}),
    "u32_multi": (BY_NAME["rtdose.dcm"], {}),
    "u1_multi": (BY_NAME["liver.dcm"], {}),
    "ybr_full_raw": (BY_NAME["SC_ybr_full_uncompressed.dcm"], {"raw": True, "pi": "YBR_FULL"}),
    "ybr_full_422_as_rgb": (BY_NAME["SC_ybr_full_422_uncompressed.dcm"], {}),
    "i16_bs12": (GENERATED["i16_bs12_garbage_le_explicit"].path, {}),
    "i32_bs10": (GENERATED["i32_bs10_garbage_le_explicit"].path, {}),
    "u64": (GENERATED["u64_full_le_explicit"].path, {}),
    "i64_bs40": (GENERATED["i64_bs40_garbage_le_explicit"].path, {}),
    "requantized_ct": (BY_NAME["eCT_Supplemental.dcm"], {"requantize": True}),
}
DCMTK_NATIVE_ONLY = {
    "ybr_full_422_raw": (BY_NAME["SC_ybr_full_422_uncompressed.dcm"], {"raw": True, "pi": "YBR_FULL_422"}),
    "f32_multi": (GENERATED["f32_float_multi_le_explicit"].path, {}),
    "f64": (GENERATED["f64_double_single_le_explicit"].path, {}),
}
DCMTK_CASES = [(f"{n}-native", s, k, None) for n, (s, k) in {**DCMTK_SOURCES, **DCMTK_NATIVE_ONLY}.items()]
DCMTK_CASES += [(f"{n}-rle", s, k, RLELossless) for n, (s, k) in DCMTK_SOURCES.items()]


def _write_case(source: Path, kwargs: dict, transfer_syntax, out: Path) -> np.ndarray:
    kwargs = dict(kwargs)
    if kwargs.get("requantize"):
        ds = _read(source)
        floats = _decode(source) * 0.37 - 1000.25
        set_pixel_data(ds, floats, "MONOCHROME2", 12, requantize=True, transfer_syntax=transfer_syntax)
        ds.save_as(out, enforce_file_format=True)
        return _decode(out)
    arr, _ = write(source, out, transfer_syntax=transfer_syntax, **kwargs)
    return arr


@pytest.mark.parametrize("name,source,kwargs,transfer_syntax", DCMTK_CASES, ids=[c[0] for c in DCMTK_CASES])
def test_dcmtk_reads_what_we_write(name, source, kwargs, transfer_syntax, tmp_path):
    require_dcmtk()
    out = tmp_path / "out.dcm"
    arr = _write_case(source, kwargs, transfer_syntax, out)
    assert dcmdump_errors(out) == []
    if transfer_syntax != RLELossless:
        return
    native = tmp_path / "dcmdrle.dcm"
    run = subprocess.run([DCMDRLE, str(out), str(native)], capture_output=True, text=True, errors="replace")
    assert run.returncode == 0, run.stderr
    ds = _read(native)
    assert not ds.file_meta.TransferSyntaxUID.is_encapsulated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_same(pydicom_pixel_array(ds, raw=kwargs.get("raw", False)), arr)
