"""Registered PSI jobs on a real TLS cluster, against plain pandas/set computations."""

import json

import pytest

from mpc import JobFailed

IDS = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]


def _truth(cluster):
    bank, retail = cluster.frames["bank"], cluster.frames["retailer"]
    return bank, retail, set(bank.customer_id) & set(retail.customer_id)


def test_psi_cardinality_job(tls_cluster):
    _, _, common = _truth(tls_cluster)
    with tls_cluster.client("bank") as client:
        assert client.run("psi.cardinality", ids=IDS) == len(common)


def test_psi_job_only_receivers_learn(tls_cluster):
    bank, _, common = _truth(tls_cluster)
    with tls_cluster.client("bank") as bank_client, tls_cluster.client("retailer") as retail_client:
        job_id = bank_client.submit("psi.ecdh", ids=IDS, receivers=["bank"])
        frame = bank_client.result(job_id)
        assert retail_client.result(job_id) is None
    assert set(frame.customer_id) == common
    assert list(bank.customer_id.iloc[frame.row]) == list(frame.customer_id)


@pytest.mark.parametrize("method", ["oprf", "ecdh"])
def test_psi_job_methods_agree(tls_cluster, method):
    bank, retail, common = _truth(tls_cluster)
    with tls_cluster.client("bank") as bank_client, tls_cluster.client("retailer") as retail_client:
        job_id = bank_client.submit("psi.ecdh", ids=IDS, method=method)
        frames = bank_client.result(job_id), retail_client.result(job_id)
    assert set(frames[0].customer_id) == set(frames[1].customer_id) == common
    assert list(retail.customer_id.iloc[frames[1].row]) == list(frames[1].customer_id)


def test_psi_method_is_checked(tls_cluster):
    with tls_cluster.client("bank") as client:
        with pytest.raises(JobFailed, match="shows the receiver which of its ids match"):
            client.run("psi.cardinality", ids=IDS, method="oprf")
        with pytest.raises(JobFailed, match="must be one of"):
            client.run("psi.ecdh", ids=IDS, method="fast")


def test_intersection_sum_job(tls_cluster):
    _, retail, common = _truth(tls_cluster)
    with tls_cluster.client("bank") as client:
        out = client.run("psi.intersection_sum", ids=IDS, values="retailer.purchases.spend")
    assert out["cardinality"] == len(common)
    assert out["sum"] == pytest.approx(retail[retail.customer_id.isin(common)].spend.sum(), rel=1e-6)
    record = json.loads(tls_cluster.audit_log("retailer").read_text().splitlines()[-1])
    assert record["protocol"] == "psi.intersection_sum" and record["revealed_to_me"] == "nothing"


def test_intersection_sum_refuses_hidden_or_join_key_values(tls_cluster):
    with tls_cluster.client("bank") as client, pytest.raises(JobFailed, match="policy 'join_key'"):
        client.run("psi.intersection_sum", ids=IDS, values="retailer.purchases.customer_id")


def test_psi_needs_one_id_column_per_party(tls_cluster):
    with tls_cluster.client("bank") as client, pytest.raises(JobFailed, match="one id column per party"):
        client.run("psi.cardinality", ids=["bank.accounts.customer_id"])
