"""Peak memory and time of frame-level access on big files: gpudcm against pydicom, each call alone in a
fresh process (peak RSS growth over the process after imports and one warm-up decode of a small file).

Files (generated into --dir, frame by frame): a ~630 MB native file (1200 frames of 512 x 512 uint16) and
a ~600-frame RLE Lossless file (~330 MB, noise frames). Calls: the first frame of ``iter_frames`` /
``iter_pixels``, one frame by index, the whole file (``pixel_array(path)``; and pydicom's
``dcmread(path).pixel_array``), and one Dask/CLI job as a worker runs it (written to Zarr / .npy beside the
file, chunk by chunk; and the old task that held the whole output before writing it). One command:

    PYTHONPATH=src .venv/bin/python benchmarks/memory.py [--dir /tmp/gpudcm-memory] [--repeat 3]
        [--out benchmarks/results/memory-cpu-dev-machine.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import bigfiles  # noqa: E402
from gpudcm.jobs import CHUNK_BYTES  # noqa: E402

MB = 1 << 20
FRAME = 512 * 512 * 2
CALLS = [("first", "gpudcm", "gpudcm.iter_frames -> first frame"), ("first", "pydicom", "pydicom iter_pixels -> first frame"),
         ("index", "gpudcm", "gpudcm.pixel_array(index=k)"), ("index", "pydicom", "pydicom pixel_array(path, index=k)"),
         ("whole", "gpudcm", "gpudcm.pixel_array(path)"), ("whole", "pydicom", "pydicom pixel_array(path)"),
         ("whole", "pydicom-dataset", "pydicom dcmread(path).pixel_array"),
         ("zarr", "gpudcm-worker", "Dask worker task (decode_and_write -> Zarr, chunk by chunk)"),
         ("npy", "gpudcm-worker", "CLI job (decode_to_npy -> .npy, chunk by chunk)"),
         ("zarr-held", "gpudcm-worker", "before: worker task holding the output (run_job, then Zarr write)")]


def files(where: Path, native_frames: int, rle_frames: int) -> dict[str, Path]:
    where.mkdir(parents=True, exist_ok=True)
    out = {"native": where / f"native_{native_frames}.dcm", "rle": where / f"rle_{rle_frames}.dcm"}
    if not out["native"].exists():
        bigfiles.write_native(out["native"], frames=native_frames)
    if not out["rle"].exists():
        bigfiles.write_rle(out["rle"], frames=rle_frames)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/gpudcm-memory"))
    ap.add_argument("--native-frames", type=int, default=1200)
    ap.add_argument("--rle-frames", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per call (median time, max peak)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    from pydicom.data import get_testdata_file

    warm = get_testdata_file("emri_small_RLE.dcm")
    paths = files(args.dir, args.native_frames, args.rle_frames)
    lines = ["# Frame-level access on big files: peak memory and time (CPU)", "",
             "Each call alone in a fresh process; peak = the process's peak RSS after the call minus its RSS just "
             "before it (after imports and one warm-up decode of a small file, so plugin imports are not counted; "
             "an upper bound of what the call added); time = the call "
             f"alone, median of {args.repeat} processes (peak: their maximum), calls interleaved. Frame = 512 x 512 "
             "uint16 = 0.5 MB. Noisy 2-core machine shared with other jobs: re-run on a quiet one.", "",
             "Command: `PYTHONPATH=src .venv/bin/python benchmarks/memory.py`", ""]
    verdicts = []
    for kind, path in paths.items():
        size = path.stat().st_size
        frames = args.native_frames if kind == "native" else args.rle_frames
        k = frames // 2
        lines += [f"## {kind}: {path.name}, {size / MB:.0f} MB, {frames} frames (index k = {k})", "",
                  "| call | peak over base (MB) | time (ms) | output (MB) |", "|---|---:|---:|---:|"]
        got = {}
        calls = [c for c in CALLS if c[1] != "pydicom-dataset" or c[0] == "whole"]
        results: dict = {c: [] for c in calls}
        for _ in range(args.repeat):  # interleaved: each repeat runs every call once
            for c in calls:
                results[c].append(bigfiles.measure_in_subprocess(c[1], c[0], str(path), k, warm))
                bigfiles.clean_worker_outputs(str(path))
        for (op, lib, label), runs in results.items():
            sums = {r["checksum"] for r in runs}
            peak = max(r["peak_over_base"] for r in runs)
            secs = statistics.median(r["seconds"] for r in runs)
            got[(op, lib)] = (peak, secs, runs[0]["out_bytes"], sums)
            lines.append(f"| {label} | {peak / MB:.1f} | {secs * 1e3:.1f} | {runs[0]['out_bytes'] / MB:.1f} |")
            print(kind, label, f"{peak / MB:.1f} MB", f"{secs * 1e3:.1f} ms", flush=True)
        for op in ("first", "index", "whole"):
            if got[(op, "gpudcm")][3] != got[(op, "pydicom")][3]:
                verdicts.append(f"{kind} {op}: gpudcm and pydicom values differ")
        for op in ("zarr", "npy", "zarr-held"):
            if got[(op, "gpudcm-worker")][3] != got[("whole", "pydicom")][3]:
                verdicts.append(f"{kind} worker {op}: the written array differs from pydicom's")
        one = max(got[("first", "gpudcm")][0], got[("index", "gpudcm")][0])
        ratio = got[("first", "gpudcm")][1] / got[("first", "pydicom")][1]
        whole_peak, _, out_bytes, _ = got[("whole", "gpudcm")]
        compressed = FRAME if kind == "rle" else 0
        lines += ["", f"- one frame: peak {one / MB:.1f} MB, target <= one frame + 64 MB = {(FRAME + 64 * MB) / MB:.1f} MB: "
                  f"{'met' if one <= FRAME + 64 * MB else 'NOT met'}",
                  f"- time to the first frame: {ratio:.2f}x pydicom's iter_pixels, target <= 1.5x: "
                  f"{'met' if ratio <= 1.5 else 'NOT met'}",
                  f"- whole file: peak {whole_peak / MB:.1f} MB, target <= output + 64 MB + one compressed frame = "
                  f"{(out_bytes + 64 * MB + compressed) / MB:.1f} MB: "
                  f"{'met' if whole_peak <= out_bytes + 64 * MB + compressed else 'NOT met'}"]
        chunk = CHUNK_BYTES + (CHUNK_BYTES if kind == "rle" else 0)  # a chunk, and its compressed frames
        worker = max(got[("zarr", "gpudcm-worker")][0], got[("npy", "gpudcm-worker")][0])
        held = got[("zarr-held", "gpudcm-worker")][0]
        lines += [f"- Dask/CLI worker: peak {worker / MB:.1f} MB (before: {held / MB:.1f} MB), target <= one chunk "
                  f"({CHUNK_BYTES / MB:.0f} MB{' + its compressed frames' if kind == 'rle' else ''}) + 64 MB = "
                  f"{(chunk + 64 * MB) / MB:.1f} MB: {'met' if worker <= chunk + 64 * MB else 'NOT met'}", ""]
    lines += ["Values: gpudcm's and pydicom's results have equal checksums for every call." if not verdicts
              else "Values: " + "; ".join(verdicts)]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 1 if verdicts else 0


if __name__ == "__main__":
    raise SystemExit(main())
