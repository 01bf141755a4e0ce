"""The JPEG-family device path, assembled on the CPU: routing, per-frame CPU fallback, batched GPU groups
(stand-in decoders returning what the GPU libraries must return), colour handling, frame records."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpudcm
from corpus import corpus_files, corpus_id, reference_shape
from gpudcm import cpu
from gpudcm.api import _extended_offsets, _prepare
from gpudcm.cuda.j2k import pydicom_j2k_finish
from gpudcm.cuda.jpeg_path import decode_jpeg_family
from gpudcm.frames import frame_bytes, frame_extents
from gpudcm.routing import FULL_ENV, J2K_SYNTAXES, JPEG_SYNTAXES, NO_GPU_ENV
from tests.harness.host_ops import HostOps


def _files():
    out = []
    for p in corpus_files():
        if not reference_shape(p):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, spec = _prepare(p)
        if str(spec.transfer_syntax) in JPEG_SYNTAXES | J2K_SYNTAXES:
            out.append(p)
    return out


FILES = _files()


def _stand_ins(ds, spec):
    """Decoders with the GPU libraries' contract: nvJPEG gives raw components (as pydicom's plugin
    before colour conversion), nvImageCodec gives the codestream's raw samples (openjpeg here)."""
    buffer = ds.PixelData
    lookup = {bytes(frame_bytes(buffer, f)): i for i, f in enumerate(frame_extents(spec, buffer, extended_offsets=_extended_offsets(ds)))}

    def nvjpeg(frames, infos, mode):
        return [cpu.decode(ds, spec, index=lookup[bytes(f)], raw=True) for f in frames]

    def j2k(frames, infos, spec_):
        import openjpeg

        return [pydicom_j2k_finish(openjpeg.decode(bytes(f)), info, spec_) for f, info in zip(frames, infos)]

    return {"nvjpeg": nvjpeg, "j2k": j2k}


def _run(path, env, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, spec = _prepare(path)
        return decode_jpeg_family(ds, spec, ops=HostOps(), env=env, decoders=_stand_ins(ds, spec),
                                  extended_offsets=_extended_offsets(ds), **kw)


def _cpu(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(path, device="cpu", **kw)


def test_corpus_has_jpeg_family_files():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=corpus_id)
@pytest.mark.parametrize("env", [FULL_ENV, NO_GPU_ENV], ids=["gpu-routes", "cpu-only"])
def test_assembled_equals_cpu(path, env):
    for raw in (False, True):
        arr, infos = _run(path, env, index=None, raw=raw, as_rgb=True)
        ref = _cpu(path, raw=raw)
        assert arr.shape == ref.shape and arr.dtype == ref.dtype
        np.testing.assert_array_equal(arr, ref)
    assert len(infos) == (ref.shape[0] if ref.ndim == 4 or (ref.ndim == 3 and ref.shape[-1] != 3) else 1)
    if env is NO_GPU_ENV:
        assert {i.backend for i in infos} == {"cpu-plugin"}
    assert all(i.reason for i in infos)


def test_gpu_routes_are_taken_and_recorded():
    backends = set()
    for path in FILES:
        _, infos = _run(path, FULL_ENV, index=None, raw=True, as_rgb=True)
        backends |= {i.backend for i in infos}
    assert {"nvjpeg", "j2k", "cpu-plugin"} <= backends


def test_single_frame_index():
    multi = [p for p in FILES if len(reference_shape(p)) == 4]
    assert multi
    arr, infos = _run(multi[0], FULL_ENV, index=2, raw=False, as_rgb=True)
    np.testing.assert_array_equal(arr, _cpu(multi[0], index=2))
    assert [i.frame for i in infos] == [2]
