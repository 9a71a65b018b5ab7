"""Two-party secure comparison of private 64-bit values: CrypTFlow2's millionaires' protocol.

``compare_xor`` gives XOR shares of [a < b] and [a == b] where party 0 holds a and party 1 holds b
(unsigned 64-bit words), after D. Rathee, M. Rathee, Kumar, Chandran, Gupta, Rastogi,
Sharma, "CrypTFlow2: Practical 2-Party Secure Inference" (CCS 2020), the millionaires'
protocol of its section 3:

1. Each value is cut into 16 digits of m = 4 bits. For every digit j one party is the OT
   sender S (party 0 for even j, party 1 for odd j, so both directions of the job's two
   IKNP sessions carry half the work at once) and the other the receiver R. S draws two
   random bits (its shares of lt_j = [a_j < b_j] and eq_j = [a_j == b_j]) and offers, for
   every value v R's digit could take, the message (its shares XOR lt and eq computed
   with v); R picks the message of its digit: a 1-out-of-16 OT of 2-bit messages.
2. The digits are combined in a tree: for a high part H and a low part L,
   lt = lt_H XOR (eq_H AND lt_L) and eq = eq_H AND eq_L (the two terms of lt exclude each
   other, so XOR is OR). 4 levels, 8 + 4 + 2 + 1 pairs of ANDs sharing the operand eq_H
   (the root's pair gives eq too), bit-sliced 64 elements per word, GMW with Beaver
   triples made for the purpose: two triples with the same b from one random OT each way.

The 1-out-of-16 OT comes from four 1-out-of-2 random OTs on the bits t_0..t_3 of R's
digit t (IKNP, :mod:`mpc.ot.extension`), each with 32-bit random messages k_i^0, k_i^1
(the truncated tweakable correlation-robust hash of the IKNP row), by the standard
reduction of Naor and Pinkas ("Oblivious transfer and polynomial evaluation", STOC 1999)
in its 2-bit-slice form: the pad of message v is P_v = XOR_i slice_v(k_i^{v_i}), bits
2v, 2v + 1 of the four keys, and S sends all 16 masked messages as one 32-bit word.
R knows k_i^{t_i} only; for v != t some i has v_i != t_i, so P_v contains slice v of a
key R does not know, and the slices of different v are disjoint bits: the 15 other pads
are jointly pseudorandom and the other messages hidden. S receives only the IKNP matrix
(pseudorandom whatever R's choices). Per element: 64 random OTs (one per input bit, 32
each way) and 8 + 8 words of 32 bits, and 15 pairs of AND triples (30 random OTs, in the
same IKNP batch), then 4 rounds of openings.

Security: semi-honest, two non-colluding parties; kappa = 128 (IKNP with Chou-Orlandi
base OTs, fixed-key AES hash in the ideal-permutation model); every received message is
pseudorandom or masked by a share the sender drew, so a party's view is simulatable from
its own input and output (the CrypTFlow2 argument).
"""

from __future__ import annotations

import numpy as np

from mpc.crypto.random import PRG
from mpc.ot.extension import IknpReceiver, IknpSender, _pad, xor_delta
from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.ss.beaver import open_many

M = 4                     # bits per digit
DIGITS = 64 // M          # 16 digits per word
_CHUNK = 1 << 15          # elements per OT batch: 47 * 2^15 OTs each way, 24 MiB IKNP matrices

_V = np.arange(1 << M)
# bits 2v, 2v + 1 of a pad word come from key k_i^{v_i}: mask of the slices with v_i = 1
_SEL = np.array([sum(3 << (2 * v) for v in _V if (v >> i) & 1) for i in range(M)], np.uint32)
_EVEN = np.uint32(0x55555555)


def _tables() -> dict[int, np.ndarray]:
    """Per sender rank: word of (lt, eq) for all 16 receiver digits v, by the sender's digit s."""
    out = {}
    for rank in (0, 1):
        tab = np.zeros(1 << M, np.uint32)
        for s in _V:
            lt = (s < _V) if rank == 0 else (_V < s)       # party 0 holds a: [a_j < b_j]
            tab[s] = np.sum((lt.astype(np.uint32) << (2 * _V).astype(np.uint32))
                            | ((s == _V).astype(np.uint32) << (2 * _V + 1).astype(np.uint32)))
        out[rank] = tab
    return out


_TABLES = _tables()


def _digits(values: np.ndarray) -> np.ndarray:
    """(n,) uint64 -> (n, 16) uint8 digits, least significant first."""
    shifts = (np.arange(DIGITS, dtype=np.uint64) * np.uint64(M))
    return ((values[:, None] >> shifts) & np.uint64((1 << M) - 1)).astype(np.uint8)


def _leaves(ctx: Context, sender: IknpSender, receiver: IknpReceiver, prg: PRG,
            digits: np.ndarray, rank: int, extra: np.ndarray) -> tuple[np.ndarray, ...]:
    """XOR shares (n, 16) uint8 of lt_j and eq_j for one batch of elements, and in the same
    IKNP batch random OTs with 2-bit messages for the ``extra`` choice bits (the tree's
    triples): (lt, eq, x0, x1, x_c), the last three as sender (x0, x1) and as receiver."""
    peer = sender.peer
    n = len(digits)
    send_d, recv_d = digits[:, rank::2], digits[:, 1 - rank::2]      # (n, 8) each
    choices = ((recv_d[:, :, None] >> np.arange(M, dtype=np.uint8)) & 1).astype(bool).reshape(-1)
    m = choices.size
    t, first_r = receiver.extend(np.concatenate([choices, extra]))   # sends U
    q, first_s = sender.extend(m + extra.size)                        # receives the peer's U
    x0, xc = _pad(q[m:], first_s + m, 1)[:, 0] & 3, _pad(t[m:], first_r + m, 1)[:, 0] & 3
    x1 = _pad(xor_delta(q[m:], sender.delta, np.empty_like(q[m:])), first_s + m, 1)[:, 0] & 3
    q, t = q[:m], t[:m]
    k0 = _pad(q, first_s, 4).view(np.uint32).reshape(n, DIGITS // 2, M)
    xor_delta(q, sender.delta)                  # in place
    k1 = _pad(q, first_s, 4).view(np.uint32).reshape(n, DIGITS // 2, M)
    k0 ^= (k0 ^ k1) & _SEL                      # slice v from k_i^{v_i} (M = 4 keys below)
    pad = k0[:, :, 0] ^ k0[:, :, 1] ^ k0[:, :, 2] ^ k0[:, :, 3]
    r = np.frombuffer(prg.bytes(n * (DIGITS // 2)), np.uint8).reshape(n, DIGITS // 2) & np.uint8(3)   # my shares
    r_lt, r_eq = (r & 1).astype(np.uint32), (r >> 1).astype(np.uint32)
    ctx.send(peer, np.ascontiguousarray(_TABLES[rank][send_d] ^ (r_lt * _EVEN) ^ (r_eq * (_EVEN << 1)) ^ pad))
    k = _pad(t, first_r, 4).view(np.uint32).reshape(n, DIGITS // 2, M)
    c = expect(peer, ctx.recv(peer), np.uint32, (n, DIGITS // 2), "millionaires' OT messages")
    shift = (2 * recv_d).astype(np.uint32)
    k >>= shift[:, :, None]
    got = ((c >> shift) ^ k[:, :, 0] ^ k[:, :, 1] ^ k[:, :, 2] ^ k[:, :, 3]) & np.uint32(3)
    lt, eq = np.empty((n, DIGITS), np.uint8), np.empty((n, DIGITS), np.uint8)
    lt[:, rank::2], eq[:, rank::2] = r_lt, r_eq
    lt[:, 1 - rank::2], eq[:, 1 - rank::2] = got & 1, got >> 1
    return lt, eq, x0, x1, xc


def _planes(bits: np.ndarray) -> np.ndarray:
    """(n, D) 0/1 -> (D, ceil(n / 64)) uint64: bit i % 64 of word i // 64 is element i."""
    n = len(bits)
    padded = np.zeros((bits.shape[1], -(-n // 64) * 64), np.uint8)
    padded[:, :n] = bits.T
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64)


def _words(bits: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.packbits(bits & 1, bitorder="little").view(np.uint64).reshape(shape)


def _shared_b_triples(b: np.ndarray, x0: np.ndarray, x1: np.ndarray, xc: np.ndarray
                      ) -> tuple[np.ndarray, ...]:
    """Shares of pairs of AND triples sharing their b, (a1, b, c1) and (a2, b, c2), words
    of b's shape, from random OTs with 2-bit messages as in ABY (Demmler, Schneider, Zohner,
    NDSS 2015), one per bit of b each way (bit order: b's bytes, little-endian bits): in an
    OT where this party is the sender ((x0, x1)) it defines its (a1, a2) = x0 xor x1, and
    the receiver chooses with its bit of b (getting x_c), so x0 xor x_c = b AND (a1, a2):
    2 random OTs for 2 ANDs instead of 4."""
    shape = b.shape
    a = x0 ^ x1
    a1, a2 = _words(a, shape), _words(a >> 1, shape)
    c1 = (a1 & b) ^ _words(x0, shape) ^ _words(xc, shape)
    c2 = (a2 & b) ^ _words(x0 >> 1, shape) ^ _words(xc >> 1, shape)
    return a1, a2, b, c1, c2


def _and_shared(ctx: Context, triples: tuple[np.ndarray, ...], y: np.ndarray, x1: np.ndarray,
                x2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """XOR shares of (x1 AND y, x2 AND y), boolean-shared words of one shape, with a pair
    of triples sharing b (:func:`_shared_b_triples`): y xor b is opened once for both; one
    round (GMW: every opened word is masked by fresh triple words, uniform)."""
    a1, a2, b, c1, c2 = triples
    e, d1, d2 = open_many(ctx, [y ^ b, x1 ^ a1, x2 ^ a2], xor=True)
    z1 = c1 ^ (d1 & b) ^ (e & a1)
    z2 = c2 ^ (d2 & b) ^ (e & a2)
    if ctx.rank == 0:
        z1 ^= d1 & e
        z2 ^= d2 & e
    return z1, z2


def compare_xor(ctx: Context, sender: IknpSender, receiver: IknpReceiver, prg: PRG,
                value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """XOR shares (uint64 0/1, shape of ``value``) of [a < b] and [a == b], a = party 0's
    ``value`` and b = party 1's (unsigned 64-bit), on this party's two IKNP sessions with
    the peer (``sender`` and ``receiver``; the peer passes its own, roles mirrored) and
    ``prg`` for its share bits. 1 round of OT (the digits' and the tree's triples' in one
    IKNP batch), then 4 rounds of ANDs (the root's pair of ANDs gives eq with lt at no extra cost); see
    the module docstring."""
    shape = np.shape(value)
    flat = np.ascontiguousarray(value, dtype=np.uint64).reshape(-1)
    n = flat.size
    if n == 0:
        return np.zeros(shape, np.uint64), np.zeros(shape, np.uint64)
    rank, words = ctx.rank, -(-n // 64)
    # the tree's triples (8 + 4 + 2 + 1 pair-planes of words) from OTs in the digits' batches
    b = prg.uint64((DIGITS - 1, words))
    parts = []
    for lo in range(0, n, _CHUNK):            # _CHUNK is a multiple of 64: whole words
        cols = b[:, lo // 64:-(-min(n, lo + _CHUNK) // 64)]
        extra = np.unpackbits(np.ascontiguousarray(cols).view(np.uint8), bitorder="little")
        parts.append(_leaves(ctx, sender, receiver, prg, _digits(flat[lo:lo + _CHUNK]), rank,
                             extra.astype(bool)))
    lt = _planes(np.concatenate([p[0] for p in parts]))
    eq = _planes(np.concatenate([p[1] for p in parts]))
    rot = [np.concatenate([p[k].reshape(DIGITS - 1, -1) for p in parts], axis=1).reshape(-1) for k in (2, 3, 4)]
    triples = _shared_b_triples(b, *rot)
    row = 0
    while len(lt) > 1:                       # digit 2k + 1 is above digit 2k
        pairs = len(lt) // 2
        t, e = _and_shared(ctx, [w[row:row + pairs] for w in triples], eq[1::2], lt[0::2], eq[0::2])
        lt, eq, row = lt[1::2] ^ t, e, row + pairs
    return tuple(np.unpackbits(w[0].view(np.uint8), bitorder="little")[:n].astype(np.uint64).reshape(shape)
                 for w in (lt, eq))
