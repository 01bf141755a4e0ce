"""CUDA sources, NVRTC options, launch geometry and argument packing.

Everything here except :func:`get_function` (and the NVRTC compile behind it) is pure Python with no CuPy import, so CI (no GPU) runs
the same geometry and argument packing through the host build of the kernels' logic.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DeviceUnavailable, InvalidPixelData
from ..spec import PixelSpec

# The options every kernel is compiled with, at run time (gpudcm/cuda/nvrtc.py, for the device's
# architecture) and in CI (tests/harness/nvrtc.py, sm_80 / sm_90): both take nvrtc_options(arch). Not
# CuPy's compiler, which appends -ftz=true (see gpudcm/cuda/nvrtc.py); --ftz=false is NVRTC's default,
# spelt out because subnormal floats must survive as they do in NumPy.
NVRTC_OPTIONS: tuple[str, ...] = ("--std=c++17", "--ftz=false")
BLOCK_SIZE = 256
# A grid-stride loop covers any size, so the grid is capped; 65535 * 256 threads saturate any GPU.
MAX_BLOCKS = 65535
_MAX_ELEMENTS = (1 << 63) - 1

_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$', re.MULTILINE)

# Flags shared with kernels/native.cuh (GD_NATIVE_*).
NATIVE_SIGNED = 1
NATIVE_BIG_ENDIAN = 2
NATIVE_PLANAR = 4
NATIVE_SWAP_OW = 8
NATIVE_YBR422 = 16
NATIVE_CORRECT_BITS = 32

# Status bits shared with kernels/common.cuh (GD_STATUS_*).
STATUS_READ_OOB = 1
STATUS_BAD_OFFSET = 2
STATUS_BAD_PARAMS = 4


def kernel_dir() -> Path:
    """Folder holding the .cu/.cuh files: ``gpudcm/kernels`` in a wheel, ``kernels/`` in a checkout."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "kernels", here.parent / "kernels"):
        if (candidate / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(f"gpudcm's CUDA sources were not found next to {here}")


def kernel_files() -> list[str]:
    """Names of every compilable CUDA source (``*.cu``)."""
    return sorted(p.name for p in kernel_dir().glob("*.cu"))


@functools.lru_cache(maxsize=None)
def load_source(name: str) -> str:
    """`name` with its local ``#include "x.cuh"`` lines expanded once each, so the text alone is the
    compile cache key (compiled_kernel hashes it; a changed header must change it)."""
    root = kernel_dir()
    seen: set[str] = set()

    def expand(fname: str) -> str:
        if fname in seen:
            return ""
        seen.add(fname)
        text = (root / fname).read_text()
        text = text.replace("#pragma once", "")
        return _INCLUDE.sub(lambda m: expand(m.group(1)), text)

    return expand(name)


@dataclass(frozen=True)
class Geometry:
    grid: int
    block: int

    @property
    def threads(self) -> int:
        return self.grid * self.block


def launch_geometry(n_elements: int, *, block: int = BLOCK_SIZE, max_blocks: int = MAX_BLOCKS) -> Geometry:
    """Grid and block for a grid-stride kernel over `n_elements` (at least one block)."""
    if n_elements < 0 or n_elements > _MAX_ELEMENTS:
        raise InvalidPixelData(f"cannot launch over {n_elements} elements")
    if not 1 <= block <= 1024:
        raise ValueError(f"block size {block} is outside 1..1024")
    grid = max(1, min(max_blocks, math.ceil(n_elements / block)))
    return Geometry(grid, block)


def native_bits(spec: PixelSpec) -> int:
    """Which native kernel variant decodes `spec` (the output sample width in bits)."""
    if spec.bits_allocated not in (1, 8, 16, 32, 64):
        raise InvalidPixelData(f"{spec.source}: no native kernel for Bits Allocated {spec.bits_allocated}")
    return spec.bits_allocated


def native_flags(spec: PixelSpec) -> int:
    """The GD_NATIVE_* flags that make the kernel reproduce pydicom's native decode of `spec`."""
    flags = 0
    if spec.is_signed:
        flags |= NATIVE_SIGNED
    if not spec.is_little_endian and spec.bits_allocated > 8:
        flags |= NATIVE_BIG_ENDIAN
    if spec.samples_per_pixel > 1 and spec.planar_configuration == 1:
        flags |= NATIVE_PLANAR
    if spec.swaps_ow:
        flags |= NATIVE_SWAP_OW
    if spec.is_ybr422_native:
        flags |= NATIVE_YBR422
    if spec.corrects_unused_bits:
        flags |= NATIVE_CORRECT_BITS
    return flags


def native_kernel_name(spec: PixelSpec) -> str:
    return f"gpudcm_native_{native_bits(spec)}"


def native_frame_offsets(spec: PixelSpec, frames) -> np.ndarray:
    """Per-frame start offsets the kernel reads from: bytes, or bits for 1-bit data."""
    if spec.bits_allocated == 1:
        return np.array([f[0].offset * 8 + f[0].bit_offset for f in frames], dtype=np.int64)
    return np.array([f[0].offset for f in frames], dtype=np.int64)


@dataclass(frozen=True)
class NativeLaunch:
    """One native-kernel launch, described without any array module: the CuPy runtime and the host
    build both consume it (buffers are supplied by the caller in the same argument order)."""

    kernel: str
    bits: int
    geometry: Geometry
    n_frames: int
    rows: int
    cols: int
    samples: int
    bits_stored: int
    flags: int

    @property
    def n_elements(self) -> int:
        return self.n_frames * self.rows * self.cols * self.samples

    def scalars(self) -> tuple:
        """The scalar arguments after (src, src_len, frame_offsets), with explicit C types."""
        return (
            np.uint32(self.n_frames),
            np.uint32(self.rows),
            np.uint32(self.cols),
            np.uint32(self.samples),
            np.uint32(self.bits_stored),
            np.uint32(self.flags),
        )


def _native_launch(spec: PixelSpec, n_frames: int, flags: int, what: str) -> NativeLaunch:
    if n_frames < 1:
        raise InvalidPixelData(f"{spec.source}: nothing to {what} ({n_frames} frames)")
    return NativeLaunch(
        kernel=native_kernel_name(spec),
        bits=native_bits(spec),
        geometry=launch_geometry(n_frames * spec.frame_pixels),
        n_frames=n_frames,
        rows=spec.rows,
        cols=spec.columns,
        samples=spec.samples_per_pixel,
        bits_stored=spec.bits_stored,
        flags=flags,
    )


def plan_native(spec: PixelSpec, n_frames: int) -> NativeLaunch:
    """Pure plan of the native-kernel launch that decodes `n_frames` frames of `spec`."""
    return _native_launch(spec, n_frames, native_flags(spec), "decode")


def plan_unused_bits(spec: PixelSpec, n_frames: int) -> NativeLaunch:
    """The native-kernel launch that applies pydicom's ``_correct_unused_bits`` (mask to Bits Stored when
    unsigned, sign-extend from it when signed) to `n_frames` decoded frames of `spec` already in the Bits
    Allocated container, native (little-endian) order and interleaved: the kernel reads them as native
    data with only GD_NATIVE_CORRECT_BITS (and GD_NATIVE_SIGNED) set."""
    return _native_launch(spec, n_frames, NATIVE_CORRECT_BITS | (NATIVE_SIGNED if spec.is_signed else 0), "correct")


def nvrtc_options(arch: str) -> tuple[str, ...]:
    """The complete NVRTC option list for `arch` (``sm_90`` -> cubin, ``compute_90`` -> PTX)."""
    return (*NVRTC_OPTIONS, f"--gpu-architecture={arch}")


def kernel_cache_dir() -> Path:
    """Where compiled kernels are kept between processes: ``$GPUDCM_KERNEL_CACHE``, else
    ``$XDG_CACHE_HOME/gpudcm/kernels`` (``~/.cache``), else a folder under the temp dir."""
    env = os.environ.get("GPUDCM_KERNEL_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gpudcm" / "kernels"
    for folder in (base, Path(tempfile.gettempdir()) / f"gpudcm-kernels-{os.getuid()}"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            return folder
        except OSError:
            continue
    raise OSError(f"no writable folder for compiled kernels ({base})")


def compiled_kernel(source_name: str, arch: str) -> Path:
    """The file holding `source_name` compiled by NVRTC with exactly ``nvrtc_options(arch)``, compiled
    on first use; the name hashes the source text, the options and NVRTC's version."""
    from . import nvrtc

    options = nvrtc_options(arch)
    source = load_source(source_name)
    key = hashlib.sha256("\0".join((source, *options, repr(nvrtc.version()))).encode()).hexdigest()[:20]
    suffix = ".cubin" if arch.startswith("sm_") else ".ptx"
    path = kernel_cache_dir() / f"{Path(source_name).stem}-{arch}-{key}{suffix}"
    if path.is_file():
        return path
    result = nvrtc.compile_program(source_name, source, options)
    if not result.ok:
        raise DeviceUnavailable(f"NVRTC could not compile {source_name} for {arch}: {result.log.strip()[:2000]}")
    tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(result.binary)
    os.replace(tmp, path)  # atomic: concurrent processes never load half a file
    return path


@functools.lru_cache(maxsize=None)
def _module(device_id: int, source_name: str):
    import cupy

    with cupy.cuda.Device(device_id) as dev:
        cc = str(dev.compute_capability)
        try:
            path = compiled_kernel(source_name, f"sm_{cc}")
        except DeviceUnavailable:  # an architecture newer than this NVRTC: PTX, JIT-compiled by the driver
            path = compiled_kernel(source_name, f"compute_{cc}")
        return cupy.RawModule(path=str(path))


@functools.lru_cache(maxsize=None)
def _function(device_id: int, source_name: str, kernel: str):
    return _module(device_id, source_name).get_function(kernel)


def get_function(source_name: str, kernel: str):
    """The kernel `kernel` of `source_name` for the current device, compiled by gpudcm (not by CuPy: see
    :func:`nvrtc_options`), loaded with ``RawModule(path=...)``, cached per device."""
    import cupy

    return _function(cupy.cuda.Device().id, source_name, kernel)


# RLE kernel (kernels/rle.cuh): status bits beyond GD_STATUS_*, lanes per table entry, and the values of
# its pylibjpeg-rle replay (a decoded length, or one of these).
RLE_STATUS_SHORT = 8
RLE_STATUS_WRITE_OOB = 16
RLE_LANES = 32
RLE_NO_ROOM = -(1 << 63)
RLE_J_ERROR = -1
RLE_J_PANIC = -2
