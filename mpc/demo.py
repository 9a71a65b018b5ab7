"""``gaotie demo``: two companies on bundled sample data, real party servers, real TLS.

Starts a LocalCluster (bank, retailer, dealer), then runs every joint query that is
registered, as an analyst at the bank would, and prints what each party learned and how
long each step took.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import Any

from protocols import registry

BANK_POLICY = {"customer_id": "join_key", "income": "aggregate", "segment": "plaintext", "default": "aggregate"}
RETAIL_POLICY = {"customer_id": "join_key", "spend": "aggregate", "visits": "aggregate"}

# (title, protocol, parameters), run in this order when the protocol is registered.
STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("Secure sum of bank incomes and retail spend", "demo.secure_sum",
     {"columns": ["bank.accounts.income", "retailer.purchases.spend"]}),
    ("How many customers do we share? (PSI cardinality)", "psi.cardinality",
     {"ids": ["bank.accounts.customer_id", "retailer.purchases.customer_id"]}),
    ("Income and spend of the shared customers: describe and Pearson correlation (private join)", "join.stats",
     {"ids": ["bank.accounts.customer_id", "retailer.purchases.customer_id"],
      "columns": ["bank.accounts.income", "retailer.purchases.spend"], "stats": ["describe", "corr"]}),
    ("Retail spend per bank segment over the shared customers (private join + group-by)", "stats.group_by",
     {"ids": ["bank.accounts.customer_id", "retailer.purchases.customer_id"], "key": "bank.accounts.segment",
      "values": ["retailer.purchases.spend"]}),
]


def sample_datasets() -> dict[str, dict[str, Any]]:
    data = resources.files("mpc.data")
    return {"bank": {"accounts": {"path": str(data / "bank_accounts.csv"), "id": "customer_id",
                                  "columns": BANK_POLICY, "min_group_size": 20}},
            "retailer": {"purchases": {"path": str(data / "retailer_purchases.csv"), "id": "customer_id",
                                       "columns": RETAIL_POLICY, "min_group_size": 20}}}


def run_demo(print_fn=print) -> int:
    from mpc.cluster import LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(["bank", "retailer"], tls=True, datasets=sample_datasets()) as cluster:
        print_fn(f"Started party servers with mutual TLS in {time.perf_counter() - t0:.1f}s: "
                 + ", ".join(f"{p} at {a}" for p, a in cluster.addresses.items()))
        available = set(registry.names())
        with cluster.client("bank") as bank, cluster.client("retailer") as retailer:
            for title, protocol, params in STEPS:
                if protocol not in available:
                    continue
                t = time.perf_counter()
                job_id = bank.submit(protocol, **params)
                learned = {"bank": bank.result(job_id, progress=False)}
                learned["retailer"] = retailer.result(job_id, progress=False)  # asked of its own server
                print_fn(f"\n== {title}\n   protocol {protocol}, job {job_id}, "
                         f"{time.perf_counter() - t:.2f}s over gRPC")
                print_fn(f"   reveals: {registry.get(protocol).reveals}")
                for party, value in learned.items():
                    print_fn(f"   {party} learned: {_show(value)}")
    print_fn(f"\nDone in {time.perf_counter() - t0:.1f}s.")
    return 0


def _show(value: Any) -> str:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return "\n" + value.to_string(max_rows=12)
    if isinstance(value, dict):
        return "".join(f"\n   {k}: {_show(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:,.4f}"
    return repr(value)
