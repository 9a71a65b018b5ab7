"""private_join(method="circuit"): the dealer-free join of two companies alone, from circuit
PSI on cuckoo bins (symmetric crypto and OT only, no public-key operation per row).

Pinkas, Schneider, Tkachenko, Yanai, "Efficient Circuit-based PSI with Linear
Communication" (Eurocrypt 2019), with the OPPRF as an OKVS (Rindal, Schoppmann,
"VOLE-PSI", Eurocrypt 2021; the OKVS a garbled cuckoo table of Pinkas, Rosulek, Trieu,
Yanai, Eurocrypt 2020):

1. Both encode their ids as 16-byte blocks (:func:`protocols.psi.blocks.prepare_rows`:
   injective, no hashing for short ids) and hash those under a joint key into
   buckets of public capacity and, inside a bucket, to 3 candidate bins (the pieces of
   :mod:`protocols.psi.oprf`). A (first party) cuckoo-hashes its ids into the bins
   (failure <= 2^-40) and runs one KKRT batch per bucket (:mod:`mpc.ot.kkrt`): it learns
   o_b = F(b, x_b || i) per bin, B can evaluate F for any input.
2. B programs an OKVS per bucket so that A, decoding at o_b, gets B's per-bin target t_b
   and B's columns of that id plus B's masks u_b whenever B holds x_b; B keeps t_b, -u_b
   (:class:`mpc.ss.circuit_join.BinJoin`). The match flag [s_b = t_b] is computed on XOR
   shares, all bins' rows (flag, A's columns, B's columns) are shuffled by one
   permutation neither party knows, the flags opened and the matched rows kept (without
   a dealer the shuffle's two rounds bracket the zero test, and A's empty bins are
   dropped after A's round, where their positions are uniform: see the engine).
3. Without a dealer the joined rows also come with a ``mpc.ss.order.RowOrder``: their
   order is uniform and unknown to each party, and A's input row index rides along as a
   secret label, so one column's order statistics can skip their own shuffle (the
   engine's step 4).

Reveals (semi-honest, no collusion; kappa = 128, lambda = 40): both id counts and the
number of joined rows, nothing else: every message has a shape fixed by the two counts,
and the output rows are in an order neither party can link to its input. A false match
has probability at most 2^-40 per job: the match test reads 40 + ceil(log2 c) bits of the
OPPRF output's difference for c bins compared (:func:`mpc.ss.circuit_join.match_bits`,
union bound; up to c = 2^24).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mpc.crypto import cuckoo
from mpc.ot import KkrtReceiver, KkrtSender, session
from mpc.runtime.context import Context
from mpc.ss.circuit_join import BinJoin
from protocols.psi.oprf import (
    DEFAULT_OPRF_BUCKET,
    STAT,
    _joint_key,
    _Layout,
    capacity,
    cuckoo_tables,
    evaluate_items,
    oprf_bins,
)

PHASE = "private join: OPRF and OPPRF per bucket (circuit PSI)"


def circuit_join(ctx: Context, prepared, rings: list[np.ndarray], peer_n: int, peer_cols: int,
                 params: dict[str, Any]) -> tuple[int, list[np.ndarray], list[np.ndarray], Any]:
    """The circuit join (see the module docstring): the other JOINS' result form plus the
    rows' ``mpc.ss.order.RowOrder`` (without a dealer; else None)."""
    peer = ctx.peers[0]
    n = prepared.n_rows
    n_a, n_b = (n, peer_n) if ctx.rank == 0 else (peer_n, n)
    join = BinJoin(ctx, len(rings), peer_cols, params.get("label_column"))
    if min(n_a, n_b) > 0:
        bucket = params.get("oprf_bucket", DEFAULT_OPRF_BUCKET)
        nb = -(-max(n_a, n_b) // bucket)
        cap_a, cap_b = capacity(n_a, nb), capacity(n_b, nb)
        bins = cuckoo.num_bins(cap_a, STAT + math.log2(nb))
        max_keys = 3 * cap_b
        blocks = np.ascontiguousarray(prepared.digests[:, :16])
        layout = _Layout(blocks, _joint_key(ctx, peer), nb, bins, ctx.executor)
        join.expect_bins(nb * bins, n_a)    # this party's shuffle permutation, routed meanwhile
        ctx.report_progress(phase=PHASE, done=0, total=nb, unit="buckets")
        if ctx.rank == 0:
            kkrt = KkrtReceiver(ctx, peer, session(ctx, peer, "sender"))
            pending: list[tuple] = []
            idxs = [layout.bucket(b, cap_a, ctx.party) for b in range(nb)]
            placed = cuckoo_tables(layout, idxs, bins, ctx.executor)       # a few buckets ahead
            for b, (idx, cuckoo_table) in enumerate(zip(idxs, placed, strict=True)):
                out, table, _ = oprf_bins(kkrt, layout, idx, bins, cuckoo_table)
                item = idx[np.maximum(table, 0)] if len(idx) else np.zeros(bins, np.int64)
                pending.append((out, [np.where(table >= 0, r[item], 0) for r in rings], max_keys, table >= 0,
                                np.where(table >= 0, item, 0)))     # A's row index: the row order's labels
                if len(pending) == 2:        # one bucket in flight: B programs while A sends the next
                    join.receive(*pending.pop(0))
                    ctx.report_progress(phase=PHASE, done=b, total=nb, unit="buckets")
            while pending:
                join.receive(*pending.pop(0))
        else:
            kkrt = KkrtSender(ctx, peer, session(ctx, peer, "receiver"))

            def okvs_args():                # per bucket: B's OPRF evaluation, then its OKVS's inputs
                for b in range(nb):
                    idx = layout.bucket(b, cap_b, ctx.party)
                    q, first = kkrt.receive(bins)
                    keys, items, rows = evaluate_items(kkrt, q, first, layout, idx, executor=ctx.executor)
                    yield join.okvs_args(keys, rows, [r[items] for r in rings], bins, max_keys)
                    ctx.report_progress(phase=PHASE, done=b + 1, total=nb, unit="buckets")

            join.tables(okvs_args())        # encoded on the executor while the next bucket's OPRF runs
    return join.finish()
