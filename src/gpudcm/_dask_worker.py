"""Preloaded by the local Dask workers gpudcm starts (``distributed``'s ``preload``).

Ctrl-C in a terminal reaches the whole process group: the CLI process stops the run and shuts its cluster
down, so the workers ignore SIGINT instead of each printing a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import signal
import threading


def dask_setup(worker) -> None:  # noqa: ARG001 - distributed's preload hook
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
