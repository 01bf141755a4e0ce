"""Compile CUDA sources with NVRTC from the nvidia-cuda-nvrtc wheel (no GPU or driver needed).

The same compile the runtime does (``gpudcm.cuda.nvrtc.compile_program``), on the runtime's exact source
text (``load_source``) and option list (``nvrtc_options(arch)``): only the architecture differs.
"""

from __future__ import annotations

from gpudcm.cuda import nvrtc as runtime_nvrtc
from gpudcm.cuda.kernels import load_source, nvrtc_options

libnvrtc = runtime_nvrtc.libnvrtc
version = runtime_nvrtc.version


def compile_source(name: str, arch: str) -> tuple[bool, str, int]:
    """Compile kernels/`name` for `arch` (e.g. ``"sm_80"``); returns (ok, log, size of the binary)."""
    result = runtime_nvrtc.compile_program(name, load_source(name), nvrtc_options(arch))
    return result.ok, result.log, len(result.cubin or b"")


def ptx(name: str, arch: str = "compute_80") -> str:
    """The PTX NVRTC makes of kernels/`name` with the runtime's options (to inspect which instructions
    the device will run, e.g. that no float operation was contracted or flushed)."""
    result = runtime_nvrtc.compile_program(name, load_source(name), nvrtc_options(arch))
    if not result.ok or not result.ptx:
        raise RuntimeError(f"NVRTC could not compile {name}: {result.log}")
    return result.ptx
