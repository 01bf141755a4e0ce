"""Test-only tools: the host build of the kernels' logic (g++ + ctypes) and an NVRTC compile check."""
