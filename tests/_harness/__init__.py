"""Test-only helpers: NVRTC through ctypes and the CPU emulation of the kernels."""
