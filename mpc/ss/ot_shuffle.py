"""Dealer-free oblivious shuffle on OT extension (``triples="ot"``): two parties, and N >= 3 at the end.

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

:func:`permute_share` is one such round alone (one party's permutations, A networks of W
words per wire): the stages of :mod:`mpc.ss.clos_shuffle`, which keeps every network within a
memory budget when one network over all n wires would not fit.

``jointly``: one network (one permutation per party) for all rows, each OT's correlation
``rows`` words wide; else one network per row, every row's switches in the same batches.
``clear`` (jointly): rows that party 0 holds in the clear (party 1's shares publicly 0)
skip party 0's network: party 0 applies pi_0 to them itself, then they go through party
1's network like the rest (the circuit join's A columns: 3 of its 5 rows take network 0).
The networks then differ in width, and so do the pads of the two OT directions.
A party's permutation and its routing depend on n alone (:func:`draw`), so a caller can
draw it ahead, in a thread, while other work runs. :class:`TwoRounds` exposes the two
rounds of a joint shuffle separately (the offline phase of both networks still in one
walk, each network with its own public size and rows), so a caller can act between
them: the circuit join drops wires after round 0 (positions party 0 names, uniform
because pi_0 is) and runs round 1 on fewer wires.
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
n = 1.33 * 2^20 27.4M (43.0M when padded to 2^21). The walk itself (plain numpy, word-major:
every operation along the wire axis) is out of place, each layer's real switches as a
per-block prefix view, the wiring folded into the views (:class:`_Walk`: an input layer
writes its outputs straight to their wired positions, an output layer reads its inputs
from them; no gather), and it touches only the switches carrying a real wire, so its work
follows n, not the padded width.

N >= 3 parties (:func:`shuffle_parties`, the shuffle of :class:`mpc.ss.ot_parties.OtParties`).
Round j = 0..N-1 is permute + share by party j with its secret uniform pi_j, where *every*
other party k runs the two-party network of pi_j with j on k's own share: k as S with its
mask a_kj, j as P (the same switch bits in its N - 1 networks). Party j ends with
pi_j(x_j + sum_k d_k) + sum_k Delta_k, each k with B_kj: they add up to pi_j(x), since
pi_j(a_kj) = B_kj + Delta_k per network. The result is permuted by pi_{N-1} o ... o pi_0:
every party reshuffles once, as in the shuffles of Laur, Willemson and Zhang
("Round-efficient oblivious database manipulation", ISC 2011), here each reshuffle by the
OT switching network instead of a dealer or a replicated sharing. All networks are
independent of x: every pair walks both of its networks (this party's round and the
peer's) as in the two-party shuffle, all pairs at once (a thread per peer, each pair its
own channels and OT sessions). Online: N sequential rounds; in round j every other party
sends j one message d_k = share_k - a_kj and takes B_kj (known offline) as its new share.

Why not fold (the tempting cheaper design: for round j the other parties give their shares
to one helper h, and j and h run the two-party protocol): h would hold every share of the
round's input but j's, so j and h together hold all of them and learn x; that is secure
against single parties only. Here no party ever receives another's share: every message is
masked by its sender's own uniform mask, or is OT traffic.

Security of the N-party shuffle (semi-honest; any coalition C of at most N - 1 parties;
kappa = 128): pick a party m outside C. C's view: the networks between two members of C
add nothing; in a network between a member and an outsider, the member's view is
pseudorandom by the two-party argument above (as S: IKNP matrices of P's choice bits; as P:
corrections masked by the pads of the choices it did not make, and d masked by the
outsider's a, which never appears otherwise); every share C ends with is a B of its own
pads or masked by an outsider's B. So C's view is independent of x and of every
outsider's permutation, and the result's permutation (...) o pi_m o (...) is uniform given
it: pi_m is uniform and independent of the view, the other factors fixed. Nothing beyond
the shape (rows, n) is revealed to anyone. (OtParties' other capabilities are weaker:
see :mod:`mpc.ss.ot_parties`.) Cost per party: N - 1 pair networks, each both ways as in
the two-party shuffle (about N - 1 times its offline work and traffic per party, the pairs
overlapped), plus (N - 1) x rows x n words online. The IKNP extensions and their hashing
dominate (the two walks took about 4% of a two-party shuffle's time at n = 2^18), so a
party's N - 1 networks cost about N - 1 times one: measured with all three parties on one
2-core machine over gRPC (load 9-15), n = 2^20: 50.2 s against the two-party 19.8 s
(``bench/bench_shuffle_parties.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from mpc.crypto.random import row_permutations
from mpc.ot.wire import expect
from mpc.ss import benes

if TYPE_CHECKING:
    from mpc.crypto.random import PRG
    from mpc.runtime.context import Context
    from mpc.ss.ot_triples import OtSource

T = TypeVar("T")
_BATCH_WORDS = 1 << 20    # OTs x words per batch of layers: bounded memory (~100 MB per side)


def _destinations(shape: tuple[int, int], width: int) -> np.ndarray:
    """Uniform permutations (one per row of ``shape``) as destinations on ``width`` wires:
    input i goes to output dest[i]; dummy wires >= n stay in place."""
    rows, n = shape
    perm = row_permutations(shape)                  # output j receives input perm[j]
    dest = np.empty((rows, width), dtype=np.int32 if width < 2 ** 31 else np.int64)   # held until online
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


def _network(source: OtSource, a: np.ndarray, bits: list[np.ndarray], n_s: int, n_p: int,
             jointly: bool, own_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The offline phase of both networks at once: this party walks the peer's network (on
    n_s wires) as S from its mask ``a`` ((rows, padded width of n_s)) and its own (n_p
    wires, control ``bits``, (1 or rows, width/2) per layer) as P from 0, ``own_rows``
    words wide when ``jointly`` (the two networks may differ in wires and rows, see
    :class:`TwoRounds`); else one network per row of ``a`` (:func:`walks`). Returns
    (B, Delta)."""
    if jointly:
        v_s, v_p = walks(source, a[:, None, :], bits, n_s, n_p, own_rows)
        return v_s[:, 0], v_p[:, 0]
    v_s, v_p = walks(source, a[None], bits, n_s, n_p, 1)
    return v_s[0], v_p[0]


def walks(source: OtSource, a: np.ndarray, bits: list[np.ndarray] | None, n_s: int, n_p: int,
          w_p: int) -> tuple[np.ndarray, np.ndarray]:
    """The offline phase of A networks each way at once: this party walks the peer's A
    networks (on n_s wires each) as S from its mask ``a`` ((W_s, A, padded width of n_s):
    W_s words per wire) and its own A networks (n_p wires, control ``bits``, (1 or A,
    width/2) per layer) as P from 0, ``w_p`` words per wire. Only the real switches of each
    network take an OT; the others are public (:func:`mpc.ss.benes.fixed_bits`) and both
    walks apply them locally. Random OTs for a group of layers of each network in one
    batch each way, then S's corrections p0 + (v1_S - v0_S) - p1 of the whole group in one
    message. A direction of no words takes no OT (``w_p`` = 0, or W_s = 0: a one-sided
    permute + share, :func:`permute_share`; ``bits`` may then be None). Returns (B,
    Delta), (W_s, A, width_s) and (w_p, A, width_p)."""
    ctx, peer = source.ctx, source.peer
    w_s, lead, width_s = a.shape
    width_p = benes.padded_size(n_p)
    # walk (W, A, width) arrays: one OT per switch carrying its W words; the switches' OT
    # order is the C order of the (A, blocks, switch) axes; pads and corrections travel
    # word-major, (w, OTs), so every operation runs along the long wire axis
    walk_s = _Walk(a, _plan(n_s, width_s))                   # reads a, never writes it
    walk_p = _Walk(np.zeros((w_p, lead, width_p), np.uint64),
                   walk_s.plan if (n_p, width_p) == (n_s, width_s) else _plan(n_p, width_p))
    plan_s, plan_p = walk_s.plan, walk_p.plan
    diff = np.empty(w_p * lead * width_p // 2, np.uint64)      # P's switch terms, one layer's
    # the groups of a network are the same at both parties (its wires and rows are public)
    # (words: switches x lead x w); a network carrying no row takes no OT at all
    groups_s = _groups([lay.switches * lead * w_s for lay in plan_s]) if w_s else []
    groups_p = _groups([lay.switches * lead * w_p for lay in plan_p]) if w_p else []
    for g in range(max(len(groups_s), len(groups_p))):
        group_s = groups_s[g] if g < len(groups_s) else range(0)
        group_p = groups_p[g] if g < len(groups_p) else range(0)
        total = sum(plan_s[j].switches for j in group_s) * lead
        choices = np.concatenate([np.zeros(0, bool)] + [
            bits[j].reshape(-1, plan_p[j].blocks, plan_p[j].half)[key].reshape(-1)
            for j in group_p for key in plan_p[j].parts])
        p0, p1, mine = source.rot_pair(total, choices, w_s, w_p)
        taus, off = np.empty((w_s, total), np.uint64), 0
        for j in group_s:                                    # S: the peer's network
            (in0, in1), (out0, out1) = walk_s.layer(j)
            for key in plan_s[j].parts:
                key = _EVERY + key
                x0, x1, shape = in0[key], in1[key], in0[key].shape
                cnt = int(np.prod(shape[1:]))       # switches of this part (w_s may be 0)
                t = taus[:, off:off + cnt].reshape(shape)        # the corrections, in place
                pad = p0[:, off:off + cnt].reshape(shape)
                if _fancy(key):                 # a copy: assign (out= would write into it)
                    o1 = x1 + pad
                    out0[key], out1[key] = x0 - pad, o1
                else:
                    o1 = out1[key]
                    np.add(x1, pad, out=o1)
                    np.subtract(x0, pad, out=out0[key])
                np.subtract(o1, x0, out=t)      # t = (v1 + p0) - v0 - p1: one pass fewer
                t -= p1[:, off:off + cnt].reshape(shape)
                off += cnt
            walk_s.done()
        ctx.send(peer, taus)
        tau = expect(peer, ctx.recv(peer), np.uint64, (w_p, len(choices)), "the shuffle's OT corrections")
        off = 0
        for j in group_p:                                    # P: this party's network
            lay = plan_p[j]
            (in0, in1), (out0, out1) = walk_p.layer(j)
            b = bits[j].reshape(-1, lay.blocks, lay.half)
            for key in lay.parts:
                c = b[key][None]
                key = _EVERY + key
                x0, x1 = in0[key], in1[key]
                # t = c (tau + v1 - v0) + mine: P's share of c (v1 - v0) plus S's pad, in a
                # reused buffer (a fresh one per layer costs its page faults)
                t = diff[:x0.size].reshape(x0.shape)
                np.subtract(x1, x0, out=t)
                t += tau[:, off:off + c.size].reshape(t.shape)
                t *= c
                t += mine[:, off:off + c.size].reshape(t.shape)
                if _fancy(key):
                    out0[key], out1[key] = x0 + t, x1 - t
                else:
                    np.add(x0, t, out=out0[key])
                    np.subtract(x1, t, out=out1[key])
                off += c.size
            walk_p.done()
    return walk_s.v, walk_p.v


_EVERY = (slice(None),)   # the walk's word axis W, ahead of a _Layer's (A, blocks, half) key


def _fancy(key: tuple) -> bool:
    """Whether the index ``key`` selects by an index array (a copy, not a view)."""
    return any(isinstance(k, np.ndarray) for k in key)


class _Walk:
    """One network's walk on a (W, A, width) array, out of place and double-buffered, with
    the wiring folded into the layers' views (no gather): the input layers (and the middle)
    read their switch pairs (2s, 2s + 1) of each block, the output layers the pairs
    (t, m/2 + t) of the previous layer's blocks of m (the shuffle before them); the input
    layers write output i of switch s to position i m/2 + s of the block (the unshuffle after
    them), the middle and output layers to (2s + i). So the wiring between two layers is
    always in the writer's or the reader's view (:func:`mpc.ss.benes.wire`). Per layer the
    walk first writes the public switches that carry a real wire (crossed or not) into the
    output; the caller writes the real ones (:meth:`layer`'s views, indexed by the layer's
    ``parts``). Switches of dummies alone are skipped, and a crossed public switch (a real
    wire and a dummy) is a copy but for its real output (a masked copy per switch index,
    no fancy swap): the walk's work is in the n real wires,
    not the padded width, and the dummies' values are garbage (this party's own values,
    never sent, dropped at the end)."""

    def __init__(self, v: np.ndarray, plan: list[_Layer]) -> None:
        self.v, self.plan = v, plan                      # v: the input, read only
        # zeros: the wires of switches without a real wire are never written (their values
        # are never read into a real one, and the caller drops them at the end)
        self._buffers = [np.zeros(v.shape, np.uint64), np.zeros(v.shape, np.uint64)]
        self._k = (len(plan) + 1) // 2
        self._next = 0

    def _view(self, v: np.ndarray, j: int, reading: bool) -> tuple[np.ndarray, np.ndarray]:
        lay = self.plan[j]
        w, a = v.shape[:2]
        natural = j <= self._k - 1 if reading else j >= self._k - 1
        if natural:
            x = v.reshape(w, a, lay.blocks, lay.half, 2)
            return x[..., 0], x[..., 1]
        x = v.reshape(w, a, lay.blocks, 2, lay.half)
        return x[..., 0, :], x[..., 1, :]

    def layer(self, j: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """Layer j's (input, output) views, each (v0, v1) of shape (W, A, blocks, half), the
        public switches already written."""
        lay = self.plan[j]
        out = self._buffers[self._next]
        (x0, x1), (o0, o1) = self._view(self.v, j, True), self._view(out, j, False)
        if lay.rest < lay.stop:                          # public switches with a real wire (and some real)
            tail = _EVERY * 3 + (slice(lay.rest, lay.stop),)
            o0[tail], o1[tail] = x0[tail], x1[tail]
        for col, crossed in lay.fixed:                   # crossed public switches: a real wire and a
            if j < self._k - 1:                          # dummy, so only the real output matters:
                np.copyto(o1[..., col], x0[..., col], where=crossed)    # input 0 is real here,
            else:
                np.copyto(o0[..., col], x1[..., col], where=crossed)    # input 1 in an output layer
        self._out = out
        return (x0, x1), (o0, o1)

    def done(self) -> None:
        """The current layer is written: its output is the next layer's input."""
        self.v = self._out
        self._next ^= 1


class _Layer:
    """One layer's real switches as index keys into the (A, blocks, half) axes of the
    walk's (W, A, blocks, half) views: the prefix of q switches every block has (a
    strided view) and switch q of the blocks that have q + 1 (the blocks' real wires differ
    by at most one). ``rest``, ``stop``: the switches q .. stop - 1 of each block, beyond
    which no switch of any block touches a real wire (a block of r real wires has them on
    its first ceil(r/2) switches, on both sides; the crossed public switches are among
    them); ``fixed``: the crossed public switches, as (switch, which blocks) per switch
    index that has any (a block's crossed switch pairs its last real wire with a dummy).

    Built from the blocks' real wires ``wires`` alone (O(blocks), not O(width)): a block of
    r has floor(r/2) real switches (none in an input layer for r = 2: ``pair_is_public``)
    and, for odd r outside the middle, switch floor(r/2) crossed; the same switches as
    :func:`mpc.ss.benes.real_switches` and :func:`mpc.ss.benes.fixed_bits` (pinned by a test)."""

    def __init__(self, wires: np.ndarray, half: int, middle: bool, pair_is_public: bool):
        self.blocks, self.half = len(wires), half
        per = wires // 2
        if pair_is_public:
            per = np.where(wires == 2, 0, per)
        q = int(per.min())
        extra = np.flatnonzero(per > q)
        self.parts: list[tuple] = []
        if q:
            self.parts.append((slice(None), slice(None), slice(0, q)))
        if len(extra):
            self.parts.append((slice(None), extra, q))
        self.rest, self.stop = q, int(-(-wires.max() // 2))
        self.switches = int(per.sum())
        odd = (wires % 2 == 1) & (not middle)
        crossed = [odd & (per == c) for c in (q, q + 1)]          # the blocks' per differ by <= 1
        self.fixed = [(c, m) for c, m in zip((q, q + 1), crossed, strict=True) if m.any()]


def _plan(n: int, width: int) -> list[_Layer]:
    """The layers of the n-wire network in the width-``width`` layout (public: n only)."""
    k = benes.log2_size(width)
    sizes = benes.block_sizes(n, width)
    out = []
    for j in range(2 * k - 1):
        level = j if j < k else 2 * k - 2 - j
        wires = sizes[level]
        half = width // (2 * len(wires))
        out.append(_Layer(wires, half, j == k - 1, j < k - 1 and half > 1))
    return out


class Routed:
    """This party's secret permutation(s) on n wires and their network's control bits:
    ``rows`` uniform permutations (one for a joint shuffle) as destinations on the padded
    width, routed (:func:`mpc.ss.benes.route`). Depends only on n and the CSPRNG, so it can
    be drawn before the data exist (:func:`draw`, e.g. in a thread while other work runs).
    ``dest`` ((rows, n): input i goes to output dest[r, i]) routes given permutations
    instead (:mod:`mpc.ss.clos_shuffle`'s stages, drawn there from the CSPRNG)."""

    def __init__(self, n: int, rows: int = 1, dest: np.ndarray | None = None) -> None:
        self.n, self.rows = n, rows
        self.width = benes.padded_size(n)
        if dest is None:
            self.dest = _destinations((rows, n), self.width)
        else:
            if dest.shape != (rows, n):
                raise ValueError(f"destinations of shape {dest.shape} for {rows} x {n} wires")
            self.dest = np.empty((rows, self.width), np.int32 if self.width < 2 ** 31 else np.int64)
            self.dest[:, :n] = dest
            self.dest[:, n:] = np.arange(n, self.width)
        self.bits = PackedBits(benes.route(self.dest, n))


class PackedBits:
    """The control bits of :func:`mpc.ss.benes.route` (2k - 1 bool layers) held one bit per
    switch, a layer unpacked when the network walk reads it (``bits[j]``): a bool per
    switch would hold about log2(n) bytes per wire through the whole walk."""

    def __init__(self, layers: list[np.ndarray]) -> None:
        self._shapes = [lay.shape for lay in layers]
        self._packed = [np.packbits(lay.reshape(-1)) for lay in layers]

    def __len__(self) -> int:
        return len(self._packed)

    def __getitem__(self, j: int) -> np.ndarray:
        shape = self._shapes[j]
        return np.unpackbits(self._packed[j], count=int(np.prod(shape))).view(bool).reshape(shape)


def draw(n: int, rows: int = 1) -> Routed:
    """This party's permutation(s) for a shuffle of length n (see :class:`Routed`)."""
    return Routed(n, rows)


class TwoRounds:
    """A joint shuffle as its two permute + share rounds, the offline phase of both first:
    round 0 by party 0's permutation on ``n0`` wires carrying ``rows0`` shared rows, round 1
    by party 1's on ``n1`` wires carrying ``rows1`` (both public). Between the rounds the
    caller may act on the round-0 output, e.g. drop wires (the circuit join drops the
    wires of A's empty bins: n1 < n0). ``routed``: this party's permutation drawn in
    advance (:func:`draw`, on n0 wires for party 0, n1 for party 1). A network of at most
    one wire is the identity and costs nothing."""

    def __init__(self, source: OtSource, n0: int, n1: int, rows0: int, rows1: int,
                 routed: Routed | None = None) -> None:
        self.source, self.n, self.rows = source, (n0, n1), (rows0, rows1)
        rank = source.rank
        live = [rows0 if n0 > 1 else 0, rows1 if n1 > 1 else 0]      # rows each network carries
        own, other = rank, 1 - rank
        n_own = self.n[own]
        if routed is None and n_own > 1:
            routed = draw(n_own)
        if routed is not None and (routed.n, routed.rows) != (n_own, 1):
            raise ValueError(f"the permutation drawn for {routed.rows} x {routed.n} wires does not fit a "
                             f"joint shuffle of {n_own} wires")
        self.routed = routed
        n_peer = max(self.n[other], 2)
        self.a = source.prg.uint64((live[other], benes.padded_size(n_peer)))
        bits = routed.bits if routed is not None else benes.route(np.arange(2)[None], 2)
        self.v_s, self.v_p = _network(source, self.a, bits, n_peer, max(n_own, 2), True, live[own])

    def round(self, permuter: int, x: np.ndarray, clear: int = 0) -> np.ndarray:
        """Fresh shares of the (rows, n) shares ``x`` permuted by party ``permuter``'s
        permutation; its first ``clear`` rows are the permuter's plaintext (the other
        party's shares publicly 0): the permuter applies its permutation to them itself
        (they take no network; the other party's shares stay 0)."""
        ctx, peer, rank = self.source.ctx, self.source.peer, self.source.rank
        rows, n = x.shape
        if (n, rows - clear) != (self.n[permuter], self.rows[permuter]) or not 0 <= clear <= rows:
            raise ValueError(f"round {permuter} of the shuffle is for {self.rows[permuter]} shared rows on "
                             f"{self.n[permuter]} wires, got {x.shape} with {clear} clear rows")
        if n <= 1:
            return x.copy()
        # the real wires only: the permutations fix the dummies, whose values are dropped
        if rank == permuter:
            mine = np.array(x, dtype=np.uint64)
            if clear < rows:
                d = expect(peer, ctx.recv(peer), np.uint64, (rows - clear, n), "the masked shuffle share")
                mine[clear:] += d
            out = np.empty_like(mine)
            np.put_along_axis(out, np.broadcast_to(self.routed.dest[:, :n], mine.shape), mine, axis=1)
            out[clear:] += self.v_p[:, :n]
        else:
            if clear < rows:
                ctx.send(peer, x[clear:] - self.a[:, :n])
            out = np.zeros((rows, n), np.uint64)
            out[clear:] = self.v_s[:, :n]
        return out


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
    if jointly:
        rounds = TwoRounds(source, n, n, rows - clear, rows, routed)
        return rounds.round(1, rounds.round(0, x, clear))
    if routed is None:
        routed = draw(n, rows)
    if (routed.n, routed.rows) != (n, rows):
        raise ValueError(f"the permutation drawn for {routed.rows} x {routed.n} wires does not fit {x.shape}")
    width, dest = routed.width, routed.dest
    a = source.prg.uint64((rows, width))
    v_s, v_p = _network(source, a, routed.bits, n, n, False, rows)   # offline: both networks at once
    mine = x
    for permuter in (0, 1):                          # online: party 0's pi, then party 1's (real wires only)
        if rank == permuter:
            d = expect(peer, ctx.recv(peer), np.uint64, (rows, n), "the masked shuffle share")
            total = mine + d
            out = np.empty_like(total)
            np.put_along_axis(out, dest[:, :n], total, axis=1)
            out += v_p[:, :n]
            mine = out
        else:
            ctx.send(peer, mine - a[:, :n])
            mine = v_s[:, :n]
    return np.ascontiguousarray(mine)


def permute_share(source: OtSource, permuter: int, x: np.ndarray, routed: Routed | None = None) -> np.ndarray:
    """Fresh shares of the (W, A, n) shares ``x``, each of its A rows of n wires permuted by
    one of party ``permuter``'s permutations (``routed``: A permutations on n wires, given at
    the permuter only), W words per wire: ONE permute + share of the module docstring (the
    permuter is P in A networks at once, the other party S), the other direction empty. The
    stages of :mod:`mpc.ss.clos_shuffle` are made of it."""
    ctx, peer, rank = source.ctx, source.peer, source.rank
    w, lead, n = x.shape
    if n <= 1 or w == 0 or lead == 0:
        return np.array(x, dtype=np.uint64)
    width = benes.padded_size(n)
    if rank == permuter:
        if routed is None or (routed.n, routed.rows) != (n, lead):
            raise ValueError(f"the permuting party needs {lead} permutations of {n} wires")
        _, delta = walks(source, np.zeros((0, lead, width), np.uint64), routed.bits, n, n, w)
        total = x + expect(peer, ctx.recv(peer), np.uint64, x.shape, "the masked shuffle share")
        out = np.empty_like(total)
        np.put_along_axis(out, np.broadcast_to(routed.dest[None, :, :n], total.shape), total, axis=2)
        out += delta[..., :n]
        return out
    a = source.prg.uint64((w, lead, width))
    b, _ = walks(source, a, None, n, n, 0)
    ctx.send(peer, x - a[..., :n])
    return np.ascontiguousarray(b[..., :n])


def _each_peer(peers: list[str], fn: Callable[[str], T]) -> dict[str, T]:
    """``fn(peer)`` for every peer at once, one thread each (every pair has its own
    channels and OT sessions; numpy and AES release the GIL): each pair's walk runs while
    the others wait on the network. The first failure is raised without waiting for the
    other pairs (the job's abort wakes them)."""
    if len(peers) == 1:
        return {peers[0]: fn(peers[0])}
    pool = ThreadPoolExecutor(len(peers), thread_name_prefix="gaotie-shuffle-pair")
    try:
        futures = {pool.submit(fn, peer): peer for peer in peers}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in done:
            if f.exception() is not None:
                raise f.exception()
        return {peer: f.result() for f, peer in futures.items()}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def shuffle_parties(ctx: Context, pair: Callable[[str], OtSource], prg: PRG, x: np.ndarray,
                    jointly: bool = False) -> np.ndarray:
    """Fresh shares of the (rows, n) shares ``x`` among N >= 3 parties, permuted by
    pi_{N-1} o ... o pi_0, pi_j known to party j only (the N-party section of the module
    docstring); ``pair(peer)``: this party's two-party source with ``peer``.

    Offline (independent of x), all pairs at once: this party and each peer k walk both
    networks of their pair (:func:`_network`): this party gets B_k (its output share of k's
    round) and Delta_k (its part of its own round with k). Online, round j: every k != j
    sends d_k = share_k - a_kj to j and takes B_kj as its new share; j's new share is
    pi_j(share_j + sum_k d_k) + sum_k Delta_k. One message of rows x n words (the real
    wires) from every other party to each round's permuting party."""
    rank, parties, peers = ctx.rank, ctx.parties, ctx.peers
    rows, n = x.shape
    if rows == 0 or n <= 1:
        return x.copy()
    width = benes.padded_size(n)
    dest = _destinations((1 if jointly else rows, n), width)
    bits = benes.route(dest, n)
    masks = {peer: prg.uint64((rows, width)) for peer in peers}
    walks = _each_peer(peers, lambda peer: _network(pair(peer), masks[peer], bits, n, n, jointly, rows))
    mine = np.array(x, dtype=np.uint64)                     # online: the real wires only
    for j, permuter in enumerate(parties):                    # online: party j's round
        if rank == j:
            total = mine.copy()
            for peer in peers:
                total += expect(peer, ctx.recv(peer), np.uint64, (rows, n), "the masked shuffle share")
            out = np.empty_like(total)
            np.put_along_axis(out, np.broadcast_to(dest[:, :n], total.shape), total, axis=1)
            for peer in peers:
                out += walks[peer][1][:, :n]                   # sum_k Delta_k
            mine = out
        else:
            ctx.send(permuter, mine - masks[permuter][:, :n])
            mine = np.ascontiguousarray(walks[permuter][0][:, :n])   # B
    return mine
