"""The lazy pixel source: a file's header, its PixelSpec and frame extents, and frame bytes read on demand.

:func:`open_pixels` parses a path or seekable file-like up to the pixel element (pydicom's
``read_dataset`` with ``stop_when``, as pydicom's path-based ``pixel_array`` reads), records where the
element's value lies in the file, validates the pixel module against the bytes the file really holds
and computes every frame's extent: native frames by arithmetic, encapsulated frames from the Extended or
Basic Offset Table or one scan of the item headers (no fragment payload is read). Frame bytes are then
read only when asked for (:meth:`PixelReader.frame_bytes`, :meth:`PixelReader.read_into`), each read
checked: a file that shrinks or changes while it is read raises :class:`InvalidPixelData` naming it,
never a short frame. Small files are read whole in one call (cheaper than many small reads). A pydicom
``Dataset`` given by the caller is used as it is (its element value is the byte source).

No memory map: a mapped file that shrinks kills the process with SIGBUS, where a read can say so.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, NamedTuple

import numpy as np
from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import data_element_generator
from pydicom.uid import UID, RLELossless
from pydicom.valuerep import VR
from pydicom.values import convert_UI

from . import host_memory
from .errors import GpudcmError, InvalidPixelData
from .frames import Frame, check_codestream_sizes, check_rle_capacity, encapsulated_extents, native_extents, native_frame
from .pydicom_compat import at_pixel_data, read_dataset, read_file_meta_info, read_preamble
from .source import Source, load_dataset, source_name
from .spec import PixelSpec, pixel_spec

PIXEL_TAGS = {(0x7FE0, 0x0010): "PixelData", (0x7FE0, 0x0008): "FloatPixelData", (0x7FE0, 0x0009): "DoubleFloatPixelData"}
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
# Files up to this size are read in one call and parsed from memory (one syscall beats dozens).
SLURP_BYTES = 4 << 20
# A path's header is parsed from one read of its first bytes (the whole file when it is this small).
HEAD_BYTES = 16 << 10

# What the pixel path reads of a file's header (as pydicom's own path-based pixel_array does).
HEADER_TAGS = [
    0x00080005,  # Specific Character Set
    0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011,
    0x00280100, 0x00280101, 0x00280102, 0x00280103,
    0x7FE00001, 0x7FE00002,  # Extended Offset Table (and Lengths)
]


@dataclass(frozen=True)
class PixelElement:
    """Where the pixel element's value lies in its file."""

    keyword: str
    vr: str
    offset: int  # file offset of the value's first byte
    length: int  # bytes of the value present in the file (up to a trailing sequence delimiter)
    undefined: bool  # undefined length (encapsulated)


class FileBytes:
    """Checked random access to `length` bytes at `start` of an open file.

    Slicing (``fb[a:b]``) returns bytes, so the extent code in :mod:`gpudcm.frames` scans a file exactly as
    it scans a buffer. Each read must return every byte asked for and the file's size and modification
    time must not have changed since it was opened; otherwise :class:`InvalidPixelData` names the file.
    Once :meth:`detach`-ed (a file opened by path), each read opens the file by its path, so a reader
    (e.g. one of thousands waiting in a device batch) holds no file descriptor.
    """

    def __init__(self, fp: BinaryIO, start: int, length: int, name: str,
                 stamp: tuple[int, int] | None = None, path: str | None = None) -> None:
        """`stamp`: the (size, mtime_ns) the caller's ``fstat`` of `fp` just gave (else fstat'ed here);
        `path`: where `fp` was opened from (for :meth:`detach`)."""
        self._fp, self.start, self.length, self.name, self._path = fp, start, length, name, path
        try:
            self._fd: int | None = fp.fileno()
            if stamp is None:
                st = os.fstat(self._fd)
                stamp = (st.st_size, st.st_mtime_ns)
            self._stamp = stamp
        except (AttributeError, OSError, io.UnsupportedOperation):
            self._fd, self._stamp = None, None
        self._lock = threading.Lock()  # seek + read on a shared file object

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, item: slice) -> bytes:
        start, stop, step = item.indices(self.length)
        if step != 1:
            raise TypeError("FileBytes supports contiguous slices only")
        return self.read_at(start, max(0, stop - start))

    def _changed(self, what: str) -> InvalidPixelData:
        return InvalidPixelData(f"{self.name}: the file changed while it was being read ({what}); "
                                "no frame is returned from a file that is being rewritten")

    def detach(self) -> None:
        """Close the file; later reads open it by path (and check the same size and modification time)."""
        if self._path is not None and self._fd is not None:
            self._fp.close()
            self._fp = self._fd = None

    def _check(self, fd: int | None) -> None:
        if self._stamp is None:
            return
        st = os.fstat(fd)
        if (st.st_size, st.st_mtime_ns) != self._stamp:
            raise self._changed(f"size {self._stamp[0]} -> {st.st_size} bytes, or its modification time moved")

    def readinto_at(self, pos: int, buffer) -> None:
        """Fill `buffer` (any writable buffer) with the bytes at `pos` of the range."""
        view = memoryview(buffer).cast("B")
        n = len(view)
        if pos < 0 or pos + n > self.length:
            raise InvalidPixelData(f"{self.name}: bytes {pos}..{pos + n} asked for, outside the "
                                   f"{self.length}-byte pixel element")
        fd = opened = None
        if self._fd is not None:
            fd = self._fd
        elif self._path is not None:
            fd = opened = os.open(self._path, os.O_RDONLY)
        try:
            done = 0
            while done < n:
                if fd is not None:
                    got = os.preadv(fd, [view[done:]], self.start + pos + done)
                else:
                    with self._lock:
                        self._fp.seek(self.start + pos + done)
                        got = self._fp.readinto(view[done:])
                if not got:
                    raise self._changed(f"{n - done} of {n} bytes at offset {self.start + pos + done} are gone")
                done += got
            self._check(fd)
        finally:
            if opened is not None:
                os.close(opened)

    def read_at(self, pos: int, n: int) -> bytes:
        return self.read_array(pos, n).tobytes()

    def read_array(self, pos: int, n: int) -> np.ndarray:
        """`n` bytes at `pos` as a fresh uint8 array (one read, no zero fill, no copy)."""
        out = np.empty(n, dtype=np.uint8)
        if n:
            self.readinto_at(pos, out)
        return out


class WindowFile(io.RawIOBase):
    """A read-only file-like over a reader's element value (what pydicom's decoders read frames from)."""

    def __init__(self, reader: PixelReader, length: int) -> None:
        super().__init__()
        self._reader, self._length, self._pos = reader, length, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._length)[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        n = max(0, min(len(view), self._length - self._pos))
        if n:
            self._reader.read_range_into(self._pos, view[:n])
            self._pos += n
        return n


def _not_group_2(tag, vr, length) -> bool:
    return tag >> 16 != 2


_VRS = frozenset(vr.value for vr in VR)


def file_meta(fp: BinaryIO) -> FileMetaDataset:
    """The File Meta Information at `fp` (positioned after "DICM"), as pydicom's ``_read_file_meta_info``
    returns it, from one pass of pydicom's element generator. Anything unusual (a VR that is not one, an
    element pydicom's reader would re-read as implicit VR) goes to pydicom's own function."""
    start = fp.tell()
    try:
        raw = {e.tag: e for e in data_element_generator(fp, False, True, stop_when=_not_group_2)}
    except Exception:
        raw = None
    if raw is None or not all(e.VR in _VRS for e in raw.values()):
        fp.seek(start)
        return read_file_meta_info(fp)
    meta = FileMetaDataset(raw)
    meta.set_original_encoding(is_implicit_vr=False, is_little_endian=True, character_encoding=default_encoding)
    return meta


class Header(NamedTuple):
    ds: Dataset  # up to the pixel element, file meta attached
    transfer_syntax: UID
    keyword: str  # of the pixel element
    vr: str
    length: int  # its length field (0xFFFFFFFF: undefined)
    start: int  # its value's position in the file


def _transfer_syntax(meta: FileMetaDataset):
    """The meta's Transfer Syntax UID (pydicom's UI conversion of the raw element; its ``get`` otherwise)."""
    raw = meta.get_item(0x00020010)
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes) and raw.VR == "UI":
        value = convert_UI(raw.value, True)
        if isinstance(value, str):
            return value
    return meta.get("TransferSyntaxUID")


def _stop_at_pixels_or_cut(fp: io.BytesIO, cut: list) -> Any:
    """A ``stop_when`` for `fp` (a file's first bytes): True at the pixel element, and (noted in `cut`) at an
    element whose value, or the header after it, runs past those bytes."""
    size, tell = len(fp.getbuffer()), fp.tell

    def stop(tag, vr, length) -> bool:
        if at_pixel_data(tag, vr, length):
            return True
        if length != 0xFFFFFFFF and tell() + length + 12 > size:
            cut.append(tell())
            return True
        return False

    return stop


def parse_header(fp: BinaryIO, specific_tags: list[int] | None = None, rest: BinaryIO | None = None) -> Header | None:
    """The dataset up to the pixel element and where that element's value lies in `fp`: pydicom's
    read of the file meta and of the dataset (``read_dataset`` with ``stop_when``; only `specific_tags`
    when given); None when the file is not read this way (no file meta, deflated, no pixel element, or
    `fp` ends before the pixel element's header). `rest`: the whole file, when `fp` (a BytesIO) holds only
    its first bytes: pydicom's read resumes there at the first element that runs past them (large
    overlays, LUTs), the two reads' elements joined (each element read once, as one read would)."""
    fp.seek(0)
    read_preamble(fp, force=True)
    meta = file_meta(fp)
    tsyntax = _transfer_syntax(meta)
    if not tsyntax:
        return None
    tsyntax = tsyntax if type(tsyntax) is UID else UID(tsyntax)
    if tsyntax.is_deflated:
        return None
    cut: list[int] = []
    stop = at_pixel_data if rest is None else _stop_at_pixels_or_cut(fp, cut)
    ds = read_dataset(fp, is_implicit_VR=tsyntax.is_implicit_VR, is_little_endian=tsyntax.is_little_endian,
                      stop_when=stop, specific_tags=specific_tags)
    if cut:  # pydicom stopped before an element past the first bytes: the rest is read from the file
        rest.seek(fp.tell())
        ds.update(read_dataset(rest, is_implicit_VR=tsyntax.is_implicit_VR,
                               is_little_endian=tsyntax.is_little_endian, stop_when=at_pixel_data,
                               specific_tags=specific_tags))
        fp = rest
    ds.file_meta = meta
    head = fp.read(8)
    if len(head) != 8:
        return None
    order = "<" if tsyntax.is_little_endian else ">"
    if tsyntax.is_implicit_VR:
        group, elem, length = struct.unpack(f"{order}HHL", head)
        vr = "OB"
    else:
        group, elem, raw_vr, _ = struct.unpack(f"{order}HH2sH", head)
        vr = raw_vr.decode("ascii", "replace")
        more = fp.read(4)
        if len(more) != 4:
            return None
        length = struct.unpack(f"{order}L", more)[0]
    keyword = PIXEL_TAGS.get((group, elem))
    if keyword is None:
        return None
    return Header(ds, tsyntax, keyword, vr, length, fp.tell())


def _element(keyword: str, vr: str, length: int, start: int, end: int, last8: bytes) -> PixelElement:
    """Where the value lies: `end` is the file's size, `last8` its last 8 bytes (an undefined-length value
    runs to the end of the file, less a sequence delimiter that ends it)."""
    undefined = length == 0xFFFFFFFF
    if undefined:
        if end - start >= 8 and last8 == _SEQ_DELIMITER:
            end -= 8
        present = end - start
    else:
        present = max(0, min(length, end - start))
    return PixelElement(keyword, vr, start, present, undefined)


def read_header(fp: BinaryIO, specific_tags: list[int] | None = None) -> tuple[Dataset, PixelElement] | None:
    """The dataset up to the pixel element (only `specific_tags` when given) and where that element's
    value lies; None when the file is not read this way (no file meta, deflated, no pixel element)."""
    found = parse_header(fp, specific_tags)
    if found is None:
        return None
    ds, _, keyword, vr, length, start = found
    end = fp.seek(0, os.SEEK_END)
    last8 = b""
    if length == 0xFFFFFFFF and end - start >= 8:
        fp.seek(end - 8)
        last8 = fp.read(8)
    return ds, _element(keyword, vr, length, start, end, last8)


def _extended_offsets(ds: Dataset) -> tuple[Any, Any] | None:
    """The Extended Offset Table (offsets, lengths), or None when absent or empty (pydicom ignores an
    empty one too)."""
    if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
        offsets, lengths = ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths
        if offsets and lengths:
            return offsets, lengths
    return None


class PixelReader:
    """One source's pixel data, read frame by frame: ``ds`` (the header; the caller's Dataset when one was
    given), ``spec`` (validated), ``frames`` (extents inside the element value) and the byte source."""

    def __init__(self, ds: Dataset, spec: PixelSpec, data, *, dataset_given: bool = False,
                 closer=None) -> None:
        self.ds, self.spec, self.data = ds, spec, data
        self.name = spec.source
        self.dataset_given = dataset_given  # ds holds the pixel element (a caller's or a full read)
        self.extended_offsets = _extended_offsets(ds)
        self._closer = closer
        self._frames: list[Frame] | None = None
        if spec.is_encapsulated:
            self._frames = encapsulated_extents(spec, data, extended_offsets=self.extended_offsets)
            if spec.transfer_syntax == RLELossless:
                check_rle_capacity(spec, self._frames)
            else:
                check_codestream_sizes(spec, data, self._frames)

    # -- lifetime
    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self) -> PixelReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def is_lazy(self) -> bool:
        """True when frame bytes come from the file on demand (not from memory)."""
        return isinstance(self.data, FileBytes)

    # -- extents
    @property
    def frames(self) -> list[Frame]:
        if self._frames is None:
            self._frames = native_extents(self.spec)
        return self._frames

    def frame(self, index: int) -> Frame:
        """The extents of frame `index` (native ones by arithmetic, without building the whole list)."""
        if self._frames is None and not self.spec.is_encapsulated:
            return native_frame(self.spec, index)
        frames = self.frames
        if not 0 <= index < len(frames):
            raise InvalidPixelData(f"{self.name}: frame {index} is missing: the Pixel Data holds {len(frames)}")
        return frames[index]

    def check_indices(self, indices) -> list[int]:
        """`indices` (ints, negative counting from the end, or a slice) as a list of frame numbers."""
        n = self.spec.number_of_frames
        if isinstance(indices, slice):
            return list(range(n))[indices]
        out = []
        for i in indices:
            if isinstance(i, (int, np.integer)) and not isinstance(i, bool) and -n <= i < 0:
                i += n  # Python's count from the end
            out.append(self.spec.check_index(i))
        return out

    # -- bytes
    def read_range(self, start: int, stop: int):
        """Bytes `start`..`stop` of the element value (a view when they are in memory)."""
        if isinstance(self.data, FileBytes):
            return self.data.read_array(start, stop - start)
        return memoryview(self.data).cast("B")[start:stop]

    def read_range_into(self, start: int, buffer) -> None:
        """Fill `buffer` with the element's bytes from `start` (straight from the file when lazy)."""
        view = memoryview(buffer).cast("B")
        if isinstance(self.data, FileBytes):
            self.data.readinto_at(start, view)
        else:
            view[:] = memoryview(self.data).cast("B")[start : start + len(view)]

    def frame_bytes(self, index: int):
        """The bytes of frame `index`: one read (fragments joined for a multi-fragment frame)."""
        frame = self.frame(index)
        if len(frame) == 1:
            return self.read_range(frame[0].offset, frame[0].end)
        return b"".join(bytes(self.read_range(e.offset, e.end)) for e in frame)

    def read_into(self, index: int, buffer) -> int:
        """Copy frame `index`'s bytes into `buffer` (e.g. pinned staging); returns the byte count."""
        view, pos = memoryview(buffer).cast("B"), 0
        for e in self.frame(index):
            self.read_range_into(e.offset, view[pos : pos + e.length])
            pos += e.length
        return pos

    def file_like(self) -> WindowFile:
        """A file-like window on the element value (what pydicom's decoders read frames from)."""
        return WindowFile(self, self.spec.pixel_nbytes)

    # -- datasets for code that wants one
    def dataset(self) -> Dataset:
        """A dataset holding the header and the whole pixel element (read now when lazy)."""
        if self.dataset_given:
            return self.ds
        ds = _copy_header(self.ds)
        value = bytes(self.read_range(0, self.spec.pixel_nbytes))
        _put_pixels(ds, self.spec, value, undefined=self.spec.is_encapsulated)
        return ds

    def subset(self, indices: list[int]) -> tuple[Dataset, PixelSpec]:
        """A dataset and spec holding only the encapsulated frames `indices` (in that order), one fragment
        each (pydicom then takes one fragment per frame): what a decoder that wants a dataset gets."""
        from pydicom.encaps import encapsulate

        spec = self.spec
        if not spec.is_encapsulated:
            raise TypeError("subset() is for encapsulated data; native frames are read by extent")
        ds = _copy_header(self.ds)
        for tag in (0x7FE00001, 0x7FE00002):
            if tag in ds:
                del ds[tag]
        ds.NumberOfFrames = len(indices)
        value = encapsulate([bytes(self.frame_bytes(i)) for i in indices], has_bot=False)
        _put_pixels(ds, spec, value, undefined=True)
        sub = replace(spec, number_of_frames=len(indices), declared_frames=len(indices), pixel_nbytes=len(value))
        return ds, sub


def _copy_header(ds: Dataset) -> Dataset:
    out = Dataset()
    for elem in ds:
        if elem.tag.group != 0x7FE0 or elem.tag in (0x7FE00001, 0x7FE00002):
            out.add(elem)
    out.file_meta = ds.file_meta
    out.set_original_encoding(ds.is_implicit_VR, ds.is_little_endian, getattr(ds, "original_character_set", None))
    if getattr(ds, "filename", None):
        out.filename = ds.filename
    return out


def _put_pixels(ds: Dataset, spec: PixelSpec, value: bytes, *, undefined: bool) -> None:
    tag = {"PixelData": 0x7FE00010, "FloatPixelData": 0x7FE00008, "DoubleFloatPixelData": 0x7FE00009}[spec.pixel_keyword]
    ds.add_new(tag, spec.pixel_vr, value)
    ds[tag].is_undefined_length = undefined


def _open_file(src, name: str):
    """(file object, closer) for a path or a caller's file-like (left open, position restored)."""
    if isinstance(src, (str, os.PathLike)):
        fp = open(src, "rb")
        return fp, fp.close
    pos = src.tell()
    return src, lambda: src.seek(pos)


_RETRY = object()


def _parsed(fp: BinaryIO, tags: list[int] | None, rest: BinaryIO | None = None) -> Header | None:
    """:func:`parse_header` of `fp`, None when it does not parse (the caller then reads the general way)."""
    try:
        return parse_header(fp, tags, rest)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception:
        return None


def _read_element(fd: int, offset: int, length: int) -> memoryview:
    """The element's bytes in one read (fewer when the file is shorter), into reused memory
    (gpudcm.host_memory) where the platform reads into a buffer: a file read batch after batch then
    costs no page faults."""
    if not hasattr(os, "preadv"):
        return memoryview(os.pread(fd, length, offset))
    buf = host_memory.empty(length, np.uint8)
    return memoryview(buf)[: os.preadv(fd, [buf], offset)]


def _lazy_path(path, name: str, tags: list[int] | None):
    """A reader over the file at `path` from one read of its first bytes (the header, parsed from
    memory; from the file when it runs past them) and one ``fstat`` (the size and modification time every
    later read is checked against): native pixel bytes stay in the file (read into the output when
    decoded); encapsulated ones of a small file are read now, in one read. ``_RETRY`` when the header does
    not parse this way: the caller then reads the file the general way."""
    fp = open(path, "rb", buffering=0)
    ok = False
    try:
        fd = fp.fileno()
        st = os.fstat(fd)
        size = st.st_size
        head = os.pread(fd, min(size, HEAD_BYTES), 0)
        # a header past the first read (overlays, LUTs): its rest read from the file, the values of elements
        # not asked for skipped by pydicom's reader, the pixel bytes left in the file
        with open(fd, "rb", buffering=HEAD_BYTES, closefd=False) if len(head) < size else nullcontext() as whole:
            found = _parsed(io.BytesIO(head), tags, whole)
            if found is None and whole is not None:  # not from the first bytes: all of it from the file
                found = _parsed(whole, tags)
        if found is None:
            return _RETRY
        ds, tsyntax, keyword, vr, length, start = found
        last8 = b""
        if length == 0xFFFFFFFF and size - start >= 8:
            last8 = os.pread(fd, 8, size - 8)
        elem = _element(keyword, vr, length, start, size, last8)
        ds.filename = os.fspath(path)
        spec = pixel_spec(ds, source=name, element=(elem.keyword, elem.vr, elem.length), transfer_syntax=tsyntax)
        end = elem.offset + elem.length
        if end <= len(head):  # the whole element came with the header
            data = memoryview(head)[elem.offset : end]
        elif spec.is_encapsulated and size <= SLURP_BYTES:  # codecs want bytes: one read of the element
            data = _read_element(fd, elem.offset, elem.length)
            if len(data) != elem.length or os.fstat(fd).st_size != size:
                raise InvalidPixelData(f"{name}: the file changed while it was being read "
                                       f"({len(data)} of {elem.length} pixel bytes read)")
        else:
            data = FileBytes(fp, elem.offset, elem.length, name, stamp=(size, st.st_mtime_ns), path=os.fspath(path))
        reader = PixelReader(ds, spec, data)  # encapsulated extents: item headers read through the open file
        if isinstance(data, FileBytes):
            data.detach()  # frame reads open the file by path: the reader holds no descriptor
        else:
            fp.close()
        ok = True
        return reader
    finally:
        if not ok:
            fp.close()


def _lazy(src: Source, name: str, tags: list[int] | None) -> PixelReader | None:
    """A reader over the file (its header: `tags` only, or all before the pixel element when None), or
    None when the header cannot be read that way."""
    if isinstance(src, (str, os.PathLike)):
        reader = _lazy_path(src, name, tags)
        if reader is not _RETRY:
            return reader
    fp, closer = _open_file(src, name)
    ok = False
    try:
        size = fp.seek(0, os.SEEK_END)
        memory = None
        if isinstance(fp, io.BytesIO):
            memory = fp.getbuffer()
        elif size <= SLURP_BYTES:
            fp.seek(0)
            memory = memoryview(fp.read())
            closer()
            closer = None
        parse_fp = io.BytesIO(memory) if memory is not None and not isinstance(fp, io.BytesIO) else fp
        try:
            found = read_header(parse_fp, tags)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            raise
        except Exception:  # anything odd: the caller falls back to a full dcmread
            found = None
        if found is None:
            return None
        ds, elem = found
        if isinstance(src, (str, os.PathLike)):
            ds.filename = os.fspath(src)
        if memory is not None:
            data = memory[elem.offset : elem.offset + elem.length]
        else:
            data = FileBytes(fp, elem.offset, elem.length, name)
        spec = pixel_spec(ds, source=name, element=(elem.keyword, elem.vr, elem.length))
        reader = PixelReader(ds, spec, data, closer=closer)
        ok = True
        return reader
    finally:
        if not ok and closer is not None:
            closer()


def from_dataset(ds: Dataset, name: str) -> PixelReader:
    """A reader over a dataset that holds its pixel element (the caller's, used as it is)."""
    spec = pixel_spec(ds, source=name)
    return PixelReader(ds, spec, ds[spec.pixel_keyword].value, dataset_given=True)


def open_pixels(src: Source | PixelReader, *, full_header: bool = False, tags: Sequence[int] = ()) -> PixelReader:
    """Open `src` (path, file-like, bytes, Dataset) for frame-level reads; validated, extents known.

    The header and the pixel element's position are read first (no pixel bytes); a full ``dcmread`` is
    the second opinion where that fails or does not validate (deflated files, an encoding that contradicts
    the file meta). ``full_header=True`` keeps every element before the pixel data in ``reader.ds`` (for
    windowing, LUTs, functional groups); by default only the pixel module is read, plus the elements
    `tags` names (e.g. Pixel Spacing for a loader: one parse, not two). Close the reader (or
    use it as a context manager) to close a file it opened."""
    if isinstance(src, PixelReader):
        return src
    name = source_name(src)
    if isinstance(src, Dataset):
        return from_dataset(src, name)
    given = src
    if isinstance(src, (bytes, bytearray, memoryview)):
        src = io.BytesIO(src)
    try:
        reader = _lazy(src, name, None if full_header else HEADER_TAGS + [t for t in tags if t not in HEADER_TAGS])
    except GpudcmError:
        reader = None
    if reader is not None:
        return reader
    ds, _ = load_dataset(given)
    return from_dataset(ds, name)


@contextmanager
def reading(src: Source | PixelReader) -> Iterator[PixelReader]:
    """:func:`open_pixels` for one call: closes what it opened, leaves a caller's reader open."""
    if isinstance(src, PixelReader):
        yield src
        return
    with open_pixels(src) as reader:
        yield reader
