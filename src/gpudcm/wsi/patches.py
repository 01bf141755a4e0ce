"""Patches of whole slides for PyTorch: :class:`SlidePatchDataset` and :class:`SlidePatchLoader`.

On the CPU each DataLoader worker decodes its patch (threads inside, the default collate stacks them).
On CUDA the workers only hand out patch positions; the main process decodes each batch as one tile batch
per slide (the union of the batch's tiles, each tile decoded once) and hands torch the result through
DLPack, no copy. Images are (B, samples, height, width) uint8 tensors (channels first, as torchvision).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Union

import numpy as np
import torch

from ..errors import GpudcmError
from ..torch import _target, to_torch
from .slide import Slide
from .slide import open as open_slide

SlideLike = Union[str, "os.PathLike[str]", Sequence[str], Slide]
Sampler = Callable[[int, Slide], Sequence[tuple[int, int]]]


def grid(slide: Slide, level: int, patch_size: tuple[int, int], stride: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    """Top-left corners of patches tiling `level` of `slide` (last row/column may reach past the edge)."""
    w, h = slide.level(level).size
    sx, sy = stride or patch_size
    return [(x, y) for y in range(0, h, sy) for x in range(0, w, sx)]


class SlidePatchDataset(torch.utils.data.Dataset):
    """Patches of `patch_size` (width, height) at `level` of `slides` (paths, folders or opened slides).

    Positions come from `coords` ((slide index, x, y) triples in `level` pixels) or from `sampler`
    (``sampler(slide_index, slide) -> [(x, y), ...]``), else a grid of non-overlapping patches. Patches
    crossing the matrix edge are padded with the background. ``dataset[i]`` on the CPU device is the
    decoded item; on CUDA it is only the position (decode happens per batch in :meth:`decode`)."""

    def __init__(self, slides: Sequence[SlideLike], patch_size: tuple[int, int] | int = 256, level: int = 0,
                 coords: Sequence[tuple[int, int, int]] | None = None, sampler: Sampler | None = None,
                 device: str = "auto", transform: Callable | None = None, **read_options: Any) -> None:
        self.slides = [s if isinstance(s, Slide) else open_slide(s) for s in slides]
        self.patch_size = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(patch_size)
        self.level = level
        self.device = device
        self.transform = transform
        self.read_options = read_options
        if coords is not None:
            self.coords = [(int(s), int(x), int(y)) for s, x, y in coords]
        else:
            self.coords = [(k, x, y) for k, slide in enumerate(self.slides)
                           for x, y in (sampler(k, slide) if sampler else grid(slide, level, self.patch_size))]
        for k, _, _ in self.coords:
            if not 0 <= k < len(self.slides):
                raise GpudcmError(f"coords name slide {k} but {len(self.slides)} slide(s) were given")
        self.kind = _target(device)[0]

    def __len__(self) -> int:
        return len(self.coords)

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, x, y = self.coords[index]
        item: dict[str, Any] = {"index": index, "slide": k, "location": torch.tensor([x, y])}
        if self.kind == "cpu":  # decode here, in the worker
            arr = self.slides[k].read_regions([(x, y)], self.level, self.patch_size, device="cpu", **self.read_options)[0]
            image = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
            item["image"] = self.transform(image) if self.transform else image
        return item

    def decode(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """The batch dict of `items`: on CUDA every slide's patches decode as one tile batch."""
        if "image" in items[0]:
            return torch.utils.data.default_collate(items)
        kind, dev = _target(self.device)
        import cupy

        with cupy.cuda.Device(dev.index or 0):
            parts: dict[int, list[int]] = {}
            for i, it in enumerate(items):
                parts.setdefault(int(it["slide"]), []).append(i)
            w, h = self.patch_size
            samples = self.slides[int(items[0]["slide"])].level(self.level).samples
            out = cupy.empty((len(items), h, w, samples), dtype=cupy.uint8)
            for k, idx in parts.items():
                locs = [tuple(int(v) for v in items[i]["location"]) for i in idx]
                batch = self.slides[k].read_regions(locs, self.level, self.patch_size, device=kind, **self.read_options)
                out[cupy.asarray(idx)] = batch
            images = to_torch(out).permute(0, 3, 1, 2)
        if self.transform is not None:
            images = torch.stack([self.transform(t) for t in images])
        return {"image": images, "index": torch.tensor([it["index"] for it in items]),
                "slide": torch.tensor([it["slide"] for it in items]),
                "location": torch.stack([it["location"] for it in items])}


class SlidePatchLoader:
    """A DataLoader over a :class:`SlidePatchDataset` yielding decoded batch dicts (``image``, ``index``,
    ``slide``, ``location``); keyword arguments go to ``torch.utils.data.DataLoader``."""

    def __init__(self, dataset: SlidePatchDataset, batch_size: int = 16, **kwargs: Any) -> None:
        self.dataset = dataset
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=list, **kwargs)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for items in self.loader:
            yield self.dataset.decode(items)
