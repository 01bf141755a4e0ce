"""The ``wsi`` bench workload: regions of a generated JPEG-tiled slide, gpudcm against wsidicom.

Rows: wsidicom ``read_region`` (its default: one thread, imagecodecs' libjpeg-turbo; its frame caches off,
so each timed read decodes, as ours does), gpudcm on the CPU
(``exact=True``: pydicom's values; ``exact=False``: libjpeg-turbo as wsidicom, threads on all cores) and
on CUDA (nvJPEG batch). Each contender's region is checked first: equal to wsidicom, or the max abs diff.
Run: ``gpudcm bench --workloads wsi [--quick] [--device cpu]`` or ``python benchmarks/wsi.py``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..host import to_host


def build_slide(cache: str | os.PathLike, size: int, tile: int = 256) -> list[str]:
    """A one-level JPEG baseline RGB slide of `size` x `size` in `tile` tiles, cached under `cache`."""
    from ..wsi.synthetic import make_pyramid

    folder = Path(cache) / f"wsi-jpeg-{size}-{tile}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        paths = json.loads(manifest.read_text())
        if all(os.path.isfile(p) for p in paths):
            return paths
    pyr = make_pyramid(folder, codec="jpeg", size=(size, size), tile=(tile, tile), levels=1)
    paths = [str(p) for p in pyr.paths]
    manifest.write_text(json.dumps(paths))
    return paths


def _interleaved(calls: list, rounds: int) -> list[float]:
    """Median seconds of each call, timed round by round in rotating order (a shared machine's load
    hits every contender alike)."""
    times: list[list[float]] = [[] for _ in calls]
    for r in range(rounds):
        for i in [(r + j) % len(calls) for j in range(len(calls))]:
            t = time.perf_counter()
            calls[i]()
            times[i].append(time.perf_counter() - t)
    return [float(np.median(t)) for t in times]


def measure(paths: list[str], *, region: int, device: str, rounds: int) -> list[dict]:
    """One row per contender: median seconds of a `region` x `region` read at level 0, speed-up over
    wsidicom, and agreement with wsidicom's pixels."""
    import wsidicom

    from ..wsi import open as open_slide

    slide = open_slide(paths)
    loc, size = (0, 0), (region, region)
    # no decoded / encoded frame caches: every timed read decodes its tiles, as ours does
    settings = wsidicom.Settings(decoded_frame_cache_size=0, encoded_frame_cache_size=0)
    with wsidicom.WsiDicom.open(paths, settings=settings) as ref:
        truth = np.asarray(ref.read_region(loc, 0, size, as_array=True))
        labels, calls, values = ["wsidicom (1 thread)"], [lambda: ref.read_region(loc, 0, size, as_array=True)], ["reference"]
        contenders = [("gpudcm cpu exact (pydicom's values)", "cpu", True), ("gpudcm cpu fast (libjpeg-turbo)", "cpu", False)]
        if device == "cuda":
            contenders.append(("gpudcm cuda (nvJPEG)", "cuda", True))
        for label, dev, exact in contenders:
            def call(dev=dev, exact=exact):
                out = slide.read_region(loc, 0, size, device=dev, exact=exact)
                if dev == "cuda":
                    import cupy

                    cupy.cuda.Device().synchronize()
                return out

            got = to_host(call())  # warm-up and check
            diff = np.abs(got.astype(int) - truth.astype(int))
            values.append("equal to wsidicom" if not diff.any() else f"max abs diff {diff.max()}, mean {diff.mean():.3f}")
            labels.append(label)
            calls.append(call)
        seconds = _interleaved(calls, rounds)
    return [{"contender": lab, "seconds": sec, "speedup": seconds[0] / sec, "values": val}
            for lab, sec, val in zip(labels, seconds, values)]


def table(rows: list[dict], region: int, machine: str) -> str:
    out = [f"### wsi: {region} x {region} region at level 0 of a JPEG baseline RGB slide (256 x 256 tiles)", "",
           f"{machine}", "", "| contender | median s | vs wsidicom | values |", "|---|---|---|---|"]
    out += [f"| {r['contender']} | {r['seconds']:.4f} | {r['speedup']:.2f}x | {r['values']} |" for r in rows]
    return "\n".join(out)


def run(*, device: str = "cpu", quick: bool = False, cache: str | None = None, out: str | None = None) -> str:
    from .workloads import default_cache

    cache = cache or str(default_cache())
    size = 1024 if quick else 4096
    rounds = 3 if quick else 7
    paths = build_slide(cache, size)
    regions = [512] if quick else ([2048, 4096] if device == "cuda" else [2048])
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = f"{os.cpu_count()} CPU cores, load average {load} (a shared machine gives noisy timings), device {device}"
    text = "\n\n".join(table(measure(paths, region=r, device=device, rounds=rounds), r, machine) for r in regions)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"wsi-{device}{'-quick' if quick else ''}.md").write_text(text + "\n")
    return text


def run_cli(args) -> int:
    from ..cuda.runtime import resolve_device

    print(run(device=resolve_device(args.device), quick=args.quick, cache=args.cache, out=args.out))
    return 0
