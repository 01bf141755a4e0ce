"""Which device to use, and why CUDA is not usable when it is not."""

from __future__ import annotations

import functools

from ..errors import DeviceUnavailable

DEVICES = ("auto", "cpu", "cuda")


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[bool, str]:
    """(usable, reason): CUDA is usable when CuPy imports and sees at least one device."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising on import
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc}); pip install 'gpudcm[cuda]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no CUDA device or driver ({type(exc).__name__}: {exc})"
    if count < 1:
        return False, "CuPy found no CUDA device"
    return True, f"{count} CUDA device(s)"


def resolve_device(device: str | None) -> str:
    """Map a ``device=`` argument to ``"cpu"`` or ``"cuda"``.

    ``"auto"`` (or None) picks CUDA when usable, else CPU; ``"cuda"`` (or ``"cuda:N"``) without a usable
    device raises :class:`DeviceUnavailable` with the reason.
    """
    name = (device or "auto").lower()
    if name.startswith("cuda:"):
        name = "cuda"
    if name not in DEVICES:
        raise DeviceUnavailable(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if name == "cpu":
        return "cpu"
    ok, why = cuda_status()
    if name == "cuda" and not ok:
        raise DeviceUnavailable(f"device='cuda' was asked for but CUDA is unavailable: {why}")
    return "cuda" if ok else "cpu"
