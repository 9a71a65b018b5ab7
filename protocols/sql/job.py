"""The ``sql.aggregate`` job: a planned SQL query (:mod:`protocols.sql.plan`) run by both
parties of a two-party join.

Steps, every one an existing protocol or statistic:

1. *Pushdown.* Each owner evaluates its ``WHERE`` conjuncts on its own plaintext columns
   and keeps the matching rows; no other party sees the predicate's outcome per row (the
   join reveals only how many rows remain joined).
2. *Private join* (``protocols.psi.private_join`` through ``protocols.jobs.joined``, as in
   ``join.stats`` and ``stats.group_by``): the joined columns secret-shared, the columns
   aggregated bare with their owner's per-column scale (``protocols.stats.scaling``),
   the columns inside expressions and secret filters at the job's fixed point, the
   plaintext group keys as integer codes.
3. *On shares* (:mod:`protocols.sql.evaluate`): expressions, the secret filter as a 0/1
   weight per row, group indicators (code == g by secure comparison, as
   ``protocols.stats.groupby`` does for a shared key; bucket conditions for CASE WHEN /
   WIDTH_BUCKET), their product with the filter: the weight matrix H (groups x rows).
4. *Suppression.* Each group's count H 1 is compared with the largest ``min_group_size``
   of the columns' policies (and the plan's) on shares; only that bit is opened, to every
   party. Suppressed groups appear with ``suppressed = True`` and no aggregates.
5. *Aggregates of the kept groups* opened to ``reveal_to`` only: counts; sums H x (exact
   ring sums at the column's scale); VARIANCE/STDDEV of one party's column from its
   owner's offset column and squares (:func:`_owner_variances`: only C S2 - S1^2 opens);
   other moments from the columns centred and rescaled by ``protocols.stats.vertical``
   (sums H d and H d d' of centred values: variance and std of expressions, covariance,
   correlation); MIN/MAX as the minimum of H x + (1 - H) 2^60 by a
   comparison tree; quantiles over all joined rows by ``protocols.stats.vertical.quantile``,
   per group or under a filter on shares by :func:`protocols.sql.quantiles.grouped`
   (secret ranks: the group counts stay with ``reveal_to``).
6. HAVING: comparisons of COUNT/SUM/AVG/MIN/MAX/quantiles/VARIANCE/STDDEV with constants
   (and BETWEEN) on shares (:func:`_having`; only whether each kept group passes is opened,
   to every party; the groups it drops leave the result, the suppressed ones stay, marked);
   any other HAVING (CORR, COVAR, two aggregates compared), and ORDER BY and LIMIT, on
   the opened result (at the receivers).

Under a memory budget (the job's ``memory`` or ``[limits] memory``) a query of two parties'
tables runs in hash buckets instead (:mod:`protocols.sql.bucketed`: steps 1-3 per bucket,
their partial aggregates merged on shares, then 4-6 with the pieces below; COVAR/CORR of
bare columns from offset sums there, opening no centred moment), unless one of its
aggregates does not merge across buckets; then the input must fit the budget.

Reveals (the registry line below): to every party the number of joined rows, the group
labels of plaintext keys, which groups are suppressed, each column's power-of-two
magnitude (scaling, as in ``join.stats``; for VARIANCE/STDDEV of a bare column also of
its owner's offset column and squares); to ``reveal_to`` the count, and for COVAR/CORR and
STDDEV/VARIANCE of expressions the centred first and second moments, of every kept group
(so also a group's mean relative to the overall mean, its variances and covariance), and
the requested aggregates; a HAVING on shares opens only each kept group's pass bit, any
other HAVING is applied to the opened values (the receivers then learn the aggregates of
the groups it drops).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pandas as pd

from mpc import ss
from mpc.runtime.context import Context
from mpc.ss import SharedTensor, fixed
from mpc.ss.provider import DEALER
from protocols.bucketed import WHOLE_INPUT_COSTS, joint_budget, refuse_over_budget
from protocols.jobs import (
    BUCKET_PSI_REVEALS,
    BUCKET_REVEALS,
    JOIN,
    JOIN_REVEALS,
    MEMORY,
    N_PARTY_PSI,
    REVEAL_TO,
    check_min_group,
    join_helpers,
    join_needs,
    joined,
    shared_min_group,
)
from protocols.registry import ColumnRef, ColumnUse, LocalData, Param, ProtocolSpec, numeric, register
from protocols.sql import evaluate, pushdown, quantiles
from protocols.sql import rows as _rows  # noqa: F401  (registers sql.rows)
from protocols.sql.plan import MOMENTS, VARIANCES, Aggregate, Plan, having_on_shares, show
from protocols.sql.result import finish
from protocols.stats.scaling import column_exponent

_BIG = 2 ** 60          # above every encoded value: MIN/MAX of rows outside a group


def _uses(params: dict[str, Any]) -> list[ColumnUse]:
    plan = Plan.from_params(params["plan"])
    if plan.is_rows:
        raise ValueError("sql.aggregate runs a plan of aggregates; row-level output runs as sql.rows")
    return plan_uses(plan)


def plan_uses(plan: Plan) -> list[ColumnUse]:
    """The column uses a plan declares (the registry's ``uses`` of sql.aggregate and
    sql.rows): every party's policy check covers every column the query reads."""
    if len(plan.tables) not in (1, 2, 3) or len({t.party for t in plan.tables}) != len(plan.tables):
        raise ValueError("sql.aggregate reads one party's table or joins the tables of two or three parties")
    seen, out = set(), []
    for ref, use in plan.column_uses():
        if (ref, use) not in seen:
            seen.add((ref, use))
            out.append(ColumnUse(ColumnRef.parse(ref, "plan"), use))
    return out


def _bare(e: Any) -> str | None:
    return e[1] if isinstance(e, list) and e and e[0] == "col" else None


def check_plan_ring(plan: Plan, exponents: dict[str, int], f: int, n_bound: int) -> None:
    """Refuse the plan if an expression of its aggregates (summed over up to ``n_bound``
    rows for SUM/AVG), its secret filter or its group conditions could overflow the ring,
    from the columns' public power-of-two magnitudes ``exponents`` at ``f`` fraction bits."""
    for a in plan.aggregates:
        for e in a.args:
            if not _bare(e):
                check_ring(e, exponents, f, n_bound if a.func in ("sum", "avg") else 1, a.name)
    for e in [plan.secret_filter] + [c for g in plan.group_by for c in g.conds]:
        if e is not None:
            check_ring(e, exponents, f, 1, show(e))


def _run(ctx: Context, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    from protocols.stats import _common as cm
    from protocols.stats import vertical

    plan = Plan.from_params(params["plan"])
    job = "sql.aggregate"
    if len(plan.tables) > 1:
        memory = joint_budget(ctx, params, data)
        if memory is not None:        # the join and the aggregates per hash bucket, merged on shares
            from protocols.sql import bucketed
            why = bucketed.blocker(plan)
            if why is None:
                return bucketed.run(ctx, params, data, plan, memory)
            job = f"sql.aggregate with {why}"
    if len(plan.tables) == 1:     # streamed by its owner: memory per group, a quantile's values on disk
        from protocols.sql.local import run_single
        return run_single(ctx, plan, params, data)
    refuse_over_budget(ctx, params, data, [u.ref for u in plan_uses(plan)], job, WHOLE_INPUT_COSTS["join"])
    to = cm.receivers(ctx, params.get("reveal_to"))
    f = fixed.frac_bits(ctx)
    ctx.report_progress(phase="sql: pushdown")
    rows_view = pushdown.kept(ctx, plan, data)

    # the columns this party puts into the join
    exact_refs = sorted({r for a in plan.aggregates for e in a.args if (r := _bare(e))})
    fixed_refs = sorted({r for a in plan.aggregates for e in a.args if not _bare(e)
                         for r in _cols(e)} | set(_cols(plan.secret_filter))
                        | {r for g in plan.group_by for c in g.conds for r in _cols(c)})
    columns: dict[str, np.ndarray] = {}
    exponents: dict[str, int] = {}
    for r in exact_refs:
        ref = ColumnRef.parse(r)
        if ref.party == ctx.party:
            columns[f"sqlx__{ref.column}"] = numeric(ref, rows_view.column(ref))
    for r in _owner_moment_refs(plan):      # VARIANCE/STDDEV of one owner's column: see _owner_variances
        ref = ColumnRef.parse(r)
        if ref.party == ctx.party:
            x = numeric(ref, rows_view.column(ref)).astype(np.float64)
            u = x - (float(np.median(x)) if len(x) else 0.0)     # a private offset: never opened
            columns[f"sqlu__{ref.column}"], columns[f"sqlv__{ref.column}"] = u, u * u
    for r in fixed_refs:
        ref = ColumnRef.parse(r)
        if ref.party == ctx.party:
            v = numeric(ref, rows_view.column(ref))
            exponents[r] = column_exponent(v)
            columns[f"sqlf__{ref.column}"] = np.round(np.ldexp(v, f)).astype(np.int64)
    # every party checks that no expression overflows the ring, from the columns' public
    # power-of-two magnitudes (the same the scaling of bare columns publishes)
    for mine in ctx.gather({k: v for k, v in exponents.items() if ColumnRef.parse(k).party == ctx.party}):
        exponents.update(mine)
    n_bound = max(ctx.gather(len(rows_view.column(ColumnRef.parse(next(
        t.key_ref for t in plan.tables if t.party == ctx.party))))))
    check_plan_ring(plan, exponents, f, n_bound)
    labels: list[list[Any]] = []
    for i, g in enumerate(plan.group_by):
        mine = None
        if g.column and ColumnRef.parse(g.column).party == ctx.party:
            codes, uniques = pd.factorize(pd.Series(rows_view.column(ColumnRef.parse(g.column))), sort=True)
            columns[f"sqlg__{i}"] = codes.astype(np.int64)
            mine = [u.item() if hasattr(u, "item") else u for u in uniques]
        if g.column:
            labels.append(ctx.gather(mine)[ctx.parties.index(ColumnRef.parse(g.column).party)])
        else:
            labels.append(list(g.labels))

    ctx.report_progress(phase="sql: private join")
    if len(plan.tables) == 2:
        n, cols = joined(ctx, {"ids": plan.ids, "join": params["join"]}, rows_view, columns)
    else:
        n, cols = _aligned(ctx, plan, rows_view, columns)
    agg_cols = {"columns": plan.aggregate_columns()}
    check_min_group(ctx, agg_cols, "columns", rows_view, n)
    min_group = max(shared_min_group(ctx, agg_cols, "columns", rows_view), plan.min_group_size,
                    params.get("min_group_size") or 1)

    def fixed_col(r: str) -> SharedTensor:
        return fixed_column(cols, r, f)

    def tensor(e: Any) -> SharedTensor:
        return joined_tensor(ctx, cols, n, f, e)

    # the weight matrix H (groups x rows): group indicators times the secret filter
    ctx.report_progress(phase="sql: groups and filter")
    h = weights(ctx, plan, labels, cols, n, f)
    groups = list(itertools.product(*labels)) if labels else [()]

    def wsum(t0: SharedTensor) -> SharedTensor:
        """Per-group sums of rows (axis 0 of t0): shape (groups, ...)."""
        if h is None:
            return t0.sum(axis=0, keepdims=True)
        return h @ t0

    counts_sh = None if h is None else h.sum(axis=1)
    sums: dict[str, tuple[SharedTensor, int]] = {}

    def having_value(agg: Aggregate) -> tuple[SharedTensor, int]:
        """What HAVING compares of a SUM/AVG (the ring sum), MIN/MAX or quantile: (ring integers, frac)."""
        t = tensor(agg.args[0])
        if agg.func in ("min", "max"):
            return _group_min_max(t, h, agg.func, n), t.frac_bits
        if agg.func == "quantile":
            vals, frac = quantiles.grouped(t, h, counts_sh, [agg.q])
            return vals[:, 0], frac
        if agg.name not in sums:
            sums[agg.name] = (wsum(t.with_frac_bits(0)), t.frac_bits)
        return sums[agg.name]

    kept, dropped = suppress_and_having(ctx, plan, len(groups), counts_sh, min_group, n, having_value,
                                        (tensor, wsum))

    def opened(x: SharedTensor) -> np.ndarray | None:
        return x[kept].reveal(to) if len(kept) else (np.zeros((0, *x.shape[1:])) if ctx.party in to else None)

    ctx.report_progress(phase="sql: aggregates")
    counts = np.full(1, n, dtype=np.int64) if counts_sh is None else opened(counts_sh)
    results: dict[str, Any] = {}
    plain_aggs = [a for a in plan.aggregates if a.func not in MOMENTS]
    for a in plain_aggs:
        results[a.name] = _aggregate(ctx, a, tensor, wsum, h, opened, counts, n, to, counts_sh, kept)
    owner_vars = [a for a in plan.aggregates if a.func in VARIANCES and _bare(a.args[0])]
    if owner_vars:
        results.update(_owner_variances(ctx, owner_vars, cols, wsum, opened, counts, counts_sh, n))
    moments = [a for a in plan.aggregates if a.func in MOMENTS and a not in owner_vars]
    if moments:
        results.update(_moments(ctx, moments, tensor, wsum, opened, counts, vertical))
    ctx.report_progress(1.0)
    if ctx.party not in to:
        return None
    return result_frame(plan, groups, kept, dropped, results, n)


def fixed_column(cols: dict[str, SharedTensor], r: str, f: int) -> SharedTensor:
    """The joined column ``r`` (``party.dataset.column``) at the job's fixed point f."""
    ref = ColumnRef.parse(r)
    return cols[f"{ref.party}.sqlf__{ref.column}"].with_frac_bits(f)


def joined_tensor(ctx: Context, cols: dict[str, SharedTensor], n: int, f: int, e: Any) -> SharedTensor:
    """An aggregate's argument on the n joined rows: a bare column at its owner's scale, an
    expression at the job's fixed point f (a constant as a public column)."""
    r = _bare(e)
    if r is not None:
        ref = ColumnRef.parse(r)
        return cols[f"{ref.party}.sqlx__{ref.column}"]
    v = evaluate.shared(e, lambda r: fixed_column(cols, r, f))
    return v if isinstance(v, SharedTensor) else ss.public(ctx, np.full(n, float(v)))


def weights(ctx: Context, plan: Plan, labels: list[list[Any]], cols: dict[str, SharedTensor], n: int,
            f: int) -> SharedTensor | None:
    """The weight matrix H (groups x the n joined rows): the group indicators (code == g for
    a plaintext key, the bucket conditions of CASE WHEN / WIDTH_BUCKET) times the secret
    filter; None without groups or filter."""
    h = None
    for i, g in enumerate(plan.group_by):
        if g.column:
            ref = ColumnRef.parse(g.column)
            codes = cols[f"{ref.party}.sqlg__{i}"].with_frac_bits(0)
            hk = codes.reshape(1, n) == np.arange(len(labels[i]))[:, None]
        else:
            hk = ss.stack([_as_rows(ctx, evaluate.shared(c, lambda r: fixed_column(cols, r, f)), n)
                           for c in g.conds])
        h = hk if h is None else (h.reshape(h.shape[0], 1, n) * hk.reshape(1, hk.shape[0], n)).reshape(-1, n)
    if plan.secret_filter is not None:
        w = _as_rows(ctx, evaluate.shared(plan.secret_filter, lambda r: fixed_column(cols, r, f)), n).reshape(1, n)
        h = w if h is None else h * w
    return h


def suppress_and_having(ctx: Context, plan: Plan, n_groups: int, counts_sh: SharedTensor | None, min_group: int,
                        n: int, value, rows=None, variance=None) -> tuple[np.ndarray, np.ndarray | None]:
    """(kept groups, groups HAVING dropped on shares or None): the suppression bit of each
    group (count < min_group, opened to every party), then a HAVING on shares
    (:func:`_having` with ``value``, ``rows`` and ``variance``) opening each kept group's pass bit."""
    if counts_sh is None:
        return np.arange(1), None
    small = np.asarray((counts_sh < min_group).reveal()) != 0
    kept = np.flatnonzero(~small)
    if not (having_on_shares(plan) and len(kept)):
        return kept, None
    bit = _having(ctx, plan, counts_sh, n, value, rows, variance)
    passes = np.ones(len(kept), bool) if not isinstance(bit, SharedTensor) else \
        np.asarray(bit[kept].reveal()).astype(bool)
    if not isinstance(bit, SharedTensor) and not bit:
        passes[:] = False
    kept = kept[passes]
    dropped = np.ones(n_groups, bool)
    dropped[kept] = False
    dropped[small] = False                     # suppressed groups stay, marked
    return kept, dropped


def result_frame(plan: Plan, groups: list[tuple], kept: np.ndarray, dropped: np.ndarray | None,
                 results: dict[str, Any], n: int) -> pd.DataFrame:
    """The query's result at a receiver: one row per group (labels, the kept groups'
    aggregates, ``suppressed``), the groups HAVING dropped on shares left out, then
    :func:`protocols.sql.result.finish` (HAVING on opened values, ORDER BY, LIMIT)."""
    frame = pd.DataFrame({g.name: [grp[i] for grp in groups] for i, g in enumerate(plan.group_by)})
    if frame.empty and not plan.group_by:
        frame = pd.DataFrame(index=[0])
    for a in plan.aggregates:
        col = np.full(len(groups), np.nan)
        col[kept] = np.asarray(results[a.name], dtype=np.float64)
        frame[a.name] = col
    if plan.group_by:
        sup = np.ones(len(groups), dtype=bool)
        sup[kept] = False
        frame["suppressed"] = sup
    if dropped is not None:              # groups HAVING dropped on shares: not in the result
        frame = frame[~dropped]
        frame["suppressed"] = frame["suppressed"].to_numpy(bool)
    frame.attrs["rows"] = int(n)
    return finish(plan, frame, having=dropped is None)


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}


def _having(ctx: Context, plan: Plan, counts: SharedTensor, n: int, value, rows=None, variance=None) -> Any:
    """HAVING on shares (:func:`protocols.sql.plan.having_on_shares`): a 0/1 SharedTensor per
    group, or a public 0/1 when the constants decide it. Every comparison is of ring integers
    on shares; only the caller opens the kept groups' bits. ``value(agg)`` gives what a
    SUM/AVG (its ring sum S), MIN/MAX or quantile compares, as (ring integers, frac): from
    the joined rows here, from the buckets' merged totals in :mod:`protocols.sql.bucketed`;
    ``rows`` = (tensor, wsum) of the joined rows, which a VARIANCE/STDDEV needs, or
    ``variance(agg, op, c)``: var op c for c >= 0 (the bucketed job's, from merged sums).

    * COUNT op c; SUM(x) op c is S op round(c 2^s) and AVG(x) op c is S - round(c 2^s) COUNT
      op 0, for x at s fractional bits; |S| < 2^61 (the scaling, check_ring), so a constant
      with |c 2^s| n >= 2^61 lies outside every group's range and its sign decides.
    * MIN/MAX(x) op c: the group's minimum (maximum) as _aggregate computes it, op round(c 2^s).
    * a quantile op c: :func:`protocols.sql.quantiles.grouped` op round(c 2^frac).
    * VARIANCE (VAR_SAMP, VAR_POP) op c: from the centred sums of
      :func:`protocols.stats.vertical.centred` (d at W bits, public shift u: value - min =
      r 2^-u), var = (C S2 - S1^2) / (C (C - ddof)) 2^-2u, so var op c is
      C S2' - S1'^2 op K C (C - ddof) with S1' = S1 >> k, S2' = S2 >> 2k, 2k >= L + 1
      (L = ceil(log2 n): every product stays below 2^60) and K = round(c 2^(2u - 2k)); exact
      up to the truncations and K's rounding (relative 2^-(2W - 2k) at the threshold, about
      1e-5 at 2^20 rows). var < 2^(2W - 2u) always, so a larger or a negative c is decided by
      its sign. STDDEV op c is var op c^2 for c >= 0 (and decided for c < 0).
    """
    by_name = {a.name: a for a in plan.aggregates}
    lg = max(1, math.ceil(math.log2(max(n, 2))))

    def decided(op: str, c: float) -> int:      # agg op c when |agg| < |c|
        return int({"<": c > 0, "<=": c > 0, ">": c < 0, ">=": c < 0, "=": False, "!=": True}[op])

    def against(op: str, value: SharedTensor, frac: int, c: float, limit: float = 2.0 ** 61) -> Any:
        k = c * 2.0 ** frac
        if abs(k) >= limit:
            return decided(op, c)
        return evaluate.compare(op, value - int(round(k)), 0)

    def from_rows(agg: Aggregate, op: str, c: float) -> Any:
        from protocols.stats import _common as cm
        from protocols.stats import vertical

        if rows is None:
            raise ValueError(f"HAVING on {agg.func.upper()} needs the joined rows")
        tensor, wsum = rows
        col = vertical.prepare_many(ctx, {"x": tensor(agg.args[0])})[0]
        d = vertical.centred(ctx, [col])                                   # (1, n)
        w = cm.work_bits(n)
        if c < 0 or c * 2.0 ** (2 * col.shift) >= 2.0 ** (2 * w):
            return decided(op, c)
        k = (lg + 2) // 2
        s1 = wsum(d.T).reshape(-1) >> k
        s2 = wsum((d * d).T).reshape(-1) >> (2 * k)
        ddof = 0 if agg.func.endswith("_pop") else 1
        big_k = int(round(c * 2.0 ** (2 * col.shift - 2 * k)))
        lhs = counts * s2 - s1 * s1
        return evaluate.compare(op, lhs - (counts * counts - counts * ddof) * big_k, 0)

    def hv(e: Any) -> Any:
        if e[0] == "and":
            return evaluate.both(hv(e[1]), hv(e[2]))
        if e[0] == "or":
            return evaluate.either(hv(e[1]), hv(e[2]))
        if e[0] == "not":
            return 1 - hv(e[1])
        if e[0] == "between":
            return evaluate.both(hv(["cmp", ">=", e[1], e[2]]), hv(["cmp", "<=", e[1], e[3]]))
        a, b, op = e[2], e[3], e[1]
        if a[0] == "num":
            a, b, op = b, a, _FLIP[op]
        agg, c = by_name[a[1]], float(b[1])
        if agg.func == "count":
            return evaluate.compare(op, counts, c)
        var = variance or from_rows
        if agg.func in ("var_samp", "var_pop"):
            return decided(op, c) if c < 0 else var(agg, op, c)
        if agg.func in ("stddev_samp", "stddev_pop"):
            return decided(op, c) if c < 0 else var(agg, op, c * c)
        v, s = value(agg)
        if agg.func in ("min", "max", "quantile"):
            return against(op, v, s, c)
        total = v
        k = c * 2.0 ** s
        if abs(k) * (n if agg.func == "avg" else 1) >= 2.0 ** 61:
            return decided(op, c)
        k = int(round(k))
        return evaluate.compare(op, total - counts * k if agg.func == "avg" else total - k, 0)

    return hv(plan.having)


def _group_min_max(t: SharedTensor, h: SharedTensor | None, func: str, n: int) -> SharedTensor:
    """MIN or MAX of each group's rows (ring integers at t's scale): the minimum of
    H x + (1 - H) 2^60 (the maximum of H x - (1 - H) 2^60) by a comparison tree."""
    t0 = t.with_frac_bits(0).reshape(1, n)
    if h is not None:
        big = _BIG if func == "min" else -_BIG
        t0 = h * t0 + (1 - h) * big
    mn, mx = ss.min_max(t0, axis=1)
    return mn if func == "min" else mx


def check_ring(e: Any, exponents: dict[str, int], f: int, n: int, what: str) -> float:
    """A bound on |e| from the columns' magnitudes (max |x| < 2^e); ValueError naming ``what``
    when a product, comparison or sum of n rows of it at f fractional bits could exceed the
    signed 64-bit ring (2^62 with a bit of margin), which would wrap silently."""
    limit = 2.0 ** 62

    def bound(x: Any) -> float:
        op = x[0]
        if op == "col":
            return 2.0 ** exponents[x[1]]
        if op == "num":
            return abs(float(x[1]))
        if op == "neg":
            return bound(x[1])
        if op == "bin":
            a, b = bound(x[2]), bound(x[3])
            if x[1] == "*":
                if a * b * 4.0 ** f >= limit:
                    raise ValueError(f"{what}: {show(x)} may reach 2^{math.log2(a * b):.0f}, beyond what a product "
                                     f"on shares holds at {f} fractional bits (2^{62 - 2 * f}); scale a column down")
                return a * b
            if x[1] == "/":
                return a / max(abs(float(x[3][1])) if x[3][0] == "num" else 1.0, 1e-300)
            return a + b
        if op == "cmp":
            if (bound(x[2]) + bound(x[3])) * 2.0 ** f >= limit / 2:
                raise ValueError(f"{what}: the comparison {show(x)} is beyond the ring at {f} fractional bits")
            return 1.0
        for y in x[1:]:
            if isinstance(y, list) and y and isinstance(y[0], str):
                bound(y)
            elif isinstance(y, list):
                for z in y:
                    if isinstance(z, list):
                        bound(z)
        return 1.0

    b = bound(e)
    if b * 2.0 ** f * n >= limit / 2:
        raise ValueError(f"{what}: a sum of {n} rows of values up to 2^{math.log2(b):.0f} is beyond the "
                         f"64-bit ring at {f} fractional bits")
    return b


def _aligned(ctx: Context, plan: Plan, data: LocalData, columns: dict[str, np.ndarray]):
    """Three parties: the rows all hold, aligned by multi-party PSI (``psi.ecdh``: each party
    learns which of its own ids every party holds, as in ``stats.woe_iv``) and sorted by id;
    then each owner secret-shares its columns of those rows with its per-column scale.
    Returns (rows, {"party.name": SharedTensor}) like ``protocols.jobs.joined``."""
    from protocols.jobs import aligned_rows
    from protocols.stats import scale_columns

    rows = aligned_rows(ctx, {"ids": plan.ids}, data)
    ints, shifts = scale_columns(ctx, {k: np.asarray(v)[rows] for k, v in columns.items()})
    cols = {}
    for name in sorted(shifts):
        party, col = name.split(".", 1)
        cols[name] = ss.share(ctx, ints[col] if party == ctx.party else None, party).with_frac_bits(shifts[name])
    return len(rows), cols


def _required_helpers(params: dict[str, Any]) -> tuple[str, ...]:
    """The dealer for join='dealer' only: three parties' shared arithmetic runs without one
    too (``triples="ot"``: :class:`mpc.ss.ot_parties.OtParties`)."""
    return join_helpers(params)


def _cols(e: Any) -> list[str]:
    from protocols.sql.plan import columns_of
    return columns_of(e) if e is not None else []


def _as_rows(ctx: Context, v: Any, n: int) -> SharedTensor:
    """A 0/1 condition as an integer SharedTensor of n rows (public constants too)."""
    if isinstance(v, SharedTensor):
        return v.with_frac_bits(0) if v.frac_bits == 0 else v
    return ss.public(ctx, np.full(n, int(bool(v)), dtype=np.int64))


def _aggregate(ctx: Context, a: Aggregate, tensor, wsum, h, opened, counts, n: int, to: list[str],
               counts_sh: SharedTensor | None = None, kept: np.ndarray | None = None) -> Any:
    from protocols.stats import vertical

    if a.func == "count":
        return counts
    t = tensor(a.args[0])
    if a.func in ("sum", "avg"):
        s = opened(wsum(t.with_frac_bits(0)))
        if s is None:
            return None
        total = s.astype(np.float64) * 2.0 ** -t.frac_bits
        return total if a.func == "sum" else total / counts
    if a.func in ("min", "max"):
        out = opened(_group_min_max(t, h, a.func, n))
        return None if out is None else out.astype(np.float64) * 2.0 ** -t.frac_bits
    if a.func == "quantile":
        if h is None:
            out = vertical.quantile(ctx, t, a.q, reveal_to=to)
            return None if out is None else np.array([out])
        if not len(kept):
            return opened(counts_sh)
        vals, frac = quantiles.grouped(t, h[kept], counts_sh[kept], [a.q])     # the kept groups only
        out = vals.reveal(to)
        return None if out is None else out[:, 0].astype(np.float64) * 2.0 ** -frac
    raise ValueError(f"unknown aggregate {a.func!r}")


def _owner_moment_refs(plan: Plan) -> list[str]:
    """The bare columns whose VARIANCE/STDDEV :func:`_owner_variances` computes."""
    return sorted({r for a in plan.aggregates if a.func in VARIANCES and (r := _bare(a.args[0]))})


def _owner_variances(ctx: Context, aggs: list[Aggregate], cols: dict[str, SharedTensor], wsum, opened,
                     counts, counts_sh: SharedTensor | None, n: int) -> dict[str, Any]:
    """VARIANCE/STDDEV of one owner's column per group, from columns its owner adds in
    plaintext: u = x - o (o: the median of its own kept rows, private) and u^2, joined
    with their own scales s1, s2 like any column. Per group, on shares, with the ring
    sums S1 = H u, S2 = H u^2 and the count C: V = C S2 - S1^2 = C (C - ddof) var (the
    translation by o cancels), computed as C (S2 >> (L + 1)) - (S1 >> 30)^2 (L =
    ceil(log2 n): both products stay below 2^60) and brought to one power of two with
    ``rshift_private`` (the shifts depend on the column scales, which the dealer must not
    see). Only V of each kept group is opened, to ``reveal_to``: with C it is the variance
    and nothing else (not even the group's mean, unlike the centred moments of
    :func:`_moments`; o never leaves its owner). Cost: two more joined columns, three
    products per group, no comparison of rows. Accuracy: S1 keeps about 30 bits and S2
    ~ 59 - 2L + log2(C) - log2(max u^2 / var) bits: a relative error near 2^-25 for groups
    of 2^16 rows at n = 2^20, worse for tiny groups of heavy-tailed columns."""
    sums = {}
    for r in sorted({_bare(a.args[0]) for a in aggs}):
        ref = ColumnRef.parse(r)
        u, v = cols[f"{ref.party}.sqlu__{ref.column}"], cols[f"{ref.party}.sqlv__{ref.column}"]
        sums[r] = (wsum(ss.stack([u.with_frac_bits(0), v.with_frac_bits(0)], axis=1)), u.frac_bits, v.frac_bits)
    return owner_variances_of_sums(ctx, aggs, sums, opened, counts, counts_sh, n)


def owner_variances_of_sums(ctx: Context, aggs: list[Aggregate], sums: dict[str, tuple[SharedTensor, int, int]],
                            opened, counts, counts_sh: SharedTensor | None, n: int) -> dict[str, Any]:
    """:func:`_owner_variances` from the per-group ring sums of u and u^2 (``sums[ref]`` =
    ((g, 2) SharedTensor, u's scale, u^2's scale)) and the counts: what the bucketed job
    adds up over its buckets (n the joined rows of all of them)."""
    cnt_sh = counts_sh if counts_sh is not None else ss.public(ctx, np.full(1, n, dtype=np.int64))
    var: dict[str, Any] = {}
    for r, (both_sums, u_frac, v_frac) in sums.items():
        big, e = owner_variance_big(both_sums, u_frac, v_frac, cnt_sh, n)
        out = opened(big)
        var[r] = None if out is None else out.astype(np.float64) * 2.0 ** e
    out = {}
    for a in aggs:
        total = var[_bare(a.args[0])]
        if total is None:
            out[a.name] = None
            continue
        ddof = 0 if a.func.endswith("_pop") else 1
        cnt = np.asarray(counts, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            vv = np.where(cnt - ddof > 0, total / (cnt * (cnt - ddof)), np.nan)
        out[a.name] = np.sqrt(np.maximum(vv, 0.0)) if a.func.startswith("stddev") else vv
    return out


def owner_variance_big(both_sums: SharedTensor, u_frac: int, v_frac: int, counts: SharedTensor,
                       n: int) -> tuple[SharedTensor, int]:
    """(V, e) with V 2^e = C S2 - S1^2 = C (C - ddof) var per group (ring integers, |V| <
    2^60), from the ring sums S1 of u and S2 of u^2 at their scales (:func:`_owner_variances`)."""
    return owner_comoment_big(both_sums[:, 0], None, both_sums[:, 1], u_frac, u_frac, v_frac, counts, n)


def owner_comoment_big(s_u: SharedTensor, s_v: SharedTensor | None, s_uv: SharedTensor, u_frac: int, v_frac: int,
                       uv_frac: int, counts: SharedTensor, n: int) -> tuple[SharedTensor, int]:
    """(V, e) with V 2^e = C S_uv - S_u S_v = C (C - ddof) cov per group (ring integers, |V| <
    2^60) from the ring sums S_u, S_v (None: S_u, a variance) of the offset columns u, v and
    S_uv of their products (each |S| < 2^60) at their scales: C (S_uv >> (L + 1)) - (S_u >>
    30) (S_v >> 30) (L = ceil(log2 n): both products below 2^60), the two terms brought to
    one power of two by ``rshift_private`` (the shifts depend on the column scales, which the
    dealer must not see). The offsets cancel: any private o_x, o_y give the same V."""
    lg = max(1, math.ceil(math.log2(max(n, 2))))
    s1, s2 = s_u >> 30, s_uv >> (lg + 1)
    t1 = s1 if s_v is None else s_v >> 30
    e_a, e_b = lg + 1 - uv_frac, 60 - u_frac - v_frac     # value = A 2^e_a, B 2^e_b
    e = max(e_a, e_b)
    return (counts.with_frac_bits(0) * s2).rshift_private(e - e_a) - (s1 * t1).rshift_private(e - e_b), e


def _moments(ctx: Context, aggs: list[Aggregate], tensor, wsum, opened, counts, vertical) -> dict[str, Any]:
    """VAR/STDDEV/COVAR/CORR per group from sums of centred values (one Beaver product for
    all the pairs): cov = (S_xy - S_x S_y / n) / (n - ddof), in the rescaled units of
    :func:`protocols.stats.vertical.prepare_many`."""
    keys: dict[str, Any] = {}
    for a in aggs:
        for e in (a.args if len(a.args) == 2 else a.args * 2):
            keys.setdefault(repr(e), e)
    names = list(keys)
    prepared = vertical.prepare_many(ctx, {k: tensor(e) for k, e in keys.items()})
    d = vertical.centred(ctx, prepared)                               # (c, n) ring integers
    pairs: list[tuple[int, int]] = []
    for a in aggs:
        i, j = (names.index(repr(a.args[0])), names.index(repr(a.args[-1])))
        want = [(i, j)] + ([(i, i), (j, j)] if a.func == "corr" else [])
        pairs += [p for p in want if p not in pairs]
    prod = ss.stack([d[i] for i, _ in pairs]) * ss.stack([d[j] for _, j in pairs])
    c = d.shape[0]
    sums = opened(wsum(ss.concatenate([d, prod]).T))                   # (g, c + pairs): one product with H
    if sums is None:
        return {a.name: None for a in aggs}
    s1, s2 = sums[:, :c].astype(np.float64), sums[:, c:].astype(np.float64)
    cnt = np.asarray(counts, dtype=np.float64)

    def cov(i: int, j: int, ddof: int) -> np.ndarray:
        k = pairs.index((i, j))
        scale = 2.0 ** -(prepared[i].shift + prepared[j].shift)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (s2[:, k] - s1[:, i] * s1[:, j] / cnt) / (cnt - ddof) * scale

    out = {}
    for a in aggs:
        i, j = names.index(repr(a.args[0])), names.index(repr(a.args[-1]))
        ddof = 0 if a.func.endswith("_pop") else 1
        if a.func.startswith("var") or a.func.startswith("covar"):
            out[a.name] = cov(i, j, ddof)
        elif a.func.startswith("stddev"):
            out[a.name] = np.sqrt(np.maximum(cov(i, i, ddof), 0.0))
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[a.name] = cov(i, j, 1) / np.sqrt(cov(i, i, 1) * cov(j, j, 1))
    return out


register(ProtocolSpec(
    name="sql.aggregate",
    doc="A SQL query (Client.query / gaotie query): SELECT aggregates FROM one, two or three parties' tables "
        "JOIN ... GROUP BY, planned by protocols.sql into pushdown, a private join and aggregates on shares.",
    reveals="every party: the number of joined rows (after each owner's plaintext WHERE), the labels of "
            "plaintext GROUP BY keys and which groups are suppressed (fewer rows than min_group_size); "
            "each column's power-of-two magnitude; reveal_to (default: both): per kept group its row count, "
            "the requested aggregates, and for COVAR/CORR and STDDEV/VARIANCE of expressions the group's "
            "centred moments (its mean relative to the overall mean, variances and covariance), for "
            "STDDEV/VARIANCE of one party's column only the variance; HAVING on COUNT/SUM/AVG/MIN/MAX/"
            "quantiles/VARIANCE/STDDEV against constants: "
            "every party learns which kept groups pass, other HAVING/ORDER BY/LIMIT apply to the opened values; "
            "a filter on shares stays secret" + JOIN_REVEALS + BUCKET_REVEALS
            + " (two or three parties' tables; a budget the input outgrows refuses quantiles and "
            "VARIANCE/STDDEV/COVAR/CORR of expressions per group or under a filter on shares, which do not merge "
            "across buckets). Three "
            "parties: the rows "
            "are aligned by psi.ecdh, so every party learns which of its own ids all three hold" + N_PARTY_PSI
            + BUCKET_PSI_REVEALS
            + ". One party's table: "
            "its owner computes the query in plaintext and the receivers get the result table only",
    params={"sql": Param(str, doc="the SQL text (recorded in the audit log)"),
            "plan": Param(dict, doc="the plan protocols.sql.parse made of it"),
            "min_group_size": Param(int, required=False, default=None,
                                    doc="raise the suppression threshold above the policies' minimum"),
            "parties": Param(list, required=False, default=None,
                             doc="one party's table: the parties of the job (its owner and the requester)"),
            "join": JOIN, "reveal_to": REVEAL_TO, "memory": MEMORY},
    uses=_uses,
    extra_parties=lambda params: list(params.get("parties") or []),
    run=_run,
    helpers=(DEALER,),
    required_helpers=_required_helpers,
    needs=join_needs,
))

