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

Every party process tunes glibc's malloc when it starts its gRPC transport
(:mod:`mpc.runtime.allocator`); the benchmark applies the same tuning before its first
measurement, so raw gRPC and gaotie run under the same allocator settings (one process).
Received values of 1 MB and more reuse the memory of earlier dropped ones
(:mod:`mpc.runtime.buffers`); the count of reused buffers is printed.

Times are taken inside the job (after a first message has opened the streams), so job
and server start-up is not counted. Everything runs in this process, sharing the
machine's cores: print ``/proc/loadavg`` next to the figures.

Run: ``pytest bench/bench_transport.py -o addopts="" -s`` or ``python bench/bench_transport.py [reps]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from concurrent import futures

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


if __name__ == "__main__":
    report(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
