"""Public API behaviour: devices, sources, batches, capabilities."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from gpudcm.cuda import runtime

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")
RLE = get_testdata_file("emri_small_RLE.dcm")


def test_auto_is_cpu_without_cuda():
    if runtime.cuda_status()[0]:
        pytest.skip("a CUDA device is present")
    assert runtime.resolve_device("auto") == "cpu"
    assert isinstance(gpudcm.pixel_array(CT), np.ndarray)


def test_cuda_without_device_raises_with_reason():
    if runtime.cuda_status()[0]:
        pytest.skip("a CUDA device is present")
    with pytest.raises(gpudcm.DeviceUnavailable, match="CUDA is unavailable: "):
        gpudcm.pixel_array(CT, device="cuda")
    with pytest.raises(gpudcm.DeviceUnavailable):
        gpudcm.decode_batch([CT], device="cuda:0")


def test_unknown_device():
    with pytest.raises(gpudcm.DeviceUnavailable, match="unknown device 'tpu'"):
        gpudcm.pixel_array(CT, device="tpu")


def test_errors_are_value_errors():
    for cls in (gpudcm.InvalidPixelData, gpudcm.UnsupportedTransferSyntax, gpudcm.DeviceUnavailable, gpudcm.DecodeError):
        assert issubclass(cls, gpudcm.GpudcmError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("kind", ["str", "path", "file", "bytes", "dataset"])
def test_every_source_kind(kind):
    ref = pydicom_pixel_array(CT)
    src = {
        "str": CT,
        "path": Path(CT),
        "file": open(CT, "rb"),
        "bytes": Path(CT).read_bytes(),
        "dataset": dcmread(CT),
    }[kind]
    np.testing.assert_array_equal(gpudcm.pixel_array(src, device="cpu"), ref)


def test_decode_batch_keeps_order_and_equals_pydicom():
    paths = [CT, MR, RLE, CT] * 3
    out = gpudcm.decode_batch(paths, device="cpu", workers=2)
    assert len(out) == len(paths)
    for p, arr in zip(paths, out):
        np.testing.assert_array_equal(arr, pydicom_pixel_array(p))


def test_decode_batch_stack():
    with pytest.raises(gpudcm.GpudcmError, match=r"cannot stack: .*CT_small.dcm is \(128, 128\) int16 but .*MR_small.dcm is \(64, 64\)"):
        gpudcm.decode_batch([CT, MR], device="cpu", stack=True, workers=2)
    same = gpudcm.decode_batch([CT, CT, CT], device="cpu", stack=True)
    assert same.shape == (3, 128, 128)
    np.testing.assert_array_equal(same[1], pydicom_pixel_array(CT))


def test_decode_batch_on_error_return():
    bad = get_testdata_file("MR_truncated.dcm")
    with pytest.raises(gpudcm.InvalidPixelData):
        gpudcm.decode_batch([CT, bad], device="cpu")
    out = gpudcm.decode_batch([CT, bad], device="cpu", on_error="return")
    assert isinstance(out[0], np.ndarray) and isinstance(out[1], gpudcm.InvalidPixelData)
    with pytest.raises(ValueError, match="on_error"):
        gpudcm.decode_batch([CT], on_error="ignore")


def test_decode_batch_index():
    out = gpudcm.decode_batch([RLE, RLE], device="cpu", index=3)
    np.testing.assert_array_equal(out[1], pydicom_pixel_array(RLE, index=3))


def test_index_validation():
    with pytest.raises(gpudcm.InvalidPixelData, match="frame index 1 is out of range for 1 frame"):
        gpudcm.pixel_array(CT, index=1, device="cpu")
    with pytest.raises(gpudcm.InvalidPixelData, match="must be an int"):
        gpudcm.pixel_array(CT, index="0", device="cpu")
    with pytest.raises(gpudcm.InvalidPixelData, match="out of range"):
        list(gpudcm.iter_frames(RLE, indices=[-11], device="cpu"))


def test_capabilities_table():
    rows = gpudcm.capabilities()
    devices = {r.device for r in rows}
    assert devices == {"cpu", "cuda"}
    by = {(r.device, str(r.transfer_syntax)): r for r in rows}
    assert by[("cpu", "1.2.840.10008.1.2.1")].backend == "cpu-plugin"
    assert by[("cuda", "1.2.840.10008.1.2.1")].backend == "kernel"
    assert by[("cuda", "1.2.840.10008.1.2.5")].backend == "kernel"
    from gpudcm.routing import detect_env

    assert by[("cuda", "1.2.840.10008.1.2.4.50")].backend == ("nvjpeg" if detect_env().nvjpeg else "cpu-plugin")
    assert by[("cuda", "1.2.840.10008.1.2.4.80")].backend == "cpu-plugin"  # JPEG-LS has no GPU decoder
    for r in rows:
        assert r.backend in gpudcm.capabilities.__globals__["BACKENDS"]
        assert r.reason
    if not runtime.cuda_status()[0]:
        assert not by[("cuda", "1.2.840.10008.1.2.1")].available
        assert "CUDA" in by[("cuda", "1.2.840.10008.1.2.1")].reason or "CuPy" in by[("cuda", "1.2.840.10008.1.2.1")].reason


def test_capabilities_report_missing_plugins(monkeypatch):
    from pydicom.pixels import get_decoder

    from gpudcm.codecs import imagecodecs_codecs

    decoder = get_decoder("1.2.840.10008.1.2.4.50")
    monkeypatch.setattr(type(decoder), "is_available", property(lambda self: False))
    monkeypatch.setattr(imagecodecs_codecs, "_codec", lambda name: None)  # no imagecodecs either
    rows = {str(r.transfer_syntax): r for r in gpudcm.capabilities("cpu")}
    assert rows["1.2.840.10008.1.2.4.50"].backend == "unsupported"
    assert "gpudcm[codecs]" in rows["1.2.840.10008.1.2.4.50"].reason
    with pytest.raises(gpudcm.UnsupportedTransferSyntax, match="no CPU plugin is installed"):
        gpudcm.pixel_array(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"), device="cpu")


def test_backend_for_native_colour_on_cuda():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(get_testdata_file("SC_ybr_full_uncompressed.dcm"))
    spec = gpudcm.pixel_spec(ds)
    cap = gpudcm.backend_for(spec, "cuda")
    assert cap.backend == "kernel" and "colour" in cap.reason
    assert gpudcm.backend_for(spec, "cuda", raw=True).backend == "kernel"
    assert gpudcm.backend_for(spec, "cpu").backend == "cpu-plugin"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelData = ds.PixelData * 2
    spec16 = gpudcm.pixel_spec(ds)
    assert gpudcm.backend_for(spec16, "cuda").backend == "cpu-plugin"  # pydicom refuses 16-bit YBR -> RGB


def test_file_like_position_is_irrelevant():
    f = io.BytesIO(Path(CT).read_bytes())
    f.seek(100)
    np.testing.assert_array_equal(gpudcm.pixel_array(f, device="cpu"), pydicom_pixel_array(CT))


def test_return_info_on_cpu():
    out, infos = gpudcm.decode_batch([CT, RLE], device="cpu", return_info=True)
    assert len(out) == 2
    assert [(Path(i.source).name, i.frame) for i in infos] == [("CT_small.dcm", 0)] + [("emri_small_RLE.dcm", f) for f in range(10)]
    assert {i.backend for i in infos} == {"cpu-plugin"}
