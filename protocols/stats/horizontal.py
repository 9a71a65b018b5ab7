"""Horizontal statistics: every party holds rows of the same columns; ``describe`` over
the union of all parties' rows, without revealing any row.

``horizontal_describe(ctx, frame)`` equals ``pandas.concat(frames).describe().T`` (index
= columns; count, mean, std, min, 25%, 50%, 75%, max) up to float rounding.

How, per column (all columns batched in every round):

* count, sum: each party's local sums are added on shares (a zero-sharing from pairwise
  PRG streams, so adding costs no message) and only the total is opened.
* std: each party computes its exact local M2_p = sum (x - mean_p)^2; the union's
  M2 = sum_p M2_p + sum_p n_p (mean_p - mean)^2, the second term on shares (one
  multiplication): no E[x^2] - E[x]^2 cancellation. Values are scaled per column by
  public powers of two derived from the union's min and max (opened anyway, below):
  2^-E_m for sums (max |x| < 2^E_m) and 2^-E_s for the spread terms (max - min < 2^E_s),
  with mean_p - mean kept to 2^-29 of the range.

Accuracy (tests/test_stats_horizontal.py, bench/bench_stats.py; columns from 1e-4 to
1e5, 1000 +- 0.01, constant columns): count, min, max and the quartiles equal pandas
exactly (same float values, numpy's interpolation); mean within ~1e-15 relative; std
within 1e-7 relative (2e-7 measured at 3 x 2^20 rows with party means far apart
relative to the spread; ~1e-9 typical).
* min, quantiles, max: exact order statistics by bisection over the 2^64 ordered float64
  bit patterns: each party counts its own values <= t in the clear (sorted once), the
  counts are added on shares and a secure comparison against the rank k + 1 is opened.
  64 rounds give the exact k-th value; the opened bits are a function of that value only.
  Quantiles interpolate like numpy's ``linear`` method.

Reveals to every party: the number of (non-NaN) rows of each party per column, and
min, max and the order statistics around 25/50/75% (opened bit by bit during the
bisection, so also to parties not in ``reveal_to``). Count, mean and std go
only to ``reveal_to`` (all parties when None). The dealer learns the number of parties
and columns only: its requests have the shapes (parties, columns) and (8 ranks, columns)
whatever the rows, and the one row-count-dependent shift is truncated with a
bit-decomposed pair (``SharedTensor.rshift_private``) that names no shift.

NaN policy: ``nan_policy="raise"`` (default) rejects a column with NaN, naming it;
``"omit"`` skips NaN like pandas (the per-party counts then exclude them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mpc import ss
from mpc.runtime.context import Context
from protocols.stats import _common as cm

DESCRIBE_INDEX = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]
QUANTILES = (0.25, 0.5, 0.75)
SPREAD_BITS = 29          # fractional bits of (mean_p - mean) / 2^E_s
WEIGHT_BITS = 30


def _float_keys(x: np.ndarray) -> np.ndarray:
    """Order-preserving map float64 -> uint64 (negative floats: flip all bits)."""
    bits = np.ascontiguousarray(x, dtype=np.float64).view(np.uint64)
    neg = (bits >> np.uint64(63)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint64(1 << 63))


def _from_keys(k: np.ndarray) -> np.ndarray:
    k = np.asarray(k, dtype=np.uint64)
    pos = (k >> np.uint64(63)).astype(bool)
    return np.where(pos, k & np.uint64((1 << 63) - 1), ~k).view(np.float64)


def _local_columns(ctx: Context, frame: Any, columns: Sequence[str] | None, nan_policy: str) -> dict[str, np.ndarray]:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"party {ctx.party!r}: frame must be a pandas DataFrame, not {type(frame).__name__}")
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', not {nan_policy!r}")
    if columns is None:
        names = [str(c) for c in frame.columns if frame[c].dtype.kind in "iuf"]
        if not names:
            raise ValueError(f"party {ctx.party!r}: the frame has no numeric column")
    else:
        names = [str(c) for c in columns]
    out = {}
    for c in names:
        if c not in frame.columns:
            raise KeyError(f"party {ctx.party!r}: no column {c!r}; columns are {list(frame.columns)}")
        arr = frame[c].to_numpy()
        if arr.dtype.kind not in "iufb":
            raise TypeError(f"party {ctx.party!r}: column {c!r} is not numeric (dtype {arr.dtype})")
        arr = arr.astype(np.float64)
        nan = np.isnan(arr)
        if nan.any():
            if nan_policy == "raise":
                raise ValueError(f"party {ctx.party!r}: column {c!r} has {int(nan.sum())} NaN value(s); "
                                 "pass nan_policy='omit' to skip them")
            arr = arr[~nan]
        if np.isinf(arr).any():
            raise ValueError(f"party {ctx.party!r}: column {c!r} has infinite values")
        out[c] = arr
    return out


def _exponent(v: float) -> int:
    """e with v < 2^e (v >= 0); a small floor for v == 0."""
    return math.frexp(v)[1] if v > 0 else -1074


def _sorted_counter(sorted_keys: list[np.ndarray]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """count_le(columns, thresholds): this party's keys <= each threshold, per column."""
    def count_le(col_idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.array([np.searchsorted(sorted_keys[c], x, side="right") for c, x in zip(col_idx, t, strict=True)],
                        dtype=np.int64)
    return count_le


def _order_stats(ctx: Context, count_le: Callable[[np.ndarray, np.ndarray], np.ndarray], col_idx: np.ndarray,
                 ranks: np.ndarray) -> np.ndarray:
    """The ranks-th smallest keys (0-based) of the union of columns col_idx, by bisection;
    ``count_le`` counts this party's keys <= a threshold (:func:`_sorted_counter`)."""
    m = len(ranks)
    lo = np.zeros(m, np.uint64)
    hi = np.full(m, np.iinfo(np.uint64).max, np.uint64)
    for _ in range(64):
        mid = lo + (hi - lo) // np.uint64(2)
        local = count_le(col_idx, mid)
        total = ss.sum_of_locals(ctx, local)                           # count(<= mid) over all parties
        short = np.asarray((total < ranks + 1).reveal(), dtype=bool)
        lo = np.where(short, mid + np.uint64(1), lo)
        hi = np.where(short, hi, mid)
    return lo


def _ring_int(v: int) -> int:
    """v mod 2^64 as a signed 64-bit integer (the ring element a sum of shares wraps to)."""
    v %= 1 << 64
    return v - (1 << 64) if v >= 1 << 63 else v


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's quantile interpolation (the same rounding as numpy)."""
    diff = b - a
    out = a + diff * t
    return np.where(t >= 0.5, b - diff * (1 - t), out)


def horizontal_describe(ctx: Context, frame: pd.DataFrame, columns: Sequence[str] | None = None,
                        reveal_to: str | None = None, nan_policy: str = "raise") -> pd.DataFrame | None:
    """``pd.concat(all parties' frames).describe().T`` without pooling the rows.

    Args:
        frame: this party's rows (a DataFrame with the same columns at every party).
        columns: columns to describe (default: the numeric columns, as pandas does).
        reveal_to: party that gets the table (all when None); the others get None.
        nan_policy: "raise" (default) or "omit" (skip NaN like pandas).
    """
    to = cm.receivers(ctx, reveal_to)
    cols = _local_columns(ctx, frame, columns, nan_policy)
    names = list(cols)
    arrays = [cols[k] for k in names]
    n_local = np.array([len(a) for a in arrays], dtype=np.int64)
    sums = np.array([math.fsum(a) if len(a) else 0.0 for a in arrays])
    means = np.where(n_local > 0, sums / np.maximum(n_local, 1), 0.0)
    m2 = np.array([float(np.sum((a - mu) ** 2)) for a, mu in zip(arrays, means, strict=True)])
    keys = [np.sort(_float_keys(a)) for a in arrays]
    return _describe(ctx, names, n_local, sums, means, m2, _sorted_counter(keys), to)


def _describe(ctx: Context, names: list[str], n_local: np.ndarray, sums: np.ndarray, means: np.ndarray,
              m2: np.ndarray, count_le: Callable[[np.ndarray, np.ndarray], np.ndarray],
              to: list[str]) -> pd.DataFrame | None:
    """The protocol on this party's local summaries: per column its row count, sum, mean and
    sum of squared deviations, and ``count_le`` over its values' ordered keys."""
    everyone = ctx.gather(names)
    for p, theirs in zip(ctx.parties, everyone, strict=True):
        if theirs != names:
            raise ValueError(f"parties describe different columns: {ctx.party!r} has {names}, "
                             f"{p!r} has {theirs}")
    c = len(names)
    counts = np.array(ctx.gather(n_local.tolist()), dtype=np.int64)      # (P, C), public
    n = counts.sum(axis=0)
    empty = [names[i] for i in range(c) if n[i] == 0]
    if empty:
        raise ValueError(f"column(s) {empty} have no values at any party")

    # order statistics (revealed to everyone by the bisection)
    want_c, want_r, plan = [], [], []
    for i in range(c):
        h = (n[i] - 1) * np.array(QUANTILES)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, n[i] - 1)
        ranks = [0, int(n[i] - 1), *lo.tolist(), *hi.tolist()]   # always 8: the dealer sees no n
        base = len(want_r)
        want_c += [i] * len(ranks)
        want_r += ranks
        plan.append((base, ranks, lo, hi, h - lo))
    found = _from_keys(_order_stats(ctx, count_le, np.array(want_c), np.array(want_r, dtype=np.int64)))
    umin = [found[plan[i][0]] for i in range(c)]
    umax = [found[plan[i][0] + 1] for i in range(c)]                  # ranks[1] = n - 1

    # public scale exponents from the (already opened) union min and max
    e_m = np.array([_exponent(max(abs(lo_), abs(hi_))) for lo_, hi_ in zip(umin, umax, strict=True)])
    e_s = np.array([_exponent(hi_ - lo_) for lo_, hi_ in zip(umin, umax, strict=True)])
    e_s = np.maximum(e_s, e_m - 900)                                  # keep ldexp finite

    lg = np.ceil(np.log2(np.maximum(n, 2))).astype(np.int64)
    f_m = 59 - lg                                                     # sum < n * 2^E_m
    s1 = np.round(np.ldexp(sums, (f_m - e_m).astype(np.int64))).astype(np.int64)
    cut = np.maximum(lg - 2, 0)                                       # M2 at 2^(2 SPREAD_BITS - cut)
    m2_scale = 2 * SPREAD_BITS - cut                                  # M2 <= n range^2 / 4 < 2^58
    m2_ring = np.round(np.ldexp(m2, (m2_scale - 2 * e_s).astype(np.int64))).astype(np.int64)
    p_count, rank = len(ctx.parties), ctx.rank
    own_means = np.zeros((p_count, c), np.int64)
    own_means[rank] = [_ring_int(round(math.ldexp(mu, SPREAD_BITS - int(es)))) if k > 0 else 0
                       for mu, es, k in zip(means, e_s, n_local, strict=True)]
    local = np.concatenate([s1, m2_ring, own_means.ravel()])
    tot = ss.sum_of_locals(ctx, local)
    s1_sh, m2_sh, mean_sh = tot[:c], tot[c:2 * c], tot[2 * c:].reshape(p_count, c)

    # between-party term sum_p n_p (mean_p - mean)^2, mean = sum_q w_q mean_q
    w = np.zeros((p_count, c), np.int64)
    for i in range(c):
        wi = np.floor(counts[:, i] / n[i] * 2 ** WEIGHT_BITS).astype(np.int64)
        wi[np.argmax(counts[:, i])] += 2 ** WEIGHT_BITS - wi.sum()  # weights sum to 2^30 exactly
        w[:, i] = wi
    delta = ss.stack([((mean_sh[p].reshape(1, c) - mean_sh) * w).sum(axis=0)
                      for p in range(p_count)])                      # 2^30 (mean_p - mean)
    delta = delta >> WEIGHT_BITS                                     # at 2^SPREAD_BITS
    # cut comes from the row counts: a bit-decomposed pair, so the dealer never sees it
    sq = (delta * delta).rshift_private(cut)
    between = (sq * counts).sum(axis=0)
    opened = ss.concatenate([s1_sh, m2_sh + between]).reveal(to)

    if ctx.party not in to:
        return None
    rows = []
    for i in range(c):
        base, ranks, lo, hi, t = plan[i]
        at = {r: found[base + j] for j, r in enumerate(ranks)}
        qv = _lerp(np.array([at[r] for r in lo]), np.array([at[r] for r in hi]), t)
        total = float(int(opened[i])) * 2.0 ** float(e_m[i] - f_m[i])
        m2_tot = float(int(opened[c + i])) * 2.0 ** float(2 * e_s[i] - m2_scale[i])
        std = math.sqrt(max(m2_tot, 0.0) / (n[i] - 1)) if n[i] > 1 else float("nan")
        rows.append([float(n[i]), total / n[i], std, at[0], *qv.tolist(), at[int(n[i] - 1)]])
    return pd.DataFrame(rows, index=names, columns=DESCRIBE_INDEX)


class KeyRuns:
    """One column's ordered keys on disk as sorted runs (one per batch), counted by binary
    search in memory-mapped files: memory stays at one batch whatever the rows."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.files: list[Path] = []
        self._maps: list[np.ndarray] | None = None

    def add(self, values: np.ndarray) -> None:
        if len(values):
            path = self.dir / f"run-{len(self.files):05d}.npy"
            np.save(path, np.sort(_float_keys(values)))
            self.files.append(path)

    def count_le(self, t: Any) -> int:
        if self._maps is None:
            self._maps = [np.load(f, mmap_mode="r") for f in self.files]
        return int(sum(np.searchsorted(m, t, side="right") for m in self._maps))

    def kth(self, k: int) -> float:
        """The k-th smallest value (0-based) of all runs, by bisection on the keys (exact)."""
        lo, hi = 0, (1 << 64) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.count_le(mid) >= k + 1:
                hi = mid
            else:
                lo = mid + 1
        return float(_from_keys([lo])[0])

    def quantile(self, n: int, q: float) -> float:
        """numpy's linear quantile ``q`` of the ``n`` values of the runs, from its two order
        statistics (:meth:`kth`) and numpy's interpolation (:func:`_lerp`)."""
        h = (n - 1) * q
        lo, hi = math.floor(h), math.ceil(h)
        return float(_lerp(np.array([self.kth(lo)]), np.array([self.kth(hi)]), np.array([h - lo]))[0])


def horizontal_describe_stream(ctx: Context, batches: Iterable[pd.DataFrame], columns: Sequence[str],
                               workdir: Path, reveal_to: str | None = None,
                               nan_policy: str = "raise") -> pd.DataFrame | None:
    """:func:`horizontal_describe` over this party's rows given a batch at a time, in bounded
    memory: the same messages and reveal (every party must call one of the two).

    Per column: the row count; the sum as math.fsum of the batches' correctly rounded
    sums (within a few ulps of one fsum of all rows); mean and sum of squared deviations
    merged batch by batch (Chan, Golub and LeVeque, "Algorithms for computing the sample
    variance", 1983: M2 = M2_a + M2_b + delta^2 n_a n_b / n); each batch's ordered keys saved
    as a sorted run under ``workdir`` (removed at the end), which the bisection of the order
    statistics counts by binary search (:class:`KeyRuns`)."""
    import shutil

    to = cm.receivers(ctx, reveal_to)
    names = [str(c) for c in columns]
    c = len(names)
    n_local = np.zeros(c, np.int64)
    partial_sums: list[list[float]] = [[] for _ in range(c)]
    means = np.zeros(c)
    m2 = np.zeros(c)
    runs = [KeyRuns(Path(workdir) / f"col{i}") for i in range(c)]
    try:
        for frame in batches:
            cols = _local_columns(ctx, frame, names, nan_policy)
            for i, name in enumerate(names):
                a = cols[name]
                if not len(a):
                    continue
                nb, sb = len(a), math.fsum(a)
                mb = sb / nb
                m2b = float(np.sum((a - mb) ** 2))
                na = int(n_local[i])
                tot = na + nb
                delta = mb - means[i]
                means[i] += delta * nb / tot
                m2[i] += m2b + delta * delta * na * nb / tot
                n_local[i] = tot
                partial_sums[i].append(sb)
                runs[i].add(a)
        sums = np.array([math.fsum(p) for p in partial_sums])
        means = np.where(n_local > 0, sums / np.maximum(n_local, 1), 0.0)

        def count_le(col_idx: np.ndarray, t: np.ndarray) -> np.ndarray:
            return np.array([runs[ci].count_le(x) for ci, x in zip(col_idx, t, strict=True)], dtype=np.int64)

        return _describe(ctx, names, n_local, sums, means, m2, count_le, to)
    finally:
        for r in runs:
            r._maps = None
        shutil.rmtree(workdir, ignore_errors=True)
