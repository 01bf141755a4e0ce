"""gpudcm: DICOM pixel data to NumPy (CPU, equal to pydicom) or CuPy (CUDA) arrays."""

from .api import decode_batch, iter_frames, pixel_array
from .capabilities import Capability, backend_for, capabilities
from .errors import DecodeError, DeviceUnavailable, GpudcmError, InvalidPixelData, UnsupportedTransferSyntax
from .frames import Extent, frame_extents
from .preprocessing import preprocess
from .reader import PixelReader, open_pixels
from .spec import PixelSpec, pixel_spec
from .viewing import contact_sheet, render, show
from .transforms import (
    apply_color_lut,
    apply_modality_lut,
    apply_presentation_lut,
    apply_rescale,
    apply_voi,
    apply_voi_lut,
    apply_windowing,
    convert_color_space,
)
from .writer import Requantized, rescale_to_integers, set_pixel_data

__version__ = "0.1.0"

__all__ = [
    "Capability",
    "DecodeError",
    "DeviceUnavailable",
    "Extent",
    "GpudcmError",
    "InvalidPixelData",
    "PixelReader",
    "PixelSpec",
    "Requantized",
    "UnsupportedTransferSyntax",
    "apply_color_lut",
    "apply_modality_lut",
    "apply_presentation_lut",
    "apply_rescale",
    "apply_voi",
    "apply_voi_lut",
    "apply_windowing",
    "convert_color_space",
    "backend_for",
    "capabilities",
    "contact_sheet",
    "decode_batch",
    "frame_extents",
    "iter_frames",
    "open_pixels",
    "pixel_array",
    "pixel_spec",
    "preprocess",
    "render",
    "rescale_to_integers",
    "set_pixel_data",
    "show",
]
