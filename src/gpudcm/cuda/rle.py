"""RLE Lossless on the device: every frame header parsed and checked on the CPU, the segments decoded by
the RLE kernel into pydicom's decoded layout (planar, each value little endian), then the native kernel
for planar -> interleaved and Bits Stored.

The CPU path is pydicom 3.0.2, which tries pylibjpeg-rle *first* and its own decoder second, per frame.
The two disagree on malformed frames: pylibjpeg-rle takes the segments from the non-zero header offsets
(ignoring the count), needs the first at 64 and all increasing, rejects runs cut off by the segment end
and infers the samples from the segment count; pydicom's decoder trusts the count and slices like Python.
While decoding all frames pydicom tries the decoder that last succeeded first, and frames past Number of
Frames are kept only when they decode to a whole frame. The kernel decodes pydicom's way and replays
pylibjpeg-rle's walk on lengths only; :func:`resolve` then picks, frame by frame, what pydicom returns.

:func:`plan_rle` and :func:`resolve` are NumPy-only; :func:`decode_rle` takes the launchers so CI runs the
same plan through the host build of the kernels.
"""

from __future__ import annotations

import itertools
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import DecodeError, InvalidPixelData
from ..frames import Extent, Frame, frame_extents
from ..spec import PixelSpec
from .kernels import (
    NATIVE_CORRECT_BITS,
    NATIVE_PLANAR,
    NATIVE_SIGNED,
    RLE_J_ERROR,
    RLE_J_PANIC,
    RLE_LANES,
    RLE_NO_ROOM,
    RLE_STATUS_WRITE_OOB,
    STATUS_BAD_PARAMS,
    STATUS_READ_OOB,
    Geometry,
    NativeLaunch,
    launch_geometry,
)
from .native import Launcher as NativeLauncher
from .native import check_status
from .pipeline import split_batches

HEADER_BYTES = 64
MAX_SEGMENTS = 15


@dataclass(frozen=True)
class RleLaunch:
    """One RLE-kernel launch without any array module; buffers come from the caller."""

    kernel: str
    geometry: Geometry
    n_entries: int
    n_slots: int  # entries that write: n_frames * n_segments, the rest only measure
    n_segments: int
    bytes_per_sample: int
    plane: int  # Rows x Columns

    def scalars(self) -> tuple:
        """The scalar arguments after (src, src_len, table), with explicit C types."""
        return (
            np.uint64(self.n_entries),
            np.uint64(self.n_slots),
            np.uint32(self.n_segments),
            np.uint32(self.bytes_per_sample),
            np.uint64(self.plane),
        )


@dataclass(frozen=True)
class FrameRle:
    """One frame as each of pydicom's two RLE decoders sees it before decoding, and the table entries
    whose lengths tell the rest."""

    number: int  # frame index in the file
    excess: bool  # past Number of Frames: pydicom keeps it only when it decodes to a whole frame
    slots: str | None  # "pylibjpeg", "pydicom" or None: whose segments the frame's slots decode
    p_error: str | None  # why pydicom's decoder fails before decoding (None: it decodes)
    j_error: str | None  # why pylibjpeg-rle fails before decoding
    j_panic: bool  # ... by panicking, which no caller catches
    j_entries: tuple[int, ...]  # its segments' entries in its decode order
    j_segments: tuple[int, ...]  # the header index of each of those
    j_kind: str  # its frame against pydicom's array: "fit", "broadcast" (one value) or "wrong"
    j_bytes: int


@dataclass(frozen=True)
class RlePlan:
    """What the RLE kernel reads: the staged bytes and one table entry per (frame, segment) slot, slot
    ``f * n_segments + k`` holding segment k (k = sample * bytes + byte, most significant byte first),
    then the entries that only measure (pylibjpeg-rle's segments where its frame cannot be placed)."""

    source: np.ndarray  # uint8: every selected frame's bytes (a view when each is one fragment)
    table: np.ndarray  # int64 (3, n_entries): segment start, end (absolute in source), pylibjpeg-rle room
    launch: RleLaunch
    frames: tuple[FrameRle, ...]
    frame_bytes: int  # bytes of one decoded frame in the intermediate layout

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def seg_start(self) -> np.ndarray:
        return self.table[0]

    @property
    def seg_end(self) -> np.ndarray:
        return self.table[1]


def bytes_per_sample(spec: PixelSpec) -> int:
    return 1 if spec.bits_allocated == 1 else spec.bits_allocated // 8


def frame_length_bytes(spec: PixelSpec) -> int:
    """pydicom's ``frame_length(unit="bytes")`` for encapsulated data."""
    n = spec.rows * spec.columns * spec.samples_per_pixel
    return -(-n // 8) if spec.bits_allocated == 1 else n * spec.bits_allocated // 8


def stage_rle(buffer, frames: Sequence[Frame]) -> tuple[np.ndarray, list[int], list[int]]:
    """Contiguous bytes holding every frame, with each frame's start and length in them: a view over the
    element when every frame is one fragment, else one joined copy."""
    view = np.frombuffer(buffer, dtype=np.uint8)
    if all(len(f) == 1 for f in frames):
        lo = min(f[0].offset for f in frames)
        hi = max(f[0].end for f in frames)
        return view[lo:hi], [f[0].offset - lo for f in frames], [f[0].length for f in frames]
    lengths = [sum(e.length for e in f) for f in frames]
    starts = [0, *itertools.accumulate(lengths)][:-1]
    return np.concatenate([view[e.offset : e.end] for f in frames for e in f]), starts, lengths


def _pydicom_segments(spec: PixelSpec, header, length: int) -> tuple[str | None, list[tuple[int, int]]]:
    """pydicom's rle._rle_decode_frame before decoding: (why it fails, segments relative to the frame)."""
    if spec.bits_allocated % 8:
        return f"pydicom's RLE decoder needs Bits Allocated a multiple of 8, not {spec.bits_allocated}", []
    if header is None:
        return f"the frame is {length} bytes, shorter than the {HEADER_BYTES}-byte RLE header", []
    count, offsets = header
    if count > MAX_SEGMENTS:
        return f"the RLE header declares {count} segments; at most {MAX_SEGMENTS} are allowed", []
    need = spec.samples_per_pixel * bytes_per_sample(spec)
    if count != need:
        return (
            f"the RLE header declares {count} segment(s) but {spec.samples_per_pixel} sample(s) x "
            f"{spec.bits_allocated // 8} byte(s) need {need}"
        ), []
    ranges = []
    for i in range(count):
        start = min(offsets[i], length)
        end = min(offsets[i + 1] if i + 1 < count else length, length)
        ranges.append((start, max(start, end)))  # Python slicing: empty when the end is before the start
    for i, (a, b) in enumerate(ranges):
        if a == b:
            stop = offsets[i + 1] if i + 1 < count else length
            return f"segment {i} is empty (offsets {offsets[i]}..{stop} of a {length}-byte frame)", ranges
    return None, ranges


def _pylibjpeg_segments(
    spec: PixelSpec, header, length: int
) -> tuple[str | None, bool, list[tuple[int, int, int, int]], int]:
    """pylibjpeg-rle 2.2's decode_frame before decoding: (error, panics, segments in its decode order as
    (header index, start, end, room), its frame's byte count)."""
    if header is None:
        return "frame is not long enough to contain RLE encoded data", False, [], 0
    _, offsets = header
    if offsets[0] != HEADER_BYTES:
        return f"the first segment offset is {offsets[0]}, not {HEADER_BYTES}", False, [], 0
    nz = [o for o in offsets if o]
    if length > 0xFFFFFFFF:
        return f"the frame is {length} bytes, more than a u32 holds", True, [], 0
    ends = nz + [length]
    if any(b <= a for a, b in zip([0] + ends, ends)):
        return f"the non-zero segment offsets {nz} (frame end {length}) are not increasing", False, [], 0
    bps = bytes_per_sample(spec)
    spp = len(nz) // bps
    if spp not in (1, 3) or (spp == 3 and spec.bits_allocated == 1):
        return f"{len(nz)} non-zero segment offsets give {spp} sample(s) per pixel", False, [], 0
    plane = spec.rows * spec.columns
    frame = (plane * len(nz)) & 0xFFFFFFFF  # a u32 product in Rust (wraps in release builds)
    segments = []
    for s in range(spp):
        for b in range(bps):  # b: little-endian byte of the output value
            i = s * bps + bps - 1 - b
            segments.append((i, nz[i], ends[i + 1], frame - (s * bps * plane + b)))
    return None, False, segments, frame


def _fit(spec: PixelSpec, spp: int, nbytes: int) -> str:
    """How pydicom's array takes a pylibjpeg-rle frame: ``arr[...] = np.frombuffer(frame, dtype)``."""
    item = spec.dtype.itemsize
    wanted = spec.samples_per_pixel * spec.rows * spec.columns
    if nbytes % item == 0 and nbytes // item == wanted and spp == spec.samples_per_pixel:
        return "fit"
    if nbytes == item and spp == 1:
        return "broadcast"  # one value broadcast over the frame (a 1 x 1 image with fewer samples)
    return "wrong"


def _header(frame: np.ndarray):
    if frame.size < HEADER_BYTES:
        return None
    words = struct.unpack("<16L", frame[:HEADER_BYTES].tobytes())
    return words[0], list(words[1:])


def plan_rle(spec: PixelSpec, buffer, frames: Sequence[Frame], *, index: int | None = None,
             numbers: Sequence[int] | None = None) -> RlePlan:
    """Parse every frame header, stage the frames' bytes and build the kernel's segment table.

    `frames` are all the file's frames (``index=None``; those past Number of Frames are pydicom's excess
    frames) or the one frame `index`; `numbers` names them in the file when they are a run of it (a
    batch of the file's frames with ``index=None``, or frames each decoded afresh with an `index`). Raises :class:`InvalidPixelData` for a frame that neither of
    pydicom's decoders can turn into pixels, whatever its segments decode to.
    """
    src = spec.source
    if not frames:
        raise InvalidPixelData(f"{src}: no frames selected")
    if spec.bits_allocated not in (1, 8, 16, 32, 64):
        raise InvalidPixelData(f"{src}: no RLE kernel for Bits Allocated {spec.bits_allocated}")
    data, starts, lengths = stage_rle(buffer, frames)
    bps = bytes_per_sample(spec)
    n_seg = spec.samples_per_pixel * bps
    plane = spec.rows * spec.columns
    n_slots = len(frames) * n_seg

    starts_col: list[int] = [0] * n_slots
    ends_col: list[int] = [0] * n_slots
    rooms_col: list[int] = [RLE_NO_ROOM] * n_slots
    out: list[FrameRle] = []

    def probe(a: int, b: int, room: int) -> int:
        starts_col.append(a)
        ends_col.append(b)
        rooms_col.append(room)
        return len(starts_col) - 1

    for pos, (base, length) in enumerate(zip(starts, lengths)):
        number = numbers[pos] if numbers is not None else pos if index is None else index
        excess = index is None and number >= spec.number_of_frames
        header = _header(data[base : base + length])
        p_error, p_rel = _pydicom_segments(spec, header, length)
        j_error, j_panic, j_rel, j_bytes = _pylibjpeg_segments(spec, header, length)
        p_ranges = tuple((base + a, base + b) for a, b in p_rel)
        j_kind = _fit(spec, len(j_rel) // bps, j_bytes) if j_error is None else "wrong"

        if j_error is None and j_kind != "wrong":
            slots = "pylibjpeg"
            by_index = {i: (base + a, base + b, room) for i, a, b, room in j_rel}
            for k in range(n_seg):
                s, j = divmod(k, bps)
                e = pos * n_seg + k
                starts_col[e], ends_col[e], rooms_col[e] = by_index[(0 if j_kind == "broadcast" else s) * bps + j]
        elif p_error is None:
            slots = "pydicom"
            for k, (a, b) in enumerate(p_ranges):
                starts_col[pos * n_seg + k], ends_col[pos * n_seg + k] = a, b
        else:
            slots = None

        if not _may_succeed(excess, p_error, j_error, j_kind):
            why = j_error if j_error is not None else _wrong_size(spec, j_rel, j_bytes)
            raise InvalidPixelData(
                f"{src}: RLE frame {number}: {p_error}; pylibjpeg-rle, which pydicom tries first, "
                f"{'panics' if j_panic else 'fails'} too: {why}"
            )

        # When pydicom's decoder accepts the header, its segments are the slots' whichever decoder they
        # were chosen for: the count matches, the first `count` offsets are non-zero and increasing, so
        # they also are pylibjpeg-rle's (if it accepts the frame), with the same last end.
        slot_ranges = [(starts_col[pos * n_seg + k], ends_col[pos * n_seg + k]) for k in range(n_seg)]
        if p_error is None and slot_ranges != list(p_ranges):  # pragma: no cover - see above
            raise AssertionError(f"{src}: frame {number}: the slots do not hold pydicom's segments")

        if j_error is not None:
            j_entries: tuple[int, ...] = ()
        elif slots == "pylibjpeg":
            j_entries = tuple(pos * n_seg + i for i, *_ in j_rel)
        else:
            j_entries = tuple(probe(base + a, base + b, room) for _, a, b, room in j_rel)
        out.append(
            FrameRle(
                number, excess, slots, p_error, j_error, j_panic, j_entries,
                tuple(i for i, *_ in j_rel), j_kind, j_bytes,
            )
        )

    table = np.array([starts_col, ends_col, rooms_col], dtype=np.int64)
    n_entries = table.shape[1]
    launch = RleLaunch(
        kernel="gpudcm_rle",
        geometry=launch_geometry(n_entries * RLE_LANES),
        n_entries=n_entries,
        n_slots=n_slots,
        n_segments=n_seg,
        bytes_per_sample=bps,
        plane=plane,
    )
    return RlePlan(data, table, launch, tuple(out), n_seg * plane)


def _may_succeed(excess: bool, p_error: str | None, j_error: str | None, j_kind: str) -> bool:
    if p_error is None:
        return True
    if excess:
        return j_error is None  # a wrong-sized frame is dropped, not an error
    return j_error is None and j_kind != "wrong"


def _wrong_size(spec: PixelSpec, j_rel, j_bytes: int) -> str:
    return (
        f"its {len(j_rel)} segment(s) decode into {j_bytes} bytes, which pydicom cannot place in a frame of "
        f"{spec.rows} x {spec.columns} x {spec.samples_per_pixel} at {spec.bits_allocated} bits"
    )


def _pick(previous: str | None, j_state: str, p_ok: bool) -> tuple[str | None, str | None]:
    """pydicom's choice for one frame: (the decoder whose frame it takes, "panic", or None when it
    raises; the decoder it tries first on the next frame). Mirrors DecodeRunner.iter_decode/_decode_frame."""
    # iter_decode tries the decoder that last succeeded first; when that raises it falls back to
    # _decode_frame, which does not change `previous` unless another decoder succeeds
    if previous == "pylibjpeg" and j_state != "error":
        return ("pylibjpeg" if j_state == "ok" else "panic"), previous
    if previous == "pydicom" and p_ok:
        return "pydicom", previous
    # _decode_frame: pylibjpeg-rle, then pydicom's decoder; a Rust panic is no Exception, nothing catches it
    if j_state == "panic":
        return "panic", previous
    if j_state == "ok":
        return "pylibjpeg", "pylibjpeg"
    if p_ok:
        return "pydicom", "pydicom"
    return None, previous


def resolve(spec: PixelSpec, plan: RlePlan, lengths: np.ndarray) -> list[int]:
    """The frames (positions in ``plan.frames``) pydicom's array holds, given the kernel's lengths
    (2 x n_entries: decoded length, pylibjpeg-rle replay); raises :class:`DecodeError` where pydicom does.

    ``index=None`` plans carry pydicom's state from frame to frame; a single frame starts afresh."""
    return resolve_from(spec, plan, lengths)[0]


def resolve_from(spec: PixelSpec, plan: RlePlan, lengths: np.ndarray, previous: str | None = None, *,
                 fresh: bool = False) -> tuple[list[int], str | None]:
    """:func:`resolve` continuing from pydicom's state `previous` (the decoder that last succeeded on the
    file's earlier frames: a plan of a batch of them), or with every frame afresh (`fresh`: frames
    pydicom decodes one by one); returns (the kept frames, the state after the last)."""
    n = plan.launch.n_entries
    decoded, replay = lengths[:n], lengths[n:]
    plane = plan.launch.plane
    n_seg = plan.launch.n_segments
    keep: list[int] = []
    for pos, fr in enumerate(plan.frames):
        if fresh:
            previous = None
        j_state, j_why = _pylibjpeg_outcome(fr, replay, plane)
        p_ok, p_why = _pydicom_outcome(fr, decoded[pos * n_seg : (pos + 1) * n_seg], plane)
        winner, previous = _pick(previous, j_state, p_ok)
        if winner == "panic":
            raise DecodeError(
                f"pylibjpeg-rle, which pydicom tries first, panics ({j_why}); the CPU path raises too",
                source=spec.source, frame=fr.number,
            )
        if winner is None:
            raise DecodeError(f"pylibjpeg-rle: {j_why}; pydicom: {p_why}", source=spec.source, frame=fr.number)
        if winner == "pylibjpeg":
            if fr.excess and fr.j_bytes != frame_length_bytes(spec):
                continue  # pydicom keeps an excess frame only when it is a whole frame
            if fr.j_kind == "wrong" or (fr.excess and fr.j_kind != "fit"):
                raise DecodeError("pylibjpeg-rle: " + _wrong_size(spec, fr.j_segments, fr.j_bytes),
                                  source=spec.source, frame=fr.number)
        keep.append(pos)
    return keep, previous


def _pylibjpeg_outcome(fr: FrameRle, replay: np.ndarray, plane: int) -> tuple[str, str]:
    """("ok" | "error" | "panic", why) of pylibjpeg-rle on the frame, in its decode order."""
    if fr.j_error is not None:
        return ("panic" if fr.j_panic else "error"), fr.j_error
    for e, i in zip(fr.j_entries, fr.j_segments):
        r = int(replay[e])
        if r == RLE_J_PANIC:
            return "panic", f"segment {i} writes past the end of its frame vector"
        if r == RLE_J_ERROR:
            return "error", f"a run in segment {i} goes past the end of the segment"
        if r != plane:
            return "error", f"segment {i} decodes to {r} values, not Rows x Columns = {plane}"
    return "ok", ""


def _pydicom_outcome(fr: FrameRle, decoded: np.ndarray, plane: int) -> tuple[bool, str]:
    """(whether pydicom's decoder succeeds, why not), from the frame's slot lengths in header order."""
    if fr.p_error is not None:
        return False, fr.p_error
    for i, d in enumerate(decoded.tolist()):
        if d < plane:
            return False, f"segment {i} decodes to {d} bytes, fewer than Rows x Columns = {plane}"
    return True, ""


def _check_rle_status(spec: PixelSpec, status: int) -> None:
    bad = status & (STATUS_READ_OOB | STATUS_BAD_PARAMS | RLE_STATUS_WRITE_OOB)
    if bad:
        raise InvalidPixelData(f"{spec.source}: the RLE kernel refused its table (status {status})")


# launch_rle(launch, src_uint8, table_int64 (3, n), out_uint8, lengths_int64 (2 * n)) -> status bits
RleLauncher = Callable[[RleLaunch, np.ndarray, np.ndarray, object, object], int]


def _host(a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def _native_launch(spec: PixelSpec, n_frames: int) -> NativeLaunch:
    """Planar little-endian frames -> pydicom's interleaved array, Bits Stored applied."""
    flags = (NATIVE_SIGNED if spec.is_signed else 0) | (NATIVE_PLANAR if spec.samples_per_pixel > 1 else 0)
    if spec.corrects_unused_bits:
        flags |= NATIVE_CORRECT_BITS
    return NativeLaunch(
        kernel=f"gpudcm_native_{spec.bits_allocated}",
        bits=spec.bits_allocated,
        geometry=launch_geometry(n_frames * spec.frame_pixels),
        n_frames=n_frames,
        rows=spec.rows,
        cols=spec.columns,
        samples=spec.samples_per_pixel,
        bits_stored=spec.bits_stored,
        flags=flags,
    )


def _wanted(request: RleRequest) -> tuple[list[Frame], list[int]]:
    """(extents, frame numbers) of the frames `request` decodes, every one checked to exist."""
    spec, buffer = request.spec, request.buffer
    if hasattr(buffer, "read_into"):  # a gpudcm.reader.PixelReader: its extents, checked when it opened
        frames = buffer.frames
    else:
        frames = frame_extents(spec, buffer, extended_offsets=request.extended_offsets)
    if request.index is None:
        if len(frames) < spec.number_of_frames:
            raise InvalidPixelData(
                f"{spec.source}: the encapsulated Pixel Data holds {len(frames)} frame(s) but "
                f"Number of Frames is {spec.number_of_frames}"
            )
        return frames, list(range(len(frames)))
    numbers = []
    for i in [request.index] if isinstance(request.index, int) else request.index:
        i = spec.check_index(i)
        if i >= len(frames):
            raise InvalidPixelData(f"{spec.source}: frame {i} is missing: the Pixel Data holds {len(frames)}")
        numbers.append(i)
    return [frames[i] for i in numbers], numbers


def _copy_frame(buffer, number: int, frame: Frame, dst: np.ndarray) -> None:
    """Frame `number`'s bytes (its fragments joined) into `dst`: read from the file for a reader."""
    if hasattr(buffer, "read_into"):
        buffer.read_into(number, dst)
        return
    view, pos = np.frombuffer(buffer, dtype=np.uint8), 0
    for e in frame:
        dst[pos : pos + e.length] = view[e.offset : e.end]
        pos += e.length


def _writes_final(spec: PixelSpec) -> bool:
    """The planar little-endian layout already is the array when there is one plane (or one pixel)."""
    direct = (spec.samples_per_pixel == 1 or spec.rows * spec.columns == 1) and not spec.corrects_unused_bits
    direct = direct and sys.byteorder == "little"
    if spec.bits_allocated == 1 and not direct:
        raise InvalidPixelData(f"{spec.source}: no kernel unpacks {spec.samples_per_pixel}-sample one-bit RLE")
    return direct


@dataclass(frozen=True)
class RleRequest:
    """One RLE file's part of a batch: `buffer` is the element's bytes or a gpudcm.reader.PixelReader
    (frames read from the file into the staging buffer batch by batch); `index` one frame, a list of
    frames (each decoded afresh, as pydicom decodes a frame by index) or None (all: pydicom's state
    carried from frame to frame)."""

    spec: PixelSpec
    buffer: object
    index: int | list[int] | None = None
    extended_offsets: object = None


def layout_key(spec: PixelSpec) -> tuple:
    """Files with equal keys decode in one RLE launch (and one native launch)."""
    return (spec.rows, spec.columns, spec.samples_per_pixel, spec.bits_allocated, spec.bits_stored,
            spec.pixel_representation)


def merge_plans(plans: Sequence[RlePlan], into: Callable[[int], np.ndarray] | None = None, *,
                source: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, RleLaunch, list[np.ndarray], list[int]]:
    """One source, one table and one launch for plans of one layout: every write slot first (file after
    file, so frame k of the merged output is a file's frame), then every measure-only entry.
    `into(nbytes)` gives the buffer the sources are gathered into (the pinned staging), in one copy;
    `source`: the plans' sources already lie back to back in it (no copy).

    Returns (source, table, launch, per plan the global index of each of its entries, source offsets)."""
    first = plans[0].launch
    slot_base, measure_base, offsets, pos = 0, sum(p.launch.n_slots for p in plans), [], 0
    maps = []
    for p in plans:
        offsets.append(pos)
        n, n_slots = p.launch.n_entries, p.launch.n_slots
        local = np.arange(n, dtype=np.int64)
        maps.append(np.where(local < n_slots, slot_base + local, measure_base + local - n_slots))
        slot_base += n_slots
        measure_base += n - n_slots
        pos += len(p.source)
    n_entries = measure_base
    table = np.empty((3, n_entries), dtype=np.int64)
    for p, m, off in zip(plans, maps, offsets):
        table[0, m] = p.table[0] + off
        table[1, m] = p.table[1] + off
        table[2, m] = p.table[2]
    if source is not None:
        source = source[:pos]
    elif into is not None:
        source = into(pos)[:pos]
        np.concatenate([p.source for p in plans], out=source)
    else:
        source = np.concatenate([p.source for p in plans]) if len(plans) > 1 else plans[0].source
    n_slots = sum(p.launch.n_slots for p in plans)
    launch = replace(first, geometry=launch_geometry(n_entries * RLE_LANES), n_entries=n_entries, n_slots=n_slots)
    return source, table, launch, maps, offsets


# Compressed bytes staged and decoded per RLE launch: the host holds one such batch, not the element.
RLE_BATCH_BYTES = 32 << 20


def decode_rle_batch(
    requests: Sequence[RleRequest],
    *,
    launch_rle: RleLauncher,
    launch_native: NativeLauncher,
    xp=np,
    staging: Callable[[int], np.ndarray] | None = None,
    batch_bytes: int | None = None,
    outs: Sequence | None = None,
) -> list:
    """Decode RLE files of one layout (see :func:`layout_key`), one RLE launch (and at most one native
    launch per output) per batch of at most `batch_bytes` (default RLE_BATCH_BYTES) compressed bytes (a
    larger frame alone); one array per request, each equal to the CPU path's ``raw=True`` result.

    Each batch's frames are read (a reader: from the file) straight into `staging(nbytes)` (pinned on a
    GPU), so the host holds one batch of compressed bytes; many small files share a batch and its
    launches. A request spanning several batches, or given an output in `outs` (C-contiguous, its
    result's shape and dtype), is decoded into that one array batch by batch, with no temporary of its
    size."""
    specs = [r.spec for r in requests]
    if len({layout_key(s) for s in specs}) != 1:
        raise ValueError("decode_rle_batch needs files of one layout; group them with layout_key")
    spec = specs[0]
    direct = _writes_final(spec)
    pixels = spec.frame_pixels
    wanted = [_wanted(r) for r in requests]
    items = [(k, j) for k, (frames, _) in enumerate(wanted) for j in range(len(frames))]
    sizes = [sum(e.length for e in wanted[k][0][j]) for k, j in items]
    batches = split_batches(sizes, batch_bytes or RLE_BATCH_BYTES) if items else []
    spans = [0] * len(requests)
    for batch in batches:
        for k in {items[i][0] for i in batch}:
            spans[k] += 1
    given = list(outs) if outs is not None else [None] * len(requests)
    own: list = [None] * len(requests)  # the request's whole output (flat), filled batch by batch
    for k, r in enumerate(requests):
        regular = sum(1 for n in wanted[k][1] if r.index is not None or n < r.spec.number_of_frames)
        out_k = given[k]
        if (out_k is not None and out_k.size == regular * pixels and out_k.dtype == spec.dtype
                and out_k.flags.c_contiguous):
            own[k] = out_k.reshape(-1)
        elif spans[k] > 1:  # (an `outs` entry that is not the result's is left to the caller to check)
            own[k] = xp.empty(regular * pixels, dtype=spec.dtype)
    batches = [part for batch in batches for part in _own_runs(batch, items, own)]
    filled = [0] * len(requests)  # frames written into own[k]
    extra: list[list] = [[] for _ in requests]  # excess frames pydicom keeps past own[k]'s rows
    pieces: list = [None] * len(requests)  # a one-batch request's frames (a view of its batch's output)
    previous: list[str | None] = [None] * len(requests)
    for batch in batches:
        its = [items[i] for i in batch]
        total = sum(sizes[i] for i in batch)
        host = staging(total)[:total] if staging is not None else np.empty(total, dtype=np.uint8)
        staged, pos = [], 0
        for (k, j), i in zip(its, batch):  # file -> staging, frame by frame
            _copy_frame(requests[k].buffer, wanted[k][1][j], wanted[k][0][j], host[pos : pos + sizes[i]])
            staged.append((Extent(pos, sizes[i]),))
            pos += sizes[i]
        runs: list[tuple[int, list[int]]] = []  # (request, positions in the batch) of consecutive frames
        for p, (k, _) in enumerate(its):
            if runs and runs[-1][0] == k:
                runs[-1][1].append(p)
            else:
                runs.append((k, [p]))
        plans = []
        for k, ps in runs:
            numbers = [wanted[k][1][its[p][1]] for p in ps]
            index = None if requests[k].index is None else numbers[0]
            plans.append(plan_rle(requests[k].spec, host, [staged[p] for p in ps], index=index, numbers=numbers))
        source, table, launch, maps, _ = merge_plans(plans, source=host)
        n = sum(p.n_frames for p in plans)
        k0 = runs[0][0]
        straight = (direct and len(runs) == 1 and own[k0] is not None and not any(f.excess for f in plans[0].frames))
        if straight:  # the kernel writes the request's own rows
            out = own[k0][filled[k0] * pixels : (filled[k0] + n) * pixels].view(xp.uint8)
        elif direct:
            decoded = xp.empty(n * pixels, dtype=spec.dtype)
            out = decoded.view(xp.uint8)
        else:
            out = xp.empty(n * plans[0].frame_bytes, dtype=xp.uint8)
        lengths = xp.empty(2 * launch.n_entries, dtype=xp.int64)
        _check_rle_status(spec, launch_rle(launch, source, table, out, lengths))
        lengths = _host(lengths)
        base = 0
        for (k, ps), p, m in zip(runs, plans, maps):
            local = np.concatenate([lengths[m], lengths[launch.n_entries + m]])
            keep, previous[k] = resolve_from(requests[k].spec, p, local, previous[k],
                                             fresh=requests[k].index is not None)
            regular = [base + x for x in keep if not p.frames[x].excess]
            excess = [base + x for x in keep if p.frames[x].excess]
            base += p.n_frames
            if straight:
                filled[k] += len(regular)
                continue
            for rows, into_own in ((regular, own[k] is not None), (excess, False)):
                if not rows:
                    continue
                if into_own:
                    dst = own[k][filled[k] * pixels : (filled[k] + len(rows)) * pixels]
                    filled[k] += len(rows)
                else:
                    dst = None
                got = _place(spec, rows, decoded if direct else out, direct, plans[0].frame_bytes, dst, launch_native, xp)
                if own[k] is None:  # one batch holds all its frames (its excess ones included)
                    pieces[k] = got if pieces[k] is None else xp.concatenate([pieces[k], got])
                elif rows is excess:
                    extra[k].append(got)
    results = []
    for k, r in enumerate(requests):
        arr = own[k] if own[k] is not None else pieces[k]
        if arr is None:
            arr = xp.empty(0, dtype=spec.dtype)
        if extra[k]:
            arr = xp.concatenate([arr, *extra[k]])
        rows = arr.size // pixels
        if isinstance(r.index, int) or (r.index is None and rows == 1):
            results.append(arr.reshape(r.spec.frame_shape))
        else:
            results.append(arr.reshape((rows, *r.spec.frame_shape)))
    return results


def _own_runs(batch: range, items: list[tuple[int, int]], own: list) -> list[range]:
    """`batch` split where a request with its own output begins or ends, so that its frames are decoded
    by launches of their own, straight into its rows (other requests keep sharing the batch)."""
    parts, start = [], batch.start
    for i in range(batch.start + 1, batch.stop):
        k, before = items[i][0], items[i - 1][0]
        if k != before and (own[k] is not None or own[before] is not None):
            parts.append(range(start, i))
            start = i
    parts.append(range(start, batch.stop))
    return parts


def _place(spec: PixelSpec, rows: list[int], decoded, final_layout: bool, frame_bytes: int, dst, launch_native, xp):
    """Frames `rows` of a batch's decoded output as the final array (flat): a view when they are
    contiguous and in the final layout already, else gathered, or run through the native kernel
    (planar -> interleaved, Bits Stored) from the intermediate layout; into `dst` when given."""
    pixels = spec.frame_pixels
    if final_layout:
        frames = decoded.reshape(-1, pixels)
        contiguous = rows == list(range(rows[0], rows[0] + len(rows)))
        got = frames[rows[0] : rows[0] + len(rows)] if contiguous else frames[xp.asarray(rows, dtype=xp.int64)]
        if dst is None:
            return got.reshape(-1)
        dst[...] = got.reshape(-1)
        return dst
    final = dst if dst is not None else xp.empty(len(rows) * pixels, dtype=spec.dtype)
    native = _native_launch(spec, len(rows))
    check_status(spec, launch_native(native, decoded, np.asarray(rows, dtype=np.int64) * frame_bytes, final))
    return final


def decode_rle(
    spec: PixelSpec,
    buffer,
    *,
    index: int | None = None,
    launch_rle: RleLauncher,
    launch_native: NativeLauncher,
    xp=np,
    extended_offsets=None,
):
    """Decode all frames (or frame `index`) of RLE Lossless `spec`; returns an `xp` array equal to the
    CPU path's ``raw=True`` result (shape, dtype, values)."""
    request = RleRequest(spec, buffer, index, extended_offsets)
    return decode_rle_batch([request], launch_rle=launch_rle, launch_native=launch_native, xp=xp)[0]


def cupy_launch_rle(launch: RleLaunch, src: np.ndarray, table: np.ndarray, out, lengths) -> int:
    """Copy the staged bytes and the table to the device and run the RLE kernel on CuPy's current stream."""
    import cupy

    from .kernels import get_function

    d_src = cupy.asarray(src)
    d_table = cupy.asarray(np.ascontiguousarray(table, dtype=np.int64))
    status = cupy.zeros(1, dtype=cupy.uint32)
    kernel = get_function("rle.cu", launch.kernel)
    g = launch.geometry
    kernel(
        (g.grid,),
        (g.block,),
        (d_src, np.uint64(d_src.size), d_table, *launch.scalars(), out, np.uint64(out.size), lengths, status),
    )
    return int(status.get()[0])
