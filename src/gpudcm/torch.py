"""PyTorch data loading: on CUDA, DataLoader workers parse and read and the main process decodes batches;
on the CPU, each batch is decoded where the DataLoader fetches it (:func:`decode_files`: in the workers,
one thread each, straight into a shared-memory batch tensor).

``DicomDataset.__getitem__`` runs in DataLoader workers and returns a small picklable :class:`Payload`:
the validated header (pixel module only) and the pixel bytes in one uint8 tensor, which torch hands to the
main process through shared memory. :class:`DicomLoader` (or ``dataset.decode(payloads)`` after any
DataLoader with ``collate_fn=gpudcm.torch.collate_payloads``) decodes the whole batch with
``gpudcm.decode_batch`` on the dataset's device and returns torch tensors without a copy (DLPack from
CuPy on CUDA, ``torch.from_numpy`` on the CPU).

A batch is a dict: ``"image"`` (one tensor (B, ...) when the items' shapes agree, else a list),
``"index"`` (int64 dataset indices), ``"path"`` (file path, or the tuple of a series' paths), and for
:class:`gpudcm.series.Series` items ``"uid"``, ``"spacing"`` (B, 3), ``"orientation"`` (B, 6) and
``"origin"`` (B, 3) as float64 tensors (NaN where the files do not say).

DDP: give the loader a ``DistributedSampler``; each rank decodes on its own device: ``device="cuda"``
or ``"auto"`` use torch's current CUDA device (``torch.cuda.set_device(local_rank)``, as DDP scripts do),
``device=f"cuda:{local_rank}"`` names it. Workers never touch CUDA, so the default fork start works.
Call ``sampler.set_epoch(epoch)`` each epoch as usual; DistributedSampler pads the index list with
repeats when the dataset does not divide evenly by the number of ranks (``drop_last=True`` drops instead).

Native series travel as one multi-frame source per volume (one header to pickle and validate, one
stacked decode straight into the batch array); encapsulated series (RLE, JPEG) travel slice by slice.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Union

import numpy as np
import torch
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from .api import _cpu_decode, _prepare, decode_batch
from .cuda.runtime import resolve_device
from .errors import GpudcmError
from .reader import PixelReader, open_pixels
from .series import Series, device_scope, pixel_spacing_of, read_header, rescale_of
from .spec import PixelSpec

Item = Union[str, "os.PathLike[str]", Series]  # one file (or a folder, walked), or one series volume
_log = logging.getLogger(__name__)
# What a file item reads beside the pixel module, in the same parse: Pixel Spacing, Rescale Intercept/Slope.
_FILE_TAGS = (0x00280030, 0x00281052, 0x00281053)


@dataclass
class Payload:
    """What a worker hands the main process for one item (picklable; the bytes travel as a tensor)."""

    index: int
    headers: list[Dataset]  # pixel module only, pixel element emptied; one per decode source
    sizes: list[int]  # bytes of each header's pixel element, back to back in `pixels`
    pixels: torch.Tensor  # uint8
    native: list[bool]  # whether each source is native (its bytes may stay a view)
    shape: tuple[int, ...]  # decoded shape of the item
    dtype: str
    rescale: np.ndarray | None  # (slope, intercept) per frame (first axis), or one pair; None: no rescale
    meta: dict[str, Any] = field(default_factory=dict)


def _rescale_of(path: str) -> tuple[float, float] | None:
    header = read_header(path)
    return header.rescale if header is not None else None


def _mergeable(specs: Sequence[PixelSpec]) -> bool:
    """Native single-frame slices with one pixel layout: their frames can travel as one multi-frame source."""
    first = specs[0]
    key = (first.transfer_syntax, first.rows, first.columns, first.samples_per_pixel, first.bits_allocated,
           first.bits_stored, first.pixel_representation, first.photometric_interpretation,
           first.planar_configuration, first.pixel_keyword)
    return (not first.is_encapsulated and first.bits_allocated % 8 == 0 and not first.is_ybr422_native
            and first.pixel_keyword == "PixelData"
            and all(s.number_of_frames == 1 and not s.is_encapsulated and
                    (s.transfer_syntax, s.rows, s.columns, s.samples_per_pixel, s.bits_allocated, s.bits_stored,
                     s.pixel_representation, s.photometric_interpretation, s.planar_configuration,
                     s.pixel_keyword) == key for s in specs))


def _detach(ds: Dataset, spec: PixelSpec, nbytes: int | None = None) -> memoryview:
    """Take the pixel bytes out of `ds` (the header travels without them)."""
    elem = ds[spec.pixel_keyword]
    value = memoryview(elem.value)[:nbytes]
    elem.value = b""
    return value


def _in_worker() -> bool:
    return torch.utils.data.get_worker_info() is not None


def _buffer(nbytes: int) -> torch.Tensor:
    """A uint8 tensor; in a DataLoader worker, allocated in shared memory at once (the DataLoader would
    otherwise copy it there when handing it to the main process)."""
    if _in_worker():
        try:
            return torch.empty(0, dtype=torch.uint8).set_(torch.UntypedStorage._new_shared(nbytes))
        except (AttributeError, RuntimeError, TypeError):  # a private helper: fall back to the copy
            pass
    return torch.empty(nbytes, dtype=torch.uint8)


def _pack(parts: Sequence[memoryview]) -> torch.Tensor:
    out = _buffer(sum(len(p) for p in parts))
    view, pos = out.numpy(), 0
    for p in parts:
        view[pos : pos + len(p)] = np.frombuffer(p, dtype=np.uint8)
        pos += len(p)
    return out


def _geometry(value: Sequence[float] | None, n: int) -> list[float]:
    return list(value) if value is not None else [float("nan")] * n


def _series_payload(index: int, series: Series, rescale: bool) -> Payload:
    prepared = [_prepare(p) for p in series.paths]
    specs = [spec for _, spec in prepared]
    first = specs[0]
    odd = next((s for s in specs if (s.shape(), s.dtype) != (first.shape(), first.dtype)), None)
    if odd is not None:
        raise GpudcmError(f"series {series.uid or '<no uid>'}: cannot stack slices: {first.source} is "
                          f"{first.shape()} {first.dtype} but {odd.source} is {odd.shape()} {odd.dtype}")
    if len(prepared) > 1 and _mergeable(specs):
        frame_bytes = first.frame_bits // 8
        parts = [_detach(ds, spec, frame_bytes) for ds, spec in prepared]
        header = prepared[0][0]
        header.NumberOfFrames = len(parts)
        headers, native = [header], [True]
    else:
        parts = [_detach(ds, spec) for ds, spec in prepared]
        headers, native = [ds for ds, _ in prepared], [not s.is_encapsulated for s in specs]
    sizes = [len(p) for p in parts] if len(headers) > 1 else [sum(len(p) for p in parts)]
    single = len(specs) == 1 and first.number_of_frames > 1  # one multi-frame file: its frames are the slices
    shape = first.shape() if single else (len(specs), *first.shape())
    pairs = series.rescale
    if rescale and pairs is None:  # a hand-made Series: read the tags
        found = [_rescale_of(p) for p in series.paths]
        pairs = None if all(r is None for r in found) else tuple(r or (1.0, 0.0) for r in found)
    meta = {"path": tuple(series.paths), "uid": series.uid, "spacing": _geometry(series.spacing, 3),
            "orientation": _geometry(series.orientation, 6), "origin": _geometry(series.origin, 3)}
    return Payload(index, headers, sizes, _pack(parts), native, shape, first.dtype.str,
                   _pairs(pairs) if rescale else None, meta)


def _file_meta(path: str, ds: Dataset, rescale: bool) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(rescale pairs, batch metadata) of a file item, from the header its one parse read (_FILE_TAGS)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pairs = rescale_of(ds) if rescale else None
        spacing = pixel_spacing_of(ds)
    return _pairs(pairs), {"path": path, "spacing": _geometry(spacing, 2)}


def _file_payload(index: int, path: str, rescale: bool) -> Payload:
    ds, spec = _prepare(path, _FILE_TAGS)
    part = _detach(ds, spec)
    pairs, meta = _file_meta(path, ds, rescale)
    return Payload(index, [ds], [len(part)], _pack([part]), [not spec.is_encapsulated], spec.shape(),
                   spec.dtype.str, pairs, meta)


def _pairs(pairs) -> np.ndarray | None:
    return None if pairs is None else np.asarray(pairs, dtype=np.float64).reshape(-1, 2)


def prepare_item(index: int, item: Item, *, rescale: bool = False) -> Payload:
    """Parse, validate and read one file or series on the CPU (what a DataLoader worker runs)."""
    if isinstance(item, Series):
        return _series_payload(index, item, rescale)
    return _file_payload(index, os.fspath(item), rescale)


def _expand_items(items: Item | Sequence[Item]) -> tuple[list[Item], list[tuple[str, str]]]:
    """Files and Series as given; folders walked, keeping DICOM images; (path, reason) of the rest."""
    from .classify import classify
    from .jobs import expand_paths

    if isinstance(items, (str, os.PathLike, Series)):
        items = [items]
    out: list[Item] = []
    others: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, Series) or not os.path.isdir(os.fspath(item)):
            out.append(item)
            continue
        for path in expand_paths([item]):
            kind = classify(path)
            if kind.is_image:
                out.append(os.fspath(path))
            else:
                others.append((os.fspath(path), kind.reason))
    return out, others


def _failed_payload(index: int, item: Item, exc: Exception) -> Payload:
    path = tuple(item.paths) if isinstance(item, Series) else os.fspath(item)
    return Payload(index, [], [], torch.empty(0, dtype=torch.uint8), [], (), "", None,
                   {"path": path, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"})


def collate_payloads(payloads: list[Payload]) -> list[Payload]:
    """DataLoader ``collate_fn`` for :class:`DicomDataset`: keep the payloads as a list."""
    return payloads


def _pixel_keyword(ds: Dataset) -> str:
    return next(k for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData") if k in ds)


def _sources(payloads: Sequence[Payload], device: str) -> list[Dataset]:
    """Put the pixel bytes back into the headers: views of the shared tensor where the device path reads
    native bytes straight into its staging buffer, bytes elsewhere (pydicom's decoders want bytes)."""
    sources = []
    for p in payloads:
        flat, pos = p.pixels.numpy(), 0
        for ds, size, native in zip(p.headers, p.sizes, p.native):
            chunk = flat[pos : pos + size]
            pos += size
            elem = ds[_pixel_keyword(ds)]
            value = memoryview(chunk) if native and device == "cuda" else chunk.tobytes()
            # a view is not a value pydicom's validation knows; it is read, never written back
            ds[elem.tag] = DataElement(elem.tag, elem.VR, value, is_undefined_length=elem.is_undefined_length,
                                       validation_mode=config.IGNORE)
            sources.append(ds)
    return sources


def to_torch(arr: Any) -> torch.Tensor:
    """A NumPy or CuPy array as a torch tensor sharing its memory (DLPack for CuPy)."""
    if isinstance(arr, np.ndarray):
        if not arr.flags.writeable:
            arr = arr.copy()
        return torch.from_numpy(arr)
    return torch.from_dlpack(arr)


def _stack_parts(parts: list) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.stack(parts)
    import cupy

    return cupy.stack(parts)


def decode_payloads(payloads: Sequence[Payload], *, device: str = "auto", transform: Callable | None = None,
                    decoder: Callable = decode_batch) -> dict[str, Any]:
    """Decode a batch of payloads on `device` (one ``decode_batch`` call) into the batch dict."""
    if not payloads:  # every item of the batch was skipped
        return {"image": [], "index": torch.empty(0, dtype=torch.int64), "path": []}
    kind, dev = _target(device)
    sources = _sources(payloads, kind)
    shapes = {(p.shape, p.dtype, len(p.headers)) for p in payloads}
    with device_scope(str(dev)):
        if len(shapes) == 1:  # one stacked decode straight into the batch array
            stacked = decoder(sources, device=kind, stack=True)
            # the decoded shape, not the header's: pydicom (and so gpudcm) may decode more frames than a
            # lying Number of Frames says (0 on RLE data, say)
            per_item = len(payloads[0].headers)
            images: Any = to_torch(stacked if per_item == 1 else
                                   stacked.reshape((len(payloads), per_item, *stacked.shape[1:])))
        else:
            arrays, items, pos = decoder(sources, device=kind), [], 0
            for p in payloads:
                n = len(p.headers)
                items.append(arrays[pos] if n == 1 else _stack_parts(arrays[pos : pos + n]))
                pos += n
            if len({(a.shape, a.dtype) for a in items}) == 1:
                images = to_torch(_stack_parts(items))
            else:
                images = [to_torch(a) for a in items]
    for p in payloads:  # the decoded arrays do not use the payloads' bytes; drop the views
        for ds in p.headers:
            ds[_pixel_keyword(ds)].value = b""
    return _batch(images, [p.index for p in payloads], [p.rescale for p in payloads], [p.meta for p in payloads],
                  transform)


def _batch(images, indices: Sequence[int], rescales: Sequence[np.ndarray | None], metas: Sequence[dict[str, Any]],
           transform: Callable | None) -> dict[str, Any]:
    """The batch dict of decoded `images` (one tensor, or a list): rescaled, transformed, with metadata."""
    images = _rescale(images, rescales)
    if transform is not None:
        items = [transform(t) for t in images]
        same = all(isinstance(t, torch.Tensor) and t.shape == items[0].shape and t.dtype == items[0].dtype for t in items)
        images = torch.stack(items) if same else items
    batch: dict[str, Any] = {
        "image": images,
        "index": torch.tensor(list(indices), dtype=torch.int64),
        "path": [m["path"] for m in metas],
    }
    if metas and all("uid" in m for m in metas):
        batch["uid"] = [m["uid"] for m in metas]
        for key in ("orientation", "origin"):
            batch[key] = torch.tensor([m[key] for m in metas], dtype=torch.float64)
    if metas and len({len(m.get("spacing", ())) for m in metas}) == 1 and "spacing" in metas[0]:
        batch["spacing"] = torch.tensor([m["spacing"] for m in metas], dtype=torch.float64)
    return batch


def _rescale(images, rescales: Sequence[np.ndarray | None]):
    """Rescale Slope/Intercept in float32 (as MONAI's PydicomReader applies them): one pair per file, or
    one per slice of a series; items without them get (1, 0) when batched with items that have them."""
    if all(r is None for r in rescales):
        return images

    def apply(t: torch.Tensor, pairs: np.ndarray, lead: int) -> torch.Tensor:
        k = torch.as_tensor(pairs.astype(np.float32), device=t.device)  # (..., k, 2)
        shape = tuple(k.shape[:-1]) + (1,) * (t.ndim - lead)
        return t.to(torch.float32) * k[..., 0].reshape(shape) + k[..., 1].reshape(shape)

    pairs = [np.array([[1.0, 0.0]]) if r is None else r for r in rescales]
    if isinstance(images, torch.Tensor):
        k = max(len(r) for r in pairs)
        return apply(images, np.stack([np.broadcast_to(r, (k, 2)) for r in pairs]), 2)
    return [apply(t, r, 1) for t, r in zip(images, pairs)]


def _target(device: str) -> tuple[str, torch.device]:
    """(decode_batch device, torch device) for `device`; ``"auto"``/``"cuda"`` mean torch's current CUDA
    device (CuPy's when torch has no CUDA)."""
    kind = resolve_device(device)
    if kind == "cpu":
        return kind, torch.device("cpu")
    name = (device or "auto").lower()
    if name.startswith("cuda:"):
        return kind, torch.device(name)
    if torch.cuda.is_available():
        return kind, torch.device("cuda", torch.cuda.current_device())
    import cupy

    return kind, torch.device("cuda", cupy.cuda.Device().id)


class DicomDataset(torch.utils.data.Dataset):
    """Map-style dataset over DICOM files and/or :class:`gpudcm.series.Series` volumes.

    `paths_or_series`: a folder or file (str or path), or a list of files, folders and Series; folders
    are walked (sorted, recursively) as ``gpudcm decode`` walks them, and only DICOM images are kept
    (:mod:`gpudcm.classify`: DICOMDIR, SR, RT Plan, non-DICOM files are logged and listed in
    ``dataset.not_images``).

    ``dataset[i]`` is the worker-side :class:`Payload` (parse + read, no decode); ``dataset.load(i)``
    decodes one item. Decode happens in :meth:`decode` (what :class:`DicomLoader` calls per batch) on
    `device` ("auto", "cpu", "cuda" or "cuda:N"; "cuda" without a usable GPU raises
    :class:`gpudcm.DeviceUnavailable` here, not in the first batch). `transform` is applied after decode
    to each item's torch tensor (on the decode device). ``rescale=True`` applies Rescale Slope/Intercept
    in float32 to files that carry them.

    Items: a torch tensor per item, channels last as pydicom returns them - files ``(rows, columns)``,
    ``(rows, columns, samples)`` (RGB order), ``(frames, rows, columns[, samples])``; series volumes
    ``(slices, rows, columns[, samples])``; the stored dtype (float32 with ``rescale``). A batch dict also
    has ``"spacing"``: (row, column) mm per 2D file, (slice, row, column) per series (NaN where unknown).

    ``on_error="raise"`` (default) raises the first bad item; ``"skip"`` drops it from its batch, logs a
    warning (``gpudcm.torch`` logger) and counts it in ``dataset.skipped`` (path, error) - counted in the
    process that decodes, i.e. the main process of a DataLoader.
    """

    def __init__(self, paths_or_series: Item | Sequence[Item], transform: Callable | None = None, device: str = "auto",
                 *, rescale: bool = False, on_error: str = "raise") -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
        if (device or "auto").lower() != "auto":
            resolve_device(device)  # DeviceUnavailable now, with the reason
        self.items, self.not_images = _expand_items(paths_or_series)
        for path, reason in self.not_images:
            _log.info("DicomDataset: skipped %s: %s", path, reason)
        self.transform = transform
        self.device = device
        self.rescale = rescale
        self.on_error = on_error
        self.skipped: list[tuple[Any, str]] = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Payload:
        if self.on_error == "raise":
            return prepare_item(index, self.items[index], rescale=self.rescale)
        try:
            return prepare_item(index, self.items[index], rescale=self.rescale)
        except Exception as exc:  # noqa: BLE001 - reported by decode() in the main process
            return _failed_payload(index, self.items[index], exc)

    def decode(self, payloads: Sequence[Payload], decoder: Callable = decode_batch) -> dict[str, Any]:
        """The batch dict of `payloads`, decoded on the dataset's device (`decoder`: ``decode_batch``)."""
        run = partial(decode_payloads, device=self.device, decoder=decoder)
        if self.on_error == "raise":
            return run(payloads, transform=self.transform)
        good = [p for p in payloads if not self._skip(p, p.meta.get("error"))]
        try:
            return run(good, transform=self.transform)
        except Exception:  # noqa: BLE001 - find the bad items one by one
            kept = []
            for p in good:
                try:
                    run([p])
                    kept.append(p)
                except Exception as exc:  # noqa: BLE001
                    self._skip(p, f"{type(exc).__name__}: {exc}")
            return run(kept, transform=self.transform)

    def _skip(self, payload: Payload, error: str | None) -> bool:
        return self._skip_item(payload.index, payload.meta.get("path"), error)

    def _skip_item(self, index: int, path: Any, error: str | None) -> bool:
        if not error:
            return False
        self.skipped.append((path, error))
        _log.warning("DicomDataset: skipped item %d (%s): %s", index, path, error)
        return True

    def load(self, index: int) -> dict[str, Any]:
        """Decode item `index` in this process: the batch dict of a batch of one."""
        return self.decode([self[index]])


def _one_thread_decode(sources, **kwargs):
    return decode_batch(sources, workers=1, **kwargs)  # each DataLoader worker is one core


def decode_in_worker(dataset: "DicomDataset", payloads: list[Payload]) -> dict[str, Any]:
    """Decode payloads on the CPU in this process, one thread (a DataLoader worker is one core)."""
    return dataset.decode(payloads, decoder=_one_thread_decode)


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _known_shape(reader: PixelReader) -> tuple[int, ...] | None:
    """pydicom's shape of the whole file, or None where only the decode tells (excess encapsulated frames)."""
    spec = reader.spec
    return None if spec.is_encapsulated and len(reader.frames) > spec.number_of_frames else spec.shape()


def _batch_array(shape: tuple[int, ...], dtype: np.dtype) -> tuple[torch.Tensor, np.ndarray]:
    """A tensor for the decoded batch and its NumPy view (in a worker: in shared memory, so the DataLoader
    hands it to the main process without a copy)."""
    like = torch.from_numpy(np.empty(0, dtype=dtype))
    t = _buffer(int(np.prod(shape)) * dtype.itemsize).view(like.dtype).reshape(shape)
    return t, t.numpy()


def _item_threads(readers: Sequence[PixelReader]) -> int:
    """Threads over a batch's files: one in a DataLoader worker (the workers are the parallelism) and for
    native data (a copy or a cheap unpack: dispatch costs more); all cores in the main process when the
    first file's codec releases the GIL."""
    from .codecs import default_threads
    from .frame_decode import releases_gil

    if _in_worker() or len(readers) < 2 or not readers[0].spec.is_encapsulated:
        return 1
    return default_threads() if releases_gil(readers[0]) else 1


def decode_files(dataset: "DicomDataset", indices: Sequence[int]) -> dict[str, Any]:
    """Decode the file items `indices` of `dataset` on the CPU in this process into their batch dict (what a
    CPU :class:`DicomLoader` runs where the DataLoader fetches: in its workers, or in the main process at
    ``num_workers=0``): one parse per file (pixel module, Pixel Spacing, Rescale), frames decoded
    straight into the batch tensor, one thread per file in a worker. Series items go through
    :class:`Payload` and ``decode_batch`` (one thread in a worker)."""
    items = [dataset.items[i] for i in indices]
    if any(isinstance(item, Series) for item in items):
        decoder = _one_thread_decode if _in_worker() else decode_batch
        return dataset.decode([dataset[i] for i in indices], decoder=decoder)
    opened: list[tuple[int, str, PixelReader]] = []
    try:
        for i, item in zip(indices, items):
            path = os.fspath(item)
            try:
                opened.append((i, path, open_pixels(path, tags=_FILE_TAGS)))
            except Exception as exc:
                if dataset.on_error == "raise":
                    raise
                dataset._skip_item(i, path, _error(exc))
        return _decode_opened(dataset, opened)
    finally:
        for _, _, reader in opened:
            reader.close()


def _decode_opened(dataset: "DicomDataset", opened: list[tuple[int, str, PixelReader]]) -> dict[str, Any]:
    readers = [r for _, _, r in opened]
    shapes = {(_known_shape(r), r.spec.dtype) for r in readers}
    same = len(shapes) == 1 and None not in next(iter(shapes))
    batch_t, batch = _batch_array((len(readers), *readers[0].spec.shape()), readers[0].spec.dtype) if same and readers \
        else (None, None)
    threads = _item_threads(readers)
    frame_threads = 1 if threads > 1 or _in_worker() else None

    def one(k: int):
        try:
            return _cpu_decode(readers[k], None, raw=False, as_rgb=True, threads=frame_threads,
                               out=None if batch is None else batch[k])
        except Exception as exc:
            if dataset.on_error == "raise":
                raise
            dataset._skip_item(opened[k][0], opened[k][1], _error(exc))
            return None

    from .codecs import thread_map

    arrays = thread_map(one, range(len(readers)), threads)
    keep = [k for k, a in enumerate(arrays) if a is not None]
    if batch_t is not None:
        images: Any = batch_t if len(keep) == len(readers) else batch_t[keep]
    else:
        parts = [to_torch(arrays[k]) for k in keep]
        same = bool(parts) and all(t.shape == parts[0].shape and t.dtype == parts[0].dtype for t in parts)
        images = torch.stack(parts) if same else parts
    metas = [_file_meta(opened[k][1], readers[k].ds, dataset.rescale) for k in keep]
    return _batch(images, [opened[k][0] for k in keep], [m[0] for m in metas], [m[1] for m in metas],
                  dataset.transform)


def _warm_cpu() -> None:
    """Import the CPU decode path and ask which codecs are installed, in this process: forked DataLoader
    workers (new ones every epoch unless ``persistent_workers``) then start with it instead of each
    importing it again on its first batch."""
    from . import frame_decode  # noqa: F401
    from .codecs import processes, registry  # noqa: F401

    for ts, backends in registry.REGISTRY.items():
        for backend in backends:
            backend.is_available(ts)


# The batch dict's small tensors: a worker sends them as NumPy (pickled with the batch) and the main
# process wraps them again; each tensor a worker sends costs a shared-memory segment and a file
# descriptor hand-over (~0.5 ms a batch each, measured), more than the whole batch's metadata is worth.
_SMALL = ("index", "spacing", "orientation", "origin")


def _ship(batch: dict[str, Any]) -> dict[str, Any]:
    if _in_worker():
        for key in _SMALL:
            if isinstance(batch.get(key), torch.Tensor):
                batch[key] = batch[key].numpy()
    return batch


def _unship(batch: dict[str, Any]) -> dict[str, Any]:
    for key in _SMALL:
        if isinstance(batch.get(key), np.ndarray):
            batch[key] = torch.from_numpy(batch[key])
    return batch


class _Decoded(torch.utils.data.Dataset):
    """A CPU DicomDataset as the DataLoader fetches it: each batch decoded where it is fetched
    (``__getitems__``: one call per batch), already the batch dict."""

    def __init__(self, dataset: "DicomDataset") -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        return [_ship(decode_files(self.dataset, indices))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _ship(decode_files(self.dataset, [index]))


def _fetched(data):
    """collate_fn of a CPU DicomLoader: the batch dict ``_Decoded`` built (one per fetch)."""
    return data[0] if isinstance(data, list) else data


class DicomLoader:
    """A ``torch.utils.data.DataLoader`` over a :class:`DicomDataset`. On CUDA the workers parse and read,
    and each batch is decoded in this process (``dataset.decode``, one batched device decode). On the CPU
    each batch is decoded where the DataLoader fetches it (:func:`decode_files`): in the workers with
    ``num_workers > 0`` (one thread each, decoded straight into a shared-memory batch tensor), so decoding
    scales with ``num_workers`` like a plain DataLoader; in this process at ``num_workers=0``. Keyword
    arguments go to the DataLoader (``sampler``, ``num_workers``, ``shuffle``, ``drop_last``,
    ``prefetch_factor``, ``persistent_workers``, ...)."""

    def __init__(self, dataset: DicomDataset, batch_size: int = 1, **kwargs: Any) -> None:
        if "collate_fn" in kwargs:
            raise TypeError("DicomLoader sets collate_fn itself; use DicomDataset(transform=...) instead")
        self.dataset = dataset
        self.on_cpu = resolve_device(dataset.device) == "cpu"
        self.decodes_in_workers = kwargs.get("num_workers", 0) > 0 and self.on_cpu
        if self.decodes_in_workers:
            _warm_cpu()
        fetched: torch.utils.data.Dataset = _Decoded(dataset) if self.on_cpu else dataset
        collate = _fetched if self.on_cpu else collate_payloads
        self.loader = torch.utils.data.DataLoader(fetched, batch_size=batch_size, collate_fn=collate, **kwargs)

    @property
    def sampler(self):
        return self.loader.sampler

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self.on_cpu:
            for batch in self.loader:
                yield _unship(batch)
            return
        for payloads in self.loader:
            yield self.dataset.decode(payloads)


from .wsi.patches import SlidePatchDataset, SlidePatchLoader  # noqa: E402  (whole-slide patches, gpudcm.wsi)
