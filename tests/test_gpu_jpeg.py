"""GPU JPEG-family decode (needs a GPU): the real nvJPEG / nvImageCodec return what the CI stand-ins
(tests/harness/standins.py) say they return, and the device path decodes every corpus frame where routing
sent it, within gpudcm.tolerance of pydicom."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from corpus import corpus_id, reference_shape
from gpudcm.routing import detect_env, route_bytes
from gpudcm.tolerance import max_diff
from test_jpeg_markers import jpeg_family_frames

pytestmark = pytest.mark.gpu


def _cases():
    return [pytest.param(c, id=corpus_id(c[0])) for c in jpeg_family_frames() if reference_shape(Path(c[0])) is not None]


def _dct_standin_builds() -> bool:
    """The DCT stand-in needs g++ and libjpeg headers; a device machine may have neither (then DCT planes
    are checked for kind, size and dtype only)."""
    from tests.harness import standins

    try:
        standins._raw_jpeg()
        return True
    except Exception:  # noqa: BLE001
        return False


@pytest.mark.parametrize("case", _cases())
def test_libraries_keep_the_standins_contract(case, parity_log):
    """Item by item: the same kind of output (planes at real size / uint16 samples / (H, W, C) in
    nvImageCodec's dtype, None where it fails), the same values (lossy: within the tolerance)."""
    import cupy

    from gpudcm.cuda import j2k, nvjpeg
    from gpudcm.cuda.upsample import component_shapes
    from gpudcm.jpeg_markers import parse_j2k, parse_jpeg
    from tests.harness import standins

    dct_values = _dct_standin_builds()
    path, ds, spec, frames = case
    env = detect_env()
    worst, checked = 0, 0
    for i, frame in enumerate(frames):
        r = route_bytes(spec, frame, env)
        if r.backend == "nvjpeg":
            info = parse_jpeg(frame)
            (got,) = nvjpeg.decode_batch([frame], [info], r.mode)
            assert got is not None, f"frame {i}: nvjpegDecodeBatchedSupported refused a frame routing sent it ({r.reason})"
            if r.mode == "dct" and not dct_values:
                assert [(tuple(p.shape), p.dtype) for p in got] == [(s, np.uint8) for s in component_shapes(info)]
                checked += 1
                continue
            (want,) = standins.nvjpeg_decode_batch([frame], [info], r.mode)
            got = [cupy.asnumpy(p) for p in got] if r.mode == "dct" else [cupy.asnumpy(got)]
            want = want if r.mode == "dct" else [want]
        elif r.backend == "j2k":
            info = parse_j2k(frame)
            (got,), (want,) = j2k.decode_batch([frame], [info], spec), standins.nvimgcodec_decode_batch([frame], [info], spec)
            assert (got is None) == (want is None), f"frame {i}: nvImageCodec {got is None}, stand-in {want is None}"
            if got is None:
                continue
            got, want = [cupy.asnumpy(got)], [want]
        else:
            continue
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and g.shape == w.shape, f"frame {i}: library {g.dtype}{g.shape}, stand-in {w.dtype}{w.shape}"
            d = int(np.abs(g.astype(np.int64) - w.astype(np.int64)).max()) if g.size else 0
            assert d <= max_diff(spec.transfer_syntax), f"frame {i} ({r.reason}): max diff {d}"
            worst = max(worst, d)
        checked += 1
    parity_log.append((f"gpu-contract {corpus_id(Path(path))}", f"{checked} frames like the stand-ins; max diff {worst}"))


def test_gpu_backends_present():
    """A GPU run with no GPU JPEG library proves nothing about the JPEG paths: fail, don't skip."""
    env = detect_env()
    assert env.nvjpeg is not None, "nvJPEG did not load"
    assert env.nvimgcodec, "nvImageCodec is not importable"


def test_lossless_12_and_16_bit_frames_present():
    from gpudcm.jpeg_markers import parse_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bits = {parse_jpeg(f).precision for _, _, s, fr in jpeg_family_frames() for f in fr
                if str(s.transfer_syntax) in ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")}
    assert 16 in bits
