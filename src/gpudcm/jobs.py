"""Units of decoding work shared by ``gpudcm decode`` and :mod:`gpudcm.dask`.

A :class:`Job` is one output: a file, or a series (see :mod:`gpudcm.series`); :func:`write_job` decodes it
chunk by chunk into an array its caller creates from the header (a Zarr array, an ``.npy`` file), so a
worker holds one chunk, not the output, and returns an :class:`Outcome` (what was decoded, how big, how
long; or why it failed); :func:`run_job` does the same into a NumPy array it returns.
:func:`output_names` gives every input a unique, storage-safe name derived from its path.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GpudcmError
from .host import to_host

_DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Job:
    """One output: ``kind`` "file" (one path) or "series" (``series`` holds the gpudcm.series.Series)."""

    name: str
    paths: tuple[str, ...]
    kind: str = "file"
    series: Any = None


@dataclass
class Outcome:
    """What became of one job. ``status``: "done", "skipped" (already complete) or "failed"."""

    name: str
    paths: tuple[str, ...]
    status: str
    transfer_syntax: str = ""  # name, e.g. "RLE Lossless" ("mixed" for a series of several)
    frames: int = 0
    bytes_in: int = 0  # size of the input file(s)
    bytes_out: int = 0  # decoded array bytes
    seconds: float = 0.0
    backend: str = ""
    shape: tuple[int, ...] = ()
    dtype: str = ""
    error_type: str = ""
    message: str = ""
    meta: dict = field(default_factory=dict)  # the array's metadata (gpudcm.metadata.job_metadata)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["paths"], out["shape"] = list(self.paths), list(self.shape)
        return out


def expand_paths(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; folders walked (sorted, recursively)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.is_file())
        else:
            files.append(p)
    return files


def safe_name(part: str) -> str:
    """`part` as a Zarr node / file name: only ``[A-Za-z0-9._-]``, no leading dot or double underscore
    (Zarr v3 reserves ``__``; dot-names are hidden or v2 metadata), never a metadata file's name."""
    name = _UNSAFE.sub("_", part) or "_"
    if name.startswith("."):
        name = "_" + name[1:]
    if name.startswith("__"):
        name = "x" + name
    if name in ("zarr.json", "_", ""):
        name = name + "_"
    return name


def _stem(name: str) -> str:
    for suffix in _DICOM_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name  # no Path.stem: "1.2.840.1.3" is a UID, not a name with an extension


def unique_names(raw: Sequence[str]) -> list[str]:
    """`raw` slash-separated names made unique (case-insensitively, for case-insensitive file systems)
    with ``_2``, ``_3``...; a name that is also a folder of another name is renamed too."""
    folders = {"/".join(n.split("/")[:i]).lower() for n in raw for i in range(1, n.count("/") + 1)}
    used: set[str] = set()
    out = []
    for name in raw:
        candidate, k = name, 1
        while candidate.lower() in used or candidate.lower() in folders:
            k += 1
            candidate = f"{name}_{k}"
        used.add(candidate.lower())
        out.append(candidate)
    return out


def output_names(paths: Sequence[str | os.PathLike], *, flat: bool = False) -> list[str]:
    """One unique, safe name per path: the path relative to the inputs' common folder, each part made
    safe, a .dcm/.dicom/.dic suffix dropped, "/" between folders (e.g. ``"patient1/ct/IM0001"``);
    ``flat=True``: the file name only (``"IM0001"``, then ``"IM0001_2"``...)."""
    if not paths:
        return []
    if flat:
        return unique_names([safe_name(_stem(Path(p).name)) for p in paths])
    absolute = [Path(os.path.abspath(p)) for p in paths]
    root = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    raw = []
    for p in absolute:
        parts = p.relative_to(root).parts
        raw.append("/".join([*(safe_name(q) for q in parts[:-1]), safe_name(_stem(parts[-1]))]))
    return unique_names(raw)


def file_jobs(paths: Sequence[str | os.PathLike], *, flat: bool = False) -> list[Job]:
    """One job per file, named by :func:`output_names`."""
    return [Job(name, (os.fspath(p),)) for name, p in zip(output_names(paths, flat=flat), paths)]


NOT_IMAGE = "not-image"  # Outcome status of an input that is not a DICOM image (listed, not a failure)


def _not_image(path: str, reason: str) -> Outcome:
    return Outcome("", (path,), NOT_IMAGE, message=reason)


def classify_outcomes(paths: Sequence[str | os.PathLike]) -> tuple[list[str], list[Outcome]]:
    """(the DICOM images among `paths`, an Outcome for each other input): objects without pixel data
    (DICOMDIR, SR, RT Plan, KO...) and non-DICOM files get status "not-image" with the reason; an
    unreadable file is a failure."""
    from .classify import classify

    images, others = [], []
    for p in map(os.fspath, paths):
        try:
            c = classify(p)
        except OSError as exc:
            others.append(Outcome("", (p,), "failed", error_type=type(exc).__name__, message=f"{p}: {exc}"))
            continue
        if c.is_image:
            images.append(p)
        else:
            others.append(_not_image(p, c.reason))
    return images, others


def plan_jobs(paths: Sequence[str | os.PathLike], *, series: bool = False) -> tuple[list[Job], list[Outcome]]:
    """The jobs for `paths` (one per image file, or per series) and an Outcome for every input that is
    not an image (see :func:`classify_outcomes`)."""
    if series:
        jobs, left_out = series_jobs(paths)
        return jobs, classify_outcomes(left_out)[1]
    images, others = classify_outcomes(paths)
    return file_jobs(images), others


def series_jobs(paths: Sequence[str | os.PathLike]) -> tuple[list[Job], list[str]]:
    """One job per series (named by its SeriesInstanceUID), and the input files in no series
    (not DICOM images: gpudcm.series.group_series skips them)."""
    from .series import group_series

    groups = group_series([os.fspath(p) for p in paths])
    names = unique_names([safe_name(s.uid or "no-series-uid") for s in groups])
    grouped = {p for s in groups for p in s.paths}
    left_out = [os.fspath(p) for p in paths if os.fspath(p) not in grouped]
    return [Job(n, tuple(s.paths), "series", s) for n, s in zip(names, groups)], left_out


# Frames (or slices) decoded and written at a time by a job: a worker holds one such chunk, not the output.
CHUNK_BYTES = 32 << 20

# into(outcome) -> an array-like receiving the output: ``target[a:b] = block`` along the first axis (the
# frames or slices), ``target[...] = arr`` for an output without one. Called once the outcome's shape,
# dtype, frames, transfer syntax and metadata are known, before any block is written.
Into = Callable[[Outcome], Any]


class _WriteFailed(Exception):
    """The target refused a write (e.g. a full disk): recorded as a write failure, not a decode one."""


def write_job(job: Job, into: Into, *, device: str = "auto", raw: bool = False, as_rgb: bool = True,
              rescale: bool = False, where: str = "") -> Outcome:
    """Decode `job` and write it, chunk by chunk, into the array `into(outcome)` creates from the header
    (shape, dtype), so the process holds one chunk of frames (``CHUNK_BYTES``; one frame or slice at
    least) and its compressed bytes, not the output; values as :func:`gpudcm.pixel_array` (or
    :func:`gpudcm.series.load_volume`) returns them. ``rescale=True``: modality values (float32, see
    :func:`gpudcm.metadata.to_modality`). On CUDA the output is decoded on the device in one call and
    copied back chunk by chunk. Only returning "done" means the target holds every chunk: a caller marks
    it complete after that. Never raises for a bad input: the Outcome says "failed" with the error's type
    and message (`where` names the target in a write failure's message)."""
    from .metadata import MODALITY, STORED, job_metadata

    t0 = time.perf_counter()
    try:
        meta = job_metadata(job.kind, job.paths, job.series, values=MODALITY if rescale else STORED)
        outcome = Outcome(job.name, job.paths, "done", meta=meta, bytes_in=_file_bytes(job.paths))
        make = job_blocks if job.kind == "file" else series_blocks
        with make(job, outcome, device=device, raw=raw, as_rgb=as_rgb, rescale=rescale) as (shape, blocks):
            _drain(blocks, shape, outcome, into)
    except _WriteFailed as exc:
        cause = exc.__cause__
        return Outcome(job.name, job.paths, "failed", seconds=time.perf_counter() - t0, error_type=type(cause).__name__,
                       message=f"writing {job.name}{' to ' + where if where else ''}: {' '.join(str(cause).split())}")
    except Exception as exc:  # noqa: BLE001 - any failure of one input is recorded, not raised
        return Outcome(job.name, job.paths, "failed", seconds=time.perf_counter() - t0,
                       error_type=type(exc).__name__, message=" ".join(str(exc).split()))
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _pydicom_shape(block: np.ndarray) -> tuple[int, ...]:
    """The shape of an output held whole by `block` (frames, ...): no frame axis for one frame."""
    return tuple(block.shape) if len(block) > 1 else tuple(block.shape[1:])


def _drain(blocks: Iterator[tuple[int, np.ndarray]], shape, outcome: Outcome, into: Into) -> None:
    """Write every (first row, block) of `blocks` into the target, created at the first block. `shape`:
    the output's, or a function of the first block giving it (e.g. _pydicom_shape)."""
    target = None
    for a, block in blocks:
        if target is None:
            if callable(shape):
                shape = shape(block)
            outcome.shape, outcome.dtype = tuple(shape), str(block.dtype)
            outcome.bytes_out = int(np.prod(shape, dtype=np.int64)) * block.dtype.itemsize
            try:
                target = into(outcome)
            except Exception as exc:
                raise _WriteFailed() from exc
        if str(block.dtype) != outcome.dtype or tuple(block.shape[1:]) != tuple(shape[-block.ndim + 1:]):
            raise GpudcmError(f"cannot stack: {outcome.paths[0]} is {tuple(shape)} {outcome.dtype} but rows "
                              f"{a}.. are {tuple(block.shape[1:])} {block.dtype}")
        try:
            if len(shape) == block.ndim:
                target[a : a + len(block)] = block
            else:
                target[...] = block[0]
        except Exception as exc:
            raise _WriteFailed() from exc
    if target is None:
        raise GpudcmError(f"{outcome.name}: nothing was decoded")


def rows_per_chunk(row_bytes: int) -> int:
    return max(1, CHUNK_BYTES // max(1, row_bytes))


def _host_blocks(arr: Any, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """A (device) array back on the host a chunk of rows at a time (no frame axis: one block)."""
    if rows is None:
        yield 0, to_host(arr)[None]
        return
    per = rows_per_chunk(int(arr.nbytes) // max(1, rows))
    for a in range(0, rows, per):
        yield a, to_host(arr[a : a + per])


@contextmanager
def job_blocks(job: Job, outcome: Outcome, *, device: str, raw: bool, as_rgb: bool, rescale: bool):
    """(output shape or None, blocks) of a file job: frames decoded chunk by chunk on the CPU
    (gpudcm.frame_decode.iter_chunks), or decoded on the device and copied back chunk by chunk."""
    from .api import pixel_array
    from .capabilities import backend_for
    from .cuda.runtime import resolve_device
    from .frame_decode import decoded_shape, iter_chunks
    from .metadata import to_modality
    from .reader import open_pixels

    dev = resolve_device(device)
    with open_pixels(job.paths[0]) as reader:  # parsed once; frames read as they are decoded
        spec = reader.spec
        outcome.transfer_syntax, outcome.frames = spec.transfer_syntax.name, spec.number_of_frames
        outcome.backend = backend_for(spec, dev).backend
        meta = outcome.meta
        pair = None
        if rescale and spec.samples_per_pixel == 1 and meta["rescale_slope"] is not None:
            pair = (meta["rescale_slope"], meta["rescale_intercept"])
        if dev == "cpu":
            shape = decoded_shape(reader) or _pydicom_shape
            per = rows_per_chunk(spec.frame_pixels * spec.dtype.itemsize)
            blocks = iter_chunks(reader, per, raw=raw, as_rgb=as_rgb)
        else:
            arr = pixel_array(reader, device=device, raw=raw, as_rgb=as_rgb)
            shape = tuple(arr.shape)
            blocks = _host_blocks(arr, shape[0] if len(shape) > len(spec.frame_shape) else None)
        if pair is not None:
            blocks = ((a, to_modality(b, pair, stacked=False)) for a, b in blocks)
        yield shape, blocks


@contextmanager
def series_blocks(job: Job, outcome: Outcome, *, device: str, raw: bool, as_rgb: bool, rescale: bool):
    """(output shape, blocks) of a series job: on the CPU slices decoded a chunk of slices at a time
    (each chunk with :func:`gpudcm.decode_batch`), a single multi-frame file frame chunk by frame
    chunk; on the device the volume decoded in one pass (gpudcm.series.load_volume) and copied back
    chunk by chunk. ``rescale``: each slice's own Rescale Slope/Intercept, as load_volume applies them."""
    from .cuda.runtime import resolve_device
    from .metadata import to_modality
    from .series import check_stackable, load_volume, read_header, rescale_pairs

    series = job.series
    outcome.transfer_syntax = outcome.meta["transfer_syntax"]
    outcome.frames = len(series.paths)
    pairs = rescale_pairs(series) if rescale else None
    if pairs is not None:  # every slice converted (float32), those without a pair by (1, 0), as load_volume
        pairs = [p or (1.0, 0.0) for p in pairs]
    if resolve_device(device) != "cpu":
        arr = load_volume(series, device=device, raw=raw, as_rgb=as_rgb, rescale=rescale)
        outcome.frames = int(arr.shape[0])
        yield tuple(arr.shape), _host_blocks(arr, int(arr.shape[0]))
        return
    check_stackable(series)
    header = read_header(series.paths[0]) if len(series.paths) == 1 else None
    if len(series.paths) == 1 and header is None:
        raise GpudcmError(f"series {series.uid or '<no uid>'}: {series.paths[0]} is not a DICOM image")
    if header is not None and header.frames > 1:  # one multi-frame file: its frames are the slices
        one = Job(job.name, job.paths, "file")
        with job_blocks(one, Outcome(job.name, job.paths, "done", meta=outcome.meta), device="cpu", raw=raw,
                        as_rgb=as_rgb, rescale=False) as (shape, blocks):
            if pairs is not None:
                blocks = ((a, to_modality(b, pairs[0], stacked=False)) for a, b in blocks)
            yield shape, _counted(blocks, outcome)
        return
    n = len(series.paths)
    yield (lambda block: (n, *block.shape[1:])), _slice_blocks(series, raw, as_rgb, pairs)


def _counted(blocks: Iterator[tuple[int, np.ndarray]], outcome: Outcome) -> Iterator[tuple[int, np.ndarray]]:
    """`blocks` passed on, ``outcome.frames`` set to the rows they hold."""
    for a, block in blocks:
        outcome.frames = max(outcome.frames if a else 0, a + len(block))
        yield a, block


def _slice_blocks(series: Any, raw: bool, as_rgb: bool, pairs) -> Iterator[tuple[int, np.ndarray]]:
    """Slices of a series (single-frame files) decoded with decode_batch, a chunk of them at a time."""
    from .api import decode_batch
    from .metadata import to_modality

    paths, a, per = list(series.paths), 0, 1  # the first slice alone tells the chunk size
    while a < len(paths):
        block = decode_batch(paths[a : a + per], device="cpu", raw=raw, as_rgb=as_rgb, stack=True)
        n, per = len(block), rows_per_chunk(int(block[0].nbytes))
        if pairs is not None:
            block = to_modality(block, pairs[a : a + n], stacked=True)
        yield a, block
        a += n


def run_job(job: Job, *, device: str = "auto", raw: bool = False, as_rgb: bool = True,
            rescale: bool = False) -> tuple[np.ndarray | None, Outcome]:
    """:func:`write_job` into a NumPy array, returned with the Outcome (the array is None when it failed)."""
    held: list[np.ndarray] = []

    def into(outcome: Outcome) -> np.ndarray:
        held.append(np.empty(outcome.shape, dtype=outcome.dtype))
        return held[0]

    outcome = write_job(job, into, device=device, raw=raw, as_rgb=as_rgb, rescale=rescale)
    return (held[0] if outcome.status == "done" else None), outcome


def _file_bytes(paths: Sequence[str]) -> int:
    try:
        return sum(os.path.getsize(p) for p in paths)
    except OSError:
        return 0
