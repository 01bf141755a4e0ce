"""Which device to use, and why CUDA is not usable when it is not."""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager, nullcontext

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


def device_index(device: str | None) -> int | None:
    """N of ``"cuda:N"``, else None (``"cuda"`` means CuPy's current device)."""
    name = (device or "auto").lower()
    if not name.startswith("cuda:"):
        return None
    try:
        n = int(name[5:])
    except ValueError:
        raise DeviceUnavailable(f"unknown device {device!r}; use cuda:N with N a device number") from None
    if n < 0:
        raise DeviceUnavailable(f"unknown device {device!r}; device numbers start at 0")
    return n


def resolve_device(device: str | None) -> str:
    """Map a ``device=`` argument to ``"cpu"`` or ``"cuda"``.

    ``"auto"`` (or None) picks CUDA when usable, else CPU; ``"cuda"`` (or ``"cuda:N"``) without a usable
    device raises :class:`DeviceUnavailable` with the reason, and so does ``"cuda:N"`` when device N does
    not exist (:func:`on_device` then makes N current for the decode).
    """
    name = (device or "auto").lower()
    index = device_index(device)
    if index is not None:
        name = "cuda"
    if name not in DEVICES:
        raise DeviceUnavailable(f"unknown device {device!r}; use one of {', '.join(DEVICES)} or cuda:N")
    if name == "cpu":
        return "cpu"
    ok, why = cuda_status()
    if name == "cuda" and not ok:
        raise DeviceUnavailable(f"device={device!r} was asked for but CUDA is unavailable: {why}")
    if index is not None:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        if index >= count:
            raise DeviceUnavailable(f"device={device!r} was asked for but this machine has {count} CUDA "
                                    f"device(s): cuda:0 to cuda:{count - 1}")
    return "cuda" if ok else "cpu"


def on_device(device: str | None) -> AbstractContextManager:
    """A context in which CuPy's current device is the one `device` names (``"cuda:N"``); a no-op for
    ``"cuda"``, ``"auto"`` and ``"cpu"`` (CuPy's current device, or nothing, is used)."""
    index = device_index(device)
    if index is None:
        return nullcontext()
    import cupy

    return cupy.cuda.Device(index)
