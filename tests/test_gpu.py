"""GPU tests: CUDA output equals the CPU path bit for bit. Skipped without a CUDA device."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gpudcm
from corpus import corpus_files, corpus_id, generated_cases, reference_shape

pytestmark = pytest.mark.gpu



def _decodable():
    return [p for p in corpus_files() if reference_shape(p)]


def _both(src, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = gpudcm.pixel_array(src, device="cpu", **kwargs)
        gpu = gpudcm.pixel_array(src, device="cuda", **kwargs)
    return cpu, gpu


@pytest.mark.parametrize("path", _decodable(), ids=corpus_id)
@pytest.mark.parametrize("raw", [False, True])
def test_cuda_equals_cpu_on_corpus(path, raw):
    import cupy

    cpu, gpu = _both(path, raw=raw)
    assert isinstance(gpu, cupy.ndarray)
    assert gpu.dtype == cpu.dtype and gpu.shape == cpu.shape
    np.testing.assert_array_equal(gpu.get(), cpu)


@pytest.mark.parametrize("case", generated_cases(), ids=lambda c: c.name)
def test_cuda_equals_cpu_on_generated(case):
    cpu, gpu = _both(case.path)
    np.testing.assert_array_equal(gpu.get(), cpu)
    np.testing.assert_array_equal(gpu.get(), case.expected)


def test_cuda_batch_stack():
    import cupy

    paths = [c.path for c in generated_cases() if c.name.startswith("u16_bs12")]
    out = gpudcm.decode_batch(paths, device="cuda", stack=True)
    assert isinstance(out, cupy.ndarray)
    np.testing.assert_array_equal(out.get(), gpudcm.decode_batch(paths, device="cpu", stack=True))
