"""Decode many DICOM files into one Zarr store with Dask: :func:`decode_to_zarr`.

One task per file (or per series): each worker decodes with :func:`gpudcm.pixel_array` (or
:func:`gpudcm.series.load_volume`) and writes its own Zarr array, so no pixel data passes through the
scheduler. A failed input is recorded (path, error type, message) and the run goes on; a second run
skips the arrays already complete (each array's ``gpudcm_complete`` attribute is written last).

Where the work runs: a :class:`distributed.LocalCluster` started for the run (processes, one thread
each, no dashboard); an existing cluster (``scheduler="tcp://host:8786"`` or a ``distributed.Client``);
or ``dask_cuda.LocalCUDACluster`` (one worker per GPU) when the device is CUDA and several GPUs are
visible. ``dask[distributed]`` and ``zarr`` are imported when a run starts (``pip install 'gpudcm[dask]'``).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DeviceUnavailable, GpudcmError
from .jobs import NOT_IMAGE, Job, Outcome, _file_bytes, expand_paths, plan_jobs, write_job
from .metadata import same_output

__all__ = ["ClusterPlan", "DecodeSummary", "Failure", "convert_to_dicom", "decode_to_zarr", "plan_cluster"]

COMPLETE = "gpudcm_complete"  # array attribute written after the data: the array is whole
REPORT_JSON = ".report.json"  # suffixes of the report files written beside the store
REPORT_CSV = ".failures.csv"
_CHUNK_BYTES = 32 << 20
_THREADS_UP_TO_CORES = 2  # local CPU runs on this many cores or fewer use threads (see plan_cluster)
_CONNECT_TIMEOUT = "5s"  # an unreachable --scheduler fails after this, not distributed's 30 s


@dataclass(frozen=True)
class Failure:
    path: str  # the file (a series: its first file)
    error_type: str
    message: str
    output: str = ""  # the array name it would have had


@dataclass(frozen=True)
class NotImage:
    path: str
    reason: str  # e.g. "no pixel data (Basic Text SR Storage)", "not a DICOM file"


@dataclass
class DecodeSummary:
    """What :func:`decode_to_zarr` did. ``ok`` when nothing failed."""

    out: str
    done: int = 0
    skipped: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    not_images: list[NotImage] = field(default_factory=list)  # skipped inputs: objects without pixel data
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict:
        return {
            "out": self.out, "done": self.done, "skipped": self.skipped, "failed": self.failed,
            "not_images_count": len(self.not_images),
            "bytes_in": self.bytes_in, "bytes_out": self.bytes_out, "seconds": round(self.seconds, 3),
            "failures": [f.__dict__ for f in self.failures],
            "not_images": [n.__dict__ for n in self.not_images],
        }


@dataclass(frozen=True)
class ClusterPlan:
    """Where a run executes. ``kind``: "client" (a Client was given), "address" (connect to a
    scheduler), "local" (start a LocalCluster of worker processes), "local-threads" (a LocalCluster of
    threads in this process) or "local-cuda" (start a dask_cuda.LocalCUDACluster)."""

    kind: str
    n_workers: int | None = None
    threads_per_worker: int = 1


def plan_cluster(scheduler: Any, device: str, workers: int | None, *, gpu_count: int, cpu_count: int,
                 n_jobs: int) -> ClusterPlan:
    """Choose the cluster (pure; `device` already resolved to "cpu" or "cuda").

    Local CPU runs start ``workers`` (default: one per core, at most one per job) single-threaded
    processes, since pydicom and the CPU codecs hold the GIL; on a machine of at most
    ``_THREADS_UP_TO_CORES`` cores, unless ``workers`` asks for processes, one in-process worker with a
    thread per core instead: starting worker interpreters there cost more CPU than the second core gave
    back (benchmarks/archive.py: the demo set's Zarr run used 2.5x the CPU time of the .npy run with two
    worker processes, 1.2-1.5x with threads, which still overlap NumPy, zstd and file I/O).
    Several GPUs: one worker per GPU (``workers`` caps it). One GPU: ``workers`` (default up to 4)
    processes share it, so files are parsed on several cores while the device decodes.
    """
    if workers is not None and workers < 1:
        raise GpudcmError(f"workers must be at least 1, not {workers}")
    if scheduler is not None:
        return ClusterPlan("address" if isinstance(scheduler, str) else "client")
    limit = max(1, n_jobs)
    if device == "cuda" and gpu_count >= 2:
        return ClusterPlan("local-cuda", min(workers or gpu_count, gpu_count))
    if device == "cuda":
        return ClusterPlan("local", workers or max(1, min(4, cpu_count, limit)))
    if workers is None and cpu_count <= _THREADS_UP_TO_CORES:
        return ClusterPlan("local-threads", 1, threads_per_worker=max(1, min(cpu_count, limit)))
    return ClusterPlan("local", workers or max(1, min(cpu_count, limit)))


def _visible_gpus() -> int:
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def _open_client(plan: ClusterPlan, scheduler: Any):
    """(client, things to close afterwards, in order)."""
    from distributed import Client, LocalCluster

    if plan.kind == "client":
        return scheduler, []
    if plan.kind == "address":
        try:
            client = Client(scheduler, timeout=_CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:  # fail fast, in one line
            raise GpudcmError(f"cannot reach the Dask scheduler at {scheduler} within {_CONNECT_TIMEOUT} "
                              f"({type(exc).__name__}); is it running?") from None
        return client, [client]
    options = dict(n_workers=plan.n_workers, threads_per_worker=plan.threads_per_worker,
                   dashboard_address=None, silence_logs=logging.ERROR,
                   preload=["gpudcm._dask_worker"])  # workers ignore Ctrl-C: this process stops the run
    if plan.kind == "local-cuda":
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError as exc:
            raise DeviceUnavailable(
                f"{plan.n_workers} GPUs are visible and decoding on all of them needs dask-cuda "
                "(pip install dask-cuda); or use one GPU (CUDA_VISIBLE_DEVICES=0), or pass scheduler= "
                "(a running cluster's address or a distributed.Client)"
            ) from exc
        cluster = LocalCUDACluster(**options)
    elif plan.kind == "local-threads":
        options.pop("preload")  # this process handles Ctrl-C itself
        cluster = LocalCluster(processes=False, **options)
    else:
        cluster = LocalCluster(processes=True, **options)
    client = Client(cluster)
    return client, [client, cluster]


def _zarr():
    """The zarr module, once zarr and distributed are known to be installed (one clear error if not)."""
    missing = [name for name in ("distributed", "zarr") if importlib.util.find_spec(name) is None]
    if missing:
        raise GpudcmError(f"decode_to_zarr needs {' and '.join(missing)}: pip install 'gpudcm[dask]'")
    import zarr

    return zarr


def _is_complete(out: str, job: Job, rescale: bool = False) -> bool:
    zarr = _zarr()
    try:
        arr = zarr.open_array(out, path=job.name, mode="r")
        return arr.attrs.get(COMPLETE) is True and same_output(arr.attrs.get("gpudcm", {}), job, rescale)
    except (FileNotFoundError, KeyError, ValueError, TypeError, AttributeError):
        return False


def _chunks(shape: tuple[int, ...], itemsize: int, stacked: bool) -> tuple[int, ...]:
    """One chunk per frame (or slice) when `stacked`, split by rows where a frame exceeds 32 MiB."""
    lead = 1 if stacked else 0
    rows, rest = shape[lead], tuple(shape[lead + 1:])
    row_bytes = itemsize * int(np.prod(rest, dtype=np.int64))
    return (1,) * lead + (max(1, min(rows, _CHUNK_BYTES // max(1, row_bytes))),) + rest


def _attrs(job: Job, outcome: Outcome, device: str) -> dict:
    """The array's ``gpudcm`` attribute: its metadata (gpudcm.metadata.job_metadata) and how it was made."""
    from . import __version__

    return {**outcome.meta, "gpudcm_version": __version__, "transfer_syntax": outcome.transfer_syntax,
            "frames": outcome.frames, "shape": list(outcome.shape), "dtype": outcome.dtype, "device": device}


def decode_and_write(job: Job, out: str, *, device: str = "auto", raw: bool = False, as_rgb: bool = True,
                     quiet: bool = False, rescale: bool = False) -> Outcome:
    """The task run on a worker: create `job`'s array under `out` from the header, decode and write it
    chunk by chunk (the worker holds one chunk: gpudcm.jobs.write_job), mark it complete last. Returns
    the Outcome (small: no pixel data goes back). `quiet` ignores Python warnings meanwhile."""
    if quiet:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return decode_and_write(job, out, device=device, raw=raw, as_rgb=as_rgb, rescale=rescale)
    zarr = _zarr()
    made: list = []

    def into(outcome: Outcome):
        stacked = job.kind == "series" or outcome.frames > 1  # (frames, rows, cols[, samples])
        dtype = np.dtype(outcome.dtype)
        z = zarr.open_array(out, path=job.name, mode="w", shape=outcome.shape, dtype=dtype,
                            chunks=_chunks(outcome.shape, dtype.itemsize, stacked))
        z.attrs.update({"gpudcm": _attrs(job, outcome, device)})
        made.append(z)
        return z

    outcome = write_job(job, into, device=device, raw=raw, as_rgb=as_rgb, rescale=rescale, where=out)
    if outcome.status != "done":
        if made:
            _drop(out, job)  # the partial array this task began (a failure after its first chunk)
        return outcome
    t0 = time.perf_counter()
    try:  # the last write: the array is whole (a worker killed before this leaves it incomplete)
        made[0].attrs.update({COMPLETE: True})
    except Exception as exc:  # noqa: BLE001 - e.g. a full disk: recorded like a decode failure
        outcome.status, outcome.error_type = "failed", type(exc).__name__
        outcome.message = f"writing {job.name} to {out}: {' '.join(str(exc).split())}"
    outcome.seconds += time.perf_counter() - t0
    return outcome


def _drop(out: str, job: Job) -> None:
    """Remove the array `job` left under `out`, if any (best effort)."""
    try:
        del _zarr().open_group(out, mode="a")[job.name]
    except Exception:  # noqa: BLE001 - nothing there, or it cannot be removed: resume redoes it anyway
        pass


def _prepare_groups(out: str, jobs: Sequence[Job]) -> None:
    """Create the root group and every intermediate group before the workers write arrays (so they
    never race to write the same group metadata)."""
    zarr = _zarr()
    root = zarr.open_group(out, mode="a")
    folders = sorted({"/".join(j.name.split("/")[:i]) for j in jobs for i in range(1, j.name.count("/") + 1)})
    for folder in folders:
        root.require_group(folder)


def _write_report(out: str, summary: DecodeSummary) -> None:
    """The summary and failures: in the root group's ``gpudcm_report`` attribute, in ``<out>.report.json``
    and, one row per failure, in ``<out>.failures.csv`` (files beside the store: Zarr warns about
    non-Zarr files inside it)."""
    zarr = _zarr()
    zarr.open_group(out, mode="a").attrs.update({"gpudcm_report": summary.to_dict()})
    _write_report_files(out, summary)


def _write_report_files(out: str, summary: DecodeSummary) -> None:
    """``<out>.report.json`` and ``<out>.failures.csv`` beside the output."""
    report = summary.to_dict()
    base = str(out).rstrip("/\\")
    Path(base + REPORT_JSON).write_text(json.dumps(report, indent=1))
    with open(base + REPORT_CSV, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "error_type", "message", "output"])
        for f in summary.failures:
            writer.writerow([f.path, f.error_type, f.message, f.output])


def decode_to_zarr(
    paths: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    series: bool = False,
    device: str = "auto",
    workers: int | None = None,
    scheduler: Any = None,
    raw: bool = False,
    as_rgb: bool = True,
    overwrite: bool = False,
    quiet: bool = False,
    rescale: bool = False,
    on_result: Callable[[Outcome], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> DecodeSummary:
    """Decode `paths` (files; folders are walked) into the Zarr store `out` (a local folder, e.g. "ct.zarr").

    One array per file, named by its path relative to the inputs' common folder (``"a/b/IM0001"``,
    ".dcm" dropped, characters outside ``[A-Za-z0-9._-]`` replaced, duplicates numbered), shaped as
    :func:`gpudcm.pixel_array` returns it; or with ``series=True`` one ``(slices, rows, cols[, samples])``
    array per series, named by its SeriesInstanceUID, with spacing/orientation/origin attributes. Each
    array's ``gpudcm`` attribute holds its metadata (:func:`gpudcm.metadata.job_metadata`: sources as
    resolved path, size and mtime; UIDs, Modality, rescale per slice, spacing, orientation, origin,
    window, transfer syntax), shape and dtype. ``rescale=True`` stores modality values (float32) instead
    of stored values. Inputs that are not DICOM images (DICOMDIR, SR, RT Plan, non-DICOM files) are
    skipped and listed in ``not_images`` (and the report), not counted as failures.

    `scheduler`: None starts a local cluster for the run (``workers`` processes; several GPUs and
    ``device`` CUDA: dask-cuda's LocalCUDACluster), an address ("tcp://...") or a
    ``distributed.Client`` uses that cluster. Already complete arrays of the same sources are skipped
    unless `overwrite`. Failures do not stop the run: they are listed in the returned
    :class:`DecodeSummary`, the root group's ``gpudcm_report`` attribute, ``<out>.report.json`` and
    ``<out>.failures.csv``. ``quiet=True`` silences Python warnings (pydicom's notes on odd files) in the
    tasks. `on_start(n)` is called with the number of jobs, `on_result(outcome)` as each
    job ends (skipped ones first) - e.g. for a progress bar.
    """
    _zarr()  # both dependencies present, or one clear error
    t0 = time.perf_counter()
    out = os.fspath(out)
    files = [os.fspath(p) for p in expand_paths(paths)]
    if not files:
        raise GpudcmError("decode_to_zarr: no input files")
    jobs, not_images = plan_jobs(files, series=series)
    summary = DecodeSummary(out=out)
    _prepare_groups(out, jobs)
    if on_start:
        on_start(len(jobs) + len(not_images))
    record = _recorder(summary, on_result)

    for outcome in not_images:  # DICOMDIR, SR, RT Plan, non-DICOM files...: listed, not failures
        record(outcome)
    todo = []
    for job in jobs:
        if not overwrite and _is_complete(out, job, rescale):
            record(Outcome(job.name, job.paths, "skipped"))
        else:
            todo.append(job)
    _run_tasks(decode_and_write, todo, record, scheduler=scheduler, device=device, workers=workers,
               out=out, raw=raw, as_rgb=as_rgb, quiet=quiet, rescale=rescale)
    summary.seconds = time.perf_counter() - t0
    _write_report(out, summary)
    return summary


@contextmanager
def _silenced():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _recorder(summary: DecodeSummary, on_result: Callable[[Outcome], None] | None) -> Callable[[Outcome], None]:
    """A function adding one Outcome to `summary` (and telling `on_result`). Objects that are not images
    (not DICOM, or no pixel data: convert copies those unchanged) are listed, not counted as failures."""
    from .convert import COPIED

    def record(outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        if outcome.status == "done":
            summary.done += 1
            summary.bytes_in += outcome.bytes_in
            summary.bytes_out += outcome.bytes_out
        elif outcome.status == "skipped":
            summary.skipped += 1
        elif outcome.status in (NOT_IMAGE, COPIED):
            summary.not_images.append(NotImage(outcome.paths[0], outcome.message))
        else:
            summary.failed += 1
            summary.failures.append(Failure(outcome.paths[0] if outcome.paths else outcome.name, outcome.error_type,
                                            outcome.message, outcome.name))
        if on_result:
            on_result(outcome)

    return record


def _run_tasks(task: Callable[..., Outcome], todo: list[Job], record: Callable[[Outcome], None], *,
               scheduler: Any, device: str, workers: int | None, **kwargs: Any) -> None:
    """Run ``task(job, device=device, **kwargs)`` for every job on the planned cluster, biggest inputs first,
    recording each Outcome (a task that dies is one failure, not a crash)."""
    from distributed import as_completed

    from .cuda.runtime import resolve_device

    if todo:
        dev = resolve_device(device) if scheduler is None else device
        plan = plan_cluster(scheduler, dev, workers, gpu_count=_visible_gpus() if dev == "cuda" else 0,
                            cpu_count=os.cpu_count() or 1, n_jobs=len(todo))
        client, to_close = _open_client(plan, scheduler)
        # catch_warnings is process-wide, not per thread: threaded tasks are silenced once, here
        in_threads = plan.kind == "local-threads" and bool(kwargs.get("quiet"))
        quiet = _silenced() if in_threads else nullcontext()
        if in_threads:
            kwargs["quiet"] = False
        try:
            quiet.__enter__()
            # biggest inputs first: the longest tasks start at once instead of ending the run alone on one worker
            todo.sort(key=lambda j: -_file_bytes(j.paths))
            futures = client.map(task, todo, device=device, pure=False, **kwargs)  # map runs them in list order
            job_of = {f.key: j for f, j in zip(futures, todo)}
            for future in as_completed(futures):
                job = job_of[future.key]
                if future.status == "finished":
                    record(future.result())
                else:  # the task itself died (e.g. a killed worker): still one failure, not a crash
                    exc = future.exception()
                    record(Outcome(job.name, job.paths, "failed", error_type=type(exc).__name__,
                                   message=" ".join(str(exc).split())))
                future.release()
        finally:
            for thing in to_close:
                thing.close()
            quiet.__exit__(None, None, None)


# --- DICOM output ------------------------------------------------------------------------------------


def _converted(job: Job) -> bool:
    """The output exists (convert_file renames a complete file into place) and is newer than its source."""
    try:
        return os.path.getmtime(job.name) >= os.path.getmtime(job.paths[0])
    except OSError:
        return False


def convert_and_write(job: Job, *, transfer_syntax: str, device: str = "cpu", new_uid: bool = False,
                      quality: float | None = None, quiet: bool = False) -> Outcome:
    """The task run on a worker: :func:`gpudcm.convert.convert_file` from ``job.paths[0]`` to ``job.name``."""
    from .convert import convert_file

    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        return convert_file(job.paths[0], job.name, transfer_syntax, device=device, new_uid=new_uid, quality=quality)


def convert_to_dicom(
    src: str | os.PathLike,
    out: str | os.PathLike,
    transfer_syntax: str = "htj2k",
    *,
    quality: float | None = None,
    device: str = "cpu",
    new_uid: bool = False,
    workers: int | None = None,
    scheduler: Any = None,
    overwrite: bool = False,
    quiet: bool = False,
    on_result: Callable[[Outcome], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> DecodeSummary:
    """Re-encode a file or a folder of DICOM files into the folder `out` (same relative paths) with Dask: the
    sibling of :func:`decode_to_zarr` for DICOM output, with the same cluster choice, report and resume.

    `transfer_syntax`: a name of :data:`gpudcm.convert.TRANSFER_SYNTAXES` ("htj2k", "htj2k-rpcl", "j2k",
    "jpegls", "rle", "explicit"...) or a UID; `quality` writes the lossy sibling (see
    :func:`gpudcm.convert.target_syntax`). One task per file (:func:`gpudcm.convert.convert_file`: decoded on
    `device`, written to a temporary name and renamed). Outputs that exist and are newer than their source
    are skipped unless `overwrite`. Failures (not DICOM, no pixel data, a layout the syntax cannot hold...)
    do not stop the run: they are in the returned :class:`DecodeSummary`, ``<out>.report.json`` and
    ``<out>.failures.csv``.
    """
    from .convert import plan_outputs, target_syntax

    if importlib.util.find_spec("distributed") is None:
        raise GpudcmError("convert_to_dicom needs distributed: pip install 'gpudcm[dask]'")
    target_syntax(transfer_syntax, quality)  # a bad name fails here, not in every task
    t0 = time.perf_counter()
    out = os.fspath(out)
    jobs = [Job(os.fspath(b), (os.fspath(a),)) for a, b in plan_outputs(src, out)]
    if not jobs:
        raise GpudcmError(f"convert_to_dicom: no input files in {src}")
    summary = DecodeSummary(out=out)
    if on_start:
        on_start(len(jobs))
    record = _recorder(summary, on_result)
    todo = []
    for job in jobs:
        if not overwrite and _converted(job):
            record(Outcome(job.name, job.paths, "skipped"))
        else:
            todo.append(job)
    _run_tasks(convert_and_write, todo, record, scheduler=scheduler, device=device, workers=workers,
               transfer_syntax=str(transfer_syntax), new_uid=new_uid, quality=quality, quiet=quiet)
    summary.seconds = time.perf_counter() - t0
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # the report lies beside `out` (a folder or a file)
    _write_report_files(out, summary)
    return summary
