"""Transport benchmarks over the gRPC transport between two parties, next to raw gRPC
streaming of the same bytes measured in the same run (the ceiling), and the ratio.

* one-way: party a sends ``ONE_WAY_REPS`` arrays of 10 MB to b inside one job.
* two-way: a sends 10 MB while b sends 20 MB, at the same time, ``TWO_WAY_ROUNDS``
  rounds inside one job (each party sends, then receives). "Per direction" is the
  bytes of both directions / 2 / elapsed (the mean of the two directions' rates); the
  rate of each direction over the same elapsed time is printed too.
* raw gRPC: the same bytes as ``CHUNK``-sized ``bytes`` messages on client streams with
  identity serializers (one stream one-way; one stream each way, simultaneously, for
  two-way), no codec, no envelope, no checks.
* latency: small-message ping-pong.
* two processes (``--processes``): the shape of ``bench/bench_ot_triples.py``'s ``ot 2-proc``
  and of a deployment, each party in its own OS process (own interpreter and GIL,
  :func:`mpc.runtime.local.run_party_process`), both sending ``PROC_GB`` GB of arrays of
  ``PROC_SIZES`` bytes at once (``ctx.exchange`` rounds), next to raw gRPC in two processes
  (each streams the same bytes as ``CHUNK``-sized ``bytes`` messages to the other, made
  with one copy as gaotie's envelopes are). The figure is CPU seconds of a party process
  per GB sent (while as much is received), split by thread: ``main`` (codec, the envelope
  copy, mailbox), ``grpc-send`` (gRPC's request-consuming and channel threads: its copy of
  each message, the kernel's send path), ``grpc-recv`` (the server's polling thread: its
  copies of each received message), ``handler`` (``receive_stream``: checks, the copy into
  the value's buffer, decoding), ``grpc-core`` (gRPC's C event-engine threads: socket
  reads), ``ended`` (threads gone before the end: raw gRPC's request-consuming thread).
  Small messages (1 KB) give the CPU per message.

Every party process tunes glibc's malloc when it starts its gRPC transport
(:mod:`mpc.runtime.allocator`); the benchmark applies the same tuning before its first
measurement, so raw gRPC and gaotie run under the same allocator settings (one process).
Received values of 1 MB and more reuse the memory of earlier dropped ones
(:mod:`mpc.runtime.buffers`); the count of reused buffers is printed.

Times are taken inside the job (after a first message has opened the streams), so job
and server start-up is not counted. Everything runs in this process, sharing the
machine's cores: print ``/proc/loadavg`` next to the figures.

Run: ``pytest bench/bench_transport.py -o addopts="" -s`` or ``python bench/bench_transport.py [reps]``;
``python bench/bench_transport.py --processes`` for the two-process figures only.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np

import mpc
from mpc.runtime import allocator, buffers
from mpc.runtime.grpc_transport import DEFAULT_CHUNK_BYTES, grpc_options

MB = 1_000_000
ARRAY_BYTES = 10 * MB
ONE_WAY_REPS = 10
TWO_WAY = (10 * MB, 20 * MB)  # a -> b, b -> a
TWO_WAY_ROUNDS = 5
CHUNK = int(os.environ.get("GAOTIE_BENCH_CHUNK", DEFAULT_CHUNK_BYTES))  # max_chunk_bytes of both
TARGET = 600.0
PROC_GB = float(os.environ.get("GAOTIE_BENCH_PROC_GB", 1.0))   # per direction, per size
PROC_SIZES = (1 << 20, 8 << 20)
SMALL = 1 << 10
SMALL_ROUNDS = 3000


def _one_way(ctx, reps):
    """a sends ``reps`` 10 MB arrays to b; returns the seconds from the first to the last."""
    arr = np.arange(ARRAY_BYTES // 8, dtype=np.uint64)
    other = ctx.peers[0]
    ctx.exchange(other, 0)  # open both streams before timing
    start = time.perf_counter()
    if ctx.rank == 0:
        for _ in range(reps):
            ctx.send(other, arr)
        ctx.recv(other)
    else:
        for _ in range(reps):
            got = ctx.recv(other)
        assert got[-1] == arr[-1]
        ctx.send(other, 1)
    return time.perf_counter() - start


def _two_way(ctx, rounds):
    """Both send at once (a: 10 MB, b: 20 MB), then both receive; ``rounds`` times."""
    mine, theirs = TWO_WAY if ctx.rank == 0 else TWO_WAY[::-1]
    arr = np.arange(mine // 8, dtype=np.uint64)
    other = ctx.peers[0]
    ctx.exchange(other, 0)
    start = time.perf_counter()
    for _ in range(rounds):
        got = ctx.exchange(other, arr)
        assert got.nbytes == theirs
    return time.perf_counter() - start


def gaotie_one_way(reps: int = ONE_WAY_REPS) -> float:
    out = mpc.run_local(_one_way, ["a", "b"], args={"a": (reps,), "b": (reps,)}, transport="grpc", triples=None,
                       max_chunk_bytes=CHUNK)
    return ARRAY_BYTES * reps / max(out.values()) / MB


def gaotie_two_way(rounds: int = TWO_WAY_ROUNDS) -> float:
    out = mpc.run_local(_two_way, ["a", "b"], args={"a": (rounds,), "b": (rounds,)}, transport="grpc",
                        triples=None, max_chunk_bytes=CHUNK)
    return sum(TWO_WAY) * rounds / 2 / max(out.values()) / MB


class _RawPeer:
    """A gRPC server that counts the bytes streamed to it, and a channel to another one."""

    def __init__(self) -> None:
        identity = lambda b: b  # noqa: E731

        def consume(request_iterator, context):
            n = 0
            for chunk in request_iterator:
                n += len(chunk)
            return n.to_bytes(8, "big")

        handler = grpc.method_handlers_generic_handler(
            "raw.Sink", {"Put": grpc.stream_unary_rpc_method_handler(consume, identity, identity)})
        self.server = grpc.server(futures.ThreadPoolExecutor(4), options=grpc_options(CHUNK))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel: grpc.Channel | None = None

    def connect(self, other: _RawPeer) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{other.port}", options=grpc_options(CHUNK))
        grpc.channel_ready_future(self.channel).result(timeout=10)
        self.put = self.channel.stream_unary("/raw.Sink/Put", request_serializer=lambda b: b,
                                             response_deserializer=lambda b: b)

    def send(self, nbytes: int, reps: int) -> None:
        data = np.arange(nbytes // 8, dtype=np.uint64).tobytes()

        def chunks():
            for _ in range(reps):
                for i in range(0, len(data), CHUNK):
                    yield data[i:i + CHUNK]

        assert int.from_bytes(self.put(chunks(), timeout=120), "big") == nbytes * reps

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None)


def _raw(plan: list[tuple[int, int]]) -> float:
    """Seconds to stream plan[i] = (bytes, reps) from peer i to peer 1 - i, all at once."""
    peers = [_RawPeer(), _RawPeer()]
    peers[0].connect(peers[1])
    peers[1].connect(peers[0])
    threads = [threading.Thread(target=peers[i].send, args=plan[i]) for i in range(len(plan))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for p in peers:
        p.close()
    return elapsed


def raw_one_way(reps: int = ONE_WAY_REPS) -> float:
    return ARRAY_BYTES * reps / _raw([(ARRAY_BYTES, reps)]) / MB


def raw_two_way(rounds: int = TWO_WAY_ROUNDS) -> float:
    return sum(TWO_WAY) * rounds / 2 / _raw([(TWO_WAY[0], rounds), (TWO_WAY[1], rounds)]) / MB


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def report(reps: int = 3) -> dict[str, float]:
    """Interleave gaotie and raw measurements ``reps`` times; print the best of each."""
    tuned = allocator.tune()
    runs: dict[str, list[float]] = {k: [] for k in ("one", "raw_one", "two", "raw_two")}
    for _ in range(reps):
        runs["raw_one"].append(raw_one_way())
        runs["one"].append(gaotie_one_way())
        runs["raw_two"].append(raw_two_way())
        runs["two"].append(gaotie_two_way())
    best = {k: max(v) for k, v in runs.items()}
    # each repetition's ratio to the raw run just before it (same minute, same load)
    paired = {k: statistics.median(a / b for a, b in zip(runs[k], runs["raw_" + k], strict=True))
              for k in ("one", "two")}
    print(f"\nload average {_loadavg()}; chunk {CHUNK} bytes; malloc tuned {tuned}; receive buffers "
          f"reused {buffers.POOL.reused}; best of {reps} "
          f"(all: { {k: [round(x) for x in v] for k, v in runs.items()} })")
    print(f"one-way 10 MB arrays:          {best['one']:6.0f} MB/s; raw gRPC {best['raw_one']:6.0f} MB/s; "
          f"ratio {best['one'] / best['raw_one']:.2f}, median paired ratio {paired['one']:.2f} "
          f"(target >= {TARGET:.0f} MB/s)")
    print(f"two-way 10 MB + 20 MB at once: {best['two']:6.0f} MB/s per direction; raw gRPC "
          f"{best['raw_two']:6.0f} MB/s; ratio {best['two'] / best['raw_two']:.2f}, median paired ratio "
          f"{paired['two']:.2f} (target >= {TARGET:.0f} MB/s per direction)")
    return best


def test_array_throughput():
    report(int(os.environ.get("GAOTIE_BENCH_TRANSPORT_REPS", 3)))


def test_message_latency(benchmark):
    rounds = 200

    def ping_pong(ctx):
        other = ctx.peers[0]
        for i in range(rounds):
            if ctx.rank == 0:
                ctx.send(other, i)
                ctx.recv(other)
            else:
                ctx.send(other, ctx.recv(other))

    def run():
        start = time.perf_counter()
        mpc.run_local(ping_pong, ["a", "b"], transport="grpc", triples=None)
        return (time.perf_counter() - start) / (2 * rounds)

    latency = benchmark.pedantic(run, rounds=3, iterations=1)
    print(f"\none-way small-message latency over the gRPC transport: {latency * 1e6:.0f} us")


# -- two processes: CPU per byte and per message ------------------------------------------

_ROLES = {"MainThread": "main", "_run": "grpc-send", "_serve": "grpc-recv",
          "ThreadPoolExecutor": "handler", "event_engine": "grpc-core"}


def _role(python_name: str | None, comm: str) -> str:
    if python_name is None:
        return _ROLES.get(comm.rstrip("0123456789-_"), "other")
    for key, role in _ROLES.items():
        if key in python_name:
            return role
    return "other"


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads so far, summed by role (see the module docstring)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        role = _role(names.get(int(tid)), comm)
        out[role] = out.get(role, 0.0) + (int(stat[11]) + int(stat[12])) / tick
    return out


def _process_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _Meter:
    """Wall time, process CPU and per-role thread CPU from start to stop."""

    def __enter__(self) -> _Meter:
        self.t, self.cpu, self.threads = time.perf_counter(), _process_cpu(), thread_cpu()
        return self

    def __exit__(self, *exc) -> None:
        after = thread_cpu()
        cpu = _process_cpu() - self.cpu
        threads = {k: v - self.threads.get(k, 0.0) for k, v in after.items()}
        # threads that ended meanwhile (raw gRPC's request-consuming thread) count only here
        threads["ended"] = max(cpu - sum(threads.values()), 0.0)
        self.result = {"wall": time.perf_counter() - self.t, "cpu": cpu, "threads": threads}


def _exchange_job(ctx, size: int, rounds: int) -> dict:
    """A party process's side: ``rounds`` exchanges of ``size``-byte arrays, measured."""
    other = ctx.peers[0]
    arr = np.arange(max(size // 8, 1), dtype=np.uint64)
    ctx.exchange(other, arr)                     # streams open, buffers warm
    with _Meter() as m:
        for _ in range(rounds):
            got = ctx.exchange(other, arr)
    assert got.nbytes == arr.nbytes and got[-1] == arr[-1]
    return m.result


def _raw_party(port: int, peer: int, size: int, rounds: int, start_at: float) -> dict:
    """A raw gRPC process: stream ``rounds`` x ``size`` bytes to ``peer`` while taking as much."""
    allocator.tune()
    received = threading.Event()

    def consume(request_iterator, context):
        n = sum(len(chunk) for chunk in request_iterator)
        received.set()
        return n.to_bytes(8, "big")

    identity = lambda b: b  # noqa: E731
    handler = grpc.method_handlers_generic_handler(
        "raw.Sink", {"Put": grpc.stream_unary_rpc_method_handler(consume, identity, identity)})
    server = grpc.server(futures.ThreadPoolExecutor(4), options=grpc_options(CHUNK))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{peer}", options=grpc_options(CHUNK))
    grpc.channel_ready_future(channel).result(timeout=30)
    put = channel.stream_unary("/raw.Sink/Put", request_serializer=None, response_deserializer=identity)
    view = memoryview(np.arange(max(size // 8, 1), dtype=np.uint64)).cast("B")

    def chunks():
        for _ in range(rounds):
            for i in range(0, len(view), CHUNK):
                yield bytes(view[i:i + CHUNK])     # one copy, as gaotie's envelope
    time.sleep(max(start_at - time.time(), 0.0))
    with _Meter() as m:
        assert int.from_bytes(put(chunks(), timeout=600), "big") == len(view) * rounds
        received.wait(600)
    time.sleep(0.5)                                # the peer may still be sending to us
    channel.close()
    server.stop(None)
    return m.result


def _spawn(kind: str, size: int, rounds: int) -> list[dict]:
    """Run two party processes of ``kind`` ("gaotie" or "raw"); their measurements."""
    from mpc.cluster import free_port

    ports = [free_port(), free_port()]
    root = str(Path(mpc.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    if kind == "gaotie":
        addresses = json.dumps({"a": f"127.0.0.1:{ports[0]}", "b": f"127.0.0.1:{ports[1]}"})
        job = f"bench-transport-{os.getpid()}-{time.monotonic_ns()}"
        argvs = [["gaotie", p, addresses, job, str(size), str(rounds)] for p in "ab"]
    else:
        start_at = str(time.time() + 3.0)
        argvs = [["raw", str(ports[i]), str(ports[1 - i]), str(size), str(rounds), start_at] for i in range(2)]
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--party", *argv],
                              stdout=subprocess.PIPE, env=env, text=True) for argv in argvs]
    outs = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{kind} party process exited with {proc.returncode} (its stderr is above)")
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    return outs


def _party_main(kind: str, *argv: str) -> None:
    if kind == "gaotie":
        from mpc.runtime.local import run_party_process

        party, addresses, job, size, rounds = argv
        out = run_party_process(_exchange_job, party, ["a", "b"], json.loads(addresses), job,
                                args=(int(size), int(rounds)), timeout=900, triples=None,
                                max_chunk_bytes=CHUNK)
    else:
        port, peer, size, rounds, start_at = argv
        out = _raw_party(int(port), int(peer), int(size), int(rounds), float(start_at))
    print(json.dumps(out), flush=True)


def _roles(threads: dict[str, float], per: float, unit: str) -> str:
    order = ["main", "grpc-send", "grpc-recv", "handler", "grpc-core", "other", "ended"]
    return " ".join(f"{k} {threads.get(k, 0.0) / per:.2f}" for k in order if threads.get(k, 0.0) >= 0.005) + unit


def processes_report(sizes: tuple[int, ...] = PROC_SIZES, gigabytes: float = PROC_GB) -> dict[str, float]:
    """CPU per GB (and per small message) of gaotie and raw gRPC, each party in its own process."""
    print(f"\ntwo processes, both directions at once; load average {_loadavg()}; chunk {CHUNK} bytes")
    figures = {}
    for size in sizes:
        rounds = max(1, int(gigabytes * 1e9 // size))
        gb = size * rounds / 1e9
        for kind in ("raw", "gaotie"):
            outs = _spawn(kind, size, rounds)
            cpu = statistics.mean(o["cpu"] for o in outs) / gb
            rate = gb * 1e3 / max(o["wall"] for o in outs)
            threads = {k: statistics.mean(o["threads"].get(k, 0.0) for o in outs) for k in outs[0]["threads"]}
            figures[f"{kind}_{size}"] = cpu
            print(f"  {kind:6} {size / 2**20:5.1f} MiB arrays, {gb:.2f} GB each way: {rate:5.0f} MB/s per "
                  f"direction, {cpu:.2f} CPU-s per GB sent+received per process ({_roles(threads, gb, '')})")
        print(f"  gaotie / raw CPU per byte at {size / 2**20:.1f} MiB: "
              f"{figures[f'gaotie_{size}'] / figures[f'raw_{size}']:.2f}")
    outs = _spawn("gaotie", SMALL, SMALL_ROUNDS)
    per = statistics.mean(o["cpu"] for o in outs) / SMALL_ROUNDS
    threads = {k: statistics.mean(o["threads"].get(k, 0.0) for o in outs) * 1e6 for k in outs[0]["threads"]}
    figures["gaotie_round_us"] = per * 1e6
    print(f"  gaotie {SMALL} B exchanges: {per * 1e6:.0f} CPU-us per round (one value sent, one received) "
          f"per process ({_roles(threads, SMALL_ROUNDS, ' us')}); load average {_loadavg()}")
    return figures


def test_process_cpu_per_byte():
    processes_report()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--party"]:
        _party_main(*sys.argv[2:])
    elif sys.argv[1:2] == ["--processes"]:
        processes_report()
    else:
        report(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
        processes_report()
