"""Dealer-free circuit join, the share half: an OPPRF per cuckoo bin (by an OKVS), a
shared match flag per bin, and compaction by one oblivious shuffle.

The caller (:mod:`protocols.psi.circuit_join`) runs the KKRT OPRF on A's cuckoo bins: A
(first party) holds o_b = F(b, x_b) for each of its bins b, B (last party) can evaluate
F(b, y) for each of its items y and each of y's three candidate bins. This module then
(Pinkas, Schneider, Tkachenko, Yanai, "Efficient Circuit-based PSI with Linear
Communication", Eurocrypt 2019, the OPPRF of section 4 in the OKVS form of Rindal,
Schoppmann, "VOLE-PSI", Eurocrypt 2021):

1. OPPRF (:class:`BinJoin`): B draws per bin a target t_b (a uniform 64-bit word) and a mask
   u_b per payload column, and encodes in an OKVS (:mod:`mpc.crypto.okvs`, a 3-hash
   garbled cuckoo table) for each key k = F(b, y) the value (t_b, payload_y + u_b) +
   H(k), with H the fixed-key-AES TCCR hash (:func:`mpc.ot.hashing.tccr`) and positions
   AES_seed(k) under a fresh public seed. A decodes at o_b and subtracts H(o_b): in a bin
   whose item B holds, s_b = t_b and it gets payload_y + u_b; elsewhere pseudorandom
   garbage. B keeps t_b and -u_b: additive shares of B's payload per bin.
2. Flag: s_b - t_b is additively shared by construction (A holds s_b, B -t_b); the flag
   [s_b = t_b] is :func:`mpc.ss.compare.eqz` of it on its low ``match_bits(c)`` bits
   only (c the number of bins compared, see Parameters): the source's two-party zero
   test on the two addends (with ``triples="ot"`` the equality-only millionaires'
   protocol :func:`mpc.ss.millionaire.equal_xor`, 76 random OTs per bin at 2^20 ids
   (60 bits, 7-bit digits); otherwise the AND tree of :func:`mpc.ss.compare.all_zero_xor`
   on s_b xor t_b, bits - 1 AND bits), then a daBit.
3. Compaction (:meth:`BinJoin.finish`): the rows (flag, A's columns shared as (value, 0),
   B's payload shares) of all bins are shuffled by ONE permutation no party knows
   (:func:`mpc.ss.shuffle.shuffle` with ``jointly=True``: with the dealer its shuffle),
   the shuffled flags are opened and the flagged rows kept. Unmatched bins' garbage
   payloads are dropped, so no multiplication by the flag.

   Without a dealer (the OT source) the shuffle is the two permute + share rounds of
   :class:`mpc.ss.ot_shuffle.TwoRounds` (Mohassel-Sadeghian switching networks, one per
   party), and the zero test moves between them:
   a. round 0, A's uniform permutation pi_0 on all N bins, rows (A's columns, s_b - t_b,
      B's columns); A's columns are A's plaintext and skip A's network (A permutes them
      itself: ``clear``);
   b. A sends the positions pi_0(e) of its N - n_A empty bins e (cuckoo bins holding no
      id of A; their s_b is a decoding at the OPRF of a random dummy, so they would
      match only by a false positive), and both drop those columns;
   c. the zero test on the n_A remaining differences gives the shared flags;
   d. round 1, B's uniform permutation pi_1 on the n_A wires, rows (A's columns, flag,
      B's columns); then the flags are opened and the flagged rows kept.
   So the zero test (the most expensive step) and B's network run on n_A elements
   instead of N = 1.34 n_A. Each party's permutation depends only on public sizes (N for
   A, n_A for B), so it is drawn and routed in a thread while the OPRF and the zero test
   run.
4. Row order (OT source only, :func:`keeps_order`): A's last column is then its input row
   index i < n_A, in the clear like A's other columns, so it travels with the row through
   both rounds; :meth:`BinJoin.finish` takes it out of the result as the secret labels of
   a :class:`mpc.ss.order.RowOrder` (L = key_bits(n_A) bits): the
   order statistics of ONE joined column may then run on the join's order with keys
   y 2^L + i instead of on a fresh shuffle. Why that is sound: the compacted order is
   pi_1 o pi_0 restricted to the matched rows, each factor uniform (CSPRNG, drawn from the
   public sizes alone, so independent of the values) and known to one party only; the
   opened flags tell where matched rows are, not which matched row is where (given the
   set S of matched positions, the matched rows land on S by a uniform bijection). So to
   each party the arrangement of the joined rows is a uniformly random permutation
   independent of its view. The labels are distinct (one A row per filled bin) and fixed
   to the rows before pi_0, so no party knows which label sits at which output position:
   A knows each row's label but not pi_1, B not even the labels (``label_column``: one of
   A's own columns serves as the labels instead when its values are distinct below
   2^key_bits(n_A), A's ranks of a column with ``private_join(ranks=True)``, for the same
   reasons: no extra column then). It costs one more word
   per wire in round 1 (B's network).

Parameters: kappa = 128 (KKRT, IKNP, AES), lambda = 40 (cuckoo hashing, bucket capacities);
STAT = 40 bits of match: the zero test reads only the low match_bits(c) = 40 + ceil(log2 c)
bits of s_b - t_b, c the number of bins compared in the job (n_A with the OT source, whose
empty bins are dropped first; all N bins otherwise), public. In a bin whose id B holds,
s_b = t_b exactly (no false negative). In any other bin A decodes at an OPRF output o_b
that is none of B's keys, so H(o_b) is pseudorandom and independent of the table and of
t_b: s_b - t_b is uniform mod 2^64 and its low k bits are 0 with probability 2^-k. By the
union bound over the c comparisons a false match anywhere in the job has probability at
most c 2^-match_bits(c) <= 2^-40 (60 bits at 2^20 ids instead of 64: 76 random OTs per
bin instead of 82). match_bits is capped at 64 (the word): beyond c = 2^24 the bound is
c 2^-64. Fewer bits reveal nothing more: the test's output is the same shared flag, and
what is compared is a public function of c.

Reveals (semi-honest, no collusion): B receives only the KKRT matrix (pseudorandom) and
the masked openings of the zero test, the daBit conversion and the shuffle (uniform). A
receives the OKVS tables: every cell is uniform or a key's value minus uniform cells, and
the values are masked by H of OPRF outputs A does not know (all but its own o_b, and
those unmask to (t_b, payload + u_b), uniform since t_b, u_b are B's), so the tables are
pseudorandom whatever B's set; the seed is public (it is redrawn when an OKVS does not
peel, with probability ~1e-5 per 2^18-id bucket and below 1% for small ones, which tells
A only that B's pseudorandom keys did not peel under the first seed). Both then learn
the opened shuffled flags: a uniformly random set of m positions, so only the join size
m. Without a dealer B also receives pi_0(empty bins) in step 3b: pi_0 is uniform, drawn
by A from the CSPRNG and independent of everything B sees (B's view of round 0 is
simulatable without it, by the switching network's security), so this is a uniformly
random (N - n_A)-subset of [0, N), simulatable from the two public counts; the flags
opened after round 1 are at positions pi_1(pi_0(matched bins)), uniform to A (pi_1 is
B's) and to B (pi_0 is A's). Message shapes depend only on the set sizes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from mpc.crypto import okvs
from mpc.crypto.random import random_uint64
from mpc.ot.hashing import ecb, tccr
from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.runtime.executor import chunks
from mpc.ss import ot_shuffle
from mpc.ss.beaver import open_arith
from mpc.ss.compare import eqz
from mpc.ss.order import RowOrder, key_bits
from mpc.ss.ot_triples import OtSource
from mpc.ss.provider import source_class, source_kind
from mpc.ss.shuffle import shuffle
from mpc.ss.triples import get_source

STAT = 40               # statistical bits of the match test: false match <= 2^-STAT per job
SEED_TRIES = 16
NEEDS = ("arithmetic", "boolean", "dabit", "shuffle")   # of the job's randomness source


def match_bits(comparisons: int) -> int:
    """Bits of s_b - t_b the zero test reads for ``comparisons`` bins (public): STAT +
    ceil(log2 c), so c 2^-bits <= 2^-STAT by the union bound; at most 64 (the word)."""
    return min(64, STAT + max(0, int(comparisons) - 1).bit_length())


def keeps_order(ctx: Context) -> bool:
    """Whether :meth:`BinJoin.finish` compacts through the dealer-free two rounds (the OT
    source): then the joined rows come out in an order that is uniform, unknown to each
    party and independent of the values, and a label column A appends to its own (its
    input row index, in the clear before round 0) serves as the secret tie-break of a
    :class:`mpc.ss.order.RowOrder` (step 4 of the module docstring)."""
    kind = source_kind(ctx.options)
    return kind is not None and issubclass(source_class(kind, len(ctx.parties)), OtSource)


def _masks(keys: np.ndarray, width: int) -> np.ndarray:
    """H(k): ``width`` uint64 words per 16-byte key (TCCR with tweaks 1, 2, ...)."""
    blocks = [tccr(keys, np.uint64(j + 1)).view(np.uint64) for j in range(-(-width // 2))]
    return np.concatenate(blocks, axis=1)[:, :width]


def _positions(seed: bytes, keys: np.ndarray, cells: int) -> np.ndarray:
    return okvs.positions(ecb(seed, keys).view(np.uint64), cells)


# The bucket-local CPU work of the OPPRF as pure functions of arrays, run on the party's
# executor (``ctx.executor``: its thread pool, or its Ray cluster): B's OKVS encoding, A's
# decoding a chunk of bins at a time. Their arguments hold B's masked payload and targets,
# or A's OPRF outputs: the party's own secrets, so the executor is part of its trust domain
# (docs/security.md, "Party compute on a Ray cluster").
DECODE_CHUNK = 1 << 16    # bins per decoding call


def okvs_table(keys: np.ndarray, values: np.ndarray, cells: int, tries: int = SEED_TRIES
               ) -> tuple[np.ndarray, np.ndarray]:
    """B's OKVS of one bucket: ``values + H(k)`` ((k, w) uint64, H the TCCR masks) encoded at
    the positions AES_seed(k) of ``keys`` ((k, 16) uint8) under a fresh public seed, redrawn
    until the table peels (``okvs.OkvsError`` after ``tries`` seeds). Returns (seed (16,)
    uint8, table (cells, w) uint64)."""
    values = values + _masks(keys, values.shape[1])
    for _ in range(tries):
        seed = os.urandom(16)
        try:
            return np.frombuffer(seed, np.uint8).copy(), okvs.encode(_positions(seed, keys, cells), values, cells)
        except okvs.OkvsError:
            continue
    raise okvs.OkvsError(f"no OKVS seed of {tries} peeled")


def okvs_decoded(outputs: np.ndarray, table: np.ndarray, seed: np.ndarray, cells: int, width: int) -> np.ndarray:
    """A's decoding of a chunk of bins: T(o_b) - H(o_b) at OPRF outputs ``outputs`` ((c, 16)
    uint8), (c, width) uint64."""
    return okvs.decode(table, _positions(seed.tobytes(), outputs, cells)) - _masks(outputs, width)


class BinJoin:
    """One party's side of the OPPRF, flag and compaction over buckets of cuckoo bins.

    A (rank 0) calls :meth:`receive` per bucket, B (rank 1) :meth:`okvs_args` per bucket
    inside the argument stream of :meth:`tables`, in the same
    bucket order; both then call :meth:`finish`.
    """

    def __init__(self, ctx: Context, own_cols: int, peer_cols: int, label_column: int | None = None) -> None:
        self.ctx, self.peer = ctx, ctx.peers[0]
        self.own_cols, self.peer_cols = own_cols, peer_cols
        self.labelled = keeps_order(ctx)      # A's input row index as a last A column (step 4)
        # or one of A's own columns as the labels (public index; distinct values below 2^key_bits(n_A),
        # e.g. A's ranks of a column, mpc.ss.order.owner_ranks): no extra column
        self.label_column = label_column if self.labelled else None
        self.a_cols = (own_cols if ctx.rank == 0 else peer_cols) + int(self.labelled and label_column is None)
        self.b_cols = peer_cols if ctx.rank == 0 else own_cols
        self.word: list[np.ndarray] = []      # per bucket: s_b (A) or t_b (B)
        self.rows: list[np.ndarray] = []      # per bucket: (a_cols + b_cols, bins) shares
        self._routed: Future | None = None
        self.filled: list[np.ndarray] = []    # A, per bucket: which bins hold one of its ids
        self.total = self.items_a = 0

    def expect_bins(self, total: int, items_a: int) -> None:
        """Announce the number of bins and of A's ids (public: functions of the set sizes)
        before the buckets. With the OT source the join shuffles in two rounds (see
        :meth:`finish`): A's permutation on the ``total`` bins, B's on the ``items_a`` bins
        A fills; this party's is drawn and routed through its switching network
        (:func:`mpc.ss.ot_shuffle.draw`, plain numpy that releases the GIL) in a thread
        while the OPRF, the OPPRF and the zero test run."""
        self.total, self.items_a = total, items_a
        wires = total if self.ctx.rank == 0 else items_a
        if wires > 1 and source_kind(self.ctx.options) == "ot":
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="join-route")
            self._routed = pool.submit(ot_shuffle.draw, wires)
            pool.shutdown(wait=False)

    def okvs_args(self, keys: np.ndarray, bins: np.ndarray, payload: list[np.ndarray], n_bins: int,
                  max_keys: int) -> tuple[np.ndarray, np.ndarray, int]:
        """B, per bucket: the OKVS for keys F(b, y) ((k, 16) uint8) in bins ``bins`` with B's
        column values ``payload`` (one (k,) ring array per column) is to map each key to
        (t_b, payload + u_b); draw the bucket's targets t_b and masks u_b, keep its shares
        (t_b, -u_b), and return :func:`okvs_table`'s arguments (keys, those values, cells),
        which :meth:`tables` encodes on ``ctx.executor``."""
        width = 1 + self.b_cols
        t = random_uint64(n_bins)
        u = random_uint64((self.b_cols, n_bins))
        values = np.empty((len(keys), width), dtype=np.uint64)
        values[:, 0] = t[bins]
        for c, col in enumerate(payload):
            values[:, 1 + c] = np.asarray(col, dtype=np.uint64) + u[c, bins]
        self.word.append(t)
        rows = np.zeros((self.a_cols + self.b_cols, n_bins), dtype=np.uint64)   # A's columns: share 0
        rows[self.a_cols:] = -u
        self.rows.append(rows)
        return keys, values, okvs.num_cells(max_keys)

    def send_table(self, seed: np.ndarray, table: np.ndarray) -> None:
        """B: send a bucket's OKVS (in bucket order)."""
        self.ctx.send(self.peer, {"seed": seed, "table": table})

    def tables(self, args: Iterator[tuple[np.ndarray, np.ndarray, int]]) -> None:
        """B: :func:`okvs_table` of every bucket's :meth:`okvs_args` on ``ctx.executor``, each
        table sent as it comes. One bucket ahead (window 2): the next bucket's arguments (its
        OPRF evaluation) are made while this one's table is encoded; not more, because A
        sends bucket b + 2's OPRF batch only after it has bucket b's table."""
        try:
            for seed, table in self.ctx.executor.map(okvs_table, args, window=2):
                self.send_table(seed, table)
        except okvs.OkvsError:
            raise RuntimeError(f"{self.ctx.party}: no OKVS seed of {SEED_TRIES} peeled (run the job again)") from None

    def receive(self, outputs: np.ndarray, own: list[np.ndarray], max_keys: int,
                filled: np.ndarray | None = None, index: np.ndarray | None = None) -> None:
        """A: decode the bucket's OKVS at its OPRF outputs o_b ((bins, 16) uint8); ``own``
        are A's column values per bin (one (bins,) ring array per column), ``filled`` which
        bins hold one of A's ids (default all), ``index`` the input row index of the id in
        each bin (needed for the row order's labels on the OT source, step 4)."""
        width = 1 + self.b_cols
        cells = okvs.num_cells(max_keys)
        got = self.ctx.recv(self.peer)
        if not isinstance(got, dict) or set(got) != {"seed", "table"}:
            raise ValueError(f"party {self.peer!r} sent a malformed OKVS message")
        seed = expect(self.peer, got["seed"], np.uint8, (16,), "the OKVS seed").tobytes()
        table = expect(self.peer, got["table"], np.uint64, (cells, width), "the OKVS")
        n_bins = len(outputs)
        decoded = np.empty((n_bins, width), np.uint64)
        parts = chunks(n_bins, DECODE_CHUNK)
        shared = (table, np.frombuffer(seed, np.uint8), cells, width)
        for p, d in zip(parts, self.ctx.executor.map(okvs_decoded, ((outputs[p],) for p in parts), shared),
                        strict=True):
            decoded[p] = d
        self.word.append(np.ascontiguousarray(decoded[:, 0]))
        self.filled.append(np.ones(n_bins, bool) if filled is None else np.asarray(filled, bool))
        rows = np.empty((self.a_cols + self.b_cols, n_bins), dtype=np.uint64)
        for c, col in enumerate(own):
            rows[c] = col
        if self.labelled and self.label_column is None:
            if index is None:
                raise ValueError("the circuit join's row order needs A's row index per bin")
            rows[self.a_cols - 1] = np.asarray(index, dtype=np.int64).astype(np.uint64)
        rows[self.a_cols:] = decoded[:, 1:].T
        self.rows.append(rows)

    def finish(self) -> tuple[int, list[np.ndarray], list[np.ndarray], RowOrder | None]:
        """Flag, shuffle, open the flags, keep the matched rows: (joined rows, this party's
        shares of its own columns, its shares of the peer's columns, the rows'
        :class:`mpc.ss.order.RowOrder` or None), in a random order; the order only after
        the dealer-free two rounds (step 4)."""
        m, own, theirs, two_rounds = self._finish()
        if not self.labelled:
            return m, own, theirs, None
        if self.label_column is not None:
            label = (own if self.ctx.rank == 0 else theirs)[self.label_column].copy()
        else:
            label = own.pop() if self.ctx.rank == 0 else theirs.pop()
        return m, own, theirs, RowOrder(label, key_bits(self.items_a)) if two_rounds else None

    def _finish(self) -> tuple[int, list[np.ndarray], list[np.ndarray], bool]:
        ctx = self.ctx
        word = np.concatenate(self.word) if self.word else np.zeros(0, np.uint64)
        rows = (np.concatenate(self.rows, axis=1) if self.rows
                else np.zeros((self.a_cols + self.b_cols, 0), np.uint64))
        self.word, self.rows = [], []
        source = get_source(ctx)
        if isinstance(source, OtSource) and word.size:
            return (*self._finish_two_rounds(source, word, rows), True)
        ctx.report_progress(phase="private join: match flags (zero test of s_b - t_b)")
        # s_b - t_b is shared as (s_b, -t_b): eqz is the source's two-party zero test on the
        # two addends (the OT source's equal_xor, else an AND tree) on match_bits, then a daBit
        flag = (eqz(ctx, word if ctx.rank == 0 else np.uint64(0) - word, match_bits(word.size))
                if word.size else word)
        del word
        # rows: A's columns (A's plaintext, B's shares 0), the flag, B's columns
        stacked = np.concatenate([rows[:self.a_cols], flag.reshape(1, -1), rows[self.a_cols:]])
        del rows, flag
        ctx.report_progress(phase="private join: oblivious shuffle of the bins")
        shuffled = shuffle(ctx, stacked, jointly=True) if stacked.shape[1] else stacked
        del stacked
        return (*self._compact(shuffled), False)

    @staticmethod
    def _empty_positions(dest: np.ndarray, filled: np.ndarray) -> np.ndarray:
        """A: where round 0 (input i to output dest[i]) sent A's empty bins, sorted."""
        return np.sort(dest[np.flatnonzero(~filled)]).astype(np.int64)

    def _compact(self, shuffled: np.ndarray) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
        """Open the shuffled flags (row ``a_cols``) and keep the flagged columns."""
        ctx = self.ctx
        opened = open_arith(ctx, shuffled[self.a_cols])
        if np.any(opened > 1):
            raise ValueError(f"party {self.peer!r}: the opened match flags are not 0/1 (malformed shares)")
        keep = np.nonzero(opened)[0]
        kept = shuffled[:, keep]
        a, b = list(kept[:self.a_cols]), list(kept[self.a_cols + 1:])
        own, theirs = (a, b) if ctx.rank == 0 else (b, a)
        return len(keep), own, theirs

    def _finish_two_rounds(self, source: OtSource, word: np.ndarray, rows: np.ndarray
                           ) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
        """The OT source's flow (see the module docstring, step 3): round 0 of the shuffle
        (A's permutation) on all bins with rows (A's columns, in the clear, then s_b - t_b
        and B's columns, shared); A names the positions its empty bins went to; both drop
        them; the zero test on the n_A remaining; round 1 (B's permutation) on those."""
        ctx = self.ctx
        total, n_a = len(word), self.items_a
        if total != self.total:
            raise ValueError(f"{ctx.party}: {total} bins decoded, {self.total} announced")
        routed = self._routed.result() if self._routed is not None else None
        self._routed = None
        ctx.report_progress(phase="private join: oblivious shuffle of the bins")
        rounds = ot_shuffle.TwoRounds(source, total, n_a, 1 + self.b_cols, self.a_cols + 1 + self.b_cols, routed)
        # s_b - t_b is shared as (s_b, -t_b)
        diff = word if ctx.rank == 0 else np.uint64(0) - word
        stacked = np.concatenate([rows[:self.a_cols], diff.reshape(1, -1), rows[self.a_cols:]])
        del rows, word, diff
        moved = rounds.round(0, stacked, clear=self.a_cols)
        del stacked
        empty_n = total - n_a
        if ctx.rank == 0:
            filled = np.concatenate(self.filled)
            if int(filled.sum()) != n_a:
                raise ValueError(f"{ctx.party}: {int(filled.sum())} filled bins for {n_a} ids")
            ctx.send(self.peer, self._empty_positions(rounds.routed.dest[0], filled))
            gone = rounds.routed.dest[0, np.flatnonzero(~filled)]
        else:
            gone = expect(self.peer, ctx.recv(self.peer), np.int64, (empty_n,), "the empty bins' positions")
            if empty_n and (gone[0] < 0 or gone[-1] >= total or np.any(np.diff(gone) <= 0)):
                raise ValueError(f"party {self.peer!r} sent empty-bin positions that are not distinct, "
                                 f"sorted and below {total}")
        self.filled = []
        kept = np.ones(total, bool)
        kept[gone] = False
        moved = moved[:, kept]
        ctx.report_progress(phase="private join: match flags (zero test of s_b - t_b)")
        moved[self.a_cols] = eqz(ctx, moved[self.a_cols], match_bits(moved.shape[1]))
        ctx.report_progress(phase="private join: oblivious shuffle of the bins")
        return self._compact(rounds.round(1, moved))
