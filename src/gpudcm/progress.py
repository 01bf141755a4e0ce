"""A small stderr progress bar: files done, files/s and MB/s, redrawn only on a terminal.

On a terminal the line is redrawn in place at most every `interval` seconds; elsewhere (a pipe, a CI log)
nothing is drawn until :meth:`Progress.close`, which always writes the final line.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """Progress over `total` items (files or series). ``update(nbytes)`` after each one; ``close()`` at the end.

    files/s counts items that were worked on (not skipped ones); MB/s counts the bytes passed to
    :meth:`update` (decoded bytes, in ``gpudcm decode``), in 10^6 bytes per second.
    """

    def __init__(self, total: int, *, label: str = "files", stream: TextIO | None = None, interval: float = 0.1,
                 tty: bool | None = None):
        self.total, self.label, self.interval = total, label, interval
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.done = self.failed = self.skipped = self.nbytes = 0
        self.start = time.perf_counter()
        self._drawn = 0.0
        self._closed = False

    def update(self, nbytes: int = 0, *, failed: bool = False, skipped: bool = False) -> None:
        self.done += 1
        self.failed += failed
        self.skipped += skipped
        self.nbytes += nbytes
        now = time.perf_counter()
        if self.tty and (now - self._drawn >= self.interval or self.done == self.total):
            self._drawn = now
            self._write("\r" + self.line(now) + "\x1b[K")

    def line(self, now: float | None = None) -> str:
        elapsed = max((now or time.perf_counter()) - self.start, 1e-9)
        worked = self.done - self.skipped
        text = f"{self.done}/{self.total} {self.label}"
        if self.skipped:
            text += f", {self.skipped} skipped"
        if self.failed:
            text += f", {self.failed} failed"
        text += f"  {worked / elapsed:.1f} {self.label}/s  {self.nbytes / elapsed / 1e6:.1f} MB/s  {_clock(elapsed)}"
        if worked and self.done < self.total:
            text += f"  eta {_clock((self.total - self.done) * elapsed / worked)}"
        if self.tty:
            width = shutil.get_terminal_size((80, 20)).columns
            bar = width - len(text) - 4
            if bar >= 10 and self.total:
                filled = bar * self.done // self.total
                text = f"[{'#' * filled}{'.' * (bar - filled)}] {text}"
        return text

    def close(self) -> None:
        """Write the final line (always, terminal or not) and end it."""
        if self._closed:
            return
        self._closed = True
        self._write(("\r" if self.tty else "") + self.line() + ("\x1b[K" if self.tty else "") + "\n")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
