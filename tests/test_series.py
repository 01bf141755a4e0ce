"""gpudcm.series: grouping, slice order, geometry and stacked values against the volumes written."""

from __future__ import annotations

import os

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless

import gpudcm
from gpudcm.series import Series, group_series, load_volume
from series_data import random_volume, tilted_orientation, write_series


def _check(series: Series, written, volume=None):
    assert series.uid == written.uid
    assert list(series.paths) == written.paths
    assert series.orientation == pytest.approx(written.orientation)
    assert series.origin == pytest.approx(written.origin)
    assert series.spacing == pytest.approx(written.spacing, abs=1e-3)
    expected = written.volume if volume is None else volume
    assert series.shape == expected.shape
    got = load_volume(series, device="cpu")
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_tilted_series_in_shuffled_file_order(tmp_path):
    written = write_series(tmp_path, random_volume(9, 6, 5), orientation=tilted_orientation(25),
                           spacing=(1.25, 0.6, 0.9))
    assert sorted(written.paths) != written.paths  # the names put the files out of order on disk
    [series] = group_series([tmp_path])
    assert series.sorted_by == "position"
    _check(series, written)


def test_two_interleaved_series_and_non_dicom_files(tmp_path):
    a = write_series(tmp_path, random_volume(5, 4, 6, seed=1), prefix="x")
    # instance numbers run against the positions: the positions decide
    b = write_series(tmp_path, random_volume(6, 4, 6, seed=2), prefix="y", orientation=tilted_orientation(-40),
                     origin=(5.0, -3.0, 100.0), instance_numbers=[6, 5, 4, 3, 2, 1])
    (tmp_path / "notes.txt").write_text("not DICOM\n")
    (tmp_path / "x_junk.dcm").write_bytes(os.urandom(300))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "README").write_text("nested folders are walked")
    found = {s.uid: s for s in group_series([tmp_path])}
    assert set(found) == {a.uid, b.uid}
    _check(found[a.uid], a)
    _check(found[b.uid], b)


def test_instance_number_fallback(tmp_path):
    vol = random_volume(5, 3, 4, seed=3)
    numbers = [30, 10, 50, 20, 40]
    written = write_series(tmp_path, vol, position=False, instance_numbers=numbers)
    [series] = group_series(sorted(tmp_path.iterdir()))
    order = np.argsort(numbers)
    assert series.sorted_by == "instance"
    assert list(series.paths) == [written.paths[k] for k in order]
    assert series.orientation is None and series.origin is None
    assert series.spacing == (written.spacing[0], 0.75, 0.8)  # slice spacing from Slice Thickness
    np.testing.assert_array_equal(load_volume(series, device="cpu"), vol[order])


def test_path_order_fallback(tmp_path):
    vol = random_volume(4, 3, 3, seed=4)
    written = write_series(tmp_path, vol, position=False, instance=False, names=["d", "b", "a", "c"])
    [series] = group_series(written.paths)
    assert series.sorted_by == "path"
    order = np.argsort(["d", "b", "a", "c"])
    assert list(series.paths) == [written.paths[k] for k in order]
    np.testing.assert_array_equal(load_volume(series, device="cpu"), vol[order])


def test_rle_series_matches_native(tmp_path):
    written = write_series(tmp_path, random_volume(4, 8, 8, seed=5), transfer_syntax=RLELossless)
    [series] = group_series([tmp_path])
    _check(series, written)


def test_inconsistent_shapes_raise_naming_files(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.1"
    write_series(tmp_path, random_volume(3, 4, 4), uid=uid, prefix="a")
    odd = write_series(tmp_path, random_volume(1, 5, 4), uid=uid, prefix="b", origin=(0.0, 0.0, 99.0))
    [series] = group_series([tmp_path])
    assert len(series) == 4 and series.shape is None
    with pytest.raises(gpudcm.GpudcmError, match=r"cannot stack.*\(4, 4\).*" + os.path.basename(odd.paths[0])):
        load_volume(series, device="cpu")


def test_hand_made_series_and_multiframe_file(tmp_path):
    written = write_series(tmp_path, random_volume(3, 4, 4, seed=6))
    got = load_volume(Series(uid="", paths=tuple(written.paths)), device="cpu")  # shape unknown: headers checked
    np.testing.assert_array_equal(got, written.volume)
    mf = get_testdata_file("emri_small.dcm")  # 10 frames: the frames are the slices
    [series] = group_series([mf])
    assert series.shape == (10, 64, 64)
    np.testing.assert_array_equal(load_volume(series, device="cpu"), gpudcm.pixel_array(mf, device="cpu"))
    [single] = group_series([get_testdata_file("CT_small.dcm")])
    assert single.shape == (1, 128, 128) and single.spacing[1:] == pytest.approx((0.661468, 0.661468))
    np.testing.assert_array_equal(load_volume(single, device="cpu")[0],
                                  gpudcm.pixel_array(single.paths[0], device="cpu"))
    with pytest.raises(gpudcm.GpudcmError, match="no files"):
        load_volume(Series(uid="", paths=()), device="cpu")


@pytest.mark.gpu
def test_load_volume_on_cuda_equals_cpu(tmp_path):
    written = write_series(tmp_path, random_volume(6, 16, 16, seed=7), orientation=tilted_orientation(10))
    [series] = group_series([tmp_path])
    got = load_volume(series, device="cuda:0")
    np.testing.assert_array_equal(got.get(), written.volume)


def test_slices_in_different_planes_fall_back_to_instance_number(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.5"
    axial = write_series(tmp_path, random_volume(2, 4, 4, seed=8), uid=uid, prefix="a", instance_numbers=[3, 1])
    tilted = write_series(tmp_path, random_volume(1, 4, 4, seed=9), uid=uid, prefix="b",
                          orientation=tilted_orientation(60), instance_numbers=[2])
    [series] = group_series([tmp_path])
    assert series.sorted_by == "instance"
    assert list(series.paths) == [axial.paths[1], tilted.paths[0], axial.paths[0]]
