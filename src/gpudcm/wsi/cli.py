"""Whole slides on the command line: the levels table of ``gpudcm info`` and ``gpudcm show --region``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from pydicom.uid import UID

from ..errors import GpudcmError
from .instances import expand, group_slides, read_instance
from .slide import Slide
from .slide import open as open_slide


def slides_in(paths: Sequence[str]) -> list[Slide]:
    """The slides among `paths` (files or folders), one per series; none when no file is a slide."""
    instances = []
    for p in expand(paths):
        try:
            inst = read_instance(p)
        except GpudcmError:
            continue
        if inst is not None:
            instances.append(inst)
    if not instances:
        return []
    try:
        series = group_slides(instances)
    except GpudcmError:
        return []
    return [open_slide([i.path for i in instances if i.series_uid == uid], series_uid=uid) for uid in series]


def level_rows(slide: Slide) -> list[tuple]:
    rows = []
    for lv in slide.levels:
        spacing = f"{lv.pixel_spacing[1] * 1000:.3f} x {lv.pixel_spacing[0] * 1000:.3f}" if lv.pixel_spacing else "-"
        rows.append((lv.index, f"{lv.size[0]} x {lv.size[1]}", f"{lv.tile_size[0]} x {lv.tile_size[1]}",
                     f"{lv.grid[0]} x {lv.grid[1]}", f"{lv.downsample:g}", spacing,
                     "sparse" if lv.sparse else "full", lv.missing, len(lv.focal_planes), ",".join(lv.optical_paths),
                     len(lv.instances), UID(lv.transfer_syntax).name if lv.transfer_syntax else "-"))
    return rows


def print_slides(paths: Sequence[str]) -> None:
    """Print the levels of every slide among `paths` (nothing when there is none)."""
    from ..cli import _table

    for slide in slides_in(paths):
        print(f"\nslide {slide.series_uid}: {len(slide.levels)} level(s), {len(slide.associated)} associated image(s)")
        print(_table(("level", "width x height", "tile", "tiles", "downsample", "um/pixel (x, y)", "tiling",
                      "missing", "focal planes", "optical paths", "files", "transfer syntax"), level_rows(slide)))


def show_region(args: argparse.Namespace) -> int:
    """``gpudcm show SLIDE --level N --region x y w h --out x.png``."""
    from ..viewing_cli import write_png

    slide = open_slide(args.files if len(args.files) > 1 else args.files[0])
    level = args.level or 0
    if args.region is not None:
        x, y, w, h = args.region
    else:
        x, y, (w, h) = 0, 0, slide.level(level).size
    img = slide.read_region((x, y), level, (w, h), device=args.device)
    img = img[..., 0] if img.shape[-1] == 1 else img
    out = Path(args.out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    write_png(img, out)
    print(f"wrote {out} ({img.shape[1]} x {img.shape[0]} of level {level} at ({x}, {y}))")
    return 0
