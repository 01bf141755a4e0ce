"""The ``wsi`` bench workload: regions of generated JPEG-tiled slides, gpudcm against wsidicom.

Two slides: RGB tiles (YCbCr 4:2:0, what Pillow writes) and MONOCHROME2 tiles. Rows: wsidicom
``read_region`` (its default: one thread, imagecodecs' libjpeg-turbo; its frame caches off, so each timed
read decodes, as ours does); gpudcm on the CPU with its default (per tile from the JPEG header:
libjpeg-turbo where that class is proven within the lossy tolerance of pydicom's decode, here the grey
tiles; pydicom's plugin for YCbCr colour), ``exact=True`` (pydicom's plugin), ``exact=False``
(libjpeg-turbo as wsidicom, threads on all cores, and on one thread); and the codec alone: libjpeg-turbo
decoding the region's tile bytes on one thread (wsidicom's decode share) and on all cores (the limit
for any reader on this machine). Each contender's region is checked first: equal to wsidicom, or the max
abs diff. Run: ``gpudcm bench --workloads wsi [--quick] [--device cpu]`` or ``python benchmarks/wsi.py``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..host import to_host


def build_slide(cache: str | os.PathLike, size: int, tile: int = 256, samples: int = 3) -> list[str]:
    """A one-level JPEG baseline slide (RGB as YCbCr 4:2:0, or grey) of `size` x `size` in `tile` tiles,
    cached under `cache`."""
    from ..wsi.synthetic import make_pyramid

    folder = Path(cache) / (f"wsi-jpeg-{size}-{tile}" if samples == 3 else f"wsi-jpeg-mono-{size}-{tile}")
    manifest = folder / "manifest.json"
    if manifest.is_file():
        paths = json.loads(manifest.read_text())
        if all(os.path.isfile(p) for p in paths):
            return paths
    pyr = make_pyramid(folder, codec="jpeg", size=(size, size), tile=(tile, tile), levels=1, samples=samples)
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


def _codec_alone(slide, region: int, threads: int):
    """libjpeg-turbo decoding the tile bytes of the region (read beforehand), nothing else: a call."""
    import imagecodecs

    from ..codecs import thread_map

    lv = slide.levels[0]
    tw, th = lv.tile_size
    keys = [(c, r, 0, 0) for r in range(-(-region // th)) for c in range(-(-region // tw))]
    inst = lv.instances[0]
    data = inst.reader.read([lv.tiles[k][1] for k in keys])
    shape = (th, tw, lv.samples) if lv.samples > 1 else (th, tw)
    buffers = threading.local()  # one output per thread, reused: the codec's own time, no page faults

    def one(d: bytes) -> None:
        if not hasattr(buffers, "out"):
            buffers.out = np.empty(shape, np.uint8)
        imagecodecs.jpeg8_decode(d, out=buffers.out)

    return lambda: thread_map(one, data, threads)


def measure(paths: list[str], *, region: int, device: str, rounds: int) -> list[dict]:
    """One row per contender: median seconds of a `region` x `region` read at level 0, speed-up over
    wsidicom, and agreement with wsidicom's pixels."""
    import wsidicom

    from ..codecs import default_threads
    from ..wsi import open as open_slide

    slide = open_slide(paths)
    loc, size = (0, 0), (region, region)
    cores = default_threads()
    # no decoded / encoded frame caches: every timed read decodes its tiles, as ours does
    settings = wsidicom.Settings(decoded_frame_cache_size=0, encoded_frame_cache_size=0)
    with wsidicom.WsiDicom.open(paths, settings=settings) as ref:
        truth = np.asarray(ref.read_region(loc, 0, size, as_array=True)).reshape(region, region, -1)
        labels, calls, values = ["wsidicom (1 thread)"], [lambda: ref.read_region(loc, 0, size, as_array=True)], ["reference"]
        contenders = [("gpudcm cpu default (per-tile rule)", "cpu", None, None),
                      ("gpudcm cpu exact=True (pydicom's plugin)", "cpu", True, None),
                      ("gpudcm cpu exact=False (libjpeg-turbo)", "cpu", False, None),
                      ("gpudcm cpu exact=False, 1 thread", "cpu", False, 1)]
        if device == "cuda":
            contenders.append(("gpudcm cuda (nvJPEG)", "cuda", None, None))
        for label, dev, exact, threads in contenders:
            def call(dev=dev, exact=exact, threads=threads):
                out = slide.read_region(loc, 0, size, device=dev, exact=exact, threads=threads)
                if dev == "cuda":
                    import cupy

                    cupy.cuda.Device().synchronize()
                return out

            got = to_host(call())  # warm-up and check
            diff = np.abs(got.astype(int) - truth.astype(int))
            values.append("equal to wsidicom" if not diff.any() else f"max abs diff {diff.max()}, mean {diff.mean():.3f}")
            labels.append(label)
            calls.append(call)
        for label, threads in (("libjpeg-turbo alone, 1 thread (the codec's share)", 1),
                               (f"libjpeg-turbo alone, {cores} threads (the limit)", cores)):
            labels.append(label)
            calls.append(_codec_alone(slide, region, threads))
            values.append("tile bytes read beforehand; decoded into a reused buffer per thread; no placement")
        seconds = _interleaved(calls, rounds)
    return [{"contender": lab, "seconds": sec, "speedup": seconds[0] / sec, "values": val}
            for lab, sec, val in zip(labels, seconds, values)]


def table(rows: list[dict], region: int, machine: str, what: str = "RGB (YCbCr 4:2:0)") -> str:
    by = {r["contender"]: r for r in rows}
    limit = next(r for r in rows if r["contender"].endswith("(the limit)"))
    fast = by["gpudcm cpu exact=False (libjpeg-turbo)"]
    default = by["gpudcm cpu default (per-tile rule)"]
    share = next(r for r in rows if r["contender"].endswith("(the codec's share)"))
    out = [f"### wsi: {region} x {region} region at level 0 of a JPEG baseline {what} slide (256 x 256 tiles)", "",
           f"{machine}", "", "| contender | median s | vs wsidicom | values |", "|---|---|---|---|"]
    out += [f"| {r['contender']} | {r['seconds']:.4f} | {r['speedup']:.2f}x | {r['values']} |" for r in rows]
    out += ["", f"wsidicom spends {share['seconds'] / rows[0]['seconds']:.0%} of its time in the codec; "
            f"the limit (the codec alone on all cores) is {limit['speedup']:.2f}x wsidicom; "
            f"gpudcm exact=False reaches {limit['seconds'] / fast['seconds']:.0%} of it, "
            f"the default {limit['seconds'] / default['seconds']:.0%}."]
    return "\n".join(out)


def run(*, device: str = "cpu", quick: bool = False, cache: str | None = None, out: str | None = None) -> str:
    from .workloads import default_cache

    cache = cache or str(default_cache())
    size = 1024 if quick else 4096
    rounds = 3 if quick else 7
    slides = [(build_slide(cache, size), "RGB (YCbCr 4:2:0)"), (build_slide(cache, size, samples=1), "MONOCHROME2")]
    regions = [512] if quick else ([2048, 4096] if device == "cuda" else [2048])
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    machine = f"{os.cpu_count()} CPU cores, load average {load} (a shared machine gives noisy timings), device {device}"
    text = "\n\n".join(table(measure(paths, region=r, device=device, rounds=rounds), r, machine, what)
                         for paths, what in slides for r in regions)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"wsi-{device}{'-quick' if quick else ''}.md").write_text(text + "\n")
    return text


def run_cli(args) -> int:
    from ..cuda.runtime import resolve_device

    print(run(device=resolve_device(args.device), quick=args.quick, cache=args.cache, out=args.out))
    return 0
