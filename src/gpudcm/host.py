"""Arrays back on the host, whichever device decoded them."""

from __future__ import annotations

from typing import Any

import numpy as np


def to_host(arr: Any) -> np.ndarray:
    """The array on the host: a CUDA array (anything with ``__cuda_array_interface__``: CuPy, or a
    Numba/PyTorch CUDA array via a zero-copy CuPy view) is copied once; anything else goes through
    ``np.asarray`` without a copy where possible. CuPy is imported only when a CUDA array arrives."""
    if hasattr(arr, "__cuda_array_interface__"):
        import cupy

        return cupy.asarray(arr).get()
    return np.asarray(arr)
