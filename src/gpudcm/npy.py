"""``gpudcm decode --out DIR``: one ``.npy`` per output, a sidecar JSON beside it, one manifest per run.

``DIR/a/IM0001.npy`` mirrors the input tree (names from :func:`gpudcm.jobs.output_names`);
``DIR/a/IM0001.json`` holds the array's metadata (:func:`gpudcm.metadata.job_metadata`) and is written
after the array's last chunk (arrays are written chunk by chunk: :func:`decode_to_npy`), so it marks the
array complete: a second run skips arrays whose sidecar names the same
sources (resolved path, size, mtime). ``DIR/manifest.jsonl`` has one JSON line per array of the output
(written and already complete), with the array's relative path, shape, dtype and metadata.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .jobs import Job, Outcome
from .metadata import same_output

MANIFEST = "manifest.jsonl"


def array_path(out_dir: Path, job: Job) -> Path:
    return out_dir / f"{job.name}.npy"


def sidecar_path(out_dir: Path, job: Job) -> Path:
    return out_dir / f"{job.name}.json"


def _sidecar(out_dir: Path, job: Job) -> dict | None:
    try:
        return json.loads(sidecar_path(out_dir, job).read_text())
    except (OSError, ValueError):
        return None


def is_complete(out_dir: Path, job: Job, *, rescale: bool = False) -> bool:
    """The array and its sidecar exist, and the sidecar names the same sources and kind of values."""
    side = _sidecar(out_dir, job)
    return (side is not None and array_path(out_dir, job).is_file() and same_output(side, job, rescale))


def _entry(job: Job, outcome: Outcome) -> dict:
    return {"array": f"{job.name}.npy", "shape": list(outcome.shape), "dtype": outcome.dtype,
            "transfer_syntax": outcome.transfer_syntax, **outcome.meta}


class NpyWriter:
    """An ``.npy`` file written piece by piece along its first axis (``w[a:b] = block``; ``w[...] = arr``):
    the header first, then each block's bytes at their place, so the writer holds no more than the block.
    No memory map: its written pages would count in the process's resident memory until unmapped."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype) -> None:
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": self.shape}
        self._fp = open(path, "wb")
        try:
            np.lib.format.write_array_header_1_0(self._fp, header)
        except ValueError:  # a header past 64 KiB needs format 2.0 (np.save does the same)
            self._fp.seek(0)
            np.lib.format.write_array_header_2_0(self._fp, header)
        self._start = self._fp.tell()
        self._row = self.dtype.itemsize * int(np.prod(self.shape[1:], dtype=np.int64))

    def __setitem__(self, key, value) -> None:
        arr = np.ascontiguousarray(value, dtype=self.dtype)
        if key is Ellipsis:
            if arr.shape != self.shape:
                raise ValueError(f"{arr.shape} written into an array of {self.shape}")
            first = 0
        else:
            first, stop, _ = key.indices(self.shape[0])
            if arr.shape != (stop - first, *self.shape[1:]):
                raise ValueError(f"{arr.shape} written into rows {first}..{stop} of {self.shape}")
        self._fp.seek(self._start + first * self._row)
        self._fp.write(arr.reshape(-1).view(np.uint8).data)

    def close(self) -> None:
        self._fp.close()


def decode_to_npy(out_dir: Path, job: Job, *, device: str = "auto", rescale: bool = False) -> Outcome:
    """Decode `job` into ``DIR/<name>.npy`` chunk by chunk (gpudcm.jobs.write_job: the process holds one
    chunk), then write its sidecar: the completion mark, written only once every chunk is. An OSError
    marks the outcome failed; a failed job leaves no partial array."""
    from .jobs import write_job

    path = array_path(out_dir, job)
    remove_stale(out_dir, job)  # an old sidecar must not vouch for an array being rewritten
    writers: list[NpyWriter] = []

    def into(outcome: Outcome) -> NpyWriter:
        path.parent.mkdir(parents=True, exist_ok=True)
        writers.append(NpyWriter(path, outcome.shape, outcome.dtype))
        return writers[0]

    try:
        outcome = write_job(job, into, device=device, rescale=rescale, where=str(out_dir))
    finally:
        for w in writers:
            w.close()
    if outcome.status != "done":
        if writers:
            path.unlink(missing_ok=True)
        return outcome
    try:
        sidecar_path(out_dir, job).write_text(json.dumps(_entry(job, outcome), indent=1))
    except OSError as exc:
        outcome.status, outcome.error_type, outcome.message = "failed", type(exc).__name__, str(exc)
    return outcome


def write_manifest(out_dir: Path, jobs: Sequence[Job], outcomes: Sequence[Outcome]) -> Path:
    """``DIR/manifest.jsonl``: one line per complete array (this run's and the skipped complete ones)."""
    status = {o.name: o for o in outcomes}
    lines = []
    for job in jobs:
        outcome = status.get(job.name)
        if outcome is None or outcome.status not in ("done", "skipped"):
            continue
        entry = _sidecar(out_dir, job)
        if entry is not None:
            lines.append(json.dumps(entry))
    path = out_dir / MANIFEST
    path.write_text("".join(line + "\n" for line in lines))
    return path


def remove_stale(out_dir: Path, job: Job) -> None:
    """Drop the sidecar before rewriting an array: an interrupted rewrite is then not complete."""
    try:
        os.remove(sidecar_path(out_dir, job))
    except OSError:
        pass
