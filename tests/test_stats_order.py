"""Shuffle + quickselect (protocols/stats/order.py) against numpy, with ties and edge sizes."""

from __future__ import annotations

import numpy as np
import pytest

import mpc
from mpc import ss
from mpc.ss import order as engine
from protocols.stats import order


def _select_job(ctx, data, ranks):
    y = ss.share(ctx, data if ctx.party == "alice" else None, "alice").share      # ints >= 0
    trace: list[np.ndarray] = []
    keys = order.shuffled(ctx, order.keys_of(ctx, y))
    found = order.select(ctx, keys, ranks, trace=trace)
    vals = order.values_of(ctx, np.concatenate(found), y.shape[1])
    return ss.from_shares(ctx, vals, 0).reveal(), [len(t) for t in trace]


def _run(data, ranks, parties=("alice", "bob"), triples="dealer"):
    out = mpc.run_local(_select_job, list(parties), args={p: (data, ranks) for p in parties}, timeout=120,
                        triples=triples)
    vals, trace = out[parties[0]]
    assert all(out[p][1] == trace for p in parties)          # every party saw the same outcomes
    return np.asarray(vals, dtype=np.int64), trace


@pytest.mark.parametrize("triples", ["dealer", "ot"])
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000])
def test_select_matches_sort_with_ties_and_distinct(n, triples):
    rng = np.random.default_rng(n)
    data = np.stack([rng.integers(0, 4, n), rng.permutation(n) * 3, np.full(n, 5), rng.integers(0, 1 << 40, n)])
    ranks = [np.unique(rng.integers(0, n, 5)) for _ in range(4)]
    ranks[1] = np.arange(n)                                  # every rank of one column: a full sort
    got, _ = _run(data.astype(np.int64), ranks, triples=triples)
    want = np.concatenate([np.sort(row)[r] for row, r in zip(data, ranks, strict=True)])
    np.testing.assert_array_equal(got, want)


def test_select_three_parties():
    data = np.random.default_rng(3).integers(0, 3, (2, 301))
    ranks = [np.array([0, 75, 150, 151, 300])] * 2
    got, _ = _run(data, ranks, ("alice", "bob", "carol"))
    np.testing.assert_array_equal(got, np.concatenate([np.sort(row)[ranks[0]] for row in data]))


@pytest.mark.parametrize("triples", ["dealer", "ot"])
def test_ties_do_not_degenerate_the_pivots(triples):
    """A constant column needs as few rounds as distinct values: the secret row-index
    tie-break keeps the order of the keys random (a public tie-break would not)."""
    n = 2000
    ranks = [np.array([0, 499, 500, 999, 1000, 1499, 1500, n - 1])]
    _, rounds_const = _run(np.full((1, n), 7), ranks, triples=triples)
    _, rounds_distinct = _run(np.random.default_rng(0).permutation(n)[None, :], ranks, triples=triples)
    assert len(rounds_const) < 80 and len(rounds_distinct) < 80
    assert sum(rounds_const) < 12 * n


def test_bad_ranks():
    def job(ctx):
        keys = np.zeros((1, 4), np.uint64)
        with pytest.raises(ValueError, match=r"ranks must be in \[0, 4\)"):
            order.select(ctx, keys, [np.array([4])])
        with pytest.raises(ValueError, match="2 rank lists for 1 columns"):
            order.select(ctx, keys, [np.array([0])] * 2)
        return True

    assert all(mpc.run_local(job, ["alice", "bob"], timeout=30).values())


def test_fits():
    assert order.key_bits(1) == 1 and order.key_bits(1 << 19) == 19 and order.key_bits((1 << 19) + 1) == 20
    assert order.fits(1 << 19, 43) and not order.fits(1 << 19, 44)


def test_ltz_open_matches_numpy_sign():
    from mpc.ss import compare
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(-(1 << 61) + 1, 1 << 61, 1000), [0, -1, 1, -(1 << 61) + 1, (1 << 61) - 1]])

    def job(ctx):
        t = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
        doubled = t.share.reshape(5, -1) << np.uint64(1)                   # up to 2^62 in magnitude
        return compare.ltz_open(ctx, doubled), compare.ltz_open(ctx, np.zeros(0, np.uint64))

    out = mpc.run_local(job, ["alice", "bob", "carol"], timeout=60)
    for got, empty in out.values():
        np.testing.assert_array_equal(got, (x < 0).reshape(5, -1))
        assert empty.shape == (0,) and empty.dtype == bool



def _row_order_job(ctx, data, label, rbs, ranks):
    y = ss.share(ctx, data if ctx.party == "alice" else None, "alice")
    lab = ss.share(ctx, label if ctx.party == "alice" else None, "alice").share
    row_order = engine.RowOrder(lab, engine.key_bits(700))         # labels below n_A = 700
    keys, lows = engine.ordered_keys(y, rbs, [row_order] * len(rbs))
    with pytest.raises(RuntimeError, match="already used"):
        row_order.claim()
    again, lows_again = engine.ordered_keys(y, rbs, [row_order] * len(rbs))   # used up: every row shuffled
    found = [ss.stack(engine.smallest(y, ranks, rbs, keys=k, label_bits=lb)) for k, lb in
             ((keys, lows), (again, lows_again))]
    return [f.reveal() for f in found], lows, lows_again


def test_row_order_is_claimed_once_by_the_first_row_that_fits(monkeypatch):
    """ordered_keys: row 0's range is too wide for the order's label bits, so row 1 keeps
    the order (keys y 2^bits + label, no shuffle) and rows 0 and 2 are shuffled; the order
    is then used up. Both selections equal numpy, with ties."""
    calls: dict[str, list[int]] = {}
    real = engine.shuffled

    def counted(ctx, x):
        calls.setdefault(ctx.party, []).append(x.shape[0])
        return real(ctx, x)

    monkeypatch.setattr(engine, "shuffled", counted)
    rng = np.random.default_rng(8)
    n = 300
    data = np.stack([rng.integers(0, 1 << 52, n), rng.integers(0, 3, n), np.full(n, 4)]).astype(np.int64)
    label = rng.permutation(700)[:n].astype(np.int64)             # distinct, below 2^10 (n_A = 700)
    rbs = [53, 2, 3]
    ranks = [np.array([0, 150, n - 1])] * 3
    found, lows, lows_again = mpc.run_local(_row_order_job, ["alice", "bob"], triples="ot", timeout=120,
                                            args={p: (data, label, rbs, ranks) for p in ("alice", "bob")})["bob"]
    low = engine.key_bits(n)
    assert lows == [low, engine.key_bits(700), low] and lows_again == [low] * 3
    assert calls == {"alice": [2, 3], "bob": [2, 3]}             # rows 0 and 2, then all three
    want = np.stack([np.sort(row)[r] for row, r in zip(data, ranks, strict=True)])
    for f in found:
        np.testing.assert_array_equal(np.asarray(f, np.int64), want)


def test_the_claimant_is_a_column_that_widens_nothing_and_groups_follow_key_widths():
    """claimant: among the columns that fit, one whose keys with the order's labels (10 bits
    for 700 ids) are no wider than the others' comes first; _groups puts much narrower keys
    (an integer column) in a selection of their own, a one-bit wider claimant stays."""
    from protocols.stats import vertical

    o = engine.RowOrder(np.zeros(300, np.uint64), engine.key_bits(700))
    assert engine.claimant(300, [51, 20, 51], [o, o, o]) == 1                 # the one that widens nothing
    assert engine.claimant(300, [51, 51, 51], [None, o, o]) == 1              # none does: the first that fits
    assert engine.claimant(300, [53, 51], [o, o]) == 1                        # 53 + 10 > 62: does not fit
    assert vertical._groups(300, [51, 51, 51], [None, o, o]) == [[0, 1, 2]]
    assert vertical._groups(300, [51, 6, 50], [None, None, None]) == [[0, 2], [1]]
    o.claim()
    assert engine.claimant(300, [40, 51], [o, o]) is None


def _select_first_job(ctx, data, label):
    from protocols import stats
    from protocols.stats import vertical
    xs = [stats.share_scaled(ctx, data[k] if ctx.party == "alice" else None, "alice", name=k) for k in data]
    bounds = np.array([stats.scaling.bound_bits(x) for x in xs], np.int64)
    lab = ss.share(ctx, label if ctx.party == "alice" else None, "alice").share
    row_order = engine.RowOrder(lab, engine.key_bits(len(label) * 2))          # one label bit more
    mn, mx, _, known, lows = vertical._select_first([x.with_frac_bits(0) for x in xs], bounds,
                                                    [None, row_order, row_order])
    return mn.reveal(), mx.reveal(), {r: v.reveal() for r, v in known.items()}, lows, [x.frac_bits for x in xs]


def test_select_first_keeps_the_columns_apart_when_the_claimant_is_not_first():
    """_select_first with the second of three columns keeping the order (one label bit
    wider): every column's min, max and order statistics are its own (equal numpy)."""
    rng = np.random.default_rng(3)
    n = 3000
    data = {"a": rng.normal(size=n), "b": rng.lognormal(0, 1, n), "c": rng.integers(0, 5, n) * 0.25}
    label = rng.permutation(n).astype(np.int64)
    mn, mx, known, lows, fracs = mpc.run_local(_select_first_job, ["alice", "bob"], triples="ot", timeout=120,
                                               args={p: (data, label) for p in ("alice", "bob")})["alice"]
    assert lows == [engine.key_bits(n), engine.key_bits(2 * n), engine.key_bits(n)]
    for i, v in enumerate(data.values()):
        x = np.sort(np.round(np.ldexp(v, fracs[i])))
        assert (mn[i], mx[i]) == (x[0], x[-1])
        for r, got in known.items():
            assert got[i] == x[r]
