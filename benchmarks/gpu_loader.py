"""CT volumes per second into a (dummy) training loop: gpudcm's DicomLoader (workers parse and read, the main
process decodes each batch on the GPU) against MONAI ``LoadImage(PydicomReader)`` in a DataLoader with 16
workers, same machine, same run, same files. Both sides deliver float32 Hounsfield units (Rescale
Slope/Intercept applied) as CUDA tensors; the loop reduces each batch on the GPU.

The CT series are generated into a temporary folder from pydicom's CT_small.dcm slice (tiled to 512 x 512,
shifted per slice), so nothing is downloaded. ``--dry-run`` runs a tiny version on the CPU (device="cpu",
2 workers) and checks that both loaders deliver the same volumes. Without a GPU (and without --dry-run)
it says so and exits 0. ``--cpu`` runs the given sizes with device="cpu" (the loaders' CPU sides).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np


def make_series(root: Path, n_series: int, slices: int, size: int, rle: bool) -> list[Path]:
    """`n_series` folders of `slices` int16 CT slices (size x size), native little endian or RLE."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    import gpudcm

    base = dcmread(get_testdata_file("CT_small.dcm")).pixel_array.astype(np.int16)
    reps = -(-size // base.shape[0])
    tile = np.tile(base, (reps, reps))[:size, :size]
    folders = []
    for s in range(n_series):
        folder = root / f"series{s:02d}"
        folder.mkdir(parents=True)
        uid = generate_uid()
        for k in range(slices):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
            ds.Modality, ds.SeriesInstanceUID, ds.InstanceNumber = "CT", uid, k + 1
            ds.ImagePositionPatient = [-250.0, -250.0, float(-k * 1.25)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
            ds.PixelSpacing = [0.9765625, 0.9765625]
            ds.SliceThickness = 1.25
            ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
            pixels = np.roll(tile, (k * 3 + s, k * 5), axis=(0, 1))
            gpudcm.set_pixel_data(ds, pixels, "MONOCHROME2", 16,
                                  transfer_syntax=RLELossless if rle else ExplicitVRLittleEndian)
            ds.save_as(folder / f"{(k * 7919) % 10007:05d}.dcm", enforce_file_format=True)
        folders.append(folder)
    return folders


def _loop(batches, device: str, get) -> tuple[int, float, float]:
    """(volumes, seconds, first-batch seconds): move each batch to `device` and reduce it there."""
    import torch

    n, acc, first = 0, None, None
    start = time.perf_counter()
    for batch in batches:
        x = get(batch).to(device, non_blocking=True)
        s = x.float().mean()
        acc = s if acc is None else acc + s
        n += x.shape[0]
        if first is None:
            first = time.perf_counter() - start
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return n, time.perf_counter() - start, first or 0.0


def run_monai(folders, device: str, workers: int, batch_size: int, epochs: int):
    from monai.data import DataLoader, Dataset, PydicomReader
    from monai.transforms import LoadImage

    ds = Dataset([str(f) for f in folders], transform=LoadImage(reader=PydicomReader(), image_only=True))
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0)
    return [_loop(loader, device, lambda b: b) for _ in range(epochs)]


def run_gpudcm(folders, device: str, workers: int, batch_size: int, epochs: int):
    from gpudcm.series import group_series
    from gpudcm.torch import DicomDataset, DicomLoader

    series = group_series(folders)
    loader = DicomLoader(DicomDataset(series, device=device, rescale=True), batch_size=batch_size,
                         num_workers=workers, persistent_workers=workers > 0)
    return [_loop(loader, device, lambda b: b["image"]) for _ in range(epochs)]


def check_same(folders) -> None:
    """Both loaders give the same HU volumes (MONAI's are (columns, rows, slices): transposed back)."""
    import torch
    from monai.data import PydicomReader
    from monai.transforms import LoadImage

    from gpudcm.series import group_series
    from gpudcm.torch import DicomDataset

    for series in group_series(folders):
        ours = DicomDataset([series], device="cpu", rescale=True).load(0)["image"][0]
        theirs = LoadImage(reader=PydicomReader(), image_only=True)(os.path.dirname(series.paths[0]))
        # PydicomReader orders by Instance Number; these series' positions descend with it
        theirs = torch.as_tensor(np.asarray(theirs)).permute(2, 1, 0).flip(0)
        if not torch.equal(ours, theirs):
            raise SystemExit(f"gpudcm and MONAI volumes differ for {series.uid}")


def device_info() -> str:
    import torch

    lines = [f"python {platform.python_version()}, torch {torch.__version__}, CPUs {os.cpu_count()}"]
    if torch.cuda.is_available():
        import cupy

        drv = cupy.cuda.runtime.driverGetVersion()
        lines.append(f"GPU {torch.cuda.get_device_name()}, CUDA driver {drv // 1000}.{drv % 1000 // 10}, "
                     f"CuPy {cupy.__version__}")
    return "; ".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=8)
    parser.add_argument("--slices", type=int, default=128)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rle", action="store_true", help="write RLE Lossless instead of native")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--monai-workers", type=int, default=16)
    parser.add_argument("--gpudcm-workers", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="passes over the series; the first is warm-up")
    parser.add_argument("--dry-run", action="store_true", help="tiny run on the CPU (2 workers), checks equality")
    parser.add_argument("--cpu", action="store_true", help="decode on the CPU (device='cpu') at the given sizes")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")

    from gpudcm.cuda.runtime import cuda_status

    if args.dry_run:
        args.series, args.slices, args.size, args.epochs = 2, 4, 64, 2
        args.monai_workers = args.gpudcm_workers = 2
        device = "cpu"
    elif args.cpu:
        device = "cpu"
    else:
        ok, why = cuda_status()
        if not ok:
            print(f"gpu_loader: no CUDA device ({why}); nothing to measure (try --dry-run)")
            return 0
        device = "cuda"
    if device == "cuda":
        import torch

        torch.cuda.set_device(0)
        device = "cuda:0"

    with tempfile.TemporaryDirectory(prefix="gpudcm-loader-") as tmp:
        folders = make_series(Path(tmp), args.series, args.slices, args.size, args.rle)
        stored = sum(f.stat().st_size for folder in folders for f in folder.iterdir())
        if args.dry_run:
            check_same(folders)
        results = {
            f"MONAI LoadImage(PydicomReader), {args.monai_workers} workers":
                run_monai(folders, device, args.monai_workers, args.batch_size, args.epochs),
            f"gpudcm DicomLoader ({device}), {args.gpudcm_workers} workers":
                run_gpudcm(folders, device, args.gpudcm_workers, args.batch_size, args.epochs),
        }
    ts = "RLE Lossless" if args.rle else "explicit VR little endian"
    print(f"\n{args.series} CT series x {args.slices} slices of {args.size}x{args.size} int16 ({ts}), "
          f"{stored / 1e6:.0f} MB stored; batch size {args.batch_size}; {args.epochs - 1} timed pass(es) after "
          f"one warm-up; float32 HU delivered as {'CUDA' if device != 'cpu' else 'CPU'} tensors")
    print(device_info() + "\n")
    print("| loader | volumes/s | MB/s (stored) | first batch (s) | ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rates = {}
    for name, passes in results.items():
        timed = passes[1:] or passes
        vols, secs = sum(p[0] for p in timed), sum(p[1] for p in timed)
        rates[name] = (vols / secs, stored * len(timed) / secs / 1e6, passes[0][2])
    base = next(iter(rates.values()))[0]
    for name, (rate, mbs, first) in rates.items():
        print(f"| {name} | {rate:.2f} | {mbs:.0f} | {first:.2f} | {rate / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
