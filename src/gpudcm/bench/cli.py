"""The ``gpudcm bench`` subcommand: build the workloads, time every contender, write the report.

    gpudcm bench [--device auto|cpu|cuda] [--quick] [--out DIR] [--name STEM] [--cache DIR]
                 [--workloads a,b] [--size NAME=N] [--rounds N] [--min-sample-ms MS] [--workers N] [--no-plot]
    gpudcm bench --from-json RUN.json [--out DIR] [--name STEM]     # the .md/.png again, nothing measured

Exit status: 0 when every gpudcm row decoded and agreed with pydicom, 1 when one errored (rows of other
libraries that fail are reported, not counted), 2 for bad arguments or ``--device cuda`` without a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

DESCRIPTION = ("Build the fixed workloads (cached), time gpudcm, pydicom (one core and all cores), nvImageCodec's "
               "pydicom plugin and the copy limits side by side, and write a Markdown table, a JSON file with every "
               "timing and a PNG chart.")
QUICK_ROUNDS, FULL_ROUNDS = 3, 7
QUICK_MIN_SAMPLE_MS, FULL_MIN_SAMPLE_MS = 5.0, 50.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``bench`` on the top-level ``gpudcm`` parser."""
    p = sub.add_parser("bench", help="side-by-side performance report (Markdown, JSON, PNG)",
                       description=DESCRIPTION)
    configure(p)
    p.set_defaults(func=run)


def configure(p: argparse.ArgumentParser) -> None:
    from .workloads import RECIPES

    p.add_argument("--device", default="auto", help="auto | cpu | cuda: cpu measures no GPU row (default auto)")
    p.add_argument("--quick", action="store_true", help="small workloads, few rounds (CI smoke test)")
    p.add_argument("--out", default="gpudcm-bench", help="folder for the .md/.json/.png (default ./gpudcm-bench)")
    p.add_argument("--name", default=None, help="file stem (default bench-<device>[-quick])")
    p.add_argument("--cache", default=None, help="workload cache folder (default ~/.cache/gpudcm/bench)")
    p.add_argument("--workloads", default=None, help=f"comma-separated subset of: {', '.join(RECIPES)}; or wsi (slide regions against wsidicom)")
    p.add_argument("--size", action="append", default=[], metavar="NAME=N",
                   help="files (frames for jpeg-baseline-us) of one workload, overriding --quick/full sizes")
    p.add_argument("--rounds", type=int, default=None, help=f"timed rounds (default {FULL_ROUNDS}, --quick {QUICK_ROUNDS})")
    p.add_argument("--min-sample-ms", type=float, default=None,
                   help=f"repeat calls until one timing lasts this long (default {FULL_MIN_SAMPLE_MS:g}, "
                        f"--quick {QUICK_MIN_SAMPLE_MS:g})")
    p.add_argument("--workers", type=int, default=None, help="processes for the pydicom pool (default: usable "
                                                             "cores; 0 = no pool row)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG chart")
    p.add_argument("--encode", action="store_true",
                   help="the encode benchmark instead: a CT series (--size encode=N slices, default 256) written as "
                        "HTJ2K/J2K/JPEG-LS by gpudcm and as J2K by pydicom, then decoded by pydicom")
    p.add_argument("--from-json", default=None, metavar="FILE",
                   help="measure nothing: write the .md/.png again from a JSON file of an earlier run "
                        "(e.g. one from a GPU machine without matplotlib)")


def _options(args: argparse.Namespace) -> tuple[list[str] | None, dict[str, int]]:
    from .workloads import RECIPES

    names = None
    if args.workloads:
        names = [n.strip() for n in args.workloads.split(",") if n.strip()]
        unknown = [n for n in names if n not in RECIPES and n != "wsi"]
        if unknown:
            _usage_error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    sizes = {}
    for item in args.size:
        name, _, n = item.partition("=")
        if name not in RECIPES or not n.isdigit() or int(n) < 1:
            _usage_error(f"--size wants NAME=N with N >= 1 and NAME one of {', '.join(RECIPES)}")
        sizes[name] = int(n)
    return names, sizes


def _usage_error(msg: str) -> NoReturn:
    print(f"gpudcm bench: {msg}", file=sys.stderr)
    raise SystemExit(2)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _settings(args: argparse.Namespace, device: str, rounds: int, min_sample_ms: float):
    """The contenders' shared state: CUDA's absence, the warmed process pool, nvImageCodec's plugin."""
    from ..cuda.runtime import cuda_status
    from .machine import usable_cores
    from .pool import DecodePool
    from .runner import Settings, nvimgcodec_plugin

    from .others import keep_pydicom_plugins

    keep_pydicom_plugins()  # python-gdcm gets its own row, not pydicom's (see gpudcm.bench.others)
    settings = Settings(device=device, rounds=rounds, min_sample_s=min_sample_ms / 1e3)
    if device != "cuda":
        why = cuda_status()[1]
        settings.cuda_reason = "--device cpu" if args.device == "cpu" else f"no usable CUDA device: {why}"
    workers = usable_cores() if args.workers is None else args.workers
    if workers <= 0:
        settings.pool_reason = "--workers 0"
    else:
        try:
            settings.pool = DecodePool(workers)
        except (OSError, ValueError) as exc:  # no forkserver on this platform, process limits
            settings.pool_reason = f"no process pool here: {type(exc).__name__}: {exc}"
    settings.nvimgcodec, settings.nvimgcodec_reason = nvimgcodec_plugin(device)
    return settings


def _time_all(built: list, settings) -> list:
    """One WorkloadResult per built (or skipped) workload; a failure while timing is recorded, not raised."""
    from .results import ERROR, Result, WorkloadResult
    from .runner import remove_nvimgcodec, run_workload
    from .workloads import Skipped

    results = []
    try:
        for w in built:
            t0 = time.perf_counter()
            if isinstance(w, Skipped):
                results.append(WorkloadResult(w.name, w.syntax, w.description, skipped=w.reason))
                _log(f"  [{w.name}] skipped: {w.reason}")
                continue
            try:
                results.append(run_workload(w, settings))
            except Exception as exc:
                wr = WorkloadResult(w.name, w.syntax, w.description, w.source, len(w.paths), w.frames,
                                    w.compressed_bytes, skipped=f"error while timing: {type(exc).__name__}: {exc}")
                wr.results.append(Result("run", "(whole workload)", ERROR, wr.skipped))
                results.append(wr)
            _log(f"  [{w.name}] {time.perf_counter() - t0:.1f} s")
    finally:
        if settings.pool is not None:
            settings.pool.close()
        if settings.nvimgcodec is not None:
            remove_nvimgcodec(settings.nvimgcodec)
    return results


def rewrite(args: argparse.Namespace) -> int:
    """``--from-json``: the report files of an earlier run, written again into --out."""
    import json
    from pathlib import Path

    from .report import results_table, write
    from .results import Run

    src = Path(args.from_json)
    try:
        run_ = Run.from_json(json.loads(src.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _usage_error(f"{src}: not a gpudcm bench JSON file ({type(exc).__name__}: {exc})")
    written = write(run_, args.out, args.name or src.stem, plot=not args.no_plot)
    print(results_table(run_))
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by the parsed `args`; returns the exit status."""
    if args.from_json:
        return rewrite(args)
    if args.encode:
        sizes = dict(item.partition("=")[::2] for item in args.size)
        return run_encode(int(sizes.get("encode", 16 if args.quick else 256)), args.device, args.workers, args.out,
                          args.name)
    from ..cuda.runtime import resolve_device
    from .machine import machine_info
    from .report import not_measured, results_table, write
    from .results import GPUDCM_CPU, GPUDCM_CUDA, Run
    from .workloads import build_all, default_cache

    names, sizes = _options(args)
    if names == ["wsi"]:  # whole-slide regions against wsidicom (gpudcm.bench.wsi)
        from .wsi import run_cli

        return run_cli(args)
    start = time.perf_counter()
    device = resolve_device(args.device)  # "cuda" without a GPU raises DeviceUnavailable (exit 2)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
    min_sample_ms = args.min_sample_ms if args.min_sample_ms is not None else (
        QUICK_MIN_SAMPLE_MS if args.quick else FULL_MIN_SAMPLE_MS)
    cache = args.cache or str(default_cache())
    machine = machine_info(gpu=device == "cuda" or args.device != "cpu")  # the load average before the run

    _log(f"gpudcm bench: device {device}, building workloads in {cache}")
    built = build_all(cache, quick=args.quick, names=names, sizes=sizes)
    _log(f"  workloads ready in {time.perf_counter() - start:.1f} s")
    settings = _settings(args, device, rounds, min_sample_ms)
    pool = settings.pool
    results = _time_all(built, settings)

    run_ = Run(machine, {
        "device": device, "device_argument": args.device, "quick": bool(args.quick), "rounds": rounds,
        "min_sample_ms": min_sample_ms, "pool_workers": pool.workers if pool else 0, "cache": cache,
        "method": (f"one warm-up call per contender (its arrays checked against pydicom's), then the median of "
                   f"{rounds} rounds; contenders interleaved round by round in rotating order; each timing "
                   f"repeats the call until it lasts >= {min_sample_ms:g} ms; CUDA rows synchronise the device "
                   "before the clock stops"),
        "pool": "" if pool is None else (
            f"`concurrent.futures.ProcessPoolExecutor` with {pool.workers} forkserver processes, started and "
            f"warmed before timing ({pool.startup_s:.2f} s, not included); each call hands out files (or frame "
            "ranges of a multi-frame file) and pickles the arrays back."),
        "wall_s": round(time.perf_counter() - start, 1),
    }, results)
    run_.machine["load average (1/5/15 min, at end)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    written = write(run_, args.out, args.name or f"bench-{device}{'-quick' if args.quick else ''}",
                    plot=not args.no_plot)
    skipped = not_measured(run_)
    print(results_table(run_))
    print("\n".join(["", "Not measured:", *skipped, ""]) if skipped else "")
    for kind, path in written.items():
        print(f"{kind}: {path}")
    errors = run_.errors((GPUDCM_CUDA, GPUDCM_CPU, "run"))
    for name, r in errors:
        print(f"ERROR {name} / {r.label}: {r.reason}", file=sys.stderr)
    _log(f"gpudcm bench: done in {run_.settings['wall_s']} s")
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gpudcm.bench.cli``: the same command without the top-level CLI."""
    from ..errors import GpudcmError

    parser = argparse.ArgumentParser(prog="gpudcm bench", description=DESCRIPTION)
    configure(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except GpudcmError as exc:
        print(f"gpudcm bench: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


def run_encode(slices: int, device: str, workers: int | None, out: str, name: str | None) -> int:
    """The encode benchmark (:mod:`gpudcm.bench.encode`): table on stdout, .md and .json in `out`."""
    import json
    from pathlib import Path

    from ..cuda.runtime import resolve_device
    from .encode import as_json, measure, table

    device = resolve_device(device)
    _log(f"gpudcm bench --encode: {slices} slices, device {device}")
    rows = measure(slices, device=device, workers=workers or None)
    text = table(rows, slices)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    stem = name or f"encode-{device}"
    (folder / f"{stem}.md").write_text(text + "\n\nThe machine may be shared: timings are indicative.\n")
    (folder / f"{stem}.json").write_text(json.dumps(as_json(rows, slices, device), indent=1, default=str))
    print(text)
    return 0 if all(r.exact for r in rows) else 1


def main_encode(argv: Sequence[str]) -> int:
    """``benchmarks/encode.py``'s command line."""
    p = argparse.ArgumentParser(prog="benchmarks/encode.py", description="encode benchmark (gpudcm bench --encode)")
    p.add_argument("--slices", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    p.add_argument("--workers", type=int, default=None, help="threads of the series row (default: one per core)")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--name", default=None)
    a = p.parse_args(list(argv))
    return run_encode(a.slices, a.device, a.workers, a.out, a.name)
