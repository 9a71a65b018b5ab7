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
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime.context import Context
from protocols.bucketed import WHOLE_INPUT_COSTS, refuse_over_budget
from protocols.jobs import N_PARTY_PSI, REVEAL_TO, aligned_rows
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
    refuse_over_budget(ctx, params, data, [u.ref for u in plan_uses(plan)], "sql.rows", WHOLE_INPUT_COSTS["ecdh"])
    if len(plan.tables) == 1:
        return _single(ctx, plan, params, data)
    to = receivers(ctx, params.get("reveal_to"))
    ctx.report_progress(phase="sql: pushdown")
    view = pushdown.kept(ctx, plan, data)
    ctx.report_progress(phase="sql: PSI")
    rows = aligned_rows(ctx, {"ids": plan.ids}, view, receivers=psi_receivers(plan, params.get("reveal_to")))
    keys = {t.key_ref for t in plan.tables}
    me = next(t for t in plan.tables if t.party == ctx.party)
    mine = [(name, ref) for name, ref in plan.rows if ref not in keys and ref.split(".", 1)[0] == ctx.party]
    if mine:        # a sender: its output columns of the joined rows, in id order
        out = pd.DataFrame({ref: _values(view.column(ColumnRef.parse(ref))).iloc[rows].reset_index(drop=True)
                            for _, ref in mine})
        send_table(ctx, out, to)
    if ctx.party not in to:
        return None
    n = len(rows)
    got: dict[str, pd.Series] = {}
    for s in senders(plan):
        if s != ctx.party:
            table = recv_table(ctx, s, rows=n)
            wanted = {ref for _, ref in plan.rows if ref.split(".", 1)[0] == s and ref not in keys}
            if set(table.columns) != wanted:
                raise ValueError(f"party {s!r} sent columns {sorted(table.columns)}, not {sorted(wanted)}")
            got.update({c: _values(table[c].tolist()) for c in table.columns})
    own_keys = _values(view.column(ColumnRef.parse(me.key_ref))).iloc[rows].reset_index(drop=True)
    frame = pd.DataFrame({name: own_keys if ref in keys else
                          (_values(view.column(ColumnRef.parse(ref))).iloc[rows].reset_index(drop=True)
                           if ref.split(".", 1)[0] == ctx.party else got[ref])
                          for name, ref in plan.rows})
    frame.attrs["rows"] = n
    return finish(plan, frame)


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
            "the rows its WHERE keeps to the receivers",
    params={"sql": Param(str, doc="the SQL text (recorded in the audit log)"),
            "plan": Param(dict, doc="the plan protocols.sql.parse made of it"),
            "parties": Param(list, required=False, default=None,
                             doc="one party's table: the parties of the job (its owner and the requester)"),
            "reveal_to": REVEAL_TO},
    uses=_uses,
    extra_parties=lambda params: list(params.get("parties") or []),
    run=_run,
))
