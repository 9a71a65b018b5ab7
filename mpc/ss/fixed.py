"""Fixed-point encoding between floats and the ring Z_2^64 (numpy uint64).

A real x is stored as the integer round(x * 2^f) mod 2^64 (two's complement), with
``f = ctx.options.get("frac_bits", 16)``. Pure local arithmetic: reveals nothing.

Range. Shares live in Z_2^64; the engine needs signed values to stay below 2^62 in
magnitude (truncation and comparisons rely on it), so ``share`` accepts |x| < 2^(61-f)
(2^45 ~ 3.5e13 for f = 16) and refuses anything larger with a ValueError. A product of
two fixed-point values holds 2f fractional bits before truncation, so ``x * y`` needs
|x * y| < 2^(62-2f) (2^30 ~ 1.07e9 for f = 16); choose fewer fractional bits, or rescale
the data, for larger products.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.runtime.context import Context

DEFAULT_FRAC_BITS = 16
RING_BITS = 64


def frac_bits(ctx: Context) -> int:
    """The job's number of fractional bits (runtime option ``frac_bits``, default 16)."""
    f = int(ctx.options.get("frac_bits", DEFAULT_FRAC_BITS))
    if not 0 <= f <= 30:
        raise ValueError(f"frac_bits must be between 0 and 30, got {f}")
    return f


def max_abs(f: int) -> float:
    """Largest magnitude (exclusive) a fixed-point value with ``f`` fractional bits may have."""
    return float(2 ** (61 - f))


def max_abs_int() -> int:
    """Largest magnitude (exclusive) of an integer tensor value."""
    return 2 ** 61


def encode(values: Any, f: int, what: str = "value") -> np.ndarray:
    """Floats -> ring elements with ``f`` fractional bits; ValueError outside the range."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contains NaN or infinity; cannot encode as fixed point")
    limit = max_abs(f)
    if arr.size and float(np.max(np.abs(arr))) >= limit:
        raise ValueError(f"{what} is outside the fixed-point range: |x| must be < 2^{61 - f} "
                         f"(= {limit:.3g}) with {f} fractional bits")
    return np.round(arr * float(2 ** f)).astype(np.int64).view(np.uint64)


def encode_int(values: Any, what: str = "value") -> np.ndarray:
    """Integers -> ring elements (two's complement); ValueError outside |x| < 2^61."""
    arr = np.asarray(values)
    if arr.dtype.kind == "u":
        if arr.size and int(arr.max()) >= max_abs_int():
            raise ValueError(f"{what} is outside the integer range |x| < 2^61")
        return arr.astype(np.uint64)
    arr = arr.astype(np.int64)
    if arr.size and (int(arr.max()) >= max_abs_int() or int(arr.min()) <= -max_abs_int()):
        raise ValueError(f"{what} is outside the integer range |x| < 2^61")
    return arr.view(np.uint64)


def decode(ring: np.ndarray, f: int) -> np.ndarray:
    """Ring elements -> float64 (f > 0) or int64 (f == 0)."""
    signed = np.asarray(ring, dtype=np.uint64).view(np.int64)
    if f == 0:
        return signed.copy()
    return np.asarray(signed.astype(np.float64) / float(2 ** f))
