"""The one place the slide code reads and decodes tiles: frame bytes of an instance, and a batch of them
decoded into one preallocated output (pydicom's values: colour converted as pydicom converts).

Reading goes through gpudcm's frame extents; decoding on the CPU uses the fastest installed codec that
gives pydicom's values (imagecodecs' libjpeg-turbo / OpenJPEG, which release the GIL, on threads; pydicom's
own decoder for everything else), on the device the batched nvJPEG / nvImageCodec path of
:mod:`gpudcm.cuda.jpeg_path` (behind `ops`, so CI drives it with the host stand-ins).
"""

from __future__ import annotations

import operator
import threading
from dataclasses import replace
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pydicom.uid import UID

from ..codecs.decode import ybr_to_rgb
from ..codecs.frame_classes import FrameClasses
from ..errors import DecodeError, GpudcmError
from ..routing import J2K_SYNTAXES, JPEG_SYNTAXES
from ..spec import PixelSpec

_JPEG_8BIT = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"})


class FrameReader:
    """The pixel element of one instance file, opened with gpudcm's lazy reader on first use (thread-safe):
    the header and frame extents are read once, each tile's bytes only when asked for."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._opened: Any = None
        self._classes: FrameClasses | None = None

    def __getstate__(self) -> dict:  # DataLoader workers started with spawn: reopened there on first use
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def _open(self):
        with self._lock:
            if self._opened is None:
                from ..reader import open_pixels

                self._opened = open_pixels(self.path)
            return self._opened

    @property
    def spec(self) -> PixelSpec:
        return self._open().spec

    @property
    def classes(self) -> FrameClasses:
        """The registry's decision per tile header of this instance, kept across reads (tiles of one
        encoder share a header: each class is parsed once)."""
        if self._classes is None:
            self._classes = FrameClasses(self.spec)
        return self._classes

    def subset(self, indices: Sequence[int]) -> tuple[Any, PixelSpec]:
        """The header with just the encapsulated frames `indices` (the lazy reader's subset, offset tables
        dropped), and its spec: one multi-frame source for gpudcm's batched device path."""
        return self._open().subset(list(indices))

    def tile_bytes(self, indices: Sequence[int]) -> TileBytes:
        """The bytes of frames `indices` (0-based within this file), in that order, read when first asked
        for (see :class:`TileBytes`)."""
        reader = self._open()
        spec, n = reader.spec, min(len(reader.frames), reader.spec.number_of_frames)
        for i in indices:
            if not 0 <= i < n:
                raise GpudcmError(f"{spec.source}: frame {i} is not in the file ({len(reader.frames)} frames)")
        return TileBytes(reader, indices)

    def read(self, indices: Sequence[int]) -> list[bytes]:
        """The bytes of frames `indices` (0-based within this file), in that order, read now."""
        return [bytes(b) for b in self.tile_bytes(indices)]


READ_GAP = 4096  # bytes between two frames' data read through rather than asked for apart (item tags: 8)
READ_SPAN = 256 << 10  # the most one read takes (about a row of 8 colour tiles of 256 x 256)


_first = operator.itemgetter(0)


class TileBytes(Sequence):
    """The encoded bytes of frames `indices` of one pixel reader (memoryviews), read run by run: frames
    whose data lie at most READ_GAP apart (the tiles of a region's row in a TILED_FULL file) are read in
    one go, up to READ_SPAN, the first time one of them is asked for, from whichever decoding thread asks
    (so the reads overlap the other threads' decodes instead of coming before all of them); a frame of
    several fragments is a run of its own. Memory: the frames asked for, plus the gaps read through."""

    def __init__(self, reader: Any, indices: Sequence[int]) -> None:
        self._reader = reader
        frames = reader.frames
        # (start, end, position, frame index); end None: several fragments
        spans = sorted(((f[0].offset, f[0].offset + f[0].length if len(f) == 1 else None, j, i)
                        for j, i in enumerate(indices) for f in (frames[i],)), key=_first)
        self._runs: list[list[tuple]] = []
        end = 0  # where the last run's data end (a frame asked for twice overlaps itself)
        for span in spans:
            run = self._runs[-1] if self._runs else None
            if (run is not None and span[1] is not None and run[-1][1] is not None
                    and span[0] - end <= READ_GAP and max(end, span[1]) - run[0][0] <= READ_SPAN):
                run.append(span)
            else:
                run = [span]
                self._runs.append(run)
                end = 0
            end = max(end, span[1] or 0)
        self._run_of = [0] * len(indices)
        for r, run in enumerate(self._runs):
            for span in run:
                self._run_of[span[2]] = r
        self._got: list[dict | None] = [None] * len(self._runs)
        self._locks = [threading.Lock() for _ in self._runs]

    def __len__(self) -> int:
        return len(self._run_of)

    def __getitem__(self, j: int):  # type: ignore[override]
        r = self._run_of[j]
        got = self._got[r]
        if got is None:
            with self._locks[r]:
                got = self._got[r]
                if got is None:
                    got = self._got[r] = self._read(self._runs[r])
        return got[j]

    def _read(self, run: list[tuple]) -> dict:
        if len(run) == 1:
            return {run[0][2]: memoryview(self._reader.frame_bytes(run[0][3])).cast("B")}
        start = run[0][0]
        data = memoryview(self._reader.read_range(start, max(s[1] for s in run))).cast("B")
        return {j: data[a - start : b - start] for a, b, j, _ in run}


def read_tile_bytes(reader: FrameReader, frame_indices: Sequence[int]) -> TileBytes:
    """The encoded bytes of the frames `frame_indices` of one instance (read as they are asked for)."""
    return reader.tile_bytes(frame_indices)


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:
        return None
    return imagecodecs


def _pixel_options(spec: PixelSpec) -> dict:
    return dict(rows=spec.rows, columns=spec.columns, samples_per_pixel=spec.samples_per_pixel,
                bits_allocated=spec.bits_allocated, bits_stored=spec.bits_stored,
                pixel_representation=spec.pixel_representation, planar_configuration=spec.planar_configuration,
                photometric_interpretation=spec.photometric_interpretation, number_of_frames=1,
                pixel_keyword=spec.pixel_keyword, pixel_vr=spec.pixel_vr)


TileDecoder = Callable[[bytes, "np.ndarray | None"], np.ndarray]


def cpu_tile_decoder(spec: PixelSpec, *, exact: bool | None = None,
                     classes: FrameClasses | None = None) -> tuple[TileDecoder, bool]:
    """``decode(data, out)``: one tile's bytes decoded, shaped ``spec.frame_shape``, into `out` (a
    C-contiguous array of that shape and dtype) where the codec writes there itself, else a new array;
    and whether its output is already colour converted (else: pydicom's raw values, converted after).

    - ``exact=None`` (default): the CPU codec registry, tile by tile from its JPEG header
      (gpudcm.codecs): libjpeg-turbo where the tile's class is proven within the lossy tolerance of
      pydicom's decode (8-bit grey, stored RGB 4:4:4), pydicom's plugin for the rest (YCbCr colour,
      subsampled chroma, 12-bit); every other syntax its fastest exact backend. `classes` (default: a
      new one) remembers the decision per tile header.
    - ``exact=True``: pydicom's own plugin for every lossy JPEG tile (pydicom's values exactly).
    - ``exact=False``: lossy 8-bit JPEG with libjpeg-turbo and its own YCbCr -> RGB, as wsidicom decodes
      (wsidicom's values: up to 9 off pydicom's on subsampled chroma, 3 on 4:4:4 YCbCr)."""
    ts = str(spec.transfer_syntax)
    ic = _imagecodecs()
    if exact is False and ic is not None and ts in _JPEG_8BIT and spec.bits_allocated == 8 and ic.JPEG8.available:
        rgb = spec.samples_per_pixel == 3 and spec.photometric_interpretation in ("YBR_FULL", "YBR_FULL_422")
        # stored RGB stays as stored (as wsidicom asks libjpeg-turbo too)
        kw = {"colorspace": "RGB", "outcolorspace": "RGB"} if spec.photometric_interpretation == "RGB" else {}

        def jpeg(data: bytes, out: np.ndarray | None) -> np.ndarray:
            if out is not None:  # written there (imagecodecs raises unless the frame fills it exactly)
                ic.jpeg8_decode(data, out=out, **kw)
                return out
            return ic.jpeg8_decode(data, **kw).reshape(spec.frame_shape)

        return jpeg, rgb
    from .. import codecs

    if exact and ts in _JPEG_8BIT:
        from ..codecs.pydicom_plugins import decode as pydicom_decode

        def plugin(data: bytes, out: np.ndarray | None) -> np.ndarray:  # pydicom's own decode of the tile
            return pydicom_decode(data, spec, raw=True)

        return plugin, False

    classes = FrameClasses(spec) if classes is None else classes

    def registry(data: bytes, out: np.ndarray | None) -> np.ndarray:
        info, backend = classes.decide(data)  # the backend's decode_into writes `out` itself where it can
        return codecs.decode_frame(spec, data, raw=True, out=out, info=info, backend=backend)

    return registry, False


def conformed_photometric(spec: PixelSpec, first_frame: bytes | None) -> str:
    """The photometric interpretation pydicom gives the decoded frames of `spec`."""
    from ..cuda.jpeg_path import conformed_photometric as jpeg_pi

    if first_frame is not None and str(spec.transfer_syntax) in JPEG_SYNTAXES | J2K_SYNTAXES:
        return jpeg_pi(spec, first_frame)
    return spec.photometric_interpretation


Sink = Callable[[int, np.ndarray], None]
Direct = Callable[[int], "np.ndarray | None"]


def _decode_cpu(spec: PixelSpec, frames: Sequence, sink: Sink | None, threads: int | None,
                exact: bool | None, to_rgb: bool, out: np.ndarray | None = None,
                classes: FrameClasses | None = None, direct: Direct | None = None) -> None:
    """Decode `frames` on the thread pool (``threads=1``: here, serially): straight into ``out[k]`` (a
    C-contiguous NumPy array of frames) when given, else each tile handed to ``sink(k, tile)`` in the
    thread that decoded it (the tile may be that thread's scratch buffer, reused for its next tile: the
    sink copies what it keeps); `to_rgb` converts YBR tiles as pydicom does. With a sink, ``direct(k)``
    (optional) may give a C-contiguous ``spec.frame_shape`` view of the caller's output that tile k fills
    exactly: the tile is decoded there (or copied there) before the sink sees it."""
    decode, converted = cpu_tile_decoder(spec, exact=exact, classes=classes)
    convert = to_rgb and not converted
    scratch = threading.local()

    def one(k: int) -> None:
        if out is not None:
            target = out[k]
        else:
            target = direct(k) if direct is not None else None
        placed = target is not None  # the tile's own place in the output: decoded (or copied) there
        if not placed:
            target = getattr(scratch, "buf", None)
            if target is None:
                target = scratch.buf = np.empty(spec.frame_shape, spec.dtype)
        data = frames[k]  # read here, on first use of its run (a read error is not a decode error)
        try:
            tile = decode(data, target)
        except GpudcmError:
            raise
        except Exception as exc:
            raise DecodeError(f"{UID(str(spec.transfer_syntax)).name} tile decode failed: {type(exc).__name__}: {exc}",
                              source=spec.source, frame=k) from exc
        if convert:  # in place: `tile` is this thread's buffer, its place in the output, or a fresh array
            tile = ybr_to_rgb(tile)
        if placed and tile is not target:
            target[...] = tile
        if out is None:
            sink(k, tile)

    from ..codecs import thread_map

    thread_map(one, range(len(frames)), 1 if len(frames) < 2 else threads)


def _store(out) -> Sink:
    def sink(k: int, tile: np.ndarray) -> None:
        out[k] = tile

    return sink


def decode_tiles(reader: FrameReader, indices: Sequence[int], device: str, out, *, ops=None, decoders=None,
                 threads: int | None = None, raw: bool = False, exact: bool | None = None, sink: Sink | None = None,
                 infos: list | None = None, direct: Direct | None = None):
    """Read and decode the frames `indices` (0-based in the file) of the instance behind `reader` into
    `out` (shape (n, *spec.frame_shape), NumPy for ``device="cpu"``, the device array module otherwise)
    and return it with pydicom's values: YBR converted to RGB as pydicom converts (``raw=True`` keeps the
    stored components).

    On the CPU a `sink` (``sink(k, tile)``, called from the decoding thread) may take each tile instead
    of `out` (a region reader pastes tiles where they go without a second pass), and ``direct(k)`` give a
    place in the caller's output that tile k fills exactly (decoded straight there). On the device the tiles
    go through gpudcm's JPEG-family device path as one multi-frame source (nvJPEG / nvImageCodec batches,
    per-frame CPU fallback) behind `ops` (default: a CupyOps leased from the pool) and `decoders` (default: the real
    libraries). `exact` picks the CPU's lossy JPEG decoder (see :func:`cpu_tile_decoder`).
    `infos` (a list) receives the device path's :class:`gpudcm.routing.FrameInfo` per frame (which backend)."""
    spec = reader.spec
    if not indices:
        return out
    if device != "cpu" and ops is None:  # a pooled CupyOps for this call (gpudcm/cuda/ops.py lease_ops)
        from ..cuda.ops import lease_ops

        with lease_ops() as leased:
            return decode_tiles(reader, indices, device, out, ops=leased, decoders=decoders, threads=threads,
                                raw=raw, exact=exact, sink=sink, infos=infos, direct=direct)
    if device == "cpu" or str(spec.transfer_syntax) not in JPEG_SYNTAXES | J2K_SYNTAXES:
        frames = read_tile_bytes(reader, indices)
    if device == "cpu":
        # (grey tiles are never YBR: their first tile is not read here, before the threads start)
        to_rgb = not raw and spec.samples_per_pixel == 3 and conformed_photometric(spec, frames[0]) in ("YBR_FULL", "YBR_FULL_422")
        into = sink is None and isinstance(out, np.ndarray) and out.flags.c_contiguous
        _decode_cpu(spec, frames, None if into else sink or _store(out), threads, exact, to_rgb,
                    out if into else None, reader.classes, None if sink is None else direct)
        return out
    if str(spec.transfer_syntax) in JPEG_SYNTAXES | J2K_SYNTAXES:
        from ..cuda.jpeg_path import decode_jpeg_family

        ds, sub = reader.subset(list(indices))
        # exact=False asks for libjpeg-turbo's values (as wsidicom decodes): its chroma filter on the device too
        arr, frame_infos = decode_jpeg_family(ds, sub, index=None, raw=raw, as_rgb=True, ops=ops, env=ops.jpeg_env,
                                              decoders=decoders or ops.jpeg_decoders,
                                              upsampler="turbo" if exact is False else None)
        if infos is not None:
            infos += [replace(f, frame=indices[f.frame]) for f in frame_infos]  # frame numbers of the file
        out[...] = arr.reshape(out.shape)
        return out
    host = np.empty(out.shape, out.dtype)  # native / RLE tiles: decoded here, one copy to the device
    to_rgb = not raw and spec.photometric_interpretation in ("YBR_FULL", "YBR_FULL_422")
    _decode_cpu(spec, frames, None, threads, None, to_rgb, host, reader.classes)
    out[...] = ops.xp.asarray(host)
    return out
