"""Dealer-free two-party oblivious shuffle on OT extension (``triples="ot"``).

Permute + share: party P knows a permutation pi, the (rows, n) array x is additively
shared over Z_2^64, and the two parties get fresh shares of pi(x). The shuffle is permute
+ share by party 0 with its secret uniform pi_0, then by party 1 with its pi_1: the result
is permuted by pi_1 o pi_0, which no single party knows (each knows one uniform factor).

Construction: the oblivious switching network of Mohassel and Sadeghian ("How to hide
circuits in MPC", EUROCRYPT 2013) on the arbitrary-size rearrangeable network on n wires
(Chang-Melhem 1997, :mod:`mpc.ss.benes`: laid out in a power-of-two Benes network whose
dummy wires P's permutation fixes; every switch touching a dummy has a public state set by
n alone, which both parties apply locally, so only the network's real switches take an
OT), in the "permutation
correlation" form (as in Chase, Ghosh, Poburinnaya, ASIACRYPT 2020): everything but one
n-word message is independent of x and can be precomputed.

* Offline: the other party S draws a uniform input mask a and walks the network on its
  shares, P on its shares of 0. A switch with bit c (P's) on wires holding v0 = v0_S +
  v0_P, v1 = v1_S + v1_P outputs (v0 + t, v1 - t) with t = c (v1 - v0). One correlated OT
  (a random OT of :meth:`mpc.ss.ot_triples.OtSource.rot_pair`, derandomised; Beaver's
  precomputed-OT trick) with P's choice c and S's correlation
  v1_S - v0_S gives S the pad p and P p + c (v1_S - v0_S); S's share of t is -p, P's is
  that plus c (v1_P - v0_P). One OT per switch: random OTs for the switches of as many
  consecutive layers (all rows) as fit 2^20 words in one IKNP batch, then S's
  derandomising corrections p0 + (v1_S - v0_S) - p1 of the whole group in one message
  (S computes them layer by layer from its own pads); all layers in one batch up to
  n = 2^16 (one row), two layers per batch at 2^20. At the end S holds (a, B) and P
  (pi, Delta) with pi(a) = B + Delta (P's part is affine in its input: pi(v_P) + Delta).
* Online: S sends d = x_S - a; P's new share is pi(x_P + d) + Delta, S's is B. They add
  up to pi(x_P + x_S - a) + pi(a) - B + B = pi(x).

``jointly``: one network (one permutation per party) for all rows, each OT's correlation
``rows`` words wide; else one network per row, every row's switches in the same batches.
``clear`` (jointly): rows that party 0 holds in the clear (party 1's shares publicly 0)
skip party 0's network: party 0 applies pi_0 to them itself, then they go through party
1's network like the rest (the circuit join's A columns: 3 of its 5 rows take network 0).
The networks then differ in width, and so do the pads of the two OT directions.
A party's permutation and its routing depend on n alone (:func:`draw`), so a caller can
draw it ahead, in a thread, while other work runs.
Both parties' networks run at once (each party is P in one and S in the other), so the
offline phase takes one round of two messages each way per batch, the online one two
sequential messages of rows x n words.

Security (semi-honest, two non-colluding parties; kappa = 128, the IKNP parameters of
:mod:`mpc.ot.extension`). P receives only OT outputs and corrections: each correction is
masked by the pad of the choice it did not make (pseudorandom to it by correlation
robustness), and d is masked by the uniform a, which reaches P otherwise only inside
corrections masked by such pads; so P's view is pseudorandom whatever x and S's values
(in the second round, d masks the first round's permuting party's share with its own
a). S receives only the IKNP matrices of P's choice bits, pseudorandom whatever the
bits, so it learns nothing about pi. Each party's output share is fresh: S's B is a
function of its own uniform pads, P's share is x-dependent but masked by B. Permutations
are uniform (argsort of 128-bit CSPRNG keys, :func:`mpc.crypto.random.row_permutations`),
and the padding to 2^k dummies, with the fixed switch states, is public (a function of n).
Cost per real switch: one IKNP OT (16 bytes) plus ``rows`` (jointly) or 1 words of
correction; :func:`mpc.ss.benes.switch_count` (n), about n log2 n - n/2, switches per
network: at n = 2^20 and one row about 20M OTs, 480 MB per party's network; at
n = 1.33 * 2^20 27.4M (43.0M when padded to 2^21). The walk itself (plain numpy) runs on
the padded width, word-major (every operation along the wire axis), each layer's real
switches as a per-block prefix view, the wiring as one gather.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mpc.crypto.random import row_permutations
from mpc.ot.extension import pad_words, xor_delta
from mpc.ot.wire import expect
from mpc.ss import benes

if TYPE_CHECKING:
    from mpc.ss.ot_triples import OtSource

_BATCH_WORDS = 1 << 20    # OTs x words per batch of layers: bounded memory (~100 MB per side)


def _destinations(shape: tuple[int, int], width: int) -> np.ndarray:
    """Uniform permutations (one per row of ``shape``) as destinations on ``width`` wires:
    input i goes to output dest[i]; dummy wires >= n stay in place."""
    rows, n = shape
    perm = row_permutations(shape)                  # output j receives input perm[j]
    dest = np.empty((rows, width), dtype=np.int64)
    np.put_along_axis(dest, perm, np.broadcast_to(np.arange(n), perm.shape), axis=1)
    dest[:, n:] = np.arange(n, width)
    return dest


def _groups(sizes: list[int]) -> list[range]:
    """Consecutive layers whose OT words (``sizes``: switches x words per layer) fit one batch
    of _BATCH_WORDS (a layer larger than that is a batch of its own)."""
    out, start, size = [], 0, 0
    for j, size_j in enumerate(sizes):
        if j > start and size + size_j > _BATCH_WORDS:
            out.append(range(start, j))
            start, size = j, 0
        size += size_j
    out.append(range(start, len(sizes)))
    return out


def _network(source: OtSource, a: np.ndarray, bits: list[np.ndarray], n: int, jointly: bool,
             own_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The offline phase of both networks at once: this party walks the peer's network as S
    from its mask ``a`` and its own (control ``bits``, (1 or rows, width/2) per layer) as P
    from 0 (``own_rows`` words wide when ``jointly``: its own network may carry fewer rows
    than the peer's, see ``clear`` of :func:`shuffle`). Only the real switches of the
    n-wire network take an OT; the others are public (:func:`mpc.ss.benes.fixed_bits`) and
    both walks apply them locally. Random OTs for a group of layers in one batch each way,
    then S's corrections p0 + (v1_S - v0_S) - p1 of the whole group in one message.
    Returns (B, Delta)."""
    ctx, peer = source.ctx, source.peer
    rows, width = a.shape
    # walk (W, A, width) arrays: jointly (rows, 1, width), one OT per switch carrying its
    # W = rows words; else (1, rows, width). The switches' OT order is the C order of the
    # (A, blocks, switch) axes; pads and corrections travel word-major, (w, OTs), so every
    # operation runs along the long wire axis
    w_s, w_p = (rows, own_rows) if jointly else (1, 1)
    v_s = (a[:, None, :] if jointly else a[None]).copy()    # a itself is needed online
    v_p = np.zeros((w_p,) + v_s.shape[1:], np.uint64)
    lead = v_s.shape[1]
    plan = _plan(n, width)
    _swap(v_s, plan[0].fixed)
    _swap(v_p, plan[0].fixed)
    every = (slice(None),)
    for group in _groups([lay.switches * max(rows, own_rows) for lay in plan]):
        total = sum(lay.switches for lay in plan[group.start:group.stop]) * lead
        choices = np.concatenate([bits[j].reshape(-1, plan[j].blocks, plan[j].half)[key].reshape(-1)
                                  for j in group for key in plan[j].parts])
        p0, p1, mine = _rot_pair(source, total, choices, w_s, w_p)
        taus, off = np.empty((w_s, total), np.uint64), 0
        moves = {j: _move(plan, j, width) for j in group}
        for j in group:                                      # S: the peer's network
            lay = plan[j]
            v = v_s.reshape(w_s, lead, lay.blocks, lay.half, 2)
            for key in lay.parts:
                i0, i1 = every + key + (0,), every + key + (1,)
                t = v[i1] - v[i0]
                cnt = int(np.prod(t.shape[1:]))     # switches of this part (w_s may be 0)
                pad = p0[:, off:off + cnt].reshape(t.shape)
                t += pad
                t -= p1[:, off:off + cnt].reshape(t.shape)
                taus[:, off:off + cnt] = t.reshape(w_s, cnt)
                v[i0] -= pad
                v[i1] += pad
                off += cnt
            v_s = np.take(v_s, moves[j], axis=2)
        ctx.send(peer, taus)
        tau = expect(peer, ctx.recv(peer), np.uint64, (w_p, total), "the shuffle's OT corrections")
        off = 0
        for j in group:                                      # P: this party's network
            lay = plan[j]
            v = v_p.reshape(w_p, lead, lay.blocks, lay.half, 2)
            b = bits[j].reshape(-1, lay.blocks, lay.half)
            for key in lay.parts:
                i0, i1 = every + key + (0,), every + key + (1,)
                c = b[key].astype(np.uint64)[None]
                cnt = c.size
                got = tau[:, off:off + cnt] * c.reshape(1, cnt)
                got += mine[:, off:off + cnt]
                t = v[i1] - v[i0]
                t *= c
                t += got.reshape(t.shape)
                v[i0] += t
                v[i1] -= t
                off += cnt
            v_p = np.take(v_p, moves[j], axis=2)
    if jointly:
        return v_s[:, 0], v_p[:, 0]
    return v_s[0], v_p[0]


def _rot_pair(source: OtSource, m: int, choices: np.ndarray, send_words: int, recv_words: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`mpc.ss.ot_triples.OtSource.rot_pair` with pads ``send_words`` wide as sender
    and ``recv_words`` as receiver (the peer's widths swapped): the two networks of a
    ``clear`` shuffle carry different rows. The same IKNP batches and pads (the pad of OT
    i is H(i, row), :func:`mpc.ot.extension.pad_words`, so a pad's first words do not
    depend on its width)."""
    if send_words == recv_words:
        return source.rot_pair(m, choices, send_words)
    t, first_r = source._r.extend(np.ascontiguousarray(choices, dtype=bool))   # sends U
    q, first_s = source._s.extend(m)                                           # receives U
    p0 = pad_words(q, first_s, send_words)
    xor_delta(q, source._s.delta)                                             # in place
    return p0, pad_words(q, first_s, send_words), pad_words(t, first_r, recv_words)


class _Layer:
    """One layer's real switches as index keys into the (A, blocks, half) axes of the
    walk's (W, A, blocks, half, 2) view: the prefix of q switches every block has (a strided view, updated in place)
    and switch q of the blocks that have q + 1 (the blocks' real wires differ by at most
    one); ``fixed``: the crossed public switches."""

    def __init__(self, real: np.ndarray, fixed: np.ndarray, blocks: int):
        self.blocks, self.half = blocks, len(real) // blocks
        per = real.reshape(blocks, self.half).sum(axis=1)
        q = int(per.min())
        extra = np.flatnonzero(per > q)
        self.parts: list[tuple] = []
        if q:
            self.parts.append((slice(None), slice(None), slice(0, q)))
        if len(extra):
            self.parts.append((slice(None), extra, q))
        self.switches = int(real.sum())
        self.fixed = np.flatnonzero(fixed)


def _plan(n: int, width: int) -> list[_Layer]:
    """The layers of the n-wire network in the width-``width`` layout (public: n only)."""
    k = benes.log2_size(width)
    return [_Layer(r, f, 1 << (j if j < k else 2 * k - 2 - j))
            for j, (r, f) in enumerate(zip(benes.real_switches(n, width), benes.fixed_bits(n, width),
                                           strict=True))]


def _move(plan: list[_Layer], j: int, width: int) -> np.ndarray:
    """The wiring after layer j, then the public crossed switches of layer j + 1, as one
    gather index on the wire axis (one np.take: faster than the strided reshape copy)."""
    idx = benes.wire(np.arange(width), j, width)
    if j + 1 < len(plan) and len(plan[j + 1].fixed):
        f = plan[j + 1].fixed
        sw = np.arange(width)
        sw[2 * f], sw[2 * f + 1] = 2 * f + 1, 2 * f
        idx = idx[sw]
    return idx


def _swap(v: np.ndarray, switches: np.ndarray) -> None:
    """Cross the given (public, crossed) switches of v's wire axis (the last) in place."""
    if len(switches):
        i0, i1 = 2 * switches, 2 * switches + 1
        v[..., i0], v[..., i1] = v[..., i1], v[..., i0]


class Routed:
    """This party's secret permutation(s) on n wires and their network's control bits:
    ``rows`` uniform permutations (one for a joint shuffle) as destinations on the padded
    width, routed (:func:`mpc.ss.benes.route`). Depends only on n and the CSPRNG, so it can
    be drawn before the data exist (:func:`draw`, e.g. in a thread while other work runs)."""

    def __init__(self, n: int, rows: int = 1) -> None:
        self.n, self.rows = n, rows
        self.width = benes.padded_size(n)
        self.dest = _destinations((rows, n), self.width)
        self.bits = benes.route(self.dest, n)


def draw(n: int, rows: int = 1) -> Routed:
    """This party's permutation(s) for a shuffle of length n (see :class:`Routed`)."""
    return Routed(n, rows)


def shuffle(source: OtSource, x: np.ndarray, jointly: bool = False, clear: int = 0,
            routed: Routed | None = None) -> np.ndarray:
    """Fresh shares of the (rows, n) shares ``x`` permuted by pi_1 o pi_0 (see the module
    docstring); every row by its own pair of permutations unless ``jointly``.

    ``clear`` (``jointly`` only): the first ``clear`` rows are party 0's plaintext, shared
    as (value, 0) (public: party 1 passes zeros). Party 0 then permutes them by pi_0
    itself, in the clear, and only the other rows go through its network; all rows go
    through party 1's. Party 1's shares of them stay 0 until its own round, so it learns
    nothing new; the output is the same as without ``clear``.
    ``routed``: this party's permutation drawn in advance (:func:`draw`, n = the length of
    ``x``, one row if ``jointly`` else ``rows``)."""
    ctx, peer, rank = source.ctx, source.peer, source.rank
    rows, n = x.shape
    if not 0 <= clear <= rows or (clear and not jointly):
        raise ValueError(f"clear rows need a joint shuffle and 0 <= clear <= rows, got clear={clear}")
    if rows == 0 or n <= 1:
        return x.copy()
    if routed is None:
        routed = draw(n, 1 if jointly else rows)
    if (routed.n, routed.rows) != (n, 1 if jointly else rows):
        raise ValueError(f"the permutation drawn for {routed.rows} x {routed.n} wires does not fit {x.shape}")
    width, dest = routed.width, routed.dest
    # network 0 (party 0's permutation) carries rows - clear words, network 1 all rows
    peer_rows, own_rows = (rows, rows - clear) if rank == 0 else (rows - clear, rows)
    a = source.prg.uint64((peer_rows, width))
    v_s, v_p = _network(source, a, routed.bits, n, jointly, own_rows)   # offline: both networks at once
    mine = np.zeros((rows, width), np.uint64)
    mine[:, :n] = x
    for permuter in (0, 1):                          # online: party 0's pi, then party 1's
        skip = clear if permuter == 0 else 0         # rows the permuter holds in the clear
        if rank == permuter:
            total = mine.copy()
            if skip < rows:
                d = expect(peer, ctx.recv(peer), np.uint64, (rows - skip, width), "the masked shuffle share")
                total[skip:] += d
            out = np.empty_like(total)
            np.put_along_axis(out, np.broadcast_to(dest, total.shape), total, axis=1)
            out[skip:] += v_p
            mine = out
        else:
            if skip < rows:
                ctx.send(peer, mine[skip:] - a)
            mine = np.concatenate([np.zeros((skip, width), np.uint64), v_s]) if skip else v_s
    return np.ascontiguousarray(mine[:, :n])
