"""``gpudcm decode --out DIR``: one ``.npy`` per output, a sidecar JSON beside it, one manifest per run.

``DIR/a/IM0001.npy`` mirrors the input tree (names from :func:`gpudcm.jobs.output_names`);
``DIR/a/IM0001.json`` holds the array's metadata (:func:`gpudcm.metadata.job_metadata`) and is written
after the array, so it marks the array complete: a second run skips arrays whose sidecar names the same
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


def write(out_dir: Path, job: Job, arr: np.ndarray, outcome: Outcome) -> None:
    """The array, then its sidecar (the completion mark). An OSError marks the outcome failed."""
    try:
        path = array_path(out_dir, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, arr)
        sidecar_path(out_dir, job).write_text(json.dumps(_entry(job, outcome), indent=1))
    except OSError as exc:
        outcome.status, outcome.error_type, outcome.message = "failed", type(exc).__name__, str(exc)


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
