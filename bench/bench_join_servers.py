"""Issue 7's end-to-end target on real party servers: private join of N x N ids (half
overlapping, two numeric columns per party), then the Pearson correlation matrix and
describe of the four joined columns, as one ``join.stats`` job.

Run: ``python -m pytest bench/bench_join_servers.py -p no:cacheprovider -o addopts="" -s``.
N = ``GAOTIE_BENCH_SERVERS_N`` (default 2^16; the target is 2^20 in <= 60 s with <= 2 GiB
per party), join methods = ``GAOTIE_BENCH_SERVERS_JOIN`` (comma-separated; default
``dealer,circuit``: the dealer join on bank + retailer + dealer, and the dealer-free
circuit join on two servers alone, ``LocalCluster(dealer=False)``, where ``join="auto"``
and ``triples="auto"`` resolve to the circuit join and OT triples; ``ecdh`` runs the
ECDH + Paillier join on the two servers). ``GAOTIE_BENCH_SERVERS_E2E=dealer`` (a list)
runs the end-to-end job only for those methods (the others time the join alone).

Each party is its own ``gaotie serve`` process with mutual TLS (``LocalCluster``), reading
its table from a Parquet file, so the peak RSS printed is per party (``VmHWM`` of each
server process). Besides the end-to-end job, the join alone is timed (a ``join.stats``
job asking for no statistic: the same join, then only the row count); the statistics part
printed is the difference of the two. Reference: pandas
on the pooled plaintext (``merge`` + ``corr`` + ``describe``) in the same run; the ratios
are printed side by side.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest
from procstatus import status_mib  # bench/procstatus.py

from mpc.cluster import LocalCluster

N = int(os.environ.get("GAOTIE_BENCH_SERVERS_N", 1 << 16))
JOINS = os.environ.get("GAOTIE_BENCH_SERVERS_JOIN", "dealer,circuit").split(",")
E2E = os.environ.get("GAOTIE_BENCH_SERVERS_E2E", ",".join(JOINS)).split(",")
TARGET_S = 60.0
COLUMNS = ["bank.accounts.income", "bank.accounts.rate", "retailer.purchases.spend", "retailer.purchases.score"]
IDS = ["bank.accounts.id", "retailer.purchases.id"]


def frames(n: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bank (income 1e-4..1e4 lognormal, rate ~1e-4) and retailer (spend, score) tables."""
    rng = np.random.default_rng(7)
    base = rng.lognormal(3, 2, n + n // 2).clip(1e-4, 1e4)
    bank = pd.DataFrame({"id": np.arange(n, dtype=np.int64), "income": base[:n],
                         "rate": 1e-4 * rng.normal(size=n)})
    retail = pd.DataFrame({"id": np.arange(n // 2, n + n // 2, dtype=np.int64),
                           "spend": (0.3 * base + rng.lognormal(0, 1, n + n // 2))[n // 2:],
                           "score": rng.normal(600, 50, n)})
    return bank, retail


def _run(join: str, bank: pd.DataFrame, retail: pd.DataFrame) -> tuple[dict, float, float, dict]:
    """One cluster per method (with the dealer only for the dealer join): the join alone
    (``count``), then the end-to-end job; returns (result, join s, end-to-end s, peak RSS)."""
    datasets = {"bank": {"accounts": bank}, "retailer": {"purchases": retail}}
    limits = {"job_timeout": 7200.0}     # the servers' default (600 s) is too short for the ECDH join at 2^20
    with LocalCluster(["bank", "retailer"], datasets=datasets, limits=limits, dealer=join == "dealer") as cluster, \
            cluster.client("bank") as client:
        kw = {"join": "auto" if join == "circuit" else join, "job_timeout": 3600, "progress": False}
        t0 = time.perf_counter()
        client.run("join.stats", ids=IDS, columns=COLUMNS, stats=[], **kw)
        join_s = time.perf_counter() - t0
        out, elapsed = None, float("nan")
        if join in E2E:
            t0 = time.perf_counter()
            out = client.run("join.stats", ids=IDS, columns=COLUMNS, stats=["describe", "corr"], **kw)
            elapsed = time.perf_counter() - t0
        rss = {p: status_mib(proc.pid, "VmHWM") for p, proc in cluster.processes.items()}
    return out, join_s, elapsed, rss


@pytest.mark.timeout(7200)
def test_join_stats_on_party_servers(benchmark):
    bank, retail = frames(N)
    t0 = time.perf_counter()
    plain = bank.merge(retail, on="id")[["income", "rate", "spend", "score"]]
    expected_corr, expected_describe = plain.corr(), plain.describe().T
    pandas_s = time.perf_counter() - t0

    lines, results = [], {}
    for join in JOINS[1:]:
        results[join] = _run(join, bank, retail)
    results[JOINS[0]] = benchmark.pedantic(_run, args=(JOINS[0], bank, retail), rounds=1, iterations=1)
    for join in JOINS:
        out, join_s, elapsed, rss = results[join]
        if out is not None:
            assert out["rows"] == len(plain)
            np.testing.assert_allclose(out["corr"].to_numpy(), expected_corr.to_numpy(), atol=1e-4)
            np.testing.assert_allclose(out["describe"].to_numpy(), expected_describe.to_numpy(), rtol=1e-3,
                                       atol=1e-9)
        lines.append(f"  join={join:8s} {'(no dealer)' if join != 'dealer' else '(dealer)   '}: join alone "
                     f"{join_s:6.1f} s, join + corr + describe {elapsed:6.1f} s (statistics part about "
                     f"{elapsed - join_s:5.1f} s; {elapsed / TARGET_S:.2f} x the "
                     f"{TARGET_S:.0f} s target; {elapsed / pandas_s:.0f}x pandas); peak RSS per party (MiB): "
                     + ", ".join(f"{p} {v:.0f}" for p, v in rss.items()))
    print(f"\njoin.stats on party servers, {N} x {N} ids, {len(plain)} joined rows; pandas on the plaintext "
          f"{pandas_s:.3f} s; load {os.getloadavg()[0]:.1f}\n" + "\n".join(lines))
    if N >= 1 << 20:
        for join in JOINS:
            assert max(results[join][3].values()) <= 2048, (join, results[join][3])
