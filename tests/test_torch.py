"""gpudcm.torch: the worker/main split, DataLoader workers, DDP with gloo, the device path via HostOps."""

from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict
from functools import lru_cache

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gpudcm  # noqa: E402
import gpudcm.torch as gt  # noqa: E402
from corpus import corpus_files, transfer_syntax  # noqa: E402
from gpudcm.api import _device_decode, _prepare  # noqa: E402
from gpudcm.series import group_series  # noqa: E402
from pydicom.uid import RLELossless  # noqa: E402
from series_data import random_volume, tilted_orientation, write_series  # noqa: E402
from tests.harness.host_ops import HostOps  # noqa: E402


def _direct(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gpudcm.pixel_array(path, device="cpu")


@lru_cache(maxsize=1)
def subset() -> tuple[str, ...]:
    """30 small corpus files that decode, spread over the transfer syntaxes (at most 4 each)."""
    by_ts = defaultdict(list)
    for p in corpus_files():
        if p.stat().st_size < 600_000:
            by_ts[str(transfer_syntax(p))].append(p)
    picked = []
    for ts in sorted(by_ts):
        files = by_ts[ts]
        count = 0
        for p in files[:: max(1, len(files) // 6)]:
            try:
                _direct(p)
            except Exception:
                continue
            picked.append(str(p))
            count += 1
            if count == 4:
                break
    return tuple(sorted(picked)[:30])


def _items(batch):
    images = batch["image"]
    return list(zip(batch["index"].tolist(), images if isinstance(images, list) else list(images)))


def _assert_equal(got: torch.Tensor, expected: np.ndarray, name):
    assert tuple(got.shape) == expected.shape, name
    assert got.numpy().dtype == expected.dtype, name
    np.testing.assert_array_equal(got.numpy(), expected, err_msg=str(name))


@lru_cache(maxsize=1)
def decodable() -> dict[str, np.ndarray]:
    """Every corpus file gpudcm decodes on the CPU, with that result (the truth for the loader)."""
    out = {}
    for p in corpus_files():
        try:
            out[str(p)] = _direct(p)
        except Exception:
            continue
    return out


def test_two_worker_dataloader_over_the_corpus_equals_direct_decoding():
    truth = decodable()
    files = sorted(truth)
    assert len(files) > 100
    loader = gt.DicomLoader(gt.DicomDataset(files, device="cpu"), batch_size=4, num_workers=2)
    seen = []
    for batch in loader:
        assert batch["path"] == [files[i] for i in batch["index"].tolist()]
        for i, img in _items(batch):
            _assert_equal(img, truth[files[i]], files[i])
            seen.append(i)
    assert sorted(seen) == list(range(len(files)))


def test_errors_name_the_file(tmp_path):
    bad = tmp_path / "notes.dcm"
    bad.write_text("not DICOM")
    with pytest.raises(gpudcm.GpudcmError, match="notes.dcm"):
        gt.DicomDataset([str(bad)], device="cpu").load(0)


def test_plain_dataloader_with_collate_and_decode():
    files = subset()[:6]
    ds = gt.DicomDataset(files, device="cpu", transform=lambda t: t.to(torch.float64) + 1)
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=gt.collate_payloads)
    for payloads in loader:
        assert all(isinstance(p, gt.Payload) and p.headers[0].get("PixelData", b"") == b"" for p in payloads)
        for i, img in _items(ds.decode(payloads)):
            np.testing.assert_array_equal(img.numpy(), _direct(files[i]).astype(np.float64) + 1)


def _series(tmp_path):
    """Three series of one shape: native tilted with rescale, native, RLE (not merged into one source)."""
    a = write_series(tmp_path / "a", random_volume(5, 6, 7, seed=1), orientation=tilted_orientation(30),
                     rescale=(2.5, -1024.0))
    b = write_series(tmp_path / "b", random_volume(5, 6, 7, seed=2), spacing=(3.0, 0.5, 0.25))
    c = write_series(tmp_path / "c", random_volume(5, 6, 7, seed=3), transfer_syntax=RLELossless)
    return [a, b, c], [group_series([tmp_path / n])[0] for n in "abc"]


@pytest.fixture
def series_dirs(tmp_path):
    for n in "abc":
        (tmp_path / n).mkdir()
    return _series(tmp_path)


def test_series_items_carry_geometry(series_dirs):
    written, series = series_dirs
    loader = gt.DicomLoader(gt.DicomDataset(series, device="cpu"), batch_size=3)
    [batch] = list(loader)
    assert isinstance(batch["image"], torch.Tensor) and batch["image"].shape == (3, 5, 6, 7)
    for k, w in enumerate(written):
        np.testing.assert_array_equal(batch["image"][k].numpy(), w.volume)
        assert batch["uid"][k] == w.uid and batch["path"][k] == tuple(w.paths)
        np.testing.assert_allclose(batch["spacing"][k].numpy(), w.spacing, atol=1e-3)
        np.testing.assert_allclose(batch["orientation"][k].numpy(), w.orientation)
        np.testing.assert_allclose(batch["origin"][k].numpy(), w.origin)


def test_rescale_in_float32(series_dirs, tmp_path):
    written, series = series_dirs
    batch = gt.DicomDataset(series[:2], device="cpu", rescale=True).load(0)
    expected = written[0].volume.astype(np.float32) * np.float32(2.5) + np.float32(-1024.0)
    assert batch["image"].dtype == torch.float32
    np.testing.assert_array_equal(batch["image"][0].numpy(), expected)
    both = gt.DicomDataset(series[:2], device="cpu", rescale=True).decode(
        [gt.prepare_item(0, series[0], rescale=True), gt.prepare_item(1, series[1], rescale=True)])
    np.testing.assert_array_equal(both["image"][1].numpy(), written[1].volume.astype(np.float32))  # no tags: (1, 0)
    ct = gpudcm.series.read_header(written[0].paths[0])
    assert ct.rescale == (2.5, -1024.0)
    single = gt.DicomDataset([written[0].paths[2]], device="cpu", rescale=True).load(0)["image"][0]
    np.testing.assert_array_equal(single.numpy(), expected[2])


def _host_decoder(calls):
    def decode(sources, device, stack=False):
        assert device == "cuda"
        calls.append([type(s.PixelData) for s in sources])  # the bytes are dropped after decode
        ops = HostOps()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = _device_decode([_prepare(s) for s in sources], ops, index=None, raw=False, as_rgb=True, stack=stack)
        calls.append(ops)
        return out
    return decode


def test_device_path_through_host_ops(series_dirs, monkeypatch):
    """The CUDA branch (views of the shared bytes, one source per native series, one batched launch)
    with HostOps standing in for CuPy and the kernels."""
    written, series = series_dirs
    monkeypatch.setattr(gt, "_target", lambda device: ("cuda", torch.device("cpu")))
    calls = []
    payloads = [gt.prepare_item(i, s) for i, s in enumerate(series[:2])]
    assert [len(p.headers) for p in payloads] == [1, 1]  # native slices travel as one multi-frame source
    batch = gt.decode_payloads(payloads, device="cuda", decoder=_host_decoder(calls))
    sources, ops = calls
    assert sources == [memoryview, memoryview]
    assert ops.launches == [10] and len(ops.uploads) == 1  # both volumes: one upload, one launch
    for k in range(2):
        np.testing.assert_array_equal(batch["image"][k].numpy(), written[k].volume)
    calls.clear()
    rle = gt.prepare_item(2, series[2])
    assert len(rle.headers) == 5 and rle.native == [False] * 5
    mixed = gt.decode_payloads([gt.prepare_item(0, series[0]), rle], device="cuda", decoder=_host_decoder(calls))
    assert calls[0] == [memoryview] + [bytes] * 5  # encapsulated bytes are handed over as bytes
    np.testing.assert_array_equal(mixed["image"][1].numpy(), written[2].volume)
    files = [f for f in subset() if (_prepare(f)[1].is_encapsulated is False)][:6]
    got = gt.decode_payloads([gt.prepare_item(i, f) for i, f in enumerate(files)], device="cuda",
                             decoder=_host_decoder([]))
    for i, img in _items(got):
        _assert_equal(img, _direct(files[i]), files[i])


def test_inconsistent_series_raises(tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.77"
    write_series(tmp_path, random_volume(2, 4, 4), uid=uid, prefix="a")
    write_series(tmp_path, random_volume(1, 4, 5), uid=uid, prefix="b", origin=(0.0, 0.0, 50.0))
    [series] = group_series([tmp_path])
    with pytest.raises(gpudcm.GpudcmError, match="cannot stack slices"):
        gt.prepare_item(0, series)


def _ddp_rank(rank: int, world: int, init: str, out: str, files: list[str]) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        dataset = gt.DicomDataset(files, device="cpu")
        sampler = torch.utils.data.DistributedSampler(dataset, shuffle=True, seed=3)
        sampler.set_epoch(1)
        seen, wrong = [], []
        for batch in gt.DicomLoader(dataset, batch_size=4, sampler=sampler):
            for i, img in _items(batch):
                seen.append(i)
                ref = _direct(files[i])
                if img.shape != ref.shape or not np.array_equal(img.numpy(), ref):
                    wrong.append(i)
        gathered = [None] * world
        dist.all_gather_object(gathered, seen)  # the ranks talk over gloo
        with open(os.path.join(out, f"rank{rank}.json"), "w") as fp:
            json.dump({"seen": seen, "wrong": wrong, "gathered": gathered}, fp)
    finally:
        dist.destroy_process_group()


def test_ddp_gloo_two_ranks_cover_the_corpus_once(tmp_path):
    files = list(subset())  # 30: even, so DistributedSampler adds no padding duplicates
    torch.multiprocessing.spawn(_ddp_rank, args=(2, f"file://{tmp_path}/init", str(tmp_path), files), nprocs=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["wrong"] == [] for r in ranks)
    a, b = ranks[0]["seen"], ranks[1]["seen"]
    assert len(a) == len(b) == 15 and not set(a) & set(b)
    assert sorted(a + b) == list(range(len(files)))
    assert ranks[0]["gathered"] == ranks[1]["gathered"] == [a, b]


@pytest.mark.gpu
def test_cuda_batches_are_zero_copy(series_dirs):
    import cupy

    written, series = series_dirs
    produced = []

    def decode(sources, device, stack=False):
        out = gpudcm.decode_batch(sources, device=device, stack=stack)
        produced.append(out)
        return out

    payloads = [gt.prepare_item(i, s) for i, s in enumerate(series[:2])]  # native: one stacked decode
    batch = gt.decode_payloads(payloads, device="cuda:0", decoder=decode)
    img = batch["image"]
    assert img.is_cuda and img.device.index == 0
    assert isinstance(produced[0], cupy.ndarray) and img.data_ptr() == produced[0].data.ptr  # no copy
    for k in range(2):
        np.testing.assert_array_equal(img[k].cpu().numpy(), written[k].volume)
    mixed = gt.decode_payloads([gt.prepare_item(i, s) for i, s in enumerate(series)], device="cuda:0")
    for k, w in enumerate(written):  # the RLE series travels slice by slice, stacked on the device
        np.testing.assert_array_equal(mixed["image"][k].cpu().numpy(), w.volume)
    [loaded] = list(gt.DicomLoader(gt.DicomDataset(series, device="cuda", rescale=True), batch_size=3, num_workers=2))
    expected = written[0].volume.astype(np.float32) * np.float32(2.5) + np.float32(-1024.0)
    np.testing.assert_array_equal(loaded["image"][0].cpu().numpy(), expected)


def test_items_take_the_decoded_shape_when_the_header_lies(tmp_path):
    """Number of Frames 0 on 10-frame RLE data: pydicom decodes all 10 frames, and so must the batch."""
    import malformed

    case = next(c for c in malformed.header_lies("emri_small_RLE.dcm") if c.name.endswith("NumberOfFrames='0'"))
    bad = tmp_path / "frames0.dcm"
    bad.write_bytes(case.data)
    want = gpudcm.pixel_array(str(bad), device="cpu")
    assert want.shape == (10, 64, 64)
    for items in ([str(bad)], [str(bad), str(bad)]):
        batch = gt.DicomDataset(items, device="cpu").decode([gt.prepare_item(i, p) for i, p in enumerate(items)])
        for image in batch["image"]:
            np.testing.assert_array_equal(image.numpy(), want)
