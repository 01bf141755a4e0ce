"""GPU JPEG-family decode (nvJPEG, nvImageCodec) equals the CPU path on every corpus frame (needs a GPU)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.pixels import pixel_array as pydicom_pixel_array

from corpus import corpus_id, reference_shape
from gpudcm.jpeg_markers import parse_j2k, parse_jpeg
from gpudcm.routing import detect_env, route_bytes
from test_jpeg_markers import jpeg_family_frames

pytestmark = pytest.mark.gpu

LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"}


def _cases():
    return [pytest.param(c, id=corpus_id(c[0])) for c in jpeg_family_frames() if reference_shape(Path(c[0])) is not None]


@pytest.mark.parametrize("case", _cases())
def test_cuda_equals_cpu(case, parity_log):
    import cupy

    from gpudcm.cuda import j2k, nvjpeg

    path, ds, spec, frames = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pydicom_pixel_array(path, raw=True)
    ref = ref.reshape((len(frames),) + spec.frame_shape) if len(frames) > 1 else ref[None]
    env = detect_env()
    worst, means, backends = 0, [], set()
    for i, frame in enumerate(frames):
        r = route_bytes(spec, frame, env)
        backends.add(r.backend)
        if r.backend == "nvjpeg":
            (out,) = nvjpeg.decode_batch([frame], [parse_jpeg(frame)], r.mode)
            # lossless: uint16 bits read as pydicom reads them (Bits Allocated container, Pixel Representation)
            out = out.view(spec.dtype) if out.dtype.itemsize == spec.dtype.itemsize else out.astype(spec.dtype)
        elif r.backend == "j2k":
            (out,) = j2k.decode_batch([frame], [parse_j2k(frame)], spec)
        else:
            continue
        got = cupy.asnumpy(out).reshape(ref[i].shape)
        diff = np.abs(got.astype(np.int64) - ref[i].astype(np.int64))
        if str(spec.transfer_syntax) in LOSSY:
            worst, _ = max(worst, int(diff.max())), means.append(float(diff.mean()))
            assert diff.max() <= 2, f"frame {i}: max diff {diff.max()}, mean {diff.mean():.4f} ({r.reason})"
        else:
            np.testing.assert_array_equal(got, ref[i], err_msg=f"frame {i} ({r.reason})")
    parity_log.append((f"gpu-jpeg {corpus_id(Path(path))}",
                       f"equal via {sorted(backends)}; max diff {worst}, mean abs diff "
                       f"{(sum(means) / len(means)) if means else 0:.4f}"))


def test_lossless_12_and_16_bit_frames_present():
    bits = {parse_jpeg(f).precision for _, _, s, fr in jpeg_family_frames() for f in fr
            if str(s.transfer_syntax) in ("1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70")}
    assert 16 in bits
