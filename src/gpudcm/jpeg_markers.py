"""Pure-Python parsers for JPEG (ISO 10918-1) marker streams and JPEG 2000 / HTJ2K main headers.

They read only what routing needs (process, precision, size, components and sampling, lossless
predictor and point transform, Huffman table use, restart interval, J2K SIZ/COD/CAP) and raise
:class:`~gpudcm.errors.InvalidPixelData` for truncated or garbled headers, never ``IndexError`` or
``struct.error``. Entropy-coded data is skipped with one C-level regex search per marker.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from .errors import InvalidPixelData

# SOF marker (second byte) -> process name
SOF_PROCESS = {
    0xC0: "baseline",
    0xC1: "extended",
    0xC2: "progressive",
    0xC3: "lossless",
    0xC5: "hierarchical-extended",
    0xC6: "hierarchical-progressive",
    0xC7: "hierarchical-lossless",
    0xC9: "arithmetic-extended",
    0xCA: "arithmetic-progressive",
    0xCB: "arithmetic-lossless",
    0xCD: "hierarchical-arithmetic-extended",
    0xCE: "hierarchical-arithmetic-progressive",
    0xCF: "hierarchical-arithmetic-lossless",
    0xF7: "jpeg-ls",
}
_NO_LENGTH = {0x01, 0xD8, 0xD9, *range(0xD0, 0xD8)}
_SOI, _EOI, _SOS, _DHT, _DRI, _DHP, _DAC = 0xD8, 0xD9, 0xDA, 0xC4, 0xDD, 0xDE, 0xCC
# a marker after entropy-coded data: 0xFF then neither a stuffed 0x00, a restart marker nor fill
_NEXT_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


@dataclass(frozen=True)
class Component:
    """One frame component: id, sampling factors and quantisation table."""

    id: int
    h: int
    v: int
    tq: int


@dataclass(frozen=True)
class Scan:
    """One SOS header: (component id, DC table, AC table) per component, Ss, Se, Ah, Al."""

    components: tuple[tuple[int, int, int], ...]
    ss: int
    se: int
    ah: int
    al: int


@dataclass(frozen=True)
class JpegInfo:
    """The header facts of one JPEG frame."""

    sof: int  # second byte of the SOF marker (0xC0 ... 0xCF, 0xF7 for JPEG-LS)
    precision: int
    rows: int
    columns: int
    components: tuple[Component, ...]
    scans: tuple[Scan, ...]
    restart_interval: int = 0
    jfif: bool = False
    adobe_transform: int | None = None  # APP14 'Adobe' transform flag, when present
    hierarchical: bool = False  # a DHP marker or a hierarchical SOF
    dht_tables: frozenset[tuple[int, int]] = field(default_factory=frozenset)  # (class, id) defined

    @property
    def process(self) -> str:
        return SOF_PROCESS.get(self.sof, f"SOF{self.sof - 0xC0}")

    @property
    def samples(self) -> int:
        return len(self.components)

    @property
    def component_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.components)

    @property
    def arithmetic(self) -> bool:
        return 0xC9 <= self.sof <= 0xCF

    @property
    def lossless(self) -> bool:
        return self.sof in (0xC3, 0xC7, 0xCB, 0xCF)

    @property
    def predictor(self) -> int | None:
        """Selection value of a lossless frame (Ss of its first scan)."""
        return self.scans[0].ss if self.lossless and self.scans else None

    @property
    def point_transform(self) -> int:
        """Al of the first scan (the point transform for lossless frames)."""
        return self.scans[0].al if self.scans else 0

    @property
    def subsampling(self) -> str:
        """"gray", "444", "422", "420", "440", "411" or "other" (from the sampling factors)."""
        if len(self.components) == 1:
            return "gray"
        hv = [(c.h, c.v) for c in self.components]
        if len(set(hv)) == 1:
            return "444"
        if len(hv) == 3 and hv[1] == hv[2] == (1, 1):
            return {(2, 1): "422", (2, 2): "420", (1, 2): "440", (4, 1): "411"}.get(hv[0], "other")
        return "other"

    @property
    def rgb_ids(self) -> bool:
        """Component ids 'R','G','B' (or 'r','g','b'): pydicom then treats the data as RGB."""
        return list(self.component_ids) in ([82, 71, 66], [114, 103, 98])

    @property
    def separate_huffman(self) -> bool:
        """True when the components of a lossless frame's scan use different (DC) Huffman tables."""
        return self.lossless and any(len({dc for _, dc, _ in s.components}) > 1 for s in self.scans)


def _u16(buf, pos: int, what: str) -> int:
    if pos + 2 > len(buf):
        raise InvalidPixelData(f"JPEG {what} at byte {pos} is cut off (stream of {len(buf)} bytes)")
    return buf[pos] << 8 | buf[pos + 1]


def _segment(buf, pos: int, marker: int) -> tuple[int, int]:
    """(start, end) of the payload of the marker segment whose length field is at `pos`."""
    length = _u16(buf, pos, f"segment FF{marker:02X} length")
    if length < 2 or pos + length > len(buf):
        raise InvalidPixelData(
            f"JPEG segment FF{marker:02X} at byte {pos - 2} claims {length} bytes but {len(buf) - pos} remain"
        )
    return pos + 2, pos + length


def parse_jpeg(data, *, all_scans: bool = True) -> JpegInfo:
    """Parse the marker stream of one JPEG (or JPEG-LS) frame.

    With `all_scans` every SOS header is read (entropy data skipped); otherwise parsing stops at the
    first SOS. Raises :class:`InvalidPixelData` when the stream is not a well-formed JPEG header.
    """
    buf = bytes(data) if not isinstance(data, bytes) else data
    n = len(buf)
    if n < 2 or buf[0] != 0xFF or buf[1] != _SOI:
        raise InvalidPixelData(f"JPEG frame does not start with the SOI marker FFD8 (starts {buf[:4].hex()})")
    pos = 2
    sof: tuple | None = None
    scans: list[Scan] = []
    dri = 0
    jfif = False
    adobe: int | None = None
    hier = False
    tables: set[tuple[int, int]] = set()
    while True:
        if pos >= n:
            break
        if buf[pos] != 0xFF:
            raise InvalidPixelData(f"JPEG marker expected at byte {pos}, found 0x{buf[pos]:02X}")
        while pos < n and buf[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise InvalidPixelData("JPEG stream ends inside a marker")
        marker = buf[pos]
        pos += 1
        if marker == _EOI:
            break
        if marker in _NO_LENGTH:
            continue
        if marker == 0x00:
            raise InvalidPixelData(f"JPEG stream has a stuffed byte FF00 outside entropy data at byte {pos - 2}")
        start, end = _segment(buf, pos, marker)
        seg = buf[start:end]
        if marker in SOF_PROCESS:
            if sof is not None and not hier:
                raise InvalidPixelData(f"JPEG stream has a second SOF marker FF{marker:02X} at byte {pos - 2}")
            if len(seg) < 6:
                raise InvalidPixelData(f"JPEG SOF segment is {len(seg)} bytes, too short")
            p, y, x, nf = seg[0], seg[1] << 8 | seg[2], seg[3] << 8 | seg[4], seg[5]
            if nf == 0 or len(seg) != 6 + 3 * nf:
                raise InvalidPixelData(f"JPEG SOF segment declares {nf} components in {len(seg)} bytes")
            comps = tuple(Component(seg[6 + 3 * i], seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15, seg[8 + 3 * i])
                          for i in range(nf))
            if sof is None:
                sof = (marker, p, y, x, comps)
            hier = hier or marker in (0xC5, 0xC6, 0xC7, 0xCD, 0xCE, 0xCF)
        elif marker == _DHP:
            hier = True
        elif marker == _DRI:
            if len(seg) < 2:
                raise InvalidPixelData("JPEG DRI segment is too short")
            dri = seg[0] << 8 | seg[1]
        elif marker == _DHT:
            i = 0
            while i < len(seg):
                if i + 17 > len(seg):
                    raise InvalidPixelData("JPEG DHT segment is cut off")
                tc_th = seg[i]
                count = sum(seg[i + 1 : i + 17])
                tables.add((tc_th >> 4, tc_th & 15))
                i += 17 + count
            if i != len(seg):
                raise InvalidPixelData("JPEG DHT segment lengths disagree with its code counts")
        elif marker == 0xE0 and seg.startswith(b"JFIF\x00"):
            jfif = True
        elif marker == 0xEE and seg.startswith(b"Adobe") and len(seg) >= 12:
            adobe = seg[11]
        elif marker == _SOS:
            if sof is None:
                raise InvalidPixelData("JPEG SOS marker before any SOF marker")
            if not seg or len(seg) != 1 + 2 * seg[0] + 3:
                raise InvalidPixelData(f"JPEG SOS segment of {len(seg)} bytes does not match its component count")
            ns = seg[0]
            comps = tuple((seg[1 + 2 * i], seg[2 + 2 * i] >> 4, seg[2 + 2 * i] & 15) for i in range(ns))
            k = 1 + 2 * ns
            scans.append(Scan(comps, seg[k], seg[k + 1], seg[k + 2] >> 4, seg[k + 2] & 15))
            if not all_scans:
                break
            m = _NEXT_MARKER.search(buf, end)
            if m is None:
                break  # entropy data runs to the end (no EOI): pydicom's decoders cope, so do we
            pos = m.start()
            continue
        pos = end
    if sof is None:
        raise InvalidPixelData("JPEG stream has no SOF marker")
    if not scans:
        raise InvalidPixelData("JPEG stream has no SOS marker")
    marker, p, y, x, comps = sof
    return JpegInfo(marker, p, y, x, comps, tuple(scans), dri, jfif, adobe, hier, frozenset(tables))


# ---------------------------------------------------------------------------------------- JPEG 2000

@dataclass(frozen=True)
class J2kInfo:
    """SIZ / COD / CAP facts of a JPEG 2000 or HTJ2K codestream (first component for precision/sign)."""

    rows: int
    columns: int
    components: int
    precision: int
    is_signed: bool
    precisions: tuple[int, ...]
    signed: tuple[bool, ...]
    subsampled: bool  # any component with XRsiz or YRsiz != 1
    mct: int  # multiple component transform flag of COD (1: RCT/ICT applied)
    reversible: bool  # 5-3 wavelet (True) or 9-7 (False)
    layers: int
    levels: int
    progression: int
    high_throughput: bool  # CAP says Part 15 (HTJ2K) block coding
    jp2: bool = False


_SOC, _SIZ, _COD, _CAP, _SOT = 0x4F, 0x51, 0x52, 0x50, 0x90


def _j2k_start(buf: bytes) -> tuple[int, bool]:
    if buf.startswith(b"\x00\x00\x00\x0cjP  "):
        pos = 12
        while pos + 8 <= len(buf):
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if buf[pos + 4 : pos + 8] == b"jp2c":
                return pos + 8, True
            if length < 8:
                break
            pos += length
        raise InvalidPixelData("JP2 file has no contiguous codestream box (jp2c)")
    return 0, False


def _jp2_boxes(buf: bytes, pos: int, end: int):
    """(type, payload start, payload end) of each JP2 box in ``buf[pos:end]`` (ISO/IEC 15444-1 I.4)."""
    while pos + 8 <= end:
        length, kind, head = int.from_bytes(buf[pos : pos + 4], "big"), buf[pos + 4 : pos + 8], 8
        if length == 1:
            if pos + 16 > end:
                raise InvalidPixelData("JP2 box with a cut-off extended length")
            length, head = int.from_bytes(buf[pos + 8 : pos + 16], "big"), 16
        elif length == 0:  # the last box: to the end
            length = end - pos
        if length < head:
            raise InvalidPixelData(f"JP2 {kind!r} box of {length} bytes")
        yield kind, pos + head, min(pos + length, end)
        pos += length


# JP2 enumerated colour spaces OpenJPEG decodes without touching the samples
_JP2_AS_DECODED = {16: "sRGB", 17: "greyscale"}


def jp2_changes_samples(data) -> str | None:
    """Why OpenJPEG's JP2 reader, or a wrapper acting on what it reports, may change a JP2 file's
    samples after decoding its codestream (so two wrappers may disagree), None when nothing in the JP2
    header does: no palette, component mapping or channel definition box, and a first colour
    specification that names sRGB or greyscale or that OpenJPEG ignores (METH > 2: a conforming reader
    ignores the box, ISO/IEC 15444-1 Table I.9; OpenJPEG reads only the first colour specification)."""
    buf = bytes(data)
    try:
        for kind, start, end in _jp2_boxes(buf, 0, len(buf)):
            if kind == b"jp2c":
                return None
            if kind != b"jp2h":
                continue
            colour = False
            for sub, s, e in _jp2_boxes(buf, start, end):
                if sub in (b"pclr", b"cmap", b"cdef"):
                    return f"a JP2 {sub.decode('latin-1')} box (palette or channel mapping)"
                if sub == b"colr" and not colour:
                    colour = True
                    meth = buf[s] if s < e else 0
                    if meth == 1:
                        space = int.from_bytes(buf[s + 3 : s + 7], "big")
                        if space not in _JP2_AS_DECODED:
                            return f"a JP2 colour specification of enumerated colour space {space}"
                    elif meth <= 2:
                        return "a JP2 ICC profile" if meth == 2 else "a JP2 colour specification of method 0"
    except InvalidPixelData as exc:
        return str(exc)
    return "no JP2 codestream box (jp2c) in the header bytes"


def parse_j2k(data) -> J2kInfo:
    """Parse the main header of a JPEG 2000 / HTJ2K codestream (raw or inside a JP2 wrapper)."""
    buf = bytes(data) if not isinstance(data, bytes) else data
    pos, jp2 = _j2k_start(buf)
    if buf[pos : pos + 4] != b"\xff\x4f\xff\x51":
        raise InvalidPixelData(f"JPEG 2000 codestream does not start with SOC, SIZ (starts {buf[pos:pos + 4].hex()})")
    pos += 4
    start, end = _segment(buf, pos, _SIZ)
    siz = buf[start:end]
    if len(siz) < 36:
        raise InvalidPixelData(f"JPEG 2000 SIZ segment is {len(siz)} bytes, too short")
    _rsiz, xs, ys, xo, yo = struct.unpack_from(">HIIII", siz, 0)
    csiz = struct.unpack_from(">H", siz, 34)[0]
    if csiz == 0 or len(siz) != 36 + 3 * csiz:
        raise InvalidPixelData(f"JPEG 2000 SIZ declares {csiz} components in {len(siz)} bytes")
    if xs <= xo or ys <= yo:
        raise InvalidPixelData(f"JPEG 2000 SIZ has an empty image area ({xs}x{ys} from offset {xo},{yo})")
    ssiz = [siz[36 + 3 * i] for i in range(csiz)]
    sub = any(siz[37 + 3 * i] != 1 or siz[38 + 3 * i] != 1 for i in range(csiz))
    precisions = tuple((s & 0x7F) + 1 for s in ssiz)
    signed = tuple(bool(s & 0x80) for s in ssiz)
    pos = end
    cod = None
    ht = False
    while True:
        marker = _u16(buf, pos, "marker")
        if marker >> 8 != 0xFF:
            raise InvalidPixelData(f"JPEG 2000 marker expected at byte {pos}, found {marker:04X}")
        marker &= 0xFF
        if marker == _SOT or marker == 0x93:  # first tile-part (or SOD): end of the main header
            break
        start, end = _segment(buf, pos + 2, marker)
        seg = buf[start:end]
        if marker == _COD:
            if len(seg) < 10:
                raise InvalidPixelData(f"JPEG 2000 COD segment is {len(seg)} bytes, too short")
            cod = seg
        elif marker == _CAP:
            if len(seg) < 4:
                raise InvalidPixelData("JPEG 2000 CAP segment is too short")
            pcap = struct.unpack_from(">I", seg, 0)[0]
            ht = bool(pcap & (1 << (32 - 15)))
        pos = end
    if cod is None:
        raise InvalidPixelData("JPEG 2000 main header has no COD marker")
    return J2kInfo(
        rows=ys - yo, columns=xs - xo, components=csiz, precision=precisions[0], is_signed=signed[0],
        precisions=precisions, signed=signed, subsampled=sub, mct=cod[4], reversible=cod[9] == 1,
        layers=cod[2] << 8 | cod[3], levels=cod[5], progression=cod[1], high_throughput=ht, jp2=jp2,
    )


def first_scan_end(data) -> int | None:
    """The offset just past the first SOS segment of a JPEG frame (the header :func:`parse_jpeg` reads
    with ``all_scans=False``), walking the length fields; None when the stream does not get there (not
    a JPEG, cut off, a marker missing): nothing is raised."""
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != _SOI:
        return None
    pos = 2
    while pos + 3 < n:
        if data[pos] != 0xFF:
            return None
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos + 2 >= n:
            return None
        marker = data[pos]
        if marker == _EOI or marker == 0x00:
            return None
        pos += 1
        if marker in _NO_LENGTH:
            continue
        end = pos + (data[pos] << 8 | data[pos + 1])
        if end > n:
            return None
        if marker == _SOS:
            return end
        pos = end
    return None
