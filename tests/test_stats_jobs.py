"""Statistics jobs on a real TLS cluster (bank, retailer, dealer) against pandas on the plain data."""


import numpy as np
import pandas as pd
import pytest
from conftest import check_group_by, check_horizontal_income, check_woe_iv

from mpc import JobFailed
from mpc.cluster import LocalCluster

IDS = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]


@pytest.fixture(scope="module")
def cluster():
    rng = np.random.default_rng(11)  # test data
    n_bank, n_retail, overlap = 160, 140, 90
    ids = [f"c{i:04d}" for i in range(n_bank + n_retail - overlap)]
    income = rng.lognormal(10, 0.5, n_bank).round(2)
    bank = pd.DataFrame({"customer_id": ids[:n_bank], "income": income,
                         "segment": rng.choice(["gold", "silver", "basic", "vip"], n_bank, p=[0.3, 0.3, 0.37, 0.03]),
                         "default": (rng.random(n_bank) < 0.3).astype(int), "tiny": rng.normal(0, 1e-3, n_bank)})
    retail_ids = ids[n_bank - overlap:]
    retail = pd.DataFrame({"customer_id": retail_ids, "spend": rng.gamma(2.0, 300.0, n_retail).round(2),
                           "visits": rng.poisson(8, n_retail)})
    # The retailer also holds rows of the bank's schema (horizontal describe).
    more = pd.DataFrame({"customer_id": [f"r{i}" for i in range(50)], "income": rng.lognormal(9, 1.0, 50).round(2)})
    datasets = {
        "bank": {"accounts": {"frame": bank, "id": "customer_id", "min_group_size": 5,
                              "columns": {"customer_id": "join_key", "income": "aggregate", "segment": "plaintext",
                                          "default": "aggregate", "tiny": "aggregate"}}},
        "retailer": {"purchases": {"frame": retail, "id": "customer_id", "min_group_size": 5,
                                   "columns": {"customer_id": "join_key", "spend": "aggregate", "visits": "aggregate"}},
                     "branch": {"frame": more, "id": "customer_id", "min_group_size": 5}},
    }
    with LocalCluster(["bank", "retailer"], datasets=datasets) as c:
        c.joined = bank.merge(retail, on="customer_id")
        c.bank, c.more = bank, more
        yield c


@pytest.mark.parametrize("join", ["ecdh", "dealer"])
def test_join_stats_matches_pandas(cluster, join):
    with cluster.client("bank") as client:
        job_id = client.submit("join.stats", ids=IDS, columns=["bank.accounts.income", "bank.accounts.tiny",
                                                                "retailer.purchases.spend"],
                               stats=["describe", "corr", "histogram"], bins=4, join=join)
        out = client.result(job_id, progress=False)
    plain = cluster.joined[["income", "tiny", "spend"]]
    assert out["rows"] == len(plain)
    expected = plain.describe().T
    got = out["describe"]
    assert list(got.index) == ["bank.income", "bank.tiny", "retailer.spend"]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(out["corr"].to_numpy(), plain.corr().to_numpy(), rtol=1e-3, atol=1e-4)
    hist = out["histogram"]["retailer.spend"]
    counts, edges = np.histogram(plain.spend, bins=4)
    np.testing.assert_allclose(hist.lower, edges[:-1], rtol=1e-9)
    assert (hist["count"][~hist.suppressed] == counts[~hist.suppressed.to_numpy()]).all()
    assert (counts[hist.suppressed.to_numpy()] < 5).all()
    # the dealer's audit says what it learned: the sizes, and only with join="dealer"
    record = cluster.audit_record("dealer", job_id)
    assert ("join_sizes" in record["revealed_to_me"]) == (join == "dealer"), record


@pytest.mark.parametrize("join", ["ecdh", "dealer"])
def test_group_by_matches_pandas_and_suppresses(cluster, join):
    with cluster.client("retailer") as client:
        out = client.run("stats.group_by", ids=IDS, key="bank.accounts.segment", values=["retailer.purchases.spend"],
                         min_group_size=10, join=join, progress=False)
    check_group_by(out, cluster.joined, 10)


def test_woe_iv_matches_plain_computation(cluster):
    with cluster.client("bank") as client:
        out = client.run("stats.woe_iv", ids=IDS, label="bank.accounts.default",
                         features=["retailer.purchases.spend"], bins=4, progress=False)
    assert out["rows"] == len(cluster.joined)
    check_woe_iv(out, cluster.joined)


def test_horizontal_describe_matches_pandas(cluster):
    with cluster.client("bank") as client:
        out = client.run("stats.horizontal_describe", columns=["bank.accounts.income", "retailer.branch.income"],
                         progress=False)
    check_horizontal_income(out, cluster.bank, cluster.more)


def test_aggregating_too_few_rows_is_refused(cluster):
    with cluster.client("bank") as client, pytest.raises(JobFailed, match="min_group_size"):
        # 'branch' shares no customer with the bank: 0 rows is below every min_group_size.
        client.run("stats.woe_iv", ids=["bank.accounts.customer_id", "retailer.branch.customer_id"],
                   label="bank.accounts.default", features=["retailer.branch.income"], bins=2, progress=False)


def test_hidden_or_plaintext_rules(cluster):
    with cluster.client("bank") as client, pytest.raises(JobFailed, match="policy 'aggregate'"):
        client.run("stats.group_by", ids=IDS, key="retailer.purchases.visits", values=["bank.accounts.income"],
                   progress=False)


def test_cancel_stops_the_job_everywhere(cluster):
    with cluster.client("bank") as bank, cluster.client("retailer") as retailer:
        job_id = bank.submit("join.stats", ids=IDS, columns=["bank.accounts.income", "retailer.purchases.spend"],
                             stats=["describe", "corr", "histogram"])
        assert bank.cancel(job_id) == "cancelled"
        with pytest.raises(JobFailed, match="cancelled"):
            bank.result(job_id, timeout=30, progress=False)
        with pytest.raises(JobFailed):
            retailer.result(job_id, timeout=30, progress=False)
        assert bank.status(job_id)["state"] == "cancelled"
        # The servers keep serving.
        assert bank.run("psi.cardinality", ids=IDS, progress=False) == len(cluster.joined)


def test_unknown_join_method_is_refused(cluster):
    with cluster.client("bank") as client, pytest.raises(Exception, match="parameter 'join'"):
        client.run("join.stats", ids=IDS, columns=["bank.accounts.income"], join="magic", progress=False)
