"""The test corpus: pydicom's own test files, the pydicom-data files, and files the tests generate."""

from __future__ import annotations

import os
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import pydicom.data
from pydicom import dcmread
from pydicom.pixels import pixel_array as pydicom_pixel_array

from datagen import generate_all


def corpus_files() -> list[Path]:
    """Every file of pydicom's test files and of pydicom-data (decodable or not)."""
    roots = [Path(pydicom.data.__file__).parent / "test_files"]
    try:
        import data_store

        roots.append(Path(data_store.__file__).parent / "data")
    except ImportError:  # pydicom-data is a test dependency; without it the corpus is smaller
        pass
    files: list[Path] = []
    for root in roots:
        files += sorted(p for p in root.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc", ".txt", ".md", ".json", ".gz", ".bz2", ".zip"))
    return files


def corpus_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def reference(path: Path, **kwargs) -> np.ndarray | Exception:
    """pydicom's result: ``pixel_array(path)``, or ``dcmread(path)`` + ``pixel_array(ds)`` where the path
    reader cannot (deflated datasets); the exception when pydicom decodes neither way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom_pixel_array(path, **kwargs)
        except Exception as first:
            try:
                return pydicom_pixel_array(dcmread(path), **kwargs)
            except Exception:
                return first


@lru_cache(maxsize=None)
def reference_shape(path: Path) -> tuple[int, ...] | None:
    """Shape of pydicom's default decode, or None when pydicom cannot decode `path` (cached)."""
    ref = reference(path)
    return None if isinstance(ref, Exception) else ref.shape


@lru_cache(maxsize=1)
def generated_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="gpudcm-generated-"))


@lru_cache(maxsize=1)
def generated_cases():
    """The generated cases (written once per test process)."""
    return generate_all(generated_dir())


def has_pixel_data(path: Path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True, force=True)
    except Exception:
        return False
    return "Rows" in ds


def transfer_syntax(path: Path):
    """The file's Transfer Syntax UID, or None (unreadable, or no file meta)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = dcmread(path, stop_before_pixels=True, force=True)
        except Exception:
            return None
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def native_ts(path: Path) -> bool:
    ts = transfer_syntax(path)
    return bool(ts) and not ts.is_encapsulated


def report(line: str) -> None:
    """Print `line` and append it to ``$GPUDCM_REPORT_DIR/reliability.txt`` (CI runs without -s and
    prints that file)."""
    print(line)
    folder = os.environ.get("GPUDCM_REPORT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        with open(Path(folder) / "reliability.txt", "a") as fp:
            fp.write(line + "\n")
