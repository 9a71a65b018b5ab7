"""Credit scoring: weight of evidence and information value of a retailer's features
against a bank's default label.

The standard vertical-federated scorecard step: the rows of customers both companies
hold are aligned by PSI (each side learns which of its own customers the other has, as
in FATE's hetero-WOE), the bank encrypts its 0/1 labels with Paillier, the retailer sums
the encrypted labels per bin of its own features, and the bank decrypts the per-bin
event counts. The retailer never sees a label; the bank never sees a feature value.

Run: python examples/credit_woe.py (a plain script: no main guard needed)
"""

from __future__ import annotations

from mpc import LocalCluster
from mpc.demo import sample_datasets

with LocalCluster(["bank", "retailer"], datasets=sample_datasets(), dealer=False) as cluster:
    with cluster.client("bank") as bank:
        out = bank.run("stats.woe_iv", ids=["bank.accounts.customer_id", "retailer.purchases.customer_id"],
                       label="bank.accounts.default",
                       features=["retailer.purchases.spend", "retailer.purchases.visits"], bins=5)
print(f"rows aligned: {out['rows']}")
print("WOE per bin:")
print(out["bins"][["feature", "bin", "lower", "upper", "count", "events", "woe"]].to_string(index=False))
print("information value per feature:")
for _, row in out["iv"].iterrows():
    print(f"IV {row['feature']}: {row['iv']:.4f}")
