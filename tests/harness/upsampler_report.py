"""Max / mean absolute difference from pydicom's default decode of the device JPEG path's two chroma
upsamplers ("turbo": libjpeg-turbo's filter, what the device did before; "richter": pydicom's plugin's),
through the contract stand-ins and the host build, on the generated noisy-chroma files and every corpus
4:2:2 / 4:2:0 file. YCbCr (raw) and RGB, no second reference. One command:

    PYTHONPATH=src:tests:. .venv/bin/python -m tests.harness.upsampler_report
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np

from corpus import corpus_files, reference
from gpudcm.api import _extended_offsets, _prepare
from gpudcm.cuda.jpeg_path import decode_jpeg_family
from gpudcm.frames import frame_bytes, frame_extents
from gpudcm.jpeg_markers import parse_jpeg
from gpudcm.routing import FULL_ENV, JPEG_SYNTAXES
from lossy_jpeg_data import noisy_chroma_files
from tests.harness import standins
from tests.harness.host_ops import HostOps


def _device(path, upsampler: str, raw: bool):
    ds, spec = _prepare(path)
    arr, _ = decode_jpeg_family(ds, spec, index=None, raw=raw, as_rgb=True, ops=HostOps(), env=FULL_ENV,
                                decoders=standins.decoders(), extended_offsets=_extended_offsets(ds),
                                upsampler=upsampler)
    return arr


def _subsampled(path) -> str | None:
    try:
        ds, spec = _prepare(path)
        if str(spec.transfer_syntax) not in JPEG_SYNTAXES or spec.samples_per_pixel != 3:
            return None
        info = parse_jpeg(bytes(frame_bytes(ds.PixelData, frame_extents(spec, ds.PixelData)[0])))
    except Exception:
        return None
    return info.subsampling if info.subsampling in ("422", "420") and info.sof == 0xC0 else None


def rows(files: dict[str, Path]) -> list[tuple]:
    out = []
    for name, path in files.items():
        for raw in (True, False):
            ref = reference(path, raw=raw).astype(np.int64)
            cells = []
            for up in ("turbo", "richter"):
                d = np.abs(_device(path, up, raw).astype(np.int64) - ref)
                cells += [int(d.max()), float(d.mean())]
            out.append((name, "YBR" if raw else "RGB", *cells))
    return out


def main() -> None:
    warnings.simplefilter("ignore")
    noisy = noisy_chroma_files(Path(tempfile.mkdtemp(prefix="gpudcm-noisy-")))
    corpus = {f"{s} {p.name}": p for p in corpus_files() if (s := _subsampled(p))}
    print(f"{'file':44s} {'out':3s}  turbo max  mean    richter max  mean")
    for label, files in (("noisy", noisy), ("corpus", corpus)):
        table = rows(files)
        for name, kind, tmax, tmean, rmax, rmean in table:
            print(f"{label + ' ' + name:44s} {kind:3s}  {tmax:9d}  {tmean:.4f}  {rmax:11d}  {rmean:.4f}")
        for kind in ("YBR", "RGB"):
            sel = [r for r in table if r[1] == kind]
            print(f"{label + ' ALL (max of max, mean of means)':44s} {kind:3s}  {max(r[2] for r in sel):9d}  "
                  f"{np.mean([r[3] for r in sel]):.4f}  {max(r[4] for r in sel):11d}  {np.mean([r[5] for r in sel]):.4f}")


if __name__ == "__main__":
    main()
