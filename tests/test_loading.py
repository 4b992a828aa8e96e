"""Where the compiled CPU loops come from, and that nothing others can write is loaded.

Claims checked:

* a library in a directory that group or others can write — or below a parent that
  they can write without the sticky bit — is never loaded (``GPUCODED_HOSTLIB`` and
  the build cache alike); the sticky ``/tmp`` pattern and private directories are;
* the run-time build cache is per user (``$XDG_CACHE_HOME/gpucoded`` or
  ``~/.cache/gpucoded``, never the shared temp dir), created 0700, and a planted
  cache (open to others, or owned by another user) is refused before anything is
  compiled into it or loaded from it;
* the library ``pip install .`` puts into the package is used only with the stamp
  of the source it was built from;
* CMakeLists.txt configures without a C++ compiler (NumPy fallback, one line).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gpucoded import hostops

needs_cxx = pytest.mark.skipif(
    shutil.which("g++") is None and shutil.which("c++") is None, reason="no C++ compiler"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One library built into a private directory (0700)."""
    d = tmp_path_factory.mktemp("private")
    os.chmod(d, 0o700)
    return hostops.build(d / hostops.LIB_NAME)


@pytest.fixture
def fresh(monkeypatch):
    """Reload the library after the test (the environment is restored)."""
    yield monkeypatch
    monkeypatch.undo()
    hostops.library(reload=True)


def _plant(lib: Path, where: Path, mode: int, name: str = hostops.LIB_NAME) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(lib, where / name)
    os.chmod(where / name, 0o755)
    os.chmod(where, mode)
    return where / name


@needs_cxx
def test_private_library_loads(built, fresh):
    """The control: the same file in a private directory is loaded."""
    assert hostops.unsafe_reason(built) is None
    fresh.setenv("GPUCODED_HOSTLIB", str(built))
    assert hostops.library(reload=True) is not None


@needs_cxx
@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_library_in_shared_dir_is_refused(built, fresh, tmp_path, capfd, mode):
    """World- or group-writable directory: not loaded, one line says why, NumPy runs."""
    planted = _plant(built, tmp_path / "shared", mode)
    assert "writable by group or others" in hostops.unsafe_reason(planted)
    fresh.setenv("GPUCODED_HOSTLIB", str(planted))
    assert hostops.library(reload=True) is None
    err = capfd.readouterr().err
    assert f"not loading CPU kernels {planted}" in err and "using NumPy" in err


@needs_cxx
def test_library_writable_by_others_is_refused(built, tmp_path):
    planted = _plant(built, tmp_path / "d", 0o700)
    os.chmod(planted, 0o666)
    assert "writable by group or others" in hostops.unsafe_reason(planted)


@needs_cxx
def test_parent_chain(built, tmp_path):
    """A parent writable by others is fine only with the sticky bit (as /tmp has)."""
    top = tmp_path / "top"
    planted = _plant(built, top / "inner", 0o755)
    os.chmod(top, 0o777)
    assert "not sticky" in hostops.unsafe_reason(planted)
    os.chmod(top, 0o1777)
    assert hostops.unsafe_reason(planted) is None


@needs_cxx
def test_link_into_shared_dir_is_refused(built, tmp_path):
    """A private-looking link to a planted file: the target's directory is checked."""
    planted = _plant(built, tmp_path / "shared", 0o777)
    link_dir = tmp_path / "mine"
    link_dir.mkdir(mode=0o700)
    (link_dir / hostops.LIB_NAME).symlink_to(planted)
    assert "shared" in hostops.unsafe_reason(link_dir / hostops.LIB_NAME)


def test_cache_dir_is_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv("GPUCODED_HOST_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hostops.cache_dir() == tmp_path / "xdg" / "gpucoded"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hostops.cache_dir() == tmp_path / "home" / ".cache" / "gpucoded"


def test_cache_created_private(monkeypatch, tmp_path):
    d = tmp_path / "xdg" / "gpucoded"
    assert hostops._private_dir(d) == d
    assert d.stat().st_mode & 0o777 == 0o700
    assert hostops.unsafe_reason(d, private=True) is None


@needs_cxx
def test_planted_cache_is_refused(built, fresh, tmp_path, capfd):
    """A cache directory someone else prepared, holding a library under the exact name
    the loader looks for: neither loaded nor built into."""
    cache = tmp_path / "cache"
    fresh.setenv("GPUCODED_HOST_CACHE", str(cache))
    fresh.delenv("GPUCODED_HOSTLIB", raising=False)
    (expected, private), *_ = [c for c in hostops._candidates() if c[1]]
    assert private and expected.parent == cache
    _plant(built, cache, 0o777, expected.name)
    # no other candidate may come first: the installed package's and a checkout's
    # build/ (CI builds one) are moved out of the way
    fresh.setattr(hostops, "packaged_path", lambda: tmp_path / "none" / hostops.LIB_NAME)
    fresh.setattr(hostops, "repo_build_path", lambda: tmp_path / "none" / hostops.LIB_NAME)
    fresh.chdir(tmp_path)
    assert hostops.library(reload=True) is None or hostops._STATE["path"] != expected
    assert "not loading CPU kernels" in capfd.readouterr().err
    with pytest.raises(PermissionError, match="not private.*GPUCODED_HOST_CACHE"):
        hostops.build()
    os.chmod(cache, 0o755)  # not writable by others, but not 0700 either
    assert "not 700" in hostops.unsafe_reason(cache, private=True)
    os.chmod(cache, 0o700)  # now it is private: the same file loads
    assert hostops.unsafe_reason(expected, private=True) is None
    assert hostops.library(reload=True) is not None and hostops._STATE["path"] == expected


@needs_cxx
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs chown")
def test_cache_owned_by_another_user_is_refused(built, tmp_path):
    cache = tmp_path / "cache"
    planted = _plant(built, cache, 0o700)
    os.chown(cache, 12345, 12345)
    assert "owned by uid 12345" in hostops.unsafe_reason(planted, private=True)
    os.chown(cache, 0, 0)
    os.chown(planted, 12345, 12345)
    assert "owned by uid 12345" in hostops.unsafe_reason(planted, private=True)


@needs_cxx
def test_packaged_library_needs_its_stamp(built, monkeypatch, tmp_path):
    """``pip install .``'s library is used only if built from the source next to it."""
    pkg = _plant(built, tmp_path / "pkg", 0o755)
    monkeypatch.delenv("GPUCODED_HOSTLIB", raising=False)
    monkeypatch.setattr(hostops, "packaged_path", lambda: pkg)
    stamp = pkg.with_name(pkg.name + ".sha256")
    assert (pkg, False) not in hostops._candidates()  # no stamp
    stamp.write_text("0" * 64 + "\n")
    assert (pkg, False) not in hostops._candidates()  # another source
    stamp.write_text(hostops.source_digest() + "\n")
    assert (pkg, False) in hostops._candidates()


def test_march_only_with_an_explicit_output():
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler")
    with pytest.raises(ValueError, match="march= needs out="):
        hostops.build(march="native")


@needs_cxx
def test_avx2_variant_only_where_the_cpu_has_it(built, fresh, tmp_path):
    """Runtime dispatch: the x86-64-v3 library next to the packaged one serves decode
    only on a CPU with every v3 feature; encode keeps the baseline."""
    pkg = _plant(built, tmp_path / "pkg", 0o755)
    v3 = pkg.parent / hostops.LIB_V3_NAME
    v3.write_bytes(pkg.read_bytes())
    pkg.with_name(pkg.name + ".sha256").write_text(hostops.source_digest())
    fresh.delenv("GPUCODED_HOSTLIB", raising=False)
    fresh.setattr(hostops, "packaged_path", lambda: pkg)
    fresh.setattr(hostops, "_candidates", lambda: [(pkg, False)])
    for has, want in ((True, v3), (False, pkg)):
        fresh.setitem(hostops._STATE, "cpu_v3", has)
        assert hostops.library(reload=True) is not None and hostops._STATE["path"] == pkg
        assert hostops.decode_library() is not None and hostops._STATE["decode_path"] == want
        assert (hostops.decode_library() is hostops.library()) == (not has)
    os.chmod(v3, 0o666)  # the variant passes the same checks
    fresh.setitem(hostops._STATE, "cpu_v3", True)
    hostops.library(reload=True)
    assert hostops._STATE["decode_path"] == pkg


@needs_cxx
@pytest.mark.skipif(not hostops.cpu_has_v3(), reason="CPU without x86-64-v3")
def test_avx2_variant_is_bit_identical(built, fresh, tmp_path):
    """Same results bit for bit as the baseline (no contraction, no reassociation)."""
    import numpy as np

    v3 = hostops.build(tmp_path / hostops.LIB_V3_NAME, march="x86-64-v3")
    rng = np.random.default_rng(1)
    X, G = rng.standard_normal((301, 203)), rng.pareto(1.5, (7, 4))
    Z, W = [rng.random((77, 51)) for _ in range(5)], rng.standard_normal((4, 5))
    out = []
    for lib in (built, v3):
        fresh.setenv("GPUCODED_HOSTLIB", str(lib))
        assert hostops.library(reload=True) is not None
        Y, C = np.empty((7, 151, 102)), np.empty((150, 100))
        assert hostops.encode_into(X, G, (2, 2), (151, 102), Y)
        assert hostops.combine_into(W, Z, (2, 2), C)
        out.append((Y, C))
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])


def test_no_march_native_by_default():
    """A wheel or build/ copied to another machine must run there."""
    assert not any("march" in f for f in hostops.CXX_FLAGS)
    cmake = (Path(hostops.__file__).parent.parent / "CMakeLists.txt").read_text()
    assert re.search(r'option\(GPUCODED_NATIVE "[^"]*" OFF\)', cmake)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="no cmake")
def test_cmake_without_a_compiler(tmp_path):
    """CMakeLists.txt configures without a C++ compiler: one line, no library target."""
    src = Path(hostops.__file__).resolve().parent.parent
    if not (src / "CMakeLists.txt").is_file():
        pytest.skip("not a source checkout")
    env = {**os.environ, "CXX": str(tmp_path / "no-such-compiler")}
    r = subprocess.run(
        ["cmake", "-S", str(src), "-B", str(tmp_path / "b"), "-DGPUCODED_CUDA=OFF"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no C++ compiler found: CPU loops not built, NumPy is used" in r.stdout
    assert not (tmp_path / "b" / "CMakeFiles" / "gpucoded_host.dir").exists()
