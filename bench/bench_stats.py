"""Joint statistics benchmarks over gRPC, with pandas on the pooled plaintext as reference.

Run: ``/work/venv/bin/pytest bench/bench_stats.py -p no:cacheprovider -o addopts="" -s``.

* vertical: ``private_join`` of N x N ids (half overlapping) with two numeric columns per
  party (per-column scaled, wide ranges), then ``pearson`` and ``describe`` of the four
  joined columns. Join method = ``GAOTIE_BENCH_STATS_JOIN`` (``dealer``, the default, or
  ``ecdh``; bench/bench_join_servers.py runs the same on real party servers).
  N = ``GAOTIE_BENCH_STATS_N`` (default 2^16; the issue's target is 2^20:
  set it to 1048576 for that run).
* vertical, statistics only: the same pearson + describe on R rows already shared by
  their owners (no join), R = ``GAOTIE_BENCH_STATS_SHARED`` (default 2^19, the joined
  size of the 2^20 benchmark), to time the statistics apart from the join; also times a
  second ``describe`` on the same columns (preparation and shuffles cached: the
  quickselect alone) and ``median`` of one new column (preparation + shuffle + select).
* horizontal: ``horizontal_describe`` over 3 parties x M rows x 10 columns,
  M = ``GAOTIE_BENCH_STATS_ROWS`` (default 2^20).

Reference: the same statistics with pandas on the pooled plaintext, measured in the
same run (``merge`` + ``corr`` + ``describe``; ``concat`` + ``describe``); the ratio is
printed. All parties (and the dealer) run in this process over loopback gRPC, sharing the
machine's 2 cores, so "RSS" is the peak of all parties together: an upper bound per party.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np
import pandas as pd
import pytest

import mpc
from protocols import stats
from protocols.psi import private_join

N_JOIN = int(os.environ.get("GAOTIE_BENCH_STATS_N", 1 << 16))
M_ROWS = int(os.environ.get("GAOTIE_BENCH_STATS_ROWS", 1 << 20))
R_SHARED = int(os.environ.get("GAOTIE_BENCH_STATS_SHARED", 1 << 19))
JOIN = os.environ.get("GAOTIE_BENCH_STATS_JOIN", "dealer")
H_COLS = 10


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(times: dict, name: str, fn, *args):
    """fn(*args), its wall time recorded as times[name]."""
    t = time.perf_counter()
    out = fn(*args)
    times[name] = time.perf_counter() - t
    return out


def _pearson_describe(ctx, named, times):
    r = _timed(times, "pearson", stats.pearson, ctx, named["alice.income"], named["bob.spend"])
    return r, _timed(times, "describe", stats.describe, ctx, named)


def _vertical_job(ctx, ids, cols):
    times = {}
    t = time.perf_counter()
    ints, shifts = stats.scale_columns(ctx, cols)
    table = private_join(ctx, ids, ints, method=JOIN)
    times["private_join"] = time.perf_counter() - t
    r, d = _pearson_describe(ctx, stats.apply_shifts(table, shifts), times)
    return times, r, d, table.num_rows


def vertical_data(n: int):
    rng = np.random.default_rng(7)
    ids_a = np.arange(n, dtype=np.int64)
    ids_b = np.arange(n // 2, n + n // 2, dtype=np.int64)
    base = rng.lognormal(3, 2, n + n // 2).clip(1e-4, 1e4)
    a = {"income": base[:n], "rate": 1e-4 * rng.normal(size=n)}
    b = {"spend": (0.3 * base + rng.lognormal(0, 1, n + n // 2))[n // 2:], "score": rng.normal(600, 50, n)}
    return ids_a, a, ids_b, b


def test_vertical_join_pearson_describe(benchmark):
    ids_a, a, ids_b, b = vertical_data(N_JOIN)

    def run():
        return mpc.run_local(_vertical_job, ["alice", "bob"],
                             args={"alice": (ids_a, a), "bob": (ids_b, b)}, transport="grpc", timeout=7200)

    t0 = time.perf_counter()
    out = benchmark.pedantic(run, rounds=1, iterations=1)
    total = time.perf_counter() - t0
    times, r, d, m = out["alice"]

    t1 = time.perf_counter()
    fa = pd.DataFrame({"id": ids_a, **a})
    fb = pd.DataFrame({"id": ids_b, **b})
    joined = fa.merge(fb, on="id")
    ref_r = joined["income"].corr(joined["spend"])
    ref_d = joined[["income", "rate", "spend", "score"]].describe().T
    t_pandas = time.perf_counter() - t1

    assert m == N_JOIN // 2
    assert r == pytest.approx(ref_r, abs=1e-4)
    got = d.rename(index=lambda s: s.split(".", 1)[1]).loc[ref_d.index]
    rel = float(np.max(np.abs(got.to_numpy() - ref_d.to_numpy()) / np.abs(ref_d.to_numpy())))
    print(f"\nvertical N={N_JOIN} x {N_JOIN} ids, join={JOIN}, {m} joined rows, 2+2 columns, gRPC:")
    for k, v in times.items():
        print(f"  {k:13s} {v:8.2f} s")
    print(f"  end to end    {total:8.2f} s (target <= 60 s at N=2^20)")
    print(f"  pearson {r:.8f} vs pandas {ref_r:.8f} (|diff| {abs(r - ref_r):.1e}); describe max rel err {rel:.1e}")
    print(f"  pandas on plaintext {t_pandas:.3f} s -> ratio {total / t_pandas:.0f}x")
    print(f"  peak RSS of both parties + dealer in this process: {_rss_mib():.0f} MiB (target <= 2048 per party)")
    assert rel < 1e-3


def _shared_job(ctx, cols, owners):
    named = {f"{owners[k]}.{k}": stats.share_scaled(ctx, v if ctx.party == owners[k] else None, owners[k], name=k)
             for k, v in cols.items()}
    times = {}
    r, d = _pearson_describe(ctx, named, times)
    _timed(times, "describe again", stats.describe, ctx, named)
    fresh = stats.share_scaled(ctx, cols["score"] if ctx.party == "bob" else None, "bob", name="score")
    med = _timed(times, "median", stats.median, ctx, fresh)
    return times, r, d, med


def test_vertical_statistics_on_shared_columns(benchmark):
    _, a, _, b = vertical_data(R_SHARED)
    cols = {**a, **{k: v[:R_SHARED] for k, v in b.items()}}
    owners = {"income": "alice", "rate": "alice", "spend": "bob", "score": "bob"}

    def run():
        return mpc.run_local(_shared_job, ["alice", "bob"], args={p: (cols, owners) for p in ("alice", "bob")},
                             transport="grpc", timeout=7200)

    out = benchmark.pedantic(run, rounds=1, iterations=1)
    times, r, d, med = out["alice"]
    t1 = time.perf_counter()
    frame = pd.DataFrame(cols)
    ref_r = frame["income"].corr(frame["spend"])
    ref_d = frame.describe().T
    t_pandas = time.perf_counter() - t1
    got = d.rename(index=lambda s: s.split(".", 1)[1]).loc[ref_d.index]
    rel = float(np.max(np.abs(got.to_numpy() - ref_d.to_numpy()) / np.abs(ref_d.to_numpy())))
    total = times["pearson"] + times["describe"]
    print(f"\nvertical statistics on {R_SHARED} shared rows x 4 columns, gRPC:")
    for k, v in times.items():
        print(f"  {k:14s} {v:8.2f} s")
    print(f"  pearson + describe {total:.2f} s (target well under 20 s at 2^19 rows)")
    print(f"  pearson |diff| {abs(r - ref_r):.1e}; describe max rel err {rel:.1e}")
    print(f"  pandas on plaintext {t_pandas:.3f} s -> ratio {total / t_pandas:.0f}x")
    print(f"  peak RSS of both parties + dealer in this process: {_rss_mib():.0f} MiB")
    assert rel < 1e-3 and abs(r - ref_r) < 1e-4
    assert med == pytest.approx(np.median(cols["score"]), rel=1e-9)


def _horizontal_job(ctx, frame):
    t = time.perf_counter()
    d = stats.horizontal_describe(ctx, frame)
    return d, time.perf_counter() - t


def horizontal_data(m: int, parties: list[str]) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(11)
    out = {}
    for i, p in enumerate(parties):
        cols = {}
        for j in range(H_COLS):
            scale = 10.0 ** (j - 4)                                   # 1e-4 .. 1e5
            cols[f"c{j}"] = (rng.lognormal(0, 1.5, m) if j % 2 else rng.normal(i, 1, m)) * scale
        out[p] = pd.DataFrame(cols)
    return out


def test_horizontal_describe_3_parties(benchmark):
    parties = ["alice", "bob", "carol"]
    frames = horizontal_data(M_ROWS, parties)

    def run():
        return mpc.run_local(_horizontal_job, parties, args={p: (frames[p],) for p in parties},
                             transport="grpc", timeout=3600)

    t0 = time.perf_counter()
    out = benchmark.pedantic(run, rounds=1, iterations=1)
    total = time.perf_counter() - t0
    d, t_proto = out["alice"]

    t1 = time.perf_counter()
    ref = pd.concat(list(frames.values()), ignore_index=True).describe().T
    t_pandas = time.perf_counter() - t1
    rel = float(np.max(np.abs(d.to_numpy() - ref.to_numpy()) / np.abs(ref.to_numpy())))
    print(f"\nhorizontal_describe 3 parties x {M_ROWS} rows x {H_COLS} columns, gRPC:")
    print(f"  protocol {t_proto:.2f} s, end to end {total:.2f} s; max rel err vs pandas {rel:.1e}")
    print(f"  pandas concat+describe on plaintext {t_pandas:.2f} s -> ratio {total / t_pandas:.1f}x")
    print(f"  peak RSS of the three parties + dealer in this process: {_rss_mib():.0f} MiB")
    assert rel < 1e-6
