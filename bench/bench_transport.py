"""Transport benchmarks: 10 MB array exchange throughput and small-message latency over
the gRPC transport between two parties, next to raw gRPC streaming of the same bytes
measured in the same run (the ceiling).

Run: pytest bench/bench_transport.py -o addopts="" -s
"""

from __future__ import annotations

import time
from concurrent import futures

import grpc
import numpy as np

import mpc

ARRAY_BYTES = 10_000_000
REPS = 20
CHUNK = 2 << 20


def _stream_arrays(ctx, reps):
    arr = np.zeros(ARRAY_BYTES // 8, dtype=np.uint64)
    if ctx.rank == 0:
        for _ in range(reps):
            ctx.send(ctx.peers[0], arr)
        return ctx.recv(ctx.peers[0])
    for _ in range(reps):
        ctx.recv(ctx.parties[0])
    ctx.send(ctx.parties[0], 1)


def _ping_pong(ctx, rounds):
    other = ctx.peers[0]
    for i in range(rounds):
        if ctx.rank == 0:
            ctx.send(other, i)
            ctx.recv(other)
        else:
            ctx.send(other, ctx.recv(other))


def gaotie_throughput() -> float:
    start = time.perf_counter()
    mpc.run_local(_stream_arrays, ["a", "b"], args={"a": (REPS,), "b": (REPS,)}, transport="grpc", triples=None)
    return ARRAY_BYTES * REPS / (time.perf_counter() - start) / 1e6


def raw_grpc_throughput() -> float:
    """Raw bytes over one client stream, chunked the same way, no codec or checks."""
    identity = lambda b: b  # noqa: E731

    def consume(request_iterator, context):
        n = 0
        for chunk in request_iterator:
            n += len(chunk)
        return n.to_bytes(8, "big")

    handler = grpc.method_handlers_generic_handler(
        "raw.Sink", {"Put": grpc.stream_unary_rpc_method_handler(consume, identity, identity)})
    options = [("grpc.max_receive_message_length", CHUNK + 1024), ("grpc.max_send_message_length", CHUNK + 1024)]
    server = grpc.server(futures.ThreadPoolExecutor(4), options=options)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=options)
    put = channel.stream_unary("/raw.Sink/Put", request_serializer=identity, response_deserializer=identity)
    data = np.zeros(ARRAY_BYTES // 8, dtype=np.uint64).tobytes()

    def chunks():
        for _ in range(REPS):
            for i in range(0, len(data), CHUNK):
                yield data[i:i + CHUNK]

    start = time.perf_counter()
    put(chunks(), timeout=120)
    elapsed = time.perf_counter() - start
    channel.close()
    server.stop(None)
    return ARRAY_BYTES * REPS / elapsed / 1e6


def test_array_throughput(benchmark):
    raw = raw_grpc_throughput()
    ours = benchmark.pedantic(gaotie_throughput, rounds=3, iterations=1)
    print(f"\n10 MB arrays over gRPC transport: {ours:.0f} MB/s; raw gRPC streaming {raw:.0f} MB/s; "
          f"ratio {ours / raw:.2f} (target >= 300 MB/s)")


def test_message_latency(benchmark):
    rounds = 200

    def run():
        start = time.perf_counter()
        mpc.run_local(_ping_pong, ["a", "b"], args={"a": (rounds,), "b": (rounds,)}, transport="grpc",
                      triples=None)
        return (time.perf_counter() - start) / (2 * rounds)

    latency = benchmark.pedantic(run, rounds=3, iterations=1)
    print(f"\none-way small-message latency over the gRPC transport: {latency * 1e6:.0f} us")
