"""PixelSpec validation: every lie in the pixel module is caught before anything is allocated, with a
GpudcmError naming the tag and the numbers; honest files (padding, odd lengths) still decode."""

from __future__ import annotations

import copy
import io
import re
import tracemalloc
import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

import gpudcm
from gpudcm import InvalidPixelData, UnsupportedTransferSyntax
from gpudcm.spec import pixel_spec


def _read(name: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(get_testdata_file(name))


@pytest.fixture
def ct() -> Dataset:
    return _read("CT_small.dcm")


@pytest.fixture
def multi() -> Dataset:
    return _read("emri_small.dcm")  # 10 frames of 64 x 64, 16-bit


def _decode(ds):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(ds, device="cpu")


def test_spec_of_a_good_file(ct):
    spec = pixel_spec(ct)
    assert (spec.rows, spec.columns, spec.number_of_frames, spec.samples_per_pixel) == (128, 128, 1, 1)
    assert (spec.bits_allocated, spec.bits_stored, spec.high_bit, spec.pixel_representation) == (16, 16, 15, 1)
    assert spec.dtype == np.int16 and spec.shape() == (128, 128) and spec.is_little_endian
    assert spec.pixel_nbytes == 128 * 128 * 2 and not spec.is_encapsulated


@pytest.mark.parametrize(
    "keyword,value,pattern",
    [
        ("Rows", 0, r"\(0028,0010\) 'Rows' is 0"),
        ("Columns", 0, r"\(0028,0011\) 'Columns' is 0"),
        ("BitsAllocated", 12, r"\(0028,0100\) 'BitsAllocated' is 12"),
        ("BitsAllocated", 24, r"'BitsAllocated' is 24"),
        ("BitsStored", 17, r"'BitsStored' is 17 but \(0028,0100\) 'BitsAllocated' is 16"),
        ("BitsStored", 0, r"'BitsStored' is 0"),
        ("HighBit", 11, r"'HighBit' is 11 but \(0028,0101\) 'BitsStored' is 16"),
        ("PixelRepresentation", 2, r"'PixelRepresentation' is 2"),
        ("SamplesPerPixel", 3, r"'MONOCHROME2' needs 1 sample\(s\) per pixel but \(0028,0002\) 'SamplesPerPixel' is 3"),
        ("SamplesPerPixel", 2, r"'SamplesPerPixel' is 2"),
        ("PhotometricInterpretation", "RGB", r"'RGB' needs 3 sample\(s\)"),
        ("PhotometricInterpretation", "BOGUS", r"'BOGUS' is not a known value"),
        ("Rows", 129, r"holds 32768 bytes but 1 frame\(s\) of 129 x 128 x 1 at 16 bits need 33024 bytes"),
        ("NumberOfFrames", 2, r"holds 32768 bytes but 2 frame\(s\)"),
        ("NumberOfFrames", -5, r"'NumberOfFrames' is -5"),
    ],
)
def test_lying_header_raises(ct, keyword, value, pattern):
    setattr(ct, keyword, value)
    with pytest.raises(InvalidPixelData, match=pattern) as info:
        _decode(ct)
    assert "CT_small.dcm" in str(info.value)


@pytest.mark.parametrize("keyword", ["Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation", "SamplesPerPixel", "PhotometricInterpretation"])
def test_missing_required_element(ct, keyword):
    delattr(ct, keyword)
    with pytest.raises(InvalidPixelData, match=f"missing required element .*'{keyword}'"):
        _decode(ct)


def test_missing_planar_configuration():
    ds = _read("SC_rgb.dcm")
    del ds.PlanarConfiguration
    with pytest.raises(InvalidPixelData, match="'PlanarConfiguration'"):
        _decode(ds)


def test_missing_transfer_syntax(ct):
    del ct.file_meta.TransferSyntaxUID
    with pytest.raises(UnsupportedTransferSyntax, match=r"\(0002,0010\)"):
        _decode(ct)


def test_no_pixel_data(ct):
    del ct.PixelData
    with pytest.raises(InvalidPixelData, match="no Pixel Data"):
        _decode(ct)


def test_two_pixel_elements(ct):
    ct.FloatPixelData = b"\x00" * 8
    with pytest.raises(InvalidPixelData, match="only one pixel data element"):
        _decode(ct)


def test_size_bomb_raises_before_allocating(ct):
    """65535 x 65535 x 2^31 frames on a tiny element: refused with no large allocation."""
    ct.Rows = ct.Columns = 65535
    ct.NumberOfFrames = 2**31 - 1
    tracemalloc.start()
    with pytest.raises(InvalidPixelData, match="more than the .* gpudcm will allocate"):
        _decode(ct)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20


def test_frames_beyond_int32(ct):
    ct.NumberOfFrames = 2**40
    with pytest.raises(InvalidPixelData, match="NumberOfFrames"):
        _decode(ct)


def test_size_check_names_every_number(multi):
    multi.NumberOfFrames = 11
    with pytest.raises(InvalidPixelData) as info:
        _decode(multi)
    msg = str(info.value)
    assert "81920 bytes" in msg and "11 frame(s) of 64 x 64 x 1 at 16 bits need 90112 bytes" in msg


def test_bad_vr_value_is_a_clear_error():
    path = get_testdata_file("badVR.dcm")
    with pytest.raises(InvalidPixelData, match=r"'NumberOfFrames' value '1A' is not an integer"):
        gpudcm.pixel_array(path, device="cpu")


def test_truncated_native_file():
    path = get_testdata_file("MR_truncated.dcm")
    with pytest.raises(InvalidPixelData, match="holds 8130 bytes but 1 frame"):
        gpudcm.pixel_array(path, device="cpu")


@pytest.mark.parametrize("fraction", [0.05, 0.2, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "SC_rgb_jpeg_dcmtk.dcm", "emri_small_jpeg_2k_lossless.dcm"])
def test_truncated_files_raise_clear_errors(name, fraction):
    """A cut file decodes equal to pydicom, or raises a clear GpudcmError: where pydicom cannot decode it,
    or (the one refusal where pydicom decodes) where a fragment claims more bytes than the cut file holds:
    gpudcm checks every declared size against the bytes present, pydicom hands the partial fragment to the
    codec. Never another exception, never values that differ from pydicom's."""
    from pydicom.pixels import pixel_array as pydicom_pixel_array

    data = open(get_testdata_file(name), "rb").read()
    cut = data[: int(len(data) * fraction)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = pydicom_pixel_array(io.BytesIO(cut))
        except Exception:
            ref = None
        try:
            got = gpudcm.pixel_array(cut, device="cpu")
        except gpudcm.GpudcmError as exc:
            msg = str(exc)
            if ref is None:
                assert "bytes" in msg or "parsed" in msg or "decode" in msg or "no Pixel Data" in msg, msg
            else:
                assert re.search(r"fragment \d+ at byte \d+ claims \d+ bytes but only \d+ remain", msg), msg
            return
    assert ref is not None, "decoded a cut file that pydicom cannot decode"
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


def test_sequence_inside_pixel_data(ct):
    ct.file_meta.TransferSyntaxUID = RLELossless
    ct.PixelData = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\x08\x00\x05\x00" + b"\x00" * 12
    ct["PixelData"].is_undefined_length = True
    with pytest.raises(InvalidPixelData, match=r"unexpected tag \(0008,0005\)"):
        _decode(ct)


def test_encapsulated_fragment_longer_than_data():
    ds = _read("MR_small_RLE.dcm")
    data = bytearray(ds.PixelData)
    first = 8 + int.from_bytes(data[4:8], "little")  # the first fragment item follows the offset table
    data[first + 4 : first + 8] = (len(data) * 2).to_bytes(4, "little")  # it claims twice the element
    ds.PixelData = bytes(data)
    with pytest.raises(InvalidPixelData, match=f"fragment 0 at byte {first} claims {len(data) * 2} bytes"):
        _decode(ds)


def test_basic_offset_table_past_the_data():
    ds = _read("emri_small_RLE.dcm")  # 10 frames with a Basic Offset Table
    data = bytearray(ds.PixelData)
    n_offsets = int.from_bytes(data[4:8], "little") // 4
    assert n_offsets == 10
    data[8 + 4 * 9 : 8 + 4 * 10] = (10**8).to_bytes(4, "little")
    ds.PixelData = bytes(data)
    with pytest.raises(InvalidPixelData, match="Basic Offset Table points to byte 100000000"):
        _decode(ds)


def test_fewer_fragments_than_frames():
    frames = [bytes(range(16)) for _ in range(3)]
    ds = _read("MR_small_RLE.dcm")
    ds.PixelData = encapsulate(frames, has_bot=False)
    ds.NumberOfFrames = 5
    with pytest.raises(InvalidPixelData, match="3 fragment\\(s\\) but \\(0028,0008\\) 'NumberOfFrames' is 5"):
        _decode(ds)


def test_extended_offset_table_mismatch():
    from pydicom.encaps import encapsulate_extended

    ds = _read("emri_small_RLE.dcm")
    frames = [b"".join(f) for f in __import__("pydicom.encaps", fromlist=["x"]).generate_fragmented_frames(ds.PixelData, number_of_frames=10)]
    data, offsets, lengths = encapsulate_extended(frames)
    ds.PixelData = data
    ds.ExtendedOffsetTable = offsets
    lens = bytearray(lengths)
    lens[-8:] = (10**7).to_bytes(8, "little")
    ds.ExtendedOffsetTableLengths = bytes(lens)
    with pytest.raises(InvalidPixelData, match="Extended Offset Table entry 9"):
        _decode(ds)


def test_odd_length_and_trailing_padding_are_accepted(ct):
    ref = _decode(copy.deepcopy(ct))
    ct.PixelData = ct.PixelData + b"\x00\x00"
    np.testing.assert_array_equal(_decode(ct), ref)


def _native(rows: int, cols: int, frames: int, bits: int, nbytes: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.NumberOfFrames = rows, cols, 1, frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes((i * 37 + 11) % 256 for i in range(nbytes))
    return ds


@pytest.mark.parametrize("delta", range(-3, 5))
@pytest.mark.parametrize("rows,cols,frames,bits", [(5, 7, 3, 8), (1, 2, 3, 8), (2, 2, 2, 16)])
def test_length_tolerance_is_pydicoms(rows, cols, frames, bits, delta):
    """`delta` bytes more or fewer than the header needs (odd needs: 105; even: 6, 16): short data is
    refused, one pad byte is accepted, and whole excess frames are returned, exactly where pydicom does."""
    needed = rows * cols * frames * bits // 8
    ds = _native(rows, cols, frames, bits, needed + delta)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = ds.pixel_array
    except ValueError as exc:
        assert delta < 0 and "less than expected" in str(exc)
        with pytest.raises(InvalidPixelData) as info:
            _decode(ds)
        assert str(info.value) == (
            f"<dataset>: (7FE0,0010) 'PixelData' holds {needed + delta} bytes but {frames} frame(s) of {rows} x "
            f"{cols} x 1 at {bits} bits need {needed} bytes ((0028,0010) 'Rows', (0028,0011) 'Columns', "
            "(0028,0008) 'NumberOfFrames', (0028,0100) 'BitsAllocated' disagree with the data)")
        return
    assert delta >= 0
    got = _decode(ds)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
    # the frame count the spec derives (excess whole frames included) drives indexing and the device path
    import malformed

    n = ref.shape[0]
    assert pixel_spec(ds).number_of_frames == n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(gpudcm.pixel_array(ds, device="cpu", index=n - 1), ref[n - 1])
        np.testing.assert_array_equal(malformed.decode_host_device(ds), ref)


@pytest.mark.parametrize("extra", [0, 1, 2, 14, 15, 16, 17, 18])
def test_ybr_full_422_holding_full_sized_data(extra):
    """2 frames of 2 x 4 YBR_FULL_422 need 32 bytes; 48 (a third more: YBR_FULL-sized data) and beyond is a
    wrong Photometric Interpretation, refused as pydicom refuses it; up to 47 decodes as pydicom does."""
    ds = _native(2, 4, 2, 8, 32 + extra)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = ds.pixel_array
    except ValueError as exc:
        assert extra >= 16 and "a third larger than expected" in str(exc)
        with pytest.raises(InvalidPixelData) as info:
            _decode(ds)
        assert str(info.value) == (f"<dataset>: (7FE0,0010) 'PixelData' holds {32 + extra} bytes, a third more than "
                                   "the 32 that YBR_FULL_422 needs: (0028,0004) 'PhotometricInterpretation' is "
                                   "probably wrong")
        return
    assert extra < 16
    got = _decode(ds)
    assert got.shape == ref.shape == (2, 2, 4, 3)
    np.testing.assert_array_equal(got, ref)


def test_float_pixel_data_needs_32_bits():
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 2, 2, 1, 16
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.FloatPixelData = np.zeros(4, np.float32).tobytes()
    with pytest.raises(InvalidPixelData, match="Float Pixel Data needs 32"):
        _decode(ds)


def test_unparseable_bytes():
    with pytest.raises(InvalidPixelData):
        gpudcm.pixel_array(b"\x00" * 10, device="cpu")
    with pytest.raises(gpudcm.GpudcmError):
        gpudcm.pixel_array(io.BytesIO(b"DICM" * 3), device="cpu")


def test_missing_file_is_file_not_found():
    with pytest.raises(FileNotFoundError):
        gpudcm.pixel_array("/nonexistent/file.dcm", device="cpu")


def test_failing_plugin_is_wrapped_with_file_and_frame():
    path = get_testdata_file("JPEG-lossy.dcm")  # 12-bit extended JPEG: no installed plugin decodes it
    with pytest.raises(gpudcm.DecodeError, match="JPEG-lossy.dcm.*decode failed"):
        gpudcm.pixel_array(path, device="cpu")
