"""Check an encoder's codestream against the request before it is written (every encoder, CPU or GPU).

JPEG 2000 / HTJ2K: the SIZ/COD/CAP facts (:func:`gpudcm.jpeg_markers.parse_j2k`) must describe the frame
(size, components, signedness, a precision that holds Bits Stored, the 5-3 wavelet when lossless, HT block
coding for HTJ2K) and, for HTJ2K Lossless RPCL, what PS3.5 10.18 requires: RPCL progression, enough
decompositions for a lowest resolution of at most 64 columns and rows, and a TLM marker segment.
JPEG-LS: the SOF55 segment's size, components and precision.
"""

from __future__ import annotations

import math
import struct

from ..errors import InvalidPixelData
from ..jpeg_markers import parse_j2k
from .syntaxes import Request

RPCL = 2  # COD progression order value (ISO 15444-1 Table A.16)
_TLM, _SOT = 0xFF55, 0xFF90


def rpcl_levels(rows: int, columns: int) -> int:
    """Decompositions for a lowest resolution of at most 64 x 64 (PS3.5 10.18); at least 5."""
    return min(32, max(5, math.ceil(math.log2(max(rows, columns) / 64)) if max(rows, columns) > 64 else 0))


def main_header_markers(buf: bytes) -> list[int]:
    """The marker codes of a J2K main header (SIZ up to the first SOT)."""
    pos, found = 2, []
    while pos + 4 <= len(buf):
        marker, length = struct.unpack_from(">HH", buf, pos)
        if marker == _SOT or marker >> 8 != 0xFF:
            break
        found.append(marker)
        pos += 2 + length
    return found


def check_j2k(data: bytes, req: Request) -> None:
    info = parse_j2k(data)
    problems = []
    if (info.rows, info.columns, info.components) != (req.rows, req.columns, req.samples):
        problems.append(f"{info.rows}x{info.columns}x{info.components} instead of {req.rows}x{req.columns}x{req.samples}")
    if any(p < req.bits_stored or p > req.itemsize * 8 for p in info.precisions):
        problems.append(f"precision {info.precisions} for Bits Stored {req.bits_stored} in {req.itemsize * 8} bits")
    if any(s != req.signed for s in info.signed):
        problems.append(f"signedness {info.signed} for {'signed' if req.signed else 'unsigned'} data")
    if req.lossless and not info.reversible:
        problems.append("the 9-7 (irreversible) wavelet in a lossless write")
    if info.high_throughput != (req.rule.family == "htj2k"):
        problems.append("HT block coding" if info.high_throughput else "no HT block coding (CAP)")
    if bool(info.mct) != req.mct:
        problems.append(f"colour transform {'on' if info.mct else 'off'}")
    if req.rpcl:
        if info.progression != RPCL:
            problems.append(f"progression order {info.progression}, not RPCL")
        if max(math.ceil(req.rows / 2**info.levels), math.ceil(req.columns / 2**info.levels)) > 64:
            problems.append(f"{info.levels} decompositions leave a lowest resolution above 64")
        if _TLM not in main_header_markers(data):
            problems.append("no TLM marker segment")
    if problems:
        raise InvalidPixelData(f"the {req.syntax.name} encoder wrote a codestream with " + "; ".join(problems))


def check_jpegls(data: bytes, req: Request) -> None:
    i = data.find(b"\xff\xf7")
    if i < 0 or len(data) < i + 10:
        raise InvalidPixelData("the JPEG-LS encoder wrote no SOF55 segment")
    precision, rows, columns, components = struct.unpack_from(">BHHB", data, i + 4)
    if (rows, columns, components) != (req.rows, req.columns, req.samples) or precision > req.itemsize * 8:
        raise InvalidPixelData(f"the JPEG-LS encoder wrote {rows}x{columns}x{components} at {precision} bits for "
                               f"{req.rows}x{req.columns}x{req.samples} with Bits Stored {req.bits_stored}")


def check(data: bytes, req: Request) -> None:
    """Raise :class:`InvalidPixelData` when `data` does not hold what `req` asked for."""
    (check_jpegls if req.rule.family == "jpegls" else check_j2k)(bytes(data), req)
