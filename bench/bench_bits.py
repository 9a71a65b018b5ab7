"""Bit-matrix transpose (:func:`mpc.ot.bits.transpose`), next to numpy's unpackbits / .T /
packbits of the same matrix in the same run (the reference), and the ratio.

Run: ``python bench/bench_bits.py`` (or through pytest: ``pytest bench/bench_bits.py
-p no:cacheprovider -o addopts="" -s``). Shapes (rows x columns, bits): IKNP's 128 x 2^20
(its matrix of PRG columns; one OT per column), 2^20 x 128 (the way back), KKRT's 512 x 2^17
and 2^17 x 512, a small IKNP batch (128 x 2^14) and a square 4096 x 4096.

Each figure is the least CPU time of this thread over ``GAOTIE_BENCH_BITS_REPS`` calls
(default 7), with the crypto pool at one worker (``GAOTIE_WORKERS=1``, set before the
import) and glibc's malloc tuned as in a party process (:mod:`mpc.runtime.allocator`):
the CPU a transpose costs, which other jobs on a shared machine change less than the wall
time. Print ``/proc/loadavg`` next to the figures.
"""

from __future__ import annotations

import os
import time

os.environ["GAOTIE_WORKERS"] = "1"

import numpy as np  # noqa: E402

from mpc.ot.bits import transpose  # noqa: E402
from mpc.runtime import allocator  # noqa: E402

REPS = int(os.environ.get("GAOTIE_BENCH_BITS_REPS", 7))
SHAPES = [(128, 1 << 20), (1 << 20, 128), (512, 1 << 17), (1 << 17, 512), (128, 1 << 14), (4096, 4096)]


def _naive(m: np.ndarray) -> np.ndarray:
    return np.packbits(np.unpackbits(m, axis=1, bitorder="little").T, axis=1, bitorder="little")


def _least_cpu(fn, m: np.ndarray, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.thread_time()
        fn(m)
        best = min(best, time.thread_time() - start)
    return best


def run(reps: int = REPS) -> list[dict[str, float]]:
    """Per shape: the least CPU seconds of transpose and of the reference, and their ratio."""
    allocator.tune()
    rng = np.random.default_rng(0)
    rows = []
    for r, c in SHAPES:
        m = rng.integers(0, 256, (r, c // 8), dtype=np.uint8)
        assert np.array_equal(transpose(m), _naive(m))
        ours, ref = _least_cpu(transpose, m, reps), _least_cpu(_naive, m, 1)
        rows.append({"rows": r, "cols": c, "transpose_s": ours, "reference_s": ref})
        print(f"{r:>8} x {c:<8} transpose {ours * 1e3:8.2f} ms  {m.nbytes / ours / 1e9:5.2f} GB/s   "
              f"unpackbits/packbits {ref * 1e3:8.2f} ms   x{ref / ours:5.1f}", flush=True)
    return rows


def test_bench_bits() -> None:
    with open("/proc/loadavg") as f:
        print(f"\nload average: {f.read().strip()}")
    for row in run():
        assert row["transpose_s"] < row["reference_s"]


if __name__ == "__main__":
    test_bench_bits()
