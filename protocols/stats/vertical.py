"""Statistics of secret-shared columns (vertical partitioning, e.g. after ``private_join``).

Every function is SPMD: all computing parties call it with their SharedTensors (shares of
the same columns) and the parties named in ``reveal_to`` (all when None) get the result;
the others get None.

How (per column x, a 1-D SharedTensor with ``frac_bits`` f, read as ring integers X):

1. *Scale.* max(X) and min(X) by a comparison tree (exact; one comparison per pair
   splits the rows into larger and smaller halves, then a tree over each: 1.5 n
   comparisons, ``ss.order.extremes``, whose outcomes stay XOR-shared and select by a
   multiplexer of one random OT each way with the OT source). A column with a public
   bound |X| < 2^B (an owner-scaled one: ``scaling.bound_bits``) skips the tournament:
   its distinct keys of X + 2^B (B + 1 bits) are shuffled and min, max and describe's quartile
   neighbours come out of one selection with opened outcomes (step 4), the same keys
   serving later quantiles; then the bit lengths of
   max|X| and of max(X) - min(X) are opened: **every party learns these two powers of
   two** (orders of magnitude of the largest |value| and of the range), nothing else.
   X - min(X) is rescaled by the public 2^(W - range bits) to W bits,
   W = (60 - ceil(log2 n)) / 2 (W = 20 for 2^20 rows, 25 for 1000 rows, at most 30), so
   that a sum of n products of centred values fits the 64-bit ring. This per-column
   scaling by the range keeps columns from 1e-4 to 1e4, or 1000 +- 0.01, accurate in one
   table: the resolution is 2^-W of the column's range, whatever the job's frac_bits.
2. *Centre on shares.* mean(X) = sum(X) * round(2^G/n) / 2^G (one truncation), d = X - mean.
3. Sums of products of d, the Gram matrix d d^T computed once per job for all columns
   (``ss.gram_matrix``: with the OT source one cross product of the two parties' shares,
   Gilboa on random OTs, only the low L + 2W + 1 bits of each share choosing since the
   sums are known to fit: 60 OTs per share at 2^19 rows, not 64; else a matmul triple),
   give var, cov and the correlation
   matrix; var/cov are opened directly (var, n and the scale determine nothing more than
   the result), the correlation is normalised on shares: the secret power of two of each
   sum of squares is taken out (bit decomposition, one-hot, public shifts) so that
   inv_sqrt works on [0.25, 1) with 20 fractional bits.
4. Order statistics (quantile, describe) are exact. With a source that shuffles (the
   dealer, or ``triples="ot"``'s dealer-free two-party shuffle): the parties form
   distinct keys K = (X - min(X)) * 2^L + row index (L = ceil(log2 n)),
   shuffle each column obliviously with its own permutation (``mpc.ss.shuffle``) and
   run a multi-target quickselect on them whose comparisons are OPENED
   (``ss.quantile``, :mod:`mpc.ss.order`: sample pivots, then quickselect): about 2.94 n
   comparisons per column for describe's six ranks (both neighbours of each quartile;
   about 60 rounds at n = 2^19), each on the keys' public bit bound (range bits + L,
   the widest of the selection's columns: columns of much narrower keys, e.g. integer
   columns beside scaled floats, select in a group of their own, ``_groups``),
   no multiplication; the
   selected keys are turned back into values exactly (bit decomposition of a few
   words), and ``linear`` interpolates on shares. The opened outcomes reveal nothing:
   the keys are distinct and in a uniformly random order no party knows, so the
   outcomes are a function of that random order only, the same distribution whatever
   the data (ties included: the row index breaks them secretly). After the dealer-free
   circuit join one column skips its shuffle: the join's rows are already in such an
   order, with A's input row index as the secret tie-break (``mpc.ss.order.RowOrder``,
   claimed by one column only; its security argument in :mod:`mpc.ss.order`). When the
   join carried its owners' ranks (``private_join(ranks=True)``, which ``join.stats`` asks
   for with describe; the bucketed join's too, ranks in each owner's whole column:
   :mod:`protocols.bucketed_ranks`), a column's keys are y 2^(R + 1) + rank and every comparison runs
   on the ranks' R = log2(n_owner) bits instead of range bits + L (``mpc.ss.order``,
   "Owner ranks": 26 random OTs per comparison instead of 81 at 2^20 rows). With
   ``triples="paillier"`` (no shuffle), or when range bits + L > 62, the k-th smallest value is
   found bit by bit with a *secret* threshold (compare every row with it, count,
   compare the count with k): per rank, n comparisons per bit of (max - min), nothing
   opened until the end; for ``linear`` the upper neighbour costs 2 more comparisons
   per row (values above the lower one, then their minimum).

Memory: long columns run in chunks (:mod:`protocols.stats.chunked`: the tournament, the
truncations and the Gram matrix on at most 2^20 elements per call, selections on at most
2^22 keys, i.e. one column at a time beyond that), with the same values and the same reveals
as one call; a prepared column holds X and r only (8 bytes per row each), and when the job
has a spill directory (the bucketed join's) those, and describe's keys, live in memory-mapped
files read chunk by chunk (``chunked.spilled``), so only the column being shuffled or selected
is in memory.

Reveals: the result to ``reveal_to``; the bit lengths of each column's max|value| and
range to every computing party; the quickselect's comparison outcomes, which are
independent of the data (step 4); ``count`` is the public number of rows. ``histogram``
with an integer ``bins`` and no ``range`` also opens min and max to every computing party
(the edges must be public). The dealer learns the shapes (rows and columns) and nothing
that depends on the values: every truncation it is asked for names a shift fixed by the
row count or a constant (shifts from the opened bit lengths go through
``SharedTensor.rshift_hidden``), and the quickselect's round sizes are a function of the
secret random order. One exception: a column whose range needs more than 62 - L bits
(values at the job's frac_bits near 2^45, never a ``protocols.stats.scaling`` column)
cannot use the shuffled keys, so the dealer sees the fixed 62-round bitwise search
instead, and learns that one fact.

Accuracy (tests/test_stats_vertical.py, wide-range data 1e-4..1e4, 1000 +- 0.01): sum,
mean, var, std and cov within 1e-6 relative of numpy, pearson and corr within 1e-4
absolute (inv_sqrt with 20 fractional bits; typically ~1e-6); min, max and order
statistics equal the encoded values exactly; interpolated quantiles carry up to 30 more
fractional bits than the column (as many as fit under 2^60), so an integer column's
median of 1 and 4 is 2.5, within 2^-30.
A column's values are only as precise as its encoding. With the owner's scaling
(:mod:`protocols.stats.scaling`: ``share_scaled``, or ``scale_columns`` before
``private_join``) a value is stored to 2^-bits of the column's max (bits = 60 - log2 n,
45 for 32768 rows), so a 1e-4 next to 1e4 in one column keeps ~1e-7 relative precision.
A column shared at the job's 16 fractional bits holds 1e-4 as 7 * 2^-16: use the scaling,
or the runtime option ``frac_bits`` (up to 30, for |x| < 2^31).
Constant columns give pearson 0 (numpy: nan).
"""

from __future__ import annotations

import builtins
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mpc import ss
from mpc.runtime.context import Context
from mpc.ss import SharedTensor
from protocols.stats import _common as cm
from protocols.stats import chunked, scaling

_CACHE = "protocols.stats.vertical"
CORR_FRAC_BITS = 20
INTERP_BITS = ss.order.INTERP_BITS     # extra fractional bits of interpolated quantiles, at most


@dataclass
class _Col:
    """A prepared column, as ring integers X of its encoding (``frac`` fractional bits).
    Only X and its rescaling r are held per row (the rest is derived chunk by chunk, so a
    long column costs two words per row: :mod:`protocols.stats.chunked`)."""

    x: SharedTensor           # X
    frac: int                 # X * 2^-frac = value
    n: int
    bits: int                 # bit length of max|X| (public)
    range_bits: int           # bit length of max X - min X (public)
    mx: SharedTensor          # max X
    mn: SharedTensor          # min X
    r: SharedTensor           # (X - min X) rescaled to W bits
    shift: int                # r * 2^-shift = value - min
    mean: SharedTensor | None = field(default=None)  # mean(r) (``centred``)
    keys: SharedTensor | None = field(default=None)  # shuffled distinct keys of y (mpc.ss.order)
    zkeys: SharedTensor | None = field(default=None)  # or of z = X + 2^B (B: the public bound)
    zbound: int = 0                                   # B (zkeys only)
    label_bits: int = 0                               # the tie-break bits L of keys
    zlabel_bits: int = 0                              # and of zkeys
    order: ss.order.RowOrder | None = field(default=None)   # the table's row order (a join's), if any
    known: dict[int, SharedTensor] | None = field(default=None)   # rank -> X's order statistic
    rank: tuple[SharedTensor, int] | None = field(default=None)      # owner ranks (mpc.ss.order.rank_of)
    compare_bits: int | None = field(default=None)                   # keys are owner-rank keys of these R bits

    @property
    def y(self) -> SharedTensor:
        """X - min X, in [0, 2^range_bits) (local)."""
        return self.x - self.mn

    @property
    def d(self) -> SharedTensor | None:
        """r - mean(r), once ``centred`` has the mean (local)."""
        return None if self.mean is None else self.r - self.mean


def prepare_many(ctx: Context, named: Mapping[str, SharedTensor], select_first: bool = False) -> list[_Col]:
    """Step 1 of the module docstring for several columns at once (their comparisons
    batched), cached per job and tensor: each column as ring integers X, its max and min,
    X - min X and its rescaling r to W bits with the public ``shift`` (r 2^-shift = value -
    min). Every computing party learns the bit lengths of max|X| and of the range (the
    module's reveal line); nothing else is opened. Used by the moments here and by callers
    that weight the rows themselves (protocols.sql.job: per-group moments).
    ``select_first`` (describe): without a dealer, the columns with a public bound get min,
    max and the quartiles from one selection (``_select_first``) instead of a tournament,
    the others (e.g. integer columns in the same table) the tournament."""
    cache: dict[int, tuple[SharedTensor, _Col]] = ctx.state.setdefault(_CACHE, {})
    todo = {}
    for name, x in named.items():
        cm.check_tensor(x, name)
        hit = cache.get(id(x))
        if hit is None or hit[0] is not x:
            todo[name] = x
    groups: dict[int, list[str]] = {}
    for name, x in todo.items():
        groups.setdefault(x.shape[0], []).append(name)
    for n, names in groups.items():
        xs = [todo[k].with_frac_bits(0) for k in names]                     # X, c columns
        c = len(names)
        bounds = [scaling.bound_bits(todo[k]) for k in names]
        orders = [ss.order.order_of(todo[k]) for k in names]
        ranked = [ss.order.rank_of(todo[k]) for k in names]
        # describe without a dealer: the columns with a public bound by one selection, the
        # others (e.g. integer columns) by the tournament
        sel = [i for i, b in enumerate(bounds) if b is not None] if select_first and ss.order.dealer_free(ctx) else []
        if sel and not ss.order.can_select(ctx, n, [bounds[i] + 1 for i in sel]):
            sel = []
        rest = [i for i in range(c) if i not in sel]
        parts = []
        if sel:
            mn_s, mx_s, zkeys, known, lows = _select_first([xs[i] for i in sel], np.array([bounds[i] for i in sel],
                                                                                           np.int64),
                                                           [orders[i] for i in sel], [ranked[i] for i in sel])
            parts.append((mn_s, mx_s))
        if rest:
            parts.append(chunked.extremes([xs[i] for i in rest]))
        back = np.argsort(np.array(sel + rest, np.int64))               # column i's place in sel + rest
        mn = (parts[0][0] if len(parts) == 1 else ss.concatenate([p[0] for p in parts]))[back]
        mx = (parts[0][1] if len(parts) == 1 else ss.concatenate([p[1] for p in parts]))[back]
        bits = ss.concatenate([ss.maximum(mx, -mn), mx - mn]).bit_length().reveal()
        w = cm.work_bits(n)
        rbs = bits[c:].astype(np.int64)
        for i, k in enumerate(names):
            x = todo[k]
            b, rb = int(bits[i]), int(rbs[i])
            # X - min X in [0, 2^rb), rescaled to W bits: the right shift rb - W comes from an
            # opened bit length, so it goes through rshift_hidden (the dealer is asked for the
            # public 62 - W only; the bound y 2^(62 - W - shift) < 2^62 holds as y < 2^rb);
            # the left shift is local
            r = _rescaled(xs[i], mn[i], rb, w)
            col = _Col(xs[i], x.frac_bits, n, b, rb, mx[i], mn[i], r, x.frac_bits + w - rb, order=orders[i],
                       rank=ranked[i])
            if i in sel:
                j = sel.index(i)
                col.zkeys, col.zbound, col.zlabel_bits = zkeys[j], int(bounds[i]), lows[j]
                col.known = {rank: v[j] for rank, v in known.items()}
            cache[id(x)] = (x, col)
    return [cache[id(x)][1] for x in named.values()]


def _rescaled(x: SharedTensor, mn: SharedTensor, rb: int, w: int) -> SharedTensor:
    """(X - min X) 2^(W - rb) of a column with range bits rb, chunk by chunk."""
    right, left = builtins.max(rb - w, 0), builtins.max(w - rb, 0)
    return chunked.rows_map(lambda s, e: (x[s:e] - mn).rshift_hidden(right, 62 - w) << left, x.shape[0],
                            ctx=x.ctx)            # spilled when the job has a spill directory


DESCRIBE_Q = np.array([0.25, 0.5, 0.75])


def _select_first(xs: Sequence[SharedTensor], bounds: np.ndarray, orders: Sequence[ss.order.RowOrder | None],
                  ranked: Sequence[tuple[np.ndarray, int] | None] | None = None
                  ) -> tuple[SharedTensor, SharedTensor, list[SharedTensor], dict[int, SharedTensor], list[int]]:
    """Min, max and describe's quartile neighbours of each column X of ``xs`` in ONE
    selection, for columns with a public bound |X| < 2^B (``scaling.bound_bits``): the
    distinct keys of z = X + 2^B in (0, 2^(B + 1)) are shuffled and ranks 0, n - 1 and the
    quartiles' are selected together (about 3.41 n opened comparisons per column at 2^19
    against 1.5 n secret ones for the min/max tournament plus 3 n for the quartiles
    afterwards); columns in groups of at most ``chunked.SELECT_ELEMENTS`` keys per
    selection. One column (``mpc.ss.order.claimant``) keeps its table's row order
    (``orders``: a dealer-free join's, :class:`mpc.ss.order.RowOrder`) instead of a shuffle.
    A column with its owner's ranks (``ranked``: ``mpc.ss.order.rank_of``, a dealer-free
    join's, :func:`protocols.psi.private_join.private_join` with ``ranks=True``) selects on
    the keys z 2^(R + 1) + rho instead (``mpc.ss.order.ranked_keys``): every comparison on
    the R bits of the ranks, not on B + 1 + L; such columns select in groups of their own,
    the first of them on the table's row order if it has one. Returns (min, max, each
    column's keys for later quantiles, rank -> X's order statistic, each column's key
    label bits)."""
    c, n = len(xs), xs[0].shape[0]
    ctx = xs[0].ctx
    ranks = np.unique(np.concatenate([[0, n - 1], ss.order.positions(n, DESCRIBE_Q)]))
    keys: list[Any] = [None] * c
    found: list[Any] = [None] * c
    lows = [0] * c
    ranked = list(ranked) if ranked is not None else [None] * c
    width = builtins.max([r[1] for r in ranked if r is not None], default=0)        # R of the ranked groups (public)
    # keys z 2^(R + 1) + rho < 2^(B + R + 2) must stay below 2^62 (values_of)
    fast = [i for i in range(c) if ranked[i] is not None and int(bounds[i]) + width + 2 <= 62]
    slow = [i for i in range(c) if i not in fast]
    plan = ([([fast[j] for j in part], True) for part in chunked.groups(len(fast), n)]
            + [([slow[j] for j in sub], False)
               for sub in _groups(n, [int(bounds[i]) + 1 for i in slow], [orders[i] for i in slow])])
    for group, by_rank in plan:
        z = _rows([xs[i] + (1 << int(bounds[i])) for i in group])
        chunked.release(z.ctx)                      # the pages read of spilled columns X
        rbs = [int(bounds[i]) + 1 for i in group]
        if by_rank:
            kz = ss.order.ranked_keys(z, [ranked[i][0] for i in group], width, [orders[i] for i in group])
            low, narrow = [width + 1] * len(group), width
        else:
            (kz, low), narrow = ss.order.ordered_keys(z, rbs, [orders[i] for i in group]), None
        del z                                       # the selection reads only the keys (and their shape)
        kz = chunked.spilled_tensor(kz)             # kept for later quantiles, on disk if the job spills
        got = ss.order.smallest(kz, [ranks] * len(group), rbs, keys=kz, label_bits=low, compare_bits=narrow)
        for j, i in enumerate(group):
            keys[i], found[i], lows[i] = kz[j], got[j], low[j]
        del kz
    offs = ss.public(ctx, (np.int64(1) << bounds).reshape(c, 1))
    vals = ss.stack(found) - offs
    known = {int(r): vals[:, i] for i, r in enumerate(ranks)}
    return known[0], known[n - 1], keys, known, lows


NARROW = 0.5       # a column whose comparisons cost at most this share of a wider one's selects apart


def _groups(n: int, range_bits: Sequence[int], orders: Sequence[ss.order.RowOrder | None],
            label_bits: Sequence[int] | None = None) -> list[list[int]]:
    """Column indices in selection groups: every opened comparison of a selection is on
    the group's widest keys (``ss.order.smallest``), so columns of much narrower keys (an
    integer column's range next to a scaled float's) select apart, widest first, when
    their comparisons cost at most NARROW of the wider one's
    (``mpc.ss.order.comparison_cost``: a separate selection's rounds cost about as much as
    a few OTs per comparison, so a column on a join's row order, one label bit wider, stays
    with the others); then at most ``chunked.SELECT_ELEMENTS`` keys per group. Widths:
    range bits plus ``label_bits`` (key_bits(n) by default; the bits of ``orders``' labels
    for the column that will claim one, ``mpc.ss.order.claimant``). A function of public
    bit lengths only."""
    low = ss.order.key_bits(n)
    lows = [low] * len(range_bits) if label_bits is None else [int(b) for b in label_bits]
    mine = ss.order.claimant(n, range_bits, orders)
    if mine is not None:
        lows[mine] = orders[mine].bits
    width = [int(b) + lb for b, lb in zip(range_bits, lows, strict=True)]
    cost = ss.order.comparison_cost
    classes: list[list[int]] = []
    for i in sorted(range(len(width)), key=lambda i: -width[i]):
        if classes and cost(width[i]) > NARROW * cost(width[classes[-1][0]]):
            classes[-1].append(i)
        else:
            classes.append([i])
    out = []
    for cls in classes:
        cls.sort()
        out += [[cls[j] for j in g] for g in chunked.groups(len(cls), n)]
    return out


def _prep(ctx: Context, x: Any, name: str = "x") -> _Col:
    return prepare_many(ctx, {name: x})[0]


def centred(ctx: Context, cols: Sequence[_Col]) -> SharedTensor:
    """Step 2 of the module docstring: d = r - mean(r) for each prepared column
    (:func:`prepare_many`), shape (c, n), ring integers at the column's ``shift``;
    mean(r) = sum(r) round(2^G / n) / 2^G with one truncation by the public G (fixed by n).
    Sums of d and of products of d give the centred moments; opens nothing."""
    _means(cols)
    return ss.stack([c.d for c in cols])


def _means(cols: Sequence[_Col]) -> None:
    """mean(r) of each column that has none yet (``centred``), in one truncation."""
    missing = [c for c in cols if c.mean is None]
    if missing:
        n = missing[0].n
        g = 60 - cm.work_bits(n) - 1
        means = (ss.stack([c.r.sum() for c in missing]) * round(2 ** g / n)) >> g
        chunked.release(missing[0].r.ctx)
        for i, c in enumerate(missing):
            c.mean = means[i]


def _columns(table: Any, columns: Sequence[str] | None) -> dict[str, SharedTensor]:
    """name -> SharedTensor from a SharedTable (its columns noted with its ``row_order``),
    a dict, or a list of SharedTensors."""
    if isinstance(table, SharedTensor):
        return {"x": table}
    if isinstance(table, Mapping):
        names = list(table) if columns is None else list(columns)
        missing = [c for c in names if c not in table]
        if missing:
            raise KeyError(f"no column(s) {missing}; columns are {list(table)}")
        return {str(c): table[c] for c in names}
    if hasattr(table, "columns") and hasattr(table, "__getitem__") and not isinstance(table, list | tuple):
        names = list(table.columns) if columns is None else list(columns)
        out = {}
        row_order = getattr(table, "row_order", None)       # a SharedTable's (a dealer-free join's)
        for c in names:
            try:
                out[str(c)] = ss.order.note_order(table[c], row_order)
            except KeyError as exc:
                raise KeyError(f"no column {c!r}; columns are {list(table.columns)}") from exc
        return out
    if isinstance(table, list | tuple):
        names = [f"x{i}" for i in range(len(table))] if columns is None else list(columns)
        if len(names) != len(table):
            raise ValueError(f"{len(names)} names for {len(table)} columns")
        return dict(zip(names, table, strict=True))
    raise TypeError(f"expected a SharedTable, a dict of SharedTensors or a list, not {type(table).__name__}")


def _check_ddof(n: int, ddof: int) -> None:
    if n - ddof <= 0:
        raise ValueError(f"{n} rows are too few for ddof={ddof}")


# -- count, sum, mean, var, std, cov --------------------------------------------------------

def count(ctx: Context, x: SharedTensor, reveal_to: str | None = None) -> int | None:
    """Number of rows (public: the length of the shared column)."""
    cm.check_tensor(x, "x")
    return x.shape[0] if ctx.party in cm.receivers(ctx, reveal_to) else None


def _sums_raw(ctx: Context, cols: Sequence[_Col], to: list[str]) -> list[float] | None:
    """The sums of columns of one length, each value first cut by 2^over so that n of them
    fit below 2^61. over comes from the opened bit length, so the cut is an rshift_hidden
    with the public limit L + 1 (|X| < 2^bits, so |X| 2^(L + 1 - over) < 2^62), also when
    over <= 0 (then exact): the dealer sees the same request whatever the columns'
    magnitudes. One truncation round for all the columns."""
    lg = math.ceil(math.log2(builtins.max(cols[0].n, 2)))
    over = np.array([builtins.max(c.bits + lg - 61, 0) for c in cols], dtype=np.int64)
    out = ss.stack([chunked.truncated_sum(c.x, int(o), lg + 1) for c, o in zip(cols, over, strict=True)]).reveal(to)
    if out is None:
        return None
    return [float(int(v)) * 2.0 ** (int(o) - c.frac) for v, o, c in zip(out, over, cols, strict=True)]


def _sum_raw(ctx: Context, col: _Col, to: list[str]) -> float | None:
    out = _sums_raw(ctx, [col], to)
    return None if out is None else out[0]


def sum(ctx: Context, x: SharedTensor, reveal_to: str | None = None) -> float | None:  # noqa: A001
    """Sum of the column."""
    return _sum_raw(ctx, _prep(ctx, x), cm.receivers(ctx, reveal_to))


def mean(ctx: Context, x: SharedTensor, reveal_to: str | None = None) -> float | None:
    """Mean of the column (opens the sum, equivalent given the public count)."""
    col = _prep(ctx, x)
    s = _sum_raw(ctx, col, cm.receivers(ctx, reveal_to))
    return None if s is None else s / col.n


def _products(ctx: Context, cols: Sequence[_Col]) -> SharedTensor:
    """S = d d^T (k, k), the sums of products of the centred columns, computed once per job
    and set of columns (``describe`` takes its diagonal, ``corr_matrix`` all of it):
    ``ss.gram_matrix`` (:mod:`mpc.ss.gram`), one cross product of the parties' shares with the OT source,
    summed over chunks of rows whose centred values are made on the fly (``chunked.gram``)."""
    cache: dict[tuple[int, ...], tuple[list[_Col], SharedTensor]] = ctx.state.setdefault(_CACHE + ".gram", {})
    key = tuple(id(c) for c in cols)
    hit = cache.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], cols, strict=True)):
        return hit[1]
    _means(cols)
    s = chunked.gram(lambda a, b: ss.stack([c.r[a:b] - c.mean for c in cols]), len(cols), cols[0].n,
                     _gram_bits(cols[0].n))
    cache[key] = (list(cols), s)
    return s


def centred_products(ctx: Context, named: Mapping[str, SharedTensor]) -> tuple[SharedTensor, list[int]]:
    """(S, shifts): S = d d^T (k x k shares) of the ``named`` columns' centred values and each
    column's public shift, so that sum over rows of (x_i - mean x_i)(x_j - mean x_j) =
    S_ij 2^-(shift_i + shift_j): what :func:`var`, :func:`cov` and :func:`corr_matrix` open,
    for a caller that opens only some entries (``protocols.sql.bucketed``). Out of core on
    spilled columns (``chunked.gram``); reveals what :func:`prepare_many` reveals."""
    cols = prepare_many(ctx, named)
    return _products(ctx, cols), [c.shift for c in cols]


def _gram_bits(n: int) -> int:
    """Signed bits every entry of d d^T fits: d = r - mean(r), r in [0, 2^W] (a range of 2^W), so
    sum d_a^2 <= n 2^(2W) / 4 (plus the rounding of the mean, below 2.25 n) < 2^(L + 2W - 1)
    and |sum d_a d_b| is at most that (Cauchy-Schwarz), L = ceil(log2 n), 2W <= 60 - L.
    With L + 2W + 1 bits the Gram matrix is 2^(63 - L - 2W) d d^T (``ss.gram_matrix``:
    read with that many fractional bits, so opened entries are the sums themselves; the
    correlation's normalisation is scale-free), its diagonal below 2^62 as
    ``top_bit_onehot`` needs."""
    return math.ceil(math.log2(builtins.max(n, 2))) + 2 * cm.work_bits(n) + 1


def _sq_sums(ctx: Context, cols: Sequence[_Col]) -> SharedTensor:
    k = len(cols)
    return _products(ctx, cols)[np.arange(k), np.arange(k)]


def var(ctx: Context, x: SharedTensor, ddof: int = 1, reveal_to: str | None = None) -> float | None:
    """Variance (ddof=1 by default, like pandas), centred on shares."""
    col = _prep(ctx, x)
    _check_ddof(col.n, ddof)
    out = _sq_sums(ctx, [col])[0].reveal(cm.receivers(ctx, reveal_to))
    return None if out is None else float(out) * 2.0 ** (-2 * col.shift) / (col.n - ddof)


def std(ctx: Context, x: SharedTensor, ddof: int = 1, reveal_to: str | None = None) -> float | None:
    """Standard deviation (ddof=1 by default); opens the variance to the receivers only."""
    v = var(ctx, x, ddof, reveal_to)
    return None if v is None else math.sqrt(builtins.max(v, 0.0))


def cov(ctx: Context, x: SharedTensor, y: SharedTensor, ddof: int = 1,
        reveal_to: str | None = None) -> float | None:
    """Covariance of two columns (ddof=1 by default, like numpy.cov)."""
    cm.check_same_length({"x": cm.check_tensor(x, "x"), "y": cm.check_tensor(y, "y")})
    cx, cy = prepare_many(ctx, {"x": x, "y": y})
    _check_ddof(cx.n, ddof)
    out = _products(ctx, [cx, cy])[0, 1].reveal(cm.receivers(ctx, reveal_to))
    return None if out is None else float(out) * 2.0 ** -(cx.shift + cy.shift) / (cx.n - ddof)


# -- correlation ------------------------------------------------------------------------------

def _corr_shares(ctx: Context, cols: Sequence[_Col]) -> SharedTensor:
    """The k x k correlation matrix S_ij / sqrt(S_ii S_jj) of the sums of products S = d d^T
    (fixed point, CORR_FRAC_BITS). Each S_ii's secret power of two 4^j_i is taken out
    (j = ceil(bit length / 2)), so inv_sqrt works on S_ii / 4^j_i in [0.25, 1)."""
    s = _products(ctx, cols)                                         # (k, k)
    k, f = len(cols), CORR_FRAC_BITS
    diag = s[np.arange(k), np.arange(k)]
    oh = diag.top_bit_onehot()                                       # (62, k)
    half = [(m + 2) // 2 for m in range(62)]                         # j = ceil((m + 1) / 2)
    u = ss.scale_pow2(diag, oh, [f - 2 * j for j in half])           # S_ii / 4^j in [0.25, 1)
    w = ss.scale_pow2(s, oh.reshape(62, k, 1), [f - j for j in half])
    w = ss.scale_pow2(w, oh.reshape(62, 1, k), [-j for j in half])   # S_ij / 2^(j_i + j_j)
    isq = ss.inv_sqrt(u.with_frac_bits(f).at_precision(f))
    return w.with_frac_bits(f).at_precision(f) * isq.reshape(k, 1) * isq.reshape(1, k)


def corr_matrix(ctx: Context, columns: Any, reveal_to: str | None = None) -> pd.DataFrame | None:
    """Pearson correlation matrix of several columns (a list, dict or SharedTable) as a
    DataFrame (like ``DataFrame.corr()``); the diagonal is set to exactly 1."""
    named = _columns(columns, None)
    if len(named) < 1:
        raise ValueError("corr_matrix needs at least one column")
    cm.check_same_length(named)
    cols = prepare_many(ctx, named)
    r = _corr_shares(ctx, cols).reveal(cm.receivers(ctx, reveal_to))
    if r is None:
        return None
    r = np.asarray(r, dtype=np.float64)
    r = np.triu(r, 1) + np.triu(r, 1).T                        # exactly symmetric
    np.fill_diagonal(r, 1.0)
    return pd.DataFrame(r, index=list(named), columns=list(named))


def pearson(ctx: Context, x: SharedTensor, y: SharedTensor, reveal_to: str | None = None) -> float | None:
    """Pearson correlation coefficient of two columns."""
    cm.check_same_length({"x": cm.check_tensor(x, "x"), "y": cm.check_tensor(y, "y")})
    cols = prepare_many(ctx, {"x": x, "y": y})
    r = _corr_shares(ctx, cols).reveal(cm.receivers(ctx, reveal_to))
    return None if r is None else float(np.asarray(r)[0, 1])


# -- order statistics -------------------------------------------------------------------------

def _min_max(ctx: Context, col: _Col, which: str, to: list[str]) -> float | None:
    out = (col.mx if which == "max" else col.mn).reveal(to)
    return None if out is None else float(int(out)) / 2.0 ** col.frac


def min(ctx: Context, x: SharedTensor, reveal_to: str | None = None) -> float | None:  # noqa: A001
    """Smallest value (exact)."""
    return _min_max(ctx, _prep(ctx, x), "min", cm.receivers(ctx, reveal_to))


def max(ctx: Context, x: SharedTensor, reveal_to: str | None = None) -> float | None:  # noqa: A001
    """Largest value (exact)."""
    return _min_max(ctx, _prep(ctx, x), "max", cm.receivers(ctx, reveal_to))


def _use_select(ctx: Context, cols: Sequence[_Col]) -> bool:
    """Shuffle + quickselect needs the dealer and keys below 2^62."""
    return ss.order.can_select(ctx, cols[0].n, [c.range_bits for c in cols])


def _extra_bits(col: _Col) -> int:
    """Fractional bits an interpolated quantile carries beyond the column's own scale, so
    that e.g. the median of an integer column can be 2.5 (as many as the ring has room for,
    at most INTERP_BITS)."""
    return builtins.max(0, builtins.min(INTERP_BITS, 60 - col.bits))


def _quantile_shares(ctx: Context, cols: Sequence[_Col], qs: np.ndarray, method: str) -> list[SharedTensor]:
    """The quantiles of each column (same length) as ring integers at the column's scale
    times 2^_extra_bits(column): ``ss.quantile`` given each column's minimum and range
    bits, on the column's shuffled keys (shuffled once per column and job, then reused)
    when quickselect applies; one selection per group of columns of at most
    ``chunked.SELECT_ELEMENTS`` keys."""
    out: list[Any] = [None] * len(cols)
    for kind in (True, False):          # columns with describe's keys of X + 2^B, then the others
        idx = [i for i, c in enumerate(cols) if (c.zkeys is not None) == kind]
        if not idx:
            continue
        sub = [cols[i] for i in idx]
        orders = [c.order if c.keys is None and c.zkeys is None else None for c in sub]   # keys made here
        if kind:
            widths, lows = [c.zbound + 1 for c in sub], [c.zlabel_bits for c in sub]
        else:
            widths, lows = [c.range_bits for c in sub], [c.label_bits or ss.order.key_bits(c.n) for c in sub]
        for group in _groups(cols[0].n, widths, orders, lows):
            res = _quantile_group(ctx, [sub[j] for j in group], qs, method)
            for k, j in enumerate(group):
                out[idx[j]] = res[k]
            chunked.release(ctx)
    return out


def _rows(ts: Sequence[SharedTensor]) -> SharedTensor:
    """1-D tensors as the rows of one (c, n) tensor: a view for one, else a stacked copy."""
    return ts[0].reshape(1, ts[0].shape[0]) if len(ts) == 1 else ss.stack(list(ts))


def _quantile_group(ctx: Context, cols: Sequence[_Col], qs: np.ndarray, method: str) -> SharedTensor:
    xs = _rows([c.x for c in cols])
    extra = np.array([_extra_bits(c) for c in cols])
    if all(c.zkeys is not None for c in cols):
        need = ss.order.positions(cols[0].n, qs, method)
        known = None
        if all(int(r) in c.known for c in cols for r in need):
            known = {int(r): ss.stack([c.known[int(r)] for c in cols]) for r in need}
        offs = np.array([1 << c.zbound for c in cols], np.int64)
        return ss.quantile(xs, qs, method, low=ss.public(ctx, -offs), range_bits=[c.zbound + 1 for c in cols],
                           keys=_rows([c.zkeys for c in cols]), extra_bits=extra, known=known,
                           label_bits=[c.zlabel_bits for c in cols])
    keys, lows, narrow = None, None, None
    if _use_select(ctx, cols):
        todo = [c for c in cols if c.keys is None]
        # owner ranks (a dealer-free join's): keys y 2^(R + 1) + rank, compared on R bits
        width = builtins.max([c.rank[1] for c in todo if c.rank is not None], default=0)
        ranked = [c for c in todo if c.rank is not None and c.range_bits + width + 1 <= 62]
        if ranked:
            made = ss.order.ranked_keys(_rows([c.y for c in ranked]), [c.rank[0] for c in ranked], width,
                                        [c.order for c in ranked])
            for i, c in enumerate(ranked):
                c.keys, c.label_bits, c.compare_bits = made[i], width + 1, width
        todo = [c for c in todo if c.keys is None]
        if todo:
            made, low = ss.order.ordered_keys(_rows([c.y for c in todo]), [c.range_bits for c in todo],
                                              [c.order for c in todo])
            for i, c in enumerate(todo):
                c.keys, c.label_bits = made[i], low[i]
        keys, lows = _rows([c.keys for c in cols]), [c.label_bits for c in cols]
        if all(c.compare_bits is not None for c in cols) and len({c.compare_bits for c in cols}) == 1:
            narrow = cols[0].compare_bits
    return ss.quantile(xs, qs, method, low=ss.stack([c.mn for c in cols]),
                       range_bits=[c.range_bits for c in cols], keys=keys, extra_bits=extra, label_bits=lows,
                       compare_bits=narrow)


def quantile(ctx: Context, x: SharedTensor, q: Any, method: str = "linear",
             reveal_to: str | None = None) -> float | np.ndarray | None:
    """Quantile(s) ``q`` in [0, 1] with numpy's ``method`` (linear, lower, higher,
    nearest), exact on the encoded values. With a source that shuffles (the dealer, or
    ``triples="ot"``): shuffle + selection with opened comparisons (sample pivots, then
    quickselect; about 2.5-3 n comparisons for a median's two neighbours at n = 2^19;
    the outcomes are independent of the data, see the module docstring); with
    ``triples="paillier"``: one
    round of n comparisons per bit of the column's range and per rank, nothing opened.
    Only the result is revealed."""
    qs = np.asarray(q, dtype=np.float64)
    if qs.size == 0 or np.any(~np.isfinite(qs)) or np.any((qs < 0) | (qs > 1)):
        raise ValueError("quantiles must be in [0, 1]")
    col = _prep(ctx, x)
    out = _quantile_shares(ctx, [col], qs.ravel(), method)[0].reveal(cm.receivers(ctx, reveal_to))
    if out is None:
        return None
    vals = out.astype(np.float64) / 2.0 ** (col.frac + _extra_bits(col))
    return float(vals[0]) if qs.ndim == 0 else vals.reshape(qs.shape)


def median(ctx: Context, x: SharedTensor, reveal_to: str | None = None) -> float | None:
    """Median (numpy's definition)."""
    return quantile(ctx, x, 0.5, reveal_to=reveal_to)


def histogram(ctx: Context, x: SharedTensor, bins: Any = 10, range: tuple[float, float] | None = None,  # noqa: A002
              reveal_to: str | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Counts per bin like ``numpy.histogram`` (half-open bins, the last one closed).

    ``bins`` is an int (equal-width bins over ``range``; without ``range``, min and max
    are computed on shares and **opened to every party**, since the edges must be public)
    or an increasing array of edges. Comparisons are on the encoded values: a value within
    2^-frac_bits of an edge may fall on the other side than numpy puts the float.
    Returns (counts, edges) to the receivers. Cost: one comparison per row and edge.
    """
    col = _prep(ctx, x)
    if np.ndim(bins) == 0:
        nb = int(bins)
        if nb < 1:
            raise ValueError("bins must be a positive int or an array of edges")
        if range is None:
            lo = _min_max(ctx, col, "min", list(ctx.parties))
            hi = _min_max(ctx, col, "max", list(ctx.parties))
        else:
            lo, hi = float(range[0]), float(range[1])
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, nb + 1)
    else:
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0) or not np.all(np.isfinite(edges)):
            raise ValueError("bins must be a strictly increasing 1-D array of at least 2 finite edges")
    scale = 2.0 ** col.frac
    lim = float(2 ** 61)
    th = np.ceil(np.clip(edges * scale, -lim, lim))
    th[-1] = np.floor(np.clip(edges[-1] * scale, -lim, lim)) + 1
    below = col.n - ss.order.count_greater(ss.public(ctx, th.astype(np.int64) - 1), col.x)   # #(X < T)
    chunked.release(ctx)
    out = (below[1:] - below[:-1]).reveal(cm.receivers(ctx, reveal_to))
    return None if out is None else (out.astype(np.int64), edges)


# -- describe ---------------------------------------------------------------------------------

DESCRIBE_INDEX = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"]


def describe(ctx: Context, table: Any, columns: Sequence[str] | None = None,
             reveal_to: str | None = None) -> pd.DataFrame | None:
    """``DataFrame.describe().T`` of shared columns (a SharedTable, dict or list): index =
    columns; count, mean, std, min, 25%, 50%, 75%, max. Cost: mostly the quantiles, batched
    over columns: with a source that shuffles, an oblivious shuffle and about 3
    comparisons per row and column whose outcomes are opened (they are independent of the
    data, see the module docstring); with ``triples="paillier"``, 3 comparisons per row and
    column per bit of the widest range. min and max come from the comparison tree that
    also scales the columns (1.5 n comparisons), or, without a dealer and for owner-scaled
    columns (a public bound), from the same selection as the quartiles (about 3.41 n
    comparisons per column for all eight ranks at 2^19)."""
    named = _columns(table, columns)
    to = cm.receivers(ctx, reveal_to)
    cols = prepare_many(ctx, named, select_first=True)
    rows = []
    for c in cols:
        _check_ddof(c.n, 1)
    cm.check_same_length(named)
    sq = _sq_sums(ctx, cols)
    quant = _quantile_shares(ctx, cols, np.array([0.25, 0.5, 0.75]), "linear")
    sums = _sums_raw(ctx, cols, to) or [None] * len(cols)
    for i, (c, q, s) in enumerate(zip(cols, quant, sums, strict=True)):
        v = sq[i].reveal(to)
        lo = _min_max(ctx, c, "min", to)
        hi = _min_max(ctx, c, "max", to)
        qv = q.reveal(to)
        if ctx.party in to:
            std_v = math.sqrt(builtins.max(float(v) * 2.0 ** (-2 * c.shift) / (c.n - 1), 0.0))
            qf = qv.astype(np.float64) / 2.0 ** (c.frac + _extra_bits(c))
            rows.append([float(c.n), s / c.n, std_v, lo, *qf.tolist(), hi])
    if ctx.party not in to:
        return None
    return pd.DataFrame(rows, index=list(named), columns=DESCRIBE_INDEX)
