"""PSI benchmarks: ECDH PSI over gRPC next to openmined-psi 2.0 and the bare scalar-mult floor.

Run: ``/work/venv/bin/pytest bench/bench_psi.py -p no:cacheprovider -o addopts="" -s``.
Sizes: 2^16 per side by default; set ``GAOTIE_BENCH_LARGE=1`` to add 2^20 per side (minutes).

* gaotie: ``ecdh_psi`` between two parties over the gRPC transport (``run_local``, both
  parties in this process and sharing this machine's cores), both parties receivers.
* openmined-psi 2.0 (RAW mode, client and server in one process, reveal_intersection):
  installed in its own venv under ``bench/.venvs/openmined`` (it pins an old protobuf) and
  run as a subprocess (``anchor_openmined_psi.py`` through ``anchors.run_in_venv``) on the
  same sizes in the same run.
* floor: the bare X25519 scalar multiplications the protocol needs (4 per item pair: each
  party blinds its own items and the peer's), on the same thread pool; the Elligator 2 map
  onto the curve (printed apart) is not in it.

Throughput is items per second counted over both sides (2n / seconds), the same way for all.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from anchors import run_in_venv  # bench/anchors.py: pytest and `python bench/...` put bench/ on sys.path

import mpc
from mpc.crypto import curve
from protocols.psi import ecdh_psi

HERE = Path(__file__).resolve().parent
SIZES = [1 << 16] + ([1 << 20] if os.environ.get("GAOTIE_BENCH_LARGE") else [])


def openmined_seconds(n: int) -> float:
    """openmined-psi 2.0 on n x n items, in its own venv (anchors.run_in_venv)."""
    out = run_in_venv("openmined", ("openmined-psi==2.*",), HERE / "anchor_openmined_psi.py", [n],
                      probe="import private_set_intersection.python", timeout=3600)
    return float(out["seconds"])


def floor_seconds(n: int) -> float:
    """Bare cost of the 4n X25519 multiplications on the pool (hashing excluded)."""
    pts = curve.hash_items(np.arange(n))
    key = curve.x25519_key()
    curve.scalar_mul("x25519", key, pts[:4096])  # warm the pool
    t0 = time.perf_counter()
    for _ in range(4):
        curve.scalar_mul("x25519", key, pts)
    return time.perf_counter() - t0


def map_seconds(n: int) -> float:
    """Cost of the Elligator 2 map onto the curve for 2n items (one thread; the protocol
    interleaves it with the multiplications on the pool)."""
    digests = curve.hash_items(np.arange(2 * n))
    t0 = time.perf_counter()
    curve.submit_hash_to_group("x25519", digests, min_parallel=10**12).result()
    return time.perf_counter() - t0


def gaotie_seconds(n: int) -> float:
    a = np.arange(n, dtype=np.int64)
    b = np.arange(n // 2, n + n // 2, dtype=np.int64)
    curve.scalar_mul("x25519", curve.x25519_key(), curve.hash_items(a[:4096]))  # warm the pool
    t0 = time.perf_counter()
    out = mpc.run_local(ecdh_psi, ["alice", "bob"], args={"alice": (a,), "bob": (b,)},
                        transport="grpc", triples=None, timeout=7200)
    dt = time.perf_counter() - t0
    assert len(out["alice"]) == n - n // 2 and len(out["bob"]) == n - n // 2
    return dt


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"2^{n.bit_length() - 1}")
def test_ecdh_psi_grpc_vs_openmined_and_floor(benchmark, n):
    # The machine is shared and noisy: take the floor as the best of two runs around ours.
    floor = floor_seconds(n)
    print(f"\nfloor run 1: {floor:.2f} s", flush=True)
    seconds = benchmark.pedantic(gaotie_seconds, args=(n,), rounds=1, iterations=1)
    floor = min(floor, floor_seconds(n))
    om = openmined_seconds(n)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n[ecdh_psi n={n} per side, grpc, 2 parties in one process]")
    print(f"  gaotie      {seconds:8.2f} s  {2 * n / seconds:10.0f} items/s")
    print(f"  openmined   {om:8.2f} s  {2 * n / om:10.0f} items/s   (RAW, one process)")
    print(f"  floor       {floor:8.2f} s  (4n X25519 scalar mults on the pool)")
    print(f"  map         {map_seconds(n):8.2f} s  (Elligator 2 of 2n items, one thread; inside gaotie's time)")
    print(f"  ratio throughput gaotie/openmined = {om / seconds:.2f}x (target >= 2)")
    print(f"  ratio time gaotie/floor           = {seconds / floor:.2f}x (target <= 1.3)")
    print(f"  peak RSS of this process (both parties) = {rss_mib:.0f} MiB")
    benchmark.extra_info.update(openmined_s=om, floor_s=floor, vs_openmined=om / seconds,
                                vs_floor=seconds / floor, rss_mib=rss_mib)


def _intersection_sum(n: int) -> float:
    from protocols.psi import intersection_sum
    a = np.arange(n, dtype=np.int64)
    b = np.arange(n // 2, n + n // 2, dtype=np.int64)
    values = np.ones(n, dtype=np.int64)
    t0 = time.perf_counter()
    out = mpc.run_local(intersection_sum, ["alice", "bob"], args={"alice": (a,), "bob": (b, values)},
                        transport="grpc", triples=None, timeout=7200)
    dt = time.perf_counter() - t0
    assert out["alice"] == (n - n // 2, n - n // 2)
    return dt


def _private_join(n: int) -> float:
    from protocols.psi import private_join

    def job(ctx, ids, cols):
        return private_join(ctx, ids, cols).num_rows

    a = np.arange(n, dtype=np.int64)
    b = np.arange(n // 2, n + n // 2, dtype=np.int64)
    t0 = time.perf_counter()
    out = mpc.run_local(job, ["alice", "bob"],
                        args={"alice": (a, {"x": a * 2}), "bob": (b, {"y": b.astype(np.float64)})},
                        transport="grpc", triples=None, timeout=7200)
    dt = time.perf_counter() - t0
    assert out["alice"] == n - n // 2
    return dt


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"2^{n.bit_length() - 1}")
def test_intersection_sum_grpc(benchmark, n):
    seconds = benchmark.pedantic(_intersection_sum, args=(n,), rounds=1, iterations=1)
    print(f"\n[intersection_sum n={n} per side, grpc, 2048-bit Paillier] {seconds:.2f} s "
          f"({2 * n / seconds:.0f} items/s; openmined-psi has no intersection-sum)")


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"2^{n.bit_length() - 1}")
def test_private_join_grpc(benchmark, n):
    seconds = benchmark.pedantic(_private_join, args=(n,), rounds=1, iterations=1)
    print(f"\n[private_join n={n} per side, one column each, grpc, 2048-bit Paillier] {seconds:.2f} s "
          f"({2 * n / seconds:.0f} items/s; no reference library offers it); peak RSS of this process "
          f"(both parties) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
