"""The fixed ``gpudcm bench`` workloads, generated from pydicom's and pydicom-data's files into a cache folder.

Each recipe writes its files once into ``<cache>/<name>-<size>/`` and records them in a ``manifest.json``
written last, so an interrupted build is redone on the next run. Sources are re-encoded with pydicom's own
encoders where pydicom has one (RLE Lossless, JPEG 2000 Lossless through pylibjpeg-openjpeg); JPEG lossless,
JPEG baseline files are taken as they are (pydicom 3.0 has no JPEG encoder) and replicated; HTJ2K is encoded
by OpenJPH through imagecodecs (pydicom 3.0 has no HTJ2K encoder) unless an HTJ2K file is found.
A recipe that cannot be built here returns a :class:`Skipped` with the reason instead of raising.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    HTJ2K,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

MANIFEST_VERSION = 3
HTJ2K_SYNTAXES = (HTJ2KLossless, HTJ2KLosslessRPCL, HTJ2K)


@lru_cache(maxsize=1)
def data_dirs() -> tuple[str, ...]:
    """Folders searched for source files: pydicom's ``test_files`` then pydicom-data's ``data``."""
    import pydicom.data

    dirs = [os.path.join(os.path.dirname(pydicom.data.__file__), "test_files")]
    try:
        import data_store  # pydicom-data
    except ImportError:
        pass
    else:
        dirs.append(os.path.join(os.path.dirname(data_store.__file__), "data"))
    return tuple(d for d in dirs if os.path.isdir(d))


def find_file(name: str) -> str | None:
    """Absolute path of test file `name`, or None when no data folder has it."""
    for folder in data_dirs():
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def default_cache() -> Path:
    """``$GPUDCM_BENCH_CACHE``, else ``$XDG_CACHE_HOME/gpudcm/bench``, else ``~/.cache/gpudcm/bench``."""
    if os.environ.get("GPUDCM_BENCH_CACHE"):
        return Path(os.environ["GPUDCM_BENCH_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpudcm" / "bench"


@dataclass(frozen=True)
class Workload:
    """A built workload: files on disk that all use one transfer syntax."""

    name: str
    syntax: str  # short transfer syntax label, for tables
    transfer_syntax: str  # its UID
    codec: str  # what decodes it on the CPU (pydicom's plugin)
    paths: tuple[str, ...]
    frames: int  # frames in all files together
    compressed_bytes: int  # Pixel Data value bytes in all files (encapsulated or native)
    description: str
    source: str  # where the bytes come from (for the table's notes)
    batch_size: int = 0  # kept for the pytest-benchmark batch tests: 0 = no batch variant

    @property
    def batch(self) -> list[str]:
        """The paths (a built workload is already a batch)."""
        return list(self.paths)


@dataclass(frozen=True)
class Skipped:
    """A workload that cannot be built here, and why."""

    name: str
    syntax: str
    description: str
    reason: str


@dataclass(frozen=True)
class Recipe:
    """How to build one workload: `build(folder, size)` writes the files and returns (source note, paths)."""

    name: str
    syntax: str
    codec: str
    kind: str  # what the files stand for ("CT series"); the build adds their geometry
    full: int  # size (files or frames) of a full run
    quick: int  # size of a --quick run
    build: Callable[[Path, int], tuple[str, list[str]]] = field(repr=False)
    sources: tuple[str, ...] = ()  # candidate source files, first found wins
    find: Callable[[], str | None] | None = field(default=None, repr=False)  # a source found by search first

    def source(self) -> str | None:
        """The source file this recipe would use here (it names the cache folder), or None."""
        found = self.find() if self.find is not None else None
        return found or next((p for p in map(find_file, self.sources) if p), None)


# --------------------------------------------------------------------------- builders


def _read(name: str) -> tuple[str, Dataset]:
    path = find_file(name)
    if path is None:
        raise FileNotFoundError(f"{name} is in neither pydicom's test files nor pydicom-data (pip install pydicom-data)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return path, dcmread(path)


def _first(names: Sequence[str]) -> tuple[str, Dataset]:
    for name in names:
        if find_file(name):
            return _read(name)
    return _read(names[0])  # raises with the first name


def _series(ds: Dataset, folder: Path, n: int) -> list[str]:
    """Write `n` slices of `ds` (new instance UIDs, stepped slice position), explicit VR little endian meta."""
    series_uid = generate_uid()
    paths = []
    for i in range(n):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = series_uid
        ds.InstanceNumber = i + 1
        if "ImagePositionPatient" in ds:
            x, y, _ = (float(v) for v in ds.ImagePositionPatient)
            ds.ImagePositionPatient = [x, y, float(i)]
        path = folder / f"{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(str(path))
    return paths


CT_SOURCES = ("693_UNCR.dcm", "CT_small.dcm")


def build_native_ct(folder: Path, n: int) -> tuple[str, list[str]]:
    """`n` slices of a 512x512 16-bit CT image, explicit VR little endian."""
    path, ds = _first(CT_SOURCES)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return f"{os.path.basename(path)} written as {n} slices", _series(ds, folder, n)


def _encoded_series(folder: Path, n: int, tsyntax: UID, sources: Sequence[str] = CT_SOURCES) -> tuple[str, list[str]]:
    path, ds = _first(sources)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.compress(tsyntax)  # pydicom's encoder (RLE: pylibjpeg-rle or pydicom's own; J2K: pylibjpeg-openjpeg)
    note = f"{os.path.basename(path)} encoded once by pydicom's {tsyntax.name} encoder, {n} slices"
    return note, _series(ds, folder, n)


def build_rle_ct(folder: Path, n: int) -> tuple[str, list[str]]:
    """`n` RLE Lossless CT slices."""
    return _encoded_series(folder, n, RLELossless)


# unsigned: JPEG-LS has no sign, and dicomsdl and gdcm do not sign-extend signed JPEG-LS data as pydicom does
MR_SOURCES = ("MR-SIEMENS-DICOM-WithOverlays.dcm", "MR2_UNCR.dcm")


def build_jpegls_mr(folder: Path, n: int) -> tuple[str, list[str]]:
    """`n` JPEG-LS Lossless MR slices (unsigned 12-bit; pydicom's encoder through pyjpegls)."""
    return _encoded_series(folder, n, JPEGLSLossless, MR_SOURCES)


def build_j2k_ct(folder: Path, n: int) -> tuple[str, list[str]]:
    """`n` JPEG 2000 Lossless CT slices."""
    return _encoded_series(folder, n, JPEG2000Lossless)


def _replicate(src: str, folder: Path, n: int) -> list[str]:
    paths = []
    for i in range(n):
        path = folder / f"{i:04d}.dcm"
        shutil.copyfile(src, path)
        paths.append(str(path))
    return paths


# a 512x512 12-bit CT and a 1024x256 NM (pydicom-data); a 100x100 RGB (pydicom's own test files)
JPEG_LOSSLESS_SOURCES = ("bad_sequence.dcm", "JPEG-LL.dcm", "SC_rgb_jpeg_gdcm.dcm")


def build_jpeg_lossless_ct(folder: Path, n: int) -> tuple[str, list[str]]:
    """`n` copies of a JPEG lossless (process 14, SV1) CT file: pydicom has no JPEG encoder."""
    path, _ = _first(JPEG_LOSSLESS_SOURCES)
    note = f"pydicom has no JPEG encoder: the test file {os.path.basename(path)} as is, {n} copies"
    return note, _replicate(path, folder, n)


US_SOURCES = ("color3d_jpeg_baseline.dcm", "examples_ybr_color.dcm")


def build_jpeg_baseline_us(folder: Path, n: int) -> tuple[str, list[str]]:
    """One `n`-frame JPEG baseline YBR_FULL_422 ultrasound file: the source's frames repeated, re-encapsulated."""
    path, ds = _first(US_SOURCES)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    frames = list(generate_frames(ds.PixelData, number_of_frames=count))
    ds.PixelData = encapsulate([frames[i % count] for i in range(n)], has_bot=True)
    ds.NumberOfFrames = n
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    for tag in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if tag in ds:
            del ds[tag]
    out = folder / "us.dcm"
    ds.save_as(out, enforce_file_format=True)
    note = (f"pydicom has no JPEG encoder: the {count} encapsulated frames of {os.path.basename(path)} "
            f"repeated to {n} frames in one file")
    return note, [str(out)]


def find_htj2k() -> str | None:
    """The first HTJ2K file in the data folders (none in pydicom 3.0.2's or pydicom-data 1.0's), else None."""
    for folder in data_dirs():
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if not name.lower().endswith(".dcm") or not os.path.isfile(path):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    meta = dcmread(path, stop_before_pixels=True, specific_tags=["TransferSyntaxUID"])
            except Exception:
                continue
            if meta.file_meta.get("TransferSyntaxUID") in HTJ2K_SYNTAXES:
                return path
    return None


def build_htj2k(folder: Path, n: int) -> tuple[str, list[str]]:
    """`n` HTJ2K files: copies of an HTJ2K file from the data folders when one exists, else CT slices
    encoded by OpenJPH through imagecodecs (pydicom 3.0 has no HTJ2K encoder)."""
    path = find_htj2k()
    if path is not None:
        return f"{os.path.basename(path)} as is, {n} copies", _replicate(path, folder, n)
    try:
        import imagecodecs
    except ImportError:
        raise FileNotFoundError(
            "no HTJ2K source: pydicom 3.0 has no HTJ2K encoder, neither pydicom's test files nor pydicom-data "
            "hold an HTJ2K file, and imagecodecs (OpenJPH's encoder) is not installed: pip install imagecodecs"
        ) from None
    path, ds = _first(CT_SOURCES)
    arr = ds.pixel_array
    ds.PixelData = encapsulate([imagecodecs.htj2k_encode(arr, reversible=True)])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = HTJ2KLossless
    note = f"{os.path.basename(path)} encoded once by OpenJPH (imagecodecs) as HTJ2K Lossless, {n} slices"
    return note, _series(ds, folder, n)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe("native-ct", "Explicit VR Little Endian", "numpy", "CT series", 256, 16, build_native_ct,
               CT_SOURCES),
        Recipe("rle-ct", "RLE Lossless", "pylibjpeg-rle", "CT series", 128, 8, build_rle_ct, CT_SOURCES),
        Recipe("jpeg-lossless-ct", "JPEG Lossless SV1", "pylibjpeg-libjpeg", "CT series", 64, 4,
               build_jpeg_lossless_ct, JPEG_LOSSLESS_SOURCES),
        Recipe("jpeg-baseline-us", "JPEG Baseline", "pylibjpeg-libjpeg", "ultrasound cine, one file", 240, 8,
               build_jpeg_baseline_us, US_SOURCES),
        Recipe("jpegls-mr", "JPEG-LS Lossless", "pylibjpeg-libjpeg", "MR series", 64, 4, build_jpegls_mr, MR_SOURCES),
        Recipe("j2k-ct", "JPEG 2000 Lossless", "pylibjpeg-openjpeg", "CT series", 64, 4, build_j2k_ct, CT_SOURCES),
        Recipe("htj2k", "HTJ2K Lossless", "pylibjpeg-openjpeg", "CT series", 64, 4, build_htj2k, CT_SOURCES,
               find_htj2k),
    )
}


# --------------------------------------------------------------------------- cache


def _measure(paths: Sequence[str]) -> tuple[str, int, int, str]:
    """(transfer syntax UID, frames, Pixel Data bytes, geometry of the first file) over `paths`, which must
    all share one transfer syntax."""
    uids, frames, nbytes, geometry = set(), 0, 0, ""
    for path in paths:
        ds = dcmread(path)
        uids.add(str(ds.file_meta.TransferSyntaxUID))
        count = int(ds.get("NumberOfFrames", 1) or 1)
        frames += count
        nbytes += len(ds.PixelData)
        if not geometry:
            geometry = (f"{ds.Rows}x{ds.Columns} {ds.BitsStored}/{ds.BitsAllocated}-bit "
                        f"{ds.PhotometricInterpretation}")
    if len(uids) != 1:
        raise ValueError(f"workload files mix transfer syntaxes: {sorted(uids)}")
    files = f"{len(paths)} file{'' if len(paths) == 1 else 's'}"
    shape = files if frames == len(paths) else f"{files}, {frames} frames"
    return uids.pop(), frames, nbytes, f"{shape} of {geometry}"


def _load(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != MANIFEST_VERSION:
        return None
    if not all(os.path.isfile(folder / p) for p in manifest.get("files", ())):
        return None
    return manifest


def build(name: str, cache: str | os.PathLike, size: int) -> Workload | Skipped:
    """Workload `name` with `size` files (or frames, for the multi-frame one), from `cache` or built there."""
    recipe = RECIPES[name]
    source = recipe.source()
    folder = Path(cache) / (f"{name}-{size}-{Path(source).stem}" if source else f"{name}-{size}")
    manifest = _load(folder)
    if manifest is None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                source, paths = recipe.build(folder, size)
                tsyntax, frames, nbytes, geometry = _measure(paths)
        except Exception as exc:  # a missing source file, encoder or plugin: the row says why
            shutil.rmtree(folder, ignore_errors=True)
            return Skipped(name, recipe.syntax, recipe.kind, f"cannot build: {exc}")
        manifest = {"version": MANIFEST_VERSION, "source": source, "transfer_syntax": tsyntax, "frames": frames,
                    "compressed_bytes": nbytes, "description": f"{recipe.kind}: {geometry}",
                    "files": [os.path.relpath(p, folder) for p in paths]}
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return Workload(
        name=name,
        syntax=recipe.syntax,
        transfer_syntax=manifest["transfer_syntax"],
        codec=recipe.codec,
        paths=tuple(str(folder / p) for p in manifest["files"]),
        frames=manifest["frames"],
        compressed_bytes=manifest["compressed_bytes"],
        description=manifest["description"],
        source=manifest["source"],
    )


def build_all(cache: str | os.PathLike, *, quick: bool = False, names: Iterable[str] | None = None,
              sizes: dict[str, int] | None = None) -> list[Workload | Skipped]:
    """Every workload (or those named), at --quick or full size (`sizes` overrides per name)."""
    out = []
    for name in names if names is not None else RECIPES:
        recipe = RECIPES[name]
        size = (sizes or {}).get(name, recipe.quick if quick else recipe.full)
        out.append(build(name, cache, size))
    return out
