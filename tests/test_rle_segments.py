"""RLE frames of one sample a pixel decoded segment by segment (imagecodecs' PackBits, bytes put together
with NumPy) against imagecodecs' own DICOM RLE decoder and against pydicom, at every sample size; frames
whose segments do not decode to Rows x Columns bytes are left to the DICOM RLE decoder (and pydicom)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from datagen import _base_dataset, _rle_outside_profile
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import ExplicitVRLittleEndian

import gpudcm
from gpudcm.codecs import imagecodecs_codecs as icc
from gpudcm.spec import pixel_spec

imagecodecs = pytest.importorskip("imagecodecs")
RNG = np.random.default_rng(7)


def _rle_file(tmp_path, bits: int, stored: int, rep: int, frames: int = 2):
    ds = _base_dataset(ExplicitVRLittleEndian, rows=7, cols=9, frames=frames, spp=1, photometric="MONOCHROME2",
                       bits_allocated=bits, bits_stored=stored, pixel_rep=rep)
    dtype = np.dtype(f"{'ui'[rep]}{bits // 8}")
    info = np.iinfo(dtype)
    values = RNG.integers(info.min, info.max, size=(frames, 7, 9), dtype=dtype, endpoint=True)
    values[:, :3] = values[:, :1]  # runs as well as literals
    _rle_outside_profile(ds, values)  # pydicom's encoder; Part 5's profile lists 8/16-bit only
    path = tmp_path / f"rle{bits}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


@pytest.mark.parametrize("bits,stored,rep", [(8, 8, 0), (8, 5, 1), (16, 12, 1), (16, 16, 0), (32, 20, 0), (32, 31, 1)])
def test_segments_equal_the_dicom_rle_decoder_and_pydicom(tmp_path, monkeypatch, bits, stored, rep):
    monkeypatch.setattr(icc, "RLE_SEGMENT_PIXELS", 1)  # these 7 x 9 frames go segment by segment too
    path = _rle_file(tmp_path, bits, stored, rep)
    with gpudcm.open_pixels(path) as r:
        for i in range(r.spec.number_of_frames):
            frame = bytes(r.frame_bytes(i))
            offsets = icc._check_rle_header(frame, r.spec)
            ours = icc._rle_by_segment(frame, r.spec, offsets)
            assert ours is not None
            theirs = np.frombuffer(imagecodecs.dicomrle_decode(frame, f"<u{bits // 8}"), f"<u{bits // 8}")
            np.testing.assert_array_equal(ours.reshape(-1), theirs)
            into = np.empty(r.spec.frame_shape, dtype=r.spec.dtype)  # straight into an output frame
            assert icc.rle_decode_into(frame, r.spec, {}, into)
            np.testing.assert_array_equal(into.view(f"u{bits // 8}").reshape(-1), theirs)

    def refused(*args, **kwargs):
        raise AssertionError("one-sample frames decode straight into the output, not via dicomrle_decode")

    monkeypatch.setattr(imagecodecs, "dicomrle_decode", refused)
    np.testing.assert_array_equal(gpudcm.pixel_array(path, device="cpu"), pydicom_pixel_array(path))


def test_a_short_segment_goes_to_the_dicom_rle_decoder(tmp_path, monkeypatch):
    """A second segment that decodes to fewer bytes than Rows x Columns is not patched together: the frame
    goes to imagecodecs' DICOM RLE decoder, which the length check then refuses (pydicom decides)."""
    monkeypatch.setattr(icc, "RLE_SEGMENT_PIXELS", 1)
    path = _rle_file(tmp_path, 16, 16, 0, frames=1)
    ds = gpudcm.open_pixels(path).dataset()
    spec = pixel_spec(ds)
    short = struct.pack("<16L", 2, 64, 66, *([0] * 13)) + bytes([256 - 62, 1]) + bytes([256 - 3, 9])
    assert icc._rle_by_segment(short, spec, icc._check_rle_header(short, spec)) is None
    untouched = np.full(spec.frame_shape, 7, dtype=spec.dtype)
    assert not icc.rle_decode_into(short, spec, {}, untouched)
    assert (untouched == 7).all()  # nothing written when refused
    with pytest.raises(ValueError):
        icc.rle_decode(short, spec, {})



@pytest.mark.parametrize("bits", [8, 16])
def test_a_long_segment_goes_to_the_dicom_rle_decoder(tmp_path, monkeypatch, bits):
    """A segment that decodes to more than Rows x Columns bytes overflows the segment buffer: refused (the
    DICOM RLE decoder and pydicom decide), and a 16-bit output is left as it was."""
    monkeypatch.setattr(icc, "RLE_SEGMENT_PIXELS", 1)
    path = _rle_file(tmp_path, bits, bits, 0, frames=1)
    spec = pixel_spec(gpudcm.open_pixels(path).dataset())
    plane = spec.rows * spec.columns
    run = bytes([256 - 127, 5])  # 128 bytes of 5: more than the 63-byte plane
    segments = [run] * (bits // 8)
    offsets = [64 + sum(map(len, segments[:j])) for j in range(len(segments))]
    frame = struct.pack("<16L", len(segments), *offsets, *([0] * (15 - len(segments)))) + b"".join(segments)
    assert 128 > plane
    assert icc._rle_by_segment(frame, spec, icc._check_rle_header(frame, spec)) is None
    out = np.full(spec.frame_shape, 7, dtype=spec.dtype)
    assert not icc.rle_decode_into(frame, spec, {}, out)
    if bits == 16:
        assert (out == 7).all()


def test_the_segment_buffer_is_reused_across_frame_sizes(tmp_path):
    """Frames of several sizes in turn on one thread (the reused segment buffer grows, and a smaller frame
    uses only its front) decode to the DICOM RLE decoder's values."""
    for rows, cols in ((40, 50), (7, 9), (64, 64), (3, 5)):
        ds = _base_dataset(ExplicitVRLittleEndian, rows=rows, cols=cols, frames=1, spp=1, photometric="MONOCHROME2",
                           bits_allocated=16, bits_stored=16, pixel_rep=0)
        values = RNG.integers(0, 65535, size=(1, rows, cols), dtype=np.uint16, endpoint=True)
        _rle_outside_profile(ds, values)
        path = tmp_path / f"r{rows}.dcm"
        ds.save_as(path, enforce_file_format=True)
        with gpudcm.open_pixels(str(path)) as r:
            frame = bytes(r.frame_bytes(0))
            ours = icc._rle_by_segment(frame, r.spec, icc._check_rle_header(frame, r.spec))
        np.testing.assert_array_equal(ours, values[0])


def test_small_frames_go_to_the_dicom_rle_decoder_in_one_call(tmp_path, monkeypatch):
    """Below RLE_SEGMENT_PIXELS a one-sample frame is one dicomrle_decode call (no PackBits per segment);
    at or above it, segment by segment; both equal pydicom."""
    path = _rle_file(tmp_path, 16, 12, 1)
    calls = []
    real = imagecodecs.packbits_decode
    monkeypatch.setattr(imagecodecs, "packbits_decode", lambda *a, **k: calls.append(1) or real(*a, **k))
    np.testing.assert_array_equal(gpudcm.pixel_array(path, device="cpu"), pydicom_pixel_array(path))
    assert not calls
    monkeypatch.setattr(icc, "RLE_SEGMENT_PIXELS", 7 * 9)
    np.testing.assert_array_equal(gpudcm.pixel_array(path, device="cpu"), pydicom_pixel_array(path))
    assert len(calls) == 2 * 2  # two frames, two segments each
