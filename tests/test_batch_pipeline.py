"""decode_batch(device="cpu") on the batch threads (the calling thread and the pool each open and decode the
next source): results in input order and equal to pydicom, failures in their slots or raised, every
source ticked once, nothing left open, and a caller's streams read one at a time."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm

CT, MR, RLE = (get_testdata_file(n) for n in ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm"))


@pytest.fixture(autouse=True)
def _threads_only(monkeypatch):
    """These tests are about the batch threads: worker processes (tests/test_file_pool.py) stay off."""
    monkeypatch.setenv("GPUDCM_CPU_PROCESSES", "0")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


@pytest.mark.parametrize("workers", [None, 1, 2, 3])
def test_mixed_sources_in_order_with_failures_in_their_slots(tmp_path, workers):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all" * 10)
    sources = [CT, MR, str(bad), RLE, open(CT, "rb").read(), dcmread(MR), CT, str(bad), RLE] * 3
    want = {CT: pydicom_pixel_array(CT), MR: pydicom_pixel_array(MR), RLE: pydicom_pixel_array(RLE)}
    ticks = []
    before = _fds()
    got = gpudcm.decode_batch(sources, device="cpu", workers=workers, on_error="return",
                              progress=lambda done, total: ticks.append((done, total)))
    assert _fds() == before
    assert len(got) == len(sources) and len(ticks) == len(sources) and ticks[-1] == (len(sources), len(sources))
    for src, arr in zip(sources, got):
        if isinstance(src, str) and src.endswith("bad.dcm"):
            assert isinstance(arr, gpudcm.GpudcmError)
            continue
        key = CT if isinstance(src, bytes) else MR if not isinstance(src, str) else src
        np.testing.assert_array_equal(arr, want[key])


def test_a_failure_is_raised_and_the_rest_are_closed(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 300)
    before = _fds()
    with pytest.raises(gpudcm.GpudcmError):
        gpudcm.decode_batch([CT, RLE] * 5 + [str(bad)] + [CT] * 5, device="cpu", workers=2)
    assert _fds() == before


@pytest.mark.parametrize("workers", [2, 3])
def test_after_a_failure_no_new_source_is_started(tmp_path, monkeypatch, workers):
    """The lowest-index error is raised; sources after it are not opened (a few in flight may finish),
    at most `workers` are open at a time, and every opened file is closed."""
    from gpudcm import api

    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 300)
    opened, open_now, most = [], [0], [0]
    real_open = api.open_pixels

    def counting(src, *args, **kwargs):
        reader = real_open(src, *args, **kwargs)
        opened.append(src)
        open_now[0] += 1
        most[0] = max(most[0], open_now[0])
        close = reader.close

        def closing():
            open_now[0] -= 1
            close()

        reader.close = closing
        return reader

    monkeypatch.setattr(api, "open_pixels", counting)
    sources = [CT] * 4 + [str(bad)] + [CT] * 200 + [str(bad)]
    before = _fds()
    with pytest.raises(gpudcm.GpudcmError, match="bad.dcm"):
        gpudcm.decode_batch(sources, device="cpu", workers=workers)
    assert len(opened) < 60, len(opened)  # not the 200 after it (a thread may finish a few while the bad one fails)
    assert most[0] <= workers and open_now[0] == 0
    assert _fds() == before


def test_a_callers_streams_are_read_one_at_a_time():
    """The same file object twice: opened and read in turn (not by two threads at once)."""
    with open(CT, "rb") as fp:
        got = gpudcm.decode_batch([fp, fp, fp], device="cpu")
    for arr in got:
        np.testing.assert_array_equal(arr, pydicom_pixel_array(CT))
    buf = io.BytesIO(open(RLE, "rb").read())
    for arr in gpudcm.decode_batch([buf, buf], device="cpu"):
        np.testing.assert_array_equal(arr, pydicom_pixel_array(RLE))
