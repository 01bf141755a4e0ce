"""The device path on big files (issue 15), through the host build of the kernels (HostOps) and the CuPy
stand-in: each frame's bytes are read through the reader's extents straight into the staging buffer,
batch by batch (no read spans the element, the staging never exceeds one batch), for native, RLE and
JPEG-family files; ``out=`` receives the kernels' output with no temporary of its size; values equal the
CPU path's. The ``gpu`` tests repeat the memory checks on a real device (ci/gpu.sh)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

import bigfiles
import gpudcm
from gpudcm.cuda import rle
from gpudcm.reader import FileBytes, open_pixels
from tests import test_rle
from tests.harness.host_ops import HostOps

FRAME = 512 * 512 * 2
MB = 1 << 20


class CountingOps(HostOps):
    """HostOps recording every pinned staging request and every device allocation (ops.empty and the
    array module's empty/zeros/asarray... as the device code calls them)."""

    def __init__(self):
        super().__init__()
        self.staging: list[int] = []
        self.allocations: list[int] = []  # bytes
        ops = self

        class Xp:
            def __getattr__(self, name):
                value = getattr(np, name)
                if name in ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ascontiguousarray",
                            "asarray", "array", "concatenate", "stack"):
                    def counted(*args, **kwargs):
                        out = value(*args, **kwargs)
                        if isinstance(out, np.ndarray) and not (name in ("asarray", "ascontiguousarray") and
                                                                 isinstance(args[0], np.ndarray) and np.shares_memory(out, args[0])):
                            ops.allocations.append(out.nbytes)
                        return out
                    return counted
                return value

        self.xp = Xp()

    def pinned(self, slot, nbytes):
        self.staging.append(nbytes)
        return super().pinned(slot, nbytes)

    def empty(self, shape, dtype):
        arr = super().empty(shape, dtype)
        self.allocations.append(arr.nbytes)
        return arr


@contextlib.contextmanager
def on_host_device(monkeypatch, ops):
    """device="cuda" served by `ops` (the host build of the kernels)."""
    import gpudcm.cuda.ops as cuda_ops
    import gpudcm.cuda.runtime as runtime

    monkeypatch.setattr(runtime, "cuda_status", lambda: (True, "host stand-in"))
    monkeypatch.setattr(cuda_ops, "lease_ops", lambda: contextlib.nullcontext(ops))
    yield ops


def _reads(monkeypatch) -> list[tuple[int, int]]:
    read: list[tuple[int, int]] = []
    original = FileBytes.readinto_at
    monkeypatch.setattr(FileBytes, "readinto_at",
                        lambda self, pos, buf: read.append((pos, len(memoryview(buf)))) or original(self, pos, buf))
    return read


# ---------------------------------------------------------------------------------------- native


def test_native_whole_file_is_read_batch_by_batch_into_staging(medium, monkeypatch):
    from gpudcm.cuda import pipeline

    path = medium["native"]
    monkeypatch.setattr(pipeline, "DEFAULT_BATCH_BYTES", 3 * FRAME + 64)
    read = _reads(monkeypatch)
    with on_host_device(monkeypatch, CountingOps()) as ops:
        got = gpudcm.pixel_array(path, device="cuda")
    np.testing.assert_array_equal(got, pydicom_pixel_array(path))
    assert max(n for _, n in read) <= 3 * FRAME + 2 and len(ops.staging) == 4 and max(ops.staging) <= 3 * FRAME + 64
    assert ops.allocations.count(got.nbytes) == 1 and max(ops.allocations) == got.nbytes


# ------------------------------------------------------------------------------------------ RLE


def test_rle_whole_file_is_read_frame_by_frame_into_one_batch_of_staging(medium, monkeypatch):
    path = medium["rle"]
    monkeypatch.setattr(rle, "RLE_BATCH_BYTES", 3 * FRAME)  # ~3 noise frames a batch: 4+ batches
    read = _reads(monkeypatch)
    with on_host_device(monkeypatch, CountingOps()) as ops:
        got = gpudcm.pixel_array(path, device="cuda")
    np.testing.assert_array_equal(got, pydicom_pixel_array(path))
    with open_pixels(path) as reader:
        element, biggest = reader.spec.pixel_nbytes, max(sum(e.length for e in f) for f in reader.frames)
    payload = [n for _, n in read if n > 8]  # item headers are read 8 bytes at a time when the file opens
    assert payload and max(payload) <= biggest < element  # no read spans more than a frame
    assert len(ops.staging) >= 4 and max(ops.staging) <= 3 * FRAME  # one batch at a time
    assert max(ops.allocations) <= got.nbytes and ops.allocations.count(got.nbytes) == 1  # the output, once


def test_rle_subset_reads_only_its_frames(medium, monkeypatch):
    path = medium["rle"]
    read = _reads(monkeypatch)
    with on_host_device(monkeypatch, CountingOps()) as ops:
        with open_pixels(path) as reader:
            read.clear()
            got = gpudcm.pixel_array(reader, indices=[7, -1, 7], device="cuda")
            sizes = [sum(e.length for e in reader.frames[i]) for i in (7, 11, 7)]
    np.testing.assert_array_equal(got, pydicom_pixel_array(path)[[7, 11, 7]])
    assert sorted(n for _, n in read) == sorted(sizes) and ops.staging == [sum(sizes)]


@pytest.mark.parametrize("name", sorted(test_rle.MALFORMED))
def test_rle_pydicom_state_carries_across_batches(name, monkeypatch):
    """Every frame its own batch: the malformed-frame cases (pydicom's decoder choice carried from frame
    to frame, excess frames kept or dropped) still equal the CPU path."""
    monkeypatch.setattr(rle, "RLE_BATCH_BYTES", 1)
    test_rle.test_malformed_frames(name)


@pytest.mark.parametrize("path", test_rle.RLE_CORPUS, ids=test_rle.corpus_id)
def test_rle_corpus_one_frame_a_batch(path, monkeypatch):
    monkeypatch.setattr(rle, "RLE_BATCH_BYTES", 1)
    test_rle.test_host_rle_equals_cpu_on_corpus(path)


def test_many_small_rle_files_share_a_batch(monkeypatch):
    """decode_batch of small files: one staging batch and one RLE launch for all, as before."""
    paths = [get_testdata_file("MR_small_RLE.dcm")] * 5
    launches = []
    ops = CountingOps()
    launch_rle, launch_native = ops.rle_launchers
    ops.rle_launchers = (lambda *a: launches.append(a[0].n_slots) or launch_rle(*a), launch_native)
    with on_host_device(monkeypatch, ops):
        got = gpudcm.decode_batch(paths, device="cuda", stack=True)
    np.testing.assert_array_equal(got, np.stack([pydicom_pixel_array(p) for p in paths]))
    assert len(launches) == 1 and len(ops.staging) == 1


# ------------------------------------------------------------------------------------- JPEG family


def test_jpeg_frames_are_read_and_decoded_batch_by_batch(monkeypatch):
    """A 120-frame JPEG file read lazily: each batch's frames read by their extents (no read spans the
    element), each decoder call given at most one batch of compressed bytes; the values are those of
    the same decode in one batch."""
    import gpudcm.reader as reader_module
    from gpudcm.cuda import jpeg_path

    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    with on_host_device(monkeypatch, CountingOps()):
        whole = gpudcm.pixel_array(path, device="cuda")
    monkeypatch.setattr(reader_module, "SLURP_BYTES", 0)  # read lazily, small as it is
    with open_pixels(path) as reader:
        sizes = [sum(e.length for e in f) for f in reader.frames]
        element = reader.spec.pixel_nbytes
    budget = 10 * max(sizes)
    monkeypatch.setattr(jpeg_path, "JPEG_BATCH_BYTES", budget)
    ops = CountingOps()
    calls = []
    decoders = dict(ops.jpeg_decoders)
    for name, fn in list(decoders.items()):
        decoders[name] = (lambda fn: lambda frames, *a: calls.append(sum(map(len, frames))) or fn(frames, *a))(fn)
    ops.jpeg_decoders = decoders
    read = _reads(monkeypatch)
    with on_host_device(monkeypatch, ops):
        got = gpudcm.pixel_array(path, device="cuda")
    np.testing.assert_array_equal(got, whole)
    payload = [n for _, n in read if n > 8]
    assert max(payload) <= max(sizes) < element and sum(payload) >= sum(sizes)
    assert len(calls) >= len(sizes) * max(sizes) // budget and max(calls) <= budget, calls


# --------------------------------------------------------------------------------------------- out=


OUT_FILES = ["emri_small.dcm", "emri_small_RLE.dcm", "emri_small_jpeg_2k_lossless.dcm", "color3d_jpeg_baseline.dcm",
             "emri_small_jpeg_ls_lossless.dcm", "emri_small_big_endian.dcm", "SC_rgb_rle_2frame.dcm"]


@pytest.mark.parametrize("name", OUT_FILES)
def test_out_is_written_by_the_kernels_without_a_temporary(name, monkeypatch):
    """pixel_array(out=device array): the result is `out`, equal to the device path's own result (and to
    the CPU path's where lossless), with no device allocation of the output's size along the way: the
    kernels write `out`; what needs an intermediate (RLE planar or Bits Stored, JPEG upsampling) holds
    one batch of frames (here one frame a batch)."""
    from gpudcm.cuda import jpeg_path, pipeline

    monkeypatch.setattr(rle, "RLE_BATCH_BYTES", 1)
    monkeypatch.setattr(jpeg_path, "JPEG_BATCH_BYTES", 1)
    monkeypatch.setattr(pipeline, "DEFAULT_BATCH_BYTES", 1)
    path = get_testdata_file(name)
    with on_host_device(monkeypatch, CountingOps()):
        want = gpudcm.pixel_array(path, device="cuda")
    with on_host_device(monkeypatch, CountingOps()) as ops:
        buf = np.zeros(want.shape, want.dtype)
        got = gpudcm.pixel_array(path, out=buf, device="cuda")
    assert got is buf
    np.testing.assert_array_equal(buf, want)
    if "baseline" not in name:
        np.testing.assert_array_equal(buf, gpudcm.pixel_array(path, device="cpu"))
    assert all(n < buf.nbytes for n in ops.allocations), (ops.allocations, buf.nbytes)


def test_out_of_one_frame_and_of_a_subset(medium, monkeypatch):
    for kind in ("native", "rle"):
        path = medium[kind]
        frame, two = np.zeros((512, 512), np.uint16), np.zeros((2, 512, 512), np.uint16)
        with on_host_device(monkeypatch, CountingOps()) as ops:
            assert gpudcm.pixel_array(path, index=3, out=frame, device="cuda") is frame
            assert gpudcm.pixel_array(path, indices=[-1, 4], out=two, device="cuda") is two
        whole = pydicom_pixel_array(path)
        np.testing.assert_array_equal(frame, whole[3])
        np.testing.assert_array_equal(two, whole[[-1, 4]])
        assert all(n < FRAME for n in ops.allocations), ops.allocations


def test_decode_batch_out_fills_each_slot_in_place(medium, monkeypatch):
    paths = [medium["rle"], medium["rle"], get_testdata_file("emri_small_jpeg_2k_lossless.dcm")]
    for group in (paths[:2], [paths[2]] * 3, [medium["native"]] * 2):
        with on_host_device(monkeypatch, CountingOps()):
            want = gpudcm.decode_batch(group, device="cuda", stack=True)
        with on_host_device(monkeypatch, CountingOps()) as ops:
            buf = np.zeros(want.shape, want.dtype)
            assert gpudcm.decode_batch(group, out=buf, device="cuda") is buf
        np.testing.assert_array_equal(buf, want)
        assert all(n < buf[0].nbytes for n in ops.allocations), (ops.allocations, buf[0].nbytes)


def test_out_that_is_not_contiguous_is_refused_first(medium, monkeypatch):
    read = _reads(monkeypatch)
    with on_host_device(monkeypatch, CountingOps()):
        with pytest.raises(gpudcm.GpudcmError, match="C-contiguous"):
            gpudcm.pixel_array(medium["rle"], index=0, out=np.zeros((512, 1024), np.uint16)[:, ::2], device="cuda")
    assert [n for _, n in read if n > 8] == []


# ------------------------------------------------------------------------------- on a GPU (ci/gpu.sh)


@pytest.mark.gpu
def test_gpu_whole_rle_file_host_memory_is_one_batch(tmp_path):
    """A ~160 MB, 300-frame RLE file decoded whole on the device, in a fresh process: the host's peak RSS
    growth is one batch of compressed frames in pinned staging (32 MB) plus slack, not the element
    (the old path read the element and copied it into staging: 2 x 160 MB). Values equal the CPU path."""
    path = bigfiles.write_rle(tmp_path / "rle.dcm", frames=300)
    warm = get_testdata_file("emri_small_RLE.dcm")
    got = bigfiles.measure_in_subprocess("gpudcm-cuda", "whole", str(path), 0, warm)
    size = path.stat().st_size
    assert got["shape"] == [300, 512, 512]
    assert got["checksum"] == bigfiles._checksum(gpudcm.pixel_array(path, device="cpu"))
    assert got["peak_over_base"] <= 32 * MB + 64 * MB < size, (got, size)


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["rle", "native", "emri_small_jpeg_2k_lossless.dcm", "emri_small_RLE.dcm"])
def test_gpu_out_gets_no_temporary_of_its_size(name, medium, monkeypatch):
    """pixel_array(out=cupy array) on a GPU: every CuPy allocation during the call is smaller than `out`
    (the kernels write it), and the values equal the CPU path's."""
    import cupy

    from gpudcm.cuda import jpeg_path, pipeline

    for module, name_ in ((rle, "RLE_BATCH_BYTES"), (jpeg_path, "JPEG_BATCH_BYTES"), (pipeline, "DEFAULT_BATCH_BYTES")):
        monkeypatch.setattr(module, name_, 1)  # one frame a batch: uploads and intermediates are a frame
    path = medium[name] if name in medium else get_testdata_file(name)
    want = gpudcm.pixel_array(path, device="cpu")
    buf = cupy.empty(want.shape, dtype=want.dtype)
    gpudcm.pixel_array(path, out=buf, device="cuda")  # kernels compiled, pools warm
    pool = cupy.get_default_memory_pool()
    sizes: list[int] = []
    cupy.cuda.set_allocator(lambda n: sizes.append(n) or pool.malloc(n))
    try:
        got = gpudcm.pixel_array(path, out=buf, device="cuda")
    finally:
        cupy.cuda.set_allocator(pool.malloc)
    assert got is buf
    np.testing.assert_array_equal(cupy.asnumpy(buf), want)
    assert all(n < buf.nbytes for n in sizes), (sizes, buf.nbytes)


def test_native_subset_stages_its_frames_not_the_bytes_between(medium, monkeypatch):
    """indices=[0, -1] of a native file: two frames staged, not the element between them; runs of
    consecutive frames still go in one read."""
    from gpudcm.cuda import pipeline

    path = medium["native"]
    monkeypatch.setattr(pipeline, "DEFAULT_BATCH_BYTES", 3 * FRAME + 64)
    read = _reads(monkeypatch)
    with on_host_device(monkeypatch, CountingOps()) as ops:
        with open_pixels(path) as reader:
            read.clear()
            got = gpudcm.pixel_array(reader, indices=[0, -1, 4, 5, 6], device="cuda")
    np.testing.assert_array_equal(got, pydicom_pixel_array(path)[[0, 11, 4, 5, 6]])
    assert max(ops.staging) <= 3 * FRAME + 64 and max(n for _, n in read) <= 3 * FRAME + 2
    assert sorted(n for _, n in read) == [FRAME, FRAME, 3 * FRAME]
