"""The slide reader's CPU tile path: the registry's decision remembered per JPEG header class
(gpudcm.codecs.frame_classes) and libjpeg-turbo decoding straight into the output frame.

Truth: ``frame_info`` / ``choose`` on each frame (what the registry decides without the memory), and
pydicom's decode of each frame on its own (a one-frame file), so an instance whose tiles differ in header
class shows that the rule stays per tile."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from pydicom.pixels import pixel_array

from gpudcm import codecs
from gpudcm.codecs import frame_classes
from gpudcm.codecs import imagecodecs_codecs as icc
from gpudcm.jpeg_markers import first_scan_end
from gpudcm.reader import open_pixels
from gpudcm.tolerance import agreement
from gpudcm.wsi.tiles import FrameReader, decode_tiles
from lossy_jpeg_data import lossy_jpeg_dicom

imagecodecs = pytest.importorskip("imagecodecs")
TURBO = "imagecodecs-libjpeg-turbo"
SIZE = 48


def _image(samples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    a = np.stack([128 + 90 * np.sin(x / (5 + c) + y / (9 + c)) for c in range(samples)], -1) + rng.normal(0, 25, (SIZE, SIZE, samples))
    a = np.clip(a, 0, 255).astype(np.uint8)
    return a[..., 0] if samples == 1 else a


def _pillow(arr: np.ndarray, subsampling: int = 0, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality, subsampling=subsampling)
    return buf.getvalue()


def _stored_rgb(seed: int, quality: int = 90) -> bytes:  # component ids R, G, B: pydicom returns them as stored
    return imagecodecs.jpeg8_encode(_image(3, seed), level=quality, colorspace="RGB", outcolorspace="RGB", subsampling="444")


# one RGB instance whose tiles differ in header class: stored RGB (libjpeg-turbo), JFIF YCbCr 4:4:4 and 4:2:0
# (pydicom's plugin), the same classes again, and stored RGB at another quality (another header, same class)
MIXED = [_stored_rgb(1), _pillow(_image(3, 2), 0), _pillow(_image(3, 3), 2), _stored_rgb(4), _pillow(_image(3, 5), 2),
         _stored_rgb(6, quality=70)]


def _one_frame_truth(tmp_path, frame: bytes, k: int) -> np.ndarray:
    path = lossy_jpeg_dicom(tmp_path / f"one{k}.dcm", [frame], SIZE, SIZE, 3, "RGB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pixel_array(str(path), raw=True)


def test_first_scan_end():
    data = _pillow(_image(1, 0))
    sos = data.index(b"\xff\xda")
    end = sos + 2 + (data[sos + 2] << 8 | data[sos + 3])
    assert first_scan_end(data) == end
    assert first_scan_end(memoryview(data)) == end
    filled = data[:sos] + b"\xff\xff" + data[sos:]  # fill bytes before a marker
    assert first_scan_end(filled) == end + 2
    assert first_scan_end(data[: end - 1]) is None  # the SOS segment cut off
    assert first_scan_end(data[:sos]) is None  # no SOS
    assert first_scan_end(b"\x00" + data[1:]) is None
    assert first_scan_end(b"\xff\xd8\xff\xd9" + data[4:]) is None  # EOI before any scan
    assert first_scan_end(data[:2] + b"\x12" + data[3:]) is None  # no marker where one must be


def test_frame_classes_decide_each_frame_as_the_registry(tmp_path, monkeypatch):
    path = lossy_jpeg_dicom(tmp_path / "mixed.dcm", MIXED, SIZE, SIZE, 3, "RGB")
    with open_pixels(str(path)) as r:
        spec, frames = r.spec, [bytes(r.frame_bytes(i)) for i in range(len(MIXED))]
    want = [(codecs.frame_info(spec, f), codecs.choose(spec, codecs.frame_info(spec, f))[0]) for f in frames]
    assert [b.name == TURBO for _, b in want] == [True, False, False, True, False, True]  # the classes differ

    parses = []
    real = frame_classes.frame_info
    monkeypatch.setattr(frame_classes, "frame_info", lambda s, d: parses.append(len(d)) or real(s, d))
    classes = frame_classes.FrameClasses(spec)
    for _ in range(3):
        for f, (info, backend) in zip(frames, want):
            got_info, got_backend = classes.decide(f)
            assert got_backend is backend
            assert {k: v for k, v in got_info.items()} == info
    # one parse per distinct header (stored RGB at two qualities, the two Pillow classes, and the second
    # 4:2:0 tile shares the first's header), none for the frames seen before
    heads = {f[: first_scan_end(f)] for f in frames}
    assert len(parses) == len(classes) == len(heads) == 4


def _spec(tmp_path, data: bytes, samples: int):
    path = lossy_jpeg_dicom(tmp_path / f"s{samples}.dcm", [data], SIZE, SIZE, samples,
                            "MONOCHROME2" if samples == 1 else "RGB")
    with open_pixels(str(path)) as r:
        return r.spec


def test_frame_classes_unparsable_headers_and_the_bound(tmp_path, monkeypatch):
    data = _pillow(_image(1, 0))
    spec = _spec(tmp_path, data, 1)
    classes = frame_classes.FrameClasses(spec)
    broken = data[: data.index(b"\xff\xda")]  # no scan: decided from the whole frame every time, never remembered
    for _ in range(2):
        assert classes.decide(broken) == (codecs.frame_info(spec, broken), codecs.choose(spec, codecs.frame_info(spec, broken))[0])
    assert len(classes) == 0
    monkeypatch.setattr(frame_classes, "MAX_CLASSES", 1)
    other = _pillow(_image(1, 1), quality=60)
    for f in (data, other, other):
        assert classes.decide(f)[1].name == TURBO
    assert len(classes) == 1  # past MAX_CLASSES: decided, not remembered


def test_mixed_instance_default_decodes_per_tile(tmp_path):
    """The default CPU tile path on an instance whose tiles differ in class: pydicom's own values for the
    pydicom-class tiles, libjpeg-turbo's (within the tolerance of pydicom's) for the proven ones."""
    path = lossy_jpeg_dicom(tmp_path / "mixed.dcm", MIXED, SIZE, SIZE, 3, "RGB")
    reader = FrameReader(str(path))
    order = [5, 0, 2, 1, 4, 3, 0, 2]
    for threads in (1, 2):
        out = np.empty((len(order), SIZE, SIZE, 3), np.uint8)
        decode_tiles(reader, order, "cpu", out, raw=True, threads=threads)
        for k, i in enumerate(order):
            truth = _one_frame_truth(tmp_path, MIXED[i], i)
            if codecs.choose(reader.spec, codecs.frame_info(reader.spec, MIXED[i]))[0].name == TURBO:
                np.testing.assert_array_equal(out[k], imagecodecs.jpeg8_decode(MIXED[i], colorspace="RGB", outcolorspace="RGB"))
                assert agreement(out[k], truth, reader.spec.transfer_syntax).ok
            else:
                np.testing.assert_array_equal(out[k], truth, err_msg=f"tile {k} (frame {i})")
    assert len(reader.classes) == 4  # kept on the instance's reader


def test_turbo_decodes_into_the_frame(tmp_path):
    for samples, data in ((1, _pillow(_image(1, 0))), (3, _stored_rgb(1))):
        spec = _spec(tmp_path, data, samples)
        info = codecs.frame_info(spec, data)
        out = np.zeros(spec.frame_shape, np.uint8)
        assert icc.jpeg_decode_into(data, spec, info, out)
        np.testing.assert_array_equal(out, icc.jpeg_decode(data, spec, info))
        wide = np.zeros((SIZE, 2 * SIZE, samples), np.uint8)[:, ::2].reshape((SIZE, SIZE, samples)[: len(spec.frame_shape)])
        assert not wide.flags.c_contiguous and not icc.jpeg_decode_into(data, spec, info, wide)
        assert not icc.jpeg_decode_into(data, spec, info, np.zeros(spec.frame_shape, np.uint16))
        assert not icc.jpeg_decode_into(data, spec, info, np.zeros(spec.frame_shape, np.int8))
        smaller = _pillow(_image(samples, 2)[:40])
        with pytest.raises(ValueError):  # a frame of another size than the SOF says: imagecodecs refuses `out`
            icc.jpeg_decode_into(smaller, spec, codecs.frame_info(spec, smaller), out)
        # the registry (libjpeg-turbo for both classes) decodes straight into `out`
        got = np.zeros(spec.frame_shape, np.uint8)
        assert codecs.decode_frame(spec, data, out=got, raw=True) is got
        np.testing.assert_array_equal(got, out)


# ------------------------------------------------------------------------------- tile bytes, run by run

def _padded(frames: list[bytes]) -> list[bytes]:  # as stored: each frame padded to an even length
    return [f + b"\0" * (len(f) % 2) for f in frames]


def _frames_file(tmp_path, frames: list[bytes], fragments: int = 1) -> str:
    from pydicom import dcmread
    from pydicom.encaps import encapsulate

    path = lossy_jpeg_dicom(tmp_path / f"f{fragments}.dcm", frames, SIZE, SIZE, 1, "MONOCHROME2")
    if fragments > 1:
        ds = dcmread(path)
        ds.PixelData = encapsulate(frames, fragments_per_frame=fragments, has_bot=True)
        ds.save_as(path)
    return str(path)


def _counting_reads(monkeypatch):
    from gpudcm.reader import PixelReader

    reads = []
    real = PixelReader.read_range
    monkeypatch.setattr(PixelReader, "read_range", lambda self, a, b: reads.append((a, b)) or real(self, a, b))
    return reads


def test_tile_bytes_read_runs_of_neighbours_once(tmp_path, monkeypatch):
    from gpudcm.wsi import tiles

    frames = [_pillow(_image(1, s)) for s in range(10)]
    path = _frames_file(tmp_path, frames)
    frames = _padded(frames)
    reads = _counting_reads(monkeypatch)
    monkeypatch.setattr(tiles, "READ_GAP", 64)  # less than a frame here: a frame not asked for is not read through
    reader = FrameReader(path)
    order = [7, 2, 3, 9, 2, 0, 8]  # out of file order, a repeat; frames 1, 4-6 not asked for
    got = reader.tile_bytes(order)
    assert reads == []  # nothing read before a frame is asked for
    assert [bytes(got[j]) for j in range(len(order))] == [frames[i] for i in order]
    # runs of the frames asked for: 0 | 2, 3 | 7, 8, 9 (a frame not asked for breaks a run)
    with open_pixels(path) as r:
        ext = [r.frame(i)[0] for i in range(10)]
    gap = lambda a, b: ext[b].offset - ext[a].end  # noqa: E731
    assert all(0 < gap(i, i + 1) <= tiles.READ_GAP < len(frames[i]) for i in range(9))  # item tags between neighbours
    assert sorted(reads) == sorted({(ext[0].offset, ext[0].end), (ext[2].offset, ext[3].end), (ext[7].offset, ext[9].end)})
    assert reader.read(order) == [frames[i] for i in order]
    reads.clear()
    monkeypatch.setattr(tiles, "READ_GAP", 4096)  # the default: small frames between are read through
    assert [bytes(b) for b in reader.tile_bytes([0, 2])] == [frames[0], frames[2]]
    assert reads == [(ext[0].offset, ext[2].end)]

    reads.clear()
    monkeypatch.setattr(tiles, "READ_SPAN", 2 * max(len(f) for f in frames) + 8)  # at most two frames a read
    assert [bytes(b) for b in reader.tile_bytes(list(range(10)))] == frames
    assert len(reads) == 5 and all(b - a <= tiles.READ_SPAN for a, b in reads)
    reads.clear()
    monkeypatch.setattr(tiles, "READ_GAP", 0)  # the item tags between frames are more than 0 bytes: one read each
    assert [bytes(b) for b in reader.tile_bytes(list(range(10)))] == frames and len(reads) == 10


def test_tile_bytes_from_threads_and_of_fragmented_frames(tmp_path, monkeypatch):
    frames = [_pillow(_image(1, s)) for s in range(12)]
    reads = _counting_reads(monkeypatch)
    for fragments in (1, 3):
        path = _frames_file(tmp_path, frames, fragments)
        reads.clear()
        got = FrameReader(path).tile_bytes(list(range(12)))
        seen = codecs.thread_map(lambda j: bytes(got[j]), list(range(12)) * 3, 2)  # each run read once
        assert [s.rstrip(b"\0") for s in seen] == [f.rstrip(b"\0") for f in frames] * 3
        assert len(reads) == (1 if fragments == 1 else 12 * 3)  # fragments: a frame is a run of its own
        # the default tile path decodes them into the frames libjpeg-turbo gives (grey: the proven class)
        out = np.empty((12, SIZE, SIZE), np.uint8)
        decode_tiles(FrameReader(path), list(range(12)), "cpu", out, threads=2)
        np.testing.assert_array_equal(out, np.stack([imagecodecs.jpeg8_decode(f) for f in frames]))


def test_a_tile_that_is_not_the_instances_size_raises(tmp_path):
    """The default path's direct decode refuses a tile whose SOF disagrees with the instance; the registry's
    fallback (pydicom's plugin) then decides: a DecodeError, never a half-written tile."""
    from gpudcm.errors import DecodeError

    good, bad = _pillow(_image(1, 0)), _pillow(_image(1, 1)[:40])
    path = lossy_jpeg_dicom(tmp_path / "bad.dcm", [good, bad], SIZE, SIZE, 1, "MONOCHROME2")
    for threads in (1, 2):
        out = np.empty((2, SIZE, SIZE), np.uint8)
        with pytest.raises(DecodeError):
            decode_tiles(FrameReader(str(path)), [0, 1], "cpu", out, threads=threads)


def test_libjpeg_turbo_failing_leaves_the_tile_to_pydicom(tmp_path, monkeypatch):
    """A tile libjpeg-turbo fails on (here: made to fail) goes to pydicom's plugin, as the registry's
    fallback says: pydicom's values, not an error."""
    frames = [_pillow(_image(1, s)) for s in range(3)]
    path = lossy_jpeg_dicom(tmp_path / "grey.dcm", frames, SIZE, SIZE, 1, "MONOCHROME2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        truth = pixel_array(str(path))

    def failing(*args, **kw):
        raise RuntimeError("libjpeg-turbo refuses the stream")

    monkeypatch.setattr(imagecodecs, "jpeg8_decode", failing)
    for threads in (1, 2):
        out = np.zeros((3, SIZE, SIZE), np.uint8)
        decode_tiles(FrameReader(str(path)), [0, 1, 2], "cpu", out, threads=threads)
        np.testing.assert_array_equal(out, truth)


# ------------------------------------------------------------------------------- tiles decoded in place

@pytest.fixture(scope="module")
def grid_pyramids(tmp_path_factory):
    from tests.wsi_data import make_pyramid

    cases = {"jpeg-rgb": dict(codec="jpeg"), "jpeg-mono-sparse": dict(codec="jpeg", samples=1, sparse=True,
                                                                     missing={0: {(1, 1)}}),
             "native-rgb-concat": dict(codec="native", concatenations=2)}
    return {name: make_pyramid(tmp_path_factory.mktemp(name), levels=1, seed=k, **kw) for k, (name, kw) in enumerate(cases.items())}


def _placed_into(monkeypatch):
    """The output buffers the CPU tile decoders are handed (addresses of the first byte)."""
    from gpudcm.wsi import tiles

    seen = []
    real = tiles.cpu_tile_decoder

    def spying(spec, **kw):
        decode, converted = real(spec, **kw)
        return (lambda data, out: seen.append(None if out is None else out.__array_interface__["data"][0])
                or decode(data, out)), converted

    monkeypatch.setattr(tiles, "cpu_tile_decoder", spying)
    return seen


def _turbo_canvas(pyr, padded_shape) -> np.ndarray:
    """Level 0 from libjpeg-turbo's decode of each frame (its own YCbCr -> RGB: what exact=False documents,
    wsidicom's values), placed by the generator's record; white where no frame is."""
    canvas = np.full(padded_shape, 255, np.uint8)
    for f in [f for f in pyr.files if f.level == 0]:
        th, tw = f.tile
        with open_pixels(str(f.path)) as r:
            for i, (c, row, _, _) in enumerate(f.frame_tiles):
                tile = imagecodecs.jpeg8_decode(bytes(r.frame_bytes(i)))
                canvas[row * th : (row + 1) * th, c * tw : (c + 1) * tw] = tile.reshape(th, tw, -1)
    return canvas


def _inside(arr: np.ndarray, addresses: list) -> int:
    start = arr.__array_interface__["data"][0]
    return sum(a is not None and start <= a < start + arr.nbytes for a in addresses)


@pytest.mark.parametrize("name", ["jpeg-rgb", "jpeg-mono-sparse", "native-rgb-concat"])
@pytest.mark.parametrize("exact", [None, True, False])
def test_tile_sized_patches_on_the_grid_are_decoded_in_place(grid_pyramids, name, exact, monkeypatch):
    from tests.test_wsi import truth_canvas

    import gpudcm.wsi as wsi

    pyr = grid_pyramids[name]
    slide = wsi.open(pyr.paths)
    lv = slide.levels[0]
    tw, th = lv.tile_size
    cols, rows = lv.grid
    canvas = truth_canvas(pyr, 0)
    H, W = canvas.shape[:2]
    padded = np.full((rows * th, cols * tw, pyr.samples), 255, np.uint8)
    padded[:H, :W] = canvas
    turbo = pyr.codec == "jpeg" and exact is False
    if turbo:
        padded[:H, :W] = _turbo_canvas(pyr, padded.shape)[:H, :W]
    # every tile (the edge ones reach past the matrix: background there), one twice, one off the grid
    locs = [(c * tw, r * th) for r in range(rows) for c in range(cols)] + [(tw, 0), (5, 3)]
    seen = _placed_into(monkeypatch)
    out = np.zeros((len(locs), th, tw, pyr.samples), np.uint8)
    got = slide.read_regions(locs, 0, (tw, th), device="cpu", exact=exact, out=out)
    assert got is out
    for (x, y), patch in zip(locs, got):
        want = np.full((th, tw, pyr.samples), 255, np.uint8)
        inside = padded[y : min(y + th, H), x : min(x + tw, W)]
        want[: inside.shape[0], : inside.shape[1]] = inside
        if pyr.codec == "jpeg" and exact is None and pyr.samples == 1:  # the default's libjpeg-turbo (grey)
            assert agreement(patch, want, lv.transfer_syntax).ok, (x, y)
        else:
            np.testing.assert_array_equal(patch, want, err_msg=f"patch at {(x, y)}")
    # every frame decoded once; those wholly inside the matrix straight into the output, not a scratch buffer
    whole = sum(1 for (c, r, _, _) in lv.tiles if (c + 1) * tw <= W and (r + 1) * th <= H)
    assert len(seen) == len(lv.tiles) and _inside(out, seen) == whole > 0
    # a region one tile wide: its whole tiles go straight into the output too
    seen.clear()
    column = np.zeros((H, tw, pyr.samples), np.uint8)
    slide.read_region((tw, 0), 0, (tw, H), device="cpu", exact=exact, out=column)
    np.testing.assert_array_equal(column, slide.read_region((0, 0), 0, (3 * tw, H), device="cpu", exact=exact)[:, tw : 2 * tw])
    present = [r for (c, r, _, _) in lv.tiles if c == 1]
    assert _inside(column, seen[: len(present)]) == sum(1 for r in present if (r + 1) * th <= H) > 0
