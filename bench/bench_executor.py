"""PSI on two party servers with bucket work in process vs on a Ray cluster (issue 20).

Run: ``python -m pytest bench/bench_executor.py -p no:cacheprovider -o addopts="" -s``.
Sizes: 2^20 per side; ``GAOTIE_BENCH_EXECUTOR_N`` sets others (e.g. ``$((1<<22))``).
``GAOTIE_BENCH_EXECUTOR_ECDH=1`` also runs ``method="ecdh"`` (minutes at 2^20).

Each run is the ``psi.ecdh`` job (``method="oprf"`` unless told) between two ``gaotie serve``
processes with mutual TLS (``LocalCluster``), half the ids in common, the bank receiving
(so the retailer is the OPRF sender, whose evaluation is the largest share of the work):
once with both servers' bucket work in process (the default), once with one party's server
(``GAOTIE_BENCH_EXECUTOR_PARTY``, default ``retailer``) configured ``[executor] kind =
"ray"`` against a Ray instance this process starts on this machine (``num_cpus`` = its
CPUs): that party's own cluster, with that server its only driver. Printed: seconds end to
end, each server's peak RSS (``VmHWM``), the peak RSS of the Ray worker processes (summed),
and ``uptime``'s load. Each timed job follows a small warm-up job on the same servers.
On one machine Ray adds serialisation and object-store copies without adding cores: the
figures show that the work moves and what that costs, not a speed-up (that needs a cluster
with more cores than the server).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from procstatus import status_mib  # bench/procstatus.py

from mpc.cluster import LocalCluster

N = int(os.environ.get("GAOTIE_BENCH_EXECUTOR_N", 1 << 20))
METHODS = ["oprf"] + (["ecdh"] if os.environ.get("GAOTIE_BENCH_EXECUTOR_ECDH") else [])


def _ray_workers() -> list[int]:
    """Pids of Ray's task worker processes on this machine (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"default_worker.py" in cmd or cmd.startswith(b"ray::"):
                pids.append(int(entry.name))
    return pids


def _sample_workers(peaks: dict[int, float], stop: threading.Event) -> None:
    while not stop.is_set():
        for pid in _ray_workers():
            peaks[pid] = max(peaks.get(pid, 0.0), status_mib(pid, "VmHWM", missing=0.0))
        stop.wait(0.5)


PARTY = os.environ.get("GAOTIE_BENCH_EXECUTOR_PARTY", "retailer")


def _run(n: int, method: str, executor: dict | None) -> tuple[float, dict[str, float]]:
    a, b = np.arange(n, dtype=np.int64), np.arange(n // 2, n + n // 2, dtype=np.int64)
    datasets = {"bank": {"accounts": pd.DataFrame({"id": a})}, "retailer": {"purchases": pd.DataFrame({"id": b})}}
    settings = {PARTY: {"executor": executor}} if executor else None
    datasets["bank"]["warm"] = pd.DataFrame({"id": a[:4096]})
    datasets["retailer"]["warm"] = pd.DataFrame({"id": b[:4096]})
    with LocalCluster(["bank", "retailer"], datasets=datasets, dealer=False, settings=settings,
                      limits={"job_timeout": 7200.0}) as cluster, \
            cluster.client("bank") as client:
        # a small job first: the servers' first use of their executor (Ray starts its workers)
        client.run("psi.ecdh", ids=["bank.warm.id", "retailer.warm.id"], method=method, progress=False)
        t0 = time.perf_counter()
        frame = client.run("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"], receivers=["bank"],
                           method=method, progress=False)
        elapsed = time.perf_counter() - t0
        rss = {p: status_mib(proc.pid, "VmHWM", missing=0.0) for p, proc in cluster.processes.items()}
    assert len(frame) == n - n // 2
    return elapsed, rss


@pytest.fixture(scope="module")
def ray_address():
    pytest.importorskip("ray")
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)   # runs no task itself
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("method", METHODS)
def test_psi_in_process_vs_ray(ray_address, method):
    n = N
    here_s, here_rss = _run(n, method, None)
    load_here = os.getloadavg()
    before = set(_ray_workers())
    peaks: dict[int, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_workers, args=(peaks, stop), daemon=True)
    sampler.start()
    try:
        ray_s, ray_rss = _run(n, method, {"kind": "ray", "address": ray_address})
    finally:
        stop.set()
        sampler.join()
    workers = [p for p in peaks if p not in before]        # the servers' workers, not this process's
    worker_rss = sum(peaks[p] for p in workers)
    load_ray = os.getloadavg()
    print(f"\npsi.ecdh method={method}, {n} x {n} ids, two party servers (mTLS), this machine "
          f"{os.cpu_count()} CPUs")
    print(f"  in-process:  {here_s:7.2f} s; peak RSS bank {here_rss['bank']:.0f} MiB, retailer "
          f"{here_rss['retailer']:.0f} MiB (load {load_here[0]:.2f} {load_here[1]:.2f} {load_here[2]:.2f})")
    print(f"  {PARTY} on Ray: {ray_s:7.2f} s; peak RSS bank {ray_rss['bank']:.0f} MiB, retailer "
          f"{ray_rss['retailer']:.0f} MiB; its {len(workers)} Ray workers "
          f"{worker_rss:.0f} MiB together, largest {max([peaks[p] for p in workers] or [0]):.0f} "
          f"(load {load_ray[0]:.2f} {load_ray[1]:.2f} {load_ray[2]:.2f})")
