"""gpudcm convert / gpudcm.convert: re-encoded files decode (pydicom) to the source's pixels, carry the
asked transfer syntax, and DCMTK reads them (dcmdump; dcmdrle decodes the RLE ones)."""

from __future__ import annotations

import shutil
import subprocess
import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from gpudcm.cli import main
from gpudcm.convert import convert_file

SOURCES = {  # file: Photometric Interpretation written (explicit, rle)
    "CT_small.dcm": ("MONOCHROME2", "MONOCHROME2"),
    "MR_small_bigendian.dcm": ("MONOCHROME2", "MONOCHROME2"),
    "emri_small_RLE.dcm": ("MONOCHROME2", "MONOCHROME2"),  # 10 frames
    "SC_rgb_small_odd.dcm": ("RGB", "RGB"),
    "SC_ybr_full_422_uncompressed.dcm": ("YBR_FULL_422", "YBR_FULL"),  # stored YBR kept; RLE has no 422
    "SC_rgb_jpeg_dcmtk.dcm": ("RGB", "RGB"),  # JPEG YBR_FULL: decoded to RGB as pydicom does
    "examples_palette.dcm": ("PALETTE COLOR", "PALETTE COLOR"),
    "rtdose.dcm": ("MONOCHROME2", "MONOCHROME2"),  # 32-bit, 15 frames
    "liver_1frame.dcm": ("MONOCHROME2", "MONOCHROME2"),  # 1-bit
    "image_dfl.dcm": ("MONOCHROME2", "MONOCHROME2"),  # deflated
    "JPEG2000.dcm": ("MONOCHROME2", "MONOCHROME2"),
    "SC_rgb_rle_32bit.dcm": ("RGB", "RGB"),
}
SYNTAXES = {"explicit": ExplicitVRLittleEndian, "rle": RLELossless}


def _pixels(path, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom_pixel_array(str(path), **kwargs)
        except Exception:  # the path reader does not take deflated files
            return pydicom_pixel_array(dcmread(path), **kwargs)


def _dcmtk(tool: str) -> str:
    exe = shutil.which(tool)
    if exe is None:
        pytest.skip(f"DCMTK's {tool} is not installed (apt-get install dcmtk)")
    return exe


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on rtdose's invalid UIDs
@pytest.mark.parametrize("syntax", sorted(SYNTAXES))
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_converted_file_decodes_to_the_source_pixels(name, syntax, tmp_path):
    src = get_testdata_file(name)
    dst = tmp_path / "out.dcm"
    outcome = convert_file(src, dst, syntax)
    assert outcome.status == "done", outcome.message
    before, after = dcmread(src), dcmread(dst)
    assert after.file_meta.TransferSyntaxUID == SYNTAXES[syntax]
    assert after.PhotometricInterpretation == SOURCES[name][syntax == "rle"]
    assert after.get("BitsStored") == before.get("BitsStored")
    assert after.SOPInstanceUID == before.SOPInstanceUID  # a lossless re-encoding is the same instance
    ref = _pixels(src)
    np.testing.assert_array_equal(_pixels(dst), ref)
    if not before.file_meta.TransferSyntaxUID.is_encapsulated or before.file_meta.TransferSyntaxUID == RLELossless:
        np.testing.assert_array_equal(_pixels(dst, raw=True), _pixels(src, raw=True))  # stored values exact
    dump = subprocess.run([_dcmtk("dcmdump"), "-q", str(dst)], capture_output=True)
    assert dump.returncode == 0 and b"E:" not in dump.stderr, dump.stderr
    if syntax == "rle":  # an independent RLE decoder
        plain = tmp_path / "dcmtk.dcm"
        run = subprocess.run([_dcmtk("dcmdrle"), str(dst), str(plain)], capture_output=True)
        assert run.returncode == 0, run.stderr
        np.testing.assert_array_equal(_pixels(plain), ref)


def test_new_uid_option(tmp_path):
    src = get_testdata_file("CT_small.dcm")
    assert convert_file(src, tmp_path / "a.dcm", "rle", new_uid=True).status == "done"
    ds = dcmread(tmp_path / "a.dcm")
    assert ds.SOPInstanceUID != dcmread(src).SOPInstanceUID == dcmread(src).file_meta.MediaStorageSOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_cli_converts_a_folder_and_fails_on_the_bad_file(tmp_path, capsys):
    src = tmp_path / "in"
    for sub, name in (("x", "CT_small.dcm"), ("y", "SC_rgb_small_odd.dcm"), ("y", "MR_truncated.dcm")):
        (src / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(get_testdata_file(name), src / sub / name)
    assert main(["convert", str(src), str(tmp_path / "out"), "--transfer-syntax", "rle"]) == 1
    captured = capsys.readouterr()
    assert f"FAILED {src / 'y' / 'MR_truncated.dcm'}" in captured.err
    assert "3/3 files, 1 failed" in captured.err and "Explicit VR Little Endian" in captured.out
    for rel in ("x/CT_small.dcm", "y/SC_rgb_small_odd.dcm"):
        assert dcmread(tmp_path / "out" / rel).file_meta.TransferSyntaxUID == RLELossless
        np.testing.assert_array_equal(_pixels(tmp_path / "out" / rel), _pixels(src / rel))
    assert not (tmp_path / "out" / "y" / "MR_truncated.dcm").exists()


def test_cli_converts_a_file_into_a_folder_and_refuses_to_overwrite_its_input(tmp_path, capsys):
    src = tmp_path / "ct.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), src)
    (tmp_path / "out").mkdir()
    assert main(["convert", str(src), str(tmp_path / "out")]) == 0
    assert dcmread(tmp_path / "out" / "ct.dcm").file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert main(["convert", str(src), str(src), "--transfer-syntax", "rle"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert dcmread(src).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian  # untouched
