"""Dealer-free correlated randomness for two parties from OT extension (``triples="ot"``).

Every product here is a *cross term* between the two parties' private values, computed
with IKNP OT extension (:mod:`mpc.ot.extension`; Ishai-Kilian-Nissim-Petrank, CRYPTO 2003)
on the job's two cached sessions (:func:`mpc.ot.session`): each party is the extension
sender in one and the receiver in the other, so both directions run at once and both
parties hash, transpose and send in parallel.

* Arithmetic triples over Z_2^64, Gilboa (CRYPTO 1999) from correlated OT: each party
  draws a_i, b_i; for a_0 b_1 the receiver (party 1) chooses with bit l of b_1 in OT l
  (l = 0..63) and the sender's correlation is a_0; the sender keeps -p_l, the receiver
  p_l + b_1[l] a_0, and both weight by 2^l and sum: shares of a_0 b_1 mod 2^64. As the
  weight 2^l kills the top l bits, OT l's correction carries only the low 64 - l bits
  (rounded up to 1, 2, 4 or 8 bytes: 344 bytes per element instead of 512) -- the
  correlated OT with short messages of Asharov, Lindell, Schneider, Zohner (CCS 2013).
  a_1 b_0 runs the other way at the same time; c_i = a_i b_i + both cross shares.
* Matmul triples: Gilboa on the matrix form (not from elementwise triples): for A_0 @ B_1
  the receiver chooses with the bits of each B_1[t, j] and the sender's correlation is
  the column A_0[:, t] (m words per OT), so k n 64 OTs per direction instead of m k n 128.
* Boolean AND triples from random OT, the reduction of Demmler, Schneider, Zohner (ABY,
  NDSS 2015): in a random OT the sender gets (x0, x1), the receiver with choice b gets
  x_b, so x0 xor x_b = b AND (x0 xor x1). The sender *defines* its a as x0 xor x1: two
  random OTs per AND bit (one each way), no message beyond the IKNP matrix.
* daBits (b = b_0 xor b_1 = b_0 + b_1 - 2 b_0 b_1) and edaBits (r = sum_j 2^j (r_0 xor
  r_1)_j: r_i's own bits are its boolean share, and the arithmetic share subtracts shares
  of sum_j 2^(j+1) r_0[j] r_1[j], 64 correlated OTs of 1-bit correlations per element,
  half the elements each way); truncation pairs from 64 daBits per element.
* Comparisons: :meth:`OtSource.msb_xor`, the carry of the two shares' sum by CrypTFlow2's
  millionaires' protocol (:mod:`mpc.ss.millionaire`; no edaBit), 94 random OTs per element.
* Truncation: the exact two-party wrap-bit protocol (:meth:`OtSource.truncate`, the same
  one as the Paillier source) with the one bit product by a correlated OT: error at most
  one unit in the last place, no failure probability for |x| < 2^62 (no SecureML local
  truncation).

Security (semi-honest, two non-colluding parties): IKNP with kappa = 128 base OTs
(Chou-Orlandi, :mod:`mpc.ot.base`) and the tweakable correlation-robust hash of
:mod:`mpc.ot.hashing` (fixed-key AES, ideal-permutation model). What a party receives:
as the extension sender, the IKNP matrix U (each column masked by a PRG stream of a seed
it does not hold: pseudorandom whatever the peer's choice bits); as the receiver, the
corrections tau_l = p0_l + x_l - p1_l mod 2^w, where the pad p_{1-r} of the choice it did
not make is pseudorandom to it (correlation robustness with the unknown Delta), so tau
is uniform whatever the sender's correlation; in comparisons also the masked messages of
the 1-out-of-16 OTs, whose pads but the chosen one hold key slices it does not know
(:mod:`mpc.ss.millionaire`). Shares of every triple are therefore
pseudorandom and independent of the peer's values; what is opened later (x - a, y - b,
x - r) is masked by them. Tweaks (the OT's index in its session) are never reused.

Parameters: kappa = 128 (computational; there is no statistical parameter: every share
is exact, no masking slack as in the Paillier source); OTs in batches of 2^20 (16 MiB
IKNP matrices), so memory stays bounded whatever the request. Costs per element: an
arithmetic triple 128 correlated OTs (2 x 64, 2 x (1024 + 344) bytes), an AND triple word
128 random OTs (2 x 1 KiB), a comparison 94 random OTs (about 1.5 KiB of IKNP matrix, 64
bytes of OT messages, 3 x 15 opened bits) and one daBit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.crypto.random import PRG, new_seed
from mpc.ot import session
from mpc.ot.extension import _pad
from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.ss import provider
from mpc.ss.millionaire import compare_xor
from mpc.ss.triples import Shape, check_shape, matmul_shape
from mpc.ss.two_party import trunc_pair_from_dabits, truncate_by_wrap

_ONE = np.uint64(1)
_LOW63 = np.uint64((1 << 63) - 1)
_BITS = np.arange(64, dtype=np.uint64)
_CHUNK_OTS = 1 << 20      # OTs per IKNP batch: 16 MiB matrices, bounded memory
_CHUNK_WORDS = 1 << 21    # correlation words per batch (matmul: m words per OT)
_MATMUL_ROWS = 1 << 14    # rows of A per matmul block (so one OT's message stays <= 128 KiB)


def _bits(words: np.ndarray) -> np.ndarray:
    """(n,) uint64 -> (n, 64) 0/1 uint8, bit l of word i at [i, l] (little-endian words)."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    return np.unpackbits(words.view(np.uint8), bitorder="little").reshape(-1, 64)


def _runs(nbytes: np.ndarray) -> list[tuple[int, int, int]]:
    """Maximal runs (start, stop, width) of equal byte widths in the period pattern."""
    out, start = [], 0
    for p in range(1, len(nbytes) + 1):
        if p == len(nbytes) or nbytes[p] != nbytes[start]:
            out.append((start, p, int(nbytes[start])))
            start = p
    return out


def _widths(shifts: np.ndarray) -> np.ndarray:
    """Bytes that travel of an OT value later multiplied by 2^shift (mod 2^64): the
    64 - shift bits that matter, rounded up to 1, 2, 4 or 8 bytes (a dtype cast packs them)."""
    need = np.maximum(0, 64 - np.asarray(shifts, dtype=np.int64))
    return np.select([need == 0, need <= 8, need <= 16, need <= 32], [0, 1, 2, 4], 8)


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _pack(tau: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    """The low ``nbytes[p]`` bytes of each word of OT p of every period, as one uint8 array
    (runs of equal width, widest first, so every run stays aligned to its width)."""
    m, w = tau.shape
    t = tau.reshape(m // len(nbytes), len(nbytes), w)
    return np.concatenate([t[:, s:e].astype(_UINT[k]).reshape(-1).view(np.uint8)
                           for s, e, k in _runs(nbytes) if k])


def _packed_size(m: int, w: int, nbytes: np.ndarray) -> int:
    return (m // len(nbytes)) * w * int(nbytes.sum())


def _unpack(data: np.ndarray, m: int, w: int, nbytes: np.ndarray) -> np.ndarray:
    out = np.zeros((m // len(nbytes), len(nbytes), w), dtype=np.uint64)
    pos = 0
    for s, e, k in _runs(nbytes):
        if k:
            size = out.shape[0] * (e - s) * w * k
            out[:, s:e] = data[pos:pos + size].view(_UINT[k]).reshape(out.shape[0], e - s, w)
            pos += size
    return out.reshape(m, w)


class OtSource(provider.RandomnessProvider):
    """Two-party triple source on IKNP OT extension; see the module docstring."""

    name = "ot"
    capabilities = frozenset({provider.ARITHMETIC, provider.MATMUL, provider.BOOLEAN, provider.TRUNC_PAIR,
                              provider.TRUNCATE, provider.EDABIT, provider.DABIT, provider.MSB_XOR,
                              provider.EQZ_XOR})

    def __init__(self, ctx: Context) -> None:
        if len(ctx.parties) != 2:
            raise ValueError(f"triples='ot' needs exactly two computing parties, got {len(ctx.parties)}")
        self.ctx, self.peer, self.rank = ctx, ctx.peers[0], ctx.rank
        # Set-up order mirrors the peer's (party 0 is the extension sender first).
        roles = ("sender", "receiver") if self.rank == 0 else ("receiver", "sender")
        sessions = {role: session(ctx, self.peer, role) for role in roles}
        self._s, self._r = sessions["sender"], sessions["receiver"]
        self.prg = PRG(new_seed())  # this party's own random values (never leave it unmasked)

    # -- OT batches, both directions at once -----------------------------------------------
    def _cot(self, x: np.ndarray, choices: np.ndarray, w: int, nbytes: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
        """One batch of correlated OTs each way. As sender with correlations ``x`` ((e, P, w)
        or broadcastable to it, ms = e P OTs); as receiver with ``choices`` ((mr,) bool; the
        peer's correlations have w words too). OT i is later multiplied by 2^shift, so only
        ``nbytes[i % P]`` low bytes of each word travel. Returns (the negated share as sender, p0 (ms, w); mine as
        receiver (mr, w)): receiver - p0 = choice * correlation, in those low bytes."""
        ms, mr = x.shape[0] * len(nbytes), len(choices)
        if mr:
            t, first_r = self._r.extend(choices)                     # sends U
        p0 = np.zeros((0, w), np.uint64)
        if ms:
            q, first_s = self._s.extend(ms)                          # receives U
            p0 = _pad(q, first_s, 8 * w).view(np.uint64).reshape(-1, len(nbytes), w)
            tau = p0 + x
            q ^= self._s.delta                                       # q xor Delta, in place
            tau -= _pad(q, first_s, 8 * w).view(np.uint64).reshape(tau.shape)
            self.ctx.send(self.peer, _pack(tau.reshape(ms, w), nbytes))
            p0 = p0.reshape(ms, w)
        recv_share = np.zeros((0, w), np.uint64)
        if mr:
            pr = _pad(t, first_r, 8 * w).view(np.uint64)
            data = expect(self.peer, self.ctx.recv(self.peer), np.uint8,
                          (_packed_size(mr, w, nbytes),), "correlated-OT corrections")
            tau = _unpack(data, mr, w, nbytes)
            tau *= choices.view(np.uint8)[:, None]
            tau += pr
            recv_share = tau
        return p0, recv_share

    def _cross(self, corr, bits_mine: np.ndarray, n_send: int, shifts: np.ndarray, w: int = 1
               ) -> tuple[np.ndarray, np.ndarray]:
        """Shares of sum_p 2^shifts[p] * choice[e, p] * corr[e, p] per element e, both ways.

        ``corr(lo, hi)`` gives this party's sender correlations of elements lo:hi as
        (hi - lo, P, w) uint64; ``bits_mine`` ((n_recv, P) 0/1) its receiver choices; the
        peer sends for n_recv elements and receives for ``n_send``. Returns (shares as
        sender (n_send, w), shares as receiver (n_recv, w)), batched to bounded memory."""
        period = len(shifts)
        nbytes = _widths(shifts)
        weights = shifts.astype(np.uint64).reshape(1, period, 1)
        n_recv = len(bits_mine)
        per = max(1, min(_CHUNK_OTS // period, _CHUNK_WORDS // (period * w)))
        chunks = -(-max(n_send, n_recv) // per)
        outs_s, outs_r = [], []
        for k in range(chunks):
            lo, hi_s, hi_r = k * per, min(n_send, (k + 1) * per), min(n_recv, (k + 1) * per)
            x = corr(lo, hi_s) if hi_s > lo else np.zeros((0, period, w), np.uint64)
            ch = bits_mine[lo:hi_r].reshape(-1).astype(bool, copy=False)
            s, r = self._cot(x, ch, w, nbytes)
            outs_s.append(np.uint64(0) - np.sum(s.reshape(-1, period, w) << weights, axis=1,
                                                dtype=np.uint64))   # the sender's share is -p0
            outs_r.append(np.sum(r.reshape(-1, period, w) << weights, axis=1, dtype=np.uint64))
        empty = np.zeros((0, w), np.uint64)
        return (np.concatenate(outs_s) if outs_s else empty,
                np.concatenate(outs_r) if outs_r else empty)

    def _bit_products(self, bits: np.ndarray, shift: int) -> np.ndarray:
        """Shares of 2^shift * b_0 * b_1 for this party's 0/1 uint64 ``bits`` ((n, P)):
        the first half of the elements with party 0 as OT sender, the rest the other way."""
        n, period = bits.shape
        half = n // 2
        mine_send = slice(0, half) if self.rank == 0 else slice(half, n)
        mine_recv = slice(half, n) if self.rank == 0 else slice(0, half)
        sent = bits[mine_send]
        s, r = self._cross(lambda lo, hi: sent[lo:hi, :, None], bits[mine_recv],
                           len(sent), np.full(period, shift, dtype=np.int64) if period == 1
                           else np.arange(period, dtype=np.int64) + shift)
        out = np.empty(n, np.uint64)
        out[mine_send], out[mine_recv] = s[:, 0], r[:, 0]
        return out

    def _rot_bits(self, choices: np.ndarray, n_send: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Random OTs of one bit each way, 64 per word: as receiver with the bits of the
        words ``choices`` ((n_recv,) uint64) gets x_b; as sender (n_send words) gets x0, x1.
        Returns (x0, x1, x_b) as words."""
        per = _CHUNK_OTS // 64
        n_recv = len(choices)
        x0s, x1s, xbs = [], [], []
        for k in range(-(-max(n_send, n_recv) // per)):
            lo = k * per
            ms = 64 * max(0, min(n_send, lo + per) - lo)
            ch = np.unpackbits(choices[lo:lo + per].view(np.uint8), bitorder="little").astype(bool)
            if len(ch):
                t, first_r = self._r.extend(ch)
            if ms:
                q, first_s = self._s.extend(ms)
                x0s.append(_pad(q, first_s, 1)[:, 0] & 1)
                x1s.append(_pad(q ^ self._s.delta, first_s, 1)[:, 0] & 1)
            if len(ch):
                xbs.append(_pad(t, first_r, 1)[:, 0] & 1)

        def words(parts: list[np.ndarray]) -> np.ndarray:
            if not parts:
                return np.zeros(0, np.uint64)
            return np.packbits(np.concatenate(parts), bitorder="little").view(np.uint64)
        return words(x0s), words(x1s), words(xbs)

    # -- TripleSource -----------------------------------------------------------------------
    def arithmetic(self, shape: Shape):
        shape = check_shape(shape)
        n = int(np.prod(shape, dtype=np.int64))
        a, b = self.prg.uint64(n), self.prg.uint64(n)
        s, r = self._cross(lambda lo, hi: a[lo:hi, None, None],
                           _bits(b), n, np.arange(64, dtype=np.int64))
        c = a * b + s[:, 0] + r[:, 0]                 # a_i b_i + [a_i b_peer] + [a_peer b_i]
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    def matmul(self, shape_a: Shape, shape_b: Shape):
        shape_a, shape_b = check_shape(shape_a), check_shape(shape_b)
        if len(shape_a) != 2 or len(shape_b) != 2:
            raise ValueError("triples='ot' supports 2-D matmul operands only")
        out_shape = matmul_shape(shape_a, shape_b)
        (m, k), nn = shape_a, shape_b[1]
        a, b = self.prg.uint64(shape_a), self.prg.uint64(shape_b)
        tj = np.repeat(np.arange(k), nn)             # element (t, j) -> t, t-major like b.ravel()
        choices = _bits(b.ravel())
        cross = np.empty((m, nn), np.uint64)
        for r0 in range(0, m, _MATMUL_ROWS):         # blocks of A's rows: bounded messages
            cols = np.ascontiguousarray(a[r0:r0 + _MATMUL_ROWS].T)   # (k, rows): OT (t, j)'s correlation
            s, r = self._cross(lambda lo, hi, cols=cols: cols[tj[lo:hi], None, :], choices, k * nn,
                               np.arange(64, dtype=np.int64), w=cols.shape[1])
            cross[r0:r0 + cols.shape[1]] = (s + r).reshape(k, nn, -1).sum(axis=0, dtype=np.uint64).T
        return a, b, (np.matmul(a, b) + cross).reshape(out_shape)

    def boolean(self, shape: Shape):
        shape = check_shape(shape)
        n = int(np.prod(shape, dtype=np.int64))
        b = self.prg.uint64(n)
        x0, x1, xb = self._rot_bits(b, n)
        a = x0 ^ x1                                   # defined by the random OTs (ABY)
        c = (a & b) ^ x0 ^ xb                         # a_i b_i ^ [a_i b_peer] ^ [a_peer b_i]
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    def dabit(self, shape: Shape):
        shape = check_shape(shape)
        n = int(np.prod(shape, dtype=np.int64))
        bits = self.prg.uint64(n) & _ONE
        ba = bits - self._bit_products(bits.reshape(n, 1), 1)    # b_0 + b_1 - 2 b_0 b_1
        return ba.reshape(shape), bits.reshape(shape)

    def edabit(self, shape: Shape):
        shape = check_shape(shape)
        n = int(np.prod(shape, dtype=np.int64))
        r = self.prg.uint64(n)
        # sum_j 2^j (r0_j xor r1_j) = r0 + r1 - sum_j 2^(j+1) r0_j r1_j
        ra = r - self._bit_products(_bits(r), 1)
        return ra.reshape(shape), r.reshape(shape)

    def trunc_pair(self, shape: Shape, bits: Any):
        shape = check_shape(shape)
        ba, _ = self.dabit((64, int(np.prod(shape, dtype=np.int64))))
        return trunc_pair_from_dabits(ba, shape, bits)

    def truncate(self, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Shares of floor(x / 2^bits) + {0 or 1} for signed |x| < 2^62 by the wrap bit of the
        shares (:func:`mpc.ss.two_party.truncate_by_wrap`), its one bit product a correlated OT."""
        return truncate_by_wrap(x, bits, self.rank == 0,
                                lambda m: self._bit_products(m.reshape(-1, 1), 0).reshape(-1))

    def msb_xor(self, x: np.ndarray) -> np.ndarray:
        """XOR shares (bit 0 of each word) of the top bit of x = x_0 + x_1 (x < 0 in the
        signed reading), without an edaBit: the two shares are the two addends, each known
        in the clear to its holder, so msb(x) = msb(x_0) xor msb(x_1) xor carry, where the
        carry into bit 63 is [low(x_0) + low(x_1) >= 2^63] = [2^63 - 1 - low(x_0) < low(x_1)]
        (low: the 63 low bits): one comparison of the parties' private values by
        CrypTFlow2's millionaires' protocol (:func:`mpc.ss.millionaire.compare_xor`:
        64 random OTs for 1-out-of-16 OTs on 4-bit digits, then 15 pairs of ANDs on
        b-sharing AND triples, 30 random OTs; 94 in all, 5 rounds). Used by
        :func:`mpc.ss.compare.msb_xor`.
        """
        flat = np.asarray(x, dtype=np.uint64)
        low = flat & _LOW63
        mine = _LOW63 - low if self.rank == 0 else low
        lt, _ = compare_xor(self.ctx, self._s, self._r, self.prg, mine)
        return (flat >> np.uint64(63)) ^ lt

    def eqz_xor(self, x: np.ndarray) -> np.ndarray:
        """XOR shares (bit 0) of [x == 0] for x = x_0 + x_1: x is 0 iff x_0 == -x_1, the
        equality output of the same millionaires' protocol on (x_0, -x_1) (94 random OTs
        per element; the generic zero test of :func:`mpc.ss.compare.all_zero_xor` costs
        126 on this source's AND triples). Used by :func:`mpc.ss.compare.eqz`."""
        flat = np.asarray(x, dtype=np.uint64)
        _, eq = compare_xor(self.ctx, self._s, self._r, self.prg, flat if self.rank == 0 else np.uint64(0) - flat)
        return eq
