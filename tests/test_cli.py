"""The command line: info, decode (with --demo), capabilities."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys

import numpy as np
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

from gpudcm.cli import demo_files, main
from gpudcm.jobs import output_names
from gpudcm.progress import Progress

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
    name = output_names([CT, rle])[1]  # the input tree is mirrored below the inputs' common folder
    np.testing.assert_array_equal(np.load(tmp_path / f"{name}.npy"), pydicom_pixel_array(rle))


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


def test_decode_with_threads_and_clashing_names(tmp_path, capsys):
    """--workers N threads; two inputs named alike in two folders: the output mirrors the tree
    (a/img.npy, b/img.npy); the summary counts both."""
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        shutil.copy(get_testdata_file("MR_small_RLE.dcm" if sub == "a" else "CT_small.dcm"), tmp_path / "in" / sub / "img.dcm")
    out = tmp_path / "out"
    assert main(["decode", str(tmp_path / "in"), "--out", str(out), "--workers", "2", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(np.load(out / "a" / "img.npy"), pydicom_pixel_array(get_testdata_file("MR_small_RLE.dcm")))
    np.testing.assert_array_equal(np.load(out / "b" / "img.npy"), pydicom_pixel_array(get_testdata_file("CT_small.dcm")))
    captured = capsys.readouterr()
    assert "2/2 files" in captured.err and "MB/s" in captured.err
    total = next(line for line in captured.out.splitlines() if line.startswith("total")).split()
    assert total[1:3] == ["2", "2"]  # files, frames


def test_decode_series_to_npy(tmp_path):
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    import gpudcm

    uid, rng, expected = generate_uid(), np.random.default_rng(0), {}
    for k, z in enumerate([2.0, 0.0, 1.0]):
        ds = dcmread(get_testdata_file("CT_small.dcm"))
        ds.SeriesInstanceUID, ds.ImagePositionPatient, ds.ImageOrientationPatient = uid, [0, 0, z], [1, 0, 0, 0, 1, 0]
        expected[z] = rng.integers(0, 4000, (128, 128), dtype=np.int16)
        gpudcm.set_pixel_data(ds, expected[z], "MONOCHROME2", 16)
        ds.save_as(tmp_path / f"s{k}.dcm", enforce_file_format=True)
    assert main(["decode", str(tmp_path), "--series", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "out" / f"{uid}.npy"), np.stack([expected[z] for z in (0.0, 1.0, 2.0)]))


def test_scheduler_needs_a_zarr_output(capsys):
    assert main(["decode", CT, "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "--out X.zarr" in capsys.readouterr().err


def test_output_names_are_relative_safe_and_unique():
    names = output_names(["/d/p1/ct/IM 1.dcm", "/d/p1/ct/IM_1", "/d/p2/1.2.840.5", "/d/p2/__x.DCM", "/d/p1/.hidden"])
    assert names == ["p1/ct/IM_1", "p1/ct/IM_1_2", "p2/1.2.840.5", "p2/x__x", "p1/_hidden"]
    assert output_names(["/a/x.dcm", "/b/x.dcm"], flat=True) == ["x", "x_2"]
    assert output_names(["/r/a", "/r/a/b"]) == ["a_2", "a/b"]  # an array may not sit where a folder is
    assert output_names(["/r/A.dcm", "/r/a.dcm"]) == ["A", "a_2"]  # case-insensitive file systems


def test_progress_redraws_only_on_a_terminal_and_always_ends_with_a_line():
    quiet = io.StringIO()
    with Progress(3, stream=quiet, tty=False) as bar:
        for _ in range(3):
            bar.update(2_000_000)
    assert quiet.getvalue().count("\n") == 1 and "\r" not in quiet.getvalue()
    line = quiet.getvalue().strip()
    assert line.startswith("3/3 files") and "files/s" in line and "MB/s" in line

    term = io.StringIO()
    bar = Progress(2, stream=term, tty=True, interval=0)
    bar.update(0, failed=True)
    bar.update(0, skipped=True)
    bar.close()
    text = term.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n")  # two redraws and the final line
    assert "1/2 files, 1 failed" in text and "2/2 files, 1 skipped, 1 failed" in text
    rate = float(re.search(r"([0-9.]+) files/s", text.splitlines()[-1].split("\r")[-1]).group(1))
    assert rate > 0  # the skipped file is not counted, the failed one is
