"""gpudcm.tolerance: the one per-syntax rule (lossless exact, lossy within 2 of pydicom, mean reported)."""

from __future__ import annotations

import numpy as np

from gpudcm.tolerance import LOSSY_MAX_DIFF, agreement, is_lossy, max_diff

BASELINE, LOSSLESS = "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.70"


def test_lossless_must_be_equal_and_lossy_within_two():
    ref = np.array([10, 20, 30], np.uint8)
    off_by_one = np.array([11, 20, 30], np.uint8)
    assert agreement(ref, ref, LOSSLESS).ok
    assert not agreement(off_by_one, ref, LOSSLESS).ok
    assert agreement(ref + 2, ref, BASELINE).ok
    a = agreement(ref + np.array([3, 0, 0], np.uint8), ref, BASELINE)
    assert not a.ok and a.max == 3 and abs(a.mean - 1.0) < 1e-12
    assert max_diff(BASELINE) == LOSSY_MAX_DIFF == 2 and max_diff(LOSSLESS) == 0
    assert is_lossy("1.2.840.10008.1.2.4.91") and not is_lossy("1.2.840.10008.1.2.4.90")


def test_shape_and_dtype_must_match():
    ref = np.zeros((2, 2), np.uint16)
    assert not agreement(ref.astype(np.int16), ref, LOSSLESS).ok
    assert not agreement(ref[:1], ref, BASELINE).ok


def test_floats_nan_and_infinities():
    ref = np.array([np.nan, np.inf, 1.0], np.float32)
    assert agreement(ref.copy(), ref, LOSSLESS).ok
    assert not agreement(np.array([0.0, np.inf, 1.0], np.float32), ref, LOSSLESS).ok
    assert not agreement(np.array([np.nan, -np.inf, 1.0], np.float32), ref, LOSSLESS).ok


def test_second_reference_only_where_the_references_disagree():
    ref = np.array([100, 100], np.uint8)
    alt = np.array([105, 100], np.uint8)  # the references disagree by 5 on sample 0
    got = np.array([104, 100], np.uint8)
    a = agreement(got, ref, BASELINE, alt=alt)
    assert a.ok and a.judged_by_alt == 1 and a.max == 1
    assert not agreement(np.array([104, 97], np.uint8), ref, BASELINE, alt=alt).ok  # sample 1: pydicom rules
    # where they disagree, the nearer reference: pydicom's value is fine there, halfway between is not
    assert agreement(np.array([101, 100], np.uint8), ref, BASELINE, alt=alt).ok
    wide = np.array([110, 100], np.uint8)
    assert not agreement(np.array([105, 100], np.uint8), ref, BASELINE, alt=wide).ok
    assert not agreement(got, ref, LOSSLESS, alt=alt).ok  # no second reference for lossless syntaxes
