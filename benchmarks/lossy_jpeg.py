"""Lossy JPEG on the CPU per frame class: ``python benchmarks/lossy_jpeg.py [--frames N] [--rounds R]``.

One multi-frame 512 x 512 file per class (8-bit grey, stored RGB 4:4:4, YCbCr 4:2:0), written here with
the frames Pillow / imagecodecs encode; gpudcm's CPU path (libjpeg-turbo on the proven classes, pydicom's
plugin on YCbCr colour; default threads) against pydicom one core and dicomsdl (when installed), each
checked within the lossy tolerance of pydicom first (max and mean abs diff), then timed interleaved
round by round (median of R rounds). Writes benchmarks/results/lossy-jpeg-cpu.md.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

import gpudcm  # noqa: E402
from gpudcm.bench.others import dicomsdl_call, version  # noqa: E402
from gpudcm.bench.timing import calls_for, interleaved, per_call  # noqa: E402


def _image(seed: int, samples: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512]
    a = np.stack([128 + 90 * np.sin(x / (23 + 3 * c) + y / 31) for c in range(samples)], -1) + rng.normal(0, 6, (512, 512, samples))
    a = np.clip(a, 0, 255).astype(np.uint8)
    return a[..., 0] if samples == 1 else a


def _encode(kind: str, seed: int) -> bytes:
    import imagecodecs
    from PIL import Image

    if kind == "rgb-stored-444":
        return imagecodecs.jpeg8_encode(_image(seed, 3), level=90, colorspace="RGB", outcolorspace="RGB", subsampling="444")
    buf = io.BytesIO()
    Image.fromarray(_image(seed, 1 if kind == "grey" else 3)).save(buf, "JPEG", quality=90, subsampling=2)
    return buf.getvalue()


def _file(folder: Path, kind: str, frames: int) -> str:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    samples = 1 if kind == "grey" else 3
    ds.Rows = ds.Columns = 512
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = {"grey": "MONOCHROME2", "rgb-stored-444": "RGB"}.get(kind, "YBR_FULL_422")
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.NumberOfFrames = frames
    ds.PixelData = encapsulate([_encode(kind, k) for k in range(frames)])
    ds["PixelData"].VR = "OB"
    path = folder / f"{kind}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    a = p.parse_args()
    from pydicom.pixels import pixel_array

    lines = [f"### lossy JPEG on the CPU: {a.frames} frames of 512 x 512 per class", "",
             f"{os.cpu_count()} CPU cores, load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} "
             "(a shared machine gives noisy timings)", "",
             "| class | backend chosen | contender | ms per file | vs pydicom | values vs pydicom |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in ("grey", "rgb-stored-444", "ybr-420"):
            path = _file(Path(tmp), kind, a.frames)
            ref = pixel_array(path)
            calls = {"pydicom 1 core": lambda path=path: pixel_array(path),
                     "gpudcm cpu": lambda path=path: gpudcm.pixel_array(path, device="cpu")}
            if version("dicomsdl"):
                calls[f"dicomsdl {version('dicomsdl')}"] = lambda fn=dicomsdl_call((path,)): fn()[0]
            values = {}
            for name, fn in calls.items():
                got = np.asarray(fn()).reshape(ref.shape)
                d = np.abs(got.astype(int) - ref.astype(int))
                values[name] = "reference" if name.startswith("pydicom") else f"max {d.max()}, mean {d.mean():.4f}"
            numbers = [calls_for(per_call(fn, 1), 0.2) for fn in calls.values()]
            times = interleaved(list(calls.values()), numbers, a.rounds)
            med = [float(np.median(t)) for t in times]
            from gpudcm import codecs
            from gpudcm.reader import open_pixels

            reader = open_pixels(path)
            chosen = codecs.choose(reader.spec, codecs.frame_info(reader.spec, reader.frame_bytes(0)))[0].name
            for (name, _), sec in zip(calls.items(), med):
                lines.append(f"| {kind} | {chosen} | {name} | {sec * 1e3:.1f} | {med[0] / sec:.2f}x | {values[name]} |")
    text = "\n".join(lines)
    print(text)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "lossy-jpeg-cpu.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
