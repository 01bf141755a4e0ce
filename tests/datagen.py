"""Synthetic DICOM files with independently computed expected pixel arrays.

Every case is written with pydicom and carries the array that
``pydicom.pixels.pixel_array(path)`` must return.  The expected arrays are
derived from the numbers generated here (masking, sign extension, bit packing
and YBR 4:2:2 layout are done with our own numpy), never from pydicom's
decoder.  Only the YBR -> RGB colour transform reuses
``pydicom.pixels.processing.convert_color_space`` (the documented transform)
and the RLE cases use pydicom's native RLE *encoder*.

Dropped variants: none.  pydicom 3.0.2 decodes all requested variants,
including BitsAllocated 64 Pixel Data and big endian Float/Double Float
Pixel Data.  Notes on what pydicom requires:

* Float/Double Float Pixel Data need no Bits Stored, High Bit or Pixel
  Representation (pydicom only requires them for (7FE0,0010)); they are
  omitted as in the standard.
* YBR_FULL_422 native data is expanded over the flat pixel stream, so frames
  must hold an even number of pixels; odd column counts are used with an even
  row count.
* pydicom's ``compress`` refuses 32-bit RLE (its Part 5 encoding profile
  lists only 8/16-bit), so the 32-bit RLE case calls the native RLE encoder
  through ``RLELosslessEncoder.iter_encode(validate=False)``; pydicom decodes
  it fine.
* 1-bit data is never byte swapped by pydicom, so the big endian 1-bit files
  hold the same LSB-first packed stream as the little endian ones.
"""

from __future__ import annotations

import os
import pathlib
import shutil
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.pixels.processing import convert_color_space
from pydicom.pixels.utils import as_pixel_options, compress
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

SECONDARY_CAPTURE = UID("1.2.840.10008.5.1.4.1.1.7")
PARAMETRIC_MAP = UID("1.2.840.10008.5.1.4.1.1.30")

_TS_SUFFIX: dict[str, UID] = {
    "le_explicit": ExplicitVRLittleEndian,
    "be_explicit": ExplicitVRBigEndian,
    "le_implicit": ImplicitVRLittleEndian,
}

_PIXEL_TAGS = {
    "PixelData": 0x7FE00010,
    "FloatPixelData": 0x7FE00008,
    "DoubleFloatPixelData": 0x7FE00009,
}


@dataclass(frozen=True)
class GeneratedCase:
    """One generated DICOM file and the arrays pydicom must decode it to."""

    name: str
    path: pathlib.Path
    expected: np.ndarray
    expected_raw: np.ndarray | None = None
    description: str = ""


def _base_dataset(
    ts: UID,
    *,
    rows: int,
    cols: int,
    frames: int,
    spp: int,
    photometric: str,
    bits_allocated: int,
    bits_stored: int | None,
    pixel_rep: int | None,
    planar: int | None = None,
    sop_class: UID = SECONDARY_CAPTURE,
) -> Dataset:
    """Return a dataset with file meta and Image Pixel module but no pixel data."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ts

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "OT"
    ds.PatientName = "Synthetic^Test"
    ds.PatientID = "GPUDCM"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Rows = rows
    ds.Columns = cols
    ds.SamplesPerPixel = spp
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    if bits_stored is not None:
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
    if pixel_rep is not None:
        ds.PixelRepresentation = pixel_rep
    if spp == 3:
        ds.PlanarConfiguration = 0 if planar is None else planar
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def _shape(frames: int, rows: int, cols: int, spp: int) -> tuple[int, ...]:
    """Return the array shape pydicom produces for these dimensions."""
    shape: tuple[int, ...] = (rows, cols)
    if frames > 1:
        shape = (frames, *shape)
    if spp > 1:
        shape = (*shape, spp)
    return shape


def _to_bytes(arr: np.ndarray, ts: UID) -> bytes:
    """Serialise `arr` in the byte order of `ts`."""
    order = "<" if ts.is_little_endian else ">"
    return arr.astype(arr.dtype.newbyteorder(order), copy=False).tobytes()


def _pad_even(data: bytes) -> bytes:
    return data + b"\x00" * (len(data) % 2)


def _save(
    ds: Dataset, path: pathlib.Path, data: bytes, vr: str, keyword: str = "PixelData"
) -> None:
    """Attach `data` as the pixel data element (exact bytes) and write `ds`."""
    ds.add_new(_PIXEL_TAGS[keyword], vr, data)
    ds.save_as(path, enforce_file_format=True)


def _ts_from_name(name: str) -> UID:
    for suffix, ts in _TS_SUFFIX.items():
        if name.endswith(suffix):
            return ts
    raise ValueError(f"No transfer syntax suffix in {name!r}")


def _sign_extend(low: np.ndarray, bits: int, dtype: str) -> np.ndarray:
    """Interpret the `bits` low bits of unsigned `low` as two's complement."""
    low = low.astype(np.int64)
    return np.where(low >= 1 << (bits - 1), low - (1 << bits), low).astype(dtype)


def _pack_bits_lsb(bits: np.ndarray) -> bytes:
    """Pack a 0/1 array LSB-first into bytes, zero filling the last byte."""
    flat = bits.astype(np.uint8).ravel()
    nbytes = -(-flat.size // 8)
    padded = np.zeros(nbytes * 8, dtype=np.uint8)
    padded[: flat.size] = flat
    groups = padded.reshape(nbytes, 8)
    out = np.zeros(nbytes, dtype=np.uint8)
    for bit in range(8):
        out |= groups[:, bit] << bit
    return out.tobytes()


class _Builder:
    """Accumulates generated cases into `out_dir`."""

    def __init__(self, out_dir: pathlib.Path, rng: np.random.Generator) -> None:
        self.out_dir = out_dir
        self.rng = rng
        self.cases: list[GeneratedCase] = []

    def path(self, name: str) -> pathlib.Path:
        return self.out_dir / f"{name}.dcm"

    def add(
        self,
        name: str,
        expected: np.ndarray,
        description: str,
        expected_raw: np.ndarray | None = None,
    ) -> None:
        native = expected.astype(expected.dtype.newbyteorder("="), copy=False)
        raw = None
        if expected_raw is not None:
            raw = expected_raw.astype(expected_raw.dtype.newbyteorder("="), copy=False)
        self.cases.append(
            GeneratedCase(name, self.path(name), native, raw, description)
        )

    def native_int(
        self,
        name: str,
        *,
        stored: np.ndarray,
        expected: np.ndarray,
        bits_allocated: int,
        bits_stored: int,
        pixel_rep: int,
        frames: int,
        rows: int,
        cols: int,
        spp: int = 1,
        planar: int | None = None,
        photometric: str | None = None,
        vr: str | None = None,
        extra: bytes = b"",
        expected_raw: np.ndarray | None = None,
        description: str = "",
    ) -> None:
        """Write native integer pixel data given as stored words in pixel order.

        `stored` has shape ``(frames, rows, cols[, spp])``; with planar
        configuration 1 it is rearranged into colour-by-plane order here.
        """
        ts = _ts_from_name(name)
        ds = _base_dataset(
            ts,
            rows=rows,
            cols=cols,
            frames=frames,
            spp=spp,
            photometric=photometric or ("RGB" if spp == 3 else "MONOCHROME2"),
            bits_allocated=bits_allocated,
            bits_stored=bits_stored,
            pixel_rep=pixel_rep,
            planar=planar,
        )
        order = stored.transpose(0, 3, 1, 2) if planar == 1 else stored
        data = _pad_even(_to_bytes(np.ascontiguousarray(order), ts) + extra)
        _save(ds, self.path(name), data, vr or ("OB" if bits_allocated == 8 else "OW"))
        shape = _shape(frames, rows, cols, spp)
        if expected_raw is not None:
            expected_raw = expected_raw.reshape(shape)
        self.add(name, expected.reshape(shape), description, expected_raw)


def _gen_masked(b: _Builder) -> None:
    """BitsStored < BitsAllocated with random garbage in the unused high bits."""
    rng = b.rng
    for suffix in ("le_explicit", "be_explicit", "le_implicit"):
        frames, rows, cols = 2, 9, 11
        values = rng.integers(0, 1 << 12, (frames, rows, cols), dtype=np.uint16)
        values.flat[:2] = (0, 0xFFF)
        garbage = rng.integers(1, 16, values.shape, dtype=np.uint16) << 12
        b.native_int(
            f"u16_bs12_garbage_{suffix}",
            stored=values | garbage,
            expected=values,
            bits_allocated=16,
            bits_stored=12,
            pixel_rep=0,
            frames=frames,
            rows=rows,
            cols=cols,
            description="unsigned 12 in 16 bits, garbage high nibble",
        )

    for suffix in ("le_explicit", "be_explicit"):
        frames, rows, cols = 3, 7, 6
        values = rng.integers(-2048, 2048, (frames, rows, cols), dtype=np.int16)
        values.flat[:4] = (-2048, -1, 0, 2047)
        garbage = rng.integers(0, 16, values.shape, dtype=np.uint16) << 12
        low = values.view(np.uint16) & np.uint16(0x0FFF)
        stored = low | garbage
        assert np.array_equal(_sign_extend(stored & 0x0FFF, 12, "i2"), values)
        b.native_int(
            f"i16_bs12_garbage_{suffix}",
            stored=stored,
            expected=values,
            bits_allocated=16,
            bits_stored=12,
            pixel_rep=1,
            frames=frames,
            rows=rows,
            cols=cols,
            description="signed 12 in 16 bits, garbage high nibble",
        )

    for suffix in ("le_explicit", "be_explicit"):
        frames, rows, cols = 2, 5, 7
        low = rng.integers(0, 1 << 10, (frames, rows, cols), dtype=np.uint32)
        low.flat[:4] = (0, 0x1FF, 0x200, 0x3FF)
        garbage = rng.integers(1, 1 << 22, low.shape, dtype=np.uint32) << 10
        b.native_int(
            f"i32_bs10_garbage_{suffix}",
            stored=low | garbage,
            expected=_sign_extend(low, 10, "i4"),
            bits_allocated=32,
            bits_stored=10,
            pixel_rep=1,
            frames=frames,
            rows=rows,
            cols=cols,
            description="signed 10 in 32 bits, garbage high bits",
        )

    frames, rows, cols = 2, 3, 5
    low = rng.integers(0, 1 << 40, (frames, rows, cols), dtype=np.uint64)
    low.flat[:3] = (0, (1 << 39) - 1, 1 << 39)
    garbage = rng.integers(1, 1 << 24, low.shape, dtype=np.uint64) << np.uint64(40)
    b.native_int(
        "i64_bs40_garbage_le_explicit",
        stored=low | garbage,
        expected=_sign_extend(low, 40, "i8"),
        bits_allocated=64,
        bits_stored=40,
        pixel_rep=1,
        frames=frames,
        rows=rows,
        cols=cols,
        description="signed 40 in 64 bits, garbage high bits",
    )


def _gen_full_range(b: _Builder) -> None:
    """32- and 64-bit unsigned data using every bit."""
    rng = b.rng
    for bits, dtype in ((32, np.uint32), (64, np.uint64)):
        for suffix in ("le_explicit", "be_explicit"):
            frames, rows, cols = 3, 4, 5
            values = rng.integers(
                0, np.iinfo(dtype).max, (frames, rows, cols), dtype=dtype, endpoint=True
            )
            values.flat[:3] = (0, np.iinfo(dtype).max, 1 << (bits - 1))
            b.native_int(
                f"u{bits}_full_{suffix}",
                stored=values,
                expected=values,
                bits_allocated=bits,
                bits_stored=bits,
                pixel_rep=0,
                frames=frames,
                rows=rows,
                cols=cols,
                description=f"unsigned {bits}-bit full range",
            )


def _gen_1bit(b: _Builder) -> None:
    """Bit-packed data whose frames start mid-byte."""
    for rows, cols, frames in ((5, 7, 13), (3, 3, 1), (9, 17, 40)):
        bits = b.rng.integers(0, 2, (frames, rows, cols), dtype=np.uint8)
        bits.flat[0] = 1
        data = _pad_even(_pack_bits_lsb(bits))
        for suffix in ("le_explicit", "be_explicit"):
            name = f"u1_{cols}x{rows}x{frames}_{suffix}"
            ts = _ts_from_name(name)
            ds = _base_dataset(
                ts,
                rows=rows,
                cols=cols,
                frames=frames,
                spp=1,
                photometric="MONOCHROME2",
                bits_allocated=1,
                bits_stored=1,
                pixel_rep=0,
            )
            _save(ds, b.path(name), data, "OB")
            b.add(
                name,
                bits.reshape(_shape(frames, rows, cols, 1)),
                "1-bit LSB-first packed, frames not byte aligned",
            )


def _gen_rgb(b: _Builder) -> None:
    """Native RGB in both planar configurations."""
    rng = b.rng
    frames, rows, cols = 3, 5, 7
    for suffix in ("le_explicit", "be_explicit"):
        values = rng.integers(0, 1 << 16, (frames, rows, cols, 3), dtype=np.uint16)
        b.native_int(
            f"rgb16_planar1_{suffix}",
            stored=values,
            expected=values,
            bits_allocated=16,
            bits_stored=16,
            pixel_rep=0,
            frames=frames,
            rows=rows,
            cols=cols,
            spp=3,
            planar=1,
            description="16-bit RGB, colour-by-plane",
        )

    frames, rows, cols = 4, 6, 5
    values = rng.integers(0, 256, (frames, rows, cols, 3), dtype=np.uint8)
    b.native_int(
        "rgb8_planar1_le_explicit",
        stored=values,
        expected=values,
        bits_allocated=8,
        bits_stored=8,
        pixel_rep=0,
        frames=frames,
        rows=rows,
        cols=cols,
        spp=3,
        planar=1,
        description="8-bit RGB, colour-by-plane, multi-frame",
    )

    frames, rows, cols = 1, 3, 5
    values = rng.integers(0, 256, (frames, rows, cols, 3), dtype=np.uint8)
    b.native_int(
        "rgb8_planar0_odd_ob_be_explicit",
        stored=values,
        expected=values,
        bits_allocated=8,
        bits_stored=8,
        pixel_rep=0,
        frames=frames,
        rows=rows,
        cols=cols,
        spp=3,
        planar=0,
        vr="OB",
        description="8-bit RGB, colour-by-pixel, odd length (45 bytes) as OB",
    )


def _gen_float(b: _Builder) -> None:
    """Float Pixel Data (OF) and Double Float Pixel Data (OD)."""
    specials = (0.0, -0.0, np.inf, -np.inf, 1e-40, -1.5, 3.0e38)
    for keyword, vr, dtype, tag in (
        ("FloatPixelData", "OF", np.float32, "f32_float"),
        ("DoubleFloatPixelData", "OD", np.float64, "f64_double"),
    ):
        for frames, rows, cols in ((1, 6, 5), (4, 3, 7)):
            values = (b.rng.standard_normal((frames, rows, cols)) * 1000).astype(dtype)
            values.flat[: len(specials)] = specials
            for suffix in ("le_explicit", "be_explicit"):
                kind = "single" if frames == 1 else "multi"
                name = f"{tag}_{kind}_{suffix}"
                ts = _ts_from_name(name)
                ds = _base_dataset(
                    ts,
                    rows=rows,
                    cols=cols,
                    frames=frames,
                    spp=1,
                    photometric="MONOCHROME2",
                    bits_allocated=8 * np.dtype(dtype).itemsize,
                    bits_stored=None,
                    pixel_rep=None,
                    sop_class=PARAMETRIC_MAP,
                )
                _save(ds, b.path(name), _to_bytes(values, ts), vr, keyword)
                b.add(
                    name,
                    values.reshape(_shape(frames, rows, cols, 1)),
                    f"{keyword} ({vr})",
                )


def _gen_ybr(b: _Builder) -> None:
    """Native YBR_FULL_422 and YBR_FULL."""
    rng = b.rng
    for frames, rows, cols in ((3, 6, 4), (2, 6, 5)):
        npix = rows * cols
        luma = rng.integers(0, 256, (frames, npix), dtype=np.uint8)
        chroma = rng.integers(0, 256, (frames, npix // 2, 2), dtype=np.uint8)
        stream = np.empty((frames, npix // 2, 4), dtype=np.uint8)
        stream[..., 0] = luma[:, 0::2]
        stream[..., 1] = luma[:, 1::2]
        stream[..., 2:] = chroma

        raw = np.empty((frames, npix, 3), dtype=np.uint8)
        raw[..., 0] = luma
        raw[:, 0::2, 1:] = chroma
        raw[:, 1::2, 1:] = chroma
        raw = raw.reshape(_shape(frames, rows, cols, 3))

        name = f"ybr422_{rows}x{cols}x{frames}_le_explicit"
        ts = _ts_from_name(name)
        ds = _base_dataset(
            ts,
            rows=rows,
            cols=cols,
            frames=frames,
            spp=3,
            photometric="YBR_FULL_422",
            bits_allocated=8,
            bits_stored=8,
            pixel_rep=0,
            planar=0,
        )
        _save(ds, b.path(name), _pad_even(stream.tobytes()), "OB")
        b.add(
            name,
            convert_color_space(raw, "YBR_FULL", "RGB"),
            "YBR_FULL_422 Y1 Y2 Cb Cr pairs over the flat frame",
            expected_raw=raw,
        )

    for frames, rows, cols in ((1, 5, 7), (3, 4, 6)):
        values = rng.integers(0, 256, (frames, rows, cols, 3), dtype=np.uint8)
        b.native_int(
            f"ybr_full_{rows}x{cols}x{frames}_le_explicit",
            stored=values,
            expected=convert_color_space(values, "YBR_FULL", "RGB"),
            expected_raw=values,
            bits_allocated=8,
            bits_stored=8,
            pixel_rep=0,
            frames=frames,
            rows=rows,
            cols=cols,
            spp=3,
            planar=0,
            photometric="YBR_FULL",
            description="YBR_FULL colour-by-pixel",
        )


def _rle_outside_profile(ds: Dataset, values: np.ndarray) -> None:
    """RLE encode `values` into `ds` with pydicom's native plugin, skipping the
    Part 5 encoding-profile check (which only lists 8/16-bit) that
    ``compress`` enforces; RLE itself allows up to 15 segments."""
    frames = RLELosslessEncoder.iter_encode(
        values,
        encoding_plugin="pydicom",
        validate=False,
        **as_pixel_options(ds),
    )
    ds.PixelData = encapsulate(list(frames))
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = RLELossless


def _gen_rle(b: _Builder) -> None:
    """RLE Lossless encoded with pydicom's native encoder."""
    rng = b.rng
    specs: list[tuple[str, int, int, int, int, int, type[np.integer]]] = [
        # prefix, samples, frames, low, high (exclusive), pixel_rep, dtype
        ("rle_u8", 1, 1, 0, 1 << 8, 0, np.uint8),
        ("rle_u8", 1, 20, 0, 4, 0, np.uint8),
        ("rle_i16", 1, 1, -(1 << 15), 1 << 15, 1, np.int16),
        ("rle_i16", 1, 5, -3, 3, 1, np.int16),
        ("rle_u32", 1, 3, 0, 1 << 32, 0, np.uint32),
        ("rle_rgb8", 3, 1, 0, 1 << 8, 0, np.uint8),
        ("rle_rgb8", 3, 6, 0, 1 << 8, 0, np.uint8),
        ("rle_rgb16", 3, 4, 0, 1 << 16, 0, np.uint16),
    ]
    rows, cols = 7, 13
    for prefix, spp, frames, low, high, pixel_rep, dtype in specs:
        bits = 8 * np.dtype(dtype).itemsize
        values = rng.integers(low, high, _shape(frames, rows, cols, spp), dtype=dtype)
        if spp == 1 and frames > 1:
            values[0, 0, :4] = values[0, 0, 0]
        name = f"{prefix}_{rows}x{cols}x{frames}"
        ds = _base_dataset(
            ExplicitVRLittleEndian,
            rows=rows,
            cols=cols,
            frames=frames,
            spp=spp,
            photometric="RGB" if spp == 3 else "MONOCHROME2",
            bits_allocated=bits,
            bits_stored=bits,
            pixel_rep=pixel_rep,
            planar=0,
        )
        if bits <= 16:
            compress(
                ds,
                RLELossless,
                values,
                encoding_plugin="pydicom",
                generate_instance_uid=False,
            )
        else:
            _rle_outside_profile(ds, values)
        ds.save_as(b.path(name), enforce_file_format=True)
        b.add(name, values, f"RLE Lossless {bits}-bit, {spp} sample(s)")


def _gen_padding(b: _Builder) -> None:
    """Odd-length element padding and excess trailing padding."""
    rng = b.rng
    frames, rows, cols = 3, 5, 7
    values = rng.integers(0, 256, (frames, rows, cols), dtype=np.uint8)
    b.native_int(
        "u8_odd_padded_le_explicit",
        stored=values,
        expected=values,
        bits_allocated=8,
        bits_stored=8,
        pixel_rep=0,
        frames=frames,
        rows=rows,
        cols=cols,
        description="8-bit, 105 bytes + trailing NULL pad",
    )

    values16 = rng.integers(0, 1 << 16, (frames, rows, cols), dtype=np.uint16)
    b.native_int(
        "u16_odd_pixels_le_explicit",
        stored=values16,
        expected=values16,
        bits_allocated=16,
        bits_stored=16,
        pixel_rep=0,
        frames=frames,
        rows=rows,
        cols=cols,
        description="16-bit multi-frame, odd pixel count per frame",
    )

    frames, rows, cols = 2, 4, 3
    values16 = rng.integers(0, 1 << 16, (frames, rows, cols), dtype=np.uint16)
    b.native_int(
        "u16_excess_padding_le_explicit",
        stored=values16,
        expected=values16,
        bits_allocated=16,
        bits_stored=16,
        pixel_rep=0,
        frames=frames,
        rows=rows,
        cols=cols,
        extra=b"\x00\x00",
        description="16-bit with 2 bytes of excess trailing padding",
    )

    # 8-bit written as OW in big endian: the element's bytes are swapped pairwise (pydicom's be_swap_ow),
    # and with an odd frame size every odd frame starts in the middle of a byte pair.
    frames, rows, cols = 3, 5, 7
    values = rng.integers(0, 256, (frames, rows, cols), dtype=np.uint8)
    name = "u8_ow_odd_frames_be_explicit"
    ds = _base_dataset(
        ExplicitVRBigEndian, rows=rows, cols=cols, frames=frames, spp=1, photometric="MONOCHROME2",
        bits_allocated=8, bits_stored=8, pixel_rep=0,
    )
    swapped = np.frombuffer(_pad_even(values.tobytes()), dtype="<u2").byteswap().tobytes()
    _save(ds, b.path(name), swapped, "OW")
    b.add(name, values, "8-bit OW big endian (pairwise swapped), 35-byte frames")


def _gen_htj2k(b: _Builder) -> None:
    """HTJ2K Lossless, encoded by OpenJPH (through imagecodecs): pydicom has no HTJ2K encoder, and
    neither pydicom's test files nor pydicom-data hold an HTJ2K file. Without imagecodecs (the device
    machine), the copies ci/wheels.sh made are used from ``$GPUDCM_PREGENERATED_HTJ2K``; else skipped."""
    try:
        import imagecodecs
    except ImportError:
        _pregenerated_htj2k(b)
        return
    from pydicom.uid import HTJ2KLossless

    rng = b.rng
    specs = [
        # name, frames, rows, cols, samples, bits stored, pixel rep, dtype, low, high, photometric, rgb transform
        ("htj2k_u8", 1, 31, 17, 1, 8, 0, np.uint8, 0, 1 << 8, "MONOCHROME2", None),
        ("htj2k_u12", 3, 16, 24, 1, 12, 0, np.uint16, 0, 1 << 12, "MONOCHROME2", None),
        ("htj2k_i16", 2, 20, 9, 1, 16, 1, np.int16, -(1 << 15), 1 << 15, "MONOCHROME2", None),
        ("htj2k_rgb8", 2, 12, 10, 3, 8, 0, np.uint8, 0, 1 << 8, "RGB", False),
        ("htj2k_rct8", 1, 12, 10, 3, 8, 0, np.uint8, 0, 1 << 8, "YBR_RCT", True),
    ]
    for name, frames, rows, cols, spp, bits_stored, pixel_rep, dtype, low, high, photometric, mct in specs:
        values = rng.integers(low, high, (frames, rows, cols, spp), dtype=dtype)
        values[:, : rows // 2, : cols // 2] = values[:, :1, :1]  # some flat area
        ds = _base_dataset(
            HTJ2KLossless, rows=rows, cols=cols, frames=frames, spp=spp, photometric=photometric,
            bits_allocated=8 * np.dtype(dtype).itemsize, bits_stored=bits_stored, pixel_rep=pixel_rep,
        )
        frames_bytes = [
            imagecodecs.htj2k_encode(v if spp == 3 else v[..., 0], reversible=True, rgb=mct) for v in values
        ]
        ds.PixelData = encapsulate(frames_bytes)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.LossyImageCompression = "00"
        ds.save_as(b.path(name), enforce_file_format=True)
        # pydicom returns RGB for YBR_RCT (the codec inverts the transform)
        b.add(name, values.reshape(_shape(frames, rows, cols, spp)), f"HTJ2K Lossless {bits_stored}-bit, {spp} sample(s), {photometric}")


def _pregenerated_htj2k(b: _Builder) -> None:
    """The HTJ2K cases ci/wheels.sh wrote (``<name>.dcm``, the values it holds as ``<name>.npy``)."""
    folder = os.environ.get("GPUDCM_PREGENERATED_HTJ2K")
    if not folder or not os.path.isdir(folder):
        return
    for dcm in sorted(pathlib.Path(folder).glob("htj2k_*.dcm")):
        shutil.copy(dcm, b.path(dcm.stem))
        b.add(dcm.stem, np.load(dcm.with_suffix(".npy")), dcm.with_suffix(".txt").read_text())


def generate_all(out_dir: pathlib.Path, *, seed: int = 0) -> list[GeneratedCase]:
    """Write every synthetic case into `out_dir` and return their descriptions."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = _Builder(out_dir, np.random.default_rng(seed))
    for gen in (
        _gen_masked,
        _gen_full_range,
        _gen_1bit,
        _gen_rgb,
        _gen_float,
        _gen_ybr,
        _gen_rle,
        _gen_padding,
        _gen_htj2k,
    ):
        gen(builder)
    names = [c.name for c in builder.cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return builder.cases
