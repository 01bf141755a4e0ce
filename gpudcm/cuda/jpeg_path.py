"""JPEG / JPEG 2000 / HTJ2K files on the device: route every frame, decode the GPU frames in batches
(nvJPEG, nvImageCodec), the rest with pydicom's CPU plugin, and assemble one array with the CPU path's
shape, dtype and colour handling. The decoders are injectable so CI drives the assembly on the CPU."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydicom.pixels.utils import _get_jpg_parameters
from pydicom.uid import JPEGBaseline8Bit

from .. import cpu
from ..codecs import decode_frame
from ..frames import frame_bytes, frame_extents
from ..routing import J2K_SYNTAXES, FrameInfo, GpuEnv, parse_frame, route_frame
from ..spec import PixelSpec
from .colour import YBR_PHOTOMETRICS, ybr_to_rgb
from .j2k import finished_photometric

Decoders = Mapping[str, Callable[..., list]]


def default_decoders() -> dict[str, Callable[..., list]]:
    from . import j2k, nvjpeg

    return {"nvjpeg": nvjpeg.decode_batch, "j2k": j2k.decode_batch}


def conformed_photometric(spec: PixelSpec, frame: bytes) -> str:
    """The photometric interpretation pydicom decodes JPEG `frame` as (its ``_conform_jpg_colorspace``:
    RGB component ids mean RGB; a JFIF marker on non-YBR data means YBR)."""
    pi = spec.photometric_interpretation
    if str(spec.transfer_syntax) in J2K_SYNTAXES:
        return finished_photometric(pi)
    if spec.samples_per_pixel != 3:
        return pi
    info = _get_jpg_parameters(bytes(frame))
    if info.get("component_ids") in ([82, 71, 66], [114, 103, 98]):
        return "RGB"
    ybr = "YBR_FULL_422" if spec.transfer_syntax == JPEGBaseline8Bit else "YBR_FULL"
    if any(m.startswith(b"JFIF") for m in info.get("app", {}).values()) and "YBR" not in pi:
        return ybr
    return pi


def _cpu_frame(ds, spec: PixelSpec, data: dict, i: int):
    """Frame `i` on the CPU (raw samples): the codec registry on its bytes; a missing frame through the
    CPU path, which raises pydicom's error."""
    if i in data:
        return decode_frame(spec, data[i], raw=True)
    return cpu.decode(ds, spec, index=i, raw=True)


def decode_jpeg_family(
    ds, spec: PixelSpec, *, index: int | None, raw: bool, as_rgb: bool, ops, env: GpuEnv,
    decoders: Decoders | None = None, extended_offsets=None,
) -> tuple[Any, list[FrameInfo]]:
    """All frames (or frame `index`) of a JPEG-family file as one `ops.xp` array, and where each went."""
    xp = ops.xp
    buffer = ds.PixelData
    frames = frame_extents(spec, buffer, extended_offsets=extended_offsets)
    wanted = list(range(spec.number_of_frames)) if index is None else [spec.check_index(index)]
    data = {i: bytes(frame_bytes(buffer, frames[i])) for i in wanted if i < len(frames)}
    infos, routes, parsed = [], {}, {}
    for i in wanted:
        if i not in data:
            routes[i] = None  # missing frame: the CPU path raises its own error
            continue
        try:
            parsed[i] = parse_frame(spec, data[i])
            routes[i] = route_frame(spec, parsed[i], env)
        except Exception:  # an unparsable header: pydicom's plugin decides (and raises if it must)
            routes[i] = None
    out = xp.empty((len(wanted), *spec.frame_shape), dtype=spec.dtype)
    groups: dict[tuple, list[int]] = {}
    for k, i in enumerate(wanted):
        route = routes[i]
        if route is None or route.backend == "cpu-plugin":
            out[k] = xp.asarray(_cpu_frame(ds, spec, data, i))
            infos.append(FrameInfo(spec.source, i, "cpu-plugin", route.reason if route else "header not routable"))
        else:
            groups.setdefault((route.backend, route.mode), []).append(k)
            infos.append(FrameInfo(spec.source, i, route.backend, route.reason))
    decoders = decoders or (default_decoders() if groups else {})
    for (backend, mode), ks in groups.items():
        batch = [data[wanted[k]] for k in ks]
        metas = [parsed[wanted[k]] for k in ks]
        try:
            decoded = decoders[backend](batch, metas, mode) if backend == "nvjpeg" else decoders[backend](batch, metas, spec)
        except Exception as exc:  # a GPU library failing at run time: the CPU plugin decides, frame by frame
            why = f"{backend} failed ({type(exc).__name__}: {exc}); decoded by the CPU plugin"
            decoded = [xp.asarray(_cpu_frame(ds, spec, data, wanted[k])) for k in ks]
            for k in ks:
                infos[k] = FrameInfo(spec.source, wanted[k], "cpu-plugin", why)
        for k, arr in zip(ks, decoded):
            out[k] = arr.reshape(spec.frame_shape).astype(spec.dtype, copy=False)
    pi = conformed_photometric(spec, data[wanted[0]]) if wanted[0] in data else spec.photometric_interpretation
    if not raw and as_rgb and pi in YBR_PHOTOMETRICS:  # every frame is raw YBR here, as pydicom converts
        out = ybr_to_rgb(out, launcher=ops.colour_launcher, xp=xp)
    result = out[0] if index is not None or len(wanted) == 1 else out
    return result, infos


