"""Comparisons via bit decomposition (A2B) with an edaBit and boolean triples.

To decompose an arithmetically shared x, the parties take an edaBit (r shared both
arithmetically and bitwise), open c = x - r (uniform: reveals nothing) and add the
public word c to the bitwise-shared r with a Kogge-Stone carry-lookahead adder on 64-bit
words: 6 rounds of ANDs (bit-sliced, vectorised over all elements, 11 word-ANDs per
element), whatever the number of parties. The sum's bits are x's bits (XOR-shared).

``ltz(x)`` needs only the top bit (x < 0 for signed |x| < 2^63): c_63 XOR r_63 XOR the
carry into bit 63, computed by a tree of carry-lookahead pairs that halves the words it
works on every level (about 2 word-ANDs per element instead of 11, 6 rounds), then
converted back to an arithmetic 0/1 share with a daBit (one more round): 8 rounds in all. ``a < b`` is ``ltz(a - b)``,
exact whenever |a - b| < 2^63 (always true inside the engine's range).

A two-party source that has its own ``msb_xor`` (the OT source, ``triples="ot"``) is used
instead for the top bit: its shares are the two addends, so the carry into bit 63 is one
comparison of the parties' private 63-bit values, by CrypTFlow2's millionaires' protocol
(no edaBit; 83 random OTs per element, 5 rounds; see :mod:`mpc.ss.millionaire`). When the
caller knows a public bound |x| < 2^(b-1) (``bits=b``), that comparison is on b - 1 bits.

``eqz(x)`` ([x == 0], for ``a == b``) needs no comparison: with two parties the shares
themselves give a local XOR sharing of a word that is zero iff x is, and
:func:`all_zero_xor` ANDs its complemented bits in a packed tree (6 rounds, 63 AND bits
per element) before a daBit; with more parties the word is x's bit decomposition. The OT
source has its own test (the equality-only millionaires' protocol, cheaper there). With a
public ``bits`` only the low bits of x are tested.

``mux_xor(b, x)`` multiplies an arithmetic share x by an XOR-shared bit b (the output of
``msb_xor``, no conversion): with the OT source one random OT each way and two words per
element, the multiplexer of CrypTFlow2 (section 4.1) -- party i, the sender, offers
m_c = (b_i xor c) x_i - r_i for c = 0, 1 masked by the random OT's pads, the peer chooses
with its bit b_(1-i) and gets (b_0 xor b_1) x_i - r_i; r_i is party i's share. The
receiver learns one pad-masked message (the other pad is unknown to it), itself masked by
r_i: uniform. Instead of a daBit plus a multiplication by Gilboa (128 correlated OTs).
Other sources: ``b2a_bits`` then a Beaver multiplication.

``ltz_open`` opens the XOR-shared top bit instead (7 rounds of ``msb_xor`` + 1): it
reveals the comparison outcomes, so it is only for protocols whose outcomes are
independent of the data (comparisons of distinct keys in an obliviously shuffled order,
see protocols/stats/order.py). Everything else here reveals nothing.
"""

from __future__ import annotations

import numpy as np

from mpc.crypto.random import PRG, new_seed
from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.ss import provider
from mpc.ss.beaver import and_words, b2a_bits, mul, open_arith, open_bits
from mpc.ss.ot_triples import OtSource
from mpc.ss.triples import get_source

_SHIFTS = (1, 2, 4, 8, 16, 32)


def bit_decompose(ctx: Context, x: np.ndarray) -> np.ndarray:
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


_COMPRESS = [(1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
             (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF)]


def _odd_bits_compressed(words: np.ndarray) -> np.ndarray:
    """Bits 1, 3, ..., 63 of every word moved to bits 0..31 (XOR-linear: works on shares)."""
    x = (words >> np.uint64(1)) & np.uint64(0x5555555555555555)
    for shift, mask in _COMPRESS:
        x = (x ^ (x >> np.uint64(shift))) & np.uint64(mask)
    return x


def _halve(words: np.ndarray) -> np.ndarray:
    """Keep the odd bits of a bit string stored in words (half as many words, same order)."""
    half = _odd_bits_compressed(words)
    if half.size % 2:
        half = np.concatenate([half, np.zeros(1, np.uint64)])
    return half[0::2] | (half[1::2] << np.uint64(32))


def _carry_into_msb(ctx: Context, c: np.ndarray, r_bool: np.ndarray) -> np.ndarray:
    """XOR shares (bit 0) of the carry into bit 63 of c + r, c public, r bitwise shared.

    A tree of (generate, propagate) pairs over the 63 low bits: each level combines adjacent
    bit pairs, G = G_hi ^ (P_hi & G_lo) and P = P_hi & P_lo. The hi and lo halves are first
    compressed and two elements packed per word, so the ANDs only touch useful lanes: the
    levels AND n/2, n/4, ..., n/64 words, about 2n word-ANDs (125 bit-ANDs per element) in
    6 rounds.
    """
    n = c.size
    low = np.uint64((1 << 63) - 1)
    one = np.uint64(1)
    g = (r_bool & c) & low
    p = (r_bool ^ c if ctx.rank == 0 else r_bool) & low
    if ctx.rank == 0:          # bit 63: a neutral group (g = 0, p = 1)
        p = p | np.uint64(1 << 63)
    for level in range(6):
        p_hi, g_hi, g_lo = _halve(p), _halve(g), _halve(g << one)
        if level == 5:
            (t,) = and_words(ctx, [(p_hi, g_lo)])
            g = g_hi ^ t
        else:
            t, p = and_words(ctx, [(p_hi, g_lo), (p_hi, _halve(p << one))])
            g = g_hi ^ t
    idx = np.arange(n)
    return (g[idx // 64] >> (idx % 64).astype(np.uint64)) & one


def ltz(ctx: Context, x: np.ndarray) -> np.ndarray:
    """Arithmetic 0/1 shares of [x < 0] (signed reading of the ring element)."""
    return b2a_bits(ctx, msb_xor(ctx, x))


def msb_xor(ctx: Context, x: np.ndarray, bits: int = 64) -> np.ndarray:
    """XOR shares (bit 0 of each word) of the top bit of each x (x < 0 in the signed
    reading): ``ltz`` without the conversion to an arithmetic share; 7 rounds.

    ``bits`` (public, 3..64): the caller knows that x is a signed ``bits``-bit integer,
    -2^(bits-1) <= x < 2^(bits-1) (e.g. a difference of two values in [0, 2^(bits-1))).
    Then bit 63 of x equals bit bits - 1 (sign extension), and that bit of x_0 + x_1 mod
    2^64 is a function of the shares' low ``bits`` bits alone (a carry only runs upwards):
    the OT source compares bits - 1 instead of 63 bits (:meth:`OtSource.msb_xor`, about
    one random OT less per bit). The edaBit path ignores it (its adder costs the same).
    Out of that range the result is meaningless."""
    if not 3 <= bits <= 64:
        raise ValueError(f"bits must be in 3..64, got {bits}")
    source = get_source(ctx)
    if source.supports(provider.MSB_XOR):      # a two-party source with its own adder (OT)
        return source.msb_xor(np.asarray(x, dtype=np.uint64), bits)
    flat = np.asarray(x, dtype=np.uint64).reshape(-1)
    r_arith, r_bool = source.edabit(flat.shape)
    c = open_arith(ctx, flat - r_arith)        # x = c + r (mod 2^64), c uniform
    top = (r_bool ^ c if ctx.rank == 0 else r_bool) >> np.uint64(63)
    return (top ^ _carry_into_msb(ctx, c, r_bool)).reshape(np.shape(x))


def mux_xor(ctx: Context, bits: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Arithmetic shares of b * x for XOR-shared bits ``bits`` (bit 0 of each word) and
    arithmetic shares ``x`` of the same shape; one round (module docstring). Reveals nothing."""
    shape = np.shape(x)
    b = np.ascontiguousarray(bits, dtype=np.uint64).reshape(-1) & np.uint64(1)
    v = np.ascontiguousarray(x, dtype=np.uint64).reshape(-1)
    if b.shape != v.shape:
        raise ValueError(f"mux_xor needs bits and values of one shape, got {np.shape(bits)} and {shape}")
    source = get_source(ctx)
    if not isinstance(source, OtSource) or not v.size:
        return mul(ctx, b2a_bits(ctx, b), v).reshape(shape)
    prg = ctx.state.get(_MUX_PRG)
    if prg is None:
        prg = ctx.state[_MUX_PRG] = PRG(new_seed())
    peer = ctx.peers[0]
    p0, p1, mine = source.rot_pair(v.size, b.astype(bool), 1)           # (1, n) word-major pads
    r = prg.uint64(v.size)
    m0 = (v * b) - r                                                    # (b_i xor 0) x_i - r_i
    m1 = (v * (b ^ np.uint64(1))) - r                                   # (b_i xor 1) x_i - r_i
    ctx.send(peer, np.stack([m0 + p0[0], m1 + p1[0]]))
    e = expect(peer, ctx.recv(peer), np.uint64, (2, v.size), "multiplexer OT messages")
    got = np.where(b.astype(bool), e[1], e[0]) - mine[0]               # (b_peer xor b_i) x_peer - r_peer
    return (r + got).reshape(shape)


_MUX_PRG = "mpc.ss.compare.mux_prg"


def ltz_open(ctx: Context, x: np.ndarray, bits: int = 64) -> np.ndarray:
    """[x < 0] (signed reading) as a bool array OPENED to every computing party; 8 rounds.
    ``bits``: x is a signed integer of that many bits (public bound, see ``msb_xor``).

    Reveals the comparison outcomes themselves: use it only where they are independent of
    the data (e.g. comparisons of distinct keys in an obliviously shuffled order).
    """
    x = np.asarray(x, dtype=np.uint64)
    if x.size == 0:
        return np.zeros(x.shape, bool)
    return open_bits(ctx, msb_xor(ctx, x, bits)).astype(bool)


_LANE_MASKS = {64: 0x00000000FFFFFFFF, 32: 0x0000FFFF0000FFFF, 16: 0x00FF00FF00FF00FF,
               8: 0x0F0F0F0F0F0F0F0F, 4: 0x3333333333333333, 2: 0x5555555555555555}
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def _low_halves(words: np.ndarray, width: int) -> np.ndarray:
    """The low half of every ``width``-bit lane of every word, packed: lanes of width/2,
    twice as many per word, half as many words (lane order kept; XOR-linear)."""
    x = words & np.uint64(_LANE_MASKS[width])
    for shift, mask in _COMPRESS:
        if shift >= width // 2:
            x = (x ^ (x >> np.uint64(shift))) & np.uint64(mask)
    return x[0::2] | (x[1::2] << np.uint64(32))


def all_zero_xor(ctx: Context, words: np.ndarray, bits: int = 64) -> np.ndarray:
    """XOR shares (uint64 0/1, bit 0 of each word, shape of ``words``) of [d == 0], d the
    XOR-shared words (only their low ``bits`` bits count); ceil(log2 bits) rounds.

    [d == 0] is the AND of the complemented bits (a NOT is local: party 0 flips its share).
    A packed AND tree: every level splits each element's lane of w bits into halves and
    ANDs them, the halves first packed so that the words ANDed hold only live lanes (two
    elements per word at w = 64, 64 at the last level): bits - 1 AND bits per element in
    all (63 for 64 bits, on n/2 + n/4 + ... + n/64 words), levels whose upper halves are
    unused (``bits`` <= w/2) cost nothing. Works on any source's boolean triples
    (:func:`mpc.ss.beaver.and_words`, GMW with Beaver triples: each opened value is masked
    by a fresh triple, so a party sees uniform words and learns nothing).
    """
    if not 1 <= bits <= 64:
        raise ValueError(f"bits must be in 1..64, got {bits}")
    shape = np.shape(words)
    z = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1)
    n = z.size
    if n == 0:
        return np.zeros(shape, np.uint64)
    neutral = _ALL if ctx.rank == 0 else np.uint64(0)          # a shared all-ones word
    unused = _ALL ^ np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0)
    z = z ^ neutral                                            # NOT d: bit i is [d_i == 0]
    z = (z | unused) if ctx.rank == 0 else (z & ~unused)       # unused bits: neutral ones
    width = 64
    while width > 1:
        if z.size % 2:
            z = np.concatenate([z, np.full(1, neutral)])
        half = width // 2
        lo = _low_halves(z, width)
        if bits <= half:            # upper halves all ones: nothing to AND
            z = lo
        else:
            (z,) = and_words(ctx, [(lo, _low_halves(z >> np.uint64(half), width))])
        width, bits = half, min(bits, half)
    idx = np.arange(n)
    return ((z[idx // 64] >> (idx % 64).astype(np.uint64)) & np.uint64(1)).reshape(shape)


def eqz(ctx: Context, x: np.ndarray, bits: int = 64) -> np.ndarray:
    """Arithmetic 0/1 shares of [x == 0 mod 2^bits] for arithmetically shared x (mod 2^64;
    ``bits`` in 2..64, public: only the low ``bits`` bits are tested, e.g. when x is a
    difference of pseudorandom words and ``bits`` statistical bits suffice).

    Two parties: x = x_0 + x_1 is 0 iff x_0 == -x_1, so d = x_0 XOR (-x_1) is a local XOR
    sharing (party 0 holds x_0, party 1 holds -x_1) of a word that is zero iff x is (in its
    low ``bits`` bits too: carries run upwards): :func:`all_zero_xor` (bits - 1 AND bits,
    ceil(log2 bits) rounds) and a daBit (1 round), no edaBit, no opening of anything but
    triple-masked values. More parties: the bits of x by :func:`bit_decompose` (an edaBit
    and a carry-lookahead adder), then the same zero test. A source with its own two-party
    zero test (``EQZ_XOR``: the OT source's equality-only millionaires' protocol on
    (x_0, -x_1), 82 random OTs per element at 64 bits and 76 at 60 instead of the 126 of 63
    AND triples) is used instead, then the daBit.
    """
    if not 2 <= bits <= 64:
        raise ValueError(f"bits must be in 2..64, got {bits}")
    x = np.asarray(x, dtype=np.uint64)
    source = get_source(ctx)
    if source.supports(provider.EQZ_XOR):      # a two-party source with its own test (OT)
        return b2a_bits(ctx, source.eqz_xor(x, bits))
    if len(ctx.parties) == 2:
        d = x if ctx.rank == 0 else np.uint64(0) - x
    else:
        d = bit_decompose(ctx, x)
    return b2a_bits(ctx, all_zero_xor(ctx, d, bits))


def or_words(ctx: Context, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """XOR shares of x | y = x ^ y ^ (x & y) for each pair; one round."""
    ands = and_words(ctx, pairs)
    return [x ^ y ^ z for (x, y), z in zip(pairs, ands, strict=True)]


def msb_onehot(ctx: Context, x: np.ndarray, positions: int = 63) -> np.ndarray:
    """Arithmetic 0/1 shares, shape (positions, *x.shape): row k is 1 iff x's highest set
    bit is k (x read as non-negative below 2^positions; all rows 0 when x == 0)."""
    bits = bit_decompose(ctx, x) & np.uint64((1 << positions) - 1)
    h = bits
    for s in _SHIFTS:                       # suffix OR: h_i = OR of bits i..63
        (h,) = or_words(ctx, [(h, h >> np.uint64(s))])
    onehot = h ^ (h >> np.uint64(1))
    rows = np.stack([(onehot >> np.uint64(k)) & np.uint64(1) for k in range(positions)])
    return b2a_bits(ctx, rows)
