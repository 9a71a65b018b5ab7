"""Two companies alone: every statistics job on a TLS cluster of bank and retailer with no
dealer (triples="auto" resolves to "ot"), against pandas on the plain data."""

import numpy as np
import pandas as pd
import pytest
from conftest import check_group_by, check_horizontal_income, check_woe_iv

from mpc.cluster import LocalCluster

IDS = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]


@pytest.fixture(scope="module")
def cluster():
    rng = np.random.default_rng(17)  # test data
    n_bank, n_retail, overlap = 60, 50, 40
    ids = [f"c{i:04d}" for i in range(n_bank + n_retail - overlap)]
    bank = pd.DataFrame({"customer_id": ids[:n_bank], "income": rng.lognormal(10, 0.5, n_bank).round(2),
                         "segment": rng.choice(["gold", "silver", "basic"], n_bank, p=[0.3, 0.4, 0.3]),
                         "default": (rng.random(n_bank) < 0.3).astype(int)})
    retail = pd.DataFrame({"customer_id": ids[n_bank - overlap:],
                           "spend": rng.gamma(2.0, 300.0, n_retail).round(2)})
    more = pd.DataFrame({"customer_id": [f"r{i}" for i in range(20)], "income": rng.lognormal(9, 1.0, 20).round(2)})
    datasets = {
        "bank": {"accounts": {"frame": bank, "id": "customer_id", "min_group_size": 5,
                              "columns": {"customer_id": "join_key", "income": "aggregate", "segment": "plaintext",
                                          "default": "aggregate"}}},
        "retailer": {"purchases": {"frame": retail, "id": "customer_id", "min_group_size": 5,
                                   "columns": {"customer_id": "join_key", "spend": "aggregate"}},
                     "branch": {"frame": more, "id": "customer_id", "min_group_size": 5}},
    }
    with LocalCluster(["bank", "retailer"], datasets=datasets, dealer=False, tls=True) as c:
        assert c.servers == ["bank", "retailer"]
        c.joined = bank.merge(retail, on="customer_id")
        c.bank, c.more = bank, more
        yield c


def test_join_stats_without_a_dealer_matches_pandas(cluster):
    with cluster.client("bank") as client:
        out = client.run("join.stats", ids=IDS, columns=["bank.accounts.income", "retailer.purchases.spend"],
                         stats=["describe", "corr", "histogram"], bins=3, progress=False)
    plain = cluster.joined[["income", "spend"]]
    assert out["rows"] == len(plain)
    np.testing.assert_allclose(out["describe"].to_numpy(), plain.describe().T.to_numpy(), rtol=1e-3, atol=1e-9)
    np.testing.assert_allclose(out["corr"].to_numpy(), plain.corr().to_numpy(), rtol=1e-3, atol=1e-4)
    hist = out["histogram"]["retailer.spend"]
    counts, edges = np.histogram(plain.spend, bins=3)
    np.testing.assert_allclose(hist.lower, edges[:-1], rtol=1e-9)
    assert (hist["count"][~hist.suppressed] == counts[~hist.suppressed.to_numpy()]).all()


def test_group_by_without_a_dealer_matches_pandas(cluster):
    with cluster.client("retailer") as client:
        out = client.run("stats.group_by", ids=IDS, key="bank.accounts.segment", values=["retailer.purchases.spend"],
                         progress=False)
    check_group_by(out, cluster.joined, 5)


def test_woe_iv_without_a_dealer_matches_plain_computation(cluster):
    with cluster.client("bank") as client:
        out = client.run("stats.woe_iv", ids=IDS, label="bank.accounts.default",
                         features=["retailer.purchases.spend"], bins=3, progress=False)
    check_woe_iv(out, cluster.joined)


def test_horizontal_describe_without_a_dealer_matches_pandas(cluster):
    with cluster.client("bank") as client:
        out = client.run("stats.horizontal_describe", columns=["bank.accounts.income", "retailer.branch.income"],
                         progress=False)
    check_horizontal_income(out, cluster.bank, cluster.more)


@pytest.mark.parametrize("protocol, params", [
    ("join.stats", {"columns": ["bank.accounts.income"]}),
    ("stats.group_by", {"key": "bank.accounts.segment", "values": ["retailer.purchases.spend"]}),
])
def test_join_dealer_without_a_dealer_is_refused_naming_it(cluster, protocol, params):
    with cluster.client("bank") as client, pytest.raises(Exception, match="needs the helper party 'dealer'"):
        client.run(protocol, ids=IDS, join="dealer", progress=False, **params)
