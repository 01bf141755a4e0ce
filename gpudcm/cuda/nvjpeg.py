"""Thin ctypes binding to libnvjpeg (the ``nvidia-nvjpeg`` wheel): batched decode into CuPy arrays.

Importing this module loads nothing; :func:`lib` loads the library on first use. Every bound function
is declared once in :data:`FUNCTIONS` (checked against ``nvjpeg.h`` by tests/test_nvjpeg_binding.py).
One handle per (device, backend); decode states leased from a bounded pool per (device, backend)
(:data:`STATES`); outputs are CuPy-owned device arrays written on CuPy's current stream.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Sequence
from ctypes import POINTER, c_int, c_size_t, c_uint, c_void_p

from ..errors import DecodeError, DeviceUnavailable
from ..jpeg_markers import JpegInfo
from . import libs
from .pool import Pool

# nvjpeg.h enum values (checked against the header by the binding test)
NVJPEG_STATUS = {
    0: "NVJPEG_STATUS_SUCCESS",
    1: "NVJPEG_STATUS_NOT_INITIALIZED",
    2: "NVJPEG_STATUS_INVALID_PARAMETER",
    3: "NVJPEG_STATUS_BAD_JPEG",
    4: "NVJPEG_STATUS_JPEG_NOT_SUPPORTED",
    5: "NVJPEG_STATUS_ALLOCATOR_FAILURE",
    6: "NVJPEG_STATUS_EXECUTION_FAILED",
    7: "NVJPEG_STATUS_ARCH_MISMATCH",
    8: "NVJPEG_STATUS_INTERNAL_ERROR",
    9: "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED",
    10: "NVJPEG_STATUS_INCOMPLETE_BITSTREAM",
}
NVJPEG_BACKEND_DEFAULT = 0
NVJPEG_BACKEND_HARDWARE = 3
NVJPEG_BACKEND_LOSSLESS_JPEG = 6
NVJPEG_OUTPUT_UNCHANGED = 0
NVJPEG_OUTPUT_UNCHANGEDI_U16 = 7
NVJPEG_MAX_COMPONENT = 4
# library_types.h libraryPropertyType
MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL = 0, 1, 2
MIN_VERSION = (13, 0, 2)


class NvjpegImage(ctypes.Structure):
    """``nvjpegImage_t``: per-component device pointers and pitches."""

    _fields_ = [("channel", c_void_p * NVJPEG_MAX_COMPONENT), ("pitch", c_size_t * NVJPEG_MAX_COMPONENT)]


_p = c_void_p  # opaque handles, cudaStream_t and byte pointers
# name -> (restype, argtypes); nvjpegStatus_t and every enum are C ints
FUNCTIONS: dict[str, tuple[type, tuple]] = {
    "nvjpegGetProperty": (c_int, (c_int, POINTER(c_int))),
    "nvjpegCreateEx": (c_int, (c_int, _p, _p, c_uint, POINTER(c_void_p))),
    "nvjpegDestroy": (c_int, (_p,)),
    "nvjpegJpegStateCreate": (c_int, (_p, POINTER(c_void_p))),
    "nvjpegJpegStateDestroy": (c_int, (_p,)),
    "nvjpegGetImageInfo": (c_int, (_p, _p, c_size_t, POINTER(c_int), POINTER(c_int), POINTER(c_int), POINTER(c_int))),
    "nvjpegDecodeBatchedInitialize": (c_int, (_p, _p, c_int, c_int, c_int)),
    "nvjpegDecodeBatched": (c_int, (_p, _p, POINTER(c_void_p), POINTER(c_size_t), POINTER(NvjpegImage), _p)),
}


# where the wheel puts it: nvidia/cu13/lib (nvidia-nvjpeg 13), nvidia/nvjpeg/lib (older wheels)
_SUBDIRS = ("cu13", "nvjpeg", "*")
_SONAMES = ("libnvjpeg.so.13", "libnvjpeg.so")


@functools.lru_cache(maxsize=1)
def _loaded() -> tuple[ctypes.CDLL, str]:
    try:
        handle, path = libs.load("libnvjpeg", _SUBDIRS, _SONAMES)
    except OSError as exc:
        raise DeviceUnavailable(f"libnvjpeg not found (pip install nvidia-nvjpeg): {exc}") from None
    for name, (restype, argtypes) in FUNCTIONS.items():
        fn = getattr(handle, name)
        fn.restype, fn.argtypes = restype, list(argtypes)
    return handle, path


def lib() -> ctypes.CDLL:
    """libnvjpeg with every function of :data:`FUNCTIONS` typed; :class:`DeviceUnavailable` if absent.
    Found through the import system (gpudcm/cuda/libs.py), so ``pip install --target DIR`` with DIR on
    ``PYTHONPATH`` works as site-packages does."""
    return _loaded()[0]


def library_path() -> str:
    """The file libnvjpeg was loaded from (named in ``capabilities()``)."""
    return _loaded()[1]


def check(status: int, call: str) -> None:
    """Raise :class:`DecodeError` naming the nvJPEG status when `status` is not success."""
    if status:
        raise DecodeError(f"{call} failed: {NVJPEG_STATUS.get(status, 'unknown status')} ({status})")


def version() -> tuple[int, int, int]:
    """nvJPEG's (major, minor, patch) from ``nvjpegGetProperty``."""
    out = []
    for prop in (MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL):
        v = c_int()
        check(lib().nvjpegGetProperty(prop, ctypes.byref(v)), "nvjpegGetProperty")
        out.append(v.value)
    return out[0], out[1], out[2]


def require_version() -> None:
    v = version()
    if v < MIN_VERSION:
        raise DeviceUnavailable(f"nvJPEG {'.'.join(map(str, v))} is older than 13.0.2 (lossless decodes are wrong)")


_handles: dict[tuple[int, int], int] = {}
_handles_lock = threading.Lock()


def _handle(device: int, backend: int) -> int:
    """One nvJPEG handle per (device, backend), kept for the process (handles are thread-safe)."""
    with _handles_lock:
        if (device, backend) not in _handles:
            h = c_void_p()
            check(lib().nvjpegCreateEx(backend, None, None, 0, ctypes.byref(h)), "nvjpegCreateEx")
            _handles[(device, backend)] = h.value
        return _handles[(device, backend)]


def _new_state(key: tuple[int, int]) -> int:
    s = c_void_p()
    check(lib().nvjpegJpegStateCreate(_handle(*key), ctypes.byref(s)), "nvjpegJpegStateCreate")
    return s.value


def _destroy_state(state: int) -> None:
    check(lib().nvjpegJpegStateDestroy(state), "nvjpegJpegStateDestroy")


# Decode states are not thread-safe (one per decode in flight) and hold device buffers: leased from a
# bounded pool per (device, backend) and destroyed beyond its cap, instead of one per thread forever.
STATES: Pool[int] = Pool(_new_state, _destroy_state, cap=4)


def component_shapes(info: JpegInfo) -> list[tuple[int, int]]:
    """(height, width) of each decoded component plane (subsampled chroma rounded up, as T.81 A.1.1)."""
    hmax = max(c.h for c in info.components)
    vmax = max(c.v for c in info.components)
    return [(-(-info.rows * c.v // vmax), -(-info.columns * c.h // hmax)) for c in info.components]


def upsample_interleave(planes: Sequence, rows: int, cols: int, xp):
    """Planar components (chroma possibly subsampled) -> (rows, cols[, samples]) by sample replication."""
    if len(planes) == 1:
        return planes[0]
    out = xp.empty((rows, cols, len(planes)), dtype=planes[0].dtype)
    for k, p in enumerate(planes):
        fy, fx = -(-rows // p.shape[0]), -(-cols // p.shape[1])
        if (fy, fx) != (1, 1):
            p = xp.repeat(xp.repeat(p, fy, axis=0), fx, axis=1)
        out[..., k] = p[:rows, :cols]
    return out


def decode_batch(frames: Sequence[bytes], infos: Sequence[JpegInfo], mode: str):
    """Decode JPEG frames of one `mode` (``"dct"`` or ``"lossless"``) with one batched nvJPEG call.

    Returns CuPy arrays: uint8 ``(rows, cols[, samples])`` for DCT frames (raw components, as the CPU
    decoders return them), uint16 for lossless frames.
    """
    import cupy

    if not frames:
        return []
    if len(frames) != len(infos):
        raise ValueError("one JpegInfo per frame is needed")
    lossless = mode == "lossless"
    if lossless:
        require_version()
    backend = NVJPEG_BACKEND_LOSSLESS_JPEG if lossless else NVJPEG_BACKEND_DEFAULT
    fmt = NVJPEG_OUTPUT_UNCHANGEDI_U16 if lossless else NVJPEG_OUTPUT_UNCHANGED
    device = cupy.cuda.Device().id
    handle = _handle(device, backend)
    n = len(frames)
    keep = [bytes(f) for f in frames]
    data = (c_void_p * n)(*[ctypes.cast(ctypes.c_char_p(b), c_void_p).value for b in keep])
    lengths = (c_size_t * n)(*[len(b) for b in keep])
    dests = (NvjpegImage * n)()
    outputs: list = []
    for i, info in enumerate(infos):
        if lossless:
            arr = cupy.empty((info.rows, info.columns, info.samples), dtype=cupy.uint16)
            dests[i].channel[0] = arr.data.ptr
            dests[i].pitch[0] = info.columns * info.samples * 2
            outputs.append(arr)
        else:
            planes = [cupy.empty(s, dtype=cupy.uint8) for s in component_shapes(info)]
            for k, p in enumerate(planes):
                dests[i].channel[k] = p.data.ptr
                dests[i].pitch[k] = p.shape[1]
            outputs.append(planes)
    stream = cupy.cuda.get_current_stream().ptr
    with STATES.lease((device, backend)) as state:  # a state serves one decode at a time
        check(lib().nvjpegDecodeBatchedInitialize(handle, state, n, 1, fmt), "nvjpegDecodeBatchedInitialize")
        check(lib().nvjpegDecodeBatched(handle, state, data, lengths, dests, stream), "nvjpegDecodeBatched")
        cupy.cuda.get_current_stream().synchronize()  # host bitstreams (`keep`) must outlive the decode
    if lossless:
        return [a if a.shape[2] > 1 else a[..., 0] for a in outputs]
    return [upsample_interleave(p, info.rows, info.columns, cupy) for p, info in zip(outputs, infos)]
