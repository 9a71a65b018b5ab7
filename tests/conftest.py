"""Shared fixtures: real party-server clusters (separate processes, loopback, mTLS), a spy on the
widths of the comparisons mpc.ss.order opens, and checks of statistics results against pandas."""

import os
from pathlib import Path

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest

from mpc.cluster import LocalCluster

# Fixed-point inputs for operator tests: tiny, large and edge values (|x| within 16-bit-fraction range).
FIXED_POINT_FLOATS = st.one_of(st.floats(-1e-3, 1e-3), st.floats(-30000, 30000),
                               st.sampled_from([0.0, -32767.5, 1e4]))


def float_pairs(max_n: int):
    """Two float64 arrays of one length in 1..max_n with FIXED_POINT_FLOATS elements."""
    return st.integers(1, max_n).flatmap(lambda n: st.tuples(hnp.arrays(np.float64, n, elements=FIXED_POINT_FLOATS),
                                                             hnp.arrays(np.float64, n, elements=FIXED_POINT_FLOATS)))


def bank_and_retailer(n_bank=300, n_retail=250, overlap=120, seed=3):
    """Two small tables sharing ``overlap`` customer ids (test data, numpy.random is fine)."""
    rng = np.random.default_rng(seed)
    ids = [f"id{i:05d}" for i in range(n_bank + n_retail - overlap)]
    bank_ids, retail_ids = ids[:n_bank], ids[n_bank - overlap:]
    bank = pd.DataFrame({"customer_id": bank_ids, "income": rng.lognormal(10, 0.6, n_bank).round(2),
                         "segment": rng.choice(["a", "b", "c"], n_bank)})
    retail = pd.DataFrame({"customer_id": retail_ids, "spend": rng.normal(500, 100, n_retail).round(2)})
    return bank, retail


@pytest.fixture(scope="module")
def tls_cluster():
    bank, retail = bank_and_retailer()
    datasets = {"bank": {"accounts": {"frame": bank, "id": "customer_id",
                                      "columns": {"customer_id": "join_key", "income": "aggregate",
                                                  "segment": "plaintext"}}},
                "retailer": {"purchases": {"frame": retail, "id": "customer_id",
                                           "columns": {"customer_id": "join_key", "spend": "aggregate"}}}}
    with LocalCluster(["bank", "retailer"], tls=True, datasets=datasets) as cluster:
        cluster.frames = {"bank": bank, "retailer": retail}
        yield cluster


@pytest.fixture
def opened_widths(monkeypatch) -> set[int]:
    """The key widths (``bits``) of every comparison mpc.ss.order opens (``_less_open``) while
    the test runs, in this process: a test checks its selections compared narrow keys."""
    from mpc.ss import order
    widths: set[int] = set()
    real = order._less_open

    def less(ctx, d, bits):
        widths.add(bits)
        return real(ctx, d, bits)

    monkeypatch.setattr(order, "_less_open", less)
    return widths


def server_stats(cluster: LocalCluster, party: str) -> dict[str, int]:
    """Threads, open file descriptors and resident memory (bytes) of a party's server process."""
    pid = cluster.processes[party].pid
    rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return {"threads": len(os.listdir(f"/proc/{pid}/task")), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "rss": rss}


# -- checks of statistics jobs against pandas, shared by the dealer and no-dealer clusters ---------

def check_group_by(out, joined, min_group_size):
    """A stats.group_by result (key segment, values spend) equals pandas on the joined rows,
    groups under ``min_group_size`` suppressed with no aggregates."""
    import pytest

    plain = joined.groupby("segment").spend.agg(["count", "sum", "mean"])
    out = out.set_index("segment")
    assert sorted(out.index) == sorted(plain.index)
    for seg, row in plain.iterrows():
        if row["count"] < min_group_size:
            assert out.loc[seg, "suppressed"]
            assert np.isnan(out.loc[seg, "retailer.spend_sum"])
        else:
            assert not out.loc[seg, "suppressed"]
            assert out.loc[seg, "count"] == row["count"]
            assert out.loc[seg, "retailer.spend_sum"] == pytest.approx(row["sum"], rel=1e-6)
            assert out.loc[seg, "retailer.spend_mean"] == pytest.approx(row["mean"], rel=1e-6)


def check_woe_iv(out, joined):
    """A stats.woe_iv result (label default, feature spend) equals the plain WOE and IV of
    its own bins on the joined rows."""
    import pytest

    bins = out["bins"]
    edges = np.append(bins.lower.to_numpy(), bins.upper.iloc[-1])
    idx = np.clip(np.searchsorted(edges, joined.spend.to_numpy(), side="right") - 1, 0, len(bins) - 1)
    events = np.bincount(idx, weights=joined["default"], minlength=len(bins))
    sizes = np.bincount(idx, minlength=len(bins))
    assert (bins["count"].to_numpy() == sizes).all()
    assert (bins["events"].to_numpy() == events).all()
    good, bad = sizes - events, events
    woe = np.log((good / good.sum()) / (bad / bad.sum()))
    np.testing.assert_allclose(bins["woe"].to_numpy(), woe, rtol=1e-9)
    iv = ((good / good.sum() - bad / bad.sum()) * woe).sum()
    assert out["iv"].set_index("feature").loc["spend", "iv"] == pytest.approx(iv, rel=1e-9)


def check_horizontal_income(out, *frames):
    """stats.horizontal_describe of the parties' income columns equals pandas' describe of
    their concatenation."""
    expected = pd.concat([f.income for f in frames]).describe()
    got = out.set_index("column").loc["income"]
    np.testing.assert_allclose(got[expected.index].to_numpy(dtype=float), expected.to_numpy(), rtol=1e-6)
