"""The CPU codec registry (gpudcm.codecs): frames decoded from their bytes equal pydicom's frames, the
fast backends are the ones chosen where they are exact, threads change nothing, failures raise pydicom's
error as a GpudcmError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

import gpudcm
from gpudcm import codecs
from gpudcm.frames import extended_offsets, frame_bytes, frame_extents
from gpudcm.spec import pixel_spec
from corpus import corpus_files, corpus_id, reference, reference_shape, transfer_syntax

FILES = [p for p in corpus_files() if reference_shape(p)]
ENCAPSULATED = [p for p in FILES if (ts := transfer_syntax(p)) and ts.is_encapsulated]
LOSSY = (JPEGBaseline8Bit, JPEGExtended12Bit)


def _frames(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path)
    try:
        spec = pixel_spec(ds, source=str(path))
    except gpudcm.GpudcmError as exc:  # e.g. a truncated file only pydicom's path reader decodes
        pytest.skip(f"dcmread + pixel_spec refuse it: {exc}")
    extents = frame_extents(spec, ds.PixelData, extended_offsets=extended_offsets(ds))
    return ds, spec, extents


def _close(got, ref, lossy):
    assert got.shape == ref.shape and got.dtype == ref.dtype.newbyteorder("=")
    if lossy:
        assert np.abs(got.astype(np.int64) - ref.astype(np.int64)).max() <= 2
    else:
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("path", ENCAPSULATED, ids=corpus_id)
def test_decode_frame_equals_pydicoms_frame(path):
    """The stable API: one frame from its bytes == pydicom's decode of that frame (first and last)."""
    ds, spec, extents = _frames(path)
    if len(extents) != spec.number_of_frames:
        pytest.skip("fragments do not split into Number of Frames frames (pydicom's whole-file rules apply)")
    lossy = transfer_syntax(path) in LOSSY
    for i in sorted({0, spec.number_of_frames - 1}):
        ref = reference(path, index=i)
        if isinstance(ref, Exception):
            with pytest.raises(gpudcm.GpudcmError):
                codecs.decode_frame(spec, frame_bytes(ds.PixelData, extents[i]))
            continue
        got = codecs.decode_frame(spec, frame_bytes(ds.PixelData, extents[i]))
        _close(got, ref, lossy)
        if spec.samples_per_pixel == 3:
            raw = codecs.decode_frame(spec, frame_bytes(ds.PixelData, extents[i]), raw=True)
            _close(raw, reference(path, index=i, raw=True), lossy)


def _backend_of(path) -> str:
    ds, spec, extents = _frames(path)
    data = frame_bytes(ds.PixelData, extents[0])
    return codecs.choose(spec, codecs.frame_info(spec, data))[0].name


def _named(fragment):
    return [p for p in FILES if fragment in str(transfer_syntax(p) and transfer_syntax(p).name)]


@pytest.mark.parametrize("syntax, backend", [
    ("RLE Lossless", "imagecodecs-dicomrle"),
    ("JPEG-LS", "imagecodecs-charls"),
    ("JPEG 2000", "imagecodecs-openjpeg"),
    ("First-Order Prediction", "imagecodecs-libjpeg-turbo"),
    ("Explicit VR Little Endian", "numpy"),
])
def test_fast_backend_is_chosen_for_lossless_syntaxes(syntax, backend):
    pytest.importorskip("imagecodecs")
    paths = _named(syntax)
    assert paths, f"no corpus file for {syntax}"
    chosen = set()
    for p in paths:
        try:
            chosen.add(_backend_of(p))
        except pytest.skip.Exception:
            continue
    assert backend in chosen


def test_lossy_colour_jpeg_goes_to_pydicoms_plugin():
    """libjpeg-turbo is up to 5 off pydicom's default decode on subsampled colour, 3 on 12-bit (beyond the
    tolerance; tests/test_lossy_jpeg.py has every class)."""
    path = next(p for p in FILES if p.name == "SC_rgb_jpeg_lossy_gdcm.dcm")
    ds, spec, extents = _frames(path)
    backend, why = codecs.choose(spec, codecs.frame_info(spec, frame_bytes(ds.PixelData, extents[0])))
    assert backend.name == "pydicom-plugins" and "420 chroma" in why
    grey = next(p for p in FILES if p.name == "JPGExtended.dcm")
    ds, spec, extents = _frames(grey)
    backend, why = codecs.choose(spec, codecs.frame_info(spec, frame_bytes(ds.PixelData, extents[0])))
    assert backend.name == "pydicom-plugins" and "12-bit" in why


def test_bad_scan_raises_like_pydicom():
    """JPEG-lossy.dcm's scan is Ss=0, Se=0 in a sequential frame: pydicom's plugins fail, so must we
    (libjpeg-turbo alone would return an image)."""
    path = next(p for p in corpus_files() if p.name == "JPEG-lossy.dcm")
    assert isinstance(reference(path), Exception)
    with pytest.raises(gpudcm.GpudcmError):
        gpudcm.pixel_array(path, device="cpu")


def test_threads_change_nothing():
    path = max(ENCAPSULATED, key=lambda p: reference_shape(p)[0] if len(reference_shape(p)) >= 3 else 0)
    ds, spec, extents = _frames(path)
    frames = [frame_bytes(ds.PixelData, e) for e in extents]
    outs = []
    for threads in (1, 2, 4):
        out = np.empty((len(frames), *spec.frame_shape), spec.dtype)
        names = codecs.decode_frames(spec, frames, out, threads=threads)
        assert len(names) == len(frames)
        outs.append(out)
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])
    _close(outs[0].reshape(reference(path).shape), reference(path), transfer_syntax(path) in LOSSY)


def test_a_failing_fast_backend_hands_the_frame_to_pydicom(monkeypatch):
    """A frame the fast codec fails on goes to pydicom's plugins: its values when it decodes it."""
    from gpudcm.codecs import imagecodecs_codecs

    path = next(p for p in FILES if p.name == "MR_small_RLE.dcm")
    ds, spec, extents = _frames(path)

    def broken(*args, **kwargs):
        raise RuntimeError("codec failure")

    monkeypatch.setattr(imagecodecs_codecs, "_ic", broken)
    got = codecs.decode_frame(spec, frame_bytes(ds.PixelData, extents[0]))
    np.testing.assert_array_equal(got, reference(path))


def test_corrupt_frame_raises_a_decode_error():
    path = next(p for p in FILES if p.name == "MR_small_RLE.dcm")
    ds, spec, extents = _frames(path)
    data = bytes(frame_bytes(ds.PixelData, extents[0]))[:40]  # the header cut off
    with pytest.raises(gpudcm.DecodeError, match="RLE Lossless decode failed"):
        codecs.decode_frame(spec, data)


def test_capabilities_list_the_registry():
    pytest.importorskip("imagecodecs")
    rows = {c.name: c for c in gpudcm.capabilities("cpu")}
    assert rows["RLE Lossless"].reason.startswith("CPU backends, fastest first: imagecodecs-dicomrle")
    assert "pydicom" in rows["RLE Lossless"].reason
    assert rows["JPEG-LS Lossless Image Compression"].available


def test_decode_batch_uses_all_cores_only_for_gil_free_codecs():
    from gpudcm.api import _cpu_workers

    rle = next(p for p in FILES if p.name == "MR_small_RLE.dcm")
    colour_lossy = next(p for p in FILES if p.name == "SC_rgb_jpeg_lossy_gdcm.dcm")
    with gpudcm.open_pixels(str(rle)) as r, gpudcm.open_pixels(str(colour_lossy)) as c:
        assert _cpu_workers(r) == codecs.default_threads()
        assert _cpu_workers(c) == 1
    got = gpudcm.decode_batch([str(rle), str(colour_lossy)], device="cpu", workers=2)
    np.testing.assert_array_equal(got[0], reference(rle))


@pytest.mark.parametrize("interleave", [0, 1, 2])
def test_jpegls_colour_by_plane_and_by_pixel(interleave):
    """CharLS through imagecodecs returns (rows, cols, samples) for every interleave mode, as pydicom does."""
    jpeg_ls = pytest.importorskip("jpeg_ls")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    rgb = np.random.default_rng(interleave).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    src = np.ascontiguousarray(rgb.transpose(2, 0, 1)) if interleave == 0 else rgb  # pyjpegls wants planes for ILV 0
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 24, 40, 3, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = "RGB"
    ds.PixelData = encapsulate([bytes(jpeg_ls.encode_array(src, interleave_mode=interleave))])
    ds["PixelData"].VR = "OB"
    spec = pixel_spec(ds)
    (extent,) = frame_extents(spec, ds.PixelData)
    got = codecs.decode_frame(spec, frame_bytes(ds.PixelData, extent))
    np.testing.assert_array_equal(got, rgb)
    from pydicom.pixels import pixel_array as pydicom_pixel_array

    np.testing.assert_array_equal(got, pydicom_pixel_array(ds))


def test_thread_map_keeps_order_raises_the_first_failure_and_nests():
    """The caller works with the pool (items taken in turn): results in input order, the error of the
    first failing item, and a thread_map inside a pool thread finishes (helpers not started are cancelled
    and the caller does their share, where waiting on them would deadlock a full pool)."""
    import threading

    from gpudcm.codecs import thread_map

    assert thread_map(lambda x: x * x, list(range(50)), 2) == [x * x for x in range(50)]

    def fails(x):
        if x in (7, 30):
            raise ValueError(f"item {x}")
        return x

    with pytest.raises(ValueError, match="item 7"):
        thread_map(fails, list(range(50)), 2)
    result = []
    worker = threading.Thread(target=lambda: result.append(
        thread_map(lambda x: sum(thread_map(lambda y: y, list(range(x)), 2)), list(range(20)), 2)))
    worker.start()
    worker.join(60)  # a deadlock would never finish; this is no timing of speed
    assert result == [[sum(range(x)) for x in range(20)]]
