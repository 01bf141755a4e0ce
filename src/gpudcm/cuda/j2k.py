"""JPEG 2000 / HTJ2K on the GPU through nvImageCodec's Python API, finished as pydicom finishes J2K frames.

:func:`pydicom_j2k_finish` is array-module generic (NumPy or CuPy): it turns a decoder's raw frame
(dtype from the codestream: container by precision, signedness by the SIZ Ssiz bit) into pydicom's
values (``pylibjpeg`` plugin + ``decoders/base.py`` ``_apply_sign_correction``). nvImageCodec is
imported only when :func:`decode_batch` runs.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Sequence

import numpy as np

from ..errors import DecodeError, DeviceUnavailable
from ..jpeg_markers import J2kInfo
from ..spec import PixelSpec
from . import libs


def container_bits(precision: int) -> int:
    """Bits of the container pylibjpeg-openjpeg (and pydicom) uses for a J2K `precision`."""
    if precision <= 8:
        return 8
    if precision <= 16:
        return 16
    return 32


def finished_photometric(photometric: str) -> str:
    """pydicom's photometric interpretation after a J2K decode: YBR_ICT/YBR_RCT come back as RGB
    (the decoder inverts the codestream's component transform)."""
    return "RGB" if photometric in ("YBR_ICT", "YBR_RCT") else photometric


def pydicom_j2k_finish(raw, info: J2kInfo, spec: PixelSpec, xp=np):
    """pydicom's values for one decoded J2K frame `raw` (shape (rows, cols[, samples])).

    pydicom reads the decoder's bytes as a (PixelRepresentation)-signed integer of the precision's
    container size, casts that into the Bits Allocated dtype, and, for MONOCHROME data only
    (``DecodeRunner._test_for("sign_correction")``), where the codestream's signedness differs from Pixel
    Representation sign-extends (or masks) from the J2K precision within the output dtype.
    """
    bits = container_bits(info.precision)
    if raw.dtype.itemsize * 8 != bits:
        raise DecodeError(f"J2K decoder returned {raw.dtype} for precision {info.precision}", source=spec.source)
    kind = "i" if spec.pixel_representation else "u"
    arr = raw.view(np.dtype(f"{kind}{bits // 8}")).astype(spec.dtype, copy=True)
    if spec.photometric_interpretation not in ("MONOCHROME1", "MONOCHROME2"):
        return arr
    shift = 8 * arr.dtype.itemsize - info.precision
    if shift and int(info.is_signed) != spec.pixel_representation:
        arr <<= shift
        arr >>= shift
    return arr


def finish_frame(item, info: J2kInfo, spec: PixelSpec, xp=np):
    """pydicom's values from one item nvImageCodec returned ((H, W, C) in its dtype; see
    tests/harness/standins.py for the contract); DecodeError for a failed item or an unexpected dtype."""
    if item is None:
        raise DecodeError("nvImageCodec could not decode the frame", source=spec.source)
    arr = xp.asarray(item)  # __cuda_array_interface__: no host copy
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    want = np.dtype(("i" if info.is_signed else "u") + str(container_bits(info.precision) // 8))
    if arr.dtype != want:
        raise DecodeError(f"nvImageCodec returned {arr.dtype} for {info.precision}-bit "
                          f"{'signed' if info.is_signed else 'unsigned'} data", source=spec.source)
    return pydicom_j2k_finish(arr, info, spec, xp=xp)


@functools.lru_cache(maxsize=1)
def nvjpeg2k_library() -> tuple[str | None, str]:
    """(path, why): libnvjpeg2k (``nvidia-nvjpeg2k-cu13``, nvImageCodec's ``nvjpeg2k`` extra) loaded into
    the process, or (None, why not). nvImageCodec 0.9's ``extensions/libnvjpeg2k_ext.so`` dlopens
    ``libnvjpeg2k.so.0`` through its RUNPATH (``$ORIGIN/../../nvjpeg2k/lib``, ``$ORIGIN/../../cu13/lib``,
    ``/usr/local/cuda/lib64``), which misses a wheel installed under another ``sys.path`` entry; loaded
    here first (RTLD_GLOBAL), the extension's dlopen finds it by its soname. Without it nvImageCodec
    decodes J2K on its CPU codecs (OpenCV), so no GPU J2K backend is reported."""
    try:
        _, path = libs.load("libnvjpeg2k", ("nvjpeg2k", "cu13", "*"), ("libnvjpeg2k.so.0",), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        return None, f"libnvjpeg2k not found (pip install nvidia-nvjpeg2k-cu13, or 'gpudcm[j2k]'): {exc}"
    return path, f"nvjpeg2k {path}"


def _nvimgcodec():
    try:
        from nvidia import nvimgcodec
    except ImportError as exc:
        raise DeviceUnavailable(f"nvImageCodec is not importable ({exc}); pip install 'gpudcm[j2k]'") from exc
    path, why = nvjpeg2k_library()
    if path is None:
        raise DeviceUnavailable(why)
    return nvimgcodec


def _gpu_decoder(nvimgcodec, device: int):
    """An nvImageCodec Decoder restricted to its GPU backends (nvjpeg2k): a frame they cannot take
    comes back as None (then pydicom's plugin decodes it), never from nvImageCodec's CPU codecs."""
    kinds = (nvimgcodec.BackendKind.GPU_ONLY, nvimgcodec.BackendKind.HYBRID_CPU_GPU)
    return nvimgcodec.Decoder(device_id=device, backends=[nvimgcodec.Backend(k) for k in kinds])


# An 8x8 8-bit grey J2K codestream (OpenJPEG, comment removed): what gpu_backend() decodes.
PROBE_J2K = bytes.fromhex(
    "ff4fff510029000000000008000000080000000000000000000000080000000800000000000000000001070101ff5200"
    "0c00000001000004040001ff5c00044040ff90000a0000000000480001ff93df81b8122b0514b9733eb20ab279c26ef1"
    "703fd17fe1c6d28bc0891252a504ea5b0b1eac6e476e76492f73ae13adf1a52692017e5e5e5e5b100cffd9"
)
PROBE_PIXELS = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3


@functools.lru_cache(maxsize=None)
def gpu_backend(device: int = 0) -> tuple[bool, str]:
    """(works, why): nvImageCodec imports, libnvjpeg2k loads, and its GPU decoder decodes
    :data:`PROBE_J2K` exactly on CUDA device `device` (needs a GPU; False without one)."""
    try:
        nvimgcodec = _nvimgcodec()
        import cupy

        with cupy.cuda.Device(device):
            images = _gpu_decoder(nvimgcodec, device).decode(
                [nvimgcodec.CodeStream(PROBE_J2K)], params=nvimgcodec.DecodeParams(
                    color_spec=nvimgcodec.ColorSpec.UNCHANGED, allow_any_depth=True))
            if not images or images[0] is None:
                return False, "nvImageCodec's GPU backends could not decode a J2K codestream (nvjpeg2k not loaded)"
            got = cupy.asnumpy(cupy.asarray(images[0])).reshape(8, 8)
    except Exception as exc:
        return False, f"nvImageCodec + nvjpeg2k unusable ({type(exc).__name__}: {exc})"
    if not np.array_equal(got, PROBE_PIXELS):
        return False, "nvImageCodec's GPU J2K decode of the probe codestream differs from its pixels"
    return True, f"nvImageCodec {getattr(nvimgcodec, '__version__', '?')} with {nvjpeg2k_library()[1]}"


def gpu_backend_here() -> tuple[bool, str]:
    """:func:`gpu_backend` for CuPy's current device; (False, why) where CuPy or a device is missing."""
    try:
        from .runtime import cuda_status

        ok, why = cuda_status()
        if not ok:
            return False, why
        import cupy

        return gpu_backend(cupy.cuda.Device().id)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


_decoders: dict[int, tuple[object, threading.Lock]] = {}
_decoders_lock = threading.Lock()


# color_spec UNCHANGED: on a bare codestream nvImageCodec sets no RGB output (its nvjpeg2k extension's
# rgb_output is only for sRGB JP2 boxes), so YBR_FULL samples come back as coded; allow_any_depth keeps
# the codestream's precision instead of rescaling to uint8.
DECODE_PARAMS = {"color_spec": "UNCHANGED", "allow_any_depth": True}


def decode_batch(frames: Sequence[bytes], infos: Sequence[J2kInfo], spec: PixelSpec) -> list:
    """Decode J2K/HTJ2K frames of one dataset with one nvImageCodec batch; returns what nvImageCodec
    returns, one item per frame: a CuPy array (H, W, C) in nvImageCodec's dtype, or None where it failed.
    :func:`finish_frame` turns an item into pydicom's values."""
    import cupy

    nvimgcodec = _nvimgcodec()
    device = cupy.cuda.Device().id
    with _decoders_lock:
        if device not in _decoders:
            _decoders[device] = (_gpu_decoder(nvimgcodec, device), threading.Lock())
        dec, lock = _decoders[device]
    params = nvimgcodec.DecodeParams(color_spec=getattr(nvimgcodec.ColorSpec, DECODE_PARAMS["color_spec"]),
                                     allow_any_depth=DECODE_PARAMS["allow_any_depth"])
    streams = [nvimgcodec.CodeStream(bytes(f)) for f in frames]
    with lock:  # one Decoder per device, and a Decoder is not documented as safe to share between threads
        images = dec.decode(streams, params=params, cuda_stream=cupy.cuda.get_current_stream().ptr)
    return [None if img is None else cupy.asarray(img) for img in images]
