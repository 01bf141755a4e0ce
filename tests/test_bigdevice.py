"""The device path on big files (issue 15), through the host build of the kernels (HostOps) and the CuPy
stand-in: each frame's bytes are read through the reader's extents straight into the staging buffer,
batch by batch (no read spans the element, the staging never exceeds one batch), for native, RLE and
JPEG-family files; ``out=`` receives the kernels' output with no temporary of its size; values equal the
CPU path's. The ``gpu`` tests repeat the memory checks on a real device (ci/gpu.sh)."""

from __future__ import annotations

import contextlib
import shutil

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


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    d = tmp_path_factory.mktemp("bigdevice")
    yield {"native": bigfiles.write_native(d / "native.dcm", frames=12),
           "rle": bigfiles.write_rle(d / "rle.dcm", frames=12)}
    shutil.rmtree(d, ignore_errors=True)


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
