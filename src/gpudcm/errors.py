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

    def __reduce__(self):
        # pickled as its message and fields (a worker process's error raised in the caller's process)
        return (_rebuilt, (type(self), str(self), self.source, self.frame))


def _rebuilt(cls: type, text: str, source: str | None, frame: int | None) -> DecodeError:
    err = cls.__new__(cls)
    GpudcmError.__init__(err, text)
    err.source, err.frame = source, frame
    return err
