"""CPU path == pydicom on every corpus file; files pydicom cannot decode raise a GpudcmError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases, reference, reference_shape, transfer_syntax

FILES = corpus_files()


def assert_same(got: np.ndarray, ref: np.ndarray) -> None:
    assert isinstance(got, np.ndarray)
    assert got.shape == ref.shape
    assert got.dtype == ref.dtype.newbyteorder("=")
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, ref)


# lossy JPEG: libjpeg-turbo's IDCT (gpudcm's CPU backend for monochrome lossy JPEG) may differ from
# pydicom's default plugin by a level; the project's lossy tolerance is 2
LOSSY_JPEG = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")
LOSSY_TOLERANCE = 2


def assert_matches(got: np.ndarray, ref: np.ndarray, path) -> str:
    """Equal to pydicom, or within the lossy tolerance on lossy JPEG; returns how (for the log)."""
    if str(transfer_syntax(path)) not in LOSSY_JPEG:
        assert_same(got, ref)
        return "equal"
    assert got.shape == ref.shape and got.dtype == ref.dtype.newbyteorder("=")
    diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= LOSSY_TOLERANCE, f"max abs diff {diff.max()} (mean {diff.mean():.4f})"
    return "equal" if not diff.any() else f"lossy max {diff.max()} mean {diff.mean():.4f}"


def _decode(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(path, device="cpu", **kwargs)


@pytest.mark.parametrize("path", FILES, ids=corpus_id)
def test_corpus_parity(path, parity_log):
    ref = reference(path)
    if isinstance(ref, Exception):
        with pytest.raises(gpudcm.GpudcmError) as info:
            _decode(path)
        why = str(info.value).split(": ", 1)[-1]  # drop the path prefix
        parity_log.append((corpus_id(path), f"both raise: {type(info.value).__name__}: {why[:100]}"))
        return
    got = _decode(path)
    how = assert_matches(got, ref, path)
    parity_log.append((corpus_id(path), f"{how} {got.shape} {got.dtype}"))


def test_corpus_is_large_enough():
    decodable = [p for p in FILES if reference_shape(p)]
    assert len(FILES) > 200 and len(decodable) > 150


def _multiframe(paths):
    """Files whose default decode has a frame axis."""
    out = []
    for p in paths:
        shape = reference_shape(p)
        if shape and len(shape) >= 3 and not (len(shape) == 3 and shape[-1] == 3):
            out.append(p)
    return out


@pytest.mark.parametrize("path", _multiframe(FILES), ids=corpus_id)
def test_index_parity(path):
    ref_all = reference(path)
    n = ref_all.shape[0]
    for index in sorted({0, n // 2, n - 1}):
        assert_matches(_decode(path, index=index), reference(path, index=index), path)
    with pytest.raises(gpudcm.InvalidPixelData, match="out of range"):
        _decode(path, index=n)


def _colour(paths):
    return [p for p in paths if (shape := reference_shape(p)) and len(shape) >= 3 and shape[-1] == 3]


@pytest.mark.parametrize("path", _colour(FILES), ids=corpus_id)
@pytest.mark.parametrize("opts", [{"raw": True}, {"as_rgb": False}])
def test_colour_options_parity(path, opts):
    assert_matches(_decode(path, **opts), reference(path, **opts), path)


@pytest.mark.parametrize("case", generated_cases(), ids=lambda c: c.name)
def test_generated_cases(case, parity_log):
    got = _decode(case.path)
    assert got.dtype == case.expected.dtype
    np.testing.assert_array_equal(got, case.expected)
    assert_same(got, reference(case.path))
    if case.expected_raw is not None:
        np.testing.assert_array_equal(_decode(case.path, raw=True), case.expected_raw)
    parity_log.append((f"generated/{case.name}", f"equal {got.shape} {got.dtype}"))


def test_iter_frames_matches_pixel_array():
    for case in generated_cases():
        full = _decode(case.path)
        frames = list(gpudcm.iter_frames(case.path, device="cpu"))
        stacked = np.stack(frames) if len(frames) > 1 else frames[0]
        np.testing.assert_array_equal(stacked, full)
        if len(frames) > 2:
            picked = list(gpudcm.iter_frames(case.path, device="cpu", indices=[2, 0]))
            np.testing.assert_array_equal(picked[0], frames[2])
            np.testing.assert_array_equal(picked[1], frames[0])
