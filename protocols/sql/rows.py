"""The ``sql.rows`` job: a query without aggregates, whose rows leave as they are.

Policy allows it for ``plaintext`` columns (their owner lets them leave), and, after a
join, for the join keys, which the PSI receivers already learn:

* *One party's table.* Its owner evaluates WHERE (plaintext columns only, checked by the
  parser) on its rows and sends the selected plaintext columns, after ORDER BY / LIMIT,
  to the receivers.
* *Two or three parties' tables.* Each owner keeps the rows its WHERE keeps (plaintext
  columns, :mod:`protocols.sql.pushdown`); an ECDH PSI on the join keys
  (``protocols.jobs.aligned_rows``, :func:`protocols.psi.ecdh_psi`) tells its receivers
  which of their own rows all parties hold, sorted by id so that row i is the same id
  everywhere. The PSI's receivers are ``reveal_to`` (default: every party) and the owners
  of the other plaintext columns the query outputs: such an owner must know which of its
  rows joined to send their values (in id order) to ``reveal_to``. The join keys of the
  output are the receiver's own ids.

Reveals (the registry line below): every party learns the number of distinct ids of each
party after each owner's WHERE (the PSI's sizes); ``reveal_to`` and the owners of output
columns learn which of their own ids all parties hold; ``reveal_to`` gets the output
columns of the joined rows. Nothing else: no column that is not output is read, and
a non-receiver whose columns are not output learns only the sizes. Ids must be unique in
the intersection (the rows are aligned one to one), else the job fails naming the column.

*Under a memory budget* (the job's ``memory`` or ``[limits] memory``, :func:`protocols.bucketed.joint_budget`)
two parties' tables run in hash buckets (:func:`_bucketed`), as ``psi.ecdh`` does
(:mod:`protocols.buckets`): each party streams the ids of the rows its WHERE keeps into the
spill files of a joint key; the bucket count comes from the distinct counts (the sizes above)
and the budget; per bucket an OPRF PSI (:func:`protocols.psi.oprf.oprf_mask`) on the ids
padded to the bucket's public capacity, with the same receivers, whose matched row numbers
are the bucket's checkpoint (a resumed job skips finished buckets). A receiver then streams
its input again for its columns of the matched rows and sorts them by id as text, exactly
as :func:`protocols.jobs.aligned_rows` does, so the rows, their order (by id: unlinkable to
either input's order) and what is sent are the unbucketed job's. Reveals nothing more: a
receiver knows the key and its matched ids, so each bucket's intersection size follows from
what it learns anyway (no ``bucket_join_sizes`` consent, as in :mod:`protocols.bucketed_woe`);
a non-receiver serves the OPRF and learns nothing per bucket. In memory: one batch of input,
one bucket's PSI, a bit per kept row, and the output columns of the joined rows (the result).
Three parties' tables and one party's table are not bucketed: over the budget they are
refused (:func:`protocols.bucketed.refuse_over_budget`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime.context import Context
from protocols.bucketed import WHOLE_INPUT_COSTS, joint_budget, refuse_over_budget
from protocols.jobs import MEMORY, N_PARTY_PSI, REVEAL_TO, aligned_rows
from protocols.psi.oprf import oprf_mask
from protocols.registry import ColumnRef, LocalData, Param, ProtocolSpec, register
from protocols.sql import pushdown
from protocols.sql.local import recv_table, send_table
from protocols.sql.plan import Plan
from protocols.sql.result import finish
from protocols.stats._common import receivers


def senders(plan: Plan) -> list[str]:
    """The parties whose output columns (other than join keys) travel to the receivers."""
    keys = {t.key_ref for t in plan.tables}
    return sorted({ref.split(".", 1)[0] for _, ref in plan.rows if ref not in keys})


def psi_receivers(plan: Plan, reveal_to: str | None) -> list[str]:
    """Who learns which of its own rows joined: the result's receivers and the senders."""
    to = plan.parties if reveal_to is None else [reveal_to]
    return [p for p in plan.parties if p in to or p in senders(plan)]


def _values(values: Any) -> pd.Series:
    return pd.Series(list(values) if not isinstance(values, np.ndarray) else values).reset_index(drop=True)


def _single(ctx: Context, plan: Plan, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    owner = plan.tables[0].party
    to = receivers(ctx, params.get("reveal_to"))
    if ctx.party != owner:
        if ctx.party not in to:
            return None
        got = recv_table(ctx, owner)
        return pd.DataFrame({c: _values(got[c].tolist()) for c in got.columns})
    view = pushdown.kept(ctx, plan, data)
    frame = pd.DataFrame({name: _values(view.column(ColumnRef.parse(ref))) for name, ref in plan.rows})
    result = finish(plan, frame)
    send_table(ctx, result, to)
    return result if ctx.party in to else None


def _run(ctx: Context, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    from protocols.sql.job import plan_uses

    plan = Plan.from_params(params["plan"])
    if len(plan.tables) == 2:
        memory = joint_budget(ctx, params, data)
        if memory is not None:        # a PSI per hash bucket, the joined rows read again
            return _bucketed(ctx, plan, params, data, memory)
    refuse_over_budget(ctx, params, data, [u.ref for u in plan_uses(plan)], "sql.rows", WHOLE_INPUT_COSTS["ecdh"])
    if len(plan.tables) == 1:
        return _single(ctx, plan, params, data)
    to = receivers(ctx, params.get("reveal_to"))
    ctx.report_progress(phase="sql: pushdown")
    view = pushdown.kept(ctx, plan, data)
    ctx.report_progress(phase="sql: PSI")
    rows = aligned_rows(ctx, {"ids": plan.ids}, view, receivers=psi_receivers(plan, params.get("reveal_to")))
    return _deliver(ctx, plan, to, 0 if rows is None else len(rows),
                    lambda ref: _values(view.column(ColumnRef.parse(ref))).iloc[rows].reset_index(drop=True))


def _deliver(ctx: Context, plan: Plan, to: list[str], n: int, own) -> pd.DataFrame | None:
    """After the PSI: a sender sends its output columns of the n joined rows (``own(ref)``:
    this party's column of them, in id order) to ``to``; a receiver builds the result with
    the senders' columns and :func:`protocols.sql.result.finish`."""
    keys = {t.key_ref for t in plan.tables}
    me = next(t for t in plan.tables if t.party == ctx.party)
    mine = [(name, ref) for name, ref in plan.rows if ref not in keys and ref.split(".", 1)[0] == ctx.party]
    if mine:        # a sender: its output columns of the joined rows, in id order
        send_table(ctx, pd.DataFrame({ref: own(ref) for _, ref in mine}), to)
    if ctx.party not in to:
        return None
    got: dict[str, pd.Series] = {}
    for s in senders(plan):
        if s != ctx.party:
            table = recv_table(ctx, s, rows=n)
            wanted = {ref for _, ref in plan.rows if ref.split(".", 1)[0] == s and ref not in keys}
            if set(table.columns) != wanted:
                raise ValueError(f"party {s!r} sent columns {sorted(table.columns)}, not {sorted(wanted)}")
            got.update({c: _values(table[c].tolist()) for c in table.columns})
    own_keys = own(me.key_ref)
    frame = pd.DataFrame({name: own_keys if ref in keys else (own(ref) if ref.split(".", 1)[0] == ctx.party
                                                              else got[ref])
                          for name, ref in plan.rows})
    frame.attrs["rows"] = n
    return finish(plan, frame)


def _bucketed(ctx: Context, plan: Plan, params: dict[str, Any], data: LocalData,
              memory: int) -> pd.DataFrame | None:
    """Two parties' tables under a memory budget: each party streams the ids of the rows its
    WHERE keeps into hash buckets (:func:`protocols.buckets.spill`), the OPRF PSI runs per
    bucket with the PSI receivers of the unbucketed job (:func:`protocols.psi.oprf.oprf_mask`;
    each bucket's matched row numbers are its checkpoint), then each receiver streams its
    input once more for its columns of the matched rows and sorts them by id as text, as
    :func:`protocols.jobs.aligned_rows` does: row i is the same id at both parties and the
    result is the unbucketed job's, in its order."""
    from protocols import buckets
    from protocols.bucketed import RowBits, _checkpoint, _plan, _start, bucket_hits
    from protocols.psi.common import check_receivers
    from protocols.psi.oprf import capacity
    from protocols.sql.job import plan_uses

    to = receivers(ctx, params.get("reveal_to"))
    psi_to = check_receivers(ctx, psi_receivers(plan, params.get("reveal_to")))
    me = next(t for t in plan.tables if t.party == ctx.party)
    key = ColumnRef.parse(me.key_ref)
    reads = [key] + sorted({u.ref for u in plan_uses(plan) if u.ref.party == ctx.party} - {key}, key=str)
    conjuncts = plan.pushdown.get(ctx.party, [])
    store = _checkpoint(ctx, "sql.rows", params, data, reads, memory)
    done = _start(ctx, store)

    def kept():          # (batch, indices of the rows the WHERE keeps)
        for b in data.batches(reads):
            n = len(b[key.column])
            keep = pushdown.mask_of(conjuncts, lambda r, b=b: b[ColumnRef.parse(r).column], n)
            yield b, (np.arange(n) if keep is None else np.flatnonzero(keep))

    sp, _, kind = buckets.spill(ctx, store, lambda: ((np.asarray(b[key.column])[i], None) for b, i in kept()), 0)
    m = int(sum(store.state["counts"]))
    sizes, nb = _plan(ctx, store, "bucketed_sql_rows", kind, m, memory, "psi", {"receivers": psi_to})
    cap = capacity(sizes[ctx.party], nb)

    def work(b: int, first: int, count: int) -> dict[str, np.ndarray]:
        rec = sp.read(first, count)
        hit = bucket_hits(ctx, rec, cap, b, lambda padded: oprf_mask(ctx, kind, padded, psi_to), key)
        if hit is None:             # not a PSI receiver: learns nothing of the bucket
            return {"rows": np.zeros(0, dtype=np.int64)}
        return {"rows": rec["row"][hit].astype(np.int64)}

    ctx.report_progress(phase="sql: PSI per bucket")
    matched = RowBits(int(store.state["rows"]))
    for _, r in buckets.run_buckets(ctx, store, nb, done, work):
        matched.set(r["rows"])
    if ctx.party not in psi_to:
        return None
    ctx.report_progress(phase="sql: the joined rows")
    wanted = list(dict.fromkeys([me.key_ref] + [ref for _, ref in plan.rows if ref.split(".", 1)[0] == ctx.party]))
    parts: dict[str, list[np.ndarray]] = {r: [] for r in wanted}
    start = 0
    for b, idx in kept():          # the kept rows numbered as the spill numbered them
        hit = idx[matched.rows(start, start + len(idx)) - start]
        for r in wanted:
            parts[r].append(np.asarray(b[ColumnRef.parse(r).column])[hit])
        start += len(idx)
    cols = {r: np.concatenate(p) if p else np.zeros(0) for r, p in parts.items()}
    order = np.argsort(np.array([str(v) for v in cols[me.key_ref].tolist()], dtype=object), kind="stable")
    return _deliver(ctx, plan, to, len(order), lambda ref: _values(cols[ref][order]))


def _uses(params: dict[str, Any]):
    from protocols.sql.job import plan_uses

    plan = Plan.from_params(params["plan"])
    if not plan.is_rows or plan.aggregates or plan.group_by or plan.secret_filter is not None or plan.having:
        raise ValueError("sql.rows runs a plan of row-level output only (plan.rows, no aggregates, groups, "
                         "HAVING or filter on shares); aggregates run as sql.aggregate")
    return plan_uses(plan)


register(ProtocolSpec(
    name="sql.rows",
    doc="A SQL query without aggregates (Client.query / gaotie query): plaintext columns of one party's "
        "table, or join keys and plaintext columns of the rows two or three parties' tables share "
        "(owner-side WHERE, then ECDH PSI on the join keys).",
    reveals="every party: the number of distinct ids of each party after each owner's plaintext WHERE; "
            "reveal_to (default: all) and every party whose plaintext columns are output: which of their own "
            "ids all parties hold; reveal_to: the output columns (join keys, plaintext columns) of the joined "
            "rows" + N_PARTY_PSI + ". One party's table: its owner sends the selected plaintext columns of "
            "the rows its WHERE keeps to the receivers. Under a memory budget, two parties' tables run a PSI "
            "per hash bucket with the same receivers and reveal the same",
    params={"sql": Param(str, doc="the SQL text (recorded in the audit log)"),
            "plan": Param(dict, doc="the plan protocols.sql.parse made of it"),
            "parties": Param(list, required=False, default=None,
                             doc="one party's table: the parties of the job (its owner and the requester)"),
            "reveal_to": REVEAL_TO, "memory": MEMORY},
    uses=_uses,
    extra_parties=lambda params: list(params.get("parties") or []),
    run=_run,
))
