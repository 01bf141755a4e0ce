"""How close a decode must be to pydicom's default decode, per transfer syntax: one rule for the tests, the
device checks and the benchmarks. Lossless syntaxes: equal. Lossy ones: every sample within
:data:`LOSSY_MAX_DIFF` of pydicom (decoders may round the IDCT / wavelet differently), with the mean
absolute difference reported."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# JPEG Baseline, JPEG Extended, JPEG 2000 (lossy allowed), HTJ2K (lossy allowed)
LOSSY_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91",
                            "1.2.840.10008.1.2.4.203"})
LOSSY_MAX_DIFF = 2


def is_lossy(transfer_syntax) -> bool:
    return str(transfer_syntax) in LOSSY_SYNTAXES


def max_diff(transfer_syntax) -> int:
    """The largest per-sample difference from pydicom allowed for `transfer_syntax`."""
    return LOSSY_MAX_DIFF if is_lossy(transfer_syntax) else 0


@dataclass(frozen=True)
class Agreement:
    """How `got` compares with pydicom's `ref` under the syntax's tolerance."""

    max: float
    mean: float
    allowed: int
    shape_ok: bool
    dtype_ok: bool
    judged_by_alt: int = 0  # samples where pydicom and the second reference disagree (see agreement())

    @property
    def ok(self) -> bool:
        return self.shape_ok and self.dtype_ok and self.max <= self.allowed

    def __str__(self) -> str:
        if not (self.shape_ok and self.dtype_ok):
            return "shape or dtype differs"
        alt = f"; {self.judged_by_alt} samples judged against the second reference" if self.judged_by_alt else ""
        return f"max abs diff {self.max:g} (allowed {self.allowed}), mean abs diff {self.mean:.4f}{alt}"


def agreement(got, ref, transfer_syntax, alt=None) -> Agreement:
    """Compare host arrays `got` and `ref` (pydicom's default decode) for `transfer_syntax`.

    `alt` (lossy only): a second reference decode by another standard decoder. Where `ref` and `alt`
    themselves differ by more than the tolerance (decoders disagree there), `got` is judged against the
    nearer of the two (a decode may follow either decoder's rounding and its own filter: the device's
    Richter-mode upsampling with an IDCT of libjpeg-turbo's kind); ``max`` is then the largest difference
    from whichever reference applies, ``mean`` stays the mean difference from pydicom.
    """
    got, ref = np.asarray(got), np.asarray(ref)
    allowed = max_diff(transfer_syntax)
    shape_ok, dtype_ok = got.shape == ref.shape, got.dtype == ref.dtype
    if not shape_ok or not got.size:
        return Agreement(0, 0.0, allowed, shape_ok, dtype_ok)
    d = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    if np.isnan(d).any():  # float pixel data: equal infinities and NaN against NaN agree; others do not
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))
        d = np.where(same, 0.0, np.nan_to_num(d, nan=np.inf))
    worst, n_alt = d, 0
    if alt is not None and allowed:
        alt = np.asarray(alt, dtype=np.float64).reshape(ref.shape)
        split = np.abs(alt - ref) > allowed
        n_alt = int(split.sum())
        worst = np.where(split, np.minimum(np.abs(got - alt), d), d)
    return Agreement(float(worst.max()), float(d.mean()), allowed, shape_ok, dtype_ok, n_alt)
