"""Command line: ``gpudcm info``, ``decode`` (to .npy or, through Dask, to Zarr), ``convert``, ``capabilities``
(``bench`` and ``show`` are registered from their own modules)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import textwrap
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from . import __version__
from .capabilities import backend_for, capabilities
from .cuda.runtime import resolve_device
from .errors import GpudcmError
from .jobs import NOT_IMAGE, Job, Outcome, expand_paths, plan_jobs, write_job
from .progress import Progress
from .source import load_dataset
from .spec import pixel_spec


def _fold(widths: list[int], limit: int, minimum: int = 8) -> list[int]:
    """Column widths that fit `limit` characters (two between columns): the widest column shrinks first."""
    widths = list(widths)
    while sum(widths) + 2 * (len(widths) - 1) > limit:
        i = max(range(len(widths)), key=widths.__getitem__)
        if widths[i] <= minimum:
            break
        widths[i] -= 1
    return widths


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], width: int | None = None) -> str:
    """A plain-text table; on a terminal (or given `width`) long cells fold onto further lines so the
    table fits."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    if width is None and sys.stdout.isatty():
        width = shutil.get_terminal_size((100, 20)).columns
    if width:
        widths = _fold(widths, width)

    def lines(cells: Sequence[str]) -> list[str]:
        parts = [textwrap.wrap(c, w, break_on_hyphens=False) or [""] for c, w in zip(cells, widths)]
        depth = max(len(p) for p in parts)
        return ["  ".join((p[k] if k < len(p) else "").ljust(w) for p, w in zip(parts, widths)).rstrip()
                for k in range(depth)]

    out = lines(headers) + ["  ".join("-" * w for w in widths)]
    for r in rows:
        out += lines(r)
    return "\n".join(out)


def demo_files() -> list[Path]:
    """The bundled default data: pydicom-data's files that carry pixel data and a transfer syntax."""
    try:
        import data_store
    except ImportError as exc:
        raise SystemExit("--demo needs the pydicom-data package: pip install pydicom-data") from exc
    from pydicom import dcmread

    root = Path(data_store.__file__).parent / "data"
    out = []
    for path in sorted(root.iterdir()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            continue
        if ds.file_meta.get("TransferSyntaxUID") and "Rows" in ds:
            out.append(path)
    return out


def cmd_info(args: argparse.Namespace) -> int:
    from .classify import classify

    device = resolve_device(args.device) if args.device != "auto" else "cuda" if resolve_device("auto") == "cuda" else "cpu"
    rows, failed = [], 0
    files = expand_paths(args.paths)
    for path, label in zip(files, _relative_labels(files)):
        try:
            kind = classify(path)
            if not kind.is_image:
                rows.append((label, "-", "-", "-", "-", "-", "-", "-", f"skipped: {kind.reason}"))
                continue
            ds, name = load_dataset(path)
            spec = pixel_spec(ds, source=name)
            cap = backend_for(spec, device)
            dims = f"{spec.number_of_frames}x{spec.rows}x{spec.columns}x{spec.samples_per_pixel}"
            bits = f"{spec.bits_allocated}/{spec.bits_stored}{'s' if spec.is_signed else 'u'}"
            rows.append((label, spec.transfer_syntax.name, dims, bits, spec.photometric_interpretation,
                         spec.planar_configuration, str(spec.dtype), spec.pixel_nbytes, cap.backend))
        except (GpudcmError, OSError) as exc:
            failed += 1
            rows.append((label, "-", "-", "-", "-", "-", "-", "-", f"error: {exc}"))
    print(_table(("file", "transfer syntax", "frames x rows x cols x spp", "bits a/s", "photometric",
                  "planar", "dtype", "bytes", f"backend ({device})"), rows))
    from .wsi.cli import print_slides

    print_slides(args.paths)  # the levels of any whole slide among the files
    return 1 if failed else 0


def _relative_labels(files: Sequence[Path]) -> list[str]:
    """Each path relative to the files' common folder ("a/IM0001", "b/IM0001"), not bare names that repeat."""
    if not files:
        return []
    absolute = [os.path.abspath(f) for f in files]
    root = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [os.path.relpath(a, root) for a in absolute]


def _summary(outcomes: Sequence[Outcome], wall: float, device: str, key_label: str = "transfer syntax") -> str:
    """One row per transfer syntax (files, frames, bytes, task time, decode rate, backend) and a total
    row with the wall-clock time."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        if o.status == "done":
            groups[o.transfer_syntax or "-"].append(o)
    rows = []
    for key, group in sorted(groups.items()):
        seconds = sum(o.seconds for o in group)
        out_bytes = sum(o.bytes_out for o in group)
        rows.append((key, sum(len(o.paths) for o in group), sum(o.frames for o in group),
                     sum(o.bytes_in for o in group), out_bytes, f"{seconds * 1e3:.1f}",
                     f"{out_bytes / seconds / 1e6:.1f}" if seconds else "", ",".join(sorted({o.backend for o in group} - {""}))))
    done = [o for o in outcomes if o.status == "done"]
    skipped = [o for o in outcomes if o.status == "skipped"]
    if skipped:
        rows.append(("(skipped: already complete)", sum(len(o.paths) for o in skipped), "", "", "", "", "", ""))
    not_images = [o for o in outcomes if o.status == NOT_IMAGE]
    if not_images:
        rows.append(("(skipped: not images)", len(not_images), "", "", "", "", "", ""))
    rows.append(("total", sum(len(o.paths) for o in done), sum(o.frames for o in done), sum(o.bytes_in for o in done),
                 sum(o.bytes_out for o in done), f"{wall * 1e3:.1f}", "", device))
    return _table((key_label, "files", "frames", "bytes in", "bytes out", "ms", "MB/s out", "backend"), rows)


def _report_failures(outcomes: Sequence[Outcome]) -> int:
    """List the skipped non-image inputs and the failures on stderr; return the number of failures."""
    for o in outcomes:
        if o.status == NOT_IMAGE:
            print(f"SKIPPED {o.paths[0]}: {o.message}", file=sys.stderr)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        where = o.paths[0] if len(o.paths) == 1 else f"{o.name} ({len(o.paths)} files)"
        print(f"FAILED {where}: {o.error_type}: {o.message}", file=sys.stderr)
    return len(failed)


class _Discard:
    """A write target that keeps nothing (``gpudcm decode`` without --out: decoded chunk by chunk, timed)."""

    def __setitem__(self, key, value) -> None:
        pass


def _decode_local(args: argparse.Namespace, files: list[Path], device: str) -> list[Outcome]:
    """Decode on this machine (`--workers` threads), writing one .npy per file (or series) when --out,
    mirroring the input tree, with a sidecar JSON each and DIR/manifest.jsonl (gpudcm.npy); arrays
    already complete are skipped unless --overwrite."""
    from . import npy

    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    jobs, outcomes = plan_jobs(files, series=args.series)
    progress = Progress(len(jobs) + len(outcomes), label="series" if args.series else "files")
    for o in outcomes:
        progress.update(failed=o.status == "failed", skipped=True)
    todo = []
    for job in jobs:
        if out_dir and not args.overwrite and npy.is_complete(out_dir, job, rescale=args.rescale):
            outcomes.append(Outcome(job.name, job.paths, "skipped"))
            progress.update(skipped=True)
        else:
            todo.append(job)

    def one(job: Job) -> Outcome:
        if out_dir:
            return npy.decode_to_npy(out_dir, job, device=device, rescale=args.rescale)
        return write_job(job, lambda outcome: discard, device=device, rescale=args.rescale)  # decoded, not kept

    discard = _Discard()

    pool = ThreadPoolExecutor(max_workers=max(1, args.workers or 1))
    try:
        with progress:
            for future in as_completed([pool.submit(one, job) for job in todo]):
                outcome = future.result()
                outcomes.append(outcome)
                progress.update(outcome.bytes_out, failed=outcome.status == "failed")
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C: drop the queued files, finish the running ones
        if out_dir:
            npy.write_manifest(out_dir, jobs, outcomes)
    if out_dir:
        n_ok = sum(o.status == "done" for o in outcomes)
        print(f"wrote {n_ok} arrays to {out_dir}/ (sidecar JSON each, manifest: {out_dir / npy.MANIFEST})",
              file=sys.stderr)
    return outcomes


def _decode_zarr(args: argparse.Namespace, files: list[Path], device: str) -> list[Outcome]:
    """Decode with Dask into the Zarr store --out (gpudcm.dask.decode_to_zarr)."""
    from .dask import decode_to_zarr

    progress: list[Progress] = []
    start = lambda n: progress.append(Progress(n, label="series" if args.series else "files"))  # noqa: E731
    step = lambda o: progress[0].update(o.bytes_out, failed=o.status == "failed", skipped=o.status in ("skipped", NOT_IMAGE))  # noqa: E731
    try:
        summary = decode_to_zarr(files, args.out, series=args.series, device=device, workers=args.workers,
                                 scheduler=args.scheduler, overwrite=args.overwrite, quiet=True, on_start=start,
                                 on_result=step, rescale=args.rescale)
    finally:
        for p in progress:
            p.close()
    print(f"wrote {summary.done} arrays to {args.out} ({summary.skipped} already complete, skipped); "
          f"report: {args.out.rstrip('/')}.report.json", file=sys.stderr)
    return summary.outcomes


def _is_zarr(out: str | None) -> bool:
    return bool(out) and out.rstrip("/\\").lower().endswith(".zarr")


def cmd_decode(args: argparse.Namespace) -> int:
    files = demo_files() if args.demo else expand_paths(args.paths)
    if not files:
        print("no input files (give PATH... or --demo)", file=sys.stderr)
        return 2
    zarr_out = _is_zarr(args.out)
    if args.scheduler and not zarr_out:
        print("--scheduler needs --out X.zarr (Dask workers write into a Zarr store)", file=sys.stderr)
        return 2
    device = args.device if zarr_out and args.scheduler else resolve_device(args.device)
    start = time.perf_counter()
    with warnings.catch_warnings():  # pydicom's per-file warnings would tear the progress line
        warnings.simplefilter("ignore")
        outcomes = (_decode_zarr if zarr_out else _decode_local)(args, files, device)
    print(_summary(outcomes, time.perf_counter() - start, device))
    return 1 if _report_failures(outcomes) else 0


def _convert_dask(args: argparse.Namespace, device: str) -> list[Outcome]:
    """Convert with Dask workers (gpudcm.dask.convert_to_dicom): report and resume as decode's Zarr runs."""
    from .dask import convert_to_dicom

    progress: list[Progress] = []
    start = lambda n: progress.append(Progress(n))  # noqa: E731
    step = lambda o: progress[0].update(o.bytes_out, failed=o.status == "failed", skipped=o.status == "skipped")  # noqa: E731
    try:
        summary = convert_to_dicom(args.input, args.output, args.transfer_syntax, quality=args.quality, device=device,
                                   new_uid=args.new_uid, workers=args.workers, scheduler=args.scheduler,
                                   overwrite=args.overwrite, quiet=True, on_start=start, on_result=step)
    finally:
        for p in progress:
            p.close()
    print(f"{summary.skipped} already converted, skipped; report: {args.output.rstrip('/')}.report.json", file=sys.stderr)
    return summary.outcomes


def cmd_convert(args: argparse.Namespace) -> int:
    from .convert import convert_file, plan_outputs, target_syntax

    target_syntax(args.transfer_syntax, args.quality)
    start = time.perf_counter()
    if args.dask or args.scheduler:
        device = args.device if args.scheduler else resolve_device(args.device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outcomes = _convert_dask(args, device)
        return _convert_report(args, outcomes, start, device)
    pairs = plan_outputs(args.input, args.output)
    device = resolve_device(args.device)
    outcomes: list[Outcome] = []
    with warnings.catch_warnings(), Progress(len(pairs)) as progress:
        warnings.simplefilter("ignore")
        for src, dst in pairs:
            outcome = convert_file(src, dst, args.transfer_syntax, device=device, new_uid=args.new_uid,
                                   quality=args.quality)
            outcomes.append(outcome)
            progress.update(outcome.bytes_out, failed=outcome.status == "failed")
    return _convert_report(args, outcomes, start, device)


def _convert_report(args: argparse.Namespace, outcomes: list[Outcome], start: float, device: str) -> int:
    print(_summary(outcomes, time.perf_counter() - start, device, key_label="source transfer syntax"))
    n_ok = sum(o.status == "done" for o in outcomes)
    n_copied = sum(o.status == "copied" for o in outcomes)
    print(f"wrote {n_ok} files as {args.transfer_syntax} to {args.output}"
          + (f"; copied {n_copied} objects without pixel data unchanged" if n_copied else ""), file=sys.stderr)
    return 1 if _report_failures(outcomes) else 0


def cmd_capabilities(args: argparse.Namespace) -> int:
    if args.encoders:
        from .encoders import encoder_status

        rows = [(dev, name, enc, "no" if why else "yes", why or "") for name, dev, enc, why in encoder_status()
                if args.device in ("all", dev)]
        print(_table(("device", "transfer syntax (written)", "encoder", "available", "why"), rows))
        return 0
    caps = capabilities(None if args.device == "all" else args.device)
    if args.json:
        print(json.dumps([{"device": c.device, "transfer_syntax_uid": str(c.transfer_syntax), "transfer_syntax": c.name,
                           "backend": c.backend, "available": c.available, "reason": c.reason} for c in caps], indent=1))
        return 0
    rows = [(c.device, c.transfer_syntax, c.name, c.backend, "yes" if c.available else "no", c.reason) for c in caps]
    print(_table(("device", "uid", "transfer syntax", "backend", "available", "why"), rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpudcm", description="DICOM pixel data to NumPy/CuPy arrays")
    parser.add_argument("--version", action="version", version=f"gpudcm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print the pixel description and chosen backend of each file")
    p.add_argument("paths", nargs="+", help="files or folders")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (which backend to report)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("decode", help="decode files (or --demo data) to .npy or Zarr, with a summary per transfer syntax")
    p.add_argument("paths", nargs="*", help="files or folders")
    p.add_argument("--demo", action="store_true", help="decode the bundled pydicom-data files")
    p.add_argument("--out", help="DIR: one .npy (and .json metadata) per file or series, mirroring the input tree, "
                                 "and DIR/manifest.jsonl; X.zarr: one Zarr array each, decoded by Dask workers")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--workers", type=int, help="threads (.npy) or Dask worker processes (.zarr); default 1 / one per core (on <= 2 cores: threads in this process)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786); needs --out X.zarr")
    p.add_argument("--series", action="store_true", help="one output per series (SeriesInstanceUID), slices stacked in order")
    p.add_argument("--overwrite", action="store_true", help="decode again arrays already complete (default: skip them)")
    p.add_argument("--rescale", action="store_true",
                   help="store modality values (float32 stored * Rescale Slope + Intercept, e.g. HU) instead of stored values")
    p.set_defaults(func=cmd_decode)

    from .convert import TRANSFER_SYNTAXES

    p = sub.add_parser("convert", help="re-encode files as HTJ2K, JPEG 2000, JPEG-LS, RLE or uncompressed DICOM")
    p.add_argument("input", help="a file or a folder")
    p.add_argument("output", help="a file, or a folder (same relative paths)")
    p.add_argument("--transfer-syntax", choices=tuple(TRANSFER_SYNTAXES), default="explicit",
                   help="what to write (htj2k, htj2k-rpcl, j2k, jpegls: lossless)")
    p.add_argument("--quality", type=float, default=None,
                   help="write the lossy variant: HTJ2K quantization step, J2K PSNR (dB), JPEG-LS NEAR")
    p.add_argument("--device", default="cpu", help="decode (and, where nvImageCodec can, encode) on cpu (default) | auto | cuda")
    p.add_argument("--new-uid", action="store_true", help="give each file a new SOP Instance UID (lossy: always)")
    p.add_argument("--dask", action="store_true", help="convert with Dask workers (report and resume in OUTPUT.report.json)")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (implies --dask)")
    p.add_argument("--workers", type=int, help="Dask worker processes (default one per core)")
    p.add_argument("--overwrite", action="store_true", help="--dask: convert again outputs that are up to date")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("capabilities", help="which backend decodes each transfer syntax on each device")
    p.add_argument("--device", default="all", choices=("all", "cpu", "cuda"), help="all | cpu | cuda")
    p.add_argument("--json", action="store_true", help="a JSON list (one object per transfer syntax and device)")
    p.add_argument("--encoders", action="store_true", help="the writer's encoders instead of the decoders")
    p.set_defaults(func=cmd_capabilities)

    # subcommands kept beside the code they drive (imports inside them stay lazy)
    from .bench.cli import add_parser as add_bench
    from .viewing_cli import add_parser as add_show

    add_bench(sub)
    add_show(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (GpudcmError, ValueError, OSError) as exc:  # bad arguments or inputs: one line, no traceback
        if os.environ.get("GPUDCM_DEBUG"):
            raise
        print(f"gpudcm {args.command}: error: {' '.join(str(exc).split()) or type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(_interrupted(args), file=sys.stderr)
        if argv is None:  # the real command line: the rest of the shutdown is noise
            _silence_shutdown()
        return 130


def _silence_shutdown() -> None:
    """After Ctrl-C, distributed's exit handlers and asyncio report the interrupted cluster start or
    shutdown with tracebacks; the user was told what happened, so stderr and logging go quiet."""
    import logging

    sys.stderr.flush()
    logging.disable(logging.CRITICAL)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - open until the process exits


def _interrupted(args: argparse.Namespace) -> str:
    """What is true after Ctrl-C: which outputs are whole and how to go on."""
    if args.command == "decode" and getattr(args, "out", None):
        return (f"gpudcm: interrupted; every array in {args.out} marked complete is whole (the mark is written "
                "last), the rest are not: run the same command again to resume (complete arrays are skipped)")
    if args.command == "convert":
        return "gpudcm: interrupted; files written so far are complete, the one being written may not be"
    return "gpudcm: interrupted"


if __name__ == "__main__":
    sys.exit(main())
