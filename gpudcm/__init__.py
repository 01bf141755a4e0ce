"""gpudcm: DICOM pixel data to NumPy (CPU, equal to pydicom) or CuPy (CUDA) arrays."""

from .api import decode_batch, iter_frames, pixel_array
from .capabilities import Capability, backend_for, capabilities
from .errors import DecodeError, DeviceUnavailable, GpudcmError, InvalidPixelData, UnsupportedTransferSyntax
from .frames import Extent, frame_extents
from .spec import PixelSpec, pixel_spec
from .writer import Requantized, rescale_to_integers, set_pixel_data

__version__ = "0.1.0"

__all__ = [
    "Capability",
    "DecodeError",
    "DeviceUnavailable",
    "Extent",
    "GpudcmError",
    "InvalidPixelData",
    "PixelSpec",
    "Requantized",
    "UnsupportedTransferSyntax",
    "backend_for",
    "capabilities",
    "decode_batch",
    "frame_extents",
    "iter_frames",
    "pixel_array",
    "pixel_spec",
    "rescale_to_integers",
    "set_pixel_data",
]
