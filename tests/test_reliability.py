"""Reliability: faults during jobs on real party servers (separate ``gaotie serve`` processes).

A party raising inside a protocol, a party server SIGKILLed mid-job, a party that stops
answering (SIGSTOP): every other party fails the job quickly with an error naming the
party, servers keep serving the next job, and nothing leaks. Results are written
atomically: a party killed while writing leaves no partial result. The long ones are
marked slow: ``pytest -m slow tests/test_reliability.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest
from conftest import server_stats

from mpc import JobFailed
from mpc._proto.gaotie.v1 import party_pb2, party_pb2_grpc
from mpc.cluster import LocalCluster
from mpc.runtime import codec

PARTIES = ["a", "b", "c"]
FAIL_WITHIN = 10.0
JOB_TIMEOUT = 3.0       # of short_timeout_cluster


def id_frame(n: int, offset: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": [f"id{i:07d}" for i in range(offset, offset + n)],
                         "v": rng.integers(0, 1000, n).astype(np.float64)})


def datasets(n: int = 200) -> dict:
    out = {}
    for k, p in enumerate(PARTIES):
        frame = id_frame(n, 50 * k, seed=k)
        bad = frame.assign(v=frame.v.where(np.arange(n) != n // 2))  # one NaN, mid-column
        out[p] = {"t": frame,
                  "bad": {"frame": bad, "id": "id", "columns": {"id": "join_key", "v": "aggregate",
                                                                 "missing": "aggregate"}}}
    return out


def status_on(cluster: LocalCluster, party: str, job_id: str, until=("done", "failed", "cancelled"),
              timeout: float = 30.0) -> dict:
    """Poll ``party``'s own server until the job reaches a final state."""
    end = time.monotonic() + timeout
    with cluster.client(party) as client:
        while True:
            s = client.status(job_id)
            if s["state"] in until or time.monotonic() > end:
                return s
            time.sleep(0.05)


def expected_sum(cluster: LocalCluster, parties=PARTIES) -> float:
    return float(sum(cluster.frames[p].v.sum() for p in parties))


def run_sum(cluster: LocalCluster, via: str = "a", parties=PARTIES) -> float:
    with cluster.client(via) as client:
        return client.run("demo.secure_sum", columns=[f"{p}.t.v" for p in parties], progress=False)


@pytest.fixture(scope="module")
def cluster():
    ds = datasets()
    with LocalCluster(PARTIES, tls=True, datasets=ds, dealer=False, limits={"job_timeout": 30.0}) as cl:
        cl.frames = {p: ds[p]["t"] for p in PARTIES}
        yield cl


# -- a party raising inside a protocol ----------------------------------------------------
def test_party_raising_fails_the_job_everywhere_naming_it(cluster):
    """b's dataset declares a column its file lacks: b raises inside the job."""
    start = time.monotonic()
    with cluster.client("a") as client:
        job = client.submit("demo.secure_sum", columns=["a.t.v", "b.bad.missing", "c.t.v"])
        with pytest.raises(JobFailed) as info:
            client.result(job, progress=False)
    assert time.monotonic() - start < FAIL_WITHIN
    assert info.value.party == "b"
    assert "no column 'missing'" in str(info.value)
    for party in ("b", "c"):
        s = status_on(cluster, party, job)
        assert s["state"] == "failed" and "'b'" in s["error"], s
        assert s["failed_party"] == "b", s      # a field of the reply, not parsed from the error
    for party in PARTIES:  # each party's audit log records the failure
        records = [json.loads(x) for x in cluster.audit_log(party).read_text().splitlines()]
        record = next(r for r in records if r["job_id"] == job)
        assert record["outcome"] == "failed" and "'b'" in record["error"]
    assert run_sum(cluster) == pytest.approx(expected_sum(cluster))


def test_nan_in_a_value_column_fails_naming_party_and_column(cluster):
    with cluster.client("a") as client, pytest.raises(JobFailed) as info:
        client.run("psi.intersection_sum", ids=["a.t.id", "b.bad.id"], values="b.bad.v", progress=False)
    assert info.value.party == "b"
    assert "column b.bad.v has 1 missing/NaN values (first at row 101)" in str(info.value)
    assert run_sum(cluster, via="b") == pytest.approx(expected_sum(cluster))


def test_requester_raising(cluster):
    with cluster.client("c") as client, pytest.raises(JobFailed) as info:
        client.run("psi.intersection_sum", ids=["a.t.id", "c.bad.id"], values="c.bad.v", progress=False)
    assert info.value.party == "c"
    s = status_on(cluster, "a", info.value.job_id)
    assert s["state"] == "failed" and "party 'c'" in s["error"]
    assert s["failed_party"] == "c"


# -- a party that stops answering -----------------------------------------------------------
@pytest.fixture
def short_timeout_cluster():
    ds = datasets(3000)
    # 3 s: below gRPC's keepalive timeout (5 s after an unanswered ping), so a stopped peer
    # is found by the job timeout, not by a keepalive that happened to fire at the SIGSTOP
    with LocalCluster(PARTIES, tls=True, datasets=ds, dealer=False, limits={"job_timeout": JOB_TIMEOUT}) as cl:
        cl.frames = {p: ds[p]["t"] for p in PARTIES}
        yield cl


def test_silent_peer_fails_the_job_at_the_timeout(short_timeout_cluster):
    cl = short_timeout_cluster
    b = cl.processes["b"]
    with cl.client("a") as client:
        job = client.submit("psi.cardinality", ids=["a.t.id", "b.t.id", "c.t.id"])
        os.kill(b.pid, signal.SIGSTOP)
        start = time.monotonic()
        try:
            with pytest.raises(JobFailed) as info:
                client.result(job, progress=False, timeout=30)
            waited = time.monotonic() - start
            c_status = status_on(cl, "c", job)
        finally:
            os.kill(b.pid, signal.SIGCONT)
    assert waited < JOB_TIMEOUT + FAIL_WITHIN
    assert info.value.party == "b", str(info.value)
    assert "timeout" in str(info.value)
    assert c_status["state"] == "failed" and "'b'" in c_status["error"], c_status
    # once b answers again, everyone serves the next job
    for via in PARTIES:
        assert run_sum(cl, via=via) == pytest.approx(expected_sum(cl))


@pytest.mark.slow
def test_peer_silent_before_the_job_is_refused_naming_it(short_timeout_cluster):
    cl = short_timeout_cluster
    b = cl.processes["b"]
    os.kill(b.pid, signal.SIGSTOP)
    try:
        start = time.monotonic()
        with cl.client("a") as client, pytest.raises(JobFailed) as info:
            client.submit("demo.secure_sum", columns=["a.t.v", "b.t.v"])
        assert time.monotonic() - start < 20.0
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert info.value.party == "b" and "unreachable" in str(info.value)
    assert run_sum(cl) == pytest.approx(expected_sum(cl))


# -- a party server killed mid-job ----------------------------------------------------------
def restart(cluster: LocalCluster, party: str) -> None:
    """Start ``party``'s server again with the same config (and port)."""
    log = open(cluster.workdir / "logs" / f"{party}.log", "ab")  # noqa: SIM115
    cluster.processes[party] = subprocess.Popen(
        [sys.executable, "-m", "mpc.cli", "serve", "--config", str(cluster.configs[party])],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    cluster._wait_serving(party)


@pytest.fixture
def big_cluster():
    n = 60_000
    ds = {p: {"t": id_frame(n, 1000 * k, seed=k)} for k, p in enumerate(PARTIES)}
    with LocalCluster(PARTIES, tls=True, datasets=ds, dealer=False, limits={"job_timeout": 300.0}) as cl:
        cl.frames = {p: ds[p]["t"] for p in PARTIES}
        cl.n = n
        yield cl


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["b", "a"])
def test_party_killed_mid_job(big_cluster, victim):
    cl = big_cluster
    with cl.client("a") as client:
        job = client.submit("psi.cardinality", ids=["a.t.id", "b.t.id", "c.t.id"])
    time.sleep(1.5)
    with cl.client("c") as client:
        assert client.status(job)["state"] == "running", "job too short to kill mid-way"
    cl.processes[victim].kill()
    cl.processes[victim].wait()
    killed = time.monotonic()
    survivors = [p for p in PARTIES if p != victim]
    for party in survivors:
        s = status_on(cl, party, job, timeout=FAIL_WITHIN)
        assert s["state"] == "failed" and f"'{victim}'" in s["error"], (party, s)
    assert time.monotonic() - killed < FAIL_WITHIN
    if victim == "b":
        with cl.client("a") as client, pytest.raises(JobFailed) as info:
            client.result(job, progress=False)
        assert info.value.party == "b"
    # the survivors serve the next job between themselves, and with the restarted party
    assert run_sum(cl, via=survivors[0], parties=survivors) == pytest.approx(expected_sum(cl, survivors))
    restart(cl, victim)
    assert run_sum(cl, via=victim) == pytest.approx(expected_sum(cl))


# -- nothing leaks after many failed jobs ---------------------------------------------------
def test_no_thread_fd_or_process_leaks_after_50_failed_jobs(cluster):
    def fail_once(i: int) -> None:
        kind = i % 3
        with cluster.client(PARTIES[i % 3]) as client, pytest.raises(JobFailed):
            if kind == 0:
                client.run("demo.secure_sum", columns=["a.t.v", "b.bad.missing", "c.t.v"], progress=False)
            elif kind == 1:
                client.run("psi.intersection_sum", ids=["a.t.id", "b.bad.id"], values="b.bad.v", progress=False)
            else:
                client.run("demo.secure_sum", columns=["a.t.v", "b.t.v", "c.bad.missing"], progress=False)

    for i in range(6):  # warm up: every kind of failure once per requester, channels open
        fail_once(i)
    time.sleep(1.0)
    before = {p: server_stats(cluster, p) for p in PARTIES}
    children_before = _children()
    for i in range(50):
        fail_once(i)
    time.sleep(2.0)
    after = {p: server_stats(cluster, p) for p in PARTIES}
    for p in PARTIES:
        assert after[p]["threads"] <= before[p]["threads"] + 4, (p, before[p], after[p])
        assert after[p]["fds"] <= before[p]["fds"] + 4, (p, before[p], after[p])
    assert _children() == children_before
    assert run_sum(cluster) == pytest.approx(expected_sum(cluster))


def _children() -> set[int]:
    """Process ids of this test process's children (the party servers, nothing else)."""
    me = os.getpid()
    out = set()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.add(int(pid))
    return out


# -- results are written atomically -------------------------------------------------------
@pytest.mark.slow
def test_party_killed_while_writing_leaves_no_partial_result():
    n = 150_000
    ds = {p: {"t": id_frame(n, 0, seed=k)} for k, p in enumerate(["a", "b"])}
    with LocalCluster(["a", "b"], tls=False, datasets=ds, dealer=False, limits={"job_timeout": 300.0}) as cl:
        results = cl.results_dir("b")
        caught = False
        for _ in range(3):
            with cl.client("a") as client:
                job = client.submit("psi.ecdh", ids=["a.t.id", "b.t.id"])
            final = results / f"{job}.parquet"
            while not final.exists():
                if results.exists() and any(p.name.endswith(".tmp") for p in os.scandir(results)):
                    cl.processes["b"].kill()
                    cl.processes["b"].wait()
                    caught = True
                    break
                time.sleep(0.0005)
            if caught:
                break
            assert len(pd.read_parquet(final)) == n  # finished first: the file is whole
            status_on(cl, "a", job)
        assert caught, "never caught b mid-write in 3 tries"
        assert not final.exists()  # never a partial file under the result's name
        restart(cl, "b")
        assert not [p for p in results.iterdir() if p.name.endswith(".tmp")]  # temp files swept at start
        with cl.client("b") as client:
            assert client.run("psi.cardinality", ids=["a.t.id", "b.t.id"], progress=False) == n


# -- a prepared job whose requester never starts it ----------------------------------------
def test_prepared_but_never_started_jobs_expire(tmp_path):
    """A peer that prepares jobs and vanishes cannot fill a party's open-job slots for good."""
    ds = {p: {"t": id_frame(20, 0, seed=k)} for k, p in enumerate(["a", "b"])}
    with LocalCluster(["a", "b"], tls=True, datasets=ds, dealer=False,
                      limits={"job_timeout": 3.0, "max_open_jobs": 2}) as cl:
        creds = cl.tls_files["a"]
        from mpc.server.tls import channel_credentials
        with grpc.secure_channel(cl.addresses["b"], channel_credentials(creds),
                                 options=[("grpc.ssl_target_name_override", "b")]) as channel:
            stub = party_pb2_grpc.PartyStub(channel)
            params = codec.encode({"columns": ["a.t.v", "b.t.v"]})
            for i in range(2):  # a's certificate prepares two jobs on b and never starts them
                reply = stub.Join(party_pb2.JobRequest(job_id=f"stale{i}", protocol="demo.secure_sum",
                                                       params=params, requester="a", parties=["a", "b"]),
                                  timeout=10)
                assert reply.state == "prepared"
        with cl.client("a") as client:
            with pytest.raises(JobFailed) as info:
                client.submit("demo.secure_sum", columns=["a.t.v", "b.t.v"])
            assert info.value.party == "b" and "too many open jobs (limit 2)" in str(info.value)
            time.sleep(3.5)
            total = client.run("demo.secure_sum", columns=["a.t.v", "b.t.v"], progress=False)
        assert total == pytest.approx(ds["a"]["t"].v.sum() + ds["b"]["t"].v.sum())
        with cl.client("b") as client:
            assert client.status("stale0")["state"] == "cancelled"


def test_open_job_cap_refuses_submit_and_join_clearly():
    ds = {p: {"t": id_frame(30_000, 0, seed=k)} for k, p in enumerate(PARTIES)}
    with LocalCluster(PARTIES, tls=False, datasets=ds, dealer=False,
                      limits={"job_timeout": 60.0, "max_open_jobs": 1}) as cl:
        cl.frames = {p: ds[p]["t"] for p in PARTIES}
        with cl.client("a") as client:
            long_job = client.submit("psi.cardinality", ids=["a.t.id", "b.t.id"])
            with pytest.raises(JobFailed, match=r"too many open jobs \(limit 1\)") as info:
                client.submit("demo.secure_sum", columns=["a.t.v", "c.t.v"])  # a itself is full
            assert info.value.party == "a"
        with cl.client("c") as client, pytest.raises(JobFailed, match=r"too many open jobs \(limit 1\)") as info:
            client.submit("demo.secure_sum", columns=["c.t.v", "b.t.v"])  # b refuses to join
        assert info.value.party == "b"
        with cl.client("a") as client:
            assert client.result(long_job, progress=False) == 30_000
        for p in ("a", "b"):        # a party frees its slot when the job ends there, then audits it:
            cl.audit_record(p, long_job)          # maybe after a's client already has the result
        assert run_sum(cl, via="c", parties=["c", "b"]) == pytest.approx(expected_sum(cl, ["c", "b"]))


# -- limits from the config -------------------------------------------------------------------
def test_unread_bytes_limit_from_the_config_fails_the_job_clearly():
    ds = {p: {"t": id_frame(3000, 0, seed=k)} for k, p in enumerate(["a", "b"])}
    with LocalCluster(["a", "b"], tls=False, datasets=ds, dealer=False,
                      limits={"max_unread_bytes": 10_000}) as cl:
        with cl.client("a") as client, pytest.raises(JobFailed, match="limit max_unread_bytes") as info:
            client.run("psi.cardinality", ids=["a.t.id", "b.t.id"], progress=False)
        assert "over 10000 bytes sent to" in str(info.value)
        assert cl.processes["a"].poll() is None and cl.processes["b"].poll() is None


def test_limits_must_be_positive(tmp_path):
    from mpc.server.config import ConfigError, parse_config

    base = {"party": "a", "listen": "127.0.0.1:1", "insecure": True}
    assert parse_config({**base, "limits": {"max_unread_bytes": 5}}, tmp_path / "a.toml").limits.max_unread_bytes == 5
    for key in ("max_unread_bytes", "max_open_jobs", "max_value_bytes", "max_chunk_bytes"):
        with pytest.raises(ConfigError, match="must be positive"):
            parse_config({**base, "limits": {key: 0}}, tmp_path / "a.toml")


def test_a_broken_stream_yields_to_the_abort_that_explains_it():
    """A stream that breaks (its sender ended the job, e.g. because a third party went
    silent) is weak evidence: the mailbox raises it only after WEAK_GRACE without a
    stronger failure, so the abort naming the real cause, arriving just behind, wins; alone,
    it fails the job within the grace."""
    import threading

    from mpc.runtime import mailbox as mb
    from mpc.runtime.errors import PeerFailed

    box = mb.Mailbox()
    box.open("j", ["a", "b", "c"])
    box.fail("j", PeerFailed("c", "connection lost during the job"), weak=True)
    threading.Timer(0.2, lambda: box.fail("j", PeerFailed("c", "timeout waiting for b", "b"))).start()
    start = time.monotonic()
    with pytest.raises(PeerFailed) as info:
        box.get("j", "c", "a", time.monotonic() + 30)
    assert info.value.origin == "b" and time.monotonic() - start < mb.WEAK_GRACE
    box.open("k", ["a", "c"])
    box.fail("k", PeerFailed("c", "connection lost during the job"), weak=True)
    start = time.monotonic()
    with pytest.raises(PeerFailed) as info:
        box.get("k", "c", "a", time.monotonic() + 30)
    assert info.value.origin == "c" and mb.WEAK_GRACE - 0.05 <= time.monotonic() - start < mb.WEAK_GRACE + 1.0
