"""pydicom's side of the registry (its one private name, the JPEG header parse, through gpudcm.pydicom_compat).

- :func:`frame_info`: the codestream parameters pydicom reads before decoding a frame (JPEG SOF and APP
  markers, JPEG-LS precision, JPEG 2000 precision and signedness).
- :func:`decode`: the last backend of every syntax, one frame through pydicom's own decoder and plugins
  (``Decoder.as_array`` on a one-frame buffer), pydicom's post-processing included.
- :func:`conformed_photometric`: pydicom's ``_conform_jpg_colorspace`` rule.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.pixels.utils import get_j2k_parameters
from pydicom.uid import UID, JPEG2000TransferSyntaxes, JPEGBaseline8Bit, JPEGLSTransferSyntaxes, JPEGTransferSyntaxes

from ..pydicom_compat import get_jpg_parameters
from ..spec import PixelSpec

_J2K = frozenset(str(u) for u in JPEG2000TransferSyntaxes) | {
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}
_JLS = frozenset(str(u) for u in JPEGLSTransferSyntaxes)
_JPEG = frozenset(str(u) for u in JPEGTransferSyntaxes)
_RGB_IDS = ([82, 71, 66], [114, 103, 98])


def family(transfer_syntax: str) -> str:
    """"j2k", "jls", "jpeg" or "" for `transfer_syntax`."""
    ts = str(transfer_syntax)
    return "j2k" if ts in _J2K else "jls" if ts in _JLS else "jpeg" if ts in _JPEG else ""


def _j2k_subsampled(head: bytes) -> bool:
    """Whether any component of the codestream is subsampled (XRsiz or YRsiz > 1; unreadable counts as
    subsampled): the registry then leaves the frame to pydicom's plugin."""
    from ..jpeg_markers import parse_j2k

    try:
        return parse_j2k(head).subsampled
    except Exception:
        return True


def frame_info(spec: PixelSpec, data) -> dict[str, Any]:
    """What pydicom's runner reads from a frame's codestream before decoding it ({} when unparsable)."""
    fam = family(spec.transfer_syntax)
    if not fam:
        return {}
    head = bytes(data[: 1 << 16]) if fam == "j2k" else data
    try:
        if fam == "j2k":
            info = get_j2k_parameters(head)
            if info.get("jp2"):
                from ..jpeg_markers import jp2_changes_samples

                info["jp2_changes"] = jp2_changes_samples(head)  # for the registry (imagecodecs-openjpeg)
            if spec.samples_per_pixel > 1:
                info["subsampled"] = _j2k_subsampled(head)
            return info
        head = head if isinstance(head, bytes) else bytes(head)
        info = get_jpg_parameters(head)
    except Exception:
        return {}
    if fam == "jpeg":
        from ..jpeg_markers import parse_jpeg

        try:
            info["markers"] = parse_jpeg(head, all_scans=False)  # process and first scan, for the registry
        except Exception:
            info["markers"] = None
    return info


def conformed_photometric(spec: PixelSpec, info: dict) -> str:
    """The Photometric Interpretation pydicom decodes a JPEG/JPEG-LS frame as (its
    ``_conform_jpg_colorspace``: RGB component ids mean RGB; a JFIF APP marker on non-YBR data means YBR)."""
    pi = spec.photometric_interpretation
    if spec.samples_per_pixel != 3 or family(spec.transfer_syntax) not in ("jpeg", "jls"):
        return pi
    if info.get("component_ids") in _RGB_IDS:
        return "RGB"
    if "YBR" not in pi and any(m.startswith(b"JFIF") for m in info.get("app", {}).values()):
        return "YBR_FULL_422" if spec.transfer_syntax == JPEGBaseline8Bit else "YBR_FULL"
    return pi


@lru_cache(maxsize=None)
def _decoder(transfer_syntax: str):
    try:
        return get_decoder(UID(transfer_syntax))
    except NotImplementedError:
        return None


def available_for() -> bool:
    """Always listed; :func:`choose` asks :func:`usable` per syntax."""
    return True


def usable(transfer_syntax) -> bool:
    decoder = _decoder(str(transfer_syntax))
    return decoder is not None and (decoder.is_native or decoder.is_available)


def plugin_names(transfer_syntax) -> list[str]:
    decoder = _decoder(str(transfer_syntax))
    return list(decoder.available_plugins) if decoder is not None and not decoder.is_native else []


def missing(transfer_syntax) -> str:
    decoder = _decoder(str(transfer_syntax))
    if decoder is None:
        return "pydicom has no decoder for this transfer syntax"
    return f"no CPU plugin installed ({'; '.join(decoder.missing_dependencies) or 'no plugin'}); pip install 'gpudcm[codecs]'"


def _options(spec: PixelSpec) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "rows": spec.rows, "columns": spec.columns, "samples_per_pixel": spec.samples_per_pixel,
        "bits_allocated": spec.bits_allocated, "bits_stored": spec.bits_stored,
        "pixel_representation": spec.pixel_representation,
        "photometric_interpretation": spec.photometric_interpretation,
        "number_of_frames": 1, "pixel_keyword": spec.pixel_keyword, "pixel_vr": spec.pixel_vr,
    }
    if spec.samples_per_pixel > 1:
        opts["planar_configuration"] = spec.planar_configuration
    return opts


def decode(data, spec: PixelSpec, info: Any = None, *, raw: bool = False, as_rgb: bool = True) -> np.ndarray:
    """One frame through pydicom's decoder and plugins, with pydicom's post-processing (finished)."""
    from ..errors import UnsupportedTransferSyntax

    decoder = _decoder(str(spec.transfer_syntax))
    if decoder is None or not (decoder.is_native or decoder.is_available):
        raise UnsupportedTransferSyntax(f"{spec.source}: {missing(spec.transfer_syntax)}")
    src = encapsulate([bytes(data)]) if spec.is_encapsulated else bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        # pydicom's YBR -> RGB step (its _process_color_space, run when the Photometric Interpretation the
        # decode leaves is YBR_FULL or YBR_FULL_422 and as_rgb) done here by the same rule, with the same
        # values, through gpudcm.ybr's tables
        arr, props = decoder.as_array(src, raw=raw, as_rgb=False, **_options(spec))
    if not raw and as_rgb and props.get("photometric_interpretation") in ("YBR_FULL", "YBR_FULL_422"):
        from .decode import ybr_to_rgb

        arr = ybr_to_rgb(arr if arr.flags.writeable else arr.copy())
    return arr
