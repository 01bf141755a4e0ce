"""Preloaded by the local Dask workers gpudcm starts (``distributed``'s ``preload``).

Ctrl-C in a terminal reaches the whole process group: the CLI process stops the run and shuts its cluster
down, so the workers ignore SIGINT instead of each printing a KeyboardInterrupt traceback.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading


def dask_setup(worker) -> None:  # noqa: ARG001 - distributed's preload hook
    # only a worker process of its own (started by a nanny): the workers of a threads cluster live in the
    # caller's process, whose Ctrl-C must still stop it, whichever thread runs this hook
    if multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
