"""Compile every kernel instantiation with NVRTC for sm_80 and sm_90, on the CPU.

Needs only the NVRTC library (PyPI ``nvidia-cuda-nvrtc``), no GPU; it is
loaded through ctypes (``tests/_harness/nvrtc.py``).
"""

from __future__ import annotations

import json
import re

import pytest
from _harness import nvrtc

from gpucoded import kernels as K

ARCHS = (80, 90)
#: options CuPy adds on its own when it JIT-compiles a RawModule
CUPY_IMPLICIT = ("-ftz=true",)


@pytest.fixture(scope="module")
def lib():
    try:
        return nvrtc.load()
    except OSError as e:
        pytest.skip(f"NVRTC cannot be loaded: {e}")


_CACHE: dict = {}


def compiled(lib, family: str, arch: int) -> nvrtc.Result:
    """Compile a family once per test session (as CuPy would: with -ftz=true)."""
    key = (family, arch)
    if key not in _CACHE:
        names = K.all_name_expressions(family)
        opts = (*K.NVRTC_OPTIONS, *CUPY_IMPLICIT)
        _CACHE[key] = nvrtc.compile_source(lib, K.source(family), names, opts, arch)
    return _CACHE[key]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("family", K.FAMILIES)
def test_family_compiles(lib, family, arch):
    if arch not in nvrtc.supported_archs(lib):
        pytest.skip(f"this NVRTC {nvrtc.version(lib)} lacks sm_{arch}")
    names = K.all_name_expressions(family)
    res = compiled(lib, family, arch)
    assert res.ok, res.log
    assert "warning" not in res.log.lower(), res.log
    assert set(res.lowered) == set(names)
    assert res.cubin_size > 0


def test_no_fast_math():
    assert not any("fast" in o for o in K.NVRTC_OPTIONS)


def test_cmake_instantiations_match_planner():
    """kernels/instantiate.cu instantiates exactly what the planner can ask for."""
    text = (K.kernel_dir() / "instantiate.cu").read_text()
    inst = set(re.findall(r"GC_INST\((\w+),\s*([\w:]+),\s*(\d+),\s*(\d+)\)", text))
    got = {K.name_expression(f, ct, int(v), int(m)) for f, ct, v, m in inst}
    want = set(K.all_name_expressions("encode")) | set(K.all_name_expressions("decode"))
    assert got == want


def test_fatbin_name_map_matches_nvrtc(lib):
    """If CMake built the fatbin, its name map agrees with NVRTC's lowered names."""
    fb = K.fatbin_path()
    if fb is None:
        pytest.skip("no CMake-built fatbin (cmake -S . -B build && cmake --build build)")
    names = K.load_name_map(fb)
    for family in K.FAMILIES:
        exprs = K.all_name_expressions(family)
        res = compiled(lib, family, 80)
        for e in exprs:
            assert names[e] == res.lowered[e], (e, json.dumps(names.get(e)))
