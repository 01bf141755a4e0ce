"""Whole-slide images: ``gpudcm.wsi.open(path_or_folder_or_files)`` -> :class:`Slide` (levels, tiles),
``slide.read_region(...)`` and ``slide.read_tiles(...)`` decoding only the tiles asked for, in one batch."""

from .instances import Instance
from .slide import Level, RegionOutOfBounds, Slide, open

__all__ = ["Instance", "Level", "RegionOutOfBounds", "Slide", "open"]
