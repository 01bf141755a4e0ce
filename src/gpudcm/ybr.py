"""YBR_FULL -> RGB for 8-bit samples from lookup tables, equal to pydicom's ``convert_color_space``.

pydicom converts in float32: ``(Y, Cb - 128, Cr - 128) @ M`` through NumPy's matmul (BLAS sgemm for images
two or more pixels wide, which fuses the multiply-adds), ``+ 0.5``, floor, clip to 0..255. With M's ones
and zeros, R depends on (Y, Cr) alone, B on (Y, Cb) alone and G on all three
(``fma(Cr', m, fma(Cb', m', Y))``; see ``kernels/colour.cuh``). So R and B are 256x256 tables and G a
256x256x256 one (16 MiB), each built once from that arithmetic (a float32 fma is exact in float64
before its one rounding, for these operands) and then checked against pydicom's own function on every
(Cb, Cr) pair at four Y values and two spreads of Y, in images of several widths: where this machine's
BLAS computes anything differently, the tables are not used and pydicom converts. Measured on the dev VM: 1.2 ms against
1.9-3.8 ms a 640x480 frame (pydicom's float32 temporaries fault in fresh pages every call)."""

from __future__ import annotations

import threading

import numpy as np

from . import host_memory

_lock = threading.Lock()
_tables: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
_refused: str | None = None  # why the tables are not used here, once checked

_M = np.asarray([[1.000, 1.000, 1.000], [0.000, -0.114 * 1.772 / 0.587, 1.772],
                 [1.402, -0.299 * 1.402 / 0.587, 0.000]], dtype=np.float32)  # pydicom's matrix


def _rounded(v: np.ndarray) -> np.ndarray:
    """pydicom's last steps on float32 values: + 0.5 (float32), floor, clip to 0..255, to uint8."""
    v = v.astype(np.float32)
    v += np.float32(0.5)
    np.floor(v, out=v)
    np.clip(v, 0, 255, out=v)
    return v.astype(np.uint8)


def _build() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.arange(256, dtype=np.float64)[:, None]
    c = np.arange(256, dtype=np.float64)[None, :] - 128.0
    red = _rounded(y + c * np.float64(_M[2, 0]))  # [Y, Cr]
    blue = _rounded(y + c * np.float64(_M[1, 2]))  # [Y, Cb]
    partial = (y + c * np.float64(_M[1, 1])).astype(np.float32).astype(np.float64)  # fma(Cb', m', Y): [Y, Cb]
    cr_term = c.reshape(-1) * np.float64(_M[2, 1])
    green = np.empty((256, 256, 256), np.uint8)  # [Y, Cb, Cr]
    for yy in range(256):
        green[yy] = _rounded(partial[yy][:, None] + cr_term[None, :])
    return red.reshape(-1), blue.reshape(-1), green.reshape(-1)


def _probe() -> np.ndarray:
    """Every (Cb, Cr) pair at Y = 0, 1, 127 and 128, and twice more with Y spread over 0..255 by
    (Cb, Cr): (393216, 3) samples."""
    cb, cr = np.meshgrid(np.arange(256, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    parts = []
    for k, y in enumerate((0, 1, 127, 128, 254, 255)):
        yy = np.full(cb.shape, y, np.uint8) if k < 4 else ((cb.astype(np.uint16) * 7 + cr * 13 + y) % 256).astype(np.uint8)
        parts.append(np.stack([yy, cb, cr], axis=-1).reshape(-1, 3))
    return np.concatenate(parts)


def _checked(tables) -> str | None:
    """Why the tables differ from pydicom's conversion on this machine, None when they agree."""
    from pydicom.pixels.processing import convert_color_space

    samples = _probe()
    for width in (1024, 641, 17, 3, 2):  # full BLAS blocks and every kind of remainder
        n = len(samples) // width * width
        img = samples[:n].reshape(-1, width, 3)
        want = convert_color_space(img, "YBR_FULL", "RGB")
        got = _convert(img, np.empty_like(img), tables)
        if not np.array_equal(got, want):
            bad = int(np.count_nonzero(got != want))
            return f"{bad} samples differ from pydicom's conversion at width {width} (this BLAS rounds differently)"
    return None


def _ready() -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    global _tables, _refused
    if _tables is not None or _refused is not None:
        return _tables
    with _lock:
        if _tables is None and _refused is None:
            tables = _build()
            why = _checked(tables)
            if why is None:
                _tables = tables
            else:
                _refused = why
    return _tables


def refused() -> str | None:
    """Why pydicom's conversion is used in place of the tables here (None: the tables are used)."""
    _ready()
    return _refused


def _convert(arr: np.ndarray, out: np.ndarray, tables) -> np.ndarray:
    """Every index taken from `arr` before anything is written: `out` may be `arr`."""
    red, blue, green = tables
    src, dst = arr.reshape(-1, 3), out.reshape(-1, 3)
    n = len(src)
    yr, yb, yg = (host_memory.empty(n, np.uint32) for _ in range(3))
    yr[:] = src[:, 0]
    yr <<= 8
    yb[:] = yr
    yr |= src[:, 2]  # Y << 8 | Cr
    yb |= src[:, 1]  # Y << 8 | Cb
    np.left_shift(yb, 8, out=yg)
    yg |= src[:, 2]  # Y << 16 | Cb << 8 | Cr
    taken = host_memory.empty(n, np.uint8)
    for channel, table, index in ((0, red, yr), (1, green, yg), (2, blue, yb)):
        np.take(table, index, out=taken, mode="clip")
        dst[:, channel] = taken
    return out


def to_rgb(arr: np.ndarray, out: np.ndarray | None = None) -> np.ndarray | None:
    """`arr` (uint8, ``(..., cols, 3)``, cols >= 2) converted to RGB into `out` (may be `arr`), as
    ``pydicom.pixels.processing.convert_color_space(arr, "YBR_FULL", "RGB")`` returns it; None where the
    tables do not apply (another dtype or shape, one pixel wide: NumPy sends that to an unfused BLAS
    call) or are refused on this machine (the caller then uses pydicom's)."""
    if (arr.dtype != np.uint8 or arr.ndim < 2 or arr.shape[-1] != 3 or arr.shape[-2] < 2
            or not arr.flags.c_contiguous or arr.size == 0):
        return None
    if out is not None and (out.shape != arr.shape or out.dtype != np.uint8 or not out.flags.c_contiguous):
        return None
    tables = _ready()
    if tables is None:
        return None
    return _convert(arr, np.empty_like(arr) if out is None else out, tables)
