"""Frames that share their codestream header share what the registry decides for them.

A JPEG frame's parameters (:func:`~gpudcm.codecs.pydicom_plugins.frame_info`: pydicom's SOF and APP
markers, gpudcm's parse of the process and first scan) and so its backend (:func:`registry.choose`)
depend only on its bytes up to the end of its first SOS segment. The frames of one encoder (the tiles
of a slide instance) mostly share those bytes, so :class:`FrameClasses` parses one frame of each header
and finds the others by that prefix: a slice and a dict look-up in place of two header parses and the
registry's walk (~40 us a tile). Every frame is still decided by its own header.
"""

from __future__ import annotations

from typing import Any

from ..jpeg_markers import first_scan_end
from ..spec import PixelSpec
from .pydicom_plugins import family, frame_info
from .registry import Backend, choose

MAX_CLASSES = 64  # distinct headers remembered per source; frames past that are parsed one by one


class FrameClasses:
    """``decide(data) -> (info, backend)`` for the frames of one source (`spec`), remembered by header.

    Thread-safe: the remembered classes only grow (a race parses a header twice)."""

    def __init__(self, spec: PixelSpec) -> None:
        self.spec = spec
        self._jpeg = family(spec.transfer_syntax) == "jpeg"
        self._by_head: dict[bytes, tuple[dict[str, Any], Backend]] = {}
        self._lengths: list[int] = []  # the header lengths remembered, first seen first

    def __len__(self) -> int:
        return len(self._by_head)

    def decide(self, data) -> tuple[dict[str, Any], Backend]:
        """The frame's codestream parameters (as ``frame_info(spec, data)``) and its registry backend."""
        if self._jpeg:
            for n in self._lengths:
                hit = self._by_head.get(bytes(data[:n]))
                if hit is not None:
                    return hit
            n = first_scan_end(data)
            if n is not None:
                head = bytes(data[:n])
                info = frame_info(self.spec, head)
                # pydicom's parse found its SOF inside the header (it reads no byte past one it was given),
                # and ours the first scan: the frame's info is the header's, whatever follows
                if "precision" in info and info.get("markers") is not None:
                    decided = (info, choose(self.spec, info)[0])
                    if len(self._by_head) < MAX_CLASSES:
                        self._by_head[head] = decided
                        if n not in self._lengths:
                            self._lengths.append(n)
                    return decided
        info = frame_info(self.spec, data)
        return info, choose(self.spec, info)[0]
