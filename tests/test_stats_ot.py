"""Every statistic of ``protocols.stats`` with ``triples="ot"`` (two parties, no dealer:
products, comparisons, the truncation and the oblivious shuffle all from OT) against
numpy / pandas, on hypothesis data, in memory and over gRPC.

Vertical statistics run on columns shared the way the jobs share them (the owner's
per-column power-of-two scale, ``share_scaled``) and on a plain fixed-point column;
``horizontal_describe``, ``group_by`` and ``woe_iv`` (both methods) run on each party's
own table. ``test_every_statistic_is_tested`` fails when ``protocols.stats`` gains a
public function this file does not run.
"""

from __future__ import annotations

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from test_stats_groupby_woe import check_groups, check_woe
from test_stats_horizontal import check as check_horizontal

import mpc
from mpc import ss
from protocols import stats
from protocols.stats.scaling import scale_column

PARTIES = ["alice", "bob"]
OPTS = {"triples": "ot", "timeout": 300}
RTOL = 1e-6
QS = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
EDGES = [-1e3, -10.0, 0.0, 0.5, 10.0, 1e3]
# what each job below runs; test_every_statistic_is_tested compares it with protocols.stats
TESTED = {"count", "sum", "mean", "var", "std", "cov", "pearson", "corr_matrix", "min", "max", "quantile",
          "median", "histogram", "describe", "share_scaled", "horizontal_describe", "group_by", "woe_iv",
          # the private join's scaling (scale_columns before it, apply_shifts after): run by every
          # join.stats job, here without a dealer in tests/test_two_servers.py and test_readme_deployment.py
          "scale_columns", "apply_shifts"}


def encoded(x: np.ndarray) -> np.ndarray:
    """The values as the owner's per-column scale stores them (order statistics are exact on these)."""
    ints, shift = scale_column(x)
    return np.ldexp(ints.astype(np.float64), -shift)


def _vertical(ctx, data):
    a = stats.share_scaled(ctx, data["a"] if ctx.party == "alice" else None, "alice", name="a")
    b = stats.share_scaled(ctx, data["b"] if ctx.party == "bob" else None, "bob", name="b")
    c = ss.share(ctx, data["c"] if ctx.party == "bob" else None, "bob")        # the job's frac_bits
    res = {}
    for name, x in {"a": a, "b": b, "c": c}.items():
        res[name] = {"count": stats.count(ctx, x), "sum": stats.sum(ctx, x), "mean": stats.mean(ctx, x),
                     "var": stats.var(ctx, x), "std": stats.std(ctx, x), "std0": stats.std(ctx, x, ddof=0),
                     "min": stats.min(ctx, x), "max": stats.max(ctx, x)}
    res["cov"] = stats.cov(ctx, a, b)
    res["pearson"] = stats.pearson(ctx, a, b)
    res["corr"] = stats.corr_matrix(ctx, {"a": a, "b": b, "c": c})
    res["q"] = stats.quantile(ctx, b, QS)
    res["q_lower"] = stats.quantile(ctx, a, 0.3, method="lower")
    res["median"] = stats.median(ctx, a)
    res["hist"] = stats.histogram(ctx, b, EDGES)
    res["hist_bins"] = stats.histogram(ctx, a, bins=4)
    res["describe"] = stats.describe(ctx, {"a": a, "b": b}, reveal_to="bob")
    return res


def _check_vertical(res, data):
    for name in ("a", "b", "c"):
        x = data[name] if name != "c" else np.round(data["c"] * 2 ** 16) / 2 ** 16
        r = res[name]
        scale = float(np.abs(x).max())
        assert r["count"] == len(x)
        assert r["sum"] == pytest.approx(x.sum(), rel=RTOL, abs=1e-6 * scale * len(x))
        assert r["mean"] == pytest.approx(x.mean(), rel=RTOL, abs=1e-6 * scale)
        assert r["var"] == pytest.approx(x.var(ddof=1), rel=1e-5, abs=1e-6 * scale ** 2)
        assert r["std"] == pytest.approx(x.std(ddof=1), rel=1e-5, abs=1e-5 * scale)
        assert r["std0"] == pytest.approx(x.std(ddof=0), rel=1e-5, abs=1e-5 * scale)
        e = encoded(x) if name != "c" else x
        assert r["min"] == e.min() and r["max"] == e.max()
    a, b = data["a"], data["b"]
    assert res["cov"] == pytest.approx(np.cov(a, b)[0, 1], rel=1e-5, abs=1e-5 * np.abs(a).max() * np.abs(b).max())
    assert res["pearson"] == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-4)
    plain = pd.DataFrame({"a": a, "b": b, "c": np.round(data["c"] * 2 ** 16) / 2 ** 16})
    ref = plain.corr()
    np.testing.assert_allclose(res["corr"].loc[ref.index, ref.columns].to_numpy(), ref.to_numpy(), atol=1e-4)
    # linear quantiles: the public weight t is rounded to INTERP_BITS = 30 bits, so an
    # interpolated value errs by up to (v_hi - v_lo) 2^-31 (hypothesis found 1.5e-7 on a range of 400)
    span = float(encoded(b).max() - encoded(b).min())
    np.testing.assert_allclose(res["q"], np.quantile(encoded(b), QS), rtol=1e-9, atol=1e-9 + span * 2.0 ** -30)
    assert res["q_lower"] == np.quantile(encoded(a), 0.3, method="lower")
    assert res["median"] == pytest.approx(np.median(encoded(a)), rel=1e-9, abs=1e-9)
    counts, edges = res["hist"]
    np.testing.assert_array_equal(counts, np.histogram(encoded(b), EDGES)[0])
    counts, edges = res["hist_bins"]
    assert counts.sum() == len(a) and len(edges) == 5
    np.testing.assert_array_equal(counts, np.histogram(encoded(a), edges)[0])
    assert edges[0] == encoded(a).min() and edges[-1] == encoded(a).max()


def _check_describe(got, data):
    ref = pd.DataFrame({"a": encoded(data["a"]), "b": encoded(data["b"])}).describe().T
    assert list(got.columns) == list(ref.columns)
    np.testing.assert_allclose(got.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-5,
                               atol=1e-6 * float(np.abs(ref.to_numpy()[:, 1:]).max()))


@st.composite
def columns(draw, max_n: int = 24) -> dict[str, np.ndarray]:
    """a: wide (1e-3 .. 1e4, either sign), b: moderate with ties, c: small fixed point;
    a and b never constant (their extremes are set), every column finite."""
    n = draw(st.integers(3, max_n))
    wide = st.one_of(st.floats(-1e4, 1e4), st.floats(-1e-2, 1e-2), st.sampled_from([0.0, 1.0, -3.5]))
    a = draw(hnp.arrays(np.float64, n, elements=wide))
    b = draw(hnp.arrays(np.float64, n, elements=st.one_of(st.floats(-500, 500), st.sampled_from([0.0, 2.5]))))
    c = draw(hnp.arrays(np.float64, n, elements=st.floats(-50, 50)))
    a[:2], b[:2], c[:2] = (-7000.0, 9000.0), (-400.0, 300.0), (-20.0, 20.0)
    return {"a": a, "b": b, "c": c}


def _run_vertical(data, transport):
    out = mpc.run_local(_vertical, PARTIES, args={p: (data,) for p in PARTIES}, transport=transport, **OPTS)
    assert out["alice"]["describe"] is None
    _check_describe(out["bob"].pop("describe"), data)
    out["alice"].pop("describe")
    for p in PARTIES:
        _check_vertical(out[p], data)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=columns())
def test_vertical_statistics_in_memory(data):
    _run_vertical(data, "memory")


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=columns(max_n=10))
def test_vertical_statistics_over_grpc(data):
    _run_vertical(data, "grpc")


# -- each party's own table: horizontal describe, group-by, WOE / IV -------------------------------

def _tables(ctx, frames, key, spend, rate, y, score, method):
    mine = frames[ctx.party]
    pooled = stats.horizontal_describe(ctx, mine)
    groups = stats.group_by(ctx, {"region": key} if ctx.party == "alice" else {"spend": spend, "rate": rate},
                            "region", {"spend": ["sum", "mean"], "rate": "mean"}, min_group_size=3)
    woe = stats.woe_iv(ctx, {"y": y} if ctx.party == "alice" else {"score": score}, "y", ["score"], bins=3,
                       method=method, key_bits=512)
    return pooled, groups, woe


@st.composite
def tables(draw, max_n: int = 30):
    n = draw(st.integers(8, max_n))
    m = draw(st.integers(1, max_n))
    frames = {p: pd.DataFrame({"v": draw(hnp.arrays(np.float64, k, elements=st.floats(-1e4, 1e4))),
                               "w": draw(hnp.arrays(np.int64, k, elements=st.integers(-50, 50)))})
              for p, k in (("alice", n), ("bob", m))}
    key = np.array(draw(st.lists(st.sampled_from(["north", "south", "east"]), min_size=n, max_size=n)))
    spend = draw(hnp.arrays(np.float64, n, elements=st.floats(1e-3, 1e4)))
    rate = draw(hnp.arrays(np.float64, n, elements=st.floats(-1e-2, 1e-2)))
    y = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    y[:2] = (0, 1)                                                   # both classes
    score = draw(hnp.arrays(np.float64, n, elements=st.floats(-10, 10)))
    score[:2] = (-5.0, 5.0)                                          # at least one bin edge apart
    return frames, key, spend, rate, y, score


def _run_tables(drawn, method, transport):
    frames, key, spend, rate, y, score = drawn
    out = mpc.run_local(_tables, PARTIES, args={p: (*drawn, method) for p in PARTIES}, transport=transport, **OPTS)
    for p in PARTIES:
        pooled, groups, woe = out[p]
        check_horizontal(pooled, frames)
        check_groups(groups, key, spend, rate, 3)
        check_woe(woe, y, {"score": score}, 3)


@pytest.mark.parametrize("method", ["ss", "paillier"])
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=tables())
def test_table_statistics_in_memory(drawn, method):
    _run_tables(drawn, method, "memory")


@settings(max_examples=1, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=tables(max_n=12))
def test_table_statistics_over_grpc(drawn):
    _run_tables(drawn, "ss", "grpc")


def test_every_statistic_is_tested(monkeypatch):
    """TESTED is protocols.stats' public functions, and the jobs above call each of them
    (recorded on one small run of each) but the two the join jobs run."""
    public = set(stats.__all__)
    assert public - TESTED == set(), f"statistics this file does not run: {sorted(public - TESTED)}"
    assert TESTED - public == set(), f"TESTED names what protocols.stats does not have: {sorted(TESTED - public)}"
    called: set[str] = set()

    def record(name, fn):
        def wrapper(*args, **kwargs):
            called.add(name)
            return fn(*args, **kwargs)
        return wrapper

    for name in public:
        monkeypatch.setattr(stats, name, record(name, getattr(stats, name)))
    rng = np.random.default_rng(4)
    data = {"a": rng.normal(size=6) * 100, "b": rng.normal(size=6), "c": rng.normal(size=6)}
    _run_vertical(data, "memory")
    n = 8
    frames = {p: pd.DataFrame({"v": rng.normal(size=k), "w": rng.integers(0, 9, k)}) for p, k in (("alice", n),
                                                                                                   ("bob", 3))}
    y = np.array([0, 1] * (n // 2))
    _run_tables((frames, np.array(["a", "b"] * (n // 2)), rng.random(n) + 1, rng.random(n), y, rng.normal(size=n)),
                "ss", "memory")
    assert TESTED - called == {"scale_columns", "apply_shifts"}, sorted(TESTED - called)
