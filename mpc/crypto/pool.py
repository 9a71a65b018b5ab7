"""One thread pool per process for CPU-bound crypto (Paillier, scalar multiplication).

Threads, not processes: a process pool with ``spawn`` re-imports the user's ``__main__``
(every plain script without a main guard breaks), and ``fork`` does not mix with gRPC's
threads. Threads parallelise because the work submitted here runs in calls that release
the GIL: libsodium through cffi, gmpy2's ``powmod_*_list``, numpy and pyca AES. Work that
holds the GIL still runs correctly here, one thread at a time.

``map_chunks`` splits a batch over the workers and runs small batches in the calling
thread, where the hand-off would cost more than the work.
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def workers() -> int:
    """Number of worker threads (``GAOTIE_WORKERS`` or the CPU count)."""
    return max(1, int(os.environ.get("GAOTIE_WORKERS", os.cpu_count() or 1)))


def get_pool() -> ThreadPoolExecutor:
    """The shared crypto thread pool, started on first use."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="gaotie-crypto")
            atexit.register(shutdown)
        return _pool


def shutdown() -> None:
    """Stop the pool's threads (called at exit)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def map_chunks(fn: Callable[..., list[T]], items: Sequence[Any],
               min_parallel: int = 256, *extra: Any) -> list[T]:
    """``fn(chunk, *extra)`` over ``items`` split into one chunk per worker, concatenated.

    Batches smaller than ``min_parallel`` run in the calling thread. Chunks run on the
    pool's threads; the calling thread waits for them (it must not be a pool thread).
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
