"""gpudcm.monai.GpudcmReader against MONAI's own PydicomReader, through LoadImage."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("monai")

from monai.data import PydicomReader  # noqa: E402
from monai.transforms import LoadImage  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402

from gpudcm.monai import GpudcmReader  # noqa: E402
from series_data import random_volume, tilted_orientation, write_series  # noqa: E402

@pytest.fixture(autouse=True, scope="module")
def keep_pydicom_plugins():
    """LoadImage builds every MONAI reader, and NvImgCodecPydicomReader registers nvImageCodec as a pydicom
    decoder plugin (where CUDA and nvImageCodec work): restore pydicom's plugins afterwards, so the tests
    that follow compare against pydicom's own decoders."""
    from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS

    saved = {uid: (dict(dec[0]._available), dict(dec[0]._unavailable)) for uid, dec in _PIXEL_DATA_DECODERS.items()}
    yield
    for uid, (available, unavailable) in saved.items():
        dec = _PIXEL_DATA_DECODERS[uid][0]
        dec._available.clear()
        dec._available.update(available)
        dec._unavailable.clear()
        dec._unavailable.update(unavailable)


KEYS = ("affine", "original_affine", "spatial_shape", "original_channel_dim", "spacing", "space",
        "00200037", "00200032", "00280030", "lastImagePositionPatient", "filename_or_obj")


def _load(reader, src, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LoadImage(reader=reader, image_only=False, **kw)(src)


def _same(src, ours=None, theirs=None, **kw):
    got, got_meta = _load(ours or GpudcmReader(), src, **kw)
    ref, ref_meta = _load(theirs or PydicomReader(), src, **kw)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    np.testing.assert_array_equal(got.numpy(), ref.numpy())
    for key in KEYS:
        assert (key in got_meta) == (key in ref_meta), key
        if key not in ref_meta:
            continue
        a, b = got_meta[key], ref_meta[key]
        if isinstance(b, dict) or isinstance(b, str):
            assert a == b, key
        else:
            np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), err_msg=key)
    assert set(ref_meta) <= set(got_meta) | {"filename_or_obj"}
    return got, got_meta


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm", "emri_small.dcm", "MR_small_RLE.dcm"])
def test_single_files(name):
    _same(get_testdata_file(name))


def test_options_and_channel_stacking():
    ct, mr = get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")
    _same(ct, GpudcmReader(swap_ij=False, affine_lps_to_ras=False), PydicomReader(swap_ij=False, affine_lps_to_ras=False))
    _same(ct, GpudcmReader(prune_metadata=False), PydicomReader(prune_metadata=False))
    img, meta = _same([ct, ct])
    assert img.shape == (2, 128, 128) and meta["original_channel_dim"] == 0
    with pytest.raises(RuntimeError):  # different geometry cannot be channels of one image
        LoadImage(reader=GpudcmReader(), image_only=False)([ct, mr])


def test_series_folder(tmp_path):
    vol = random_volume(6, 8, 5, seed=11)
    write_series(tmp_path, vol, orientation=tilted_orientation(15), rescale=(0.5, -100.0),
                 instance_numbers=[2, 4, 6, 1, 3, 5])
    (tmp_path / "readme.txt").write_text("not DICOM")
    img, meta = _same(str(tmp_path))
    order = np.argsort([2, 4, 6, 1, 3, 5])  # PydicomReader stacks by Instance Number, on the last axis
    expected = vol[order].astype(np.float32) * np.float32(0.5) + np.float32(-100.0)
    np.testing.assert_array_equal(img.numpy(), np.ascontiguousarray(np.moveaxis(expected, 0, -1).swapaxes(0, 1)))
    assert tuple(meta["spatial_shape"]) == (5, 8, 6)


def test_series_folder_without_rescale_keeps_dtype(tmp_path):
    vol = random_volume(4, 6, 6, seed=12)
    write_series(tmp_path, vol)
    img, meta = _same(str(tmp_path), dtype=None)
    assert img.dtype.is_floating_point is False
    np.testing.assert_array_equal(img.numpy(), np.moveaxis(vol, 0, -1).swapaxes(0, 1))


def test_verify_suffix(tmp_path):
    reader = GpudcmReader()
    assert reader.verify_suffix(get_testdata_file("CT_small.dcm")) and reader.verify_suffix(str(tmp_path))
    (tmp_path / "a.nii").write_bytes(b"\0" * 400)
    assert not reader.verify_suffix(str(tmp_path / "a.nii"))


@pytest.mark.gpu
def test_cuda_device_gives_cuda_tensors(tmp_path):
    vol = random_volume(5, 16, 12, seed=13)
    write_series(tmp_path, vol, orientation=tilted_orientation(5), rescale=(1.0, -1024.0))
    got, meta = _load(GpudcmReader(device="cuda"), str(tmp_path))
    ref, ref_meta = _load(PydicomReader(), str(tmp_path))
    assert got.is_cuda
    np.testing.assert_array_equal(got.cpu().numpy(), ref.numpy())
    np.testing.assert_allclose(meta["affine"], ref_meta["affine"])
