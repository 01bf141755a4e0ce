"""gpudcm.routing over the corpus and synthetic headers; the J2K finishing step against pydicom (NumPy)."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import UID

from corpus import corpus_id, reference_shape
from gpudcm.cuda.j2k import container_bits, finished_photometric, pydicom_j2k_finish
from gpudcm.jpeg_markers import parse_j2k, parse_jpeg
from gpudcm.routing import (FULL_ENV, NO_GPU_ENV, ROUTE_BACKENDS, FrameInfo, GpuEnv, Route, route_bytes,
                            route_frame)
from test_jpeg_markers import RGB444, YCC420, YCC422, build_j2k, build_jpeg, jpeg_family_frames


def _spec(ts: str, rows=16, cols=16, samples=1, bits=8, pr=0, pi=None):
    """A PixelSpec taken from a corpus file and re-shaped (routing reads only these fields)."""
    base = jpeg_family_frames()[0][2]
    pi = pi or ("MONOCHROME2" if samples == 1 else "YBR_FULL_422")
    return replace(base, transfer_syntax=UID(ts), rows=rows, columns=cols, samples_per_pixel=samples,
                   bits_allocated=bits, bits_stored=min(bits, 16), high_bit=min(bits, 16) - 1,
                   pixel_representation=pr, photometric_interpretation=pi, number_of_frames=1)


BASE, EXT, P14, SV1, J2K, J2KR, HTJ2K = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                                        "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.90",
                                        "1.2.840.10008.1.2.4.201")


def route(ts, data, env=FULL_ENV, **spec_kw) -> Route:
    return route_bytes(_spec(ts, **spec_kw), data, env)


@pytest.mark.parametrize("comps", [((1, 1, 1, 0),), YCC420, YCC422, RGB444])
def test_baseline_8bit_goes_to_nvjpeg(comps):
    r = route(BASE, build_jpeg(comps=comps), samples=len(comps))
    assert (r.backend, r.mode) == ("nvjpeg", "dct"), r.reason


@pytest.mark.parametrize("data,kw,why", [
    (build_jpeg(sof=0xC1, precision=12), {"bits": 16}, "12-bit extended"),
    (build_jpeg(sof=0xC2), {}, "progressive"),
    (build_jpeg(sof=0xC9), {}, "arithmetic"),
    (build_jpeg(sof=0xCB, precision=12), {"bits": 16}, "arithmetic"),
    (build_jpeg(sof=0xC5), {}, "hierarchical"),
    (build_jpeg(comps=((1, 4, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0))), {"samples": 3}, "chroma sampling"),
    (build_jpeg(comps=((1, 1, 1, 0),) * 4), {"samples": 4}, "4-component"),
    (build_jpeg(comps=YCC420, app=[(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")]), {"samples": 3}, "Adobe"),
    (build_jpeg(rows=17), {}, "codestream is 17x16x1"),
    (build_jpeg(), {"bits": 16}, "Bits Allocated"),
    (b"\xff\xd8\xff", {}, "did not parse"),
])
def test_cpu_routes(data, kw, why):
    r = route(BASE, data, **kw)
    assert r.backend == "cpu-plugin" and why in r.reason, r.reason


@pytest.mark.parametrize("precision", [2, 8, 12, 15, 16])
def test_lossless_sv1_goes_to_nvjpeg(precision):
    data = build_jpeg(sof=0xC3, precision=precision)
    r = route(SV1, data, bits=8 if precision <= 8 else 16)
    assert (r.backend, r.mode) == ("nvjpeg", "lossless"), r.reason
    old = route(SV1, data, env=GpuEnv(nvjpeg=(13, 0, 1)), bits=16)
    assert old.backend == "cpu-plugin" and "13.0.2" in old.reason


@pytest.mark.parametrize("kw,why", [
    ({"scans": [([(1, 0, 0)], 4, 0, 0, 0)]}, "predictor (selection value) 4"),
    ({"scans": [([(1, 0, 0)], 1, 0, 0, 1)]}, "point transform 1"),
    ({"precision": 17}, "outside 2-16"),
    ({"comps": ((1, 1, 1, 0), (2, 1, 1, 0)), "dc_tables": [0, 1], "samples": 2}, "Huffman table per component"),
    ({"comps": ((1, 1, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0)), "samples": 3,
      "scans": [([(c, 0, 0)], 1, 0, 0, 0) for c in (1, 2, 3)]}, "scan(s)"),
])
def test_lossless_cpu_routes(kw, why):
    kw = dict(kw)  # the parameter dict is shared by every run of this test in the process
    samples = kw.pop("samples", 1)
    r = route(P14, build_jpeg(sof=0xC3, precision=kw.pop("precision", 16), **kw), samples=samples, bits=16)
    assert r.backend == "cpu-plugin" and why in r.reason, r.reason


def test_j2k_routes():
    assert route(J2K, build_j2k(rows=16, cols=16), bits=16).backend == "j2k"
    r = route(HTJ2K, build_j2k(rows=16, cols=16, cap=0x00020000), bits=16)
    assert r.backend == "j2k" and "HTJ2K" in r.reason
    assert route(J2KR, build_j2k(rows=16, cols=16), env=GpuEnv(nvjpeg=(13, 3, 2)), bits=16).backend == "cpu-plugin"
    for data, why in [(build_j2k(rows=16, cols=16, sub=(2, 2)), "subsampled"),
                      (build_j2k(rows=16, cols=16, jp2=True), "JP2"),
                      (build_j2k(rows=16, cols=16, comps=((8, False), (12, False), (8, False))), "differ"),
                      (build_j2k(rows=16, cols=16, comps=((20, False),)), "> 16"),
                      (build_j2k(rows=8, cols=16), "codestream is 8x16x1")]:
        kw = {"samples": 3} if why == "differ" else {}
        r = route(J2K, data, bits=16, **kw)
        assert r.backend == "cpu-plugin" and why in r.reason, r.reason


def test_non_jpeg_syntax_and_type_mismatch():
    assert route_frame(_spec("1.2.840.10008.1.2.1"), None).backend == "cpu-plugin"
    assert "non-J2K" in route_frame(_spec(J2K), parse_jpeg(build_jpeg())).reason
    assert "non-JPEG" in route_frame(_spec(BASE), parse_j2k(build_j2k())).reason


def test_frame_info_record():
    rec = FrameInfo("a.dcm", 3, "nvjpeg", "8-bit baseline 420 DCT")
    assert rec.backend in ROUTE_BACKENDS + ("kernel",) and rec.frame == 3


# ------------------------------------------------------------------------------------------ corpus

def test_corpus_routes():
    seen = Counter()
    for path, ds, spec, frames in jpeg_family_frames():
        for frame in frames:
            r = route_bytes(spec, frame)
            assert r.backend in ROUTE_BACKENDS and r.reason
            assert route_bytes(spec, frame, NO_GPU_ENV).backend == "cpu-plugin"
            seen[(str(spec.transfer_syntax), r.backend, r.mode)] += 1
            if r.backend == "nvjpeg" and r.mode == "lossless":
                info = parse_jpeg(frame)
                assert info.predictor == 1 and not info.separate_huffman
            if str(spec.transfer_syntax) == EXT and spec.bits_stored > 8:
                assert r.backend == "cpu-plugin"
    assert seen[(BASE, "nvjpeg", "dct")] > 5
    assert seen[(SV1, "nvjpeg", "lossless")] >= 2
    assert seen[(J2KR, "j2k", None)] > 5 and seen[(J2K, "j2k", None)] > 3


def _j2k_cases():
    return [pytest.param(c, id=corpus_id(c[0])) for c in jpeg_family_frames()
            if str(c[2].transfer_syntax) in (J2K, J2KR) and reference_shape(Path(c[0])) is not None]


@pytest.mark.parametrize("case", _j2k_cases())
def test_j2k_finish_equals_pydicom(case):
    """The device post-processing step, fed openjpeg's raw decode (a stand-in for nvImageCodec's)."""
    openjpeg = pytest.importorskip("openjpeg")
    path, ds, spec, frames = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pydicom_pixel_array(path, raw=True)
    ref = ref.reshape((len(frames),) + spec.frame_shape) if len(frames) > 1 else ref[None]
    for i, frame in enumerate(frames):
        info = parse_j2k(frame)
        raw = openjpeg.decode(frame)
        assert raw.dtype.itemsize * 8 == container_bits(info.precision)
        assert raw.dtype.kind == ("i" if info.is_signed else "u")
        out = pydicom_j2k_finish(raw, info, spec)
        assert out.dtype == ref.dtype.newbyteorder("=")
        np.testing.assert_array_equal(out, ref[i])
    assert finished_photometric("YBR_RCT") == finished_photometric("YBR_ICT") == "RGB"
