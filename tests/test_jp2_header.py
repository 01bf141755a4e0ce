"""JP2-wrapped JPEG 2000 frames on the CPU registry: imagecodecs' OpenJPEG takes a JP2 file only when its
header changes no sample after the codestream is decoded (imagecodecs converts what OpenJPEG reports: sYCC,
an ICC profile; pydicom's plugin need not), else pydicom's plugin decodes it; either way the values are
pydicom's. The header check is tested box by box, and on the corpus JP2 file and rewrapped copies of it."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

import gpudcm
from gpudcm import codecs
from gpudcm.jpeg_markers import jp2_changes_samples

from corpus import corpus_files

SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
IHDR = struct.pack(">I", 22) + b"ihdr" + struct.pack(">IIHBBBB", 400, 400, 3, 7, 7, 0, 0)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _colr(meth: int, space: int = 16) -> bytes:
    return _box(b"colr", bytes([meth, 0, 0]) + (struct.pack(">I", space) if meth == 1 else b"\x00" * 16))


def _jp2(*header_boxes: bytes, codestream: bytes = b"\xff\x4f\xff\x51") -> bytes:
    return (SIGNATURE + _box(b"ftyp", b"jp2 \x00\x00\x00\x00jp2 ") + _box(b"jp2h", IHDR + b"".join(header_boxes))
            + _box(b"jp2c", codestream))


@pytest.mark.parametrize("boxes, changes", [
    ((), False),
    ((_colr(1, 16),), False),  # sRGB
    ((_colr(1, 17),), False),  # greyscale
    ((_colr(1, 18),), True),  # sYCC: a wrapper may convert it to RGB
    ((_colr(1, 14),), True),  # CIELab
    ((_colr(2),), True),  # restricted ICC profile
    ((_colr(3),), False),  # METH 3: ignored by a conforming JP2 reader (OpenJPEG too)
    ((_colr(3), _colr(1, 18)), False),  # only the first colour specification is read
    ((_colr(1, 18), _colr(1, 16)), True),
    ((_colr(1, 16), _box(b"pclr", b"\x00" * 8)), True),  # palette
    ((_box(b"cdef", b"\x00" * 8),), True),  # channel definitions
    ((_box(b"cmap", b"\x00" * 4),), True),
])
def test_jp2_header_boxes(boxes, changes):
    assert (jp2_changes_samples(_jp2(*boxes)) is not None) is changes


def test_jp2_header_that_cannot_be_read_is_a_change():
    whole = _jp2(_colr(1, 16))
    assert "jp2c" in jp2_changes_samples(whole[: whole.index(b"jp2c") - 4])  # no codestream box in the bytes
    bad = SIGNATURE + struct.pack(">I", 4) + b"jp2h"  # a box shorter than its own header
    assert jp2_changes_samples(bad) is not None


def _textgbr():
    found = [p for p in corpus_files() if p.name == "GDCMJ2K_TextGBR.dcm"]
    if not found:
        pytest.skip("pydicom's GDCMJ2K_TextGBR.dcm is not installed")
    return str(found[0])


def _rewrapped(tmp_path, colr: bytes) -> str:
    """GDCMJ2K_TextGBR.dcm with its JP2 header rebuilt around the same codestream box and `colr`."""
    path = _textgbr()
    ds = pydicom.dcmread(path)
    jp2 = next(generate_frames(ds.PixelData, number_of_frames=1))
    ihdr = jp2[jp2.index(b"ihdr") - 4 :][:22]
    codestream_box = jp2[jp2.index(b"jp2c") - 4 :]
    ds.PixelData = encapsulate([SIGNATURE + _box(b"ftyp", b"jp2 \x00\x00\x00\x00jp2 ") + _box(b"jp2h", ihdr + colr)
                                + codestream_box])
    out = tmp_path / "rewrapped.dcm"
    ds.save_as(out)
    return str(out)


def _backend(path) -> str:
    with gpudcm.open_pixels(path) as r:
        spec = r.spec
        return codecs.choose(spec, codecs.frame_info(spec, r.frame_bytes(0)))[0].name


@pytest.mark.parametrize("colr, backend", [
    (None, "imagecodecs-openjpeg"),  # the corpus file: an ICC colour specification of METH 3, ignored
    (_colr(1, 16), "imagecodecs-openjpeg"),
    (_colr(1, 18), "pydicom-plugins"),
    (_colr(2), "pydicom-plugins"),
])
def test_jp2_frames_take_the_backend_their_header_allows_with_pydicoms_values(tmp_path, colr, backend):
    pytest.importorskip("imagecodecs")
    path = _textgbr() if colr is None else _rewrapped(tmp_path, colr)
    try:
        want = pydicom.pixels.pixel_array(pydicom.dcmread(path))
    except Exception as exc:  # noqa: BLE001 - a rewrapped header pydicom's plugin refuses
        pytest.skip(f"pydicom does not decode it: {exc}")
    assert _backend(path) == backend
    got = gpudcm.pixel_array(path, device="cpu")
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(gpudcm.pixel_array(io.BytesIO(open(path, "rb").read()), device="cpu"), want)


def test_subsampled_colour_j2k_goes_to_pydicoms_plugin():
    """A 3-component codestream with a subsampled component (XRsiz 2 patched into US1_J2KR's SIZ) is left
    to pydicom's plugin (imagecodecs would convert sYCC itself); the unpatched one takes OpenJPEG."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("US1_J2KR.dcm")
    with gpudcm.open_pixels(path) as r:
        spec, frame = r.spec, bytes(r.frame_bytes(0))
    assert spec.samples_per_pixel == 3
    siz = frame.index(b"\xff\x51")
    patched = bytearray(frame)
    patched[siz + 2 + 38 + 3 + 1] = 2  # component 1: Ssiz, XRsiz <- 2
    plain_info, sub_info = codecs.frame_info(spec, frame), codecs.frame_info(spec, bytes(patched))
    assert plain_info["subsampled"] is False and sub_info["subsampled"] is True
    assert codecs.choose(spec, plain_info)[0].name == "imagecodecs-openjpeg"
    backend, reasons = codecs.choose(spec, sub_info)
    assert backend.finished and "subsampled components" in reasons
