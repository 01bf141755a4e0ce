"""Per-frame routing of JPEG-family frames: nvJPEG, nvImageCodec (``j2k``) or the CPU plugins.

Everything here is pure: the GPU libraries' presence and versions come in as a :class:`GpuEnv`
(:func:`detect_env` builds the real one) and each frame's header as parsed by
:mod:`gpudcm.jpeg_markers`. Each decision carries the reason, so callers can report per frame which
path decoded it (:class:`FrameInfo`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pydicom.uid import UID

from .errors import InvalidPixelData
from .jpeg_markers import J2kInfo, JpegInfo, parse_j2k, parse_jpeg
from .spec import PixelSpec

JPEG_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                           "1.2.840.10008.1.2.4.70"})
J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
                          "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})
ROUTE_BACKENDS = ("nvjpeg", "j2k", "cpu-plugin")
# nvJPEG releases before 13.0.2 decode 9-15-bit lossless frames as all zeros
MIN_NVJPEG_LOSSLESS = (13, 0, 2)
# NVJPEG_BACKEND_LOSSLESS_JPEG: "process 14, selection value 1 ... up to 2 channels" (nvJPEG documentation)
NVJPEG_LOSSLESS_MAX_COMPONENTS = 2


@dataclass(frozen=True)
class GpuEnv:
    """What the GPU decoders offer: nvJPEG's version (None: not loadable) and nvImageCodec's presence."""

    nvjpeg: tuple[int, int, int] | None = None
    nvimgcodec: bool = False


FULL_ENV = GpuEnv(nvjpeg=(13, 3, 2), nvimgcodec=True)
NO_GPU_ENV = GpuEnv()


@dataclass(frozen=True)
class Route:
    """Where one frame goes: ``backend`` in :data:`ROUTE_BACKENDS`; ``mode`` says how (nvJPEG only:
    ``"dct"`` for the default/hardware backend, ``"lossless"`` for NVJPEG_BACKEND_LOSSLESS_JPEG)."""

    backend: str
    reason: str
    mode: str | None = None


@dataclass(frozen=True)
class FrameInfo:
    """Which path decoded frame `frame` of `source` (what ``decode_batch(..., return_info=True)`` lists)."""

    source: str
    frame: int
    backend: str  # "kernel", "nvjpeg", "j2k" or "cpu-plugin"
    reason: str
    fallback_from: str | None = None  # the GPU backend that failed at run time, when the CPU took over


def _cpu(reason: str) -> Route:
    return Route("cpu-plugin", reason)


def _mismatch(spec: PixelSpec, rows: int, cols: int, samples: int) -> str | None:
    if (rows, cols, samples) != (spec.rows, spec.columns, spec.samples_per_pixel):
        return (f"codestream is {rows}x{cols}x{samples} but the dataset says "
                f"{spec.rows}x{spec.columns}x{spec.samples_per_pixel}")
    return None


def route_jpeg(spec: PixelSpec, info: JpegInfo, env: GpuEnv = FULL_ENV) -> Route:
    """Route one JPEG (10918-1) frame."""
    if env.nvjpeg is None:
        return _cpu("nvJPEG is not available")
    if info.sof == 0xF7:
        return _cpu("JPEG-LS codestream (nvJPEG has no JPEG-LS decoder)")
    if info.hierarchical:
        return _cpu(f"hierarchical JPEG ({info.process})")
    if info.arithmetic:
        return _cpu(f"arithmetic coding ({info.process})")
    if info.sof == 0xC2:
        return _cpu("progressive JPEG")
    why = _mismatch(spec, info.rows, info.columns, info.samples)
    if why:
        return _cpu(why)
    if info.sof in (0xC0, 0xC1):
        if info.precision != 8:
            return _cpu(f"{info.precision}-bit {info.process} JPEG (nvJPEG decodes 8-bit DCT only)")
        if info.samples not in (1, 3):
            return _cpu(f"{info.samples}-component DCT JPEG")
        if info.subsampling not in ("gray", "444", "422", "420"):
            sf = ",".join(f"{c.h}x{c.v}" for c in info.components)
            return _cpu(f"chroma sampling {sf} is not 4:4:4, 4:2:2 or 4:2:0")
        if info.samples == 3 and info.adobe_transform is not None:
            return _cpu("Adobe APP14 colour transform marker (the CPU decoder's handling is not reproduced)")
        if spec.bits_allocated != 8:
            return _cpu(f"8-bit DCT JPEG in a {spec.bits_allocated}-bit Bits Allocated container")
        return Route("nvjpeg", f"8-bit {info.process} {info.subsampling} DCT", "dct")
    if info.sof == 0xC3:
        if env.nvjpeg < MIN_NVJPEG_LOSSLESS:
            v = ".".join(map(str, env.nvjpeg))
            return _cpu(f"nvJPEG {v} < 13.0.2 returns all-zero frames for 9-15-bit lossless JPEG")
        if info.predictor != 1:
            return _cpu(f"lossless predictor (selection value) {info.predictor}, nvJPEG decodes only 1")
        if info.point_transform:
            return _cpu(f"lossless point transform {info.point_transform}")
        if not 2 <= info.precision <= 16:
            return _cpu(f"lossless precision {info.precision} outside 2-16")
        if info.precision > spec.bits_allocated:
            return _cpu(f"lossless precision {info.precision} exceeds Bits Allocated {spec.bits_allocated}")
        if len(info.scans) != 1 or len(info.scans[0].components) != info.samples:
            return _cpu(f"lossless frame in {len(info.scans)} scan(s), not one interleaved scan")
        if info.separate_huffman:
            return _cpu(f"{info.samples}-component lossless with a Huffman table per component")
        if info.samples != 1:  # DICOM has no 2-sample layout, the one count above grey that the backend takes
            return _cpu(f"{info.samples}-component lossless JPEG (nvJPEG's lossless backend decodes at most "
                        f"{NVJPEG_LOSSLESS_MAX_COMPONENTS} channels; gpudcm sends it grey frames only)")
        return Route("nvjpeg", f"{info.precision}-bit lossless, selection value 1", "lossless")
    return _cpu(f"JPEG process {info.process} is not decoded by nvJPEG")


def route_j2k(spec: PixelSpec, info: J2kInfo, env: GpuEnv = FULL_ENV) -> Route:
    """Route one JPEG 2000 / HTJ2K frame."""
    if not env.nvimgcodec:
        return _cpu("nvImageCodec is not importable")
    why = _mismatch(spec, info.rows, info.columns, info.components)
    if why:
        return _cpu(why)
    if info.jp2:
        return _cpu("JP2 file wrapper instead of a bare codestream")
    if info.components not in (1, 3):
        return _cpu(f"{info.components}-component JPEG 2000")
    if info.subsampled:
        return _cpu("subsampled JPEG 2000 components")
    if len(set(info.precisions)) > 1 or len(set(info.signed)) > 1:
        return _cpu("JPEG 2000 components differ in precision or signedness")
    if info.precision > 16:
        return _cpu(f"JPEG 2000 precision {info.precision} > 16")
    if info.precision > spec.bits_allocated:
        return _cpu(f"JPEG 2000 precision {info.precision} exceeds Bits Allocated {spec.bits_allocated}")
    if info.is_signed and info.precision <= 8:
        return _cpu(f"signed {info.precision}-bit JPEG 2000 (nvImageCodec's nvjpeg2k decoder takes signed 9-16 bits only)")
    kind = "HTJ2K" if info.high_throughput else "JPEG 2000"
    return Route("j2k", f"{info.precision}-bit {'signed' if info.is_signed else 'unsigned'} {kind}")


def route_frame(spec: PixelSpec, frame_info: JpegInfo | J2kInfo | None, env: GpuEnv = FULL_ENV) -> Route:
    """Route one frame of `spec` given its parsed header (None: the header did not parse)."""
    ts = str(spec.transfer_syntax)
    if ts not in JPEG_SYNTAXES and ts not in J2K_SYNTAXES:
        return _cpu(f"{UID(ts).name} is not a JPEG or JPEG 2000 transfer syntax")
    if frame_info is None:
        return _cpu("frame header did not parse")
    if ts in JPEG_SYNTAXES:
        if not isinstance(frame_info, JpegInfo):
            return _cpu("a JPEG transfer syntax with a non-JPEG frame")
        return route_jpeg(spec, frame_info, env)
    if not isinstance(frame_info, J2kInfo):
        return _cpu("a JPEG 2000 transfer syntax with a non-J2K frame")
    return route_j2k(spec, frame_info, env)


def parse_frame(spec: PixelSpec, data) -> JpegInfo | J2kInfo:
    """Parse a frame's header by its transfer syntax (raises InvalidPixelData)."""
    ts = str(spec.transfer_syntax)
    if ts in JPEG_SYNTAXES:
        return parse_jpeg(data)
    if ts in J2K_SYNTAXES:
        return parse_j2k(data)
    raise InvalidPixelData(f"{spec.source}: {UID(ts).name} frames have no JPEG/J2K header")


def route_bytes(spec: PixelSpec, data, env: GpuEnv = FULL_ENV) -> Route:
    """Parse and route one frame's bytes; a header that does not parse goes to the CPU with the reason."""
    try:
        info = parse_frame(spec, data)
    except InvalidPixelData as exc:
        return _cpu(f"frame header did not parse: {exc}")
    return route_frame(spec, info, env)


@functools.lru_cache(maxsize=1)
def detect_env() -> GpuEnv:
    """The GpuEnv of this process: nvJPEG's version from the library; nvImageCodec only where its GPU
    JPEG 2000 backend (nvjpeg2k) really decodes on the current device."""
    nvj = None
    try:
        from .cuda import nvjpeg

        nvj = nvjpeg.version()
    except Exception:
        nvj = None
    from .cuda.j2k import gpu_backend_here

    return GpuEnv(nvjpeg=nvj, nvimgcodec=gpu_backend_here()[0])
