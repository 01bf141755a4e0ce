"""Every private pydicom name gpudcm uses, in one place (pydicom 3.0): if a release moves one, only this
module changes."""

from __future__ import annotations

from pydicom.filereader import _at_pixel_data, _read_file_meta_info  # noqa: F401  (re-exported)

__all__ = ["_at_pixel_data", "_read_file_meta_info"]
