"""Every decision of gpudcm.routing with its exact reason (the text FrameInfo reports per frame): one row per
branch of route_jpeg / route_j2k / route_frame, and the version and count boundaries on both sides."""

from __future__ import annotations

import pytest

from gpudcm.jpeg_markers import parse_j2k, parse_jpeg
from gpudcm.routing import FULL_ENV, MIN_NVJPEG_LOSSLESS, NO_GPU_ENV, GpuEnv, Route, route_bytes, route_frame
from test_jpeg_markers import RGB444, YCC420, YCC422, build_j2k, build_jpeg, seg
from test_routing import BASE, EXT, HTJ2K, J2K, J2KR, P14, SV1, _spec

CPU = "cpu-plugin"
GREY = ((1, 1, 1, 0),)
THREE = ((1, 1, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0))
ADOBE = [(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")]


def lossless(precision=16, comps=GREY, **kw):
    return build_jpeg(sof=0xC3, precision=precision, comps=comps, **kw)


JPEG_ROWS = [
    # (transfer syntax, stream, spec fields, env, backend, mode, exact reason)
    (BASE, build_jpeg(), {}, NO_GPU_ENV, CPU, None, "nvJPEG is not available"),
    (BASE, build_jpeg(sof=0xF7, scans=[([(1, 0, 0)], 0, 0, 0, 0)]), {}, FULL_ENV, CPU, None,
     "JPEG-LS codestream (nvJPEG has no JPEG-LS decoder)"),
    (BASE, build_jpeg(sof=0xC5), {}, FULL_ENV, CPU, None, "hierarchical JPEG (hierarchical-extended)"),
    (BASE, b"\xff\xd8" + seg(0xDE, b"\x08\x00\x10\x00\x10\x01\x01\x11\x00") + build_jpeg()[2:], {}, FULL_ENV, CPU,
     None, "hierarchical JPEG (baseline)"),
    (BASE, build_jpeg(sof=0xC9), {}, FULL_ENV, CPU, None, "arithmetic coding (arithmetic-extended)"),
    (BASE, build_jpeg(sof=0xC2), {}, FULL_ENV, CPU, None, "progressive JPEG"),
    (BASE, build_jpeg(rows=17), {}, FULL_ENV, CPU, None, "codestream is 17x16x1 but the dataset says 16x16x1"),
    (BASE, build_jpeg(cols=15), {}, FULL_ENV, CPU, None, "codestream is 16x15x1 but the dataset says 16x16x1"),
    (BASE, build_jpeg(comps=YCC420), {}, FULL_ENV, CPU, None, "codestream is 16x16x3 but the dataset says 16x16x1"),
    (EXT, build_jpeg(sof=0xC1, precision=12), {"bits": 16}, FULL_ENV, CPU, None,
     "12-bit extended JPEG (nvJPEG decodes 8-bit DCT only)"),
    (BASE, build_jpeg(comps=GREY * 2), {"samples": 2}, FULL_ENV, CPU, None, "2-component DCT JPEG"),
    (BASE, build_jpeg(comps=GREY * 4), {"samples": 4}, FULL_ENV, CPU, None, "4-component DCT JPEG"),
    (BASE, build_jpeg(comps=((1, 4, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0))), {"samples": 3}, FULL_ENV, CPU, None,
     "chroma sampling 4x1,1x1,1x1 is not 4:4:4, 4:2:2 or 4:2:0"),
    (BASE, build_jpeg(comps=((1, 1, 2, 0), (2, 1, 1, 0), (3, 1, 1, 0))), {"samples": 3}, FULL_ENV, CPU, None,
     "chroma sampling 1x2,1x1,1x1 is not 4:4:4, 4:2:2 or 4:2:0"),
    (BASE, build_jpeg(comps=YCC420, app=ADOBE), {"samples": 3}, FULL_ENV, CPU, None,
     "Adobe APP14 colour transform marker (the CPU decoder's handling is not reproduced)"),
    (BASE, build_jpeg(app=ADOBE), {}, FULL_ENV, "nvjpeg", "dct", "8-bit baseline gray DCT"),  # grey: no transform
    (BASE, build_jpeg(), {"bits": 16}, FULL_ENV, CPU, None, "8-bit DCT JPEG in a 16-bit Bits Allocated container"),
    (BASE, build_jpeg(), {}, FULL_ENV, "nvjpeg", "dct", "8-bit baseline gray DCT"),
    (BASE, build_jpeg(comps=YCC420), {"samples": 3}, FULL_ENV, "nvjpeg", "dct", "8-bit baseline 420 DCT"),
    (BASE, build_jpeg(comps=YCC422), {"samples": 3}, FULL_ENV, "nvjpeg", "dct", "8-bit baseline 422 DCT"),
    (EXT, build_jpeg(sof=0xC1, comps=RGB444), {"samples": 3}, FULL_ENV, "nvjpeg", "dct", "8-bit extended 444 DCT"),
    (SV1, lossless(), {"bits": 16}, GpuEnv(nvjpeg=(13, 0, 1)), CPU, None,
     "nvJPEG 13.0.1 < 13.0.2 returns all-zero frames for 9-15-bit lossless JPEG"),
    (SV1, lossless(), {"bits": 16}, GpuEnv(nvjpeg=MIN_NVJPEG_LOSSLESS), "nvjpeg", "lossless",
     "16-bit lossless, selection value 1"),
    (P14, lossless(scans=[([(1, 0, 0)], 7, 0, 0, 0)]), {"bits": 16}, FULL_ENV, CPU, None,
     "lossless predictor (selection value) 7, nvJPEG decodes only 1"),
    (P14, lossless(scans=[([(1, 0, 0)], 1, 0, 0, 3)]), {"bits": 16}, FULL_ENV, CPU, None, "lossless point transform 3"),
    (P14, lossless(precision=1), {"bits": 8}, FULL_ENV, CPU, None, "lossless precision 1 outside 2-16"),
    (P14, lossless(precision=17), {"bits": 32}, FULL_ENV, CPU, None, "lossless precision 17 outside 2-16"),
    (P14, lossless(precision=2), {"bits": 8}, FULL_ENV, "nvjpeg", "lossless", "2-bit lossless, selection value 1"),
    (P14, lossless(precision=9), {"bits": 8}, FULL_ENV, CPU, None, "lossless precision 9 exceeds Bits Allocated 8"),
    (P14, lossless(precision=8), {"bits": 8}, FULL_ENV, "nvjpeg", "lossless", "8-bit lossless, selection value 1"),
    (P14, lossless(comps=THREE, scans=[([(c, 0, 0)], 1, 0, 0, 0) for c in (1, 2, 3)]), {"samples": 3, "bits": 16},
     FULL_ENV, CPU, None, "lossless frame in 3 scan(s), not one interleaved scan"),
    (P14, lossless(comps=THREE, scans=[([(1, 0, 0), (2, 0, 0)], 1, 0, 0, 0)]), {"samples": 3, "bits": 16},
     FULL_ENV, CPU, None, "lossless frame in 1 scan(s), not one interleaved scan"),
    (P14, lossless(comps=THREE, dc_tables=[0, 1, 1]), {"samples": 3, "bits": 16}, FULL_ENV, CPU, None,
     "3-component lossless with a Huffman table per component"),
    (P14, lossless(comps=GREY * 2), {"samples": 2, "bits": 16}, FULL_ENV, CPU, None,
     "2-component lossless JPEG (nvJPEG's lossless backend decodes at most 2 channels; gpudcm sends it grey frames only)"),
    (P14, lossless(comps=GREY * 4), {"samples": 4, "bits": 16}, FULL_ENV, CPU, None,
     "4-component lossless JPEG (nvJPEG's lossless backend decodes at most 2 channels; gpudcm sends it grey frames only)"),
    (P14, lossless(precision=12, comps=THREE), {"samples": 3, "bits": 16}, FULL_ENV, CPU, None,
     "3-component lossless JPEG (nvJPEG's lossless backend decodes at most 2 channels; gpudcm sends it grey frames only)"),
    (P14, lossless(precision=12), {"bits": 16}, FULL_ENV, "nvjpeg", "lossless", "12-bit lossless, selection value 1"),
    (BASE, build_jpeg(sof=0xC6, precision=8), {}, FULL_ENV, CPU, None,
     "hierarchical JPEG (hierarchical-progressive)"),
    (BASE, b"\xff\xd8\xff", {}, FULL_ENV, CPU, None,
     "frame header did not parse: JPEG stream ends inside a marker"),
]


@pytest.mark.parametrize("ts,data,spec_kw,env,backend,mode,reason", JPEG_ROWS,
                         ids=[f"{i}-{r[-1][:40]}" for i, r in enumerate(JPEG_ROWS)])
def test_jpeg_decision(ts, data, spec_kw, env, backend, mode, reason):
    assert route_bytes(_spec(ts, **spec_kw), data, env) == Route(backend, reason, mode)


def _j2k(**kw):
    return build_j2k(rows=16, cols=16, **kw)


J2K_ROWS = [
    (J2K, _j2k(), {"bits": 16}, GpuEnv(nvjpeg=(13, 3, 2)), CPU, "nvImageCodec is not importable"),
    (J2K, build_j2k(rows=8, cols=16), {"bits": 16}, FULL_ENV, CPU, "codestream is 8x16x1 but the dataset says 16x16x1"),
    (J2K, build_j2k(rows=16, cols=8), {"bits": 16}, FULL_ENV, CPU, "codestream is 16x8x1 but the dataset says 16x16x1"),
    (J2K, _j2k(comps=((8, False),) * 3), {"bits": 16}, FULL_ENV, CPU,
     "codestream is 16x16x3 but the dataset says 16x16x1"),
    (J2K, _j2k(jp2=True), {"bits": 16}, FULL_ENV, CPU, "JP2 file wrapper instead of a bare codestream"),
    (J2K, _j2k(comps=((8, False),) * 2), {"samples": 2, "bits": 16}, FULL_ENV, CPU, "2-component JPEG 2000"),
    (J2K, _j2k(comps=((8, False),) * 4), {"samples": 4, "bits": 16}, FULL_ENV, CPU, "4-component JPEG 2000"),
    (J2K, _j2k(sub=(2, 1)), {"bits": 16}, FULL_ENV, CPU, "subsampled JPEG 2000 components"),
    (J2K, _j2k(sub=(1, 2)), {"bits": 16}, FULL_ENV, CPU, "subsampled JPEG 2000 components"),
    (J2K, _j2k(comps=((8, False), (8, False), (12, False))), {"samples": 3, "bits": 16}, FULL_ENV, CPU,
     "JPEG 2000 components differ in precision or signedness"),
    (J2K, _j2k(comps=((8, False), (8, True), (8, False))), {"samples": 3, "bits": 16}, FULL_ENV, CPU,
     "JPEG 2000 components differ in precision or signedness"),
    (J2K, _j2k(comps=((17, False),)), {"bits": 32}, FULL_ENV, CPU, "JPEG 2000 precision 17 > 16"),
    (J2K, _j2k(comps=((16, False),)), {"bits": 16}, FULL_ENV, "j2k", "16-bit unsigned JPEG 2000"),
    (J2K, _j2k(comps=((9, False),)), {"bits": 8}, FULL_ENV, CPU, "JPEG 2000 precision 9 exceeds Bits Allocated 8"),
    (J2K, _j2k(comps=((8, False),)), {"bits": 8}, FULL_ENV, "j2k", "8-bit unsigned JPEG 2000"),
    (J2KR, _j2k(comps=((12, True),) * 3), {"samples": 3, "bits": 16}, FULL_ENV, "j2k", "12-bit signed JPEG 2000"),
    (HTJ2K, _j2k(cap=0x00020000), {"bits": 16}, FULL_ENV, "j2k", "11-bit unsigned HTJ2K"),
    (J2K, b"\xff\x4f\xff\x51\x00", {"bits": 16}, FULL_ENV, CPU,
     "frame header did not parse: JPEG segment FF51 length at byte 4 is cut off (stream of 5 bytes)"),
]


@pytest.mark.parametrize("ts,data,spec_kw,env,backend,reason", J2K_ROWS,
                         ids=[f"{i}-{r[-1][:40]}" for i, r in enumerate(J2K_ROWS)])
def test_j2k_decision(ts, data, spec_kw, env, backend, reason):
    assert route_bytes(_spec(ts, **spec_kw), data, env) == Route(backend, reason)


def test_route_frame_decisions():
    native = _spec("1.2.840.10008.1.2.1")
    assert route_frame(native, None) == Route(CPU, "Explicit VR Little Endian is not a JPEG or JPEG 2000 transfer syntax")
    assert route_frame(_spec(BASE), None) == Route(CPU, "frame header did not parse")
    assert route_frame(_spec(J2K), None) == Route(CPU, "frame header did not parse")
    assert route_frame(_spec(J2K), parse_jpeg(build_jpeg())) == Route(CPU, "a JPEG 2000 transfer syntax with a non-J2K frame")
    assert route_frame(_spec(BASE), parse_j2k(build_j2k())) == Route(CPU, "a JPEG transfer syntax with a non-JPEG frame")
    assert route_frame(_spec(BASE), parse_jpeg(build_jpeg())) == Route("nvjpeg", "8-bit baseline gray DCT", "dct")
    assert route_frame(_spec(J2K, bits=16), parse_j2k(_j2k())) == Route("j2k", "11-bit unsigned JPEG 2000")
    assert route_frame(_spec(BASE), parse_jpeg(build_jpeg()), NO_GPU_ENV) == Route(CPU, "nvJPEG is not available")
