"""Truncation for two-party sources (Paillier, OT) built on one bit product per element.

Both dealer-free sources derive truncation pairs from daBits and truncate by the wrap bit
of the two shares; only how they multiply two parties' bits differs (a Paillier cross
product or a correlated OT), so that is the one thing they pass in.

Reveals nothing: every function here is local arithmetic on shares, plus the bit
product the source runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

_ONE = np.uint64(1)
_BITS = np.arange(64, dtype=np.uint64)


def trunc_pair_from_dabits(ba: np.ndarray, shape: tuple[int, ...], bits: Any
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shares of (r, r >> 63, (r mod 2^63) >> bits) from arithmetic shares ``ba`` of r's 64
    random bits (shape ``(64, prod(shape))``): r = Σ 2^j b_j, the rest by bit weights."""
    ba = ba.reshape((64,) + shape)
    j = _BITS.reshape((64,) + (1,) * len(shape))
    r = np.sum(ba * (_ONE << j), axis=0, dtype=np.uint64)
    shift = np.broadcast_to(np.asarray(bits, dtype=np.uint64), shape)
    w = np.where((j >= shift) & (j < 63), _ONE << ((j - np.minimum(j, shift)) % np.uint64(64)),
                 np.uint64(0))
    low = np.sum(ba * w, axis=0, dtype=np.uint64)
    return r, ba[63].copy(), low


def truncate_by_wrap(x: np.ndarray, bits: Any, first: bool,
                     and_bits: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Shares of floor(x / 2^bits) + {0 or 1} for signed |x| < 2^62, with ONE bit product.

    With x' = x + 2^62 (top bit 0) and shares x'_0 + x'_1 = x' + 2^64 w, the wrap is
    w = m0 OR m1 = m0 + m1 - m0 m1 for the shares' top bits m_i (if exactly one top bit is
    set and there were no wrap, x' would have its top bit set). Then
    sum_i (x'_i >> f) - 2^(64-f) w = floor(x' / 2^f) - {0 or 1}; the first party adds one
    unit, so the error is within one ulp either way, with no failure probability (unlike
    local share shifting). ``and_bits(m)`` returns this party's arithmetic share of m0·m1
    for its flat array of top bits m.
    """
    x = np.asarray(x, dtype=np.uint64)
    shifted = x + np.uint64(1 << 62) if first else x.copy()
    m = (shifted >> np.uint64(63)).reshape(-1)
    w = (m - and_bits(m)).reshape(x.shape)                       # shares of m0 OR m1
    bits = np.broadcast_to(np.asarray(bits, dtype=np.uint64), x.shape)
    nonzero = (bits > 0).astype(np.uint64)
    wrap_weight = nonzero * (_ONE << ((np.uint64(64) - bits) % np.uint64(64)))  # 2^64 = 0
    out = (shifted >> bits) - w * wrap_weight
    if first:
        out += nonzero - (np.uint64(1 << 62) >> bits)
    return out
