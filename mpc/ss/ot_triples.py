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
  (rounded up to whole bytes, :mod:`mpc.ss.ot_corrections`: 288 bytes per element instead
  of 512) -- the correlated OT with short messages of Asharov, Lindell, Schneider, Zohner
  (CCS 2013). a_1 b_0 runs the other way at the same time; c_i = a_i b_i + both cross
  shares. Each batch's corrections and the next batch's IKNP matrix travel as one
  message, [tau_k, U_k+1]: one message per batch and direction (the transport's cost per
  message besides its cost per byte).
* Multiplication without a triple (:meth:`OtSource.mul`, used by :func:`mpc.ss.beaver.mul`):
  the same two cross products on the shares x_i, y_i themselves, x y = x_0 y_0 + x_1 y_1 +
  [x_0 y_1] + [x_1 y_0]: no triple's a_i b_i, no opening of (x - a, y - b), one round less.
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
  millionaires' protocol (:mod:`mpc.ss.millionaire`; no edaBit), 83 random OTs per element
  (fewer under a public bound on |x|); :meth:`OtSource.eqz_xor`, the equality-only
  variant on (x_0, -x_1) with 7-bit digits (82 random OTs at 64 bits, 76 at 60: callers
  that need only statistical bits pass fewer).
* Oblivious shuffle (:meth:`OtSource.shuffle`): permute + share by each party in turn on
  a switching network, one full-word correlated OT per switch (:mod:`mpc.ss.ot_shuffle`).
* Truncation: the exact two-party wrap-bit protocol (:meth:`OtSource.truncate`, the same
  one as the Paillier source) with the one bit product by a correlated OT: error at most
  one unit in the last place, no failure probability for |x| < 2^62 (no SecureML local
  truncation).

Security (semi-honest, two non-colluding parties): IKNP with SoftSpokenOT's k = 2 matrix
(:mod:`mpc.ot.extension`), kappa = 128 base OTs (Chou-Orlandi, :mod:`mpc.ot.base`) and
fixed-key AES hashes of :mod:`mpc.ot.hashing` (ideal-permutation model, Guo-Katz-Wang-Yu,
S&P 2020): the one-word pads of the correlated OTs (products, bit products, AND triples)
by the circular correlation-robust ``ccr_words`` (one AES call per row: semi-honest IKNP
needs only correlation robustness), wider pads by the tweakable ``tccr``, except the Gram
matrix's (:meth:`OtSource.rot_pairs_ccr`: one ccr call per block, block b of a pad
ccr(row xor c_b); the reduction to correlation robustness is in
:func:`mpc.ot.hashing.ccr_blocks_word_major`).
What a party receives: as the extension sender, the matrix U
(each row masked by the PRG stream of a punctured GGM leaf it cannot compute:
pseudorandom whatever the peer's choice bits); as the receiver, the
corrections tau_l = p0_l + x_l - p1_l mod 2^w, where the pad p_{1-r} of the choice it did
not make is pseudorandom to it (correlation robustness with the unknown Delta), so tau
is uniform whatever the sender's correlation; in comparisons also the masked messages of
the 1-out-of-2^m OTs, whose pads but the chosen one hold key slices it does not know
(:mod:`mpc.ss.millionaire`). Shares of every triple are therefore
pseudorandom and independent of the peer's values; what is opened later (x - a, y - b,
x - r) is masked by them; a product opens nothing. Tweaks (the OT's index in its session) of the wider pads are never
reused.

Parameters: kappa = 128 (computational; there is no statistical parameter: every share
is exact, no masking slack as in the Paillier source); OTs in batches of 2^17 (1 MiB
extension matrices), so memory stays bounded whatever the request and every batch's
temporaries stay in cache (and below malloc's mmap threshold: no page faults per batch).
Costs per element: an arithmetic triple 128 correlated OTs (2 x 64, 2 x (512 + 288)
bytes), an AND triple word 128 random OTs (2 x 512 bytes), a comparison 83 random OTs (1-out-of-2^m
OTs on digits of up to 6 bits and an AND tree, see mpc.ss.millionaire) and one daBit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mpc.crypto import pool
from mpc.crypto.random import PRG, new_seed
from mpc.ot import session
from mpc.ot.bits import transpose
from mpc.ot.extension import _pad, pad_words, xor_delta
from mpc.ot.hashing import ccr_blocks_word_major, ccr_words
from mpc.runtime.context import Context
from mpc.runtime.errors import ProtocolViolation
from mpc.ss import clos_shuffle, ot_corrections, ot_shuffle, provider, spill
from mpc.ss.millionaire import compare_xor, equal_xor
from mpc.ss.triples import Shape, check_shape, matmul_shape
from mpc.ss.two_party import trunc_pair_from_dabits, truncate_by_wrap

_ONE = np.uint64(1)
_LOW63 = np.uint64((1 << 63) - 1)
_BITS = np.arange(64, dtype=np.uint64)
_CHUNK_OTS = 1 << 17      # OTs per IKNP batch: 2 MiB matrices, cache-sized, bounded memory
_CHUNK_WORDS = 1 << 21    # correlation words per batch (matmul: m words per OT)
_MATMUL_ROWS = 1 << 14    # rows of A per matmul block (so one OT's message stays <= 128 KiB)


def _bits(words: np.ndarray) -> np.ndarray:
    """(n,) uint64 -> (n, 64) 0/1 uint8, bit l of word i at [i, l] (little-endian words)."""
    words = np.ascontiguousarray(words, dtype=np.uint64)
    return np.unpackbits(words.view(np.uint8), bitorder="little").reshape(-1, 64)


class _WordBits:
    """The bits of uint64 words as (n, 64) 0/1 uint8 rows (:func:`_bits`), made slice by
    slice as :meth:`OtSource._cross` takes its batches: no n x 64 array."""

    def __init__(self, words: np.ndarray) -> None:
        self.words = np.ascontiguousarray(words, dtype=np.uint64).reshape(-1)

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return _bits(self.words[rows])


def _pads(rows: np.ndarray, first: int, w: int) -> np.ndarray:
    """The OT pads of ``rows`` as (m, w) uint64 (:func:`mpc.ot.extension._pad`); for one
    word only the low 64 bits of the circular correlation-robust hash are formed
    (:func:`mpc.ot.hashing.ccr_words`)."""
    if w == 1:
        return ccr_words(rows).reshape(-1, 1)
    return _pad(rows, first, 8 * w).view(np.uint64)


def _low_bits(rows: np.ndarray, first: int) -> np.ndarray:
    """Bit 0 of each row's pad H(i, row) (the low bit of :func:`_pads`), as 0/1 uint8."""
    return (_pads(rows, first, 1)[:, 0] & _ONE).astype(np.uint8)


_PARALLEL_MIN_WORKERS = 4   # below this, hash inline (see _Parallel)


class _Parallel:
    """Hashing on the crypto pool while this thread goes on (AES and numpy release the GIL),
    when the pool has at least ``_PARALLEL_MIN_WORKERS`` workers; inline otherwise. Measured
    on 2 cores with both parties in one process (bench_ot_triples, 2^20 products): the same
    wall time and about 15% more CPU with the pool (hand-offs, rows hashed on a cold
    core), as the two parties and the transport already keep both cores busy."""

    def __init__(self) -> None:
        self._pool = pool.get_pool() if pool.workers() >= _PARALLEL_MIN_WORKERS else None

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self._pool.submit(fn, *args) if self._pool is not None else fn(*args)

    def result(self, job: Any) -> Any:
        return job.result() if self._pool is not None else job


class OtSource(provider.RandomnessProvider):
    """Two-party triple source on IKNP OT extension; see the module docstring."""

    name = "ot"
    capabilities = frozenset({provider.ARITHMETIC, provider.MATMUL, provider.BOOLEAN, provider.TRUNC_PAIR,
                              provider.TRUNCATE, provider.EDABIT, provider.DABIT, provider.MSB_XOR,
                              provider.SHUFFLE, provider.EQZ_XOR, provider.MUL})

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
    def _cot(self, x: np.ndarray, choices: np.ndarray, w: int, nbytes: np.ndarray,
             sent: tuple[np.ndarray, int] | None, nxt: np.ndarray, peer_u: np.ndarray | None,
             next_ms: int, run: _Parallel) -> tuple[np.ndarray, np.ndarray, Any, np.ndarray | None]:
        """One batch of correlated OTs each way. As sender with correlations ``x`` ((e, P, w)
        or broadcastable to it, ms = e P OTs); as receiver with ``choices`` ((mr,) bool; the
        peer's correlations have w words too). OT i is later multiplied by 2^shift, so only
        ``nbytes[i % P]`` low bytes of each word travel (:mod:`mpc.ss.ot_corrections`).
        ``sent``: this batch's receiver rows (t_i, first OT), its U already sent. ``nxt``:
        the next batch's receiver choices (may be empty); their U goes out in one message
        with this batch's corrections, [tau, U], so each direction carries one message per
        batch (U alone if this party sends no corrections). ``peer_u``: this batch's U if it
        came inside the peer's last message (None: it comes alone, received here);
        ``next_ms``: this party's sender OTs in the next batch (the peer attaches their U).
        Returns (the negated share as sender, p0 (ms, w); mine as receiver (mr, w); the next
        batch's receiver rows; the peer's next U): receiver - p0 = choice * correlation, in
        those low bytes."""
        period = len(nbytes)
        ms, mr = x.shape[0] * period, len(choices)
        pr = run.submit(_pads, *sent, w) if mr else None              # the receiver's pads meanwhile
        ahead = self._r.columns(nxt) if len(nxt) else None           # the next batch's U
        p0 = np.zeros((0, w), np.uint64)
        if ms:
            q, first_s = self._s.extend(ms, peer_u)                   # receives U unless it came along
            p1 = run.submit(_pads, xor_delta(q, self._s.delta, np.empty_like(q)), first_s, w)
            p0 = _pads(q, first_s, w)
            tau = p0.reshape(-1, period, w) + x
            tau -= run.result(p1).reshape(tau.shape)
            packed = ot_corrections.pack(tau, nbytes)
            self.ctx.send(self.peer, packed if ahead is None else [packed, ahead[0]])
        elif ahead is not None:
            self.ctx.send(self.peer, ahead[0])
        sent_next = (transpose(ahead[1])[:len(nxt)], ahead[2]) if ahead is not None else None
        recv_share, u_next = np.zeros((0, w), np.uint64), None
        if mr:
            pr = run.result(pr)
            msg = self.ctx.recv(self.peer)
            if next_ms:
                if not isinstance(msg, list) or len(msg) != 2:
                    raise ProtocolViolation(f"party {self.peer!r} sent a {type(msg).__name__} as correlated-OT "
                                            "corrections and the next OT-extension matrix, expected a list of two")
                msg, u_next = msg
            tau = ot_corrections.unpack(self.peer, msg, mr // period, w, nbytes,
                                        "correlated-OT corrections").reshape(mr, w)
            tau *= choices.view(np.uint8)[:, None]
            tau += pr
            recv_share = tau
        return p0, recv_share, sent_next, u_next

    def rot_pair(self, m: int, choices: np.ndarray, words: int, recv_words: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One batch of random OTs each way (the peer makes the same call, its ``m`` being
        ``len(choices)`` here): as sender ``m`` pairs (p0, p1), as receiver p_choice for each
        of ``choices``; the sender's pads ``words`` 64-bit words wide, the receiver's
        ``recv_words`` (default ``words``; the peer passes the two swapped), word-major
        ((words, m) uint64: :func:`mpc.ot.extension.pad_words`; the pad of OT i is H(i, row),
        so its first words do not depend on its width). The caller derandomises (sends
        p0 + x - p1 for a correlated OT). A direction with no OTs (``m`` = 0 or no choices:
        both parties know both counts) is skipped on both sides: its pads are empty."""
        recv_words = words if recv_words is None else recv_words
        p0 = p1 = np.zeros((words, 0), np.uint64)
        mine = np.zeros((recv_words, 0), np.uint64)
        if len(choices):
            t, first_r = self._r.extend(np.ascontiguousarray(choices, dtype=bool))   # sends U
            mine = pad_words(t, first_r, recv_words)
        if m:
            q, first_s = self._s.extend(m)                                           # receives U
            p0 = pad_words(q, first_s, words)
            xor_delta(q, self._s.delta)                                             # in place
            p1 = pad_words(q, first_s, words)
        return p0, p1, mine

    def rot_pair_ccr(self, m: int, choices: np.ndarray, words: int, dtype: type = np.uint64
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`rot_pair` (both directions, same widths) with pads of ``words`` words of
        ``dtype`` (uint64 or uint32) by the circular correlation-robust hash alone, one AES
        call per 128-bit block (:func:`mpc.ot.hashing.ccr_blocks_word_major`: block b of
        OT i's pad is ccr(row xor c_b); no tweak), where :meth:`rot_pair`'s wider pads take
        tccr blocks (three calls for two blocks). Semi-honest IKNP needs only correlation
        robustness (see that function's security note). The sender's two pads come from
        one pass over q (sigma linear: Delta is xored after sigma, q is left as it is)."""
        return self.rot_pairs_ccr([(m, len(choices), words, dtype)], choices)[0]

    def rot_pairs_ccr(self, parts: list[tuple[int, int, int, type]], choices: np.ndarray
                      ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """:meth:`rot_pair_ccr` for consecutive parts of ONE IKNP batch each way (one
        extension matrix per direction, one transpose): part i has m_i sender OTs, c_i
        receiver OTs (the next c_i of ``choices``) and pads of words_i words of dtype_i,
        ``parts`` = [(m_i, c_i, words_i, dtype_i), ...] (the peer passes the same with m_i
        and c_i swapped). Returns (p0, p1, mine) per part, as :meth:`rot_pair_ccr`."""
        choices = np.ascontiguousarray(choices, dtype=bool).reshape(-1)
        if len(choices) != sum(c for _, c, _, _ in parts):
            raise ValueError("rot_pairs_ccr: the parts' receiver counts must add up to len(choices)")
        m = sum(mi for mi, _, _, _ in parts)
        t = self._r.extend(choices)[0] if len(choices) else None                  # sends U
        q = self._s.extend(m)[0] if m else None                                   # receives U
        out, so, ro = [], 0, 0
        for mi, ci, words, dtype in parts:
            p0 = p1 = mine = np.zeros((words, 0), dtype)
            if ci:
                mine = ccr_blocks_word_major(t[ro:ro + ci], words, dtype)
            if mi:
                p0, p1 = ccr_blocks_word_major(q[so:so + mi], words, dtype, self._s.delta)
            out.append((p0, p1, mine))
            so, ro = so + mi, ro + ci
        return out

    def shuffle(self, x: np.ndarray, jointly: bool = False) -> np.ndarray:
        """The dealer-free oblivious shuffle: permute + share by each party in turn on an
        oblivious switching network (see :mod:`mpc.ss.ot_shuffle`); in Clos stages of
        networks of bounded size when the job limits them (``ctx.state[clos_shuffle.WIRES]``,
        set with a memory budget; the stages' shares then go to the job's spill directory)."""
        x = np.ascontiguousarray(x, dtype=np.uint64)
        wires = self.ctx.state.get(clos_shuffle.WIRES)
        if not clos_shuffle.needs(x.shape[1], wires):
            return ot_shuffle.shuffle(self, x, jointly)
        directory = self.ctx.state.get(spill.SPILL)
        where = None if directory is None else Path(directory)
        if jointly or len(x) == 1:
            return clos_shuffle.shuffle(self, x, wires, where)
        out = np.empty_like(x)                # every row by its own permutation
        for i in range(len(x)):
            out[i] = clos_shuffle.shuffle(self, x[i:i + 1], wires, where)[0]
        return out

    def _cross(self, corr, bits_mine: np.ndarray, n_send: int, shifts: np.ndarray, w: int = 1
               ) -> tuple[np.ndarray, np.ndarray]:
        """Shares of sum_p 2^shifts[p] * choice[e, p] * corr[e, p] per element e, both ways.

        ``corr(lo, hi)`` gives this party's sender correlations of elements lo:hi as
        (hi - lo, P, w) uint64; ``bits_mine`` ((n_recv, P) 0/1, an array or a
        :class:`_WordBits`) its receiver choices; the peer sends for n_recv elements and
        receives for ``n_send``. Returns (shares as sender (n_send, w), shares as receiver
        (n_recv, w)), batched to bounded memory.
        Batch k + 1's IKNP matrix is sent before batch k's corrections are awaited (each
        side's messages keep their order: U_0, tau_0, U_1, tau_1, ...)."""
        period = len(shifts)
        nbytes = ot_corrections.widths(shifts)
        weights = shifts.astype(np.uint64).reshape(1, period, 1)
        n_recv = len(bits_mine)
        per = max(1, min(_CHUNK_OTS // period, _CHUNK_WORDS // (period * w)))
        chunks = -(-max(n_send, n_recv) // per)

        def choices(k: int) -> np.ndarray:
            c = bits_mine[k * per:min(n_recv, (k + 1) * per)].reshape(-1)
            return c.view(bool) if c.dtype == np.uint8 else c.astype(bool)   # 0/1 values

        def sends(k: int) -> int:
            return max(0, min(n_send, (k + 1) * per) - k * per)

        out_s, out_r = np.empty((n_send, w), np.uint64), np.empty((n_recv, w), np.uint64)
        run = _Parallel()
        mine = choices(0)
        sent = self._r.extend(mine) if chunks and len(mine) else None
        peer_u = None
        for k in range(chunks):
            lo = k * per
            x = corr(lo, lo + sends(k)) if sends(k) else np.zeros((0, period, w), np.uint64)
            nxt = choices(k + 1) if k + 1 < chunks else np.zeros(0, bool)
            s, r, sent, peer_u = self._cot(x, mine, w, nbytes, sent, nxt, peer_u,
                                           period * sends(k + 1), run)
            np.subtract(np.uint64(0), np.sum(s.reshape(-1, period, w) << weights, axis=1, dtype=np.uint64),
                        out=out_s[lo:lo + sends(k)])                 # the sender's share is -p0
            np.sum(r.reshape(-1, period, w) << weights, axis=1, dtype=np.uint64,
                   out=out_r[lo:lo + len(mine) // period])
            mine = nxt
        return out_s, out_r

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
            run = _Parallel()
            if len(ch):
                xb = run.submit(_low_bits, *self._r.extend(ch))
            if ms:
                q, first_s = self._s.extend(ms)
                x1 = run.submit(_low_bits, xor_delta(q, self._s.delta, np.empty_like(q)), first_s)
                x0s.append(_low_bits(q, first_s))
                x1s.append(run.result(x1))
            if len(ch):
                xbs.append(run.result(xb))

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
                           _WordBits(b), n, np.arange(64, dtype=np.int64))
        c = a * b + s[:, 0] + r[:, 0]                 # a_i b_i + [a_i b_peer] + [a_peer b_i]
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    def mul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Shares of x * y straight from the shares: x y = x_0 y_0 + x_1 y_1 + x_0 y_1 + x_1 y_0,
        the two cross terms by Gilboa on the shares themselves (each party the OT receiver
        with the bits of its own y share, the sender with its own x share as correlation),
        exactly as a triple's a_0 b_1, a_1 b_0 but with no triple to open: the same OTs, the
        opening of (x - a, y - b) and its round saved. Secure for the same reason (the
        receiver's choices are hidden by U, the sender's correlation by the corrections'
        pads); nothing is opened."""
        x = np.ascontiguousarray(x, dtype=np.uint64).reshape(-1)
        y = np.ascontiguousarray(y, dtype=np.uint64).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"mul needs shares of one shape, got {x.shape} and {y.shape}")
        s, r = self._cross(lambda lo, hi: x[lo:hi, None, None], _WordBits(y), len(x),
                           np.arange(64, dtype=np.int64))
        return x * y + s[:, 0] + r[:, 0]

    def matmul(self, shape_a: Shape, shape_b: Shape):
        shape_a, shape_b = check_shape(shape_a), check_shape(shape_b)
        if len(shape_a) != 2 or len(shape_b) != 2:
            raise ValueError("triples='ot' supports 2-D matmul operands only")
        out_shape = matmul_shape(shape_a, shape_b)
        (m, k), nn = shape_a, shape_b[1]
        a, b = self.prg.uint64(shape_a), self.prg.uint64(shape_b)
        tj = np.repeat(np.arange(k), nn)             # element (t, j) -> t, t-major like b.ravel()
        choices = _WordBits(b)
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

    def msb_xor(self, x: np.ndarray, bits: int = 64) -> np.ndarray:
        """XOR shares (bit 0 of each word) of [x < 0] for x = x_0 + x_1 a signed ``bits``-bit
        integer (-2^(bits-1) <= x < 2^(bits-1), public ``bits`` in 3..64; 64: any ring
        element, read signed), without an edaBit. Its sign is bit bits - 1 of x mod 2^bits
        (two's complement), and that bit of a sum mod 2^64 depends on the addends' low
        ``bits`` bits only (carries run upwards), so for h = bits - 1 and low = the h low
        bits: sign = bit_h(x_0) xor bit_h(x_1) xor carry, the carry into bit h being
        [low(x_0) + low(x_1) >= 2^h] = [2^h - 1 - low(x_0) < low(x_1)]: one comparison of
        the parties' private h-bit values by CrypTFlow2's millionaires' protocol
        (:func:`mpc.ss.millionaire.compare_xor`: h random OTs for 1-out-of-2^m OTs on
        digits of up to 6 bits, then ceil(h / 6) - 1 pairs of ANDs on b-sharing AND
        triples, two random OTs each; 83 OTs in all for bits = 64, 5 rounds). Used by
        :func:`mpc.ss.compare.msb_xor`.
        """
        if not 3 <= bits <= 64:
            raise ValueError(f"bits must be in 3..64, got {bits}")
        flat = np.asarray(x, dtype=np.uint64)
        h = np.uint64(bits - 1)
        low_mask = (_ONE << h) - _ONE
        low = flat & low_mask
        mine = low_mask - low if self.rank == 0 else low
        lt, _ = compare_xor(self.ctx, self._s, self._r, self.prg, mine, bits - 1)
        return ((flat >> h) & _ONE) ^ lt

    def eqz_xor(self, x: np.ndarray, bits: int = 64) -> np.ndarray:
        """XOR shares (bit 0) of [x == 0 mod 2^bits] for x = x_0 + x_1 (``bits`` in 2..64,
        public): the low ``bits`` bits of x are 0 iff x_0 == -x_1 there (carries run
        upwards), the equality-only millionaires' protocol on (x_0, -x_1)
        (:func:`mpc.ss.millionaire.equal_xor`: 7-bit digits, 1-out-of-128 OTs of one bit
        and an AND tree; 82 random OTs per element at 64 bits, 76 at 60, where the
        comparison's eq output costs 84 and the generic zero test of
        :func:`mpc.ss.compare.all_zero_xor` 126 on this source's AND triples). Used by
        :func:`mpc.ss.compare.eqz`."""
        flat = np.asarray(x, dtype=np.uint64)
        return equal_xor(self.ctx, self._s, self._r, self.prg, flat if self.rank == 0 else np.uint64(0) - flat,
                         bits)
