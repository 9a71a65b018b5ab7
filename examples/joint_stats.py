"""A bank and a retailer: how many customers they share, how income relates to spend,
and spend per bank segment — without either seeing the other's rows.

Each company runs a party server over its own data (here a LocalCluster on this machine,
with mutual TLS and a dealer for Beaver triples). The bank's analyst submits three jobs:

1. ``psi.cardinality``: the size of the customer overlap (no ids revealed);
2. ``join.stats``: a private join on customer id, then describe() and the Pearson
   correlation of bank income vs retail spend over the joined rows;
3. ``stats.group_by``: retail spend per bank segment over the joined rows, groups under
   the policy's ``min_group_size`` suppressed. This one passes ``join="dealer"``: the
   dealer matches keyed tags instead of the two parties running ECDH + Paillier, which is
   ~100x faster on large tables and lets the dealer learn the table and join sizes.

Run: python examples/joint_stats.py (a plain script: no main guard needed)
"""

from __future__ import annotations

from mpc import LocalCluster
from mpc.demo import sample_datasets

IDS = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]

with LocalCluster(["bank", "retailer"], datasets=sample_datasets()) as cluster:
    with cluster.client("bank") as bank:
        overlap = bank.run("psi.cardinality", ids=IDS)
        stats = bank.run("join.stats", ids=IDS, columns=["bank.accounts.income", "retailer.purchases.spend"],
                         stats=["describe", "corr"])
        per_segment = bank.run("stats.group_by", ids=IDS, key="bank.accounts.segment",
                               values=["retailer.purchases.spend"], join="dealer")
pearson = stats["corr"].loc["bank.income", "retailer.spend"]
print(f"customers in common: {overlap}")
print(f"pearson(income, spend) over them: {pearson:.4f}")
print("describe() of the joined columns:")
print(stats["describe"].to_string())
print("retail spend per bank segment:")
print(per_segment.to_string(index=False))
