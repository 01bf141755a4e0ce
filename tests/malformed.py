"""A corpus of malformed DICOM files, generated in memory from small valid ones, and the checker that
runs one file through every decode path available without a GPU.

Each case is bytes plus a name. The promise checked (README, "Promises on bad input"): a decode equal to
pydicom's where pydicom decodes the file, or a :class:`gpudcm.GpudcmError` whose message names the source;
never another exception, never a hang (per-case watchdog), never a crash.
"""

from __future__ import annotations

import copy
import faulthandler
import io
import signal
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from pydicom import config, dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset, read_preamble
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless

import gpudcm
from gpudcm.api import _device_decode
from gpudcm.reader import open_pixels
from gpudcm.errors import GpudcmError
from gpudcm.source import source_name

# Small valid files covering native (LE/BE, 1-bit, RGB, YBR_FULL_422, multi-frame) and encapsulated
# (RLE, JPEG baseline, JPEG-LS, JPEG 2000, multi-frame) data.
BASE_FILES = (
    "CT_small.dcm",
    "emri_small.dcm",
    "MR_small_bigendian.dcm",
    "liver_1frame.dcm",
    "SC_rgb.dcm",
    "SC_ybr_full_422_uncompressed.dcm",
    "emri_small_RLE.dcm",
    "SC_rgb_rle_16bit.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
)

CASE_TIMEOUT_S = 10.0  # soft (SIGALRM) limit per decode; the hard limit kills the process
HARD_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Case:
    """One malformed file: `data` is the whole file."""

    name: str
    data: bytes


@lru_cache(maxsize=None)
def base_bytes(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as fp:
        return fp.read()


@lru_cache(maxsize=None)
def _base_dataset(name: str) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(io.BytesIO(base_bytes(name)))


def base_dataset(name: str) -> Dataset:
    """A fresh copy of the parsed base file (safe to mutate)."""
    return copy.deepcopy(_base_dataset(name))


def pixel_offset(data: bytes) -> int:
    """Byte offset of the pixel data element's tag in a file."""
    fp = io.BytesIO(data)
    read_preamble(fp, True)
    meta = _read_file_meta_info(fp)
    ts = UID(meta.TransferSyntaxUID)
    read_dataset(fp, ts.is_implicit_VR, ts.is_little_endian, stop_when=_at_pixel_data)
    return fp.tell()


@contextmanager
def lenient() -> Iterator[None]:
    """pydicom's value validation off, so that lying values can be written."""
    old = config.settings.reading_validation_mode, config.settings.writing_validation_mode
    config.settings.reading_validation_mode = config.settings.writing_validation_mode = config.IGNORE
    try:
        yield
    finally:
        config.settings.reading_validation_mode, config.settings.writing_validation_mode = old


def to_bytes(ds: Dataset) -> bytes:
    """`ds` written as a file (its own transfer syntax; no conformance fix-ups)."""
    buf = io.BytesIO()
    with lenient(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def split_items(value: bytes) -> tuple[bytes, list[bytes]]:
    """(Basic Offset Table bytes, fragments) of a well-formed encapsulated Pixel Data value."""
    pos, items = 0, []
    while pos + 8 <= len(value):
        tag, length = struct.unpack_from("<LL", value, pos)
        if tag == 0xE0DDFFFE:
            break
        items.append(value[pos + 8 : pos + 8 + length])
        pos += 8 + length
    return items[0], items[1:]


def join_items(bot: bytes, frags: list[bytes]) -> bytes:
    out = [struct.pack("<HHL", 0xFFFE, 0xE000, len(bot)), bot]
    for f in frags:
        out += [struct.pack("<HHL", 0xFFFE, 0xE000, len(f)), f]
    return b"".join(out)


_PLACEHOLDER = "77777777"


def _with(name: str, **elements) -> bytes:
    """The base file with elements set (None deletes); string values pydicom refuses for IS are patched
    into the written bytes."""
    ds = base_dataset(name)
    patch = None
    with lenient():
        for kw, value in elements.items():
            if value is None:
                if kw in ds:
                    del ds[kw]
            elif kw == "NumberOfFrames" and isinstance(value, str):
                patch = value
                setattr(ds, kw, _PLACEHOLDER)
            else:
                setattr(ds, kw, value)
    data = to_bytes(ds)
    if patch is None:
        return data
    i = data.find(_PLACEHOLDER.encode())
    value = patch.encode() + b" " * (len(patch) % 2)
    big = not ds.file_meta.TransferSyntaxUID.is_little_endian
    if data[i - 4 : i - 2] == b"IS":  # explicit VR: 2-byte length
        length = struct.pack(">H" if big else "<H", len(value))
        return data[: i - 2] + length + value + data[i + len(_PLACEHOLDER) :]
    length = struct.pack(">L" if big else "<L", len(value))
    return data[: i - 4] + length + value + data[i + len(_PLACEHOLDER) :]


def _with_pixels(name: str, value: bytes, undefined: bool | None = None) -> bytes:
    """The base file with the pixel element's value replaced by `value` (bytes spliced, so values
    pydicom would refuse to write are possible); undefined length for encapsulated syntaxes."""
    data = base_bytes(name)
    px = pixel_offset(data)
    ts = _base_dataset(name).file_meta.TransferSyntaxUID
    if undefined is None:
        undefined = ts.is_encapsulated
    order = "<" if ts.is_little_endian else ">"
    length = struct.pack(f"{order}L", 0xFFFFFFFF if undefined else len(value))
    head = data[px : px + 4] if ts.is_implicit_VR else data[px : px + 8]
    tail = struct.pack(f"{order}HHL", 0xFFFE, 0xE0DD, 0) if undefined else b""
    return data[:px] + head + length + value + tail


# ---------------------------------------------------------------------------------------------- families


def truncated(name: str) -> Iterator[Case]:
    """The file cut at points in the meta, the header, the pixel element's header and its value."""
    data = base_bytes(name)
    px = pixel_offset(data)
    n = len(data)
    points = {0, 1, 100, 128, 132, 136, 140, 160, px // 2, px - 1, px, px + 2, px + 4, px + 6, px + 8, px + 10,
              px + 12, px + 16, px + 20, px + 24, px + 64, px + 100, n // 2, (px + n) // 2, n - 20, n - 9, n - 8,
              n - 4, n - 2, n - 1}
    for p in sorted(x for x in points if 0 <= x < n):
        yield Case(f"{name}/truncated@{p}", data[:p])


_US_LIES = {
    "Rows": (0, 1, 2, 63, 65, 1000, 65535),
    "Columns": (0, 1, 3, 65, 4096, 65535),
    "BitsAllocated": (0, 1, 7, 8, 12, 16, 24, 32, 64, 65535),
    "BitsStored": (0, 1, 7, 8, 12, 15, 16, 17, 33, 65535),
    "HighBit": (0, 7, 11, 15, 16, 65535),
    "SamplesPerPixel": (0, 1, 2, 3, 4, 65535),
    "PixelRepresentation": (0, 1, 2),
    "PlanarConfiguration": (0, 1, 2),
}
_FRAME_LIES = ("0", "-1", "-2147483648", "1", "2", "3", "9", "11", "1000", "2147483647", "2147483648",
               "99999999999", "1.5", "abc", "", "1\\2")
_PI_LIES = ("MONOCHROME1", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "PALETTE COLOR", "ARGB", "BOGUS", "")


def header_lies(name: str) -> Iterator[Case]:
    """Rows, Columns, Bits*, Samples per Pixel, Photometric Interpretation and frame counts that lie."""
    for kw, values in _US_LIES.items():
        for v in values:
            yield Case(f"{name}/{kw}={v}", _with(name, **{kw: v}))
        yield Case(f"{name}/{kw} missing", _with(name, **{kw: None}))
    for v in _FRAME_LIES:
        yield Case(f"{name}/NumberOfFrames={v!r}", _with(name, NumberOfFrames=v))
    for v in _PI_LIES:
        yield Case(f"{name}/PhotometricInterpretation={v!r}", _with(name, PhotometricInterpretation=v))
    yield Case(f"{name}/64K x 64K x 2^31-1", _with(name, Rows=65535, Columns=65535, NumberOfFrames="2147483647"))
    yield Case(f"{name}/64K x 64K x 1", _with(name, Rows=65535, Columns=65535, NumberOfFrames="1"))
    yield Case(f"{name}/rgb lie", _with(name, SamplesPerPixel=3, PhotometricInterpretation="RGB", PlanarConfiguration=0))


def syntax_lies(name: str) -> Iterator[Case]:
    """The transfer syntax swapped for another (data not re-encoded), unknown, or missing."""
    data = base_bytes(name)
    old = _base_dataset(name).file_meta.TransferSyntaxUID
    for ts in (ExplicitVRLittleEndian, RLELossless, JPEGBaseline8Bit, "1.2.840.10008.1.2.4.80",
               "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.201", "1.2.3.4", "1.2.840.10008.1.2.5.0"):
        new = str(ts).encode()
        if len(new) % 2:
            new += b"\0"
        oldb = str(old).encode()
        oldb += b"\0" * (len(oldb) % 2)
        # patch the element (and its length) in the meta so the rest of the file is unchanged
        i = data.find(b"\x02\x00\x10\x00UI")
        if i < 0:
            continue
        length = struct.unpack_from("<H", data, i + 6)[0]
        patched = data[: i + 6] + struct.pack("<H", len(new)) + new + data[i + 8 + length :]
        # keep the group length honest: recompute it
        g = patched.find(b"\x02\x00\x00\x00UL")
        if g >= 0:
            glen = struct.unpack_from("<L", patched, g + 8)[0] + len(new) - length
            patched = patched[: g + 8] + struct.pack("<L", glen) + patched[g + 12 :]
        yield Case(f"{name}/TransferSyntaxUID={ts}", patched)
    ds = base_dataset(name)
    del ds.file_meta.TransferSyntaxUID
    try:
        yield Case(f"{name}/no TransferSyntaxUID", to_bytes(ds))
    except Exception:  # pydicom refuses to write it: nothing to test
        pass


def _seq_pixel(vr: bytes, tag: bytes = b"\xe0\x7f\x10\x00") -> bytes:
    item = b"\x10\x00\x10\x00PN\x04\x00ABCD"
    return (tag + vr + b"\0\0" + b"\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + item
            + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")


def pixel_element_lies(name: str) -> Iterator[Case]:
    """Sequences inside Pixel Data, empty or odd-sized values, an extra pixel element, a wrong VR."""
    data = base_bytes(name)
    px = pixel_offset(data)
    little = _base_dataset(name).file_meta.TransferSyntaxUID.is_little_endian
    if little and data[px + 4 : px + 6] in (b"OB", b"OW"):
        yield Case(f"{name}/Pixel Data is a sequence", data[:px] + _seq_pixel(b"SQ"))
        yield Case(f"{name}/Pixel Data UN holding a sequence", data[:px] + _seq_pixel(b"UN"))
        yield Case(f"{name}/Float Pixel Data is a sequence", data[:px] + _seq_pixel(b"SQ", b"\xe0\x7f\x08\x00"))
        # a sequence-shaped value with a defined length: items where the pixel bytes should be
        body = _seq_pixel(b"OB")[12:]
        yield Case(f"{name}/items inside defined-length Pixel Data",
                   data[:px] + data[px : px + 8] + struct.pack("<L", len(body)) + body)
    ds = _base_dataset(name)
    value = ds.PixelData
    yield Case(f"{name}/Pixel Data empty", _with_pixels(name, b""))
    yield Case(f"{name}/Pixel Data 1 byte", _with_pixels(name, b"\0"))
    yield Case(f"{name}/Pixel Data 8 bytes", _with_pixels(name, bytes(value[:8])))
    if not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        for cut in (1, 2, 3, len(value) // 2):
            yield Case(f"{name}/Pixel Data short by {cut}", _with_pixels(name, bytes(value[:-cut])))
        yield Case(f"{name}/Pixel Data one extra byte", _with_pixels(name, bytes(value) + b"\x01"))
        yield Case(f"{name}/Pixel Data 2.5 frames extra", _with_pixels(name, bytes(value) * 3 + bytes(value[: len(value) // 2])))
        yield Case(f"{name}/native data in encapsulated items", _with_pixels(name, encapsulate([bytes(value)])))
    dup = base_dataset(name)
    with lenient():
        dup.FloatPixelData = b"\0" * 16
    yield Case(f"{name}/Pixel Data and Float Pixel Data", to_bytes(dup))


def encapsulation_lies(name: str) -> Iterator[Case]:
    """Offset tables and item headers that point past the data, Extended Offset Table mismatches."""
    ds = _base_dataset(name)
    if not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return
    bot, frags = split_items(bytes(ds.PixelData))
    value = join_items(bot, frags)
    n = len(frags)
    total = sum(len(f) + 8 for f in frags)
    starts = [sum(len(f) + 8 for f in frags[:i]) for i in range(n)]

    def table(offsets) -> bytes:
        return struct.pack(f"<{len(offsets)}L", *[o & 0xFFFFFFFF for o in offsets])

    for label, offsets in {
        "BOT past the data": [0] + [total + 8 * i for i in range(1, max(n, 2))],
        "BOT last entry at the end": starts[:-1] + [total] if n > 1 else [0, total],
        "BOT not increasing": list(reversed(starts)) if n > 1 else [0, 0, 0],
        "BOT not from 0": [8 + s for s in starts],
        "BOT 2^32-1": [0, 0xFFFFFFFF],
        "BOT one entry for many frames": [0],
        "BOT more entries than frames": starts + [total - 2] * 3,
        "BOT odd offsets": [0] + [s + 1 for s in starts[1:]] if n > 1 else [0, 1],
    }.items():
        yield Case(f"{name}/{label}", _with_pixels(name, join_items(table(offsets), frags)))
    yield Case(f"{name}/BOT length not a multiple of 4", _with_pixels(name, join_items(b"\0" * 6, frags)))
    raw = struct.pack("<HHL", 0xFFFE, 0xE000, 1 << 30) + value[8:]
    yield Case(f"{name}/BOT length past the end", _with_pixels(name, raw))
    last = value.rfind(b"\xfe\xff\x00\xe0")
    for label, length in (("past the end", 1 << 31), ("one past", len(value) - last - 8 + 2), ("0xFFFFFFFF", 0xFFFFFFFF)):
        bad = value[: last + 4] + struct.pack("<L", length) + value[last + 8 :]
        yield Case(f"{name}/last fragment length {label}", _with_pixels(name, bad))
    yield Case(f"{name}/item tag wrong", _with_pixels(name, b"\xfe\xff\x00\xe1" + value[4:]))
    yield Case(f"{name}/fragment tag wrong", _with_pixels(name, value[:last] + b"\x08\x00\x10\x00" + value[last + 4 :]))
    yield Case(f"{name}/no fragments", _with_pixels(name, join_items(bot, [])))
    yield Case(f"{name}/empty fragments", _with_pixels(name, join_items(b"", [b""] * max(n, 2))))
    yield Case(f"{name}/odd fragment", _with_pixels(name, join_items(b"", [frags[0] + b"\0"] + frags[1:])))
    yield Case(f"{name}/fragment split in two", _with_pixels(name, join_items(b"", [frags[0][:10], frags[0][10:]] + frags[1:])))
    yield Case(f"{name}/frames duplicated", _with_pixels(name, join_items(b"", frags * 2)))
    if n > 1:
        yield Case(f"{name}/one frame missing", _with_pixels(name, join_items(b"", frags[:-1])))
    # Extended Offset Table (with an empty BOT, as the standard requires)
    lengths = [len(f) for f in frags]

    def eot(offs, lens, **extra) -> bytes:
        d = base_dataset(name)
        with lenient():
            d.PixelData = join_items(b"", frags)
            d["PixelData"].is_undefined_length = True
            d.ExtendedOffsetTable = struct.pack(f"<{len(offs)}Q", *[o & (2**64 - 1) for o in offs])
            d.ExtendedOffsetTableLengths = struct.pack(f"<{len(lens)}Q", *[x & (2**64 - 1) for x in lens])
            for kw, v in extra.items():
                setattr(d, kw, v)
        return to_bytes(d)

    yield Case(f"{name}/EOT honest", eot(starts, lengths))
    yield Case(f"{name}/EOT offsets past the data", eot([s + total for s in starts], lengths))
    yield Case(f"{name}/EOT lengths past the data", eot(starts, [x + total for x in lengths]))
    yield Case(f"{name}/EOT 2^64-1", eot([2**64 - 1] * n, lengths))
    yield Case(f"{name}/EOT length 2^63", eot(starts, [2**63] * n))
    yield Case(f"{name}/EOT fewer entries than frames", eot(starts[:-1] or [], lengths[:-1] or []))
    yield Case(f"{name}/EOT lengths count differs", eot(starts, lengths + [1]))
    yield Case(f"{name}/EOT odd offsets", eot([s + 1 for s in starts], lengths))
    yield Case(f"{name}/EOT frames claimed x3", eot(starts, lengths, NumberOfFrames=str(3 * n)))
    d = base_dataset(name)
    with lenient():
        d.ExtendedOffsetTable = b"\0" * 12
        d.ExtendedOffsetTableLengths = b"\0" * 12
    yield Case(f"{name}/EOT not a multiple of 8", to_bytes(d))


def _rle_header(frame: bytes) -> tuple[int, list[int]]:
    vals = struct.unpack_from("<16L", frame)
    return vals[0], list(vals[1:])


def rle_lies(name: str) -> Iterator[Case]:
    """RLE frame headers that lie: segment counts, offsets past the end / into the header / reversed."""
    ds = _base_dataset(name)
    if ds.file_meta.TransferSyntaxUID != RLELossless:
        return
    bot, frags = split_items(bytes(ds.PixelData))
    count, offsets = _rle_header(frags[0])
    body = frags[0][64:]

    def frame(c: int, offs: list[int], rest: bytes = body) -> bytes:
        offs = (offs + [0] * 15)[:15]
        return struct.pack("<16L", c & 0xFFFFFFFF, *[o & 0xFFFFFFFF for o in offs]) + rest

    used = offsets[:count]
    variants = {
        "0 segments": frame(0, []),
        "15 segments": frame(15, used + [len(frags[0]) - 2] * (15 - count)),
        "16 segments": frame(16, used),
        "2^32-1 segments": frame(0xFFFFFFFF, used),
        "one segment fewer": frame(count - 1, used[:-1]),
        "one segment more": frame(count + 1, used + [len(frags[0]) - 4]),
        "offset past the end": frame(count, used[:-1] + [len(frags[0]) + 100]),
        "offset 2^32-1": frame(count, used[:-1] + [0xFFFFFFFF]),
        "offset inside the header": frame(count, [0] * count),
        "offsets reversed": frame(count, list(reversed(used))),
        "offsets equal": frame(count, [64] * count),
        "header only": frame(count, used, b""),
        "header cut": frame(count, used)[:40],
        "segments cut": frame(count, used)[: 64 + len(body) // 2],
        "literal run past the end": frame(count, used, body[:-3] + b"\x7f\x00"),
        "replicate run past the row": frame(count, used, b"\x81\x00" * (len(body) // 2)),
        "noop bytes only": frame(count, used, b"\x80" * len(body)),
    }
    for label, f in variants.items():
        new = [f] + frags[1:]
        yield Case(f"{name}/RLE {label}", _with_pixels(name, join_items(b"", new)))
        if len(frags) > 1:  # the same lie in the last frame
            yield Case(f"{name}/RLE last frame {label}", _with_pixels(name, join_items(b"", frags[:-1] + [f])))


def codestream_lies(name: str) -> Iterator[Case]:
    """JPEG / JPEG-LS / JPEG 2000 codestreams cut mid-scan, corrupted, or with the EOI marker lost."""
    ds = _base_dataset(name)
    ts = ds.file_meta.TransferSyntaxUID
    if not ts.is_encapsulated or ts == RLELossless:
        return
    bot, frags = split_items(bytes(ds.PixelData))
    f = frags[0]
    for frac in (0.02, 0.1, 0.3, 0.5, 0.8, 0.95):
        cut = f[: max(2, int(len(f) * frac)) & ~1]
        yield Case(f"{name}/codestream cut at {frac:.0%}", _with_pixels(name, join_items(bot, [cut] + frags[1:])))
    yield Case(f"{name}/codestream without EOI", _with_pixels(name, join_items(bot, [f[:-2]] + frags[1:])))
    rng = np.random.default_rng(len(f))
    for k in range(4):
        bad = bytearray(f)
        for pos in rng.integers(0, len(f), size=1 + 4 * k):
            bad[int(pos)] ^= 0xFF
        yield Case(f"{name}/codestream corrupted {k}", _with_pixels(name, join_items(bot, [bytes(bad)] + frags[1:])))
    yield Case(f"{name}/codestream header only", _with_pixels(name, join_items(bot, [f[:200]] + frags[1:])))
    yield Case(f"{name}/codestream is zeros", _with_pixels(name, join_items(bot, [bytes(len(f))] + frags[1:])))
    yield Case(f"{name}/codestream larger than header says",
               _with(name, Rows=max(1, ds.Rows // 2), Columns=max(1, ds.Columns // 2)))


FAMILIES: tuple[Callable[[str], Iterator[Case]], ...] = (
    truncated, header_lies, syntax_lies, pixel_element_lies, encapsulation_lies, rle_lies, codestream_lies,
)


def generate(bases: tuple[str, ...] = BASE_FILES) -> list[Case]:
    """Every malformed case of every family, for every base file."""
    out: list[Case] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in bases:
            for family in FAMILIES:
                out.extend(family(name))
    return out


# ---------------------------------------------------------------------------------------------- checking


class CaseTimeout(BaseException):
    """A decode ran past the per-case watchdog."""


@contextmanager
def watchdog(seconds: float = CASE_TIMEOUT_S, hard: float = HARD_TIMEOUT_S) -> Iterator[None]:
    """SIGALRM raises :class:`CaseTimeout` after `seconds` (main thread, Python code); after `hard`
    seconds faulthandler dumps every thread's stack and ends the process (a hang inside C code)."""
    main = threading.current_thread() is threading.main_thread()
    faulthandler.dump_traceback_later(hard, exit=True)
    if main:
        def fire(signum, frame):
            raise CaseTimeout(f"decode ran past {seconds} s")

        old = signal.signal(signal.SIGALRM, fire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


def decode_cpu(data: bytes, raw: bool = False, index: int | None = None):
    return gpudcm.pixel_array(data, device="cpu", raw=raw, index=index)


_no_gpu_codecs = threading.local()


def _install_env_switch() -> None:
    """Make ``gpudcm.routing.detect_env`` report no nvJPEG / nvImageCodec in threads running the host-device
    path (there is no GPU here, so JPEG-family frames take the CPU-plugin route); other callers unchanged."""
    import gpudcm.routing as routing

    if getattr(routing.detect_env, "_gpudcm_switch", False):
        return
    original = routing.detect_env

    def detect_env():
        return routing.NO_GPU_ENV if getattr(_no_gpu_codecs, "on", False) else original()

    detect_env._gpudcm_switch = True
    detect_env.__wrapped__ = original  # functools' convention: callers can reach (and clear) the cached one
    routing.detect_env = detect_env


def decode_host_device(data, raw: bool = False, index: int | None = None, ops=None):
    """What a GPU run executes, minus CuPy: prepare, then the device path with the host-built kernels."""
    from tests.harness.host_ops import HostOps

    _install_env_switch()
    with open_pixels(data) as reader:  # the lazy reader, as every entry point opens a source
        if index is not None:
            index = reader.spec.check_index(index)
        _no_gpu_codecs.on = True
        try:
            return _device_decode([reader], ops or HostOps(), index=index, raw=raw, as_rgb=True)[0]
        finally:
            _no_gpu_codecs.on = False


PATHS: dict[str, Callable] = {"cpu": decode_cpu, "host-device": decode_host_device}


def references(data: bytes, raw: bool = False, index: int | None = None) -> list[np.ndarray]:
    """pydicom's decodes of `data` (native byte order): ``pixel_array`` on the file (its path-style reader)
    and on the ``dcmread`` dataset. The two differ on native data with excess whole frames (only the
    dataset reading returns them); empty where pydicom fails both ways."""
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for read in (lambda: io.BytesIO(data), lambda: dcmread(io.BytesIO(data), force=True)):
            try:
                arr = pydicom_pixel_array(read(), raw=raw, index=index)
            except (KeyboardInterrupt, SystemExit, CaseTimeout):
                raise
            except BaseException:  # pylibjpeg-rle's Rust panics are BaseExceptions
                continue
            out.append(arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("=")))
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


@dataclass
class Tally:
    """Outcome counts of a run."""

    cases: int = 0
    decoded: int = 0
    raised: int = 0
    decoded_where_pydicom_fails: int = 0
    raised_where_pydicom_decodes: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self, label: str) -> str:
        return (f"{label}: {self.cases} decodes, {self.decoded} decoded (equal to pydicom), {self.raised} raised a "
                f"GpudcmError ({self.raised_where_pydicom_decodes} where pydicom decodes), "
                f"{self.decoded_where_pydicom_fails} decoded where pydicom fails, {len(self.failures)} broken promises")


def check(name: str, data: bytes, tally: Tally, *, raw: bool = False, index: int | None = None,
          paths: tuple[str, ...] = ("cpu", "host-device"), timeout: float = CASE_TIMEOUT_S) -> None:
    """Run `data` through each path; record a failure for any outcome outside the promise."""
    ref: list = []  # computed lazily, once

    def pydicom_refs() -> list[np.ndarray]:
        if not ref:
            with watchdog(timeout * 3):
                ref.append(references(data, raw=raw, index=index))
        return ref[0]

    label = source_name(data)
    for path in paths:
        tally.cases += 1
        where = f"{name} [{path}{', raw' if raw else ''}{'' if index is None else f', index {index}'}]"
        try:
            with watchdog(timeout), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = PATHS[path](data, raw=raw, index=index)
        except GpudcmError as exc:
            tally.raised += 1
            msg = str(exc)
            if label not in msg or len(msg) < len(label) + 10:
                tally.failures.append(f"{where}: {type(exc).__name__} message does not say what is wrong: {msg!r}")
            elif "decode to at most" in msg:
                pass  # an RLE size bomb gpudcm refuses up front; pylibjpeg-rle would spend gigabytes on it
            elif pydicom_refs():
                tally.raised_where_pydicom_decodes += 1
            continue
        except CaseTimeout as exc:
            tally.failures.append(f"{where}: hang: {exc}")
            continue
        except Exception as exc:  # the promise is broken: record it
            tally.failures.append(f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            continue
        expected = pydicom_refs()
        got = np.asarray(got)
        if not expected:
            tally.decoded_where_pydicom_fails += 1
            tally.decoded += 1
        elif not any(_same(got, e) for e in expected):
            e = expected[0]
            tally.failures.append(f"{where}: decoded {got.shape} {got.dtype} but pydicom gives "
                                  f"{e.shape} {e.dtype}{' (values differ)' if got.shape == e.shape else ''}")
        else:
            tally.decoded += 1


# ---------------------------------------------------------------------------------------------- mutation

# Small files for fuzzing (fast to decode): native LE/BE, RGB, RLE, JPEG, JPEG-LS, multi-frame.
FUZZ_BASES = ("CT_small.dcm", "MR_small_bigendian.dcm", "SC_rgb_small_odd.dcm", "MR_small_RLE.dcm",
              "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEGLSNearLossless_16.dcm",
              "emri_small_RLE.dcm", "SC_ybr_full_422_uncompressed.dcm")
FIELD_TAGS = (0x00280002, 0x00280006, 0x00280010, 0x00280011, 0x00280100, 0x00280101, 0x00280102, 0x00280103)
EDGE_US = (0, 1, 2, 3, 7, 8, 12, 15, 16, 17, 31, 32, 63, 64, 65, 255, 256, 4095, 32767, 32768, 65534, 65535)
EDGE_U32 = (0, 1, 2, 63, 64, 65, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF)

Mutation = tuple  # ("field", tag index, value) | ("xor", where, byte) | ("u32", where, value) |
#                   ("overwrite", where, bytes) | ("truncate", where); `where` in [0, 1) of the region


@lru_cache(maxsize=None)
def field_offsets(data: bytes) -> dict[int, tuple[int, str]]:
    """Where each 2-byte header field in FIELD_TAGS keeps its value (offset, struct byte order)."""
    out = {}
    head = data[: pixel_offset(data)]
    for tag in FIELD_TAGS:
        group, elem = tag >> 16, tag & 0xFFFF
        for order in "<>":
            t = struct.pack(f"{order}HH", group, elem)
            for pattern, skip in ((t + b"US" + struct.pack(f"{order}H", 2), 8), (t + struct.pack(f"{order}L", 2), 8)):
                i = head.find(pattern)
                if i >= 0:
                    out[tag] = (i + skip, order)
                    break
            if tag in out:
                break
    return out


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    """Apply `mutations` to a file: header fields rewritten, pixel-region bytes flipped / overwritten
    (including 32-bit words, to hit offset tables, item lengths and RLE headers), or the file cut."""
    buf = bytearray(data)
    fields = field_offsets(data)
    px = pixel_offset(data)
    for m in mutations:
        kind = m[0]
        if kind == "field":
            tag = FIELD_TAGS[m[1] % len(FIELD_TAGS)]
            if tag in fields:
                off, order = fields[tag]
                struct.pack_into(f"{order}H", buf, off, m[2] & 0xFFFF)
            continue
        region = len(buf) - px
        if region <= 0:
            continue
        pos = px + int(m[1] * region)
        if kind == "xor" and pos < len(buf):
            buf[pos] ^= m[2] or 1
        elif kind == "u32" and pos + 4 <= len(buf):
            struct.pack_into("<L", buf, pos, m[2] & 0xFFFFFFFF)
        elif kind == "overwrite":
            buf[pos : pos + len(m[2])] = m[2]
        elif kind == "truncate":
            del buf[pos:]
    return bytes(buf)


def random_mutations(r) -> list[Mutation]:
    """1 to 4 random mutations (for the long-run script; the test draws them with hypothesis)."""
    out: list[Mutation] = []
    for _ in range(r.randrange(1, 5)):
        kind = r.choice(("field", "field", "xor", "xor", "u32", "overwrite", "truncate"))
        if kind == "field":
            out.append(("field", r.randrange(len(FIELD_TAGS)), r.choice(EDGE_US) if r.random() < 0.6 else r.randrange(65536)))
        elif kind == "xor":
            out.append(("xor", r.random(), r.randrange(1, 256)))
        elif kind == "u32":
            out.append(("u32", r.random() * 0.2 if r.random() < 0.5 else r.random(), r.choice(EDGE_U32) if r.random() < 0.6 else r.getrandbits(32)))
        elif kind == "overwrite":
            out.append(("overwrite", r.random(), r.randbytes(r.randrange(1, 16))))
        else:
            out.append(("truncate", r.random()))
    return out
