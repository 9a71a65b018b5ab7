"""Encodings between user values and raw Paillier plaintexts in ``[0, n)``.

* Signed integers (as phe): ``v`` in ``[-max_int, max_int]`` with ``max_int = n//3 - 1`` is
  stored as ``v mod n``. Decoding maps the top third back to negatives and refuses the
  middle third, where only an overflow of homomorphic operations can land.
* Fixed point, explicit: ``frac_bits=k`` stores ``round(v · 2^k)`` (round half to even,
  exact for every float64 since scaling by 2^k is exact); decoding divides by ``2^k`` with
  correct rounding. phe's base-16 exponent ``e`` is ``frac_bits = -4e``.

Reveals nothing: pure local conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gmpy2 import mpz

MAX_FRAC_BITS = 1024


def check_frac_bits(frac_bits: Any) -> int:
    """``frac_bits`` as an int in ``[0, MAX_FRAC_BITS]``; ``ValueError`` otherwise."""
    if isinstance(frac_bits, bool) or not isinstance(frac_bits, (int, np.integer)) \
            or not 0 <= frac_bits <= MAX_FRAC_BITS:
        raise ValueError(f"frac_bits must be an int in [0, {MAX_FRAC_BITS}], got {frac_bits!r}")
    return int(frac_bits)


def _is_float_like(values: Any) -> bool:
    if isinstance(values, np.ndarray):
        return values.dtype.kind == "f"
    if isinstance(values, (float, np.floating)):
        return True
    return any(isinstance(v, (float, np.floating)) for v in values)


def to_fixed_ints(values: Any, frac_bits: int | None) -> tuple[list[int], int]:
    """Python ints (scaled by ``2^frac_bits``) of a numpy array, a sequence or a scalar."""
    if isinstance(values, (int, float, np.integer, np.floating)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"expected a 1-D array of values, got shape {values.shape}")
        if values.dtype.kind not in "iuf":
            raise TypeError(f"cannot encrypt an array of dtype {values.dtype}")
    elif not isinstance(values, Sequence) or isinstance(values, (str, bytes)):
        raise TypeError(f"expected a numpy array or a sequence of numbers, got {type(values).__name__}")
    if frac_bits is None:
        if _is_float_like(values):
            raise TypeError("floats need an explicit fixed-point encoding: pass frac_bits=... "
                            "(e.g. frac_bits=32)")
        return int_list(values), 0
    fb = check_frac_bits(frac_bits)
    return [scale_float(v, fb) for v in (values.tolist() if isinstance(values, np.ndarray) else values)], fb


def int_list(values: Any) -> list[int]:
    """Python ints of an integer array or a sequence of ints; ``TypeError`` for anything else."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "iu":
            raise TypeError(f"expected integers, got an array of dtype {values.dtype}")
        return values.tolist()
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer, type(mpz(0)))):
            raise TypeError(f"expected integers, got {type(v).__name__} (use frac_bits for floats)")
        out.append(int(v))
    return out


def scale_float(v: Any, frac_bits: int) -> int:
    """``round(v · 2^frac_bits)`` exactly (ints are scaled exactly too)."""
    if isinstance(v, bool):
        raise TypeError("expected a number, got bool")
    if isinstance(v, (int, np.integer)) or type(v) is type(mpz(0)):
        return int(v) << frac_bits
    if not isinstance(v, (float, np.floating)):
        raise TypeError(f"expected a number, got {type(v).__name__}")
    f = float(v)
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("cannot encrypt NaN or infinity")
    num, den = f.as_integer_ratio()  # exact; den is a power of two
    q, r = divmod(num << frac_bits, den)
    if 2 * r > den or (2 * r == den and q & 1):  # round half to even, in exact integers
        q += 1
    return q


def encode_signed(ints: Sequence[int], n: int, max_int: int) -> list[mpz]:
    """Raw plaintexts ``v mod n``; ``ValueError`` if some ``|v| > max_int``."""
    n = mpz(n)
    out = []
    for i, v in enumerate(ints):
        if not -max_int <= v <= max_int:
            raise ValueError(f"value at index {i} is outside the plaintext range "
                             f"[-(n//3 - 1), n//3 - 1] of this {n.bit_length()}-bit key")
        out.append(mpz(v) % n)
    return out


def decode_signed(raws: Sequence[int], n: int, max_int: int) -> list[int]:
    """Signed ints of raw plaintexts; ``OverflowError`` for the middle third (overflow)."""
    n = mpz(n)
    low = n - max_int
    out = []
    for i, m in enumerate(raws):
        if m <= max_int:
            out.append(int(m))
        elif m >= low:
            out.append(int(m - n))
        else:
            raise OverflowError(f"decrypted value at index {i} overflowed the signed plaintext range "
                                "(homomorphic operations exceeded n//3, or the ciphertext is corrupt)")
    return out


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def from_fixed_ints(ints: list[int], frac_bits: int) -> np.ndarray | list[int]:
    """Float64 array if ``frac_bits``; int64 array if every int fits; else the list of ints."""
    if frac_bits:
        scale = 1 << frac_bits
        return np.array([v / scale for v in ints], dtype=np.float64)
    if all(_I64_MIN <= v <= _I64_MAX for v in ints):
        return np.array(ints, dtype=np.int64)
    return ints
