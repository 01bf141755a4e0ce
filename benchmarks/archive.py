"""The archive path against the .npy path: ``gpudcm decode --demo`` to a folder of .npy and to Zarr.

Usage::

    python benchmarks/archive.py [--repeat 3] [--device cpu] [--workers N]

Runs each command as a fresh process (what a user types; interpreter start, imports, the Dask cluster's
start and shutdown included) `--repeat` times into a new temporary folder, and prints the best and median
wall-clock seconds of each, and the Zarr/.npy ratio of the best times. The demo set is pydicom-data's
image files (67 files, 254 frames, 192 MB decoded).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_once(out: str, device: str, workers: int | None) -> float:
    cmd = [sys.executable, "-m", "gpudcm", "decode", "--demo", "--out", out, "--device", device]
    if workers:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, help="passed to both runs (default: each command's own)")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"npy": [], "zarr": []}
    for _ in range(args.repeat):
        for kind in times:  # interleaved, so a change in machine load hits both
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "d.zarr" if kind == "zarr" else "d")
                times[kind].append(run_once(out, args.device, args.workers))
    print(f"gpudcm decode --demo --device {args.device}, {os.cpu_count()} cores, {args.repeat} runs each")
    for kind, values in times.items():
        print(f"  --out {'d.zarr' if kind == 'zarr' else 'DIR (.npy)'}: best {min(values):.2f} s, "
              f"median {statistics.median(values):.2f} s")
    print(f"  Zarr / .npy (best): {min(times['zarr']) / min(times['npy']):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
