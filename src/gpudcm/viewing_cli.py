"""The ``gpudcm show`` subcommand: render a frame, or a contact sheet, to a PNG (written with Pillow)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .host import to_host


def _window(args: argparse.Namespace):
    chosen = [w for w in (args.window is not None, args.voi is not None, args.minmax) if w]
    if len(chosen) > 1:
        raise SystemExit("gpudcm show: give at most one of --window, --voi, --minmax")
    if args.window is not None:
        return tuple(args.window)
    if args.voi is not None:
        return args.voi
    return None if args.minmax else "auto"


def write_png(img, path: str | Path) -> None:
    """Write a uint8 (rows, cols) or (rows, cols, 3) image (NumPy or CuPy) as a PNG with Pillow."""
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - the view extra is missing
        raise SystemExit("gpudcm show needs Pillow: pip install 'gpudcm[view]'") from exc
    host = np.ascontiguousarray(to_host(img))
    Image.fromarray(host).save(path, format="PNG")


def cmd_show(args: argparse.Namespace) -> int:
    from .viewing import contact_sheet, render

    if args.level is not None or args.region is not None:  # a whole slide's region (gpudcm.wsi)
        from .wsi.cli import show_region

        return show_region(args)
    window = _window(args)
    if args.sheet:
        src = args.files if len(args.files) > 1 or Path(args.files[0]).is_dir() else args.files[0]
        img = contact_sheet(src, columns=args.columns, size=args.size or 256, window=window,
                            max_tiles=args.max_tiles, device=args.device, square_pixels=True)
    else:
        if len(args.files) != 1:
            print("gpudcm show: one FILE, or several with --sheet", file=sys.stderr)
            return 2
        img = render(args.files[0], frame=args.frame, window=window, size=args.size, device=args.device,
                     square_pixels=True)
    out = Path(args.out)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    write_png(img, out)
    print(f"wrote {out} ({img.shape[1]} x {img.shape[0]}{', RGB' if img.ndim == 3 else ', grey'})")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="render a frame (or a contact sheet of all frames) to PNG",
                       description="Render as a DICOM viewer shows it: modality LUT/rescale, VOI LUT or window, "
                                   "MONOCHROME1 / Presentation LUT inversion, palette and YBR to RGB.")
    p.add_argument("files", nargs="+", metavar="FILE", help="a DICOM file; several files (or a folder) with --sheet")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--frame", type=int, default=None, help="frame index (0-based; default 0)")
    p.add_argument("--window", nargs=2, type=float, metavar=("C", "W"), help="a LINEAR window: center, width")
    p.add_argument("--voi", type=int, metavar="K", help="the file's VOI LUT or window K (0-based)")
    p.add_argument("--minmax", action="store_true", help="no window: the data's minimum to maximum")
    p.add_argument("--size", type=int, default=None,
                   help="downscale so the longer side is at most N pixels (the tile size with --sheet, default 256)")
    p.add_argument("--sheet", action="store_true", help="a contact sheet of all frames (or of a series of files)")
    p.add_argument("--columns", type=int, default=None, help="contact sheet columns (default: a square grid)")
    p.add_argument("--max-tiles", type=int, default=64, help="contact sheet: at most N evenly spread frames")
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (where to decode)")
    p.add_argument("--level", type=int, default=None, help="whole slide: the pyramid level (0 = full resolution)")
    p.add_argument("--region", nargs=4, type=int, metavar=("X", "Y", "W", "H"),
                   help="whole slide: the region of the level to show (default: the whole level)")
    p.set_defaults(func=cmd_show)
