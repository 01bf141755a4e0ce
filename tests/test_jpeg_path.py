"""The JPEG-family device path, assembled on the CPU: routing, batched GPU groups decoded by stand-ins that
keep nvJPEG's / nvImageCodec's contracts (tests/harness/standins.py), the device-side finishing (upsampling,
Bits Stored, sign, colour) through the host build of the kernels, per-frame CPU fallback, frame records."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpudcm
from corpus import corpus_files, corpus_id, reference_shape
from gpudcm.api import _extended_offsets, _prepare
from gpudcm.cuda.jpeg_path import decode_jpeg_family
from gpudcm.routing import FULL_ENV, J2K_SYNTAXES, JPEG_SYNTAXES, NO_GPU_ENV
from gpudcm.tolerance import agreement
from jpeg_refs import assert_device_agrees, expected_routes, turbo_reference
from tests.harness import standins
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


def _run(path, env, decoders=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, spec = _prepare(path)
        return decode_jpeg_family(ds, spec, ops=HostOps(), env=env, decoders=decoders or standins.decoders(),
                                  extended_offsets=_extended_offsets(ds), **kw)


def _cpu(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(path, device="cpu", **kw)


def test_corpus_has_jpeg_family_files():
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=corpus_id)
@pytest.mark.parametrize("env", [FULL_ENV, NO_GPU_ENV], ids=["gpu-routes", "cpu-only"])
def test_assembled_equals_cpu(path, env, parity_log):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, spec = _prepare(path)
    for raw in (False, True):
        arr, infos = _run(path, env, index=None, raw=raw, as_rgb=True)
        ref = _cpu(path, raw=raw)
        alt = turbo_reference(path, raw=raw) if env is FULL_ENV else None
        # lossy YCbCr converted to RGB on the device: YCbCr within 1, RGB its conversion (tests/jpeg_refs.py)
        agree = assert_device_agrees(arr, ref, spec.transfer_syntax, alt=alt,
                                     ycbcr_rgb=env is FULL_ENV and not raw and turbo_reference(path, raw=True) is not None,
                                     ybr_pair=lambda: (_run(path, env, index=None, raw=True, as_rgb=True)[0],
                                                       _cpu(path, raw=True)))
        if raw and env is FULL_ENV:
            parity_log.append((f"device-path stand-ins {corpus_id(path)}", f"{'equal' if agree.max == 0 else agree}"))
    assert len(infos) == spec.number_of_frames
    if env is NO_GPU_ENV:
        assert {i.backend for i in infos} == {"cpu-plugin"}
    else:  # each frame decoded where routing sent it: no GPU failure hidden by the CPU fallback
        assert [i.backend for i in infos] == expected_routes(path), [i.reason for i in infos]
        assert not [i for i in infos if i.fallback_from], [i.reason for i in infos]
    assert all(i.reason for i in infos)


def test_gpu_routes_are_taken_on_the_corpus():
    """Every GPU backend decodes some corpus frames through the stand-ins (the per-file records are checked
    in test_assembled_equals_cpu)."""
    routed = {b for p in FILES for b in expected_routes(p)}
    assert {"nvjpeg", "j2k", "cpu-plugin"} <= routed


def test_single_frame_index():
    multi = [p for p in FILES if len(reference_shape(p)) == 4]
    assert multi
    arr, infos = _run(multi[0], FULL_ENV, index=2, raw=False, as_rgb=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, spec = _prepare(multi[0])
    agree = agreement(arr, _cpu(multi[0], index=2), spec.transfer_syntax, alt=turbo_reference(multi[0], raw=False)[2])
    assert agree.ok, str(agree)
    assert [i.frame for i in infos] == [2]


def _generated_j2k():
    from corpus import generated_cases

    out = []
    for c in generated_cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, spec = _prepare(c.path)
        if str(spec.transfer_syntax) in J2K_SYNTAXES | JPEG_SYNTAXES:
            out.append(pytest.param(c, id=c.name))
    return out


@pytest.mark.parametrize("case", _generated_j2k())
def test_generated_htj2k_through_the_stand_ins(case):
    arr, infos = _run(case.path, FULL_ENV, index=None, raw=False, as_rgb=True)
    np.testing.assert_array_equal(arr, case.expected)
    np.testing.assert_array_equal(arr, _cpu(case.path))
    assert [i.backend for i in infos] == expected_routes(case.path)
    assert "j2k" in {i.backend for i in infos} and not [i for i in infos if i.fallback_from]
