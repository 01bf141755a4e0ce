"""CPU encoders, one function per codec family, each ``(frame, request) -> bytes`` for one frame.

- HTJ2K: OpenJPH through imagecodecs (releases the GIL). It writes the container's precision (8 or 16
  bits) into SIZ, which holds Bits Stored: decoders return the same values (OpenJPH has no option for a
  smaller precision in imagecodecs).
- JPEG 2000: OpenJPEG through imagecodecs (releases the GIL), precision = Bits Stored.
- JPEG-LS: CharLS through pydicom's own encoder (pyjpegls plugin), which maps signed samples to Bits
  Stored as pydicom's decoder expects them (holds the GIL: frames run one after another).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from .syntaxes import Request
from .verify import rpcl_levels


@dataclass(frozen=True)
class CpuEncoder:
    name: str
    family: str  # "htj2k" | "j2k" | "jpegls"
    package: str  # importable module that must be present
    releases_gil: bool
    encode: Callable[[np.ndarray, Request], bytes]

    def unavailable(self) -> str | None:
        """Why this encoder cannot run here, or None."""
        if importlib.util.find_spec(self.package) is None:
            return f"{self.package} is not installed (pip install 'gpudcm[codecs]')"
        if self.package == "imagecodecs":
            import imagecodecs

            codec = {"htj2k": "HTJ2K", "j2k": "JPEG2K"}[self.family]
            if not getattr(getattr(imagecodecs, codec, None), "available", False):
                return f"this imagecodecs build has no {codec} codec"
        return None


def _htj2k(frame: np.ndarray, req: Request) -> bytes:
    import imagecodecs

    kwargs = {"reversible": req.lossless}
    if req.samples == 3:
        kwargs["rgb"] = req.mct
    if req.rpcl:
        kwargs.update(resolutions=rpcl_levels(req.rows, req.columns), tlm=True)
    # OpenJPH's step is relative to the SIZ precision (the container): rescale it to Bits Stored's range
    step = None if req.lossless else req.quality * 2.0 ** (req.bits_stored - 8 * req.itemsize)
    return bytes(imagecodecs.htj2k_encode(frame, step, **kwargs))


def _j2k(frame: np.ndarray, req: Request) -> bytes:
    import imagecodecs

    return bytes(imagecodecs.jpeg2k_encode(
        frame, None if req.lossless else req.quality, codecformat="J2K", bitspersample=req.bits_stored,
        reversible=req.lossless, mct=req.mct, numthreads=1,
    ))


def _jpegls(frame: np.ndarray, req: Request) -> bytes:
    from pydicom.pixels.encoders import JPEGLSLosslessEncoder, JPEGLSNearLosslessEncoder

    encoder = JPEGLSLosslessEncoder if req.lossless else JPEGLSNearLosslessEncoder
    options = {
        "rows": req.rows, "columns": req.columns, "samples_per_pixel": req.samples, "number_of_frames": 1,
        "bits_allocated": req.itemsize * 8, "bits_stored": req.bits_stored,
        "pixel_representation": int(req.signed), "photometric_interpretation": req.photometric,
        "planar_configuration": 0,
    }
    if not req.lossless:
        options["jls_error"] = int(req.quality)
    try:
        return bytes(encoder.encode(frame, validate=False, **options))
    except RuntimeError as exc:
        # pyjpegls sizes its output buffer as the raw frame, too small for tiny or noisy frames; CharLS
        # through imagecodecs takes a larger one (unsigned data only: it writes the container's precision)
        if "too small" not in str(exc) or req.signed:
            raise
    import imagecodecs

    return bytes(imagecodecs.jpegls_encode(frame, None if req.lossless else int(req.quality),
                                           out=2 * frame.nbytes + 4096))


CPU_ENCODERS = (
    CpuEncoder("openjph", "htj2k", "imagecodecs", True, _htj2k),
    CpuEncoder("openjpeg", "j2k", "imagecodecs", True, _j2k),
    CpuEncoder("charls", "jpegls", "jpeg_ls", False, _jpegls),  # pyjpegls
)
