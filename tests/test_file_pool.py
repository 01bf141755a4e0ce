"""decode_batch(device="cpu") of many paths on worker processes (gpudcm.file_pool, gpudcm.shared_slabs):
the whole corpus equal to pydicom through the pool, results private to this process, errors in order and
as raised in-process, out=/index=/return_info/progress as on the threads, a killed worker's files decoded
here, and the slabs' reuse and bounds."""

from __future__ import annotations

import os
import pickle
import sys
import warnings

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from gpudcm import file_pool, shared_slabs
from gpudcm.codecs import processes
from corpus import corpus_files, reference
from test_parity import assert_matches

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not shared_slabs.available(),
                                reason="worker processes decode into Linux memory files")

CT, MR, RLE = (get_testdata_file(n) for n in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm"))


class CountingPool:
    """The real forked pool, its submissions counted (files per chunk), optionally one worker killed."""

    def __init__(self, kill_on: int | None = None):
        self.files, self.calls, self.kill_on = 0, 0, kill_on
        self.under_way = self.most = 0  # chunks submitted and not yet done
        self.real = processes._pool

    def __call__(self, n: int):
        self.pool = self.real(n)
        return self

    def cache_clear(self) -> None:
        self.real.cache_clear()

    def submit(self, fn, *args):
        self.calls += 1
        if self.calls == self.kill_on:
            self.pool.submit(os._exit, 3)  # a worker dies: every task under way breaks
        if fn is file_pool._decode_chunk:
            self.files += len(args[2])
        fut = self.pool.submit(fn, *args)
        self.under_way += 1
        self.most = max(self.most, self.under_way)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut) -> None:
        self.under_way -= 1


@pytest.fixture
def counting(monkeypatch):
    pool = CountingPool()
    monkeypatch.setattr(processes, "_pool", pool)
    return pool


def _threads(sources, **kwargs):
    os.environ["GPUDCM_CPU_PROCESSES"] = "0"
    try:
        return gpudcm.decode_batch(sources, device="cpu", **kwargs)
    finally:
        del os.environ["GPUDCM_CPU_PROCESSES"]


def test_the_corpus_through_the_pool_equals_pydicom(counting):
    files = [str(p) for p in corpus_files()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = gpudcm.decode_batch([CT, *files], device="cpu", workers=2, on_error="return")[1:]
    assert counting.files == len(files)  # every one went to a worker
    assert counting.most >= 3  # chunks queued ahead: no worker waits for this process to copy one out
    checked = 0
    for path, arr in zip(files, got):
        ref = reference(path)
        if isinstance(ref, Exception):
            assert isinstance(arr, gpudcm.GpudcmError), (path, type(arr))
            continue
        assert not isinstance(arr, Exception), (path, arr)
        assert_matches(arr, ref, path)
        checked += 1
    assert checked > 100


def test_results_fit_or_not_their_slots_in_order(counting):
    # MR_small (8 KiB) sizes the slots: CT_small (32 KiB) comes back pickled, RLE (8 KiB) in its slot
    sources = [MR, CT, RLE, MR] * 4
    got = gpudcm.decode_batch(sources, device="cpu", workers=2)
    assert counting.files == len(sources) - 1
    for src, arr in zip(sources, got):
        np.testing.assert_array_equal(arr, pydicom_pixel_array(src))
        assert arr.flags.writeable and arr.flags.c_contiguous


def test_results_are_private_to_this_process(counting):
    """A slab is shared with the workers: what is handed out is a copy, so a forked child (a DataLoader
    worker) writing into a result in place changes its own copy only, and the next batch reuses the slab
    without touching the last batch's results."""
    first = gpudcm.decode_batch([CT] * 10, device="cpu", workers=2)
    want = pydicom_pixel_array(CT)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        for arr in first:
            arr[...] = 7
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    second = gpudcm.decode_batch([MR] * 10, device="cpu", workers=2)
    for arr in first:
        np.testing.assert_array_equal(arr, want)
    for arr in second:
        np.testing.assert_array_equal(arr, pydicom_pixel_array(MR))
    assert counting.files == 18


def test_errors_in_their_slots_as_in_process(tmp_path, counting):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all" * 10)
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(open(CT, "rb").read()[:-1000])
    sources = [CT, str(bad), RLE, str(cut), MR] * 3
    got = gpudcm.decode_batch(sources, device="cpu", workers=2, on_error="return")
    want = _threads(sources, workers=2, on_error="return")
    assert counting.files == len(sources) - 1
    for g, w in zip(got, want):
        if isinstance(w, Exception):
            assert type(g) is type(w) and str(g) == str(w)
        else:
            np.testing.assert_array_equal(g, w)


def test_an_error_that_is_not_gpudcms_is_raised_as_in_process(tmp_path, counting):
    sources = [CT] * 5 + [str(tmp_path / "missing.dcm")] + [CT] * 5
    for decode in (lambda s: gpudcm.decode_batch(s, device="cpu", workers=2, on_error="return"),
                   lambda s: _threads(s, workers=2, on_error="return")):
        with pytest.raises(FileNotFoundError):
            decode(sources)
    assert counting.files == len(sources) - 1


def test_the_first_error_is_raised_and_the_rest_not_started(tmp_path, counting, monkeypatch):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 300)
    sources = [CT] * 4 + [str(bad)] + [CT] * 400 + [str(tmp_path / "missing.dcm")]
    taken, given = [], []
    real_take, real_give = shared_slabs.take, shared_slabs.give
    monkeypatch.setattr(shared_slabs, "take", lambda size: taken.append(real_take(size)) or taken[-1])
    monkeypatch.setattr(shared_slabs, "give", lambda slab: given.append(slab) or real_give(slab))
    with pytest.raises(gpudcm.GpudcmError, match="bad.dcm"):
        gpudcm.decode_batch(sources, device="cpu", workers=2)
    assert 0 < counting.files < 200
    assert len(taken) > 1 and sorted(map(id, taken)) == sorted(map(id, given))  # the chunks under way finished, their slabs back


def test_options_as_on_the_threads(counting):
    sources = [get_testdata_file("emri_small.dcm")] * 9  # 10 frames each
    for kwargs in ({"index": 3}, {"index": -1}, {"stack": True}, {"return_info": True}):
        got, want = (f(sources, workers=2, **kwargs) for f in (lambda s, **k: gpudcm.decode_batch(s, device="cpu", **k),
                                                             _threads))
        if kwargs.get("return_info"):
            assert got[1] == want[1] and len(got[1]) == 90
            got, want = got[0], want[0]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    out = np.zeros((9, 10, 64, 64), np.uint16)
    ticks = []
    res = gpudcm.decode_batch(sources, device="cpu", workers=2, out=out, progress=lambda d, t: ticks.append(d))
    assert res is out and ticks == list(range(1, 10))
    np.testing.assert_array_equal(out, np.stack(want))
    mixed = sources[:8] + [MR]  # MR_small is one 64x64 int16 frame
    with pytest.raises(gpudcm.GpudcmError, match=r"MR_small.dcm: out= is \(10, 64, 64\) uint16 but the frames decode to \(64, 64\) int16"):
        gpudcm.decode_batch(mixed, device="cpu", workers=2, out=np.zeros((9, 10, 64, 64), np.uint16))


@pytest.mark.parametrize("kill_on", [1, 5])  # before the first chunk; after the first chunk came back
def test_a_killed_worker_leaves_its_files_to_this_process(monkeypatch, kill_on):
    pool = CountingPool(kill_on=kill_on)
    monkeypatch.setattr(processes, "_pool", pool)
    taken, back = [], []
    real_take, real_give, real_close = shared_slabs.take, shared_slabs.give, shared_slabs.Slab.close
    monkeypatch.setattr(shared_slabs, "take", lambda size: taken.append(real_take(size)) or taken[-1])
    monkeypatch.setattr(shared_slabs, "give", lambda slab: back.append(slab) or real_give(slab))
    monkeypatch.setattr(shared_slabs.Slab, "close", lambda slab: back.append(slab) or real_close(slab))
    sources = [CT, RLE, MR] * 10
    got = gpudcm.decode_batch(sources, device="cpu", workers=2)
    pool.pool.shutdown(wait=True)  # the broken pool's pipes closed before the next test counts descriptors
    assert len(got) == len(sources)
    for src, arr in zip(sources, got):
        np.testing.assert_array_equal(arr, pydicom_pixel_array(src))
    assert {id(s) for s in taken} <= {id(s) for s in back}  # every slab given back or closed
    again = gpudcm.decode_batch(sources, device="cpu", workers=2)  # a new pool
    for src, arr in zip(sources, again):
        np.testing.assert_array_equal(arr, pydicom_pixel_array(src))


def test_when_the_pool_is_used(monkeypatch, tmp_path):
    paths = [CT] * file_pool.MIN_FILES
    assert file_pool.usable(paths, 2)
    assert not file_pool.usable(paths, 1)
    assert not file_pool.usable(paths[:-1], 2)
    assert not file_pool.usable(paths[:-1] + [open(CT, "rb").read()], 2)
    monkeypatch.setenv("GPUDCM_CPU_PROCESSES", "0")
    assert not file_pool.usable(paths, 2)
    monkeypatch.delenv("GPUDCM_CPU_PROCESSES")
    monkeypatch.setattr(file_pool, "_in_worker", True)  # a worker decodes its own files in turn
    assert not file_pool.usable(paths, 2)
    monkeypatch.setattr(file_pool, "_in_worker", False)

    class Daemonic:
        daemon = True

    monkeypatch.setattr(file_pool.multiprocessing, "current_process", Daemonic)  # a DataLoader or Dask worker
    assert not file_pool.usable(paths, 2)
    monkeypatch.undo()
    assert file_pool.usable([os.path.abspath(CT)] * 8, 2) and file_pool.usable([type(tmp_path)(CT)] * 8, 2)


def test_a_chunk_in_a_worker_names_what_it_wrote(monkeypatch):
    from gpudcm import api

    threads, real = [], api._cpu_decode
    monkeypatch.setattr(api, "_cpu_decode", lambda *a, **k: threads.append(k["threads"]) or real(*a, **k))
    slab = shared_slabs.take(3 * 8192)
    try:
        done = file_pool._decode_chunk((slab.id, slab.path, slab.size), 8192, [MR, CT, "/nonexistent.dcm"], None,
                                       False, True, True)
        assert file_pool._in_worker  # its own files decode in turn: no pool of its own
    finally:
        file_pool._in_worker = False
    assert done[0][0] == "slot" and tuple(done[0][1]) == (64, 64) and done[0][3] == [0]
    np.testing.assert_array_equal(np.frombuffer(slab.mapping, np.dtype(done[0][2]), 4096).reshape(64, 64),
                                  pydicom_pixel_array(MR))
    assert done[1][0] == "array"  # 32 KiB: not in an 8 KiB slot
    np.testing.assert_array_equal(done[1][1], pydicom_pixel_array(CT))
    assert done[2][0] == "error" and isinstance(done[2][1], (gpudcm.GpudcmError, OSError))
    assert threads == [1, 1]  # a worker's frames decode on it alone (the workers are the cores)
    shared_slabs.give(slab)


def test_chunks_share_the_files_within_the_slab_bound():
    assert file_pool.files_per_chunk(299, 2, 512 << 10) == file_pool.MAX_CHUNK_FILES
    assert file_pool.files_per_chunk(40, 2, 512 << 10) == 5  # four chunks a worker
    assert file_pool.files_per_chunk(3, 2, 4096) == 1
    assert file_pool.files_per_chunk(299, 2, 40 << 20) == 1  # two would pass MAX_SLAB_BYTES


def test_a_mixed_batch_grows_its_slots(counting, monkeypatch):
    """The first file (8 KiB) sizes the slots; CT_small (32 KiB) comes back pickled once, then fits."""
    seen = []
    real = shared_slabs.take
    monkeypatch.setattr(shared_slabs, "take", lambda size: seen.append(size) or real(size))
    monkeypatch.setattr(file_pool, "MAX_CHUNK_FILES", 2)
    sources = [MR] + [CT] * 30
    got = gpudcm.decode_batch(sources, device="cpu", workers=2)
    assert seen[0] == 2 * 8192 and seen[-1] == 2 * 32768  # asked for; take() rounds up to a power of two
    for src, arr in zip(sources, got):
        np.testing.assert_array_equal(arr, pydicom_pixel_array(src))


def test_errors_survive_the_trip_back():
    err = gpudcm.DecodeError("codec failed", source="a.dcm", frame=3)
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is gpudcm.DecodeError and str(again) == str(err) == "a.dcm, frame 3: codec failed"
    assert (again.source, again.frame) == ("a.dcm", 3)

    class Odd(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}{b}")

    odd = file_pool._picklable(Odd(1, 2))
    assert isinstance(odd, gpudcm.GpudcmError) and "Odd: 12" in str(odd)
    plain = FileNotFoundError(2, "gone")
    assert file_pool._picklable(plain) is plain


# ------------------------------------------------------------------------------------------ slabs


def test_slabs_are_reused_and_bounded(monkeypatch):
    shared_slabs.clear()
    a = shared_slabs.take(10_000)
    assert a.size == 16384 and len(a.mapping) == a.size  # a power of two: reused by the next size near it
    others = [shared_slabs.take(1), shared_slabs.take(4096), shared_slabs.take(16385)]
    assert [o.size for o in others] == [4096, 4096, 32768]
    for o in others:
        o.close()
    a.mapping[:4] = b"abcd"
    shared_slabs.give(a)
    assert shared_slabs.kept_bytes() == a.size
    b = shared_slabs.take(12000)
    assert b is a and shared_slabs.kept_bytes() == 0
    monkeypatch.setattr(gpudcm.host_memory, "limit", 0)
    shared_slabs.give(b)  # past the limit: closed
    assert shared_slabs.kept_bytes() == 0 and b.mapping.closed
    with pytest.raises(OSError):
        os.fstat(b.fd)


def test_a_worker_maps_a_slab_once_and_keeps_a_bounded_few(monkeypatch):
    monkeypatch.setattr(shared_slabs, "WORKER_KEEP_BYTES", 3 * 8192)
    monkeypatch.setattr(shared_slabs, "_attached", type(shared_slabs._attached)())
    monkeypatch.setattr(shared_slabs, "_attached_bytes", 0)
    slabs = [shared_slabs.take(8192) for _ in range(5)]
    slabs[0].mapping[:3] = b"xyz"
    m = shared_slabs.attach(slabs[0].id, slabs[0].path, 8192)
    assert m[:3] == b"xyz" and shared_slabs.attach(slabs[0].id, slabs[0].path, 8192) is m
    m[3:6] = b"uvw"  # shared both ways
    assert slabs[0].mapping[:6] == b"xyzuvw"
    m1 = shared_slabs.attach(slabs[1].id, slabs[1].path, 8192)
    m2 = shared_slabs.attach(slabs[2].id, slabs[2].path, 8192)
    assert shared_slabs.attach(slabs[0].id, slabs[0].path, 8192) is m  # used again: the most recent
    shared_slabs.attach(slabs[3].id, slabs[3].path, 8192)
    assert m1.closed and not m.closed  # the least recently used unmapped
    shared_slabs.attach(slabs[4].id, slabs[4].path, 8192)
    assert shared_slabs.attached_bytes() == 3 * 8192 and m2.closed and not m.closed
    with pytest.raises(OSError):
        shared_slabs.attach(99, slabs[1].path, 1 << 20)  # smaller than asked for
    for s in slabs:
        s.close()


def test_a_forked_child_keeps_none_of_its_parents_slabs():
    slab = shared_slabs.take(8192)
    shared_slabs.give(slab)
    assert shared_slabs.kept_bytes() >= 8192
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os._exit(0 if shared_slabs.kept_bytes() == 0 and not shared_slabs._free and slab.mapping.closed else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert not slab.mapping.closed and shared_slabs.kept_bytes() >= 8192


# ------------------------------------------------------------------------------------------ frames


def test_a_long_file_of_a_gil_holding_codec_decodes_its_frames_through_slabs(counting):
    path = get_testdata_file("color3d_jpeg_baseline.dcm")  # 120 lossy YCbCr frames: pydicom's plugin
    got = gpudcm.pixel_array(path, device="cpu")
    assert counting.calls >= 4  # chunks of at most MAX_CHUNK_FRAMES frames, not one pickled array a worker
    assert counting.most >= 3  # chunks queued ahead of the one being copied out
    np.testing.assert_array_equal(got, pydicom_pixel_array(path))
    assert shared_slabs.kept_bytes() > 0


def test_a_killed_frame_worker_leaves_the_frames_to_this_process(monkeypatch):
    pool = CountingPool(kill_on=2)
    monkeypatch.setattr(processes, "_pool", pool)
    path = get_testdata_file("color3d_jpeg_baseline.dcm")
    got = gpudcm.pixel_array(path, device="cpu")
    pool.pool.shutdown(wait=True)
    np.testing.assert_array_equal(got, pydicom_pixel_array(path))


def test_host_memory_clear_closes_the_kept_slabs_too():
    slab = shared_slabs.take(8192)
    shared_slabs.give(slab)
    assert shared_slabs.kept_bytes() > 0
    gpudcm.host_memory.clear()
    assert shared_slabs.kept_bytes() == 0 and slab.mapping.closed
