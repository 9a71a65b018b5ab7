"""Helpers shared by the statistics modules: input checks, raw-share arithmetic on
ring integers with public scales, secret power-of-two normalisation, and reveals.

Everything here works on this party's uint64 share arrays; what is opened is always
masked by the triple source (see :mod:`mpc.ss.beaver`), so nothing here reveals data
unless a function says so (``reveal_scalar``, ``reveal_exponent``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mpc.ss import SharedTensor, beaver, compare, from_shares

MAX_VALUE_BITS = 60      # every ring value used here stays below 2^60 in magnitude


def float_column(values: Any, what: str) -> np.ndarray:
    """``values`` as float64, or TypeError (not numeric) / ValueError (NaN, infinity) naming
    ``what`` (e.g. ``"column 'x'"`` or ``"party 'a': feature 'x'"``). NaN is rejected, never skipped."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iufb":
        raise TypeError(f"{what} is not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{what} has NaN values (rejected)")
    if np.isinf(arr).any():
        raise ValueError(f"{what} has infinite values")
    return arr


def receivers(ctx: Any, reveal_to: str | Sequence[str] | None) -> list[str]:
    """The parties that get a result (all computing parties when None)."""
    if reveal_to is None:
        return list(ctx.parties)
    out = [reveal_to] if isinstance(reveal_to, str) else list(reveal_to)
    bad = [p for p in out if p not in ctx.parties]
    if bad or not out:
        raise ValueError(f"reveal_to={reveal_to!r}: the computing parties are {ctx.parties}")
    return out


def reveal_ring(ctx: Any, share: np.ndarray, to: list[str]) -> np.ndarray | None:
    """Open ring integers (int64 reading) to ``to``; None on the other parties."""
    out = from_shares(ctx, np.array(share, dtype=np.uint64), 0).reveal(to)
    return None if out is None else np.asarray(out, dtype=np.int64)


def work_bits(n: int) -> int:
    """Bits W of a value in [0, 2^W) so that a sum of n products of two centred values
    (each |d| < 2^W) stays below 2^60: 2W + ceil(log2 n) <= 60."""
    lg = max(1, math.ceil(math.log2(max(n, 2))))
    return max(4, min(30, (60 - lg) // 2))


def check_tensor(x: Any, name: str) -> SharedTensor:
    """A 1-D SharedTensor, or TypeError / ValueError naming ``name``."""
    if not isinstance(x, SharedTensor):
        raise TypeError(f"column {name!r} must be a SharedTensor, not {type(x).__name__}")
    if x.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, has shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"column {name!r} is empty")
    return x


def check_same_length(cols: dict[str, SharedTensor]) -> int:
    """The common length of ``cols``; ValueError naming the columns when they differ."""
    lengths = {name: t.shape[0] for name, t in cols.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k!r} ({v} rows)" for k, v in lengths.items())
        raise ValueError(f"columns have different lengths: {desc}")
    return next(iter(lengths.values()))


@contextlib.contextmanager
def frac_bits(ctx: Any, f: int) -> Iterator[None]:
    """Run mpc.ss fixed-point functions with ``f`` fractional bits (every party does the
    same, so the job stays consistent), then restore the job's setting."""
    had = "frac_bits" in ctx.options
    old = ctx.options.get("frac_bits")
    ctx.options["frac_bits"] = f
    try:
        yield
    finally:
        if had:
            ctx.options["frac_bits"] = old
        else:
            del ctx.options["frac_bits"]


def msb_onehot(ctx: Any, share: np.ndarray) -> np.ndarray:
    """Arithmetic 0/1 shares (62, *shape): row k is 1 iff the top set bit of x >= 0 is k."""
    return compare.msb_onehot(ctx, np.ascontiguousarray(share), positions=62)


def shift_secret(ctx: Any, share: np.ndarray, onehot: np.ndarray, shifts: Sequence[int]) -> np.ndarray:
    """Shares of x * 2^shifts[k] where k is the secret row set in ``onehot``.

    ``onehot`` has shape (62, *s) with ``s`` broadcastable to ``share.shape``; every
    candidate shift is applied publicly (left shifts locally, right shifts with one
    batched truncation) and the one-hot selects among them with one multiplication.
    """
    rows = np.stack([share] * len(shifts))
    sh = np.asarray(shifts, dtype=np.int64).reshape((-1,) + (1,) * share.ndim)
    left = np.where(sh > 0, sh, 0).astype(np.uint64)
    right = np.where(sh < 0, -sh, 0).astype(np.uint64)
    rows = rows << left
    if np.any(right):
        rows = beaver.truncate(ctx, np.ascontiguousarray(rows),
                               np.broadcast_to(right, rows.shape).copy())
    oh = np.ascontiguousarray(np.broadcast_to(
        onehot.reshape(onehot.shape[:1] + (1,) * (rows.ndim - onehot.ndim) + onehot.shape[1:]),
        rows.shape))
    return np.sum(beaver.mul(ctx, oh, rows), axis=0, dtype=np.uint64)


def public_int(ctx: Any, value: Any, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Shares of a public integer array: party 0 holds it, the others zeros."""
    arr = np.broadcast_to(np.asarray(value, dtype=np.int64), shape).astype(np.int64).view(np.uint64)
    return arr.copy() if ctx.rank == 0 else np.zeros(arr.shape, np.uint64)


def ltz(ctx: Any, share: np.ndarray) -> np.ndarray:
    """Arithmetic 0/1 shares of [x < 0]."""
    if share.size == 0:
        return np.zeros(share.shape, np.uint64)
    return compare.ltz(ctx, np.ascontiguousarray(share).ravel()).reshape(share.shape)


def exponent_of(ctx: Any, share: np.ndarray) -> np.ndarray:
    """Reveal (to every party) the bit length of each x >= 0 (0 for x == 0).

    Reveals the power-of-two order of magnitude of x, nothing more.
    """
    oh = msb_onehot(ctx, share)
    weights = np.arange(1, 63, dtype=np.uint64).reshape((-1,) + (1,) * share.ndim)
    total = np.sum(oh * weights, axis=0, dtype=np.uint64)
    out = from_shares(ctx, total, 0).reveal()
    return np.asarray(out, dtype=np.int64)


_ZERO = "protocols.stats.zero_sharing"


def sum_of_locals(ctx: Any, local: np.ndarray) -> np.ndarray:
    """Shares of sum over parties of each party's ``local`` uint64 vector, without a
    message per call: each party adds a zero-sharing (pairwise PRG streams, seeded once
    per job) to its own vector. Reveals nothing; every party must call it with the same
    shape in the same order."""
    from mpc.crypto.random import PRG, new_seed
    prgs = ctx.state.get(_ZERO)
    if prgs is None:
        prgs = {}
        for peer in ctx.peers:          # the lower rank picks the seed of each pair
            if ctx.parties.index(peer) > ctx.rank:
                seed = new_seed()
                ctx.send(peer, seed)
            else:
                seed = ctx.recv(peer)
                if not isinstance(seed, bytes) or len(seed) != 16:
                    raise ValueError(f"party {peer!r} sent a malformed seed")
            prgs[peer] = PRG(seed)
        ctx.state[_ZERO] = prgs
    out = np.array(local, dtype=np.uint64)
    for peer, prg in prgs.items():
        z = prg.uint64(out.shape)
        if ctx.parties.index(peer) > ctx.rank:
            out += z
        else:
            out -= z
    return out


CHUNK_ELEMENTS = 1 << 20     # comparisons per batch: bounds the memory of bit decompositions


def count_below(ctx: Any, t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shares of sum_j [t_i < y_ij] for each row i (t: (M,), y: (M, n)), in chunks of about
    CHUNK_ELEMENTS comparisons so memory stays bounded."""
    m, n = y.shape
    step = max(1, CHUNK_ELEMENTS // max(m, 1))
    total = np.zeros(m, np.uint64)
    for s in range(0, n, step):
        part = ltz(ctx, t[:, None] - y[:, s:s + step])
        total += np.sum(part, axis=1, dtype=np.uint64)
    return total
