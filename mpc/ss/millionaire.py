"""Two-party secure comparison of private values of up to 64 bits: CrypTFlow2's millionaires' protocol.

``compare_xor`` gives XOR shares of [a < b] and [a == b] where party 0 holds a and party 1 holds b
(the low ``bits`` bits of unsigned 64-bit words, 64 by default), after D. Rathee, M. Rathee,
Kumar, Chandran, Gupta, Rastogi, Sharma, "CrypTFlow2: Practical 2-Party Secure Inference"
(CCS 2020), the millionaires' protocol of its section 3:

1. Each value is cut into D = ceil(bits / 6) digits of at most M = 6 bits (``layout``:
   sizes as even as possible, the larger ones at the bottom; 11 digits for 64 or 63 bits,
   e.g. 6 of 6 bits and 5 of 5 for 61). For every digit j one party is the OT sender S
   (party 0 for even j, party 1 for odd j, so both directions of the job's two IKNP
   sessions carry half the work at once) and the other the receiver R. S draws two random
   bits (its shares of lt_j = [a_j < b_j] and eq_j = [a_j == b_j]) and offers, for every
   value v R's digit of m bits could take, the message (its shares XOR lt and eq computed
   with v); R picks the message of its digit: a 1-out-of-2^m OT of 2-bit messages.
2. The digits are combined in a tree: for a high part H and a low part L,
   lt = lt_H XOR (eq_H AND lt_L) and eq = eq_H AND eq_L (the two terms of lt exclude each
   other, so XOR is OR). ceil(log2 D) levels (4 for 11 digits), D - 1 pairs of ANDs in all
   sharing the operand eq_H (a level with an odd count passes its top digit up; the
   root's pair gives eq too), bit-sliced 64 elements per word, GMW with Beaver triples
   made for the purpose: two triples with the same b from one random OT each way.

The 1-out-of-2^m OT comes from m 1-out-of-2 random OTs on the bits t_0..t_(m-1) of R's
digit t (IKNP, :mod:`mpc.ot.extension`), each with 128-bit random messages k_i^0, k_i^1
(the tweakable correlation-robust hash of the IKNP row: one AES block, the same hash cost
as any shorter pad), by the standard reduction of Naor and Pinkas ("Oblivious transfer
and polynomial evaluation", STOC 1999) in its 2-bit-slice form: the pad of message v is
P_v = XOR_i slice_v(k_i^{v_i}), bits 2v, 2v + 1 of the m keys (2^6 slices of 2 bits fill
the 128 bits), and S sends all 2^m masked messages as one 128-bit word (the slices of
v >= 2^m zero). R knows k_i^{t_i} only; for v != t some i has v_i != t_i, so P_v contains
slice v of a key R does not know, and the slices of different v are disjoint bits: the
other pads are jointly pseudorandom and the other messages hidden. S receives only the
IKNP matrix (pseudorandom whatever R's choices). Per element: ``bits`` random OTs (one per
input bit, half each way) and D words of 128 bits, and D - 1 pairs of AND triples
(2 (D - 1) random OTs, in the same IKNP batch), then ceil(log2 D) rounds of openings: 84
random OTs for 64 bits, 83 for 63 (the sign of a 64-bit share sum), 81 for 61; with
16 digits of 4 bits (32-bit pads) it was 94 for 63.

Why 6-bit digits: a digit of m bits costs m random OTs whatever m, and saves tree ANDs as
m grows; up to m = 6 the 2^(m + 1) bits of pad fit one AES block of the hash, beyond it
the pads (and S's 2^(m + 1)-bit messages) double per bit.

``equal_xor`` is the equality half alone ([a == b], for zero tests): with one output bit
per value, digits of M = 7 bits still fit one hash block (2^7 slices of 1 bit), so
D = ceil(bits / 7) digits, and the tree is D - 1 single ANDs (two random OTs each, plain
ABY triples): 82 random OTs per element for 64 bits, 76 for 60 (the eq output of
``compare_xor`` costs 84 at 64 bits), 1 + ceil(log2 D) rounds.

Security: semi-honest, two non-colluding parties; kappa = 128 (IKNP with Chou-Orlandi
base OTs, fixed-key AES hash in the ideal-permutation model); every received message is
pseudorandom or masked by a share the sender drew, so a party's view is simulatable from
its own input and output (the CrypTFlow2 argument). ``bits`` is public (both parties pass
the same), and the view's shapes depend on it and the count only.
"""

from __future__ import annotations

import numpy as np

from mpc.crypto.random import PRG
from mpc.ot.extension import IknpReceiver, IknpSender
from mpc.ot.hashing import ccr_pair, ccr_sigma
from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.ss.beaver import open_many

M = 6                     # bits per digit at most: 2^6 slices of 2 bits fill one 128-bit hash block
_CHUNK = 1 << 13          # elements per OT batch: at most 42 * 2^13 OTs each way, 5.3 MiB IKNP matrices (in L2/L3;
                          # 2^15 took 10-15% more CPU per comparison, 2026-12-03)
_VALUES = 1 << M          # messages per 1-out-of-2^M OT
_PAD_TILE_ROWS = 1 << 15   # OT rows per tile of the offerer's pads (_offer_pads): 512 KiB per temporary

_V = np.arange(_VALUES)
# slice v of a 128-bit pad (two uint64 words): bits 2 (v % 32), 2 (v % 32) + 1 of word v // 32
_SLOT = np.zeros((_VALUES, 2), np.uint64)
_SLOT[_V, _V // 32] = np.uint64(3) << (2 * (_V % 32)).astype(np.uint64)
# per key i: the slices v with v_i = 1 (they come from k_i^1, the others from k_i^0)
_SEL = np.stack([np.bitwise_or.reduce(_SLOT[(_V >> i) & 1 == 1], axis=0) for i in range(M)])
# per digit size m: the slices of the 2^m values a digit of m bits can take
_VALID = np.stack([np.bitwise_or.reduce(_SLOT[:1 << m], axis=0) for m in range(M + 1)])
_EVEN = np.uint64(0x5555555555555555)


def _tables() -> dict[int, np.ndarray]:
    """Per sender rank: the 128-bit word ((2,) uint64) of (lt, eq) for all 2^M receiver
    digits v, by the sender's digit s: bit 2v [s < v] (party 0 holds a) or [v < s] (party 1
    holds b), bit 2v + 1 [s == v]."""
    out = {}
    for rank in (0, 1):
        tab = np.zeros((_VALUES, 2), np.uint64)
        for s in _V:
            lt = (s < _V) if rank == 0 else (_V < s)
            tab[s] = (np.bitwise_or.reduce(_SLOT[lt] & _EVEN, axis=0)
                      | np.bitwise_or.reduce(_SLOT[_V == s] & ~_EVEN, axis=0))
        out[rank] = tab
    return out


_TABLES = _tables()


def layout(bits: int) -> np.ndarray:
    """Digit sizes (least significant first) for ``bits``-bit values: D = max(2, ceil(bits /
    M)) digits (each party offers at least one), sizes as even as possible (floor or ceil
    of bits / D), the larger at the bottom."""
    if not 2 <= bits <= 64:
        raise ValueError(f"bits must be in 2..64, got {bits}")
    d = max(2, -(-bits // M))
    base, wide = divmod(bits, d)
    return np.array([base + 1] * wide + [base] * (d - wide), np.int64)


def ots_per_element(bits: int) -> tuple[int, int]:
    """Random OTs per compared element that party 0 receives and sends (the digits it
    chooses on and offers, and one per pair of tree ANDs each way)."""
    sizes = layout(bits)
    tree = len(sizes) - 1
    return int(sizes[1::2].sum()) + tree, int(sizes[0::2].sum()) + tree


def _digits(values: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """(n,) uint64 -> (n, D) uint8 digits of ``sizes`` bits, least significant first."""
    shifts = (np.cumsum(sizes) - sizes).astype(np.uint64)
    masks = ((np.uint64(1) << sizes.astype(np.uint64)) - np.uint64(1))
    return ((values[:, None] >> shifts) & masks).astype(np.uint8)


def _key_runs(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For digits of ``sizes`` bits, one OT per bit (digit-major): where each digit's OTs
    start, and the slice mask (``_SEL``) of each OT's key."""
    starts = np.cumsum(sizes) - sizes
    sel = np.concatenate([_SEL[:m] for m in sizes]) if len(sizes) else np.zeros((0, 2), np.uint64)
    return starts, sel


def _digit_ots(sender: IknpSender, receiver: IknpReceiver, digits: np.ndarray, sizes: np.ndarray,
               rank: int, extra: np.ndarray, xmask: np.uint8) -> tuple:
    """One IKNP batch each way for a batch of digit leaves: this party offers its digits of
    even (rank 0) or odd positions and chooses with the others' bits (m choice bits per
    m-bit digit), plus random OTs for the ``extra`` choice bits with messages of the bits
    in ``xmask`` (the tree's triples). Returns (send_d, recv_d, send_m, recv_m, q, t,
    (x0, x1, x_c)): the offered and chosen digits and sizes, the leaves'
    IKNP rows as sender and receiver (as sigma(row): every pad here is a one-block CCR
    hash, untweaked, so no OT index is needed), and the extra OTs."""
    n = len(digits)
    send_d, recv_d = digits[:, rank::2], digits[:, 1 - rank::2]      # this party offers / chooses
    send_m, recv_m = sizes[rank::2], sizes[1 - rank::2]
    choices = np.concatenate([(recv_d[:, j:j + 1] >> np.arange(m, dtype=np.uint8)) & 1
                              for j, m in enumerate(recv_m)], axis=1).astype(bool).reshape(-1)
    mr, ms = choices.size, n * int(send_m.sum())
    # every pad here is a CCR hash of one block (mpc.ot.hashing.ccr): the rows come as sigma(row)
    t, _ = receiver.extend(np.concatenate([choices, extra]), sigma=True)   # sends U (pads untweaked: no index)
    q, _ = sender.extend(ms + extra.size, sigma=True)                       # receives the peer's U
    h0, h1 = ccr_pair(q[ms:], sender.delta, presigma=True)             # the extra OTs' two pads
    x0, x1 = (h.view(np.uint8)[:, 0] & xmask for h in (h0, h1))
    xc = ccr_sigma(t[mr:])[:, 0] & xmask
    return send_d, recv_d, send_m, recv_m, q[:ms], t[:mr], (x0, x1, xc)


def _offer_pads(sender: IknpSender, q: np.ndarray, n: int, starts: np.ndarray,
                sel: np.ndarray) -> np.ndarray:
    """The offerer's pad of every message slot: slot v of a digit's message is masked by the
    XOR over its m OTs of k_i^{v_i}, sliced as k0 ^ ((k0 ^ k1) & sel) (``sel`` the slot's
    bit pattern per OT), then XORed per digit (``starts``): (n, digits, 2) uint64. Both
    keys of an OT from one sigma (:func:`mpc.ot.hashing.ccr_pair`), tile by tile of
    elements so the temporaries stay in cache."""
    per = len(sel)
    out = np.empty((n, len(starts), 2), np.uint64)
    tile = max(1, _PAD_TILE_ROWS // max(per, 1))
    for lo in range(0, n, tile):
        hi = min(n, lo + tile)
        k0, k1 = ccr_pair(q[lo * per:hi * per], sender.delta, presigma=True)
        k0, k1 = k0.reshape(hi - lo, per, 2), k1.reshape(hi - lo, per, 2)
        np.bitwise_xor(k1, k0, out=k1)
        np.bitwise_and(k1, sel, out=k1)
        np.bitwise_xor(k0, k1, out=k0)
        out[lo:hi] = np.bitwise_xor.reduceat(k0, starts, axis=1)
    return out


def _leaves(ctx: Context, sender: IknpSender, receiver: IknpReceiver, prg: PRG,
            digits: np.ndarray, sizes: np.ndarray, rank: int, extra: np.ndarray) -> tuple[np.ndarray, ...]:
    """XOR shares (n, D) uint8 of lt_j and eq_j for one batch of elements, and in the same
    IKNP batch random OTs with 2-bit messages for the ``extra`` choice bits (the tree's
    triples): (lt, eq, x0, x1, x_c), the last three as sender (x0, x1) and as receiver."""
    peer = sender.peer
    n = len(digits)
    send_d, recv_d, send_m, recv_m, q, t, (x0, x1, xc) = _digit_ots(
        sender, receiver, digits, sizes, rank, extra, np.uint8(3))
    starts, sel = _key_runs(send_m)
    pad = _offer_pads(sender, q, n, starts, sel)
    r = np.frombuffer(prg.bytes(n * len(send_m)), np.uint8).reshape(n, -1) & np.uint8(3)   # my shares
    r_lt, r_eq = (r & 1).astype(np.uint64), (r >> 1).astype(np.uint64)
    mask = (r_lt * _EVEN) | (r_eq * (_EVEN << np.uint64(1)))
    msg = (_TABLES[rank][send_d] ^ mask[:, :, None] ^ pad) & _VALID[send_m]
    ctx.send(peer, msg)
    rstarts, _ = _key_runs(recv_m)
    k = np.bitwise_xor.reduceat(ccr_sigma(t).view(np.uint64).reshape(n, -1, 2), rstarts, axis=1)
    c = expect(peer, ctx.recv(peer), np.uint64, (n, len(recv_m), 2), "millionaires' OT messages")
    c ^= k
    word = np.take_along_axis(c, (recv_d >> np.uint8(5)).astype(np.intp)[:, :, None], axis=2)[:, :, 0]
    got = (word >> (2 * (recv_d & np.uint8(31))).astype(np.uint64)) & np.uint64(3)
    lt, eq = np.empty((n, len(sizes)), np.uint8), np.empty((n, len(sizes)), np.uint8)
    lt[:, rank::2], eq[:, rank::2] = r_lt, r_eq
    lt[:, 1 - rank::2], eq[:, 1 - rank::2] = got & np.uint64(1), got >> np.uint64(1)
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
                value: np.ndarray, bits: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """XOR shares (uint64 0/1, shape of ``value``) of [a < b] and [a == b], a = party 0's
    ``value`` and b = party 1's, both read as their low ``bits`` bits (2..64, public: the
    peer passes the same), on this party's two IKNP sessions with the peer (``sender`` and
    ``receiver``; the peer passes its own, roles mirrored) and ``prg`` for its share bits.
    1 round of OT (the digits' and the tree's triples' in one IKNP batch), then
    ceil(log2 D) rounds of ANDs (the root's pair of ANDs gives eq with lt at no extra
    cost); see the module docstring."""
    sizes = layout(bits)
    shape = np.shape(value)
    flat = np.ascontiguousarray(value, dtype=np.uint64).reshape(-1)
    n = flat.size
    if n == 0:
        return np.zeros(shape, np.uint64), np.zeros(shape, np.uint64)
    rank, words, d = ctx.rank, -(-n // 64), len(sizes)
    # the tree's triples (d - 1 pair-planes of words) from OTs in the digits' batches
    b = prg.uint64((d - 1, words))
    parts = []
    for lo in range(0, n, _CHUNK):            # _CHUNK is a multiple of 64: whole words
        cols = b[:, lo // 64:-(-min(n, lo + _CHUNK) // 64)]
        extra = np.unpackbits(np.ascontiguousarray(cols).view(np.uint8), bitorder="little")
        parts.append(_leaves(ctx, sender, receiver, prg, _digits(flat[lo:lo + _CHUNK], sizes), sizes, rank,
                             extra.astype(bool)))
    lt = _planes(np.concatenate([p[0] for p in parts]))
    eq = _planes(np.concatenate([p[1] for p in parts]))
    rot = [np.concatenate([p[k].reshape(d - 1, -1) for p in parts], axis=1).reshape(-1) for k in (2, 3, 4)]
    triples = _shared_b_triples(b, *rot)
    row = 0
    while len(lt) > 1:                       # digit 2k + 1 is above digit 2k; an odd top passes up
        pairs = len(lt) // 2
        t, e = _and_shared(ctx, [w[row:row + pairs] for w in triples], eq[1:2 * pairs:2], lt[0:2 * pairs:2],
                           eq[0:2 * pairs:2])
        lt, eq = np.concatenate([lt[1:2 * pairs:2] ^ t, lt[2 * pairs:]]), np.concatenate([e, eq[2 * pairs:]])
        row += pairs
    return tuple(np.unpackbits(w[0].view(np.uint8), bitorder="little")[:n].astype(np.uint64).reshape(shape)
                 for w in (lt, eq))


# -- equality only ---------------------------------------------------------------------------
# A digit's equality bit is a 1-out-of-2^m OT of 1-bit messages: 2^7 slices of one bit fill
# the 128-bit hash block, so digits of 7 bits cost one AES block per OT like the 6-bit
# digits of the comparison (which carry 2 bits, lt and eq, per value).
EQ_M = 7
_EQ_VALUES = 1 << EQ_M
_EV = np.arange(_EQ_VALUES)
# slice v of a 128-bit pad: bit v % 64 of word v // 64
_EQ_SLOT = np.zeros((_EQ_VALUES, 2), np.uint64)
_EQ_SLOT[_EV, _EV // 64] = np.uint64(1) << (_EV % 64).astype(np.uint64)
_EQ_SEL = np.stack([np.bitwise_or.reduce(_EQ_SLOT[(_EV >> i) & 1 == 1], axis=0) for i in range(EQ_M)])
_EQ_VALID = np.stack([np.bitwise_or.reduce(_EQ_SLOT[:1 << m], axis=0) for m in range(EQ_M + 1)])


def eq_layout(bits: int) -> np.ndarray:
    """Digit sizes for the equality test of ``bits``-bit values: D = max(2, ceil(bits / 7))
    digits (each party offers at least one), sizes as even as possible."""
    if not 2 <= bits <= 64:
        raise ValueError(f"bits must be in 2..64, got {bits}")
    d = max(2, -(-bits // EQ_M))
    base, wide = divmod(bits, d)
    return np.array([base + 1] * wide + [base] * (d - wide), np.int64)


def eq_ots_per_element(bits: int) -> int:
    """Random OTs per element of :func:`equal_xor`, both directions: one per input bit and
    two per tree AND (D - 1 of them)."""
    sizes = eq_layout(bits)
    return int(sizes.sum()) + 2 * (len(sizes) - 1)


def _eq_leaves(ctx: Context, sender: IknpSender, receiver: IknpReceiver, prg: PRG,
               digits: np.ndarray, sizes: np.ndarray, rank: int, extra: np.ndarray) -> tuple[np.ndarray, ...]:
    """XOR shares (n, D) uint8 of eq_j = [a_j == b_j] for one batch of elements, and in the
    same IKNP batch random OTs of 1 bit for the ``extra`` choice bits (the tree's AND
    triples): (eq, x0, x1, x_c) as :func:`_leaves`."""
    peer = sender.peer
    n = len(digits)
    one = np.uint8(1)
    send_d, recv_d, send_m, recv_m, q, t, (x0, x1, xc) = _digit_ots(
        sender, receiver, digits, sizes, rank, extra, one)
    starts = np.cumsum(send_m) - send_m
    sel = np.concatenate([_EQ_SEL[:m] for m in send_m])
    pad = _offer_pads(sender, q, n, starts, sel)
    r = (np.frombuffer(prg.bytes(n * len(send_m)), np.uint8).reshape(n, -1) & one)   # my shares
    mask = np.uint64(0) - r.astype(np.uint64)                         # all ones where r = 1
    msg = (_EQ_SLOT[send_d] ^ mask[:, :, None] ^ pad) & _EQ_VALID[send_m]
    ctx.send(peer, msg)
    rstarts = np.cumsum(recv_m) - recv_m
    k = np.bitwise_xor.reduceat(ccr_sigma(t).view(np.uint64).reshape(n, -1, 2), rstarts, axis=1)
    c = expect(peer, ctx.recv(peer), np.uint64, (n, len(recv_m), 2), "equality OT messages")
    c ^= k
    word = np.take_along_axis(c, (recv_d >> np.uint8(6)).astype(np.intp)[:, :, None], axis=2)[:, :, 0]
    got = (word >> (recv_d & np.uint8(63)).astype(np.uint64)) & np.uint64(1)
    eq = np.empty((n, len(sizes)), np.uint8)
    eq[:, rank::2], eq[:, 1 - rank::2] = r, got
    return eq, x0, x1, xc


def _and_triples(b: np.ndarray, x0: np.ndarray, x1: np.ndarray, xc: np.ndarray) -> tuple[np.ndarray, ...]:
    """Shares (a, b, c) of AND triples, words of b's shape, from one random OT of 1 bit each
    way per bit of b (ABY: as sender a = x0 xor x1, as receiver the choice b):
    x0 xor x_c = b_peer AND a, so c = a b xor x0 xor x_c."""
    shape = b.shape
    a = _words(x0 ^ x1, shape)
    return a, b, (a & b) ^ _words(x0, shape) ^ _words(xc, shape)


def equal_xor(ctx: Context, sender: IknpSender, receiver: IknpReceiver, prg: PRG,
              value: np.ndarray, bits: int = 64) -> np.ndarray:
    """XOR shares (uint64 0/1, shape of ``value``) of [a == b], a = party 0's ``value`` and
    b = party 1's, both read as their low ``bits`` bits (2..64, public), on the party's two
    IKNP sessions as :func:`compare_xor`: the equality half of the millionaires' protocol
    alone. The values are cut into D = ceil(bits / 7) digits (:func:`eq_layout`); digit j's
    equality is a 1-out-of-2^m OT of 1-bit messages (the offering party, alternating by j,
    draws its share r and offers r xor [s == v] for every value v of the chooser's digit;
    the pads as in :func:`compare_xor` with 1-bit slices, 2^7 of which fill the 128-bit
    hash), then [a == b] = AND of the D digit bits in a tree, one AND per pair, on AND
    triples from random OTs of the same IKNP batch (2 per AND). Per element
    :func:`eq_ots_per_element` random OTs (76 for 60 bits, 82 for 64; compare_xor's eq
    costs 84 at 64 bits), D words of 128 bits, 1 + ceil(log2 D) rounds. Same security
    argument as :func:`compare_xor`: every received message is pseudorandom (IKNP), masked
    by an unknown pad slice (the OT messages not chosen), by the sender's share bit (the
    chosen one) or by a fresh triple (the tree's openings)."""
    sizes = eq_layout(bits)
    shape = np.shape(value)
    flat = np.ascontiguousarray(value, dtype=np.uint64).reshape(-1)
    n = flat.size
    if n == 0:
        return np.zeros(shape, np.uint64)
    rank, words, d = ctx.rank, -(-n // 64), len(sizes)
    b = prg.uint64((d - 1, words))            # the tree's triples: choice bits, bit-sliced
    parts = []
    for lo in range(0, n, _CHUNK):            # _CHUNK is a multiple of 64: whole words
        cols = b[:, lo // 64:-(-min(n, lo + _CHUNK) // 64)]
        extra = np.unpackbits(np.ascontiguousarray(cols).view(np.uint8), bitorder="little")
        parts.append(_eq_leaves(ctx, sender, receiver, prg, _digits(flat[lo:lo + _CHUNK], sizes), sizes,
                                rank, extra.astype(bool)))
    eq = _planes(np.concatenate([p[0] for p in parts]))
    rot = [np.concatenate([p[k].reshape(d - 1, -1) for p in parts], axis=1).reshape(-1) for k in (1, 2, 3)]
    ta, tb, tc = _and_triples(b, *rot)
    row = 0
    while len(eq) > 1:                        # pairs of digit bits; an odd last one passes up
        pairs = len(eq) // 2
        a, bb, c = ta[row:row + pairs], tb[row:row + pairs], tc[row:row + pairs]
        x, y = eq[0:2 * pairs:2], eq[1:2 * pairs:2]
        dd, e = open_many(ctx, [x ^ a, y ^ bb], xor=True)
        z = c ^ (dd & bb) ^ (e & a)
        if rank == 0:
            z ^= dd & e
        eq = np.concatenate([z, eq[2 * pairs:]])
        row += pairs
    return np.unpackbits(eq[0].view(np.uint8), bitorder="little")[:n].astype(np.uint64).reshape(shape)
