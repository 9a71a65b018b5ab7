"""PSI on two party servers with bucket work in process vs on a Ray cluster (issue 20).

Run: ``python -m pytest bench/bench_executor.py -p no:cacheprovider -o addopts="" -s``.
Sizes: 2^20 per side; ``GAOTIE_BENCH_EXECUTOR_N`` sets others (e.g. ``$((1<<22))``).
``GAOTIE_BENCH_EXECUTOR_ECDH=1`` also runs ``method="ecdh"`` (minutes at 2^20).

Each run is the ``psi.ecdh`` job (``method="oprf"`` unless told) between two ``gaotie serve``
processes with mutual TLS (``LocalCluster``), half the ids in common, the bank receiving:
once with both servers' bucket work in process (the default), once with both servers
configured ``[executor] kind = "ray"`` against one Ray instance (``num_cpus`` = this
machine's CPUs) that this process starts. Printed: seconds end to end, each server's
peak RSS (``VmHWM``), and with Ray the peak RSS of the Ray worker processes (summed: on
a real deployment each party has its own cluster, here both share one), with ``uptime``'s
load. On one machine Ray adds serialisation and object-store copies without adding cores:
the figure to read is what the servers hold, not speed-up.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mpc.cluster import LocalCluster
from mpc.runtime.executor import RayExecutor

N = int(os.environ.get("GAOTIE_BENCH_EXECUTOR_N", 1 << 20))
METHODS = ["oprf"] + (["ecdh"] if os.environ.get("GAOTIE_BENCH_EXECUTOR_ECDH") else [])


def _status(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


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


def _run(n: int, method: str, executor: dict | None) -> tuple[float, dict[str, float]]:
    a, b = np.arange(n, dtype=np.int64), np.arange(n // 2, n + n // 2, dtype=np.int64)
    datasets = {"bank": {"accounts": pd.DataFrame({"id": a})}, "retailer": {"purchases": pd.DataFrame({"id": b})}}
    settings = {p: {"executor": executor} for p in ("bank", "retailer")} if executor else None
    with LocalCluster(["bank", "retailer"], datasets=datasets, dealer=False, settings=settings,
                      limits={"job_timeout": 7200.0}) as cluster, \
            cluster.client("bank") as client:
        t0 = time.perf_counter()
        frame = client.run("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"], receivers=["bank"],
                           method=method, progress=False)
        elapsed = time.perf_counter() - t0
        rss = {p: _status(proc.pid, "VmHWM") for p, proc in cluster.processes.items()}
    assert len(frame) == n - n // 2
    return elapsed, rss


@pytest.fixture(scope="module")
def ray_address():
    pytest.importorskip("ray")
    import ray

    ex = RayExecutor("local", num_cpus=os.cpu_count())
    ex.start()
    yield ray.get_runtime_context().gcs_address
    ex.close()


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("method", METHODS)
def test_psi_in_process_vs_ray(ray_address, method):
    n = N
    here_s, here_rss = _run(n, method, None)
    load_here = os.getloadavg()
    before = set(_ray_workers())
    ray_s, ray_rss = _run(n, method, {"kind": "ray", "address": ray_address})
    workers = _ray_workers()
    worker_rss = sum(_status(p, "VmHWM") for p in workers)
    load_ray = os.getloadavg()
    print(f"\npsi.ecdh method={method}, {n} x {n} ids, two party servers (mTLS), this machine "
          f"{os.cpu_count()} CPUs")
    print(f"  in-process: {here_s:7.2f} s; peak RSS bank {here_rss['bank']:.0f} MiB, retailer "
          f"{here_rss['retailer']:.0f} MiB (load {load_here[0]:.2f} {load_here[1]:.2f} {load_here[2]:.2f})")
    print(f"  Ray:        {ray_s:7.2f} s; peak RSS bank {ray_rss['bank']:.0f} MiB, retailer "
          f"{ray_rss['retailer']:.0f} MiB; Ray workers ({len(workers)}, {len(set(workers) - before)} new) "
          f"{worker_rss:.0f} MiB together (load {load_ray[0]:.2f} {load_ray[1]:.2f} {load_ray[2]:.2f})")
