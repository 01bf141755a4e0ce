"""Every private pydicom name gpudcm uses, in one place (checked against pydicom 3.0.x).

pydicom does not promise these across releases; ``tests/test_pydicom_compat.py`` calls each one on a tiny
input with the arguments gpudcm passes and checks the result gpudcm reads, so a pydicom upgrade that
renames, moves or changes one fails there, loudly, instead of somewhere in a decode.
Nothing outside this module imports a private pydicom name (``tests/test_pydicom_compat.py`` checks that too).
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset
from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset, read_preamble
from pydicom.pixels.utils import _get_jpg_parameters

__all__ = [
    "at_pixel_data", "read_file_meta_info", "read_dataset", "read_preamble", "get_jpg_parameters",
    "forget_pixel_array", "decoding_plugins", "PRIVATE_NAMES",
]

# The private names behind this module: (pydicom module, name).
PRIVATE_NAMES = (
    ("pydicom.filereader", "_at_pixel_data"),
    ("pydicom.filereader", "_read_file_meta_info"),
    ("pydicom.pixels.utils", "_get_jpg_parameters"),
    ("pydicom.dataset", "Dataset._pixel_array"),
    ("pydicom.dataset", "Dataset._pixel_id"),
    ("pydicom.pixels.common", "CoderBase._available"),
)

# stop_when for read_dataset: True at (7FE0,0008/0009/0010), the three pixel data elements.
at_pixel_data = _at_pixel_data
# read_file_meta_info(fp) -> FileMetaDataset, fp positioned after the preamble ("DICM").
read_file_meta_info = _read_file_meta_info


def get_jpg_parameters(src: bytes) -> dict[str, Any]:
    """pydicom's parse of a JPEG frame's header: precision, height, width, components, component_ids and
    app (APPn marker -> payload), as pydicom's JPEG decoders see it; ``{}`` when it cannot parse."""
    return _get_jpg_parameters(src)


def forget_pixel_array(ds: Dataset) -> None:
    """Drop `ds`'s cached ``pixel_array`` after its pixel element was replaced without ``Dataset``'s own
    attribute setter (which resets the cache itself)."""
    ds._pixel_array = None
    ds._pixel_id = {}


def decoding_plugins(transfer_syntax) -> list[str]:
    """The installed plugins of pydicom's decoder for `transfer_syntax`, in the order pydicom tries them
    (its public ``available_plugins`` is sorted by name); [] when it has none or no decoder."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    try:
        decoder = get_decoder(UID(str(transfer_syntax)))
    except NotImplementedError:
        return []
    return list(decoder._available)
