"""The serial/threaded decision of a file's frames on the CPU (issue 16 item 4): small frames decode on
the calling thread (handing them to the pool costs more than a second core gains), large ones on the
pool; the values are pydicom's either way."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import dcmwrite
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

import gpudcm
from gpudcm.codecs import decode as codec_decode
from corpus import corpus_files, reference
from datagen import _base_dataset


def _rle(path, frames: int, side: int):
    rng = np.random.default_rng(side)
    ds = _base_dataset(ExplicitVRLittleEndian, rows=side, cols=side, frames=frames, spp=1, photometric="MONOCHROME2",
                       bits_allocated=16, bits_stored=12, pixel_rep=0)
    arr = rng.integers(0, 4096, size=(frames, side, side), dtype=np.uint16)
    ds.set_original_encoding(False, True)
    ds.PixelData = arr.tobytes()
    ds.compress(RLELossless, arr)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


class _CountingPool:
    """Stands in for the shared ThreadPoolExecutor (``submit`` and ``map`` as concurrent.futures defines
    them): runs each task at once on this thread, recording the hand-overs."""

    def __init__(self, calls: list):
        self.calls = calls

    def submit(self, fn, *args):
        from concurrent.futures import Future

        self.calls.append(args)
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def map(self, fn, items):
        items = list(items)
        self.calls.extend((x,) for x in items)
        return iter([fn(x) for x in items])


@pytest.fixture
def pool_calls(monkeypatch):
    calls: list = []
    monkeypatch.setattr(codec_decode, "_pool", lambda threads, pid: _CountingPool(calls))
    return calls


def test_threads_only_when_each_gets_enough_work():
    least, floor = codec_decode.MIN_THREAD_SECONDS, codec_decode.MIN_THREAD_BYTES
    big = floor  # bytes per frame: never the limit below
    assert codec_decode.frame_threads(14, 20e-6, 2, big) == 1  # e.g. small RLE frames: microseconds each
    assert codec_decode.frame_threads(8, least / 5, 2, big) == 1  # two threads would get 0.8 of the minimum
    assert codec_decode.frame_threads(8, least / 4, 2, big) == 2  # the minimum each
    assert codec_decode.frame_threads(8, least, 8, big) == 8
    assert codec_decode.frame_threads(100, least, 1, big) == 1  # never more than asked for
    assert codec_decode.frame_threads(1, 1.0, 8, big) == 1  # nor more than frames
    assert codec_decode.frame_threads(13, 1.0, 2, 400) == 1  # tiny frames stay here, however slow the first was
    assert codec_decode.frame_threads(8, 1.0, 2, floor // 4) == 2  # 2 x floor bytes in all


def test_small_multiframe_file_decodes_serially(pool_calls):
    path = next(p for p in corpus_files() if p.name == "rtdose_rle.dcm")
    got = gpudcm.decode_batch([path], device="cpu", workers=2)[0]
    np.testing.assert_array_equal(got, reference(path))
    assert pool_calls == []


def test_large_multiframe_file_uses_the_pool(tmp_path, pool_calls):
    path = big_rle(tmp_path / "big_rle.dcm")
    got = gpudcm.decode_batch([path], device="cpu", workers=2)[0]
    np.testing.assert_array_equal(got, reference(path))
    assert pool_calls  # the frames after the first two (timed on this thread) went to the pool


def big_rle(path):
    """8 frames of 512 x 512 12-bit noise: each frame's RLE decode takes well over MIN_THREAD_SECONDS."""
    return _rle(path, 8, 512)


def test_a_frame_decoded_alone_lends_the_cores_to_openjpeg(monkeypatch):
    """A single J2K frame (nothing else to run beside it) of 48 KiB or more decodes with OpenJPEG's own
    threads, all cores (a smaller one does not pay for starting them); frames beside other decoding threads
    (sharing_gil) keep one each; values stay pydicom's."""
    imagecodecs = pytest.importorskip("imagecodecs")
    from gpudcm.codecs import default_threads, thread_map
    from gpudcm.codecs.parallel import codec_threads, lending_threads, sharing_gil

    files = {p.name: p for p in corpus_files()}
    if "US1_J2KR.dcm" not in files:
        pytest.skip("needs pydicom-data's US1_J2KR.dcm")
    calls = []
    real = imagecodecs.jpeg2k_decode
    monkeypatch.setattr(imagecodecs, "jpeg2k_decode", lambda data, **kw: calls.append(kw.get("numthreads", 1)) or real(data, **kw))
    for name, threads in (("US1_J2KR.dcm", default_threads()), ("MR_small_jp2klossless.dcm", 1)):  # 149 / 4 KiB
        calls.clear()
        np.testing.assert_array_equal(gpudcm.pixel_array(files[name], device="cpu"), reference(files[name]))
        assert calls == [threads], name
    with lending_threads(4):
        assert codec_threads() == 4
        with sharing_gil():
            assert codec_threads() == 1
        assert thread_map(lambda _: codec_threads(), range(3), 2) == [1, 1, 1]
    assert codec_threads() == 1
