"""The JPEG-family device path on the CPU, through stand-ins that keep nvJPEG's and nvImageCodec's contracts
(tests/harness/standins.py): each test names the defect of issue 14 (or the deliberate one-line bug) it
catches. The truth is pydicom's default decode, or libjpeg-turbo's own decode where upsampling is checked."""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import JPEG2000Lossless, generate_uid

import gpudcm
from corpus import corpus_files, corpus_id, reference_shape
from gpudcm.api import _extended_offsets, _prepare
from gpudcm.cuda.jpeg_path import decode_jpeg_family
from gpudcm.cuda.upsample import plan_upsample, upsample_frames
from gpudcm.jpeg_markers import parse_j2k, parse_jpeg
from gpudcm.routing import FULL_ENV, JPEG_SYNTAXES, route_bytes
from gpudcm.tolerance import agreement
from jpeg_refs import device_ybr_and_rgb_agreement, turbo_reference
from tests.harness import standins
from tests.harness.host_ops import HostOps
from tests.harness.hostbuild import host_upsample_launcher


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _device(src, decoders=None, **kw):
    """The device path with the host-built kernels and the contract-keeping stand-ins (or `decoders`)."""
    ds, spec = _quiet(_prepare, src)
    kw.setdefault("index", None)
    kw.setdefault("raw", False)
    kw.setdefault("as_rgb", True)
    return _quiet(decode_jpeg_family, ds, spec, ops=HostOps(), env=FULL_ENV, decoders=decoders or standins.decoders(),
                  extended_offsets=_extended_offsets(ds), **kw)


def _corpus(name: str) -> Path:
    return next(p for p in corpus_files() if p.name == name)


# ---------------------------------------------------------------- defect 1: Bits Stored on nvJPEG output


def _relabelled(tmp_path, name: str, **tags) -> Path:
    """A corpus lossless JPEG file with other Bits Stored / Pixel Representation (same codestream)."""
    ds = pydicom.dcmread(_corpus(name))
    for k, v in tags.items():
        setattr(ds, k, v)
    out = tmp_path / f"{Path(name).stem}-{'-'.join(f'{k}{v}' for k, v in tags.items())}.dcm"
    ds.save_as(out)
    return out


@pytest.mark.parametrize("name, tags", [
    ("bad_sequence.dcm", {"BitsStored": 12, "HighBit": 11, "PixelRepresentation": 1}),  # signed 12-bit CT
    ("bad_sequence.dcm", {"BitsStored": 11, "HighBit": 10}),  # unsigned: masked to 11 bits
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", {"BitsStored": 7, "HighBit": 6}),  # 8-bit container
])
def test_bits_stored_corrected_on_nvjpeg_frames(tmp_path, name, tags):
    path = _relabelled(tmp_path, name, **tags)
    ref = _quiet(pydicom_pixel_array, path)
    raw = standins.nvjpeg_decode_batch(*_one_frame(path), "lossless")[0]  # what nvJPEG itself returns
    assert not np.array_equal(raw.reshape(ref.shape).astype(np.int64), ref.astype(np.int64)), "no correction to test"
    arr, infos = _device(path)
    assert [i.backend for i in infos] == ["nvjpeg"]
    assert arr.dtype == ref.dtype
    np.testing.assert_array_equal(arr, ref)


def _one_frame(path):
    ds, spec = _quiet(_prepare, path)
    from gpudcm.frames import frame_bytes, frame_extents

    f = bytes(frame_bytes(ds.PixelData, frame_extents(spec, ds.PixelData)[0]))
    return [f], [parse_jpeg(f)]


# ---------------------------------------------------------------- defect 2: chroma upsampling


def _subsampled_files():
    out = []
    for p in corpus_files():
        if not reference_shape(p):
            continue
        ds, spec = _quiet(_prepare, p)
        if str(spec.transfer_syntax) not in JPEG_SYNTAXES:
            continue
        try:
            frames, infos = _one_frame(p)
        except Exception:
            continue
        if infos[0].subsampling in ("420", "422"):
            out.append(pytest.param(p, id=f"{infos[0].subsampling}-{corpus_id(p)}"))
    return out


SUBSAMPLED = _subsampled_files()


def test_corpus_has_420_and_422_files():
    ids = [p.id for p in SUBSAMPLED]
    assert any(i.startswith("420") for i in ids) and any(i.startswith("422") for i in ids)


@pytest.mark.parametrize("path", SUBSAMPLED)
def test_subsampled_jpeg_within_tolerance_of_pydicom(path, parity_log):
    """Upsampled as pydicom's plugin does (Richter's filter): YCbCr within 1 of pydicom, RGB its conversion
    (tests/jpeg_refs.py device_ybr_and_rgb_agreement); turbo mode is libjpeg-turbo's decode to the bit."""
    _, spec = _quiet(_prepare, path)
    ybr, infos = _device(path, raw=True)
    assert {i.backend for i in infos} == {"nvjpeg"}
    rgb, _ = _device(path)
    refs = [_quiet(gpudcm.pixel_array, path, device="cpu", raw=raw) for raw in (True, False)]
    agree, rgb_agree = device_ybr_and_rgb_agreement(ybr, rgb, *refs, spec.transfer_syntax)
    for raw, ref in zip((True, False), refs):
        turbo = turbo_reference(path, raw=raw)
        fast, _ = _device(path, raw=raw, upsampler="turbo")
        np.testing.assert_array_equal(fast, turbo)
        fast_agree = agreement(fast, ref, spec.transfer_syntax, alt=turbo)
        assert fast_agree.ok, f"raw={raw}, turbo upsampler: {fast_agree}"
        parity_log.append((f"upsampled {'YBR' if raw else 'RGB'} {corpus_id(path)}",
                           f"vs pydicom: {agree if raw else rgb_agree}; turbo upsampler {fast_agree}"))


@pytest.mark.parametrize("subsampling", [1, 2], ids=["422", "420"])
@pytest.mark.parametrize("rows, cols", [(1, 1), (2, 2), (3, 5), (5, 3), (7, 17), (16, 16), (9, 33)])
def test_upsampling_equals_libjpeg_at_every_edge(rows, cols, subsampling):
    """Tiny images hit libjpeg's edge cases (first/last column and row, planes <= 2 samples wide)."""
    from PIL import Image

    rng = np.random.default_rng(rows * 100 + cols)
    img = Image.fromarray(rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8), "RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, subsampling=subsampling)
    data = buf.getvalue()
    info = parse_jpeg(data)
    assert info.subsampling == ("422" if subsampling == 1 else "420")
    planes = standins.raw_planes(data, info)
    launcher = host_upsample_launcher()
    got = upsample_frames([planes], info, launcher=launcher)[0]
    want = Image.open(io.BytesIO(data))
    want.draft("YCbCr", want.size)
    np.testing.assert_array_equal(got, np.asarray(want))
    # the same over a one-block grid: every thread of the grid-stride loop takes many samples
    plan = plan_upsample(info, 1)
    small = dataclasses.replace(plan, geometry=dataclasses.replace(plan.geometry, grid=1, block=7))
    src = np.concatenate([p.reshape(-1) for p in planes])
    out = np.empty(plan.n_elements, np.uint8)
    assert launcher(small, src, out) == 0
    np.testing.assert_array_equal(out.reshape(got.shape), got)


def test_upsampling_kernel_reports_short_planes():
    info = parse_jpeg(_tiny_jpeg(8, 8, 2))
    plan = plan_upsample(info, 1)
    out = np.empty(plan.n_elements, np.uint8)
    assert host_upsample_launcher()(plan, np.zeros(plan.frame_stride - 1, np.uint8), out) != 0


def _tiny_jpeg(rows, cols, subsampling):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((rows, cols, 3), np.uint8), "RGB").save(buf, "JPEG", subsampling=subsampling)
    return buf.getvalue()


# ---------------------------------------------------------------- defect 3: what the GPU backends take


def test_three_component_lossless_jpeg_goes_to_the_cpu():
    path = _corpus("SC_rgb_jpeg_gdcm.dcm")
    (frame,), (info,) = _one_frame(path)
    assert info.lossless and info.samples == 3
    _, spec = _quiet(_prepare, path)
    route = route_bytes(spec, frame, FULL_ENV)
    assert route.backend == "cpu-plugin" and "at most 2" in route.reason
    with pytest.raises(gpudcm.errors.DecodeError, match="NVJPEG_STATUS_JPEG_NOT_SUPPORTED"):
        standins.nvjpeg_decode_batch([frame], [info], "lossless")  # what nvJPEG would say


def _j2k_file(tmp_path, code: bytes, *, rows, cols, spp=1, ba=16, bs=12, pr=0, pi="MONOCHROME2") -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, spp
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = ba, bs, bs - 1, pr
    ds.PhotometricInterpretation = pi
    if spp > 1:
        ds.PlanarConfiguration = 0
    ds.PixelData = encapsulate([code])
    ds["PixelData"].VR = "OB"
    path = tmp_path / f"j2k-{spp}-{ba}-{bs}-{pr}-{pi}-{len(list(tmp_path.iterdir()))}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _j2k(arr: np.ndarray, bits: int) -> bytes:
    import imagecodecs

    return imagecodecs.jpeg2k_encode(arr, level=0, codecformat="j2k", bitspersample=bits, reversible=True, mct=False)


def test_signed_8_bit_j2k_goes_to_the_cpu(tmp_path):
    code = _j2k((np.arange(64).reshape(8, 8) - 32).astype(np.int8), 8)
    path = _j2k_file(tmp_path, code, rows=8, cols=8, ba=8, bs=8, pr=1)
    _, spec = _quiet(_prepare, path)
    assert parse_j2k(code).is_signed
    route = route_bytes(spec, code, FULL_ENV)
    assert route.backend == "cpu-plugin" and "signed 8-bit" in route.reason
    assert standins.nvimgcodec_decode_batch([code], [parse_j2k(code)], spec) == [None]  # nvjpeg2k refuses it
    arr, infos = _device(path)
    np.testing.assert_array_equal(arr, _quiet(pydicom_pixel_array, path))


def test_j2k_precision_above_bits_allocated_goes_to_the_cpu(tmp_path):
    code = _j2k((np.arange(64).reshape(8, 8) * 60).astype(np.uint16), 12)
    path = _j2k_file(tmp_path, code, rows=8, cols=8, ba=8, bs=8)
    _, spec = _quiet(_prepare, path)
    route = route_bytes(spec, code, FULL_ENV)
    assert route.backend == "cpu-plugin" and "exceeds Bits Allocated" in route.reason


def test_j2k_components_of_mixed_signedness_go_to_the_cpu(tmp_path):
    code = bytearray(_j2k((np.arange(192).reshape(8, 8, 3) * 20).astype(np.uint16), 12))
    siz = code.index(b"\xff\x51")
    code[siz + 2 + 2 + 2 + 32 + 2 + 3] |= 0x80  # SIZ: Lsiz, Rsiz, 8 sizes, Csiz; then component 1's Ssiz
    code = bytes(code)
    info = parse_j2k(code)
    assert info.signed == (False, True, False)
    path = _j2k_file(tmp_path, code, rows=8, cols=8, spp=3, pi="RGB")
    _, spec = _quiet(_prepare, path)
    route = route_bytes(spec, code, FULL_ENV)
    assert route.backend == "cpu-plugin" and "signedness" in route.reason


# ---------------------------------------------------------------- defect 11: J2K sign correction and colour


@pytest.mark.parametrize("ba", [16, 32])
@pytest.mark.parametrize("pi, spp", [("MONOCHROME2", 1), ("RGB", 3)])
def test_j2k_sign_correction_where_pydicom_applies_it(tmp_path, ba, pi, spp):
    """Unsigned 12-bit codestream, Pixel Representation 1: pydicom sign-extends from the J2K precision within
    the output dtype for MONOCHROME data only (a 32-bit container also catches a shift computed from the
    decoder's 16-bit dtype)."""
    shape = (16, 16, spp) if spp > 1 else (16, 16)
    code = _j2k((np.arange(np.prod(shape)).reshape(shape) * 37 % 4096).astype(np.uint16), 12)
    path = _j2k_file(tmp_path, code, rows=16, cols=16, spp=spp, ba=ba, pr=1, pi=pi)
    ref = _quiet(pydicom_pixel_array, path)
    assert (ref.min() < 0) == (pi == "MONOCHROME2")
    arr, infos = _device(path)
    assert [i.backend for i in infos] == ["j2k"]
    assert arr.dtype == ref.dtype
    np.testing.assert_array_equal(arr, ref)


def test_j2k_decoded_without_colour_conversion():
    """nvImageCodec is asked for UNCHANGED samples (no sRGB conversion of YBR_FULL codestreams)."""
    from gpudcm.cuda import j2k

    assert j2k.DECODE_PARAMS == {"color_spec": "UNCHANGED", "allow_any_depth": True}


# ---------------------------------------------------------------- defect 7: a failing GPU library


def _raising(frames, infos, *rest):
    raise RuntimeError("simulated library failure")


def _none_per_item(frames, infos, *rest):
    return [None] * len(frames)


@pytest.mark.parametrize("name, backend", [("JPEG-LL.dcm", "nvjpeg"), ("SC_rgb_dcmtk_+eb+cy+n1.dcm", "nvjpeg"),
                                           ("MR_small_jp2klossless.dcm", "j2k")])
@pytest.mark.parametrize("failure", [_raising, _none_per_item], ids=["raises", "none-per-item"])
def test_failing_gpu_library_falls_back_per_frame_and_says_so(name, backend, failure):
    path = _corpus(name)
    decoders = dict(standins.decoders(), **{backend: failure})
    for raw in (False, True):
        arr, infos = _device(path, decoders=decoders, raw=raw)
        np.testing.assert_array_equal(arr, _quiet(gpudcm.pixel_array, path, device="cpu", raw=raw))
    assert infos and all(i.backend == "cpu-plugin" and i.fallback_from == backend for i in infos)
    why = "simulated library failure" if failure is _raising else ("nvjpegDecodeBatchedSupported" if backend == "nvjpeg" else "could not decode")
    assert all(why in i.reason for i in infos), [i.reason for i in infos]


def test_a_failure_of_one_frame_leaves_the_others_on_the_gpu():
    path = _corpus("examples_ybr_color.dcm")
    real = standins.decoders()["nvjpeg"]

    def second_fails(frames, infos, mode):
        out = real(frames, infos, mode)
        out[1] = None
        return out

    arr, infos = _device(path, decoders=dict(standins.decoders(), nvjpeg=second_fails))
    assert [i.fallback_from for i in infos][:3] == [None, "nvjpeg", None]
    assert infos[0].backend == "nvjpeg" and infos[1].backend == "cpu-plugin"
    cpu = _quiet(gpudcm.pixel_array, path, device="cpu")
    np.testing.assert_array_equal(arr[1], cpu[1])  # the CPU plugin's frame is pydicom's exactly


def test_sanitized_upsampling_on_lying_plane_tables():
    """ASan + UBSan build of the upsampling logic, fed lying plane sizes, offsets, factors and short buffers."""
    from tests.harness.hostbuild import run_sanitized

    print(run_sanitized(["-m", "tests.harness.fuzz_upsample", "3000", "--sanitize", "--seed", "1"], r"3000 cases"))
