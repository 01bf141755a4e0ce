"""One short probe per defect of issue 14, run on the device by ci/gpu.sh (step "probes").

Each probe prints one line ``PROBE <id> <name>: PASS|FAIL|SKIP <numbers>`` and never raises: a probe that
crashes prints FAIL with the exception. Exit status: the number of FAIL lines (0 when all pass).
    python3 -m tests.harness.gpu_probes [--only 4,7] [--timeout 60]
Without a GPU every probe fails at the CUDA import (the dry run, GPUDCM_GPU_DRY_RUN=1 bash ci/gpu.sh).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROBES: list[tuple[str, str, Callable[[], tuple[bool | None, str]]]] = []
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"}


def probe(pid: str, name: str):
    def register(fn):
        PROBES.append((pid, name, fn))
        return fn
    return register


def _ts(spec) -> str:
    return str(spec.transfer_syntax)


def _jpeg_syntaxes():
    from gpudcm.routing import JPEG_SYNTAXES

    return JPEG_SYNTAXES


def _cupy():
    import cupy

    cupy.cuda.runtime.getDeviceCount()
    return cupy


def _jpeg_family(predicate) -> list[tuple[Path, object]]:
    """Corpus files of the JPEG family that pydicom decodes, with their PixelSpec, where `predicate(spec)`."""
    from pydicom import dcmread

    from corpus import corpus_files, reference_shape
    from gpudcm.routing import J2K_SYNTAXES, JPEG_SYNTAXES
    from gpudcm.spec import pixel_spec

    out = []
    for p in corpus_files():
        try:
            ds = dcmread(p, stop_before_pixels=True)
            ts = str(ds.file_meta.TransferSyntaxUID)
            if ts not in JPEG_SYNTAXES and ts not in J2K_SYNTAXES:
                continue
            spec = pixel_spec(dcmread(p), source=str(p))
        except Exception:
            continue
        if predicate(spec) and reference_shape(p):
            out.append((p, spec))
    return out


def _compare(files, *, raw: bool = True) -> tuple[int, float, int, set[str], list[str]]:
    """GPU against pydicom on `files`: (max abs diff, mean abs diff, frames, backends used, failures)."""
    import gpudcm
    from pydicom.pixels import pixel_array

    worst, means, frames, backends, failures = 0, [], 0, set(), []
    for p, spec in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = pixel_array(str(p), raw=raw)
                (gpu,), infos = gpudcm.decode_batch([p], device="cuda", raw=raw, return_info=True)
            got = gpu.get()
            if got.shape != ref.shape or got.dtype != ref.dtype:
                failures.append(f"{p.name}: {got.shape} {got.dtype} vs pydicom {ref.shape} {ref.dtype}")
                continue
            d = np.abs(got.astype(np.int64) - ref.astype(np.int64))
            lossy = str(spec.transfer_syntax) in LOSSY
            if not lossy and d.max():
                failures.append(f"{p.name}: lossless differs by up to {d.max()}")
            worst, frames = max(worst, int(d.max())), frames + len(infos)
            means.append(float(d.mean()))
            backends |= {i.backend for i in infos}
        except Exception as exc:
            failures.append(f"{p.name}: {type(exc).__name__}: {exc}")
    return worst, float(np.mean(means)) if means else 0.0, frames, backends, failures


@probe("env", "device, CuPy, NVRTC, kernels")
def _env():
    cupy = _cupy()
    from gpudcm.cuda import kernels, nvrtc

    dev = cupy.cuda.Device()
    path = kernels.compiled_kernel("native.cu", f"sm_{dev.compute_capability}")
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    return True, (f"{props['name'].decode()} cc {dev.compute_capability}, CuPy {cupy.__version__}, CUDA runtime "
                  f"{cupy.cuda.runtime.runtimeGetVersion()}, NVRTC {nvrtc.version()}, native.cu -> {path}")


@probe("1", "Bits Stored < Bits Allocated on nvJPEG output")
def _unused_bits():
    _cupy()
    files = _jpeg_family(lambda s: s.bits_stored < s.bits_allocated and _ts(s) in _jpeg_syntaxes())
    if not files:
        return None, "no such JPEG file in the corpus"
    worst, mean, frames, backends, failures = _compare(files)
    return not failures, f"{len(files)} files, {frames} frames via {sorted(backends)}, max diff {worst}; {failures[:3]}"


@probe("2", "4:2:0 / 4:2:2 chroma upsampling (lossy <= 2)")
def _upsampling():
    _cupy()
    from gpudcm.jpeg_markers import parse_jpeg
    from gpudcm.frames import frame_bytes, frame_extents
    from pydicom import dcmread

    def subsampled(spec):
        if spec.samples_per_pixel != 3 or str(spec.transfer_syntax) not in LOSSY:
            return False
        try:
            ds = dcmread(spec.source)
            frame = bytes(frame_bytes(ds.PixelData, frame_extents(spec, ds.PixelData)[0]))
            return len({(c.h, c.v) for c in parse_jpeg(frame).components}) > 1
        except Exception:
            return False

    files = _jpeg_family(subsampled)
    if not files:
        return None, "no subsampled JPEG in the corpus"
    # judged in YCbCr, where upsampling happens; RGB reported: pydicom's conversion turns a 1 from the IDCT
    # in Y and Cb into up to 3 (tests/jpeg_refs.py device_ybr_and_rgb_agreement)
    worst, mean, frames, backends, failures = _compare(files, raw=True)
    rgb_worst, rgb_mean, _, _, rgb_failures = _compare(files, raw=False)
    return worst <= 2 and not failures + rgb_failures, (
        f"{len(files)} files, {frames} frames via {sorted(backends)}: YCbCr max diff {worst}, mean abs diff "
        f"{mean:.4f}; RGB max diff {rgb_worst}, mean {rgb_mean:.4f}; {(failures + rgb_failures)[:3]}")


@probe("3", "3-component lossless JPEG and signed <= 8-bit J2K routed to a backend that takes them")
def _routing():
    _cupy()
    from gpudcm.routing import J2K_SYNTAXES

    lossless = ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")
    files = _jpeg_family(lambda s: (_ts(s) in lossless and s.samples_per_pixel == 3)
                         or (_ts(s) in J2K_SYNTAXES and s.is_signed and s.bits_stored <= 8))
    if not files:
        return None, "no such file in the corpus"
    worst, mean, frames, backends, failures = _compare(files)
    return not failures, f"{len(files)} files, {frames} frames via {sorted(backends)}, max diff {worst}; {failures[:3]}"


@probe("4", "stream race: outputs reused from the caller stream's pool while its work still reads them")
def _stream_race():
    cupy = _cupy()
    import copy

    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.pixels import pixel_array

    import gpudcm

    first = dcmread(get_testdata_file("CT_small.dcm"))
    second = copy.deepcopy(first)
    second.PixelData = bytes(np.frombuffer(first.PixelData, np.uint8)[::-1])  # other values, same layout
    a, b = [first] * 8, [second] * 8  # 8 x 32 KiB: one block of CuPy's pool per batch
    values = [np.stack([pixel_array(ds)] * 8).astype(np.float32) for ds in (first, second)]
    spin = cupy.RawKernel(r'''extern "C" __global__ void spin(long long cycles) {
        long long t0 = clock64(); while (clock64() - t0 < cycles) {} }''', "spin")
    stream = cupy.cuda.Stream(non_blocking=True)
    bad = rounds = 0
    with stream:
        prev = gpudcm.decode_batch(a, device="cuda", stack=True)
        for k in range(40):
            spin((1,), (1,), (np.int64(20_000_000),))  # ~10 ms of queued work before the read
            conv = prev.astype(cupy.float32)  # queued on `stream`, reads `prev`
            held = k % 2  # prev holds a's values on even rounds, b's on odd ones
            del prev  # its block goes back to `stream`'s arena at once
            prev = gpudcm.decode_batch(b if held == 0 else a, device="cuda", stack=True)
            stream.synchronize()
            bad += int(not np.array_equal(conv.get(), values[held]))
            rounds += 1
    return bad == 0, f"{bad} of {rounds} reads of the previous batch saw the next batch's values"


@probe("5", "libnvjpeg found through sys.path (pip --target)")
def _nvjpeg_found():
    import gpudcm
    from gpudcm.cuda import nvjpeg

    path, version = nvjpeg.library_path(), nvjpeg.version()
    named = any(path in c.reason for c in gpudcm.capabilities("cuda") if c.backend == "nvjpeg")
    return version >= (13, 0, 2) and named, f"{path}, version {version}, named in capabilities: {named}"


@probe("6", "nvjpeg2k loads and nvImageCodec's GPU backend decodes J2K")
def _nvjpeg2k():
    _cupy()
    import gpudcm
    from corpus import generated_cases
    from gpudcm.cuda import j2k

    path, why = j2k.nvjpeg2k_library()
    ok, reason = j2k.gpu_backend(0)
    htj2k = [c for c in generated_cases() if c.name.startswith("htj2k")]
    used = set()
    for c in htj2k:
        _, infos = gpudcm.decode_batch([c.path], device="cuda", return_info=True)
        used |= {i.backend for i in infos}
    return ok and path is not None and used == {"j2k"}, (f"lib {path}; gpu_backend: {reason}; "
                                                          f"{len(htj2k)} HTJ2K cases decoded by {sorted(used)}")


@probe("7", "no flush-to-zero: subnormal floats kept as NumPy keeps them")
def _ftz():
    cupy = _cupy()
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    import gpudcm

    ds = dcmread(get_testdata_file("MR_small.dcm"))
    host = (np.arange(ds.Rows * ds.Columns) % 16).astype(np.int16).reshape(ds.Rows, ds.Columns)
    kw = dict(window=None, dtype=np.float32, normalize=(0.0, 3e38))
    ref, _ = gpudcm.preprocess(host, ds, **kw)
    got, _ = gpudcm.preprocess(cupy.asarray(host), ds, **kw)
    got = got.get()
    tiny = np.finfo(np.float32).tiny
    sub_ref = int(((ref != 0) & (np.abs(ref) < tiny)).sum())
    sub_got = int(((got != 0) & (np.abs(got) < tiny)).sum())
    same = np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    return same and sub_got == sub_ref > 0, f"subnormals: NumPy {sub_ref}, GPU {sub_got}; bit-equal {same}"


@probe("8", "device='cuda:N' decodes on N; a missing N raises DeviceUnavailable")
def _cuda_n():
    cupy = _cupy()
    from pydicom.data import get_testdata_file

    import gpudcm

    n = cupy.cuda.runtime.getDeviceCount()
    ct = get_testdata_file("CT_small.dcm")
    last = f"cuda:{n - 1}"
    on = {gpudcm.pixel_array(ct, device=last).device.id, next(gpudcm.iter_frames(ct, device=last)).device.id,
          gpudcm.decode_batch([ct], device=last)[0].device.id}
    try:
        gpudcm.pixel_array(ct, device=f"cuda:{n}")
        raised = False
    except gpudcm.DeviceUnavailable:
        raised = True
    return on == {n - 1} and raised, f"{n} device(s); {last} decoded on {sorted(on)}; cuda:{n} raised: {raised}"


@probe("9", "lossy JPEG/J2K within 2 of pydicom's default decode (mean abs diff)")
def _tolerances():
    _cupy()
    files = _jpeg_family(lambda s: str(s.transfer_syntax) in LOSSY)
    if not files:
        return None, "no lossy file in the corpus"
    worst, mean, frames, backends, failures = _compare(files, raw=False)
    return worst <= 2 and not failures, (f"{len(files)} files, {frames} frames via {sorted(backends)}: max {worst}, "
                                         f"mean abs diff {mean:.4f}; {failures[:3]}")


@probe("10", "no leak: pooled CupyOps / nvJPEG states, device and pinned memory flat over 20 calls")
def _leaks():
    cupy = _cupy()
    from pydicom.data import get_testdata_file

    import gpudcm
    from gpudcm.cuda import nvjpeg
    from gpudcm.cuda.ops import OPS_POOL

    names = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "emri_small_RLE.dcm"]
    files = [get_testdata_file(n) for n in names] + [b"not dicom"]
    pool, pinned = cupy.get_default_memory_pool(), cupy.get_default_pinned_memory_pool()
    marks = []
    for k in range(20):
        gpudcm.decode_batch(files * 4, device="cuda", workers=4, on_error="return")
        if k in (9, 19):
            cupy.cuda.Device().synchronize()
            marks.append((pool.total_bytes(), pinned.n_free_blocks(), OPS_POOL.live, nvjpeg.STATES.live))
    (d0, p0, o0, s0), (d1, p1, o1, s1) = marks
    ok = d1 <= d0 and p1 <= p0 + 2 and o1 <= OPS_POOL.cap and s1 <= 2 * nvjpeg.STATES.cap
    return ok, (f"device pool bytes {d0} -> {d1}, free pinned blocks {p0} -> {p1}, CupyOps live {o0} -> {o1}, "
                f"nvJPEG states live {s0} -> {s1}")


@probe("11", "kernel functions looked up once; RLE staged once")
def _smaller():
    _cupy()
    from pydicom.data import get_testdata_file

    import gpudcm
    from gpudcm.cuda import kernels

    rle = get_testdata_file("emri_small_RLE.dcm")
    for _ in range(5):
        gpudcm.decode_batch([rle, rle], device="cuda")
    info = kernels._function.cache_info()
    return info.misses <= 8 and info.hits > 0, f"get_function cache: {info.hits} hits, {info.misses} misses"


def _alarm(signum, frame):
    raise TimeoutError("probe timed out")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default=None, help="comma-separated probe ids")
    parser.add_argument("--timeout", type=int, default=60, help="seconds per probe")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    signal.signal(signal.SIGALRM, _alarm)
    failed = 0
    for pid, name, fn in PROBES:
        if wanted and pid not in wanted:
            continue
        t0 = time.perf_counter()
        signal.alarm(args.timeout)
        try:
            ok, detail = fn()
        except BaseException as exc:  # noqa: BLE001 - a probe reports, it never stops the run
            ok, detail = False, f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        finally:
            signal.alarm(0)
        verdict = "SKIP" if ok is None else "PASS" if ok else "FAIL"
        failed += verdict == "FAIL"
        print(f"PROBE {pid} {name}: {verdict} ({time.perf_counter() - t0:.1f} s) {detail}", flush=True)
    return min(failed, 100)


if __name__ == "__main__":
    sys.exit(main())
