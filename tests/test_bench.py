"""``gpudcm bench``: workload generation, the timing method, the agreement check, the report files, the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from gpudcm.bench import report, results, runner, timing, workloads
from gpudcm.bench.pool import DecodePool, plan
from gpudcm.cli import main as gpudcm_main
from gpudcm.jpeg_markers import parse_j2k

pytest.importorskip("data_store", reason="the bench workloads come from pydicom-data")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("bench-cache")


def _source(names):
    return pydicom_pixel_array(workloads.find_file(next(n for n in names if workloads.find_file(n))))


@pytest.mark.parametrize("name, tsyntax", [
    ("native-ct", ExplicitVRLittleEndian),
    ("rle-ct", RLELossless),
    ("j2k-ct", JPEG2000Lossless),
])
def test_encoded_series_decode_to_the_source_slice(cache, name, tsyntax):
    w = workloads.build(name, cache, 2)
    assert isinstance(w, workloads.Workload), w
    assert len(w.paths) == 2 and w.frames == 2 and w.transfer_syntax == tsyntax
    want = _source(workloads.CT_SOURCES)
    uids = set()
    for path in w.paths:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == tsyntax
        uids.add(ds.SOPInstanceUID)
        np.testing.assert_array_equal(pydicom_pixel_array(path), want)  # lossless: the CT slice itself
    assert len(uids) == 2
    assert w.compressed_bytes == sum(len(pydicom.dcmread(p).PixelData) for p in w.paths)


def test_jpeg_lossless_workload_replicates_the_source_file(cache):
    w = workloads.build("jpeg-lossless-ct", cache, 3)
    assert isinstance(w, workloads.Workload), w
    src = workloads.find_file(next(n for n in workloads.JPEG_LOSSLESS_SOURCES if workloads.find_file(n)))
    assert w.transfer_syntax == JPEGLosslessSV1 and w.frames == 3 and "no JPEG encoder" in w.source
    for path in w.paths:
        with open(path, "rb") as a, open(src, "rb") as b:
            assert a.read() == b.read()


def test_ultrasound_workload_repeats_the_source_frames(cache):
    n = 5
    w = workloads.build("jpeg-baseline-us", cache, n)
    assert isinstance(w, workloads.Workload), w
    (path,) = w.paths
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == JPEGBaseline8Bit
    assert int(ds.NumberOfFrames) == n == w.frames and ds.PhotometricInterpretation == "YBR_FULL_422"
    src = pydicom.dcmread(workloads.find_file(next(n for n in workloads.US_SOURCES if workloads.find_file(n))))
    count = int(src.NumberOfFrames)
    src_frames = list(generate_frames(src.PixelData, number_of_frames=count))
    assert list(generate_frames(ds.PixelData, number_of_frames=n)) == [src_frames[i % count] for i in range(n)]
    got = pydicom_pixel_array(path)
    assert got.shape == (n, src.Rows, src.Columns, 3)
    np.testing.assert_array_equal(got[1], pydicom_pixel_array(src, index=1))


def test_htj2k_workload_decodes_to_the_source_slice(cache):
    pytest.importorskip("imagecodecs")
    w = workloads.build("htj2k", cache, 2)
    assert isinstance(w, workloads.Workload), w
    assert w.transfer_syntax == "1.2.840.10008.1.2.4.201" and w.frames == 2
    src = workloads.find_file(next(n for n in workloads.CT_SOURCES if workloads.find_file(n)))
    for path in w.paths:
        ds = pydicom.dcmread(path)
        frame = next(generate_frames(ds.PixelData, number_of_frames=1))
        assert parse_j2k(frame).high_throughput  # really Part 15 block coding, not plain JPEG 2000
        np.testing.assert_array_equal(pydicom_pixel_array(path), pydicom_pixel_array(src))


def test_htj2k_without_an_encoder_is_skipped_with_the_reason(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_imagecodecs(name, *args, **kwargs):
        if name == "imagecodecs":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_imagecodecs)
    monkeypatch.setattr(workloads, "find_htj2k", lambda: None)
    w = workloads.build("htj2k", tmp_path, 2)
    assert isinstance(w, workloads.Skipped) and "no HTJ2K source" in w.reason and "imagecodecs" in w.reason
    assert not list(tmp_path.glob("htj2k-*"))


def test_cache_is_reused_and_rebuilt_when_a_file_is_missing(tmp_path):
    first = workloads.build("native-ct", tmp_path, 2)
    stamp = os.stat(first.paths[0]).st_mtime_ns
    again = workloads.build("native-ct", tmp_path, 2)
    assert again.paths == first.paths and os.stat(first.paths[0]).st_mtime_ns == stamp
    os.remove(first.paths[1])
    rebuilt = workloads.build("native-ct", tmp_path, 2)
    assert all(os.path.isfile(p) for p in rebuilt.paths)


def test_interleaved_rounds_rotate_the_order():
    log = []
    fns = [lambda k=k: log.append(k) for k in "abc"]
    out = timing.interleaved(fns, [1, 2, 1], rounds=3)
    assert [len(r) for r in out] == [3, 3, 3]
    assert "".join(log) == "abbc" + "bbca" + "cabb"  # b is called twice a timing
    assert timing.calls_for(0.004, 0.01) == 3 and timing.calls_for(1.0, 0.01) == 1


def test_check_against_pydicom():
    want = [np.arange(12, dtype=np.uint8).reshape(3, 4)]
    assert runner.check([want[0].copy()], want, lossy=False) == "equal to pydicom"
    off = want[0].copy()
    off[1, 1] += 2
    assert runner.check([off], want, lossy=True) == "max abs diff 2 (lossy codec)"
    with pytest.raises(runner.Mismatch, match="lossless"):
        runner.check([off], want, lossy=False)
    with pytest.raises(runner.Mismatch, match="shape"):
        runner.check([off[:2]], want, lossy=True)


def test_pool_plan_splits_files_or_frames():
    files = plan([f"f{i}" for i in range(10)], [1] * 10, workers=2)
    assert [t for chunk in files for t in chunk] == [(f"f{i}", 0, 0) for i in range(10)]
    frames = plan(["us"], [20], workers=2)
    assert [t for chunk in frames for t in chunk] == [("us", 0, 3), ("us", 3, 6), ("us", 6, 9), ("us", 9, 12),
                                                      ("us", 12, 15), ("us", 15, 18), ("us", 18, 20)]


def test_pool_returns_pydicoms_arrays_in_file_order(cache):
    us = workloads.build("jpeg-baseline-us", cache, 5).paths[0]
    ct = workloads.build("native-ct", cache, 2).paths[0]
    paths = [us, ct, us]  # frame ranges of a multi-frame file, a whole file between two of them
    chunks = plan(paths, [5, 1, 5], workers=2)
    assert sum(1 for chunk in chunks for t in chunk if t[2]) > 2  # the multi-frame files were split
    pool = DecodePool(2)
    try:
        got = pool.decode(chunks)
    finally:
        pool.close()
    assert pool.startup_s > 0 and len(got) == 3
    for g, p in zip(got, paths):
        np.testing.assert_array_equal(g, pydicom_pixel_array(p))


def _synthetic_run() -> results.Run:
    mb = 100_000_000

    def ok(key, label, seconds):
        return results.Result(key, label, results.OK, rounds_s=[seconds * 1.1, seconds, seconds * 0.9], calls=1,
                              check="equal to pydicom")

    w1 = results.WorkloadResult("native-ct", "Explicit VR Little Endian", "2 slices", "src", 2, 50, mb, mb, results=[
        ok(results.GPUDCM_CUDA, "gpudcm cuda", 0.01),
        ok(results.GPUDCM_CPU, "gpudcm cpu", 0.4),
        ok(results.PYDICOM, "pydicom 1 core", 0.5),
        ok(results.H2D_COMPRESSED, "limit: pinned H2D copy, compressed bytes", 0.005),
        results.Result(results.NVIMGCODEC, "nvImageCodec pydicom plugin", results.SKIPPED, "needs a GPU"),
    ])
    w2 = results.WorkloadResult("rle-ct", "RLE Lossless", "2 slices", "src", 2, 2, mb // 2, 2 * mb, results=[
        ok(results.PYDICOM, "pydicom 1 core", 2.0),
        results.Result(results.GPUDCM_CPU, "gpudcm cpu", results.ERROR, "DecodeError: boom"),
    ])
    w3 = results.WorkloadResult("htj2k", "HTJ2K", "none", skipped="cannot build: no HTJ2K source")
    return results.Run({"cpu": "test cpu", "packages": {"pydicom": "3"}}, {"device": "cuda", "method": "m"},
                       [w1, w2, w3])


def test_markdown_table_values():
    text = report.markdown(_synthetic_run())
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    header = rows[0]
    table = [r for r in rows if r.count("|") == header.count("|")]
    cells = {tuple(c.strip() for c in r.strip("|").split("|"))[:2]: [c.strip() for c in r.strip("|").split("|")]
             for r in table}
    # 100 MB in a median of 0.01 s; pydicom's median 0.5 s; the copy limit's 0.005 s
    assert cells[("native-ct", "gpudcm cuda")][2:6] == ["10,000", "5,000", "50.00x", "0.50"]
    assert cells[("native-ct", "gpudcm cpu")][2:6] == ["250", "125", "1.25x", "0.01"]
    assert cells[("rle-ct", "pydicom 1 core")][2:5] == ["100", "1.00", "1.00x"]
    assert "error: DecodeError: boom" in cells[("rle-ct", "gpudcm cpu")][6]
    assert "skipped: cannot build: no HTJ2K source" in cells[("htj2k", "(all)")][6]
    assert ("native-ct", "nvImageCodec pydicom plugin") not in cells
    assert "- nvImageCodec pydicom plugin (native-ct): needs a GPU" in text
    assert "- **packages**: pydicom 3" in text


def test_report_files(tmp_path):
    run = _synthetic_run()
    written = report.write(run, tmp_path, "r")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema"] == results.SCHEMA and data["machine"]["cpu"] == "test cpu"
    native = data["workloads"][0]
    cuda = native["results"][0]
    assert cuda["key"] == results.GPUDCM_CUDA and cuda["rounds_s"] == pytest.approx([0.011, 0.01, 0.009])
    assert cuda["median_s"] == pytest.approx(0.01) and cuda["mb_s"] == pytest.approx(10_000)
    assert cuda["vs_pydicom"] == pytest.approx(50) and cuda["of_copy_limit"] == pytest.approx(0.5)
    back = results.Run.from_json(data)
    assert back.workloads[1].results[1].status == results.ERROR and back.errors() == run.errors()
    assert written["png"] == str(tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as img:
        assert img.size == (int(report.FIGSIZE[0] * report.DPI), int(report.FIGSIZE[1] * report.DPI))
        grey = np.asarray(img.convert("L"))
    assert (grey < 128).mean() > 0.005  # bars, axes and text, not a blank page


def test_chart_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    written = report.write(_synthetic_run(), tmp_path, "r")
    assert written["png"].startswith("not written: matplotlib is not installed")
    assert not (tmp_path / "r.png").exists() and (tmp_path / "r.md").exists()


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        return bool(metadata.version(dist))
    except metadata.PackageNotFoundError:
        return False


def test_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    rc = gpudcm_main(["bench", "--device", "cpu", "--quick", "--workloads", "rle-ct", "--size", "rle-ct=2",
                      "--rounds", "2", "--min-sample-ms", "0", "--workers", "1", "--out", str(out),
                      "--cache", str(tmp_path / "cache"), "--name", "e2e"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| rle-ct | gpudcm cpu |" in printed and "| rle-ct | pydicom 1 process |" in printed
    data = json.loads((out / "e2e.json").read_text())
    (w,) = data["workloads"]
    assert w["name"] == "rle-ct" and w["files"] == 2 and w["decoded_bytes"] == 2 * 512 * 512 * 2
    by_key = {r["key"]: r for r in w["results"]}
    others = [k for k, dist in ((results.DICOMSDL, "dicomsdl"), (results.GDCM, "python-gdcm")) if _installed(dist)]
    for key in (results.GPUDCM_CPU, results.GPUDCM_CPU2, results.PYDICOM, results.PYDICOM_POOL, *others):
        assert by_key[key]["status"] == "ok" and len(by_key[key]["rounds_s"]) == 2
        assert by_key[key]["check"] == ("reference" if key == results.PYDICOM else "equal to pydicom")
        assert by_key[key]["mb_s"] == pytest.approx(w["decoded_bytes"] / by_key[key]["median_s"] / 1e6)
    assert by_key[results.GPUDCM_CUDA]["status"] == "skipped" and by_key[results.GPUDCM_CUDA]["reason"] == "--device cpu"
    assert data["settings"]["quick"] is True and data["machine"]["packages"]["pydicom"] == pydicom.__version__
    assert (out / "e2e.md").read_text().startswith("# gpudcm bench: device cpu (--quick)")
    with Image.open(out / "e2e.png") as img:
        assert img.size == (1200, 600)


def test_cli_rewrites_the_report_from_json(tmp_path, capsys):
    report.write(_synthetic_run(), tmp_path / "gpu", "run", plot=False)
    rc = gpudcm_main(["bench", "--from-json", str(tmp_path / "gpu" / "run.json"), "--out", str(tmp_path / "again")])
    assert rc == 0 and "| native-ct | gpudcm cuda | 10,000 |" in capsys.readouterr().out
    assert (tmp_path / "again" / "run.md").read_text() == (tmp_path / "gpu" / "run.md").read_text()
    with Image.open(tmp_path / "again" / "run.png") as img:
        assert img.size == (1200, 600)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        gpudcm_main(["bench", "--from-json", str(tmp_path / "bad.json"), "--out", str(tmp_path)])
    assert exc.value.code == 2


def test_cli_exits_1_when_gpudcm_disagrees(tmp_path, monkeypatch, capsys):
    def wrong(paths, device="cpu", workers=None):
        return lambda: [np.zeros((512, 512), np.int16) for _ in paths]

    monkeypatch.setattr(runner, "gpudcm_call", wrong)
    rc = gpudcm_main(["bench", "--device", "cpu", "--workloads", "native-ct", "--size", "native-ct=1",
                      "--rounds", "1", "--min-sample-ms", "0", "--workers", "0", "--no-plot", "--out",
                      str(tmp_path), "--cache", str(tmp_path / "cache")])
    assert rc == 1
    assert "differs from pydicom on a lossless workload" in capsys.readouterr().err


def test_cli_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        gpudcm_main(["bench", "--workloads", "native-ct,nope"])
    assert exc.value.code == 2 and "unknown workload(s) nope" in capsys.readouterr().err


def test_cli_cuda_without_a_device_exits_2(tmp_path):
    from gpudcm.cuda.runtime import cuda_status

    if cuda_status()[0]:
        pytest.skip("a CUDA device is present")
    assert gpudcm_main(["bench", "--device", "cuda", "--out", str(tmp_path)]) == 2


@pytest.mark.gpu
def test_cli_on_cuda(tmp_path):
    """On a GPU: every CUDA row of two small workloads is measured, agrees with pydicom and has a copy limit."""
    out = tmp_path / "out"
    rc = gpudcm_main(["bench", "--device", "cuda", "--workloads", "native-ct,jpeg-baseline-us", "--size",
                      "native-ct=4", "--size", "jpeg-baseline-us=6", "--rounds", "2", "--min-sample-ms", "0",
                      "--workers", "0", "--out", str(out), "--cache", str(tmp_path / "cache"), "--name", "gpu"])
    assert rc == 0
    data = json.loads((out / "gpu.json").read_text())
    assert data["machine"]["gpu"] and not data["machine"]["gpu"].startswith("none")
    for w in data["workloads"]:
        by_key = {r["key"]: r for r in w["results"]}
        for key in (results.GPUDCM_CUDA, *results.LIMITS):
            assert by_key[key]["status"] == "ok", (w["name"], by_key[key])
        assert by_key[results.H2D_COMPRESSED]["of_copy_limit"] == pytest.approx(1.0)
        assert by_key[results.GPUDCM_CUDA]["note"].startswith("backends: ")
