"""Ahead-of-time build: CMake + nvcc produce the fatbin and a name map NVRTC agrees with."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from gpucoded import kernels as K


def _up_to_date_build(src) -> object:
    """The repository's build/ if its fatbin is newer than every kernel source."""
    b = src / "build"
    fb, nm = b / K.FATBIN_NAME, b / K.NAMES_NAME
    if not (fb.is_file() and nm.is_file()):
        return None
    srcs = [*K.kernel_dir().glob("*.cu*"), K.kernel_dir() / "names.cmake", src / "CMakeLists.txt"]
    newest = max(p.stat().st_mtime for p in srcs)
    return b if min(fb.stat().st_mtime, nm.stat().st_mtime) >= newest else None


@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("nvcc") is None,
    reason="cmake or nvcc not on PATH",
)
def test_cmake_build(tmp_path):
    src = K.kernel_dir().parent
    if not (src / "CMakeLists.txt").is_file():
        pytest.skip("not a source checkout")
    b = _up_to_date_build(src)  # CI builds it just before pytest: check that one
    if b is None:
        b = tmp_path / "build"
        # a scratch build: leave the checkout's kernels/ (package data) alone
        configure = ["cmake", "-S", str(src), "-B", str(b), "-DGPUCODED_COPY_TO_SOURCE=OFF"]
        for cmd in (configure, ["cmake", "--build", str(b), "--parallel", "2"]):
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stdout + r.stderr
            assert "spill" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    fatbin = b / K.FATBIN_NAME
    assert fatbin.stat().st_size > 0
    names = json.loads((b / K.NAMES_NAME).read_text())
    want = set()
    for fam in K.FAMILIES:
        want |= set(K.all_name_expressions(fam))
    assert set(names) == want
    # symbol names against NVRTC: tests/test_kernels_nvrtc.py (for the build/ fatbin)
