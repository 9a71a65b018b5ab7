"""run_local: run one SPMD protocol for every party inside this process.

Each party is a thread with its own Context. With ``transport="memory"`` values go
through in-process mailboxes; with ``transport="grpc"`` every party gets its own gRPC
server on a free loopback port and values really cross gRPC. If any party raises, it
tells every other party at once, so the whole job fails within seconds and
:class:`~mpc.runtime.errors.JobFailed` names the party that caused it.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Any

from mpc.runtime.context import Context
from mpc.runtime.errors import JobFailed, JobTimeout, PeerFailed, culprit, describe
from mpc.runtime.executor import Executor
from mpc.runtime.helpers import default_options, helper_parties, registered_helpers, resolve_options, start_checks
from mpc.runtime.progress import ProgressDisplay

_GRACE = 2.0


def run_party(ctx: Context, body: Callable[[Context], Any]) -> Any:
    """Run one party's share of a job: the body, then tell helpers it is done and flush.

    On error, every other party of the job is told at once (so nobody waits for the
    timeout) and the exception propagates.
    """
    try:
        result = body(ctx)
        if ctx.rank is not None:
            for helper in ctx.helpers:
                ctx.send(helper, {"op": "done"})
        ctx.finish()
        return result
    except BaseException as exc:
        # A peer's failure is passed on naming that peer, so everyone learns who caused it.
        ctx.abort(str(exc) if isinstance(exc, PeerFailed) else describe(exc), culprit(ctx.party, exc))
        raise


def _check_parties(parties: Sequence[str], helpers: Sequence[str]) -> list[str]:
    parties = list(parties)
    if not parties or not all(isinstance(p, str) and p for p in parties):
        raise ValueError(f"parties must be a non-empty list of non-empty names, got {parties!r}")
    if len(set(parties)) != len(parties):
        raise ValueError(f"duplicate party names in {parties}")
    clash = set(parties) & set(helpers)
    if clash:
        raise ValueError(f"party name {sorted(clash)[0]!r} is reserved for a helper party")
    return parties


def _per_party(name: str, value: Mapping[str, Any] | None, parties: list[str], default: Any) -> dict:
    value = dict(value or {})
    unknown = set(value) - set(parties)
    if unknown:
        raise ValueError(f"{name} names unknown parties {sorted(unknown)}")
    return {p: value.get(p, default) for p in parties}


def run_local(fn: Callable[..., Any], parties: Sequence[str],
              args: Mapping[str, Sequence[Any]] | None = None,
              kwargs: Mapping[str, Mapping[str, Any]] | None = None,
              transport: str | Callable[[list[str]], Any] = "memory", timeout: float = 60.0,
              progress: bool = False, executor: Executor | None = None,
              **runtime_options: Any) -> dict[str, Any]:
    """Run ``fn(ctx, *args[party], **kwargs[party])`` for every party; return their results.

    Args:
        fn: the SPMD protocol function.
        parties: party names in rank order.
        args: per party, a tuple of positional arguments.
        kwargs: per party, a dict of keyword arguments.
        transport: ``"memory"``, ``"grpc"`` (real gRPC servers on loopback), or a function
            that makes an in-memory transport for the job's parties (e.g. the view recorder
            of :mod:`mpc.runtime.views`).
        timeout: seconds for the whole job; a silent peer fails the job at this point.
        progress: show the first party's phases on stderr as the protocol reports them (a
            bar per phase on a terminal, one line per phase elsewhere).
        executor: where every party's bucket-local CPU work runs (:mod:`mpc.runtime.executor`;
            for example ``RayExecutor("local")``); the in-process thread pool by default.
        runtime_options: visible to protocols as ``ctx.options`` (e.g. ``triples``,
            ``frac_bits``); ``max_chunk_bytes`` and ``max_value_bytes`` tune the gRPC
            transport. An option left ``"auto"`` (the default ``triples``) resolves to the
            helper that serves it, which run_local always starts in-process: ``triples``
            means the dealer here unless the caller passes ``triples="ot"`` (two parties,
            no helper) or another source.

    Raises:
        JobFailed: some party raised; names the party and its exception.
    """
    options = resolve_options({**default_options(), **runtime_options}, parties, registered_helpers())
    helpers = helper_parties(options)
    helper_names = [h for h, _ in helpers]
    parties = _check_parties(parties, helper_names)
    if len(parties) < 2:
        helpers, helper_names = [], []
    start_checks(fn, options, parties)
    args_by = _per_party("args", args, parties, ())
    kwargs_by = _per_party("kwargs", kwargs, parties, {})
    everyone = parties + helper_names
    job_id = secrets.token_hex(8)

    if transport == "memory" or callable(transport):
        from mpc.runtime.memory import MemoryTransport
        net = transport(everyone) if callable(transport) else MemoryTransport(everyone)
        net.open(job_id)
        transports = {p: net for p in everyone}
        cleanup = lambda: net.close(job_id)  # noqa: E731
    elif transport == "grpc":
        transports, cleanup = _start_grpc(everyone, job_id, options)
    else:
        raise ValueError(f"unknown transport {transport!r}; use 'memory' or 'grpc'")

    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    display = ProgressDisplay(f"{getattr(fn, '__name__', 'job')} {job_id}") if progress else None

    def party_thread(party: str, body: Callable[[Context], Any]) -> None:
        ctx = Context(party, parties, job_id, transports[party], timeout, options, helper_names, executor)
        if display is not None and party == parties[0]:
            ctx.on_progress(display.update)
        try:
            results[party] = run_party(ctx, body)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            errors[party] = exc

    bodies: dict[str, Callable[[Context], Any]] = {
        p: (lambda ctx, p=p: fn(ctx, *args_by[p], **kwargs_by[p])) for p in parties}
    bodies.update(dict(helpers))
    threads = [threading.Thread(target=party_thread, args=(p, bodies[p]), daemon=True,
                                name=f"gaotie-{p}") for p in everyone]
    try:
        for t in threads:
            t.start()
        end = time.monotonic() + timeout + _GRACE
        for t in threads:
            t.join(max(end - time.monotonic(), 0.0))
        stuck = [p for p, t in zip(everyone, threads, strict=True) if t.is_alive()]
        if display is not None and not errors and not stuck:
            display.finish()
    finally:
        cleanup()
        if display is not None:
            display.close()
    if errors:
        raise _root_cause(errors, job_id)
    if stuck:
        raise JobTimeout(f"job {job_id}: parties {stuck} did not finish within {timeout}s")
    return {p: results[p] for p in parties}


def _root_cause(errors: dict[str, BaseException], job_id: str) -> JobFailed:
    """The error of the party that failed first-hand (others only saw it fail)."""
    for party, exc in errors.items():
        if not isinstance(exc, PeerFailed):
            err = JobFailed(party, describe(exc), job_id)
            err.__cause__ = exc
            return err
    party, exc = next(iter(errors.items()))
    assert isinstance(exc, PeerFailed)
    return JobFailed(exc.party, exc.reason, job_id)


def _serve_party(party: str, address: str, job_id: str, options: Mapping[str, Any], size: int):
    """``party``'s plaintext gRPC server bound to ``address`` ("127.0.0.1:0": any free
    port), its mailbox open for ``job_id`` before the server starts (a fast peer's first
    message finds the job); ``size`` parties in the job size its thread pool. Returns
    (server, mailbox, bound port, chunk bytes). The one server setup of run_local's gRPC
    transport and of :func:`run_party_process`."""
    import grpc

    from mpc.runtime import allocator
    from mpc.runtime.grpc_transport import (
        DEFAULT_CHUNK_BYTES,
        DEFAULT_MAX_VALUE_BYTES,
        ExchangeServicer,
        add_party_servicer,
        server_options,
    )
    from mpc.runtime.mailbox import Mailbox

    allocator.tune()  # before gRPC starts its threads (see mpc.runtime.allocator)
    chunk = int(options.get("max_chunk_bytes", DEFAULT_CHUNK_BYTES))
    cap = int(options.get("max_value_bytes", DEFAULT_MAX_VALUE_BYTES))
    mailbox = Mailbox()
    mailbox.open(job_id)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max(8, 2 * size)), options=server_options(chunk))
    add_party_servicer(ExchangeServicer(party, mailbox, cap), server)
    port = server.add_insecure_port(address)
    if not port:
        raise ValueError(f"party {party!r} cannot listen on {address!r}")
    server.start()
    return server, mailbox, port, chunk


def _start_grpc(everyone: list[str], job_id: str, options: Mapping[str, Any]):
    from mpc.runtime.grpc_transport import GrpcTransport

    servers, mailboxes, addresses, chunk = {}, {}, {}, 0
    for p in everyone:
        servers[p], mailboxes[p], port, chunk = _serve_party(p, "127.0.0.1:0", job_id, options, len(everyone))
        addresses[p] = f"127.0.0.1:{port}"
    transports = {p: GrpcTransport(p, addresses, mailboxes[p], max_chunk_bytes=chunk) for p in everyone}

    def cleanup() -> None:
        for p in everyone:
            mailboxes[p].close(job_id)
            transports[p].close()
        for server in servers.values():
            server.stop(grace=None)

    return transports, cleanup


def run_party_process(fn: Callable[..., Any], party: str, parties: Sequence[str],
                      addresses: Mapping[str, str], job_id: str, args: Sequence[Any] = (),
                      kwargs: Mapping[str, Any] | None = None, timeout: float = 60.0,
                      executor: Executor | None = None, **runtime_options: Any) -> Any:
    """Run ONE party of ``fn`` in this process, over gRPC to peers in other processes.

    What: the one-party counterpart of :func:`run_local` with ``transport="grpc"``. This
    process starts only ``party``'s gRPC server, bound to ``addresses[party]``
    (``"host:port"``), and reaches every other party at its address; every process of the
    job calls this with the same ``parties``, ``addresses``, ``job_id`` and options. The
    result is ``fn(ctx, *args, **kwargs)`` of this party. ``party`` may also be a helper
    (e.g. ``"dealer"``) that the job's options call for: it then runs the helper's function.

    Why: parties that share one interpreter (run_local) share its GIL, so a benchmark of two
    CPU-bound parties there measures the interpreter more than the protocol; a real
    deployment runs one party server per company. This runs each party in its own OS
    process without the configuration, TLS and job submission of a party server
    (:mod:`mpc.server`), e.g. for benchmarks (``bench/bench_ot_triples.py``) and tests.

    Security: as run_local's gRPC transport: plaintext gRPC without TLS or peer
    authentication, so for loopback or a trusted network only; a deployment across
    companies uses party servers with mutual TLS. Received values are decoded by the codec
    (nothing is unpickled) and checked by :func:`~mpc.runtime.grpc_transport.receive_stream`.
    Options resolve as on a party server: ``"auto"`` picks a helper only if ``addresses``
    names it (otherwise the fallback, e.g. ``triples="ot"`` for two parties).

    Raises:
        JobFailed: this party or a peer failed; names the party that caused it.
        ValueError: bad party lists, or a party or needed helper without an address.
    """
    from mpc.runtime.grpc_transport import GrpcTransport
    from mpc.runtime.helpers import helper_function

    available = [h for h in addresses if h not in parties]
    options = resolve_options({**default_options(), **runtime_options}, parties, available)
    helper_names = [h for h, _ in helper_parties(options)] if len(parties) >= 2 else []
    parties = _check_parties(parties, helper_names)
    everyone = parties + helper_names
    missing = [p for p in everyone if p not in addresses]
    if missing:
        raise ValueError(f"no address for {missing} (addresses name {sorted(addresses)})")
    if party not in everyone:
        raise ValueError(f"party {party!r} is not one of {everyone}")
    if party in parties:
        start_checks(fn, options, parties)
        body: Callable[[Context], Any] = lambda ctx: fn(ctx, *args, **dict(kwargs or {}))  # noqa: E731
    else:
        body = helper_function(party)

    server, mailbox, _, chunk = _serve_party(party, addresses[party], job_id, options, len(everyone))
    transport = GrpcTransport(party, {p: addresses[p] for p in everyone}, mailbox, max_chunk_bytes=chunk)
    try:
        ctx = Context(party, parties, job_id, transport, timeout, options, helper_names, executor)
        try:
            return run_party(ctx, body)
        except BaseException as exc:
            raise _root_cause({party: exc}, job_id) from exc
    finally:
        mailbox.close(job_id)
        transport.close()
        # In-flight streams (a peer's last half-close) may end; then the port is free.
        server.stop(grace=_GRACE).wait()
