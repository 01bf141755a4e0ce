"""GPU tests: CUDA output equals the CPU path (bit for bit on lossless syntaxes, within gpudcm.tolerance on
lossy ones), and every frame was decoded by the backend routing chose for it. Skipped without a CUDA device."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases, reference_shape
from gpudcm.api import _prepare
from gpudcm.routing import J2K_SYNTAXES, JPEG_SYNTAXES, detect_env
from jpeg_refs import assert_device_agrees, expected_routes, turbo_reference

pytestmark = pytest.mark.gpu


def _decodable():
    return [p for p in corpus_files() if reference_shape(p)]


def _cuda(src, **kwargs):
    """The CUDA decode of `src` and its per-frame records."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (gpu,), infos = gpudcm.decode_batch([src], device="cuda", return_info=True, **kwargs)
    return gpu, infos


def _cpu(src, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(src, device="cpu", **kwargs)


def assert_decoded_where_routed(path, infos):
    """JPEG-family frames: the backend routing chose (a GPU frame that fell back to the CPU fails)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, spec = _prepare(path)
    if str(spec.transfer_syntax) in JPEG_SYNTAXES | J2K_SYNTAXES:
        assert [i.backend for i in infos] == expected_routes(path, detect_env()), [i.reason for i in infos]
    assert not [i for i in infos if i.fallback_from], [i.reason for i in infos if i.fallback_from]


@pytest.mark.parametrize("path", _decodable(), ids=corpus_id)
@pytest.mark.parametrize("raw", [False, True])
def test_cuda_equals_cpu_on_corpus(path, raw, parity_log):
    import cupy

    gpu, infos = _cuda(path, raw=raw)
    cpu = _cpu(path, raw=raw)
    assert isinstance(gpu, cupy.ndarray)
    _, spec = _prepare(path)
    # lossy YCbCr converted to RGB: YCbCr within the tolerance, RGB its conversion (tests/jpeg_refs.py)
    agree = assert_device_agrees(gpu.get(), cpu, spec.transfer_syntax, alt=turbo_reference(path, raw=raw),
                                 ycbcr_rgb=not raw and turbo_reference(path, raw=True) is not None, ybr_max=2,
                                 ybr_pair=lambda: (_cuda(path, raw=True)[0].get(), _cpu(path, raw=True)))
    assert_decoded_where_routed(path, infos)
    if agree.max:
        parity_log.append((f"gpu {corpus_id(path)} raw={raw}", str(agree)))


@pytest.mark.parametrize("case", generated_cases(), ids=lambda c: c.name)
def test_cuda_equals_cpu_on_generated(case):
    gpu, infos = _cuda(case.path)
    np.testing.assert_array_equal(gpu.get(), _cpu(case.path))
    np.testing.assert_array_equal(gpu.get(), case.expected)
    assert_decoded_where_routed(case.path, infos)


def test_cuda_batch_stack():
    import cupy

    paths = [c.path for c in generated_cases() if c.name.startswith("u16_bs12")]
    out = gpudcm.decode_batch(paths, device="cuda", stack=True)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_array_equal(out.get(), gpudcm.decode_batch(paths, device="cpu", stack=True))
