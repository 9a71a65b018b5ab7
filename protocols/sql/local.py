"""A query of one party's table, computed by its owner in plaintext.

No cryptography is needed: the owner holds every row. It evaluates WHERE, the group keys
and the aggregates on its own data (pandas / numpy), suppresses the groups with fewer rows
than the largest ``min_group_size`` of the columns' policies (and the plan's), and sends the
result table to the receivers. What leaves the owner is that table only: the aggregates of
the kept groups and the labels of all groups, as a two-party query's receivers get them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime.context import Context
from protocols.registry import ColumnRef, LocalData, numeric
from protocols.sql import evaluate
from protocols.sql.plan import Aggregate, Plan
from protocols.sql.result import finish


def _aggregate(a: Aggregate, rows: np.ndarray, cols: list[np.ndarray]) -> float:
    n = len(rows)
    if a.func == "count":
        return float(n)
    x = cols[0][rows]
    if a.func == "sum":
        return float(x.sum())
    if a.func == "avg":
        return float(x.mean())
    if a.func == "min":
        return float(x.min())
    if a.func == "max":
        return float(x.max())
    if a.func == "quantile":
        return float(np.quantile(x, a.q))
    ddof = 0 if a.func.endswith("_pop") else 1
    if n - ddof <= 0:
        return float("nan")
    if a.func.startswith("var"):
        return float(x.var(ddof=ddof))
    if a.func.startswith("stddev"):
        return float(x.std(ddof=ddof))
    y = cols[1][rows]
    if a.func.startswith("covar"):
        return float(np.cov(x, y, ddof=ddof)[0, 1])
    return float(np.corrcoef(x, y)[0, 1])


def run_single(ctx: Context, plan: Plan, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    owner = plan.tables[0].party
    to = params.get("reveal_to")
    receivers = list(ctx.parties) if to is None else [to]
    numeric_outputs = {a.name for a in plan.aggregates}
    if ctx.party != owner:
        if ctx.party not in receivers:
            return None
        frame = recv_table(ctx, owner, numeric_outputs)
        if "suppressed" in frame:
            frame["suppressed"] = frame["suppressed"].astype(bool)
        return frame
    cache: dict[str, np.ndarray] = {}

    class _Col:
        def __call__(self, ref: str) -> np.ndarray:
            if ref not in cache:
                r = ColumnRef.parse(ref)
                cache[ref] = data.column(r)
            return cache[ref]

    column = _Col()
    t = plan.tables[0]
    refs = [t.key_ref] if t.key else [ref for ref, _ in plan.column_uses()]
    if not refs:
        raise ValueError(f"{t.party}.{t.dataset} has no id column: name a column in the query")
    n = len(column(refs[0]))
    mask = np.ones(n, dtype=bool)
    for e in plan.pushdown.get(owner, []):
        mask &= np.broadcast_to(np.asarray(evaluate.plain(e, column), dtype=bool), (n,))
    rows_all = np.flatnonzero(mask)
    min_group = max([plan.min_group_size, params.get("min_group_size") or 1]
                    + [data.min_group_size(ColumnRef.parse(r)) for r in plan.aggregate_columns()])

    def arg(e: Any) -> np.ndarray:
        if e[0] == "col":
            return numeric(ColumnRef.parse(e[1]), column(e[1]))
        v = evaluate.plain(e, column)
        return np.asarray(v, dtype=np.float64) if isinstance(v, pd.Series) else np.full(n, float(v))

    args = {a.name: [arg(e) for e in a.args] for a in plan.aggregates}
    keys = []
    for g in plan.group_by:
        if g.column:
            keys.append(np.asarray(column(g.column), dtype=object))
        else:
            label = np.full(n, None, dtype=object)
            for lab, c in reversed(list(zip(g.labels, g.conds, strict=True))):
                hit = np.broadcast_to(np.asarray(evaluate.plain(c, column), dtype=bool), (n,))
                label[hit] = lab
            keys.append(label)
    if keys:
        groups: dict[tuple, list[int]] = {}
        for i in rows_all:
            groups.setdefault(tuple(k[i] for k in keys), []).append(i)
        labels = sorted(groups, key=lambda t: tuple(str(x) for x in t))
    else:
        if len(rows_all) < min_group:
            raise ValueError(f"only {len(rows_all)} rows: columns of {owner}.{plan.tables[0].dataset} may only be "
                             f"aggregated over at least {min_group} rows (their min_group_size)")
        groups, labels = {(): list(rows_all)}, [()]
    out: dict[str, list] = {g.name: [lab[i] for lab in labels] for i, g in enumerate(plan.group_by)}
    sup = []
    for a in plan.aggregates:
        out[a.name] = []
    for lab in labels:
        rows = np.asarray(groups[lab], dtype=np.int64)
        small = len(rows) < min_group
        sup.append(small)
        for a in plan.aggregates:
            out[a.name].append(float("nan") if small else _aggregate(a, rows, args[a.name]))
    frame = pd.DataFrame(out)
    if plan.group_by:
        frame["suppressed"] = sup
    result = finish(plan, frame)
    send_table(ctx, result, receivers)
    return result if ctx.party in receivers else None


def send_table(ctx: Context, frame: pd.DataFrame, receivers: list[str]) -> None:
    """Send a result table to the receivers other than this party, as [[column name,
    values], ...] (a map would lose the column order): a numeric or boolean column as its
    numpy array (one buffer, its dtype kept), any other as a list, NaN travelling as None."""
    wire = []
    for c in frame.columns:
        values = frame[c].to_numpy()
        if values.dtype.kind not in "biuf":
            values = [None if _missing(v) else (v.item() if hasattr(v, "item") else v) for v in values.tolist()]
        wire.append([str(c), values])
    for p in receivers:
        if p != ctx.party:
            ctx.send(p, wire)


def recv_table(ctx: Context, sender: str, numeric: set[str] = frozenset(), rows: int | None = None) -> pd.DataFrame:
    """The table ``send_table`` sent from ``sender`` (columns in ``numeric`` as float; a
    numeric array keeps its dtype, a list is an object column); a malformed message, or one
    whose columns do not have ``rows`` values, is an error naming the sender."""
    got = ctx.recv(sender)
    if not isinstance(got, list) or not all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[0], str)
            and (isinstance(c[1], list) or (isinstance(c[1], np.ndarray) and c[1].ndim == 1
                                            and c[1].dtype.kind in "biuf")) for c in got):
        raise ValueError(f"party {sender!r} sent a malformed query result")
    if rows is not None and any(len(values) != rows for _, values in got):
        raise ValueError(f"party {sender!r} sent columns of {[len(v) for _, v in got]} rows, not {rows}")
    for name, values in got:
        if isinstance(values, np.ndarray):
            continue
        bad = next((v for v in values if v is not None and not isinstance(v, bool | int | float | str)), None)
        if bad is not None:
            raise ValueError(f"party {sender!r} sent a value of type {type(bad).__name__} in column {name!r}")
    return pd.DataFrame({name: pd.Series(values, dtype=float if name in numeric else
                                         (None if isinstance(values, np.ndarray) else object))
                         for name, values in got})


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT

