"""Dealer-free correlated randomness for three or more parties (``triples="ot"``, N >= 3).

The two-party OT source (:class:`mpc.ss.ot_triples.OtSource`) runs unchanged between
pairs of parties, each pair through a *pair view* of the job's context
(:func:`pair_context`: the two parties in rank order, the same channels and OT sessions).

* Oblivious shuffle: a genuine N-party protocol, one permutation per party, every party
  running the two-party switching network with every other one
  (:func:`mpc.ss.ot_shuffle.shuffle_parties`): hidden from any N - 1 colluding parties.
* Everything else (triples, truncation, comparisons, equality, products): *folded* onto the
  first two parties p0, p1 = ``ctx.parties[:2]``. Correlated randomness (Beaver, AND and
  matmul triples, truncation pairs, daBits, edaBits) is the pair's; every other party's
  shares of it are zero (a valid sharing: the relation holds on the sum). The protocols on
  shares (``truncate``, ``msb_xor``, ``eqz_xor``, ``mul``) first fold: every party of rank
  >= 2 sends its share to p1, which adds them to its own, and the pair runs the two-party
  protocol on (x_p0, x_p1 + sum of the others); the others' output shares are zero.

Security of the folded part (semi-honest, kappa = 128 as in :mod:`mpc.ss.ot_triples`).
The shares held by the parties of rank >= 2 are no secret from p0 and p1: folding sends
them to p1, and a Beaver opening x - a (matmul, AND gates) with their zero triple shares
shows them to both. So the run is the two-party protocol between p0 and p1 with the others'
shares as known offsets: p0's share stays hidden from p1, and p1's from p0, exactly as in
the two-party protocol (by the OT triples' pads and the sharings' uniform masks), whatever
the others' shares are; a party of rank >= 2 receives only shares dealt to it and openings
masked by the pair's triples. Hence no single party learns anything beyond the job's
outputs (DESIGN.md's threat model: semi-honest parties that do not collude), nor do p0 or
p1 together with parties of rank >= 2 (those add only shares the pair sees anyway and their
own inputs), nor parties of rank >= 2 together. It does NOT hold against p0 and p1
together: they hold both shares of every folded value. That is weaker than the dealer (any
coalition of computing parties, the dealer colluding with none) and than the shuffle (any
N - 1). What would close it: pairwise Gilboa triples between all pairs (c_i = a_i b_i +
sum_j [a_i b_j] + [a_j b_i], MASCOT's semi-honest core; Keller, Orsini, Scholl, CCS 2016),
N-party daBits (b = XOR_i b_i, one product per party in turn) and edaBits from them, and the
generic comparison and truncation circuits on those: several times the OTs of the folded
comparisons and of the one-bit-product truncation; not built.

Costs: the pair's, plus one message of the folded shares from every party of rank >= 2 to
p1 per protocol on shares.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.crypto.random import PRG, new_seed
from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.runtime.errors import ProtocolViolation
from mpc.ss import ot_shuffle, provider
from mpc.ss.ot_triples import OtSource
from mpc.ss.triples import Shape, check_shape, matmul_shape


class PairContext(Context):
    """A two-party view of a job's context: ``parties`` the two (in the job's rank order),
    ``rank`` and ``peers`` within them, so that ``broadcast``, ``gather`` and ``exchange``
    reach the pair only; the same channels (sends and receives go through the job's
    context), state (so the same cached OT sessions, keyed by peer), options and deadline.
    Sending to a third party is an error."""

    def __init__(self, ctx: Context, peer: str) -> None:       # no Context.__init__: a view
        if peer == ctx.party or peer not in ctx.parties:
            raise ValueError(f"party {ctx.party!r} has no peer {peer!r} among {ctx.parties}")
        self._ctx = ctx
        self.party, self.job_id, self.helpers = ctx.party, ctx.job_id, []
        self.parties = [p for p in ctx.parties if p in (ctx.party, peer)]
        self.rank = self.parties.index(ctx.party)
        self.state, self.options, self.timeout = ctx.state, ctx.options, ctx.timeout

    def __repr__(self) -> str:
        return f"PairContext(party={self.party!r}, parties={self.parties}, job_id={self.job_id!r})"

    @property
    def deadline(self) -> float:            # type: ignore[override]
        return self._ctx.deadline

    def send(self, peer: str, value: Any) -> None:
        self._check_peer(peer)
        self._ctx.send(peer, value)

    def recv(self, peer: str) -> Any:
        self._check_peer(peer)
        return self._ctx.recv(peer)

    def report_progress(self, *args: Any, **kwargs: Any) -> None:
        self._ctx.report_progress(*args, **kwargs)

    def abort(self, reason: str, origin: str | None = None) -> None:
        self._ctx.abort(reason, origin)

    def finish(self) -> None:
        raise RuntimeError("a pair view does not finish the job; its context does")


def pair_context(ctx: Context, peer: str) -> PairContext:
    """The two-party view of ``ctx`` between this party and ``peer``."""
    return PairContext(ctx, peer)


def pair_source(ctx: Context, peer: str) -> OtSource:
    """This job's two-party OT source with ``peer`` (created on first use, then cached in
    ``ctx.state``; both parties must first use it at the same point of the protocol)."""
    key = ("mpc.ss.ot_parties.pair", peer)
    if key not in ctx.state:
        ctx.state[key] = OtSource(pair_context(ctx, peer))     # type: ignore[arg-type]
    return ctx.state[key]


class OtParties(provider.RandomnessProvider):
    """The OT source for three or more computing parties; see the module docstring."""

    name = "ot"
    capabilities = OtSource.capabilities

    def __init__(self, ctx: Context) -> None:
        if len(ctx.parties) < 3:
            raise ValueError(f"OtParties serves three or more computing parties, got {len(ctx.parties)}; "
                             f"two parties use mpc.ss.ot_triples.OtSource")
        self.ctx, self.rank = ctx, ctx.rank
        self.first, self.second = ctx.parties[0], ctx.parties[1]
        self.prg = PRG(new_seed())

    @property
    def _pair(self) -> OtSource:
        """The source between p0 and p1 (only they have one)."""
        return pair_source(self.ctx, self.second if self.rank == 0 else self.first)

    @property
    def _in_pair(self) -> bool:
        return self.rank < 2

    # -- folding onto the pair --------------------------------------------------------------
    def _fold(self, *shares: np.ndarray) -> list[np.ndarray] | None:
        """Move the shares of every party of rank >= 2 to p1 (see the module docstring):
        p0 gets its own back, p1 its own plus the others', the others None."""
        shares = tuple(np.ascontiguousarray(s, dtype=np.uint64) for s in shares)
        if not self._in_pair:
            self.ctx.send(self.second, list(shares) if len(shares) > 1 else shares[0])
            return None
        out = [s.copy() for s in shares]
        if self.rank == 1:
            for peer in self.ctx.parties[2:]:
                got = self.ctx.recv(peer)
                got = got if len(shares) > 1 else [got]
                if not isinstance(got, list) or len(got) != len(shares):
                    raise ProtocolViolation(f"party {peer!r} sent a {type(got).__name__} as its folded "
                                            f"shares, expected a list of {len(shares)} arrays")
                for o, s, g in zip(out, shares, got, strict=True):
                    o += expect(peer, g, np.uint64, s.shape, "its folded share")
        return out

    # -- correlated randomness: the pair's, zero shares elsewhere ----------------------------
    def arithmetic(self, shape: Shape):
        shape = check_shape(shape)
        if self._in_pair:
            return self._pair.arithmetic(shape)
        return tuple(np.zeros(shape, np.uint64) for _ in range(3))

    def matmul(self, shape_a: Shape, shape_b: Shape):
        shape_a, shape_b = check_shape(shape_a), check_shape(shape_b)
        if self._in_pair:
            return self._pair.matmul(shape_a, shape_b)
        out = matmul_shape(shape_a, shape_b)
        return np.zeros(shape_a, np.uint64), np.zeros(shape_b, np.uint64), np.zeros(out, np.uint64)

    def boolean(self, shape: Shape):
        shape = check_shape(shape)
        if self._in_pair:
            return self._pair.boolean(shape)
        return tuple(np.zeros(shape, np.uint64) for _ in range(3))

    def dabit(self, shape: Shape):
        shape = check_shape(shape)
        if self._in_pair:
            return self._pair.dabit(shape)
        return np.zeros(shape, np.uint64), np.zeros(shape, np.uint64)

    def edabit(self, shape: Shape):
        shape = check_shape(shape)
        if self._in_pair:
            return self._pair.edabit(shape)
        return np.zeros(shape, np.uint64), np.zeros(shape, np.uint64)

    def trunc_pair(self, shape: Shape, bits: Any):
        shape = check_shape(shape)
        if self._in_pair:
            return self._pair.trunc_pair(shape, bits)
        return tuple(np.zeros(shape, np.uint64) for _ in range(3))

    # -- protocols on shares: fold, then the pair's -----------------------------------------
    def truncate(self, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
        folded = self._fold(x)
        return np.zeros(np.shape(x), np.uint64) if folded is None else self._pair.truncate(folded[0], bits)

    def msb_xor(self, x: np.ndarray, bits: int = 64) -> np.ndarray:
        folded = self._fold(x)
        return np.zeros(np.shape(x), np.uint64) if folded is None else self._pair.msb_xor(folded[0], bits)

    def eqz_xor(self, x: np.ndarray, bits: int = 64) -> np.ndarray:
        folded = self._fold(x)
        return np.zeros(np.shape(x), np.uint64) if folded is None else self._pair.eqz_xor(folded[0], bits)

    def mul(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.uint64).reshape(-1)
        y = np.asarray(y, dtype=np.uint64).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"mul needs shares of one shape, got {x.shape} and {y.shape}")
        folded = self._fold(x, y)
        return np.zeros(x.shape, np.uint64) if folded is None else self._pair.mul(*folded)

    # -- the N-party shuffle ----------------------------------------------------------------
    def shuffle(self, x: np.ndarray, jointly: bool = False) -> np.ndarray:
        """One permutation per party, each party's network run with every other party
        (:func:`mpc.ss.ot_shuffle.shuffle_parties`): no N - 1 parties know the result's."""
        return ot_shuffle.shuffle_parties(self.ctx, lambda peer: pair_source(self.ctx, peer), self.prg,
                                          np.ascontiguousarray(x, dtype=np.uint64), jointly)
