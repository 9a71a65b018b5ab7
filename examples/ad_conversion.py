"""Ad conversion measurement with intersection-sum (Google's Private Join and Compute use case).

An ad platform knows which users saw a campaign; a retailer knows what its customers
spent. Together they want the number of exposed users who bought, and how much those
users spent — without the platform learning who bought or the retailer learning who saw
the ad. The ad platform submits `psi.intersection_sum`: it learns (converted users, total
spend); the retailer learns only how many distinct users the platform has.

Run: python examples/ad_conversion.py (a plain script: no main guard needed)
"""

from __future__ import annotations

from importlib import resources

from mpc import LocalCluster

data = resources.files("mpc.data")
datasets = {
    "adplatform": {"impressions": {"path": str(data / "ad_impressions.csv"), "id": "user_id",
                                   "columns": {"user_id": "join_key", "campaign": "plaintext"}}},
    "retailer": {"purchases": {"path": str(data / "retailer_purchases.csv"), "id": "customer_id",
                               "columns": {"customer_id": "join_key", "spend": "aggregate"}}},
}
with LocalCluster(["adplatform", "retailer"], datasets=datasets, dealer=False) as cluster:
    with cluster.client("adplatform") as platform, cluster.client("retailer") as retailer:
        job_id = platform.submit("psi.intersection_sum",
                                 ids=["adplatform.impressions.user_id", "retailer.purchases.customer_id"],
                                 values="retailer.purchases.spend")
        result = platform.result(job_id)
        retailer_learned = retailer.result(job_id)
print(f"ad platform learned: {result['cardinality']} exposed users bought, "
      f"spending {result['sum']:,.2f} in total")
print(f"retailer learned:    {retailer_learned!r}: no result, by design (it only saw set sizes)")
