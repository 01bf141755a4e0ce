"""The RLE kernel's host build behind the CuPy launcher's signature (``gpudcm.cuda.rle.cupy_launch_rle``)."""

from __future__ import annotations

import ctypes

import numpy as np

from gpudcm.cuda.rle import RleLaunch
from tests.harness.hostbuild import function, ptr


def host_launch_rle(sanitize: bool = False):
    """A launcher that runs the host build of kernels/rle.cuh over the launch's whole geometry."""
    u32, u64, vp = ctypes.c_uint32, ctypes.c_uint64, ctypes.c_void_p
    fn = function("gpudcm_host_rle", u32, [u32, u32, vp, u64, vp, u64, u64, u32, u32, u64, vp, u64, vp], sanitize)

    def launch(plan: RleLaunch, src: np.ndarray, table: np.ndarray, out: np.ndarray, lengths: np.ndarray) -> int:
        src = np.ascontiguousarray(src, dtype=np.uint8)
        table = np.ascontiguousarray(table, dtype=np.int64)
        assert table.size == 3 * plan.n_entries and lengths.size == 2 * plan.n_entries
        assert out.dtype == np.uint8 and out.flags.c_contiguous and lengths.dtype == np.int64
        g = plan.geometry
        scalars = [int(s) for s in plan.scalars()]
        return fn(g.grid, g.block, ptr(src), src.size, ptr(table), *scalars, ptr(out), out.size, ptr(lengths))

    return launch
