"""One-shot CPU benchmark report: gpudcm (device="cpu") against pydicom, as a Markdown table.

Usage::

    python benchmarks/report.py [--rounds N] [--out benchmarks/results/cpu-<host>.md] [--workloads a,b]

For every workload of ``benchmarks/workloads.py`` it measures, with ``time.perf_counter``:

* the CPU-path overhead: ``gpudcm.pixel_array(path, device="cpu")`` against
  ``pydicom.pixels.pixel_array(path)`` on each file (target: median ratio <= 1.05);
* the batch speed-up: ``gpudcm.decode_batch(batch, device="cpu", workers=2)`` against a serial
  ``pydicom.pixels.pixel_array`` loop over the same batch (target: faster, for codecs that release
  the GIL). Whether a codec releases the GIL is measured, not assumed: its decode function (the one
  pydicom's plugin calls) runs over the workload's frames on one thread and on two.

Each comparison warms both contenders up, then takes N rounds; a round times both contenders back to
back (order alternating round by round, so drift and order effects cancel) and each timing repeats
the call until it lasts at least ``--min-sample-ms``. Medians are reported.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.pixels.utils import as_pixel_options
from pydicom.uid import UID

import gpudcm
from gpudcm.bench.machine import machine_info as _machine_info, machine_lines
from gpudcm.bench.timing import Fn, Pair, compare, per_call
from workloads import WORKLOADS, Workload, available, unavailable

OVERHEAD_TARGET = 1.05  # gpudcm-cpu / pydicom, median
BATCH_WORKERS = 2
GIL_FREE_SCALING = 1.25  # codec-only 2-thread speed-up above which the codec counts as releasing the GIL
__all__ = ["Pair", "compare", "machine_info", "measure", "render"]  # Pair/compare: gpudcm.bench.timing


# --------------------------------------------------------------------------- GIL probe


def _codec_jobs(w: Workload) -> tuple[str, list[Fn]]:
    """(codec label, one zero-argument job a frame) calling the decode function pydicom's plugin uses.

    Native data gets a plain copy of its bytes. Encapsulated data gets pylibjpeg's frame decoder (the
    one pydicom's "pylibjpeg" plugin calls first); without pylibjpeg, pydicom's own per-frame
    ``as_array`` on the dataset in memory (which adds pydicom's Python work to the codec's).
    """
    try:
        from pylibjpeg.utils import get_pixel_data_decoders

        plugins = get_pixel_data_decoders(version=2)
    except ImportError:
        plugins = {}
    jobs: list[Fn] = []
    label = "memcpy"
    for path in w.paths:
        ds = pydicom.dcmread(path)
        tsyntax = UID(ds.file_meta.TransferSyntaxUID)
        if not tsyntax.is_encapsulated:
            buf = ds.PixelData
            jobs.append(lambda buf=buf: np.frombuffer(buf, np.uint8).copy())
            continue
        nframes = int(ds.get("NumberOfFrames", 1) or 1)
        if plugins.get(tsyntax):
            label, func = sorted(plugins[tsyntax].items())[0]  # pydicom's pylibjpeg plugin: first, sorted
            opts = as_pixel_options(ds)
            for frame in generate_frames(ds.PixelData, number_of_frames=nframes):
                jobs.append(lambda f=frame, o=opts, fn=func: fn(f, version=2, **o))
        else:
            label = "pydicom as_array"
            jobs += [lambda i=i, ds=ds: pydicom_pixel_array(ds, index=i) for i in range(nframes)]
    return label, jobs


@dataclass
class GilProbe:
    """Codec-only scaling: serial seconds / two-thread seconds over the same frames (median of rounds)."""

    codec: str
    scaling: float

    @property
    def releases_gil(self) -> bool:
        return self.scaling >= GIL_FREE_SCALING


def gil_probe(w: Workload, rounds: int, min_sample_s: float) -> GilProbe:
    """Decode the workload's frames (repeated to >= 16 jobs and >= 20 ms) in one loop, then split over
    two threads (one loop each, no per-job hand-off, so only the GIL can stop them overlapping)."""
    label, jobs = _codec_jobs(w)
    for job in jobs:  # warm-up, and the cost of one pass
        job()
    one_pass = per_call(lambda: [job() for job in jobs], 1)
    # enough work that handing two loops to the pool (~0.1 ms) is noise next to it
    repeat = max(1, math.ceil(0.02 / max(one_pass, 1e-6)), math.ceil(16 / len(jobs)))
    jobs = jobs * repeat
    halves = [jobs[i::BATCH_WORKERS] for i in range(BATCH_WORKERS)]

    def run(part: list[Fn]) -> None:
        for job in part:
            job()

    with ThreadPoolExecutor(max_workers=BATCH_WORKERS) as pool:

        def threaded() -> None:
            for fut in [pool.submit(run, part) for part in halves]:
                fut.result()

        pair = compare(lambda: run(jobs), threaded, rounds, min_sample_s)
    return GilProbe(label, 1.0 / pair.ratio)


def machine_info() -> dict:
    """CPU, cores, load, Python, git commit and package versions (:func:`gpudcm.bench.machine.machine_info`)."""
    return _machine_info(gpu=False)


# --------------------------------------------------------------------------- report


@dataclass
class Row:
    """Results for one workload."""

    w: Workload
    single: Pair
    batch: Pair | None = None
    probe: GilProbe | None = None


def _pydicom_each(paths: Sequence[str]) -> Fn:
    return lambda: [pydicom_pixel_array(p) for p in paths]


def _gpudcm_each(paths: Sequence[str]) -> Fn:
    return lambda: [gpudcm.pixel_array(p, device="cpu") for p in paths]


def _check_equal(paths: Sequence[str]) -> None:
    """Refuse to time gpudcm if it does not return pydicom's arrays."""
    for path in paths:
        want, got = pydicom_pixel_array(path), gpudcm.pixel_array(path, device="cpu")
        if got.shape != want.shape or not np.array_equal(got, want):
            raise SystemExit(f"gpudcm and pydicom disagree on {path}")


def measure(w: Workload, rounds: int, batch_rounds: int, min_sample_s: float, batch: bool) -> Row:
    """All measurements for workload `w`."""
    paths = w.paths
    _check_equal(paths)
    row = Row(w, compare(_pydicom_each(paths), _gpudcm_each(paths), rounds, min_sample_s))
    if batch and w.batch_size > 0 and batch_rounds > 0:
        items = w.batch
        row.batch = compare(
            _pydicom_each(items),
            lambda: gpudcm.decode_batch(items, device="cpu", workers=BATCH_WORKERS),
            batch_rounds,
            min_sample_s,
        )
        row.probe = gil_probe(w, max(3, min(batch_rounds, 7)), min_sample_s)
    return row


def _ms(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def overhead_table(rows: list[Row]) -> list[str]:
    """Markdown table of the gpudcm-cpu / pydicom ratios."""
    out = [
        "| workload | transfer syntax | files | pydicom median ms | gpudcm median ms | ratio | target <= 1.05 | note |",
        "|---|---|---:|---:|---:|---:|:---:|---|",
    ]
    for r in rows:
        p = r.single
        q1, q3 = p.paired_quartiles()
        status = "PASS" if p.ratio <= OVERHEAD_TARGET else "MISS"
        delta = p.b_ms - p.a_ms
        note = f"{delta:+.2f} ms/op; per-round ratio IQR {q1:.3f}-{q3:.3f}; {r.w.description}"
        out.append(
            f"| {r.w.name} | {r.w.syntax} | {len(r.w.files)} | {_ms(p.a_ms)} | {_ms(p.b_ms)} "
            f"| {p.ratio:.3f} | {status} | {note} |"
        )
    return out


def batch_table(rows: list[Row]) -> list[str]:
    """Markdown table of decode_batch(workers=2) against a serial pydicom loop."""
    out = [
        "| workload | transfer syntax | items | serial pydicom median ms | decode_batch(2) median ms "
        "| speed-up | codec 2-thread scaling | target: faster | note |",
        "|---|---|---:|---:|---:|---:|---:|:---:|---|",
    ]
    for r in rows:
        if r.batch is None or r.probe is None:
            continue
        p, probe = r.batch, r.probe
        speedup = 1.0 / p.ratio
        faster = speedup > 1.0
        q1, q3 = p.paired_quartiles()
        spread = f"per-round speed-up IQR {1 / q3:.2f}-{1 / q1:.2f}"
        if probe.releases_gil:
            status = "PASS" if faster else "MISS"
            note = f"{probe.codec} releases the GIL; {spread}"
        else:
            status = "n/a"
            note = (
                f"{probe.codec} does not scale on 2 threads (holds the GIL, or bandwidth-bound): target "
                f"does not apply (would be {'PASS' if faster else 'MISS'}); {spread}"
            )
        out.append(
            f"| {r.w.name} | {r.w.syntax} | {len(r.w.batch)} | {_ms(p.a_ms)} | {_ms(p.b_ms)} "
            f"| {speedup:.2f}x | {probe.scaling:.2f}x | {status} | {note} |"
        )
    return out


def summary(rows: list[Row]) -> list[str]:
    """One line per target."""
    over = [r for r in rows if r.single.ratio > OVERHEAD_TARGET]
    lines = [
        "- CPU-path overhead <= 5% (median): "
        + ("PASS on all workloads" if not over else f"MISS on {', '.join(r.w.name for r in over)}")
        + f" ({len(rows) - len(over)}/{len(rows)} pass)."
    ]
    batched = [r for r in rows if r.batch is not None and r.probe is not None]
    applies = [r for r in batched if r.probe.releases_gil]
    if batched and not applies:
        faster = [r.w.name for r in batched if r.batch.ratio < 1.0]
        lines.append(
            f"- decode_batch(workers=2) faster than a serial pydicom loop, for GIL-releasing codecs: "
            f"not applicable here, no codec scaled >= {GIL_FREE_SCALING}x on two threads "
            f"(decode_batch was faster anyway on: {', '.join(faster) or 'none'})."
        )
    elif applies:
        miss = [r.w.name for r in applies if r.batch.ratio >= 1.0]
        lines.append(
            "- decode_batch(workers=2) faster than a serial pydicom loop, for GIL-releasing codecs: "
            + ("PASS" if not miss else f"MISS on {', '.join(miss)}")
            + f" ({len(applies) - len(miss)}/{len(applies)} pass)."
        )
    return lines


def render(rows: list[Row], info: dict, args: argparse.Namespace, skipped: dict[str, str]) -> str:
    """The whole Markdown report."""
    lines = ["# gpudcm CPU path vs pydicom", ""]
    lines += machine_lines(info)
    lines += [
        f"- **method**: median of {args.rounds} rounds ({args.batch_rounds} for batches), one warm-up call each, "
        f"contenders interleaved round by round (order alternating), each timing >= {args.min_sample_ms} ms "
        "(calls repeated); one op = decode every file of the workload once; arrays checked equal first",
        "",
        "## Targets",
        "",
        *summary(rows),
        "",
        "## CPU-path overhead: `gpudcm.pixel_array(path, device=\"cpu\")` / `pydicom.pixels.pixel_array(path)`",
        "",
        *overhead_table(rows),
    ]
    if any(r.batch is not None for r in rows):
        lines += [
            "",
            f"## `decode_batch(paths, device=\"cpu\", workers={BATCH_WORKERS})` vs serial `pydicom.pixels.pixel_array` loop",
            "",
            "Codec 2-thread scaling: the plugin's frame decode function alone, serial time / time on two threads "
            f"(>= {GIL_FREE_SCALING}x counts as releasing the GIL; ~1x or below: it holds the GIL, or, for a plain "
            "memcpy, is bandwidth-bound).",
            "",
            *batch_table(rows),
        ]
    if skipped:
        lines += ["", "Skipped workloads: " + "; ".join(f"{k} ({v})" for k, v in skipped.items())]
    lines += ["", f"_load average at end: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}_", ""]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="timed rounds a comparison (default 15)")
    ap.add_argument("--batch-rounds", type=int, default=None, help="rounds for batch comparisons (default: --rounds)")
    ap.add_argument("--min-sample-ms", type=float, default=20.0, help="repeat calls until a timing lasts this long")
    ap.add_argument("--workloads", default=None, help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    ap.add_argument("--no-batch", action="store_true", help="skip the decode_batch comparisons")
    ap.add_argument("--out", default=None, help="also write the Markdown report to this path")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.batch_rounds is None:
        args.batch_rounds = args.rounds
    if args.workloads:
        names = [n.strip() for n in args.workloads.split(",") if n.strip()]
        unknown = [n for n in names if n not in WORKLOADS]
        if unknown:
            ap.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
        args.workloads = names
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    skipped = unavailable()
    rows = []
    for w in available(args.workloads):
        t0 = time.perf_counter()
        rows.append(measure(w, args.rounds, args.batch_rounds, args.min_sample_ms / 1e3, not args.no_batch))
        print(f"[{w.name}] done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    text = render(rows, info, args, skipped)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fp:
            fp.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
