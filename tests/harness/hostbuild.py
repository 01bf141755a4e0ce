"""Build the host (g++) version of the kernels' logic and call it through ctypes.

The shared object is rebuilt when any kernel header or the shim changes (content hash in the name).
``sanitize=True`` adds ``-fsanitize=address,undefined``; such a library must be loaded in a process
started with libasan preloaded (see :func:`sanitizer_env`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gpudcm.cuda.kernels import NativeLaunch, kernel_dir

SHIM = Path(__file__).with_name("host_shim.cpp")
BUILD_DIR = Path(os.environ.get("GPUDCM_HOST_BUILD_DIR", Path(tempfile.gettempdir()) / "gpudcm-host-build"))
CXX = os.environ.get("CXX", "g++")
BASE_FLAGS = ["-std=c++17", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
SANITIZE_FLAGS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _digest(flags: list[str]) -> str:
    h = hashlib.sha256(" ".join(flags).encode())
    for p in sorted(kernel_dir().glob("*.cuh")) + [SHIM]:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def build(sanitize: bool = False) -> Path:
    """Compile the shim into a shared object (cached) and return its path."""
    flags = BASE_FLAGS + (SANITIZE_FLAGS if sanitize else ["-O2"])
    out = BUILD_DIR / f"gpudcm_host_{'san' if sanitize else 'opt'}_{_digest(flags)}.so"
    if not out.exists():
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        cmd = [CXX, *flags, f"-I{kernel_dir()}", str(SHIM), "-o", str(tmp)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        tmp.replace(out)
    return out


def sanitizer_env() -> dict[str, str]:
    """Environment for a subprocess that loads the sanitized build (libasan must come first)."""
    libasan = subprocess.run([CXX, "-print-file-name=libasan.so"], capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ)
    env["LD_PRELOAD"] = libasan
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


@functools.lru_cache(maxsize=None)
def load(sanitize: bool = False) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build(sanitize)))
    u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    lib.gpudcm_host_native.restype = u32
    lib.gpudcm_host_native.argtypes = [u32, u32, u32, vp, u64, vp, u32, u32, u32, u32, u32, u32, vp]
    return lib


def _ptr(arr: np.ndarray) -> int:
    return arr.ctypes.data if arr.size else 0


def host_launcher(sanitize: bool = False):
    """A launcher with the CuPy launcher's signature that runs the host build instead."""
    lib = load(sanitize)

    def launch(plan: NativeLaunch, src: np.ndarray, frame_offsets: np.ndarray, out: np.ndarray) -> int:
        src = np.ascontiguousarray(src, dtype=np.uint8)
        frame_offsets = np.ascontiguousarray(frame_offsets, dtype=np.int64)
        assert out.flags.c_contiguous and out.size == plan.n_elements
        g = plan.geometry
        scalars = [int(s) for s in plan.scalars()]
        return lib.gpudcm_host_native(plan.bits, g.grid, g.block, _ptr(src), src.size, _ptr(frame_offsets), *scalars, _ptr(out))

    return launch
