"""The compressing writer: HTJ2K (and RPCL), JPEG 2000 and JPEG-LS outputs re-decode with pydicom's own
plugins bit-exactly to the source array across the corpus, DCMTK's dcmdump reads them, frames are found
through the Basic / Extended Offset Table, lossy writes set Lossy Image Compression as PS3.3 asks, and the
GPU encoder's contract (nvImageCodec stand-in) is kept."""

from __future__ import annotations

import io
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_fragments, parse_basic_offsets
from pydicom.pixels import pixel_array as pydicom_pixel_array
from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLSLossless,
    JPEGLSNearLossless,
    generate_uid,
)

import gpudcm.writer as writer
from corpus import corpus_files, corpus_id, reference
from gpudcm.encoders import NAMES, accepted, encode_frames, plan
from gpudcm.encoders.gpu import collect, params
from gpudcm.encoders.verify import check, main_header_markers
from gpudcm.errors import DeviceUnavailable, InvalidPixelData
from gpudcm.jpeg_markers import parse_j2k
from gpudcm.writer import set_pixel_data
from harness.nvimgcodec_standin import Encoder as StandInEncoder
from harness.nvimgcodec_standin import module as standin

LOSSLESS = (HTJ2KLossless, HTJ2KLosslessRPCL, JPEG2000Lossless, JPEGLSLossless)
DCMDUMP = shutil.which("dcmdump")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _read(src) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(src)


def _pydicom(ds_or_path, **kwargs) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom_pixel_array(ds_or_path, **kwargs)


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _source(path: Path):
    """(dataset, pydicom's array, the Photometric Interpretation it has) or None when pydicom does not
    decode the file or it holds float pixel data."""
    arr = reference(path)
    if isinstance(arr, Exception) or arr.dtype.kind == "f":
        return None
    ds = _read(path)
    pi = str(ds.get("PhotometricInterpretation") or "MONOCHROME2")
    if "BitsStored" not in ds:
        return None
    # pydicom gives big endian files' values in big endian; gpudcm writes (and compares) native order
    return ds, arr.astype(arr.dtype.newbyteorder("=")), "RGB" if pi.startswith("YBR") else pi


def _can_hold(ds: Dataset, arr: np.ndarray, pi: str, syntax) -> bool:
    samples = 3 if arr.ndim == 4 or (arr.ndim == 3 and pi in ("RGB", "YBR_FULL")) else 1
    try:
        plan(syntax, rows=int(ds.Rows), columns=int(ds.Columns), samples=samples, itemsize=arr.dtype.itemsize,
             signed=arr.dtype.kind == "i", bits_stored=int(ds.BitsStored), photometric=pi)
    except InvalidPixelData:
        return False
    return True


def dcmdump_errors(path: Path) -> list[str]:
    run = subprocess.run([DCMDUMP, str(path)], capture_output=True, text=True, errors="replace")
    errors = [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("E:")]
    return errors + ([f"dcmdump exited {run.returncode}"] if run.returncode else [])


CORPUS = [p for p in corpus_files() if p.stat().st_size < 8 << 20]


# --- the corpus -------------------------------------------------------------------------------------


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda u: u.name[:40])
@pytest.mark.parametrize("path", CORPUS, ids=corpus_id)
def test_corpus_round_trip(path, syntax, tmp_path):
    """pydicom's array written losslessly decodes (pydicom's plugins) to the same values, dtype and shape;
    where the syntax cannot hold the layout the writer says so before changing the dataset."""
    src = _source(path)
    if src is None:
        pytest.skip("pydicom does not decode it (or float pixel data)")
    ds, arr, pi = src
    if not _can_hold(ds, arr, pi, syntax):
        before = ds.PixelData
        with pytest.raises(InvalidPixelData):
            set_pixel_data(ds, arr, pi, int(ds.BitsStored), transfer_syntax=syntax)
        assert ds.PixelData is before
        return
    set_pixel_data(ds, arr, pi, int(ds.BitsStored), transfer_syntax=syntax, generate_instance_uid=False)
    out = _save(ds, tmp_path / "out.dcm")
    back = _read(out)
    assert back.file_meta.TransferSyntaxUID == syntax
    got = _pydicom(back)
    assert got.dtype == arr.dtype and got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)
    if DCMDUMP:
        assert dcmdump_errors(out) == []


def test_corpus_coverage():
    """The round trip above really runs on many files of every family (not all skipped)."""
    held = {s: 0 for s in LOSSLESS}
    for path in CORPUS[::3]:
        src = _source(path)
        if src is None:
            continue
        for s in LOSSLESS:
            held[s] += _can_hold(*src, s)
    assert all(n >= 20 for n in held.values()), held


# --- codestreams --------------------------------------------------------------------------------------


def _ct(frames=3, rows=64, cols=80, bits=12, signed=True, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    base = np.linspace(lo, hi - 1, rows * cols).reshape(rows, cols)
    return np.stack([np.clip(base + rng.integers(-50, 50, (rows, cols)), lo, hi - 1)
                     for _ in range(frames)]).astype(np.int16 if signed else np.uint16)


def _base(pi="MONOCHROME2") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Writer^Test"
    return ds


def _fragments(ds: Dataset) -> list[bytes]:
    return list(generate_fragments(ds.PixelData[8 + len(parse_basic_offsets(ds.PixelData)) * 4:]))


@pytest.mark.parametrize("shape", [(512, 512), (40, 2000), (3, 5)])
def test_rpcl_codestream_is_what_ps3_5_asks(shape):
    """HTJ2K Lossless RPCL: RPCL progression, a lowest resolution of at most 64 x 64, TLM (PS3.5 10.18)."""
    arr = _ct(1, *shape)
    ds = set_pixel_data(_base(), arr, "MONOCHROME2", 12, transfer_syntax=HTJ2KLosslessRPCL)
    (frame,) = _fragments(ds)
    info = parse_j2k(frame)
    assert info.high_throughput and info.reversible and info.progression == 2
    assert max(-(-shape[0] // 2**info.levels), -(-shape[1] // 2**info.levels)) <= 64
    assert 0xFF55 in main_header_markers(frame)  # TLM
    plain = _fragments(set_pixel_data(_base(), arr, "MONOCHROME2", 12, transfer_syntax=HTJ2KLossless))[0]
    assert 0xFF55 not in main_header_markers(plain) or shape == (3, 5)


def test_basic_offset_table_finds_every_frame():
    arr = _ct(5)
    ds = set_pixel_data(_base(), arr, "MONOCHROME2", 12, transfer_syntax=HTJ2KLossless)
    offsets = parse_basic_offsets(ds.PixelData)
    frags = _fragments(ds)
    assert len(offsets) == len(frags) == 5 and offsets[0] == 0
    assert offsets == list(np.cumsum([0] + [len(f) + 8 for f in frags[:-1]]))
    body = ds.PixelData[8 + 4 * len(offsets):]
    import imagecodecs

    for i, off in enumerate(offsets):  # the item at each offset is frame i
        assert body[off:off + 4] == b"\xfe\xff\x00\xe0"
        length = int.from_bytes(body[off + 4:off + 8], "little")
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(body[off + 8:off + 8 + length]), arr[i])


@pytest.mark.parametrize("how", ["threshold", "forced"])
def test_extended_offset_table(how, monkeypatch, tmp_path):
    """Beyond BOT_LIMIT (4 GiB; a small limit here) the Extended Offset Table holds the offsets and
    lengths, the Basic one is empty; pydicom and dcmdump read the file."""
    arr = _ct(4)
    kwargs = {"offset_table": "extended"} if how == "forced" else {}
    if how == "threshold":
        monkeypatch.setattr(writer, "BOT_LIMIT", 100)
    ds = set_pixel_data(_base(), arr, "MONOCHROME2", 12, transfer_syntax=JPEG2000Lossless, **kwargs)
    assert parse_basic_offsets(ds.PixelData) == []
    offsets = np.frombuffer(ds.ExtendedOffsetTable, "<u8")
    lengths = np.frombuffer(ds.ExtendedOffsetTableLengths, "<u8")
    frags = list(generate_fragments(ds.PixelData[8:]))
    assert list(lengths) == [len(f) for f in frags]
    assert list(offsets) == list(np.cumsum([0] + [len(f) + 8 for f in frags[:-1]]))
    out = _save(ds, tmp_path / "eot.dcm")
    for i in range(4):
        np.testing.assert_array_equal(_pydicom(_read(out), index=i), arr[i])
    if DCMDUMP:
        assert dcmdump_errors(out) == []


def test_small_threshold_keeps_the_basic_table_below_it(monkeypatch):
    monkeypatch.setattr(writer, "BOT_LIMIT", 10**9)
    ds = set_pixel_data(_base(), _ct(3), "MONOCHROME2", 12, transfer_syntax=JPEGLSLossless)
    assert len(parse_basic_offsets(ds.PixelData)) == 3 and "ExtendedOffsetTable" not in ds


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda u: u.name[:40])
@pytest.mark.parametrize("bits,signed", [(8, False), (12, False), (12, True), (16, False), (16, True)])
def test_bit_depths_and_sign(syntax, bits, signed, tmp_path):
    arr = _ct(2, 33, 47, bits=bits, signed=signed)
    if bits == 8:
        arr = arr.astype(np.uint8)
    ds = set_pixel_data(_base(), arr, "MONOCHROME2", bits, transfer_syntax=syntax)
    got = _pydicom(_read(_save(ds, tmp_path / "o.dcm")))
    assert got.dtype == arr.dtype
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("syntax", LOSSLESS, ids=lambda u: u.name[:40])
def test_rgb_uses_the_colour_transform_where_j2k_has_one(syntax, tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (2, 24, 30, 3), dtype=np.uint8)
    ds = set_pixel_data(_base(), rgb, "RGB", 8, transfer_syntax=syntax)
    assert ds.PhotometricInterpretation == ("RGB" if syntax == JPEGLSLossless else "YBR_RCT")
    np.testing.assert_array_equal(_pydicom(_read(_save(ds, tmp_path / "o.dcm"))), rgb)
    if syntax != JPEGLSLossless:
        plain = set_pixel_data(_base(), rgb, "RGB", 8, transfer_syntax=syntax, mct=False)
        assert plain.PhotometricInterpretation == "RGB"
        np.testing.assert_array_equal(_pydicom(_read(_save(plain, tmp_path / "p.dcm"))), rgb)


def test_threads_give_the_same_bytes():
    arr = _ct(6, 128, 128)
    req = plan(HTJ2KLossless, rows=128, columns=128, samples=1, itemsize=2, signed=True, bits_stored=12,
               photometric="MONOCHROME2")
    assert encode_frames(arr, req, workers=1).frames == encode_frames(arr, req, workers=4).frames


# --- lossy ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("syntax", [HTJ2K, JPEG2000, JPEGLSNearLossless], ids=lambda u: u.name[:40])
def test_lossy_needs_an_explicit_quality(syntax):
    ds = _base()
    with pytest.raises(InvalidPixelData, match="quality="):
        set_pixel_data(ds, _ct(1), "MONOCHROME2", 12, transfer_syntax=syntax)
    assert "PixelData" not in ds
    with pytest.raises(InvalidPixelData, match="lossless only"):
        set_pixel_data(ds, _ct(1), "MONOCHROME2", 12, transfer_syntax=HTJ2KLossless, quality=5)


@pytest.mark.parametrize("syntax,quality", [(HTJ2K, 0.002), (JPEG2000, 60.0), (JPEGLSNearLossless, 3)],
                         ids=["htj2k", "j2k", "jpegls"])
def test_lossy_write_sets_lossy_image_compression(syntax, quality, tmp_path):
    arr = _ct(2, 64, 64, bits=12, signed=False)
    ds = _base()
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = "8.5"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    old_uid = ds.SOPInstanceUID
    set_pixel_data(ds, arr, "MONOCHROME2", 12, transfer_syntax=syntax, quality=quality)
    back = _read(_save(ds, tmp_path / "o.dcm"))
    method = {HTJ2K: "ISO_15444_15", JPEG2000: "ISO_15444_1", JPEGLSNearLossless: "ISO_14495_1"}[syntax]
    assert back.LossyImageCompression == "01" and back.SOPInstanceUID != old_uid
    assert list(back.LossyImageCompressionMethod) == ["ISO_10918_1", method]
    ratio = float(back.LossyImageCompressionRatio[1])
    assert float(back.LossyImageCompressionRatio[0]) == 8.5
    assert ratio == pytest.approx(arr.nbytes / sum(len(f) for f in _fragments(back)), rel=2e-2)  # pads
    got = _pydicom(back).astype(np.int64)
    err = np.abs(got - arr)
    if syntax == JPEGLSNearLossless:
        assert err.max() <= quality and err.max() > 0  # NEAR is the exact bound
    elif syntax == JPEG2000:
        psnr = 20 * np.log10(4095 / np.sqrt(np.mean(err.astype(float) ** 2)))
        assert quality - 1 <= psnr < 90  # the asked PSNR (OpenJPEG's fixed-quality target), and lossy
    else:
        assert 0 < err.mean() < 16  # lossy, and still the image (12-bit data)
    if DCMDUMP:
        assert dcmdump_errors(tmp_path / "o.dcm") == []


def test_first_lossy_write_sets_single_values():
    ds = set_pixel_data(_base(), _ct(1, bits=12, signed=False), "MONOCHROME2", 12, transfer_syntax=HTJ2K, quality=0.002)
    assert ds.LossyImageCompression == "01" and ds.LossyImageCompressionMethod == "ISO_15444_15"
    assert float(ds.LossyImageCompressionRatio) > 1


# --- refusals -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arr,pi,bits,syntax,match", [
    (np.zeros((4, 4), np.uint32), "MONOCHROME2", 20, HTJ2KLossless, "8 or 16-bit"),
    (np.zeros((4, 4, 3), np.int16), "RGB", 12, JPEG2000Lossless, "does not allow RGB"),
    (np.zeros((4, 4), np.uint8), "MONOCHROME2", 1, JPEGLSLossless, "Bits Stored 1"),
    (np.zeros((4, 4, 3), np.uint16), "YBR_FULL", 12, JPEGLSLossless, "does not allow YBR_FULL"),
    (np.zeros((4, 4, 3), np.uint8), "YBR_FULL_422", 8, HTJ2KLossless, "YBR_FULL_422 cannot be encoded"),
    (np.zeros((4, 4), np.float32), "MONOCHROME2", 32, HTJ2KLossless, "Float Pixel Data"),
])
def test_layouts_a_syntax_cannot_hold_are_refused(arr, pi, bits, syntax, match):
    ds = _base()
    kwargs = {"float_pixel_data": True} if arr.dtype.kind == "f" else {}
    with pytest.raises(InvalidPixelData, match=match):
        set_pixel_data(ds, arr, pi, bits, transfer_syntax=syntax, **kwargs)
    assert "PixelData" not in ds


def test_cli_names_cover_every_syntax():
    assert set(NAMES.values()) == {HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K, JPEG2000Lossless, JPEG2000,
                                   JPEGLSLossless, JPEGLSNearLossless}


def test_cuda_without_a_gpu_is_a_clear_error():
    pytest.importorskip("imagecodecs")
    try:
        import cupy  # noqa: F401

        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    with pytest.raises(DeviceUnavailable, match="CuPy is not installed"):
        set_pixel_data(_base(), _ct(1), "MONOCHROME2", 12, transfer_syntax=HTJ2KLossless, device="cuda")


# --- the GPU encoder's contract (stand-in) ----------------------------------------------------------


def _req(syntax, rows=48, cols=40):
    return plan(syntax, rows=rows, columns=cols, samples=1, itemsize=2, signed=False, bits_stored=12,
                photometric="MONOCHROME2")


@pytest.mark.parametrize("failed_as_none", [False, True], ids=["left-out", "none"])
def test_gpu_batch_failures_are_found_frame_by_frame(failed_as_none):
    """nvImageCodec leaves a failed image out of the list (or puts None): the batch is then sent frame by
    frame, and the failed frame, and only that one, is None (encoded on the CPU afterwards)."""
    arr = _ct(4, 48, 40, bits=12, signed=False)
    arr[2, 0, 0] = 1  # the stand-in fails odd first pixels
    arr[[0, 1, 3], 0, 0] = 0
    enc = StandInEncoder(fail=lambda a: a[0, 0] % 2 == 1, failed_as_none=failed_as_none)
    req = _req(HTJ2KLossless)
    out = collect(enc, [standin.as_image(f) for f in arr], params(standin, req), 0)
    assert [b is None for b in out] == [False, False, True, False]
    assert enc.calls[0] == (4, "jpeg2k") and len(enc.calls) == 5
    assert sorted(accepted(out, req)) == [0, 1, 3]
    import imagecodecs

    for i in (0, 1, 3):
        np.testing.assert_array_equal(imagecodecs.htj2k_decode(out[i]), arr[i])


def test_gpu_batch_all_good_is_one_call():
    arr = _ct(3, 48, 40, bits=12, signed=False)
    enc = StandInEncoder()
    out = collect(enc, [standin.as_image(f) for f in arr], params(standin, _req(JPEG2000Lossless)), 0)
    assert len(enc.calls) == 1 and all(out)


def test_gpu_params_follow_the_request():
    p = params(standin, _req(HTJ2KLosslessRPCL, 512, 512))
    j2k = p.jpeg2k_encode_params
    assert p.quality_type == standin.QualityType.LOSSLESS and j2k.reversible and j2k.ht
    assert j2k.prog_order == standin.Jpeg2kProgOrder.RPCL and j2k.bitstream_type == standin.Jpeg2kBitstreamType.J2K
    assert j2k.num_resolutions - 1 >= 3  # 512 / 2**3 = 64
    lossy = params(standin, plan(HTJ2K, rows=8, columns=8, samples=1, itemsize=2, signed=False, bits_stored=12,
                                 photometric="MONOCHROME2", quality=0.002))
    assert lossy.quality_type == standin.QualityType.QUANTIZATION_STEP and lossy.quality_value == 0.002 * 4096
    assert not lossy.jpeg2k_encode_params.reversible


def test_gpu_rpcl_codestream_without_tlm_goes_to_the_cpu():
    """nvImageCodec writes no TLM: its RPCL frames fail the PS3.5 check, so the CPU encodes them; its
    plain HTJ2K Lossless frames are accepted (precision 16 holds Bits Stored 12)."""
    arr = _ct(2, 48, 40, bits=12, signed=False)
    for syntax, kept in ((HTJ2KLosslessRPCL, []), (HTJ2KLossless, [0, 1])):
        req = _req(syntax)
        out = collect(StandInEncoder(), [standin.as_image(f) for f in arr], params(standin, req), 0)
        assert sorted(accepted(out, req)) == kept
        if not kept:
            with pytest.raises(InvalidPixelData, match="TLM"):
                check(out[0], req)


# --- on a GPU ----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("syntax", [HTJ2KLossless, HTJ2KLosslessRPCL, JPEG2000Lossless], ids=lambda u: u.name[:40])
def test_gpu_encode_round_trips(syntax, tmp_path):
    """nvImageCodec encodes a CuPy array; the file decodes (pydicom) to the source bit for bit."""
    import cupy

    arr = _ct(4, 256, 256, bits=12, signed=True)
    req = plan(syntax, rows=256, columns=256, samples=1, itemsize=2, signed=True, bits_stored=12,
               photometric="MONOCHROME2")
    enc = encode_frames(cupy.asarray(arr), req, device="cuda")
    assert enc.backend.startswith("nvimgcodec"), enc.backend
    ds = set_pixel_data(_base(), cupy.asarray(arr), "MONOCHROME2", 12, transfer_syntax=syntax, device="cuda")
    np.testing.assert_array_equal(_pydicom(_read(_save(ds, tmp_path / "g.dcm"))), arr)
    print(f"GPU {syntax.name}: backend {enc.backend}, {enc.nbytes} bytes")


def test_encoded_bytes_are_checked(monkeypatch):
    """A codestream that does not describe the frame is refused, never written."""
    req = _req(HTJ2KLossless)
    bad = _fragments(set_pixel_data(_base(), _ct(1, 40, 48, bits=12, signed=False), "MONOCHROME2", 12,
                                    transfer_syntax=HTJ2KLossless))[0]
    with pytest.raises(InvalidPixelData, match="40x48x1 instead of 48x40x1"):
        check(bad, req)


def test_dataset_round_trip_through_bytes():
    """The dataset written in memory reads back with its offset table (sanity for the helpers above)."""
    ds = set_pixel_data(_base(), _ct(2), "MONOCHROME2", 12, transfer_syntax=HTJ2KLossless)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    assert len(parse_basic_offsets(dcmread(io.BytesIO(buf.getvalue())).PixelData)) == 2
