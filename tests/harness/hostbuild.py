"""Build the host (g++) version of the kernels' logic and call it through ctypes.

Every ``tests/harness/host_*.cpp`` shim (one per kernel family) is compiled into one shared object,
rebuilt when any kernel header or shim changes (content hash in the name). Each shim's ctypes
prototypes are declared next to its launcher (``native`` here; others in their own modules).
``sanitize=True`` adds ``-fsanitize=address,undefined``; such a library must be loaded in a process
started with libasan preloaded (see :func:`sanitizer_env`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from gpudcm.cuda.colour import ColourLaunch
from gpudcm.cuda.kernels import NativeLaunch, kernel_dir

HERE = Path(__file__).resolve().parent
BUILD_DIR = Path(os.environ.get("GPUDCM_HOST_BUILD_DIR", Path(tempfile.gettempdir()) / "gpudcm-host-build"))
CXX = os.environ.get("CXX", "g++")
BASE_FLAGS = ["-std=c++17", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
SANITIZE_FLAGS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def _digest(flags: list[str], sources: list[Path]) -> str:
    h = hashlib.sha256(" ".join(flags).encode())
    for p in sorted(kernel_dir().glob("*.cuh")) + sources:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def shims() -> list[Path]:
    return sorted(HERE.glob("host_*.cpp"))


def build(sanitize: bool = False, sources: list[Path] | None = None, libs: tuple[str, ...] = (),
          name: str = "gpudcm_host") -> Path:
    """Compile the shims (or `sources`, linked with `libs`) into a shared object (cached); its path."""
    sources = shims() if sources is None else sources
    flags = BASE_FLAGS + (SANITIZE_FLAGS if sanitize else ["-O2"])
    out = BUILD_DIR / f"{name}_{'san' if sanitize else 'opt'}_{_digest(flags + list(libs), sources)}.so"
    if not out.exists():
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        cmd = [CXX, *flags, f"-I{kernel_dir()}", *map(str, sources), "-o", str(tmp), *libs]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            raise RuntimeError(f"host build failed: {' '.join(cmd)}\n{proc.stderr}")
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


SANITIZER_LIVE = "AddressSanitizer live"


def sanitizer_line() -> str:
    """What a fuzzer prints last: only a process running under AddressSanitizer finds the red zone after
    a fresh 16-byte malloc poisoned; a run without the sanitizer says so (and its test fails)."""
    libc = ctypes.CDLL(None)
    probe = getattr(libc, "__asan_address_is_poisoned", None)
    if probe is None:
        return "AddressSanitizer NOT loaded"
    probe.restype, probe.argtypes = ctypes.c_int, [ctypes.c_void_p]
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(16)
    try:
        live = probe(block + 16) == 1 and probe(block) == 0
    finally:
        libc.free(block)
    return SANITIZER_LIVE if live else "AddressSanitizer loaded but its red zones are off"


class Exact:
    """Copies of arrays in malloc'd blocks of exactly their size: Python's own buffers sit in pymalloc
    arenas (and NumPy keeps a cache of small blocks) where AddressSanitizer cannot see a read one byte past
    the end; these have a red zone there."""

    def __init__(self) -> None:
        self.blocks: list[int] = []
        self._libc = ctypes.CDLL(None)
        self._libc.malloc.restype, self._libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        self._libc.free.argtypes = [ctypes.c_void_p]

    def __call__(self, arr: np.ndarray) -> np.ndarray:
        arr = np.ascontiguousarray(arr)
        if arr.nbytes == 0:
            return arr
        block = self._libc.malloc(arr.nbytes)
        self.blocks.append(block)
        view = np.ctypeslib.as_array((ctypes.c_uint8 * arr.nbytes).from_address(block)).view(arr.dtype)
        view[...] = arr.reshape(-1)
        return view.reshape(arr.shape)

    def free(self) -> None:
        for block in self.blocks:
            self._libc.free(block)
        self.blocks.clear()


def check_sanitized(returncode: int, stdout: str, stderr: str, expect: str) -> re.Match:
    """Assert a sanitized run was clean: exit status 0 (ASan/UBSan abort on the first report), no report on
    stderr, the live-sanitizer line, and `expect` (a regex over the counts) in stdout; return its match."""
    tail = stdout[-3000:] + stderr[-3000:]
    assert returncode == 0, f"rc {returncode}\n{tail}"
    assert "ERROR: AddressSanitizer" not in stderr and "runtime error" not in stderr, tail
    assert SANITIZER_LIVE in stdout, tail
    match = re.search(expect, stdout)
    assert match, tail
    return match


def run_sanitized(args: list[str], expect: str, timeout: float = 600) -> re.Match:
    """Run ``python <args>`` from the repository root with the sanitized build preloaded, check it with
    :func:`check_sanitized` and return the match of `expect` (its groups: the counts it printed)."""
    import sys

    build(sanitize=True)
    root = HERE.parent.parent
    proc = subprocess.run([sys.executable, *args], cwd=root, env=sanitizer_env(), capture_output=True, text=True, timeout=timeout)
    return check_sanitized(proc.returncode, proc.stdout, proc.stderr, expect)


@functools.lru_cache(maxsize=None)
def load(sanitize: bool = False) -> ctypes.CDLL:
    """The host build as a ctypes library (prototypes are set by each launcher that uses a function)."""
    return ctypes.CDLL(str(build(sanitize)))


def ptr(arr: np.ndarray) -> int:
    """Address of `arr`'s first element (0 for an empty array), for a ctypes ``c_void_p`` argument."""
    return arr.ctypes.data if arr.size else 0


def function(name: str, restype, argtypes: list, sanitize: bool = False):
    """`name` from the host build with its ctypes prototype set."""
    fn = getattr(load(sanitize), name)
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


def host_launcher(sanitize: bool = False):
    """A launcher with the CuPy launcher's signature that runs the host build instead."""
    u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    fn = function("gpudcm_host_native", u32, [u32, u32, u32, vp, u64, vp, u32, u32, u32, u32, u32, u32, vp], sanitize)

    def launch(plan: NativeLaunch, src: np.ndarray, frame_offsets: np.ndarray, out: np.ndarray) -> int:
        src = np.ascontiguousarray(src, dtype=np.uint8)
        frame_offsets = np.ascontiguousarray(frame_offsets, dtype=np.int64)
        assert out.flags.c_contiguous and out.size == plan.n_elements
        g = plan.geometry
        scalars = [int(s) for s in plan.scalars()]
        return fn(plan.bits, g.grid, g.block, ptr(src), src.size, ptr(frame_offsets), *scalars, ptr(out))

    return launch


def host_ybr_launcher(sanitize: bool = False):
    """A launcher with cupy_ybr_launcher's signature that runs the host build instead."""
    u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    fn = function("gpudcm_host_ybr_to_rgb", u32, [u32, u32, u32, vp, u64, u32], sanitize)

    def launch(plan: ColourLaunch, arr: np.ndarray) -> int:
        assert arr.flags.c_contiguous and arr.flags.writeable and arr.size == 3 * plan.n_pixels
        assert arr.itemsize * 8 == plan.bits
        g = plan.geometry
        return fn(plan.bits, g.grid, g.block, ptr(arr), plan.n_pixels, plan.flags)

    return launch


def host_upsample_launcher(sanitize: bool = False):
    """A launcher with cupy_upsample_launcher's signature that runs the host build instead."""
    from gpudcm.cuda.upsample import UpsampleLaunch

    u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    fn = function("gpudcm_host_upsample", u32, [u32, u32, vp, u64, u32, u32, u32, u32, u64, u32, vp, vp], sanitize)

    def launch(plan: UpsampleLaunch, src: np.ndarray, out: np.ndarray) -> int:
        src = np.ascontiguousarray(src, dtype=np.uint8)
        assert out.flags.c_contiguous and out.dtype == np.uint8 and out.size == plan.n_elements
        meta = plan.meta_array()
        g = plan.geometry
        return fn(g.grid, g.block, ptr(src), src.size, *[int(s) for s in plan.scalars()], ptr(meta), ptr(out))

    return launch
