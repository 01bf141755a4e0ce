"""gpudcm.render / contact_sheet / show / ``gpudcm show``.

The truth for render is pydicom's own chain (``apply_modality_lut`` -> ``apply_voi_lut`` / ``apply_windowing``
-> ``apply_presentation_lut``, ``apply_color_lut``, the default YBR -> RGB decode) followed by the uint8
mapping of the viewing module's docstring, written again here. The CuPy code path (the generic transforms
and the same arithmetic) runs with NumPy through ``generic_ops``; real CuPy runs in the ``gpu`` tests.
Downscaling is checked against reshape-mean and exact rational area averages, contact sheets tile by tile,
the CLI's PNG pixel for pixel after reading it back with Pillow.
"""

from __future__ import annotations

import copy
import shlex
import warnings
from fractions import Fraction
from functools import lru_cache
from math import floor
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import processing as pd
from pydicom.sequence import Sequence

import gpudcm
from corpus import corpus_files, corpus_id
from gpudcm import viewing
from gpudcm.cli import main as cli_main
from gpudcm.errors import InvalidPixelData

ROOT = Path(__file__).resolve().parent.parent
# The README's example: this command made docs/images/ct_693_brain.png.
README_COMMAND = "gpudcm show {path} --out {out}"
README_IMAGE = ROOT / "docs" / "images" / "ct_693_brain.png"


@lru_cache(maxsize=None)
def path_of(name: str) -> str:
    if "/" in name:
        return str(next(p for p in corpus_files() if corpus_id(p) == name))
    return get_testdata_file(name)


@lru_cache(maxsize=None)
def _read(name: str) -> Dataset:
    return dcmread(path_of(name))


def read(name: str) -> Dataset:
    return copy.deepcopy(_read(name))


# ---------------------------------------------------------------------------------------------------
# The reference: pydicom's chain + the documented uint8 mapping


def to_u8(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi == lo:
        return np.zeros(v.shape, np.uint8)
    return np.floor(np.clip((v.astype(np.float64) - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)


def window_range(ds: Dataset) -> tuple[float, float]:
    """PS3.3 C.11.2.1.2's output range as pydicom uses it: the stored (or Modality LUT) range, rescaled."""
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0, 2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1
    elif ds.PixelRepresentation == 0:
        lo, hi = 0, 2**ds.BitsStored - 1
    else:
        lo, hi = -(2 ** (ds.BitsStored - 1)), 2 ** (ds.BitsStored - 1) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        lo, hi = lo * float(ds.RescaleSlope) + float(ds.RescaleIntercept), hi * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return float(lo), float(hi)


def frame_of(ds: Dataset, frame: int | None) -> np.ndarray:
    arr = ds.pixel_array
    return arr[frame or 0] if int(ds.get("NumberOfFrames") or 1) > 1 else arr


def reference(ds: Dataset, frame: int | None = None, window="auto") -> np.ndarray:
    arr = frame_of(ds, frame)
    pi = ds.PhotometricInterpretation
    if pi == "PALETTE COLOR":
        rgb = pd.apply_color_lut(arr, ds)[..., :3]
        return rgb if rgb.dtype == np.uint8 else to_u8(rgb, 0, 65535)
    if pi not in ("MONOCHROME1", "MONOCHROME2"):  # decoded to RGB by pydicom
        return arr if arr.dtype == np.uint8 else to_u8(arr, 0, 2**ds.BitsStored - 1)
    v = pd.apply_modality_lut(arr, ds)
    if window == "auto":
        window = 0 if (ds.get("VOILUTSequence") or "WindowCenter" in ds) else None
    if isinstance(window, int):
        with warnings.catch_warnings():  # pydicom warns about a VOI LUT on rescaled (float) values
            warnings.simplefilter("ignore")
            v = pd.apply_voi_lut(v, ds, window)
        lo, hi = (0.0, 2.0 ** ds.VOILUTSequence[window].LUTDescriptor[2] - 1) if ds.get("VOILUTSequence") else window_range(ds)
    elif window is not None:
        wds = Dataset()
        wds.PhotometricInterpretation, wds.BitsStored, wds.PixelRepresentation = "MONOCHROME2", 8, 0
        wds.WindowCenter, wds.WindowWidth = window
        v, lo, hi = pd.apply_windowing(v, wds), 0.0, 255.0
    else:
        lo, hi = float(v.min()), float(v.max())
    if ds.get("PresentationLUTSequence"):
        return to_u8(pd.apply_presentation_lut(v, ds), 0, 2 ** ds.PresentationLUTSequence[0].LUTDescriptor[2] - 1)
    u8 = to_u8(v, lo, hi)
    if pi == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "")).strip() == "INVERSE":
        u8 = 255 - u8
    return u8


def assert_render(ds: Dataset, frame=None, window="auto", want_voi: str = "", ref_ds: Dataset | None = None) -> None:
    """render (public: pydicom's transforms) and the CuPy code path run with NumPy both equal the reference
    (pydicom's chain on `ref_ds`, default `ds`)."""
    want = reference(ref_ds or ds, frame, window)
    got = gpudcm.render(ds, frame=frame, window=window)
    assert got.dtype == np.uint8 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    np.testing.assert_array_equal(got, want)
    generic, info = viewing._render(ds, None, frame=frame, window=window, size=None, device="cpu",
                                    ops=viewing.generic_ops(np))
    np.testing.assert_array_equal(generic, want)
    assert want_voi in info.window, info.window
    assert np.unique(want).size > 2  # a picture, not a constant


# ---------------------------------------------------------------------------------------------------
# render against pydicom's chain

CASES = [
    # (file, frame, window, words expected in the VOI description)
    ("vlut_04.dcm", None, "auto", "VOI LUT 0"),  # VOI LUT Sequence (16-bit entries)
    ("examples_overlay.dcm", None, "auto", "C 450 W 790"),  # first of two windows
    ("examples_overlay.dcm", None, 1, "C 200 W 443"),  # the second one, asked for
    ("MR-SIEMENS-DICOM-WithOverlays.dcm", None, 1, "C "),
    ("693_UNCR.dcm", None, "auto", "C 40 W 100"),  # CT: rescale + window
    ("693_UNCR.dcm", None, (400, 1500), "C 400 W 1500"),  # a window of our own
    ("693_UNCR.dcm", None, None, "min/max"),
    ("CT_small.dcm", None, "auto", "min/max"),  # no window in the file
    ("mlut_18.dcm", None, "auto", "min/max"),  # Modality LUT Sequence
    ("mlut_18.dcm", None, (2000, 3000), "C 2000 W 3000"),
    ("RG3_UNCR.dcm", None, "auto", "inverted"),  # MONOCHROME1
    ("CR1/6154", None, "auto", "inverted"),  # MONOCHROME1 with rescale
    ("emri_small.dcm", 7, "auto", "min/max"),  # multi-frame, Presentation LUT Shape IDENTITY
    ("examples_palette.dcm", None, "auto", "PALETTE COLOR"),  # 8-bit palette
    ("gdcm-US-ALOKA-16.dcm", None, "auto", "PALETTE COLOR"),  # 16-bit palette
    ("OBXXXX1A_2frame.dcm", 1, "auto", "PALETTE COLOR"),
    ("SC_ybr_full_uncompressed.dcm", None, "auto", "YBR_FULL"),
    ("SC_ybr_full_422_uncompressed.dcm", None, "auto", "YBR_FULL_422"),
    ("SC_rgb_jpeg_dcmtk.dcm", None, "auto", "YBR_FULL"),  # JPEG baseline in YBR
    ("examples_ybr_color.dcm", 5, "auto", "YBR_FULL_422"),
    ("SC_rgb_16bit.dcm", None, "auto", "RGB"),
    ("US1_J2KR.dcm", None, "auto", "YBR_RCT"),
]


@pytest.mark.parametrize("name,frame,window,voi", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_render_equals_pydicom_chain(name, frame, window, voi):
    assert_render(read(name), frame, window, voi)


def test_multiframe_default_is_frame_0():
    ds = read("emri_small.dcm")
    np.testing.assert_array_equal(gpudcm.render(ds), reference(ds, 0))
    assert not np.array_equal(gpudcm.render(ds, frame=9), gpudcm.render(ds))
    np.testing.assert_array_equal(gpudcm.render(ds, frame=9), reference(ds, 9))
    np.testing.assert_array_equal(gpudcm.render(path_of("CT_small.dcm"), frame=0), reference(read("CT_small.dcm")))


def test_array_input_with_dataset_equals_source():
    ds = read("693_UNCR.dcm")
    arr = gpudcm.pixel_array(ds, device="cpu")
    np.testing.assert_array_equal(gpudcm.render(arr, ds), gpudcm.render(ds))
    frames = gpudcm.pixel_array(path_of("emri_small.dcm"), device="cpu")
    np.testing.assert_array_equal(gpudcm.render(frames, read("emri_small.dcm"), frame=3), reference(read("emri_small.dcm"), 3))
    # no dataset: min/max of the values, three samples are RGB
    np.testing.assert_array_equal(gpudcm.render(arr), to_u8(arr, float(arr.min()), float(arr.max())))
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    np.testing.assert_array_equal(gpudcm.render(rgb), rgb)


def flat_shared() -> Dataset:
    """eCT_Supplemental with its shared rescale and window copied to the top level (what pydicom reads)."""
    flat = read("eCT_Supplemental.dcm")
    shared = flat.SharedFunctionalGroupsSequence[0]
    flat.RescaleSlope = shared.PixelValueTransformationSequence[0].RescaleSlope
    flat.RescaleIntercept = shared.PixelValueTransformationSequence[0].RescaleIntercept
    flat.WindowCenter = shared.FrameVOILUTSequence[0].WindowCenter
    flat.WindowWidth = shared.FrameVOILUTSequence[0].WindowWidth
    return flat


def test_enhanced_frame_uses_functional_groups():
    """eCT_Supplemental keeps rescale and window in the Shared Functional Groups; a per-frame window wins."""
    ds = read("eCT_Supplemental.dcm")
    flat = flat_shared()
    assert_render(ds, 1, "auto", "C 49 W 102", ref_ds=flat)

    item = Dataset()
    item.WindowCenter, item.WindowWidth = 300, 1200
    ds.PerFrameFunctionalGroupsSequence[1].FrameVOILUTSequence = Sequence([item])
    flat.WindowCenter, flat.WindowWidth = 300, 1200
    assert_render(ds, 1, "auto", "C 300 W 1200", ref_ds=flat)
    np.testing.assert_array_equal(gpudcm.render(ds, frame=0), reference(flat_shared(), 0))


# --- presentation: inverted exactly once


@pytest.mark.parametrize("pi,shape,inverted", [
    ("MONOCHROME2", None, False), ("MONOCHROME2", "IDENTITY", False), ("MONOCHROME2", "INVERSE", True),
    ("MONOCHROME1", None, True), ("MONOCHROME1", "INVERSE", True), ("MONOCHROME1", "IDENTITY", True),
])
def test_inversion_once(pi, shape, inverted):
    ds = read("693_UNCR.dcm")
    plain = gpudcm.render(ds)
    ds.PhotometricInterpretation = pi
    if shape:
        ds.PresentationLUTShape = shape
    got = gpudcm.render(ds)
    np.testing.assert_array_equal(got, 255 - plain if inverted else plain)
    assert_render(ds, None, "auto", "inverted" if inverted else "C 40")


def test_presentation_lut_sequence():
    ds = read("693_UNCR.dcm")
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 12]
    item.add_new("LUTData", "US", [int(4095 * (i / 4095) ** 0.5) for i in range(4096)])  # a gamma curve
    ds.PresentationLUTSequence = Sequence([item])
    ds.PhotometricInterpretation = "MONOCHROME1"  # the LUT yields P-values: no further inversion
    assert_render(ds, None, "auto", "Presentation LUT")
    assert_render(ds, None, None, "Presentation LUT")


def test_sigmoid_window():
    ds = read("693_UNCR.dcm")
    ds.VOILUTFunction = "SIGMOID"
    assert_render(ds, None, "auto", "SIGMOID")


# --- the uint8 mapping itself, from first principles


def test_mapping_endpoints_and_rounding():
    """A LINEAR window C 100 W 101 over 8-bit data: v <= 49.5 - 50 -> 0, v > 149.5 -> 255, linear between,
    rounded half up."""
    ds = Dataset()
    ds.PhotometricInterpretation, ds.BitsStored, ds.PixelRepresentation = "MONOCHROME2", 8, 0
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    got = gpudcm.render(arr, ds, window=(100, 101)).reshape(-1)
    want = [0 if x <= 49.5 else 255 if x > 149.5 else floor(Fraction(x) * Fraction(255, 100) - Fraction(255 * 99, 200) + Fraction(1, 2))
            for x in range(256)]
    assert got.tolist() == want
    flat = gpudcm.render(np.full((3, 3), 7, np.uint16))  # max == min: all 0
    assert flat.tolist() == [[0] * 3] * 3


# ---------------------------------------------------------------------------------------------------
# Downscaling


def test_downscale_integer_factor_is_box_mean():
    ds = read("693_UNCR.dcm")
    full = gpudcm.render(ds).astype(np.int64)
    got = gpudcm.render(ds, size=(128, 64))
    sums = full.reshape(128, 4, 64, 8).sum(axis=(1, 3))
    np.testing.assert_array_equal(got, (2 * sums + 32) // 64)  # mean of 32 rounded half up
    got = gpudcm.render(read("SC_rgb_jpeg_dcmtk.dcm"), size=50)
    full = reference(read("SC_rgb_jpeg_dcmtk.dcm")).astype(np.int64)
    np.testing.assert_array_equal(got, (2 * full.reshape(50, 2, 50, 2, 3).sum(axis=(1, 3)) + 4) // 8)


def area_reference(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Exact area average: output pixel (i, j) covers [i R/h, (i+1) R/h) x [j C/w, (j+1) C/w) of the source."""
    rows, cols = img.shape[:2]
    out = np.zeros((h, w) + img.shape[2:], np.uint8)

    def weights(n_in, n_out, i):
        lo, hi = Fraction(i * n_in, n_out), Fraction((i + 1) * n_in, n_out)
        return [(k, min(hi, k + 1) - max(lo, k)) for k in range(floor(lo), min(n_in, floor(hi) + 1)) if min(hi, k + 1) > max(lo, k)]

    for i in range(h):
        for j in range(w):
            acc = [Fraction(0)] * (img[0, 0].size)
            for r, wr in weights(rows, h, i):
                for c, wc in weights(cols, w, j):
                    for ch, val in enumerate(np.atleast_1d(img[r, c])):
                        acc[ch] += wr * wc * int(val)
            area = Fraction(rows, h) * Fraction(cols, w)
            out[i, j] = [floor(a / area + Fraction(1, 2)) for a in acc] if img.ndim == 3 else floor(acc[0] / area + Fraction(1, 2))
    return out


@pytest.mark.parametrize("h,w", [(7, 5), (3, 11), (16, 16), (20, 9)])
def test_downscale_non_integer_is_exact_area_average(h, w):
    rng = np.random.default_rng(h * 100 + w)
    grey = rng.integers(0, 256, (23, 17), dtype=np.uint8)
    np.testing.assert_array_equal(viewing.area_downscale(np, grey, h, w), area_reference(grey, h, w))
    rgb = rng.integers(0, 256, (23, 17, 3), dtype=np.uint8)
    np.testing.assert_array_equal(viewing.area_downscale(np, rgb, h, w), area_reference(rgb, h, w))


def test_size_int_bounds_the_longer_side():
    img = gpudcm.render(path_of("JPEG2000_UNC.dcm"), size=100)  # 1024 x 256
    assert img.shape == (100, 25)
    assert gpudcm.render(path_of("CT_small.dcm"), size=500).shape == (128, 128)  # never upscaled
    assert gpudcm.render(path_of("examples_palette.dcm"), size=255).shape == (112, 255, 3)  # 350 x 800: 111.56 -> 112


def test_bad_arguments():
    ds = read("examples_overlay.dcm")
    with pytest.raises(InvalidPixelData, match="window 2 requested, the file has 2"):
        gpudcm.render(ds, window=2)
    with pytest.raises(InvalidPixelData, match="VOI LUT 1 requested"):
        gpudcm.render(read("vlut_04.dcm"), window=1)
    with pytest.raises(ValueError, match="window must be"):
        gpudcm.render(ds, window="soft")
    with pytest.raises(ValueError, match="width of at least 1"):
        gpudcm.render(ds, window=(10, 0))
    with pytest.raises(ValueError, match="size must be"):
        gpudcm.render(ds, size=(0, 5))
    with pytest.raises(InvalidPixelData, match="frame index 10 is out of range for 10"):
        gpudcm.render(path_of("emri_small.dcm"), frame=10)
    with pytest.raises(InvalidPixelData, match="frame index -1"):
        gpudcm.render(gpudcm.pixel_array(path_of("emri_small.dcm"), device="cpu"), frame=-1)
    with pytest.raises(InvalidPixelData, match="frame index 1 is out of range for 1"):
        gpudcm.render(path_of("CT_small.dcm"), frame=1)
    with pytest.raises(InvalidPixelData, match="windows apply to MONOCHROME1/2"):
        gpudcm.render(read("SC_rgb_16bit.dcm"), window=(100, 50))
    pal = read("examples_palette.dcm")
    with pytest.raises(InvalidPixelData, match="PALETTE COLOR without a palette"):
        gpudcm.render(pal.pixel_array, _pi_only("PALETTE COLOR"))


def _pi_only(pi: str) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = pi
    return ds


# ---------------------------------------------------------------------------------------------------
# Contact sheets


def test_label_font():
    """"10" at scale 1: a one-pixel margin, the 3 x 5 glyphs of 1 and 0, one blank column between."""
    want = ["000000000",
            "001001110",
            "011001010",
            "001001010",
            "001001010",
            "011101110",
            "000000000"]
    got = viewing.label_mask("10", 1)
    assert ["".join("1" if b else "0" for b in row) for row in got] == want
    np.testing.assert_array_equal(viewing.label_mask("10", 2), np.kron(got, np.ones((2, 2), bool)))


def check_sheet(sheet, tiles, columns: int, size: int) -> None:
    """Tile k (a rendered frame) sits centred in its cell; outside the label box the cell is the tile on
    black; the label box is the label mask in white on black."""
    scale = viewing.label_scale(size)
    rows = -(-len(tiles) // columns)
    assert sheet.shape[:2] == (rows * size, columns * size)
    for pos, (k, tile) in enumerate(tiles):
        top, left = (pos // columns) * size, (pos % columns) * size
        cell = sheet[top : top + size, left : left + size].astype(np.int64)
        want = np.zeros_like(cell)
        h, w = tile.shape[:2]
        y, x = (size - h) // 2, (size - w) // 2
        want[y : y + h, x : x + w] = tile if tile.ndim == cell.ndim else tile[..., None]
        mask = viewing.label_mask(str(k), scale)
        lh, lw = mask.shape
        box = np.zeros(cell.shape[:2], bool)
        box[:lh, :lw] = True
        np.testing.assert_array_equal(cell[~box], want[~box], err_msg=f"tile {k}")
        lit = cell[:lh, :lw] if cell.ndim == 2 else cell[:lh, :lw].min(axis=-1)
        np.testing.assert_array_equal(lit == 255, mask, err_msg=f"label {k}")
        assert set(np.unique(cell[:lh, :lw]).tolist()) <= {0, 255}
    for pos in range(len(tiles), rows * columns):  # empty cells are black
        top, left = (pos // columns) * size, (pos % columns) * size
        assert not sheet[top : top + size, left : left + size].any()


def test_contact_sheet_multiframe_file():
    path = path_of("emri_small.dcm")  # 10 frames of 64 x 64
    sheet = gpudcm.contact_sheet(path, size=32, window=None)  # None: each tile its own min/max ("auto": one range)
    tiles = [(k, gpudcm.render(path, frame=k, size=32)) for k in range(10)]
    for k, t in tiles:  # the tile is the frame's area average by 2
        full = reference(read("emri_small.dcm"), k).astype(np.int64)
        np.testing.assert_array_equal(t, (2 * full.reshape(32, 2, 32, 2).sum(axis=(1, 3)) + 4) // 8)
    check_sheet(sheet, tiles, columns=4, size=32)
    # an even sample, first and last included; 2 columns
    sheet = gpudcm.contact_sheet(path, size=32, max_tiles=4, columns=2, window=None)
    check_sheet(sheet, [(k, gpudcm.render(path, frame=k, size=32)) for k in (0, 3, 6, 9)], columns=2, size=32)
    assert viewing.sample_indices(120, 64)[:3] == [0, 1, 3] and viewing.sample_indices(120, 64)[-1] == 119


def test_contact_sheet_array_and_rgb():
    ds = read("emri_small.dcm")
    frames = gpudcm.pixel_array(path_of("emri_small.dcm"), device="cpu")
    np.testing.assert_array_equal(gpudcm.contact_sheet(frames, ds, size=32), gpudcm.contact_sheet(path_of("emri_small.dcm"), size=32))
    path = path_of("examples_ybr_color.dcm")  # 30 YBR_FULL_422 JPEG frames of 240 x 320
    sheet = gpudcm.contact_sheet(path, size=64, max_tiles=5, columns=3)
    assert sheet.ndim == 3 and sheet.shape == (128, 192, 3)
    ks = viewing.sample_indices(30, 5)
    assert ks == [0, 7, 14, 21, 29]
    check_sheet(sheet, [(k, gpudcm.render(path, frame=k, size=64)) for k in ks], columns=3, size=64)


def test_contact_sheet_series_in_slice_order():
    folder = Path(path_of("CT2/17106")).parent  # four 16 x 16 CT slices
    paths = sorted((str(p) for p in folder.iterdir()), reverse=True)
    from gpudcm.series import group_series

    ordered = [p for s in group_series(paths) for p in s.paths]
    assert len(ordered) == 4
    sheet = gpudcm.contact_sheet(paths, size=16)
    check_sheet(sheet, [(k, gpudcm.render(p)) for k, p in enumerate(ordered)], columns=2, size=16)


# ---------------------------------------------------------------------------------------------------
# CLI and PNG


def read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im)


@pytest.mark.parametrize("args,expect", [
    ([], lambda p: gpudcm.render(p)),
    (["--window", "400", "1500", "--size", "200"], lambda p: gpudcm.render(p, window=(400, 1500), size=200)),
    (["--minmax"], lambda p: gpudcm.render(p, window=None)),
])
def test_cli_png_pixel_for_pixel(tmp_path, args, expect, capsys):
    path = path_of("693_UNCR.dcm")
    out = tmp_path / "x.png"
    assert cli_main(["show", path, "--out", str(out), *args]) == 0
    assert "wrote" in capsys.readouterr().out
    got = read_png(out)
    want = expect(path)
    assert got.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_cli_frame_voi_sheet_rgb(tmp_path):
    out = tmp_path / "a.png"
    assert cli_main(["show", path_of("examples_overlay.dcm"), "--voi", "1", "--out", str(out)]) == 0
    np.testing.assert_array_equal(read_png(out), reference(read("examples_overlay.dcm"), None, 1))
    assert cli_main(["show", path_of("emri_small.dcm"), "--frame", "4", "--out", str(out)]) == 0
    np.testing.assert_array_equal(read_png(out), reference(read("emri_small.dcm"), 4))
    assert cli_main(["show", path_of("emri_small.dcm"), "--sheet", "--size", "32", "--out", str(out)]) == 0
    np.testing.assert_array_equal(read_png(out), gpudcm.contact_sheet(path_of("emri_small.dcm"), size=32))
    assert cli_main(["show", path_of("examples_palette.dcm"), "--out", str(out)]) == 0
    np.testing.assert_array_equal(read_png(out), reference(read("examples_palette.dcm")))
    assert cli_main(["show", path_of("693_UNCR.dcm"), "--voi", "3", "--out", str(out)]) == 2  # error, named


def test_readme_example_is_reproducible(tmp_path):
    """docs/images/ct_693_brain.png is what the README's command writes."""
    if not README_IMAGE.exists():
        pytest.skip("docs/images/ct_693_brain.png is not in this checkout")
    out = tmp_path / "ct.png"
    assert cli_main(shlex.split(README_COMMAND.format(path=path_of("693_J2KR.dcm"), out=out))[1:]) == 0
    np.testing.assert_array_equal(read_png(out), read_png(README_IMAGE))
    np.testing.assert_array_equal(read_png(README_IMAGE), reference(read("693_J2KR.dcm")))


# ---------------------------------------------------------------------------------------------------
# matplotlib


def test_show_aspect_title_and_pixels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = path_of("CT2N/6293")  # Pixel Spacing 0.545455 (rows) \ 0.596847 (columns)
    fig, ax = gpudcm.show(path)
    try:
        im = ax.images[0]
        np.testing.assert_array_equal(np.asarray(im.get_array()), gpudcm.render(path))
        assert im.get_cmap().name == "gray" and im.get_clim() == (0, 255)
        assert ax.get_aspect() == pytest.approx(0.545455 / 0.596847)
        ds = read("CT2N/6293")
        assert f"C {float(ds.WindowCenter):g} W {float(ds.WindowWidth):g}" in ax.get_title()
    finally:
        plt.close(fig)
    fig, axes = plt.subplots(1, 2)
    try:
        f2, ax2 = gpudcm.show(path_of("emri_small.dcm"), frame=2, window=None, ax=axes[1])
        assert f2 is fig and ax2 is axes[1] and "frame 2" in ax2.get_title() and "min/max" in ax2.get_title()
        assert ax2.get_aspect() == 1.0
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------------
# Real CuPy


@pytest.mark.gpu
@pytest.mark.parametrize("name,frame,window,voi", CASES, ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in CASES])
def test_cupy_same_bytes(name, frame, window, voi):
    import cupy

    ds = read(name)
    arr = gpudcm.pixel_array(ds, device="cpu")
    got = gpudcm.render(cupy.asarray(arr), ds, frame=frame, window=window, size=(37, 41))
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got), gpudcm.render(arr, ds, frame=frame, window=window, size=(37, 41)))


@pytest.mark.gpu
def test_cupy_decode_and_sheet():
    import cupy

    path = path_of("emri_small.dcm")
    sheet = gpudcm.contact_sheet(path, size=32, device="cuda")
    assert isinstance(sheet, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(sheet), gpudcm.contact_sheet(path, size=32))
    img = gpudcm.render(path_of("693_J2KR.dcm"), device="cuda")
    np.testing.assert_array_equal(cupy.asnumpy(img), gpudcm.render(path_of("693_J2KR.dcm")))


@pytest.mark.parametrize("base", ["CT_small.dcm", "SC_rgb.dcm", "emri_small_RLE.dcm"])
def test_lying_headers_give_a_picture_or_a_gpudcm_error(base, tmp_path):
    """render and contact_sheet on files whose pixel module lies (tests/malformed.py): a picture equal to
    render of frame 0 as pixel_array decodes it, or a GpudcmError; never a raw ValueError/TypeError
    (a Rows=1 file with excess data once broke the sheet; NumberOfFrames 'abc' raised a raw ValueError)."""
    import malformed

    for case in malformed.header_lies(base):
        path = tmp_path / "case.dcm"
        path.write_bytes(case.data)
        try:
            img = gpudcm.render(str(path))
        except gpudcm.GpudcmError:
            with pytest.raises(gpudcm.GpudcmError):
                gpudcm.contact_sheet(str(path), size=32)
            continue
        frame0 = gpudcm.pixel_array(str(path), index=0, device="cpu")
        assert img.shape[:2] == frame0.shape[:2], case.name
        try:  # the sheet decodes every frame: a later frame may still be refused
            sheet = gpudcm.contact_sheet(str(path), size=32)
        except gpudcm.GpudcmError:
            continue
        assert sheet.dtype == np.uint8 and sheet.shape[0] >= 32, case.name
