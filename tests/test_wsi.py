"""Whole-slide pyramids: levels, tile maps, regions and tiles against two truths.

Exact truth: each file's frames as pydicom decodes them (``pydicom.pixels.pixel_array``), placed at the
tile position the generator wrote them for (tests/wsi_data.py), missing tiles white. Second truth:
wsidicom's ``read_region`` on the same files (lossy JPEG: within 5 by default, pydicom's libjpeg against
libjpeg-turbo; equal with ``exact=False``; others exact). TILED_FULL focal planes / optical paths: pydicom's
frames placed by the standard's frame order, and wsidicom's read_region for that z / path.
The device path runs through the contract stand-ins (HostOps, nvJPEG / nvImageCodec stand-ins).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.pixels import pixel_array

import gpudcm.wsi as wsi
from gpudcm.errors import GpudcmError, InvalidPixelData
from gpudcm.tolerance import agreement
from jpeg_refs import assert_device_agrees
from tests.harness.host_ops import HostOps
from tests.wsi_data import make_pyramid

CASES = {
    "jpeg-rgb-full": dict(codec="jpeg"),
    "jpeg-mono-sparse": dict(codec="jpeg", samples=1, sparse=True, missing={0: {(1, 1), (4, 0)}, 1: {(0, 0)}}),
    "j2k-rgb-sparse": dict(codec="j2k", sparse=True, missing={0: {(0, 0), (5, 4)}, 2: {(1, 0)}}),
    "j2k-mono-full": dict(codec="j2k", samples=1, tile=(48, 48)),
    "htj2k-rgb-concat": dict(codec="htj2k", concatenations=3),
    "htj2k-mono-sparse": dict(codec="htj2k", samples=1, sparse=True, missing={1: {(2, 2)}}),
    "native-rgb-planes-paths": dict(codec="native", focal_planes=2, optical_paths=2, size=(200, 250)),
    "native-rgb-sparse-planes": dict(codec="native", sparse=True, focal_planes=2, missing={0: {(1, 1)}}, size=(200, 250)),
}


@pytest.fixture(scope="module")
def pyramids(tmp_path_factory):
    return {name: make_pyramid(tmp_path_factory.mktemp(name), seed=k, **kw) for k, (name, kw) in enumerate(CASES.items())}


def _pydicom_frames(path) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        arr = pixel_array(str(path))
        n = int(dcmread(path, stop_before_pixels=True).get("NumberOfFrames", 1))
    if n == 1:
        arr = arr[None]
    return arr if arr.ndim == 4 else arr[..., None]


def truth_canvas(pyr, level: int, z: int = 0, p: int = 0) -> np.ndarray:
    """The level's total pixel matrix from pydicom's frames, placed by the generator's record."""
    files = [f for f in pyr.files if f.level == level]
    rows, cols = files[0].total
    th, tw = files[0].tile
    grid = (-(-rows // th) * th, -(-cols // tw) * tw)
    canvas = np.full((*grid, pyr.samples), 255, np.uint8)
    for f in files:
        frames = _pydicom_frames(f.path)
        for frame, (c, r, fz, fp) in zip(frames, f.frame_tiles):
            if (fz, fp) == (z, p):
                canvas[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = frame
    return canvas[:rows, :cols]


def _regions(size):
    W, H = size
    return [((0, 0), (W, H)), ((7, 5), (W // 2, H // 3)), ((W - 30, H - 20), (30, 20)), ((W // 3, 1), (1, 1)),
            ((W - 10, H - 10), (50, 40)), ((-5, -3), (20, 20))]


@pytest.mark.parametrize("name", list(CASES))
def test_levels(pyramids, name):
    pyr = pyramids[name]
    slide = wsi.open(pyr.paths[0].parent)
    kw = CASES[name]
    assert len(slide.levels) == 3
    for k, lv in enumerate(slide.levels):
        rows, cols = pyr.images[k].shape[:2]
        assert lv.size == (cols, rows)
        assert lv.tile_size == kw.get("tile", (64, 80))[::-1]
        assert lv.pixel_spacing == pytest.approx((0.00025 * 2**k,) * 2)
        assert lv.sparse == kw.get("sparse", False)
        assert lv.optical_paths == [str(i) for i in range(kw.get("optical_paths", 1))]
        assert len(lv.focal_planes) == kw.get("focal_planes", 1)
        assert lv.missing == len(pyr.missing.get(k, ())) * kw.get("focal_planes", 1) * kw.get("optical_paths", 1) * (1 if kw.get("sparse") else 0)
        assert lv.downsample == pytest.approx(2**k, rel=0.02)
    assert slide.dimensions == slide.levels[0].size


@pytest.mark.parametrize("name", list(CASES))
def test_regions_equal_pydicom_tiles_placed(pyramids, name):
    pyr = pyramids[name]
    slide = wsi.open(pyr.paths)
    kw = CASES[name]
    for level in range(3):
        for z in range(kw.get("focal_planes", 1)):
            for p in range(kw.get("optical_paths", 1)):
                canvas = truth_canvas(pyr, level, z, p)
                H, W = canvas.shape[:2]
                for (x, y), (w, h) in _regions((W, H)):
                    got = slide.read_region((x, y), level, (w, h), device="cpu", focal_plane=z, optical_path=str(p))
                    want = canvas[max(y, 0) : y + h, max(x, 0) : x + w]
                    assert got.shape == want.shape and got.dtype == want.dtype
                    if pyr.codec == "jpeg":  # default: libjpeg-turbo on proven (grey) tiles, within the tolerance
                        agree = agreement(got, want, slide.levels[level].transfer_syntax)
                        assert agree.ok, f"{name} level {level} region {(x, y, w, h)}: {agree}"
                        got = slide.read_region((x, y), level, (w, h), device="cpu", exact=True)  # pydicom's plugin
                    np.testing.assert_array_equal(got, want, err_msg=f"{name} level {level} region {(x, y, w, h)}")
                    padded = slide.read_region((x, y), level, (w, h), device="cpu", focal_plane=z, optical_path=p,
                                               clip=False, exact=True)
                    assert padded.shape == (h, w, pyr.samples)
                    oy, ox = max(y, 0) - y, max(x, 0) - x
                    np.testing.assert_array_equal(padded[oy : oy + want.shape[0], ox : ox + want.shape[1]], want)
                    outside = np.ones((h, w), bool)
                    outside[oy : oy + want.shape[0], ox : ox + want.shape[1]] = False
                    assert (padded[outside] == 255).all()


def test_missing_tiles_are_background(pyramids):
    pyr = pyramids["j2k-rgb-sparse"]
    slide = wsi.open(pyr.paths)
    tiles = slide.read_tiles(0, [(0, 0), (1, 0), (5, 4)], device="cpu")
    assert (tiles[0] == 255).all() and (tiles[2] == 255).all()
    assert not (tiles[1] == 255).all()


@pytest.mark.parametrize("name", ["jpeg-rgb-full", "htj2k-rgb-concat", "jpeg-mono-sparse"])
def test_read_tiles_are_pydicom_frames(pyramids, name):
    pyr = pyramids[name]
    slide = wsi.open(pyr.paths)
    for f in [f for f in pyr.files if f.level == 0]:
        frames = _pydicom_frames(f.path)
        got = slide.read_tiles(0, [t[:2] for t in f.frame_tiles], device="cpu", exact=True)
        np.testing.assert_array_equal(got, frames)
        fast = slide.read_tiles(0, [t[:2] for t in f.frame_tiles], device="cpu")
        assert agreement(fast, frames, slide.levels[0].transfer_syntax).ok


@pytest.mark.parametrize("name", [n for n in CASES if "planes" not in n])
def test_regions_against_wsidicom(pyramids, name, record_property):
    wsidicom = pytest.importorskip("wsidicom")
    pyr = pyramids[name]
    slide = wsi.open(pyr.paths)
    means = []
    with wsidicom.WsiDicom.open(pyr.paths) as ref_slide:
        for level in range(3):
            W, H = slide.levels[level].size
            absent = np.zeros((H, W), bool)  # wsidicom paints missing MONOCHROME2 tiles black, we paint white
            th, tw = pyr.files[0].tile
            for c, r in pyr.missing.get(level, ()):
                absent[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = True
            for (x, y), (w, h) in _regions((W, H))[:4]:
                ours = slide.read_region((x, y), level, (w, h), device="cpu")
                theirs = np.asarray(ref_slide.read_region((x, y), level, (w, h), as_array=True)).reshape(ours.shape)
                keep = ~absent[y : y + h, x : x + w] if pyr.samples == 1 else np.ones((h, w), bool)
                diff = np.abs(ours.astype(int) - theirs.astype(int))[keep]
                if not diff.size:  # only missing tiles in the box
                    continue
                if pyr.codec == "jpeg":
                    # pydicom's libjpeg 9 against wsidicom's libjpeg-turbo: IDCT and upsampling differ by up
                    # to 5 levels (measured in issue 16; 4 here): the libraries, not the placement (exact=False is equal)
                    assert diff.max() <= 5
                    means.append(diff.mean())
                    fast = slide.read_region((x, y), level, (w, h), device="cpu", exact=False)
                    np.testing.assert_array_equal(fast[keep], theirs[keep])
                else:
                    assert diff.max() == 0
    if means:
        record_property("wsidicom_mean_abs_diff", float(np.mean(means)))


def test_region_errors(pyramids):
    slide = wsi.open(pyramids["jpeg-rgb-full"].paths)
    W, H = slide.dimensions
    with pytest.raises(wsi.RegionOutOfBounds):
        slide.read_region((W, 0), 0, (10, 10), device="cpu")
    with pytest.raises(wsi.RegionOutOfBounds):
        slide.read_region((-20, -20), 0, (10, 10), device="cpu")
    with pytest.raises(GpudcmError):
        slide.read_region((0, 0), 3, (10, 10), device="cpu")
    with pytest.raises(GpudcmError):
        slide.read_region((0, 0), 0, (0, 10), device="cpu")
    with pytest.raises(GpudcmError):
        slide.read_region((0, 0), 0, (10, 10), device="cpu", focal_plane=1)
    with pytest.raises(GpudcmError):
        slide.read_region((0, 0), 0, (10, 10), device="cpu", optical_path="nope")
    with pytest.raises(wsi.RegionOutOfBounds):
        slide.read_tiles(0, [(99, 0)], device="cpu")
    out = np.empty((10, 10, 3), np.uint8)
    assert slide.read_region((0, 0), 0, (10, 10), device="cpu", out=out) is out
    with pytest.raises(GpudcmError):
        slide.read_region((0, 0), 0, (10, 10), device="cpu", out=np.empty((10, 10), np.uint8))


def test_misaligned_sparse_frame_is_refused(tmp_path):
    pyr = make_pyramid(tmp_path, codec="native", sparse=True, levels=1, size=(128, 160))
    ds = dcmread(pyr.paths[0])
    ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSlideSequence[0].ColumnPositionInTotalImagePixelMatrix = 7
    ds.save_as(pyr.paths[0])
    with pytest.raises(InvalidPixelData, match="tile grid"):
        wsi.open(pyr.paths)


def test_lying_number_of_frames_is_refused(tmp_path):
    pyr = make_pyramid(tmp_path, codec="jpeg", levels=1, size=(128, 160))
    ds = dcmread(pyr.paths[0])
    ds.NumberOfFrames = 10**9
    ds.save_as(pyr.paths[0])
    with pytest.raises(InvalidPixelData, match="Number of Frames"):
        wsi.open(pyr.paths)


def test_missing_frames_are_refused_when_read(tmp_path):
    pyr = make_pyramid(tmp_path, codec="jpeg", levels=1, size=(128, 160))
    ds = dcmread(pyr.paths[0])
    ds.NumberOfFrames = int(ds.NumberOfFrames) + 2  # the tile map expects frames the file does not hold
    ds.TotalPixelMatrixRows = 256
    ds.save_as(pyr.paths[0])
    slide = wsi.open(pyr.paths)
    with pytest.raises(GpudcmError):
        slide.read_region((0, 0), 0, (160, 256), device="cpu")


def test_not_a_slide(tmp_path):
    from tests.datagen import generate_all

    cases = generate_all(tmp_path)
    with pytest.raises(GpudcmError, match="no whole-slide"):
        wsi.open([c.path for c in cases[:2]])


@pytest.mark.parametrize("lab,rgb", [((65535, 32896, 32896), (255, 255, 255)), ((0, 32896, 32896), (0, 0, 0)),
                                     # sRGB red in ICC PCS (D50) CIELab: L* 54.29, a* 80.80, b* 69.89
                                     ((35579, 53661, 50857), (255, 0, 0))])
def test_recommended_absent_pixel_cielab(tmp_path, lab, rgb):
    pyr = make_pyramid(tmp_path, codec="native", sparse=True, levels=1, size=(128, 160), missing={0: {(0, 0)}},
                       background_lab=lab)
    tile = wsi.open(pyr.paths).read_tiles(0, [(0, 0)], device="cpu")[0]
    assert np.abs(tile.astype(int) - np.array(rgb)).max() <= 1


# -- the device path through the stand-ins ---------------------------------------------------------------

def _counting_ops():
    """HostOps (GPU routes on, tests/harness/standins.py decoding as nvJPEG / nvImageCodec do), with each
    decoder call's batch size recorded."""
    ops = HostOps()
    calls = []
    ops.jpeg_decoders = {k: (lambda f, *a, _fn=fn, _k=k: calls.append((_k, len(f))) or _fn(f, *a))
                         for k, fn in HostOps.jpeg_decoders.items()}
    return ops, calls


@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("native")])
def test_device_path_through_stand_ins(pyramids, name):
    pyr = pyramids[name]
    slide = wsi.open(pyr.paths)
    ts = slide.levels[0].transfer_syntax
    ops, calls = _counting_ops()
    routed = 0
    for level in range(3):
        canvas = truth_canvas(pyr, level)
        H, W = canvas.shape[:2]
        for (x, y), (w, h) in _regions((W, H)):
            infos = []
            got = slide.read_region((x, y), level, (w, h), device="cuda", ops=ops, infos=infos)
            want = canvas[max(y, 0) : y + h, max(x, 0) : x + w]
            alt = slide.read_region((x, y), level, (w, h), device="cpu", exact=False)  # libjpeg-turbo
            # YCbCr tiles converted to RGB: nvJPEG's integer IDCT is 1 off in Y and Cb, 3 after pydicom's
            # conversion (tests/jpeg_refs.py DEVICE_YCBCR_RGB_MAX)
            assert_device_agrees(got, want, ts, alt=alt, ycbcr_rgb=pyr.codec == "jpeg" and pyr.samples == 3)
            assert all(i.backend in ("nvjpeg", "j2k") and i.fallback_from is None for i in infos), infos[:2]
            routed += len(infos)
            padded = slide.read_region((x, y), level, (w, h), device="cuda", ops=ops, clip=False)
            oy, ox = max(y, 0) - y, max(x, 0) - x
            np.testing.assert_array_equal(padded[oy : oy + want.shape[0], ox : ox + want.shape[1]], got)
            outside = np.ones((h, w), bool)
            outside[oy : oy + want.shape[0], ox : ox + want.shape[1]] = False
            assert (padded[outside] == 255).all()
    assert routed and calls and all(n >= 1 for _, n in calls)
    calls.clear()  # a whole-level read: one decoder batch per instance
    slide.read_region((0, 0), 0, slide.levels[0].size, device="cuda", ops=ops)
    assert len(calls) == len(slide.levels[0].instances)


# -- the patch loader --------------------------------------------------------------------------------------

def test_patch_dataset_cpu(pyramids):
    torch = pytest.importorskip("torch")
    from gpudcm.torch import SlidePatchDataset, SlidePatchLoader

    pyr_a, pyr_b = pyramids["jpeg-rgb-full"], pyramids["j2k-rgb-sparse"]
    coords = [(0, 0, 0), (1, 70, 50), (0, 400, 290), (1, 100, 100)]
    ds = SlidePatchDataset([pyr_a.paths, pyr_b.paths], patch_size=(48, 32), level=0, coords=coords, device="cpu")
    assert len(ds) == 4
    batches = list(SlidePatchLoader(ds, batch_size=3, num_workers=2))
    assert [b["image"].shape for b in batches] == [(3, 3, 32, 48), (1, 3, 32, 48)]
    images = torch.cat([b["image"] for b in batches])
    for (k, x, y), img in zip(coords, images):
        canvas = truth_canvas((pyr_a, pyr_b)[k], 0)
        want = np.full((32, 48, 3), 255, np.uint8)
        part = canvas[y : y + 32, x : x + 48]
        want[: part.shape[0], : part.shape[1]] = part
        np.testing.assert_array_equal(img.permute(1, 2, 0).numpy(), want)
    assert torch.cat([b["location"] for b in batches]).tolist() == [[x, y] for _, x, y in coords]


def test_patch_dataset_pickles(pyramids):
    import pickle

    from gpudcm.torch import SlidePatchDataset

    ds = SlidePatchDataset([pyramids["j2k-mono-full"].paths], patch_size=40, device="cpu")
    first = ds[3]["image"]
    again = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert again[3]["image"].equal(first) and first.shape == (1, 40, 40)


def test_patch_grid_and_sampler(pyramids):
    from gpudcm.torch import SlidePatchDataset

    slide = wsi.open(pyramids["htj2k-rgb-concat"].paths)
    ds = SlidePatchDataset([slide], patch_size=100, level=1, device="cpu")
    assert len(ds) == 3 * 2  # 210 x 150 in 100 x 100 patches
    ds = SlidePatchDataset([slide], patch_size=16, level=2, device="cpu", sampler=lambda k, s: [(5, 5), (90, 60)])
    assert [tuple(ds[i]["location"].tolist()) for i in range(len(ds))] == [(5, 5), (90, 60)]
    with pytest.raises(GpudcmError):
        SlidePatchDataset([slide], coords=[(1, 0, 0)], device="cpu")


def test_read_regions_decodes_shared_tiles_once(pyramids):
    pyr = pyramids["htj2k-rgb-concat"]
    slide = wsi.open(pyr.paths)
    ops, calls = _counting_ops()
    locs = [(0, 0), (10, 10), (40, 30)]  # all inside tiles (0..1, 0..1)
    got = slide.read_regions(locs, 0, (50, 40), device="cuda", ops=ops)
    assert sum(n for _, n in calls) == 4
    canvas = truth_canvas(pyr, 0)
    for (x, y), patch in zip(locs, got):
        np.testing.assert_array_equal(patch, canvas[y : y + 40, x : x + 50])


def test_cli_info_and_show(pyramids, tmp_path, capsys):
    from PIL import Image

    from gpudcm.cli import main

    pyr = pyramids["jpeg-mono-sparse"]
    folder = str(pyr.paths[0].parent)
    assert main(["info", folder]) == 0
    text = capsys.readouterr().out
    assert "3 level(s)" in text and "420 x 300" in text and "sparse" in text
    out = tmp_path / "r.png"
    assert main(["show", folder, "--level", "1", "--region", "10", "20", "60", "40", "--out", str(out)]) == 0
    png = np.asarray(Image.open(out))
    np.testing.assert_array_equal(png, truth_canvas(pyr, 1)[20:60, 10:70, 0])


def test_bench_workload_runs(tmp_path):
    pytest.importorskip("wsidicom")
    from gpudcm.bench.wsi import run

    text = run(device="cpu", quick=True, cache=str(tmp_path / "cache"), out=str(tmp_path / "out"))
    assert "| gpudcm cpu exact=False (libjpeg-turbo) | " in text and "equal to wsidicom" in text
    assert "MONOCHROME2" in text and "of the limit" not in text and "the limit (the codec alone" in text
    assert (tmp_path / "out" / "wsi-cpu-quick.md").is_file()


# -- on a GPU (ci/gpu.sh) --------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("name", [n for n in CASES if not n.startswith("native")])
def test_cuda_regions_equal_cpu(pyramids, name):
    import cupy

    pyr = pyramids[name]
    slide = wsi.open(pyr.paths)
    for level in range(3):
        W, H = slide.levels[level].size
        for (x, y), (w, h) in _regions((W, H)):
            got = slide.read_region((x, y), level, (w, h), device="cuda")
            assert isinstance(got, cupy.ndarray)
            want = slide.read_region((x, y), level, (w, h), device="cpu")
            diff = np.abs(cupy.asnumpy(got).astype(int) - want.astype(int))
            # nvJPEG's IDCT against pydicom's libjpeg (lossy); J2K / HTJ2K bit for bit
            assert diff.max() <= (5 if pyr.codec == "jpeg" else 0), (name, level, diff.max(), diff.mean())


@pytest.mark.gpu
def test_cuda_patch_loader(pyramids):
    torch = pytest.importorskip("torch")
    from gpudcm.torch import SlidePatchDataset, SlidePatchLoader

    pyr = pyramids["htj2k-rgb-concat"]
    coords = [(0, 0, 0), (0, 70, 50), (0, 400, 290)]
    gpu = SlidePatchDataset([pyr.paths], patch_size=64, coords=coords, device="cuda")
    cpu_ = SlidePatchDataset([pyr.paths], patch_size=64, coords=coords, device="cpu")
    (batch,) = list(SlidePatchLoader(gpu, batch_size=3))
    assert batch["image"].is_cuda and batch["image"].shape == (3, 3, 64, 64)
    want = torch.stack([cpu_[i]["image"] for i in range(3)])
    assert torch.equal(batch["image"].cpu(), want)


# -- TILED_FULL with several focal planes / optical paths: the standard's frame order ---------------------

PLANES = {"jpeg-mono-2-focal-planes": dict(codec="jpeg", samples=1, focal_planes=2, size=(200, 250)),
          "jpeg-rgb-2-optical-paths": dict(codec="jpeg", optical_paths=2, size=(200, 250))}


@pytest.fixture(scope="module")
def plane_pyramids(tmp_path_factory):
    return {name: make_pyramid(tmp_path_factory.mktemp(name), seed=20 + k, levels=2, **kw)
            for k, (name, kw) in enumerate(PLANES.items())}


def _standard_canvas(path, z: int, p: int) -> np.ndarray:
    """The total pixel matrix of focal plane `z`, optical path `p` of one TILED_FULL instance: pydicom's
    frames placed by the standard's order alone (PS3.3 C.7.6.17.3: column fastest, then row, then focal
    plane, then optical path), read from the file's own attributes (not the generator's record)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path)
        frames = pixel_array(ds)
    frames = frames if frames.ndim == 4 else frames[..., None]
    rows, cols = int(ds.TotalPixelMatrixRows), int(ds.TotalPixelMatrixColumns)
    th, tw = int(ds.Rows), int(ds.Columns)
    nr, nc = -(-rows // th), -(-cols // tw)
    planes = int(ds.get("TotalPixelMatrixFocalPlanes", 1))
    assert ds.DimensionOrganizationType == "TILED_FULL"
    assert len(frames) == nr * nc * planes * int(ds.get("NumberOfOpticalPaths", 1))
    canvas = np.zeros((nr * th, nc * tw, frames.shape[-1]), np.uint8)
    for r in range(nr):
        for c in range(nc):
            canvas[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = frames[((p * planes + z) * nr + r) * nc + c]
    return canvas[:rows, :cols]


@pytest.mark.parametrize("name", list(PLANES))
def test_tiled_full_planes_and_paths_follow_the_standards_order(plane_pyramids, name):
    pyr = plane_pyramids[name]
    kw = PLANES[name]
    slide = wsi.open(pyr.paths)
    nz, npath = kw.get("focal_planes", 1), kw.get("optical_paths", 1)
    for level in range(2):
        path = next(f.path for f in pyr.files if f.level == level)
        lv = slide.levels[level]
        assert (len(lv.focal_planes), len(lv.optical_paths)) == (nz, npath)
        canvases = {(z, p): _standard_canvas(path, z, p) for z in range(nz) for p in range(npath)}
        assert len({c.tobytes() for c in canvases.values()}) == nz * npath  # the planes really differ
        H, W = canvases[0, 0].shape[:2]
        for (z, p), want in canvases.items():
            for (x, y), (w, h) in _regions((W, H))[:5]:
                box = want[max(y, 0) : y + h, max(x, 0) : x + w]
                got = slide.read_region((x, y), level, (w, h), device="cpu", focal_plane=z, optical_path=p, exact=True)
                np.testing.assert_array_equal(got, box, err_msg=f"{name} level {level} z={z} path={p} {(x, y, w, h)}")
                default = slide.read_region((x, y), level, (w, h), device="cpu", focal_plane=z, optical_path=p)
                assert agreement(default, box, lv.transfer_syntax).ok
            tiles = slide.read_tiles(level, [(0, 0), (1, 1)], focal_plane=z, optical_path=p, device="cpu", exact=True)
            th, tw = lv.tile_size[1], lv.tile_size[0]
            np.testing.assert_array_equal(tiles[0], want[:th, :tw])


@pytest.mark.parametrize("name", list(PLANES))
def test_tiled_full_planes_and_paths_against_wsidicom(plane_pyramids, name):
    """wsidicom's read_region for the same focal plane (z in um) / optical path: libjpeg-turbo both sides."""
    wsidicom = pytest.importorskip("wsidicom")
    pyr = plane_pyramids[name]
    kw = PLANES[name]
    slide = wsi.open(pyr.paths)
    with wsidicom.WsiDicom.open(pyr.paths) as ref:
        for level in range(2):
            W, H = slide.levels[level].size
            for z in range(kw.get("focal_planes", 1)):
                for p in range(kw.get("optical_paths", 1)):
                    z_um = slide.levels[level].focal_planes[z] * 1000.0
                    for (x, y), (w, h) in _regions((W, H))[:4]:
                        ours = slide.read_region((x, y), level, (w, h), device="cpu", focal_plane=z, optical_path=p,
                                                 exact=False)
                        theirs = np.asarray(ref.read_region((x, y), level, (w, h), z=z_um, path=str(p), as_array=True))
                        np.testing.assert_array_equal(ours, theirs.reshape(ours.shape),
                                                      err_msg=f"{name} level {level} z={z} path={p}")
