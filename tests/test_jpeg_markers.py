"""gpudcm.jpeg_markers on every JPEG / JPEG 2000 frame of the corpus and on synthetic marker streams."""

from __future__ import annotations

import struct
import warnings
from functools import lru_cache
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.pixels.utils import _get_jpg_parameters, get_j2k_parameters

from corpus import corpus_files, corpus_id, reference_shape
from gpudcm.errors import InvalidPixelData
from gpudcm.frames import frame_bytes, frame_extents
from gpudcm.jpeg_markers import parse_j2k, parse_jpeg
from gpudcm.routing import J2K_SYNTAXES, JPEG_SYNTAXES
from gpudcm.spec import pixel_spec


# ------------------------------------------------------------------------------------- corpus frames

@lru_cache(maxsize=1)
def jpeg_family_frames() -> tuple:
    """(path, dataset, spec, [frame bytes]) for every JPEG / J2K corpus file gpudcm can split into frames."""
    out = []
    for path in corpus_files():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = dcmread(path)
            except Exception:
                continue
        ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
        if ts not in JPEG_SYNTAXES and ts not in J2K_SYNTAXES:
            continue
        try:
            spec = pixel_spec(ds, source=str(path))
            frames = [bytes(frame_bytes(ds.PixelData, f)) for f in frame_extents(spec, ds.PixelData)]
        except Exception:
            continue
        out.append((path, ds, spec, frames))
    return tuple(out)


def _cases():
    return [pytest.param(c, id=corpus_id(c[0])) for c in jpeg_family_frames()]


def test_corpus_has_jpeg_family_files():
    kinds = {str(spec.transfer_syntax) for _, _, spec, _ in jpeg_family_frames()}
    assert {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.70",
            "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"} <= kinds
    assert sum(len(f) for *_, f in jpeg_family_frames()) >= 40


@pytest.mark.parametrize("case", _cases())
def test_corpus_frames_against_pydicom_and_dataset(case):
    path, ds, spec, frames = case
    decodes = reference_shape(Path(path)) is not None
    is_jpeg = str(spec.transfer_syntax) in JPEG_SYNTAXES
    for i, frame in enumerate(frames):
        if is_jpeg:
            info = parse_jpeg(frame)
            ref = _get_jpg_parameters(frame)
            assert (info.precision, info.rows, info.columns, info.samples, list(info.component_ids)) == (
                ref["precision"], ref["height"], ref["width"], ref["components"], ref["component_ids"]), i
            assert info.jfif == any(v.startswith(b"JFIF") for v in ref.get("app", {}).values())
            samples = info.samples
            if info.lossless:
                assert info.predictor in range(1, 8) and info.point_transform < info.precision
            assert info.precision <= spec.bits_allocated
        else:
            info = parse_j2k(frame)
            ref = get_j2k_parameters(frame)
            assert (info.precision, info.is_signed) == (ref["precision"], ref["is_signed"]), i
            samples = info.components
            assert info.mct in (0, 1) and info.layers >= 1
        if decodes:  # files pydicom decodes agree with their dataset
            assert (info.rows, info.columns, samples) == (ds.Rows, ds.Columns, ds.SamplesPerPixel), i


# ---------------------------------------------------------------------------------- synthetic streams

def seg(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def build_jpeg(*, sof: int = 0xC0, precision: int = 8, rows: int = 16, cols: int = 16,
               comps=((1, 1, 1, 0),), scans=None, dc_tables=None, dri: int = 0, app=(), dht=True,
               entropy: bytes = b"\x12\xff\x00\x34\xff\xd0\x56", eoi: bool = True) -> bytes:
    """A minimal JPEG marker stream (tables are placeholders; only headers are meaningful)."""
    out = b"\xff\xd8"
    for marker, payload in app:
        out += seg(marker, payload)
    if dht:
        tables = sorted({dc for dc in (dc_tables or [0] * len(comps))})
        for th in tables:
            out += seg(0xC4, bytes([th]) + bytes([1] + [0] * 15) + b"\x00")
    if dri:
        out += seg(0xDD, struct.pack(">H", dri))
    out += seg(sof, bytes([precision]) + struct.pack(">HHB", rows, cols, len(comps))
               + b"".join(bytes([cid, h << 4 | v, tq]) for cid, h, v, tq in comps))
    if scans is None:
        dcs = dc_tables or [0] * len(comps)
        ss, se = (1, 0) if sof in (0xC3, 0xC7, 0xCB, 0xCF) else (0, 63)
        scans = [([(c[0], dc, 0) for c, dc in zip(comps, dcs)], ss, se, 0, 0)]
    for sc, ss, se, ah, al in scans:
        out += seg(0xDA, bytes([len(sc)]) + b"".join(bytes([cid, dc << 4 | ac]) for cid, dc, ac in sc)
                   + bytes([ss, se, ah << 4 | al]))
        out += entropy
    return out + (b"\xff\xd9" if eoi else b"")


YCC420 = ((1, 2, 2, 0), (2, 1, 1, 1), (3, 1, 1, 1))
YCC422 = ((1, 2, 1, 0), (2, 1, 1, 1), (3, 1, 1, 1))
RGB444 = ((82, 1, 1, 0), (71, 1, 1, 0), (66, 1, 1, 0))


@pytest.mark.parametrize("comps,expected", [(((1, 1, 1, 0),), "gray"), (YCC420, "420"), (YCC422, "422"),
                                            (RGB444, "444"), (((1, 1, 2, 0), (2, 1, 1, 0), (3, 1, 1, 0)), "440"),
                                            (((1, 4, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0)), "411"),
                                            (((1, 2, 2, 0), (2, 2, 1, 0), (3, 1, 1, 0)), "other")])
def test_subsampling(comps, expected):
    info = parse_jpeg(build_jpeg(comps=comps))
    assert info.subsampling == expected and info.process == "baseline"
    assert info.rgb_ids == (comps is RGB444)


@pytest.mark.parametrize("sof,process", [(0xC0, "baseline"), (0xC1, "extended"), (0xC2, "progressive"),
                                         (0xC3, "lossless"), (0xC5, "hierarchical-extended"),
                                         (0xC7, "hierarchical-lossless"), (0xC9, "arithmetic-extended"),
                                         (0xCA, "arithmetic-progressive"), (0xCB, "arithmetic-lossless")])
def test_processes(sof, process):
    info = parse_jpeg(build_jpeg(sof=sof, precision=12))
    assert info.process == process
    assert info.arithmetic == (sof >= 0xC9)
    assert info.hierarchical == (sof in (0xC5, 0xC7))
    assert info.lossless == (sof in (0xC3, 0xC7, 0xCB))


def test_lossless_fields_and_restart_and_app():
    comps = ((1, 1, 1, 0), (2, 1, 1, 0))
    data = build_jpeg(sof=0xC3, precision=16, comps=comps, dc_tables=[0, 1], dri=7,
                      scans=[([(1, 0, 0), (2, 1, 0)], 6, 0, 0, 2)],
                      app=[(0xE0, b"JFIF\x00\x01\x02"), (0xEE, b"Adobe\x00\x64\x00\x00\x00\x00\x01")])
    info = parse_jpeg(data)
    assert (info.precision, info.predictor, info.point_transform, info.restart_interval) == (16, 6, 2, 7)
    assert info.separate_huffman and info.jfif and info.adobe_transform == 1
    assert info.dht_tables == {(0, 0), (0, 1)}
    same = parse_jpeg(build_jpeg(sof=0xC3, precision=12, comps=comps, dc_tables=[0, 0]))
    assert not same.separate_huffman and same.predictor == 1


def test_multiple_scans_fill_bytes_and_missing_eoi():
    comps = ((1, 1, 1, 0), (2, 1, 1, 0), (3, 1, 1, 0))
    data = build_jpeg(sof=0xC3, comps=comps, scans=[([(c, 0, 0)], 1, 0, 0, 0) for c in (1, 2, 3)], eoi=False)
    assert len(parse_jpeg(data).scans) == 3
    assert len(parse_jpeg(data, all_scans=False).scans) == 1
    filled = data.replace(b"\xff\xda", b"\xff\xff\xff\xda")
    assert len(parse_jpeg(filled).scans) == 3
    dhp = b"\xff\xd8" + seg(0xDE, b"\x08\x00\x10\x00\x10\x01\x01\x11\x00") + build_jpeg()[2:]
    assert parse_jpeg(dhp).hierarchical


def test_jpeg_ls_sof55():
    info = parse_jpeg(build_jpeg(sof=0xF7, precision=12, scans=[([(1, 0, 0)], 0, 0, 0, 0)]))
    assert info.process == "jpeg-ls"


@pytest.mark.parametrize("bad,match", [
    (b"", "SOI"), (b"\x00\x00\x00\x00", "SOI"), (b"\xff\xd8\xff\xd9", "no SOF"),
    (b"\xff\xd8\xff", "ends inside a marker"), (b"\xff\xd8\xff\xc0\x00", "cut off"),
    (b"\xff\xd8\xff\xc0\x00\x40\x08", "claims"), (b"\xff\xd8\x12\x34", "marker expected"),
    (b"\xff\xd8" + seg(0xC0, b"\x08\x00\x10\x00\x10\x02\x01\x11\x00"), "components"),
    (b"\xff\xd8" + seg(0xDA, b"\x01\x01\x00\x00\x3f\x00"), "before any SOF"),
    (b"\xff\xd8" + seg(0xC0, b"\x08\x00\x10\x00\x10\x01\x01\x11\x00"), "no SOS"),
    (b"\xff\xd8" + seg(0xC4, b"\x00\x05"), "DHT"),
])
def test_garbled_jpeg_raises_invalid_pixel_data(bad, match):
    with pytest.raises(InvalidPixelData, match=match):
        parse_jpeg(bad)


def _jpeg_facts(info):
    return (info.sof, info.precision, info.rows, info.columns, info.components, info.restart_interval, info.jfif,
            info.dht_tables, info.scans[:1])


def test_every_truncation_and_byte_flip_is_a_clean_error():
    """Cut anywhere: an InvalidPixelData exactly while the headers up to the first SOS are incomplete, the
    full stream's facts after that (entropy data may be cut). Any byte flipped: an InvalidPixelData or
    facts that hold for the flipped bytes: SOF fields equal to pydicom's own parser on those bytes, the
    restart interval the DRI bytes hold, and the unchanged headers where only entropy data was hit."""
    good = build_jpeg(comps=YCC420, dri=4, app=[(0xE0, b"JFIF\x00\x01\x02")])
    full = parse_jpeg(good)
    sos = good.index(b"\xff\xda")
    headers_end = sos + 2 + int.from_bytes(good[sos + 2 : sos + 4], "big")
    dri = good.index(b"\xff\xdd\x00\x04")
    for n in range(len(good)):
        if n < headers_end:
            with pytest.raises(InvalidPixelData):
                parse_jpeg(good[:n])
        else:
            assert _jpeg_facts(parse_jpeg(good[:n])) == _jpeg_facts(full), n
    raised = parsed = 0
    for i in range(len(good)):
        for v in (0x00, 0xFF, 0x7F):
            flipped = good[:i] + bytes([v]) + good[i + 1:]
            if flipped == good:
                continue
            try:
                info = parse_jpeg(flipped)
            except InvalidPixelData:
                raised += 1
                continue
            parsed += 1
            assert i >= 2, f"SOI flipped at byte {i} parsed"
            ref = _get_jpg_parameters(flipped)
            assert ref, f"byte {i} = {v:#x}: parsed where pydicom's parser finds no SOF"
            assert (info.precision, info.rows, info.columns, info.samples, list(info.component_ids)) == (
                ref["precision"], ref["height"], ref["width"], ref["components"], ref["component_ids"]), (i, v)
            if flipped[dri : dri + 4] == good[dri : dri + 4]:
                assert info.restart_interval == int.from_bytes(flipped[dri + 4 : dri + 6], "big"), (i, v)
            if i >= headers_end:
                assert _jpeg_facts(info) == _jpeg_facts(full), (i, v)
    assert raised > 50 and parsed > 50, (raised, parsed)  # both outcomes exercised


# --------------------------------------------------------------------------------------- JPEG 2000

def build_j2k(*, rows=32, cols=48, comps=((11, False),), mct=0, reversible=True, cap=None, jp2=False,
              offset=(0, 0), sub=(1, 1)) -> bytes:
    siz = struct.pack(">HIIIIIIIIH", 0x4000 if cap is not None else 0, cols + offset[0], rows + offset[1],
                      offset[0], offset[1], cols, rows, 0, 0, len(comps))
    siz += b"".join(bytes([(p - 1) | (0x80 if s else 0), *sub]) for p, s in comps)
    out = b"\xff\x4f" + seg(0x51, siz)
    if cap is not None:
        out += seg(0x50, struct.pack(">I", cap) + b"\x00\x00")
    out += seg(0x52, bytes([0, 2]) + struct.pack(">H", 1) + bytes([mct, 5, 4, 4, 0x40, 1 if reversible else 0]))
    out += seg(0x5C, b"\x40\x00") + b"\xff\x90" + struct.pack(">HHIBB", 10, 0, 0, 0, 1) + b"\xff\x93\x00\x00\xff\xd9"
    if jp2:
        out = b"\x00\x00\x00\x0cjP  \r\n\x87\n" + struct.pack(">I", 20) + b"ftypjp2 \x00\x00\x00\x00jp2 " + \
              struct.pack(">I", len(out) + 8) + b"jp2c" + out
    return out


def test_j2k_fields():
    info = parse_j2k(build_j2k(comps=((12, True),) * 3, mct=1, reversible=False, offset=(3, 5)))
    assert (info.rows, info.columns, info.components, info.precision, info.is_signed) == (32, 48, 3, 12, True)
    assert info.mct == 1 and not info.reversible and not info.high_throughput and not info.subsampled
    ht = parse_j2k(build_j2k(cap=0x00020000, jp2=True, sub=(2, 1)))
    assert ht.high_throughput and ht.jp2 and ht.subsampled and ht.reversible
    assert get_j2k_parameters(build_j2k(comps=((16, True),))) == {"jp2": False, "precision": 16, "is_signed": True}


@pytest.mark.parametrize("bad,match", [
    (b"", "SOC"), (b"\xff\x4f\xff\x51\x00", "cut off"), (b"\xff\x4f\xff\x51\x00\x08" + bytes(6), "too short"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2c"),
])
def test_garbled_j2k(bad, match):
    with pytest.raises(InvalidPixelData, match=match):
        parse_j2k(bad)


def test_j2k_truncations_and_flips_are_clean_errors():
    """Cut anywhere: an InvalidPixelData exactly while the main header (up to the first SOT) is incomplete,
    the full header's facts after that. Any byte flipped: an InvalidPixelData, or the facts the flipped SIZ
    and COD bytes hold (read here from their fixed places in this stream) and pydicom's precision and sign."""
    good = build_j2k(comps=((8, False),) * 3, cap=0x00020000)
    full = parse_j2k(good)
    sot = good.index(b"\xff\x90")
    for n in range(len(good)):
        if n < sot + 2:
            with pytest.raises(InvalidPixelData):
                parse_j2k(good[:n])
        else:
            assert parse_j2k(good[:n]) == full, n
    siz, cod = 6, good.index(b"\xff\x52") + 4  # payloads: SIZ after SOC + marker + length; COD likewise
    raised = parsed = 0
    for i in range(len(good)):
        for v in (0x00, 0xFF):
            flipped = good[:i] + bytes([v]) + good[i + 1:]
            if flipped == good:
                continue
            try:
                info = parse_j2k(flipped)
            except InvalidPixelData:
                raised += 1
                continue
            parsed += 1
            assert i >= 4, f"SOC/SIZ marker flipped at byte {i} parsed"
            _, xs, ys, xo, yo = struct.unpack_from(">HIIII", flipped, siz)
            ssiz = [flipped[siz + 36 + 3 * c] for c in range(3)]
            assert (info.rows, info.columns, info.components) == (ys - yo, xs - xo, 3), (i, v)
            assert info.precisions == tuple((s & 0x7F) + 1 for s in ssiz), (i, v)
            assert info.signed == tuple(bool(s & 0x80) for s in ssiz), (i, v)
            if flipped[cod - 4 : cod] == good[cod - 4 : cod]:
                c = flipped[cod : cod + 10]
                assert (info.progression, info.layers, info.mct, info.levels, info.reversible) == (
                    c[1], c[2] << 8 | c[3], c[4], c[5], c[9] == 1), (i, v)
            ref = get_j2k_parameters(flipped)
            assert (info.precision, info.is_signed) == (ref["precision"], ref["is_signed"]), (i, v)
    assert raised > 20 and parsed > 20, (raised, parsed)
    no_cod = good.replace(b"\xff\x52", b"\xff\x64")  # COD turned into a comment
    with pytest.raises(InvalidPixelData, match="no COD"):
        parse_j2k(no_cod)
