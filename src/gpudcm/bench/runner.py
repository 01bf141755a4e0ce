"""Time every contender on one workload with one method (:mod:`gpudcm.bench.timing`).

Contenders: gpudcm on CUDA and on the CPU, pydicom on one core (the reference every result is checked
against) and on all cores (:class:`~gpudcm.bench.pool.DecodePool`), nvImageCodec's pydicom plugin, and the
copy limits (:mod:`gpudcm.bench.limits`). One call decodes every file of the workload and returns the arrays.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

import numpy as np
from pydicom import dcmread
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import UID

from ..host import to_host
from .pool import DecodePool, plan
from .results import (
    D2D_DECODED,
    DICOMSDL,
    ERROR,
    GDCM,
    GPUDCM_CPU,
    GPUDCM_CPU2,
    GPUDCM_CUDA,
    H2D_COMPRESSED,
    H2D_DECODED,
    KEYS,
    LIMITS,
    NVIMGCODEC,
    OK,
    PYDICOM,
    PYDICOM_POOL,
    SKIPPED,
    Result,
    WorkloadResult,
)
from .timing import calls_for, interleaved, per_call
from .workloads import Workload
from ..tolerance import LOSSY_SYNTAXES

LOSSY = LOSSY_SYNTAXES  # one per-syntax tolerance (gpudcm.tolerance)


class Mismatch(Exception):
    """A contender's arrays differ from pydicom's beyond what its codec allows."""


@dataclass
class Contender:
    key: str
    label: str
    fn: Callable[[], object]
    note: str = ""


@dataclass
class Settings:
    """What a run measures with."""

    device: str  # "cpu" or "cuda" (resolved)
    rounds: int
    min_sample_s: float
    pool: DecodePool | None = None
    pool_reason: str = ""  # why there is no pool
    cuda_reason: str = ""  # why there is no CUDA contender (device == "cpu")
    nvimgcodec: object | None = None  # the plugin module, registered with pydicom
    nvimgcodec_reason: str = ""


def check(got, want: list[np.ndarray], lossy: bool) -> str:
    """How `got` (one array per file) agrees with pydicom's `want`; raises :class:`Mismatch` when it does not."""
    got = list(got)
    if len(got) != len(want):
        raise Mismatch(f"{len(got)} arrays for {len(want)} files")
    worst = 0
    for i, (g, w) in enumerate(zip(got, want)):
        g = to_host(g)
        if g.shape != w.shape:
            raise Mismatch(f"file {i}: shape {g.shape}, pydicom's is {w.shape}")
        if not np.array_equal(g, w):
            worst = max(worst, int(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))))
    if worst == 0:
        return "equal to pydicom"
    if lossy:
        return f"max abs diff {worst} (lossy codec)"
    raise Mismatch(f"differs from pydicom on a lossless workload (max abs diff {worst})")


# --------------------------------------------------------------------------- nvImageCodec's pydicom plugin


def nvimgcodec_plugin(device: str) -> tuple[object | None, str]:
    """(the plugin module added to pydicom's decoders, "") or (None, why not).

    The plugin ships in nvidia-nvimgcodec (``nvidia.nvimgcodec.tools.dicom.pydicom_plugin``). It is added
    last to each decoder it supports, so pydicom's default plugin order (and so the pydicom and gpudcm cpu
    rows) stays as it was; the nvImageCodec row asks for it by label.
    """
    installed = [d for d in ("nvidia-nvimgcodec-cu13", "nvidia-nvimgcodec-cu12") if _installed(d)]
    if not installed:
        return None, "nvidia-nvimgcodec is not installed"
    if device != "cuda":
        return None, f"{installed[0]} is installed but its plugin needs a CUDA device"
    try:
        from nvidia.nvimgcodec.tools.dicom import pydicom_plugin as plug
    except Exception as exc:
        return None, f"its pydicom plugin does not import: {type(exc).__name__}: {exc}"
    if getattr(plug, "nvimgcodec", None) is None:
        return None, "nvidia.nvimgcodec does not import"
    for dec in plug.SUPPORTED_DECODER_CLASSES:
        if plug.NVIMGCODEC_PLUGIN_LABEL not in dec.available_plugins:
            try:
                dec.add_plugin(plug.NVIMGCODEC_PLUGIN_LABEL, (plug.__name__, "_decode_frame"))
            except ValueError:  # known to the decoder but unavailable
                pass
    return plug, ""


def remove_nvimgcodec(plug) -> None:
    for dec in plug.SUPPORTED_DECODER_CLASSES:
        if plug.NVIMGCODEC_PLUGIN_LABEL in dec.available_plugins:
            dec.remove_plugin(plug.NVIMGCODEC_PLUGIN_LABEL)


def _installed(dist: str) -> bool:
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


# --------------------------------------------------------------------------- contenders


def pydicom_call(paths: tuple[str, ...], plugin: str = "") -> Callable[[], list[np.ndarray]]:
    """pydicom on one core: ``pydicom.pixels.pixel_array`` on each file (with `plugin` when given)."""
    return lambda: [pydicom_pixel_array(p, decoding_plugin=plugin) for p in paths]


def gpudcm_call(paths: tuple[str, ...], device: str = "cpu", workers: int | None = None) -> Callable[[], list]:
    """``gpudcm.decode_batch(paths, device=device, workers=workers)``; on CUDA the device is synchronised
    before returning."""
    import gpudcm

    if device != "cuda":
        return lambda: gpudcm.decode_batch(paths, device=device, workers=workers)
    import cupy

    sync = cupy.cuda.Device().synchronize

    def run() -> list:
        out = gpudcm.decode_batch(paths, device="cuda")
        sync()
        return out

    return run


def _cpu_workers(paths: tuple[str, ...], workers: int) -> str:
    """How ``decode_batch(paths, device="cpu", workers=workers)`` runs: worker processes (gpudcm.file_pool)
    or threads."""
    from .. import file_pool

    if file_pool.usable(paths, workers):
        return f"{workers} worker processes"
    if len(paths) == 1 and workers > 1:
        return f"{workers} workers for the file's frames (threads, or processes for a GIL-holding codec)"
    return f"{workers} thread{'s' if workers != 1 else ''}"


def _backends(paths: tuple[str, ...]) -> str:
    """Which backend decoded how many frames on CUDA (from ``decode_batch(return_info=True)``)."""
    import gpudcm

    _, infos = gpudcm.decode_batch(paths, device="cuda", return_info=True)
    counts = Counter(i.backend for i in infos)
    return "backends: " + ", ".join(f"{b} {n} frames" for b, n in counts.most_common())


def _pixel_bytes(paths: tuple[str, ...]) -> bytes:
    return b"".join(bytes(dcmread(p).PixelData) for p in paths)


def _frame_counts(paths: tuple[str, ...]) -> list[int]:
    return [int(dcmread(p, stop_before_pixels=True).get("NumberOfFrames", 1) or 1) for p in paths]


def contenders(w: Workload, s: Settings, reference: list[np.ndarray]) -> tuple[list[Contender], list[Result]]:
    """The runnable contenders for `w` besides pydicom on one core, and a Result for each one that is not."""
    ready: list[Contender] = []
    skipped: list[Result] = []
    paths = w.paths
    cuda_labels = {GPUDCM_CUDA: "gpudcm cuda", NVIMGCODEC: "nvImageCodec pydicom plugin",
                   H2D_COMPRESSED: "limit: pinned H2D copy, compressed bytes",
                   H2D_DECODED: "limit: pinned H2D copy, decoded bytes", D2D_DECODED: "limit: D2D copy, decoded bytes"}

    def skip(key: str, label: str, why: str) -> None:
        skipped.append(Result(key, label, SKIPPED, why))

    if s.device == "cuda":
        ready.append(Contender(GPUDCM_CUDA, cuda_labels[GPUDCM_CUDA], gpudcm_call(paths, "cuda")))
    else:
        skip(GPUDCM_CUDA, cuda_labels[GPUDCM_CUDA], s.cuda_reason)
    from .. import codecs
    from .others import dicomsdl_call, gdcm_call, version

    cores = codecs.default_threads()
    ready.append(Contender(GPUDCM_CPU, "gpudcm cpu", gpudcm_call(paths), f"default: {_cpu_workers(paths, cores)}"))
    ready.append(Contender(GPUDCM_CPU2, "gpudcm cpu 2 workers", gpudcm_call(paths, workers=2),
                           _cpu_workers(paths, 2)))
    for key, dist, call in ((DICOMSDL, "dicomsdl", dicomsdl_call), (GDCM, "python-gdcm", gdcm_call)):
        label = f"{dist} {version(dist)}" if version(dist) else dist
        if version(dist):
            ready.append(Contender(key, label, call(paths), "1 core"))
        else:
            skip(key, label, f"not installed (pip install {dist}, or gpudcm[bench])")
    n = s.pool.workers if s.pool else 0
    pool_label = f"pydicom {n} process{'' if n == 1 else 'es'}" if s.pool else "pydicom all cores"
    if s.pool is not None:
        chunks = plan(paths, _frame_counts(paths), s.pool.workers)
        ready.append(Contender(PYDICOM_POOL, pool_label, lambda: s.pool.decode(chunks),
                               f"{len(chunks)} tasks; warmed pool (start-up {s.pool.startup_s:.2f} s not timed)"))
    else:
        skip(PYDICOM_POOL, pool_label, s.pool_reason)
    if s.nvimgcodec is None:
        skip(NVIMGCODEC, cuda_labels[NVIMGCODEC], s.nvimgcodec_reason)
    elif UID(w.transfer_syntax) not in s.nvimgcodec.SUPPORTED_TRANSFER_SYNTAXES:
        skip(NVIMGCODEC, cuda_labels[NVIMGCODEC], "the plugin decodes JPEG, JPEG 2000 and HTJ2K only")
    else:
        ready.append(Contender(NVIMGCODEC, cuda_labels[NVIMGCODEC],
                               pydicom_call(paths, s.nvimgcodec.NVIMGCODEC_PLUGIN_LABEL)))
    if s.device == "cuda":
        from .limits import d2d, pinned_h2d

        decoded = np.concatenate([a.reshape(-1).view(np.uint8) for a in reference])
        ready.append(Contender(H2D_COMPRESSED, cuda_labels[H2D_COMPRESSED], pinned_h2d(_pixel_bytes(paths)),
                               f"{w.compressed_bytes / 1e6:.1f} MB"))
        ready.append(Contender(H2D_DECODED, cuda_labels[H2D_DECODED], pinned_h2d(decoded)))
        ready.append(Contender(D2D_DECODED, cuda_labels[D2D_DECODED], d2d(decoded.nbytes)))
    else:
        for key in (H2D_COMPRESSED, H2D_DECODED, D2D_DECODED):
            skip(key, cuda_labels[key], s.cuda_reason or "needs CuPy and a CUDA device")
    return ready, skipped


def run_workload(w: Workload, s: Settings) -> WorkloadResult:
    """Check every contender against pydicom's arrays, then time them all in interleaved rounds."""
    out = WorkloadResult(w.name, w.syntax, w.description, w.source, len(w.paths), w.frames, w.compressed_bytes)
    ref_fn = pydicom_call(w.paths)
    try:
        reference = ref_fn()  # warm-up and the truth
    except Exception as exc:
        out.skipped = f"pydicom cannot decode it here: {type(exc).__name__}: {exc}"
        return out
    out.decoded_bytes = sum(a.nbytes for a in reference)
    lossy = w.transfer_syntax in LOSSY
    ready, results = contenders(w, s, reference)
    timed = [Contender(PYDICOM, "pydicom 1 core", ref_fn)]
    checks = {PYDICOM: "reference"}
    for c in ready:
        try:
            got = c.fn()  # warm-up: imports, plans, kernel builds, handles
            checks[c.key] = "copy only" if c.key in LIMITS else check(got, reference, lossy)
            del got
            if c.key == GPUDCM_CUDA:
                try:
                    c.note = _backends(w.paths)
                except Exception as exc:  # the note is extra: its failure is not the row's
                    c.note = f"backends unknown ({type(exc).__name__}: {exc})"
            timed.append(c)
        except Exception as exc:
            results.append(Result(c.key, c.label, ERROR, f"{type(exc).__name__}: {exc}"))
    numbers = [calls_for(per_call(c.fn, 1), s.min_sample_s) for c in timed]
    rounds = interleaved([c.fn for c in timed], numbers, s.rounds)
    for c, n, r in zip(timed, numbers, rounds):
        results.append(Result(c.key, c.label, OK, rounds_s=r, calls=n, check=checks[c.key], note=c.note))
    order = {k: i for i, k in enumerate(KEYS)}
    out.results = sorted(results, key=lambda r: order.get(r.key, len(order)))
    return out
