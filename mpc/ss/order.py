"""Exact order statistics of shared rows: oblivious shuffle + quickselect with OPENED
comparison outcomes (with the dealer or ``triples="ot"``), or a secret bitwise search (any
triple source).

``quantile`` (``ss.quantile``, used by :mod:`protocols.stats.vertical`) picks the ranks
numpy's method names, finds those order statistics and interpolates. Finding them:

- in a sorted tensor (``is_sorted=True``): public indexing;
- given each row's minimum and a public bound 2^b on its range (``low``,
  ``range_bits``): ``smallest``, i.e. quickselect on shuffled keys when the source can
  shuffle (the dealer, ``"ot"``) and the keys fit, else the secret bitwise search below,
  plus ``next_values`` for the upper neighbours of ``linear``;
- otherwise (no range is known, and ``quantile`` opens nothing to learn one): the
  bitonic ``ss.sort``, then indexing. So ``ss.quantile`` reveals nothing but shapes,
  and the quickselect's outcomes only with keys (see below).

Interpolation (``linear``): v_lo + (v_hi - v_lo) t with t the public weight at
INTERP_BITS = 30 bits, optionally ``extra_bits`` finer than the input: D = (v_hi - v_lo)
2^e is split as D_hi 2^30 + D_lo so that no product leaves the ring (needs D < 2^61);
both truncations are by the constant 30, so the dealer never sees e. Error at most one
unit of the result's scale.

Bitwise search (any triple source): per rank, the answer is fixed bit by bit with a
secret threshold t (count the values <= t, compare the count with k + 1): n comparisons
per row and bit, nothing opened. With the dealer always 62 bits, since the number of
rounds would tell it the range's bit length.

Quickselect (with a source that shuffles, ``mpc.ss.shuffle``: the dealer, or the
dealer-free two-party shuffle of ``triples="ot"``, :mod:`mpc.ss.ot_shuffle`).

How. Values y >= 0 of a column of n rows become distinct keys K_j = y_j * 2^L + j
(``keys_of``; j the row index, 2^L >= n; needs y < 2^(62 - L), see ``fits``), so that
K orders like y and breaks ties by the row index, secretly. ``shuffled`` permutes every
column (a row of a (c, n) share array) by its own uniformly random permutation that no
single party knows (never one permutation for two columns: the opened comparison
patterns would then tell the columns' rank correlation). ``select`` is a multi-target
selection, vectorised over all columns and all ranks: the arrangement is cut into
segments. A segment longer than SAMPLE_ABOVE (4096) is first cut by sample pivots
(Floyd and Rivest, "Expected time bounds for selection", CACM 1975): its first
s = m^(2/3) elements (a uniform sample, the order being random) are quickselected on a
copy at the sample ranks r s / m -+ (2.5 sigma + 1) around each target rank r, and every
element of the segment finds its bucket among those pivots by a binary search of opened
comparisons (one batch per level for all segments), stopping as soon as its interval of
buckets holds no target's bracket; the segment is rearranged stably by final interval
(a contiguous range of ranks each). Then a quickselect: every active segment (it holds a
wanted rank and more than one element) takes its first element as pivot and compares all
its others with it in ONE batched comparison per round (``mpc.ss.compare.ltz_open`` of
K_e - K_p: the XOR-shared top bit is opened to everyone); then it is stably partitioned
(smaller, pivot, larger), a public rearrangement every party applies to its shares. A
rank is found when its segment has one element. Memory: per element of the segments being
cut, its bucket interval (two bytes for describe's ranks); the rest is derived per piece of
OPEN_CHUNK elements. A cut only reads the arrangement and writes a new one of what is read
again (the buckets holding a target, the segments not cut, the targets in place: about half
the keys after describe's first cut, a few thousand after its second) by a counting sort;
with the job's spill directory (``mpc.ss.spill.SPILL``: after a bucketed join) a large one
goes to a scratch file (:func:`mpc.runtime.files.scratch`) and the keys stay in theirs,
pages dropped piece by piece, so the selection holds about 3 bytes per key plus one
comparison chunk's temporaries (plaintext count at 2^23 and 2^24 keys; 19-25 bytes per key
with two whole copies before, 54 with int64/int32 arrays and a lexsort). Measured (tests/test_ss_select.py, a
plaintext count at n = 2^19): 2.94 n comparisons per column for describe's six ranks
(both neighbours of each quartile) in about 60 rounds, 3.41 n with min and max (the
search order of ``_search_tree`` and the single pivots of ``_sample_cut`` save about 2%),
against 4.55 n for the plain quickselect (30 rounds); no multiplication. Every
comparison is on the keys' public bound: keys below 2^b (b = range bits + L, passed by
``smallest``) have differences |d| < 2^b, whose sign the OT source finds by a
millionaire on b bits, not 63 (``_less_open``; 81 random OTs per comparison at b = 61,
against 94 with 63 bits and 4-bit digits before). A target outside its bracket (probability
about 1% per target at 2.5 sigma) only leaves a larger segment for the next cut.
``values_of`` turns the few
selected keys back into y exactly (bit decomposition, high bits to arithmetic shares).

Reveals: the outcomes of the comparisons, nothing else (the shares are only rearranged
by public positions; the values stay shared until the caller opens a result). Why the
outcomes tell nothing: the keys are distinct and the shuffled arrangement puts them in a
uniformly random order, independent of the data and unknown to every party (each knows
at most its own factor of the composed permutation). The algorithm is a deterministic
function of the outcomes, and the outcomes a function of that random order only, so the
whole transcript has the same distribution whatever the values. The pivot (first element
of its segment) stays a uniformly random element since stable partitioning keeps the
random order; so does a segment's sample (its first s elements), and the sample's own
quickselect runs on a copy so the segment's order stays untouched. Every choice the
selection makes (samples, pivot sample ranks, which elements compare with which pivot,
the rearrangements) is a function of the public target ranks and of earlier outcomes,
hence of the random order only (tests/test_ss_select.py: a constant column and a column of
distinct values arranged to the same rank sequence give identical outcomes). Ties are
why the tie-break must be secret (the row index inside the key): breaking them by the public
shuffled position would make the order of equal values follow the arrangement, so the
outcomes would show how many ties there are (a constant column would answer every comparison
by position). Several selections on the same shuffled keys are still a function of the same
random order, so a column is shuffled once per job.
Who knows the permutation: with the dealer, the dealer (it deals every
factor but sees no shares), so security assumes it colludes with no computing party;
with ``triples="ot"`` nobody: the order is pi_1 o pi_0 with pi_i uniform and known only to
party i (each applies its factor by an oblivious switching network, Mohassel-Sadeghian,
EUROCRYPT 2013, on IKNP OT with kappa = 128), so, with two non-colluding semi-honest
parties, each sees outcomes of keys in an order that is uniform given its own factor.

The join's order instead of a shuffle (:class:`RowOrder`, ``ordered_keys``). What the
argument above needs of the arrangement is only this: the keys are distinct, fixed to the
rows before the arrangement was drawn, and the arrangement is a uniformly random
permutation of the rows, independent of the values and of everything a party sees (given
its view). The dealer-free circuit join (:mod:`mpc.ss.circuit_join`, ``triples="ot"``)
already delivers its rows so: they leave its compaction in the order pi_1 o pi_0
restricted to the matched rows, pi_0 A's and pi_1 B's uniform permutation (CSPRNG, drawn
from the public sizes alone, before any value is read: independent of the values), each
known to its party only; B also learns where A's empty bins went (a uniform subset) and
both learn where the matched rows are after pi_1 (a uniform m-subset), but given those
sets the matched rows still fill them by a uniform bijection that one of the factors
hides from each party. So the joined rows' arrangement is as good as a fresh shuffle for
ONE column. The tie-break must then be secret and distinct in the same sense as the row
index under a shuffle (attached to the row before its unknown permutation, so no party
knows which tie-break sits at which position): the join carries A's input row index i <
n_A through both of its rounds as a shared column, the order's label (L = key_bits(n_A)
bits, keys y 2^L + i). A knows each of its rows' labels but not pi_1, hence not which
position holds which; B does not even know the labels, nor pi_0. A public tie-break (the
output position j) would instead make a constant column's outcomes follow the positions
(the leak the docstring above describes), and a label B could place (the index after A's
round) would do that for B. Only one column may use a join's order (``RowOrder.claim``):
a second column on the same arrangement would make the two columns' outcomes correlated
through their rank correlation; later columns get their own shuffle. Which column keeps
the order (``claimant``: one whose wider keys widen no comparison, else the first that
fits) is a function of public sizes only. (Selecting a claimant whose labels' extra bit
widens the others' comparisons in a group of its own saves those OTs, 78 instead of 81 per
comparison at 2^17 rows, but its extra rounds cost more: 1.1-1.7 s more for describe at
130022 rows in memory, three runs each; dropped.) The circuit join on the dealer's
shuffle (the dealer knows its permutations) and the bucketed join (concatenated buckets:
not one uniform order) set no order.

Owner ranks as keys (``ranked_keys``, ``note_rank``; the dealer-free circuit join with
``ranks=True``). Every column of a join belongs to one party, which knows the whole column
in the clear before the join: it computes each of its rows' rank rho in its own column
(0..n_owner - 1 by value, ties by its input order) and sends the ranks through the join as
one more secret-shared column (:func:`protocols.psi.private_join.private_join`). Among the
joined rows the ranks are distinct and order the rows exactly like the values (value
first, then the owner's input order), so the selection may compare ranks instead of
values: the keys K = y 2^(R + 1) + rho (R = key_bits(n_owner), public) order like rho, and
the difference of two keys has rho_e - rho_p in its low R + 1 bits (two's complement, the
gap bit keeping y's part out), so the sign the selection needs is one R-bit millionaire
(``_less_open(d, R)``): 26 random OTs per comparison at n_owner = 2^20 instead of 81 on the
61-bit keys y 2^L + j; ``values_of`` with label bits R + 1 gives y back exactly. Why the
outcomes still reveal nothing: the ranks play the role of the tie-breaking labels above --
distinct, fixed to the rows before the arrangement was drawn, shared -- so the argument
for a shuffle (or for the join's order, for ONE column) holds word for word: the outcomes
are a function of the rows' arrangement, uniform and unknown to every party; the owner
knows each of its rows' rank (as A knows its row indices as labels) but not which
position holds which, and the other party does not even know the ranks. A party learns
nothing new from the opened keys' order either: it is the uniformly random arrangement's.
The public widths are R (from the public input sizes); keys must fit 2^62 (B + 1 + R + 1
<= 62 for |X| < 2^B: the owner's scaling keeps B + R <= 60).

After the bucketed join (:mod:`protocols.bucketed`, inputs over the memory budget) the
same: each owner computes its rows' ranks in its WHOLE column, all its rows and every
bucket (out of core: :mod:`protocols.bucketed_ranks`), and each bucket's join carries them
beside the bucket's rows (``private_join`` with given ranks, ``rank_rows`` the owner's row
count; R = key_bits of it, public: the distinct-id counts the bucket plan exchanges). The
joined rows are the buckets' concatenation, not one uniform arrangement, so no column keeps
the table's order: every column's keys are shuffled, and the argument for a shuffle holds
as it stands -- the ranks restricted to the joined rows of all buckets are still distinct,
ordered like the values, fixed to the rows before the shuffle was drawn and shared, and
the outcomes are a function of that shuffle alone. Which bucket a row came from is known
to both parties for their own ids, but not after the shuffle, and the ranks add nothing to
it: they are shares like the values beside them. A bucket's dummies (ids padded to the
bucket's capacity) carry rank 0 and never join.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mpc.runtime import files
from mpc.runtime.context import Context
from mpc.ss import beaver, compare
from mpc.ss.functions import sort
from mpc.ss.provider import DEALER, source_kind
from mpc.ss.shuffle import available, shuffle
from mpc.ss.spill import SPILL
from mpc.ss.tensor import SharedTensor, concatenate, public
from mpc.ss.tensor import stack as ss_stack

__all__ = ["RowOrder", "available", "can_select", "claimant", "comparison_cost", "count_greater", "dealer_free",
           "extremes", "fits", "key_bits", "keys_of", "median", "next_values", "note_order", "note_rank", "order_of",
           "ordered_keys", "owner_ranks", "positions", "quantile", "rank_of", "rank_words", "ranked_keys", "select",
           "shuffled", "shuffled_keys", "smallest", "values_of"]

CHUNK_ELEMENTS = 1 << 20     # comparisons per batch: bounds the memory of bit decompositions
INTERP_BITS = 30             # bits of the public interpolation weight
METHODS = ("linear", "lower", "higher", "nearest")


def key_bits(n: int) -> int:
    """L: bits of the row index appended below every value (2^L >= n)."""
    return max(1, math.ceil(math.log2(max(n, 2))))


def fits(n: int, range_bits: int) -> bool:
    """Whether keys of values in [0, 2^range_bits) over n rows stay below 2^62."""
    return range_bits + key_bits(n) <= 62


def keys_of(ctx: Context, y: np.ndarray, label: np.ndarray | None = None,
            label_bits: int | None = None) -> np.ndarray:
    """Shares of the distinct keys y * 2^L + t of each row of ``y`` (c, n), y >= 0: t the
    row index j (public, added by party 0) and L = ``key_bits(n)``, or, with ``label``
    (shares (n,) of distinct secret labels below 2^``label_bits``, a :class:`RowOrder`'s),
    t the row's label and L = ``label_bits``."""
    y = np.asarray(y, dtype=np.uint64)
    if label is None:
        keys = y << np.uint64(key_bits(y.shape[-1]))
        if ctx.rank == 0:
            keys = keys + np.arange(y.shape[-1], dtype=np.uint64)
        return keys
    return (y << np.uint64(label_bits)) + np.asarray(label, dtype=np.uint64)


def values_of(ctx: Context, keys: np.ndarray, n: int, label_bits: Any = None) -> np.ndarray:
    """Shares of y = key >> L (exact: bit decomposition, then the high bits to arithmetic
    shares); meant for the few selected keys. L is ``key_bits(n)``, or ``label_bits`` (an
    int, or one per key) for keys made with a :class:`RowOrder`'s labels. Reveals nothing."""
    keys = np.ascontiguousarray(keys, dtype=np.uint64).reshape(-1)
    low = np.broadcast_to(np.asarray(key_bits(n) if label_bits is None else label_bits, np.int64), keys.shape)
    first = int(low.min()) if low.size else 61
    bits = compare.bit_decompose(ctx, keys)
    rows = np.stack([(bits >> np.uint64(k)) & np.uint64(1) for k in range(first, 62)])
    arith = beaver.b2a_bits(ctx, rows)
    k = np.arange(first, 62, dtype=np.int64)[:, None]
    weights = np.where(k >= low, np.uint64(1) << np.maximum(k - low, 0).astype(np.uint64), np.uint64(0))
    return np.sum(arith * weights, axis=0, dtype=np.uint64)


def shuffled(ctx: Context, x: np.ndarray) -> np.ndarray:
    """Shares of each row of ``x`` (c, n) under its own oblivious random permutation; one
    row per shuffle call (measured at 4 x 2^19 with the OT shuffle: about 100 MiB less peak
    memory per party than all rows at once, for the same OTs)."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if x.ndim != 2 or x.shape[0] <= 1:
        return shuffle(ctx, x)
    out = np.empty_like(x)                     # filled row by row: no list of rows to concatenate
    for i in range(x.shape[0]):
        out[i] = shuffle(ctx, x[i:i + 1])[0]
    return out


def select(ctx: Context, keys: np.ndarray, ranks: list[np.ndarray],
           trace: list[np.ndarray] | None = None, bits: int = 62) -> list[np.ndarray]:
    """Shares of the ``ranks[j]``-th smallest keys (0-based) of each row j of ``keys`` (c, n),
    by multi-target selection with opened outcomes: segments longer than SAMPLE_ABOVE are
    first cut by sample pivots (``_sample_cut``), then a quickselect finishes. Only for
    DISTINCT keys in [0, 2^bits) (public ``bits`` <= 62, e.g. range bits + L), or owner-rank
    keys whose differences carry distinct ranks below 2^bits in their low bits + 1 bits
    (``ranked_keys``), in an obliviously shuffled order (see the module docstring); every
    comparison is on ``bits`` bits (``_less_open``). ``trace``, when a list, gets the opened outcomes of every round
    (they are public anyway)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if not 2 <= bits <= 62:
        raise ValueError(f"key bits must be in 2..62, got {bits}")
    c, n = keys.shape
    if len(ranks) != c:
        raise ValueError(f"{len(ranks)} rank lists for {c} columns")
    rk = [np.unique(np.asarray(r, dtype=np.int64)) for r in ranks]
    if any(r.size and (r[0] < 0 or r[-1] >= n) for r in rk):
        raise ValueError(f"ranks must be in [0, {n})")
    vals = keys.reshape(-1)          # the arrangement, flattened by column: only read by the cuts
    wanted = np.concatenate([r + j * n for j, r in enumerate(rk)])
    targets = wanted                                          # their positions in ``vals``
    starts = np.arange(c, dtype=np.int64) * n
    starts, ends = _live(starts, starts + n, targets)
    directory = None if ctx is None else ctx.state.get(SPILL)
    cut = False
    for _ in range(MAX_CUTS):
        if not np.any(ends - starts > SAMPLE_ABOVE):
            break
        vals, starts, ends, targets = _sample_cut(ctx, vals, starts, ends, targets, trace, bits, directory)
        starts, ends = _live(starts, ends, targets)
        cut = True
    if not cut:
        vals = vals.copy()                                    # the quickselect works in place, on a copy
        files.release(keys)                                   # keys spilled to a file: drop the pages read
    _quickselect(ctx, vals, starts, ends, targets, trace, bits)
    return [vals[targets[np.searchsorted(wanted, np.asarray(r, dtype=np.int64) + j * n)]]
            for j, r in enumerate(ranks)]


SAMPLE_ABOVE = 1 << 12       # segments longer than this are cut by sample pivots first
SINGLE_ABOVE = 1 << 16      # in segments this long, a target away from the edges gets ONE pivot, not a bracket
EDGE = 0.1                   # "away from the edges": more than EDGE m ranks from both ends
SIGMAS = 2.5                 # half-width of a target's bracket, in sample standard deviations
SAMPLE_FACTOR = 1.0          # sample size s = SAMPLE_FACTOR m^(2/3) for a segment of m
MAX_CUTS = 6
SCRATCH_ABOVE = 1 << 20      # a cut's new arrangement of more elements goes to a scratch file (a spill directory)
OPEN_CHUNK = 1 << 20         # opened comparisons per call: bounds the comparison's temporaries


def _less_open(ctx: Context, d: np.ndarray, bits: int) -> np.ndarray:
    """[d < 0] opened (``compare.ltz_open``), OPEN_CHUNK elements per call, for differences
    d = K_e - K_p of keys in [0, 2^bits). The bound: |d| <= 2^bits - 1, so d is a signed
    (bits + 1)-bit integer and its sign is bit ``bits`` of d mod 2^(bits + 1) -- equivalently
    d + 2^bits lies in [1, 2^(bits + 1)), so bits above ``bits`` of it are 0 and bit
    ``bits`` alone says d >= 0. That bit of the shares' sum mod 2^64 is bit ``bits`` of
    each share xor the carry out of their ``bits`` low bits (a carry only runs upwards,
    so the shares' higher bits, uniform noise, never matter): a millionaire on ``bits``
    bits instead of 63 (``ltz_open(bits=bits + 1)``, :meth:`OtSource.msb_xor`)."""
    out = [compare.ltz_open(ctx, d[i:i + OPEN_CHUNK], bits + 1) for i in range(0, max(d.size, 1), OPEN_CHUNK)]
    ctx.renew_deadline()                     # a piece of comparisons done: progress (the job's timeout)
    return out[0] if len(out) == 1 else np.concatenate(out)


def _live(starts: np.ndarray, ends: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The segments [starts, ends) that hold a target and more than one element, in order."""
    keep = (np.searchsorted(targets, ends) > np.searchsorted(targets, starts)) & (ends - starts > 1)
    order = np.argsort(starts[keep], kind="stable")
    return starts[keep][order], ends[keep][order]


def _quickselect(ctx: Context, vals: np.ndarray, starts: np.ndarray, ends: np.ndarray, targets: np.ndarray,
                 trace: list[np.ndarray] | None, bits: int) -> None:
    """Quickselect in place on the segments [starts, ends) of ``vals`` until every target
    position holds its order statistic: every active segment takes its first element as
    pivot, compares all its others with it in ONE batched opened comparison per round, and
    is stably partitioned (smaller, pivot, larger)."""
    starts, ends = _live(starts, ends, targets)
    while starts.size:
        sizes = ends - starts - 1                            # elements compared with each pivot
        seg = np.repeat(np.arange(starts.size), sizes)
        first = np.cumsum(sizes) - sizes                     # offset of each segment's elements
        pos = starts[seg] + np.arange(seg.size) - first[seg] + 1
        moved = vals[pos]
        lt = _less_open(ctx, moved - vals[starts[seg]], bits)
        if trace is not None:
            trace.append(lt)
        n_less = np.bincount(seg, weights=lt, minlength=starts.size).astype(np.int64)
        c_less = np.cumsum(lt) - lt                          # smaller ones before, counted globally
        c_more = np.cumsum(~lt) - ~lt
        new_pos = np.where(lt, starts[seg] + c_less - c_less[first][seg],
                           starts[seg] + n_less[seg] + 1 + c_more - c_more[first][seg])
        pivot_pos = starts + n_less
        pivots = vals[starts]
        vals[new_pos] = moved
        vals[pivot_pos] = pivots
        starts, ends = _live(np.concatenate([starts, pivot_pos + 1]), np.concatenate([pivot_pos, ends]), targets)


def _sample_cut(ctx: Context, vals: np.ndarray, starts: np.ndarray, ends: np.ndarray, targets: np.ndarray,
                trace: list[np.ndarray] | None, bits: int, directory: Any = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut every segment longer than SAMPLE_ABOVE by pivots from a sample (Floyd-Rivest):
    its first s = m^(2/3) elements (a uniform sample, the order being random) are
    quickselected (on a copy) at the sample ranks r s / m -+ (SIGMAS sigma + 1) around each
    target rank r, sigma = sqrt(s q (1 - q)); then every element of the segment finds its
    bucket among those pivots by a search of opened comparisons (``_search_tree``), one
    batched comparison per level for all segments, stopping as soon as its interval of
    buckets holds no target's bracket. In a segment of at least SINGLE_ABOVE elements a
    target more than EDGE m from both ends gets one pivot at its sample rank r s / m
    instead (both buckets beside it are wanted): the elements between targets take one
    comparison fewer, and the next cut finds the target in the one bucket it fell in,
    now near that bucket's edge, where a bracket costs one comparison per element
    (plaintext count at n = 2^19, 12 runs: describe's six ranks 2.94 n instead of 3.00 n,
    with min and max 3.41 n instead of 3.48 n). Adjacent single-pivot targets (a linear
    quantile's two neighbours) whose sample ranks fall one step apart share one pivot: two
    pivots one sample rank apart made every bucket wanted, in about a third of all sizes
    (describe's eight ranks at 400000 rows 4.19 n before, 3.44 n after; at 2^16 4.30 n,
    3.56 n). The segment is rearranged stably by final interval (each a
    contiguous range of ranks), into a new arrangement of what is read again (step 4).
    Returns it, its segments (those not cut are kept) and the targets' positions in it."""
    sizes = ends - starts
    big = np.flatnonzero(sizes > SAMPLE_ABOVE)
    keep_s, keep_e = starts[sizes <= SAMPLE_ABOVE], ends[sizes <= SAMPLE_ABOVE]
    # 1. pivot sample ranks of each big segment
    samp_sizes, piv_ranks, wanted = [], [], []
    for i in big:
        m = int(sizes[i])
        s = min(m // 2, max(64, round(SAMPLE_FACTOR * m ** (2 / 3))))
        r = targets[(targets >= starts[i]) & (targets < ends[i])] - starts[i]
        q = r / (m - 1)
        half = SIGMAS * np.sqrt(s * q * (1 - q)) + 1
        lo = np.floor(r * (s - 1) / (m - 1) - half).astype(np.int64)
        hi = np.ceil(r * (s - 1) / (m - 1) + half).astype(np.int64)
        one = (m >= SINGLE_ABOVE) & (np.minimum(r, m - 1 - r) > m * EDGE)
        mid = np.floor(r * (s - 1) / (m - 1)).astype(np.int64)
        # adjacent targets (a linear quantile's two neighbours) whose sample ranks straddle a
        # step share one pivot: both lie beside it anyway, and two pivots one sample rank
        # apart would make every bucket between and beside them wanted
        near = one & np.concatenate([[False], one[:-1] & (np.diff(mid) <= 1)])
        mid = np.maximum.accumulate(np.where(near, -1, mid)) if near.any() else mid
        lo, hi = np.where(one, mid, lo), np.where(one, mid, hi)
        ranks = np.unique(np.concatenate([lo[lo >= 0], hi[hi < s]]))
        # bucket b holds the keys between pivots b - 1 and b; a target's bracket runs from the
        # bucket above its lo pivot to the one below its hi pivot
        b0 = np.where(lo >= 0, np.searchsorted(ranks, lo, side="right"), 0)
        b1 = np.where(hi < s, np.searchsorted(ranks, hi), len(ranks))
        b0, b1 = np.where(one, b0 - 1, b0), np.where(one, b1 + 1, b1)
        want = np.zeros(len(ranks) + 1, bool)
        for u, v in zip(b0, b1, strict=True):
            want[u:v + 1] = True
        samp_sizes.append(s)
        piv_ranks.append(ranks)
        wanted.append(want)
    samp_sizes = np.array(samp_sizes, np.int64)
    # 2. the pivots: quickselect on a copy of the samples
    s_starts = np.cumsum(samp_sizes) - samp_sizes
    sample = np.concatenate([vals[starts[i]:starts[i] + s] for i, s in zip(big, samp_sizes, strict=True)])
    s_targets = np.concatenate([r + o for r, o in zip(piv_ranks, s_starts, strict=True)])
    _quickselect(ctx, sample, s_starts, s_starts + samp_sizes, s_targets, trace, bits)
    pivots = sample[s_targets]                                       # flat, segment by segment
    n_piv = np.array([len(r) for r in piv_ranks], np.int64)
    p_off = np.cumsum(n_piv) - n_piv
    w_cum = [np.concatenate([[0], np.cumsum(w)]) for w in wanted]    # wanted buckets in [lo, hi]
    w_off = np.cumsum([len(w) for w in w_cum]) - np.array([len(w) for w in w_cum])
    w_flat = np.concatenate(w_cum)
    # 3. search of every element of the big segments among its segment's pivots, by the
    # search tree of fewest expected comparisons given the sample's bucket sizes
    trees = [_search_tree(np.diff(np.concatenate([[-1], r, [s]])), w)
             for r, s, w in zip(piv_ranks, samp_sizes, wanted, strict=True)]
    t_off = np.cumsum([t.size for t in trees]) - np.array([t.size for t in trees])
    t_flat = np.concatenate([t.reshape(-1) for t in trees])
    # Per element of the big segments (e = 0..total - 1 in arrangement order) only its bucket
    # interval [lo, hi] is stored, in the narrowest unsigned type holding the pivot count (one
    # byte each for describe); its segment and position (e + shift[segment]) are derived per
    # piece of OPEN_CHUNK elements, so no whole-column temporary is made.
    e_len = sizes[big]
    e_off = np.cumsum(e_len) - e_len
    total = int(e_len.sum())
    shift = starts[big] - e_off
    pieces = [(a, min(total, a + OPEN_CHUNK)) for a in range(0, total, OPEN_CHUNK)]
    kind = np.min_scalar_type(int(n_piv.max()) + 1)
    lo, hi = np.zeros(total, kind), np.repeat(n_piv.astype(kind), e_len)

    def segment(e: np.ndarray) -> np.ndarray:
        return np.searchsorted(e_off, e, side="right") - 1

    def compare(ac: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: list[np.ndarray]) -> None:
        sa = segment(ac)
        lo_a, hi_a = lo[ac].astype(np.int64), hi[ac].astype(np.int64)
        mid = t_flat[t_off[sa] + lo_a * (n_piv[sa] + 1) + hi_a]
        lt = _less_open(ctx, vals[ac + shift[sa]] - pivots[p_off[sa] + mid], bits)
        hi[ac] = np.where(lt, mid, hi_a)
        lo[ac] = np.where(lt, lo_a, mid + 1)
        level.append(lt)
        files.release(vals)                  # spilled keys: drop the pages read

    while True:          # one level per round: the searching elements in order, OPEN_CHUNK per comparison call
        level: list[np.ndarray] = []
        waiting = np.zeros(0, np.int64)
        for a, b in pieces:          # an element's state changes only when it is compared: scan as we go
            e = np.arange(a, b)
            act = e[_searching(w_flat, w_off, segment(e), lo[a:b], hi[a:b])]
            waiting = np.concatenate([waiting, act]) if waiting.size else act
            while waiting.size >= OPEN_CHUNK:
                compare(waiting[:OPEN_CHUNK], lo, hi, level)
                waiting = waiting[OPEN_CHUNK:]
        if waiting.size:
            compare(waiting, lo, hi, level)
        if not level:
            break
        if trace is not None:
            trace.append(np.concatenate(level))
    # 4. stable rearrangement by interval (the intervals of one segment are disjoint): a
    # counting sort on the bucket number g = g_off[segment] + lo, piece by piece, element e
    # going to index g_first[g] + (its rank among g's elements), the order np.lexsort((lo,
    # segment)) gives. Only what is read again is kept, in a new arrangement (the position
    # order of the old one): the buckets that hold a target, the segments not cut and the
    # targets already in place (in no segment); ``vals`` itself is only read. A large one
    # goes to a scratch file of ``directory`` (the job's spill directory), pages dropped
    # piece by piece, so neither arrangement is held whole in memory.
    del hi
    n_buckets = n_piv + 1
    g_off = np.cumsum(n_buckets) - n_buckets
    counts = np.zeros(int(n_buckets.sum()), np.int64)
    for a, b in pieces:
        counts += np.bincount(g_off[segment(np.arange(a, b))] + lo[a:b], minlength=counts.size)
    g_first = np.cumsum(counts) - counts + shift[np.repeat(np.arange(len(big)), n_buckets)]   # in ``vals``
    held = (np.searchsorted(targets, g_first + counts) > np.searchsorted(targets, g_first)) & (counts > 0)
    inside = np.searchsorted(starts, targets, side="right") - 1
    placed = (inside < 0) | (targets >= ends[np.maximum(inside, 0)])
    firsts = np.concatenate([keep_s, g_first[held], targets[placed]])
    lens = np.concatenate([keep_e - keep_s, counts[held], np.ones(int(placed.sum()), np.int64)])
    by_first = np.argsort(firsts, kind="stable")
    new_first = np.empty_like(firsts)
    new_first[by_first] = np.cumsum(lens[by_first]) - lens[by_first]
    size = int(lens.sum())
    out = (files.scratch(directory, (size,), np.uint64) if directory is not None and size > SCRATCH_ABOVE
           else np.empty(size, np.uint64))
    copied = np.concatenate([np.arange(len(keep_s)), len(keep_s) + int(held.sum()) + np.arange(int(placed.sum()))])
    for a, b in _runs(lens[copied], OPEN_CHUNK):         # the segments not cut and the placed targets
        at = _spans(new_first[copied[a:b]], lens[copied[a:b]])
        out[at] = vals[_spans(firsts[copied[a:b]], lens[copied[a:b]])]
    fill = np.full(counts.size, -1, np.int64)
    fill[held] = new_first[len(keep_s):len(keep_s) + int(held.sum())]
    for a, b in pieces:
        e = np.arange(a, b)
        sa = segment(e)
        g = g_off[sa] + lo[a:b]
        mine = fill[g] >= 0
        e, sa, g = e[mine], sa[mine], g[mine]
        o = np.argsort(g, kind="stable")
        gs = g[o]
        out[fill[gs] + np.arange(gs.size) - np.searchsorted(gs, gs)] = vals[e[o] + shift[sa[o]]]
        fill[held] += np.bincount(g, minlength=counts.size)[held]
        files.release(vals)
        files.release(out)
    del lo, fill
    remap = by_first[np.searchsorted(firsts[by_first], targets, side="right") - 1]   # the piece holding each target
    new_targets = new_first[remap] + targets - firsts[remap]
    cut = np.concatenate([np.arange(len(keep_s)), len(keep_s) + np.arange(int(held.sum()))])
    return out, new_first[cut], new_first[cut] + lens[cut], new_targets


def _spans(firsts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """The indices of the ranges [firsts[i], firsts[i] + lens[i]), concatenated."""
    total = int(lens.sum())
    return np.repeat(firsts - (np.cumsum(lens) - lens), lens) + np.arange(total)


def _runs(lens: np.ndarray, most: int) -> list[tuple[int, int]]:
    """Consecutive groups [a, b) of the ranges of ``lens`` of at most ``most`` elements each
    (a longer range alone)."""
    out, a, total = [], 0, 0
    for i, m in enumerate(lens.tolist()):
        if total and total + m > most:
            out.append((a, i))
            a, total = i, 0
        total += m
    if a < len(lens):
        out.append((a, len(lens)))
    return out


def _searching(w_flat: np.ndarray, w_off: np.ndarray, seg: np.ndarray, lo: np.ndarray, hi: np.ndarray
               ) -> np.ndarray:
    """Which elements still search: their bucket interval [lo, hi] holds more than one
    bucket and a wanted one (``w_flat``: each segment's running count of wanted buckets)."""
    base = w_off[seg]
    return (w_flat[base + hi + 1] > w_flat[base + lo]) & (lo < hi)


def _search_tree(mass: np.ndarray, want: np.ndarray) -> np.ndarray:
    """The pivot to compare with next, best[lo, hi], for an element known to lie in buckets
    lo..hi (bucket b between pivots b - 1 and b; ``mass`` their expected sizes, ``want``
    those holding a target's bracket): the split of an optimal alphabetic search tree
    (dynamic programme over intervals, Knuth's optimal binary search trees, Acta Inf.
    1971) where a search stops as soon as its interval holds no wanted bucket. E.g.
    describe's ranks 0, n - 1 and the quartiles' neighbours: about 3.2 comparisons per
    element in the first cut instead of 3.5 by halving the pivot index. The tree is a
    function of public sample ranks and targets only."""
    k = len(mass)
    cum = np.concatenate([[0.0], np.cumsum(mass, dtype=np.float64)])
    wc = np.concatenate([[0], np.cumsum(want)])
    cost = np.zeros((k, k))
    best = np.zeros((k, k), np.int64)
    for length in range(1, k):
        lo = np.arange(k - length)
        hi = lo + length
        mids = lo[:, None] + np.arange(length)[None, :]
        c = cost[lo[:, None], mids] + cost[mids + 1, hi[:, None]]
        j = np.argmin(c, axis=1)
        live = wc[hi + 1] > wc[lo]
        cost[lo, hi] = np.where(live, cum[hi + 1] - cum[lo] + c[np.arange(len(lo)), j], 0.0)
        best[lo, hi] = lo + j
    return best


def _larger(ctx: Context, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shares of max(u, v) elementwise: u + [u < v] (v - u), the bit XOR-shared (``msb_xor``
    of u - v) and multiplied in by the multiplexer (``compare.mux_xor``), no daBit."""
    return u + compare.mux_xor(ctx, compare.msb_xor(ctx, u - v), v - u)


def extremes(x: SharedTensor) -> tuple[SharedTensor, SharedTensor]:
    """(min, max) of each row of ``x`` (c, n), values |x| < 2^62; exact, reveals nothing.
    As ``ss.min_max`` (one comparison per pair splits the rows into larger and smaller
    halves, then one tournament over both), 1.5 n comparisons per row in ceil(log2 n) + 1
    rounds, but each round's comparison outcome stays XOR-shared and selects by the
    multiplexer (one random OT each way per element with the OT source) instead of a daBit
    and a Gilboa multiplication (128 correlated OTs)."""
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"extremes needs a (rows, n) SharedTensor with n > 0, got shape {x.shape}")
    ctx, v = x.ctx, x.share
    c, n = v.shape
    h = n // 2
    hi = lo = v
    if h:
        a, b = v[:, 0:2 * h:2], v[:, 1:2 * h:2]
        hi = _larger(ctx, a, b)
        lo = a + b - hi
        if n % 2:
            hi, lo = np.concatenate([hi, v[:, -1:]], axis=1), np.concatenate([lo, v[:, -1:]], axis=1)
    w = np.concatenate([hi, np.uint64(0) - lo])                    # max of both halves at once
    while w.shape[1] > 1:
        h = w.shape[1] // 2
        top = _larger(ctx, w[:, 0:2 * h:2], w[:, 1:2 * h:2])
        w = np.concatenate([top, w[:, -1:]], axis=1) if w.shape[1] % 2 else top
    return x._new(np.uint64(0) - w[c:, 0]), x._new(w[:c, 0])


# -- tensor level ------------------------------------------------------------------------------

def count_greater(t: SharedTensor, y: SharedTensor) -> SharedTensor:
    """Shares of #{j : y_ij > t_i} for each row i (t: (M,), y: (M, n) or (n,)), in chunks of
    about CHUNK_ELEMENTS comparisons so memory stays bounded. Reveals nothing."""
    m, n = t.shape[0], y.shape[-1]
    step = max(1, CHUNK_ELEMENTS // max(m, 1))
    col = t.reshape(m, 1)
    total = None
    for s in range(0, n, step):
        part = (col < y[..., s:s + step]).sum(axis=1)
        total = part if total is None else total + part
    return total


def secret_search(y: SharedTensor, ks: np.ndarray | SharedTensor, bits: int) -> SharedTensor:
    """The ks[i]-th smallest (0-based) of row i of y (M, n), integers in [0, 2^bits): the
    answer is found bit by bit with a secret threshold t (count the rows <= t, compare the
    count with k + 1); n comparisons per row and bit, nothing opened. ``ks`` public ints,
    or shares when the ranks are secret too (per-group quantiles, protocols.sql.quantiles)."""
    m, n = y.shape
    a = public(y.ctx, np.zeros(m, np.int64))
    for j in range(bits - 1, -1, -1):
        t = a + ((1 << j) - 1)
        le = n - count_greater(t, y)                  # count(y <= t)
        a = a + ((le < ks + 1) << j)                  # the answer is above t
    return a


def smallest(y: SharedTensor, ranks: Sequence[np.ndarray], range_bits: Sequence[int],
             keys: SharedTensor | None = None, label_bits: Sequence[int] | None = None,
             compare_bits: int | None = None) -> list[SharedTensor]:
    """The ``ranks[i]``-th smallest values (0-based, each an int array) of row i of ``y``
    (c, n): integers in [0, 2^range_bits[i]) (public bounds). Exact.

    With a source that shuffles and keys that fit (``fits``): quickselect on ``keys``, the row's
    shuffled distinct keys (``shuffled_keys(y)``, or ``ordered_keys``; pass the same keys
    again to reuse the shuffle; ``label_bits``: row i's tie-break bits L_i, ``key_bits(n)``
    when None; ``compare_bits``: for keys of owner ranks (``ranked_keys``), the ranks' bits
    R, on which every comparison then runs, instead of the keys' full width). Else the
    secret bitwise search, over the public widest range, or a fixed 62 bits with the
    dealer (the number of rounds would tell it the range's bit length).
    """
    n = y.shape[1]
    if keys is not None:
        lows = [key_bits(n)] * len(ranks) if label_bits is None else [int(b) for b in label_bits]
        bound = max(int(b) + lb for b, lb in zip(range_bits, lows, strict=True))   # keys < 2^bound (<= 62)
        width = bound if compare_bits is None else int(compare_bits)
        found = select(y.ctx, keys.share, [np.asarray(r) for r in ranks], bits=min(62, max(2, width)))
        per_key = np.concatenate([np.full(len(r), lb, np.int64) for r, lb in zip(ranks, lows, strict=True)])
        vals = values_of(y.ctx, np.concatenate(found), n, per_key)
        return _split(y._new(vals, 0), ranks)
    owner = np.concatenate([np.full(len(r), i, np.int64) for i, r in enumerate(ranks)])
    bits = 62 if source_kind(y.ctx.options) == DEALER else max(int(b) for b in range_bits)
    return _split(secret_search(y[owner], np.concatenate(ranks), bits), ranks)


def shuffled_keys(y: SharedTensor) -> SharedTensor:
    """The distinct keys y * 2^L + j of each row of ``y`` (c, n), every row under its own
    oblivious permutation (needs a source that shuffles: the dealer or "ot"); for ``smallest``."""
    return y._new(shuffled(y.ctx, keys_of(y.ctx, y.share)), 0)


class RowOrder:
    """The rows of a table in a uniformly random order that no party knows and that does
    not depend on the values (the dealer-free circuit join's compaction,
    :mod:`mpc.ss.circuit_join`), with a secret distinct label per row, fixed before that
    order was drawn: shares (n,) of integers below 2^``bits`` (public). ONE column's
    selection may run on this order instead of a shuffle, its keys y * 2^bits + label
    (``ordered_keys``); a second column on the same order would let the outcomes tell the
    two columns' rank correlation, so :meth:`claim` hands the labels out once. Why this is
    as good as the shuffle: the module docstring."""

    def __init__(self, label: np.ndarray, bits: int) -> None:
        self._label = np.ascontiguousarray(label, dtype=np.uint64)
        self.bits = int(bits)
        self.claimed = False

    def __len__(self) -> int:
        return self._label.shape[0]

    def fits(self, range_bits: int) -> bool:
        """Whether keys of values in [0, 2^range_bits) with these labels stay below 2^62."""
        return int(range_bits) + self.bits <= 62

    def claim(self) -> np.ndarray:
        """This party's shares of the labels; the order is used up (a second call raises)."""
        if self.claimed:
            raise RuntimeError("this row order was already used by one column's selection")
        self.claimed = True
        return self._label


_ORDERS = "mpc.ss.order.row_orders"      # job state: id(tensor) -> (tensor, RowOrder)


def note_order(t: SharedTensor, order: RowOrder | None) -> SharedTensor:
    """Record that the rows of ``t`` (a table's column) are in ``order`` (for ``order_of``)."""
    if order is not None:
        t.ctx.state.setdefault(_ORDERS, {})[id(t)] = (t, order)
    return t


def order_of(t: SharedTensor) -> RowOrder | None:
    """The :class:`RowOrder` noted for this very tensor in this job, or None."""
    hit = t.ctx.state.get(_ORDERS, {}).get(id(t))
    return hit[1] if hit is not None and hit[0] is t else None


_RANKS = "mpc.ss.order.owner_ranks"      # job state: id(tensor) -> (tensor, rank tensor, bits)


def owner_ranks(values: np.ndarray) -> np.ndarray:
    """Each row's rank (0..n-1) in a party's own plaintext column of signed ring integers,
    ties by input order: distinct, and ordered like the values (for ``ranked_keys``)."""
    out = np.empty(len(values), np.uint64)
    order = np.argsort(np.asarray(values, dtype=np.uint64).view(np.int64), kind="stable")
    out[order] = np.arange(len(values), dtype=np.uint64)
    return out


def rank_words(ranks: Any, n: int, rows: int, what: str = "column") -> np.ndarray:
    """A party's owner ranks given for n rows (ranks among ``rows`` >= n, e.g. in its whole
    column when a join sees part of it) as ring words, checked: n integers in [0, rows)."""
    r = np.asarray(ranks)
    if r.shape != (n,) or r.dtype.kind not in "iu" or (n and (int(r.min()) < 0 or int(r.max()) >= rows)):
        raise ValueError(f"the ranks of {what} must be {n} integers in [0, {rows})")
    return np.ascontiguousarray(r, dtype=np.uint64)


def note_rank(t: SharedTensor, rank: SharedTensor | None, bits: int = 0) -> SharedTensor:
    """Record, for the column ``t`` of a join, the shares (n,) of each row's rank in its
    owner's whole input column (``owner_ranks``: distinct integers below 2^``bits``, public)."""
    if rank is not None:
        t.ctx.state.setdefault(_RANKS, {})[id(t)] = (t, rank, int(bits))
    return t


def rank_of(t: SharedTensor) -> tuple[SharedTensor, int] | None:
    """The owner ranks noted for ``t`` (``note_rank``): (shares, bits), or None."""
    hit = t.ctx.state.get(_RANKS, {}).get(id(t))
    return (hit[1], hit[2]) if hit is not None and hit[0] is t else None


def ranked_keys(y: SharedTensor, ranks: Sequence[SharedTensor], bits: int,
                orders: Sequence[RowOrder | None] | None = None) -> SharedTensor:
    """The keys K = y * 2^(bits + 1) + rho of each row of ``y`` (c, n), y >= 0, for owner
    ranks rho (``ranks[i]``: shares (n,) of distinct integers below 2^``bits``, ranks of row
    i's own order: y_a < y_b implies rho_a < rho_b), each row under its own shuffle, except
    the first whose ``orders`` entry is an unclaimed RowOrder of n rows: it claims it and
    keeps the table's order (one column per order, as ``ordered_keys``). K orders like rho,
    and a difference K_e - K_p is (y_e - y_p) 2^(bits + 1) + (rho_e - rho_p) with
    |rho_e - rho_p| < 2^bits, so its low bits + 1 bits are rho_e - rho_p in two's
    complement: its sign is bit ``bits`` of d mod 2^(bits + 1), exactly what
    ``_less_open(d, bits)`` computes (a millionaire on ``bits`` bits, 26 random OTs at bits
    = 20 instead of 81 for 61-bit keys); ``values_of`` with label bits ``bits + 1`` gives y
    back. See the module docstring, "Owner ranks"."""
    c, n = y.shape
    keys = (y.share << np.uint64(bits + 1)) + np.stack([r.share for r in ranks])
    orders = list(orders) if orders is not None else [None] * c
    mine = next((i for i, o in enumerate(orders) if o is not None and not o.claimed and len(o) == n), None)
    out = np.empty_like(keys)
    if mine is not None:           # already in the join's uniform order: no shuffle (module docstring)
        orders[mine].claim()
        out[mine] = keys[mine]
    rest = [i for i in range(c) if i != mine]
    if rest:
        out[rest] = shuffled(y.ctx, keys[rest])
    return y._new(out, 0)


def claimant(n: int, range_bits: Sequence[int], orders: Sequence[RowOrder | None] | None) -> int | None:
    """The row that ``ordered_keys`` lets keep its table's order: among the rows whose order
    is unclaimed, as long as the rows (n) and fitting their range bits, the first whose keys
    with the order's labels are no wider than the other rows' (so no comparison gets
    dearer), else the first; None when there is none. A function of public sizes only."""
    fit = [i for i, o in enumerate(orders or [])
           if o is not None and not o.claimed and len(o) == n and o.fits(int(range_bits[i]))]
    for i in fit:
        others = [int(b) + key_bits(n) for j, b in enumerate(range_bits) if j != i]
        if others and int(range_bits[i]) + orders[i].bits <= max(others):
            return i
    return fit[0] if fit else None


def comparison_cost(bits: int) -> int:
    """Random OTs (both directions) of one opened comparison of keys below 2^bits with the
    OT source (``_less_open``: the millionaire on ``bits`` bits), a cost model for grouping."""
    from mpc.ss.millionaire import ots_per_element
    return sum(ots_per_element(min(62, max(2, int(bits)))))


def ordered_keys(y: SharedTensor, range_bits: Sequence[int], orders: Sequence[RowOrder | None] | None = None
                 ) -> tuple[SharedTensor, list[int]]:
    """The distinct keys of each row of ``y`` (c, n) for ``smallest`` and their label bits:
    the row ``claimant`` picks claims its ``orders[i]`` and keeps the table's order, its
    keys y * 2^bits + label (no shuffle); every other row gets ``shuffled_keys``' row index
    and its own shuffle."""
    c, n = y.shape
    lows = [key_bits(n)] * c
    mine = claimant(n, range_bits, orders)
    if mine is None:
        return shuffled_keys(y), lows
    order = orders[mine]
    lows[mine] = order.bits
    rest = [i for i in range(c) if i != mine]
    out = np.empty((c, n), np.uint64)
    out[mine] = keys_of(y.ctx, y.share[mine], order.claim(), order.bits)
    if rest:
        out[rest] = shuffled(y.ctx, keys_of(y.ctx, y.share[rest]))
    return y._new(out, 0), lows


def dealer_free(ctx: Context) -> bool:
    """Whether the job's randomness comes from no dealer (a dealer deals the shuffles'
    permutations, so it would see selection round sizes of an order it knows)."""
    return source_kind(ctx.options) != DEALER


def can_select(ctx: Context, n: int, range_bits: Sequence[int]) -> bool:
    """Whether ``smallest`` may use quickselect: a source that shuffles, and keys below 2^62."""
    return available(ctx) and all(fits(n, int(b)) for b in range_bits)


def next_values(y: SharedTensor, owner: np.ndarray, v: SharedTensor, hi: np.ndarray,
                range_bits: Sequence[int]) -> SharedTensor:
    """The hi[i]-th smallest values of rows owner[i] of ``y`` (c, n) given v[i], their
    (hi[i] - 1)-th or hi[i]-th: v itself when at least hi + 1 values are <= v, else the
    smallest value above v. 2 comparisons per row instead of one per row and bit of a
    second ``smallest`` by the bitwise search."""
    ys = y[owner]
    m, n = ys.shape
    step = max(1, CHUNK_ELEMENTS // m)
    big = np.array([1 << int(range_bits[i]) for i in owner], dtype=np.int64)[:, None]
    above_count, masked = None, []
    for s in range(0, n, step):                                        # chunks bound the memory
        part = ys[:, s:s + step]
        above = v.reshape(m, 1) < part                                 # [y > v]
        cnt = above.sum(axis=1)
        above_count = cnt if above_count is None else above_count + cnt
        masked.append(big + above * (part - big))                      # y if y > v else 2^b
    nxt = concatenate(masked, axis=1).min(axis=1)
    enough = (n - above_count) < hi + 1                                # fewer than hi + 1 are <= v
    return v + enough * (nxt - v)


def _split(t: SharedTensor, ranks: Sequence[np.ndarray]) -> list[SharedTensor]:
    bounds = np.cumsum([0] + [len(r) for r in ranks])
    return [t[bounds[i]:bounds[i + 1]] for i in range(len(ranks))]


def positions(n: int, qs: Any, method: str = "linear") -> np.ndarray:
    """The ranks (0-based, sorted, unique) whose order statistics ``quantile(x, qs,
    method)`` reads for n rows (to select them beforehand, see ``known``)."""
    lo, hi, _ = _positions(n, np.asarray(qs, dtype=np.float64).ravel(), method)
    return np.unique(np.concatenate([lo, hi]))


def _positions(n: int, qs: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """numpy's ranks for ``method``: (lo, hi, weights t * 2^INTERP_BITS or None when no
    value is interpolated)."""
    h = (n - 1) * qs
    if method == "lower":
        lo = hi = np.floor(h)
    elif method == "higher":
        lo = hi = np.ceil(h)
    elif method == "nearest":
        lo = hi = np.around(h)
    elif method == "linear":
        lo, hi = np.floor(h), np.minimum(np.floor(h) + 1, n - 1)
    else:
        raise ValueError(f"unknown quantile method {method!r}")
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    if method != "linear" or np.all(h == lo):
        return lo, lo, None
    return lo, hi, np.round((h - lo) * 2 ** INTERP_BITS).astype(np.int64)


def quantile(x: SharedTensor, q: Any, method: str = "linear", is_sorted: bool = False, *,
             low: SharedTensor | None = None, range_bits: Sequence[int] | None = None,
             keys: SharedTensor | None = None, extra_bits: Any = None,
             known: Mapping[int, SharedTensor] | None = None,
             label_bits: Sequence[int] | None = None, compare_bits: int | None = None) -> SharedTensor:
    """Quantiles ``q`` in [0, 1] of a 1-D SharedTensor, or of each row of a 2-D one, with
    numpy's ``method`` (linear, lower, higher, nearest); shape (*rows, *q.shape). Exact
    for lower/higher/nearest; ``linear`` within one unit of the result's scale.

    How the order statistics are found (module docstring): ``is_sorted=True`` indexes x;
    ``low`` (shares of each row's minimum) with ``range_bits`` (public b with
    x - low < 2^b per row) selects them, by quickselect on ``keys`` (``shuffled_keys(x -
    low)``, computed here when None and the dealer is there and they fit; or
    ``ordered_keys``, with their ``label_bits``) or the secret bitwise search; else x is
    sorted (``ss.sort``). ``extra_bits`` (int, or one per row): fractional bits the result
    carries beyond x's, 0 by default (the job's frac_bits for an interpolated integer
    tensor); a scalar adds to ``frac_bits``, an array leaves
    ``frac_bits`` as x's and row i's ring integers carry extra_bits[i] more. ``known``:
    rank -> (rows,) shares of x's order statistics found beforehand (e.g. in one selection
    with min and max); when it holds every rank the method needs, nothing is selected.
    ``compare_bits``: ``keys`` are owner-rank keys of that many rank bits (``ranked_keys``,
    with ``label_bits`` R + 1), every comparison on those bits.
    Reveals nothing but shapes (and, with keys, the quickselect's outcomes, which are
    independent of the data).
    """
    if x.ndim not in (1, 2):
        raise ValueError("quantile needs a 1-D SharedTensor or a 2-D one (quantiles of each row)")
    qs = np.asarray(q, dtype=np.float64)
    if np.any(~np.isfinite(qs)) or np.any((qs < 0) | (qs > 1)):
        raise ValueError("quantiles must be in [0, 1]")
    if method not in METHODS:
        raise ValueError(f"unknown quantile method {method!r}")
    n = x.shape[-1]
    if n == 0:
        raise ValueError("quantile of an empty SharedTensor")
    rows = x.reshape(-1, n)
    c = rows.shape[0]
    lo, hi, t = _positions(n, qs.ravel(), method)
    if known is not None and all(int(r) in known for r in np.concatenate([lo, hi])):
        v_lo = ss_stack([known[int(r)].reshape(c) for r in lo], axis=1)
        v_hi = ss_stack([known[int(r)].reshape(c) for r in hi], axis=1)
    elif is_sorted or low is None:
        s = rows if is_sorted else sort(rows)
        v_lo, v_hi = s[:, lo], s[:, hi]
    else:
        y = rows - low.reshape(c, 1)
        y_lo, y_hi = _order_values(y, lo, hi if t is not None else None, range_bits, keys, label_bits,
                                   compare_bits)
        v_lo = y_lo + low.reshape(c, 1)
        v_hi = None if y_hi is None else y_hi + low.reshape(c, 1)
    if extra_bits is None:
        extra_bits = x.working_bits if t is not None and not x.is_fixed else 0
    e = np.asarray(extra_bits, dtype=np.int64)
    frac = x.frac_bits + int(e) if e.ndim == 0 else x.frac_bits
    e = e.reshape(-1, 1) if e.ndim else e
    if t is None:
        out = v_lo << e
    else:
        big = (v_hi - v_lo) << e
        d_hi = big >> INTERP_BITS
        d_lo = big - (d_hi << INTERP_BITS)
        out = (v_lo << e) + d_hi * t + ((d_lo * t) >> INTERP_BITS)
    return out.with_frac_bits(frac).reshape(x.shape[:-1] + qs.shape)


def _order_values(y: SharedTensor, lo: np.ndarray, hi: np.ndarray | None, range_bits: Sequence[int] | None,
                  keys: SharedTensor | None, label_bits: Sequence[int] | None = None,
                  compare_bits: int | None = None) -> tuple[SharedTensor, SharedTensor | None]:
    """The lo-th (and hi-th) smallest of each row of y (c, n), values in [0, 2^range_bits)."""
    c, n = y.shape
    rbs = [62] * c if range_bits is None else [int(b) for b in range_bits]
    if keys is None and can_select(y.ctx, n, rbs):
        keys, label_bits = shuffled_keys(y), None
    if keys is not None:
        ranks = np.unique(np.concatenate([lo] if hi is None else [lo, hi]))
        found = ss_stack(smallest(y, [ranks] * c, rbs, keys=keys, label_bits=label_bits, compare_bits=compare_bits))
        return found[:, np.searchsorted(ranks, lo)], (None if hi is None else found[:, np.searchsorted(ranks, hi)])
    ranks = np.unique(lo)
    found = ss_stack(smallest(y, [ranks] * c, rbs))
    v_lo = found[:, np.searchsorted(ranks, lo)]
    if hi is None:
        return v_lo, None
    owner = np.repeat(np.arange(c), len(hi))
    v_hi = next_values(y, owner, v_lo.reshape(-1), np.tile(hi, c), rbs)
    return v_lo, v_hi.reshape(c, len(hi))


def median(x: SharedTensor) -> SharedTensor:
    """Median of a 1-D SharedTensor (numpy's definition)."""
    return quantile(x, 0.5)
