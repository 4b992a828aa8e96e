r"""Worker number formats: the one table every layer reads.

=========  =======  ==============  ========  ================  ===========
name       storage  unit roundoff   mantissa  cuBLAS compute    kernel C
                    :math:`u`       bits      (CuPy code)       type
=========  =======  ==============  ========  ================  ===========
float64    float64  :math:`2^{-53}`  52       (float64 GEMM)    ``double``
float32    float32  :math:`2^{-24}`  23       1 (IEEE FP32)     ``float``
tf32       float32  :math:`2^{-11}`  10       7 (TF32)          ``float``
bf16       float32  :math:`2^{-8}`    7       6 (BF16)          ``float``
=========  =======  ==============  ========  ================  ===========

A *format* is what a worker computes in; the *storage* dtype is what the encoded data
and the answers are held in. TF32 and BF16 keep float32 storage and round the GEMM
operands to 10 / 7 explicit mantissa bits (tensor cores: exact products, float32
accumulation). Complex dtypes map to the format of their real part.

Every bound, point choice (γ), executor and kernel takes its numbers from
:data:`FORMATS`; nothing else in the package keeps a unit roundoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import array_module

__all__ = [
    "FORMATS",
    "Format",
    "FormatSpec",
    "get_format",
    "round_mantissa",
    "round_operands",
    "unit_roundoff",
]


@dataclass(frozen=True)
class Format:
    """One worker number format (a row of the table above).

    Attributes
    ----------
    name : str
    storage : numpy.dtype
        Dtype of the encoded operands and of the answers.
    u : float
        Unit roundoff of one worker GEMM's arithmetic (half an ulp at 1).
    mantissa_bits : int
        Explicit mantissa bits the GEMM operands keep.
    cupy_compute_type : int or None
        CuPy's code for the cuBLAS compute type of float32 GEMMs (None: not a
        float32 compute mode).
    c_type : str
        C type of the storage in the CUDA kernels.
    """

    name: str
    storage: np.dtype
    u: float
    mantissa_bits: int
    cupy_compute_type: int | None
    c_type: str

    @property
    def storage_format(self) -> Format:
        """The format of the storage dtype's own arithmetic (encode and decode sums,
        accumulation): float32 for TF32/BF16, else the format itself."""
        return get_format(self.storage)  # memoised per dtype

    @property
    def emulated(self) -> bool:
        """Whether the GEMM keeps fewer mantissa bits than its storage (TF32, BF16)."""
        return self.mantissa_bits < np.finfo(self.storage).nmant

    def __str__(self) -> str:
        return self.name


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format("float64", np.dtype(np.float64), 2.0**-53, 52, None, "double"),
        Format("float32", np.dtype(np.float32), 2.0**-24, 23, 1, "float"),
        Format("tf32", np.dtype(np.float32), 2.0**-11, 10, 7, "float"),
        Format("bf16", np.dtype(np.float32), 2.0**-8, 7, 6, "float"),
    )
}


#: What the public calls accept as a worker format: a :class:`Format`, its name, or a
#: float/complex NumPy dtype (or type). Normalised once, by :func:`get_format`, where a
#: public call receives it; the core passes :class:`Format` objects on.
FormatSpec = Format | str | np.dtype | type

#: Formats of the dtypes seen so far (the dtype lookup allocates; it runs per product).
_DTYPE_FORMATS: dict[np.dtype, Format] = {}


def get_format(spec: FormatSpec) -> Format:
    """The :class:`Format` for a format, a format name or a NumPy dtype.

    Complex dtypes map to their real part's format. Raises ``ValueError`` naming the
    valid choices otherwise (float16 is not a worker format: its 5-bit exponent
    overflows in the encode sums). Memoised per dtype: this is the one lookup every
    layer uses.
    """
    if isinstance(spec, Format):
        return spec
    if isinstance(spec, str) and spec in FORMATS:
        return FORMATS[spec]
    if isinstance(spec, np.dtype):
        hit = _DTYPE_FORMATS.get(spec)
        if hit is None:
            hit = _DTYPE_FORMATS[spec] = _dtype_format(spec)
        return hit
    return _dtype_format(spec)


def _dtype_format(spec: Any) -> Format:
    """:func:`get_format` for anything but a Format or a format name (not memoised)."""
    try:
        dt = np.dtype(spec)
    except TypeError:
        dt = None
    if dt is not None and dt.kind in "fc":
        name = np.empty(0, dt).real.dtype.name
        if name in FORMATS:
            return FORMATS[name]
    raise ValueError(
        f"unknown worker format {spec!r}; use one of {', '.join(FORMATS)} "
        "(or a float32/float64/complex NumPy dtype)"
    )


def unit_roundoff(spec: FormatSpec) -> float:
    """Unit roundoff :math:`u` of a format, format name or dtype."""
    return get_format(spec).u


def round_mantissa(X: Any, bits: int) -> Any:
    r"""Round float32 values to ``bits`` explicit mantissa bits (round to nearest even).

    The result :math:`y` satisfies :math:`|y-x|\le 2^{-(\text{bits}+1)}|x|` (half an
    ulp of the short format); the exponent range stays float32's, as in TF32 and BF16.
    Works on NumPy and CuPy arrays.
    """
    xp = array_module(X)
    if X.dtype != np.float32:
        raise TypeError(f"round_mantissa expects float32, got {X.dtype}")
    if not 0 <= bits <= 23:
        raise ValueError(f"bits must be in [0, 23], got {bits}")
    drop = 23 - bits
    if drop == 0:
        return X
    u = X.view(xp.uint32)
    lsb = (u >> drop) & xp.uint32(1)
    bias = lsb + xp.uint32((1 << (drop - 1)) - 1)
    mask = xp.uint32((0xFFFFFFFF >> drop) << drop)
    return ((u + bias) & mask).view(xp.float32)


def round_operands(X: Any, fmt: FormatSpec) -> Any:
    """``X`` as a worker GEMM in format ``fmt`` reads it (CPU emulation of TF32/BF16).

    Identity for float32/float64 (and complex) formats; for an emulated format the
    float32 storage is rounded to its :attr:`Format.mantissa_bits`
    (:func:`round_mantissa`). A product of rounded operands accumulated in float32 is
    what a tensor core computes (exact products, float32 sums).
    """
    f = get_format(fmt)
    return round_mantissa(X, f.mantissa_bits) if f.emulated else X
