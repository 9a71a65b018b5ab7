"""Where a party's bucket-local CPU work runs: threads of this process, or its Ray cluster.

A protocol hands independent pieces of CPU-bound work (hash a chunk of items, evaluate the
OPRF on a chunk of rows, multiply a chunk of points by the party's key) to
``ctx.executor.map(fn, args, shared)``: ``fn`` is a module-level function of arrays, bytes
and ints that returns arrays (no Context, no sockets, no global state), called as
``fn(*a, *shared)`` for each tuple ``a`` of ``args``; results come back in order, with at
most ``window`` calls in flight, so memory stays bounded by the window whatever the input
size. The protocol keeps everything that talks to peers; the executor never sees the
network.

* :class:`InProcess` (the default, in ``run_local``, notebooks and every server without an
  ``[executor]`` table): a thread pool of this process (``GAOTIE_WORKERS`` threads). Threads,
  not processes (see :mod:`mpc.crypto.pool`): the work is AES through OpenSSL, libsodium
  and numpy, which release the GIL. Its own pool, not the crypto pool, because ``fn`` may
  itself use the crypto pool.
* :class:`RayExecutor` (``[executor] kind = "ray"``): the party server connects to *its own*
  Ray cluster (``ray.init(address=...)``) and runs each call as a Ray task; arrays travel
  through Ray's object store. Peers still talk only to the server. Functions are shipped by
  reference (module and name), so every node must run the same gaotie code: the executor
  checks a digest of the ``mpc`` and ``protocols`` sources on a worker against its own
  when it connects.

What this exposes: the arguments of ``fn`` include a party's secret keys (its OPRF key
material, its ECDH scalar) and its items' blocks; with Ray they pass through the cluster's
object store, task specifications and pickle, so the Ray cluster is part of the party's
own trust domain (docs/security.md, "Party compute on a Ray cluster"). Nothing a peer sent
reaches Ray other than numpy arrays the party's own codec decoded, and nothing from Ray
reaches a peer except what the protocol sends. Error messages name the function and the
cluster address, never arguments.
"""

from __future__ import annotations

import hashlib
import importlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from mpc.crypto import pool
from mpc.runtime.errors import GaotieError

KINDS = ("in-process", "ray")
LOCAL = "local"        # RayExecutor address: start a private Ray instance on this machine


class ExecutorError(GaotieError):
    """The executor could not run a task (cluster unreachable, worker lost, other code)."""


class Executor(Protocol):
    """Runs ``fn(*a, *shared)`` for each ``a`` of ``args``; see the module docstring."""

    kind: str
    overhead: int      # bytes it adds to the party server's own memory (charged by bucket plans)

    def map(self, fn: Callable[..., Any], args: Iterable[tuple], shared: tuple = (),
            window: int | None = None) -> Iterator[Any]:
        """The results of ``fn(*a, *shared)`` in the order of ``args``, at most ``window``
        calls in flight (``args`` is consumed lazily: item k + window - 1 is taken before
        result k is returned)."""
        ...

    def start(self) -> None:
        """Get ready (connect, start threads); ``map`` calls it when needed."""
        ...

    def close(self) -> None:
        """Release threads and connections."""
        ...


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


class InProcess:
    """Calls on a thread pool of this process (``workers`` threads; 1: in the calling thread)."""

    kind = "in-process"
    overhead = 0      # bytes this executor adds to the party server's memory

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or pool.workers()   # as many threads as the crypto pool
        if self.workers < 1:
            raise ValueError(f"an in-process executor needs at least 1 worker, got {self.workers}")
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"InProcess(workers={self.workers})"

    def start(self) -> None:
        with self._lock:
            if self._pool is None and self.workers > 1:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gaotie-exec")

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def map(self, fn: Callable[..., Any], args: Iterable[tuple], shared: tuple = (),
            window: int | None = None) -> Iterator[Any]:
        if self.workers == 1:
            return (fn(*a, *shared) for a in args)
        self.start()
        return self._map(fn, args, shared, window or 2 * self.workers)

    def _map(self, fn, args, shared, window) -> Iterator[Any]:
        pool = self._pool
        if pool is None:
            raise ExecutorError("the in-process executor is closed")
        inflight: deque[Future] = deque()
        try:
            for a in args:
                inflight.append(pool.submit(fn, *a, *shared))
                if len(inflight) >= window:
                    yield inflight.popleft().result()
            while inflight:
                yield inflight.popleft().result()
        finally:                              # the caller stopped early or a call failed
            for f in inflight:
                f.cancel()


def code_digest() -> str:
    """SHA-256 over the sources of the ``mpc`` and ``protocols`` packages next to this one:
    a Ray worker runs the functions it is sent by name, so it must hold the same code."""
    root = Path(__file__).resolve().parent.parent.parent
    h = hashlib.sha256()
    for package in ("mpc", "protocols"):
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()


def _probe(address: str, timeout: float = 10.0) -> None:
    """Fail fast if nothing listens at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(f"nothing answers at {address} ({type(exc).__name__})") from None


def _digest_after(seconds: float) -> str:
    """:func:`code_digest` after a pause (so that concurrent calls land on distinct workers)."""
    time.sleep(seconds)
    return code_digest()


class RayExecutor:
    """Calls as tasks on the party's Ray cluster at ``address`` (``"local"``: a private
    instance on this machine with ``num_cpus`` CPUs, for tests and notebooks).

    ``window``: tasks in flight per ``map`` (default: twice the cluster's CPUs). Each task
    reserves ``cpus_per_task`` CPUs and the task's process runs gaotie's crypto pool with
    that many threads. ``task_timeout`` (seconds) bounds the wait for one task's result.
    Connects on first use (or ``start()``, which the party server calls at startup).
    """

    kind = "ray"
    # the Ray driver in the party server (its core worker, object-store client and their
    # threads, and the results of a window of tasks in flight): 50-280 MiB above the same job
    # in process at 2^20-2^24 (bench/bench_scale.py), with margin; bucket plans charge it
    overhead = 320 << 20

    def __init__(self, address: str, *, num_cpus: int | None = None, window: int | None = None,
                 cpus_per_task: int = 1, task_timeout: float = 600.0) -> None:
        if not address:
            raise ValueError("a Ray executor needs an address (host:port of the cluster, or 'local')")
        if num_cpus is not None and address != LOCAL:
            raise ValueError("num_cpus applies only to address = 'local' (a cluster has its own CPUs)")
        self.address = address
        self.num_cpus = num_cpus
        self.window = window
        self.cpus_per_task = cpus_per_task
        self.task_timeout = task_timeout
        self._lock = threading.Lock()
        self._ray: Any = None
        self._remotes: dict[Callable[..., Any], Any] = {}
        self._owns_ray = False

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r})"

    def start(self) -> None:
        with self._lock:
            if self._ray is not None:
                return
            try:
                ray = importlib.import_module("ray")
            except ImportError:
                raise ExecutorError("[executor] kind = 'ray' needs Ray: pip install 'gaotie[ray]'") from None
            env = {"env_vars": {"GAOTIE_WORKERS": str(self.cpus_per_task)}}
            try:
                if self.address != LOCAL:
                    _probe(self.address)          # Ray itself retries an unreachable GCS for minutes
                if ray.is_initialized():          # this process already joined a cluster: that one
                    joined = ray.get_runtime_context().gcs_address
                    if self.address != LOCAL and joined != self.address:
                        raise RuntimeError(f"this process is already connected to the Ray cluster at {joined}")
                    self._owns_ray = False
                elif self.address == LOCAL:
                    ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                             runtime_env=env, namespace="gaotie")
                    self._owns_ray = True
                else:
                    ray.init(address=self.address, log_to_driver=False, runtime_env=env, namespace="gaotie")
                    self._owns_ray = True
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError...
                raise ExecutorError(f"cannot connect to the Ray cluster at {self.address!r}: "
                                    f"{type(exc).__name__}: {exc}") from None
            self._ray = ray
            if self.window is None:
                cpus = int(ray.cluster_resources().get("CPU", 1))
                self.window = max(2, 2 * cpus // max(1, self.cpus_per_task))
        self._check_code()

    def _check_code(self) -> None:
        """Every worker the window will use runs this code: one task per CPU slot, at once, so
        Ray starts those worker processes now rather than during the first job's buckets."""
        slots = max(1, min(self.window or 1, int(self._ray.cluster_resources().get("CPU", 1)) // self.cpus_per_task))
        remote = self._remote(_digest_after)
        digests = {self._get(ref, _digest_after) for ref in [remote.remote(0.5) for _ in range(slots)]}
        if digests != {code_digest()}:
            raise ExecutorError(f"the Ray workers at {self.address!r} run different gaotie code than this "
                                "server (digest of mpc/ and protocols/ differs): install the same version "
                                "on every node of the cluster")

    def close(self) -> None:
        with self._lock:
            ray, self._ray = self._ray, None
            self._remotes.clear()
        if ray is not None and self._owns_ray:
            ray.shutdown()

    def _remote(self, fn: Callable[..., Any]) -> Any:
        remote = self._remotes.get(fn)
        if remote is None:
            if "<locals>" in getattr(fn, "__qualname__", "<locals>") or fn.__module__ == "__main__":
                raise ValueError(f"{_qualname(fn)}: Ray tasks must be module-level functions of an "
                                 "installed module, shipped by name")
            remote = self._remotes[fn] = self._ray.remote(num_cpus=self.cpus_per_task, max_retries=0)(fn)
        return remote

    def _get(self, ref: Any, fn: Callable[..., Any]) -> Any:
        ray = self._ray
        try:
            return ray.get(ref, timeout=self.task_timeout)
        except ray.exceptions.RayTaskError as exc:   # fn raised on the worker: raise the same error
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise ExecutorError(f"Ray task {_qualname(fn)} failed on the cluster at {self.address!r}") from None
        except ray.exceptions.GetTimeoutError:
            ray.cancel(ref, force=True)
            raise ExecutorError(f"Ray task {_qualname(fn)} did not finish within {self.task_timeout:g} s "
                                f"on the cluster at {self.address!r}") from None
        except ray.exceptions.RayError as exc:       # worker or node lost, object lost...
            raise ExecutorError(f"Ray task {_qualname(fn)} on the cluster at {self.address!r}: "
                                f"{type(exc).__name__}") from None

    def map(self, fn: Callable[..., Any], args: Iterable[tuple], shared: tuple = (),
            window: int | None = None) -> Iterator[Any]:
        self.start()
        return self._map(fn, args, shared, window or self.window or 2)

    def _map(self, fn, args, shared, window) -> Iterator[Any]:
        ray = self._ray
        remote = self._remote(fn)
        refs = [ray.put(s) for s in shared]          # once per map, not once per task
        inflight: deque[Any] = deque()
        try:
            for a in args:
                inflight.append(remote.remote(*a, *refs))
                if len(inflight) >= window:
                    yield self._get(inflight.popleft(), fn)
            while inflight:
                yield self._get(inflight.popleft(), fn)
        finally:
            for ref in inflight:
                ray.cancel(ref)


_default: InProcess | None = None
_default_lock = threading.Lock()


def default() -> InProcess:
    """The process's shared in-process executor (what a Context gets unless told otherwise)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = InProcess()
        return _default


def make(kind: str = "in-process", **options: Any) -> InProcess | RayExecutor:
    """An executor by kind: ``"in-process"`` (option ``workers``) or ``"ray"`` (``address``,
    ``num_cpus``, ``window``, ``cpus_per_task``, ``task_timeout``)."""
    if kind == "in-process":
        return InProcess(options.get("workers"))
    if kind == "ray":
        return RayExecutor(**options)
    raise ValueError(f"unknown executor kind {kind!r}; use one of {', '.join(KINDS)}")


def chunks(n: int, size: int) -> list[slice]:
    """``range(n)`` cut into slices of ``size`` (the last may be shorter)."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


__all__ = ["KINDS", "LOCAL", "Executor", "ExecutorError", "InProcess", "RayExecutor", "chunks",
           "code_digest", "default", "make"]
