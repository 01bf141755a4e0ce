"""Dask/CLI jobs on big files (issue 15): a job's array is created from the header and written chunk by
chunk, so a worker holds one chunk (peak RSS measured in a fresh process), the values are pixel_array's
(or load_volume's), and an array is marked complete only after its last chunk: a worker killed mid-file
leaves nothing that resume treats as done."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

import bigfiles
import gpudcm
from gpudcm import jobs, npy
from gpudcm.jobs import file_jobs, run_job, series_jobs, write_job
from gpudcm.metadata import to_modality

MB = 1 << 20
FRAME = 512 * 512 * 2
ROOT = Path(__file__).resolve().parent.parent


def _pydicom(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom_pixel_array(str(path))


class Recorder:
    """A write target that keeps the array and every write's (key, rows)."""

    def __init__(self, outcome):
        self.arr = np.full(outcome.shape, 77, dtype=outcome.dtype)
        self.writes = []

    def __setitem__(self, key, value):
        self.arr[key] = value
        self.writes.append((key, value.shape[0] if key is not Ellipsis else None))


def _write(job, **kwargs):
    made = []

    def into(outcome):
        made.append(Recorder(outcome))
        return made[0]

    outcome = write_job(job, into, device="cpu", **kwargs)
    assert outcome.status == "done", outcome
    return made[0], outcome


@pytest.mark.parametrize("kind", ["native", "rle"])
@pytest.mark.parametrize("op", ["zarr", "npy"])
def test_worker_holds_one_chunk_not_the_output(big, kind, op, tmp_path):
    """A worker's peak (fresh process) is one chunk and its compressed bytes, not the output; values equal
    pydicom's. Before the chunked writes the task held the whole output (and zarr its encoding of it)."""
    path = tmp_path / f"{kind}.dcm"
    os.link(big[kind], path) if hasattr(os, "link") else shutil.copy(big[kind], path)
    chunk = 8 * MB
    got = bigfiles.measure_in_subprocess("gpudcm-worker", op, str(path), 0, get_testdata_file("emri_small_RLE.dcm"),
                                         chunk_bytes=chunk)
    assert got["shape"] == list(_pydicom(path).shape)
    assert got["checksum"] == bigfiles._checksum(_pydicom(path))
    bound = 2 * chunk + 16 * MB  # the decoded chunk, its compressed frames (~ a chunk of noise), zarr's buffers
    assert got["peak_over_base"] <= bound < got["out_bytes"], got


def test_the_old_task_held_the_output(big, tmp_path):
    """The measurement above can fail: the old task (decode the whole output, then write) exceeds its bound."""
    path = tmp_path / "native.dcm"
    shutil.copy(big["native"], path)
    got = bigfiles.measure_in_subprocess("gpudcm-worker", "zarr-held", str(path), 0, None, chunk_bytes=8 * MB)
    assert got["peak_over_base"] >= got["out_bytes"] > 32 * MB, got


@pytest.mark.parametrize("kind", ["native", "rle"])
def test_file_job_written_chunk_by_chunk_equals_pixel_array(medium, kind, monkeypatch):
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 5 * FRAME // 2)  # two frames a chunk
    target, outcome = _write(file_jobs([medium[kind]])[0])
    np.testing.assert_array_equal(target.arr, _pydicom(medium[kind]))
    assert [n for _, n in target.writes] == [2] * 6
    assert outcome.shape == (12, 512, 512) and outcome.dtype == "uint16" and outcome.bytes_out == 12 * FRAME
    arr, again = run_job(file_jobs([medium[kind]])[0], device="cpu")
    np.testing.assert_array_equal(arr, target.arr)


@pytest.mark.parametrize("name", ["CT_small.dcm", "SC_rgb_rle_2frame.dcm", "SC_ybr_full_422_uncompressed.dcm",
                                  "MR_small_bigendian.dcm", "liver_1frame.dcm", "SC_rgb_jpeg_gdcm.dcm",
                                  "emri_small_jpeg_2k_lossless.dcm", "JPEGLSNearLossless_16.dcm", "rtdose.dcm",
                                  "liver.dcm", "SC_rgb_expb_2frame.dcm", "SC_rgb_rle_32bit_2frame.dcm",
                                  "emri_small_jpeg_ls_lossless.dcm", "color3d_jpeg_baseline.dcm"])
def test_corpus_jobs_equal_pixel_array(name, monkeypatch):
    """Single- and multi-frame files of several syntaxes, one frame a chunk: pixel_array's shape and values."""
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 1)
    path = get_testdata_file(name)
    target, outcome = _write(file_jobs([path])[0])
    want = gpudcm.pixel_array(path, device="cpu")
    assert target.arr.shape == want.shape and target.arr.dtype == want.dtype
    np.testing.assert_array_equal(target.arr, want)
    np.testing.assert_array_equal(target.arr, _pydicom(path))


def test_one_bit_frames_that_start_mid_byte(tmp_path, monkeypatch):
    """7 frames of 3 x 5 one-bit pixels (15 bits a frame: every frame but the first starts mid-byte),
    one frame a chunk: the job's array is the frames the file holds."""
    from pydicom import Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.pixels import pack_bits
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    frames = (np.random.default_rng(1).integers(0, 2, (7, 3, 5))).astype(np.uint8)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames, ds.SamplesPerPixel = 3, 5, 7, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = "MONOCHROME2", 1, 1, 0, 0
    ds.PixelData = pack_bits(frames)
    path = tmp_path / "bits.dcm"
    ds.save_as(path, enforce_file_format=True)
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 1)
    target, _ = _write(file_jobs([path])[0])
    np.testing.assert_array_equal(target.arr, frames)
    np.testing.assert_array_equal(target.arr, _pydicom(path))
    assert len(target.writes) == 7


def test_rescale_job_per_chunk(monkeypatch):
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 1)
    path = get_testdata_file("CT_small.dcm")
    target, outcome = _write(file_jobs([path])[0], rescale=True)
    ds = gpudcm.pixel_array(path, device="cpu")
    from pydicom import dcmread

    head = dcmread(path, stop_before_pixels=True)
    want = to_modality(ds, (float(head.RescaleSlope), float(head.RescaleIntercept)), stacked=False)
    assert target.arr.dtype == np.float32
    np.testing.assert_array_equal(target.arr, want)


def test_series_job_slice_by_slice_equals_load_volume(tmp_path, monkeypatch):
    from tests.series_data import random_volume, write_series

    vol = random_volume(5, 32, 40)
    (tmp_path / "s").mkdir()
    uid = "1.2.3.99"
    a = write_series(tmp_path / "s", vol[:3], uid=uid, rescale=(2.0, -1024.0))  # 3 slices with a rescale...
    b = write_series(tmp_path / "s", vol[3:], uid=uid, prefix="t", origin=(-10.0, 20.5, 30.0 + 3 * 2.5))  # 2 without
    (job,), _ = series_jobs(a.paths + b.paths)
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 2 * 32 * 40 * 2)  # two slices a chunk after the first
    for rescale in (False, True):
        target, outcome = _write(job, rescale=rescale)
        want = gpudcm.series.load_volume(job.series, device="cpu", rescale=rescale)
        assert target.arr.dtype == want.dtype and target.arr.shape == want.shape
        np.testing.assert_array_equal(target.arr, want)
        assert [n for _, n in target.writes] == [1, 2, 2]
        assert outcome.frames == 5


def test_series_of_one_multiframe_file(medium, monkeypatch):
    monkeypatch.setattr(jobs, "CHUNK_BYTES", 4 * FRAME)
    (job,), _ = series_jobs([medium["rle"]])
    target, outcome = _write(job)
    np.testing.assert_array_equal(target.arr, _pydicom(medium["rle"]))
    assert [n for _, n in target.writes] == [4, 4, 4] and outcome.frames == 12


def test_a_bad_file_fails_before_anything_is_written(tmp_path):
    made = []
    outcome = write_job(file_jobs([get_testdata_file("MR_truncated.dcm")])[0], made.append, device="cpu")
    assert outcome.status == "failed" and made == []


def test_failed_write_is_reported_as_a_write(medium):
    class Full:
        def __setitem__(self, key, value):
            raise OSError(28, "No space left on device")

    outcome = write_job(file_jobs([medium["native"]])[0], lambda o: Full(), device="cpu", where="out.zarr")
    assert outcome.status == "failed" and outcome.error_type == "OSError"
    assert outcome.message.startswith("writing native to out.zarr: ") and "No space left" in outcome.message


_KILL = """
import os, sys
import gpudcm.jobs as jobs
jobs.CHUNK_BYTES = 2 * 512 * 512 * 2
op, path, out = sys.argv[1:4]
writes = [0]
if op == "zarr":
    import zarr
    original = zarr.Array.__setitem__
    def dying(self, key, value):
        original(self, key, value)
        writes[0] += 1
        if writes[0] == 3:
            os._exit(9)  # the worker is killed mid-file
    zarr.Array.__setitem__ = dying
    from gpudcm.dask import decode_and_write
    decode_and_write(jobs.file_jobs([path])[0], out, device="cpu")
else:
    from gpudcm import npy
    from pathlib import Path
    original = npy.NpyWriter.__setitem__
    def dying(self, key, value):
        original(self, key, value)
        writes[0] += 1
        if writes[0] == 3:
            os._exit(9)
    npy.NpyWriter.__setitem__ = dying
    npy.decode_to_npy(Path(out), jobs.file_jobs([path])[0], device="cpu")
"""


def _killed(op: str, path, out) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", _KILL, op, str(path), str(out)], env=env, capture_output=True, text=True)
    assert done.returncode == 9, done.stderr


def test_worker_killed_mid_file_leaves_zarr_incomplete(medium, tmp_path):
    pytest.importorskip("zarr")
    from gpudcm.dask import COMPLETE, _is_complete, decode_and_write

    import zarr

    out = str(tmp_path / "out.zarr")
    job = file_jobs([medium["rle"]])[0]
    assert decode_and_write(job, out, device="cpu").status == "done" and _is_complete(out, job)
    _killed("zarr", medium["rle"], out)  # a rewrite (e.g. --overwrite) killed after 3 chunks
    partial = zarr.open_array(out, path=job.name, mode="r")  # created from the header, 3 chunks written
    assert partial.shape == (12, 512, 512) and COMPLETE not in partial.attrs
    assert not _is_complete(out, job)  # resume redoes it
    outcome = decode_and_write(job, out, device="cpu")
    assert outcome.status == "done" and _is_complete(out, job)
    np.testing.assert_array_equal(zarr.open_array(out, path=job.name, mode="r")[...], _pydicom(medium["rle"]))


def test_worker_killed_mid_file_leaves_npy_incomplete(medium, tmp_path):
    out = tmp_path / "npy"
    job = file_jobs([medium["native"]])[0]
    assert npy.decode_to_npy(out, job, device="cpu").status == "done" and npy.is_complete(out, job)
    _killed("npy", medium["native"], out)  # a rewrite killed after 3 chunks: the old sidecar is gone
    assert npy.array_path(out, job).is_file() and not npy.is_complete(out, job)
    outcome = npy.decode_to_npy(out, job, device="cpu")
    assert outcome.status == "done" and npy.is_complete(out, job)
    np.testing.assert_array_equal(np.load(npy.array_path(out, job)), _pydicom(medium["native"]))


def test_npy_writer_matches_np_save(tmp_path):
    arr = np.arange(5 * 3 * 2, dtype=">i4").reshape(5, 3, 2).astype("<i4")
    w = npy.NpyWriter(tmp_path / "a.npy", arr.shape, arr.dtype)
    w[3:5] = arr[3:]
    w[0:3] = arr[:3]
    w.close()
    np.save(tmp_path / "b.npy", arr)
    assert (tmp_path / "a.npy").read_bytes() == (tmp_path / "b.npy").read_bytes()
    w = npy.NpyWriter(tmp_path / "c.npy", (4, 4), np.uint8)
    w[...] = np.eye(4, dtype=np.uint8)
    w.close()
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"), np.eye(4))
    with pytest.raises(ValueError):
        npy.NpyWriter(tmp_path / "d.npy", (4, 4), np.uint8)[0:2] = np.zeros((3, 4), np.uint8)
