"""Benchmark workloads: the ``gpudcm bench`` set (shared with the package) and a corpus registry.

* :func:`bench_workloads`: the workloads ``gpudcm bench`` times (native CT series, RLE CT, JPEG lossless
  CT, long JPEG baseline ultrasound, JPEG 2000 CT, HTJ2K), built by :mod:`gpudcm.bench.workloads` at
  their ``--quick`` size in the same cache folder, so ``pytest benchmarks`` and ``gpudcm bench --quick``
  time the same files with the same calls (:mod:`gpudcm.bench.runner`).
* ``WORKLOADS``: small lists of pydicom / pydicom-data files grouped by codec, for the per-file overhead
  and ``decode_batch`` comparisons of ``benchmarks/report.py``. A workload is a small list of files that
  all use one codec; one "operation" decodes every file of the list once; a *batch* repeats the list to
  ``batch_size`` items. :func:`available` drops those whose files or codec plugin are missing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from pydicom import dcmread
from pydicom.pixels import get_decoder
from pydicom.uid import UID

from gpudcm.bench import workloads as bench
from gpudcm.bench.workloads import data_dirs, find_file

__all__ = ["WORKLOADS", "Workload", "available", "bench_skipped", "bench_workloads", "data_dirs", "find_file",
           "unavailable"]


@lru_cache(maxsize=1)
def _bench_built() -> tuple:
    return tuple(bench.build_all(bench.default_cache(), quick=True))


def bench_workloads() -> list[bench.Workload]:
    """The ``gpudcm bench --quick`` workloads that could be built here (cached, built on first use)."""
    return [w for w in _bench_built() if isinstance(w, bench.Workload)]


def bench_skipped() -> dict[str, str]:
    """``gpudcm bench`` workload name -> why it could not be built here."""
    return {w.name: w.reason for w in _bench_built() if isinstance(w, bench.Skipped)}


@dataclass(frozen=True)
class Workload:
    """A named list of files sharing one transfer syntax (and so one codec)."""

    name: str
    syntax: str  # transfer-syntax label for tables
    codec: str  # plugin library doing the work: "numpy", "pylibjpeg-rle", "libjpeg", "charls", "openjpeg"
    files: tuple[str, ...]  # file names, resolved with find_file
    batch_size: int = 16  # items in the decode_batch comparison; 0 = no batch benchmark
    description: str = ""

    @property
    def paths(self) -> list[str]:
        """Absolute paths of the files (raises FileNotFoundError if one is missing)."""
        out = []
        for name in self.files:
            path = find_file(name)
            if path is None:
                raise FileNotFoundError(f"workload {self.name!r}: {name} not found in {data_dirs()}")
            out.append(path)
        return out

    @property
    def batch(self) -> list[str]:
        """The file list repeated (cyclically) to `batch_size` paths."""
        paths = self.paths
        return [paths[i % len(paths)] for i in range(self.batch_size)]

    def missing(self) -> str | None:
        """Why this workload cannot run here (missing file or codec plugin), or None."""
        for name in self.files:
            path = find_file(name)
            if path is None:
                return f"{name} not found (pip install pydicom-data?)"
            tsyntax = UID(dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)
            try:
                decoder = get_decoder(tsyntax)
            except NotImplementedError:
                return f"pydicom has no decoder for {tsyntax.name}"
            if not decoder.is_available:
                return f"no plugin for {tsyntax.name}: {'; '.join(decoder.missing_dependencies)}"
        return None


_ALL: tuple[Workload, ...] = (
    Workload(
        "native-ct", "Explicit VR LE", "numpy", ("CT_small.dcm",), 32,
        "single-frame 128x128 int16 CT",
    ),
    Workload(
        "native-multiframe", "Explicit VR LE", "numpy", ("emri_small.dcm", "liver.dcm"), 32,
        "10x64x64 uint16 MR + 3x512x512 uint8",
    ),
    Workload(
        "native-large", "Explicit VR LE", "numpy", ("MR2_UNCR.dcm", "RG1_UNCR.dcm"), 16,
        "1024x1024 and 1955x1841 uint16 (2 + 7 MB)",
    ),
    Workload(
        "rle", "RLE Lossless", "pylibjpeg-rle",
        ("MR_small_RLE.dcm", "emri_small_RLE.dcm", "OBXXXX1A_rle_2frame.dcm"), 30,
        "64x64 int16, 10x64x64 uint16, 2x600x800 uint8",
    ),
    Workload(
        "jpeg-baseline", "JPEG Baseline (1)", "libjpeg", ("examples_ybr_color.dcm",), 16,
        "30x240x320 YBR_FULL_422 -> RGB",
    ),
    Workload(
        "jpeg-lossless", "JPEG Lossless SV1 (14)", "libjpeg",
        ("JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"), 16,
        "1024x256 int16 + 768x1024 uint8",
    ),
    Workload(
        "jpeg-ls", "JPEG-LS Lossless", "charls",
        ("emri_small_jpeg_ls_lossless.dcm", "MR_small_jpeg_ls_lossless.dcm"), 32,
        "10x64x64 uint16 + 64x64 int16",
    ),
    Workload(
        "j2k", "JPEG 2000 Lossless", "openjpeg", ("MR2_J2KR.dcm", "693_J2KR.dcm", "US1_J2KR.dcm"), 16,
        "1024x1024 uint16, 512x512 int16, 480x640 RGB",
    ),
    Workload(
        "j2k-large", "JPEG 2000 Lossless", "openjpeg", ("RG1_J2KR.dcm",), 0,
        "1955x1841 uint16 (0.8 s a decode; no batch to keep runs short)",
    ),
)

WORKLOADS: dict[str, Workload] = {w.name: w for w in _ALL}


def available(names: Iterable[str] | None = None) -> list[Workload]:
    """The workloads (all, or those named) that can run with the files and plugins installed here."""
    chosen = [WORKLOADS[n] for n in names] if names is not None else list(WORKLOADS.values())
    return [w for w in chosen if w.missing() is None]


def unavailable() -> dict[str, str]:
    """Workload name -> reason, for those that cannot run here."""
    return {w.name: why for w in WORKLOADS.values() if (why := w.missing()) is not None}
