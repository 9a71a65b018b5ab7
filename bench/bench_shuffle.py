"""Oblivious shuffle without a dealer (``triples="ot"``), and quantiles/describe before/after.

Run: ``python bench/bench_shuffle.py`` (or through pytest: ``pytest bench/bench_shuffle.py
-p no:cacheprovider -o addopts="" -s``). Sizes: ``GAOTIE_BENCH_SHUFFLE_N`` (comma-separated,
default ``65536,1048576``), ``GAOTIE_BENCH_SHUFFLE_STATS_N`` (default 2^16).

Two parties over the gRPC transport (``mpc.run_local(transport="grpc")``: both parties in
this process, sharing this machine's two cores), the input already shared, timed on party 0
(wall time; ``cpu s`` is this process's CPU time over the call, both parties and their
transports). For each n: ``shuffle`` of one column (one row, its own permutation) and
``shuffle(jointly=True)`` of 4 columns (one permutation for all), with ``triples="ot"``
(:mod:`mpc.ss.ot_shuffle`: switching network + IKNP, everything included: routing, the
input-independent OT phase and the online message) and, in the same run, with the dealer
(three parties: two plus the dealer). Then ``stats.quantile`` (quartiles) and
``stats.describe`` of one 2^16-row column on two parties without a dealer: "before" hides
the shuffle capability from the OT source for the call (the path before this change: the
secret bitwise search), "after" uses the dealer-free shuffle + quickselect.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

import mpc
from mpc import ss
from mpc.ss import provider
from mpc.ss.ot_triples import OtSource
from mpc.ss.shuffle import shuffle

SIZES = [int(s) for s in os.environ.get("GAOTIE_BENCH_SHUFFLE_N", "65536,1048576").split(",")]
STATS_N = int(os.environ.get("GAOTIE_BENCH_SHUFFLE_STATS_N", 1 << 16))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _shuffle_job(n: int, rows: int, jointly: bool, triples: str) -> tuple[float, float]:
    data = np.stack([np.arange(n, dtype=np.int64) * (r + 1) for r in range(rows)])

    def body(ctx):
        x = ss.share(ctx, data if ctx.party == "alice" else None, "alice").share
        shuffle(ctx, x[:, :4], jointly=jointly)                    # warm-up: OT sessions
        t, c0 = time.perf_counter(), _cpu()
        y = shuffle(ctx, x, jointly=jointly)
        took = (time.perf_counter() - t, _cpu() - c0)
        out = ss.from_shares(ctx, y, 0).reveal().astype(np.int64)
        assert all(np.array_equal(np.sort(out[r]), data[r]) for r in range(rows))
        if jointly:
            assert np.array_equal(out, data[:, out[0]])
        return took

    parties = ["alice", "bob"] if triples == "ot" else ["alice", "bob", "carol"]
    return mpc.run_local(body, parties, transport="grpc", timeout=3600, triples=triples)["alice"]


def _stats_job(n: int) -> dict[str, float]:
    from protocols import stats
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(size=n) * 100, 2)

    def body(ctx):
        x = ss.share(ctx, values if ctx.party == "alice" else None, "alice")
        out = {}
        t = time.perf_counter()
        q = stats.quantile(ctx, x, [0.25, 0.5, 0.75], method="nearest")
        out["quantile"] = time.perf_counter() - t
        t = time.perf_counter()
        d = stats.describe(ctx, {"x": x})
        out["describe"] = time.perf_counter() - t
        np.testing.assert_allclose(q, np.quantile(values, [0.25, 0.5, 0.75], method="nearest"), atol=1e-2)
        return out, d

    out, _ = mpc.run_local(body, ["alice", "bob"], transport="grpc", timeout=3600, triples="ot")["alice"]
    return out


def _without_shuffle() -> dict[str, float]:
    saved = OtSource.capabilities
    OtSource.capabilities = saved - {provider.SHUFFLE}
    try:
        return _stats_job(STATS_N)
    finally:
        OtSource.capabilities = saved


def main() -> None:
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average before: {' '.join(load)}; 2 cores shared")
    print(f"{'n':>8} {'rows':>4} {'jointly':>7} {'source':>6} {'wall s':>8} {'cpu s':>7} {'ns/el':>8}")
    for n in SIZES:
        for rows, jointly in ((1, False), (4, True)):
            for triples in ("ot", "dealer"):
                wall, cpu = _shuffle_job(n, rows, jointly, triples)
                print(f"{n:8d} {rows:4d} {jointly!s:>7} {triples:>6} {wall:8.2f} {cpu:7.2f} "
                      f"{1e9 * wall / (n * rows):8.0f}", flush=True)
    before, after = _without_shuffle(), _stats_job(STATS_N)
    print(f"two parties, no dealer, n = {STATS_N}: ")
    for op in ("quantile", "describe"):
        print(f"  {op:9} before (bitwise search) {before[op]:7.2f} s   after (OT shuffle + quickselect) "
              f"{after[op]:7.2f} s   speed-up {before[op] / after[op]:5.1f}x")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"peak RSS of this process (every party at once): {peak:.2f} GiB")
    print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")


def test_bench_shuffle() -> None:
    main()


if __name__ == "__main__":
    main()
