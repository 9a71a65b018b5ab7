"""Secret-sharing engine: SharedTensor over Z_2^64, fixed point, Beaver triples, comparisons.

    x = ss.share(ctx, array_or_None, owner="alice")
    y = ss.share(ctx, array_or_None, owner="bob")
    z = (x * y + 1.5).sum()
    print(z.reveal())            # every computing party gets the value

Triples come from the job's ``triples`` runtime option: a seed-compressed ``dealer``
helper party (default) or dealer-free ``paillier`` (two parties). See tensor.py for what
each operation reveals (nothing but shapes, until ``reveal``).
"""

from __future__ import annotations

from mpc.ss.functions import (
    argmax,
    argmin,
    divide,
    inv_sqrt,
    max_,
    maximum,
    median,
    min_,
    minimum,
    quantile,
    reciprocal,
    sort,
    sqrt,
    where,
)
from mpc.ss.tensor import SharedTensor, concatenate, from_shares, share, stack

__all__ = ["SharedTensor", "argmax", "argmin", "concatenate", "divide", "from_shares", "inv_sqrt", "max_",
           "maximum", "median", "min_", "minimum", "quantile", "reciprocal", "share", "sort",
           "sqrt", "stack", "where"]
