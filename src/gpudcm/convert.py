"""Re-encode DICOM files: decode the pixel data, write it back uncompressed, RLE Lossless, HTJ2K, JPEG 2000
or JPEG-LS (lossless, or lossy with a quality; see :func:`gpudcm.set_pixel_data`).

Colour: native and RLE sources are decoded with ``raw=True`` (no YBR -> RGB conversion) and keep their
Photometric Interpretation, so the stored values are copied exactly and a reader converts them as it
converted the source; YBR_FULL_422 (native) becomes YBR_FULL when writing RLE, which cannot hold
subsampled chroma (the decoded array already has every chroma sample); the same for the JPEG 2000 / HTJ2K /
JPEG-LS outputs. RGB becomes YBR_RCT (lossless) or YBR_ICT (lossy) in JPEG 2000 / HTJ2K (their colour
transform; decoders give RGB back). JPEG, JPEG-LS and JPEG 2000
sources with a YBR interpretation (YBR_FULL, YBR_FULL_422, YBR_ICT, YBR_RCT...) are decoded to RGB, as
pydicom decodes them by default (their codecs often convert colour themselves), and written as RGB.
Bits Stored, Pixel Representation and everything else of the dataset stay; the SOP Instance UID
stays unless ``new_uid`` (a lossless change of transfer syntax is the same instance; a lossy write always
gets a new one, PS3.3 C.7.6.1.1.5). Lossy sources stay lossy: their decoded values are stored losslessly
and Lossy Image Compression says "01".
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    JPEG2000,
    ExplicitVRLittleEndian,
    HTJ2K,
    JPEGLSNearLossless,
    RLELossless,
)

from .classify import classify
from .encoders import NAMES, lossy_of
from .errors import GpudcmError
from .host import to_host
from .jobs import Outcome

TRANSFER_SYNTAXES = {"explicit": ExplicitVRLittleEndian, "rle": RLELossless, **NAMES}
COPIED = "copied"  # Outcome status of an object without pixel data, copied unchanged
# source syntaxes whose pixel data may have been changed by the compression (for Lossy Image Compression)
_LOSSY_SOURCES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81", JPEG2000, HTJ2K,
                  "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111"}
_LOSSY_TARGETS = {JPEG2000, HTJ2K, JPEGLSNearLossless}


def target_syntax(transfer_syntax: str | UID, quality: float | None = None) -> UID:
    """The UID for a name ("explicit", "rle", "htj2k", "htj2k-rpcl", "j2k", "jpegls" ...) or a UID; with a
    `quality`, the lossy sibling of a lossless compressed syntax (htj2k -> HTJ2K, j2k -> JPEG 2000,
    jpegls -> JPEG-LS Near-Lossless)."""
    uid = UID(TRANSFER_SYNTAXES.get(str(transfer_syntax), str(transfer_syntax)))
    if quality is not None and lossy_of(uid):
        uid = lossy_of(uid)
    return uid


def convert_dataset(ds: Dataset, transfer_syntax: str | UID, *, device: str = "cpu", new_uid: bool = False,
                    quality: float | None = None, encode_device: str = "auto") -> Dataset:
    """Re-encode `ds` in place (and return it) in `transfer_syntax` (a name of :data:`TRANSFER_SYNTAXES`
    or a UID); `quality` makes a compressed syntax lossy (see :func:`target_syntax`). `device` decodes,
    `encode_device` encodes (a GPU-decoded array is encoded on the GPU where nvImageCodec can)."""
    from .api import pixel_array
    from .spec import pixel_spec
    from .writer import set_pixel_data

    uid = target_syntax(transfer_syntax, quality)
    spec = pixel_spec(ds)
    lossy_source = spec.transfer_syntax in _LOSSY_SOURCES
    pi = spec.photometric_interpretation
    if spec.is_encapsulated and spec.transfer_syntax != RLELossless:
        arr = pixel_array(ds, device=device)  # YBR -> RGB as pydicom does by default
        if pi.startswith("YBR"):
            pi = "RGB"
    else:
        arr = pixel_array(ds, device=device, raw=True)  # stored values as they are
        if pi == "YBR_FULL_422" and uid.is_encapsulated:
            pi = "YBR_FULL"
    if spec.is_float:
        return set_pixel_data(ds, to_host(arr), pi, arr.dtype.itemsize * 8, transfer_syntax=uid,
                              float_pixel_data=True, generate_instance_uid=new_uid)
    if not uid.is_encapsulated or uid == RLELossless:
        arr = to_host(arr)
    set_pixel_data(ds, arr, pi, spec.bits_stored, transfer_syntax=uid, quality=quality if uid in _LOSSY_TARGETS else None,
                   generate_instance_uid=new_uid or uid in _LOSSY_TARGETS, device=encode_device)
    if lossy_source and ds.get("LossyImageCompression") != "01":
        ds.LossyImageCompression = "01"
    return ds


def convert_file(src: str | os.PathLike, dst: str | os.PathLike, transfer_syntax: str | UID, *,
                 device: str = "cpu", new_uid: bool = False, quality: float | None = None) -> Outcome:
    """Convert one file; never raises for a bad input (the Outcome says "failed" and why). The output is
    written to a temporary name beside `dst` and renamed, so a `dst` that exists is complete."""
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
        convert_dataset(ds, transfer_syntax, device=device, new_uid=new_uid, quality=quality)
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        partial = f"{dst}.partial"
        ds.save_as(partial, enforce_file_format=True)
        os.replace(partial, dst)
    except Exception as exc:  # noqa: BLE001 - one bad file is recorded, not raised
        Path(f"{dst}.partial").unlink(missing_ok=True)
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
