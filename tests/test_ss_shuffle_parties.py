"""Dealer-free shuffles and statistics for three or more parties (triples="ot": OtParties):
the N-party shuffle permutes, looks uniform, and what every party receives is independent
of the input; quantiles, describe and horizontal_describe match numpy / pandas on both
transports; a three-server cluster without a dealer runs stats.horizontal_describe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc import ss
from mpc.cluster import LocalCluster
from mpc.runtime.views import record_views
from mpc.ss import shuffle as sh
from mpc.ss.triples import get_source
from protocols import stats
from protocols.stats import horizontal_describe

THREE = ["a", "b", "c"]
OT = {"triples": "ot"}


def _shuffled(ctx, data, jointly):
    x = ss.share(ctx, data if ctx.party == ctx.parties[-1] else None, owner=ctx.parties[-1])
    return ss.from_shares(ctx, sh.shuffle(ctx, x.share, jointly=jointly)).reveal(), type(get_source(ctx)).__name__


@pytest.mark.parametrize("parties", [THREE, ["a", "b", "c", "d"]])
@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_shuffle_permutes_each_row(parties, transport):
    data = np.stack([np.arange(700, dtype=np.int64) * 3 - 1000, np.arange(700, dtype=np.int64)])
    out = mpc.run_local(_shuffled, parties, args={p: (data, False) for p in parties}, transport=transport,
                        timeout=120, **OT)
    rows, kind = out[parties[0]]
    assert kind == "OtParties"
    assert all(np.array_equal(out[p][0], rows) for p in parties)
    rows = rows.astype(np.int64)
    for r in range(2):
        assert np.array_equal(np.sort(rows[r]), data[r])        # the same multiset
        assert not np.array_equal(rows[r], data[r])
    assert not np.array_equal(np.argsort(rows[0]), np.argsort(rows[1]))     # a permutation per row


@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_shuffle_jointly_keeps_columns_aligned(transport):
    idx = np.arange(513, dtype=np.int64)
    data = np.stack([idx, idx * 5 - 7, -idx])
    out = mpc.run_local(_shuffled, THREE, args={p: (data, True) for p in THREE}, transport=transport,
                        timeout=120, **OT)["b"][0].astype(np.int64)
    perm = out[0]
    assert np.array_equal(np.sort(perm), idx) and not np.array_equal(perm, idx)
    assert np.array_equal(out, data[:, perm])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 33])
def test_odd_sizes(n):
    data = np.stack([np.arange(n, dtype=np.int64) * 7 - 3, np.arange(n, dtype=np.int64)])
    for jointly in (False, True):
        out = mpc.run_local(_shuffled, THREE, args={p: (data, jointly) for p in THREE}, timeout=60, **OT)
        got = np.asarray(out["a"][0]).astype(np.int64).reshape(data.shape)
        for r in range(2):
            assert np.array_equal(np.sort(got[r]), np.sort(data[r]))
        if jointly and n:
            assert np.array_equal(got, data[:, got[1]])


def test_hits_every_permutation_evenly():
    """1200 shuffles of 3 elements (each row its own three permutations, one per party):
    each of the 6 permutations about 200 times (chi-square, 5 degrees of freedom, p ~ 1e-6)."""
    reps = 1200
    data = np.tile(np.arange(1, 4, dtype=np.int64), (reps, 1))
    rows = mpc.run_local(_shuffled, THREE, args={p: (data, False) for p in THREE}, timeout=120,
                         **OT)["a"][0].astype(np.int64)
    assert np.array_equal(np.sort(rows, axis=1), data)
    code = rows[:, 0] * 10 + rows[:, 1]
    counts = np.array([np.sum(code == c) for c in (12, 13, 21, 23, 31, 32)])
    chi2 = float(np.sum((counts - reps / 6) ** 2 / (reps / 6)))
    assert chi2 < 35, counts


def _bits(words: np.ndarray) -> np.ndarray:
    return np.unpackbits(np.ascontiguousarray(words).view(np.uint8)).astype(np.float64)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-300))


def test_views_are_independent_of_the_input():
    """Each party's shares of x are given (no sharing protocol), so a party's view is the
    shuffle's alone. For two inputs (all zero, and words with a pattern in every bit) every
    party receives the same sequence of (sender, dtype, shape), every uint64 word it receives
    has balanced bits, and the low bits of the masked shares it receives do not correlate
    with x's (6-sigma bounds). The output shares of any two parties are uniform too."""
    rows, n = 4, 500
    rng = np.random.default_rng(3)
    patterned = (np.arange(rows * n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)).reshape(rows, n)
    layouts = []
    for x in (np.zeros((rows, n), np.uint64), patterned):
        s0, s1 = (rng.integers(0, 2 ** 64, (rows, n), dtype=np.uint64) for _ in range(2))
        shares = {"a": (s0,), "b": (s1,), "c": (x - s0 - s1,)}
        out, views = record_views(lambda ctx, s: get_source(ctx).shuffle(s), THREE, args=shares, timeout=120, **OT)
        total = out["a"] + out["b"] + out["c"]
        for r in range(rows):
            assert np.array_equal(np.sort(total[r]), np.sort(x[r]))
        # per (receiver, sender): a party's pairs run at once, so only each channel is ordered
        layouts.append({(p, q): [(type(v).__name__, getattr(v, "dtype", None), getattr(v, "shape", None))
                                 for s, v in views[p] if s == q] for p in views for q in views})
        for p in THREE:
            words = [v for _, v in views[p] if isinstance(v, np.ndarray) and v.dtype == np.uint64]
            assert words, p
            for w in words:
                bits = _bits(w)
                assert abs(bits.mean() - 0.5) < 6 / np.sqrt(bits.size) + 1e-3, (p, w.shape)
            masked = [v for v in words if v.shape[0] == rows and v.shape[1] >= n]
            assert masked, p                      # the masked shares of the permuting rounds
            low = (x & np.uint64(1)).astype(np.float64).ravel()
            for m in masked:
                got = (m[:, :n] & np.uint64(1)).astype(np.float64).ravel()
                if low.std():
                    assert abs(_corr(got, low)) < 6 / np.sqrt(low.size)
        for p, q in (("a", "b"), ("b", "c"), ("a", "c")):
            bits = _bits(out[p] + out[q])
            assert abs(bits.mean() - 0.5) < 6 / np.sqrt(bits.size)
    assert layouts[0] == layouts[1]


def test_folded_protocols_send_only_shares_to_the_second_party():
    """Comparisons for three parties: party c's only messages go to b (its folded shares)
    and to everyone as openings; a receives nothing from c but openings."""
    x = np.array([-3.0, 2.5, 0.0, 7.0, -1.25])

    def job(ctx):
        t = ss.share(ctx, x if ctx.party == "a" else None, "a")
        return (t < 1.0).reveal(), (t * t).reveal(), (t == 0.0).reveal()

    out, views = record_views(job, THREE, timeout=120, **OT)
    lt, sq, eq = out["c"]
    np.testing.assert_array_equal(np.asarray(lt), (x < 1.0).astype(np.int64))
    np.testing.assert_allclose(np.asarray(sq), x * x, atol=2.0 ** -14)
    np.testing.assert_array_equal(np.asarray(eq), (x == 0.0).astype(np.int64))
    assert [s for s, _ in views["c"]] and all(s in ("a", "b") for s, _ in views["c"])


@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_operators_three_parties_against_numpy(transport):
    """SharedTensor arithmetic on three parties' shares with OtParties: products (triples
    and the folded mul), matmul, comparisons, equality, max, sort, argmax, division, sqrt."""
    rng = np.random.default_rng(9)
    x = np.round(rng.normal(size=12) * 20, 3)
    y = np.round(rng.uniform(0.5, 30, 12), 3)
    m = np.round(rng.normal(size=(3, 4)), 3)

    def job(ctx):
        a = ss.share(ctx, x if ctx.party == "a" else None, "a")
        b = ss.share(ctx, y if ctx.party == "b" else None, "b")
        c = ss.share(ctx, m if ctx.party == "c" else None, "c")
        return {"mul": (a * b).reveal(), "matmul": (c @ c.T).reveal(), "lt": (a < b).reveal(),
                "eq": (a == a).reveal(), "max": ss.maximum(a, b).reveal(), "sort": ss.sort(a).reveal(),
                "argmax": a.argmax().reveal(), "div": (a / b).reveal(), "sqrt": ss.sqrt(b).reveal()}

    out = mpc.run_local(job, THREE, transport=transport, timeout=300, **OT)
    assert all(np.array_equal(np.asarray(out[p]["sort"]), np.asarray(out["a"]["sort"])) for p in THREE)
    r = out["b"]
    np.testing.assert_allclose(r["mul"], x * y, atol=1e-3)
    np.testing.assert_allclose(r["matmul"], m @ m.T, atol=1e-3)
    np.testing.assert_array_equal(r["lt"], (x < y).astype(np.int64))
    np.testing.assert_array_equal(r["eq"], np.ones(12, np.int64))
    np.testing.assert_allclose(r["max"], np.maximum(x, y), atol=2.0 ** -15)
    np.testing.assert_allclose(r["sort"], np.sort(x), atol=2.0 ** -15)
    assert int(r["argmax"]) == int(np.argmax(x))
    np.testing.assert_allclose(r["div"], x / y, atol=1e-3)
    np.testing.assert_allclose(r["sqrt"], np.sqrt(y), atol=1e-3)


# -- statistics ------------------------------------------------------------------------------
def _quantiles_and_describe(ctx, cols, owners):
    shared = {k: stats.share_scaled(ctx, v if ctx.party == owners[k] else None, owners[k], name=k)
              for k, v in cols.items()}
    q = {k: stats.quantile(ctx, x, [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]) for k, x in shared.items()}
    return q, stats.describe(ctx, shared), type(get_source(ctx)).__name__


def _encoded(x: np.ndarray) -> np.ndarray:
    ints, shift = stats.scaling.scale_column(x)
    return np.ldexp(ints.astype(np.float64), -shift)


@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_quantiles_and_describe_three_parties_without_dealer(transport):
    rng = np.random.default_rng(21)
    n = 120
    cols = {"ties": np.tile(np.arange(4.0), n)[:n], "wide": rng.lognormal(0, 3, n).clip(1e-4, 1e4),
            "neg": -rng.exponential(5, n)}
    owners = {"ties": "a", "wide": "b", "neg": "c"}
    out = mpc.run_local(_quantiles_and_describe, THREE, args={p: (cols, owners) for p in THREE},
                        transport=transport, timeout=300, **OT)
    q, d, kind = out["c"]
    assert kind == "OtParties"
    for k, v in cols.items():
        np.testing.assert_allclose(q[k], np.quantile(_encoded(v), [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]),
                                   rtol=1e-9, atol=1e-12)
    ref = pd.DataFrame({k: _encoded(v) for k, v in cols.items()}).describe().T
    np.testing.assert_allclose(d.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-6)


def _frames(parties, n0=60, seed=2):
    rng = np.random.default_rng(seed)
    return {p: pd.DataFrame({"big": rng.lognormal(3, 2, n0 + 11 * i).clip(1e-4, 1e4),
                             "count": rng.integers(-5, 5, n0 + 11 * i)}) for i, p in enumerate(parties)}


def _check_pooled(got, frames):
    ref = pd.concat(list(frames.values()), ignore_index=True).describe().T
    np.testing.assert_array_equal(got.loc[ref.index, "count"], ref["count"])
    for c in ["min", "25%", "50%", "75%", "max"]:
        np.testing.assert_allclose(got.loc[ref.index, c], ref[c], rtol=1e-14, atol=0)
    np.testing.assert_allclose(got.loc[ref.index, "mean"], ref["mean"], rtol=1e-9)
    np.testing.assert_allclose(got.loc[ref.index, "std"], ref["std"], rtol=1e-7)


@pytest.mark.parametrize(("parties", "transport"), [(THREE, "memory"), (THREE, "grpc"),
                                                   (["a", "b", "c", "d"], "memory")])
def test_horizontal_describe_three_parties_without_dealer(parties, transport):
    frames = _frames(parties)
    out = mpc.run_local(lambda ctx, f: horizontal_describe(ctx, f), parties, args={p: (frames[p],) for p in parties},
                        transport=transport, timeout=300, **OT)
    for p in parties:
        _check_pooled(out[p], frames)


def test_three_servers_without_a_dealer_run_horizontal_describe_and_sql():
    """Three `gaotie serve` processes, no dealer: triples="auto" resolves to "ot" (OtParties),
    whose shuffle the quartiles need; a three-table SQL aggregate runs too."""
    frames = _frames(["bank", "shop", "telco"], n0=40, seed=5)
    for i, f in enumerate(frames.values()):
        f["id"] = [f"u{j + 5 * i:03d}" for j in range(len(f))]
    datasets = {p: {"t": {"frame": f, "id": "id", "min_group_size": 1,
                          "columns": {"id": "join_key", "big": "aggregate", "count": "aggregate"}}}
                for p, f in frames.items()}
    with LocalCluster(list(frames), tls=False, datasets=datasets, dealer=False) as cluster:
        with cluster.client("shop") as client:
            got = client.run("stats.horizontal_describe", progress=False,
                             columns=[f"{p}.t.{c}" for p in frames for c in ("big", "count")])
            sql = client.query("SELECT COUNT(*), SUM(b.big * s.count), AVG(t.big) FROM bank.t b "
                               "JOIN shop.t s USING (id) JOIN telco.t t ON t.id = b.id", progress=False)
    _check_pooled(got.set_index("column"), {p: f[["big", "count"]] for p, f in frames.items()})
    m = frames["bank"].merge(frames["shop"], on="id", suffixes=("_b", "_s")).merge(frames["telco"], on="id")
    row = [float(v) for v in np.asarray(sql).reshape(-1)]
    assert row[0] == len(m)
    assert row[1] == pytest.approx(float((m["big_b"] * m["count_s"]).sum()), rel=1e-6)
    assert row[2] == pytest.approx(float(m["big"].mean()), rel=1e-6)


def test_group_by_and_woe_three_parties_without_dealer():
    """stats.group_by (shared comparisons against the group codes) and stats.woe_iv with
    method="ss" (shared bins by comparisons) on three parties and triples="ot"."""
    from test_stats_groupby_woe import check_groups, check_woe, data, gb_job, woe_job

    key, spend, rate, y, score, age = data(n=200, seed=7)
    parties = ["alice", "bob", "carol"]
    tables = {"alice": {"region": key}, "bob": {"spend": spend}, "carol": {"rate": rate}}
    out = mpc.run_local(gb_job, parties, args={p: (tables,) for p in parties}, timeout=300, **OT)
    for p in parties:
        check_groups(out[p], key, spend, rate, 5)
    tables = {"alice": {"y": y}, "bob": {"score": score}, "carol": {"age": age}}
    out = mpc.run_local(woe_job, parties, args={p: (tables,) for p in parties},
                        kwargs={p: {"bins": 4, "method": "ss"} for p in parties}, timeout=300, **OT)
    check_woe(out["carol"], y, {"score": score, "age": age}, 4)


def test_a_malformed_folded_share_names_the_party():
    def job(ctx):
        x = np.arange(4, dtype=np.uint64)
        if ctx.party == "c":
            ctx.send("b", np.zeros(3, np.uint8))              # not its share of x
            return None
        return get_source(ctx).msb_xor(x)

    with pytest.raises(mpc.JobFailed, match=r"party 'c' sent an array uint8 \(3,\) as its folded share"):
        mpc.run_local(job, THREE, timeout=30, **OT)
