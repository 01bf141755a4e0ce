"""Per-file cost: ``gpudcm.pixel_array(path, device="cpu")`` against ``pydicom.pixels.pixel_array(path)``.

Tiny generated 64 x 64 files (native, big endian, RLE, RGB, multi-frame) and the pydicom-data image files,
each decoded in interleaved rounds (gpudcm then pydicom, then the other order), median per call; values
checked equal first. One command:

    PYTHONPATH=src .venv/bin/python benchmarks/per_file.py [--rounds 15] [--only NAME ...] [--out benchmarks/results/per-file-cpu-dev-machine.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import gpudcm  # noqa: E402
from gpudcm.tolerance import agreement  # noqa: E402


def _tiny(path: Path, tsyntax, *, samples: int = 1, frames: int = 1, signed: int = 1) -> Path:
    rng = np.random.default_rng(0)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if tsyntax == RLELossless else tsyntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = 64
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples == 3:
        ds.PlanarConfiguration = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    bits = 8 if samples == 3 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits - 4 if bits == 16 else 8, (bits - 4 if bits == 16 else 8) - 1
    ds.PixelRepresentation = signed if samples == 1 else 0
    dtype = np.uint8 if bits == 8 else (np.int16 if ds.PixelRepresentation else np.uint16)
    lim = 1 << (ds.BitsStored - 1 - ds.PixelRepresentation + (0 if ds.PixelRepresentation else 1) - 1)
    shape = (frames, 64, 64, samples)[(0 if frames > 1 else 1):(4 if samples > 1 else 3)]
    arr = rng.integers(-lim if ds.PixelRepresentation else 0, lim, size=shape).astype(dtype)
    big = tsyntax == ExplicitVRBigEndian
    ds.set_original_encoding(tsyntax == ImplicitVRLittleEndian, not big)
    ds.PixelData = arr.astype(arr.dtype.newbyteorder(">" if big else "<")).tobytes()
    if tsyntax == RLELossless:
        ds.compress(RLELossless, arr)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def tiny_files(where: Path) -> list[Path]:
    return [
        _tiny(where / "tiny_native_le.dcm", ExplicitVRLittleEndian),
        _tiny(where / "tiny_native_implicit.dcm", ImplicitVRLittleEndian),
        _tiny(where / "tiny_native_be.dcm", ExplicitVRBigEndian),
        _tiny(where / "tiny_rgb.dcm", ExplicitVRLittleEndian, samples=3),
        _tiny(where / "tiny_rle.dcm", RLELossless, signed=0),
        _tiny(where / "tiny_8frames.dcm", ExplicitVRLittleEndian, frames=8),
    ]


def corpus_files() -> list[Path]:
    from corpus import corpus_files as files, has_pixel_data

    return [p for p in files() if has_pixel_data(p)]


def _label(path: Path) -> str:
    from corpus import corpus_id

    return path.name if path.name.startswith("tiny_") else corpus_id(path)


def _time(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def measure(path: Path, rounds: int) -> tuple[float, float] | None:
    """Median seconds per call (gpudcm, pydicom), or None when pydicom or gpudcm cannot decode it."""
    ours = lambda: gpudcm.pixel_array(path, device="cpu")  # noqa: E731
    theirs = lambda: pydicom_pixel_array(path)  # noqa: E731
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = ours(), theirs()
    except Exception:  # noqa: BLE001 - only files both decode are timed
        return None
    b = b.astype(b.dtype.newbyteorder("="), copy=False)  # pydicom keeps a big-endian file's byte order
    verdict = agreement(a, b, pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
    if not verdict.ok:  # lossless: equal; lossy: within gpudcm.tolerance
        raise SystemExit(f"{path}: gpudcm and pydicom differ: {verdict}")
    once = _time(theirs, 1)
    n = max(1, min(50, int(0.02 / max(once, 1e-6))))  # ~20 ms per timing
    g, p = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for r in range(rounds):
            pair = [(g, ours), (p, theirs)] if r % 2 == 0 else [(p, theirs), (g, ours)]
            for acc, fn in pair:
                acc.append(_time(fn, n))
    return statistics.median(g), statistics.median(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    ap.add_argument("--tiny-only", action="store_true")
    ap.add_argument("--only", action="append", default=[], metavar="TEXT",
                    help="time only files whose label contains TEXT (repeatable)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = tiny_files(Path(tmp)) + ([] if args.tiny_only else corpus_files())
        for path in files:
            if args.only and not any(t in _label(path) for t in args.only):
                continue
            got = measure(path, args.rounds)
            if got is None:
                continue
            g, p = got
            label = _label(path)
            rows.append((label, g, p))
            print(f"{label:48s} gpudcm {g * 1e6:8.0f} us  pydicom {p * 1e6:8.0f} us  ratio {p / g:5.2f}x", flush=True)
    ratios = [p / g for _, g, p in rows]
    lines = ["# Per-file cost: gpudcm.pixel_array(path, device='cpu') vs pydicom.pixels.pixel_array(path)", "",
             "Median of interleaved rounds per file (each round times both, order alternating); "
             "speed-up = pydicom time / gpudcm time (> 1: gpudcm is faster). Values checked equal first.", "",
             f"Command: `PYTHONPATH=src .venv/bin/python benchmarks/per_file.py --rounds {args.rounds}`", "",
             "| file | gpudcm (us) | pydicom (us) | speed-up |", "|---|---:|---:|---:|"]
    lines += [f"| {n} | {g * 1e6:.0f} | {p * 1e6:.0f} | {p / g:.2f}x |" for n, g, p in rows]
    lines += ["", f"{len(rows)} files; speed-up min {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x, "
              f"max {max(ratios):.2f}x; {sum(r < 1 for r in ratios)} file(s) slower than pydicom."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
