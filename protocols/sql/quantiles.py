"""Quantiles of the rows of each group (GROUP BY, or a WHERE on shares), on secret shares.

A group is a secret 0/1 weight per joined row (``h``, the job's weight matrix), and its row
count is secret to the parties outside ``reveal_to``, so the quantile's ranks are secret
too: the public-rank quickselect of :mod:`mpc.ss.order` does not apply. Instead (numpy's
and DuckDB's ``linear`` method, ``quantile_cont``), per group g with count c:

1. The column is prepared once (:func:`protocols.stats.vertical.prepare_many`: its
   minimum and the public bit length b of its range; y = x - min in [0, 2^b)); rows
   outside the group are moved above every value: y' = h y + (1 - h) 2^b (one product).
2. The position P = (c - 1) round(q 2^30) is split into lo = floor(P / 2^30) and the
   weight t = P - lo 2^30 in [0, 2^30): one truncation (floor or floor + 1) and one
   comparison t < 0 that corrects it, so lo is exact.
3. v_lo, the lo-th smallest of y', by a bitwise search with a secret threshold (count the
   rows <= threshold, compare the count with lo + 1; one batched comparison of all rows
   per bit), the same search :mod:`mpc.ss.order` runs for a public rank; v_hi, the
   (lo + 1)-th, by ``mpc.ss.order.next_values`` (two comparisons per row). Rows outside
   the group are above every value of it, so the k-th smallest of y' for k < c is the
   group's k-th smallest.
4. v = v_lo + (v_hi - v_lo) t / 2^30 on shares, with the difference split at 2^30 so
   that no product leaves the ring; the result carries E = min(30, 60 - b) more
   fractional bits than the column (one unit of error at that scale).

Nothing is opened here: the caller opens the results of the kept groups to ``reveal_to``
(or compares them with a HAVING constant on shares). With the dealer the search always
runs 62 bits, so that the number of rounds does not tell it the range's bit length.
Cost per group and quantile: (bits + 2) comparisons of every joined row.
"""

from __future__ import annotations

import numpy as np

from mpc.ss import SharedTensor
from mpc.ss.order import next_values, secret_search
from mpc.ss.provider import DEALER, source_kind
from protocols.stats import vertical

WEIGHT_BITS = 30         # bits of the interpolation weight t


def grouped(x: SharedTensor, h: SharedTensor, counts: SharedTensor, qs: list[float]) -> tuple[SharedTensor, int]:
    """Shares of the ``qs`` quantiles (linear) of x over the rows of each group: x a 1-D
    SharedTensor of n rows, h the (g, n) 0/1 integer weights, counts their (g,) row sums.
    Returns ((g, len(qs)) ring integers, frac) with value = integer / 2^frac."""
    ctx = x.ctx
    col = vertical.prepare_many(ctx, {"x": x})[0]
    g, n = h.shape
    rb = col.range_bits
    big = 1 << rb
    y = col.y.with_frac_bits(0).reshape(1, n)
    ys = h * (y - big) + big                                        # (g, n): outside rows at 2^b
    k = len(qs)
    owner = np.repeat(np.arange(g), k)                              # row (g, q) -> group g
    weights = np.array([round(q * 2 ** WEIGHT_BITS) for q in qs], dtype=np.int64)
    pos = (counts.with_frac_bits(0) - 1).reshape(g, 1) * weights.reshape(1, k)   # (g, k): P
    pos = pos.reshape(-1)
    lo = pos >> WEIGHT_BITS                                         # floor or floor + 1
    t = pos - (lo << WEIGHT_BITS)
    low = t < 0                                                     # the truncation rounded up
    lo, t = lo - low, t + (low << WEIGHT_BITS)
    bits = 62 if source_kind(ctx.options) == DEALER else rb + 1
    v_lo = secret_search(ys[owner], lo, bits)
    v_hi = next_values(ys, owner, v_lo, lo + 1, [rb] * g)
    e = max(0, min(WEIGHT_BITS, 59 - max(col.bits, rb + 1)))    # (v << e) and (min << e) stay below 2^61
    d = v_hi - v_lo                                                 # in [0, 2^(b+1))
    d_hi = d >> WEIGHT_BITS
    d_lo = d - (d_hi << WEIGHT_BITS)                                # |d_lo| <= 2^30
    frac_part = d_lo * t
    frac_part = frac_part >> (WEIGHT_BITS - e) if e < WEIGHT_BITS else frac_part
    out = ((v_lo + d_hi * t) << e) + frac_part + (col.mn.with_frac_bits(0).reshape(1) << e)
    return out.reshape(g, k), col.frac + e
