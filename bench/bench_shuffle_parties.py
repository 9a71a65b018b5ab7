"""Dealer-free oblivious shuffle for three parties (``triples="ot"``: :class:`mpc.ss.ot_parties.OtParties`)
against the two-party one and the three-party dealer's, and three-party describe without a dealer.

Run: ``python bench/bench_shuffle_parties.py``. Sizes: ``GAOTIE_BENCH_SHUFFLE_N``
(comma-separated, default ``65536,1048576``), ``GAOTIE_BENCH_SHUFFLE_STATS_N`` (default 2^14).

All parties in this process over the gRPC transport (``mpc.run_local(transport="grpc")``),
sharing this machine's cores: a three-party figure is three parties' CPU on the same two
cores, so it overstates the wall time of three machines. The input already shared; timed on
party 0 after a warm-up (OT sessions); one row of n elements, its own permutation.
"""

from __future__ import annotations

import os
import time

import numpy as np

import mpc
from mpc import ss
from mpc.ss.shuffle import shuffle
from protocols import stats

SIZES = [int(s) for s in os.environ.get("GAOTIE_BENCH_SHUFFLE_N", "65536,1048576").split(",")]
STATS_N = int(os.environ.get("GAOTIE_BENCH_SHUFFLE_STATS_N", 1 << 14))


def _shuffle(n: int, parties: list[str], triples: str) -> float:
    data = np.arange(n, dtype=np.int64)[None]

    def body(ctx):
        x = ss.share(ctx, data if ctx.party == parties[0] else None, parties[0]).share
        shuffle(ctx, x[:, :4])                                      # warm-up: OT sessions
        t = time.perf_counter()
        y = shuffle(ctx, x)
        took = time.perf_counter() - t
        out = ss.from_shares(ctx, y, 0).reveal().astype(np.int64)
        assert np.array_equal(np.sort(out[0]), data[0])
        return took

    return mpc.run_local(body, parties, transport="grpc", timeout=3600, triples=triples)[parties[0]]


def _describe(n: int, parties: list[str], triples: str) -> float:
    rng = np.random.default_rng(1)
    col = rng.lognormal(0, 2, n)

    def body(ctx):
        t = time.perf_counter()
        x = stats.share_scaled(ctx, col if ctx.party == parties[-1] else None, parties[-1], name="x")
        d = stats.describe(ctx, {"x": x})
        took = time.perf_counter() - t
        assert abs(d.loc["x", "50%"] / np.median(col) - 1) < 1e-4
        return took

    return mpc.run_local(body, parties, transport="grpc", timeout=3600, triples=triples)[parties[0]]


def main() -> None:
    print(f"uptime: {os.popen('uptime').read().strip()}")
    two, three = ["alice", "bob"], ["alice", "bob", "carol"]
    for n in SIZES:
        ot2 = _shuffle(n, two, "ot")
        ot3 = _shuffle(n, three, "ot")
        dealer3 = _shuffle(n, three, "dealer")
        print(f"shuffle n={n}: ot 2 parties {ot2:.2f} s, ot 3 parties {ot3:.2f} s ({ot3 / ot2:.2f}x), "
              f"dealer 3 parties {dealer3:.2f} s")
    d3 = _describe(STATS_N, three, "ot")
    dd = _describe(STATS_N, three, "dealer")
    print(f"describe n={STATS_N}, 3 parties: ot {d3:.2f} s, dealer {dd:.2f} s")
    print(f"uptime: {os.popen('uptime').read().strip()}")


def test_bench_shuffle_parties() -> None:
    main()


if __name__ == "__main__":
    main()
