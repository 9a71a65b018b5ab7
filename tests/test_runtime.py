"""run_local on both transports: FIFO channels, helpers, chunking, failure propagation."""

import time

import numpy as np
import pytest

import mpc
from mpc.runtime.errors import JobFailed, JobTimeout

TRANSPORTS = ["memory", "grpc"]


def _sum_of_all(ctx, x):
    return sum(ctx.gather(x))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("parties", [["a", "b"], ["a", "b", "c", "d"]])
def test_gather_sum(transport, parties):
    args = {p: (i * 10 + 1,) for i, p in enumerate(parties)}
    out = mpc.run_local(_sum_of_all, parties, args=args, transport=transport, triples=None)
    expected = sum(a[0] for a in args.values())
    assert out == {p: expected for p in parties}


def _fifo(ctx, n):
    if ctx.rank == 0:
        for i in range(n):
            ctx.send(ctx.peers[0], i)
        return None
    return [ctx.recv(ctx.parties[0]) for _ in range(n)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_channels_are_fifo(transport):
    out = mpc.run_local(_fifo, ["a", "b"], args={"a": (200,), "b": (200,)}, transport=transport, triples=None)
    assert out["b"] == list(range(200))


def _context_fields(ctx):
    return ctx.party, ctx.parties, ctx.rank, ctx.job_id, ctx.options.get("frac_bits")


def test_context_fields():
    out = mpc.run_local(_context_fields, ["x", "y", "z"], triples=None, frac_bits=20)
    job_ids = {v[3] for v in out.values()}
    assert len(job_ids) == 1
    assert out["y"][:3] == ("y", ["x", "y", "z"], 1)
    assert all(v[4] == 20 for v in out.values())


def _big_array(ctx, n):
    if ctx.rank == 0:
        arr = np.arange(n, dtype=np.uint64)
        ctx.send("b", arr)
        ctx.send("b", arr[::-1].copy())
        return None
    first, second = ctx.recv("a"), ctx.recv("a")
    return first.shape, int(first.sum()), int(second[0])


@pytest.mark.parametrize("chunk", [1 << 20, 3_000_001])
def test_chunked_values_over_grpc(chunk):
    n = 2_000_000  # 16 MB per value
    out = mpc.run_local(_big_array, ["a", "b"], args={"a": (n,), "b": (n,)}, transport="grpc",
                        triples=None, max_chunk_bytes=chunk)
    assert out["b"] == ((n,), n * (n - 1) // 2, n - 1)


def _mixed_values(n):
    rng = np.random.default_rng(7)  # test data, not a secret
    return [rng.integers(0, 2**63, n, dtype=np.uint64),
            (rng.random(n // 3 + 1).astype(np.float32), 5, b"x" * 70_001),
            {"m": rng.integers(-9, 9, (n // 7, 7), dtype=np.int8), "rev": np.arange(3)[::-1]},
            np.zeros((0, 4), np.uint64), list(range(1000)), "end"]


def _send_then_scribble(ctx, n):
    values = _mixed_values(n)
    if ctx.rank == 0:
        for v in values:
            ctx.send("b", v)
            for arr in (v, *(v if isinstance(v, tuple) else ())):
                if isinstance(arr, np.ndarray):
                    arr[...] = 0  # after send returns, the sender's arrays are its own again
        return None
    return [ctx.recv("a") for _ in values]


@pytest.mark.parametrize("transport,chunk", [("memory", None), ("grpc", 1000), ("grpc", 65_543)])
def test_large_values_keep_bytes_and_order(transport, chunk):
    """Arrays of MBs in chunks far smaller than them arrive exact, in order, writable and
    aligned, whatever the sender does to its arrays after ``send``."""
    n = 300_000  # 2.4 MB: 2400 chunks of 1000 bytes
    options = {} if chunk is None else {"max_chunk_bytes": chunk}
    got = mpc.run_local(_send_then_scribble, ["a", "b"], args={"a": (n,), "b": (n,)}, transport=transport,
                        triples=None, **options)["b"]
    want = _mixed_values(n)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[0].dtype == np.uint64 and got[0].flags.writeable and got[0].flags.aligned
    np.testing.assert_array_equal(got[1][0], want[1][0])
    assert got[1][1:] == want[1][1:] and isinstance(got[1], tuple)
    np.testing.assert_array_equal(got[2]["m"], want[2]["m"])
    np.testing.assert_array_equal(got[2]["rev"], [2, 1, 0])
    assert got[3].shape == (0, 4) and got[4:] == want[4:]


def test_value_over_cap_fails_job():
    with pytest.raises(JobFailed, match="exceeds the cap"):
        mpc.run_local(_big_array, ["a", "b"], args={"a": (1000,), "b": (1000,)}, transport="grpc",
                      triples=None, max_value_bytes=4000, timeout=10)


def _fails_at(ctx, bad_party):
    if ctx.party == bad_party:
        raise ValueError("column 'income' has NaN")
    return ctx.recv(bad_party)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_failure_names_party_and_is_fast(transport):
    start = time.monotonic()
    with pytest.raises(JobFailed) as info:
        mpc.run_local(_fails_at, ["a", "b", "c"], args={p: ("b",) for p in "abc"},
                      transport=transport, timeout=60, triples=None)
    assert time.monotonic() - start < 5
    assert info.value.party == "b"
    assert "ValueError: column 'income' has NaN" in str(info.value)


def _silent(ctx):
    return ctx.recv(ctx.peers[0])


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_silent_peer_times_out(transport):
    start = time.monotonic()
    with pytest.raises(JobFailed, match="before the job timeout"):
        mpc.run_local(_silent, ["a", "b"], transport=transport, timeout=1.5, triples=None)
    assert 1.4 < time.monotonic() - start < 6


def _send_unsendable(ctx):
    if ctx.rank == 0:
        ctx.send(ctx.peers[0], object())
    return ctx.recv(ctx.parties[0]) if ctx.rank == 1 else None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unsendable_value_is_type_error_at_sender(transport):
    with pytest.raises(JobFailed) as info:
        mpc.run_local(_send_unsendable, ["a", "b"], transport=transport, triples=None, timeout=10)
    assert info.value.party == "a"
    assert isinstance(info.value.__cause__, TypeError)


def _to_unknown(ctx):
    ctx.send("mallory", 1)


def test_unknown_peer_is_an_error():
    with pytest.raises(JobFailed, match="unknown party 'mallory'"):
        mpc.run_local(_to_unknown, ["a", "b"], triples=None)


def test_bad_party_lists():
    with pytest.raises(ValueError, match="duplicate"):
        mpc.run_local(_sum_of_all, ["a", "a"], triples=None)
    with pytest.raises(ValueError, match="unknown parties"):
        mpc.run_local(_sum_of_all, ["a", "b"], args={"c": (1,)}, triples=None)
    with pytest.raises(ValueError, match="unknown transport"):
        mpc.run_local(_sum_of_all, ["a", "b"], transport="carrier-pigeon", triples=None)


def test_stuck_party_reported():
    def stuck(ctx):
        if ctx.rank == 0:
            time.sleep(3)
        return 1
    with pytest.raises(JobTimeout, match="did not finish"):
        mpc.run_local(stuck, ["a", "b"], timeout=0.2, triples=None)


def test_library_error_messages_are_withheld():
    """Third-party messages may quote data: only their type reaches peers and users."""
    import pandas as pd

    def leaky(ctx):
        if ctx.rank == 0:
            pd.DataFrame({"salary": [object()]}).to_parquet("/dev/null")  # pyarrow quotes the value
        return ctx.recv(ctx.parties[0]) if ctx.rank else None

    with pytest.raises(JobFailed) as info:
        mpc.run_local(leaky, ["a", "b"], triples=None)
    assert "message withheld" in str(info.value) and "object at" not in str(info.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_abort_carries_the_party_whose_failure_it_passes_on(transport):
    """a tells c that b failed: c learns both who told it (a) and whose failure it is (b),
    as fields, over either transport (gRPC: the Envelope's abort_party)."""
    from mpc.runtime.errors import PeerFailed
    from mpc.runtime.local import _start_grpc
    from mpc.runtime.memory import MemoryTransport

    everyone, job = ["a", "b", "c"], "job-origin"
    if transport == "memory":
        net = MemoryTransport(everyone)
        net.open(job)
        transports, cleanup = {p: net for p in everyone}, (lambda: net.close(job))
    else:
        transports, cleanup = _start_grpc(everyone, job, {})
    try:
        transports["a"].abort(job, "a", ["c"], "party 'b' failed: ValueError: boom", "b")
        with pytest.raises(PeerFailed) as info:
            transports["c"].recv(job, "a", "c", time.monotonic() + 10)
        assert (info.value.party, info.value.origin) == ("a", "b")
    finally:
        cleanup()


def test_culprit_names_the_origin_the_silent_peer_or_the_party_itself():
    from mpc.runtime.errors import PeerFailed, culprit

    assert culprit("a", PeerFailed("b", "x")) == "b"
    assert culprit("a", PeerFailed("b", "x", origin="c")) == "c"
    assert culprit("a", JobTimeout("party 'b' sent nothing", party="b")) == "b"
    assert culprit("a", JobTimeout("the job timeout passed")) == "a"
    assert culprit("a", ValueError("party 'b' sent junk")) == "a"


_PARTY_SCRIPT = """
import json, os, sys
import numpy as np
from mpc import ss
from mpc.runtime.errors import JobFailed
from mpc.runtime.local import run_party_process

party, addresses, job, fail = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]

def body(ctx):
    rng = np.random.default_rng(3)                    # both derive the inputs; each shares its own
    x, y = rng.normal(size=200) * 10, rng.normal(size=200) * 10
    a = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
    b = ss.share(ctx, y if ctx.party == "bob" else None, "bob")
    if ctx.party == fail:
        raise ValueError("boom")
    return {"mul": (a * b).reveal().tolist(), "lt": (a < b).reveal().tolist(), "pid": os.getpid(),
            "triples": ctx.options["triples"]}

try:
    print(json.dumps(run_party_process(body, party, ["alice", "bob"], addresses, job, timeout=120)))
except JobFailed as exc:
    print(json.dumps({"failed": exc.party}))
"""


def _two_party_processes(fail: str = "") -> dict[str, dict]:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from mpc.cluster import free_port

    addresses = {p: f"127.0.0.1:{free_port()}" for p in ("alice", "bob")}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = {p: subprocess.Popen([sys.executable, "-c", _PARTY_SCRIPT, p, json.dumps(addresses), "job-2p", fail],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for p in addresses}
    out = {}
    for p, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
        out[p] = json.loads(stdout.strip().splitlines()[-1])
    return out


def test_run_party_process_two_os_processes_match_numpy():
    """Two real OS processes, one party each, over gRPC on loopback; no dealer address, so
    triples="auto" resolves to "ot". Each shares only its own input; products and
    comparisons match numpy on both."""
    out = _two_party_processes()
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=200) * 10, rng.normal(size=200) * 10
    assert out["alice"]["pid"] != out["bob"]["pid"]
    for p in ("alice", "bob"):
        assert out[p]["triples"] == "ot"
        assert np.abs(np.array(out[p]["mul"]) - x * y).max() < 0.05
        assert np.array_equal(out[p]["lt"], (x < y).astype(int))


def test_run_party_process_failure_names_the_party_in_the_other_process():
    out = _two_party_processes(fail="bob")
    assert out == {"alice": {"failed": "bob"}, "bob": {"failed": "bob"}}


def test_run_party_process_refuses_a_party_without_address():
    from mpc.runtime.local import run_party_process

    with pytest.raises(ValueError, match="no address"):
        run_party_process(_sum_of_all, "a", ["a", "b"], {"a": "127.0.0.1:0"}, "job", args=(1,))
