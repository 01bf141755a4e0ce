"""The direct native path (file bytes read straight into the output, pydicom's unused-bit correction in
place) against pydicom, on files built to tell the paths apart: every file either takes the direct path
and decodes to pydicom's values, or is refused to the general path (pydicom's decoder), and the test
fails when the condition admits a file it must refuse (big-endian, 1-bit, planar, YBR, ...) or refuses
one it should take. The unused bits of every file are set (random high bits) so a missing mask or sign
extension shows; the header parse from the first bytes of a path is checked on the same files."""

from __future__ import annotations

import numpy as np
import pytest
from datagen import _base_dataset, _save
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

import gpudcm
from gpudcm import frame_decode, reader

RNG = np.random.default_rng(16)

# name: (transfer syntax, dataset args, pixel keyword, takes the direct path)
CASES = {
    "u16-12bit-explicit": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=12, pixel_rep=0), True),
    "i16-12bit-explicit": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=12, pixel_rep=1), True),
    "i16-14bit-implicit": (ImplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=14, pixel_rep=1), True),
    "u16-full-explicit": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=16, pixel_rep=0), True),
    "u8-6bit-odd-length": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=6, pixel_rep=0,
                                                        rows=3, cols=5), True),
    "i8-7bit-multiframe": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=7, pixel_rep=1, frames=3), True),
    "u32-20bit": (ExplicitVRLittleEndian, dict(bits_allocated=32, bits_stored=20, pixel_rep=0), True),
    "i32-24bit-multiframe": (ExplicitVRLittleEndian, dict(bits_allocated=32, bits_stored=24, pixel_rep=1,
                                                          frames=2), True),
    "rgb-interleaved": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=8, pixel_rep=0, spp=3,
                                                     photometric="RGB", planar=0), True),
    "rgb16-10bit-interleaved": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=10, pixel_rep=0,
                                                             spp=3, photometric="RGB", planar=0), True),
    # refused: pydicom's decode is not the bytes as they are
    "i16-12bit-big-endian": (ExplicitVRBigEndian, dict(bits_allocated=16, bits_stored=12, pixel_rep=1), False),
    "u16-big-endian": (ExplicitVRBigEndian, dict(bits_allocated=16, bits_stored=16, pixel_rep=0), False),
    "rgb-planar": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=8, pixel_rep=0, spp=3,
                                                photometric="RGB", planar=1), False),
    "ybr-full": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=8, pixel_rep=0, spp=3,
                                              photometric="YBR_FULL", planar=0), False),
    "1bit-odd-frames": (ExplicitVRLittleEndian, dict(bits_allocated=1, bits_stored=1, pixel_rep=0, rows=3,
                                                     cols=3, frames=3), False),
}


def _write(tmp_path, name: str) -> str:
    ts, args, _ = CASES[name]
    args = {"rows": 6, "cols": 4, "frames": 1, "spp": 1, "photometric": "MONOCHROME2", **args}
    ds = _base_dataset(ts, **args)
    n = args["rows"] * args["cols"] * args["frames"] * args["spp"]
    if args["bits_allocated"] == 1:
        data = RNG.integers(0, 256, size=-(-n // 8), dtype=np.uint8).tobytes()
    else:  # every bit random, the unused high bits too
        dtype = np.dtype(f"u{args['bits_allocated'] // 8}")
        values = RNG.integers(0, np.iinfo(dtype).max, size=n, dtype=dtype, endpoint=True)
        data = values.astype(dtype.newbyteorder("<" if ts.is_little_endian else ">")).tobytes()
    data += b"\x00" * (len(data) % 2)
    path = tmp_path / f"{name}.dcm"
    _save(ds, path, data, "OB" if args["bits_allocated"] <= 8 else "OW")
    return str(path)


@pytest.fixture
def spy(monkeypatch):
    """Which path decoded: 'direct' (a read into the output), 'pydicom' (pydicom's native decoder)."""
    taken: list[str] = []
    real_pydicom, real_correct = frame_decode._pydicom, frame_decode.correct_unused_bits

    def via_pydicom(*args, **kwargs):
        taken.append("pydicom")
        return real_pydicom(*args, **kwargs)

    def direct(spec, out):
        taken.append("direct")
        return real_correct(spec, out)

    monkeypatch.setattr(frame_decode, "_pydicom", via_pydicom)
    monkeypatch.setattr(frame_decode, "correct_unused_bits", direct)
    return taken


@pytest.mark.parametrize("name", sorted(CASES))
def test_direct_path_taken_or_refused_and_equal_to_pydicom(tmp_path, spy, name):
    path = _write(tmp_path, name)
    want = pydicom_pixel_array(path)
    with gpudcm.open_pixels(path) as r:
        assert isinstance(r.data, reader.FileBytes) or r.data.nbytes < reader.HEAD_BYTES
        assert frame_decode.stored_as_decoded(r.spec) is CASES[name][2]
    got = gpudcm.pixel_array(path, device="cpu")
    assert got.dtype == want.dtype.newbyteorder("=") and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    if CASES[name][2]:
        assert spy == ["direct"]
    else:  # pydicom's decoder (or the 1-bit unpacking), never the direct read
        assert "direct" not in spy


@pytest.mark.parametrize("name", ["i16-12bit-explicit", "u8-6bit-odd-length", "i8-7bit-multiframe"])
def test_direct_path_frames_and_batches_equal_pydicom(tmp_path, name):
    """One frame, a frame subset and a pipelined batch take the same direct reads."""
    path = _write(tmp_path, name)
    want = pydicom_pixel_array(path)
    frames = want if want.ndim == 3 and CASES[name][1].get("frames", 1) > 1 else want[None]
    for i in range(len(frames)):
        np.testing.assert_array_equal(gpudcm.pixel_array(path, index=i, device="cpu"), frames[i])
    got = gpudcm.decode_batch([path] * 7, device="cpu", workers=2)
    for g in got:
        np.testing.assert_array_equal(g, want)


def test_unused_bit_correction_is_pydicoms_for_every_width():
    """The one-pass mask (unsigned) and the shift pair (signed) equal pydicom's shift pair, at each width."""
    from dataclasses import replace

    from gpudcm.spec import PixelSpec

    base = PixelSpec("<t>", ExplicitVRLittleEndian, "PixelData", "OW", 1, 64, 1, 1, 16, 12, 11, 0, 0,
                     "MONOCHROME2", 128)
    for bits in (8, 16, 32, 64):
        for stored in sorted({1, bits // 2 + 1, bits - 1, bits}):
            for rep in (0, 1):
                spec = replace(base, bits_allocated=bits, bits_stored=stored, high_bit=stored - 1,
                               pixel_representation=rep)
                raw = RNG.integers(0, 256, size=64 * bits // 8, dtype=np.uint8)
                got = raw.view(spec.dtype).copy()
                frame_decode.correct_unused_bits(spec, got)
                want = raw.view(spec.dtype).copy()
                shift = bits - stored
                np.left_shift(want, shift, out=want)
                np.right_shift(want, shift, out=want)
                np.testing.assert_array_equal(got, want, err_msg=f"{bits}/{stored} rep {rep}")


def test_header_beyond_the_first_read_goes_the_general_way(tmp_path, monkeypatch):
    """A header longer than the first read is parsed the general way, with the same values."""
    path = _write(tmp_path, "i16-12bit-explicit")
    monkeypatch.setattr(reader, "HEAD_BYTES", 200)  # the pixel element's header is past byte 200
    calls = []
    real = reader._lazy_path

    def lazy_path(*args):
        got = real(*args)
        calls.append(got is reader._RETRY)
        return got

    monkeypatch.setattr(reader, "_lazy_path", lazy_path)
    np.testing.assert_array_equal(gpudcm.pixel_array(path, device="cpu"), pydicom_pixel_array(path))
    assert calls == [True]


def test_file_meta_is_pydicoms(tmp_path):
    """The file meta from one generator pass equals pydicom's own read, element by element."""
    from pydicom.filebase import DicomBytesIO

    from gpudcm.pydicom_compat import read_file_meta_info, read_preamble

    for name in ("i16-12bit-explicit", "i16-14bit-implicit", "u16-big-endian"):
        data = open(_write(tmp_path, name), "rb").read()
        a, b = DicomBytesIO(data), DicomBytesIO(data)
        read_preamble(a, True), read_preamble(b, True)
        ours, theirs = reader.file_meta(a), read_file_meta_info(b)
        assert a.tell() == b.tell()
        assert [(e.tag, e.VR, e.value) for e in ours] == [(e.tag, e.VR, e.value) for e in theirs]


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_open_readers_hold_no_file_descriptor(tmp_path):
    """Readers of paths (thousands wait in a device batch) hold no descriptor: reads open the file by path
    and still refuse a file that changed since it was opened."""
    import os

    path = _write(tmp_path, "u16-12bit-explicit")
    big = tmp_path / "big.dcm"  # past the first read: its pixel bytes stay in the file
    big.write_bytes(open(path, "rb").read())
    ds = __import__("pydicom").dcmread(big)
    ds.Rows = ds.Columns = 128
    ds.PixelData = RNG.integers(0, 1 << 16, size=128 * 128, dtype=np.uint16).tobytes()
    ds.save_as(big)
    before = len(os.listdir("/proc/self/fd"))
    readers = [gpudcm.open_pixels(str(big)) for _ in range(40)]
    assert len(os.listdir("/proc/self/fd")) == before
    assert isinstance(readers[0].data, reader.FileBytes)
    want = pydicom_pixel_array(str(big))
    np.testing.assert_array_equal(frame_decode.decode_frames(readers[0], None), want)
    with open(big, "ab") as fp:  # the file grows: the stamp taken at open no longer matches
        fp.write(b"\0\0")
    with pytest.raises(gpudcm.GpudcmError, match="changed while it was being read"):
        frame_decode.decode_frames(readers[1], None)
    for r in readers:
        r.close()
