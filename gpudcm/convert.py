"""Re-encode DICOM files: decode the pixel data, write it back uncompressed or RLE Lossless.

Colour: native and RLE sources are decoded with ``raw=True`` (no YBR -> RGB conversion) and keep their
Photometric Interpretation, so the stored values are copied exactly and a reader converts them as it
converted the source; YBR_FULL_422 (native) becomes YBR_FULL when writing RLE, which cannot hold
subsampled chroma (the decoded array already has every chroma sample). JPEG, JPEG-LS and JPEG 2000
sources with a YBR interpretation (YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT...) are decoded to RGB, as
pydicom decodes them by default (their codecs often convert colour themselves), and written as RGB.
Bits Stored, Pixel Representation and everything else of the dataset stay; the SOP Instance UID
stays unless ``new_uid`` (a lossless change of transfer syntax is the same instance). Lossy sources stay
lossy: their decoded values are stored losslessly.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian, RLELossless

from .classify import classify
from .errors import GpudcmError
from .host import to_host
from .jobs import Outcome

TRANSFER_SYNTAXES = {"explicit": ExplicitVRLittleEndian, "rle": RLELossless}
COPIED = "copied"  # Outcome status of an object without pixel data, copied unchanged


def convert_dataset(ds: Dataset, transfer_syntax: str | UID, *, device: str = "cpu", new_uid: bool = False) -> Dataset:
    """Re-encode `ds` in place (and return it) in `transfer_syntax` ("explicit", "rle" or a UID)."""
    from .api import pixel_array
    from .spec import pixel_spec
    from .writer import set_pixel_data

    uid = UID(TRANSFER_SYNTAXES.get(str(transfer_syntax), str(transfer_syntax)))
    spec = pixel_spec(ds)
    pi = spec.photometric_interpretation
    if spec.is_encapsulated and spec.transfer_syntax != RLELossless:
        arr = pixel_array(ds, device=device)  # YBR -> RGB as pydicom does by default
        if pi.startswith("YBR"):
            pi = "RGB"
    else:
        arr = pixel_array(ds, device=device, raw=True)  # stored values as they are
        if pi == "YBR_FULL_422" and uid == RLELossless:
            pi = "YBR_FULL"
    arr = to_host(arr)
    if spec.is_float:
        return set_pixel_data(ds, arr, pi, arr.dtype.itemsize * 8, transfer_syntax=uid, float_pixel_data=True,
                              generate_instance_uid=new_uid)
    return set_pixel_data(ds, arr, pi, spec.bits_stored, transfer_syntax=uid, generate_instance_uid=new_uid)


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, transfer_syntax: str | UID, *,
                 device: str = "cpu", new_uid: bool = False) -> Outcome:
    """Convert one file; never raises for a bad input (the Outcome says "failed" and why)."""
    from .source import load_dataset
    from .spec import pixel_spec

    t0 = time.perf_counter()
    src, dst = os.fspath(src), os.fspath(dst)
    try:
        kind = classify(src)
        if not kind.is_image:
            return _copy_non_image(src, dst, kind, t0)
        ds, _ = load_dataset(src)
        spec = pixel_spec(ds, source=src)
        nbytes = spec.decoded_nbytes
        convert_dataset(ds, transfer_syntax, device=device, new_uid=new_uid)
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(dst, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - one bad file is recorded, not raised
        message = " ".join(str(exc).split())
        if src not in message:
            message = f"{src}: {message}"
        return Outcome(dst, (src,), "failed", seconds=time.perf_counter() - t0, error_type=type(exc).__name__,
                       message=message)
    return Outcome(dst, (src,), "done", transfer_syntax=spec.transfer_syntax.name, frames=spec.number_of_frames,
                   bytes_in=os.path.getsize(src), bytes_out=nbytes, seconds=time.perf_counter() - t0)


def _copy_non_image(src: str, dst: str, kind, t0: float) -> Outcome:
    """A DICOM object without pixel data (DICOMDIR, SR, RT Plan...) is copied unchanged ("copied");
    a non-DICOM file is left out ("not-image"). Neither is a failure."""
    from .jobs import NOT_IMAGE

    if kind.kind == "not-dicom":
        return Outcome(dst, (src,), NOT_IMAGE, message=kind.reason, seconds=time.perf_counter() - t0)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return Outcome(dst, (src,), COPIED, message=f"{kind.reason}: copied unchanged", bytes_in=os.path.getsize(src),
                   seconds=time.perf_counter() - t0)


def plan_outputs(src: str | os.PathLike, dst: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a folder maps to a folder (same relative paths); a file to `dst`, or into
    `dst` when that is an existing folder. Refuses to overwrite an input."""
    from .jobs import expand_paths

    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise GpudcmError(f"convert: {src} does not exist")
    if src.is_dir():
        pairs = [(f, dst / f.relative_to(src)) for f in expand_paths([src])]
    else:
        pairs = [(src, dst / src.name if dst.is_dir() else dst)]
    for a, b in pairs:
        if b.exists() and b.resolve() == a.resolve():
            raise GpudcmError(f"convert: the output {b} is the input; write to another file or folder")
    return pairs
