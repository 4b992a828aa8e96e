"""Ahead-of-time build: CMake + nvcc produce the fatbin and a name map NVRTC agrees with."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from _harness import nvrtc

from gpucoded import kernels as K


@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("nvcc") is None,
    reason="cmake or nvcc not on PATH",
)
def test_cmake_build(tmp_path):
    src = K.kernel_dir().parent
    if not (src / "CMakeLists.txt").is_file():
        pytest.skip("not a source checkout")
    b = tmp_path / "build"
    for cmd in (["cmake", "-S", str(src), "-B", str(b)], ["cmake", "--build", str(b)]):
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
    try:
        lib = nvrtc.load()
    except OSError:
        return
    for fam in K.FAMILIES:
        exprs = K.all_name_expressions(fam)
        res = nvrtc.compile_source(lib, K.source(fam), exprs, K.NVRTC_OPTIONS, 90)
        assert all(names[e] == res.lowered[e] for e in exprs)
