"""Lossy JPEG on the CPU: libjpeg-turbo (imagecodecs, GIL released) for the frame classes proven within the
lossy tolerance of pydicom's default decode (pylibjpeg-libjpeg), pydicom's plugin for the rest
(gpudcm.codecs.imagecodecs_codecs.lossy_jpeg_not_turbo). Truth: pydicom's default decode, on every corpus
lossy JPEG file and on generated files of each header class."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.pixels import convert_color_space
from pydicom.uid import JPEGBaseline8Bit, JPEGExtended12Bit

import gpudcm
from gpudcm import codecs
from gpudcm.frames import extended_offsets, frame_bytes, frame_extents
from gpudcm.spec import pixel_spec
from gpudcm.tolerance import agreement
from corpus import corpus_files, corpus_id, reference, transfer_syntax
from lossy_jpeg_data import lossy_jpeg_dicom as _dicom

imagecodecs = pytest.importorskip("imagecodecs")
TURBO = "imagecodecs-libjpeg-turbo"
LOSSY = (JPEGBaseline8Bit, JPEGExtended12Bit)
CORPUS = [p for p in corpus_files() if transfer_syntax(p) in LOSSY and not isinstance(reference(p), Exception)]


def _frames(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path)
    spec = pixel_spec(ds, source=str(path))
    return spec, [frame_bytes(ds.PixelData, e) for e in frame_extents(spec, ds.PixelData, extended_offsets=extended_offsets(ds))]


def _backends(path) -> list[str]:
    spec, frames = _frames(path)
    return [codecs.choose(spec, codecs.frame_info(spec, f))[0].name for f in frames]


def _cpu(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(path, device="cpu", **kw)


def test_corpus_has_both_classes():
    chosen = {p.name: set(_backends(p)) for p in CORPUS}
    assert len(CORPUS) >= 15
    assert {TURBO} == chosen["SC_rgb_jpeg.dcm"] == chosen["SC_rgb_jpeg_app14_dcmd.dcm"]
    assert TURBO not in chosen["color3d_jpeg_baseline.dcm"] | chosen["SC_rgb_jpeg_dcmtk.dcm"] | chosen["JPGExtended.dcm"]


@pytest.mark.parametrize("path", CORPUS, ids=corpus_id)
def test_corpus_lossy_jpeg_within_tolerance_of_pydicom(path, parity_log):
    for kw in ({}, {"raw": True}):
        got, ref = _cpu(path, **kw), reference(path, **kw)
        agree = agreement(got, ref, transfer_syntax(path))
        assert agree.ok, f"{kw}: {agree}"
        if TURBO not in _backends(path):  # pydicom's own plugin: pydicom's values
            np.testing.assert_array_equal(got, ref)
    parity_log.append((f"lossy JPEG CPU {corpus_id(path)} ({'/'.join(sorted(set(_backends(path))))})", str(agree)))


# ------------------------------------------------------------------------------- generated header classes

def _image(rows: int, cols: int, samples: int, seed: int) -> np.ndarray:
    """Smooth waves plus noise: chroma edges and IDCT values near .5 everywhere."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    a = np.stack([128 + 90 * np.sin(x / (7 + c) + y / (11 + c)) for c in range(samples)], -1)
    a = a + rng.normal(0, 25, a.shape)
    return np.clip(a, 0, 255).astype(np.uint8)[..., 0] if samples == 1 else np.clip(a, 0, 255).astype(np.uint8)


def _pillow(arr: np.ndarray, subsampling: int = 0, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def _twelve_bit(seed: int) -> bytes:  # uniform noise: libjpeg-turbo's 12-bit IDCT reaches 3 off pydicom's
    grey = np.random.default_rng(seed).integers(0, 4096, (256, 256)).astype(np.uint16)
    return imagecodecs.jpeg8_encode(grey, level=90, bitspersample=12)


def _rgb_adobe(seed: int) -> bytes:  # APP14 transform 0, component ids R, G, B: stored RGB
    return imagecodecs.jpeg8_encode(_image(256, 256, 3, seed), level=90, colorspace="RGB", outcolorspace="RGB",
                                    subsampling="444")


# name -> (frames, samples, Photometric Interpretation, bits, libjpeg-turbo proven within tolerance)
CLASSES = {
    "grey-8": (lambda s: _pillow(_image(256, 256, 1, s)), 1, "MONOCHROME2", 8, True),
    "grey-8-noise-q100": (lambda s: _pillow(np.random.default_rng(s).integers(0, 256, (256, 256), dtype=np.uint8),
                                            quality=100), 1, "MONOCHROME2", 8, True),
    "grey-12": (_twelve_bit, 1, "MONOCHROME2", 12, False),
    "rgb-no-transform-444": (_rgb_adobe, 3, "RGB", 8, True),
    "ybr-full-444": (lambda s: _pillow(_image(256, 256, 3, s), 0), 3, "YBR_FULL", 8, False),
    "rgb-pi-jfif-444": (lambda s: _pillow(_image(256, 256, 3, s), 0), 3, "RGB", 8, False),  # JFIF: pydicom says YBR
    "ybr-full-422": (lambda s: _pillow(_image(256, 256, 3, s), 1), 3, "YBR_FULL_422", 8, False),
    "ybr-full-420": (lambda s: _pillow(_image(256, 256, 3, s), 2), 3, "YBR_FULL_422", 8, False),
    "ybr-full-pi-420": (lambda s: _pillow(_image(256, 256, 3, s), 2), 3, "YBR_FULL", 8, False),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lossy-jpeg")
    out = {}
    for name, (make, samples, pi, bits, _) in CLASSES.items():
        frames = [make(seed) for seed in (75, 90)]
        out[name] = _dicom(folder / f"{name}.dcm", frames, 256, 256, samples, pi, bits)
    return out


def _turbo_as_pydicom(path) -> np.ndarray:
    """libjpeg-turbo's decode of every frame with pydicom's rules after it (what sending the frame to it gives)."""
    spec, frames = _frames(path)
    out = np.empty((len(frames), *spec.frame_shape), spec.dtype)
    for k, f in enumerate(frames):
        codecs.finish(codecs.REGISTRY[str(spec.transfer_syntax)][0].decode(f, spec, codecs.frame_info(spec, f)),
                      spec, codecs.frame_info(spec, f), out[k], raw=False, as_rgb=True)
    return out


@pytest.mark.parametrize("name", list(CLASSES))
def test_generated_class_within_tolerance_and_routed_by_its_header(generated, name, parity_log):
    path, proven = generated[name], CLASSES[name][4]
    assert set(_backends(path)) == ({TURBO} if proven else {"pydicom-plugins"})
    got, ref = _cpu(path), reference(path)
    agree = agreement(got, ref, transfer_syntax(path))
    assert agree.ok, str(agree)
    turbo = agreement(_turbo_as_pydicom(path), ref, transfer_syntax(path))
    if proven:
        assert turbo.max <= 1, str(turbo)
    else:
        # the reason for the exclusion: libjpeg-turbo on these frames is beyond the tolerance, so routing
        # one of them to it would fail the agreement above
        assert not turbo.ok, str(turbo)
        np.testing.assert_array_equal(got, ref)
    parity_log.append((f"lossy JPEG class {name}", f"gpudcm {agree}; libjpeg-turbo {turbo}"))


def test_pydicoms_upsampler_reads_its_own_output_at_column_8k_plus_1():
    """Why 4:2:2 is excluded: pydicom's decode equals the exact IDCT upsampled by the triangle filter except
    that output column 8k+1 takes the already upsampled column 8k+2 for input sample 4k+1 (Richter's libjpeg
    filters a row in place). Checked on libjpeg-turbo's chroma plane (within 1 of the exact IDCT)."""
    pytest.importorskip("libjpeg")
    import libjpeg

    from tests.harness.standins import raw_planes
    from gpudcm.jpeg_markers import parse_jpeg

    data = _pillow(_image(64, 128, 3, 1), subsampling=1)
    info = parse_jpeg(data)
    cr = raw_planes(data, info)[2].astype(np.float64)  # (64, 64)
    pad = np.pad(cr, ((0, 0), (1, 1)), mode="edge")
    up = np.empty((64, 128))
    up[:, 0::2] = 0.75 * cr + 0.25 * pad[:, :-2]
    up[:, 1::2] = 0.75 * cr + 0.25 * pad[:, 2:]
    in_place = up.copy()
    in_place[:, 1::8] = 0.75 * cr[:, 0::4] + 0.25 * up[:, 2::8]
    pydicom_cr = libjpeg.decode(data, 0)[..., 2].astype(np.float64)  # what pydicom's plugin returns
    assert np.abs(pydicom_cr - in_place).max() <= 2 < np.abs(pydicom_cr - up).max()
    assert np.abs(np.delete(pydicom_cr - up, np.s_[1::8], axis=1)).max() <= 2


def test_ycbcr_rounding_becomes_three_after_pydicoms_conversion():
    """Why 4:4:4 YCbCr is excluded: the two decoders' YCbCr are within 1, pydicom's RGB conversion makes it 3."""
    pytest.importorskip("libjpeg")
    import libjpeg

    data = _pillow(_image(256, 256, 3, 90), subsampling=0)
    cs = imagecodecs.JPEG8.CS.YCbCr
    ours, theirs = imagecodecs.jpeg8_decode(data, colorspace=cs, outcolorspace=cs), libjpeg.decode(data, 0)
    assert np.abs(ours.astype(int) - theirs).max() == 1
    rgb = [convert_color_space(a, "YBR_FULL", "RGB").astype(int) for a in (ours, theirs)]
    assert np.abs(rgb[0] - rgb[1]).max() == 3
