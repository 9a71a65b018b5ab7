"""group_by: count / sum / mean of value columns per group of a key column, with small
groups suppressed.

The rows are aligned across parties (the same row order everywhere, e.g. a vertically
partitioned table joined on a public id, or the columns of a ``private_join`` table).
Each party passes its view of the table: a dict (or DataFrame) where a column held in
plaintext is a numpy array at its holder and absent/None elsewhere, and a secret-shared
column is a SharedTensor at every party.

* Plaintext key at party A: A sorts the distinct keys into groups and knows each
  group's size (its own data). Groups smaller than ``min_group_size`` are suppressed:
  they appear in the result with ``suppressed=True`` and NaN aggregates, never silently
  missing. A secret-shares the 0/1 indicator matrix H (groups x rows) of the kept groups;
  sums are H @ v with one Beaver matrix product per value column (values shared by their
  holder if given in plaintext, or already SharedTensors). Only the kept groups' sums
  are opened, to ``reveal_to``.
* Secret-shared key (a SharedTensor of integer codes, e.g. from ``private_join``) with a
  public list ``groups`` of codes: H = (key == g) by secure comparisons, the group sizes
  are compared with ``min_group_size`` on shares and only that bit is opened per group,
  then the kept groups' counts and sums are opened.

Reveals: the number of groups and which of them are suppressed (their labels and that
their size is below the minimum) to every party; counts, sums and means of kept groups to
``reveal_to``. The dealer learns the number of rows and of groups (the shapes of its
requests: the sums are computed for every group, kept or not, and only the kept ones
opened), nothing about which groups are kept. Plaintext value columns are shared with their holder's per-column scale
(:mod:`protocols.stats.scaling`, which reveals the power of two of the column's largest
|value|), so sums are exact to 2^-52 of the largest value; shared value columns are
summed exactly at their own ``frac_bits``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from mpc import ss
from mpc.runtime.context import Context
from mpc.ss import SharedTensor
from protocols.stats import _common as cm
from protocols.stats.scaling import share_scaled

DEFAULT_MIN_GROUP_SIZE = 5
AGGREGATIONS = ("count", "sum", "mean")


def _view(table: Any) -> dict[str, Any]:
    if table is None:
        return {}
    if isinstance(table, pd.DataFrame):
        return {str(c): table[c].to_numpy() for c in table.columns}
    if isinstance(table, Mapping):
        return {str(k): v for k, v in table.items() if v is not None}
    if hasattr(table, "columns") and hasattr(table, "__getitem__"):   # SharedTable
        return {str(c): table[c] for c in table.columns}
    raise TypeError(f"table must be a dict, a DataFrame or a SharedTable, not {type(table).__name__}")


def _normalise_aggs(aggregations: Any) -> dict[str, list[str]]:
    if isinstance(aggregations, str | Sequence) and not isinstance(aggregations, Mapping):
        raise TypeError("aggregations must be a dict {value column: 'sum' or ['sum', 'mean', ...]}")
    out = {}
    for col, aggs in aggregations.items():
        names = [aggs] if isinstance(aggs, str) else list(aggs)
        bad = [a for a in names if a not in AGGREGATIONS]
        if bad:
            raise ValueError(f"unknown aggregation(s) {bad} for column {col!r}; use {AGGREGATIONS}")
        out[str(col)] = names
    return out


def _holders(ctx: Context, view: dict[str, Any], names: list[str]) -> dict[str, str | None]:
    """For each column: the party holding it in plaintext, or None if it is shared."""
    mine = {}
    for c in names:
        v = view.get(c)
        if v is None:
            mine[c] = "absent"
        elif isinstance(v, SharedTensor):
            mine[c] = "shared"
        else:
            arr = np.asarray(v)
            if arr.ndim != 1:
                raise ValueError(f"party {ctx.party!r}: column {c!r} must be 1-D")
            mine[c] = "plain"
    allv = ctx.gather(mine)
    out: dict[str, str | None] = {}
    for c in names:
        kinds = [m[c] for m in allv]
        plain = [p for p, k in zip(ctx.parties, kinds, strict=True) if k == "plain"]
        if len(plain) == 1 and all(k == "absent" for p, k in zip(ctx.parties, kinds, strict=True) if p != plain[0]):
            out[c] = plain[0]
        elif all(k == "shared" for k in kinds):
            out[c] = None
        elif not any(k != "absent" for k in kinds):
            raise KeyError(f"no party has column {c!r}")
        else:
            raise ValueError(f"column {c!r} must be plaintext at exactly one party or shared at all; "
                             f"got {dict(zip(ctx.parties, kinds, strict=True))}")
    return out


def _check_values(ctx: Context, name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind not in "iufb":
        raise TypeError(f"party {ctx.party!r}: column {name!r} is not numeric (dtype {arr.dtype})")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"party {ctx.party!r}: column {name!r} has NaN values (rejected)")
    return arr.astype(np.int64) if arr.dtype.kind == "b" else arr


def group_by(ctx: Context, table: Any, key: str, aggregations: Mapping[str, Any], *,
             min_group_size: int = DEFAULT_MIN_GROUP_SIZE, groups: Sequence[int] | None = None,
             reveal_to: str | None = None) -> pd.DataFrame | None:
    """Aggregates per group of ``key``: a DataFrame indexed by group with ``count``, one
    ``<col>_<agg>`` column per requested aggregation, and ``suppressed`` (bool).

    Args:
        table: this party's view of the aligned columns (see module docstring).
        key: the key column (plaintext at one party, or a shared integer SharedTensor
            with the public codes ``groups``).
        aggregations: {value column: "sum" | "mean" | "count" or a list of them}.
        min_group_size: groups with fewer rows are suppressed (>= 1).
    """
    if int(min_group_size) < 1:
        raise ValueError("min_group_size must be at least 1")
    to = cm.receivers(ctx, reveal_to)
    aggs = _normalise_aggs(aggregations)
    view = _view(table)
    holders = _holders(ctx, view, [key, *aggs])

    # value columns as SharedTensors (length n)
    values: dict[str, SharedTensor] = {}
    lengths: dict[str, int] = {}
    for c in aggs:
        owner = holders[c]
        if owner is None:
            values[c] = cm.check_tensor(view[c], c)
        else:
            arr = _check_values(ctx, c, np.asarray(view[c])) if owner == ctx.party else None
            values[c] = share_scaled(ctx, arr, owner, name=c)
        lengths[c] = values[c].shape[0]

    key_owner = holders[key]
    if key_owner is not None:
        n_key = ctx.gather(len(view[key]) if ctx.party == key_owner else None, None)[ctx.parties.index(key_owner)]
    else:
        n_key = cm.check_tensor(view[key], key).shape[0]
    lengths = {key: int(n_key), **lengths}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k!r} ({v} rows)" for k, v in lengths.items())
        raise ValueError(f"columns have different lengths: {desc}")
    n = int(n_key)
    if n < min_group_size:
        raise ValueError(f"the table has {n} rows, fewer than min_group_size={min_group_size}")

    if key_owner is not None:
        labels, kept, counts_kept, h = _plain_key(ctx, view.get(key), key, key_owner, min_group_size)
    else:
        labels, kept, counts_kept, h = _shared_key(ctx, view[key], groups, min_group_size, n)

    sums = {c: h @ v.with_frac_bits(0) for c, v in values.items()}   # exact ring sums at each column's
    # own scale, for every group (kept or not), so that the dealer's requests do not depend on which are kept
    return _opened(ctx, key, labels, kept, counts_kept, sums, {c: v.frac_bits for c, v in values.items()}, aggs, to)


def _opened(ctx: Context, key: str, labels: list[Any], kept: np.ndarray, counts_kept: SharedTensor,
            sums: dict[str, SharedTensor], fracs: dict[str, int], aggs: dict[str, list[str]],
            to: list[str]) -> pd.DataFrame | None:
    """The result frame: the kept groups' counts and sums (ring integers at ``fracs``) opened
    to ``to``; None at the other parties."""
    opened_counts = counts_kept.reveal(to) if len(kept) else np.zeros(0, np.int64)
    opened = {}
    for c, total in sums.items():
        if len(kept):
            got = total[kept].reveal(to)
            opened[c] = None if got is None else got.astype(np.float64) * 2.0 ** -fracs[c]
        else:
            opened[c] = np.zeros(0)
    if ctx.party not in to:
        return None
    g = len(labels)
    out = pd.DataFrame(index=pd.Index(labels, name=key))
    cnt = np.full(g, np.nan)
    cnt[kept] = np.asarray(opened_counts, dtype=np.float64)
    out["count"] = cnt
    for c, names in aggs.items():
        s = np.full(g, np.nan)
        s[kept] = np.asarray(opened[c], dtype=np.float64)
        for a in names:
            out[f"{c}_{a}"] = {"sum": s, "mean": s / cnt, "count": cnt}[a]
    sup = np.ones(g, bool)
    sup[kept] = False
    out["suppressed"] = sup
    return out


def group_totals(key: SharedTensor, codes: Sequence[int],
                 values: Mapping[str, SharedTensor]) -> tuple[SharedTensor, dict[str, SharedTensor]]:
    """Per-group row counts and exact ring sums of aligned shared rows, opening nothing:
    (counts (G,), {column: sums (G,) as ring integers at the column's ``frac_bits``}) for the
    public integer ``codes`` of a shared integer ``key``. Totals of disjoint parts of a table
    (the hash buckets of a bucketed join) add up to the whole table's."""
    n = key.shape[0]
    h = key.reshape(1, n) == np.asarray(codes)[:, None]           # H[g, j] = [key_j == g]
    return h.sum(axis=1), {c: h @ v.with_frac_bits(0) for c, v in values.items()}


def open_group_totals(ctx: Context, key: str, labels: list[Any], counts: SharedTensor,
                      sums: Mapping[str, SharedTensor], fracs: Mapping[str, int], aggregations: Mapping[str, Any],
                      *, min_group_size: int = DEFAULT_MIN_GROUP_SIZE,
                      reveal_to: str | None = None) -> pd.DataFrame | None:
    """:func:`group_by`'s result from totals already summed on shares (:func:`group_totals`
    over several parts): each group's count is compared with ``min_group_size`` on shares
    and only that bit opens, to every party; the kept groups' counts and aggregates open to
    ``reveal_to``. The same reveal as :func:`group_by` with a shared key."""
    if int(min_group_size) < 1:
        raise ValueError("min_group_size must be at least 1")
    to = cm.receivers(ctx, reveal_to)
    kept = np.flatnonzero(np.asarray((counts < min_group_size).reveal()) == 0)
    return _opened(ctx, key, list(labels), kept, counts[kept], dict(sums), dict(fracs),
                   _normalise_aggs(aggregations), to)


def _plain_key(ctx: Context, keys: Any, name: str, owner: str, min_size: int):
    if ctx.party == owner:
        arr = np.asarray(keys)
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise ValueError(f"party {ctx.party!r}: key column {name!r} has NaN values (rejected)")
        labels, inv, counts = np.unique(arr, return_inverse=True, return_counts=True)
        kept = np.flatnonzero(counts >= min_size)
        h = (inv[None, :] == np.arange(len(labels))[:, None]).astype(np.int64)
        ctx.broadcast({"labels": labels.tolist(), "kept": kept.astype(np.int64)})
        meta = {"labels": labels.tolist(), "kept": kept}
    else:
        h = None
        meta = ctx.recv(owner)
        if not isinstance(meta, dict) or not isinstance(meta.get("kept"), np.ndarray):
            raise ValueError(f"party {owner!r} sent malformed group metadata")
    kept = np.asarray(meta["kept"], dtype=np.int64)
    hs = ss.share(ctx, h, owner)
    return meta["labels"], kept, hs.sum(axis=1)[kept], hs


def _shared_key(ctx: Context, key: SharedTensor, groups: Sequence[int] | None, min_size: int, n: int):
    if groups is None:
        raise ValueError("a secret-shared key needs the public list of group codes: groups=[...]")
    codes = np.asarray(groups)
    if codes.dtype.kind not in "iu" or codes.ndim != 1 or len(np.unique(codes)) != len(codes):
        raise ValueError("groups must be distinct integer codes")
    if key.is_fixed:
        raise TypeError("a secret-shared key must be an integer SharedTensor (codes, not floats)")
    h = key.reshape(1, n) == codes[:, None]                        # H[g, j] = [key_j == g]
    counts = h.sum(axis=1)
    kept = np.flatnonzero(np.asarray((counts < min_size).reveal()) == 0)
    return codes.tolist(), kept, counts[kept], h
