"""The dealer as a party server: a job that uses SharedTensors runs over real `gaotie serve`
processes (mTLS), with the helper party "dealer" serving the triples."""

import numpy as np
import pytest


def test_join_stats_with_dealer_party_server(tls_cluster):
    """join.stats multiplies and compares SharedTensors: Beaver triples come from the
    dealer party server (seed-compressed), over mTLS gRPC between separate processes."""
    assert "dealer" in tls_cluster.servers
    bank, retail = tls_cluster.frames["bank"], tls_cluster.frames["retailer"]
    with tls_cluster.client("bank") as client:
        out = client.run("join.stats", ids=["bank.accounts.customer_id", "retailer.purchases.customer_id"],
                         columns=["bank.accounts.income", "retailer.purchases.spend"], stats=["corr"])
    joined = bank.merge(retail, on="customer_id")
    expected = np.corrcoef(joined.income, joined.spend)[0, 1]
    corr = out["corr"]
    value = corr.to_numpy()[0, 1] if hasattr(corr, "to_numpy") else np.asarray(corr)[0][1]
    assert value == pytest.approx(expected, abs=2e-3)
