"""NVRTC through ctypes: compile our kernels with exactly our options (no GPU or driver needed).

CuPy's ``RawModule(code=...)`` appends ``-ftz=true`` after the caller's options (CuPy 14.2
``cupy/cuda/compiler.py`` ``_compile_with_cache_cuda``: ``options += ('-ftz=true',)``), which flushes
subnormal floats that NumPy keeps. So gpudcm compiles here, with :func:`gpudcm.cuda.kernels.nvrtc_options`
alone, and hands CuPy the binary (``RawModule(path=...)``, which loads a cubin/PTX file as it is). CI
compiles through the same function, so the code CI checks is the code the GPU runs.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from . import libs


@functools.lru_cache(maxsize=1)
def libnvrtc() -> ctypes.CDLL:
    """libnvrtc (the ``nvidia-cuda-nvrtc`` wheel, found through the import system, or the system's)."""
    return libs.load("libnvrtc", ("cu13", "cuda_nvrtc", "*"), ("libnvrtc.so.13", "libnvrtc.so"))[0]


def version() -> tuple[int, int]:
    major, minor = ctypes.c_int(), ctypes.c_int()
    libnvrtc().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


@dataclass(frozen=True)
class Compiled:
    ok: bool
    log: str
    cubin: bytes | None  # for a real architecture (``--gpu-architecture=sm_XY``)
    ptx: str | None

    @property
    def binary(self) -> bytes:
        """What the driver loads: the cubin when there is one, else the PTX text."""
        if self.cubin:
            return self.cubin
        return (self.ptx or "").encode() + b"\0"


def _text(lib, prog, size_fn: str, get_fn: str) -> bytes:
    size = ctypes.c_size_t()
    if getattr(lib, size_fn)(prog, ctypes.byref(size)):
        return b""
    buf = ctypes.create_string_buffer(size.value)
    if getattr(lib, get_fn)(prog, buf):
        return b""
    return buf.raw[: size.value]


def compile_program(name: str, source: str, options: Sequence[str]) -> Compiled:
    """Compile `source` (named `name` in messages) with `options` exactly as given."""
    lib = libnvrtc()
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if rc:
        return Compiled(False, f"nvrtcCreateProgram failed ({rc})", None, None)
    opts = [o.encode() for o in options]
    try:
        rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        log = _text(lib, prog, "nvrtcGetProgramLogSize", "nvrtcGetProgramLog").rstrip(b"\0").decode(errors="replace")
        if rc:
            return Compiled(False, log, None, None)
        ptx = _text(lib, prog, "nvrtcGetPTXSize", "nvrtcGetPTX").rstrip(b"\0").decode()
        cubin = _text(lib, prog, "nvrtcGetCUBINSize", "nvrtcGetCUBIN") or None  # empty for compute_XY
        return Compiled(True, log, cubin, ptx)
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
