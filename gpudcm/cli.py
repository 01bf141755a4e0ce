"""Command line: ``gpudcm info FILE...``, ``gpudcm decode PATH... --out DIR``, ``gpudcm capabilities``."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .api import pixel_array
from .capabilities import backend_for, capabilities
from .cuda.runtime import resolve_device
from .errors import GpudcmError
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


def _expand(paths: Sequence[str]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.is_file())
        else:
            files.append(p)
    return files


def cmd_info(args: argparse.Namespace) -> int:
    device = resolve_device(args.device) if args.device != "auto" else "cuda" if resolve_device("auto") == "cuda" else "cpu"
    rows, failed = [], 0
    for path in _expand(args.paths):
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


@dataclass
class _Tally:
    files: int = 0
    frames: int = 0
    in_bytes: int = 0
    out_bytes: int = 0
    seconds: float = 0.0
    backend: str = ""
    failed: int = 0


def _progress(done: int, total: int, nbytes: int, start: float) -> None:
    if not sys.stderr.isatty():
        return
    dt = max(time.perf_counter() - start, 1e-9)
    sys.stderr.write(f"\r{done}/{total} files  {done / dt:.1f} files/s  {nbytes / dt / 1e6:.1f} MB/s")
    sys.stderr.flush()
    if done == total:
        sys.stderr.write("\n")


def cmd_decode(args: argparse.Namespace) -> int:
    files = demo_files() if args.demo else _expand(args.paths)
    if not files:
        print("no input files (give PATH... or --demo)", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    out_dir = Path(args.out) if args.out else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    failures: list[tuple[str, str]] = []
    start = time.perf_counter()
    total_bytes = 0
    for i, path in enumerate(files, 1):
        t0 = time.perf_counter()
        try:
            ds, name = load_dataset(path)
            spec = pixel_spec(ds, source=name)
            key = spec.transfer_syntax.name
            arr = pixel_array(ds, device=device)
            host = arr.get() if hasattr(arr, "get") else arr
            if out_dir:
                np.save(out_dir / f"{path.stem}.npy", host)
            t = tallies[key]
            t.files += 1
            t.frames += spec.number_of_frames
            t.in_bytes += spec.pixel_nbytes
            t.out_bytes += host.nbytes
            t.seconds += time.perf_counter() - t0
            t.backend = backend_for(spec, device).backend
            total_bytes += spec.pixel_nbytes
        except (GpudcmError, OSError) as exc:
            failures.append((str(path), str(exc)))
            tallies["(failed)"].failed += 1
        _progress(i, len(files), total_bytes, start)
    rows = []
    for key, t in sorted(tallies.items()):
        if key == "(failed)":
            continue
        rate = t.out_bytes / t.seconds / 1e6 if t.seconds else 0.0
        rows.append((key, t.files, t.frames, t.in_bytes, t.out_bytes, f"{t.seconds * 1e3:.1f}", f"{rate:.1f}", t.backend))
    n_ok = sum(t.files for t in tallies.values())
    rows.append(("total", n_ok, sum(t.frames for t in tallies.values()), sum(t.in_bytes for t in tallies.values()),
                 sum(t.out_bytes for t in tallies.values()), f"{(time.perf_counter() - start) * 1e3:.1f}", "", device))
    print(_table(("transfer syntax", "files", "frames", "bytes in", "bytes out", "ms", "MB/s out", "backend"), rows))
    if out_dir:
        print(f"\nwrote {n_ok} arrays to {out_dir}/")
    for path, why in failures:
        print(f"FAILED {path}: {why}", file=sys.stderr)
    return 1 if failures else 0


def cmd_capabilities(args: argparse.Namespace) -> int:
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

    p = sub.add_parser("decode", help="decode files (or --demo data) and print a summary per transfer syntax")
    p.add_argument("paths", nargs="*", help="files or folders")
    p.add_argument("--demo", action="store_true", help="decode the bundled pydicom-data files")
    p.add_argument("--out", help="folder to write one .npy per file")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("capabilities", help="which backend decodes each transfer syntax on each device")
    p.add_argument("--device", default="all", help="all | cpu | cuda")
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


if __name__ == "__main__":
    sys.exit(main())
