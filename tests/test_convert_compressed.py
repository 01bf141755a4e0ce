"""gpudcm convert to HTJ2K / JPEG 2000 / JPEG-LS, on this machine and through Dask (convert_to_dicom): a
mixed folder converts with its report, outputs decode (pydicom) to the sources' pixels, dcmdump reads them,
a second run resumes, lossy conversion is marked; and the encode benchmark's rows check their own output."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL, JPEG2000Lossless, JPEGLSLossless

from gpudcm.cli import main
from gpudcm.convert import convert_file, target_syntax

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
IMAGES = ["CT_small.dcm", "SC_rgb.dcm", "emri_small.dcm", "MR_small_bigendian.dcm", "SC_rgb_jpeg_dcmtk.dcm",
          "SC_ybr_full_422_uncompressed.dcm"]  # YBR_FULL_422 is written as YBR_FULL
SYNTAX_OF = {"htj2k": HTJ2KLossless, "htj2k-rpcl": HTJ2KLosslessRPCL, "j2k": JPEG2000Lossless, "jpegls": JPEGLSLossless}


def _pixels(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = pydicom_pixel_array(str(path))
    return arr.astype(arr.dtype.newbyteorder("="))


@pytest.fixture
def mixed(tmp_path):
    """A folder of images (one in a sub-folder), a 32-bit dose grid (no 32-bit compressed output), a DICOM
    file without pixel data and a text file."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for name in IMAGES:
        shutil.copy(get_testdata_file(name), src / name)
    shutil.copy(get_testdata_file("MR_small.dcm"), src / "sub" / "MR_small.dcm")
    shutil.copy(get_testdata_file("rtdose.dcm"), src / "sub" / "rtdose.dcm")
    shutil.copy(get_testdata_file("rtplan.dcm"), src / "rtplan.dcm")
    (src / "notes.txt").write_text("not DICOM")
    return src


def _check_outputs(src, out, syntax):
    converted = 0
    for name in [*IMAGES, "sub/MR_small.dcm"]:
        path = out / name
        assert dcmread(path).file_meta.TransferSyntaxUID == syntax
        np.testing.assert_array_equal(_pixels(path), _pixels(src / name))
        if shutil.which("dcmdump"):
            run = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True)
            assert run.returncode == 0 and "E:" not in run.stdout + run.stderr
        converted += 1
    assert not list(out.rglob("*.partial"))
    return converted


@pytest.mark.parametrize("name", sorted(SYNTAX_OF))
def test_cli_converts_a_mixed_folder(name, mixed, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["convert", str(mixed), str(out), "--transfer-syntax", name])
    err = capsys.readouterr().err
    assert status == 1  # the dose grid (32-bit) cannot be compressed; not DICOM / no pixels are reported
    assert _check_outputs(mixed, out, SYNTAX_OF[name]) == 7
    assert "rtdose.dcm" in err and "8 or 16-bit samples" in err
    assert not (out / "sub" / "rtdose.dcm").exists()


def test_dask_convert_report_and_resume(mixed, tmp_path):
    from gpudcm.dask import convert_to_dicom

    out = tmp_path / "out"
    first = convert_to_dicom(mixed, out, "htj2k-rpcl", workers=2, quiet=True)
    assert first.done == 7 and first.skipped == 0
    assert _check_outputs(mixed, out, HTJ2KLosslessRPCL) == 7
    report = json.loads((tmp_path / "out.report.json").read_text())
    assert report["done"] == 7 and report["failed"] == first.failed == len(first.failures) >= 1
    assert any(f["path"].endswith("rtdose.dcm") for f in report["failures"])
    assert (tmp_path / "out.failures.csv").read_text().count("\n") == 1 + first.failed
    assert sorted(n.path.rsplit("/", 1)[-1] for n in first.not_images) == ["notes.txt", "rtplan.dcm"]
    assert (out / "rtplan.dcm").read_bytes() == (mixed / "rtplan.dcm").read_bytes()  # copied unchanged
    again = convert_to_dicom(mixed, out, "htj2k-rpcl", workers=2, quiet=True)
    assert again.done == 0 and again.skipped == 8 and again.failed == first.failed  # 7 images + the copy


def test_lossy_convert_is_marked_and_gets_a_new_uid(tmp_path):
    src = get_testdata_file("CT_small.dcm")
    outcome = convert_file(src, tmp_path / "o.dcm", "htj2k", quality=0.0001)  # Bits Stored 16: a step of ~6.5
    assert outcome.status == "done", outcome.message
    ds, before = dcmread(tmp_path / "o.dcm"), dcmread(src)
    assert ds.file_meta.TransferSyntaxUID == HTJ2K and ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_15444_15" and ds.SOPInstanceUID != before.SOPInstanceUID
    err = np.abs(_pixels(tmp_path / "o.dcm").astype(int) - _pixels(src).astype(int))
    assert 0 < err.mean() < 8


def test_lossy_source_is_marked_lossy(tmp_path):
    src = get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")  # JPEG baseline
    assert convert_file(src, tmp_path / "o.dcm", "htj2k").status == "done"
    assert dcmread(tmp_path / "o.dcm").LossyImageCompression == "01"
    assert "LossyImageCompression" not in dcmread(get_testdata_file("CT_small.dcm"))
    assert convert_file(get_testdata_file("CT_small.dcm"), tmp_path / "c.dcm", "htj2k").status == "done"
    assert "LossyImageCompression" not in dcmread(tmp_path / "c.dcm")


def test_syntax_names():
    assert target_syntax("htj2k") == HTJ2KLossless and target_syntax("htj2k", 0.01) == HTJ2K
    assert target_syntax("1.2.840.10008.1.2.4.90") == JPEG2000Lossless


def test_encode_benchmark_rows_check_their_output(tmp_path, capsys):
    from gpudcm.bench.encode import measure, table

    rows = measure(2)
    assert [r.encoder for r in rows] == ["pylibjpeg-openjpeg", "openjph", "openjpeg", "charls", "openjph"]
    assert all(r.exact for r in rows)
    assert rows[1].syntax == HTJ2KLossless.name and rows[0].syntax == JPEG2000Lossless.name
    assert "| pydicom compress |" in table(rows, 2)
    assert main(["bench", "--encode", "--size", "encode=2", "--device", "cpu", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "encode-cpu.md").exists() and json.loads((tmp_path / "encode-cpu.json").read_text())["slices"] == 2


def test_capabilities_lists_the_encoders(capsys):
    assert main(["capabilities", "--encoders"]) == 0
    out = capsys.readouterr().out
    assert "openjph" in out and "charls" in out and "nvimgcodec" in out
    assert "nvImageCodec has no JPEG-LS encoder" in out


def test_dask_convert_of_one_file(tmp_path):
    from gpudcm.dask import convert_to_dicom

    out = tmp_path / "ct.dcm"
    summary = convert_to_dicom(get_testdata_file("CT_small.dcm"), out, "jpegls", workers=1, quiet=True)
    assert summary.done == 1 and (tmp_path / "ct.dcm.report.json").exists()
    np.testing.assert_array_equal(_pixels(out), _pixels(get_testdata_file("CT_small.dcm")))
