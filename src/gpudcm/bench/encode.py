"""The encode benchmark (``gpudcm bench --encode``, ``benchmarks/encode.py``): a CT series written as HTJ2K,
JPEG 2000 and JPEG-LS by gpudcm's encoders against pydicom's JPEG 2000 Lossless encoder (pylibjpeg-openjpeg
through ``Dataset.compress``) on the same slices, then every file decoded by pydicom's own plugins.

The series: ``693_UNCR.dcm`` (pydicom-data, 512 x 512, 16-bit CT) rolled by one row per slice, so the
slices differ but keep the image's statistics. Each row: encode seconds for the whole series (one slice
per dataset, one after another, except the "series" rows that hand all slices to one call and its thread
pool), output bytes, and pydicom's decode seconds for those files. Every decoded slice is checked against
its source; a lossless row that differs is an error.
"""

from __future__ import annotations

import copy
import io
import os
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import ExplicitVRLittleEndian, HTJ2KLossless, JPEG2000Lossless, JPEGLSLossless

SOURCE = "693_UNCR.dcm"


@dataclass
class EncodeRow:
    name: str
    encoder: str
    syntax: str
    encode_s: float
    nbytes: int
    decode_s: float
    exact: bool
    note: str = ""


def ct_series(n: int) -> tuple[Dataset, np.ndarray]:
    """The template dataset (no pixel data) and an (n, 512, 512) volume."""
    from pydicom.data import get_testdata_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(get_testdata_file(SOURCE))
    arr = ds.pixel_array
    del ds.PixelData
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds, np.stack([np.roll(arr, k, axis=0) for k in range(n)])


def _datasets(template: Dataset, n: int) -> list[Dataset]:
    return [copy.deepcopy(template) for _ in range(n)]


def _files(datasets: list[Dataset]) -> list[bytes]:
    out = []
    for ds in datasets:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def _decode(files: list[bytes], vol: np.ndarray) -> tuple[float, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        arrays = [pydicom_pixel_array(dcmread(io.BytesIO(f))) for f in files]
        seconds = time.perf_counter() - t0
    return seconds, all(np.array_equal(a, v) for a, v in zip(arrays, vol))


def _per_slice(name: str, encoder: str, syntax, template: Dataset, vol: np.ndarray, write) -> EncodeRow:
    datasets = _datasets(template, len(vol))
    t0 = time.perf_counter()
    for ds, arr in zip(datasets, vol):
        write(ds, arr, syntax)
    seconds = time.perf_counter() - t0
    files = _files(datasets)
    decode_s, exact = _decode(files, vol)
    return EncodeRow(name, encoder, syntax.name, seconds, sum(len(f) for f in files), decode_s, exact)


def _pydicom_compress(ds: Dataset, arr: np.ndarray, syntax) -> None:
    ds.compress(syntax, arr, encoding_plugin="pylibjpeg", generate_instance_uid=False)


def _gpudcm_write(ds: Dataset, arr: np.ndarray, syntax) -> None:
    from ..writer import set_pixel_data

    set_pixel_data(ds, arr, "MONOCHROME2", int(ds.BitsStored), transfer_syntax=syntax, device="cpu", workers=1,
                   generate_instance_uid=False)


def _series_row(template: Dataset, vol: np.ndarray, device: str, workers: int | None) -> EncodeRow:
    """All slices in one encode_frames call (the thread pool, or one nvImageCodec batch on the GPU)."""
    from ..encoders import encode_frames, plan

    req = plan(HTJ2KLossless, rows=vol.shape[1], columns=vol.shape[2], samples=1, itemsize=vol.dtype.itemsize,
               signed=vol.dtype.kind == "i", bits_stored=int(template.BitsStored), photometric="MONOCHROME2")
    src = vol
    if device == "cuda":
        import cupy

        src = cupy.asarray(vol)
        cupy.cuda.runtime.deviceSynchronize()
    t0 = time.perf_counter()
    enc = encode_frames(src, req, device=device, workers=workers)
    seconds = time.perf_counter() - t0
    threads = workers or os.cpu_count() or 1
    from ..writer import _encapsulate

    datasets = _datasets(template, len(vol))
    for ds, frame in zip(datasets, enc.frames):  # one slice per file, as the other rows
        ds.BitsAllocated, ds.SamplesPerPixel, ds.PhotometricInterpretation = 16, 1, "MONOCHROME2"
        _encapsulate(ds, [frame])
        ds.file_meta.TransferSyntaxUID = HTJ2KLossless
    files = _files(datasets)
    decode_s, exact = _decode(files, vol)
    note = f"{threads} threads" if device == "cpu" else "one GPU batch"
    return EncodeRow(f"gpudcm series ({device})", enc.backend, HTJ2KLossless.name, seconds,
                     sum(len(f) for f in files), decode_s, exact, note)


def measure(n: int = 256, *, device: str = "cpu", workers: int | None = None) -> list[EncodeRow]:
    """Every row of the encode benchmark for an `n`-slice series."""
    template, vol = ct_series(n)
    rows = [
        _per_slice("pydicom compress", "pylibjpeg-openjpeg", JPEG2000Lossless, template, vol, _pydicom_compress),
        _per_slice("gpudcm set_pixel_data", "openjph", HTJ2KLossless, template, vol, _gpudcm_write),
        _per_slice("gpudcm set_pixel_data", "openjpeg", JPEG2000Lossless, template, vol, _gpudcm_write),
        _per_slice("gpudcm set_pixel_data", "charls", JPEGLSLossless, template, vol, _gpudcm_write),
        _series_row(template, vol, "cpu", workers),
    ]
    if device == "cuda":
        rows.append(_series_row(template, vol, "cuda", workers))
    return rows


def table(rows: list[EncodeRow], n: int) -> str:
    """Markdown: one line per row, with speed-ups against the pydicom row."""
    base = rows[0]
    raw = n * 512 * 512 * 2
    lines = [f"Encode a {n}-slice 512x512 16-bit CT series ({raw / 1e6:.0f} MB raw); decode = pydicom's plugins.", "",
             "| writer | encoder | transfer syntax | encode s | encode x | bytes | ratio | decode s | decode x | exact | note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.encoder} | {r.syntax} | {r.encode_s:.2f} | {base.encode_s / r.encode_s:.1f} | "
                     f"{r.nbytes} | {raw / r.nbytes:.2f} | {r.decode_s:.2f} | {base.decode_s / r.decode_s:.1f} | "
                     f"{'yes' if r.exact else 'NO'} | {r.note} |")
    return "\n".join(lines)


def as_json(rows: list[EncodeRow], n: int, device: str) -> dict:
    from .machine import machine_info

    return {"slices": n, "device": device, "machine": machine_info(gpu=device == "cuda"),
            "rows": [asdict(r) for r in rows]}
