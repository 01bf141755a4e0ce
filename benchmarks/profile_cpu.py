"""Where does the CPU path spend its time? cProfile of gpudcm vs pydicom on the workload files.

Usage::

    python benchmarks/profile_cpu.py [--calls 50] [--top 12] [--workloads native-ct,rle]

For each file: ``--calls`` calls of ``pydicom.pixels.pixel_array(path)`` and of
``gpudcm.pixel_array(path, device="cpu")`` under cProfile, then one table of the functions with the
largest cumulative time in either profile, in ms per call, side by side. cProfile slows Python code
down (roughly 1.5-2x), so read the columns against each other, not as wall-clock times; use
``benchmarks/report.py`` for those.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from collections.abc import Callable, Sequence

from pydicom.pixels import pixel_array as pydicom_pixel_array

import gpudcm
from workloads import WORKLOADS, available

FuncKey = tuple[str, int, str]


def profile(fn: Callable[[], object], calls: int) -> dict[FuncKey, float]:
    """Cumulative seconds per call of every function `fn` reaches, over `calls` calls."""
    fn()  # warm-up outside the profile
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    return {key: value[3] / calls for key, value in stats.items()}


def label(key: FuncKey) -> str:
    """``package/module.py:function`` for a pstats key."""
    path, line, name = key
    if path == "~":
        return name
    parts = path.replace(os.sep, "/").split("/")
    for root in ("gpudcm", "pydicom", "libjpeg", "openjpeg", "rle", "jpeg_ls", "pylibjpeg", "numpy"):
        if root in parts:
            path = "/".join(parts[len(parts) - 1 - parts[::-1].index(root):])
            break
    else:
        path = parts[-1]
    return f"{path}:{line}({name})"


def compare(path: str, calls: int, top: int) -> list[str]:
    """Markdown table: the top functions of both profiles, ms per call."""
    pd = profile(lambda: pydicom_pixel_array(path), calls)
    gp = profile(lambda: gpudcm.pixel_array(path, device="cpu"), calls)
    keep: list[FuncKey] = []
    for prof in (gp, pd):
        ranked = sorted(prof, key=prof.__getitem__, reverse=True)
        ranked = [k for k in ranked if not k[2].startswith("<lambda>") and k[0] != os.path.abspath(__file__)]
        keep += [k for k in ranked[:top] if k not in keep]
    keep.sort(key=lambda k: max(gp.get(k, 0.0), pd.get(k, 0.0)), reverse=True)
    lines = [
        f"### {os.path.basename(path)} ({calls} calls, cumulative ms per call, under cProfile)",
        "",
        "| function | pydicom | gpudcm |",
        "|---|---:|---:|",
    ]
    for k in keep:
        cell = lambda prof: f"{prof[k] * 1e3:.3f}" if k in prof else "-"  # noqa: E731
        lines.append(f"| `{label(k)}` | {cell(pd)} | {cell(gp)} |")
    return lines + [""]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=50, help="profiled calls a contender and file (default 50)")
    ap.add_argument("--top", type=int, default=12, help="functions taken from each profile (default 12)")
    ap.add_argument("--workloads", default=None, help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.workloads.split(",")] if args.workloads else None
    for w in available(names):
        print(f"## {w.name} ({w.syntax})\n")
        for path in w.paths:
            print("\n".join(compare(path, args.calls, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
