"""Big multi-frame DICOM files for the memory tests and benchmarks/memory.py, written frame by frame (the
writer never holds the pixel data): the header with pydicom, then the pixel element's tag, length and
frames appended. Native: Explicit VR Little Endian, 16-bit MONOCHROME2, each frame its own ramp pattern.
RLE Lossless: a few distinct noise frames encoded by pydicom's RLE encoder, repeated (noise does not
compress, so each frame keeps ~ its decoded size)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def _header(rows: int, cols: int, frames: int, tsyntax) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = tsyntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.set_original_encoding(False, True)
    return ds


def native_frame(k: int, rows: int, cols: int) -> np.ndarray:
    """Frame k of the native file: a ramp shifted by k (every frame differs)."""
    return ((np.arange(rows * cols, dtype=np.uint32) * 7 + k * 131) % 65536).astype("<u2").reshape(rows, cols)


def write_native(path: Path, *, frames: int, rows: int = 512, cols: int = 512) -> Path:
    """A native multi-frame file of `frames` x rows x cols uint16 (about frames x rows x cols x 2 bytes)."""
    dcmwrite(path, _header(rows, cols, frames, ExplicitVRLittleEndian), enforce_file_format=True)
    nbytes = frames * rows * cols * 2
    with open(path, "ab") as fp:
        fp.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OW", 0, nbytes))
        for k in range(frames):
            fp.write(native_frame(k, rows, cols).tobytes())
    return path


def write_rle(path: Path, *, frames: int, rows: int = 512, cols: int = 512, distinct: int = 4, seed: int = 0) -> Path:
    """An RLE Lossless file of `frames` noise frames (`distinct` different ones, cycled), no offset table."""
    from pydicom.pixels.encoders import RLELosslessEncoder

    rng = np.random.default_rng(seed)
    encoded = []
    for _ in range(distinct):
        arr = rng.integers(0, 65536, size=(rows, cols), dtype=np.uint16)
        data = RLELosslessEncoder.encode(arr, rows=rows, columns=cols, samples_per_pixel=1, bits_allocated=16,
                                         bits_stored=16, pixel_representation=0, number_of_frames=1,
                                         photometric_interpretation="MONOCHROME2")
        encoded.append(data + b"\x00" * (len(data) % 2))
    dcmwrite(path, _header(rows, cols, frames, RLELossless), enforce_file_format=True)
    with open(path, "ab") as fp:
        fp.write(struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF))
        fp.write(struct.pack("<HHL", 0xFFFE, 0xE000, 0))  # empty Basic Offset Table
        for k in range(frames):
            frame = encoded[k % distinct]
            fp.write(struct.pack("<HHL", 0xFFFE, 0xE000, len(frame)))
            fp.write(frame)
        fp.write(struct.pack("<HHL", 0xFFFE, 0xE0DD, 0))
    return path


# ------------------------------------------------------------------------ peak memory of one call

OPS = ("first", "index", "whole")
WORKER_OPS = ("zarr", "npy", "zarr-held")  # a Dask worker's task, a CLI .npy job, the old task (output held)


def _worker(op: str, path: str):
    """One job as a worker runs it (``zarr-held``: as it ran before issue 15's chunked writes: the whole
    output decoded, then written); returns the written array (read lazily: after the measurement)."""
    import os

    from gpudcm import npy
    from gpudcm.dask import COMPLETE, decode_and_write
    from gpudcm.jobs import file_jobs, run_job

    import zarr

    job = file_jobs([path])[0]
    out = path + f".{op}.zarr"
    if op == "npy":
        folder = Path(path + ".npy.d")
        outcome = npy.decode_to_npy(folder, job, device="cpu")
        assert outcome.status == "done", outcome
        return np.load(npy.array_path(folder, job), mmap_mode="r")
    if op == "zarr":
        outcome = decode_and_write(job, out, device="cpu")
        assert outcome.status == "done", outcome
    else:
        arr, outcome = run_job(job, device="cpu")
        z = zarr.open_array(out, path=job.name, mode="w", shape=arr.shape, dtype=arr.dtype,
                            chunks=(1, *arr.shape[1:]))
        z[...] = arr
        z.attrs.update({COMPLETE: True})
        del arr
    assert os.path.isdir(out)
    return zarr.open_array(out, path=job.name, mode="r")


def clean_worker_outputs(path: str) -> None:
    """Remove what :func:`_worker` wrote beside `path`."""
    import shutil

    for op in WORKER_OPS:
        shutil.rmtree(path + f".{op}.zarr", ignore_errors=True)
    shutil.rmtree(path + ".npy.d", ignore_errors=True)


def _call(lib: str, op: str, path: str, k: int):
    if lib == "gpudcm-worker":
        return _worker(op, path)
    if lib == "gpudcm-cuda":  # the device path: the result stays on the device (a CuPy array)
        import gpudcm

        if op == "first":
            return next(iter(gpudcm.iter_frames(path, device="cuda")))
        return gpudcm.pixel_array(path, index=k if op == "index" else None, device="cuda")
    if lib == "gpudcm":
        import gpudcm

        if op == "first":
            return next(iter(gpudcm.iter_frames(path, device="cpu")))
        if op == "index":
            return gpudcm.pixel_array(path, index=k, device="cpu")
        return gpudcm.pixel_array(path, device="cpu")
    if lib == "pydicom-dataset":
        from pydicom import dcmread

        return dcmread(path).pixel_array
    from pydicom.pixels import iter_pixels, pixel_array

    if op == "first":
        return next(iter(iter_pixels(path)))
    if op == "index":
        return pixel_array(path, index=k)
    return pixel_array(path)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fp:
            for line in fp:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) << 10
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux ``clear_refs`` 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as fp:
            fp.write("5")
        return True
    except OSError:
        return False


def measure(lib: str, op: str, path: str, k: int = 0, warmup: str | None = None, chunk_bytes: int = 0) -> dict:
    """Run one call in this (fresh) process: its peak RSS over the process's RSS after imports (and after
    one warm-up decode of `warmup`, so lazily loaded plugins are not counted), and its time.
    `chunk_bytes`: the jobs' chunk size (gpudcm.jobs.CHUNK_BYTES) when not 0."""
    import resource
    import time

    import gpudcm  # noqa: F401  (imports first: they are not the call's)
    import gpudcm.jobs
    import pydicom.pixels  # noqa: F401

    if chunk_bytes:
        gpudcm.jobs.CHUNK_BYTES = chunk_bytes

    if warmup:
        _call("gpudcm" if lib == "gpudcm-worker" else lib, "whole", warmup, 0)
    if lib == "gpudcm-worker":  # zarr, its codecs and one small job warmed up too: not the call's
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            small = shutil.copy(warmup or path, Path(tmp) / "warm.dcm")
            _worker(op, str(small))
    with open(path, "rb") as fp:  # the header in the page cache for every library alike
        fp.read(1 << 20)
    # peak RSS of the call = the process's high-water mark after it, reset to the current RSS just before
    # (ru_maxrss cannot be used: Linux carries it over from the parent across exec)
    if _reset_peak() and _status_kb("VmHWM") is not None:
        base = _status_kb("VmRSS")
        t0 = time.perf_counter()
        arr = _call(lib, op, path, k)
        seconds = time.perf_counter() - t0
        peak = _status_kb("VmHWM")
    else:  # no /proc: the high-water mark growth (a lower bound)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
        t0 = time.perf_counter()
        arr = _call(lib, op, path, k)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10
    return {"lib": lib, "op": op, "peak_over_base": peak - base, "seconds": seconds, "out_bytes": int(arr.nbytes),
            "shape": list(arr.shape), "checksum": _checksum(arr)}


def _checksum(arr) -> int:
    """Sum of the values mod 2**61, a few frames at a time (a written array is read back lazily)."""
    total = 0
    step = max(1, (16 << 20) // max(1, int(arr.nbytes) // max(1, arr.shape[0])))
    for a in range(0, arr.shape[0], step) if arr.ndim > 2 else [None]:
        part = arr[...] if a is None else arr[a : a + step]
        if hasattr(part, "__cuda_array_interface__"):
            from gpudcm.host import to_host

            part = to_host(part)
        total = (total + int(np.asarray(part, dtype=np.uint64).sum())) % (1 << 61)
    return total


def measure_in_subprocess(lib: str, op: str, path: str, k: int = 0, warmup: str | None = None,
                          chunk_bytes: int = 0) -> dict:
    """:func:`measure` in a fresh interpreter (each call alone in its process)."""
    import json
    import os
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here.parent / "src"), str(here.parent), str(here), os.environ.get("PYTHONPATH", "")]))
    code = ("import json, sys, bigfiles; print(json.dumps(bigfiles.measure(*sys.argv[1:4], int(sys.argv[4]), "
            "sys.argv[5] or None, int(sys.argv[6]))))")
    out = subprocess.run([sys.executable, "-c", code, lib, op, str(path), str(k), warmup or "", str(chunk_bytes)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
