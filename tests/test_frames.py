"""Frame extents: native arithmetic (1-bit mid-byte starts) and encapsulated grouping equal to pydicom's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, encapsulate_extended, generate_fragmented_frames

from corpus import corpus_files, corpus_id, generated_cases, reference_shape
from gpudcm.frames import RLE_MAX_EXPANSION, Extent, check_rle_capacity, frame_bytes, frame_extents, native_extents
from gpudcm.errors import InvalidPixelData
from gpudcm.spec import pixel_spec


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path)


def _encapsulated_corpus():
    out = []
    for p in corpus_files():
        if not reference_shape(p):
            continue
        ds = _load(p)
        if "PixelData" in ds and ds.file_meta.TransferSyntaxUID.is_encapsulated:
            out.append(p)
    return out


def _eot(ds):
    if "ExtendedOffsetTable" in ds:
        return ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths
    return None


@pytest.mark.parametrize("path", _encapsulated_corpus(), ids=corpus_id)
def test_encapsulated_extents_match_pydicom(path):
    ds = _load(path)
    spec = pixel_spec(ds)
    extents = frame_extents(spec, ds.PixelData, extended_offsets=_eot(ds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = list(generate_fragmented_frames(ds.PixelData, number_of_frames=spec.number_of_frames, extended_offsets=_eot(ds)))
    assert len(extents) == len(theirs)
    for ours, fragments in zip(extents, theirs):
        assert len(ours) == len(fragments)
        assert bytes(frame_bytes(ds.PixelData, ours)) == b"".join(fragments)


def test_one_bit_frames_start_mid_byte():
    case = next(c for c in generated_cases() if c.name == "u1_7x5x13_le_explicit")
    spec = pixel_spec(_load(case.path))
    ext = native_extents(spec)
    assert len(ext) == 13
    assert ext[0] == (Extent(0, 5, 0),)  # 35 bits
    assert ext[1] == (Extent(4, 5, 3),)  # starts at bit 35 = byte 4, bit 3
    assert ext[2] == (Extent(8, 6, 6),)  # bit 70 = byte 8, bit 6; 6 + 35 bits span 6 bytes
    assert ext[-1][0].end <= spec.pixel_nbytes
    raw = np.frombuffer(_load(case.path).PixelData, np.uint8)
    for i, (e,) in enumerate(ext):
        bits = np.unpackbits(raw[e.offset : e.end], bitorder="little")[e.bit_offset : e.bit_offset + 35]
        np.testing.assert_array_equal(bits.reshape(5, 7), case.expected[i])


def test_native_extents_are_contiguous():
    spec = pixel_spec(_load(get_testdata_file("emri_small.dcm")))
    ext = native_extents(spec)
    assert [e[0].offset for e in ext] == [i * 8192 for i in range(10)]
    assert all(e[0].length == 8192 and e[0].bit_offset == 0 for e in ext)


def _with_pixels(data: bytes, frames: int, *, eot=None):
    ds = _load(get_testdata_file("MR_small_RLE.dcm"))
    ds.PixelData = data
    ds.NumberOfFrames = frames
    if eot:
        ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = eot
    return ds


JPEG_LIKE = [b"\xff\xd8" + bytes([i]) * 20 + b"\xff\xd9" for i in range(4)]


@pytest.mark.parametrize("has_bot", [True, False])
def test_several_fragments_per_frame(has_bot):
    data = encapsulate(JPEG_LIKE, fragments_per_frame=3, has_bot=has_bot)
    ds = _with_pixels(data, 4)
    ext = frame_extents(pixel_spec(ds), ds.PixelData)
    assert [len(f) for f in ext] == [3, 3, 3, 3]
    assert [bytes(frame_bytes(ds.PixelData, f)) for f in ext] == JPEG_LIKE


def test_end_of_image_followed_by_padding_ends_a_frame():
    """Without an offset table, fragments group into frames at an EOI marker among a fragment's last ten
    bytes, as pydicom does: an odd-length JPEG stream ends in EOI + one NULL pad byte (and some encoders
    pad more), so an EOI that is not the very last byte still closes the frame."""
    streams = [b"\xff\xd8" + bytes([i + 1]) * (21 + i) + b"\xff\xd9" + b"\x00" * i for i in range(4)]
    data = encapsulate(streams, fragments_per_frame=2, has_bot=False)
    ds = _with_pixels(data, 4)
    ext = frame_extents(pixel_spec(ds), ds.PixelData)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = list(generate_fragmented_frames(ds.PixelData, number_of_frames=4))
    assert [len(f) for f in ext] == [len(f) for f in theirs] == [2, 2, 2, 2]
    got = [bytes(frame_bytes(ds.PixelData, f)) for f in ext]
    assert got == [b"".join(f) for f in theirs]
    assert [g.rstrip(b"\x00") for g in got] == [s.rstrip(b"\x00") for s in streams]


def test_extended_offset_table():
    data, offsets, lengths = encapsulate_extended(JPEG_LIKE)
    ds = _with_pixels(data, 4, eot=(offsets, lengths))
    ext = frame_extents(pixel_spec(ds), ds.PixelData, extended_offsets=(offsets, lengths))
    assert [bytes(frame_bytes(ds.PixelData, f)) for f in ext] == JPEG_LIKE


def test_extended_offset_table_picks_the_frames():
    """Three fragments, two frames, an Extended Offset Table naming fragments 0 and 2: the table decides
    (without it the fragments would be grouped by EOI markers these frames do not have)."""
    frags = [bytes([i + 1]) * (8 + 2 * i) for i in range(3)]
    data = encapsulate(frags, has_bot=False)
    starts, pos = [], 0
    for f in frags:
        starts.append(pos)
        pos += 8 + len(f)
    offsets = np.array([starts[0], starts[2]], "<u8").tobytes()
    lengths = np.array([len(frags[0]), len(frags[2])], "<u8").tobytes()
    ds = _with_pixels(data, 2, eot=(offsets, lengths))
    ext = frame_extents(pixel_spec(ds), ds.PixelData, extended_offsets=(offsets, lengths))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = list(generate_fragmented_frames(ds.PixelData, number_of_frames=2, extended_offsets=(offsets, lengths)))
    assert [bytes(frame_bytes(ds.PixelData, f)) for f in ext] == [b"".join(t) for t in theirs] == [frags[0], frags[2]]
    assert len(frame_extents(pixel_spec(ds), ds.PixelData)) == 1  # no table: all three fragments in one frame


def test_rle_capacity_bound_is_exact():
    """A frame of n bytes may declare up to 64 n pixels a plane; one more is refused, naming the numbers."""
    ds = _with_pixels(encapsulate([b"\x00" * 64]), 1)
    ds.Rows, ds.Columns = 64, RLE_MAX_EXPANSION  # 4096 = 64 x 64 bytes: the bound itself
    spec = pixel_spec(ds)
    check_rle_capacity(spec, frame_extents(spec, ds.PixelData))
    ds.Columns = RLE_MAX_EXPANSION + 1
    spec = pixel_spec(ds)
    with pytest.raises(InvalidPixelData) as info:
        check_rle_capacity(spec, frame_extents(spec, ds.PixelData))
    assert str(info.value) == (f"{spec.source}: RLE frame 0 holds 64 bytes, which decode to at most 4096 bytes a "
                               "segment, but (0028,0010) 'Rows' x (0028,0011) 'Columns' = 64 x 65 needs 4160 "
                               "(the header disagrees with the data)")


def test_single_fragment_per_frame_without_offsets():
    data = encapsulate(JPEG_LIKE, has_bot=False)
    ds = _with_pixels(data, 4)
    ext = frame_extents(pixel_spec(ds), ds.PixelData)
    assert [len(f) for f in ext] == [1, 1, 1, 1]
    assert all(isinstance(frame_bytes(ds.PixelData, f), memoryview) for f in ext)  # no copy for one extent


def _lying_codestream(name: str, rows: int, cols: int):
    """`name` with its first frame's SOF / SIZ rewritten to declare rows x cols."""
    import struct

    from pydicom.encaps import get_frame

    ds = dcmread(get_testdata_file(name))
    frame = bytearray(get_frame(ds.PixelData, 0, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
    if b"\xff\x4f\xff\x51" in frame[:64]:
        siz = frame.find(b"\xff\x51")
        struct.pack_into(">II", frame, siz + 6, cols, rows)  # Xsiz, Ysiz (offsets are 0 in these files)
    else:
        sof = next(i for i in range(len(frame) - 1) if frame[i] == 0xFF and frame[i + 1] in (0xC0, 0xC1, 0xC3, 0xF7))
        struct.pack_into(">HH", frame, sof + 5, rows, cols)
    ds.PixelData = encapsulate([bytes(frame)])
    ds.NumberOfFrames = 1
    return ds


@pytest.mark.parametrize("name", ["JPEG-LL.dcm", "SC_rgb_jpeg_dcmtk.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_jp2klossless.dcm"])
def test_codestream_larger_than_header_is_refused_before_decoding(name):
    import gpudcm

    # pydicom decodes what the codestream says and then fails to fit it: both refuse ...
    small = _lying_codestream(name, 1000, 1000)
    with pytest.raises(ValueError, match=r"could not broadcast input array from shape \(\d+,\)"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small.pixel_array
    with pytest.raises(InvalidPixelData, match="codestream declares 1000 x 1000"):
        gpudcm.pixel_array(small, device="cpu")
    # ... and a 60000 x 60000 claim is refused before a decoder allocates it (gigabytes otherwise)
    with pytest.raises(InvalidPixelData, match="refused before decoding"):
        gpudcm.pixel_array(_lying_codestream(name, 60000, 60000), device="cpu")
    # the untouched file still decodes
    ds = dcmread(get_testdata_file(name))
    np.testing.assert_array_equal(gpudcm.pixel_array(ds, device="cpu"), ds.pixel_array)
