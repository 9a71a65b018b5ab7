"""Where correlated randomness comes from: the job's source (a :class:`~mpc.ss.provider.RandomnessProvider`).

A triple source hands each computing party its *shares* of random values with a known
relation, and nothing else: Beaver triples (arithmetic, matmul, boolean/AND), truncation
pairs, edaBits (a random ring element shared both arithmetically and bitwise) and daBits
(a random bit shared both ways). The dealer also deals bit-decomposed truncation pairs
(``trunc_pair_bits``, for shifts it must not see); the Paillier source has no third party
and truncates by its own two-party protocol (``truncate``) instead. Which source a job uses is the runtime option
``triples`` (``"dealer"``, the default, or ``"paillier"``); the source is created on
first use and cached in ``ctx.state``, so protocol code never names it.

Share conventions (all numpy uint64): arithmetic shares sum to the value mod 2^64;
boolean shares XOR to it (64 independent bits per word).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.runtime.context import Context
from mpc.ss.provider import RandomnessProvider, source_class, source_kind

Shape = tuple[int, ...]
MAX_ELEMENTS = 1 << 28  # a single request above this is refused (memory bound)

_STATE_KEY = "mpc.ss.triples"


def check_shape(shape: Any) -> Shape:
    """A validated shape tuple (non-negative ints, bounded element count)."""
    try:
        out = tuple(int(d) for d in shape)
    except TypeError as exc:
        raise ValueError(f"bad shape {shape!r}") from exc
    if any(d < 0 for d in out):
        raise ValueError(f"negative dimension in shape {out}")
    if int(np.prod(out, dtype=np.float64)) > MAX_ELEMENTS:
        raise ValueError(f"shape {out} asks for more than {MAX_ELEMENTS} elements at once")
    return out


def matmul_shape(shape_a: Shape, shape_b: Shape) -> Shape:
    """Shape of ``A @ B`` for operands of at least two dimensions (numpy rules)."""
    if len(shape_a) < 2 or len(shape_b) < 2:
        raise ValueError(f"matmul triples need 2-D operands, got {shape_a} and {shape_b}")
    if shape_a[-1] != shape_b[-2]:
        raise ValueError(f"matmul shape mismatch: {shape_a} @ {shape_b}")
    batch = np.broadcast_shapes(shape_a[:-2], shape_b[:-2])
    return tuple(batch) + (shape_a[-2], shape_b[-1])


def get_source(ctx: Context) -> RandomnessProvider:
    """The job's triple source (created on first use, then cached in ``ctx.state``)."""
    source = ctx.state.get(_STATE_KEY)
    if source is None:
        source = source_class(source_kind(ctx.options), len(ctx.parties))(ctx)
        ctx.state[_STATE_KEY] = source
    return source
