"""The batched device pipeline, run on the CPU: NumPy buffers and the host build stand in for CuPy and
the kernels; staging, batch splitting, launch grouping and arguments are the ones a GPU run uses."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pydicom.data import get_testdata_file

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases, native_ts, reference_shape, transfer_syntax
from gpudcm.api import _device_decode, _prepare
from gpudcm.cuda import pipeline
from gpudcm.cuda.pipeline import Request, decode_native_batch, launch_groups, split_batches
from jpeg_refs import assert_device_agrees, turbo_reference
from tests.harness.host_ops import HostOps

CT = get_testdata_file("CT_small.dcm")


def _prepared(paths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [_prepare(p) for p in paths]


def _cpu(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(path, device="cpu", **kw)


def test_split_batches():
    assert split_batches([5, 5, 5], 10) == [range(0, 2), range(2, 3)]
    assert split_batches([20, 1, 1], 10) == [range(0, 1), range(1, 3)]
    assert split_batches([], 10) == []
    with pytest.raises(ValueError):
        split_batches([1], 0)


def test_stage_is_aligned_and_keeps_parity():
    reqs = [Request(spec, ds.PixelData) for ds, spec in _prepared([CT, get_testdata_file("liver_expb_1frame.dcm")])]
    staged = pipeline.stage(reqs)
    assert all(off % pipeline.STAGING_ALIGN == 0 for off in staged.offsets)
    assert staged.total >= sum(len(s) for s in staged.spans)


def test_series_is_one_upload_and_one_launch():
    """Twelve files of one series: one host-to-device copy, one kernel launch over 12 frames."""
    prepared = _prepared([CT] * 12)
    ops = HostOps()
    out = _device_decode(prepared, ops, index=None, raw=False, as_rgb=True, stack=True)
    frame_bytes = 128 * 128 * 2  # a multiple of STAGING_ALIGN: the twelve spans sit back to back
    assert frame_bytes % pipeline.STAGING_ALIGN == 0
    assert ops.uploads == [12 * frame_bytes]
    assert ops.launches == [12]
    assert out.shape == (12, 128, 128)
    np.testing.assert_array_equal(out, np.stack([_cpu(CT)] * 12))


def test_small_batches_alternate_two_slots():
    prepared = _prepared([CT] * 5)
    requests = [Request(spec, ds.PixelData) for ds, spec in prepared]
    ops = HostOps()
    out = decode_native_batch(requests, ops, batch_bytes=2 * 128 * 128 * 2 + 8)
    assert len(ops.uploads) == 3 and ops.waits == [0, 1, 0]
    for arr in out:
        np.testing.assert_array_equal(arr, _cpu(CT))


def test_uploads_are_padded_to_the_staging_alignment():
    """Spans of odd-sized elements are padded to STAGING_ALIGN: the one copy holds the padding too."""
    case = {c.name: c for c in generated_cases()}["u8_odd_padded_le_explicit"]  # 3 frames of 35 bytes
    ops = HostOps()
    out = _device_decode(_prepared([case.path] * 3), ops, index=None, raw=False, as_rgb=True, stack=True)
    span = 3 * 35 + 1  # the element up to its even end
    assert ops.uploads == [3 * pipeline.align(span)]  # 3 x 112: each span padded to the alignment
    np.testing.assert_array_equal(out, np.stack([case.expected] * 3))


@pytest.mark.parametrize("index", [0, 1, 2])
def test_ow_frame_starting_mid_pair(index):
    """8-bit OW big endian with 35-byte frames: frame 1 starts at an odd byte, so its staged span must
    start one byte earlier to keep pydicom's pairwise swap aligned (frames decoded alone and batched)."""
    case = {c.name: c for c in generated_cases()}["u8_ow_odd_frames_be_explicit"]
    ops = HostOps()
    got = _device_decode(_prepared([case.path, case.path]), ops, index=index, raw=True, as_rgb=True)
    for arr in got:
        np.testing.assert_array_equal(arr, case.expected[index])
    np.testing.assert_array_equal(_cpu(case.path, index=index), case.expected[index])


def test_launch_groups_split_on_signature():
    paths = [CT, CT, get_testdata_file("MR_small.dcm"), CT]
    requests = [Request(spec, ds.PixelData) for ds, spec in _prepared(paths)]
    assert launch_groups(requests) == [range(0, 2), range(2, 3), range(3, 4)]


def test_same_signature_different_frame_counts():
    """Files sharing a kernel signature but not a frame count share a launch and split correctly."""
    case = {c.name: c for c in generated_cases()}
    paths = [case["u16_bs12_garbage_le_explicit"].path, case["u16_bs12_garbage_le_explicit"].path]
    prepared = _prepared(paths)
    requests = [Request(prepared[0][1], prepared[0][0].PixelData), Request(prepared[1][1], prepared[1][0].PixelData, index=0)]
    out = decode_native_batch(requests, HostOps())
    np.testing.assert_array_equal(out[0], _cpu(paths[0]))
    np.testing.assert_array_equal(out[1], _cpu(paths[1], index=0))


DECODABLE = [p for p in corpus_files() if reference_shape(p)]


@pytest.mark.parametrize("raw", [False, True])
def test_whole_corpus_through_the_device_path(raw):
    """Every decodable corpus file and generated case through one device batch equals the CPU path."""
    paths = DECODABLE + [c.path for c in generated_cases()]
    ops = HostOps()
    got = _device_decode(_prepared(paths), ops, index=None, raw=raw, as_rgb=True)
    for path, arr in zip(paths, got):
        ref = _cpu(path, raw=raw)
        assert arr.dtype == ref.dtype and arr.shape == ref.shape, corpus_id(path)
        # lossy JPEG frames come from the nvJPEG stand-in (another decoder): the per-syntax tolerance; RGB
        # from lossy YCbCr within 3 (tests/jpeg_refs.py DEVICE_YCBCR_RGB_MAX; the YCbCr: raw=True)
        assert_device_agrees(arr, ref, transfer_syntax(path), alt=turbo_reference(path, raw=raw),
                             ycbcr_rgb=not raw and turbo_reference(path, raw=True) is not None)
    n_native = sum(1 for p in paths if native_ts(p))
    assert sum(ops.launches) >= n_native  # every native file went through a kernel launch


def test_large_batches_are_gathered_in_parallel_and_equal():
    case = {c.name: c for c in generated_cases()}["u16_bs12_garbage_be_explicit"]
    prepared = _prepared([case.path] * 3)
    requests = [Request(spec, ds.PixelData) for ds, spec in prepared]
    staged = pipeline.stage(requests)
    host = np.zeros(staged.total, np.uint8)
    old = pipeline._PARALLEL_GATHER_BYTES
    pipeline._PARALLEL_GATHER_BYTES = 1  # force the threaded gather on small data
    try:
        pipeline.gather(host, staged)
    finally:
        pipeline._PARALLEL_GATHER_BYTES = old
    for off, span in zip(staged.offsets, staged.spans):
        np.testing.assert_array_equal(host[off : off + len(span)], span)


def test_gpu_benchmark_workloads_build():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "benchmarks/gpu_report.py", "--dry-run"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stdout


def test_rle_files_of_one_layout_share_one_launch():
    """An RLE series: every file's segments in one RLE launch; mixed layouts: one launch per layout."""
    series = get_testdata_file("emri_small_RLE.dcm")  # 10 frames 64x64 16-bit: planar/Bits Stored pass skipped
    other = get_testdata_file("SC_rgb_rle_16bit.dcm")
    paths = [series, other, series, series, other]
    ops = HostOps()
    launch_rle, launch_native = ops.rle_launchers
    calls = []

    def counting(launch, *args):
        calls.append(launch.n_slots)
        return launch_rle(launch, *args)

    ops.rle_launchers = (counting, launch_native)
    got = _device_decode(_prepared(paths), ops, index=None, raw=True, as_rgb=True)
    assert sorted(calls) == sorted([3 * 10 * 2, 2 * 1 * 6])  # 3 files x 10 frames x 2 segments; 2 x 1 x 6
    for path, arr in zip(paths, got):
        np.testing.assert_array_equal(arr, _cpu(path, raw=True))
    one = _device_decode(_prepared([series, series]), HostOps(), index=4, raw=False, as_rgb=True)
    np.testing.assert_array_equal(one[1], _cpu(series, index=4))
