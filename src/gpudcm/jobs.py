"""Units of decoding work shared by ``gpudcm decode`` and :mod:`gpudcm.dask`.

A :class:`Job` is one output: a file, or a series (see :mod:`gpudcm.series`); :func:`run_job` decodes it
to a host array and an :class:`Outcome` (what was decoded, how big, how long; or why it failed).
:func:`output_names` gives every input a unique, storage-safe name derived from its path.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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


def run_job(job: Job, *, device: str = "auto", raw: bool = False, as_rgb: bool = True,
            rescale: bool = False) -> tuple[np.ndarray | None, Outcome]:
    """Decode `job` into a host (NumPy) array; ``rescale=True``: modality values (float32, see
    :func:`gpudcm.metadata.to_modality`). The Outcome's `meta` is the array's metadata
    (:func:`gpudcm.metadata.job_metadata`). Never raises for a bad input: the returned Outcome
    says "failed" with the error's type and message (the array is then None)."""
    from .api import pixel_array
    from .reader import open_pixels
    from .capabilities import backend_for
    from .cuda.runtime import resolve_device
    from .metadata import MODALITY, STORED, job_metadata, to_modality
    from .series import load_volume

    t0 = time.perf_counter()
    try:
        meta = job_metadata(job.kind, job.paths, job.series, values=MODALITY if rescale else STORED)
        if job.kind == "series":
            arr = to_host(load_volume(job.series, device=device, raw=raw, as_rgb=as_rgb, rescale=rescale))
            info = {"frames": int(arr.shape[0]), "transfer_syntax": meta["transfer_syntax"]}
        else:
            with open_pixels(job.paths[0]) as reader:  # parsed once; frames read as they are decoded
                spec = reader.spec
                arr = to_host(pixel_array(reader, device=device, raw=raw, as_rgb=as_rgb))
            if rescale and spec.samples_per_pixel == 1 and meta["rescale_slope"] is not None:
                arr = to_modality(arr, (meta["rescale_slope"], meta["rescale_intercept"]), stacked=False)
            info = {"transfer_syntax": spec.transfer_syntax.name, "frames": spec.number_of_frames,
                    "backend": backend_for(spec, resolve_device(device)).backend}
    except Exception as exc:  # noqa: BLE001 - any failure of one input is recorded, not raised
        return None, Outcome(job.name, job.paths, "failed", seconds=time.perf_counter() - t0,
                             error_type=type(exc).__name__, message=" ".join(str(exc).split()))
    return arr, Outcome(job.name, job.paths, "done", seconds=time.perf_counter() - t0, bytes_out=arr.nbytes,
                        bytes_in=_file_bytes(job.paths), shape=tuple(arr.shape), dtype=str(arr.dtype), meta=meta, **info)


def _file_bytes(paths: Sequence[str]) -> int:
    try:
        return sum(os.path.getsize(p) for p in paths)
    except OSError:
        return 0
