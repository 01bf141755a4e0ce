"""Compile CUDA sources with NVRTC from the nvidia-cuda-nvrtc wheel (no GPU or driver needed).

Uses the runtime's exact source text (``load_source``) and options (``NVRTC_OPTIONS``), adding only the
target architecture, as CuPy does on a device.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import site

from gpudcm.cuda.kernels import NVRTC_OPTIONS, load_source


@functools.lru_cache(maxsize=1)
def libnvrtc() -> ctypes.CDLL:
    candidates = []
    for root in site.getsitepackages() + [site.getusersitepackages()]:
        candidates += sorted(glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so*")))
        candidates += sorted(glob.glob(os.path.join(root, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")))
    candidates = [c for c in candidates if "builtins" not in c]
    errors = []
    for path in candidates + ["libnvrtc.so"]:
        try:
            return ctypes.CDLL(path)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
    raise OSError("libnvrtc not found (pip install nvidia-cuda-nvrtc): " + "; ".join(errors))


def version() -> tuple[int, int]:
    major, minor = ctypes.c_int(), ctypes.c_int()
    libnvrtc().nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_source(name: str, arch: str) -> tuple[bool, str, int]:
    """Compile kernels/`name` for `arch` (e.g. ``"sm_80"``); returns (ok, log, size of the binary)."""
    lib = libnvrtc()
    prog = ctypes.c_void_p()
    src = load_source(name).encode()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src, name.encode(), 0, None, None)
    if rc:
        return False, f"nvrtcCreateProgram failed ({rc})", 0
    opts = [o.encode() for o in (*NVRTC_OPTIONS, f"--gpu-architecture={arch}")]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    try:
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, buf)
        log = buf.value.decode(errors="replace")
        binary = 0
        if rc == 0:
            csize = ctypes.c_size_t()
            lib.nvrtcGetCUBINSize(prog, ctypes.byref(csize))
            binary = csize.value
        return rc == 0, log, binary
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def ptx(name: str, arch: str = "compute_80") -> str:
    """The PTX NVRTC makes of kernels/`name` with the runtime's options (to inspect which instructions
    the device will run, e.g. that no float operation was contracted)."""
    lib = libnvrtc()
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), load_source(name).encode(), name.encode(), 0, None, None):
        raise RuntimeError(f"nvrtcCreateProgram failed for {name}")
    opts = [o.encode() for o in (*NVRTC_OPTIONS, f"--gpu-architecture={arch}")]
    try:
        if lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts)):
            raise RuntimeError(f"NVRTC could not compile {name}")
        size = ctypes.c_size_t()
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        if lib.nvrtcGetPTX(prog, buf):
            raise RuntimeError(f"nvrtcGetPTX failed for {name}")
        return buf.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
