"""Shared fixtures: real party-server clusters (separate processes, loopback, mTLS)."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mpc.cluster import LocalCluster


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


def server_stats(cluster: LocalCluster, party: str) -> dict[str, int]:
    """Threads, open file descriptors and resident memory (bytes) of a party's server process."""
    pid = cluster.processes[party].pid
    rss = next(int(line.split()[1]) * 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return {"threads": len(os.listdir(f"/proc/{pid}/task")), "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "rss": rss}
