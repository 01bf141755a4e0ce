"""Subsampled JPEG on the device equals pydicom's decode (pylibjpeg-libjpeg: Thomas Richter's libjpeg), not
just libjpeg-turbo's: the upsampling kernel's Richter mode (kernels/upsample.cuh) through the device path's
contract stand-ins (tests/harness/standins.py: libjpeg-turbo's raw planes, as nvJPEG returns them) and the
host build of the kernel. Truth: pydicom's default decode; libjpeg-turbo's own decode for the turbo mode.
Noisy chroma (tests/lossy_jpeg_data.py) is where the two upsamplers differ most (up to 28)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from pydicom.uid import JPEGBaseline8Bit

from corpus import reference
from gpudcm.api import _extended_offsets, _prepare
from gpudcm.cuda import jpeg_path
from gpudcm.cuda.jpeg_path import decode_jpeg_family, reference_upsampler
from gpudcm.cuda.upsample import UPSAMPLERS, plan_upsample, upsample_frames
from gpudcm.frames import frame_bytes, frame_extents
from gpudcm.jpeg_markers import parse_jpeg
from gpudcm.routing import FULL_ENV
from gpudcm.tolerance import agreement
from jpeg_refs import device_ybr_and_rgb_agreement, turbo_reference
from lossy_jpeg_data import NOISY, noisy_chroma_files, noisy_chroma_jpeg
from tests.harness import standins
from tests.harness.host_ops import HostOps
from tests.harness.hostbuild import host_upsample_launcher

libjpeg = pytest.importorskip("libjpeg")  # pydicom's default JPEG plugin: the reference these tests are about


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    return noisy_chroma_files(tmp_path_factory.mktemp("noisy-chroma"))


def _device(path, upsampler=None, raw=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, spec = _prepare(path)
        return decode_jpeg_family(ds, spec, index=None, raw=raw, as_rgb=True, ops=HostOps(), env=FULL_ENV,
                                  decoders=standins.decoders(), extended_offsets=_extended_offsets(ds),
                                  upsampler=upsampler)


@pytest.mark.parametrize("name", list(NOISY))
def test_noisy_chroma_on_the_device_within_tolerance_of_pydicom(noisy, name, parity_log):
    """Failed before the Richter mode (libjpeg-turbo's triangle filter on these planes is up to 28 off).
    YCbCr within 1 of pydicom, RGB its conversion (tests/jpeg_refs.py device_ybr_and_rgb_agreement)."""
    path = noisy[name]
    ybr, infos = _device(path, raw=True)
    assert {i.backend for i in infos} == {"nvjpeg"}
    rgb, _ = _device(path)
    agree, rgb_agree = device_ybr_and_rgb_agreement(ybr, rgb, reference(path, raw=True), reference(path),
                                                    JPEGBaseline8Bit)
    parity_log.append((f"noisy chroma device {name}", f"YBR vs pydicom: {agree}; RGB: {rgb_agree}"))


@pytest.mark.parametrize("name", list(NOISY))
def test_turbo_mode_is_libjpeg_turbo_and_beyond_pydicom_on_noisy_chroma(noisy, name, parity_log):
    """``upsampler="turbo"`` (wsi ``exact=False``) is libjpeg-turbo's decode to the bit, which is why the
    device path may not use it where pydicom's plugin is the reference."""
    path = noisy[name]
    got, _ = _device(path, upsampler="turbo", raw=True)
    np.testing.assert_array_equal(got, turbo_reference(path, raw=True))
    agree = agreement(got, reference(path, raw=True), JPEGBaseline8Bit)
    if "444" not in name:
        assert agree.max > 2, str(agree)
    parity_log.append((f"noisy chroma device, turbo upsampler, YBR {name}", f"vs pydicom: {agree}"))


@pytest.mark.parametrize("subsampling", [1, 2], ids=["422", "420"])
@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 2), (3, 5), (5, 3), (7, 17), (16, 16), (9, 33), (17, 40)])
def test_richter_mode_within_one_of_pydicoms_plugin_at_every_edge(rows, cols, subsampling):
    """Tiny noisy images hit every edge (first/last row and column, blocks cut by the image edge, planes 1
    and 2 samples wide) and column 8k+1; each YCbCr sample within 1 of Richter's libjpeg (its IDCT keeps 4
    fraction bits nvJPEG's integer planes do not have); the same over a one-block grid."""
    data = noisy_chroma_jpeg(rows, cols, subsampling, seed=rows * 100 + cols)
    info = parse_jpeg(data)
    planes = standins.raw_planes(data, info)
    launcher = host_upsample_launcher()
    got = upsample_frames([planes], info, launcher=launcher, upsampler="richter")[0]
    want = libjpeg.decode(data, 0)  # what pydicom's plugin returns (no colour transform)
    assert np.abs(got.astype(int) - want).max() <= 1
    plan = plan_upsample(info, 1, "richter")
    small = dataclasses.replace(plan, geometry=dataclasses.replace(plan.geometry, grid=1, block=7))
    out = np.empty(plan.n_elements, np.uint8)
    assert launcher(small, np.concatenate([p.reshape(-1) for p in planes]), out) == 0
    np.testing.assert_array_equal(out.reshape(got.shape), got)


def _richter_numpy(planes, info) -> np.ndarray:
    """Richter's upsampler written out in NumPy (x16 arithmetic of upsampler.cpp on integer planes, edges
    replicated, then (v + 8) >> 4): VerticalFilterCore<2>, then HorizontalFilterCore<2> whose output 8k+1
    reads the already written output 8k+2; the independent oracle for the kernel's Richter mode."""
    from gpudcm.cuda.upsample import expansion

    rows, cols = info.rows, info.columns
    out = []
    for p, (fy, fx) in zip(planes, expansion(info)):
        c = p.astype(np.int64) * 16
        if fy == 2:
            r = np.arange(rows) // 2
            far = np.where(np.arange(rows) % 2 == 1, np.minimum(r + 1, c.shape[0] - 1), np.maximum(r - 1, 0))
            c = (3 * c[r] + c[far] + 2) >> 2
        if fx == 2:
            pad = np.pad(c, ((0, 0), (1, 1)), mode="edge")
            up = np.empty((c.shape[0], 2 * c.shape[1]), np.int64)
            up[:, 0::2] = (3 * c + pad[:, :-2] + 2) >> 2
            up[:, 1::2] = (3 * c + pad[:, 2:] + 1) >> 2
            up[:, 1::8] = (3 * c[:, 0::4] + up[:, 2::8] + 1) >> 2
            c = up
        out.append(np.clip((c[:rows, :cols] + 8) >> 4, 0, 255))
    return np.stack(out, -1).astype(np.uint8)


@pytest.mark.parametrize("name", list(NOISY))
def test_richter_mode_equals_the_filter_written_out(name):
    """The kernel (host build) bit for bit the NumPy oracle, on every noisy size; and the in-place read
    matters there: without it the oracle is not the kernel."""
    rows, cols, sub, _ = NOISY[name]
    data = noisy_chroma_jpeg(rows, cols, sub, seed=3)
    info = parse_jpeg(data)
    planes = standins.raw_planes(data, info)
    got = upsample_frames([planes], info, launcher=host_upsample_launcher(), upsampler="richter")[0]
    np.testing.assert_array_equal(got, _richter_numpy(planes, info))
    if sub and cols > 2:
        turbo = upsample_frames([planes], info, launcher=host_upsample_launcher(), upsampler="turbo")[0]
        assert not np.array_equal(got[:, 1::8], turbo[:, 1::8])


@pytest.mark.parametrize("subsampling", ["440", "411"])
def test_richters_440_and_411_filters_have_no_in_place_step(subsampling):
    """Routing keeps 4:4:0 and 4:1:1 on the CPU (pydicom's plugin), so the kernel has no mode for them; what
    Richter's libjpeg does there, should routing admit them: at x16, Upsampler<1,2> is the vertical
    triangle (3 near + far) / 4 alone, HorizontalFilterCore<4> the weights (3, 5), (1, 7), (7, 1), (5, 3) / 8
    of the neighbours without reading its own output; then (v + 8) >> 4. Within 1 of pydicom's plugin
    (the IDCT), on libjpeg-turbo's planes of a noisy image."""
    rows, cols = 45, 77
    rgb = np.random.default_rng(1).integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    data = pytest.importorskip("imagecodecs").jpeg8_encode(rgb, level=95, subsampling=subsampling)
    info = parse_jpeg(data)
    c = standins.raw_planes(data, info)[2].astype(np.int64) * 16
    if subsampling == "440":
        r = np.arange(rows) // 2
        far = np.where(np.arange(rows) % 2 == 1, np.minimum(r + 1, c.shape[0] - 1), np.maximum(r - 1, 0))
        up = (3 * c[r] + c[far] + 2) >> 2
    else:
        pad = np.pad(c, ((0, 0), (1, 1)), mode="edge")
        left, right = pad[:, :-2], pad[:, 2:]
        up = np.stack([(3 * left + 5 * c + 2) >> 3, (left + 7 * c + 1) >> 3, (right + 7 * c + 2) >> 3,
                       (3 * right + 5 * c + 1) >> 3], -1).reshape(rows, -1)[:, :cols]
    model = np.clip((up + 8) >> 4, 0, 255)
    assert np.abs(model - libjpeg.decode(data, 0)[..., 2]).max() <= 1


def test_kernel_rejects_an_unknown_mode():
    data = noisy_chroma_jpeg(16, 16, 1, seed=0)
    info = parse_jpeg(data)
    planes = standins.raw_planes(data, info)
    plan = dataclasses.replace(plan_upsample(info, 1), mode=7)
    out = np.empty(plan.n_elements, np.uint8)
    assert host_upsample_launcher()(plan, np.concatenate([p.reshape(-1) for p in planes]), out) != 0
    with pytest.raises(ValueError, match="upsampler"):
        plan_upsample(info, 1, "fancy")


def _first_frame(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, spec = _prepare(path)
    return spec, bytes(frame_bytes(ds.PixelData, frame_extents(spec, ds.PixelData)[0]))


def test_reference_upsampler_follows_the_cpu_registry(noisy, monkeypatch):
    spec, frame = _first_frame(noisy["422-45x77-ybr422"])
    assert reference_upsampler(spec, frame) == "richter"  # subsampled: pydicom's plugin, pylibjpeg first
    monkeypatch.setattr(jpeg_path, "decoding_plugins", lambda ts: ["pillow"])  # pydicom would use Pillow
    assert reference_upsampler(spec, frame) == "turbo"
    assert set(UPSAMPLERS) == {"turbo", "richter"}


def test_decoding_plugins_in_pydicoms_order():
    from gpudcm.pydicom_compat import decoding_plugins

    got = decoding_plugins(JPEGBaseline8Bit)
    assert got[0] == "pylibjpeg" and set(got) >= {"pylibjpeg"}
    assert decoding_plugins("1.2.3.4") == []


def test_wsi_exact_false_takes_the_turbo_upsampler_on_the_device(tmp_path):
    """wsi ``exact=False`` asks for libjpeg-turbo's values (wsidicom's); the default for pydicom's."""
    from gpudcm import wsi
    from wsi_data import make_pyramid

    modes = []
    ops = HostOps()
    inner = ops.upsample_launcher
    ops.upsample_launcher = lambda plan, src, out: modes.append(plan.mode) or inner(plan, src, out)
    pyr = make_pyramid(tmp_path, codec="jpeg")  # Pillow's tiles: 4:2:0
    slide = wsi.open(pyr.paths)
    slide.read_region((0, 0), 0, (64, 64), device="cuda", ops=ops, exact=False)
    assert modes and set(modes) == {UPSAMPLERS["turbo"]}
    modes.clear()
    slide.read_region((0, 0), 0, (64, 64), device="cuda", ops=ops)
    assert modes and set(modes) == {UPSAMPLERS["richter"]}


# ------------------------------------------------------------------------------- on the device (ci/gpu.sh)

@pytest.mark.gpu
@pytest.mark.parametrize("name", list(NOISY))
def test_gpu_noisy_chroma_against_pydicom(noisy, name, parity_log):
    """The real nvJPEG and kernels on noisy chroma: YCbCr within the tolerance of pydicom's decode, RGB its
    conversion; every frame on nvJPEG."""
    import gpudcm

    path = noisy[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (ybr,), infos = gpudcm.decode_batch([path], device="cuda", return_info=True, raw=True)
        (rgb,) = gpudcm.decode_batch([path], device="cuda")
    assert all(i.backend == "nvjpeg" and i.fallback_from is None for i in infos), [i.reason for i in infos]
    agree, rgb_agree = device_ybr_and_rgb_agreement(ybr.get(), rgb.get(), reference(path, raw=True), reference(path),
                                                    JPEGBaseline8Bit, ybr_max=2)
    parity_log.append((f"gpu noisy chroma {name}", f"YBR vs pydicom: {agree}; RGB: {rgb_agree}"))


@pytest.mark.gpu
def test_gpu_upsampling_kernel_equals_its_oracles(noisy):
    """The compiled kernel on the real nvJPEG planes: Richter mode bit for bit the NumPy oracle, turbo mode
    the host build's output (where the device machine has g++)."""
    import cupy

    from gpudcm.cuda import nvjpeg
    from gpudcm.cuda.upsample import cupy_upsample_launcher

    try:
        host_build = host_upsample_launcher()
    except Exception:  # noqa: BLE001 - no g++ on the device machine
        host_build = None

    for name, path in noisy.items():
        _, frame = _first_frame(path)
        info = parse_jpeg(frame)
        (planes,) = nvjpeg.decode_batch([frame], [info], "dct")
        host_planes = [cupy.asnumpy(p) for p in planes]
        dev = upsample_frames([planes], info, launcher=cupy_upsample_launcher, xp=cupy, upsampler="richter")
        np.testing.assert_array_equal(cupy.asnumpy(dev)[0], _richter_numpy(host_planes, info), err_msg=name)
        if host_build:  # turbo mode against the host build where g++ is there
            dev = upsample_frames([planes], info, launcher=cupy_upsample_launcher, xp=cupy, upsampler="turbo")
            host = upsample_frames([host_planes], info, launcher=host_build, upsampler="turbo")
            np.testing.assert_array_equal(cupy.asnumpy(dev), host, err_msg=f"{name} turbo")
