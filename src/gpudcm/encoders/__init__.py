"""Encoders for the compressed transfer syntaxes the writer produces (the decoders' mirror image).

Per transfer syntax the encoders are tried by device: nvImageCodec on the GPU for a CuPy array (or
``device="cuda"``), then the CPU encoder of the syntax's family (OpenJPH for HTJ2K, OpenJPEG for JPEG 2000,
CharLS for JPEG-LS; :mod:`.cpu`). :func:`encode_frames` encodes a ``(frames, rows, cols[, samples])`` array
one codestream per frame, frames on a thread pool where the encoder releases the GIL, and checks every
codestream against the request (:mod:`.verify`) before handing it back. RLE Lossless stays with pydicom's
encoder in :mod:`gpudcm.writer`.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.uid import UID

from ..errors import DeviceUnavailable, InvalidPixelData
from ..host import to_host
from . import gpu
from .cpu import CPU_ENCODERS, CpuEncoder
from .syntaxes import COMPRESSED_SYNTAXES, LOSSY_OF, NAMES, RULES, Request, plan
from .verify import check

__all__ = ["COMPRESSED_SYNTAXES", "NAMES", "Encoded", "Request", "encode_frames", "encoder_status", "plan"]


@dataclass
class Encoded:
    """The codestreams of one array and what the dataset must say about them."""

    frames: list[bytes]
    request: Request
    backend: str  # "openjph", "openjpeg", "charls", "nvimgcodec" or e.g. "nvimgcodec+openjph"

    @property
    def nbytes(self) -> int:
        return sum(len(f) for f in self.frames)


def cpu_encoder(req: Request) -> CpuEncoder:
    enc = next(e for e in CPU_ENCODERS if e.family == req.rule.family)
    why = enc.unavailable()
    if why:
        raise InvalidPixelData(f"cannot write '{req.syntax.name}' on the CPU: {why}")
    return enc


def encoder_status() -> list[tuple[str, str, str, str | None]]:
    """(transfer syntax name, device, encoder, why not available or None) for every syntax."""
    rows = []
    for uid, rule in RULES.items():
        cpu = next(e for e in CPU_ENCODERS if e.family == rule.family)
        rows.append((uid.name, "cpu", cpu.name, cpu.unavailable()))
        if rule.family == "jpegls":
            rows.append((uid.name, "cuda", "-", "nvImageCodec has no JPEG-LS encoder"))
        else:
            rows.append((uid.name, "cuda", "nvimgcodec", gpu.unavailable()))
    return rows


def _frame(arr: np.ndarray, i: int) -> np.ndarray:
    return np.ascontiguousarray(arr[i])


def _encode_cpu(host: np.ndarray, req: Request, indices: list[int], workers: int | None) -> dict[int, bytes]:
    enc = cpu_encoder(req)

    def one(i: int) -> bytes:
        data = enc.encode(_frame(host, i), req)
        check(data, req)
        return data

    n = len(indices)
    threads = 1 if not enc.releases_gil else max(1, min(n, workers or os.cpu_count() or 1))
    if threads == 1:
        return {i: one(i) for i in indices}
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(zip(indices, pool.map(one, indices)))


def accepted(frames: list[bytes | None], req: Request) -> dict[int, bytes]:
    """The GPU's codestreams that exist and pass the check (the others are encoded on the CPU)."""
    out = {}
    for i, data in enumerate(frames):
        if data is None:
            continue
        try:
            check(data, req)
        except InvalidPixelData:
            continue
        out[i] = data
    return out


def _wants_gpu(arr: Any, req: Request, device: str) -> bool:
    if device == "cpu":
        return False
    why = gpu.unavailable(req)
    if device == "cuda":
        if why:
            raise DeviceUnavailable(f"device='cuda': cannot encode '{req.syntax.name}' on the GPU: {why}")
        return True
    if device != "auto":
        raise DeviceUnavailable(f"unknown device {device!r}; use auto, cpu or cuda")
    return why is None and hasattr(arr, "__cuda_array_interface__")


def encode_frames(arr: Any, req: Request, *, device: str = "auto", workers: int | None = None,
                  nvimgcodec: Any = None) -> Encoded:
    """Encode `arr` (NumPy or CuPy, ``(frames, rows, cols[, samples])``, checked values) as `req` says.

    ``device="auto"``: the GPU for a CuPy array when nvImageCodec can take the request, else the CPU;
    ``"cuda"``: the GPU or :class:`DeviceUnavailable`; ``"cpu"``: the CPU. A frame the GPU does not
    encode (``None`` from nvImageCodec, or a codestream that fails the check) is encoded on the CPU.
    `workers`: threads for the CPU encoders that release the GIL (default: one per core).
    """
    n = int(arr.shape[0])
    out: dict[int, bytes] = {}
    backends = []
    host = None
    if _wants_gpu(arr, req, device):
        import cupy

        out.update(accepted(gpu.encode_batch(cupy.asarray(arr), req, nvimgcodec=nvimgcodec), req))
        backends.append("nvimgcodec")
    todo = [i for i in range(n) if i not in out]
    if todo:
        host = to_host(arr)
        out.update(_encode_cpu(host, req, todo, workers))
        backends.append(cpu_encoder(req).name)
    return Encoded([out[i] for i in range(n)], req, "+".join(backends))


def lossy_of(syntax: UID) -> UID | None:
    """The lossy sibling of a lossless syntax (HTJ2K Lossless -> HTJ2K), or None."""
    return LOSSY_OF.get(UID(syntax))
