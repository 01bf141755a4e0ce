"""gpudcm.dask.decode_to_zarr on a 2-worker LocalCluster: arrays, failure report, resume, series, cluster choice."""

from __future__ import annotations

import contextlib
import json
import os
import logging
import shutil
import sys
import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import RLELossless, generate_uid

pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

import gpudcm  # noqa: E402
from gpudcm.cli import main  # noqa: E402
from gpudcm.dask import COMPLETE, ClusterPlan, decode_to_zarr, plan_cluster  # noqa: E402
from gpudcm.errors import DeviceUnavailable  # noqa: E402

GOOD = [
    "CT_small.dcm",  # explicit little endian, int16
    "MR_small_RLE.dcm",  # RLE
    "SC_rgb_rle_2frame.dcm",  # RLE RGB, 2 frames
    "rtdose_1frame.dcm",  # implicit, 32-bit
    "SC_ybr_full_422_uncompressed.dcm",  # YBR_FULL_422 -> RGB
    "MR_small_bigendian.dcm",  # big endian
]
BAD = "MR_truncated.dcm"


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    with Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture
def inputs(tmp_path):
    """The corpus files and the bad one, copied into a folder tree (so names come from relative paths)."""
    root = tmp_path / "in"
    paths = []
    for i, name in enumerate([*GOOD, BAD]):
        dst = root / ("a" if i % 2 else "b") / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(get_testdata_file(name), dst)
        paths.append(dst)
    return root, paths


def _reference(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom_pixel_array(str(path))


def _array(out, name):
    return zarr.open_array(str(out), path=name, mode="r")


def test_two_workers_decode_every_file_and_report_the_bad_one(client, inputs, tmp_path):
    root, paths = inputs
    out = tmp_path / "out.zarr"
    seen = []
    summary = decode_to_zarr([root], out, scheduler=client, device="cpu", on_result=seen.append)
    assert len(client.scheduler_info()["workers"]) == 2
    assert (summary.done, summary.skipped, summary.failed) == (len(GOOD), 0, 1)
    assert [f.path for f in summary.failures] == [str(paths[-1])]
    assert summary.failures[0].error_type == "InvalidPixelData" and "8130 bytes" in summary.failures[0].message
    assert sorted(o.name for o in seen) == sorted(f"{p.parent.name}/{p.stem}" for p in paths)
    for path in paths[:-1]:
        arr = _array(out, f"{path.parent.name}/{path.stem}")
        ref = _reference(path)
        np.testing.assert_array_equal(arr[...], ref)  # pydicom's values, shape
        assert arr.dtype == ref.dtype.newbyteorder("=")
        np.testing.assert_array_equal(arr[...], gpudcm.pixel_array(path, device="cpu"))
        assert arr.attrs[COMPLETE] is True
        meta = arr.attrs["gpudcm"]
        assert meta["sources"] == [[os.path.realpath(path), path.stat().st_size, path.stat().st_mtime_ns]]
        assert meta["transfer_syntax"] == dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID.name
    frames = _array(out, "b/SC_rgb_rle_2frame")
    assert frames.shape == (2, 100, 100, 3) and frames.chunks == (1, 100, 100, 3)  # one chunk per frame
    # nothing written for the bad file: the store holds exactly one array per good file
    stored = [n for n, m in zarr.open_group(str(out), mode="r").members(max_depth=None) if isinstance(m, zarr.Array)]
    assert sorted(stored) == sorted(f"{p.parent.name}/{p.stem}" for p in paths[:-1])
    bad = f"{paths[-1].parent.name}/{paths[-1].stem}"
    with pytest.raises(FileNotFoundError, match=f"No array found in store .* at path {bad}"):
        _array(out, bad)
    # the report: root attribute, JSON and CSV beside the store, all naming exactly the bad file
    report = json.loads((tmp_path / "out.zarr.report.json").read_text())
    assert report == zarr.open_group(str(out), mode="r").attrs["gpudcm_report"]
    assert [f["path"] for f in report["failures"]] == [str(paths[-1])] and report["done"] == len(GOOD)
    csv_rows = (tmp_path / "out.zarr.failures.csv").read_text().splitlines()
    assert len(csv_rows) == 2 and csv_rows[1].startswith(f"{paths[-1]},InvalidPixelData,")


def test_resume_skips_complete_arrays_and_redoes_partial_and_changed_ones(client, inputs, tmp_path):
    root, paths = inputs
    good = paths[:-1]
    out = tmp_path / "out.zarr"
    first = decode_to_zarr(good[:4], out, scheduler=client, device="cpu")
    assert first.done == 4
    names = [f"{p.parent.name}/{p.stem}" for p in good]
    # interrupted run: one array written without its completion marker (and with wrong data) ...
    partial = zarr.open_array(str(out), path=names[0], mode="r+")
    partial[...] = 0
    partial.attrs.update({COMPLETE: False})
    # ... and one source replaced by another file since (its size differs)
    shutil.copy(get_testdata_file("CT_small.dcm"), good[1])
    stamps = {n: (out / n / "zarr.json").stat().st_mtime_ns for n in names[2:4]}

    second = decode_to_zarr(good, out, scheduler=client, device="cpu")
    status = {o.name: o.status for o in second.outcomes}
    assert status == {names[0]: "done", names[1]: "done", names[2]: "skipped", names[3]: "skipped",
                      names[4]: "done", names[5]: "done"}
    assert (second.done, second.skipped, second.failed) == (4, 2, 0)
    assert {n: (out / n / "zarr.json").stat().st_mtime_ns for n in names[2:4]} == stamps  # not rewritten
    np.testing.assert_array_equal(_array(out, names[0])[...], _reference(good[0]))
    np.testing.assert_array_equal(_array(out, names[1])[...], _reference(good[1]))  # now CT_small's pixels
    assert _array(out, names[0]).attrs[COMPLETE] is True

    third = decode_to_zarr(good, out, scheduler=client, device="cpu", overwrite=True)
    assert (third.done, third.skipped) == (len(good), 0)


def _write_series(folder, uid: str, z_positions, *, rle: bool = False):
    """A series of CT_small-like slices at `z_positions` (files written in that order), random pixels."""
    rng = np.random.default_rng(len(z_positions))
    slices = {}
    folder.mkdir(parents=True, exist_ok=True)
    for k, z in enumerate(z_positions):
        ds = dcmread(get_testdata_file("CT_small.dcm"))
        ds.SeriesInstanceUID = uid
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-10.0, 5.0, float(z)]
        ds.InstanceNumber = k + 1
        pixels = rng.integers(-1000, 2000, (128, 128), dtype=np.int16)
        gpudcm.set_pixel_data(ds, pixels, "MONOCHROME2", 16, transfer_syntax=RLELossless if rle else None)
        ds.save_as(folder / f"slice{k}.dcm", enforce_file_format=True)
        slices[float(z)] = pixels
    return np.stack([slices[z] for z in sorted(slices)])


def test_series_mode_one_stacked_array_per_series(client, tmp_path):
    uid_a, uid_b = generate_uid(), generate_uid()
    vol_a = _write_series(tmp_path / "in" / "a", uid_a, [3.0, 1.0, 2.0, 0.0])
    vol_b = _write_series(tmp_path / "in" / "b", uid_b, [5.0, 7.5, 10.0], rle=True)
    (tmp_path / "in" / "notes.txt").write_text("not DICOM")
    out = tmp_path / "series.zarr"
    summary = decode_to_zarr([tmp_path / "in"], out, series=True, scheduler=client, device="cpu")
    assert (summary.done, summary.failed) == (2, 0)  # a non-DICOM file is skipped and listed, not a failure
    assert [n.path for n in summary.not_images] == [str(tmp_path / "in" / "notes.txt")]
    assert summary.not_images[0].reason == "not a DICOM file"
    a, b = _array(out, uid_a), _array(out, uid_b)
    np.testing.assert_array_equal(a[...], vol_a)  # ordered along the slice normal, not by file name
    np.testing.assert_array_equal(b[...], vol_b)
    assert a.chunks == (1, 128, 128)
    meta = b.attrs["gpudcm"]
    assert meta["kind"] == "series" and meta["series_instance_uid"] == uid_b
    assert meta["spacing"][0] == pytest.approx(2.5) and meta["origin"] == [-10.0, 5.0, 5.0]
    assert meta["orientation"] == [1, 0, 0, 0, 1, 0] and meta["transfer_syntax"] == "RLE Lossless"
    assert len(meta["sources"]) == 3


def test_cli_zarr_on_a_running_scheduler(client, inputs, tmp_path, capsys):
    root, paths = inputs
    out = tmp_path / "cli.zarr"
    args = ["decode", str(root), "--out", str(out), "--scheduler", client.scheduler.address, "--device", "cpu"]
    assert main(args) == 1  # the bad file fails the run
    captured = capsys.readouterr()
    assert f"FAILED {paths[-1]}" in captured.err and "RLE Lossless" in captured.out
    assert f"{len(paths)}/{len(paths)} files, 1 failed" in captured.err and "files/s" in captured.err
    np.testing.assert_array_equal(_array(out, "a/MR_small_RLE")[...], _reference(paths[1]))
    assert main(args) == 1
    assert "(skipped: already complete)" in capsys.readouterr().out


def test_cli_zarr_with_its_own_local_cluster(tmp_path, capsys):
    """No --scheduler: a LocalCluster is started (and closed) for the run."""
    ct = get_testdata_file("CT_small.dcm")
    out = tmp_path / "own.zarr"
    assert main(["decode", ct, "--out", str(out), "--workers", "1", "--device", "cpu"]) == 0
    np.testing.assert_array_equal(_array(out, "CT_small")[...], _reference(ct))


def test_plan_cluster_choices():
    plan = lambda **kw: plan_cluster(kw.pop("scheduler", None), kw.pop("device", "cpu"), kw.pop("workers", None),  # noqa: E731
                                     gpu_count=kw.pop("gpus", 0), cpu_count=kw.pop("cpus", 8), n_jobs=kw.pop("jobs", 100))
    assert plan() == ClusterPlan("local", 8)
    assert plan(jobs=3) == ClusterPlan("local", 3)  # no idle workers
    assert plan(workers=2) == ClusterPlan("local", 2)
    assert plan(device="cuda", gpus=1) == ClusterPlan("local", 4)  # processes share the one GPU
    assert plan(device="cuda", gpus=4) == ClusterPlan("local-cuda", 4)
    assert plan(device="cuda", gpus=4, workers=2) == ClusterPlan("local-cuda", 2)
    assert plan(device="cpu", gpus=4) == ClusterPlan("local", 8)
    assert plan(scheduler="tcp://10.0.0.1:8786", device="cuda", gpus=4) == ClusterPlan("address")
    assert plan(scheduler=object()) == ClusterPlan("client")
    # two cores: threads in this process (worker interpreters cost more than the second core gives back)
    assert plan(cpus=2) == ClusterPlan("local-threads", 1, threads_per_worker=2)
    assert plan(cpus=2, jobs=1) == ClusterPlan("local-threads", 1, threads_per_worker=1)
    assert plan(cpus=2, workers=2) == ClusterPlan("local", 2)  # asked for processes
    assert plan(cpus=2, device="cuda", gpus=1) == ClusterPlan("local", 2)
    with pytest.raises(gpudcm.GpudcmError, match="workers"):
        plan(workers=0)


def test_several_gpus_without_dask_cuda_is_a_clear_error(monkeypatch, tmp_path):
    import gpudcm.cuda.runtime as runtime
    import gpudcm.dask as gdask

    monkeypatch.setattr(runtime, "resolve_device", lambda device: "cuda")
    monkeypatch.setattr(gdask, "_visible_gpus", lambda: 2)
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # not importable, installed or not
    with pytest.raises(DeviceUnavailable, match="dask-cuda"):
        decode_to_zarr([get_testdata_file("CT_small.dcm")], tmp_path / "x.zarr", device="cuda")


def test_worker_task_on_the_device_path(monkeypatch, tmp_path):
    """The task a worker runs, with device="cuda" served by the host build of the kernels (HostOps)."""
    import gpudcm.cuda.ops as ops
    import gpudcm.cuda.runtime as runtime
    from gpudcm.dask import decode_and_write
    from gpudcm.jobs import file_jobs
    from tests.harness.host_ops import HostOps

    monkeypatch.setattr(runtime, "cuda_status", lambda: (True, "host stand-in"))
    monkeypatch.setattr(ops, "lease_ops", lambda: contextlib.nullcontext(HostOps()))
    names = ["emri_small_RLE.dcm", "SC_ybr_full_422_uncompressed.dcm", "MR_small_bigendian.dcm"]
    out = str(tmp_path / "dev.zarr")
    for job in file_jobs([get_testdata_file(n) for n in names]):
        outcome = decode_and_write(job, out, device="cuda")
        assert outcome.status == "done" and outcome.backend == "kernel", outcome
        arr = _array(out, job.name)
        np.testing.assert_array_equal(arr[...], _reference(job.paths[0]))
        assert arr.attrs["gpudcm"]["device"] == "cuda" and arr.attrs[COMPLETE] is True
