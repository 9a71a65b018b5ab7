"""Receive buffers for large values, recycled once nothing refers to them any more.

Why: a received value is reassembled into one fresh buffer, and the arrays decoded from
it are views of that buffer (no second copy). Fresh memory is the expensive part: the
kernel zeroes every page on first touch, and on the 2-core loopback benchmark that
zeroing cost more CPU than all the copies of the data put together (``perf``: 20-40 % of
the cycles in ``clear_page_erms``). Protocols receive arrays of the same sizes round
after round and drop them after use, so the memory of a dropped value is kept (up to
``max_idle_bytes``) and handed to the next value of a fitting size. The gRPC transport
empties the pool when a party finishes a job, so idle buffers do not outlive the job
whose rounds they serve (and do not add to the peak memory of later work).

How: :func:`take` returns a uint8 array over pooled storage, placed so that a chosen
offset into it is aligned. The array does not own its memory and its base is not an
array, so every array numpy or the codec derives from it (slices, views, ``frombuffer``
of a memoryview of it) keeps *it* alive; a ``weakref.finalize`` on it puts the storage
back into the pool only when the last of those is gone. The caller must overwrite the
whole buffer before anyone reads it (the transport checks that a value's chunks fill
exactly its announced size): a recycled buffer still holds an earlier value's bytes.
Only the storage slice of ``take``'s size is reachable from the returned array, and
storage is reused only within the receiving party's process, which held those earlier
bytes anyway.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

MIN_POOLED_BYTES = 1 << 20  # smaller buffers come from numpy directly (cheap to allocate)
MAX_IDLE_BYTES = 128 << 20  # idle storage kept for reuse, per process
_SLACK = 4  # a stored buffer serves a request when at most 1/_SLACK of it would be unused


class BufferPool:
    """Thread-safe pool of idle storage for large receive buffers (see the module docstring)."""

    def __init__(self, max_idle_bytes: int = MAX_IDLE_BYTES, min_bytes: int = MIN_POOLED_BYTES) -> None:
        self.max_idle_bytes = max_idle_bytes
        self.min_bytes = min_bytes
        self._lock = threading.RLock()  # a finalizer may run inside take (garbage collection)
        self._idle: list[np.ndarray] = []  # oldest first
        self._idle_bytes = 0
        self.reused = 0  # buffers served from the pool (for tests and benchmarks)

    def take(self, nbytes: int, align: int = 64, offset: int = 0) -> np.ndarray:
        """An uninitialised uint8 array of ``nbytes`` whose byte ``offset`` sits at an address
        that is a multiple of ``align``."""
        if nbytes < self.min_bytes:
            raw = np.empty(nbytes + align, np.uint8)
            start = -(raw.ctypes.data + offset) % align
            return raw[start:start + nbytes]
        need = nbytes + align
        storage = self._pop(need)
        if storage is None:
            storage = np.empty(need, np.uint8)
        start = -(storage.ctypes.data + offset) % align
        # A view through a memoryview: its base is not an ndarray, so numpy's views of it
        # keep it (not the storage) as their base, and it lives exactly as long as they do.
        buf = np.frombuffer(memoryview(storage), np.uint8, nbytes, start)
        done = weakref.finalize(buf, self._put, storage)
        done.atexit = False
        return buf

    def _pop(self, need: int) -> np.ndarray | None:
        with self._lock:
            best = None
            for i, s in enumerate(self._idle):
                if need <= s.nbytes <= need + need // _SLACK and (best is None or s.nbytes < self._idle[best].nbytes):
                    best = i
            if best is None:
                return None
            storage = self._idle.pop(best)
            self._idle_bytes -= storage.nbytes
            self.reused += 1
            return storage

    def _put(self, storage: np.ndarray) -> None:
        with self._lock:
            if storage.nbytes > self.max_idle_bytes:
                return
            self._idle.append(storage)
            self._idle_bytes += storage.nbytes
            while self._idle_bytes > self.max_idle_bytes:
                self._idle_bytes -= self._idle.pop(0).nbytes

    def clear(self) -> None:
        """Drop every idle buffer (its memory goes back to the allocator)."""
        with self._lock:
            self._idle.clear()
            self._idle_bytes = 0

    @property
    def idle_bytes(self) -> int:
        return self._idle_bytes


POOL = BufferPool()
"""The process's pool, shared by every gRPC receiver in it."""
