"""gpudcm.cpu details the corpus parity sweep does not reach: iter_frames with raw / as_rgb on encapsulated
colour frames, and the frame number and message of a plugin failure (by position and by `indices`)."""

from __future__ import annotations

import copy
import re
import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from gpudcm import DecodeError


def _jpeg_frames(frames_fn) -> object:
    """SC_rgb_jpeg_dcmtk.dcm (YBR_FULL baseline JPEG) re-encapsulated as frames_fn(its one frame)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    frames = frames_fn(frame)
    ds.PixelData = encapsulate(frames)
    ds.NumberOfFrames = len(frames)
    return ds


def _pydicom(ds, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom_pixel_array(copy.deepcopy(ds), **kw)


@pytest.mark.parametrize("opts", [{}, {"raw": True}, {"as_rgb": False}, {"raw": True, "as_rgb": False}])
def test_iter_frames_options_on_encapsulated_colour(opts):
    ds = _jpeg_frames(lambda f: [f, f[:-2] + b"\xff\xd9", f])
    ref = _pydicom(ds, **opts)
    if opts:  # the options change the values (YBR kept), so a dropped option cannot pass
        assert not np.array_equal(ref, _pydicom(ds))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = list(gpudcm.iter_frames(ds, device="cpu", **opts))
        picked = list(gpudcm.iter_frames(ds, device="cpu", indices=[2, 0], **opts))
    assert len(got) == 3
    for i, arr in enumerate(got):
        assert arr.dtype == ref.dtype and arr.shape == ref.shape[1:]
        np.testing.assert_array_equal(arr, ref[i])
    np.testing.assert_array_equal(np.stack(picked), ref[[2, 0]])


def _no_addresses(text: str) -> str:
    return re.sub(r"0x[0-9a-f]+", "0x?", text)  # pydicom's message holds the plugin exception's repr


def _pydicom_failure(bad: bytes) -> BaseException:
    ds = _jpeg_frames(lambda f: [bad])
    with pytest.raises(Exception) as info:  # whatever pydicom raises: the test compares gpudcm's wrapping of it
        _pydicom(ds)
    return info.value


@pytest.mark.parametrize("indices,yielded,failed", [(None, 1, 1), ([2, 1, 0], 1, 1), ([0, 2, 1], 2, 1)])
def test_iter_frames_failure_names_the_frame(indices, yielded, failed):
    bad = b"\x00" * 100
    ds = _jpeg_frames(lambda f: [f, bad, f])
    exc = _pydicom_failure(bad)
    got = []
    with warnings.catch_warnings(), pytest.raises(DecodeError) as info:
        warnings.simplefilter("ignore")
        for arr in gpudcm.iter_frames(ds, device="cpu", indices=indices):
            got.append(arr)
    assert len(got) == yielded
    err = info.value
    assert err.frame == failed and isinstance(err.__cause__, type(exc))
    message = " ".join(str(exc).split())
    assert _no_addresses(str(err)) == _no_addresses(
        f"{err.source}, frame {failed}: JPEG Baseline (Process 1) decode failed: {type(exc).__name__}: {message}")


def test_pixel_array_failure_names_the_frame():
    bad = b"\x00" * 100
    ds = _jpeg_frames(lambda f: [f, f, bad])
    exc = _pydicom_failure(bad)
    with warnings.catch_warnings(), pytest.raises(DecodeError) as info:
        warnings.simplefilter("ignore")
        gpudcm.pixel_array(ds, device="cpu", index=2)
    assert info.value.frame == 2
    assert _no_addresses(str(info.value)).endswith(_no_addresses(
        f"frame 2: JPEG Baseline (Process 1) decode failed: {type(exc).__name__}: " + " ".join(str(exc).split())))


@pytest.mark.parametrize("name", ["ybr_full_4x6x3_le_explicit", "ybr422_6x5x2_le_explicit"])
@pytest.mark.parametrize("opts", [{}, {"raw": True}, {"as_rgb": False}])
def test_iter_frames_options_on_native_ybr(generated, name, opts):
    """Native frames are decoded one by one (pydicom's iter_pixels carries state between them): the options
    must reach each frame's decode."""
    path = generated[name].path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pydicom_pixel_array(path, **opts)
        if opts:
            assert not np.array_equal(ref, pydicom_pixel_array(path))
        got = np.stack(list(gpudcm.iter_frames(path, device="cpu", **opts)))
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
