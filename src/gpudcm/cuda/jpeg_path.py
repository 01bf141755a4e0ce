"""JPEG / JPEG 2000 / HTJ2K files on the device: route every frame, decode the GPU frames in batches
(nvJPEG, nvImageCodec), the rest with pydicom's CPU plugin, and assemble one array with the CPU path's
shape, dtype and colour handling. The GPU libraries return their own kind of output (component planes at
their real size, raw samples); this module finishes it on the device as pydicom finishes its plugins'
output: chroma upsampling, Bits Stored correction, J2K sign, YBR -> RGB. The decoders and the kernel
launchers (``ops``) are injectable, so CI runs all of it on the CPU behind contract-keeping stand-ins."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .. import cpu
from ..codecs import choose, conformed_photometric as jpeg_photometric, decode_frame, frame_info
from ..errors import DecodeError
from ..frames import frame_bytes, frame_extents
from ..pydicom_compat import decoding_plugins, get_jpg_parameters
from ..routing import J2K_SYNTAXES, FrameInfo, GpuEnv, parse_frame, route_frame
from ..spec import PixelSpec
from .colour import YBR_PHOTOMETRICS, ybr_to_rgb
from .j2k import finish_frame, finished_photometric
from .kernels import plan_unused_bits
from .native import check_status
from .upsample import component_shapes, expansion, upsample_frames

Decoders = Mapping[str, Callable[..., list]]
_log = logging.getLogger("gpudcm")


def default_decoders() -> dict[str, Callable[..., list]]:
    from . import j2k, nvjpeg

    return {"nvjpeg": nvjpeg.decode_batch, "j2k": j2k.decode_batch}


def conformed_photometric(spec: PixelSpec, frame: bytes) -> str:
    """The photometric interpretation pydicom decodes `frame` as: JPEG 2000 as pydicom finishes it, JPEG by
    the CPU codecs' rule (pydicom's ``_conform_jpg_colorspace``)."""
    if str(spec.transfer_syntax) in J2K_SYNTAXES:
        return finished_photometric(spec.photometric_interpretation)
    if spec.samples_per_pixel != 3:
        return spec.photometric_interpretation
    return jpeg_photometric(spec, get_jpg_parameters(bytes(frame)))


def correct_unused_bits(arr, spec: PixelSpec, *, launcher, xp, into=None):
    """pydicom's ``_correct_unused_bits`` on decoded frames `arr` ((n, *frame_shape), spec.dtype) for every
    encapsulated syntax but JPEG 2000 and JPEG-LS, run by the native kernel (its mask/sign-extend logic);
    written into `into` (that shape and dtype) when given, which may be `arr` itself: this launch reads
    sample i's bytes and writes sample i only, in the same thread (no planar or 4:2:2 index mapping), so
    in place needs no temporary."""
    if str(spec.transfer_syntax) in J2K_SYNTAXES or not spec.corrects_unused_bits or not arr.size:
        if into is not None and into is not arr:
            into[...] = arr
        return arr if into is None else into
    plan = plan_unused_bits(spec, arr.shape[0])
    src = xp.ascontiguousarray(arr).reshape(-1).view(xp.uint8)
    frame_bytes_ = spec.frame_pixels * arr.dtype.itemsize
    offsets = np.arange(arr.shape[0], dtype=np.int64) * frame_bytes_
    out = into if into is not None else xp.empty(arr.shape, dtype=arr.dtype)
    check_status(spec, launcher(plan, src, offsets, out.reshape(-1)))
    return out


def reference_upsampler(spec: PixelSpec, frame: bytes) -> str:
    """The chroma upsampler (``gpudcm.cuda.upsample.UPSAMPLERS``) of the CPU decode the device must match
    for a lossy JPEG `frame`: the CPU registry's backend for it (``gpudcm.codecs.choose``; subsampled chroma
    goes to pydicom's plugin), and pydicom's first plugin for the syntax: ``"richter"`` when that is
    pylibjpeg (pylibjpeg-libjpeg: Richter's libjpeg, whose in-place 4:2:2 filter differs from
    libjpeg-turbo's by up to 28 on noisy chroma), else ``"turbo"`` (libjpeg-turbo through imagecodecs or
    Pillow; GDCM's IJG libjpeg filters as libjpeg-turbo does). Non-subsampled frames upsample nothing."""
    try:
        backend, _ = choose(spec, frame_info(spec, frame))
    except Exception:  # no CPU codec installed: nothing to match but the JPEG family's own filter
        return "turbo"
    if backend.name == "pydicom-plugins" and decoding_plugins(spec.transfer_syntax)[:1] == ["pylibjpeg"]:
        return "richter"
    return "turbo"


def _as_container(item, spec: PixelSpec, xp):
    """nvJPEG's lossless uint16 samples in the Bits Allocated container (bits read as pydicom reads them)."""
    arr = xp.asarray(item).reshape(spec.frame_shape)
    return arr.view(spec.dtype) if arr.dtype.itemsize == spec.dtype.itemsize else arr.astype(spec.dtype)


def _finish_group(backend: str, mode: str | None, items: list, metas: list, spec: PixelSpec, ops,
                  upsampler: Callable[[int], str]) -> list:
    """Library items -> frames in spec.dtype (uncorrected for Bits Stored); an Exception per item that failed.
    ``upsampler(n)``: how item `n`'s chroma is upsampled (asked once per plane layout)."""
    xp = ops.xp
    out: list = [None] * len(items)
    if backend == "j2k":
        for n, (item, info) in enumerate(zip(items, metas)):
            try:
                out[n] = finish_frame(item, info, spec, xp=xp).reshape(spec.frame_shape)
            except Exception as exc:
                out[n] = exc
        return out
    shapes: dict[tuple, list[int]] = {}
    for n, (item, info) in enumerate(zip(items, metas)):
        if item is None:
            out[n] = DecodeError("nvjpegDecodeBatchedSupported: the backend does not take this stream")
        elif mode == "lossless":
            try:
                out[n] = _as_container(item, spec, xp)
            except Exception as exc:
                out[n] = exc
        else:
            shapes.setdefault((tuple(component_shapes(info)), tuple(expansion(info))), []).append(n)
    for ns in shapes.values():  # one upsampling launch per plane layout
        try:
            # the CPU rule depends on the sampling factors, precision and colour markers; only subsampled
            # frames are filtered, and every subsampled layout gets one answer, so the first frame decides
            frames = upsample_frames([items[n] for n in ns], metas[ns[0]], launcher=ops.upsample_launcher, xp=xp,
                                     upsampler=upsampler(ns[0]))
            for n, arr in zip(ns, frames):
                out[n] = arr.reshape(spec.frame_shape).astype(spec.dtype, copy=False)
        except Exception as exc:
            for n in ns:
                out[n] = exc
    return out


class _Frames:
    """The frames of a JPEG-family element: a gpudcm.reader.PixelReader's (each read from the file when
    its batch is decoded) or a Dataset's (its Pixel Data in memory)."""

    def __init__(self, source, spec: PixelSpec, extended_offsets) -> None:
        self.source, self.spec = source, spec
        if hasattr(source, "read_into"):
            self.extents = source.frames
        else:
            self.buffer = source.PixelData
            self.extents = frame_extents(spec, self.buffer, extended_offsets=extended_offsets)

    def read(self, i: int) -> bytes:
        if hasattr(self.source, "read_into"):
            return bytes(self.source.frame_bytes(i))
        return bytes(frame_bytes(self.buffer, self.extents[i]))

    def cpu(self, data: dict, i: int):
        """Frame `i` on the CPU (raw samples): the codec registry on its bytes; a missing frame through
        the CPU path, which raises pydicom's error."""
        if i in data:
            return decode_frame(self.spec, data[i], raw=True)
        if hasattr(self.source, "read_into"):
            from ..frame_decode import decode_frames

            return decode_frames(self.source, [i], raw=True)[0]
        return cpu.decode(self.source, self.spec, index=i, raw=True)


# Compressed bytes read and decoded per batch: the host holds one batch of the element, not all of it.
JPEG_BATCH_BYTES = 32 << 20


def decode_jpeg_family(
    ds, spec: PixelSpec, *, index, raw: bool, as_rgb: bool, ops, env: GpuEnv,
    decoders: Decoders | None = None, extended_offsets=None, out=None, batch_bytes: int | None = None,
    upsampler: str | None = None,
) -> tuple[Any, list[FrameInfo]]:
    """All frames (``index=None``), frame `index` (an int) or frames `index` (a list: a frame axis kept)
    of a JPEG-family file as one `ops.xp` array, and where each went. `ds` is a Dataset holding the
    element or a gpudcm.reader.PixelReader: then each batch of frames (`batch_bytes`, default
    JPEG_BATCH_BYTES, of compressed bytes) is read from the file when it is decoded. `out` (C-contiguous,
    the result's shape and dtype) receives the frames, with no temporary of its size.

    Subsampled nvJPEG frames are upsampled as the CPU decode does (:func:`reference_upsampler`: Richter's
    filter where that is pydicom's plugin), or as `upsampler` says (``"turbo"``: libjpeg-turbo's values).

    A GPU library failing at run time (raising, or returning None for an item) does not fail the call:
    those frames are decoded by the CPU plugin, and their FrameInfo names the backend that failed and why.
    """
    from .pipeline import split_batches

    xp = ops.xp
    frames = _Frames(ds, spec, extended_offsets)
    if index is None:
        wanted = list(range(spec.number_of_frames))
    elif isinstance(index, (list, tuple)):
        wanted = [spec.check_index(i) for i in index]
    else:
        wanted = [spec.check_index(index)]
    shape = (len(wanted), *spec.frame_shape)
    if out is not None and (tuple(out.shape) not in (shape, shape[1:]) or out.dtype != spec.dtype):
        out = None  # not this result's: the caller copies (and checks) as it would without it
    full = out.reshape(shape) if out is not None else xp.empty(shape, dtype=spec.dtype)
    sizes = [sum(e.length for e in frames.extents[i]) if i < len(frames.extents) else 0 for i in wanted]
    infos: list[FrameInfo] = []
    first: bytes | None = None
    for batch in split_batches(sizes, batch_bytes or JPEG_BATCH_BYTES):
        rows = full[batch.start : batch.stop]
        data = {i: frames.read(i) for i in wanted[batch.start : batch.stop] if i < len(frames.extents)}
        if batch.start == 0 and wanted[0] in data:
            first = data[wanted[0]]
        on_gpu = _decode_rows(frames, spec, wanted[batch.start : batch.stop], data, rows, infos, ops, env, decoders,
                              upsampler)
        if on_gpu and spec.corrects_unused_bits:  # the CPU frames are corrected already; correcting is idempotent
            correct_unused_bits(rows, spec, launcher=ops.native_launcher, xp=xp, into=rows)
    pi = conformed_photometric(spec, first) if first is not None else spec.photometric_interpretation
    if not raw and as_rgb and pi in YBR_PHOTOMETRICS:  # every frame is raw YBR here, as pydicom converts
        full = ybr_to_rgb(full, launcher=ops.colour_launcher, xp=xp)
    if out is not None:
        return out, infos
    result = full[0] if (index is not None and not isinstance(index, (list, tuple))) or (index is None and len(wanted) == 1) else full
    return result, infos


def _decode_rows(frames: _Frames, spec: PixelSpec, wanted: list[int], data: dict, out, infos: list, ops, env: GpuEnv,
                 decoders: Decoders | None, upsampler: str | None = None) -> list[int]:
    """Frames `wanted` (their bytes in `data`) into ``out[k]``: routed, the GPU ones decoded in batches
    (subsampled chroma upsampled as `upsampler` says, else as the CPU decode does), the rest (and GPU
    failures) by the CPU plugin; appends a FrameInfo each. Returns the rows the GPU decoded."""
    xp = ops.xp
    base = len(infos)
    routes, parsed = {}, {}
    for i in wanted:
        if i not in data:
            routes[i] = None  # missing frame: the CPU path raises its own error
            continue
        try:
            parsed[i] = parse_frame(spec, data[i])
            routes[i] = route_frame(spec, parsed[i], env)
        except Exception:  # an unparsable header: pydicom's plugin decides (and raises if it must)
            routes[i] = None
    groups: dict[tuple, list[int]] = {}
    for k, i in enumerate(wanted):
        route = routes[i]
        if route is None or route.backend == "cpu-plugin":
            out[k] = xp.asarray(frames.cpu(data, i))
            infos.append(FrameInfo(spec.source, i, "cpu-plugin", route.reason if route else "header not routable"))
        else:
            groups.setdefault((route.backend, route.mode), []).append(k)
            infos.append(FrameInfo(spec.source, i, route.backend, route.reason))
    decoders = decoders or (default_decoders() if groups else {})
    on_gpu: list[int] = []
    for (backend, mode), ks in groups.items():
        batch = [data[wanted[k]] for k in ks]
        metas = [parsed[wanted[k]] for k in ks]
        try:
            items = decoders[backend](batch, metas, mode) if backend == "nvjpeg" else decoders[backend](batch, metas, spec)
            if len(items) != len(ks):
                raise DecodeError(f"{backend} returned {len(items)} items for {len(ks)} frames")
            finished = _finish_group(backend, mode, list(items), metas, spec, ops,
                                     lambda n: upsampler or reference_upsampler(spec, batch[n]))
        except Exception as exc:  # the whole call failed
            finished = [exc] * len(ks)
        for k, arr in zip(ks, finished):
            if isinstance(arr, Exception):
                why = f"{backend} failed ({type(arr).__name__}: {arr}); decoded by the CPU plugin"
                _log.warning("%s frame %d: %s", spec.source, wanted[k], why)
                out[k] = xp.asarray(frames.cpu(data, wanted[k]))
                infos[base + k] = FrameInfo(spec.source, wanted[k], "cpu-plugin", why, fallback_from=backend)
            else:
                out[k] = arr
                on_gpu.append(k)
    return on_gpu
