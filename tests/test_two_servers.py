"""Two companies alone: every statistics job on a TLS cluster of bank and retailer with no
dealer (triples="auto" resolves to "ot"), against pandas on the plain data; and the
registry entries that say so (the dealer a helper they can use, not one they require)."""

import json
import time

import numpy as np
import pandas as pd
import pytest
from conftest import check_group_by, check_horizontal_income, check_woe_iv

from mpc.cluster import LocalCluster
from mpc.runtime import helpers
from mpc.ss import provider
from protocols import registry

IDS = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]
# Each statistics job with its smallest valid parameters; the helpers it can use.
JOBS = {
    "join.stats": ({"ids": IDS, "columns": ["bank.accounts.income", "retailer.purchases.spend"]}, ("dealer",)),
    "stats.group_by": ({"ids": IDS, "key": "bank.accounts.segment", "values": ["retailer.purchases.spend"]},
                       ("dealer",)),
    "stats.horizontal_describe": ({"columns": ["bank.accounts.income", "retailer.branch.income"]}, ("dealer",)),
    # Paillier (the default method): no helper at all, so none to use or to require
    "stats.woe_iv": ({"ids": IDS, "label": "bank.accounts.default", "features": ["retailer.purchases.spend"]}, ()),
}


@pytest.mark.parametrize("name", sorted(JOBS))
def test_registry_the_dealer_is_usable_not_required(name):
    """What the entry declares: the helpers it can use (the dealer, to speed up its triples)
    and, for its default parameters, none it requires; the correlated randomness it needs
    is there with the dealer and without it (two parties: "auto" resolves to "ot")."""
    params, usable = JOBS[name]
    spec = registry.get(name)
    params = spec.validate(params)
    assert spec.helpers == usable
    assert spec.required_helpers(params) == ()
    assert spec.parties(params) == ["bank", "retailer"]
    alone = helpers.resolve_options(helpers.default_options(), ["bank", "retailer"], [])
    assert alone["triples"] == "ot"
    provider.check(spec.needs(params), alone, name)
    with_dealer = helpers.resolve_options(helpers.default_options(), ["bank", "retailer"], list(usable))
    assert with_dealer["triples"] == ("dealer" if usable else "ot")
    provider.check(spec.needs(params), with_dealer, name)


@pytest.mark.parametrize("name", ["join.stats", "stats.group_by"])
def test_registry_join_dealer_requires_the_dealer(name):
    """join="dealer" (and only it) makes the dealer required; without one its capability is missing."""
    params, _ = JOBS[name]
    spec = registry.get(name)
    for join in ("auto", "circuit", "ecdh"):
        assert spec.required_helpers(spec.validate({**params, "join": join})) == ()
    params = spec.validate({**params, "join": "dealer"})
    assert spec.required_helpers(params) == ("dealer",)
    with pytest.raises(provider.MissingCapability):
        provider.check(spec.needs(params), helpers.options_for([]), name)


def ran_alone(cluster, protocol):
    """The audit record, on both servers, of the last ``protocol`` job: done, with the bank
    and the retailer as its only parties (no helper party joined). A party writes it when the
    job ends there, which may be after the client has the result: waits up to 10 s."""
    for party in cluster.servers:
        deadline = time.monotonic() + 10.0
        while True:
            path = cluster.audit_log(party)
            records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
            mine = [r for r in records if r["protocol"] == protocol]
            if mine or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert mine, f"no audit record of {protocol} at {party!r}"
        last = mine[-1]
        assert last["outcome"] == "done" and last["parties"] == ["bank", "retailer"], last


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
    ran_alone(cluster, "join.stats")


def test_group_by_without_a_dealer_matches_pandas(cluster):
    with cluster.client("retailer") as client:
        out = client.run("stats.group_by", ids=IDS, key="bank.accounts.segment", values=["retailer.purchases.spend"],
                         progress=False)
    check_group_by(out, cluster.joined, 5)
    ran_alone(cluster, "stats.group_by")


def test_woe_iv_without_a_dealer_matches_plain_computation(cluster):
    with cluster.client("bank") as client:
        out = client.run("stats.woe_iv", ids=IDS, label="bank.accounts.default",
                         features=["retailer.purchases.spend"], bins=3, progress=False)
    check_woe_iv(out, cluster.joined)
    ran_alone(cluster, "stats.woe_iv")


def test_horizontal_describe_without_a_dealer_matches_pandas(cluster):
    with cluster.client("bank") as client:
        out = client.run("stats.horizontal_describe", columns=["bank.accounts.income", "retailer.branch.income"],
                         progress=False)
    check_horizontal_income(out, cluster.bank, cluster.more)
    ran_alone(cluster, "stats.horizontal_describe")


@pytest.mark.parametrize("protocol, params", [
    ("join.stats", {"columns": ["bank.accounts.income"]}),
    ("stats.group_by", {"key": "bank.accounts.segment", "values": ["retailer.purchases.spend"]}),
])
def test_join_dealer_without_a_dealer_is_refused_naming_it(cluster, protocol, params):
    with cluster.client("bank") as client, pytest.raises(Exception, match="needs the helper party 'dealer'"):
        client.run(protocol, ids=IDS, join="dealer", progress=False, **params)
