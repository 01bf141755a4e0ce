"""A slide: its levels (one per total pixel matrix size), each a tile map over one or more instances,
and region / tile reads that decode only the tiles asked for, in one batch, into one output array."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..cuda.runtime import resolve_device
from ..errors import GpudcmError, InvalidPixelData
from .background import background_value
from .instances import Instance, expand, first_item, group_slides, read_instance
from .tiles import decode_tiles

Tile = tuple[int, int]  # (column, row) in tiles


class RegionOutOfBounds(GpudcmError):
    """The region asked for does not intersect the level's total pixel matrix."""


@dataclass
class Level:
    """One resolution of the slide.

    ``size`` is (width, height) of the total pixel matrix, ``tile_size`` (width, height) of a frame,
    ``pixel_spacing`` (row, column) mm per pixel, ``downsample`` its factor to level 0."""

    index: int
    instances: list[Instance]
    size: tuple[int, int]
    tile_size: tuple[int, int]
    pixel_spacing: tuple[float, float] | None
    optical_paths: list[str]
    focal_planes: list[float]  # Z offsets (mm), one per focal plane, ascending
    sparse: bool
    downsample: float = 1.0
    # (col, row, focal plane index, optical path index) -> (instance index, frame index in that file)
    tiles: dict[tuple[int, int, int, int], tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def grid(self) -> tuple[int, int]:
        """(columns, rows) of tiles."""
        return -(-self.size[0] // self.tile_size[0]), -(-self.size[1] // self.tile_size[1])

    @property
    def header(self):
        return self.instances[0].header

    @property
    def samples(self) -> int:
        return int(self.header.get("SamplesPerPixel", 1))

    @property
    def transfer_syntax(self) -> str:
        return str(self.header.file_meta.get("TransferSyntaxUID", ""))

    @property
    def missing(self) -> int:
        """Tiles of the grid no frame holds (all focal planes and optical paths)."""
        cols, rows = self.grid
        return cols * rows * len(self.focal_planes) * len(self.optical_paths) - len(self.tiles)

    def path_index(self, optical_path: str | int | None) -> int:
        if optical_path is None:
            return 0
        if isinstance(optical_path, int) and not isinstance(optical_path, bool) and str(optical_path) not in self.optical_paths:
            if 0 <= optical_path < len(self.optical_paths):
                return optical_path
        if str(optical_path) in self.optical_paths:
            return self.optical_paths.index(str(optical_path))
        raise GpudcmError(f"level {self.index}: no optical path {optical_path!r} (have {self.optical_paths})")

    def plane_index(self, focal_plane: int) -> int:
        if not 0 <= focal_plane < len(self.focal_planes):
            raise GpudcmError(f"level {self.index}: focal plane {focal_plane} out of range "
                              f"(0..{len(self.focal_planes) - 1}; Z offsets {self.focal_planes})")
        return focal_plane


def _build_level(index: int, instances: list[Instance]) -> Level:
    first = instances[0]
    rows, cols = first.total
    trows, tcols = first.tile
    for inst in instances[1:]:
        if inst.tile != first.tile:
            raise InvalidPixelData(f"{inst.path}: tile size {inst.tile} differs from {first.path}'s {first.tile} "
                                   "in the same level")
    paths: list[str] = []
    for inst in instances:
        paths += [p for p in inst.optical_paths if p not in paths]
    sparse = any(inst.sparse for inst in instances)
    grid_cols, grid_rows = -(-cols // tcols), -(-rows // trows)
    tiles: dict[tuple[int, int, int, int], tuple[int, int]] = {}
    if sparse:
        positions = [(k, i, pos) for k, inst in enumerate(instances) for i, pos in enumerate(inst.sparse_positions())]
        planes = sorted({round(z, 9) for _, _, (_, _, z, _) in positions})
        for k, i, (x, y, z, path) in positions:
            if x % tcols or y % trows or not (0 <= x < cols and 0 <= y < rows):
                raise InvalidPixelData(f"{instances[k].path}: frame {i} sits at pixel ({x + 1}, {y + 1}), not on the "
                                       f"{tcols}x{trows} tile grid of the {cols}x{rows} matrix")
            p = paths.index(path) if path in paths else 0
            tiles[(x // tcols, y // trows, planes.index(round(z, 9)), p)] = (k, i)
    else:
        area = grid_cols * grid_rows
        z_values = {}
        for inst in instances:
            step = first_item(inst.header, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "SpacingBetweenSlices")
            step = float(step) if step is not None else 0.0
            z_values[inst.path] = [round(inst.z_offset() + k * step, 9) for k in range(inst.focal_planes)]
        planes = sorted({z for zs in z_values.values() for z in zs})
        for k, inst in enumerate(instances):
            local_paths, zs = inst.optical_paths, z_values[inst.path]
            for i in range(inst.frames):
                f = inst.frame_offset + i
                plane, rest = divmod(f, area)
                z, p = plane % len(zs), plane // len(zs)
                if p >= len(local_paths):
                    raise InvalidPixelData(f"{inst.path}: frame {i} (frame {f} of the TILED_FULL order) lies past "
                                           f"{len(zs)} focal plane(s) x {len(local_paths)} optical path(s) of "
                                           f"{grid_cols}x{grid_rows} tiles")
                c, r = rest % grid_cols, rest // grid_cols
                tiles[(c, r, planes.index(zs[z]), paths.index(local_paths[p]))] = (k, i)
    return Level(index, instances, (cols, rows), (tcols, trows), first.pixel_spacing, paths, planes, sparse, tiles=tiles)


@dataclass(frozen=True)
class _Plan:
    """What a region read needs: the output box inside the matrix and each tile's source and place."""

    x0: int
    y0: int
    w: int
    h: int
    tiles: list[Tile]


class Slide:
    """The levels of one slide (largest first). Open with :func:`gpudcm.wsi.open`."""

    def __init__(self, levels: list[Level], series_uid: str, associated: list[Instance]) -> None:
        self.levels = levels
        self.series_uid = series_uid
        self.associated = associated  # LABEL / OVERVIEW / THUMBNAIL instances

    def __repr__(self) -> str:
        sizes = ", ".join(f"{lv.size[0]}x{lv.size[1]}" for lv in self.levels)
        return f"Slide({self.series_uid or '<no series uid>'}: {len(self.levels)} level(s) {sizes})"

    @property
    def dimensions(self) -> tuple[int, int]:
        """(width, height) of level 0."""
        return self.levels[0].size

    def level(self, level: int) -> Level:
        if not isinstance(level, (int, np.integer)) or not -len(self.levels) <= level < len(self.levels):
            raise GpudcmError(f"no level {level!r}: the slide has {len(self.levels)} level(s)")
        return self.levels[level]

    # -- tiles -----------------------------------------------------------------------------------------
    def _decode(self, lv: Level, keys: Sequence[tuple[int, int, int, int] | None], device: str, *, ops=None,
                decoders=None, threads: int | None = None, exact: bool | None = None, sink=None, infos: list | None = None,
                direct=None):
        """(n, tile rows, tile cols, samples) for `keys` (None or absent: background), one batch per instance.
        On the CPU a `sink` (``sink(k, tile)``, from the decoding threads) takes the tiles instead, and
        ``direct(k)`` (optional) gives a C-contiguous (tile rows, tile cols, samples) place that tile k fills
        exactly, filled before the sink is called."""
        tw, th = lv.tile_size
        samples = lv.samples
        xp = np if device == "cpu" else (ops.xp if ops is not None else _cupy())
        dtype = np.uint8 if int(lv.header.get("BitsAllocated", 8)) <= 8 else np.uint16
        out = xp.empty((len(keys), th, tw, samples), dtype=dtype) if sink is None else None
        by_instance: dict[int, list[tuple[int, int]]] = {}
        blank = []
        for k, key in enumerate(keys):
            where = lv.tiles.get(key) if key is not None else None
            if where is None:
                blank.append(k)
            else:
                by_instance.setdefault(where[0], []).append((k, where[1]))
        if blank:
            bg = background_value(lv.header, samples, str(lv.header.get("PhotometricInterpretation", "")), dtype)
            if sink is None:
                out[xp.asarray(blank)] = xp.asarray(bg)
            else:
                tile = np.broadcast_to(bg, (th, tw, samples))
                for k in blank:
                    if direct is not None and (place := direct(k)) is not None:
                        place[...] = tile
                    sink(k, tile)
        for inst_index, items in by_instance.items():
            inst = lv.instances[inst_index]
            spec = inst.reader.spec
            if (spec.rows, spec.columns) != (th, tw) or spec.samples_per_pixel != samples or spec.dtype != dtype:
                raise InvalidPixelData(f"{inst.path}: frames are {spec.rows}x{spec.columns}x{spec.samples_per_pixel} "
                                       f"{spec.dtype}, the level's tiles {th}x{tw}x{samples} {np.dtype(dtype)}")
            indices = [i for _, i in items]
            ks = [k for k, _ in items]
            opts = dict(ops=ops, decoders=decoders, threads=threads, exact=exact, infos=infos)
            if sink is not None:
                shape = spec.frame_shape

                def place(j: int, _ks=ks):
                    view = direct(_ks[j])
                    return None if view is None else view.reshape(shape)

                decode_tiles(inst.reader, indices, device, None, **opts, direct=None if direct is None else place,
                             sink=lambda j, tile, _ks=ks: sink(_ks[j], tile.reshape(th, tw, samples)))
            elif len(by_instance) == 1 and not blank and ks == list(range(len(keys))):
                decode_tiles(inst.reader, indices, device, out.reshape((len(keys), *spec.frame_shape)), **opts)
            else:
                part = xp.empty((len(ks), *spec.frame_shape), dtype=dtype)
                part = decode_tiles(inst.reader, indices, device, part, **opts)
                out[xp.asarray(ks)] = part.reshape((len(ks), th, tw, samples))
        return out

    def read_tiles(self, level: int, tile_indices: Iterable[Tile], *, focal_plane: int = 0,
                   optical_path: str | int | None = None, device: str = "auto", **kw: Any):
        """Decoded tiles (n, tile rows, tile columns, samples) of `level` for `tile_indices` ((column, row)
        pairs), decoded in one batch; a tile no frame holds comes back as the background. Edge tiles are
        whole frames (pixels past the matrix edge are what the encoder stored)."""
        lv = self.level(level)
        dev = _device(device, kw)
        z, p = lv.plane_index(focal_plane), lv.path_index(optical_path)
        cols, rows = lv.grid
        keys = []
        for t in tile_indices:
            c, r = int(t[0]), int(t[1])
            if not (0 <= c < cols and 0 <= r < rows):
                raise RegionOutOfBounds(f"level {lv.index}: tile ({c}, {r}) is outside the {cols}x{rows} tile grid")
            keys.append((c, r, z, p))
        return self._decode(lv, keys, dev, **kw)

    # -- regions ---------------------------------------------------------------------------------------
    def _plan(self, lv: Level, location: tuple[int, int], size: tuple[int, int]) -> _Plan:
        x, y = int(location[0]), int(location[1])
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise GpudcmError(f"region size must be positive, not {w}x{h}")
        W, H = lv.size
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
        if x0 >= x1 or y0 >= y1:
            raise RegionOutOfBounds(f"level {lv.index}: region at ({x}, {y}) of {w}x{h} lies outside the "
                                    f"{W}x{H} total pixel matrix")
        tw, th = lv.tile_size
        tiles = [(c, r) for r in range(y0 // th, (y1 - 1) // th + 1) for c in range(x0 // tw, (x1 - 1) // tw + 1)]
        return _Plan(x0, y0, x1 - x0, y1 - y0, tiles)

    def read_region(self, location: tuple[int, int] = (0, 0), level: int = 0, size: tuple[int, int] | None = None,
                    device: str = "auto", *, focal_plane: int = 0, optical_path: str | int | None = None,
                    clip: bool = True, out=None, **kw: Any):
        """Pixels of `level` in the box at `location` (x, y: column, row of its top-left pixel in that
        level) of `size` (width, height; default: to the matrix's far corner), as (height, width, samples)
        NumPy (``device="cpu"``) or CuPy. Only the intersecting tiles are read and decoded, in one batch.

        Like wsidicom, pixels past the total pixel matrix are not returned: with ``clip=True`` the region
        is cut to the matrix (the result is smaller than asked); ``clip=False`` keeps the asked size and
        fills the outside with the background. Missing sparse tiles are the background
        (Recommended Absent Pixel CIELab Value, else white). A region entirely outside raises
        :class:`RegionOutOfBounds`. `out` (optional) receives the result and must have its shape and dtype.
        `exact` picks the CPU's lossy JPEG decoder (gpudcm.wsi.tiles.cpu_tile_decoder): by default, tile by
        tile from its JPEG header, libjpeg-turbo where that class is proven within the lossy tolerance of
        pydicom's decode (8-bit grey, stored RGB), pydicom's plugin for YCbCr colour; ``exact=True``
        pydicom's plugin for every tile (pydicom's values); ``exact=False`` libjpeg-turbo with its own
        YCbCr -> RGB for every tile, as wsidicom decodes (wsidicom's values, up to 9 off pydicom's on
        subsampled chroma; several times faster). ``threads`` caps the CPU decode threads (default: all cores)."""
        lv = self.level(level)
        if size is None:
            size = (lv.size[0] - int(location[0]), lv.size[1] - int(location[1]))
        plan = self._plan(lv, location, size)
        shape = (plan.h, plan.w, lv.samples) if clip else (int(size[1]), int(size[0]), lv.samples)
        batch = self._read_boxes(lv, [(location, size, plan)], shape, clip, device, focal_plane, optical_path,
                                 None if out is None else out[None], kw)
        return batch[0] if out is None else out

    def read_regions(self, locations: Sequence[tuple[int, int]], level: int = 0, size: tuple[int, int] = (256, 256),
                     device: str = "auto", *, focal_plane: int = 0, optical_path: str | int | None = None,
                     out=None, **kw: Any):
        """Many regions of one `size` as one (n, height, width, samples) array: the union of their tiles is
        read and decoded once, in one batch (what a patch loader needs). The outside of the matrix is the
        background (``clip=False`` semantics of :meth:`read_region`)."""
        lv = self.level(level)
        boxes = [(loc, size, self._plan(lv, loc, size)) for loc in locations]
        shape = (int(size[1]), int(size[0]), lv.samples)
        return self._read_boxes(lv, boxes, shape, False, device, focal_plane, optical_path, out, kw)

    def _read_boxes(self, lv: Level, boxes, shape, clip: bool, device: str, focal_plane: int, optical_path, out, kw):
        dev = _device(device, kw)
        z, p = lv.plane_index(focal_plane), lv.path_index(optical_path)
        tiles = list(dict.fromkeys(t for _, _, plan in boxes for t in plan.tiles))
        dtype = np.uint8 if int(lv.header.get("BitsAllocated", 8)) <= 8 else np.uint16
        xp = np if dev == "cpu" else (kw["ops"].xp if kw.get("ops") is not None else _cupy())
        want = (len(boxes), *shape)
        if out is None:
            out = xp.empty(want, dtype=dtype)
        elif tuple(out.shape) != want or out.dtype != dtype:
            raise GpudcmError(f"out is {tuple(out.shape)} {out.dtype}, the region needs {want[1:] if len(boxes) == 1 else want} "
                              f"{np.dtype(dtype)}")
        tw, th = lv.tile_size
        bg = None
        for b, (location, size, plan) in enumerate(boxes):
            if not clip and shape[:2] != (plan.h, plan.w):
                if bg is None:
                    bg = xp.asarray(background_value(lv.header, lv.samples, str(lv.header.get("PhotometricInterpretation", "")),
                                                     dtype))
                out[b] = bg

        def paste(b: int, t: Tile) -> tuple:
            """Where tile `t` goes in box `b`: (box, output rows, output columns, tile rows, tile columns)."""
            location, _, plan = boxes[b]
            ox, oy = (plan.x0, plan.y0) if clip else (int(location[0]), int(location[1]))  # output origin
            tx0, ty0 = t[0] * tw, t[1] * th
            sx0, sy0 = max(tx0, plan.x0), max(ty0, plan.y0)
            sx1, sy1 = min(tx0 + tw, plan.x0 + plan.w), min(ty0 + th, plan.y0 + plan.h)
            return (b, slice(sy0 - oy, sy1 - oy), slice(sx0 - ox, sx1 - ox), slice(sy0 - ty0, sy1 - ty0),
                    slice(sx0 - tx0, sx1 - tx0))

        keys = [(c, r, z, p) for c, r in tiles]
        if dev == "cpu":  # each decoding thread pastes its tile where it goes: no second pass over the region
            # one region: each tile's place worked out by the thread that decoded it (not all before any decode)
            lazy = len(boxes) == 1 and shape[1] != tw
            pastes: dict[Tile, list[tuple]] = {} if lazy else self._pastes(boxes, tiles, paste)
            # a tile that fills a C-contiguous block of the output (the output as wide as a tile: a tile-sized
            # patch on the tile grid) is decoded straight there, its other places pasted from it
            places: dict[Tile, np.ndarray] = {}
            if shape[1] == tw:
                for t, where in pastes.items():
                    for n, (b, oys, oxs, tys, txs) in enumerate(where):
                        view = out[b, oys, oxs]
                        if view.shape[:2] == (th, tw) and view.flags.c_contiguous:
                            places[t] = view
                            del where[n]
                            break

            def sink(k: int, tile: np.ndarray) -> None:
                for b, oys, oxs, tys, txs in [paste(0, tiles[k])] if lazy else pastes[tiles[k]]:
                    out[b, oys, oxs] = tile[tys, txs]

            self._decode(lv, keys, dev, sink=sink, direct=(lambda k: places.get(tiles[k])) if places else None, **kw)
            return out
        decoded = self._decode(lv, keys, dev, **kw)
        if len(boxes) == 1:  # the tiles form a rectangle, row by row: one mosaic, one copy (not a launch per tile)
            location, size, plan = boxes[0]
            (c0, r0), (c1, r1) = plan.tiles[0], plan.tiles[-1]
            rows, cols = r1 - r0 + 1, c1 - c0 + 1
            mosaic = decoded.reshape(rows, cols, th, tw, lv.samples).transpose(0, 2, 1, 3, 4)
            mosaic = mosaic.reshape(rows * th, cols * tw, lv.samples)
            oy, ox = (0, 0) if clip else (plan.y0 - int(location[1]), plan.x0 - int(location[0]))
            ys, xs = plan.y0 - r0 * th, plan.x0 - c0 * tw
            out[0, oy : oy + plan.h, ox : ox + plan.w] = mosaic[ys : ys + plan.h, xs : xs + plan.w]
            return out
        pastes = self._pastes(boxes, tiles, paste)
        for k, t in enumerate(tiles):
            for b, oys, oxs, tys, txs in pastes[t]:
                out[b, oys, oxs] = decoded[k, tys, txs]
        return out

    @staticmethod
    def _pastes(boxes, tiles: list[Tile], paste) -> dict[Tile, list[tuple]]:
        """Every place of every tile: ``paste(b, t)`` for each box b that tile t intersects."""
        pastes: dict[Tile, list[tuple]] = {t: [] for t in tiles}
        for b, (_, _, plan) in enumerate(boxes):
            for t in plan.tiles:
                pastes[t].append(paste(b, t))
        return pastes


def _device(device: str, kw: dict) -> str:
    """"cpu" or "cuda"; device operations passed in (``ops=``, CI's host stand-in) stand for the device."""
    return "cuda" if kw.get("ops") is not None else resolve_device(device)


def _cupy():
    import cupy

    return cupy


def _array_module(arr):
    return np if isinstance(arr, np.ndarray) else _cupy()


def open(source: str | os.PathLike | Iterable[str | os.PathLike], *, series_uid: str | None = None) -> Slide:
    """The slide in `source`: one file, a folder, or a list of files (one instance per level and optical
    path / focal plane / concatenation part). Instances are grouped by Series Instance UID, then by Total
    Pixel Matrix size into levels (largest first); LABEL / OVERVIEW / THUMBNAIL instances go to
    ``slide.associated``. Several series need `series_uid`."""
    instances = [inst for inst in (read_instance(p) for p in expand(source)) if inst is not None]
    if not instances:
        raise GpudcmError(f"{source}: holds no whole-slide microscopy instance")
    slides = group_slides(instances)
    if series_uid is None:
        if len(slides) > 1:
            raise GpudcmError(f"{source}: holds {len(slides)} slides (series {sorted(slides)}); pass series_uid=")
        series_uid = next(iter(slides))
    elif series_uid not in slides:
        raise GpudcmError(f"{source}: no slide with series {series_uid} (have {sorted(slides)})")
    by_size = slides[series_uid]
    ordered = sorted(by_size.items(), key=lambda kv: -kv[0][0] * kv[0][1])
    levels = []
    for k, (_, members) in enumerate(ordered):
        members.sort(key=lambda inst: (inst.frame_offset, inst.path))
        levels.append(_build_level(k, members))
    base = levels[0].size[0]
    for lv in levels:
        lv.downsample = base / lv.size[0]
    associated = [inst for inst in instances if inst.series_uid == series_uid and inst.flavour not in ("VOLUME", "NONE", "")]
    return Slide(levels, series_uid, associated)
