"""Shares of the Gram matrix X X^T of shared rows X (k, n): the sums of products that
variance, covariance and correlation need, in one pass.

With the OT source (``triples="ot"``, two parties) X = X_0 + X_1 and

    X X^T = X_0 X_0^T + X_1 X_1^T + C + C^T,   C = X_0 X_1^T,

the first two terms local. C is a sum over the n positions of products of party 0's column
vector X_0[:, j] with party 1's X_1[:, j], so only ONE cross product is needed (a matmul
triple, or ``x @ x.T`` by Beaver, computes both X_0 X_1^T and X_1 X_0^T: twice the OTs).
It is computed by Gilboa's multiplication from correlated OT (CRYPTO 1999) on the shares
themselves: for position j and column b, the receiver chooses with bit l of its X_r[b, j]
(64 OTs), the sender's correlation is its whole vector X_s[:, j] (k words per OT); shares of
c * X_s[:, j] weighted by 2^l and summed over l and j are shares of the cross term. The
positions are split in halves with the roles swapped (party 0 sends for the first half,
party 1 for the second), so both directions of the job's two IKNP sessions carry half the
work at once: 32 k n random OTs of k words per direction in all, against 64 k n for the
matmul triple. OT l's correction is multiplied by 2^l, so only its low 64 - l bits travel
(Asharov-Lindell-Schneider-Zohner's short correlated OT, CCS 2013): its whole bytes
(:mod:`mpc.ss.ot_corrections`), and its partial top byte shares one byte with another
OT's (widths 7 + 1, 6 + 2, 5 + 3 bits: :func:`_layout`), 230 bytes per 60 values where
whole bytes take 256 and bits 228.75. A caller that knows |X X^T| < 2^(b - 1) (``bits`` = b:
the statistics' centred columns, b = 60 at 2^19 rows) needs the cross term mod 2^b only:
the receivers choose with bits 0..b-1 of their shares (b OTs per share, not 64, and the
corrections' widths shift down by 64 - b bits), and the result is 2^(64 - b) X X^T, exact
mod 2^64. The 32 OTs l >= b - 32 need their pads and corrections mod 2^32 only: they take
their own part of each random-OT batch with k 32-bit pads (one AES block per OT for k <= 4,
not two), the arithmetic in uint32. A batch's corrections travel as one uint8 message (the
wide ones packed first, then the narrow).

Security: the random OTs are :meth:`mpc.ss.ot_triples.OtSource.rot_pairs_ccr` (IKNP with
kappa = 128, semi-honest, non-colluding parties; pads of one fixed-key AES call per
128-bit block by the circular correlation-robust hash, block b of OT i's pad
ccr(row xor c_b): :func:`mpc.ot.hashing.ccr_blocks_word_major`, whose note gives the
reduction to correlation robustness, Guo-Katz-Wang-Yu S&P 2020); the receiver's choices are
hidden by the extension matrix, the sender's correlation by the pad of the choice not made
(correlation robustness), so each correction tau = p0 + x - p1 is uniform to the receiver
(the narrow ones mod 2^32, masked by 32-bit pads, and every correction's low bits only:
truncating a uniform word leaves it uniform). The number of OTs and their widths depend on
the public shape and ``bits`` only. Nothing is opened; the result is a sharing of 2^(64 - bits) X X^T
and the caller decides what to reveal. With any
other source: the matmul Beaver triple (``mpc.ss.beaver.matmul``).
"""

from __future__ import annotations

import functools

import numpy as np

from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.ss import beaver, ot_corrections
from mpc.ss.ot_triples import OtSource
from mpc.ss.tensor import SharedTensor
from mpc.ss.triples import get_source

# Random OTs per batch and direction (k-word pads, about 50 MiB). Measured at k = 4,
# 2^17 rows: 2^19 took 4% more CPU over gRPC (13% on the memory transport), 2^17 4% more
# over gRPC; 2^18's pad arrays are nearer the caches.
OTS_PER_BATCH = 1 << 18
_WEIGHTS = np.uint64(1) << np.arange(64, dtype=np.uint64)


def gram_matrix(t: SharedTensor, bits: int = 64) -> SharedTensor:
    """t @ t.T for an integer SharedTensor ``t`` (k, n) (nothing truncated): :func:`gram`.
    ``bits`` < 64: the caller knows every entry is below 2^(bits - 1) in magnitude; the
    result is then 2^(64 - bits) t t^T, read with 64 - bits more fractional bits
    (``frac_bits`` 2 f + 64 - bits: the same values). Reveals nothing."""
    if t.ndim != 2:
        raise ValueError(f"gram_matrix needs a 2-D SharedTensor, got shape {t.shape}")
    return t._new(gram(t.ctx, t.share, bits), 2 * t.frac_bits + 64 - bits)


def gram(ctx: Context, x: np.ndarray, bits: int = 64) -> np.ndarray:
    """Shares (k, k) of 2^(64 - bits) x @ x.T for the shares ``x`` (k, n) (mod 2^64).

    ``bits`` (40..64): the caller guarantees |(x x^T)_ab| < 2^(bits - 1); then only the
    cross term's low ``bits`` bits are needed (2^(64 - bits) times a value known mod
    2^bits is exact mod 2^64), so the receivers choose with bits 0..bits-1 of their shares:
    ``bits`` OTs per share instead of 64. Reveals nothing."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if x.ndim != 2:
        raise ValueError(f"gram needs a (k, n) share array, got shape {x.shape}")
    if not 40 <= bits <= 64:
        raise ValueError(f"gram: bits must be in 40..64, got {bits}")
    up = np.uint64(64 - bits)
    source = get_source(ctx)
    if not isinstance(source, OtSource) or x.shape[1] < 2:
        return beaver.matmul(ctx, x, np.ascontiguousarray(x.T)) << up
    k, n = x.shape
    half = n // 2
    first, second = np.arange(half), np.arange(half, n)
    parts = -(-(n - half) // max(2, OTS_PER_BATCH // (bits * k)))      # batches; every one has >= 1 position each way
    send_idx, recv_idx = (first, second) if ctx.rank == 0 else (second, first)
    as_sender = np.zeros((k, k), np.uint64)                   # [a, b]: my column a times the peer's b
    as_receiver = np.zeros((k, k), np.uint64)                 # [a, b]: the peer's column a times my b
    for s_idx, r_idx in zip(np.array_split(send_idx, parts), np.array_split(recv_idx, parts), strict=True):
        ps, pr = _batch(ctx, source, x[:, s_idx[0]:s_idx[-1] + 1], x[:, r_idx[0]:r_idx[-1] + 1], bits)
        as_sender += ps
        as_receiver += pr
    cross = as_sender + as_receiver.T if ctx.rank == 0 else as_receiver + as_sender.T
    return (x @ x.T + cross + cross.T) << up


def _batch(ctx: Context, source: OtSource, s: np.ndarray, r: np.ndarray, bits: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """One batch: this party the sender for the positions of ``s`` (k, js), the receiver for
    those of ``r`` (k, jr) (the peer: the mirror image). OTs in (l, b, j) order: the
    sender's correlation of OT (l, b, j) is its column vector s[:, j] (a broadcast add along
    the position axis), and the sums over positions run along the last, contiguous axis.
    One random-OT batch in two parts: OTs l < bits - 32 with k-word pads, and the 32 narrow ones
    (l >= bits - 32, whose corrections count mod 2^32 only: 2^l v is needed mod 2^bits)
    with k 32-bit pads, half the fixed-key AES and the arithmetic in uint32. Both packed
    (:func:`_pack`) into one uint8 message, the wide corrections first."""
    k, js = s.shape
    jr = r.shape[1]
    wide = bits - 32
    choices = _choice_bits(r, bits)                                # (bits, k, jr) bool
    (w0, w1, got), (n0, n1, got32) = source.rot_pairs_ccr(         # one IKNP batch each way
        [(wide * js * k, wide * jr * k, k, np.uint64), (32 * js * k, 32 * jr * k, k, np.uint32)], choices)
    wide_bits, narrow_bits = _widths(bits, 0, wide), _widths(bits, wide, bits)
    peer = source.peer
    if js:
        share_s = np.negative(_weighted(w0, k, js, 0, wide) + _weighted(n0, k, js, wide, bits))  # -p0
        tau = np.subtract(w0, w1, out=w0).reshape(k, wide, k, js)     # p0 - p1, in place
        tau += s[:, None, None, :]                                    # [a, l, b, j] += s[a, j]
        narrow = np.subtract(n0, n1, out=n0).reshape(k, 32, k, js)
        narrow += s.astype(np.uint32)[:, None, None, :]
        split = _packed_size(k, k * js, wide_bits)
        msg = np.empty(split + _packed_size(k, k * js, narrow_bits), np.uint8)
        _pack(tau.reshape(k, wide, k * js), wide_bits, msg[:split])
        _pack(narrow.reshape(k, 32, k * js), narrow_bits, msg[split:])
        ctx.send(peer, msg)
        del tau, narrow, msg
    else:
        share_s = np.zeros((k, k), np.uint64)
    del w0, w1, n0, n1
    if jr:
        split = _packed_size(k, k * jr, wide_bits)
        size = split + _packed_size(k, k * jr, narrow_bits)
        msg = expect(peer, ctx.recv(peer), np.uint8, (size,), "Gram-matrix OT corrections")
        share_r = (_received(msg[:split], choices[:wide], got, wide_bits, 0, k, jr)
                   + _received(msg[split:], choices[wide:], got32, narrow_bits, wide, k, jr))
    else:
        share_r = np.zeros((k, k), np.uint64)
    return share_s, share_r


def _widths(bits: int, lo: int, hi: int) -> tuple[int, ...]:
    """Bits that matter of OT l's value, l in [lo, hi): 2^l v is needed mod 2^bits, so v
    mod 2^(bits - l)."""
    return tuple(bits - lv for lv in range(lo, hi))


@functools.lru_cache(maxsize=16)
def _layout(widths: tuple[int, ...]) -> tuple[np.ndarray, tuple[tuple[int, int, int, int, int, int], ...]]:
    """How OT values of ``widths`` bits travel: their whole bytes (w // 8, packed by
    :func:`mpc.ss.ot_corrections.pack`), then one byte per *pair* of partial top bytes:
    (l1, byte1, r1, l2, byte2, r2) puts the r1 bits from bit 8 byte1 of l1's value in the
    byte's bits 0..r1-1 and the r2 of l2's above them (l2 = -1: none), r1 + r2 <= 8. The
    partial widths w % 8 of consecutive OTs run 7, 6, ..., 1, so (7, 1), (6, 2), (5, 3)
    share bytes: 1830 bits at bits = 60 (228.75 bytes per 60 OT values) travel in 232
    bytes instead of 256 whole-byte widths."""
    full = np.array([w // 8 for w in widths], dtype=np.int64)
    part = sorted((lv for lv, w in enumerate(widths) if w % 8), key=lambda lv: -(widths[lv] % 8))
    pairs, i, j = [], 0, len(part) - 1
    while i <= j:
        l1, r1 = part[i], widths[part[i]] % 8
        if i < j and r1 + widths[part[j]] % 8 <= 8:
            l2 = part[j]
            pairs.append((l1, widths[l1] // 8, r1, l2, widths[l2] // 8, widths[l2] % 8))
            j -= 1
        else:
            pairs.append((l1, widths[l1] // 8, r1, -1, 0, 0))
        i += 1
    return full, tuple(pairs)


def _packed_size(a: int, b: int, widths: tuple[int, ...]) -> int:
    full, pairs = _layout(widths)
    return ot_corrections.packed_size(a, b, full) + len(pairs) * a * b


def _mask(r: int) -> np.uint8:
    return np.uint8((1 << r) - 1)


def _pack(values: np.ndarray, widths: tuple[int, ...], out: np.ndarray) -> None:
    """The low ``widths[l]`` bits of the (A, L, B) uint64/uint32 ``values`` at position l into
    ``out`` (uint8, :func:`_packed_size`): :func:`_layout`'s whole bytes, then its shared
    partial bytes, (pairs, A, B). The bits above a value's width are not sent."""
    a, levels, b = values.shape
    full, pairs = _layout(widths)
    split = ot_corrections.packed_size(a, b, full)
    ot_corrections.pack(values, full, out=out[:split])
    top = out[split:].reshape(len(pairs), a, b)
    octets = values.view(np.uint8).reshape(a, levels, b, values.dtype.itemsize)
    tmp = np.empty((a, b), np.uint8)
    for p, (l1, b1, r1, l2, b2, r2) in enumerate(pairs):
        np.bitwise_and(octets[:, l1, :, b1], _mask(r1), out=top[p])
        if l2 >= 0:
            np.bitwise_and(octets[:, l2, :, b2], _mask(r2), out=tmp)
            np.left_shift(tmp, np.uint8(r1), out=tmp)
            top[p] |= tmp


def _received(data: np.ndarray, choices: np.ndarray, got: np.ndarray, widths: tuple[int, ...], lo: int,
              k: int, j: int) -> np.ndarray:
    """The receiver's weighted share sum_l 2^l sum_j (c tau + p_c) -> (k, k), its OTs
    l = lo .. lo + len(widths) - 1 (``choices`` (L, k, j) bool, ``got`` the chosen pads
    (k, L k j)), straight from the packed corrections ``data`` (:func:`_pack`'s layout,
    length checked by the caller): tau mod 2^w is the sum over its pieces of piece << 8 off
    (whole-byte pieces, :func:`mpc.ss.ot_corrections.pieces`, and its bits of a shared
    partial byte), so sum_j c tau is the same sum of the pieces' choice-weighted sums (an
    einsum each, in uint64), with no unpacked copy. The integers may exceed 2^w (a narrow
    OT's pad and correction add mod 2^32 only): the excess is a multiple of 2^(w + l) =
    2^bits, shifted out."""
    levels = len(widths)
    full, pairs = _layout(widths)
    per_l = got.reshape(k, levels, k, j).sum(axis=3, dtype=np.uint64)   # [a, l, b]
    cc = choices.view(np.uint8)
    pos = 0
    for s, e, off, size in ot_corrections.pieces(full):
        n = k * (e - s) * k * j * size
        piece = data[pos:pos + n].view(ot_corrections.UINT[size]).reshape(k, e - s, k, j)
        pos += n
        sums = np.einsum("albj,lbj->alb", piece, cc[s:e], dtype=np.uint64, casting="unsafe")
        per_l[:, s:e] += sums << np.uint64(8 * off)
    top = data[pos:].reshape(len(pairs), k, k, j)
    bits = np.empty((k, k, j), np.uint8)
    for p, (l1, b1, r1, l2, b2, r2) in enumerate(pairs):
        for lv, byte, shift, r in ((l1, b1, 0, r1), (l2, b2, r1, r2)):
            if lv < 0:
                continue
            np.right_shift(top[p], np.uint8(shift), out=bits)
            bits &= _mask(r)
            sums = np.einsum("abj,bj->ab", bits, cc[lv], dtype=np.uint64, casting="unsafe")
            per_l[:, lv] += sums << np.uint64(8 * byte)
    return (per_l * _WEIGHTS[None, lo:lo + levels, None]).sum(axis=1, dtype=np.uint64)


def _choice_bits(r: np.ndarray, bits: int) -> np.ndarray:
    """(bits, k, j) bool: [l, b, j] = bit l of r[b, j] (the receiver's choices, (l, b, j)
    order): the words' bits unpacked once (one byte per bit), then the bit axis moved first."""
    k, j = r.shape
    flat = np.unpackbits(np.ascontiguousarray(r).view(np.uint8), axis=1, bitorder="little")   # (k, 64 j)
    return np.ascontiguousarray(flat.reshape(k, j, 64)[:, :, :bits].transpose(2, 0, 1)).view(bool)


def _weighted(v: np.ndarray, k: int, j: int, lo: int, hi: int) -> np.ndarray:
    """sum over l in [lo, hi) and positions of 2^l v[a, (l, b, j)] -> (k, k) [a, b] (mod 2^64;
    32-bit v are summed as 64-bit integers: 2^l (v mod 2^32) is what counts)."""
    per_l = v.reshape(k, hi - lo, k, j).sum(axis=3, dtype=np.uint64)   # the weight depends on l only
    return (per_l * _WEIGHTS[None, lo:hi, None]).sum(axis=1, dtype=np.uint64)
