"""Secret-sharing engine: SharedTensor over Z_2^64, fixed point, Beaver triples, comparisons.

    x = ss.share(ctx, array_or_None, owner="alice")   # floats -> fixed point, ints stay ints
    y = ss.share(ctx, array_or_None, owner="bob")
    z = (x * y + 1.5).sum()
    print(z.reveal())            # every computing party gets the value (or reveal(to=...))

Operators: ``+ - * / @ ** abs``, unary ``-``, ``sum/mean``, indexing, ``reshape``,
``concatenate/stack``, comparisons ``< <= > >= == !=`` (0/1 integer tensors), ``where``,
``maximum/minimum``, ``max/min/min_max/argmax/argmin``, ``sort``, ``quantile/median``
(:mod:`mpc.ss.order`), ``reciprocal/divide/sqrt/inv_sqrt``; on the encoded ring integers
``x << k``, ``x >> k`` (public shifts), ``rshift_hidden/rshift_private`` (shifts from
opened data the dealer must not see), ``top_bit_onehot/bit_length``, ``scale_pow2``
(times a secret power of two); ``public`` constants, ``sum_of_locals`` (each party's own
array, summed by zero-sharing). A tensor carries its scale (``frac_bits``,
``with_frac_bits``) and the precision of its fixed-point results (``at_precision``;
the job's ``frac_bits`` by default). Protocols use these; the raw share protocols
(``beaver``, ``compare``, ``t.share``) are for the engine itself. ``from_shares`` is the
one public constructor for shares another engine made (the words returned by
:func:`mpc.paillier.packing.mask_rows` / ``decrypt_rows`` or
:func:`mpc.ss.dealer_join.join_tables`): a protocol passes it those and never computes
on share words itself (tests/test_protocols_layering.py).

Guarantees (f = ``frac_bits`` runtime option, default 16):

- ``share`` refuses |x| >= 2^(61-f) (fixed point) or |x| >= 2^61 (integers), naming the owner.
- Products: exact ring products, then truncation with error at most 1 ulp (2^-f) and no
  failure probability, provided |x * y| < 2^(62-2f) (about 1.07e9 for f = 16).
- Comparisons are exact on the encoded values whenever |a - b| < 2^63 (always, in range).
- Division by a public d: relative error <= 2^-(f-1) plus 2 ulp; secret division,
  reciprocal and square roots: see :mod:`mpc.ss.functions`.

Triples come from the job's ``triples`` runtime option: a seed-compressed ``dealer``
helper party (default, any number of parties) or dealer-free ``paillier`` (two parties).
Nothing but shapes is revealed until ``reveal``; see each module for details.
"""

from __future__ import annotations

from mpc.ss import beaver, compare, dealer, order, provider, spill  # dealer: registers the helper party
from mpc.ss.functions import (
    argmax,
    argmin,
    divide,
    inv_sqrt,
    max_,
    maximum,
    min_,
    min_max,
    minimum,
    reciprocal,
    scale_pow2,
    sort,
    sqrt,
    where,
)
from mpc.ss.gram import gram_matrix
from mpc.ss.order import median, quantile
from mpc.ss.tensor import SharedTensor, concatenate, from_shares, public, share, stack, sum_of_locals

__all__ = ["SharedTensor", "argmax", "argmin", "beaver", "compare", "concatenate", "dealer", "divide",
           "from_shares", "gram_matrix", "inv_sqrt", "max_", "maximum", "median", "min_", "min_max", "minimum", "order",
           "provider", "public", "quantile", "reciprocal", "scale_pow2", "share", "sort", "spill", "sqrt", "stack",
           "sum_of_locals", "where"]
