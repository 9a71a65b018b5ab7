"""``sql.aggregate`` of two or three parties' tables under a memory budget: the private join
(three parties: the rows aligned by the N-party PSI, :func:`aligned_bucket`) and the
aggregates per hash bucket, the partial aggregates merged on shares, one reveal at the end.

When the job has a memory budget (the smaller of its ``memory`` parameter and the
servers' ``[limits] memory``, :func:`protocols.bucketed.joint_budget`, as for
``join.stats``), each party streams its table a batch of rows at a time:

1. *A first pass* applies its pushed-down ``WHERE`` (:func:`protocols.sql.pushdown.mask_of`)
   and notes, of the rows kept, their number, each column's largest magnitude, the sorted
   labels of its plaintext group keys and, for VARIANCE/STDDEV/COVAR/CORR of its column x,
   the mean o and the range of x (o is a private offset, as the median is unbucketed: never sent).
2. *The spill* (:func:`protocols.buckets.spill`): the kept rows' ids and the columns the
   query reads, each as the unbucketed job puts it into the join (the bare aggregated
   columns and u = x - o, u^2 at their owner's scale for all kept rows, the columns of
   expressions and filters at the job's fixed point, group keys as label codes), written to
   hash buckets of the joint key, so equal ids land in the same bucket at both parties. For
   COVAR/CORR(x, y) also: u_x u_y when one party owns x and y (at the scale of |u_x| |u_y| <
   2^(e_x + e_y), from u's public exponents), else each owner's u at ``work_bits`` of its
   kept rows (:func:`protocols.stats._common.work_bits`, as the unbucketed centred moments).
3. *Per bucket* (:func:`protocols.buckets.run_buckets`, checkpointed): the private join of
   the bucket's padded ids (:func:`protocols.bucketed.join_bucket`), the weight matrix H of
   the bucket's joined rows (:func:`protocols.sql.job.weights`: groups times the filter on
   shares) and the bucket's partial aggregates on shares: per group its count H 1, the
   ring sum H x of every SUM/AVG argument, the minimum (maximum) of every MIN/MAX argument
   and the ring sums H u, H u^2 of every VARIANCE/STDDEV/COVAR/CORR column, and H (u_x u_y)
   of every COVAR/CORR pair (of the owner's products, or of the two owners' u multiplied on
   shares, ring integers with no truncation: the sum stays below 2^60). Only these shares are
   saved (:class:`mpc.runtime.checkpoint.Checkpoint`): a restarted job skips the buckets
   both parties finished.
4. *Merge* on shares: counts and sums add up exactly in the ring (every bucket uses the same
   scale per column); MIN/MAX are the minimum (maximum) of the buckets' values by a
   comparison tree (an empty group of a bucket holds the 2^60 of
   :func:`protocols.sql.job._group_min_max`); AVG = SUM / COUNT and VARIANCE/STDDEV =
   (C S2 - S1^2) / (C (C - ddof)) from the merged counts and sums
   (:func:`protocols.sql.job.owner_variances_of_sums`); COVAR = (C S_uv - S_u S_v) / (C (C -
   ddof)) and CORR = (C S_uv - S_u S_v) / sqrt((C S_uu - S_u^2) (C S_vv - S_v^2)) the same
   way (:func:`_covariances`: the numerators on shares, translation-invariant, so the private
   offsets cancel; opened to ``reveal_to`` and divided there, as the unbucketed job divides
   its opened moments). Then exactly what the unbucketed
   job does: the suppression bits, HAVING on shares (:func:`protocols.sql.job.suppress_and_having`
   on the merged values), the kept groups' aggregates opened to ``reveal_to``, and HAVING
   on opened values, ORDER BY and LIMIT (:func:`protocols.sql.result.finish`).

Three parties' tables: each bucket's rows are aligned as the unbucketed job aligns all rows
(the N-party PSI, every party a receiver, then sorted by id: each party learns which of its
own ids in the bucket all hold, as it learns of all its ids unbucketed); the N-party PSI's
two extra sizes (the leader's non-leader intersection, the mixer's histogram) come per
bucket, so more than one bucket needs every party's ``[limits] bucket_psi_sizes``.

What it reveals: the unbucketed job's reveal line (the total of joined rows, the group
labels, the suppression bits, the HAVING pass bits, each column's power-of-two magnitude,
the aggregates to ``reveal_to``), plus what every bucketed private join reveals
(:mod:`protocols.buckets`): each party's distinct-id count after its WHERE and, with more
than one bucket, **the number of joined rows in each bucket** -- refused unless every
party's ``[limits] bucket_join_sizes`` allows it, as for ``join.stats``. No partial
aggregate of a bucket is ever opened; the merged values are the ones the unbucketed job
opens, or fewer: for COVAR/CORR of bare columns only C S_uv - S_u S_v (the covariance) and,
for CORR, the two variances' numerators are opened, to ``reveal_to``, where the unbucketed
job opens each group's centred first and second moments (its mean relative to the overall
mean too); the reveal line stays the unbucketed one. The scales of the product and work-bit
columns follow from the scales of u and the kept rows every party already gets (no new
magnitude). Two things the unbucketed job sends are not sent here: the public bounds of the
scaled columns (the aggregates need none) and the median offset (a mean, as private).

Quantiles (MEDIAN, PERCENTILE_CONT) and VARIANCE/STDDEV/COVAR/CORR of expressions without
GROUP BY or a filter on shares do not merge either, but need no weights: every bucket also
keeps its joined rows' values of each such argument (its checkpoint,
:func:`spilled_args`), and after the merge they are concatenated bucket by bucket into
memory-mapped files (``chunked.spilled``, as the bucketed ``join.stats``). On them
``protocols.stats.vertical.quantile`` runs once, as the unbucketed job runs it on its one join
(the selection out of core, its dealer-free shuffles as Clos networks that fit the budget),
and the moments come from the centred sums of products
(``vertical.centred_products``, summed chunk by chunk). Same reveal: the quantiles to
``reveal_to`` (the selection opens only comparisons of keys in a uniform arrangement of all
joined rows, :mod:`mpc.ss.order`), of the moments only the centred sums they need (a
variance's, a covariance's, for CORR also the two variances'), fewer than the unbucketed
job's centred first and second moments.

What cannot be merged exactly from per-bucket parts is refused (:func:`blocker`, naming the
SQL function and its line and column): quantiles per group or under a filter on shares (the
weights of all joined rows at once) and VARIANCE/STDDEV/COVAR/CORR of expressions per group or
under a filter on shares (centred on each group's mean over all joined rows). A HAVING on
VARIANCE/STDDEV of a column compares the merged sums on shares (:func:`_variance_against`).
Such a query runs unbucketed if its input fits the budget
and is refused otherwise (:func:`protocols.bucketed.refuse_over_budget`). COUNT(DISTINCT)
is refused by the parser already.

In memory: one batch of input, one bucket's join and its groups x rows weight matrix, and
the buckets' partial aggregates (groups x aggregates x buckets words); the quantiles' selection
a few bytes per joined row (:func:`mpc.ss.order.select` on spilled keys); the bucket size
allows ``GROUP_ROW_BYTES`` per row and group for the weights (so many groups mean more,
smaller buckets, up to the 256 of :mod:`protocols.buckets`, past which memory is not bounded).

Accuracy of COVAR/CORR: S_u keeps about 30 bits (as VARIANCE's S1) and a product of two
owners' u about 2 work_bits (23 each at 10^4 kept rows, 18 at 2^24): relative errors near
1e-6 in the tests (DuckDB within 1e-4).
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from mpc import ss
from mpc.runtime import allocator
from mpc.runtime.context import Context
from mpc.ss import SharedTensor, fixed
from protocols import buckets
from protocols.bucketed import (
    _checkpoint,
    _consent,
    _consent_to_bucket_sizes,
    _plan,
    _start,
    _unique_ids,
    bucket_hits,
    join_bucket,
    scaled_values,
)
from protocols.jobs import JOIN_METHODS, check_min_group, shared_min_group
from protocols.psi.oprf import capacity
from protocols.registry import ColumnRef, LocalData, numeric
from protocols.sql import evaluate, pushdown
from protocols.sql.job import (
    _BIG,
    _bare,
    _cols,
    _group_min_max,
    _owner_moment_refs,
    check_plan_ring,
    joined_tensor,
    owner_comoment_big,
    owner_variance_big,
    owner_variances_of_sums,
    result_frame,
    suppress_and_having,
    weights,
)
from protocols.sql.plan import MOMENTS, VARIANCES, Aggregate, Plan
from protocols.stats import chunked
from protocols.stats._common import work_bits
from protocols.stats.scaling import column_exponent, default_bits, exchange_scales

PHASE_PASS = "sql: first pass (WHERE, magnitudes, group labels)"
# Peak bytes per joined row and group of a bucket's weight matrix and MIN/MAX (measured: 64
# groups of 2^16 rows, COUNT/SUM/MIN, one process for both parties: +900 MiB, ~150 B per row
# and group at each party), on top of the private join's buckets.COSTS["join"].
GROUP_ROW_BYTES = 160
MERGEABLE = ("count", "sum", "avg", "min", "max")


# -- what can run in buckets -------------------------------------------------------------------
def blocker(plan: Plan) -> str | None:
    """Why ``plan`` cannot run in hash buckets: the first SQL function (in text order) whose
    result does not merge exactly from per-bucket parts, as "FUNC(args) at line L, column C
    (why)"; None when every aggregate merges."""
    bad: list[tuple[Aggregate, str]] = []
    grouped = bool(plan.group_by) or plan.secret_filter is not None
    for a in plan.aggregates:
        if a.func == "quantile" and grouped:
            bad.append((a, "a quantile per group or under a filter on shares needs the weights of all joined "
                           "rows at once, which no bucket has"))
        elif a.func in MOMENTS and grouped and not all(_bare(e) for e in a.args):
            what = "a variance" if a.func in VARIANCES else "a covariance or correlation"
            bad.append((a, f"{what} of an expression per group or under a filter on shares is computed centred "
                           "on the group's mean, which no bucket knows"))
    if not bad:
        return None
    return min(_located(plan, a, why) for a, why in bad)[1]


def _located(plan: Plan, agg: Aggregate, why: str) -> tuple[tuple[int, int], str]:
    """((line, column), "FUNC(...) at line L, column C (why)"): the first call in the plan's
    SQL text of an aggregate like ``agg`` (its function, and for a variance whether its
    argument is a bare column), found with the parser's mapping of sqlglot nodes; sqlglot
    keeps the tokens' positions."""
    import sqlglot
    from sqlglot import exp

    from protocols.sql.parse import _AGG_FUNCS, position

    try:
        tree = sqlglot.parse_one(plan.sql, read="duckdb")
    except sqlglot.errors.ParseError:     # a plan without its SQL text: name the function only
        tree = None
    found = []
    for node in tree.find_all(*_AGG_FUNCS, exp.WithinGroup) if tree is not None else []:
        func = "quantile" if isinstance(node, exp.WithinGroup) else _AGG_FUNCS.get(type(node))
        if isinstance(node.parent, exp.WithinGroup) or func != agg.func:
            continue
        if func in MOMENTS and _node_bare(node) != all(_bare(e) for e in agg.args):
            continue
        where = position(node)
        at = (int(where.split()[1].rstrip(",")), int(where.split()[3])) if where else (1 << 30, 0)
        found.append((at, f"{node.sql()}{' at ' + where if where else ''} ({why})"))
    return min(found) if found else ((1 << 30, 0), f"{agg.func.upper()} ({why})")


def _node_bare(node: Any) -> bool:
    """Whether every argument of a sqlglot aggregate call is a bare column."""
    from sqlglot import exp

    args = [node.this] + ([node.expression] if node.args.get("expression") is not None else [])
    return all(isinstance(a.unnest(), exp.Column) for a in args)


# -- the job ---------------------------------------------------------------------------------------
def run(ctx: Context, params: dict[str, Any], data: LocalData, plan: Plan, memory: int) -> pd.DataFrame | None:
    """The bucketed ``sql.aggregate`` of two parties' tables: the unbucketed job's result
    frame to ``reveal_to`` (default: both), None elsewhere."""
    from protocols.stats import _common as cm

    if params["join"] not in ("auto", *JOIN_METHODS):
        raise ValueError(f"parameter 'join' must be one of {['auto', *JOIN_METHODS]}, not {params['join']!r}")
    to = cm.receivers(ctx, params.get("reveal_to"))
    f = fixed.frac_bits(ctx)
    me = next(t for t in plan.tables if t.party == ctx.party)
    key = ColumnRef.parse(me.key_ref)
    spec = _columns(ctx, plan)
    reads = [key] + sorted({ColumnRef.parse(r) for r in _own_refs(ctx, plan)} - {key}, key=str)
    store = _checkpoint(ctx, "sql.aggregate", params, data, reads, memory)
    done = _start(ctx, store)
    first = None if store.state.get("spilled") else _first_pass(ctx, plan, data, reads, spec)

    def batches():
        offset = 0
        for b in data.batches(reads):
            keep = _batch_mask(ctx, plan, b, len(b[key.column]))
            vals = [_spilled(spec[name], b, keep, first, offset) for name in spec]
            offset += len(b[key.column])
            yield b[key.column][keep], (np.stack(vals, axis=1) if vals else None)

    sp, _, kind = buckets.spill(ctx, store, batches, len(spec), lambda rows: {"first": first})
    first = store.state["first"]
    names = list(spec)
    shifts = [_shift(spec[c], first, f) for c in names]        # the ring integers' scales
    m = _unique_ids(store, key)
    labels = _labels(ctx, plan, first)
    groups = list(itertools.product(*labels)) if labels else [()]
    three = len(plan.tables) == 3
    sizes, nb = _plan(ctx, store, "bucketed_sql", kind, m, memory, "ecdh" if three else "join",
                      {"join": params["join"]}, GROUP_ROW_BYTES * len(groups))
    if three:
        _consent(ctx, data, nb, "bucket_psi_sizes",
                 "sql.aggregate of three parties' tables under this memory budget needs {nb} buckets, and then the "
                 "first party learns the size of the other parties' intersection in each bucket and the last party "
                 "their multiplicity histogram in each bucket")
    else:
        _consent_to_bucket_sizes(ctx, data, nb, "sql.aggregate")
    frac = exchange_scales(ctx, {c: (s if spec[c][0] in ("scaled", "u", "u2", "w", "uv") else 0)
                                 for c, s in zip(names, shifts, strict=True)},
                           {})
    _check_ring(ctx, plan, first, f)
    agg_cols = {"columns": plan.aggregate_columns()}
    min_group = max(shared_min_group(ctx, agg_cols, "columns", data), plan.min_group_size,
                    params.get("min_group_size") or 1)
    parts = _parts(plan)
    cap = capacity(sizes[ctx.party], nb)

    whole = spilled_args(plan)

    def work(b: int, first_file: int, count: int) -> dict[str, np.ndarray]:
        table = (aligned_bucket(ctx, sp, b, first_file, count, cap, names, shifts, frac, key) if three
                 else join_bucket(ctx, sp, b, first_file, count, cap, names, shifts, params["join"]))
        return _partials(ctx, plan, table, frac, labels, len(groups), parts, f, whole)

    ctx.report_progress(phase="sql: private join and aggregates per bucket")
    # a bucket's joined values of the spilled arguments stay in its checkpoint (read again
    # below, a column at a time): the buckets' shares at once grow with the joined rows
    results = [{k: v for k, v in r.items() if not re.fullmatch(r"q\d+", k)}
               for _, r in buckets.run_buckets(ctx, store, nb, done, work)]
    n = int(sum(int(r["rows"][0]) for r in results))
    check_min_group(ctx, agg_cols, "columns", data, n)
    ctx.report_progress(phase="sql: merging the buckets")
    merged = _merge(ctx, results, parts, plan, len(groups))
    try:
        values = _joined_values(ctx, store, results, len(whole), n, memory)
        return _finish(ctx, plan, merged, groups, n, min_group, to, frac, dict(zip(map(repr, whole), values,
                                                                                  strict=True)))
    finally:
        chunked.close(ctx)


def aligned_bucket(ctx: Context, sp: buckets.Spill, b: int, first: int, count: int, cap: int, names: list[str],
                   shifts: list[int], frac: dict[str, int], key: ColumnRef) -> Any:
    """Three parties' bucket ``b`` (spill records first:first + count) as the unbucketed job
    aligns its rows (:func:`protocols.sql.job._aligned`): the N-party PSI
    (:mod:`protocols.psi.multiparty`, every party a receiver, the first party the leader) on
    the bucket's distinct ids padded to ``cap`` blocks, the matched rows sorted by their id's
    block (the same order at every party: equal ids have equal blocks), then every party's
    columns (``frac``: all parties' ``party.name``, sorted per party; this party's spilled
    ``names`` scaled by ``shifts``) secret-shared by their owner as
    :func:`protocols.bucketed.scaled_values`. Returns a SharedTable like a bucket's
    private join. A matched id on two rows of a party is refused, naming its column."""
    from protocols.psi import multiparty
    from protocols.psi.common import DEFAULT_COMPARE_BYTES
    from protocols.psi.private_join import SharedTable

    rec = sp.read(first, count)
    parties = list(ctx.parties)
    hit = bucket_hits(ctx, rec, cap, b, lambda padded: multiparty.run(
        ctx, buckets.block_digests(padded), parties[0], parties, False, DEFAULT_COMPARE_BYTES), str(key))
    words = rec["w"][hit].view(np.uint64).reshape(len(hit), -1)
    hit = hit[np.lexsort(words.T[::-1])] if len(hit) else hit      # by block, first word first
    mine = scaled_values(rec[hit], shifts)
    rows = len(hit)
    columns = {}
    for p in parties:
        for name in sorted(k.split(".", 1)[1] for k in frac if k.split(".", 1)[0] == p):
            columns[f"{p}.{name}"] = ss.share(ctx, mine[:, names.index(name)] if p == ctx.party else None, p)
    return SharedTable(columns, rows)


def _own_refs(ctx: Context, plan: Plan) -> list[str]:
    from protocols.sql.job import plan_uses
    return [str(u.ref) for u in plan_uses(plan) if u.ref.party == ctx.party]


def _columns(ctx: Context, plan: Plan) -> dict[str, tuple[str, str, int]]:
    """This party's columns of the join, as the unbucketed job names them: name -> (kind,
    column reference, group key index); kind "scaled" (bare aggregated columns and an
    owner's u = x - o, "u2" its square: the owner's per-column scale; "uv" u_x u_y of pair i of
    :func:`_pairs` when one party owns both, "w" u at ``work_bits`` of its kept rows when
    another party owns the pair's other column), "fixed" (the columns of expressions and
    filters: the job's fixed point) or "code" (a group key's label codes)."""
    out: dict[str, tuple[str, str, int]] = {}
    for r in sorted({r for a in plan.aggregates for e in a.args if (r := _bare(e))}):
        if ColumnRef.parse(r).party == ctx.party:
            out[f"sqlx__{ColumnRef.parse(r).column}"] = ("scaled", r, -1)
    for r in _moment_refs(plan):
        if ColumnRef.parse(r).party == ctx.party:
            out[f"sqlu__{ColumnRef.parse(r).column}"] = ("u", r, -1)
            out[f"sqlv__{ColumnRef.parse(r).column}"] = ("u2", r, -1)
    for i, (x, y) in enumerate(_pairs(plan)):
        px, py = ColumnRef.parse(x).party, ColumnRef.parse(y).party
        if px == py == ctx.party:                       # one owner: u_x u_y in plaintext
            out[f"sqlp__{i}"] = ("uv", x, i)
        for r in (x, y) if px != py else ():            # two owners: u at work bits, multiplied on shares
            if ColumnRef.parse(r).party == ctx.party:
                out[f"sqlw__{ColumnRef.parse(r).column}"] = ("w", r, -1)
    for r in sorted({r for a in plan.aggregates for e in a.args if not _bare(e) for r in _cols(e)}
                    | set(_cols(plan.secret_filter)) | {r for g in plan.group_by for c in g.conds for r in _cols(c)}):
        if ColumnRef.parse(r).party == ctx.party:
            out[f"sqlf__{ColumnRef.parse(r).column}"] = ("fixed", r, -1)
    for i, g in enumerate(plan.group_by):
        if g.column and ColumnRef.parse(g.column).party == ctx.party:
            out[f"sqlg__{i}"] = ("code", g.column, i)
    return out


def _moment_refs(plan: Plan) -> list[str]:
    """The bare columns whose offset u = x - o and u^2 the job joins: those of VARIANCE/STDDEV
    and of COVAR/CORR."""
    return sorted(set(_owner_moment_refs(plan)) | {r for pair in _pairs(plan) for r in pair})


def _pairs(plan: Plan) -> list[tuple[str, str]]:
    """The (x, y) column pairs of COVAR/CORR of bare columns, in a fixed order (every party
    computes the same list from the plan)."""
    return sorted({(_bare(a.args[0]), _bare(a.args[1])) for a in plan.aggregates
                   if a.func in MOMENTS and a.func not in VARIANCES and all(_bare(e) for e in a.args)})


def _batch_mask(ctx: Context, plan: Plan, batch: dict[str, np.ndarray], n: int) -> np.ndarray:
    keep = pushdown.mask_of(plan.pushdown.get(ctx.party, []), lambda r: batch[ColumnRef.parse(r).column], n)
    return np.ones(n, dtype=bool) if keep is None else keep


def _first_pass(ctx: Context, plan: Plan, data: LocalData, reads: list[ColumnRef],
                spec: dict[str, tuple[str, str, int]]) -> dict[str, Any]:
    """Of the rows this party's WHERE keeps: their number, each numeric column's largest
    |value|, the offset o (the mean) and range of each VARIANCE column, each group key's
    sorted labels. Streamed; what leaves the party is what the unbucketed job sends (the
    magnitudes as power-of-two exponents, the labels)."""
    key = reads[0].column
    refs = sorted({r for kind, r, _ in spec.values() if kind not in ("code", "uv")})
    big = dict.fromkeys(refs, 0.0)
    total, lo, hi = dict.fromkeys(refs, 0.0), dict.fromkeys(refs, math.inf), dict.fromkeys(refs, -math.inf)
    seen: dict[int, list[Any]] = {i: [] for kind, _, i in spec.values() if kind == "code"}
    rows = offset = 0
    ctx.report_progress(phase=PHASE_PASS, done=0, unit="rows")
    for b in data.batches(reads):
        keep = _batch_mask(ctx, plan, b, len(b[key]))
        for r in refs:
            x = numeric(ColumnRef.parse(r), np.asarray(b[ColumnRef.parse(r).column])[keep], offset)
            if len(x):
                big[r] = max(big[r], float(np.max(np.abs(x))))
                total[r] += float(np.sum(x))
                lo[r], hi[r] = min(lo[r], float(np.min(x))), max(hi[r], float(np.max(x)))
        for kind, r, i in spec.values():
            if kind == "code":
                seen[i].extend(pd.unique(pd.Series(np.asarray(b[ColumnRef.parse(r).column])[keep])).tolist())
        rows += int(keep.sum())
        offset += len(b[key])
        ctx.report_progress(done=offset)
    out: dict[str, Any] = {"rows": rows, "exp": {r: column_exponent(np.array([big[r]])) for r in refs},
                           "labels": {}, "offset": {}, "u_exp": {}, "u2_exp": {},
                           "pairs": [list(pair) for pair in _pairs(plan)]}
    for i, values in seen.items():
        _, uniques = pd.factorize(pd.Series(values), sort=True)
        out["labels"][str(i)] = [u.item() if hasattr(u, "item") else u for u in uniques]
    for kind, r, _ in spec.values():
        if kind == "u":
            o = total[r] / rows if rows else 0.0
            ends = np.array([hi[r] - o, lo[r] - o]) if rows else np.zeros(1)
            out["offset"][r] = o
            out["u_exp"][r], out["u2_exp"][r] = column_exponent(ends), column_exponent(ends * ends)
    return out


def _spilled(col: tuple[str, str, int], batch: dict[str, np.ndarray], keep: np.ndarray, first: dict[str, Any],
             offset: int) -> np.ndarray:
    """One column of a batch's kept rows as spilled (float64): values, u = x - o (also "w"),
    u^2, u_x u_y or codes."""
    kind, r, i = col
    raw = np.asarray(batch[ColumnRef.parse(r).column])[keep]
    if kind == "code":
        return pd.Index(first["labels"][str(i)]).get_indexer(pd.Series(raw)).astype(np.float64)   # -1: no label
    x = numeric(ColumnRef.parse(r), raw, offset)
    if kind == "uv":
        y = first["pairs"][i][1]
        v = numeric(ColumnRef.parse(y), np.asarray(batch[ColumnRef.parse(y).column])[keep], offset)
        return (x - first["offset"][r]) * (v - first["offset"][y])
    if kind in ("u", "u2", "w"):
        u = x - first["offset"][r]
        return u * u if kind == "u2" else u
    return x


def _shift(col: tuple[str, str, int], first: dict[str, Any], f: int) -> int:
    """The power of two a spilled column is multiplied by before rounding: the owner's scale
    of all its kept rows (protocols.stats.scaling: default_bits(rows) - exponent) for
    aggregated columns, f for the fixed point, 0 for codes -- the unbucketed job's integers.
    A product u_x u_y takes the scale of |u_x| |u_y| < 2^(e_x + e_y) (the exponents of u
    already public: no other magnitude is published); "w" the scale that keeps |u| below
    2^work_bits(kept rows), so a product of two parties' w summed over the joined rows (at
    most the smaller party's kept rows) stays below 2^60."""
    kind, r, i = col
    bits = default_bits(first["rows"])
    return {"scaled": lambda: bits - first["exp"][r], "u": lambda: bits - first["u_exp"][r],
            "u2": lambda: bits - first["u2_exp"][r], "w": lambda: work_bits(first["rows"]) - first["u_exp"][r],
            "uv": lambda: bits - first["u_exp"][r] - first["u_exp"][first["pairs"][i][1]],
            "fixed": lambda: f, "code": lambda: 0}[kind]()


def _labels(ctx: Context, plan: Plan, first: dict[str, Any]) -> list[list[Any]]:
    """Every group key's labels, from its owner (public in the unbucketed job too)."""
    labels = []
    for i, g in enumerate(plan.group_by):
        if g.column:
            owner = ColumnRef.parse(g.column).party
            got = ctx.gather(first["labels"][str(i)] if owner == ctx.party else None)[ctx.parties.index(owner)]
            if not isinstance(got, list):
                raise ValueError(f"party {owner!r} sent malformed group labels")
            labels.append(got)
        else:
            labels.append(list(g.labels))
    return labels


def _check_ring(ctx: Context, plan: Plan, first: dict[str, Any], f: int) -> None:
    """The unbucketed job's check that no expression leaves the ring, from the columns' public
    magnitudes and the larger party's kept rows."""
    fixed_refs = {r for a in plan.aggregates for e in a.args if not _bare(e) for r in _cols(e)} \
        | set(_cols(plan.secret_filter)) | {r for g in plan.group_by for c in g.conds for r in _cols(c)}
    exponents: dict[str, int] = {}
    for mine in ctx.gather({r: first["exp"][r] for r in fixed_refs if ColumnRef.parse(r).party == ctx.party}):
        exponents.update(mine)
    n_bound = max(ctx.gather(first["rows"]))
    check_plan_ring(plan, exponents, f, n_bound)


def _parts(plan: Plan) -> list[tuple[str, Any]]:
    """The partial aggregates a bucket keeps, in order: ("sum", arg), ("min"/"max", arg),
    ("var", column), ("cov", (x, y)) -- one per distinct argument (AVG shares SUM's, STDDEV
    VARIANCE's; COVAR/CORR of x, y also need the "var" sums of x and of y)."""
    out: list[tuple[str, Any]] = []
    for a in plan.aggregates:
        part = {"sum": "sum", "avg": "sum", "min": "min", "max": "max"}.get(a.func)
        if part:
            items = [(part, a.args[0])]
        elif _of_expressions(a):        # on all joined rows (spilled_args)
            items = []
        elif a.func in VARIANCES:
            items = [("var", _bare(a.args[0]))]
        elif a.func in MOMENTS:
            x, y = _bare(a.args[0]), _bare(a.args[1])
            items = [("var", x), ("var", y), ("cov", (x, y))]
        else:
            items = []
        for item in items:
            if item not in out:
                out.append(item)
    return out


def spilled_args(plan: Plan) -> list[Any]:
    """The distinct arguments of the plan's quantiles (MEDIAN, PERCENTILE_CONT) and of its
    VARIANCE/STDDEV/COVAR/CORR of expressions (no GROUP BY or filter on shares:
    :func:`blocker`), in plan order: every bucket keeps their values on its joined rows, and
    these aggregates run once on all joined rows."""
    out: list[Any] = []
    for a in plan.aggregates:
        args = a.args[:1] if a.func == "quantile" else a.args if _of_expressions(a) else []
        out += [e for e in args if all(repr(e) != repr(o) for o in out)]
    return out


def _of_expressions(a: Aggregate) -> bool:
    """Whether ``a`` is a VARIANCE/STDDEV/COVAR/CORR with an argument that is not a bare column."""
    return a.func in MOMENTS and not all(_bare(e) for e in a.args)


def _joined_values(ctx: Context, store: Any, results: list[dict[str, np.ndarray]], k: int, n: int,
                   memory: int) -> list[SharedTensor]:
    """The ``k`` spilled arguments' shares (:func:`spilled_args`) over all joined rows, bucket
    after bucket as each bucket's checkpoint holds them, in memory-mapped files of the
    checkpoint directory (``protocols.stats.chunked.spilled``, as the bucketed ``join.stats``;
    removed by ``chunked.close``): the quantiles' selection with its dealer-free shuffles (Clos
    networks that fit ``memory``) and the moments' chunked sums run out of core, as
    ``join.stats``' describe and correlation do."""
    from mpc.ss import clos_shuffle

    if not k:
        return []
    ctx.state[chunked.SPILL] = store.path("columns")
    ctx.state[clos_shuffle.WIRES] = clos_shuffle.wires_for(memory)
    full = [(b, r) for b, r in enumerate(results) if int(r["rows"][0])]
    out = []
    for j in range(k):
        parts = (ss.from_shares(ctx, store.load_bucket(b, [f"q{j}"])[f"q{j}"], int(r[f"qf{j}"][0])) for b, r in full)
        out.append(chunked.spilled(ctx, parts, n))
    allocator.release()      # the buckets' free memory, before the selection's arrays
    return out


def _partials(ctx: Context, plan: Plan, table: Any, frac: dict[str, int], labels: list[list[Any]], g: int,
              parts: list[tuple[str, Any]], f: int, whole: list[Any]) -> dict[str, np.ndarray]:
    """One bucket's joined rows reduced to shares of per-group partial aggregates (ring
    integers, frac 0) and their scales, and the shares of the spilled arguments ``whole``
    (:func:`spilled_args`) on its joined rows with their scales: what the bucket's checkpoint
    holds."""
    n = table.num_rows
    out: dict[str, np.ndarray] = {"rows": np.array([n], dtype=np.int64)}
    if n == 0:               # nothing joined here: zero counts and sums, MIN/MAX the 2^60 of an empty group
        for j in range(len(whole)):
            out[f"q{j}"], out[f"qf{j}"] = np.zeros(0, dtype=np.uint64), np.array([], dtype=np.int64)
        out["count"] = np.zeros(g, dtype=np.uint64)
        for i, (kind, _) in enumerate(parts):
            fill = {"sum": 0, "min": _BIG, "max": -_BIG, "var": 0, "cov": 0}[kind]
            shape = (g, 2) if kind == "var" else (g,)
            out[f"p{i}"] = ss.public(ctx, np.full(shape, fill, dtype=np.int64)).share
            out[f"f{i}"] = np.array([], dtype=np.int64)         # no scale known from an empty bucket
        return out
    cols = {c: table[c].with_frac_bits(frac.get(c, 0)) for c in table.columns}
    h = weights(ctx, plan, labels, cols, n, f)
    out["count"] = (h.sum(axis=1) if h is not None else ss.public(ctx, np.full(1, n, dtype=np.int64))).share

    def wsum(t0: SharedTensor) -> SharedTensor:
        return t0.sum(axis=0, keepdims=True) if h is None else h @ t0

    for i, (kind, arg) in enumerate(parts):
        if kind == "var":
            ref = ColumnRef.parse(arg)
            u, v = cols[f"{ref.party}.sqlu__{ref.column}"], cols[f"{ref.party}.sqlv__{ref.column}"]
            value = wsum(ss.stack([u.with_frac_bits(0), v.with_frac_bits(0)], axis=1))
            scales = [u.frac_bits, v.frac_bits]
        elif kind == "cov":
            value, scale = _cross_sum(cols, plan, arg, wsum)
            scales = [scale]
        else:
            t = joined_tensor(ctx, cols, n, f, arg)
            value = wsum(t.with_frac_bits(0)) if kind == "sum" else _group_min_max(t, h, kind, n)
            scales = [t.frac_bits]
        out[f"p{i}"], out[f"f{i}"] = value.with_frac_bits(0).share, np.array(scales, dtype=np.int64)
    for j, arg in enumerate(whole):
        t = joined_tensor(ctx, cols, n, f, arg)
        out[f"q{j}"], out[f"qf{j}"] = t.share, np.array([t.frac_bits], dtype=np.int64)
    return out


def _cross_sum(cols: dict[str, SharedTensor], plan: Plan, pair: tuple[str, str], wsum) -> tuple[SharedTensor, int]:
    """(per-group ring sums of u_x u_y, their scale) over a bucket's joined rows: of the owner's
    plaintext products when one party owns x and y, else of the product on shares of the two
    owners' w columns (ring integers below 2^work_bits each: no truncation)."""
    x, y = ColumnRef.parse(pair[0]), ColumnRef.parse(pair[1])
    if x.party == y.party:
        uv = cols[f"{x.party}.sqlp__{_pairs(plan).index(pair)}"]
        return wsum(uv.with_frac_bits(0)), uv.frac_bits
    wx, wy = cols[f"{x.party}.sqlw__{x.column}"], cols[f"{y.party}.sqlw__{y.column}"]
    return wsum(wx.with_frac_bits(0) * wy.with_frac_bits(0)), wx.frac_bits + wy.frac_bits


def _merge(ctx: Context, results: list[dict[str, np.ndarray]], parts: list[tuple[str, Any]], plan: Plan,
           g: int) -> dict[str, Any]:
    """The buckets' partial aggregates merged on shares: counts and sums added, MIN/MAX by a
    comparison tree over the buckets; each with its scale (the same in every bucket)."""
    def total(key: str) -> SharedTensor:
        return sum((ss.from_shares(ctx, r[key]) for r in results[1:]), ss.from_shares(ctx, results[0][key]))

    grouped = bool(plan.group_by) or plan.secret_filter is not None
    merged: dict[str, Any] = {"count": total("count") if grouped else None}
    for i, (kind, arg) in enumerate(parts):
        scales = {tuple(r[f"f{i}"].tolist()) for r in results if len(r[f"f{i}"])}
        if len(scales) != 1:
            raise ValueError(f"the buckets' partial aggregates have scales {sorted(scales)}, not one")
        scale = list(scales.pop())
        if kind in ("sum", "var", "cov"):
            value = total(f"p{i}")
        else:
            stacked = ss.stack([ss.from_shares(ctx, r[f"p{i}"]) for r in results], axis=1)     # (g, buckets)
            mn, mx = ss.min_max(stacked, axis=1) if len(results) > 1 else (stacked[:, 0], stacked[:, 0])
            value = mn if kind == "min" else mx
        merged[(kind, repr(arg))] = (value, scale)
    return merged


def _finish(ctx: Context, plan: Plan, merged: dict[str, Any], groups: list[tuple], n: int, min_group: int,
            to: list[str], frac: dict[str, int], values: dict[str, SharedTensor]) -> pd.DataFrame | None:
    """From the merged values on: suppression, HAVING on shares, the kept groups' aggregates
    opened to ``to``, the quantiles and the moments of expressions on the joined ``values``
    (by repr of their argument) over all joined rows (``protocols.stats.vertical.quantile``,
    :func:`_centred_moments`), the result frame (as :func:`protocols.sql.job._run` does)."""
    from protocols.stats import vertical

    counts_sh = merged["count"]

    def part(agg: Aggregate) -> tuple[SharedTensor, list[int]]:
        kind = {"sum": "sum", "avg": "sum", "min": "min", "max": "max"}.get(agg.func, "var")
        return merged[(kind, repr(agg.args[0] if kind != "var" else _bare(agg.args[0])))]

    def having_value(agg: Aggregate) -> tuple[SharedTensor, int]:
        value, scale = part(agg)
        return value, scale[0]

    def variance(agg: Aggregate, op: str, c: float) -> Any:
        both, (u_frac, v_frac) = part(agg)
        return _variance_against(ctx, agg, op, c, both, u_frac, v_frac, counts_sh, n)

    kept, dropped = suppress_and_having(ctx, plan, len(groups), counts_sh, min_group, n, having_value,
                                        variance=variance)

    def opened(x: SharedTensor) -> np.ndarray | None:
        return x[kept].reveal(to) if len(kept) else (np.zeros((0, *x.shape[1:])) if ctx.party in to else None)

    ctx.report_progress(phase="sql: aggregates")
    counts = np.full(1, n, dtype=np.int64) if counts_sh is None else opened(counts_sh)
    results: dict[str, Any] = {}
    for a in plan.aggregates:
        if a.func == "count":
            results[a.name] = counts
        elif a.func in MERGEABLE:
            value, scale = part(a)
            out = opened(value)
            if out is not None:
                out = out.astype(np.float64) * 2.0 ** -scale[0]
                out = out / counts if a.func == "avg" else out
            results[a.name] = out
        elif a.func == "quantile":
            out = vertical.quantile(ctx, values[repr(a.args[0])], a.q, reveal_to=to) if n else math.nan
            results[a.name] = None if out is None else np.array([out])
    variances = [a for a in plan.aggregates if a.func in VARIANCES and not _of_expressions(a)]
    if variances:
        sums = {}
        for a in variances:
            value, (u_frac, v_frac) = part(a)
            sums[_bare(a.args[0])] = (value, u_frac, v_frac)
        results.update(owner_variances_of_sums(ctx, variances, dict(sorted(sums.items())), opened, counts,
                                               counts_sh, n))
    comoments = [a for a in plan.aggregates if a.func in MOMENTS and a.func not in VARIANCES
                 and not _of_expressions(a)]
    if comoments:
        results.update(_covariances(ctx, comoments, merged, opened, counts, counts_sh, n))
    of_expressions = [a for a in plan.aggregates if _of_expressions(a)]
    if of_expressions:
        results.update(_centred_moments(ctx, of_expressions, values, opened, n))
    ctx.report_progress(1.0)
    if ctx.party not in to:
        return None
    return result_frame(plan, groups, kept, dropped, results, n)


def _covariances(ctx: Context, aggs: list[Aggregate], merged: dict[str, Any], opened, counts,
                 counts_sh: SharedTensor | None, n: int) -> dict[str, Any]:
    """COVAR_POP/COVAR_SAMP/CORR of bare columns per kept group from the merged sums: on
    shares V_xy = C S_uv - S_u S_v = C (C - ddof) covar (:func:`protocols.sql.job.owner_comoment_big`),
    for CORR also V_xx and V_yy (:func:`protocols.sql.job.owner_variance_big`); only these
    are opened, to ``reveal_to``, and divided there as the unbucketed job divides its opened
    moments: covar = V_xy / (C (C - ddof)), corr = V_xy / sqrt(V_xx V_yy)."""
    cnt_sh = counts_sh if counts_sh is not None else ss.public(ctx, np.full(1, n, dtype=np.int64))
    big: dict[Any, np.ndarray | None] = {}

    def var(r: str) -> np.ndarray | None:
        if r not in big:
            both, (u_frac, v_frac) = merged[("var", repr(r))]
            v, e = owner_variance_big(both, u_frac, v_frac, cnt_sh, n)
            out = opened(v)
            big[r] = None if out is None else out.astype(np.float64) * 2.0 ** e
        return big[r]

    def cov(x: str, y: str) -> np.ndarray | None:
        if (x, y) not in big:
            (sx, (fx, _)), (sy, (fy, _)) = merged[("var", repr(x))], merged[("var", repr(y))]
            suv, (fuv,) = merged[("cov", repr((x, y)))]
            v, e = owner_comoment_big(sx[:, 0], sy[:, 0], suv, fx, fy, fuv, cnt_sh, n)
            out = opened(v)
            big[(x, y)] = None if out is None else out.astype(np.float64) * 2.0 ** e
        return big[(x, y)]

    out: dict[str, Any] = {}
    cnt = np.asarray(counts, dtype=np.float64)
    for a in aggs:
        x, y = _bare(a.args[0]), _bare(a.args[1])
        vxy = cov(x, y)
        if a.func == "corr":
            vxx, vyy = var(x), var(y)
            if vxy is None:
                out[a.name] = None
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                out[a.name] = vxy / np.sqrt(vxx * vyy)
        elif vxy is None:
            out[a.name] = None
        else:
            ddof = 0 if a.func.endswith("_pop") else 1
            with np.errstate(divide="ignore", invalid="ignore"):
                out[a.name] = np.where(cnt - ddof > 0, vxy / (cnt * (cnt - ddof)), np.nan)
    return out


def _centred_moments(ctx: Context, aggs: list[Aggregate], values: dict[str, SharedTensor], opened,
                     n: int) -> dict[str, Any]:
    """VARIANCE/STDDEV/COVAR/CORR of expressions over all joined rows (no groups), from the
    sums of products of their centred values on the joined ``values``
    (:func:`protocols.stats.vertical.centred_products`, out of core): only the entries the
    aggregates need (a variance, a covariance, for CORR also the two variances) are opened,
    to ``reveal_to``, where the unbucketed job opens the centred first and second moments."""
    from protocols.stats import vertical

    keys = list(dict.fromkeys(repr(e) for a in aggs for e in a.args))
    s, shifts = vertical.centred_products(ctx, {k: values[k] for k in keys})
    need: list[tuple[int, int]] = []          # the entries (i, j) of S to open
    for a in aggs:
        i, j = keys.index(repr(a.args[0])), keys.index(repr(a.args[-1]))
        need += [p for p in [(i, j)] + ([(i, i), (j, j)] if a.func == "corr" else []) if p not in need]
    got = opened(s[np.array([i for i, _ in need]), np.array([j for _, j in need])].reshape(1, len(need)))
    if got is None:
        return {a.name: None for a in aggs}

    def centred(i: int, j: int) -> np.ndarray:    # sum of the centred products, one value per kept group
        return got[:, need.index((i, j))].astype(np.float64) * 2.0 ** -(shifts[i] + shifts[j])

    out: dict[str, Any] = {}
    for a in aggs:
        i, j = keys.index(repr(a.args[0])), keys.index(repr(a.args[-1]))
        ddof = 0 if a.func.endswith("_pop") else 1
        with np.errstate(divide="ignore", invalid="ignore"):
            if a.func == "corr":
                out[a.name] = centred(i, j) / np.sqrt(centred(i, i) * centred(j, j))
            else:
                v = centred(i, j) / (n - ddof) if n > ddof else np.full(len(got), np.nan)
                out[a.name] = np.sqrt(np.maximum(v, 0.0)) if a.func.startswith("stddev") else v
    return out


def _variance_against(ctx: Context, agg: Aggregate, op: str, c: float, both: SharedTensor, u_frac: int,
                      v_frac: int, counts: SharedTensor, n: int) -> Any:
    """HAVING var op c (c >= 0) on shares, from the merged sums: with V 2^e = C (C - ddof) var
    (:func:`protocols.sql.job.owner_variance_big`, |V| < 2^60) and Q = C (C - ddof), var op c
    is V op k Q for k = c 2^-e, compared as V - (floor(k) Q + (round(frac(k) 2^t) Q >> t)) op 0
    (t fractional bits of k, as many as keep the product in the ring). Where k Q could pass
    2^61, Q is first clipped to 2^60 / k + 1 (one comparison per group): beyond it V < k Q
    holds anyway. A k of 2^60 or more is above every group's V: decided by op."""
    big, e = owner_variance_big(both, u_frac, v_frac, counts, n)
    ddof = 0 if agg.func.endswith("_pop") else 1
    k = c * 2.0 ** -e
    if k >= 2.0 ** 60:              # var < c in every group
        return int(op in ("<", "<=", "!="))
    cnt = counts.with_frac_bits(0)
    q = cnt * cnt - cnt * ddof
    lg = max(1, math.ceil(math.log2(max(n, 2))))
    q_max = 2.0 ** (2 * lg)
    if k * q_max >= 2.0 ** 61:
        cap = int(2.0 ** 60 / k) + 1
        below = q < cap
        q = below * (q - cap) + cap
        q_max = float(cap)
    t = max(0, min(30, 61 - math.ceil(math.log2(q_max + 1))))
    k_int = int(math.floor(k))
    k_frac = int(round((k - k_int) * 2.0 ** t))
    rhs = q * k_int + ((q * k_frac) >> t if t and k_frac else 0)
    return evaluate.compare(op, big - rhs, 0)


__all__ = ["blocker", "run"]
