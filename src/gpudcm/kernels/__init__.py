"""CUDA sources for gpudcm (shipped in the wheel as ``gpudcm.kernels``; no Python here)."""
