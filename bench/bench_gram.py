"""The dealer-free Gram matrix (``mpc.ss.gram.gram``, ``triples="ot"``): process CPU per
party and bytes sent per party, checked against Python integers.

Run: ``python bench/bench_gram.py [n] [reps]`` (default n = 2^19 rows, 2 reps; k = 4
columns, bits = 60, the statistics' shape at 2^19 joined rows). Two parties in this process
over the in-memory transport (which encodes and decodes every message, as gRPC would);
one warm-up on 256 rows sets up the IKNP sessions, then ``reps`` Gram matrices. CPU is
the process's (both parties and the crypto pool) over the reps, halved; bytes are the
encoded messages of both parties over the whole run, halved (the warm-up's included).
Use process CPU, not wall, on a shared machine; compare variants interleaved.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from mpc.runtime import codec, memory
from mpc.runtime.local import run_local
from mpc.ss import gram


class _Counting:
    """The codec with ``dumps`` counting the bytes it makes."""

    sent = 0

    @staticmethod
    def dumps(value):
        data = codec.dumps(value)
        _Counting.sent += len(data)
        return data

    loads = staticmethod(codec.loads)


def main(n: int = 1 << 19, reps: int = 2, k: int = 4, bits: int = 60) -> None:
    memory.codec = _Counting
    rng = np.random.default_rng(2)                       # test data only
    x = rng.integers(-(1 << 20), 1 << 20, (k, n)).astype(np.int64).view(np.uint64)
    s0 = rng.integers(0, 1 << 63, (k, n), dtype=np.uint64) * np.uint64(2)
    s1 = x - s0

    def job(ctx, s):
        gram.gram(ctx, s[:, :256], bits)
        walls = []
        for _ in range(reps):
            t0 = time.perf_counter()
            out = gram.gram(ctx, s, bits)
            walls.append(time.perf_counter() - t0)
        return out, walls

    c0 = time.process_time()
    res = run_local(job, ["a", "b"], args={"a": (s0,), "b": (s1,)}, triples="ot", timeout=3600)
    cpu = time.process_time() - c0
    want = x.view(np.int64).astype(object) @ x.view(np.int64).T.astype(object)
    got = (res["a"][0] + res["b"][0]).view(np.int64) >> np.int64(64 - bits)
    ok = np.array_equal(got.astype(object), want)
    print(f"gram k={k} n={n} bits={bits} ok={ok} cpu/party/rep {cpu / reps / 2:.2f} s "
          f"sent/party/rep {_Counting.sent / reps / 2 / 1e6:.0f} MB wall min {min(res['a'][1]):.2f} s "
          f"load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
