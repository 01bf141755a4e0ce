"""The serial/threaded decision of a file's frames on the CPU (issue 16 item 4): small frames decode on
the calling thread (handing them to the pool costs more than a second core gains), large ones on the
pool, one contiguous chunk per thread; the values are pydicom's either way."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

import gpudcm
from gpudcm.codecs import decode as codec_decode
from corpus import corpus_files, reference


def _rle(path, frames: int, side: int):
    rng = np.random.default_rng(side)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = side
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.NumberOfFrames = 1, "MONOCHROME2", frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    arr = rng.integers(0, 4096, size=(frames, side, side), dtype=np.uint16)
    ds.set_original_encoding(False, True)
    ds.PixelData = arr.tobytes()
    ds.compress(RLELossless, arr)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


class _CountingPool:
    """Stands in for the shared ThreadPoolExecutor: runs each task at once, counting the hand-overs."""

    def __init__(self, calls: list):
        self.calls = calls

    def submit(self, fn, *args):
        from concurrent.futures import Future

        self.calls.append(args)
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut


@pytest.fixture
def pool_calls(monkeypatch):
    calls: list = []
    monkeypatch.setattr(codec_decode, "_pool", lambda threads, pid: _CountingPool(calls))
    return calls


def test_threads_only_when_each_gets_enough_bytes():
    small = gpudcm.open_pixels(str(next(p for p in corpus_files() if p.name == "rtdose_rle.dcm"))).spec
    assert codec_decode.frame_threads(small, small.number_of_frames, 2) == 1  # 15 frames of 10 x 10
    per_frame = small.frame_pixels * small.dtype.itemsize
    enough = -(-2 * codec_decode.MIN_THREAD_BYTES // per_frame)  # frames for two full threads
    assert codec_decode.frame_threads(small, enough, 2) == 2
    assert codec_decode.frame_threads(small, enough - 1, 2) == 1
    assert codec_decode.frame_threads(small, 10 * enough, 1) == 1  # never more than asked for
    assert codec_decode.frame_threads(small, 1, 8) == 1


def test_small_multiframe_file_decodes_serially(pool_calls):
    path = next(p for p in corpus_files() if p.name == "rtdose_rle.dcm")
    got = gpudcm.decode_batch([path], device="cpu", workers=2)[0]
    np.testing.assert_array_equal(got, reference(path))
    assert pool_calls == []


def test_large_multiframe_file_uses_the_pool_in_chunks(tmp_path, pool_calls):
    side = 256
    frames = -(-4 * codec_decode.MIN_THREAD_BYTES // (side * side * 2))  # two threads, twice over
    path = _rle(tmp_path / "big_rle.dcm", frames, side)
    got = gpudcm.decode_batch([path], device="cpu", workers=2)[0]
    np.testing.assert_array_equal(got, reference(path))
    assert pool_calls == [(1,)]  # one hand-over: the second half of the frames (this thread ran the first)


def test_chunk_map_keeps_order_and_covers_every_item(pool_calls):
    assert codec_decode.chunk_map(lambda k: k * k, 7, 3) == [k * k for k in range(7)]
    assert len(pool_calls) == 2
    assert codec_decode.chunk_map(lambda k: k, 1, 4) == [0]
