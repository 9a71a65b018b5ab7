"""Dealer-free OT triples (``triples="ot"``) vs SPU CHEETAH: 2^20 multiplications, comparisons, equalities.

Run: ``python bench/bench_ot_triples.py`` (or through pytest: ``pytest bench/bench_ot_triples.py
-p no:cacheprovider -o addopts="" -o timeout=0 -s``: the suite's 300 s timeout stops SPU's run
at 2^20 on a loaded machine). Sizes: ``GAOTIE_BENCH_OT_N`` (default 2^20),
``GAOTIE_BENCH_PAILLIER_N`` (default 50 products and as many comparisons, 2048-bit key).

Two parties over the gRPC transport on loopback, in two shapes for ``triples="ot"``:

* ``ot 2-proc`` (the deployment's shape, compared with CHEETAH): each party in its own OS
  process (``python bench/bench_ot_triples.py --party NAME ADDRESSES JOB``, started with
  ``subprocess.Popen``; :func:`mpc.runtime.local.run_party_process`: its own gRPC server,
  its peer at the other port), so each has its own interpreter and GIL;
* ``ot 1-proc``: both parties in this process (``mpc.run_local(transport="grpc")``),
  sharing one interpreter's GIL (a profile showed they then use ~1.1-1.3 of the 2 cores).

Both derive the test inputs from one seed and each secret-shares only its own
(``ss.share(ctx, x, "alice")``, ``ss.share(ctx, y, "bob")``), before the timings. Timed on
party 0 from a barrier (one exchange of a small value with the peer) to the end of the op:
``x * y`` of fixed-point tensors (preprocessing included: the OT-based triples and the
truncation are made inside the call), ``x < y`` and ``x == y`` (a quarter of the pairs
equal). The same run times the dealer path (three parties: two plus the seed-compressed
dealer) and ``triples="paillier"`` at a small size, both in one process.
``GAOTIE_BENCH_OT_SHAPES`` (default ``2,1``) picks the OT shapes.

SPU runs in the same run, after gaotie's jobs, at the same n (``bench/anchors.py``
``spu_arith``: its own virtual environment, ``bench/anchor_spu_cheetah.py`` as a subprocess,
``Simulator(2, RuntimeConfig(CHEETAH or SEMI2K, FM64))``, warm-up on 8 elements). When the
venv cannot be built or SPU fails, the figures recorded in issue 17 are used (2^20 only)
and the printed source says why. Ratios are SPU's time per element over gaotie's (>= 1:
gaotie at least as fast): CHEETAH against both ``triples="ot"`` shapes, SEMI2K (a trusted
party deals the triples) against the dealer path. ``GAOTIE_BENCH_SPU=0`` skips the live run.

The share of time spent in the transport is the time party 0 spent blocked in recv
(``wait%``). ``cpu s`` is CPU time over the call: of this process for the one-process rows
(both parties, their transports and the thread pool), and of each party's process for
``ot 2-proc`` (``alice+bob``). On a machine other jobs load, the wall time follows the load
and the CPU time does not.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import mpc
from mpc import ss

N = int(os.environ.get("GAOTIE_BENCH_OT_N", 1 << 20))
N_PAILLIER = int(os.environ.get("GAOTIE_BENCH_PAILLIER_N", 50))
OT_SHAPES = [int(k) for k in os.environ.get("GAOTIE_BENCH_OT_SHAPES", "2,1").split(",")]
OPS = ("mul", "lt", "eq")
PARTIES = ["alice", "bob"]


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _inputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test inputs, the same in every process: x is alice's, y and y_eq bob's."""
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=n) * 100, rng.normal(size=n) * 100
    return x, y, np.where(np.arange(n) % 4 == 0, x, y)          # a quarter of the pairs equal


def _body(ctx, n: int) -> dict[str, float]:
    """One party's job: share its own inputs, then time each op from a barrier."""
    x, y, y_eq = _inputs(n)
    mine = ctx.party == "alice"
    a = ss.share(ctx, x if mine else None, "alice")
    b, b_eq = (ss.share(ctx, None if mine else v, "bob") for v in (y, y_eq))
    ss.share(ctx, np.zeros(1) if mine else None, "alice")       # warm-up: sessions, keys
    (a[:8] * b[:8]).reveal()
    peer = next(p for p in ctx.parties if p != ctx.party)
    blocked = [0.0]
    recv = ctx.recv

    def timed_recv(peer):
        t = time.perf_counter()
        try:
            return recv(peer)
        finally:
            blocked[0] += time.perf_counter() - t
    out, results = {}, {}
    for op, fn in (("mul", lambda: a * b), ("lt", lambda: a < b), ("eq", lambda: a == b_eq)):
        ctx.exchange(peer, np.zeros(1))                          # barrier: both start together
        ctx.recv, blocked[0] = timed_recv, 0.0
        t, c0 = time.perf_counter(), _cpu()
        results[op] = fn()
        out[op], out[f"{op}_wait"], out[f"{op}_cpu"] = time.perf_counter() - t, blocked[0], _cpu() - c0
        ctx.recv = recv
    zr, cr, er = (results[op].reveal() for op in OPS)
    assert np.abs(zr - x * y).max() < 1.0 and np.array_equal(cr, (x < y).astype(np.int64))
    assert np.array_equal(er, (x == y_eq).astype(np.int64))
    return out


def _job(n: int, transport: str, **options) -> dict[str, float]:
    """Both parties in this process (run_local); party 0's timings."""
    res = mpc.run_local(_body, PARTIES, args={p: (n,) for p in PARTIES}, transport=transport,
                        timeout=3600, **options)
    return res["alice"]


def _job_processes(n: int) -> dict[str, float]:
    """Each party in its own OS process (``--party``); party 0's timings, each one's CPU."""
    from mpc.cluster import free_port

    addresses = {p: f"127.0.0.1:{free_port()}" for p in PARTIES}
    job_id = f"bench-ot-{os.getpid()}-{time.monotonic_ns()}"
    root = str(Path(mpc.__file__).resolve().parents[1])        # the children import this same mpc
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "GAOTIE_BENCH_OT_N": str(n)}
    procs = {p: subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--party", p,
                                  json.dumps(addresses), job_id], stdout=subprocess.PIPE, env=env, text=True)
             for p in PARTIES}
    outs = {}
    for p, proc in procs.items():
        stdout, _ = proc.communicate(timeout=3700)
        if proc.returncode != 0:
            raise RuntimeError(f"party process {p!r} exited with {proc.returncode} (its stderr is above)")
        outs[p] = json.loads(stdout.strip().splitlines()[-1])
    out = dict(outs["alice"])
    for op in OPS:
        out[f"{op}_cpu_by"] = [outs[p][f"{op}_cpu"] for p in PARTIES]
    return out


def _party_main(party: str, addresses: str, job_id: str) -> None:
    """One party process of ``ot 2-proc``: run its side and print its timings as JSON."""
    from mpc.runtime.local import run_party_process

    out = run_party_process(_body, party, PARTIES, json.loads(addresses), job_id, args=(N,),
                            timeout=3600, triples="ot")
    print(json.dumps(out), flush=True)


def _spu(n: int) -> dict[str, dict]:
    """SPU CHEETAH and SEMI2K measured now (or the recorded figures, with the reason)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import anchors

    protocols = ("CHEETAH", "SEMI2K")
    if os.environ.get("GAOTIE_BENCH_SPU", "1") == "0":
        return anchors.merge_with_recorded(None, "skipped: GAOTIE_BENCH_SPU=0", list(protocols),
                                           anchors.RECORDED_ARITH.get(n, {}))
    return anchors.spu_arith(n, protocols)


def _load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main() -> None:
    print(f"load average before: {_load()}; 2 cores shared")
    ot = {k: (_job_processes(N) if k == 2 else _job(N, "grpc", triples="ot")) for k in OT_SHAPES}
    rows = [(f"ot {k}-proc", N, ot[k]) for k in OT_SHAPES]
    rows += [("dealer", N, _job(N, "grpc", triples="dealer")),
             ("paillier", N_PAILLIER, _job(N_PAILLIER, "grpc", triples="paillier"))]
    print(f"load average after gaotie: {_load()}")
    head = "".join(f" {op + ' s':>8} {'us/el':>9} {'wait%':>6} {'cpu s':>11}" for op in OPS)
    print(f"{'source':10} {'n':>8}{head}")   # before SPU's run, so a timeout there keeps them

    def cpu(r, op):
        by = r.get(f"{op}_cpu_by")
        return f"{r[op + '_cpu']:.2f}" if by is None else "+".join(f"{c:.2f}" for c in by)
    for name, n, r in rows:
        print(f"{name:10} {n:8d}" + "".join(f" {r[op]:8.2f} {1e6 * r[op] / n:9.2f} "
                                          f"{100 * r[op + '_wait'] / r[op]:6.1f} {cpu(r, op):>11}"
                                          for op in OPS), flush=True)
    spu = _spu(N)
    pairs = [("CHEETAH", f"triples='ot' {k}-proc", ot[k]) for k in OT_SHAPES]
    pairs.append(("SEMI2K", "triples='dealer'", rows[len(OT_SHAPES)][2]))
    missing = set()
    for protocol, ours, mine in pairs:
        entry = spu[protocol]
        for op in OPS:
            if entry.get(op) is None:
                if (protocol, op) not in missing:
                    print(f"SPU {protocol} {op}: n/a ({entry['source']})")
                missing.add((protocol, op))
                continue
            theirs = entry[op] / N
            print(f"SPU {protocol} {op} at n={N}: {entry[op]:.2f} s ({1e6 * theirs:.2f} us/el); "
                  f"{ours}: {mine[op]:.2f} s; ratio {protocol}/ours per element = "
                  f"{theirs / (mine[op] / N):.2f}  ({entry['source']})")
    print(f"load average after: {_load()}")


def test_bench_ot_triples() -> None:
    main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--party"]:
        _party_main(*sys.argv[2:5])
    else:
        main()
