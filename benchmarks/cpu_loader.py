"""2D slices per second on the CPU: gpudcm's ``DicomLoader(DicomDataset(paths, device="cpu"))`` against a plain
pydicom ``Dataset`` (``dcmread(path).pixel_array`` as a tensor) in a ``torch.utils.data.DataLoader``, both at the
same ``num_workers`` and batch size, same files, interleaved rounds (each round runs whole epochs, new
workers each, until ``--min-time`` has passed, so --quick's few slices still time more than one fork).
The files are the ``gpudcm bench`` workloads (native, RLE, JPEG-LS CT/MR series; built into the bench cache
when missing).

    python benchmarks/cpu_loader.py [--quick] [--workloads native-ct,rle-ct,jpegls-mr] [--workers 0,1,2] [--rounds 5]

Prints a Markdown table (slices/s, median of rounds; ratio gpudcm / plain). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
import torch


class PlainPydicom(torch.utils.data.Dataset):
    """What users write without gpudcm: one file, one ``pixel_array``, one tensor."""

    def __init__(self, paths):
        self.paths = list(paths)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from pydicom import dcmread

        return torch.from_numpy(dcmread(self.paths[i]).pixel_array)


def _plain(paths, workers, batch):
    return torch.utils.data.DataLoader(PlainPydicom(paths), batch_size=batch, num_workers=workers)


def _gpudcm(paths, workers, batch):
    from gpudcm.torch import DicomDataset, DicomLoader

    return DicomLoader(DicomDataset(paths, device="cpu"), batch_size=batch, num_workers=workers)


def _epoch(loader) -> tuple[int, float, torch.Tensor]:
    t0, n, first = time.perf_counter(), 0, None
    for b in loader:
        images = b["image"] if isinstance(b, dict) else b
        first = images if first is None else first
        n += len(images)
    return n, time.perf_counter() - t0, first


def _rate(loader, min_time: float) -> float:
    """Slices per second over whole epochs, run until `min_time` seconds have passed."""
    n = spent = 0.0
    while spent < min_time:
        k, s, _ = _epoch(loader)
        n, spent = n + k, spent + s
    return n / spent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="native-ct,rle-ct,jpegls-mr")
    ap.add_argument("--workers", default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3, help="seconds of epochs per loader per round")
    ap.add_argument("--quick", action="store_true", help="the --quick bench workload sizes")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    from gpudcm.bench.workloads import build, default_cache, RECIPES

    print("| workload | num_workers | plain pydicom slices/s | gpudcm DicomLoader slices/s | gpudcm / plain |")
    print("|---|---:|---:|---:|---:|")
    for name in args.workloads.split(","):
        w = build(name, default_cache(), RECIPES[name].quick if args.quick else RECIPES[name].full)
        if not hasattr(w, "paths"):
            print(f"| {name} | - | - | - | skipped: {w.reason} |")
            continue
        for workers in (int(x) for x in args.workers.split(",")):
            loaders = {"plain": _plain(w.paths, workers, args.batch_size), "gpudcm": _gpudcm(w.paths, workers, args.batch_size)}
            a, b = _epoch(loaders["plain"])[2], _epoch(loaders["gpudcm"])[2]  # warm-up and the check
            np.testing.assert_array_equal(a.numpy(), b.numpy())
            rates = {k: [] for k in loaders}
            for r in range(args.rounds):
                for k, loader in list(loaders.items())[:: 1 if r % 2 == 0 else -1]:  # alternating order
                    rates[k].append(_rate(loader, args.min_time))
            p, g = statistics.median(rates["plain"]), statistics.median(rates["gpudcm"])
            print(f"| {name} | {workers} | {p:,.0f} | {g:,.0f} | {g / p:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
