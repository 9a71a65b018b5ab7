"""Process-wide tuning of glibc's malloc for a party that streams large values over gRPC.

Why: every chunk of a value passes through a few short-lived buffers of about
``max_chunk_bytes`` (the serialized envelope, gRPC's copy of it, gRPC's read buffers and
the received message). With glibc's defaults those are often handed back to the kernel
when freed (heap trimming, ``mmap`` for large blocks, one arena per thread so memory
freed by one gRPC thread does not serve the next), and the next chunk page-faults fresh
zeroed pages in. On the 2-core loopback benchmark (``bench/bench_transport.py``) that
was 5-30 thousand page faults per 150 MB two-way exchange and most of the kernel time;
with the settings below, applied before gRPC starts its threads, it is a few dozen to a
few hundred, and the process's CPU time per byte drops by about a quarter to a third,
for raw gRPC and gaotie alike (they share the process).

Settings (``mallopt``): blocks under 32 MiB come from the heap (``M_MMAP_THRESHOLD``,
glibc's largest), at most 256 MiB of free heap is kept before trimming
(``M_TRIM_THRESHOLD``), and threads made after the call share one arena (``M_ARENA_MAX``;
arenas made before stay), so memory one gRPC thread frees serves the next chunk whichever
thread allocates it. This keeps freed memory in the process for reuse instead of raising
the peak with per-thread arenas; the price is one malloc lock (the GIL serializes most
allocations anyway). Set ``GAOTIE_TUNE_MALLOC=0`` to leave the allocator alone. A no-op off
glibc.

``release()`` hands the free memory back between the phases of a job under a memory budget
(after a bucketed join, before its statistics): the free heap the settings above keep for
reuse (up to 256 MiB) and the free pages of Arrow's memory pool (its mimalloc keeps what a
streamed read freed), so that the next phase's large arrays, which are mapped afresh, do not
come on top of them.
"""

from __future__ import annotations

import ctypes
import os
import threading

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
SETTINGS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 256 << 20, _M_ARENA_MAX: 1}

_lock = threading.Lock()
_state: dict[str, bool] = {}


def tune() -> bool:
    """Apply :data:`SETTINGS` once per process; whether they are in effect."""
    with _lock:
        if "tuned" not in _state:
            _state["tuned"] = _apply()
        return _state["tuned"]


def _apply() -> bool:
    if os.environ.get("GAOTIE_TUNE_MALLOC", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (glibc only: musl and others differ)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return all(mallopt(param, value) == 1 for param, value in SETTINGS.items())


def release() -> None:
    """Return free memory to the system: Arrow's pool (``release_unused``) and glibc's heap
    (``malloc_trim``); a no-op where either is missing. Frees nothing in use."""
    import sys
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
