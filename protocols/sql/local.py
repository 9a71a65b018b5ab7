"""A query of one party's table, computed by its owner in plaintext.

No cryptography is needed: the owner holds every row. It evaluates WHERE, the group keys
and the aggregates on its own data (pandas / numpy), a batch of rows at a time, each group's
aggregates merged batch by batch (memory per group, not per row; a quantile keeps its group's
values on disk, as sorted runs, and finds its order statistics by bisection),
suppresses the groups with fewer rows
than the largest ``min_group_size`` of the columns' policies (and the plan's), and sends the
result table to the receivers. What leaves the owner is that table only: the aggregates of
the kept groups and the labels of all groups, as a two-party query's receivers get them.
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime.context import Context
from protocols.registry import ColumnRef, LocalData, numeric
from protocols.sql import evaluate
from protocols.sql.plan import Aggregate, Plan
from protocols.sql.result import finish


class _Partial:
    """One aggregate of one group, merged batch by batch: a count, a sum, the extremes, or the
    count, means and centred sums of squares and products of one or two columns (Chan, Golub
    and LeVeque, "Algorithms for computing the sample variance", 1983: exact merges, no
    cancellation of large sums); a quantile keeps the group's values on disk, each batch's a
    sorted run in ``scratch`` (:class:`protocols.stats.horizontal.KeyRuns`), and finds its two
    order statistics by bisection."""

    def __init__(self, a: Aggregate, scratch: Callable[[], Path]) -> None:
        from protocols.stats.horizontal import KeyRuns

        self.a, self.n, self.total, self.lo, self.hi = a, 0, 0.0, math.inf, -math.inf
        self.mean, self.m2, self.c = np.zeros(2), np.zeros(2), 0.0
        self.runs = KeyRuns(scratch()) if a.func == "quantile" else None

    def add(self, cols: list[np.ndarray], k: int) -> None:
        """The aggregate's argument columns (none for COUNT(*)) on the group's ``k`` rows of one batch."""
        func = self.a.func
        if func == "count" or not k:
            self.n += k
            return
        x = cols[0]
        if func in ("sum", "avg"):
            self.total += float(x.sum())
        elif func in ("min", "max"):
            self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        elif func == "quantile":
            self.runs.add(np.asarray(x, dtype=np.float64))
        else:
            y = cols[1] if len(cols) > 1 else x
            mb = np.array([x.mean(), y.mean()])
            dx, dy = x - mb[0], y - mb[1]
            n = self.n + k
            delta = mb - self.mean
            self.m2 += np.array([dx @ dx, dy @ dy]) + delta * delta * (self.n * k / n)
            self.c += float(dx @ dy) + float(delta[0] * delta[1]) * (self.n * k / n)
            self.mean += delta * (k / n)
        self.n += k

    def value(self) -> float:
        func, n = self.a.func, self.n
        if func == "count":
            return float(n)
        if func == "sum":
            return self.total
        if func == "avg":
            return self.total / n if n else float("nan")
        if func in ("min", "max"):
            return (self.lo if func == "min" else self.hi) if n else float("nan")
        if func == "quantile":
            return self.runs.quantile(n, self.a.q) if n else float("nan")
        ddof = 0 if func.endswith("_pop") else 1
        if n - ddof <= 0:
            return float("nan")
        if func.startswith("var"):
            return float(self.m2[0] / (n - ddof))
        if func.startswith("stddev"):
            return math.sqrt(max(float(self.m2[0] / (n - ddof)), 0.0))
        if func.startswith("covar"):
            return self.c / (n - ddof)
        return self.c / math.sqrt(float(self.m2[0] * self.m2[1]))


def run_single(ctx: Context, plan: Plan, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    """The query of one party's table: its owner streams the columns it uses a batch of rows
    at a time (``LocalData.batches``), keeps the rows of its WHERE, and merges each group's
    aggregates batch by batch (:class:`_Partial`: memory per group, not per row; a quantile's
    values in sorted runs in a scratch directory of its work directory), then suppresses the
    small groups and sends the result table to the receivers; they return it, the others None."""
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
    t = plan.tables[0]
    refs = [t.key_ref] if t.key else [ref for ref, _ in plan.column_uses()]
    if not refs:
        raise ValueError(f"{t.party}.{t.dataset} has no id column: name a column in the query")
    reads = sorted({ColumnRef.parse(r) for r in refs} | {ColumnRef.parse(r) for r, _ in plan.column_uses()}, key=str)
    min_group = max([plan.min_group_size, params.get("min_group_size") or 1]
                    + [data.min_group_size(ColumnRef.parse(r)) for r in plan.aggregate_columns()])
    workdir = getattr(data, "workdir", None)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sql-single-", dir=workdir) as tmp:
        scratch = (Path(tmp) / str(i) for i in itertools.count())
        frame = _aggregated(plan, data, reads, min_group, lambda: next(scratch))
    result = finish(plan, frame)
    send_table(ctx, result, receivers)
    return result if ctx.party in receivers else None


def _aggregated(plan: Plan, data: LocalData, reads: list[ColumnRef], min_group: int,
                scratch: Callable[[], Path]) -> pd.DataFrame:
    """The owner's groups and aggregates (suppressed groups' NaN) from its rows streamed a batch
    at a time; ``scratch`` gives a fresh directory for each quantile's runs."""
    t = plan.tables[0]
    groups: dict[tuple, list[_Partial]] = {} if plan.group_by else {(): [_Partial(a, scratch)
                                                                        for a in plan.aggregates]}
    offset = 0
    for batch in data.batches(reads):
        n = len(batch[reads[0].column])
        _add_batch(plan, batch, n, offset, groups, scratch)
        offset += n
    labels = sorted(groups, key=lambda lab: tuple(str(x) for x in lab))
    if not plan.group_by and groups[()][0].n < min_group:
        raise ValueError(f"only {groups[()][0].n} rows: columns of {t.party}.{t.dataset} may only be "
                         f"aggregated over at least {min_group} rows (their min_group_size)")
    out: dict[str, list] = {g.name: [lab[i] for lab in labels] for i, g in enumerate(plan.group_by)}
    sup = [groups[lab][0].n < min_group for lab in labels]
    for j, a in enumerate(plan.aggregates):
        out[a.name] = [float("nan") if small else groups[lab][j].value() for lab, small in zip(labels, sup,
                                                                                               strict=True)]
    frame = pd.DataFrame(out)
    if plan.group_by:
        frame["suppressed"] = sup
    return frame


def _add_batch(plan: Plan, batch: dict[str, np.ndarray], n: int, offset: int,
               groups: dict[tuple, list[_Partial]], scratch: Callable[[], Path]) -> None:
    """One batch of the owner's rows (the first is row ``offset`` of its table) into the
    groups' partial aggregates: its WHERE, its group keys (a plaintext column or CASE
    labels), each aggregate's arguments on its kept rows."""
    def column(ref: str) -> np.ndarray:
        return batch[ColumnRef.parse(ref).column]

    mask = np.ones(n, dtype=bool)
    for e in plan.pushdown.get(plan.tables[0].party, []):
        mask &= np.broadcast_to(np.asarray(evaluate.plain(e, column), dtype=bool), (n,))
    rows_all = np.flatnonzero(mask)

    def arg(e: Any) -> np.ndarray:
        if e[0] == "col":
            return numeric(ColumnRef.parse(e[1]), column(e[1]), offset)
        v = evaluate.plain(e, column)
        return np.asarray(v, dtype=np.float64) if isinstance(v, pd.Series) else np.full(n, float(v))

    args = [[arg(e) for e in a.args] for a in plan.aggregates]
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
    members: dict[tuple, list[int]] = {}
    if keys:
        for i in rows_all:
            members.setdefault(tuple(k[i] for k in keys), []).append(i)
    else:
        members[()] = rows_all
    for lab, idx in members.items():
        rows = np.asarray(idx, dtype=np.int64)
        if lab not in groups:
            groups[lab] = [_Partial(a, scratch) for a in plan.aggregates]
        for part, cols in zip(groups[lab], args, strict=True):
            part.add([c[rows] for c in cols], len(rows))


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

