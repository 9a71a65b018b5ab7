"""Raw share protocols: opening, Beaver multiplication, truncation, AND of boolean words.

Functions here work on this party's numpy uint64 share arrays, not on SharedTensors.
What they reveal: opened values are always masked by fresh uniform randomness from the
triple source (x - a, y - b, x + r), so every opened value is uniform in Z_2^64 (or in
the 64-bit words, for boolean shares) and independent of the data.

Truncation (``truncate``) uses the triple source's own protocol when it has one (the
two-party Paillier source, see paillier_triples.py), else a
truncation pair (r, r>>63, (r mod 2^63)>>f): the parties open c = x + 2^62 + r, which is
uniform, and compute floor(x / 2^f) + e with e in {0, 1} (at most one unit in the last
place). Either way it never fails, as long as the signed value satisfies |x| < 2^62
(the engine keeps values in that range); there is no failure probability to tune.

What the dealer learns from a truncation: the shift a ``trunc`` request names. ``truncate``
is for shifts fixed by public parameters (the job's frac_bits, row counts, constants).
A shift that comes from opened data (a bit length, a column's scale) must not reach the
dealer: ``truncate_hidden`` asks only for a public limit (the value is first shifted left
locally, which needs a known bound on |x|), ``truncate_private`` for no shift at all (a
bit-decomposed pair: 63 words more per element, for small arrays).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.runtime.context import Context
from mpc.ss.provider import MUL, PREFETCH, TRUNCATE
from mpc.ss.triples import get_source

_ONE = np.uint64(1)
_LOW63 = np.uint64((1 << 63) - 1)
_OFFSET = np.uint64(1 << 62)


def _open(ctx: Context, share: np.ndarray, xor: bool) -> np.ndarray:
    shape = np.shape(share)
    share = np.ascontiguousarray(share, dtype=np.uint64).reshape(shape)
    ctx.broadcast(share)
    total = share.copy()
    for peer in ctx.peers:
        other = ctx.recv(peer)
        if not isinstance(other, np.ndarray) or other.shape != share.shape or other.dtype != np.uint64:
            raise ValueError(f"party {peer!r} sent a share of the wrong shape or type")
        if xor:
            total ^= other
        else:
            total += other
    return total


def open_arith(ctx: Context, share: np.ndarray) -> np.ndarray:
    """Reveal an arithmetically shared array to every computing party."""
    return _open(ctx, share, xor=False)


def open_xor(ctx: Context, share: np.ndarray) -> np.ndarray:
    """Reveal a boolean (XOR) shared array to every computing party."""
    return _open(ctx, share, xor=True)


def open_bits(ctx: Context, bits: np.ndarray) -> np.ndarray:
    """Reveal XOR-shared bits (bit 0 of each word) to every computing party, 64 per word
    on the wire; returns 0/1 uint64 of the same shape."""
    bits = np.asarray(bits, dtype=np.uint64)
    flat = (bits & _ONE).astype(np.uint8).reshape(-1)
    n = flat.size
    packed = np.packbits(np.concatenate([flat, np.zeros(-n % 64, np.uint8)]), bitorder="little")
    opened = open_xor(ctx, packed.view(np.uint64))
    return np.unpackbits(opened.view(np.uint8), bitorder="little")[:n].astype(np.uint64).reshape(bits.shape)


def open_many(ctx: Context, shares: list[np.ndarray], xor: bool = False) -> list[np.ndarray]:
    """Open several arrays in one round (one message per peer)."""
    flat = np.concatenate([np.ravel(s) for s in shares]) if shares else np.empty(0, np.uint64)
    opened = _open(ctx, flat, xor)
    out, pos = [], 0
    for s in shares:
        out.append(opened[pos:pos + s.size].reshape(s.shape))
        pos += s.size
    return out


def mul(ctx: Context, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shares of x*y (elementwise, same shape) with a Beaver triple; one round. A source
    that multiplies shares itself (``MUL``: the OT source's cross products of the shares)
    does so instead, with nothing opened."""
    shape = np.shape(x)
    x, y = np.asarray(x, np.uint64).reshape(-1), np.asarray(y, np.uint64).reshape(-1)
    source = get_source(ctx)
    if source.supports(MUL):
        return source.mul(x, y).reshape(shape)
    a, b, c = source.arithmetic(x.shape)
    d, e = open_many(ctx, [x - a, y - b])
    z = c + d * b + e * a
    if ctx.rank == 0:
        z += d * e
    return z.reshape(shape)


def matmul(ctx: Context, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shares of x @ y with a matmul Beaver triple; one round."""
    a, b, c = get_source(ctx).matmul(x.shape, y.shape)
    d, e = open_many(ctx, [x - a, y - b])
    z = c + np.matmul(d, b) + np.matmul(a, e)
    if ctx.rank == 0:
        z += np.matmul(d, e)
    return z


def prefetch_mul_trunc(ctx: Context, shape: tuple[int, ...], bits: int) -> None:
    """Announce that the next calls are ``mul`` of ``shape`` then ``truncate`` by ``bits``
    (lets the dealer work ahead); a no-op for sources that do not need it."""
    source = get_source(ctx)
    if source.supports(PREFETCH) and not source.supports(TRUNCATE):   # it uses truncation pairs
        source.prefetch([("arith", (int(np.prod(shape, dtype=np.int64)),), None),
                         ("trunc", tuple(shape) if len(shape) else (1,), bits)])


def truncate(ctx: Context, x: np.ndarray, bits: Any) -> np.ndarray:
    """Shares of floor(x / 2^bits) + {0 or 1}, for signed |x| < 2^62; one round.

    ``bits`` is an int or an integer array broadcastable to ``x.shape`` (0..62). The dealer
    sees ``bits`` (it names the request): pass only shifts fixed by public parameters; see
    ``truncate_hidden`` and ``truncate_private`` for shifts that come from the data.
    """
    x = np.asarray(x, dtype=np.uint64)
    bits_arr = np.asarray(bits, dtype=np.uint64)
    if np.all(bits_arr == 0):
        return x.copy()
    if x.ndim == 0:
        return truncate(ctx, x.reshape(1), bits_arr if bits_arr.ndim == 0 else bits_arr.reshape(-1)).reshape(())
    source = get_source(ctx)
    if source.supports(TRUNCATE):   # a source with its own truncation protocol (Paillier)
        return source.truncate(x, bits_arr)
    r, r_top, r_low = source.trunc_pair(x.shape, bits_arr)
    return _open_truncated(ctx, x, bits_arr, r, r_top, r_low)


def _open_truncated(ctx: Context, x: np.ndarray, bits_arr: np.ndarray, r: np.ndarray, r_top: np.ndarray,
                    r_low: np.ndarray) -> np.ndarray:
    """The truncation itself, given shares of the pair (r, r >> 63, (r mod 2^63) >> bits)."""
    masked = x + r
    if ctx.rank == 0:
        masked += _OFFSET
    c = open_arith(ctx, masked)
    c_top = c >> np.uint64(63)
    c_low = c & _LOW63
    # carry out of the low 63 bits = c_top XOR r_top = c_top + r_top - 2 c_top r_top
    carry = r_top * (_ONE - np.uint64(2) * c_top)
    out = carry * (_ONE << (np.uint64(63) - bits_arr)) - r_low
    if ctx.rank == 0:
        out += (c_low >> bits_arr) + c_top * (_ONE << (np.uint64(63) - bits_arr)) - (_OFFSET >> bits_arr)
    return out


def _two_party_protocol(ctx: Context) -> bool:
    """Whether the triple source truncates by its own protocol between the computing
    parties (Paillier: no third party sees any shift, so there is nothing to hide)."""
    return get_source(ctx).supports(TRUNCATE)


def truncate_hidden(ctx: Context, x: np.ndarray, bits: Any, limit: int) -> np.ndarray:
    """Shares of floor(x / 2^bits) + {0 or 1} for a ``bits`` (int or array broadcastable to
    ``x.shape``, each in [0, limit]) that may come from opened data: the triple source is
    asked only for a truncation by the public ``limit``, never by ``bits``.

    x is first multiplied by 2^(limit - bits) locally, then truncated by ``limit``:
    floor(x 2^(limit-bits) / 2^limit) = floor(x / 2^bits), with the same one-unit error,
    and exactly x where bits == 0 (the low ``limit`` bits of x + 2^62 are then zero, so the
    pair's low bits cancel exactly). The caller guarantees |x| 2^(limit - bits) < 2^62,
    e.g. from a bit length of x the parties know.
    """
    x = np.asarray(x, dtype=np.uint64)
    bits_arr = np.asarray(bits, dtype=np.int64)
    if not 0 <= int(limit) <= 62 or bits_arr.size and (bits_arr.min() < 0 or bits_arr.max() > limit):
        raise ValueError(f"truncate_hidden needs 0 <= bits <= limit <= 62 (limit {limit})")
    if _two_party_protocol(ctx):
        return truncate(ctx, x, bits_arr)
    return truncate(ctx, x << (np.uint64(limit) - bits_arr.astype(np.uint64)), int(limit))


def truncate_private(ctx: Context, x: np.ndarray, bits: Any) -> np.ndarray:
    """``truncate`` for a ``bits`` that may come from opened data and no bound on |x| to
    use ``truncate_hidden`` with: the dealer hands out a bit-decomposed pair (shares of r,
    of r >> 63 and of each of the 63 low bits of r) whose request names no shift, and the
    parties form (r mod 2^63) >> bits from the bits locally. 65 words per element instead
    of 3: meant for small arrays. Signed |x| < 2^62, one round."""
    x = np.asarray(x, dtype=np.uint64)
    bits_arr = np.broadcast_to(np.asarray(bits, dtype=np.uint64), x.shape)
    if x.size == 0 or _two_party_protocol(ctx):
        return truncate(ctx, x, bits_arr)
    if x.ndim == 0:
        return truncate_private(ctx, x.reshape(1), bits_arr.reshape(1)).reshape(())
    if np.any(bits_arr > 62):
        raise ValueError("truncate_private needs 0 <= bits <= 62")
    r, r_top, r_bits = get_source(ctx).trunc_pair_bits(x.shape)
    j = np.arange(63, dtype=np.uint64).reshape((63,) + (1,) * x.ndim)
    weights = np.where(j >= bits_arr, _ONE << ((j - np.minimum(j, bits_arr)) % np.uint64(64)), np.uint64(0))
    r_low = np.sum(r_bits * weights, axis=0, dtype=np.uint64)
    return _open_truncated(ctx, x, bits_arr, r, r_top, r_low)


def and_words(ctx: Context, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """XOR shares of x & y for each (x, y) pair of boolean-shared words; one round."""
    if not pairs:
        return []
    total = sum(int(x.size) for x, _ in pairs)
    a, b, c = get_source(ctx).boolean((total,))
    xs = np.concatenate([np.ravel(x) for x, _ in pairs])
    ys = np.concatenate([np.ravel(y) for _, y in pairs])
    d, e = open_many(ctx, [xs ^ a, ys ^ b], xor=True)
    z = c ^ (d & b) ^ (e & a)
    if ctx.rank == 0:
        z ^= d & e
    out, pos = [], 0
    for x, _ in pairs:
        out.append(z[pos:pos + x.size].reshape(x.shape))
        pos += x.size
    return out


def b2a_bits(ctx: Context, bits: np.ndarray) -> np.ndarray:
    """Arithmetic shares of XOR-shared bits (bit 0 of each word); one round."""
    bits = np.asarray(bits, dtype=np.uint64)
    if bits.ndim == 0:
        return b2a_bits(ctx, bits.reshape(1)).reshape(())
    ba, bb = get_source(ctx).dabit(bits.shape)
    z = open_bits(ctx, bits ^ bb)
    out = ba * (_ONE - np.uint64(2) * z)
    if ctx.rank == 0:
        out += z
    return out
