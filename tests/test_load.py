"""Load on a 3-party cluster of real servers: concurrent jobs, many sequential jobs, flat memory.

All slow: ``pytest -m slow tests/test_load.py``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
from conftest import server_stats

from mpc.cluster import LocalCluster

PARTIES = ["a", "b", "c"]
COLUMNS = ["v0", "v1", "v2", "v3"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    rng = np.random.default_rng(11)
    frames = {}
    for k, p in enumerate(PARTIES):
        n = 3000 + 50 * k
        frame = pd.DataFrame({"id": [f"id{i:05d}" for i in range(400 * k, 400 * k + n)]})
        for c in COLUMNS:
            frame[c] = rng.integers(-1000, 1000, n).astype(np.float64)
        frames[p] = frame
    with LocalCluster(PARTIES, tls=True, datasets={p: {"t": f} for p, f in frames.items()}, dealer=False,
                      limits={"job_timeout": 240.0}) as cl:
        cl.frames = frames
        yield cl


def jobs_and_answers(cluster):
    """20 different jobs (sums over different columns and parties, PSI sizes) with their answers."""
    frames = cluster.frames
    ids = {p: set(f.id) for p, f in frames.items()}
    out = []
    for i in range(20):
        requester = PARTIES[i % 3]
        if i % 4 == 3:
            pair = [PARTIES[i % 3], PARTIES[(i + 1) % 3]]
            out.append((requester if requester in pair else pair[0], "psi.cardinality",
                        {"ids": [f"{p}.t.id" for p in pair]}, len(ids[pair[0]] & ids[pair[1]])))
        else:
            cols = {p: COLUMNS[(i + k) % 4] for k, p in enumerate(PARTIES)}
            answer = float(sum(frames[p][c].sum() for p, c in cols.items()))
            out.append((requester, "demo.secure_sum", {"columns": [f"{p}.t.{c}" for p, c in cols.items()]},
                        answer))
    return out


def test_20_concurrent_jobs_all_finish_correctly(cluster):
    jobs = jobs_and_answers(cluster)
    results: dict[int, object] = {}
    errors: dict[int, BaseException] = {}
    barrier = threading.Barrier(len(jobs))

    def run(i: int, requester: str, protocol: str, params: dict) -> None:
        try:
            with cluster.client(requester) as client:
                barrier.wait()
                results[i] = client.run(protocol, progress=False, **params)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i, r, p, params)) for i, (r, p, params, _) in enumerate(jobs)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(results) == len(jobs), f"{len(jobs) - len(results)} jobs did not finish"
    for i, (_, protocol, _, answer) in enumerate(jobs):
        assert results[i] == pytest.approx(answer, abs=1e-6), (i, protocol)
    print(f"20 concurrent jobs in {time.monotonic() - start:.1f}s")


def test_200_sequential_jobs_with_flat_memory(cluster):
    cols = [f"{p}.t.v0" for p in PARTIES]
    answer = float(sum(cluster.frames[p].v0.sum() for p in PARTIES))
    with cluster.client("a") as client:
        for _ in range(20):  # warm up: imports, caches, channels
            assert client.run("demo.secure_sum", columns=cols, progress=False) == pytest.approx(answer)
        before = {p: server_stats(cluster, p) for p in PARTIES}
        start = time.monotonic()
        for _ in range(200):
            assert client.run("demo.secure_sum", columns=cols, progress=False) == pytest.approx(answer)
        elapsed = time.monotonic() - start
    after = {p: server_stats(cluster, p) for p in PARTIES}
    for p in PARTIES:
        growth = after[p]["rss"] - before[p]["rss"]
        assert growth < 50 << 20, (p, growth)
        assert after[p]["threads"] <= before[p]["threads"] + 4, (p, before[p], after[p])
        assert after[p]["fds"] <= before[p]["fds"] + 4, (p, before[p], after[p])
    print(f"200 jobs in {elapsed:.1f}s; RSS growth (MB): "
          + ", ".join(f"{p} {(after[p]['rss'] - before[p]['rss']) / 2**20:.1f}" for p in PARTIES))


def test_more_concurrent_jobs_than_the_old_worker_pool_on_a_fresh_cluster():
    """48 concurrent 3-party jobs on fresh servers: each job holds an incoming stream per peer
    on every server (96 here, beyond the old fixed pool of 64 workers, which jammed every job
    until its deadline), and the first jobs arrive together (the registry was imported lazily
    and raced: 'unknown protocol')."""
    n = 1000
    frames = {p: pd.DataFrame({"id": [f"id{i}" for i in range(100 * k, 100 * k + n)]})
              for k, p in enumerate(PARTIES)}
    answer = len(set.intersection(*(set(f.id) for f in frames.values())))
    with LocalCluster(PARTIES, tls=True, datasets={p: {"t": f} for p, f in frames.items()}, dealer=False,
                      limits={"job_timeout": 240.0}) as cl:
        results: dict[int, object] = {}
        barrier = threading.Barrier(48)

        def run(i: int) -> None:
            with cl.client(PARTIES[i % 3]) as client:
                barrier.wait()
                try:
                    results[i] = client.run("psi.cardinality", ids=[f"{p}.t.id" for p in PARTIES], progress=False)
                except Exception as exc:  # noqa: BLE001 - reported below
                    results[i] = str(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(48)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
    assert results == {i: answer for i in range(48)}
