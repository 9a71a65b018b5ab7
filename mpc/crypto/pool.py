"""One process pool per process for CPU-bound crypto (Paillier, scalar multiplication).

Created lazily with the ``spawn`` start method: gRPC threads and ``fork`` do not mix.
Workers import only what the submitted function needs. ``map_chunks`` splits a batch
over the workers and falls back to the calling thread for small batches, where the cost
of pickling arguments to a worker would exceed the work. (Arguments to the pool are this
process's own data, never anything from the wire: pickling across our own workers is
safe, pickling from peers is what gaotie forbids.)
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def workers() -> int:
    """Number of worker processes (``GAOTIE_WORKERS`` or the CPU count)."""
    return max(1, int(os.environ.get("GAOTIE_WORKERS", os.cpu_count() or 1)))


def get_pool() -> ProcessPoolExecutor:
    """The shared spawn-based pool, started on first use."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=workers(),
                                        mp_context=multiprocessing.get_context("spawn"))
            atexit.register(shutdown)
        return _pool


def shutdown() -> None:
    """Stop the pool's workers (called at exit)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def map_chunks(fn: Callable[[Sequence[Any]], list[T]], items: Sequence[Any],
               min_parallel: int = 256, *extra: Any) -> list[T]:
    """``fn(chunk, *extra)`` over ``items`` split into one chunk per worker, concatenated.

    ``fn`` must be a module-level function (picklable by reference). Batches smaller than
    ``min_parallel`` run in the calling thread.
    """
    n = len(items)
    k = workers()
    if n < min_parallel or k == 1:
        return fn(items, *extra)
    size = -(-n // k)
    chunks = [items[i:i + size] for i in range(0, n, size)]
    out: list[T] = []
    for part in get_pool().map(fn, chunks, *([e] * len(chunks) for e in extra)):
        out.extend(part)
    return out
