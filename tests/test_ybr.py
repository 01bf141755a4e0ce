"""gpudcm.ybr's YBR_FULL -> RGB tables against pydicom's convert_color_space: every one of the 2^24 inputs
at BLAS-block and remainder widths, in place and not, the cases left to pydicom, and the check that
refuses the tables where this machine's BLAS rounds differently."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.pixels.processing import convert_color_space

import gpudcm
from gpudcm import ybr


def _all_inputs(first: int, count: int) -> np.ndarray:
    v = np.arange(first, first + count, dtype=np.uint32)
    return np.stack([(v >> 16).astype(np.uint8), ((v >> 8) & 255).astype(np.uint8), (v & 255).astype(np.uint8)], -1)


@pytest.mark.parametrize("width", [4096, 641, 2])
def test_every_input_equals_pydicom(width):
    assert ybr.refused() is None
    step = 1 << 21
    for first in range(0, 1 << 24, step):
        px = _all_inputs(first, step)
        n = len(px) // width * width
        img = np.ascontiguousarray(px[:n].reshape(-1, width, 3))
        np.testing.assert_array_equal(ybr.to_rgb(img), convert_color_space(img, "YBR_FULL", "RGB"))


def test_in_place_and_into_out():
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (3, 37, 53, 3), dtype=np.uint8)  # frames too
    want = convert_color_space(img, "YBR_FULL", "RGB")
    got = img.copy()
    assert ybr.to_rgb(got, out=got) is got
    np.testing.assert_array_equal(got, want)
    out = np.zeros_like(img)
    assert ybr.to_rgb(img, out=out) is out
    np.testing.assert_array_equal(out, want)


def test_what_is_left_to_pydicom():
    img = np.zeros((4, 4, 3), np.uint8)
    assert ybr.to_rgb(img.astype(np.uint16)) is None  # pydicom's conversion of 16-bit samples
    assert ybr.to_rgb(np.zeros((4, 1, 3), np.uint8)) is None  # one pixel wide: NumPy's unfused gemv there
    assert ybr.to_rgb(img[:, ::2]) is None  # not contiguous
    assert ybr.to_rgb(np.zeros((4, 4, 4), np.uint8)) is None
    assert ybr.to_rgb(img, out=np.zeros((4, 4, 3), np.int16)) is None
    # gpudcm's public conversion gives pydicom's values either way
    for arr in (np.arange(48, dtype=np.uint8).reshape(4, 4, 3), np.arange(12, dtype=np.uint8).reshape(4, 1, 3)):
        np.testing.assert_array_equal(gpudcm.convert_color_space(arr, "YBR_FULL_422", "RGB"),
                                      convert_color_space(arr, "YBR_FULL_422", "RGB"))


def test_tables_that_disagree_with_this_blas_are_refused(monkeypatch):
    monkeypatch.setattr(ybr, "_tables", None)
    monkeypatch.setattr(ybr, "_refused", None)
    real = ybr._build

    def off_by_one():
        red, blue, green = real()
        green = green.copy()
        green[(128 << 16) | (3 << 8) | 250] ^= 1  # one entry wrong: the probe has every (Cb, Cr) at Y = 128
        return red, blue, green

    monkeypatch.setattr(ybr, "_build", off_by_one)
    assert "differ from pydicom's conversion" in ybr.refused()
    img = np.full((2, 2, 3), 9, np.uint8)
    assert ybr.to_rgb(img) is None
    np.testing.assert_array_equal(gpudcm.convert_color_space(img, "YBR_FULL", "RGB"),
                                  convert_color_space(img, "YBR_FULL", "RGB"))


def test_a_ybr_jpeg_through_pydicoms_plugin_keeps_pydicoms_values():
    """YCbCr JPEG decoded by pydicom's plugin: pydicom's colour step done by the tables."""
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "color3d_jpeg_baseline.dcm"):
        path = get_testdata_file(name)
        np.testing.assert_array_equal(gpudcm.pixel_array(path, device="cpu"), pydicom_pixel_array(path))
        np.testing.assert_array_equal(gpudcm.pixel_array(path, device="cpu", as_rgb=False),
                                      pydicom_pixel_array(path, as_rgb=False))
