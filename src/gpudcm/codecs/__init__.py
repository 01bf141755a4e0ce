"""CPU codecs: a registry of backends per transfer syntax and frame decoding with pydicom's values.

Stable API (other modules and the lazy reader call these; keep the signatures):

``decode_frame(spec, data, *, raw=False, as_rgb=True, out=None, bit_offset=0, info=None, backend=None) -> np.ndarray``
    One frame from its bytes, shaped ``spec.frame_shape`` in ``spec.dtype``, equal to pydicom.
``decode_frames(spec, frames, out, *, raw=False, as_rgb=True, threads=None, bit_offsets=None, first_index=None) -> list[str]``
    Many frames of one file into ``out`` (frames first), on a thread pool when the codecs release the
    GIL (default: all cores); returns the backend name of each frame.
``choose(spec, info=None) -> (Backend, why_not_faster)``, ``backends(ts)``, ``available(ts)``, ``describe(ts)``
    The registry (gpudcm/codecs/registry.py): per transfer syntax the CPU backends, fastest first.
``frame_info(spec, data) -> dict``
    The codestream parameters pydicom reads before a frame (precision, signedness, JPEG markers).
``thread_map(fn, items, threads)``, ``default_threads()``
    The shared CPU thread pool.
``FrameClasses(spec).decide(data) -> (info, backend)``
    ``frame_info`` and ``choose`` remembered by JPEG header (gpudcm/codecs/frame_classes.py).
"""

from .decode import decode_frame, decode_frames, default_threads, finish, thread_map
from .frame_classes import FrameClasses
from .pydicom_plugins import conformed_photometric, frame_info
from .registry import REGISTRY, Backend, available, backends, choose, describe

__all__ = [
    "REGISTRY", "Backend", "FrameClasses", "available", "backends", "choose", "conformed_photometric", "decode_frame",
    "decode_frames", "default_threads", "describe", "finish", "frame_info", "thread_map",
]
