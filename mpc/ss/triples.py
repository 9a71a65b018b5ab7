"""Where correlated randomness comes from: the TripleSource interface and its selection.

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

from typing import Any, Protocol

import numpy as np

Shape = tuple[int, ...]
MAX_ELEMENTS = 1 << 28  # a single request above this is refused (memory bound)

_STATE_KEY = "mpc.ss.triples"


class TripleSource(Protocol):
    """What every triple source provides; every method returns this party's shares."""

    def arithmetic(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shares of (a, b, a*b) with a, b uniform in Z_2^64."""

    def matmul(self, shape_a: Shape, shape_b: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Shares of (A, B, A @ B) for uniform matrices A, B."""

    def boolean(self, shape: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """XOR shares of (a, b, a & b) for uniform 64-bit words a, b."""

    def trunc_pair(self, shape: Shape, bits: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Arithmetic shares of (r, r >> 63, (r mod 2^63) >> bits) for uniform r."""

    def edabit(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Shares of a uniform r: arithmetic and boolean (bitwise XOR)."""

    def dabit(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        """Shares of a uniform bit b: arithmetic and boolean (XOR, in bit 0)."""


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


def get_source(ctx: Any) -> TripleSource:
    """The job's triple source (created on first use, then cached in ``ctx.state``)."""
    source = ctx.state.get(_STATE_KEY)
    if source is None:
        kind = ctx.options.get("triples", "dealer")
        if kind == "dealer":
            from mpc.ss.dealer import DealerSource
            source = DealerSource(ctx)
        elif kind == "paillier":
            from mpc.ss.paillier_triples import PaillierSource
            source = PaillierSource(ctx)
        elif kind == "ot":
            from mpc.ss.ot_triples import OtSource
            source = OtSource(ctx)
        else:
            raise ValueError(f"unknown triple source {kind!r}; use triples='dealer' or 'paillier'")
        ctx.state[_STATE_KEY] = source
    return source
