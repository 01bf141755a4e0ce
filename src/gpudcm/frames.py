"""Frame extents: where each frame's bytes lie inside the pixel data element, without copying.

Native data is arithmetic (1-bit frames may start mid-byte). Encapsulated data is split into
fragments and grouped into frames the way pydicom groups them
(``pydicom.encaps.generate_fragmented_frames``): Extended Offset Table first, then the Basic Offset
Table, then one fragment per frame, all fragments for one frame, or JPEG/J2K end markers.
Every offset and length is checked against the bytes present.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import InvalidPixelData
from .spec import PixelSpec, tag_name

_ITEM = 0xFFFEE000
_SEQ_DELIM = 0xFFFEE0DD
_EOI = b"\xff\xd9"


@dataclass(frozen=True)
class Extent:
    """``length`` bytes at ``offset`` in the element value; a 1-bit frame begins ``bit_offset`` bits in."""

    offset: int
    length: int
    bit_offset: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.length


Frame = tuple[Extent, ...]


def frame_extents(spec: PixelSpec, buffer: bytes | bytearray | memoryview, *, extended_offsets=None) -> list[Frame]:
    """Each frame of `buffer` (the pixel element's value) as a tuple of extents (one for native data)."""
    if spec.is_encapsulated:
        return encapsulated_extents(spec, buffer, extended_offsets=extended_offsets)
    return native_extents(spec)


def native_extents(spec: PixelSpec) -> list[Frame]:
    """Extents of native frames; lengths cover the bits of the frame (rounded out to whole bytes)."""
    out = [native_frame(spec, i) for i in range(spec.number_of_frames)]
    last = out[-1][0]
    if last.end > spec.pixel_nbytes:  # pixel_spec already checked; guard against a hand-built spec
        raise InvalidPixelData(
            f"{spec.source}: frame {spec.number_of_frames - 1} ends at byte {last.end} but "
            f"{tag_name(spec.pixel_keyword)} holds {spec.pixel_nbytes} bytes"
        )
    return out


def native_frame(spec: PixelSpec, index: int) -> Frame:
    """The extent of native frame `index`, by arithmetic."""
    offset, bit = divmod(index * spec.frame_bits, 8)
    return (Extent(offset, -(-(bit + spec.frame_bits) // 8), bit),)


def _view(buffer):
    """`buffer` as something sliced into bytes: a memoryview, or a lazy reader's FileBytes as it is (its
    slices are reads, so a scan of item headers reads 8 bytes an item and no payload)."""
    if hasattr(buffer, "read_at"):
        return buffer
    return memoryview(buffer).cast("B")


def _fragments(spec: PixelSpec, buf) -> tuple[list[int], list[Extent]]:
    """The Basic Offset Table and every fragment's value extent, each checked against `buf`."""
    src = spec.source
    n = len(buf)
    if n < 8:
        raise InvalidPixelData(f"{src}: encapsulated Pixel Data is {n} bytes, too short for the Basic Offset Table item")
    group, elem, bot_len = struct.unpack("<HHL", buf[0:8])
    if (group << 16 | elem) != _ITEM:
        raise InvalidPixelData(
            f"{src}: encapsulated Pixel Data starts with tag ({group:04X},{elem:04X}), not the "
            "(FFFE,E000) Basic Offset Table item"
        )
    if bot_len % 4:
        raise InvalidPixelData(f"{src}: the Basic Offset Table length {bot_len} is not a multiple of 4")
    if 8 + bot_len > n:
        raise InvalidPixelData(f"{src}: the Basic Offset Table claims {bot_len} bytes but only {n - 8} follow")
    bot = list(struct.unpack(f"<{bot_len // 4}L", buf[8 : 8 + bot_len])) if bot_len else []
    pos = 8 + bot_len
    frags: list[Extent] = []
    while pos + 4 <= n:
        head = bytes(buf[pos : pos + 8])
        group, elem = struct.unpack("<HH", head[:4])
        tag_value = group << 16 | elem
        if tag_value == _SEQ_DELIM:
            break
        if tag_value != _ITEM:
            raise InvalidPixelData(
                f"{src}: unexpected tag ({group:04X},{elem:04X}) at byte {pos} of the encapsulated Pixel Data "
                "where a fragment item was expected (a sequence inside Pixel Data cannot be decoded)"
            )
        if pos + 8 > n:
            raise InvalidPixelData(f"{src}: the fragment item at byte {pos} is cut off before its length")
        length = struct.unpack("<L", head[4:8])[0]
        if length == 0xFFFFFFFF:
            raise InvalidPixelData(f"{src}: the fragment item at byte {pos} has an undefined length")
        if pos + 8 + length > n:
            raise InvalidPixelData(
                f"{src}: fragment {len(frags)} at byte {pos} claims {length} bytes but only "
                f"{n - pos - 8} remain in the Pixel Data"
            )
        frags.append(Extent(pos + 8, length))  # offsets within the element
        pos += 8 + length
    if not frags:
        raise InvalidPixelData(f"{src}: the encapsulated Pixel Data holds no fragments")
    return bot, frags


def _decode_table(values, name: str, src: str) -> list[int]:
    if isinstance(values, (bytes, bytearray, memoryview)):
        if len(values) % 8:
            raise InvalidPixelData(f"{src}: {name} is {len(values)} bytes, not a multiple of 8")
        return list(struct.unpack(f"<{len(values) // 8}Q", values))
    return [int(v) for v in values]


def encapsulated_extents(spec: PixelSpec, buffer, *, extended_offsets=None) -> list[Frame]:
    """Group fragments into frames exactly as pydicom does, with every offset checked."""
    src = spec.source
    buf = _view(buffer)
    bot, frags = _fragments(spec, buf)
    first = frags[0].offset - 8  # start of the first fragment's item tag
    frames_wanted = spec.number_of_frames

    if extended_offsets is not None:
        offsets = _decode_table(extended_offsets[0], "(7FE0,0001) 'Extended Offset Table'", src)
        lengths = _decode_table(extended_offsets[1], "(7FE0,0002) 'Extended Offset Table Lengths'", src)
        if len(offsets) == len(lengths):  # pydicom ignores a mismatched table (and warns)
            if len(offsets) < frames_wanted:
                raise InvalidPixelData(
                    f"{src}: the Extended Offset Table lists {len(offsets)} frame(s) but "
                    f"{tag_name('NumberOfFrames')} is {frames_wanted}"
                )
            out = []
            for i, (off, length) in enumerate(zip(offsets, lengths)):
                start = first + off + 8
                if off % 2 or start + length > len(buf) or start < first + 8:
                    raise InvalidPixelData(
                        f"{src}: Extended Offset Table entry {i} (offset {off}, length {length}) points outside "
                        f"the {len(buf)}-byte Pixel Data"
                    )
                out.append((Extent(start, length),))
            return out

    if bot:
        return _group_by_offsets(spec, bot, frags, first)

    if len(frags) == 1:
        return [(frags[0],)]
    if len(frags) == frames_wanted:
        return [(f,) for f in frags]
    if frames_wanted == 1:
        return [tuple(frags)]
    if len(frags) > frames_wanted:
        out, current = [], []
        for f in frags:
            current.append(f)
            tail = bytes(buf[max(f.offset, f.end - 10) : f.end])
            if _EOI in tail:
                out.append(tuple(current))
                current = []
        if current:
            out.append(tuple(current))
        return out
    raise InvalidPixelData(
        f"{src}: the encapsulated Pixel Data has {len(frags)} fragment(s) but {tag_name('NumberOfFrames')} "
        f"is {frames_wanted} and there is no offset table to split them"
    )


def _group_by_offsets(spec: PixelSpec, bot: list[int], frags: list[Extent], first: int) -> list[Frame]:
    src = spec.source
    if any(b > a for a, b in zip(bot[1:], bot)):
        raise InvalidPixelData(f"{src}: the Basic Offset Table is not increasing: {bot[:8]}...")
    if bot[0] != 0:
        raise InvalidPixelData(f"{src}: the Basic Offset Table starts at {bot[0]}, not 0")
    total = frags[-1].end - first
    if bot[-1] >= total:
        raise InvalidPixelData(
            f"{src}: the Basic Offset Table points to byte {bot[-1]} but the fragments span {total} bytes"
        )
    # pydicom: fragments accumulate into frame k until the running offset reaches bot[k + 1]
    out: list[Frame] = []
    current: list[Extent] = []
    index, running, final = 0, 0, len(bot) - 1
    for f in frags:
        if index == final or running < bot[index + 1]:
            current.append(f)
        else:
            out.append(tuple(current))
            index += 1
            current = [f]
        running += f.length + 8
    out.append(tuple(current))
    return out


def extended_offsets(ds) -> tuple | None:
    """The dataset's Extended Offset Table (offsets, lengths), or None when absent or empty (pydicom
    ignores an empty one too)."""
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets, lengths = ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths
        if offsets and lengths:
            return offsets, lengths
    return None


def frame_bytes(buffer, frame: Frame) -> memoryview | bytes:
    """The bytes of one frame: a view for a single extent, one joined copy for several fragments."""
    view = memoryview(buffer).cast("B")
    if len(frame) == 1:
        e = frame[0]
        return view[e.offset : e.end]
    return b"".join(view[e.offset : e.end] for e in frame)


# PackBits turns a 2-byte replicate packet into at most 128 bytes.
RLE_MAX_EXPANSION = 64


def check_rle_capacity(spec: PixelSpec, frames: list[Frame]) -> None:
    """Refuse RLE frames too small to hold even one segment of the declared size, before any decoder
    allocates the frame (a small file declaring 65535 x 65535 would otherwise cost gigabytes).

    Each segment decodes to Rows x Columns bytes from bytes inside its frame, so a frame of n bytes
    bounds one segment's output by 64 n (segments may overlap, even the header, and still decode)."""
    plane = spec.rows * spec.columns
    for i, frame in enumerate(frames[: spec.number_of_frames]):
        have = sum(e.length for e in frame)
        if plane > RLE_MAX_EXPANSION * have:
            raise InvalidPixelData(
                f"{spec.source}: RLE frame {i} holds {have} bytes, which decode to at most "
                f"{RLE_MAX_EXPANSION * have} bytes a segment, but {tag_name('Rows')} x {tag_name('Columns')} = "
                f"{spec.rows} x {spec.columns} needs {plane} (the header disagrees with the data)"
            )


_JPEG_FAMILY = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                          "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
_J2K_FAMILY = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                         "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})
_HEADER_WINDOW = 1 << 16  # frame headers (SOF / SIZ) sit in the first bytes of a frame
_FIRST_WINDOW = 1 << 12


def check_codestream_sizes(spec: PixelSpec, buffer, frames: list[Frame]) -> None:
    """Refuse JPEG, JPEG-LS and JPEG 2000 frames whose codestream declares more pixels than Rows x Columns
    x Samples per Pixel, before any decoder allocates what the codestream says (a few KB claiming
    20000 x 20000 would cost gigabytes; pydicom fails on such frames after allocating them).

    Headers that do not parse are left to the decoder, which reports its own error."""
    from .jpeg_markers import parse_j2k, parse_jpeg

    ts = str(spec.transfer_syntax)
    if ts not in _JPEG_FAMILY and ts not in _J2K_FAMILY:
        return
    want = spec.rows * spec.columns * spec.samples_per_pixel
    view = _view(buffer)

    def parse(head: bytes) -> tuple[int, int, int]:
        if ts in _J2K_FAMILY:
            info = parse_j2k(head)
            return info.rows, info.columns, info.components
        info = parse_jpeg(head, all_scans=False)
        return info.rows, info.columns, info.samples

    for i, frame in enumerate(frames[: spec.number_of_frames]):
        if not frame:
            continue
        start, length = frame[0].offset, frame[0].length
        try:  # the header is almost always in the first 4 KiB: read that, then the full window if not
            try:
                rows, cols, comps = parse(bytes(view[start : start + min(length, _FIRST_WINDOW)]))
            except InvalidPixelData:
                if length <= _FIRST_WINDOW:
                    raise
                rows, cols, comps = parse(bytes(view[start : start + min(length, _HEADER_WINDOW)]))
        except InvalidPixelData:
            continue
        if rows * cols * comps > want:
            raise InvalidPixelData(
                f"{spec.source}: frame {i}'s {spec.transfer_syntax.name} codestream declares {rows} x {cols} "
                f"x {comps} samples but {tag_name('Rows')} x {tag_name('Columns')} x "
                f"{tag_name('SamplesPerPixel')} = {spec.rows} x {spec.columns} x {spec.samples_per_pixel} "
                "(the header disagrees with the data; refused before decoding)"
            )
