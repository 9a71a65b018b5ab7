"""Vertical statistics on secret-shared columns against numpy / pandas, on wide-range data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpc
from mpc import ss
from mpc.runtime.errors import JobFailed
from protocols import stats
from protocols.psi import private_join

RTOL = 1e-6


def wide_data(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Columns spanning 1e-4..1e4, a tiny standardized one and a correlated pair."""
    rng = np.random.default_rng(seed)
    big = rng.lognormal(3, 2.5, n).clip(1e-4, 1e4)
    return {
        "big": big,                                                  # 1e-4 .. 1e4 in one column
        "tiny": 1e-4 * rng.normal(size=n),                           # small standardized values
        "corr": 1e-3 * (np.log(big) + rng.normal(size=n)),           # correlated with big
        "offset": 1000 + 0.01 * rng.normal(size=n),                  # large mean, small spread
    }


OWNERS = {"big": "alice", "tiny": "bob", "corr": "bob", "offset": "alice"}


def _share_all(ctx, data, owners, scaled=True):
    out = {}
    for name, owner in owners.items():
        value = data[name] if ctx.party == owner else None
        out[name] = (stats.share_scaled(ctx, value, owner, name=name) if scaled
                     else ss.share(ctx, value, owner))
    return out


def _all_stats(ctx, data, owners):
    cols = _share_all(ctx, data, owners)
    res = {}
    for name, x in cols.items():
        res[name] = {"count": stats.count(ctx, x), "sum": stats.sum(ctx, x), "mean": stats.mean(ctx, x),
                     "var": stats.var(ctx, x), "std": stats.std(ctx, x), "std0": stats.std(ctx, x, ddof=0),
                     "min": stats.min(ctx, x), "max": stats.max(ctx, x)}
    res["cov"] = stats.cov(ctx, cols["big"], cols["corr"])
    res["pearson"] = stats.pearson(ctx, cols["big"], cols["corr"])
    res["corrmat"] = stats.corr_matrix(ctx, cols)
    res["q"] = stats.quantile(ctx, cols["tiny"], [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
    res["q_lower"] = stats.quantile(ctx, cols["big"], 0.3, method="lower")
    res["median"] = stats.median(ctx, cols["offset"])
    res["hist"] = stats.histogram(ctx, cols["corr"], [-0.01, -0.002, 0.0, 0.002, 0.004, 0.02])
    return res


def encoded(x: np.ndarray) -> np.ndarray:
    """The values as the owner's per-column scaling stores them (order statistics are
    exact on these; they differ from x by at most 2^-bits of the column's max)."""
    ints, shift = stats.scaling.scale_column(x)
    return np.ldexp(ints.astype(np.float64), -shift)


def _check_all(res, data):
    for name, x in data.items():
        r = res[name]
        e = encoded(x)
        assert r["count"] == len(x)
        assert r["sum"] == pytest.approx(x.sum(), rel=RTOL)
        assert r["mean"] == pytest.approx(x.mean(), rel=RTOL)
        assert r["var"] == pytest.approx(x.var(ddof=1), rel=RTOL)
        assert r["std"] == pytest.approx(x.std(ddof=1), rel=RTOL)
        assert r["std0"] == pytest.approx(x.std(ddof=0), rel=RTOL)
        assert r["min"] == e.min() and r["max"] == e.max()
        assert r["min"] == pytest.approx(x.min(), rel=1e-9)
    assert res["cov"] == pytest.approx(np.cov(data["big"], data["corr"])[0, 1], rel=RTOL)
    assert res["pearson"] == pytest.approx(np.corrcoef(data["big"], data["corr"])[0, 1], abs=1e-4)
    ref = pd.DataFrame(data).corr()
    np.testing.assert_allclose(res["corrmat"].loc[ref.index, ref.columns].to_numpy(), ref.to_numpy(), atol=1e-4)
    np.testing.assert_allclose(res["q"], np.quantile(encoded(data["tiny"]), [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]),
                               rtol=1e-9, atol=1e-15)
    assert res["q_lower"] == encoded(data["big"])[np.argsort(data["big"])[int(0.3 * (len(data["big"]) - 1))]]
    assert res["median"] == pytest.approx(np.median(data["offset"]), rel=1e-12)
    counts, edges = res["hist"]
    np.testing.assert_array_equal(counts, np.histogram(data["corr"], edges)[0])


def test_all_statistics_two_parties_memory():
    data = wide_data(300)
    out = mpc.run_local(_all_stats, ["alice", "bob"], args={p: (data, OWNERS) for p in ("alice", "bob")},
                        timeout=120)
    for p in ("alice", "bob"):
        _check_all(out[p], data)


def test_all_statistics_three_parties_memory():
    data = wide_data(200, seed=1)
    owners = {"big": "alice", "tiny": "bob", "corr": "carol", "offset": "carol"}
    parties = ["alice", "bob", "carol"]
    out = mpc.run_local(_all_stats, parties, args={p: (data, owners) for p in parties}, timeout=120)
    _check_all(out["carol"], data)


def test_grpc_two_parties():
    data = wide_data(120, seed=2)
    out = mpc.run_local(_all_stats, ["alice", "bob"], args={p: (data, OWNERS) for p in ("alice", "bob")},
                        transport="grpc", timeout=120)
    _check_all(out["bob"], data)


def _describe_job(ctx, data, owners):
    cols = _share_all(ctx, data, owners)
    return stats.describe(ctx, cols, reveal_to="bob")


def test_describe_matches_pandas_and_reveal_to():
    data = wide_data(150, seed=3)
    out = mpc.run_local(_describe_job, ["alice", "bob"], args={p: (data, OWNERS) for p in ("alice", "bob")},
                        timeout=120)
    assert out["alice"] is None
    ref = pd.DataFrame(data).describe().T
    got = out["bob"]
    assert list(got.index) == list(ref.index) and list(got.columns) == list(ref.columns)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=RTOL)


def _join_job(ctx, ids, cols):
    ints, shifts = stats.scale_columns(ctx, cols)
    table = private_join(ctx, ids, ints, key_bits=512)
    named = stats.apply_shifts(table, shifts)
    x, y = named[f"alice.{'a'}"], named["bob.b"]
    return (stats.pearson(ctx, x, y), stats.mean(ctx, x), stats.std(ctx, y),
            stats.describe(ctx, named))


def test_after_private_join_with_owner_scaling():
    rng = np.random.default_rng(5)
    ids = np.arange(400)
    a = rng.lognormal(0, 3, 400).clip(1e-4, 1e4)
    b = 1e-4 * (np.log(a) + rng.normal(size=400))
    ia, ib = ids[:300], ids[100:]
    out = mpc.run_local(_join_job, ["alice", "bob"],
                        args={"alice": (ia, {"a": a[:300]}), "bob": (ib, {"b": b[100:]})}, timeout=120)
    ja, jb = a[100:300], b[100:300]
    r, m, s, d = out["alice"]
    assert r == pytest.approx(np.corrcoef(ja, jb)[0, 1], abs=1e-4)
    assert m == pytest.approx(ja.mean(), rel=RTOL)
    assert s == pytest.approx(jb.std(ddof=1), rel=RTOL)
    ref = pd.DataFrame({"alice.a": ja, "bob.b": jb}).describe().T
    np.testing.assert_allclose(d.to_numpy(), ref.to_numpy(), rtol=RTOL)


def _fixed16_job(ctx, x):
    t = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
    return stats.mean(ctx, t), stats.std(ctx, t), stats.quantile(ctx, t, 0.5)


def test_plain_fixed_point_tensor_job_frac_bits():
    """A column shared at the job's frac_bits (here 24) works too: its own encoding bounds
    the precision, the statistics add none."""
    x = np.random.default_rng(6).normal(50, 3, 200)
    out = mpc.run_local(_fixed16_job, ["alice", "bob"], args={"alice": (x,), "bob": (None,)},
                        timeout=60, frac_bits=24)
    enc = np.round(x * 2 ** 24) / 2 ** 24
    m, s, q = out["bob"]
    assert m == pytest.approx(enc.mean(), rel=1e-9)
    assert s == pytest.approx(enc.std(ddof=1), rel=1e-6)
    assert q == pytest.approx(np.median(enc), rel=1e-9)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False), min_size=2, max_size=30),
       st.floats(0, 1))
def test_quantile_is_exact_property(values, q):
    x = np.array(values)

    def job(ctx):
        t = stats.share_scaled(ctx, x if ctx.party == "alice" else None, "alice")
        return (stats.quantile(ctx, t, q, method="lower"), stats.quantile(ctx, t, q),
                stats.min(ctx, t), stats.max(ctx, t))

    lo, lin, mn, mx = mpc.run_local(job, ["alice", "bob"], timeout=60)["bob"]
    scale = 2.0 ** -40 * max(np.abs(x).max(), 1e-300)
    assert abs(lo - np.quantile(x, q, method="lower")) <= scale
    assert abs(lin - np.quantile(x, q)) <= scale + 1e-6 * abs(np.ptp(x))
    assert mn == pytest.approx(x.min(), abs=scale) and mx == pytest.approx(x.max(), abs=scale)


# -- bad input ---------------------------------------------------------------------------------

def _bad_lengths(ctx):
    a = stats.share_scaled(ctx, np.arange(5.0) if ctx.party == "alice" else None, "alice", name="a")
    b = stats.share_scaled(ctx, np.arange(6.0) if ctx.party == "bob" else None, "bob", name="b")
    return stats.corr_matrix(ctx, {"a": a, "b": b})


def test_different_lengths_name_the_columns():
    with pytest.raises(JobFailed, match=r"different lengths: 'a' \(5 rows\), 'b' \(6 rows\)"):
        mpc.run_local(_bad_lengths, ["alice", "bob"], timeout=30)


def test_non_shared_column_and_ddof_errors():
    def job(ctx):
        x = ss.share(ctx, np.ones(1) if ctx.party == "alice" else None, "alice")
        with pytest.raises(TypeError, match="column 'x' must be a SharedTensor"):
            stats.mean(ctx, np.arange(3.0))
        with pytest.raises(ValueError, match="too few"):
            stats.var(ctx, x)
        with pytest.raises(ValueError, match="quantiles must be in"):
            stats.quantile(ctx, x, 1.5)
        with pytest.raises(ValueError, match="reveal_to"):
            stats.mean(ctx, x, reveal_to="mallory")
        return True

    assert all(mpc.run_local(job, ["alice", "bob"], timeout=30).values())


def test_nan_and_non_numeric_rejected_when_scaling():
    with pytest.raises(ValueError, match="column 'c' has NaN"):
        stats.scaling.scale_column(np.array([1.0, np.nan]), "c")
    with pytest.raises(TypeError, match="column 's' is not numeric"):
        stats.scaling.scale_column(np.array(["x", "y"]), "s")


def test_scaling_bound_is_strict_and_describe_at_the_bound_without_a_dealer():
    """A value within 2^-(bits + 1) of the power of two above max |x| would round to 2^bits:
    it is clipped to 2^bits - 1 (one unit), so |X| < 2^bits and keys of X + 2^bits take
    bits + 1 bits; describe without a dealer on a column holding both extremes (and ties at
    them) equals pandas."""
    edge = 1 - 2.0 ** -53                                              # max |x| < 2^0
    ints, shift = stats.scaling.scale_column(np.array([edge, -edge, 0.5]), bits=40)
    assert shift == 40 and ints.tolist() == [2 ** 40 - 1, -(2 ** 40 - 1), 2 ** 39]
    rng = np.random.default_rng(4)
    data = {"edge": np.concatenate([[edge, -edge, edge, -edge], rng.uniform(-1, 1, 3000)]),
            "other": rng.normal(size=3004)}

    def job(ctx):
        return stats.describe(ctx, _share_all(ctx, data, {"edge": "alice", "other": "bob"}))

    d = mpc.run_local(job, ["alice", "bob"], triples="ot", timeout=120)["alice"]
    ref = pd.DataFrame(data).describe().T
    np.testing.assert_allclose(d.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=RTOL)
    top = 1 - 2.0 ** -stats.scaling.default_bits(3004)                  # (2^bits - 1) 2^-bits exactly
    assert (d.loc["edge", "min"], d.loc["edge", "max"]) == (-top, top)


@pytest.mark.slow
def test_large_column_accuracy():
    """2^17 rows of wide-range data: the per-column scaling keeps 1e-6 relative accuracy."""
    data = wide_data(1 << 17, seed=9)
    owners = {"big": "alice", "corr": "bob", "offset": "bob"}

    def job(ctx):
        cols = _share_all(ctx, data, owners)
        return (stats.describe(ctx, cols), stats.pearson(ctx, cols["big"], cols["corr"]))

    d, r = mpc.run_local(job, ["alice", "bob"], timeout=1200)["alice"]
    ref = pd.DataFrame({k: data[k] for k in owners}).describe().T
    enc = pd.DataFrame({k: encoded(data[k]) for k in owners}).describe().T
    # order statistics: exact on the encoded values (a 1.6e-4 next to 1e4 in one column is
    # stored to 2^-43 * 2^14, 5e-6 relative); moments: 1e-6 of the float data
    np.testing.assert_array_equal(d[["min", "max"]].to_numpy(), enc[["min", "max"]].to_numpy())
    np.testing.assert_allclose(d[["25%", "50%", "75%"]].to_numpy(), enc[["25%", "50%", "75%"]].to_numpy(),
                               rtol=1e-9)   # interpolation to 1 unit of the encoding
    np.testing.assert_allclose(d[["count", "mean", "std"]].to_numpy(), ref[["count", "mean", "std"]].to_numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(d.to_numpy(), ref.to_numpy(), rtol=1e-5)
    assert r == pytest.approx(np.corrcoef(data["big"], data["corr"])[0, 1], abs=1e-4)


# -- quantiles: shuffle + quickselect (dealer) and the bitwise search (paillier) ----------------

METHODS = ("linear", "lower", "higher", "nearest")
QS = [0.0, 0.1, 0.25, 0.3, 0.5, 0.75, 0.9, 1.0]


def _quantiles_job(ctx, columns):
    from protocols.stats import order, vertical
    out = {}
    for name, values in columns.items():
        t = stats.share_scaled(ctx, values if ctx.party == ctx.parties[0] else None, ctx.parties[0], name=name)
        out[name] = {m: stats.quantile(ctx, t, QS, method=m) for m in METHODS}
        out[name]["select"] = vertical._use_select(ctx, [vertical._prep(ctx, t)])
    out["dealer"] = order.available(ctx)
    return out


def _check_quantiles(res, columns, dealer):
    assert res.pop("dealer") is dealer
    for name, values in columns.items():
        r = res[name]
        assert r.pop("select") is dealer
        e = encoded(values)
        for m in METHODS:
            want = np.quantile(e, QS, method=m)
            tol = 0.0 if m != "linear" else 2.0 ** -28 * max(np.ptp(e), 1e-300)
            np.testing.assert_allclose(r[m], want, rtol=0, atol=tol, err_msg=f"{name} {m}")


def _quantile_columns(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"ties": np.tile(np.arange(4.0), n)[:n], "distinct": rng.permutation(n) * 0.5 - 3.25,
            "const": np.full(n, -2.5), "wide": rng.lognormal(0, 3, n).clip(1e-4, 1e4)}


@pytest.mark.parametrize("n", [1, 2, 3, 41])
def test_quantiles_equal_numpy_with_dealer(n):
    cols = _quantile_columns(n, seed=n)
    out = mpc.run_local(_quantiles_job, ["alice", "bob"], args={p: (cols,) for p in ("alice", "bob")}, timeout=60)
    _check_quantiles(out["bob"], cols, dealer=True)


def test_quantiles_equal_numpy_three_parties():
    cols = _quantile_columns(57, seed=4)
    parties = ["alice", "bob", "carol"]
    out = mpc.run_local(_quantiles_job, parties, args={p: (cols,) for p in parties}, timeout=60)
    _check_quantiles(out["carol"], cols, dealer=True)


def _small_quantiles_job(ctx, values):
    from protocols.stats import order
    t = ss.share(ctx, values if ctx.party == "alice" else None, "alice")    # frac_bits 4: a 7-bit range, fast
    return order.available(ctx), [stats.quantile(ctx, t, [0.3, 0.5], method=m) for m in ("linear", "nearest")]


@pytest.mark.slow   # ~20-50 s: keeps the default run under 10 minutes
def test_quantiles_bitwise_search_without_dealer_agrees():
    """triples="paillier" has no shuffle: the old secret bitwise search; same answers
    (order statistics exact; the interpolation carries extra fractional bits, so even an
    integer column's median 2.0 between 1 and 3 comes out right)."""
    for values in (np.array([3.0, 1, 3, 1, 0, 3, 6, 1.5]), np.array([3, 1, 3, 1, 0, 3, 6, 1])):
        want = [np.quantile(values, [0.3, 0.5], method=m) for m in ("linear", "nearest")]
        for triples in ("dealer", "paillier"):
            shuffled, got = mpc.run_local(_small_quantiles_job, ["alice", "bob"],
                                          args={"alice": (values,), "bob": (None,)}, timeout=300,
                                          triples=triples, frac_bits=4)["bob"]
            assert shuffled is (triples == "dealer")
            np.testing.assert_allclose(got[0], want[0], rtol=0, atol=2.0 ** -20)
            np.testing.assert_array_equal(got[1], want[1])


def test_describe_with_ties_and_symmetric_corr_matrix():
    rng = np.random.default_rng(12)
    data = {"big": np.tile(np.arange(4.0), 50), "tiny": rng.integers(0, 3, 200) * 1e-4,
            "corr": rng.normal(size=200), "offset": np.full(200, 7.0)}

    def job(ctx):
        cols = _share_all(ctx, data, OWNERS)
        return stats.describe(ctx, cols), stats.corr_matrix(ctx, {k: cols[k] for k in ("big", "tiny", "corr")})

    d, c = mpc.run_local(job, ["alice", "bob"], timeout=60)["alice"]
    ref = pd.DataFrame({k: encoded(v) for k, v in data.items()}).describe().T
    np.testing.assert_allclose(d.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-6)
    m = c.to_numpy()
    np.testing.assert_array_equal(m, m.T)


def test_huge_range_falls_back_to_the_bitwise_search():
    """Keys (value - min) * 2^L + row must stay below 2^62: a 61-bit range uses the old search."""
    values = np.array([-(2 ** 60), 3, 2 ** 60 - 2 ** 20, 3, 11])        # exact as float64 too

    def job(ctx):
        from protocols.stats import vertical
        t = ss.share(ctx, values if ctx.party == "alice" else None, "alice")
        return vertical._use_select(ctx, [vertical._prep(ctx, t)]), stats.quantile(ctx, t, [0.0, 0.5, 1.0], "lower")

    used, got = mpc.run_local(job, ["alice", "bob"], timeout=60)["bob"]
    assert not used
    np.testing.assert_array_equal(np.asarray(got, dtype=np.int64), np.sort(values)[[0, 2, 4]])


def test_describe_three_parties_grpc_with_ties():
    rng = np.random.default_rng(13)
    data = {"big": np.tile(np.arange(4.0), 40), "tiny": rng.normal(size=160) * 1e-4, "corr": rng.normal(size=160),
            "offset": 1000 + rng.integers(0, 3, 160) * 0.01}
    owners = {"big": "alice", "tiny": "bob", "corr": "carol", "offset": "carol"}
    parties = ["alice", "bob", "carol"]
    out = mpc.run_local(_describe_job, parties, args={p: (data, owners) for p in parties}, transport="grpc",
                        timeout=120)
    assert out["alice"] is None and out["carol"] is None
    ref = pd.DataFrame({k: encoded(v) for k, v in data.items()}).describe().T
    np.testing.assert_allclose(out["bob"].loc[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-6)


@pytest.mark.parametrize("n", [1000, 3000])
def test_var_cov_corr_on_the_ot_gram_match_numpy(n):
    """Without a dealer the Gram matrix takes L + 2W + 1 choice bits per share (61 at 1000
    rows, 60 at 3000) and comes back as 2^(64 - bits) d d^T: var, cov, std and the
    correlation matrix of wide-range, near-constant and offset columns equal numpy."""
    data = wide_data(n, seed=5)

    def job(ctx):
        cols = _share_all(ctx, data, OWNERS)
        return ({k: stats.var(ctx, x) for k, x in cols.items()}, stats.cov(ctx, cols["big"], cols["corr"]),
                stats.corr_matrix(ctx, cols), stats.describe(ctx, cols))

    var, cov, corr, desc = mpc.run_local(job, ["alice", "bob"], triples="ot", timeout=300)["bob"]
    frame = pd.DataFrame(data)
    for k, v in var.items():
        assert v == pytest.approx(data[k].var(ddof=1), rel=RTOL)
    assert cov == pytest.approx(np.cov(data["big"], data["corr"])[0, 1], rel=RTOL)
    np.testing.assert_allclose(corr.loc[frame.columns, frame.columns].to_numpy(), frame.corr().to_numpy(),
                               atol=1e-4)
    np.testing.assert_allclose(desc.loc[frame.columns, "std"].to_numpy(), frame.std().to_numpy(), rtol=RTOL)
