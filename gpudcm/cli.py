"""Command line: ``gpudcm info``, ``decode`` (to .npy or, through Dask, to Zarr), ``convert``, ``capabilities``
(``bench`` and ``show`` are registered from their own modules)."""

from __future__ import annotations

import argparse
import sys
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
from .jobs import Job, Outcome, expand_paths, file_jobs, run_job, series_jobs
from .progress import Progress
from .source import load_dataset
from .spec import pixel_spec


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
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
    device = resolve_device(args.device) if args.device != "auto" else "cuda" if resolve_device("auto") == "cuda" else "cpu"
    rows, failed = [], 0
    for path in expand_paths(args.paths):
        try:
            ds, name = load_dataset(path)
            spec = pixel_spec(ds, source=name)
            cap = backend_for(spec, device)
            dims = f"{spec.number_of_frames}x{spec.rows}x{spec.columns}x{spec.samples_per_pixel}"
            bits = f"{spec.bits_allocated}/{spec.bits_stored}{'s' if spec.is_signed else 'u'}"
            rows.append((path.name, spec.transfer_syntax.name, dims, bits, spec.photometric_interpretation,
                         spec.planar_configuration, str(spec.dtype), spec.pixel_nbytes, cap.backend))
        except (GpudcmError, OSError) as exc:
            failed += 1
            rows.append((path.name, "-", "-", "-", "-", "-", "-", "-", f"error: {exc}"))
    print(_table(("file", "transfer syntax", "frames x rows x cols x spp", "bits a/s", "photometric",
                  "planar", "dtype", "bytes", f"backend ({device})"), rows))
    return 1 if failed else 0


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
    rows.append(("total", sum(len(o.paths) for o in done), sum(o.frames for o in done), sum(o.bytes_in for o in done),
                 sum(o.bytes_out for o in done), f"{wall * 1e3:.1f}", "", device))
    return _table((key_label, "files", "frames", "bytes in", "bytes out", "ms", "MB/s out", "backend"), rows)


def _report_failures(outcomes: Sequence[Outcome]) -> int:
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        where = o.paths[0] if len(o.paths) == 1 else f"{o.name} ({len(o.paths)} files)"
        print(f"FAILED {where}: {o.error_type}: {o.message}", file=sys.stderr)
    return len(failed)


def _decode_local(args: argparse.Namespace, files: list[Path], device: str) -> list[Outcome]:
    """Decode on this machine (`--workers` threads), writing one .npy per file (or series) when --out."""
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    if args.series:
        jobs, left_out = series_jobs(files)
    else:
        jobs, left_out = file_jobs(files, flat=True), []
    outcomes = [Outcome("", (p,), "failed", error_type="InvalidPixelData", message=f"{p} is not a DICOM image (no series)")
                for p in left_out]
    progress = Progress(len(jobs) + len(left_out), label="series" if args.series else "files")
    for o in outcomes:
        progress.update(failed=True)

    def one(job: Job) -> Outcome:
        arr, outcome = run_job(job, device=device)
        if arr is not None and out_dir:
            try:
                np.save(out_dir / f"{job.name}.npy", arr)
            except OSError as exc:
                outcome.status, outcome.error_type, outcome.message = "failed", type(exc).__name__, str(exc)
        return outcome

    pool = ThreadPoolExecutor(max_workers=max(1, args.workers or 1))
    try:
        with progress:
            for future in as_completed([pool.submit(one, job) for job in jobs]):
                outcome = future.result()
                outcomes.append(outcome)
                progress.update(outcome.bytes_out, failed=outcome.status == "failed")
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C: drop the queued files, finish the running ones
    if out_dir:
        n_ok = sum(o.status == "done" for o in outcomes)
        print(f"wrote {n_ok} arrays to {out_dir}/", file=sys.stderr)
    return outcomes


def _decode_zarr(args: argparse.Namespace, files: list[Path], device: str) -> list[Outcome]:
    """Decode with Dask into the Zarr store --out (gpudcm.dask.decode_to_zarr)."""
    from .dask import decode_to_zarr

    progress: list[Progress] = []
    start = lambda n: progress.append(Progress(n, label="series" if args.series else "files"))  # noqa: E731
    step = lambda o: progress[0].update(o.bytes_out, failed=o.status == "failed", skipped=o.status == "skipped")  # noqa: E731
    try:
        summary = decode_to_zarr(files, args.out, series=args.series, device=device, workers=args.workers,
                                 scheduler=args.scheduler, overwrite=args.overwrite, quiet=True, on_start=start,
                                 on_result=step)
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
    print(f"wrote {n_ok} files as {args.transfer_syntax} to {args.output}", file=sys.stderr)
    return 1 if _report_failures(outcomes) else 0


def cmd_capabilities(args: argparse.Namespace) -> int:
    if args.encoders:
        from .encoders import encoder_status

        rows = [(dev, name, enc, "no" if why else "yes", why or "") for name, dev, enc, why in encoder_status()
                if args.device in ("all", dev)]
        print(_table(("device", "transfer syntax (written)", "encoder", "available", "why"), rows))
        return 0
    rows = [(c.device, c.transfer_syntax, c.name, c.backend, "yes" if c.available else "no", c.reason)
            for c in capabilities(None if args.device == "all" else args.device)]
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
    p.add_argument("--out", help="DIR: one .npy per file (or series); X.zarr: one Zarr array each, decoded by Dask workers")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--workers", type=int, help="threads (.npy) or Dask worker processes (.zarr); default 1 / one per core")
    p.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786); needs --out X.zarr")
    p.add_argument("--series", action="store_true", help="one output per series (SeriesInstanceUID), slices stacked in order")
    p.add_argument("--overwrite", action="store_true", help="X.zarr: decode again arrays already complete")
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
    p.add_argument("--device", default="all", help="all | cpu | cuda")
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
    except GpudcmError as exc:
        print(f"gpudcm: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gpudcm: interrupted (a Zarr output resumes where it stopped when run again)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
