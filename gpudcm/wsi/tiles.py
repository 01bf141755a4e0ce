"""The one place the slide code reads and decodes tiles: frame bytes of an instance, and a batch of them
decoded into one preallocated output (pydicom's values: colour converted as pydicom converts).

Reading goes through gpudcm's frame extents; decoding on the CPU uses the fastest installed codec that
gives pydicom's values (imagecodecs' libjpeg-turbo / OpenJPEG, which release the GIL, on threads; pydicom's
own decoder for everything else), on the device the batched nvJPEG / nvImageCodec path of
:mod:`gpudcm.cuda.jpeg_path` (behind `ops`, so CI drives it with the host stand-ins).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels.processing import convert_color_space
from pydicom.uid import UID

from .. import cpu
from ..errors import DecodeError, GpudcmError
from ..frames import frame_bytes, frame_extents
from ..jpeg_markers import parse_j2k
from ..routing import J2K_SYNTAXES, JPEG_SYNTAXES
from ..spec import PixelSpec

_JPEG_8BIT = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"})


class FrameReader:
    """The pixel element of one instance file, parsed and validated on first use (thread-safe)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._opened: tuple[Any, PixelSpec, list] | None = None

    def _open(self) -> tuple[Any, PixelSpec, list]:
        with self._lock:
            if self._opened is None:
                from ..api import _extended_offsets, _prepare

                ds, spec = _prepare(self.path)
                frames = frame_extents(spec, ds[spec.pixel_keyword].value, extended_offsets=_extended_offsets(ds))
                self._opened = (ds, spec, frames)
            return self._opened

    @property
    def spec(self) -> PixelSpec:
        return self._open()[1]

    def read(self, indices: Sequence[int]) -> list[bytes]:
        """The bytes of frames `indices` (0-based within this file)."""
        ds, spec, frames = self._open()
        buffer = ds[spec.pixel_keyword].value
        out = []
        for i in indices:
            if not 0 <= i < min(len(frames), spec.number_of_frames):
                raise GpudcmError(f"{spec.source}: frame {i} is not in the file ({len(frames)} frames)")
            out.append(bytes(frame_bytes(buffer, frames[i])))
        return out


def read_tile_bytes(reader: FrameReader, frame_indices: Sequence[int]) -> list[bytes]:
    """The encoded bytes of the frames `frame_indices` of one instance."""
    return reader.read(frame_indices)


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


def cpu_tile_decoder(spec: PixelSpec) -> Callable[[bytes], np.ndarray]:
    """A function decoding one tile's bytes to pydicom's raw values (no colour conversion), shaped
    ``spec.frame_shape``: imagecodecs for 8-bit JPEG and for JPEG 2000 / HTJ2K (the same libraries'
    output pydicom's plugins give), else pydicom's decoder on the single frame."""
    ts = str(spec.transfer_syntax)
    ic = _imagecodecs()
    if ic is not None and ts in _JPEG_8BIT and spec.bits_allocated == 8 and ic.JPEG8.available:
        space = "GRAY" if spec.samples_per_pixel == 1 else "YCBCR"

        def jpeg(data: bytes) -> np.ndarray:
            # the stored components as they are: pydicom converts YBR after the decode
            return ic.jpeg8_decode(data, colorspace=space, outcolorspace=space).reshape(spec.frame_shape)

        return jpeg
    if ic is not None and ts in J2K_SYNTAXES and ic.JPEG2K.available:
        from ..cuda.j2k import pydicom_j2k_finish

        def j2k(data: bytes) -> np.ndarray:
            raw = ic.jpeg2k_decode(data)
            return pydicom_j2k_finish(raw.reshape(spec.frame_shape), parse_j2k(data[:65536]), spec)

        return j2k
    decoder = cpu.decoder_for(spec)
    opts = _pixel_options(spec)

    def generic(data: bytes) -> np.ndarray:
        src = encapsulate([data]) if spec.is_encapsulated else data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            arr, _ = decoder.as_array(src, raw=True, **opts)
        return cpu.native_order(arr).reshape(spec.frame_shape)

    return generic


def conformed_photometric(spec: PixelSpec, first_frame: bytes | None) -> str:
    """The photometric interpretation pydicom gives the decoded frames of `spec`."""
    from ..cuda.jpeg_path import conformed_photometric as jpeg_pi

    if first_frame is not None and str(spec.transfer_syntax) in JPEG_SYNTAXES | J2K_SYNTAXES:
        return jpeg_pi(spec, first_frame)
    return spec.photometric_interpretation


_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1), thread_name_prefix="gpudcm-tiles")
    return _pool


def _decode_cpu(spec: PixelSpec, frames: Sequence[bytes], out: np.ndarray, threads: int | None) -> None:
    decode = cpu_tile_decoder(spec)

    def one(k: int) -> None:
        try:
            out[k] = decode(frames[k])
        except GpudcmError:
            raise
        except Exception as exc:
            raise DecodeError(f"{UID(str(spec.transfer_syntax)).name} tile decode failed: {type(exc).__name__}: {exc}",
                              source=spec.source, frame=k) from exc

    if threads == 1 or len(frames) < 2:
        for k in range(len(frames)):
            one(k)
        return
    list(_threads().map(one, range(len(frames))))


def decode_tiles(spec: PixelSpec, frames: Sequence[bytes], device: str, out, *, ops=None, decoders=None,
                 threads: int | None = None, raw: bool = False):
    """Decode the tiles `frames` (one instance's encoded frames) into `out` (shape (n, *spec.frame_shape),
    NumPy for ``device="cpu"``, the device array module otherwise) and return it with pydicom's values:
    YBR converted to RGB as pydicom converts (``raw=True`` keeps the stored components).

    On the device, `ops` (default: this thread's CupyOps) and `decoders` (default: nvJPEG and
    nvImageCodec) decode the GPU-routable frames in one batch per backend; the rest decode on the CPU."""
    if not frames:
        return out
    pi = conformed_photometric(spec, frames[0])
    if device == "cpu":
        _decode_cpu(spec, frames, out, threads)
        if not raw and pi in ("YBR_FULL", "YBR_FULL_422"):
            out[...] = convert_color_space(out, "YBR_FULL", "RGB")
        return out
    from ..cuda.colour import ybr_to_rgb
    from ..cuda.jpeg_path import decode_frames

    if ops is None:
        from ..cuda.ops import thread_ops

        ops = thread_ops()
    one = cpu_tile_decoder(spec)
    if str(spec.transfer_syntax) in JPEG_SYNTAXES | J2K_SYNTAXES:
        decode_frames(spec, list(frames), out, ops=ops, env=ops.jpeg_env, decoders=decoders or ops.jpeg_decoders,
                      cpu_frame=lambda k: one(frames[k]))
    else:
        host = np.empty(out.shape, out.dtype)
        _decode_cpu(spec, frames, host, threads)
        out[...] = ops.xp.asarray(host)
    if not raw and pi in ("YBR_FULL", "YBR_FULL_422"):
        out = ybr_to_rgb(out, launcher=ops.colour_launcher, xp=ops.xp)
    return out
