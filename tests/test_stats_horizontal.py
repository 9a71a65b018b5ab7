"""horizontal_describe against pandas' describe() of the pooled rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpc
from mpc.runtime.errors import JobFailed
from protocols.stats import horizontal_describe


def frames_for(parties, seed=0, n0=200):
    rng = np.random.default_rng(seed)
    out = {}
    for i, p in enumerate(parties):
        n = n0 + 37 * i
        out[p] = pd.DataFrame({
            "big": rng.lognormal(3, 2.5, n).clip(1e-4, 1e4),          # 1e-4 .. 1e4
            "tiny": 1e-4 * rng.normal(size=n) + 2e-5 * i,              # small standardized
            "offset": 1000 + 0.01 * rng.normal(size=n),                # large mean, small spread
            "neg": -rng.exponential(50, n),
            "count": rng.integers(-5, 5, n),
            "const": np.full(n, 2.5),
            "name": [f"r{j}" for j in range(n)],                       # non-numeric: skipped by default
        })
    return out


def job(ctx, frame, **kw):
    return horizontal_describe(ctx, frame, **kw)


def check(got, frames, columns=None):
    pooled = pd.concat(list(frames.values()), ignore_index=True)
    ref = (pooled[columns] if columns else pooled).describe().T
    assert list(got.index) == list(ref.index)
    assert list(got.columns) == list(ref.columns)
    # count, min, quantiles, max: exact; mean and std: relative 1e-9
    np.testing.assert_array_equal(got["count"], ref["count"])
    for c in ["min", "25%", "50%", "75%", "max"]:
        np.testing.assert_allclose(got[c], ref[c], rtol=1e-14, atol=0)
    np.testing.assert_allclose(got["mean"], ref["mean"], rtol=1e-9)
    np.testing.assert_allclose(got["std"], ref["std"], rtol=1e-7, atol=1e-300)


@pytest.mark.parametrize("parties", [["alice", "bob"], ["alice", "bob", "carol"]])
def test_matches_pandas_memory(parties):
    frames = frames_for(parties)
    out = mpc.run_local(job, parties, args={p: (frames[p],) for p in parties}, timeout=120)
    for p in parties:
        check(out[p], frames)


def test_matches_pandas_grpc_three_parties():
    parties = ["alice", "bob", "carol"]
    frames = frames_for(parties, seed=1, n0=80)
    out = mpc.run_local(job, parties, args={p: (frames[p],) for p in parties}, transport="grpc", timeout=120)
    check(out["carol"], frames)


def test_reveal_to_and_columns():
    parties = ["alice", "bob"]
    frames = frames_for(parties, seed=2, n0=50)
    kw = {"columns": ["tiny", "offset"], "reveal_to": "bob"}
    out = mpc.run_local(job, parties, args={p: (frames[p],) for p in parties},
                        kwargs={p: kw for p in parties}, timeout=60)
    assert out["alice"] is None
    check(out["bob"], frames, ["tiny", "offset"])


def test_nan_policy():
    parties = ["alice", "bob"]
    frames = frames_for(parties, seed=3, n0=40)
    frames["bob"].loc[[1, 5, 7], "big"] = np.nan
    with pytest.raises(JobFailed, match="column 'big' has 3 NaN"):
        mpc.run_local(job, parties, args={p: (frames[p],) for p in parties}, timeout=60)
    out = mpc.run_local(job, parties, args={p: (frames[p],) for p in parties},
                        kwargs={p: {"nan_policy": "omit"} for p in parties}, timeout=60)
    check(out["alice"], frames)               # pandas skips NaN too
    assert out["alice"].loc["big", "count"] == 40 + 77 - 3


def test_one_party_with_no_rows_and_a_single_row():
    parties = ["alice", "bob"]
    frames = {"alice": pd.DataFrame({"x": np.array([], dtype=float)}), "bob": pd.DataFrame({"x": [3.25]})}
    out = mpc.run_local(job, parties, args={p: (frames[p],) for p in parties}, timeout=60)
    ref = pd.concat(list(frames.values())).describe().T
    got = out["alice"]
    assert got.loc["x", "count"] == 1 and np.isnan(got.loc["x", "std"])
    assert got.loc["x", "mean"] == ref.loc["x", "mean"] == got.loc["x", "50%"]


def test_bad_input():
    parties = ["alice", "bob"]
    a = pd.DataFrame({"x": [1.0, 2.0], "s": ["u", "v"]})
    b = pd.DataFrame({"y": [1.0, 2.0], "s": ["u", "v"]})
    with pytest.raises(JobFailed, match="parties describe different columns"):
        mpc.run_local(job, parties, args={"alice": (a,), "bob": (b,)}, timeout=30)
    with pytest.raises(JobFailed, match="column 's' is not numeric"):
        mpc.run_local(job, parties, args={"alice": (a,), "bob": (a,)},
                      kwargs={p: {"columns": ["x", "s"]} for p in parties}, timeout=30)
    with pytest.raises(JobFailed, match="must be a pandas DataFrame"):
        mpc.run_local(job, parties, args={"alice": ({"x": [1.0]},), "bob": (a,)}, timeout=30)
    empty = pd.DataFrame({"x": np.array([], dtype=float)})
    with pytest.raises(JobFailed, match="no values at any party"):
        mpc.run_local(job, parties, args={"alice": (empty,), "bob": (empty,)}, timeout=30)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=0, max_size=20),
       st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20))
def test_property_against_pandas(xs, ys):
    frames = {"alice": pd.DataFrame({"v": np.array(xs, dtype=float)}),
              "bob": pd.DataFrame({"v": np.array(ys, dtype=float)})}
    got = mpc.run_local(job, ["alice", "bob"], args={p: (frames[p],) for p in frames}, timeout=60)["bob"]
    ref = pd.concat(list(frames.values())).describe().T
    for c in ["count", "min", "25%", "50%", "75%", "max"]:
        assert got.loc["v", c] == ref.loc["v", c]
    assert got.loc["v", "mean"] == pytest.approx(ref.loc["v", "mean"], rel=1e-9, abs=1e-9)
    if len(xs) + len(ys) > 1:
        assert got.loc["v", "std"] == pytest.approx(ref.loc["v", "std"], rel=1e-6, abs=1e-9)
