"""Exceptions raised by gpudcm.

Every error gpudcm raises on bad input is a :class:`GpudcmError` (a ``ValueError``), so callers
can catch one type; messages name the file, the tag and the numbers that disagree.
"""

from __future__ import annotations


class GpudcmError(ValueError):
    """Base class for all gpudcm errors."""


class InvalidPixelData(GpudcmError):
    """The pixel module or the pixel bytes are inconsistent, missing or malformed."""


class UnsupportedTransferSyntax(GpudcmError):
    """No backend can decode this transfer syntax on the requested device."""


class DeviceUnavailable(GpudcmError):
    """The requested device (e.g. ``"cuda"``) cannot be used; the message says why."""


class DecodeError(GpudcmError):
    """A decoder (pydicom plugin, kernel or GPU library) failed on a frame."""

    def __init__(self, message: str, *, source: str | None = None, frame: int | None = None):
        where = []
        if source:
            where.append(f"{source}")
        if frame is not None:
            where.append(f"frame {frame}")
        prefix = f"{', '.join(where)}: " if where else ""
        super().__init__(prefix + message)
        self.source = source
        self.frame = frame
