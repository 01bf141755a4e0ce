"""Thin ctypes binding to libnvjpeg (the ``nvidia-nvjpeg`` wheel): batched decode into CuPy arrays, returning
what nvJPEG returns (component planes at their real size, raw samples); ``jpeg_path`` finishes them.

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
from .upsample import component_shapes

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
    "nvjpegJpegStreamCreate": (c_int, (_p, POINTER(c_void_p))),
    "nvjpegJpegStreamDestroy": (c_int, (_p,)),
    "nvjpegJpegStreamParseHeader": (c_int, (_p, _p, c_size_t, _p)),
    "nvjpegDecodeBatchedSupported": (c_int, (_p, _p, POINTER(c_int))),
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
_no_handle: set[tuple[int, int]] = set()  # (device, backend) nvjpegCreateEx refused
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


def _try_handle(device: int, backend: int) -> int | None:
    """The handle of `backend`, or None where nvJPEG cannot create one (no hardware decoder on this GPU:
    ``nvjpegCreateEx`` returns NVJPEG_STATUS_ARCH_MISMATCH / JPEG_NOT_SUPPORTED)."""
    if (device, backend) in _no_handle:
        return None
    try:
        return _handle(device, backend)
    except DecodeError:
        _no_handle.add((device, backend))
        return None


def batched_supported(handle: int, frame: bytes) -> bool | None:
    """``nvjpegDecodeBatchedSupported`` for one bitstream (it sets 0 when the handle's backend can decode
    it); None where nvJPEG cannot answer (the header does not parse)."""
    stream = c_void_p()
    check(lib().nvjpegJpegStreamCreate(handle, ctypes.byref(stream)), "nvjpegJpegStreamCreate")
    try:
        buf = ctypes.c_char_p(frame)
        if lib().nvjpegJpegStreamParseHeader(handle, ctypes.cast(buf, c_void_p), len(frame), stream):
            return None
        answer = c_int(-1)
        if lib().nvjpegDecodeBatchedSupported(handle, stream, ctypes.byref(answer)):
            return None
        return answer.value == 0
    finally:
        lib().nvjpegJpegStreamDestroy(stream)


def _decode(frames: Sequence[bytes], infos: Sequence[JpegInfo], backend: int, lossless: bool) -> list:
    """One nvjpegDecodeBatched call with `backend` over `frames`; raises DecodeError on a bad status."""
    import cupy

    device = cupy.cuda.Device().id
    handle = _handle(device, backend)
    fmt = NVJPEG_OUTPUT_UNCHANGEDI_U16 if lossless else NVJPEG_OUTPUT_UNCHANGED
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
    return outputs


def _hw_takes(handle: int, frame: bytes) -> bool:
    try:
        return bool(batched_supported(handle, frame))
    except DecodeError:
        return False


def decode_batch(frames: Sequence[bytes], infos: Sequence[JpegInfo], mode: str) -> list:
    """Decode JPEG frames of one `mode` (``"dct"`` or ``"lossless"``) with batched nvJPEG calls.

    Returns what nvJPEG returns, one item per frame: for ``"dct"`` a list of uint8 component planes at
    their real (subsampled) size (``NVJPEG_OUTPUT_UNCHANGED``); for ``"lossless"`` a uint16
    ``(rows, cols, components)`` array of the coded samples (``NVJPEG_OUTPUT_UNCHANGEDI_U16``); ``None``
    for a frame ``nvjpegDecodeBatchedSupported`` says the backend cannot decode. DCT frames go to
    NVJPEG_BACKEND_HARDWARE where the GPU has a JPEG engine and it takes the stream, else to the default
    backend. No Bits Stored correction, upsampling or colour conversion happens here.
    """
    import cupy

    if not frames:
        return []
    if len(frames) != len(infos):
        raise ValueError("one JpegInfo per frame is needed")
    device = cupy.cuda.Device().id
    keep = [bytes(f) for f in frames]
    out: list = [None] * len(keep)
    groups: dict[int, list[int]] = {}
    if mode == "lossless":
        require_version()
        handle = _handle(device, NVJPEG_BACKEND_LOSSLESS_JPEG)
        for i, f in enumerate(keep):
            if batched_supported(handle, f) is not False:  # no answer: let the decode itself decide
                groups.setdefault(NVJPEG_BACKEND_LOSSLESS_JPEG, []).append(i)
    elif mode == "dct":
        hw = _try_handle(device, NVJPEG_BACKEND_HARDWARE)
        for i, f in enumerate(keep):
            groups.setdefault(NVJPEG_BACKEND_HARDWARE if hw is not None and _hw_takes(hw, f) else NVJPEG_BACKEND_DEFAULT,
                              []).append(i)
    else:
        raise ValueError(f"unknown nvJPEG mode {mode!r}")
    for backend, idx in groups.items():
        batch, metas = [keep[i] for i in idx], [infos[i] for i in idx]
        try:
            decoded = _decode(batch, metas, backend, mode == "lossless")
        except DecodeError:
            if backend != NVJPEG_BACKEND_HARDWARE:
                raise
            decoded = _decode(batch, metas, NVJPEG_BACKEND_DEFAULT, False)  # the engine refused: GPU default backend
        for i, item in zip(idx, decoded):
            out[i] = item
    return out
