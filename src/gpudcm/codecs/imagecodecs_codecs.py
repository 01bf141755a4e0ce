"""imagecodecs backends (libjpeg-turbo, CharLS, OpenJPEG, OpenJPH, its DICOM RLE); all release the GIL.

Each ``*_decode(data, spec, info)`` returns the codec's samples shaped (rows, cols[, samples]), colour
by pixel, in the container pydicom's plugin would use (so pydicom's rules, applied afterwards, see the
same bits); ``*_reason_not(spec, info)`` says why a frame is left to the next backend.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from .. import host_memory
from ..spec import PixelSpec
from . import pydicom_plugins
from .parallel import codec_threads


@lru_cache(maxsize=None)
def _codec(name: str) -> Any:
    """The imagecodecs codec class (``JPEG8``, ``JPEGLS`` ...) when the build has it, else None."""
    try:
        import imagecodecs
    except ImportError:
        return None
    codec = getattr(imagecodecs, name.upper(), None)
    return codec if codec is not None and getattr(codec, "available", False) else None


def has(name: str) -> Callable[[str], bool]:
    """``available(transfer_syntax)`` for the registry: whether this imagecodecs build has codec `name`."""
    return lambda transfer_syntax: _codec(name) is not None


def _ic():
    import imagecodecs

    return imagecodecs


def container_size(precision: int) -> int:
    """Bytes a sample of `precision` bits takes in the codec's (and pydicom's plugin's) output."""
    return 1 if precision <= 8 else 2 if precision <= 16 else 4


def _shape_check(arr: np.ndarray, spec: PixelSpec) -> np.ndarray:
    if arr.shape[:2] != (spec.rows, spec.columns) or arr.size != spec.frame_pixels:
        raise ValueError(f"the codestream decodes to {arr.shape}, not {spec.frame_shape}")
    return arr.reshape(spec.frame_shape)


# ------------------------------------------------------------------------------------------ JPEG (ISO 10918)

def jpeg_reason_not(spec: PixelSpec, info: dict) -> str | None:
    if not info or "precision" not in info or info.get("markers") is None:
        return "no SOF header found"
    markers = info["markers"]
    if markers.sof not in (0xC0, 0xC1, 0xC3):
        return f"SOF {markers.sof:#x} (libjpeg-turbo is used for Huffman baseline, extended and lossless only)"
    if markers.sof != 0xC3:
        scan = markers.scans[0] if markers.scans else None
        if scan is None or (scan.ss, scan.se, scan.ah, scan.al) != (0, 63, 0, 0):
            return "a sequential scan that is not Ss=0, Se=63 (pydicom's plugin rejects it)"
        why = lossy_jpeg_not_turbo(spec, info)
        if why is not None:
            return why
    if info.get("components") != spec.samples_per_pixel:
        return f"{info.get('components')} components in the codestream, Samples per Pixel {spec.samples_per_pixel}"
    if container_size(info["precision"]) != spec.itemsize:
        # pydicom reads libjpeg's output at Bits Allocated: its plugin decides (and reports any mismatch)
        return f"{info['precision']}-bit samples in {spec.bits_allocated}-bit Bits Allocated"
    return None


def lossy_jpeg_not_turbo(spec: PixelSpec, info: dict) -> str | None:
    """Why libjpeg-turbo may not decode this lossy (DCT) frame in place of pydicom's default plugin
    (pylibjpeg-libjpeg: Thomas Richter's libjpeg), None when its frame class is proven within the lossy
    tolerance (gpudcm.tolerance) of it: every sample within 2, on the corpus and on generated files of
    every class (tests/test_lossy_jpeg.py).

    Proven (8-bit samples only): one component, and three components without chroma subsampling that
    pydicom returns as stored (conformed Photometric Interpretation RGB: no YCbCr -> RGB conversion). Both
    decoders then give the accurate IDCT rounded to integers (each within 0.6 of the exact IDCT), so
    they differ by at most 1. Not proven, so pydicom's plugin decodes them:

    - 12-bit samples: libjpeg-turbo's 12-bit IDCT keeps fewer fraction bits; up to 3 on noisy frames;
    - subsampled chroma (4:2:2, 4:2:0, 4:1:1; 4:4:0 untested): Richter's upsampler computes output column
      8k+1 of every block from the already upsampled column 8k+2 instead of input sample 4k+1 (it filters
      a row in place, upsampling/upsampler.cpp ``HorizontalFilterCore<2>``); libjpeg-turbo's triangle
      filter does not, so they differ by (c[4k] - c[4k+1]) / 16: 3 on color3d_jpeg_baseline.dcm, 28 on
      noisy chroma;
    - YCbCr converted to RGB (4:4:4 too): the two decoders' YCbCr differ by 1 where the exact IDCT lies
      near .5, and pydicom's conversion (B = Y + 1.772 Cb') turns a 1 in Y and in Cb into 3.
    """
    markers = info.get("markers")
    if markers is None:
        return "no SOF header found"
    if markers.precision != 8:
        return f"lossy {markers.precision}-bit JPEG: libjpeg-turbo's {markers.precision}-bit IDCT is up to 3 off pydicom's decode"
    if len(markers.components) == 1:
        return None
    if len({(c.h, c.v) for c in markers.components}) != 1:
        return (f"lossy {markers.subsampling} chroma: pydicom's libjpeg upsamples column 8k+1 from its own "
                "output (up to 28 off libjpeg-turbo's triangle filter)")
    if pydicom_plugins.conformed_photometric(spec, info) != "RGB":
        return ("lossy YCbCr colour converted to RGB: libjpeg-turbo's YCbCr is 1 off pydicom's decode "
                "where the IDCT rounds differently, up to 3 after the YCbCr -> RGB conversion")
    return None


def _as_stored(spec: PixelSpec) -> dict:
    # no colour conversion, as pydicom's plugins decode: the components as stored (YCbCr stays
    # YCbCr and is converted to RGB by pydicom's rule afterwards)
    if spec.samples_per_pixel == 3:
        cs = _ic().JPEG8.CS.YCbCr
        return {"colorspace": cs, "outcolorspace": cs}
    return {}


def jpeg_decode(data, spec: PixelSpec, info: dict) -> np.ndarray:
    return _shape_check(_ic().jpeg8_decode(data, **_as_stored(spec)), spec)


def jpeg_decode_into(data, spec: PixelSpec, info: dict, out: np.ndarray) -> bool:
    """Decode straight into `out` (one frame) when it is C-contiguous, ``spec.frame_shape`` and the unsigned
    container libjpeg-turbo writes for the frame's precision (True: the stored samples, before pydicom's
    rules); False otherwise (:func:`jpeg_decode` then runs). A frame of another size raises (imagecodecs
    checks `out` against the SOF), as :func:`jpeg_decode`'s shape check would."""
    if (not out.flags.c_contiguous or out.shape != spec.frame_shape or out.dtype.kind != "u"
            or out.dtype.itemsize != container_size(info.get("precision", 0))):
        return False
    _ic().jpeg8_decode(data, out=out, **_as_stored(spec))
    return True


# ------------------------------------------------------------------------------------------ JPEG-LS

def jpegls_reason_not(spec: PixelSpec, info: dict) -> str | None:
    if not info or "precision" not in info:
        return "no SOF-55 header found"
    if info.get("components") != spec.samples_per_pixel:
        return f"{info.get('components')} components in the codestream, Samples per Pixel {spec.samples_per_pixel}"
    if container_size(info["precision"]) > spec.itemsize:
        return f"{info['precision']}-bit samples do not fit {spec.bits_allocated}-bit Bits Allocated"
    return None


def jpegls_decode(data, spec: PixelSpec, info: dict) -> np.ndarray:
    # (rows, cols, samples) for every interleave mode (a strided view of the planes for ILV 0)
    return _shape_check(_ic().jpegls_decode(data), spec)


# ------------------------------------------------------------------------------------------ JPEG 2000

def _j2k_reason_not(spec: PixelSpec, info: dict) -> str | None:
    if not info or "precision" not in info:
        return "no SIZ header found (or a JP2 file)"
    if info.get("jp2") and info.get("jp2_changes", "not read") is not None:
        # imagecodecs converts what OpenJPEG reports (sYCC, an ICC profile); pydicom's plugin does not
        return f"a JP2 file with {info.get('jp2_changes', 'a header not read')}"
    if info.get("subsampled"):
        # imagecodecs converts subsampled 3-component sYCC to RGB itself (OpenJPEG's color_sycc_to_rgb)
        return "subsampled components"
    if container_size(info["precision"]) > spec.itemsize:
        return f"{info['precision']}-bit samples do not fit {spec.bits_allocated}-bit Bits Allocated"
    return None


j2k_reason_not = _j2k_reason_not


def htj2k_reason_not(spec: PixelSpec, info: dict) -> str | None:
    return _j2k_reason_not(spec, info)


def _j2k_container(arr: np.ndarray, info: dict) -> np.ndarray:
    size = container_size(info["precision"])
    if arr.dtype.itemsize != size:
        arr = arr.astype(f"{'iu'[arr.dtype.kind == 'u']}{size}")
    return arr


J2K_THREAD_BYTES = 48 << 10


def j2k_decode(data, spec: PixelSpec, info: dict) -> np.ndarray:
    # OpenJPEG's threads give its single-thread values (the parity suite checks); they cost ~1 ms to start,
    # so only a frame of J2K_THREAD_BYTES or more gets them (benchmarks/per_file.py: smaller ones got slower)
    threads = codec_threads() if len(data) >= J2K_THREAD_BYTES else 1
    arr = _ic().jpeg2k_decode(data, numthreads=threads) if threads > 1 else _ic().jpeg2k_decode(data)
    return _shape_check(_j2k_container(arr, info), spec)


def htj2k_decode(data, spec: PixelSpec, info: dict) -> np.ndarray:
    return _shape_check(_j2k_container(_ic().htj2k_decode(data), info), spec)


# ------------------------------------------------------------------------------------------ RLE Lossless

def rle_reason_not(spec: PixelSpec, info: Any) -> str | None:
    if spec.bits_allocated not in (8, 16, 32):
        return f"Bits Allocated {spec.bits_allocated}"
    return None


def _check_rle_header(data, spec: PixelSpec) -> tuple[int, ...]:
    """The segment table says what pydicom's decoder checks: the segment count, offsets inside the frame.
    Returns the offsets."""
    if len(data) < 64:
        raise ValueError("the RLE header is cut off")
    header = struct.unpack_from("<16L", data, 0)
    want = spec.samples_per_pixel * spec.itemsize
    if header[0] != want:
        raise ValueError(f"the RLE header lists {header[0]} segments, {want} expected")
    offsets = header[1 : 1 + want]
    if offsets[0] != 64 or any(b <= a for a, b in zip(offsets, offsets[1:])) or offsets[-1] >= len(data):
        raise ValueError(f"the RLE segment offsets {offsets} are not increasing inside the frame")
    return offsets


_scratch = threading.local()


def _segment_buffer(n: int) -> np.ndarray:
    """This thread's reused buffer of at least `n` bytes for decoded segments (fresh memory per frame costs
    page faults; PackBits into a given buffer also skips imagecodecs' sizing pass, ~1.5x faster). Mapped
    on its own, not from malloc's heap, where a long-lived block would keep the freed memory above it from
    going back to the system (measured: +9 MB peak RSS over a chunked job)."""
    buf = getattr(_scratch, "buf", None)
    if buf is None or buf.size < n:
        buf = _scratch.buf = np.frombuffer(host_memory.anonymous(n), dtype=np.uint8)
    return buf


def _rle_by_segment(data, spec: PixelSpec, offsets: tuple[int, ...], out: np.ndarray | None = None) -> np.ndarray | None:
    """One sample a pixel: each segment through imagecodecs' PackBits decoder and the bytes put together,
    most significant segment first, with NumPy (faster than its DICOM RLE decoder's interleave), into `out`
    (unsigned, ``spec.itemsize`` bytes a sample, Rows x Columns) when given. None unless every segment
    decodes to exactly Rows x Columns bytes (then its DICOM RLE decoder decides; an 8-bit `out` may hold
    part of the frame)."""
    plane = spec.rows * spec.columns
    view = memoryview(data).cast("B")
    ends = (*offsets[1:], len(view))
    k = spec.itemsize
    dtype = np.dtype(f"u{k}")
    arr = np.empty(plane, dtype=dtype) if out is None else out.reshape(plane)
    # segments land in this thread's buffer (a segment longer than a plane overflows it: an error, which
    # sends the frame to the DICOM RLE decoder, as a short one does); 8-bit frames straight into `arr`
    buf = arr.view(np.uint8) if k == 1 else _segment_buffer(k * plane)
    segments = []
    for j, (a, b) in enumerate(zip(offsets, ends)):
        try:
            seg = _ic().packbits_decode(view[a:b], out=buf[j * plane:(j + 1) * plane])
        except RuntimeError:  # imagecodecs' ImcdError: the output is too small
            return None
        if len(seg) != plane:
            return None
        segments.append(seg)
    if k == 1:
        return arr.reshape(spec.rows, spec.columns)
    for j, byte in enumerate(segments):  # segment j holds byte k - 1 - j of each sample
        if j == 0:
            np.left_shift(byte, 8 * (k - 1), out=arr, dtype=dtype)
        elif j < k - 1:
            arr |= np.left_shift(byte, 8 * (k - 1 - j), dtype=dtype)
        else:
            np.bitwise_or(arr, byte, out=arr)
    return arr.reshape(spec.rows, spec.columns)


# below this many pixels a frame goes to imagecodecs' DICOM RLE decoder in one call: segment by segment
# costs more in calls than it saves (measured, 16-bit: 10 x 10 14 vs 2 us, 64 x 64 9 vs 4, 128 x 128 even,
# 256 x 256 26-36 vs 47-53)
RLE_SEGMENT_PIXELS = 128 * 128


def _by_segment(spec: PixelSpec) -> bool:
    return spec.samples_per_pixel == 1 and spec.rows * spec.columns >= RLE_SEGMENT_PIXELS


def rle_decode_into(data, spec: PixelSpec, info: Any, out: np.ndarray) -> bool:
    """Decode straight into `out` (one frame, spec's dtype): True when done (the stored samples, before
    pydicom's rules); False for frames :func:`rle_decode` takes (several samples, small frames,
    irregular segments)."""
    if not _by_segment(spec) or out.dtype.itemsize != spec.itemsize or not out.flags.c_contiguous:
        return False
    offsets = _check_rle_header(data, spec)
    return _rle_by_segment(data, spec, offsets, out.view(f"u{spec.itemsize}")) is not None


def rle_decode(data, spec: PixelSpec, info: Any) -> np.ndarray:
    offsets = _check_rle_header(data, spec)
    if _by_segment(spec):
        arr = _rle_by_segment(data, spec, offsets)
        if arr is not None:
            return arr
    dtype = np.dtype(f"<u{spec.itemsize}")
    out = _ic().dicomrle_decode(data, dtype)
    plane = spec.rows * spec.columns
    if len(out) != plane * spec.samples_per_pixel * spec.itemsize:
        raise ValueError("the RLE segments decode to the wrong length")
    arr = np.frombuffer(out, dtype=dtype)
    if spec.samples_per_pixel == 1:
        return arr.reshape(spec.rows, spec.columns)
    return arr.reshape(spec.samples_per_pixel, spec.rows, spec.columns).transpose(1, 2, 0)
