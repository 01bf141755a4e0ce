"""RLE Lossless without a GPU: the host build of kernels/rle.cuh, driven by gpudcm.cuda.rle's plan, equals
the CPU path on the corpus, on files from pydicom's encoder and on hand-built, malformed and random frames.

The CPU path is pydicom 3.0.2, which tries pylibjpeg-rle *before* its own decoder; where the two disagree
(malformed frames) the truth is whichever succeeds first, so the kernel also replays pylibjpeg-rle, and
that replay is checked against pylibjpeg-rle itself. Where the CPU path raises (gpudcm wraps the Rust
panics pylibjpeg-rle lets escape as ``PanicException`` into a ``DecodeError``) the host path raises a
``GpudcmError`` too.
"""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.decoders.rle import _rle_decode_frame
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import RLELossless, generate_uid
from rle.rle import decode_frame as pylibjpeg_decode_frame

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases, reference_shape, transfer_syntax
from gpudcm.cuda import kernels
from gpudcm.cuda.rle import RleLaunch, decode_rle, plan_rle, resolve
from gpudcm.cuda.rle import _pydicom_outcome, _pylibjpeg_outcome
from gpudcm.frames import Extent, frame_extents
from gpudcm.source import load_dataset
from gpudcm.spec import PixelSpec, pixel_spec
from tests.harness.hostbuild import host_launcher
from tests.harness.rle_host import host_launch_rle

ROOT = Path(__file__).resolve().parent.parent
RLE_UID = "1.2.840.10008.1.2.5"


# ---------------------------------------------------------------------------------------------- helpers


def _header(count: int, offsets: list[int]) -> bytes:
    return struct.pack("<16L", count, *(list(offsets) + [0] * 15)[:15])


def _frame(segments: list[bytes], *, count: int | None = None, offsets: list[int] | None = None) -> bytes:
    """An RLE frame: header (the true count and offsets unless given) then the segments."""
    if offsets is None:
        offsets, pos = [], 64
        for s in segments:
            offsets.append(pos)
            pos += len(s)
    return _header(len(segments) if count is None else count, offsets) + b"".join(segments)


def _dataset(rows: int, cols: int, *, samples: int = 1, bits: int = 8, stored: int | None = None, signed: int = 0,
             n_frames: int = 1) -> Dataset:
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = RLELossless
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored = bits, stored or bits
    ds.HighBit = (stored or bits) - 1
    ds.PixelRepresentation = signed
    if samples == 3:
        ds.PlanarConfiguration = 0
    if n_frames > 1:
        ds.NumberOfFrames = n_frames
    return ds


def _file(ds: Dataset, frames: list[bytes], *, bot: bool = False, fragments: int = 1) -> bytes:
    ds.PixelData = encapsulate(frames, has_bot=bot, fragments_per_frame=fragments)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _rle_file(frames: list[bytes], rows: int, cols: int, *, bot: bool = False, n_frames: int | None = None,
              **kwargs) -> bytes:
    ds = _dataset(rows, cols, n_frames=len(frames) if n_frames is None else n_frames, **kwargs)
    return _file(ds, frames, bot=bot)


def _encoded(values: np.ndarray, *, bits: int, stored: int | None = None, signed: int = 0, samples: int = 1,
             bot: bool = False, fragments: int = 1) -> bytes:
    """`values` (frames, rows, cols[, samples]) through pydicom's own RLE encoder."""
    n, rows, cols = values.shape[:3]
    ds = _dataset(rows, cols, samples=samples, bits=bits, stored=stored, signed=signed, n_frames=n)
    opts = as_pixel_options(ds)
    frames = list(RLELosslessEncoder.iter_encode(values if n > 1 else values[0], encoding_plugin="pydicom",
                                                 validate=False, **opts))
    return _file(ds, frames, bot=bot, fragments=fragments)


def _cpu(src, index=None):
    """The CPU path's array, or the GpudcmError it raised (any other exception fails the test)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return gpudcm.pixel_array(src, device="cpu", raw=True, index=index)
        except gpudcm.GpudcmError as exc:
            return exc


def _spec(src):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, name = load_dataset(src)
    extended = None
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
    return ds, pixel_spec(ds, source=name), extended


def _host(src, index=None, *, launch_rle=None, launch_native=None):
    """The host build's array through decode_rle, or the GpudcmError it raised."""
    ds, spec, extended = _spec(src)
    try:
        return decode_rle(
            spec, ds.PixelData, index=index, extended_offsets=extended,
            launch_rle=launch_rle or host_launch_rle(), launch_native=launch_native or host_launcher(),
        )
    except gpudcm.GpudcmError as exc:
        return exc


def _same(ref, got) -> str:
    """Assert the host result equals the CPU result; returns "equal" or "both raise"."""
    if isinstance(ref, BaseException):
        assert isinstance(got, gpudcm.GpudcmError), f"CPU raised {ref!r} but the host path returned {got!r}"
        return "both raise"
    assert not isinstance(got, BaseException), f"the host path raised {got!r}; the CPU returned {ref.shape}"
    assert got.dtype == ref.dtype and got.shape == ref.shape, (got.dtype, got.shape, ref.dtype, ref.shape)
    np.testing.assert_array_equal(got, ref)
    return "equal"


def _check(src, indices=(None,)) -> list[str]:
    return [_same(_cpu(src, i), _host(src, i)) for i in indices]


def _never(*args):
    raise AssertionError("a kernel was launched")


# ----------------------------------------------------------------------------------------------- corpus


def _is_rle(path: Path) -> bool:
    return transfer_syntax(path) == RLE_UID


RLE_CORPUS = [p for p in corpus_files() if _is_rle(p) and reference_shape(p)]


def test_rle_corpus_is_covered():
    assert len(RLE_CORPUS) >= 10


@pytest.mark.parametrize("path", RLE_CORPUS, ids=corpus_id)
def test_host_rle_equals_cpu_on_corpus(path):
    last = _spec(path)[1].number_of_frames - 1
    assert _check(path, (None, 0, last)) == ["equal"] * 3


GEN_RLE = [c for c in generated_cases() if c.name.startswith("rle")]


@pytest.mark.parametrize("case", GEN_RLE, ids=lambda c: c.name)
def test_host_rle_equals_generated_expectation(case):
    got = _host(case.path)
    assert not isinstance(got, Exception), got
    np.testing.assert_array_equal(got, case.expected)
    assert got.dtype == case.expected.dtype
    _same(_cpu(case.path), got)


# -------------------------------------------------------------------------------------- pydicom's encoder


def _encoded_cases():
    sizes = [(7, 13), (1, 1), (3, 257)]
    frames = [1, 2, 5]
    cases, i = [], 0
    for bits in (8, 16, 32):
        for signed in (0, 1):
            for samples in (1, 3):
                for stored in (bits, bits - 3):
                    rows, cols = sizes[i % 3]
                    cases.append((bits, signed, samples, stored, rows, cols, frames[i % 3], i % 2 == 0))
                    i += 1
    cases.append((64, 0, 1, 64, 3, 5, 2, True))
    cases.append((16, 1, 1, 12, 5, 3, 200, True))
    cases.append((8, 0, 1, 8, 4, 6, 200, False))
    return cases


def _encoded_id(case) -> str:
    bits, signed, samples, stored, rows, cols, n, bot = case
    return f"{'ui'[signed]}{bits}_bs{stored}_{samples}s_{rows}x{cols}x{n}{'_bot' if bot else ''}"


@pytest.mark.parametrize("case", _encoded_cases(), ids=_encoded_id)
def test_host_rle_equals_cpu_on_encoded(case):
    """pydicom's encoder, every width it allows: Bits Stored < Bits Allocated (random bits above it, which
    the CPU path masks or sign-extends), odd sizes, 1 to 200 frames, with and without an offset table."""
    bits, signed, samples, stored, rows, cols, n, bot = case
    rng = np.random.default_rng(bits * 1000 + rows * 10 + n)
    shape = (n, rows, cols, samples) if samples > 1 else (n, rows, cols)
    raw = rng.integers(0, np.iinfo(np.uint64).max, size=shape, dtype=np.uint64, endpoint=True)
    raw[..., : max(1, cols // 2)] = raw.reshape(-1)[0]  # long replicate runs next to literal ones
    values = raw.astype(f"u{bits // 8}").view(f"{'ui'[signed]}{bits // 8}")
    data = _encoded(values, bits=bits, stored=stored, signed=signed, samples=samples, bot=bot)
    assert _check(data, (None, 0, n - 1)) == ["equal"] * 3
    if stored == bits:
        got = _host(data)
        np.testing.assert_array_equal(got, values if n > 1 else values[0])


def test_multi_fragment_frames_are_joined():
    rng = np.random.default_rng(5)
    values = rng.integers(0, 1 << 16, size=(3, 9, 11), dtype=np.uint16)
    data = _encoded(values, bits=16, bot=True, fragments=2)
    assert _check(data, (None, 1)) == ["equal", "equal"]
    ds, spec, _ = _spec(data)
    plan = plan_rle(spec, ds.PixelData, frame_extents(spec, ds.PixelData))
    assert not np.shares_memory(plan.source, np.frombuffer(ds.PixelData, np.uint8))  # joined copy


def test_plan_table_and_staging():
    rng = np.random.default_rng(6)
    values = rng.integers(0, 256, size=(4, 5, 7, 3), dtype=np.uint8)
    data = _encoded(values, bits=8, samples=3)
    ds, spec, _ = _spec(data)
    element = np.frombuffer(ds.PixelData, np.uint8)
    frames = frame_extents(spec, ds.PixelData)
    plan = plan_rle(spec, ds.PixelData, frames)
    assert np.shares_memory(plan.source, element)  # single-fragment frames are a view, not a copy
    assert plan.table.dtype == np.int64 and plan.table.shape == (3, 4 * 3)
    assert plan.launch.n_slots == plan.launch.n_entries == 12
    assert plan.launch.geometry == kernels.launch_geometry(12 * kernels.RLE_LANES)
    plane = 5 * 7
    assert plan.table[2].tolist() == [3 * plane - s * plane for s in range(3)] * 4  # pylibjpeg-rle's room
    for f, frame in enumerate(frames):
        first = frame[0].offset - (frames[0][0].offset)
        header = struct.unpack_from("<16L", plan.source, first)
        assert header[0] == 3
        np.testing.assert_array_equal(plan.table[0, 3 * f : 3 * f + 3], [first + o for o in header[1:4]])
        assert plan.table[1, 3 * f + 2] == first + frame[0].length


def test_native_kernel_runs_only_where_needed():
    """One sample without Bits Stored correction is decoded straight into the array; RGB and Bits Stored <
    Bits Allocated go through the native kernel (planar -> interleaved, mask / sign-extend)."""
    values = np.arange(2 * 4 * 5, dtype=np.uint16).reshape(2, 4, 5) * 1000
    np.testing.assert_array_equal(_host(_encoded(values, bits=16), launch_native=_never), values)
    calls = []
    native = host_launcher()

    def counting(plan, *args):
        calls.append(plan.flags)
        return native(plan, *args)

    rgb = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    np.testing.assert_array_equal(_host(_encoded(rgb, bits=8, samples=3), launch_native=counting), rgb)
    got = _host(_encoded(values.astype(np.int16), bits=16, stored=12, signed=1), launch_native=counting)
    np.testing.assert_array_equal(got, ((values & 0xFFF) ^ 0x800).astype(np.int16) - 0x800)
    assert calls == [kernels.NATIVE_PLANAR, kernels.NATIVE_SIGNED | kernels.NATIVE_CORRECT_BITS]


@pytest.mark.parametrize("grid,block", [(1, 1), (1, 7), (3, 32), (2, 256)])
def test_any_geometry_decodes_every_segment(grid, block):
    """Groups smaller than a warp, and far fewer groups than entries, give the same array."""
    rng = np.random.default_rng(7)
    values = rng.integers(0, 1 << 16, size=(3, 6, 5, 3), dtype=np.uint16)
    values[..., :3, :] = 7
    data = _encoded(values, bits=16, samples=3)
    host = host_launch_rle()

    def launch(plan, *args):
        return host(dataclasses.replace(plan, geometry=kernels.Geometry(grid, block)), *args)

    np.testing.assert_array_equal(_host(data, launch_rle=launch), values)


# ------------------------------------------------------------------------------------------- hand-built

LIT = bytes([3, 1, 2, 3, 4])  # a literal run of 4: 1 2 3 4
LONG = bytes([5, 1, 2, 3, 4, 5, 6])  # a literal run of 6
SQ = dict(rows=2, cols=2)  # 2 x 2, one 8-bit sample
SQ16 = dict(rows=2, cols=2, bits=16)
# name -> (frames, dataset keywords, what the CPU path gives: "array" or "raises")
HAND_BUILT = {
    "noop_bytes": ([_frame([bytes([128, 1, 1, 2, 128, 129, 9, 128])])], SQ, "array"),
    "literal_cut_off_after_plane": ([_frame([LIT + bytes([5, 9])])], SQ, "array"),
    "literal_cut_off_short": ([_frame([bytes([5, 1, 2, 3])])], SQ, "raises"),
    "replicate_missing_value": ([_frame([LIT + bytes([200])])], SQ, "array"),
    "overlong_8bit": ([_frame([LONG])], SQ, "array"),
    "overlong_8bit_rgb_first_plane": ([_frame([bytes([250, 7]), LIT, LIT])], dict(SQ, samples=3), "array"),
    # wider than 8 bits, pylibjpeg-rle (tried first) survives an over-long segment only where its
    # write index lands on the end of the frame vector; elsewhere it panics and pydicom raises
    "overlong_16bit_lsb": ([_frame([LIT, LIT + bytes([252, 5])])], SQ16, "array"),
    "overlong_16bit_lsb_panics": ([_frame([LIT, bytes([252, 5, 0, 6])])], SQ16, "raises"),
    "overlong_16bit_msb_panics": ([_frame([LONG, LIT])], SQ16, "raises"),
    "overlong_16bit_msb_landing": ([_frame([bytes([2, 1, 2, 3, 1, 4, 5]), LIT])], SQ16, "array"),
    "overlong_16bit_msb_exact_then_literal": ([_frame([LIT + bytes([0, 9]), LIT])], SQ16, "array"),
    "overlong_16bit_msb_exact_then_replicate": ([_frame([LIT + bytes([255, 9]), LIT])], SQ16, "raises"),
    "trailing_pad_byte": ([_frame([LIT + b"\0", LIT + b"\0"])], SQ16, "array"),
    "one_pixel_rgb_one_segment": ([_frame([bytes([0, 7])], count=1)], dict(rows=1, cols=1, samples=3), "array"),
    "bits_allocated_1": ([_frame([bytes([3, 1, 0, 1, 1])])], dict(SQ, bits=1), "array"),
}


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_frames(name):
    frames, kw, expect = HAND_BUILT[name]
    data = _rle_file(frames, **kw)
    ref = _cpu(data)
    assert ("raises" if isinstance(ref, BaseException) else "array") == expect, ref
    _same(ref, _host(data))


def test_hand_built_values():
    """A few results spelled out, independent of either decoder."""
    expected = {
        "noop_bytes": [[1, 2], [9, 9]],
        "overlong_16bit_lsb": [[0x0101, 0x0202], [0x0303, 0x0404]],
        "overlong_16bit_msb_exact_then_literal": [[0x0101, 0x0202], [0x0303, 0x0404]],
        "one_pixel_rgb_one_segment": [[[7, 7, 7]]],
        "bits_allocated_1": [[1, 0], [1, 1]],
    }
    for name, want in expected.items():
        frames, kw, _ = HAND_BUILT[name]
        got = _host(_rle_file(frames, **kw))
        np.testing.assert_array_equal(got, want)
        assert got.shape == np.shape(want)


# ------------------------------------------------------------------------------------------- malformed

THREE = _frame([LIT, LIT, LIT], count=1)  # one segment by its count, three by its offsets
# name -> (frames, dataset keywords, CPU result: "array" or "raises", refused before any launch)
MALFORMED = {
    "offset_beyond_end": ([_frame([LIT, LIT], offsets=[64, 500])], SQ16, "raises", True),
    "first_offset_beyond_end": ([_frame([LIT], offsets=[900])], SQ, "raises", True),
    "decreasing_offsets": ([_frame([LIT, LIT], offsets=[69, 64])], SQ16, "raises", True),
    "equal_offsets": ([_frame([LIT, LIT], offsets=[64, 64])], SQ16, "raises", True),
    "zero_segments": ([_frame([LIT], count=0)], SQ, "array", False),
    "zero_segments_no_offsets": ([_frame([LIT], count=0, offsets=[])], SQ, "raises", True),
    "sixteen_segments": ([_frame([LIT], count=16)], SQ, "array", False),
    "sixteen_segments_bad_offsets": ([_frame([LIT], count=16, offsets=[60])], SQ, "raises", True),
    "header_short": ([_header(1, [64])[:40]], SQ, "raises", True),
    "header_only": ([_header(1, [64])], SQ, "raises", True),
    "count_mismatch": ([_frame([LIT, LIT], count=2)], SQ, "raises", True),
    "count_low_offsets_right": ([_frame([LIT, LIT], count=1)], SQ16, "array", False),
    "three_offsets_one_sample": ([THREE], SQ, "raises", False),
    "segment_in_header": ([_frame([LIT], offsets=[0])], SQ, "array", False),
    "run_crosses_end": ([_frame([bytes([3, 1, 2]), LIT])], SQ16, "raises", False),
    "segment_short": ([_frame([bytes([2, 1, 2, 3])])], SQ, "raises", False),
    "segment_long": ([_frame([bytes([4, 1, 2, 3, 4, 5])])], SQ, "array", False),
    "frame_missing": ([_frame([LIT])], dict(SQ, n_frames=2, bot=True), "raises", True),
    "excess_frame_kept": ([_frame([LIT])] * 3, dict(SQ, n_frames=2, bot=True), "array", False),
    "excess_frame_wrong_size_dropped": ([_frame([LIT]), THREE], dict(SQ, n_frames=1, bot=True), "array", False),
    "excess_frame_broken": ([_frame([LIT]), _frame([LIT[:3]])], dict(SQ, n_frames=1, bot=True), "raises", False),
    "wrong_size_after_pydicom_frame": ([_frame([LIT + bytes([5, 9])]), THREE], SQ, "array", False),
    "wrong_size_after_pylibjpeg_frame": ([_frame([LIT]), THREE], SQ, "raises", False),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_frames(name):
    frames, kw, expect, early = MALFORMED[name]
    data = _rle_file(frames, **kw)
    ref = _cpu(data)
    assert ("raises" if isinstance(ref, BaseException) else "array") == expect, ref
    _same(ref, _host(data))
    if early:  # refused by the plan, naming the frame, before anything is launched
        got = _host(data, launch_rle=_never, launch_native=_never)
        assert isinstance(got, gpudcm.InvalidPixelData), got
        assert "<" in str(got) and ("frame" in str(got) or "Frames" in str(got))
    else:  # only the kernel's lengths decide
        with pytest.raises(AssertionError, match="a kernel was launched"):
            _host(data, launch_rle=_never, launch_native=_never)
    n = kw.get("n_frames", len(frames))
    for index in range(n):
        _same(_cpu(data, index), _host(data, index))


def test_error_names_frame_segment_and_numbers():
    frames = [_frame([LIT]), _frame([bytes([2, 1, 2, 3])])]
    got = _host(_rle_file(frames, 2, 2))
    assert isinstance(got, gpudcm.DecodeError)
    assert "frame 1" in str(got) and "segment 0 decodes to 3 bytes" in str(got) and "= 4" in str(got)
    got = _host(_rle_file([_frame([LIT]), _frame([LIT, LIT], count=2)], 2, 2))
    assert isinstance(got, gpudcm.InvalidPixelData)
    assert "RLE frame 1" in str(got) and "2 segment(s)" in str(got) and "need 1" in str(got)


# ---------------------------------------------------------------------------------------------- random


def _packbits(r: random.Random, data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        if r.random() < 0.05:
            out.append(128)
            continue
        j = i
        while j < len(data) and data[j] == data[i] and j - i < 128:
            j += 1
        if j - i >= 2 and r.random() < 0.8:
            out += bytes([257 - (j - i), data[i]])
            i = j
        else:
            n = min(len(data) - i, r.randrange(1, 9))
            out.append(n - 1)
            out += data[i : i + n]
            i += n
    return bytes(out)


def _mutated_frame(r: random.Random, values: np.ndarray, bps: int, mutate: bool) -> bytes:
    segments = []
    for s in range(values.shape[1]):
        for j in range(bps):
            plane = ((values[:, s] >> np.uint64(8 * (bps - 1 - j))) & np.uint64(0xFF)).astype(np.uint8).tobytes()
            seg = bytearray(_packbits(r, plane))
            if mutate and r.random() < 0.3:
                x = r.random()
                if x < 0.25 and seg:
                    del seg[r.randrange(len(seg)) :]
                elif x < 0.5:
                    seg += bytes([r.randrange(256)]) + r.randbytes(r.randrange(6))  # over-long / junk
                elif x < 0.75 and seg:
                    seg[r.randrange(len(seg))] = r.randrange(256)
                else:
                    seg.append(r.choice((0, 128)))
            segments.append(bytes(seg))
    offsets, pos = [], 64
    for s in segments:
        offsets.append(pos)
        pos += len(s)
    count = len(segments)
    if mutate and r.random() < 0.4:
        x = r.random()
        if x < 0.2:
            count = r.randrange(17)
        elif x < 0.4:
            offsets[r.randrange(len(offsets))] += r.randrange(-3, 4)
        elif x < 0.5:
            offsets.append(r.randrange(64, pos + 5))
        elif x < 0.6 and len(offsets) > 1:
            offsets[r.randrange(1, len(offsets))] = 0
        elif x < 0.7:
            offsets = offsets[:-1]
        elif x < 0.8 and len(offsets) > 1:
            i = r.randrange(len(offsets) - 1)
            offsets[i], offsets[i + 1] = offsets[i + 1], offsets[i]
        else:
            count = len(offsets) + r.randrange(-1, 2)
    data = _header(count, offsets) + b"".join(segments)
    if mutate and r.random() < 0.05:
        data = data[: r.randrange(len(data) + 1)] or b"\0"
    return data


def test_random_mutations_equal_cpu():
    """Seeded random files (frames mutated in their header, offsets and runs) against the CPU path."""
    r = random.Random(2024)
    tally: dict[str, int] = {}
    for _ in range(120):
        bits = r.choice((8, 16, 32))
        samples = r.choice((1, 3))
        rows, cols, n = r.randrange(1, 5), r.randrange(1, 6), r.randrange(1, 4)
        frames = []
        for _ in range(n):
            values = np.array([[r.randrange(4) * r.randrange(1, 1 << bits) & ((1 << bits) - 1) for _ in range(samples)]
                               for _ in range(rows * cols)], dtype=np.uint64)
            frames.append(_mutated_frame(r, values, bits // 8, r.random() < 0.7))
        extra = 1 if r.random() < 0.2 and n > 1 else 0
        stored = bits if r.random() < 0.7 else r.randrange(1, bits + 1)
        data = _rle_file(frames, rows, cols, samples=samples, bits=bits, stored=stored, signed=r.randrange(2),
                         n_frames=n - extra, bot=extra > 0 or r.random() < 0.5)
        for result in _check(data, (None, 0)):
            tally[result] = tally.get(result, 0) + 1
    print(tally)
    assert tally.get("equal", 0) > 60 and tally.get("both raise", 0) > 40


def _bare_spec(rows: int, cols: int, samples: int, bits: int, nbytes: int) -> PixelSpec:
    return PixelSpec("<frame>", RLELossless, "PixelData", "OB", rows, cols, 1, samples, bits, bits, bits - 1, 0, 0,
                     "RGB" if samples == 3 else "MONOCHROME2", nbytes)


def _random_segment(r: random.Random, target: int) -> bytes:
    """Runs totalling about `target` bytes; often exactly `target` and then one more run (what decides
    pylibjpeg-rle's fate on over-long segments wider than 8 bits)."""
    out, total = bytearray(), 0
    exact = r.random() < 0.4
    goal = target if exact else target + r.randrange(-3, 6)
    while total < goal:
        x = r.random()
        n = r.randrange(1, 40)
        if exact:
            n = min(n, goal - total)
        if x < 0.05:
            out.append(128)
        elif x < 0.5 and n > 1:
            out += bytes([257 - n, r.randrange(256)])
            total += n
        else:
            n = min(n, 20) if not exact else n
            out.append(n - 1)
            out += r.randbytes(n)
            total += n
    if exact and r.random() < 0.7:
        out += bytes([r.randrange(256)]) + r.randbytes(r.randrange(4))
    if r.random() < 0.2 and out:
        del out[r.randrange(len(out)) :]
    if r.random() < 0.2:
        out.append(r.randrange(256))
    return bytes(out)


def _random_raw_frame(r: random.Random, rows: int, cols: int, samples: int, bits: int) -> bytes:
    n_seg = samples * (bits // 8)
    if r.random() < 0.1:
        n_seg = max(1, min(15, n_seg + r.randrange(-1, 2)))
    segments = [_random_segment(r, rows * cols) for _ in range(n_seg)]
    offsets, pos = [], 64
    for s in segments:
        offsets.append(pos)
        pos += len(s)
    if r.random() < 0.1 and len(offsets) > 1:
        offsets[r.randrange(1, len(offsets))] = 0
    return _header(n_seg if r.random() < 0.9 else r.randrange(17), offsets) + b"".join(segments)


def _plan_one(frame: bytes, rows: int, cols: int, samples: int, bits: int):
    """plan + host launch of one frame; (plan, decoded planar bytes, lengths) or None when refused."""
    spec = _bare_spec(rows, cols, samples, bits, len(frame))
    try:
        plan = plan_rle(spec, frame, [(Extent(0, len(frame)),)], index=0)
    except gpudcm.InvalidPixelData:
        return None
    out = np.zeros(plan.frame_bytes, dtype=np.uint8)
    lengths = np.empty(2 * plan.launch.n_entries, dtype=np.int64)
    assert host_launch_rle()(plan.launch, plan.source, plan.table, out, lengths) & ~kernels.RLE_STATUS_SHORT == 0
    return plan, out, lengths


def test_replay_equals_pylibjpeg_rle():
    """The kernel's replay of pylibjpeg-rle 2.2 (success with the same bytes, ValueError, or panic) equals
    pylibjpeg-rle's decode_frame on random frames: over-long, cut off, mis-counted, 8 to 64 bits."""
    r = random.Random(7)
    tally: dict[str, int] = {}
    for _ in range(1500):
        bits = r.choice((8, 16, 32, 64))
        samples = r.choice((1, 3)) if bits < 64 else 1
        rows, cols = r.randrange(1, 4), r.randrange(1, 7)
        frame = _random_raw_frame(r, rows, cols, samples, bits)
        try:
            truth, want = "ok", bytes(pylibjpeg_decode_frame(frame, rows * cols, bits, "<"))
        except ValueError:
            truth, want = "error", None
        except BaseException as exc:  # noqa: BLE001 - pyo3's PanicException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            truth, want = "panic", None
        nz = [o for o in struct.unpack_from("<15L", frame, 4) if o]
        inferred = len(nz) // (bits // 8)
        planned = _plan_one(frame, rows, cols, inferred if inferred in (1, 3) else samples, bits)
        tally[truth] = tally.get(truth, 0) + 1
        if planned is None:  # refused: pylibjpeg-rle fails, or its frame fits no array pydicom could hold
            assert truth != "ok" or len(nz) != inferred * (bits // 8)
            continue
        plan, out, lengths = planned
        state, why = _pylibjpeg_outcome(plan.frames[0], lengths[plan.launch.n_entries :], rows * cols)
        assert state == truth, (frame.hex(), why)
        if truth == "ok" and len(want) == plan.frame_bytes:
            assert bytes(out) == want
    print(tally)
    assert min(tally.values()) > 100


def test_pydicom_rule_equals_pydicom_decoder():
    """The kernel's lengths decide pydicom's own decoder exactly, and its bytes are that decoder's."""
    r = random.Random(8)
    tally: dict[str, int] = {}
    for _ in range(800):
        bits = r.choice((8, 16, 32))
        samples = r.choice((1, 3))
        rows, cols = r.randrange(1, 4), r.randrange(1, 7)
        frame = _random_raw_frame(r, rows, cols, samples, bits)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # over-long segments: pydicom warns and truncates
                want = bytes(_rle_decode_frame(frame, rows, cols, samples, bits))
        except ValueError:
            want = None
        planned = _plan_one(frame, rows, cols, samples, bits)
        tally["ok" if want is not None else "error"] = tally.get("ok" if want is not None else "error", 0) + 1
        if planned is None:
            assert want is None
            continue
        plan, out, lengths = planned
        n_seg = plan.launch.n_segments
        ok, why = _pydicom_outcome(plan.frames[0], lengths[:n_seg], rows * cols)
        assert ok == (want is not None), (frame.hex(), why)
        if ok:
            assert bytes(out) == want
    print(tally)
    assert min(tally.values()) > 100


# --------------------------------------------------------------------------------------- kernel contract


def _launch(table, *, src=b"\x03\x01\x02\x03\x04", n_slots=None, n_segments=1, bps=1, plane=4, out_len=None):
    table = np.asarray(table, dtype=np.int64).reshape(3, -1)
    n = table.shape[1]
    slots = n if n_slots is None else n_slots
    plan = RleLaunch("gpudcm_rle", kernels.Geometry(1, 64), n, slots, n_segments, bps, plane)
    out = np.zeros(n * plane if out_len is None else out_len, dtype=np.uint8)
    lengths = np.zeros(2 * n, dtype=np.int64)
    status = host_launch_rle()(plan, np.frombuffer(src, np.uint8), table, out, lengths)
    return status, out, lengths


def test_kernel_decodes_and_reports_lengths():
    status, out, lengths = _launch([[0], [5], [kernels.RLE_NO_ROOM]])
    assert status == 0 and out.tolist() == [1, 2, 3, 4] and lengths.tolist() == [4, kernels.RLE_J_ERROR]
    status, out, lengths = _launch([[0], [5], [4]])
    assert lengths.tolist() == [4, 4]
    status, _, lengths = _launch([[0], [3], [4]])
    assert status == kernels.RLE_STATUS_SHORT and lengths.tolist() == [2, kernels.RLE_J_ERROR]


def test_kernel_refuses_lying_tables():
    assert _launch([[-3], [5], [4]])[0] & kernels.STATUS_READ_OOB
    assert _launch([[0], [99], [4]])[0] & kernels.STATUS_READ_OOB
    assert _launch([[4], [2], [4]])[0] & kernels.STATUS_READ_OOB
    assert _launch([[0], [5], [4]], out_len=2)[0] & kernels.RLE_STATUS_WRITE_OOB
    assert _launch([[0], [5], [4]], n_segments=0)[0] == kernels.STATUS_BAD_PARAMS
    assert _launch([[0], [5], [4]], n_segments=3, bps=2)[0] == kernels.STATUS_BAD_PARAMS
    assert _launch([[0], [5], [4]], n_slots=2)[0] == kernels.STATUS_BAD_PARAMS


def test_resolve_keeps_state_between_frames():
    """After a frame only pydicom's decoder reads, pydicom tries it first: a frame pylibjpeg-rle would
    decode to the wrong size is then read by pydicom's decoder (all frames) but fails on its own."""
    frames, kw, _, _ = MALFORMED["wrong_size_after_pydicom_frame"]
    data = _rle_file(frames, **kw)
    ds, spec, _ = _spec(data)
    plan = plan_rle(spec, ds.PixelData, frame_extents(spec, ds.PixelData))
    out = np.zeros(plan.n_frames * plan.frame_bytes, dtype=np.uint8)
    lengths = np.empty(2 * plan.launch.n_entries, dtype=np.int64)
    host_launch_rle()(plan.launch, plan.source, plan.table, out, lengths)
    assert resolve(spec, plan, lengths) == [0, 1]
    assert isinstance(_host(data, 1), gpudcm.DecodeError) and isinstance(_cpu(data, 1), gpudcm.DecodeError)


def test_sanitized_host_build_on_lying_tables():
    """ASan + UBSan build of the same logic, fed lying tables, random buffers and mutated frames."""
    from tests.harness.hostbuild import run_sanitized

    found = run_sanitized(["-m", "tests.harness.fuzz_rle", "20000", "--sanitize", "--seed", "1"],
                          r"fuzz_rle: (\d+) cases completed \((\d+) tables, (\d+) with refused reads or writes; "
                          r"(\d+) frame sets, (\d+) decoded\)")
    done, tables, refused, frame_sets, decoded = map(int, found.groups())
    assert (done, tables, frame_sets) == (20000, 18000, 2000)
    assert 0 < refused < tables and 0 < decoded < frame_sets  # both outcomes exercised
