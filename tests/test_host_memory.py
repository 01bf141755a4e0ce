"""gpudcm.host_memory: decoded arrays from reused mappings, handed out again only once every view of the
last array is gone, bounded by its limit, and the decoders' results through it equal pydicom's."""

from __future__ import annotations

import gc
import os
import sys
import threading

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from gpudcm import host_memory

BIG = (512, 512)  # uint16: 512 KiB, above MIN_BYTES


@pytest.fixture
def fresh(monkeypatch):
    host_memory.clear()
    monkeypatch.setattr(host_memory, "limit", 32 << 20)
    yield
    host_memory.clear()


def _address(arr: np.ndarray) -> int:
    return arr.__array_interface__["data"][0]


def test_like_np_empty(fresh):
    arr = host_memory.empty(BIG, np.uint16)
    assert arr.shape == BIG and arr.dtype == np.uint16 and arr.flags.c_contiguous and arr.flags.writeable
    small = host_memory.empty((4, 5), ">i4")
    assert small.shape == (4, 5) and small.dtype == np.dtype(">i4")
    odd = host_memory.empty((3, 1001, 97), np.uint8)  # not a page multiple
    odd[...] = 7
    assert odd.sum() == 7 * odd.size


def test_a_block_is_reused_only_after_its_last_view_is_gone(fresh):
    arr = host_memory.empty(BIG, np.uint16)
    arr[...] = 1234
    where = _address(arr)
    view = arr[100:200]
    del arr
    gc.collect()
    assert host_memory.kept_bytes() == 0  # a view still holds it
    other = host_memory.empty(BIG, np.uint16)
    assert _address(other) != where
    other[...] = 0
    assert (view == 1234).all()  # the view's memory was not handed out
    del view
    again = host_memory.empty(BIG, np.uint16)
    assert _address(again) == where  # now it is
    assert host_memory.kept_bytes() == 0


def test_the_limit_bounds_what_is_kept(fresh, monkeypatch):
    monkeypatch.setattr(host_memory, "limit", 1 << 20)  # two 512 KiB blocks
    arrays = [host_memory.empty(BIG, np.uint16) for _ in range(4)]
    del arrays
    assert host_memory.kept_bytes() == 1 << 20
    host_memory.clear()
    assert host_memory.kept_bytes() == 0
    monkeypatch.setattr(host_memory, "limit", 0)
    arr = host_memory.empty(BIG, np.uint16)
    assert arr.base is None  # plain NumPy when nothing may be kept
    del arr
    assert host_memory.kept_bytes() == 0


def test_small_arrays_stay_plain_numpy(fresh):
    arr = host_memory.empty((16, 16), np.uint16)
    assert arr.base is None
    del arr
    assert host_memory.kept_bytes() == 0


def test_threads_take_distinct_blocks(fresh):
    """Arrays freed and taken on several threads at once: no block is handed to two live arrays."""
    errors = []

    def work(value: int) -> None:
        for _ in range(50):
            arr = host_memory.empty(BIG, np.uint16)
            arr[...] = value
            if not (arr == value).all():
                errors.append(value)

    threads = [threading.Thread(target=work, args=(v,)) for v in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert host_memory.kept_bytes() <= host_memory.limit


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork")
def test_a_forked_child_does_not_share_kept_blocks(fresh):
    """Parent and forked child (a DataLoader worker) both take the block kept before the fork and write it:
    each sees only its own values (a shared mapping would let them overwrite each other's arrays)."""
    arr = host_memory.empty(BIG, np.uint16)
    del arr
    assert host_memory.kept_bytes() > 0
    to_child, to_parent = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a fresh lock, the kept block usable, and private
        ok = False
        try:
            mine = host_memory.empty(BIG, np.uint16)
            mine[...] = 3
            os.write(to_parent[1], b"w")
            os.read(to_child[0], 1)  # the parent has written its own block
            ok = bool((mine == 3).all())
        finally:
            os._exit(0 if ok else 1)
    os.read(to_parent[0], 1)
    theirs = host_memory.empty(BIG, np.uint16)
    theirs[...] = 5
    os.write(to_child[1], b"w")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert (theirs == 5).all()
    for fd in (*to_child, *to_parent):
        os.close(fd)


def test_the_segment_buffer_is_private_to_a_forked_child(fresh):
    """The RLE decoder's per-thread segment buffer, created before a fork, is the child's own copy."""
    from gpudcm.codecs import imagecodecs_codecs as icc

    buf = icc._segment_buffer(1 << 16)
    buf[:] = 1
    pid = os.fork()
    if pid == 0:
        child = icc._segment_buffer(1 << 16)
        child[:] = 9
        os._exit(0)
    os.waitpid(pid, 0)
    assert (buf == 1).all()


@pytest.mark.parametrize("name", ["693_UNCR.dcm", "OBXXXX1A_rle_2frame.dcm", "US1_UNCR.dcm", "MR2_UNCR.dcm", "emri_small_RLE.dcm"])
def test_decoded_batches_in_reused_memory_equal_pydicom(fresh, name):
    """The same files decoded batch after batch (the second batch in the first one's memory) and the first
    batch's arrays kept alive in between: every array equals pydicom's."""
    path = get_testdata_file(name)
    truth = pydicom_pixel_array(path)
    first = gpudcm.decode_batch([path, path], device="cpu")
    kept = first[0]
    del first
    second = gpudcm.decode_batch([path, path], device="cpu")
    for arr in (kept, *second):
        np.testing.assert_array_equal(arr, truth)
        assert arr.dtype == truth.dtype


def test_large_arrays_stay_plain_numpy(fresh):
    """Above MAX_BYTES NumPy's own allocation (huge pages) is used."""
    arr = host_memory.empty((host_memory.MAX_BYTES + 1,), np.uint8)
    assert arr.base is None
    edge = host_memory.empty((host_memory.MAX_BYTES,), np.uint8)
    assert edge.base is not None


def test_a_small_encapsulated_file_is_read_into_reused_memory(fresh, tmp_path, monkeypatch):
    """An encapsulated element of a small file is read in one call into host_memory (the next file of the
    series reads into the same memory once the first reader is gone); the values stay pydicom's, and after
    a read that comes back short the file is read again the general way (never a short element)."""
    from gpudcm import reader as reader_module

    from datagen import _base_dataset, _rle_outside_profile
    from pydicom.uid import ExplicitVRLittleEndian

    ds = _base_dataset(ExplicitVRLittleEndian, rows=256, cols=256, frames=2, spp=1, photometric="MONOCHROME2",
                       bits_allocated=16, bits_stored=16, pixel_rep=0)
    _rle_outside_profile(ds, np.random.default_rng(3).integers(0, 65535, (2, 256, 256), np.uint16, endpoint=True))
    path = tmp_path / "noise_rle.dcm"  # ~ 260 KB of RLE: above MIN_BYTES
    ds.save_as(path, enforce_file_format=True)
    truth = pydicom_pixel_array(path)
    with gpudcm.open_pixels(path) as r:
        assert not r.is_lazy and r.data.nbytes >= host_memory.MIN_BYTES
        where = np.frombuffer(r.data, np.uint8).__array_interface__["data"][0]
        np.testing.assert_array_equal(gpudcm.pixel_array(r, device="cpu"), truth)
    del r
    gc.collect()
    with gpudcm.open_pixels(path) as r:
        assert np.frombuffer(r.data, np.uint8).__array_interface__["data"][0] == where
        np.testing.assert_array_equal(gpudcm.pixel_array(r, device="cpu"), truth)

    real, calls = os.preadv, []
    monkeypatch.setattr(reader_module.os, "preadv", lambda fd, bufs, off: calls.append(off) or real(fd, bufs, off) - 1)
    with gpudcm.open_pixels(path) as r:
        assert calls and isinstance(r.data, bytes)  # the full dcmread, the second opinion
        np.testing.assert_array_equal(gpudcm.pixel_array(r, device="cpu"), truth)
