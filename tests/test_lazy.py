"""Frame-level access through the lazy reader (issue 15): only the frames asked for are read, memory stays
bounded (peak RSS of each call measured in a fresh process), values equal pydicom's, indices / slices /
out= behave, and a file that shrinks or changes while it is read raises a GpudcmError naming it."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from pydicom.pixels import pixel_array as pydicom_pixel_array

import bigfiles
import gpudcm
from gpudcm import GpudcmError
from gpudcm.reader import FileBytes, open_pixels

MB = 1 << 20
FRAME = 512 * 512 * 2  # bytes of one decoded frame in the generated files
SLACK = 64 * MB  # the bound: one frame (+ its compressed bytes) + 64 MB over the process


def _warmup():
    from pydicom.data import get_testdata_file

    return get_testdata_file("emri_small_RLE.dcm")


@pytest.mark.parametrize("kind", ["native", "rle"])
@pytest.mark.parametrize("op", ["first", "index"])
def test_one_frame_costs_one_frame(big, kind, op):
    path = big[kind]
    got = bigfiles.measure_in_subprocess("gpudcm", op, str(path), 100, _warmup())
    assert got["shape"] == [512, 512]
    size = os.path.getsize(path)
    bound = 2 * FRAME + SLACK  # the frame, its compressed bytes (~ a frame of noise), 64 MB
    assert got["peak_over_base"] <= bound < size, (got, size)


def test_whole_native_file_costs_output_plus_a_run(big):
    path = big["native"]
    got = bigfiles.measure_in_subprocess("gpudcm", "whole", str(path), 0, _warmup())
    assert got["shape"] == [240, 512, 512]
    # the old path held the element and the output: 2 x 126 MB
    assert got["peak_over_base"] <= got["out_bytes"] + SLACK, got


def test_whole_rle_file_costs_output_plus_a_frame(big):
    path = big["rle"]
    got = bigfiles.measure_in_subprocess("gpudcm", "whole", str(path), 0, _warmup())
    assert got["shape"] == [160, 512, 512]
    assert got["peak_over_base"] <= got["out_bytes"] + SLACK + 2 * FRAME, got


@pytest.mark.parametrize("kind", ["native", "rle"])
def test_frames_equal_pydicom(medium, kind):
    path = medium[kind]
    whole = pydicom_pixel_array(path)
    np.testing.assert_array_equal(gpudcm.pixel_array(path, device="cpu"), whole)
    for k in (0, 5, 11, -1, -12):
        np.testing.assert_array_equal(gpudcm.pixel_array(path, index=k, device="cpu"), whole[k])
    np.testing.assert_array_equal(gpudcm.pixel_array(path, indices=[3, -1, 3, 0], device="cpu"), whole[[3, -1, 3, 0]])
    np.testing.assert_array_equal(gpudcm.pixel_array(path, indices=slice(-4, None, 2), device="cpu"), whole[-4::2])
    np.testing.assert_array_equal(np.stack(list(gpudcm.iter_frames(path, device="cpu"))), whole)
    np.testing.assert_array_equal(np.stack(list(gpudcm.iter_frames(path, indices=[-2, 1], device="cpu"))), whole[[-2, 1]])
    if kind == "native":  # an independent truth: the frames the generator wrote
        np.testing.assert_array_equal(gpudcm.pixel_array(path, index=7, device="cpu"), bigfiles.native_frame(7, 512, 512))


def test_out_receives_the_frames(medium):
    path = medium["rle"]
    whole = pydicom_pixel_array(path)
    buf = np.zeros((2, 512, 512), np.uint16)
    assert gpudcm.pixel_array(path, indices=[1, 2], out=buf, device="cpu") is buf
    np.testing.assert_array_equal(buf, whole[1:3])
    frame = np.zeros((512, 512), np.uint16)
    assert gpudcm.pixel_array(path, index=4, out=frame, device="cpu") is frame
    np.testing.assert_array_equal(frame, whole[4])
    everything = np.empty(whole.shape, whole.dtype)
    gpudcm.pixel_array(medium["native"], out=everything, device="cpu")
    np.testing.assert_array_equal(everything, pydicom_pixel_array(medium["native"]))
    batch = np.empty((2, 512, 512), np.uint16)
    out = gpudcm.decode_batch([path, medium["native"]], index=3, out=batch, device="cpu")
    assert out is batch
    np.testing.assert_array_equal(batch[0], whole[3])
    np.testing.assert_array_equal(batch[1], bigfiles.native_frame(3, 512, 512))


def test_out_is_checked_before_anything_is_read(medium, monkeypatch):
    reads = []
    original = FileBytes.readinto_at
    monkeypatch.setattr(FileBytes, "readinto_at", lambda self, pos, buf: reads.append(pos) or original(self, pos, buf))
    for bad in (np.zeros((512, 512), np.int16), np.zeros((511, 512), np.uint16), np.zeros((1, 512, 512), np.uint16),
                np.zeros((512, 1024), np.uint16)[:, ::2]):
        with pytest.raises(GpudcmError, match="out="):
            gpudcm.pixel_array(medium["native"], index=0, out=bad, device="cpu")
    assert reads == []
    with pytest.raises(GpudcmError, match="out= holds 1"):
        gpudcm.decode_batch([medium["native"]] * 2, out=np.zeros((1, 512, 512), np.uint16), device="cpu")


@pytest.mark.parametrize("kind", ["native", "rle"])
def test_one_frame_reads_one_frame(medium, kind, monkeypatch):
    """index=k reads frame k's bytes (plus item headers for RLE), not the element."""
    read = []
    original = FileBytes.readinto_at
    monkeypatch.setattr(FileBytes, "readinto_at", lambda self, pos, buf: read.append(len(memoryview(buf))) or original(self, pos, buf))
    gpudcm.pixel_array(medium[kind], index=6, device="cpu")
    assert 0 < sum(read) <= FRAME + FRAME // 8 + 8 * 16, sum(read)


@pytest.mark.parametrize("kind", ["native", "rle"])
def test_file_that_shrinks_while_iterating_raises(medium, kind, tmp_path):
    path = tmp_path / f"{kind}.dcm"
    shutil.copy(medium[kind], path)
    frames = gpudcm.iter_frames(path, device="cpu")
    np.testing.assert_array_equal(next(frames), pydicom_pixel_array(medium[kind], index=0))
    with open(path, "r+b") as fp:
        fp.truncate(os.path.getsize(path) // 2)
    with pytest.raises(GpudcmError, match=str(path).replace("\\", "\\\\") + ".*changed while it was being read"):
        for _ in frames:
            pass


def test_file_rewritten_while_open_raises(medium, tmp_path):
    path = tmp_path / "native.dcm"
    shutil.copy(medium["native"], path)
    with open_pixels(path) as reader:
        assert reader.is_lazy
        np.testing.assert_array_equal(gpudcm.pixel_array(reader, index=0, device="cpu"), bigfiles.native_frame(0, 512, 512))
        with open(path, "r+b") as fp:  # same size, new bytes and a new modification time
            fp.seek(-FRAME, os.SEEK_END)
            fp.write(b"\xff" * FRAME)
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        with pytest.raises(GpudcmError, match="changed while it was being read"):
            gpudcm.pixel_array(reader, index=11, device="cpu")


def test_truncated_after_open_whole_decode_raises(medium, tmp_path):
    path = tmp_path / "rle.dcm"
    shutil.copy(medium["rle"], path)
    with open_pixels(path) as reader:
        with open(path, "r+b") as fp:
            fp.truncate(os.path.getsize(path) - 1000)
        with pytest.raises(GpudcmError, match="rle.dcm"):
            gpudcm.pixel_array(reader, device="cpu")


def test_device_pipeline_reads_frames_into_staging(medium, monkeypatch):
    """The host-built device path (HostOps) on a lazy reader: the staged bytes come from the file, the
    frame asked for only, and the result equals pydicom."""
    from tests.harness.host_ops import HostOps

    from gpudcm.api import _device_decode

    path = medium["native"]
    read = []
    original = FileBytes.readinto_at
    monkeypatch.setattr(FileBytes, "readinto_at", lambda self, pos, buf: read.append((pos, len(memoryview(buf)))) or original(self, pos, buf))
    ops = HostOps()
    with open_pixels(path) as reader:
        got = _device_decode([reader], ops, index=9, raw=False, as_rgb=True)[0]
        np.testing.assert_array_equal(got, pydicom_pixel_array(path, index=9))
        assert read == [(9 * FRAME, FRAME)] and ops.uploads == [FRAME]
        two = _device_decode([reader], ops, index=[-1, 2], raw=False, as_rgb=True)[0]
        np.testing.assert_array_equal(two, pydicom_pixel_array(path)[[11, 2]])
    with open_pixels(medium["rle"]) as reader:
        got = _device_decode([reader], HostOps(), index=[5, 0], raw=False, as_rgb=True)[0]
        np.testing.assert_array_equal(got, pydicom_pixel_array(medium["rle"])[[5, 0]])


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["native", "rle"])
def test_cuda_frames_from_the_lazy_reader(medium, kind):
    """On a GPU: one frame, a subset and out= (CuPy) through the lazy reader equal the CPU path."""
    import cupy

    path = medium[kind]
    cpu = gpudcm.pixel_array(path, device="cpu")
    np.testing.assert_array_equal(cupy.asnumpy(gpudcm.pixel_array(path, index=-1, device="cuda")), cpu[-1])
    np.testing.assert_array_equal(cupy.asnumpy(gpudcm.pixel_array(path, indices=[7, 0], device="cuda")), cpu[[7, 0]])
    buf = cupy.empty((2, 512, 512), cupy.uint16)
    assert gpudcm.decode_batch([path, path], index=3, out=buf, device="cuda") is buf
    np.testing.assert_array_equal(cupy.asnumpy(buf), np.stack([cpu[3], cpu[3]]))
