"""Which backend decodes which transfer syntax on which device, and why not when none can."""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.pixels import get_decoder
from pydicom.uid import UID, AllTransferSyntaxes, RLELossless

from .cuda.runtime import cuda_status
from .spec import PixelSpec

BACKENDS = ("kernel", "nvjpeg", "j2k", "cpu-plugin", "unsupported")
DEVICES = ("cpu", "cuda")
_YBR = ("YBR_FULL", "YBR_FULL_422")
# what to install when a GPU decoder exists but its library does not load
_MISSING_GPU_LIBRARY = {
    "nvjpeg": "nvJPEG not installed: pip install 'gpudcm[cuda]'",
    "j2k": "nvImageCodec with nvJPEG2000 not usable: pip install 'gpudcm[j2k]'",
}


@dataclass(frozen=True)
class Capability:
    transfer_syntax: UID
    device: str
    backend: str  # one of BACKENDS
    available: bool
    reason: str

    @property
    def name(self) -> str:
        return self.transfer_syntax.name


def _cpu_plugins(uid: UID) -> tuple[bool, str]:
    """Whether the CPU codec registry (gpudcm.codecs) can decode `uid`, and with what."""
    from .codecs import describe

    return describe(uid)


def _capability(uid: UID, device: str) -> Capability:
    cpu_ok, cpu_why = _cpu_plugins(uid)
    if device == "cpu":
        return Capability(uid, "cpu", "cpu-plugin" if cpu_ok else "unsupported", cpu_ok, cpu_why)
    cuda_ok, cuda_why = cuda_status()
    if not uid.is_encapsulated:
        why = "native kernel (kernels/native.cu)"
        return Capability(uid, "cuda", "kernel", cuda_ok, why if cuda_ok else f"{why}; {cuda_why}")
    if uid == RLELossless:
        why = "RLE kernel (kernels/rle.cu), then the native kernel for planar/Bits Stored"
        return Capability(uid, "cuda", "kernel", cuda_ok, why if cuda_ok else f"{why}; {cuda_why}")
    gpu = _gpu_library(uid)
    if gpu is not None and gpu[1]:  # the GPU library loads: frames are routed one by one
        return Capability(uid, "cuda", gpu[0], cuda_ok and cpu_ok, gpu[2] if cuda_ok else f"{gpu[2]}; {cuda_why}")
    # a decoder exists, its library is absent or does not work: the static hint, then why (gpu[2])
    missing = f"{_MISSING_GPU_LIBRARY[gpu[0]]} ({gpu[2]})" if gpu is not None else None
    if not cpu_ok:
        return Capability(uid, "cuda", "unsupported", False, f"{missing or 'no GPU decoder yet'} and {cpu_why}")
    why = (f"{missing}; meanwhile decoded on the CPU ({cpu_why}) and copied to the device" if missing else
           f"no GPU decoder yet: decoded on the CPU ({cpu_why}) and copied to the device")
    return Capability(uid, "cuda", "cpu-plugin", cuda_ok, why if cuda_ok else f"{why}; {cuda_why}")


def _gpu_library(uid: UID) -> tuple[str, bool, str] | None:
    """(backend, library loads, reason) for the JPEG family, None for other syntaxes."""
    from .routing import J2K_SYNTAXES, JPEG_SYNTAXES, detect_env

    if str(uid) in JPEG_SYNTAXES:
        env = detect_env()
        return ("nvjpeg", env.nvjpeg is not None,
                f"nvJPEG {_nvjpeg_where()} per frame (baseline/8-bit DCT; 1-2 component lossless SV1 2-16 bit with nvjpeg "
                ">= 13.0.2); other frames on the CPU plugin")
    if str(uid) in J2K_SYNTAXES:
        from .cuda.j2k import gpu_backend_here

        ok, why = gpu_backend_here()
        return ("j2k", ok, f"{why}; per frame, other frames on the CPU plugin" if ok
                else f"no GPU JPEG 2000 decoder ({why})")
    return None


def _nvjpeg_where() -> str:
    """Where libnvjpeg was loaded from, or why it was not."""
    from .cuda import nvjpeg

    try:
        return f"({nvjpeg.library_path()})"
    except Exception as exc:
        return f"(not loaded: {exc})"


def known_transfer_syntaxes() -> list[UID]:
    """Every transfer syntax pydicom has a decoder for (native and compressed)."""
    out = []
    for uid in AllTransferSyntaxes:
        try:
            get_decoder(uid)
        except NotImplementedError:
            continue
        out.append(UID(uid))
    return sorted(out, key=str)


def capabilities(device: str | None = None) -> list[Capability]:
    """One row per transfer syntax and device (both devices when `device` is None)."""
    devices = DEVICES if device is None else (device,)
    return [_capability(uid, d) for d in devices for uid in known_transfer_syntaxes()]


def backend_for(spec: PixelSpec, device: str, *, raw: bool = False, as_rgb: bool = True) -> Capability:
    """The backend that decodes `spec` on `device` ("cpu" or "cuda") with these options."""
    cap = _capability(spec.transfer_syntax, device)
    converts_colour = not raw and as_rgb and spec.photometric_interpretation in _YBR
    if device == "cuda" and cap.backend == "kernel" and converts_colour:
        if spec.dtype != "uint8":  # pydicom refuses to convert other dtypes; the CPU path raises its error
            cpu_ok, _ = _cpu_plugins(spec.transfer_syntax)
            return Capability(spec.transfer_syntax, "cuda", "cpu-plugin", cap.available and cpu_ok,
                              f"pydicom converts only 8-bit YBR to RGB; {spec.dtype} goes through the CPU path")
        return Capability(spec.transfer_syntax, "cuda", "kernel", cap.available,
                          "native kernel, then the YBR_FULL -> RGB kernel (kernels/colour.cu)")
    return cap
