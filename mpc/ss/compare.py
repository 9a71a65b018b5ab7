"""Comparisons via bit decomposition (A2B) with an edaBit and boolean triples.

To decompose an arithmetically shared x, the parties take an edaBit (r shared both
arithmetically and bitwise), open c = x - r (uniform: reveals nothing) and add the
public word c to the bitwise-shared r with a Kogge-Stone carry-lookahead adder on 64-bit
words: 6 rounds of ANDs (bit-sliced, vectorised over all elements, 11 word-ANDs per
element), whatever the number of parties. The sum's bits are x's bits (XOR-shared).

``ltz(x)`` is the top bit (x < 0 for signed |x| < 2^63), converted back to an arithmetic
0/1 share with a daBit (one more round): 8 rounds in all. ``a < b`` is ``ltz(a - b)``,
exact whenever |a - b| < 2^63 (always true inside the engine's range).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.ss.beaver import and_words, b2a_bits, open_arith
from mpc.ss.triples import get_source

_SHIFTS = (1, 2, 4, 8, 16, 32)


def bit_decompose(ctx: Any, x: np.ndarray) -> np.ndarray:
    """XOR shares of the 64 bits of the arithmetically shared x (one word per element)."""
    x = np.asarray(x, dtype=np.uint64)
    if x.ndim == 0:
        return bit_decompose(ctx, x.reshape(1)).reshape(())
    r_arith, r_bool = get_source(ctx).edabit(x.shape)
    c = open_arith(ctx, x - r_arith)          # x = c + r (mod 2^64)
    g = r_bool & c                             # generate: c_i AND r_i (c public: local)
    p = r_bool ^ c if ctx.rank == 0 else r_bool.copy()   # propagate: c_i XOR r_i
    p0 = p
    for i, s in enumerate(_SHIFTS):
        sh = np.uint64(s)
        if i < len(_SHIFTS) - 1:
            pg, pp = and_words(ctx, [(p, g << sh), (p, p << sh)])
            g, p = g ^ pg, pp
        else:
            (pg,) = and_words(ctx, [(p, g << sh)])
            g = g ^ pg
    # g bit i = carry out of bit i; sum bit i = p0_i XOR carry into i
    return p0 ^ (g << np.uint64(1))


def ltz(ctx: Any, x: np.ndarray) -> np.ndarray:
    """Arithmetic 0/1 shares of [x < 0] (signed reading of the ring element)."""
    bits = bit_decompose(ctx, x)
    return b2a_bits(ctx, bits >> np.uint64(63))


def or_words(ctx: Any, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """XOR shares of x | y = x ^ y ^ (x & y) for each pair; one round."""
    ands = and_words(ctx, pairs)
    return [x ^ y ^ z for (x, y), z in zip(pairs, ands, strict=True)]


def msb_onehot(ctx: Any, x: np.ndarray, positions: int = 63) -> np.ndarray:
    """Arithmetic 0/1 shares, shape (positions, *x.shape): row k is 1 iff x's highest set
    bit is k (x read as non-negative below 2^positions; all rows 0 when x == 0)."""
    bits = bit_decompose(ctx, x) & np.uint64((1 << positions) - 1)
    h = bits
    for s in _SHIFTS:                       # suffix OR: h_i = OR of bits i..63
        (h,) = or_words(ctx, [(h, h >> np.uint64(s))])
    onehot = h ^ (h >> np.uint64(1))
    rows = np.stack([(onehot >> np.uint64(k)) & np.uint64(1) for k in range(positions)])
    return b2a_bits(ctx, rows)
