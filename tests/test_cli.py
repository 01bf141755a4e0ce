"""The command line: info, decode (with --demo), capabilities."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

from gpudcm.cli import demo_files, main

CT = get_testdata_file("CT_small.dcm")
BAD = get_testdata_file("MR_truncated.dcm")


def test_info_prints_spec_and_backend(capsys):
    assert main(["info", CT, "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "CT_small.dcm" in out and "1x128x128x1" in out and "16/16s" in out and "int16" in out and "cpu-plugin" in out


def test_info_reports_bad_files(capsys):
    assert main(["info", CT, BAD]) == 1
    assert "error:" in capsys.readouterr().out


def test_decode_writes_arrays_and_summary(tmp_path, capsys):
    rle = get_testdata_file("emri_small_RLE.dcm")
    assert main(["decode", CT, rle, "--out", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "RLE Lossless" in out and "Explicit VR Little Endian" in out and "total" in out
    np.testing.assert_array_equal(np.load(tmp_path / "emri_small_RLE.npy"), pydicom_pixel_array(rle))


def test_decode_fails_with_nonzero_exit(capsys):
    assert main(["decode", CT, BAD, "--device", "cpu"]) == 1
    assert "FAILED" in capsys.readouterr().err


def test_demo_set_is_the_pydicom_data_files():
    files = demo_files()
    assert len(files) > 50
    assert all("data_store" in str(f) for f in files)


def test_capabilities_command(capsys):
    assert main(["capabilities", "--device", "cpu"]) == 0
    assert "RLE Lossless" in capsys.readouterr().out


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "gpudcm", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("gpudcm ")
