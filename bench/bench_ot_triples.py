"""Dealer-free OT triples (``triples="ot"``) vs SPU CHEETAH: 2^20 multiplications, comparisons, equalities.

Run: ``python bench/bench_ot_triples.py`` (or through pytest: ``pytest bench/bench_ot_triples.py
-p no:cacheprovider -o addopts="" -o timeout=0 -s``: the suite's 300 s timeout stops SPU's run
at 2^20 on a loaded machine). Sizes: ``GAOTIE_BENCH_OT_N`` (default 2^20),
``GAOTIE_BENCH_PAILLIER_N`` (default 50 products and as many comparisons, 2048-bit key).

Two parties over the gRPC transport (``mpc.run_local(transport="grpc")``: both parties in
this process, sharing this machine's two cores), inputs already shared, timed on party 0:
``x * y`` of fixed-point tensors (preprocessing included: the OT-based triples and the
truncation are made inside the call), ``x < y`` and ``x == y`` (a quarter of the pairs
equal). The same run times the dealer path (three parties: two plus the seed-compressed
dealer) and ``triples="paillier"`` at a small size.

SPU runs in the same run, after gaotie's jobs, at the same n (``bench/anchors.py``
``spu_arith``: its own virtual environment, ``bench/anchor_spu_cheetah.py`` as a subprocess,
``Simulator(2, RuntimeConfig(CHEETAH or SEMI2K, FM64))``, warm-up on 8 elements). When the
venv cannot be built or SPU fails, the figures recorded in issue 17 are used (2^20 only)
and the printed source says why. Ratios are SPU's time per element over gaotie's (>= 1:
gaotie at least as fast): CHEETAH against ``triples="ot"``, SEMI2K (a trusted party deals
the triples) against the dealer path. ``GAOTIE_BENCH_SPU=0`` skips the live run.

The share of time spent in the transport is the time party 0 spent blocked in recv
(``wait%``). ``cpu s`` is this process's CPU time over the call (both parties, their
transports and the thread pool): on a machine other jobs load, the wall time follows the
load and the CPU time does not.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

import mpc
from mpc import ss

N = int(os.environ.get("GAOTIE_BENCH_OT_N", 1 << 20))
N_PAILLIER = int(os.environ.get("GAOTIE_BENCH_PAILLIER_N", 50))
OPS = ("mul", "lt", "eq")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _job(n: int, transport: str, **options) -> dict[str, float]:
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=n) * 100, rng.normal(size=n) * 100
    y_eq = np.where(np.arange(n) % 4 == 0, x, y)          # a quarter of the pairs equal

    def body(ctx, xv, yv, yv_eq):
        a, b = ss.share(ctx, xv, "alice"), ss.share(ctx, yv, "bob")
        b_eq = ss.share(ctx, yv_eq, "bob")
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
        out, results = {}, {}
        for op, fn in (("mul", lambda: a * b), ("lt", lambda: a < b), ("eq", lambda: a == b_eq)):
            blocked[0] = 0.0
            t, c0 = time.perf_counter(), _cpu()
            results[op] = fn()
            out[op], out[f"{op}_wait"], out[f"{op}_cpu"] = time.perf_counter() - t, blocked[0], _cpu() - c0
        ctx.recv = recv
        zr, cr, er = (results[op].reveal() for op in OPS)
        assert np.abs(zr - x * y).max() < 1.0 and np.array_equal(cr, (x < y).astype(np.int64))
        assert np.array_equal(er, (x == y_eq).astype(np.int64))
        return out

    res = mpc.run_local(body, ["alice", "bob"], args={"alice": (x, None, None), "bob": (None, y, y_eq)},
                        transport=transport, timeout=3600, **options)
    return res["alice"]


def _spu(n: int) -> dict[str, dict]:
    """SPU CHEETAH and SEMI2K measured now (or the recorded figures, with the reason)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import anchors

    protocols = ("CHEETAH", "SEMI2K")
    if os.environ.get("GAOTIE_BENCH_SPU", "1") == "0":
        return anchors.merge_with_recorded(None, "skipped: GAOTIE_BENCH_SPU=0", list(protocols),
                                           anchors.RECORDED_ARITH.get(n, {}))
    return anchors.spu_arith(n, protocols)


def main() -> None:
    load = open("/proc/loadavg").read().split()[:3]
    print(f"load average before: {' '.join(load)}; 2 cores shared")
    rows = [("ot", N, _job(N, "grpc", triples="ot")),
            ("dealer", N, _job(N, "grpc", triples="dealer")),
            ("paillier", N_PAILLIER, _job(N_PAILLIER, "grpc", triples="paillier"))]
    print(f"load average after gaotie: {' '.join(open('/proc/loadavg').read().split()[:3])}")
    head = "".join(f" {op + ' s':>8} {'us/el':>9} {'wait%':>6} {'cpu s':>7}" for op in OPS)
    print(f"{'source':10} {'n':>8}{head}")   # before SPU's run, so a timeout there keeps them
    for name, n, r in rows:
        print(f"{name:10} {n:8d}" + "".join(f" {r[op]:8.2f} {1e6 * r[op] / n:9.2f} "
                                          f"{100 * r[op + '_wait'] / r[op]:6.1f} {r[op + '_cpu']:7.2f}"
                                          for op in OPS), flush=True)
    spu = _spu(N)
    for protocol, (ours, mine) in (("CHEETAH", ("ot", rows[0][2])), ("SEMI2K", ("dealer", rows[1][2]))):
        entry = spu[protocol]
        for op in OPS:
            if entry.get(op) is None:
                print(f"SPU {protocol} {op}: n/a ({entry['source']})")
                continue
            theirs = entry[op] / N
            print(f"SPU {protocol} {op} at n={N}: {entry[op]:.2f} s ({1e6 * theirs:.2f} us/el); "
                  f"triples={ours!r}: {mine[op]:.2f} s; ratio {protocol}/{ours} per element = "
                  f"{theirs / (mine[op] / N):.2f}  ({entry['source']})")
    print(f"load average after: {' '.join(open('/proc/loadavg').read().split()[:3])}")


def test_bench_ot_triples() -> None:
    main()


if __name__ == "__main__":
    main()
