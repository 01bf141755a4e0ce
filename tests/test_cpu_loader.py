"""DicomLoader on the CPU decodes in the DataLoader workers (issue 16 item 5), with pydicom's values."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gpudcm  # noqa: E402
import gpudcm.torch as gt  # noqa: E402
from corpus import corpus_files, reference  # noqa: E402

NAMES = ("MR_small_RLE.dcm", "MR_small.dcm", "CT_small.dcm", "MR_small_jp2klossless.dcm", "JPEG-LL.dcm")


def _paths():
    by_name = {p.name: p for p in corpus_files()}
    return [str(by_name[n]) for n in NAMES if n in by_name]


def test_cpu_loader_decodes_in_workers_with_pydicoms_values():
    paths = _paths()
    assert len(paths) >= 4
    loader = gt.DicomLoader(gt.DicomDataset(paths, device="cpu"), batch_size=2, num_workers=2)
    assert loader.decodes_in_workers
    seen = 0
    for batch in loader:
        images = batch["image"]
        for k, i in enumerate(batch["index"].tolist()):
            np.testing.assert_array_equal(images[k].numpy(), reference(paths[i]))
            seen += 1
    assert seen == len(paths)


def test_worker_collate_decodes_there():
    """The collate function itself returns decoded tensors (so the main process only receives them)."""
    paths = _paths()[:2]
    ds = gt.DicomDataset(paths, device="cpu")
    batch = gt.decode_in_worker(ds, [ds[0], ds[1]])
    for k in range(2):
        np.testing.assert_array_equal(batch["image"][k].numpy(), reference(paths[k]))


def test_main_process_decode_without_workers_or_on_cuda():
    paths = _paths()[:1]
    assert not gt.DicomLoader(gt.DicomDataset(paths, device="cpu"), num_workers=0).decodes_in_workers
    loader = gt.DicomLoader(gt.DicomDataset(paths, device="cpu"), num_workers=1)
    assert loader.decodes_in_workers


def _named(*names):
    by_name = {p.name: p for p in corpus_files()}
    return [str(by_name[n]) for n in names if n in by_name]


def _spacing(path):
    from pydicom import dcmread

    value = dcmread(path, stop_before_pixels=True).get("PixelSpacing")
    return [float(v) for v in value] if value else [float("nan")] * 2


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_values_shapes_and_spacing_against_pydicom(workers):
    """One shape per batch (one tensor) and mixed shapes (a list: multi-frame, RGB, single frames)."""
    paths = _named("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm",  # 64 x 64 each
                   "SC_rgb_rle_2frame.dcm", "rtdose_rle.dcm", "emri_small_RLE.dcm", "CT_small.dcm")
    assert len(paths) == 7
    loader = gt.DicomLoader(gt.DicomDataset(paths, device="cpu"), batch_size=3, num_workers=workers)
    assert loader.decodes_in_workers == (workers > 0)
    batches = list(loader)
    assert isinstance(batches[0]["image"], torch.Tensor) and batches[0]["image"].shape == (3, 64, 64)
    assert isinstance(batches[1]["image"], list)
    seen = []
    for batch in batches:
        for k, i in enumerate(batch["index"].tolist()):
            ref = reference(paths[i])
            got = batch["image"][k].numpy()
            assert got.dtype == ref.dtype and got.shape == ref.shape
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_array_equal(batch["spacing"][k].numpy(), _spacing(paths[i]))
            assert batch["path"][k] == paths[i]
            seen.append(i)
    assert seen == list(range(len(paths)))


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_rescale_and_transform(workers):
    from pydicom import dcmread

    paths = _named("CT_small.dcm", "MR_small.dcm")
    ds = gt.DicomDataset(paths, device="cpu", rescale=True, transform=lambda t: t * 2)
    [batch] = list(gt.DicomLoader(ds, batch_size=2, num_workers=workers))
    ct = dcmread(paths[0], stop_before_pixels=True)
    slope, intercept = np.float32(float(ct.RescaleSlope)), np.float32(float(ct.RescaleIntercept))
    np.testing.assert_array_equal(batch["image"][0].numpy(),
                                  (reference(paths[0]).astype(np.float32) * slope + intercept) * 2)
    np.testing.assert_array_equal(batch["image"][1].numpy(), reference(paths[1]).astype(np.float32) * 2)  # (1, 0)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_skips_bad_files(workers, tmp_path, caplog):
    good = _named("MR_small_RLE.dcm", "MR_small.dcm")
    cut = tmp_path / "cut.dcm"
    data = open(good[0], "rb").read()
    cut.write_bytes(data[: len(data) - 4000])  # the pixel data ends early
    paths = [good[0], str(cut), good[1]]
    loader = gt.DicomLoader(gt.DicomDataset(paths, device="cpu", on_error="skip"), batch_size=3, num_workers=workers)
    [batch] = list(loader)
    assert batch["index"].tolist() == [0, 2] and batch["path"] == [good[0], good[1]]
    for k, i in enumerate((0, 2)):
        np.testing.assert_array_equal(batch["image"][k].numpy(), reference(paths[i]))
    with pytest.raises(gt.GpudcmError):
        list(gt.DicomLoader(gt.DicomDataset(paths, device="cpu"), batch_size=3, num_workers=workers))


def _no_pool_in_worker(worker_id):
    from gpudcm.codecs import decode

    def refuse(threads, pid):
        raise AssertionError("a DataLoader worker handed frames to a thread pool")

    decode._pool = refuse


def test_workers_decode_on_one_thread(tmp_path):
    """A file whose frames the main process would put on the pool decodes on one thread in a worker."""
    from test_cpu_threads import big_rle

    path = str(big_rle(tmp_path / "big.dcm"))  # decode_batch([path], workers=2) puts it on the pool
    loader = gt.DicomLoader(gt.DicomDataset([path, path], device="cpu"), batch_size=1, num_workers=2,
                            worker_init_fn=_no_pool_in_worker)
    for batch in loader:
        np.testing.assert_array_equal(batch["image"][0].numpy(), reference(path))


@pytest.mark.parametrize("workers", [0, 2])
def test_series_through_the_cpu_loader(workers, tmp_path):
    """Series volumes (native merged into one source, RLE slice by slice) in workers, with geometry."""
    from pydicom.uid import RLELossless
    from series_data import random_volume, write_series

    from gpudcm.series import group_series

    for name in "ab":
        (tmp_path / name).mkdir()
    written = [write_series(tmp_path / "a", random_volume(4, 6, 7, seed=1), rescale=(2.0, -10.0)),
               write_series(tmp_path / "b", random_volume(4, 6, 7, seed=2), transfer_syntax=RLELossless)]
    series = [group_series([tmp_path / n])[0] for n in "ab"]
    loader = gt.DicomLoader(gt.DicomDataset(series, device="cpu", rescale=True), batch_size=2, num_workers=workers)
    [batch] = list(loader)
    assert batch["image"].shape == (2, 4, 6, 7) and batch["image"].dtype == torch.float32
    np.testing.assert_array_equal(batch["image"][0].numpy(),
                                  written[0].volume.astype(np.float32) * np.float32(2.0) + np.float32(-10.0))
    np.testing.assert_array_equal(batch["image"][1].numpy(), written[1].volume.astype(np.float32))
    for k, w in enumerate(written):
        assert batch["uid"][k] == w.uid and batch["path"][k] == tuple(w.paths)
        np.testing.assert_allclose(batch["spacing"][k].numpy(), w.spacing, atol=1e-3)
        np.testing.assert_allclose(batch["origin"][k].numpy(), w.origin)
        assert isinstance(batch["orientation"], torch.Tensor)
