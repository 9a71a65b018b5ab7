"""Dealer-free OT triples (``triples="ot"``) vs SPU CHEETAH: 2^20 multiplications and comparisons.

Run: ``python bench/bench_ot_triples.py`` (or through pytest: ``pytest bench/bench_ot_triples.py
-p no:cacheprovider -o addopts="" -s``). Sizes: ``GAOTIE_BENCH_OT_N`` (default 2^20),
``GAOTIE_BENCH_PAILLIER_N`` (default 50 products and as many comparisons, 2048-bit key).

Two parties over the gRPC transport (``mpc.run_local(transport="grpc")``: both parties in
this process, sharing this machine's two cores), inputs already shared, timed on party 0:
``x * y`` of fixed-point tensors (preprocessing included: the OT-based triples and the
truncation are made inside the call) and ``x < y``. The same run times the dealer path
(three parties: two plus the seed-compressed dealer) and ``triples="paillier"`` at a small
size. SPU CHEETAH's figures are anchors measured on this machine (simulator, 2 parties,
FM64, 2^20 elements: ``a * b`` 12.0 s, ``a < b`` 32.4 s), kept as constants here; the
ratio printed is CHEETAH's time per element over ours (>= 1: at least CHEETAH's speed).
The share of time spent in the transport is the time party 0 spent blocked in recv
(``wait%``). ``cpu s`` is this process's CPU time over the call (both parties, their
transports and the thread pool): on a machine other jobs load, the wall time follows the
load and the CPU time does not.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np

import mpc
from mpc import ss

N = int(os.environ.get("GAOTIE_BENCH_OT_N", 1 << 20))
N_PAILLIER = int(os.environ.get("GAOTIE_BENCH_PAILLIER_N", 50))
CHEETAH = {"mul": 12.0 / (1 << 20), "lt": 32.4 / (1 << 20)}   # seconds per element, measured here


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _job(n: int, transport: str, **options) -> dict[str, float]:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=n) * 100, rng.normal(size=n) * 100

    def body(ctx, xv, yv):
        a, b = ss.share(ctx, xv, "alice"), ss.share(ctx, yv, "bob")
        ss.share(ctx, np.zeros(1) if ctx.party == "alice" else None, "alice")  # warm-up: sessions, keys
        (a[:8] * b[:8]).reveal()
        blocked = [0.0]
        recv = ctx.recv

        def timed_recv(peer):
            t = time.perf_counter()
            try:
                return recv(peer)
            finally:
                blocked[0] += time.perf_counter() - t
        ctx.recv = timed_recv
        out = {}
        t, c0 = time.perf_counter(), _cpu()
        z = a * b
        out["mul"], out["mul_wait"], out["mul_cpu"] = time.perf_counter() - t, blocked[0], _cpu() - c0
        blocked[0] = 0.0
        t, c0 = time.perf_counter(), _cpu()
        c = a < b
        out["lt"], out["lt_wait"], out["lt_cpu"] = time.perf_counter() - t, blocked[0], _cpu() - c0
        ctx.recv = recv
        zr, cr = z.reveal(), c.reveal()
        assert np.abs(zr - x * y).max() < 1.0 and np.array_equal(cr, (x < y).astype(np.int64))
        return out

    res = mpc.run_local(body, ["alice", "bob"], args={"alice": (x, None), "bob": (None, y)},
                        transport=transport, timeout=3600, **options)
    return res["alice"]


def main() -> None:
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average before: {' '.join(load)}; 2 cores shared")
    rows = [("ot", N, _job(N, "grpc", triples="ot")),
            ("dealer", N, _job(N, "grpc", triples="dealer")),
            ("paillier", N_PAILLIER, _job(N_PAILLIER, "grpc", triples="paillier"))]
    print(f"{'source':10} {'n':>8} {'x*y s':>8} {'us/el':>9} {'wait%':>6} {'cpu s':>7} {'x<y s':>8} "
          f"{'us/el':>9} {'wait%':>6} {'cpu s':>7}")
    for name, n, r in rows:
        print(f"{name:10} {n:8d} {r['mul']:8.2f} {1e6 * r['mul'] / n:9.2f} {100 * r['mul_wait'] / r['mul']:6.1f}"
              f" {r['mul_cpu']:7.2f} {r['lt']:8.2f} {1e6 * r['lt'] / n:9.2f} {100 * r['lt_wait'] / r['lt']:6.1f}"
              f" {r['lt_cpu']:7.2f}")
    ot = rows[0][2]
    for op in ("mul", "lt"):
        ratio = CHEETAH[op] / (ot[op] / N)
        print(f"CHEETAH {op} (anchor, 2^20): {CHEETAH[op] * (1 << 20):.1f} s; triples='ot' at 2^20 "
              f"rate: {ot[op] / N * (1 << 20):.1f} s; ratio CHEETAH/ot = {ratio:.2f}")
    print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")


def test_bench_ot_triples() -> None:
    main()


if __name__ == "__main__":
    main()
