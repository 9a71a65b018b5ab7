"""group_by and woe_iv against plain pandas implementations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc import ss
from mpc.runtime.errors import JobFailed
from protocols import stats
from protocols.stats.woe import woe_table

KEY_BITS = 512  # insecure, tests only


def data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    key = rng.choice(["north", "south", "east", "west", "rare"], n, p=[0.4, 0.3, 0.17, 0.12, 0.01])
    spend = rng.lognormal(2, 2.5, n).clip(1e-4, 1e4)                     # wide range
    rate = 1e-4 * rng.normal(size=n)                                     # tiny values
    y = (rng.random(n) < 0.25).astype(np.int64)
    score = rng.normal(size=n) + 1.2 * y
    age = rng.integers(18, 80, n)
    return key, spend, rate, y, score, age


# -- group_by ------------------------------------------------------------------------------------

def gb_job(ctx, tables, **kw):
    return stats.group_by(ctx, tables.get(ctx.party), "region", {"spend": ["sum", "mean"], "rate": "mean"}, **kw)


def check_groups(got, key, spend, rate, min_size):
    ref = pd.DataFrame({"region": key, "spend": spend, "rate": rate}).groupby("region").agg(
        count=("spend", "size"), spend_sum=("spend", "sum"), spend_mean=("spend", "mean"), rate_mean=("rate", "mean"))
    assert sorted(got.index) == sorted(ref.index)
    for g in ref.index:
        if ref.loc[g, "count"] < min_size:
            assert got.loc[g, "suppressed"] and np.isnan(got.loc[g, "count"]) and np.isnan(got.loc[g, "spend_sum"])
        else:
            assert not got.loc[g, "suppressed"] and got.loc[g, "count"] == ref.loc[g, "count"]
            for c in ["spend_sum", "spend_mean", "rate_mean"]:
                assert got.loc[g, c] == pytest.approx(ref.loc[g, c], rel=1e-9)


@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_group_by_plain_key_two_parties(transport):
    key, spend, rate, *_ = data()
    tables = {"alice": {"region": key}, "bob": {"spend": spend, "rate": rate}}
    out = mpc.run_local(gb_job, ["alice", "bob"], args={p: (tables,) for p in tables},
                        kwargs={p: {"min_group_size": 10} for p in tables}, transport=transport, timeout=120)
    for p in tables:
        check_groups(out[p], key, spend, rate, 10)


def test_group_by_three_parties_reveal_to():
    key, spend, rate, *_ = data(seed=1)
    tables = {"alice": {"region": key}, "bob": {"spend": spend}, "carol": {"rate": rate}}
    parties = ["alice", "bob", "carol"]
    out = mpc.run_local(gb_job, parties, args={p: (tables,) for p in parties},
                        kwargs={p: {"reveal_to": "carol"} for p in parties}, timeout=120)
    assert out["alice"] is None and out["bob"] is None
    check_groups(out["carol"], key, spend, rate, 5)


def test_group_by_shared_key_and_shared_values():
    key, spend, rate, *_ = data(n=150, seed=2)
    labels = np.array(sorted(set(key)))
    codes = np.searchsorted(labels, key)

    def job(ctx):
        k = ss.share(ctx, codes if ctx.party == "alice" else None, "alice")
        s = stats.share_scaled(ctx, spend if ctx.party == "bob" else None, "bob")
        r = ss.share(ctx, rate if ctx.party == "bob" else None, "bob")
        return stats.group_by(ctx, {"region": k, "spend": s, "rate": r}, "region",
                              {"spend": ["sum", "mean"], "rate": "mean"}, groups=list(range(len(labels))),
                              min_group_size=5)

    got = mpc.run_local(job, ["alice", "bob"], timeout=120)["alice"]
    got.index = labels[got.index.to_numpy()]
    ref_rate = pd.Series(np.round(rate * 2 ** 16) / 2 ** 16).groupby(key).mean()   # shared at 16 bits
    check_groups(got.drop(columns="rate_mean").assign(rate_mean=ref_rate.reindex(got.index).where(
        ~got["suppressed"])), key, spend, np.round(rate * 2 ** 16) / 2 ** 16, 5)


def test_group_by_errors():
    key, spend, rate, *_ = data(n=30)

    def run(tables, **kw):
        return mpc.run_local(gb_job, ["alice", "bob"], args={p: (tables,) for p in ("alice", "bob")},
                             kwargs={p: kw for p in ("alice", "bob")}, timeout=30)

    with pytest.raises(JobFailed, match=r"different lengths: 'region' \(30 rows\), 'spend' \(29 rows\)"):
        run({"alice": {"region": key}, "bob": {"spend": spend[:29], "rate": rate[:29]}})
    with pytest.raises(JobFailed, match="fewer than min_group_size=50"):
        run({"alice": {"region": key}, "bob": {"spend": spend, "rate": rate}}, min_group_size=50)
    bad = spend.copy()
    bad[3] = np.nan
    with pytest.raises(JobFailed, match="column 'spend' has NaN"):
        run({"alice": {"region": key}, "bob": {"spend": bad, "rate": rate}})
    with pytest.raises(JobFailed, match="column 'rate' is not numeric"):
        run({"alice": {"region": key}, "bob": {"spend": spend, "rate": key}})
    with pytest.raises(JobFailed, match="no party has column 'rate'"):
        run({"alice": {"region": key}, "bob": {"spend": spend}})


# -- woe_iv ---------------------------------------------------------------------------------------

def plain_woe(y, x, bins):
    """Reference: pandas binning with the same equal-frequency edges, then the formulas."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1))) if np.ndim(bins) == 0 else np.asarray(bins)
    b = pd.cut(x, edges, right=False, include_lowest=True, labels=False)
    b = np.where(x >= edges[-1], len(edges) - 2, b)
    b = np.where(x < edges[0], 0, b).astype(int)
    df = pd.DataFrame({"b": b, "y": y}).groupby("b")["y"].agg(["sum", "size"]).reindex(
        range(len(edges) - 1), fill_value=0)
    return woe_table(df["sum"].to_numpy(), df["size"].to_numpy())


def woe_job(ctx, tables, **kw):
    return stats.woe_iv(ctx, tables.get(ctx.party), "y", ["score", "age"], **kw)


def check_woe(result, y, feats, bins):
    table, iv = result
    for f, x in feats.items():
        ref = plain_woe(y, x, bins[f] if isinstance(bins, dict) else bins)
        mine = table[table["feature"] == f].reset_index(drop=True)
        np.testing.assert_array_equal(mine["events"], ref["events"])
        np.testing.assert_array_equal(mine["count"], ref["count"])
        np.testing.assert_allclose(mine["woe"], ref["woe"], rtol=1e-12)
        assert iv[f] == pytest.approx(ref["iv"].sum(), rel=1e-12)


@pytest.mark.parametrize("method", ["paillier", "ss"])
def test_woe_two_parties(method):
    _, _, _, y, score, age = data(n=300)
    tables = {"alice": {"y": y}, "bob": {"score": score, "age": age}}
    bins = {"score": 6, "age": [18, 30, 45, 60, 80]}
    out = mpc.run_local(woe_job, ["alice", "bob"], args={p: (tables,) for p in tables},
                        kwargs={p: {"bins": bins, "method": method, "key_bits": KEY_BITS} for p in tables},
                        timeout=120)
    for p in tables:
        check_woe(out[p], y, {"score": score, "age": age}, bins)


def test_woe_three_parties_grpc_reveal_to_feature_holder():
    _, _, _, y, score, age = data(n=200, seed=4)
    tables = {"alice": {"y": y}, "bob": {"score": score}, "carol": {"age": age}}
    parties = ["alice", "bob", "carol"]
    out = mpc.run_local(woe_job, parties, args={p: (tables,) for p in parties},
                        kwargs={p: {"bins": 5, "key_bits": KEY_BITS, "reveal_to": "bob"} for p in parties},
                        transport="grpc", timeout=120)
    assert out["alice"] is None and out["carol"] is None
    check_woe(out["bob"], y, {"score": score, "age": age}, 5)


def test_woe_smoothing_for_empty_bins():
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    t = woe_table(np.array([0, 3]), np.array([4, 4]))
    assert np.isfinite(t["woe"]).all()
    assert t.loc[0, "woe"] == pytest.approx(np.log((4.5 / 5) / (0.5 / 3)))
    assert y.sum() == 3


def test_woe_errors():
    _, _, _, y, score, age = data(n=50)

    def run(tables, **kw):
        kw.setdefault("key_bits", KEY_BITS)
        return mpc.run_local(woe_job, ["alice", "bob"], args={p: (tables,) for p in ("alice", "bob")},
                             kwargs={p: kw for p in ("alice", "bob")}, timeout=60)

    with pytest.raises(JobFailed, match="only 0 and 1"):
        run({"alice": {"y": y + 1}, "bob": {"score": score, "age": age}})
    with pytest.raises(JobFailed, match=r"different lengths: .*'score' \(49 rows\)"):
        run({"alice": {"y": y}, "bob": {"score": score[:49], "age": age}})
    bad = score.copy()
    bad[0] = np.nan
    with pytest.raises(JobFailed, match="feature 'score' has NaN"):
        run({"alice": {"y": y}, "bob": {"score": bad, "age": age}})
    with pytest.raises(JobFailed, match="single class"):
        run({"alice": {"y": np.zeros(50, int)}, "bob": {"score": score, "age": age}})
    with pytest.raises(JobFailed, match="no party holds feature"):
        run({"alice": {"y": y}, "bob": {"score": score}})
