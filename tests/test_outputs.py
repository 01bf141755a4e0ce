"""Outputs a training set can trust (issue 17): metadata with every array, modality values on request,
the input tree mirrored, non-image objects skipped, resume however paths are spelled, clean CLI errors."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut
from pydicom.pixels import pixel_array as pydicom_pixel_array

from gpudcm.classify import IMAGE, NON_IMAGE, NOT_DICOM, classify
from gpudcm.cli import main
from gpudcm.series import group_series, load_volume
from tests.series_data import random_volume, write_series

zarr = pytest.importorskip("zarr")
pytest.importorskip("distributed")

CT = get_testdata_file("CT_small.dcm")
MR = get_testdata_file("MR_small.dcm")


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None,
                           silence_logs=logging.ERROR)
    with Client(cluster) as c:
        yield c
    cluster.close()


def _pet_series(folder):
    """A series whose slices have Rescale Slope 1..5 (as PET does), intercept -3."""
    folder.mkdir(parents=True)
    written = write_series(folder, random_volume(5, 16, 16), rescale=(1.0, -3.0))
    for k, path in enumerate(written.paths):
        ds = dcmread(path)
        ds.RescaleSlope = k + 1
        ds.save_as(path, enforce_file_format=True)
    return written


def _archive(root):
    """A study folder as archives hold them: images in two folders with the same file name, and a
    DICOMDIR, an SR, an RT Plan and a non-DICOM file beside them."""
    for sub, src in (("a", CT), ("b", MR)):
        (root / sub).mkdir(parents=True)
        shutil.copy(src, root / sub / "IM0001.dcm")
    shutil.copy(get_testdata_file("DICOMDIR"), root / "DICOMDIR")
    shutil.copy(get_testdata_file("test-SR.dcm"), root / "report.dcm")
    shutil.copy(get_testdata_file("rtplan.dcm"), root / "plan.dcm")
    (root / "README.txt").write_text("exported by a PACS\n")
    return root


# 1. metadata with every array ------------------------------------------------------------------------


def test_series_volume_in_modality_units_per_slice(tmp_path):
    written = _pet_series(tmp_path / "pet")
    (series,) = group_series([tmp_path / "pet"])
    volume = load_volume(series, device="cpu", rescale=True)
    expected = np.stack([apply_modality_lut(pydicom_pixel_array(p), dcmread(p)) for p in series.paths])
    assert volume.dtype == np.float32
    np.testing.assert_allclose(volume, expected, rtol=1e-6)
    slopes = np.arange(1, 6, dtype=np.float32)[:, None, None]  # slice k (along the normal) has slope k + 1
    np.testing.assert_array_equal(volume, written.volume.astype(np.float32) * slopes - 3)
    np.testing.assert_array_equal(load_volume(series, device="cpu"), written.volume)  # stored values by default


def test_zarr_series_attributes_recover_real_units(client, tmp_path):
    _pet_series(tmp_path / "in" / "pet")
    out = tmp_path / "o.zarr"
    from gpudcm.dask import decode_to_zarr

    decode_to_zarr([tmp_path / "in"], out, series=True, scheduler=client, device="cpu")
    group = zarr.open_group(str(out), mode="r")
    (name,) = list(group.array_keys())
    arr = group[name]
    meta = arr.attrs["gpudcm"]
    paths = [s[0] for s in meta["sources"]]
    assert meta["rescale_slope"] == [1.0, 2.0, 3.0, 4.0, 5.0] and meta["rescale_intercept"] == [-3.0] * 5
    slopes = np.asarray(meta["rescale_slope"], np.float64)[:, None, None]
    real = arr[...] * slopes + np.asarray(meta["rescale_intercept"])[:, None, None]
    expected = np.stack([apply_modality_lut(pydicom_pixel_array(p), dcmread(p)) for p in paths])
    np.testing.assert_allclose(real, expected)
    first = dcmread(paths[0], stop_before_pixels=True)
    assert meta["study_instance_uid"] == first.StudyInstanceUID and meta["modality"] == "CT"
    assert meta["sop_instance_uids"] == [dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in paths]
    assert meta["pixel_spacing"] == [0.75, 0.8] and meta["spacing"] == pytest.approx([2.5, 0.75, 0.8])
    assert meta["orientation"] == [1, 0, 0, 0, 1, 0] and meta["photometric_interpretation"] == "MONOCHROME2"
    assert meta["transfer_syntax"] == "Explicit VR Little Endian" and meta["values"] == "stored"


def test_zarr_file_attributes_and_rescale_option(client, tmp_path):
    from gpudcm.dask import decode_to_zarr

    out = tmp_path / "hu.zarr"
    decode_to_zarr([CT], out, scheduler=client, device="cpu", rescale=True)
    arr = zarr.open_group(str(out), mode="r")["CT_small"]
    ds = dcmread(CT)
    np.testing.assert_allclose(arr[...], apply_modality_lut(ds.pixel_array, ds))  # HU, float32
    assert arr.dtype == np.float32
    meta = arr.attrs["gpudcm"]
    assert meta["values"] == "modality" and meta["rescale_intercept"] == float(ds.RescaleIntercept)
    assert meta["sop_instance_uid"] == ds.SOPInstanceUID and meta["series_instance_uid"] == ds.SeriesInstanceUID
    assert meta["pixel_spacing"] == [float(v) for v in ds.PixelSpacing]
    assert meta["window_center"] is None or isinstance(meta["window_center"], list)
    assert meta["origin"] == [float(v) for v in ds.ImagePositionPatient]
    assert meta["transfer_syntax_uid"] == ds.file_meta.TransferSyntaxUID


def test_npy_sidecar_and_manifest(tmp_path, capsys):
    root = _archive(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["decode", str(root), "--out", str(out), "--device", "cpu", "--rescale"]) == 0
    for sub, src in (("a", CT), ("b", MR)):  # 2. the input tree mirrored: two IM0001 side by side
        ds = dcmread(src)
        np.testing.assert_allclose(np.load(out / sub / "IM0001.npy"), apply_modality_lut(ds.pixel_array, ds))
        side = json.loads((out / sub / "IM0001.json").read_text())
        assert side["sop_instance_uid"] == ds.SOPInstanceUID and side["modality"] == ds.Modality
        assert side["sources"][0][0] == os.path.realpath(root / sub / "IM0001.dcm")
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sorted(m["array"] for m in manifest) == ["a/IM0001.npy", "b/IM0001.npy"]
    assert all(m["values"] == "modality" for m in manifest)
    assert next(m for m in manifest if m["array"] == "a/IM0001.npy")["dtype"] == "float32"  # CT: HU


# 4. non-image objects --------------------------------------------------------------------------------


def test_classify_archive_objects(tmp_path):
    root = _archive(tmp_path / "in")
    kinds = {p.name: classify(p) for p in root.iterdir() if p.is_file()}
    assert kinds["DICOMDIR"].kind == NON_IMAGE and "DICOMDIR" in kinds["DICOMDIR"].reason
    assert kinds["report.dcm"].kind == NON_IMAGE and "SR" in kinds["report.dcm"].reason
    assert kinds["plan.dcm"].kind == NON_IMAGE and "RT Plan" in kinds["plan.dcm"].reason
    assert kinds["README.txt"].kind == NOT_DICOM and kinds["README.txt"].reason == "not a DICOM file"
    assert classify(root / "a" / "IM0001.dcm").kind == IMAGE


def test_decode_skips_non_images_and_exits_0(tmp_path, capsys):
    root = _archive(tmp_path / "in")
    assert main(["decode", str(root), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"\(skipped: not images\) +4", captured.out)
    assert f"SKIPPED {root / 'README.txt'}: not a DICOM file" in captured.err
    assert "no pixel data (RT Plan Storage)" in captured.err and "FAILED" not in captured.err


def test_zarr_report_lists_skipped_objects(client, tmp_path):
    from gpudcm.dask import decode_to_zarr

    root = _archive(tmp_path / "in")
    summary = decode_to_zarr([root], tmp_path / "o.zarr", scheduler=client, device="cpu")
    assert (summary.done, summary.failed, len(summary.not_images)) == (2, 0, 4)
    report = json.loads((tmp_path / "o.zarr.report.json").read_text())
    assert sorted(os.path.basename(n["path"]) for n in report["not_images"]) == ["DICOMDIR", "README.txt", "plan.dcm",
                                                                                 "report.dcm"]


def test_info_shows_relative_paths_and_skips(tmp_path, capsys):
    root = _archive(tmp_path / "in")
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "a/IM0001.dcm" in out and "b/IM0001.dcm" in out
    assert "skipped: no pixel data (DICOMDIR)" in out


# 5. resume -------------------------------------------------------------------------------------------


def test_zarr_resume_however_the_path_is_spelled(client, tmp_path, monkeypatch):
    from gpudcm.dask import decode_to_zarr

    root = _archive(tmp_path / "in")
    decode_to_zarr([root], tmp_path / "o.zarr", scheduler=client, device="cpu")
    monkeypatch.chdir(tmp_path)
    again = decode_to_zarr(["in/"], "o.zarr", scheduler=client, device="cpu")  # relative, trailing slash
    assert (again.done, again.skipped) == (0, 2)
    os.utime(root / "a" / "IM0001.dcm", ns=(1, 1))  # a changed source is decoded again
    third = decode_to_zarr([os.path.abspath("in")], "o.zarr", scheduler=client, device="cpu")
    assert (third.done, third.skipped) == (1, 1)


def test_npy_runs_resume(tmp_path, capsys, monkeypatch):
    root = _archive(tmp_path / "in")
    out = tmp_path / "out"
    assert main(["decode", str(root), "--out", str(out), "--device", "cpu"]) == 0
    (out / "b" / "IM0001.json").unlink()  # as if interrupted while writing b/IM0001
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["decode", "in", "--out", "out", "--device", "cpu"]) == 0
    out_text = capsys.readouterr().out
    assert re.search(r"\(skipped: already complete\) +1", out_text)
    total = next(line for line in out_text.splitlines() if line.startswith("total")).split()
    assert total[1] == "1"  # only b/IM0001 decoded again
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2


def test_interrupt_message_says_what_is_true(monkeypatch, capsys, tmp_path):
    import gpudcm.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_decode", interrupted)
    monkeypatch.setattr(cli, "cmd_info", interrupted)
    assert main(["decode", CT, "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err
    assert "resume" in err and "Zarr" not in err
    assert main(["info", CT]) == 130
    assert capsys.readouterr().err.strip() == "gpudcm: interrupted"


# 6. clean CLI failures -------------------------------------------------------------------------------


def test_bad_window_is_one_line(tmp_path, capsys):
    assert main(["show", CT, "--out", str(tmp_path / "x.png"), "--window", "40", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "width" in err


def test_unreachable_scheduler_fails_fast(capsys, tmp_path):
    assert main(["decode", CT, "--out", str(tmp_path / "x.zarr"), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # one line, after gpudcm's 5 s connect timeout (distributed's own default waits 30 s)
    assert err[-1] == ("gpudcm decode: error: cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 5s "
                       "(OSError); is it running?")


def test_table_folds_to_width():
    from gpudcm.cli import _table

    text = _table(("a", "why"), [("x", "word " * 30)], width=40)
    assert max(len(line) for line in text.splitlines()) <= 40
    assert text.count("word") == 30


def test_capabilities_json(capsys):
    assert main(["capabilities", "--device", "cpu", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    rle = next(r for r in rows if r["transfer_syntax"] == "RLE Lossless")
    assert rle["device"] == "cpu" and rle["available"] is True and rle["transfer_syntax_uid"] == "1.2.840.10008.1.2.5"


# 3. the writer never leaves stale modality tags --------------------------------------------------------


def _ct_and_hu():
    ds = dcmread(CT)
    return ds, apply_modality_lut(ds.pixel_array, ds)


def test_writer_modality_values_reset_the_rescale(tmp_path):
    from gpudcm.writer import set_pixel_data

    ds, hu = _ct_and_hu()
    assert float(ds.RescaleIntercept) == -1024
    set_pixel_data(ds, hu.astype(np.int16), "MONOCHROME2", 16, values="modality")
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, 0.0)
    ds.save_as(tmp_path / "hu.dcm", enforce_file_format=True)
    back = dcmread(tmp_path / "hu.dcm")
    np.testing.assert_array_equal(apply_modality_lut(back.pixel_array, back), hu)  # read as HU, not shifted again
    ds, _ = _ct_and_hu()
    stored = ds.pixel_array.copy()
    set_pixel_data(ds, stored, "MONOCHROME2", 16)  # stored values (the default): tags kept
    assert float(ds.RescaleIntercept) == -1024


def test_writer_float_pixel_data_drops_rescale_and_checks_sop_class():
    from gpudcm.errors import InvalidPixelData
    from gpudcm.writer import set_pixel_data

    ds, hu = _ct_and_hu()
    del ds.PixelData
    with pytest.raises(InvalidPixelData, match=r"CT Image Storage .* only Parametric Map Storage \(1.2.840.10008.5.1.4.1.1.30\)"):
        set_pixel_data(ds, hu.astype(np.float32), "MONOCHROME2", 32, float_pixel_data=True)
    assert float(ds.RescaleIntercept) == -1024  # refused before anything changed
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.30"
    with pytest.raises(InvalidPixelData, match="values='modality'"):
        set_pixel_data(ds, hu.astype(np.float32), "MONOCHROME2", 32, float_pixel_data=True, values="stored")
    set_pixel_data(ds, hu.astype(np.float32), "MONOCHROME2", 32, float_pixel_data=True)
    assert "RescaleSlope" not in ds and "RescaleIntercept" not in ds and "RescaleType" not in ds
    np.testing.assert_array_equal(np.frombuffer(ds.FloatPixelData, np.float32).reshape(hu.shape), hu)


def test_writer_requantize_recomputes_the_rescale():
    from gpudcm.errors import InvalidPixelData
    from gpudcm.writer import set_pixel_data

    ds, hu = _ct_and_hu()
    with pytest.raises(InvalidPixelData, match="values='modality'"):
        set_pixel_data(ds, hu / 2, "MONOCHROME2", 16, requantize=True, values="stored")
    set_pixel_data(ds, hu / 2, "MONOCHROME2", 16, requantize=True)
    np.testing.assert_allclose(apply_modality_lut(ds.pixel_array, ds), hu / 2, atol=float(ds.RescaleSlope))


def test_group_series_and_convert_classify_the_same_way(tmp_path, capsys):
    root = _archive(tmp_path / "in")
    groups = group_series([root])
    assert sorted(os.path.relpath(p, root) for s in groups for p in s.paths) == ["a/IM0001.dcm", "b/IM0001.dcm"]
    out = tmp_path / "out"
    assert main(["convert", str(root), str(out), "--transfer-syntax", "rle"]) == 0
    err = capsys.readouterr().err
    assert "copied 3 objects without pixel data unchanged" in err and "README.txt: not a DICOM file" in err
    for name in ("DICOMDIR", "report.dcm", "plan.dcm"):
        assert (out / name).read_bytes() == (root / name).read_bytes()
    assert not (out / "README.txt").exists()
    assert dcmread(out / "a" / "IM0001.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"


# 9. loaders ------------------------------------------------------------------------------------------


def test_dataset_walks_a_folder_and_skips_non_images(tmp_path):
    gt = pytest.importorskip("gpudcm.torch")
    root = _archive(tmp_path / "in")
    for given in (str(root), [root]):
        ds = gt.DicomDataset(given, device="cpu")
        assert sorted(os.path.relpath(p, root) for p in ds.items) == ["a/IM0001.dcm", "b/IM0001.dcm"]
        assert sorted(os.path.basename(p) for p, _ in ds.not_images) == ["DICOMDIR", "README.txt", "plan.dcm",
                                                                         "report.dcm"]
    batch = gt.DicomDataset(str(root / "a"), device="cpu").load(0)
    ct = dcmread(CT)
    np.testing.assert_array_equal(batch["image"][0].numpy(), ct.pixel_array)
    assert batch["spacing"].tolist() == [[float(v) for v in ct.PixelSpacing]]  # 2D items get spacing too


def test_dataset_refuses_cuda_without_a_gpu_at_construction():
    gt = pytest.importorskip("gpudcm.torch")
    from gpudcm.cuda.runtime import cuda_status
    from gpudcm.errors import DeviceUnavailable

    if cuda_status()[0]:
        pytest.skip("a GPU is usable here")
    with pytest.raises(DeviceUnavailable, match="CUDA is unavailable"):
        gt.DicomDataset([CT], device="cuda")


def test_dataset_on_error_skip(tmp_path, caplog):
    gt = pytest.importorskip("gpudcm.torch")
    bad = tmp_path / "bad.dcm"
    ds = dcmread(CT)
    ds.Rows = 4000  # more rows than the pixel data holds
    ds.save_as(bad)
    with pytest.raises(Exception):
        gt.DicomDataset([CT, str(bad)], device="cpu").decode([gt.DicomDataset([str(bad)], device="cpu")[0]])
    dataset = gt.DicomDataset([CT, str(bad), MR], device="cpu", on_error="skip")
    batches = list(gt.DicomLoader(dataset, batch_size=3))
    assert batches[0]["index"].tolist() == [0, 2] and batches[0]["path"] == [CT, MR]
    np.testing.assert_array_equal(batches[0]["image"][1].numpy(), dcmread(MR).pixel_array)
    assert [p for p, _ in dataset.skipped] == [str(bad)] and "skipped item 1" in caplog.text


def test_load_image_finds_the_reader_by_name():
    pytest.importorskip("monai")
    import gpudcm.monai  # noqa: F401 - registers the name
    from monai.transforms import LoadImage

    img = LoadImage(reader="GpudcmReader", image_only=True)(CT)
    np.testing.assert_array_equal(np.asarray(img), dcmread(CT).pixel_array.T.astype(np.float32) - 1024)


# 7. capabilities tell what to install ------------------------------------------------------------------


def test_capabilities_name_the_missing_gpu_library(monkeypatch):
    import gpudcm.routing as routing
    from gpudcm.capabilities import capabilities

    monkeypatch.setattr(routing, "detect_env", lambda: routing.GpuEnv(nvjpeg=None, nvimgcodec=False))
    rows = {str(c.transfer_syntax): c for c in capabilities("cuda")}
    assert rows["1.2.840.10008.1.2.4.50"].reason.startswith("nvJPEG not installed: pip install 'gpudcm[cuda]'")
    assert rows["1.2.840.10008.1.2.4.90"].reason.startswith("nvImageCodec with nvJPEG2000 not usable: pip install 'gpudcm[j2k]'")
    assert "no GPU decoder yet" in rows["1.2.840.10008.1.2.4.80"].reason  # JPEG-LS: none exists
    assert not any("no GPU decoder yet" in rows[u].reason for u in ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.91"))


# 10. progress in the Python API ---------------------------------------------------------------------


def test_decode_batch_progress(capsys):
    import gpudcm

    calls = []
    arrays = gpudcm.decode_batch([CT, MR, CT], device="cpu", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(arrays[1], dcmread(MR).pixel_array)
    gpudcm.decode_batch([CT, MR], device="cpu", progress=True)
    assert "2/2 files" in capsys.readouterr().err


# 12. viewing ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("tags,expected", [
    ({"PixelSpacing": [0.5, 1.0]}, (64, 128)),  # rows half as far apart: half as many rows on screen
    ({"PixelSpacing": None, "PixelAspectRatio": [2, 1]}, (128, 64)),  # tall pixels: half as many columns
])
def test_show_draws_square_pixels(tmp_path, tags, expected):
    pil = pytest.importorskip("PIL.Image")
    ds = dcmread(CT)
    for kw, value in tags.items():
        if value is None:
            del ds[kw]
        else:
            setattr(ds, kw, value)
    ds.save_as(tmp_path / "ct.dcm")
    assert main(["show", str(tmp_path / "ct.dcm"), "--out", str(tmp_path / "ct.png")]) == 0
    png = np.asarray(pil.open(tmp_path / "ct.png"))
    assert png.shape == expected


def test_sheet_tiles_fill_the_cell_with_one_range(tmp_path):
    pil = pytest.importorskip("PIL.Image")
    path = get_testdata_file("emri_small.dcm")  # 10 frames of 64 x 64, no window in the file
    assert main(["show", path, "--sheet", "--size", "128", "--out", str(tmp_path / "s.png")]) == 0
    sheet = np.asarray(pil.open(tmp_path / "s.png"))
    frames = pydicom_pixel_array(path).astype(np.float64)
    lo, hi = frames.min(), frames.max()  # one range for every tile
    for k in (0, 5):
        u8 = np.floor(np.clip((frames[k] - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)
        expected = np.repeat(np.repeat(u8, 2, axis=0), 2, axis=1)  # 64 -> the 128 tile, whole pixels
        top, left = (k // 4) * 128, (k % 4) * 128
        tile = sheet[top : top + 128, left : left + 128]
        np.testing.assert_array_equal(tile[16:], expected[16:])  # below the frame-number label


def test_the_worker_hook_leaves_the_callers_own_ctrl_c_alone():
    """A threads cluster's workers live in the caller's process: the preload hook, on whichever thread
    distributed runs it, must not make that process ignore Ctrl-C (only a nanny's worker process does)."""
    import signal
    import threading

    from gpudcm._dask_worker import dask_setup

    before = signal.getsignal(signal.SIGINT)
    dask_setup(None)  # here: the main thread of a process that no multiprocessing parent started
    assert signal.getsignal(signal.SIGINT) is before
    done = threading.Thread(target=dask_setup, args=(None,))
    done.start()
    done.join()
    assert signal.getsignal(signal.SIGINT) is before


def test_local_cluster_workers_ignore_ctrl_c():
    """Ctrl-C goes to the whole process group: the workers ignore it (no traceback from each), the CLI
    process shuts the cluster down and prints one line."""
    import signal

    from gpudcm.dask import ClusterPlan, _open_client

    client, to_close = _open_client(ClusterPlan("local", 1), None)
    try:
        dispositions = client.run(lambda: int(signal.getsignal(signal.SIGINT) == signal.SIG_IGN))
        assert list(dispositions.values()) == [1]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # this process still stops on Ctrl-C
    finally:
        for thing in to_close:
            thing.close()
