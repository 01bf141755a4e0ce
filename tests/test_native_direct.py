"""The direct native path (file bytes read straight into the output, big-endian samples byte-swapped there
in place, pydicom's unused-bit correction in place) against pydicom, on files built to tell the paths
apart: every file either takes the direct path ("direct"), the direct path with the swap ("swap"), or is
refused to the general path (pydicom's decoder), and the test fails when the condition admits a file it
must refuse (8-bit OW big endian, 1-bit, planar, YBR, ...), refuses one it should take, or swaps wrong
(a missing swap, a swap of 8-bit samples, a correction before the swap). Every bit of every sample is
random (the unused high bits too) so a missing mask or sign extension shows; the header parse from the
first bytes of a path is checked on the same files."""

from __future__ import annotations

import numpy as np
import pytest
from datagen import _base_dataset, _save
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

import gpudcm
from gpudcm import frame_decode, reader

RNG = np.random.default_rng(16)

BE = ExplicitVRBigEndian
# name: (transfer syntax, dataset args, the path it takes: "direct", "swap" or False, pydicom's decoder)
CASES = {
    "u16-12bit-explicit": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=12, pixel_rep=0), "direct"),
    "i16-12bit-explicit": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=12, pixel_rep=1), "direct"),
    "i16-14bit-implicit": (ImplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=14, pixel_rep=1), "direct"),
    "u16-full-explicit": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=16, pixel_rep=0), "direct"),
    "u8-6bit-odd-length": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=6, pixel_rep=0,
                                                        rows=3, cols=5), "direct"),
    "i8-7bit-multiframe": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=7, pixel_rep=1, frames=3),
                           "direct"),
    "u32-20bit": (ExplicitVRLittleEndian, dict(bits_allocated=32, bits_stored=20, pixel_rep=0), "direct"),
    "i32-24bit-multiframe": (ExplicitVRLittleEndian, dict(bits_allocated=32, bits_stored=24, pixel_rep=1,
                                                          frames=2), "direct"),
    "rgb-interleaved": (ExplicitVRLittleEndian, dict(bits_allocated=8, bits_stored=8, pixel_rep=0, spp=3,
                                                     photometric="RGB", planar=0), "direct"),
    "rgb16-10bit-interleaved": (ExplicitVRLittleEndian, dict(bits_allocated=16, bits_stored=10, pixel_rep=0,
                                                             spp=3, photometric="RGB", planar=0), "direct"),
    # big endian: read into the output, each sample's bytes reversed there (8-bit OB: none to reverse)
    "i16-12bit-big-endian": (BE, dict(bits_allocated=16, bits_stored=12, pixel_rep=1), "swap"),
    "u16-big-endian": (BE, dict(bits_allocated=16, bits_stored=16, pixel_rep=0), "swap"),
    "u16-11bit-big-endian-odd-multiframe": (BE, dict(bits_allocated=16, bits_stored=11, pixel_rep=0, rows=3,
                                                     cols=5, frames=3), "swap"),
    "u32-20bit-big-endian": (BE, dict(bits_allocated=32, bits_stored=20, pixel_rep=0), "swap"),
    "i32-24bit-big-endian-multiframe": (BE, dict(bits_allocated=32, bits_stored=24, pixel_rep=1, frames=2), "swap"),
    "i8-7bit-big-endian-ob": (BE, dict(bits_allocated=8, bits_stored=7, pixel_rep=1, rows=3, cols=5), "swap"),
    "rgb16-12bit-big-endian": (BE, dict(bits_allocated=16, bits_stored=12, pixel_rep=0, spp=3, photometric="RGB",
                                        planar=0, frames=2), "swap"),
    "u8-big-endian-ow-pairs": (BE, dict(bits_allocated=8, bits_stored=8, pixel_rep=0, rows=3, cols=4, frames=3,
                                        vr="OW"), "swap"),  # byte pairs across samples, frames of even length
    "rgb-big-endian-ow-pairs": (BE, dict(bits_allocated=8, bits_stored=8, pixel_rep=0, spp=3, photometric="RGB",
                                         planar=0, rows=2, cols=3, frames=2, vr="OW"), "swap"),
    # refused: pydicom's decode is not the bytes as they are (or simply swapped)
    "u8-big-endian-ow-odd": (BE, dict(bits_allocated=8, bits_stored=8, pixel_rep=0, rows=3, cols=5, frames=3,
                                      vr="OW"), False),  # odd frames: a frame's pairs straddle its neighbours
    "u16-big-endian-planar": (BE, dict(bits_allocated=16, bits_stored=16, pixel_rep=0, spp=3, photometric="RGB",
                                       planar=1), False),
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
    vr = args.pop("vr", "OB" if args["bits_allocated"] <= 8 else "OW")
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
    _save(ds, path, data, vr)
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
        assert frame_decode.stored_as_decoded(r.spec) is (CASES[name][2] == "direct")
        assert frame_decode.swapped_as_decoded(r.spec) is (CASES[name][2] == "swap")
    got = gpudcm.pixel_array(path, device="cpu")
    assert got.dtype == want.dtype.newbyteorder("=") and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    if CASES[name][2]:
        assert spy == ["direct"]
    else:  # pydicom's decoder (or the 1-bit unpacking), never the direct read
        assert "direct" not in spy


@pytest.mark.parametrize("name", ["i16-12bit-explicit", "u8-6bit-odd-length", "i8-7bit-multiframe",
                                  "u16-11bit-big-endian-odd-multiframe", "i32-24bit-big-endian-multiframe",
                                  "rgb16-12bit-big-endian", "u8-big-endian-ow-pairs", "u8-big-endian-ow-odd"])
def test_direct_path_frames_and_batches_equal_pydicom(tmp_path, name):
    """One frame, a frame subset (into out=, repeated and reversed) and a pipelined batch take the same
    direct reads."""
    path = _write(tmp_path, name)
    want = pydicom_pixel_array(path)
    frames = want if CASES[name][1].get("frames", 1) > 1 else want[None]
    for i in range(len(frames)):
        np.testing.assert_array_equal(gpudcm.pixel_array(path, index=i, device="cpu"), frames[i])
    pick = [len(frames) - 1, 0, len(frames) - 1]
    out = np.empty((3, *frames.shape[1:]), dtype=want.dtype.newbyteorder("="))
    assert gpudcm.pixel_array(path, indices=pick, device="cpu", out=out) is out
    np.testing.assert_array_equal(out, frames[pick])
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


def test_swap_in_place_reverses_every_samples_bytes():
    """The in-place swap equals NumPy's byteswap at every width (floats bit for bit, NaN payloads too),
    on multi-dimensional and odd-sized arrays."""
    for dtype in ("u2", "i2", "u4", "i4", "u8", "f4", "f8"):
        for shape in ((7,), (3, 5), (2, 3, 5, 3)):
            raw = RNG.integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize, dtype=np.uint8)
            arr = raw.view(dtype).reshape(shape).copy()
            want = arr.byteswap()
            frame_decode.swap_in_place(arr)
            assert arr.tobytes() == want.tobytes(), (dtype, shape)


def _with_big_elements(tmp_path, name: str, *, sequence: bool = False) -> str:
    """The file `name` with large elements before the pixel data (an overlay and a private blob, and
    with `sequence` an undefined-length sequence whose item holds a large value): a header far longer
    than the reader's first read."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    path = _write(tmp_path, name)
    ds = pydicom.dcmread(path)
    ds.add_new(0x60000010, "US", 256)  # Overlay Rows, Columns
    ds.add_new(0x60000011, "US", 256)
    ds.add_new(0x60003000, "OW", RNG.integers(0, 256, size=256 * 256 // 8, dtype=np.uint8).tobytes())
    ds.add_new(0x00291010, "OB", bytes(30_000))  # private blob (its creator below)
    ds.add_new(0x00290010, "LO", "GPUDCM TEST")
    if sequence:
        item = Dataset()
        item.add_new(0x00091010, "OB", bytes(40_000))
        item.add_new(0x00090010, "LO", "GPUDCM TEST")
        ds.add_new(0x00081140, "SQ", Sequence([item]))  # Referenced Image Sequence: before the others
        ds[0x00081140].is_undefined_length = True
    ds.save_as(path)
    return path


@pytest.mark.parametrize("sequence", [False, True])
@pytest.mark.parametrize("full_header", [False, True])
def test_header_beyond_the_first_read_is_pydicoms(tmp_path, monkeypatch, sequence, full_header):
    """A header longer than the first read (large overlays, LUTs, private blobs, a long sequence) is read
    in one pass of pydicom's reader: the first bytes from memory, the rest from the file (or all of it
    from the file when a sequence runs past the first bytes); the pixel bytes stay in the file, the header
    elements are pydicom's own read, the values pydicom's, and no warning escapes the attempt."""
    import warnings

    import pydicom

    path = _with_big_elements(tmp_path, "i16-12bit-big-endian", sequence=sequence)
    monkeypatch.setattr(reader, "HEAD_BYTES", 4096)
    calls = []
    real = reader.parse_header

    def parse_header(fp, tags=None, rest=None):
        calls.append("memory" if isinstance(fp, __import__("io").BytesIO) else "file")
        return real(fp, tags, rest)

    monkeypatch.setattr(reader, "parse_header", parse_header)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = reader.open_pixels(path, full_header=full_header)
    assert not caught, [str(w.message) for w in caught]
    assert calls == (["memory", "file"] if sequence else ["memory"])  # never the general way
    assert isinstance(r.data, reader.FileBytes)
    theirs = pydicom.dcmread(path, stop_before_pixels=True)
    if full_header:
        assert [(e.tag, e.VR, e.value) for e in r.ds] == [(e.tag, e.VR, e.value) for e in theirs]
    else:
        assert [e.tag for e in r.ds] == [e.tag for e in theirs if e.tag in reader.HEADER_TAGS]
    np.testing.assert_array_equal(frame_decode.decode_frames(r, None), pydicom_pixel_array(path))
    r.close()


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
