"""Native (uncompressed) frames with NumPy: a view of the frame's bytes, byte order and planar
configuration applied; 1-bit frames unpacked from their bit offset. Native YBR_FULL_422 and big-endian
8-bit OW frames are left to pydicom's decoder."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..spec import PixelSpec


def reason_not(spec: PixelSpec, info: Any) -> str | None:
    if spec.is_ybr422_native:
        return "native YBR_FULL_422 (two samples a pixel on disk)"
    if spec.swaps_ow:
        return "big-endian 8-bit OW (bytes swapped across frames)"
    return None


def decode(data, spec: PixelSpec, info: Any = None) -> np.ndarray:
    """The frame's samples, shaped (rows, cols[, samples]); `info` holds ``bit_offset`` for 1-bit frames."""
    if spec.bits_allocated == 1:
        bit = (info or {}).get("bit_offset", 0)
        view = np.frombuffer(data, dtype=np.uint8)
        bits = np.unpackbits(view, bitorder="little")[bit : bit + spec.frame_pixels]
        if bits.size != spec.frame_pixels:
            raise ValueError(f"the frame holds {bits.size} of {spec.frame_pixels} bits")
        return bits.reshape(spec.frame_shape)
    dtype = spec.dtype.newbyteorder("<" if spec.is_little_endian else ">")
    arr = np.frombuffer(data, dtype=dtype, count=spec.frame_pixels)
    if spec.samples_per_pixel == 1:
        return arr.reshape(spec.rows, spec.columns)
    if spec.planar_configuration == 0:
        return arr.reshape(spec.frame_shape)
    return arr.reshape(spec.samples_per_pixel, spec.rows, spec.columns).transpose(1, 2, 0)
