"""The CUDA device path (CuPy). Importing this package does not import CuPy."""
