"""DicomLoader on the CPU decodes in the DataLoader workers (issue 16 item 5), with pydicom's values."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

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
