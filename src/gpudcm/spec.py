"""PixelSpec: the pixel module of one dataset, validated against the bytes that really exist.

Everything downstream (frame extents, backend choice, kernels, the CPU path) reads the numbers from
a :class:`PixelSpec`; nothing is allocated or launched before :func:`pixel_spec` has checked them.
Rules follow pydicom's own decoder (``pydicom.pixels.decoders.base``) so that a file pydicom decodes
is accepted here, plus the checks pydicom leaves out (High Bit, Samples per Pixel vs Photometric
Interpretation, overflowing sizes).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from .errors import InvalidPixelData, UnsupportedTransferSyntax

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_TAGS = {"PixelData": "(7FE0,0010)", "FloatPixelData": "(7FE0,0008)", "DoubleFloatPixelData": "(7FE0,0009)"}
_TAGS = {
    "SamplesPerPixel": "(0028,0002)",
    "PhotometricInterpretation": "(0028,0004)",
    "PlanarConfiguration": "(0028,0006)",
    "NumberOfFrames": "(0028,0008)",
    "Rows": "(0028,0010)",
    "Columns": "(0028,0011)",
    "BitsAllocated": "(0028,0100)",
    "BitsStored": "(0028,0101)",
    "HighBit": "(0028,0102)",
    "PixelRepresentation": "(0028,0103)",
    "TransferSyntaxUID": "(0002,0010)",
}
_SAMPLES_FOR_PI = {
    "MONOCHROME1": 1,
    "MONOCHROME2": 1,
    "PALETTE COLOR": 1,
    "RGB": 3,
    "YBR_FULL": 3,
    "YBR_FULL_422": 3,
    "YBR_PARTIAL_422": 3,
    "YBR_PARTIAL_420": 3,
    "YBR_ICT": 3,
    "YBR_RCT": 3,
    "HSV": 3,
    "ARGB": 4,
    "CMYK": 4,
}
_ALLOWED_BITS_ALLOCATED = (1, 8, 16, 32, 64)

# Decoded output larger than this is refused before allocation (1 TiB): a header that asks for
# more is lying or describes data no machine here can hold.
MAX_DECODED_BYTES = 1 << 40


def tag_name(keyword: str) -> str:
    """``"(0028,0010) 'Rows'"`` style label for messages."""
    return f"{_TAGS.get(keyword) or _PIXEL_TAGS.get(keyword, '')} '{keyword}'".strip()


def _syntax_flags(transfer_syntax: UID) -> tuple[bool, bool]:
    """(encapsulated, little endian) of a transfer syntax: pydicom's UID properties look the UID up in its
    dictionary on every call (~20 us), too slow for per-tile checks; cached for the standard's UIDs (a
    private one carries its own encoding)."""
    if transfer_syntax.is_private:
        return bool(transfer_syntax.is_encapsulated), bool(transfer_syntax.is_little_endian)
    return _standard_flags(str(transfer_syntax))


@lru_cache(maxsize=256)
def _standard_flags(transfer_syntax: str) -> tuple[bool, bool]:
    uid = UID(transfer_syntax)
    return bool(uid.is_encapsulated), bool(uid.is_little_endian)


@dataclass(frozen=True)
class PixelSpec:
    """The pixel description of one dataset; all sizes already checked against the pixel bytes."""

    source: str
    transfer_syntax: UID
    pixel_keyword: str
    pixel_vr: str
    rows: int
    columns: int
    number_of_frames: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    high_bit: int
    pixel_representation: int
    planar_configuration: int
    photometric_interpretation: str
    pixel_nbytes: int
    declared_frames: int = field(default=1, compare=False)

    @cached_property  # asked many times a frame; the spec is frozen
    def is_encapsulated(self) -> bool:
        return _syntax_flags(self.transfer_syntax)[0]

    @cached_property
    def is_little_endian(self) -> bool:
        return _syntax_flags(self.transfer_syntax)[1]

    @property
    def is_float(self) -> bool:
        return self.pixel_keyword != "PixelData"

    @property
    def is_signed(self) -> bool:
        return self.pixel_keyword == "PixelData" and self.pixel_representation == 1

    @property
    def is_ybr422_native(self) -> bool:
        """Native YBR_FULL_422: two samples a pixel on disk, expanded to three on decode."""
        return self.photometric_interpretation == "YBR_FULL_422" and not self.is_encapsulated

    @property
    def swaps_ow(self) -> bool:
        """8-bit data written as OW in big endian: bytes are swapped pairwise over the element."""
        return (
            not self.is_little_endian
            and self.bits_allocated == 8
            and self.pixel_keyword == "PixelData"
            and self.pixel_vr == "OW"
        )

    @property
    def corrects_unused_bits(self) -> bool:
        """Whether pydicom's default post-decode masks/sign-extends to Bits Stored."""
        return self.pixel_keyword == "PixelData" and self.bits_allocated > self.bits_stored

    @property
    def frame_pixels(self) -> int:
        """Samples in one decoded frame (rows x columns x samples)."""
        return self.rows * self.columns * self.samples_per_pixel

    @property
    def frame_bits(self) -> int:
        """Bits one native frame occupies on disk (1-bit frames need not be byte aligned)."""
        bits = self.frame_pixels * self.bits_allocated
        return bits // 3 * 2 if self.is_ybr422_native else bits

    @property
    def itemsize(self) -> int:
        return 1 if self.bits_allocated == 1 else self.bits_allocated // 8

    @cached_property
    def dtype(self) -> np.dtype:
        """The output dtype, in native byte order (pydicom's dtype, byte order normalised)."""
        if self.pixel_keyword == "FloatPixelData":
            return np.dtype("float32")
        if self.pixel_keyword == "DoubleFloatPixelData":
            return np.dtype("float64")
        if self.bits_allocated == 1:
            return np.dtype("uint8")
        return np.dtype(f"{'ui'[self.pixel_representation]}{self.itemsize}")

    @cached_property
    def frame_shape(self) -> tuple[int, ...]:
        if self.samples_per_pixel == 1:
            return (self.rows, self.columns)
        return (self.rows, self.columns, self.samples_per_pixel)

    def shape(self, index: int | None = None) -> tuple[int, ...]:
        """pydicom's output shape: a frame axis only when all of a multi-frame dataset is asked for."""
        if index is None and self.number_of_frames > 1:
            return (self.number_of_frames, *self.frame_shape)
        return self.frame_shape

    @property
    def decoded_nbytes(self) -> int:
        return self.number_of_frames * self.frame_pixels * self.dtype.itemsize

    def check_index(self, index: int) -> int:
        """Return `index` as an int after checking it names an existing frame."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise InvalidPixelData(f"{self.source}: frame index must be an int, not {index!r}")
        if not 0 <= index < self.number_of_frames:
            raise InvalidPixelData(
                f"{self.source}: frame index {index} is out of range for "
                f"{self.number_of_frames} frame(s) ({tag_name('NumberOfFrames')})"
            )
        return int(index)


def _source_name(ds: Dataset, source: str | None) -> str:
    if source:
        return source
    name = getattr(ds, "filename", None)
    return str(name) if isinstance(name, str) and name else "<dataset>"


# Tags of the pixel module by keyword: values are read by tag (no keyword -> tag lookups per file).
_TAG_OF = {kw: int(tag[1:5] + tag[6:10], 16) for kw, tag in _TAGS.items()}


_US_KEYWORDS = frozenset({"SamplesPerPixel", "PlanarConfiguration", "Rows", "Columns", "BitsAllocated", "BitsStored",
                          "HighBit", "PixelRepresentation"})


def _raw_elements(ds: Dataset) -> dict[int, object] | None:
    """`ds`'s elements by tag, unconverted (pydicom's ``Dataset.elements()``), for a header of a few
    elements (the lazy reader's); None for a larger dataset (looked up element by element instead)."""
    if len(ds) > 32:
        return None
    return {int(e.tag): e for e in ds.elements()}


def _value(ds: Dataset, keyword: str, raws: dict | None = None):
    """The value of element `keyword` in `ds` (`raws`: its elements by tag), or None when absent.

    The hot path of a file just read: a single US value, a plain IS number or a plain CS word is taken
    from pydicom's raw element (its bytes, VR and byte order) without building a DataElement; anything
    else (multiple values, odd lengths, other VRs, converted elements) goes through pydicom's conversion."""
    tag = _TAG_OF[keyword]
    raw = ds.get_item(tag) if raws is None else raws.get(tag)
    if raw is None:
        return None
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
        value = raw.value
        if keyword in _US_KEYWORDS:
            if raw.VR in (None, "US") and len(value) == 2:
                return struct.unpack("<H" if raw.is_little_endian else ">H", value)[0]
        elif keyword == "NumberOfFrames":
            text = value.strip(b" \x00")
            if raw.VR in (None, "IS") and text.isdigit() and len(text) <= 12:
                return int(text)
        elif keyword == "PhotometricInterpretation":
            text = value.strip(b" \x00")
            if raw.VR in (None, "CS") and text.isascii() and text.replace(b"_", b"").replace(b" ", b"").isalnum():
                return text.decode("ascii")
    return ds[tag].value


def _get_int(ds: Dataset, raws: dict | None, keyword: str, src: str, *, required: bool = True,
             default: int | None = None) -> int | None:
    try:
        elem = _value(ds, keyword, raws)
    except Exception as exc:  # a malformed value raises on access (e.g. IS '1A')
        raise InvalidPixelData(f"{src}: {tag_name(keyword)} could not be read: {exc}") from exc
    if type(elem) is int:  # the raw US / IS values of a file just read
        return elem
    if elem is None or (isinstance(elem, (str, bytes, list)) and len(elem) == 0):
        if required:
            raise InvalidPixelData(f"{src}: missing required element {tag_name(keyword)}")
        return default
    if isinstance(elem, (list, tuple, MultiValue)):
        raise InvalidPixelData(f"{src}: {tag_name(keyword)} has multiple values {list(elem)!r}")
    try:
        return int(elem)
    except (TypeError, ValueError) as exc:
        raise InvalidPixelData(f"{src}: {tag_name(keyword)} value {elem!r} is not an integer") from exc


def transfer_syntax_of(ds: Dataset, src: str) -> UID:
    """The dataset's Transfer Syntax UID, or a clear error when there is none or it is unknown."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not tsyntax:
        raise UnsupportedTransferSyntax(
            f"{src}: the dataset has no {tag_name('TransferSyntaxUID')} in its file meta, "
            "so its pixel data cannot be interpreted"
        )
    return _known(UID(str(tsyntax)), src)


def _known(tsyntax: UID, src: str) -> UID:
    if not tsyntax.is_transfer_syntax:
        raise UnsupportedTransferSyntax(f"{src}: {tag_name('TransferSyntaxUID')} '{tsyntax}' is not a known transfer syntax")
    return tsyntax


def _pixel_element(ds: Dataset, src: str) -> tuple[str, str, int]:
    """(keyword, VR, length) of the one pixel element `ds` holds."""
    present = [kw for kw in PIXEL_KEYWORDS if kw in ds]
    if not present:
        raise InvalidPixelData(f"{src}: the dataset has no Pixel Data, Float Pixel Data or Double Float Pixel Data")
    if len(present) > 1:
        raise InvalidPixelData(f"{src}: only one pixel data element may be present, found {present}")
    keyword = present[0]
    try:
        elem = ds[keyword]
        value = elem.value
    except Exception as exc:
        raise InvalidPixelData(f"{src}: {tag_name(keyword)} could not be read: {exc}") from exc
    if value is None:
        raise InvalidPixelData(f"{src}: {tag_name(keyword)} is empty")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise InvalidPixelData(
            f"{src}: {tag_name(keyword)} holds {type(value).__name__}, not bytes "
            "(a sequence or deferred value inside Pixel Data cannot be decoded)"
        )
    try:
        vr = str(elem.VR)
    except Exception:  # pragma: no cover - pydicom always sets a VR on a read element
        vr = "OB"
    return keyword, vr, len(value)


def pixel_spec(ds: Dataset, *, source: str | None = None, element: tuple[str, str, int] | None = None,
               transfer_syntax: UID | None = None) -> PixelSpec:
    """Build and validate the :class:`PixelSpec` of `ds`.

    `element` = (keyword, VR, bytes present) describes a pixel element that is not held in `ds` (the lazy
    reader's header stops before it); without it the element is read from `ds`. `transfer_syntax`: the
    file meta's, when the caller has read it already.
    Raises :class:`InvalidPixelData` (or :class:`UnsupportedTransferSyntax`) naming the file, the tag
    and the numbers when the pixel module cannot describe the bytes present.
    """
    src = _source_name(ds, source)
    if element is None:
        keyword, vr, nbytes = _pixel_element(ds, src)
    else:
        keyword, vr, nbytes = element
    if transfer_syntax is None:
        tsyntax = transfer_syntax_of(ds, src)
    else:
        tsyntax = _known(transfer_syntax if type(transfer_syntax) is UID else UID(transfer_syntax), src)
    if nbytes == 0:
        raise InvalidPixelData(f"{src}: {tag_name(keyword)} is empty (0 bytes)")
    if tsyntax.is_encapsulated and keyword != "PixelData":
        raise InvalidPixelData(f"{src}: {tag_name(keyword)} cannot be encapsulated ({tsyntax.name})")

    raws = _raw_elements(ds)
    rows = _get_int(ds, raws, "Rows", src)
    columns = _get_int(ds, raws, "Columns", src)
    samples = _get_int(ds, raws, "SamplesPerPixel", src)
    bits_allocated = _get_int(ds, raws, "BitsAllocated", src)
    is_float = keyword != "PixelData"
    bits_stored = _get_int(ds, raws, "BitsStored", src, required=not is_float, default=bits_allocated)
    high_bit = _get_int(ds, raws, "HighBit", src, required=False, default=None)
    pixel_rep = _get_int(ds, raws, "PixelRepresentation", src, required=not is_float, default=0)
    try:
        pi = _value(ds, "PhotometricInterpretation", raws)
    except Exception as exc:
        raise InvalidPixelData(f"{src}: {tag_name('PhotometricInterpretation')} could not be read: {exc}") from exc
    if not pi:
        raise InvalidPixelData(f"{src}: missing required element {tag_name('PhotometricInterpretation')}")
    pi = str(pi).strip()

    if (_TAG_OF["NumberOfFrames"] in ds) if raws is None else (_TAG_OF["NumberOfFrames"] in raws):
        frames = _get_int(ds, raws, "NumberOfFrames", src, required=False, default=None)
        if frames is None or frames == 0:
            frames = 1  # pydicom assumes one frame for an empty or zero value
    else:
        frames = 1

    if not 0 < rows <= 0xFFFF:
        raise InvalidPixelData(f"{src}: {tag_name('Rows')} is {rows}; it must be 1 to 65535")
    if not 0 < columns <= 0xFFFF:
        raise InvalidPixelData(f"{src}: {tag_name('Columns')} is {columns}; it must be 1 to 65535")
    if frames < 1:
        raise InvalidPixelData(f"{src}: {tag_name('NumberOfFrames')} is {frames}; it must be at least 1")
    if frames > 0x7FFFFFFF:
        raise InvalidPixelData(f"{src}: {tag_name('NumberOfFrames')} is {frames}; at most 2147483647 frames are supported")
    if bits_allocated not in _ALLOWED_BITS_ALLOCATED:
        raise InvalidPixelData(
            f"{src}: {tag_name('BitsAllocated')} is {bits_allocated}; supported values are "
            f"{', '.join(map(str, _ALLOWED_BITS_ALLOCATED))}"
        )
    if keyword == "FloatPixelData" and bits_allocated != 32:
        raise InvalidPixelData(f"{src}: {tag_name('BitsAllocated')} is {bits_allocated}; Float Pixel Data needs 32")
    if keyword == "DoubleFloatPixelData" and bits_allocated != 64:
        raise InvalidPixelData(f"{src}: {tag_name('BitsAllocated')} is {bits_allocated}; Double Float Pixel Data needs 64")
    if not 1 <= bits_stored <= bits_allocated:
        raise InvalidPixelData(
            f"{src}: {tag_name('BitsStored')} is {bits_stored} but {tag_name('BitsAllocated')} is "
            f"{bits_allocated}; Bits Stored must be 1 to Bits Allocated"
        )
    if high_bit is None:
        high_bit = bits_stored - 1
    elif not is_float and high_bit != bits_stored - 1:
        raise InvalidPixelData(
            f"{src}: {tag_name('HighBit')} is {high_bit} but {tag_name('BitsStored')} is {bits_stored}; "
            f"High Bit must be Bits Stored - 1 = {bits_stored - 1}"
        )
    if pixel_rep not in (0, 1):
        raise InvalidPixelData(f"{src}: {tag_name('PixelRepresentation')} is {pixel_rep}; it must be 0 or 1")
    if samples not in (1, 3):
        raise InvalidPixelData(f"{src}: {tag_name('SamplesPerPixel')} is {samples}; it must be 1 or 3")
    expected_samples = _SAMPLES_FOR_PI.get(pi)
    if expected_samples is None:
        raise InvalidPixelData(f"{src}: {tag_name('PhotometricInterpretation')} '{pi}' is not a known value")
    if expected_samples != samples:
        raise InvalidPixelData(
            f"{src}: {tag_name('PhotometricInterpretation')} '{pi}' needs {expected_samples} sample(s) per "
            f"pixel but {tag_name('SamplesPerPixel')} is {samples}"
        )
    planar = 0
    if samples == 3:
        planar = _get_int(ds, raws, "PlanarConfiguration", src)
        if planar not in (0, 1):
            raise InvalidPixelData(f"{src}: {tag_name('PlanarConfiguration')} is {planar}; it must be 0 or 1")

    spec = PixelSpec(
        source=src,
        transfer_syntax=tsyntax,
        pixel_keyword=keyword,
        pixel_vr=vr,
        rows=rows,
        columns=columns,
        number_of_frames=frames,
        samples_per_pixel=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        high_bit=high_bit,
        pixel_representation=pixel_rep if not is_float else 0,
        planar_configuration=planar,
        photometric_interpretation=pi,
        pixel_nbytes=nbytes,
        declared_frames=frames,
    )
    if spec.decoded_nbytes > MAX_DECODED_BYTES:
        raise InvalidPixelData(
            f"{src}: the header declares {frames} frame(s) of {rows} x {columns} x {samples} at "
            f"{bits_allocated} bits = {spec.decoded_nbytes} decoded bytes, more than the "
            f"{MAX_DECODED_BYTES} gpudcm will allocate"
        )
    if spec.is_encapsulated:
        return spec
    return _check_native_length(spec)


def _check_native_length(spec: PixelSpec) -> PixelSpec:
    """Check native bytes against the header, as pydicom does (odd-length padding, excess frames)."""
    actual = spec.pixel_nbytes
    frame_bits = spec.frame_bits
    expected = math.ceil(frame_bits * spec.number_of_frames / 8)
    padded = expected + expected % 2
    tag = tag_name(spec.pixel_keyword)
    if actual < padded and actual != expected:
        raise InvalidPixelData(
            f"{spec.source}: {tag} holds {actual} bytes but {spec.number_of_frames} frame(s) of "
            f"{spec.rows} x {spec.columns} x {spec.samples_per_pixel} at {spec.bits_allocated} bits need "
            f"{expected} bytes ({tag_name('Rows')}, {tag_name('Columns')}, {tag_name('NumberOfFrames')}, "
            f"{tag_name('BitsAllocated')} disagree with the data)"
        )
    if actual > padded:
        if spec.is_ybr422_native:
            ybr_length = expected // 2 * 3
            if actual >= ybr_length + ybr_length % 2:
                raise InvalidPixelData(
                    f"{spec.source}: {tag} holds {actual} bytes, a third more than the {expected} that "
                    f"YBR_FULL_422 needs: {tag_name('PhotometricInterpretation')} is probably wrong"
                )
        else:
            # pydicom returns whole excess frames found in the padding (allow_excess_frames)
            whole = (actual * 8) // frame_bits
            if whole > spec.number_of_frames:
                return _replace_frames(spec, whole)
    return spec


def _replace_frames(spec: PixelSpec, frames: int) -> PixelSpec:
    return replace(spec, number_of_frames=frames)

