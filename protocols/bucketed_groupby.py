"""``stats.group_by`` under a memory budget: the private join per hash bucket, group totals
summed on shares, one reveal at the end.

The input is streamed into hash buckets as for ``join.stats`` (:mod:`protocols.buckets`,
:func:`protocols.bucketed.join`): ids, the value columns and, at the key's owner, the group
code of each row (its label's position among the sorted labels, which the owner finds in
a first pass over the file and sends to the other party: the group labels are public in
the unbucketed job too). Per bucket: the private join of the bucket's padded ids, then
:func:`protocols.stats.groupby.group_totals` on the joined shares (per-group counts and
exact ring sums of each value column at its owner's one scale for every bucket); the
totals, G counts and G sums per column, are the bucket's checkpoint (not its joined rows).
The buckets' totals are added on shares, and
:func:`protocols.stats.groupby.open_group_totals` opens what ``stats.group_by`` opens:
which groups are suppressed, then the kept groups' counts and aggregates to ``reveal_to``.

Reveals what the unbucketed job reveals, plus, with more than one bucket, each bucket's
joined-row count (the private join opens it), as ``join.stats`` in buckets: refused unless
every party's ``[limits] bucket_join_sizes`` allows it. No partial sum is ever opened.
In memory: one batch of input, one bucket's join and its G x rows indicator matrix.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mpc import ss
from mpc.runtime.context import Context
from protocols import buckets
from protocols.bucketed import _checkpoint, _consent_to_bucket_sizes, _plan, _start, _unique_ids, join_bucket
from protocols.psi.oprf import capacity
from protocols.registry import ColumnRef, LocalData, numeric

GROUP = "__group__"


def _labels(data: LocalData, key: ColumnRef) -> list[str]:
    """The sorted distinct labels of the key column (as text), streamed."""
    seen: set[str] = set()
    for b in data.batches([key]):
        seen.update(pd.unique(pd.Series(b[key.column]).astype(str)).tolist())
    return sorted(seen)


def group_by(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef, values: list[ColumnRef],
             key: ColumnRef, memory: int, min_group: int) -> pd.DataFrame | None:
    """The ``stats.group_by`` job in buckets: the same result frame (group labels, count,
    aggregations, suppressed), to ``reveal_to``; None elsewhere."""
    from protocols.stats import groupby
    from protocols.stats.scaling import default_bits

    own_key = key.party == ctx.party
    if own_key and key.dataset != ref.dataset:
        raise ValueError(f"party {ctx.party!r}: the key column {key} must be in the dataset of its ids ({ref})")
    store = _checkpoint(ctx, "stats.group_by", params, data, [ref, *values] + ([key] if own_key else []), memory)
    done = _start(ctx, store)
    labels = (store.state.get("labels") or _labels(data, key)) if own_key else None
    labels = ctx.gather(labels)[ctx.parties.index(key.party)]
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ValueError(f"party {key.party!r} sent malformed group labels")
    names = [v.column for v in values] + ([GROUP] if own_key else [])
    exps = [0] * len(values)
    ints = [True] * len(values)
    order = np.array(labels, dtype=object)

    def batches():
        offset = 0
        for b in data.batches([ref, *values] + ([key] if own_key else [])):
            cols = [numeric(v, b[v.column], offset) for v in values]
            for j, (v, c) in enumerate(zip(values, cols, strict=True)):
                ints[j] &= b[v.column].dtype.kind in "iub"
                if len(c):
                    exps[j] = max(exps[j], math.frexp(float(np.max(np.abs(c))))[1])
            if own_key:
                cols.append(np.searchsorted(order, pd.Series(b[key.column]).astype(str).to_numpy(object))
                            .astype(np.float64))
            offset += len(b[ref.column])
            yield b[ref.column], (np.stack(cols, axis=1) if cols else None)

    def scales(n: int) -> dict[str, Any]:      # one scale per column for every bucket; codes as integers
        return {"labels": labels if own_key else [],
                "shifts": [0 if ints[j] else default_bits(n) - exps[j] for j in range(len(values))]
                + ([0] if own_key else [])}

    sp, _, kind = buckets.spill(ctx, store, batches, len(names), scales)
    shifts = store.state["shifts"]
    m = _unique_ids(store, ref)
    sizes, nb = _plan(ctx, store, "bucketed_group_by", kind, m, memory, "join", {"join": params["join"]})
    _consent_to_bucket_sizes(ctx, data, nb, "stats.group_by")
    everyone = ctx.gather(dict(zip(names, shifts, strict=True)))
    frac = {f"{p}.{k}": int(v) for p, s in zip(ctx.parties, everyone, strict=True) for k, v in s.items()}
    cap = capacity(sizes[ctx.party], nb)
    codes = list(range(len(labels)))

    def work(b: int, first: int, count: int) -> dict[str, np.ndarray]:
        table = join_bucket(ctx, sp, b, first, count, cap, names, shifts, params["join"])
        group = next(c for c in table.columns if c.split(".")[-1] == GROUP)
        vals = {c: table[c].with_frac_bits(frac.get(c, 0)) for c in table.columns if c != group}
        if table.num_rows:
            counts, sums = groupby.group_totals(table[group].with_frac_bits(0), codes, vals)
        else:       # nothing joined in this bucket: zero totals
            counts = ss.public(ctx, np.zeros(len(codes), dtype=np.int64), 0)
            sums = {c: ss.public(ctx, np.zeros(len(codes), dtype=np.int64), 0) for c in vals}
        out = {"counts": counts.share, "names": np.array(sorted(sums), dtype=str)}
        for i, c in enumerate(sorted(sums)):
            out[f"s{i}"] = sums[c].share
        return out

    results = [r for _, r in buckets.run_buckets(ctx, store, nb, done, work)]
    columns = results[0]["names"].tolist()
    counts = sum((ss.from_shares(ctx, r["counts"]) for r in results[1:]), ss.from_shares(ctx, results[0]["counts"]))
    sums = {c: sum((ss.from_shares(ctx, r[f"s{i}"]) for r in results[1:]), ss.from_shares(ctx, results[0][f"s{i}"]))
            for i, c in enumerate(columns)}
    aggregations = {c: params["aggregations"] for c in columns}
    ctx.report_progress(phase="statistics: group-by")
    out = groupby.open_group_totals(ctx, "key", labels, counts, sums, {c: frac.get(c, 0) for c in columns},
                                    aggregations, min_group_size=min_group, reveal_to=params.get("reveal_to"))
    if out is None:
        return None
    out.index.name = key.column
    return out.reset_index()
