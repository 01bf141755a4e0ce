"""What each compressed transfer syntax the writer produces can hold, and how a request is checked.

One :class:`SyntaxRule` per transfer syntax: its codec family, whether it is lossless only, the Lossy
Image Compression Method (PS3.3 C.7.6.1.1.5.1) a lossy write records, and the Photometric
Interpretations PS3.5 allows (pydicom's encoder profiles, PS3.5 Table 8.2.3-1 / 8.2.4-1; HTJ2K follows the
JPEG 2000 rules, PS3.5 8.2.14). :func:`plan` turns one ``set_pixel_data`` call into a checked
:class:`Request` (and the Photometric Interpretation the encoded data gets) before anything is encoded.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.pixels.encoders.base import ENCODING_PROFILES
from pydicom.uid import (
    UID,
    HTJ2K,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
)

from ..errors import InvalidPixelData


@dataclass(frozen=True)
class SyntaxRule:
    uid: UID
    family: str  # "htj2k" | "j2k" | "jpegls"
    lossless_only: bool
    method: str  # Lossy Image Compression Method (0028,2114) for a lossy write
    quality: str  # what `quality` means for this syntax (docs and errors)


RULES: dict[UID, SyntaxRule] = {
    r.uid: r
    for r in (
        SyntaxRule(HTJ2KLossless, "htj2k", True, "ISO_15444_15", ""),
        SyntaxRule(HTJ2KLosslessRPCL, "htj2k", True, "ISO_15444_15", ""),
        SyntaxRule(HTJ2K, "htj2k", False, "ISO_15444_15", "quantization step relative to the Bits Stored range (> 0, e.g. 0.002)"),
        SyntaxRule(JPEG2000Lossless, "j2k", True, "ISO_15444_1", ""),
        SyntaxRule(JPEG2000, "j2k", False, "ISO_15444_1", "target PSNR in dB (> 0, e.g. 50)"),
        SyntaxRule(JPEGLSLossless, "jpegls", True, "ISO_14495_1", ""),
        SyntaxRule(JPEGLSNearLossless, "jpegls", False, "ISO_14495_1",
                   "NEAR, the largest allowed absolute error (integer >= 1)"),
    )
}
COMPRESSED_SYNTAXES = tuple(RULES)

# short names for the command line and convert_dataset
NAMES: dict[str, UID] = {
    "htj2k": HTJ2KLossless,
    "htj2k-rpcl": HTJ2KLosslessRPCL,
    "htj2k-lossy": HTJ2K,
    "j2k": JPEG2000Lossless,
    "j2k-lossy": JPEG2000,
    "jpegls": JPEGLSLossless,
    "jpegls-near": JPEGLSNearLossless,
}
LOSSY_OF = {HTJ2KLossless: HTJ2K, HTJ2KLosslessRPCL: HTJ2K, JPEG2000Lossless: JPEG2000, JPEGLSLossless: JPEGLSNearLossless}

_MCT_PI = {True: "YBR_RCT", False: "YBR_ICT"}  # reversible (lossless) / irreversible colour transform


@dataclass(frozen=True)
class Request:
    """One checked encode: the frame layout, the target syntax and its options."""

    syntax: UID
    rows: int
    columns: int
    samples: int
    itemsize: int  # bytes per sample of the array (1 or 2)
    bits_stored: int
    signed: bool
    photometric: str  # of the written dataset (YBR_RCT / YBR_ICT when the colour transform is applied)
    quality: float | None = None
    mct: bool = False  # apply the JPEG 2000 colour transform (RGB input)

    @property
    def rule(self) -> SyntaxRule:
        return RULES[self.syntax]

    @property
    def lossless(self) -> bool:
        return self.quality is None

    @property
    def rpcl(self) -> bool:
        return self.syntax == HTJ2KLosslessRPCL

    @property
    def frame_nbytes(self) -> int:
        return self.rows * self.columns * self.samples * self.itemsize


def _profile_syntax(rule: SyntaxRule) -> UID:
    """The pydicom profile a syntax follows (HTJ2K: JPEG 2000's, PS3.5 8.2.14)."""
    lossy = not rule.lossless_only
    if rule.family in ("htj2k", "j2k"):
        return JPEG2000 if lossy else JPEG2000Lossless
    return JPEGLSNearLossless if lossy else JPEGLSLossless


def _check_quality(rule: SyntaxRule, quality: float | None) -> float | None:
    if rule.lossless_only:
        if quality is not None:
            raise InvalidPixelData(f"'{rule.uid.name}' is lossless only; quality={quality!r} needs "
                                   f"'{LOSSY_OF.get(rule.uid, rule.uid).name}'")
        return None
    if quality is None:
        raise InvalidPixelData(f"'{rule.uid.name}' writes lossy data only when asked: pass quality= ({rule.quality}); "
                               "for a lossless write use the lossless syntax")
    try:
        q = float(quality)
    except (TypeError, ValueError) as exc:
        raise InvalidPixelData(f"quality must be a number ({rule.quality}), not {quality!r}") from exc
    if not q > 0 or q != q or q == float("inf") or (rule.family == "jpegls" and q != int(q)):
        raise InvalidPixelData(f"quality for '{rule.uid.name}' is the {rule.quality}, not {quality!r}")
    return int(q) if rule.family == "jpegls" else q


def plan(syntax: UID, *, rows: int, columns: int, samples: int, itemsize: int, signed: bool, bits_stored: int,
         photometric: str, quality: float | None = None, mct: bool = True) -> Request:
    """A checked :class:`Request`, or :class:`InvalidPixelData` saying what the syntax cannot hold."""
    rule = RULES[syntax]
    q = _check_quality(rule, quality)
    name = syntax.name
    if itemsize not in (1, 2):
        raise InvalidPixelData(f"'{name}' is written from 8 or 16-bit samples; the array has {itemsize * 8}-bit samples")
    if photometric == "YBR_FULL_422":
        raise InvalidPixelData(f"'{name}' is written with every chroma sample, so YBR_FULL_422 cannot be encoded; "
                               "pass photometric_interpretation='YBR_FULL' (the array already holds full-resolution chroma)")
    out_pi = photometric
    if photometric in _MCT_PI.values():  # the caller asks for the colour transform by name
        if samples != 3 or rule.family == "jpegls" or photometric != _MCT_PI[q is None]:
            raise InvalidPixelData(f"'{photometric}' means the {'reversible' if photometric == 'YBR_RCT' else 'irreversible'} "
                                   f"JPEG 2000 colour transform; '{name}' with {'lossless' if q is None else 'lossy'} data "
                                   f"uses {_MCT_PI[q is None] if rule.family != 'jpegls' else 'RGB'}")
        use_mct, check_pi = True, "RGB"
    else:
        use_mct = bool(mct) and samples == 3 and photometric == "RGB" and rule.family != "jpegls"
        check_pi = photometric
        if use_mct:
            out_pi = _MCT_PI[q is None]
    bits_allocated = itemsize * 8
    for pi, spp, reps, allocated, stored in ENCODING_PROFILES[_profile_syntax(rule)]:
        if pi == check_pi and spp == samples and int(signed) in reps and bits_allocated in allocated and bits_stored in stored:
            break
    else:
        raise InvalidPixelData(
            f"'{name}' (PS3.5 8.2, pydicom's encoder profile) does not allow {photometric} with {samples} sample(s) of "
            f"{'signed' if signed else 'unsigned'} {bits_allocated}-bit data (Bits Stored {bits_stored})"
        )
    return Request(syntax, rows, columns, samples, itemsize, bits_stored, signed, out_pi, q, use_mct)
