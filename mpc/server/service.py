"""The party server: the gRPC Party service, health and reflection, and ``serve``.

Who may call what (identities come from mutual-TLS client certificates):
- ``Exchange``: any party of an open job, as itself only.
- ``Submit``, ``Status``, ``Cancel``, ``Datasets``: this party's own users (its own
  certificate). ``Datasets`` is also open to peers: it lists names, columns and
  policies, never rows.
- ``Join``/``Start``: the party server that submitted the job, which must be a computing
  party of it (never a helper) and allowed by this party's ``allowed_requesters``.

A server configured ``insecure = true`` (plaintext, loopback only, for tests) has no
identities: every caller counts as this party itself.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from mpc import tables
from mpc._proto.gaotie.v1 import party_pb2, party_pb2_grpc
from mpc.runtime import allocator, checkpoint, codec
from mpc.runtime.errors import describe
from mpc.runtime.executor import ExecutorError
from mpc.runtime.grpc_transport import (
    GrpcTransport,
    _chunks,
    add_party_servicer,
    peer_identity,
    receive_stream,
    server_options,
)
from mpc.runtime.mailbox import Mailbox
from mpc.server import tls
from mpc.server.config import PartyConfig
from mpc.server.data import DataStore
from mpc.server.jobs import JobManager
from protocols import registry

log = logging.getLogger(__name__)
_CONTROL_TIMEOUT = 15.0
_CONTROL_WORKERS = 32


class PartyService(party_pb2_grpc.PartyServicer):
    def __init__(self, config: PartyConfig) -> None:
        import mpc.paillier  # noqa: F401 - registers the Paillier value kinds before peers send any
        import mpc.tables  # noqa: F401 - registers the table value kind

        self.config = config
        self.party = config.party
        registry.names()  # import the built-in protocols now, not in the first jobs' threads at once
        self.mailbox = Mailbox(max_open_jobs=config.limits.max_open_jobs,
                               max_unread_bytes=config.limits.max_unread_bytes)
        creds = (lambda peer: tls.channel_credentials(config.tls)) if config.tls else None
        self.transport = GrpcTransport(config.party, config.addresses, self.mailbox, creds,
                                       config.limits.max_chunk_bytes)
        self.data = DataStore(config.party, config.datasets, config.workdir, config.limits.memory,
                              config.limits.bucket_join_sizes, config.limits.bucket_psi_sizes)
        self.executor = config.executor.make()  # where bucket-local CPU work runs ([executor])
        self.jobs = JobManager(config.party, self.transport, self.mailbox, self.data, config, self.executor)

    # -- identity --------------------------------------------------------------------
    def _caller(self, context: grpc.ServicerContext) -> str:
        """The calling party (certificate name), or this party itself on an insecure server."""
        if self.config.insecure:
            return self.party
        who = peer_identity(context)
        if who is None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        return who

    def _require(self, context: grpc.ServicerContext, allowed: set[str]) -> str:
        """The caller, if it is one of ``allowed``; an insecure server has no identities to check."""
        who = self._caller(context)
        if not self.config.insecure and who not in allowed:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{who!r} may not call this on {self.party!r}")
        return who

    # -- party to party --------------------------------------------------------------
    def Exchange(self, request_iterator, context):  # noqa: N802
        return receive_stream(request_iterator, context, self.mailbox, self.party,
                              self.config.limits.max_value_bytes, not self.config.insecure)

    def Join(self, request, context):  # noqa: N802
        caller = self._caller(context)
        if not self.config.insecure and caller != request.requester:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{caller!r} cannot join jobs for {request.requester!r}")
        if request.requester not in self.config.peers:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{request.requester!r} is not a peer of {self.party!r}")
        try:
            params = codec.decode(request.params)
            self.jobs.prepare(request.job_id, request.protocol, params, list(request.parties),
                              request.requester, request.timeout)
        except Exception as exc:  # noqa: BLE001 - a refusal, reported to the requester
            self.jobs.refuse(request.job_id, request.protocol, None, request.requester, describe(exc))
            return party_pb2.JobReply(job_id=request.job_id, state="refused", error=_on(self.party, exc),
                                      failed_party=self.party)
        return party_pb2.JobReply(job_id=request.job_id, state="prepared")

    def Start(self, request, context):  # noqa: N802
        try:
            job = self.jobs.get(request.job_id)
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        self._require(context, {job.requester})
        try:
            self.jobs.start(request.job_id)
        except ValueError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return party_pb2.JobReply(job_id=request.job_id, state="running")

    # -- clients ---------------------------------------------------------------------
    def Submit(self, request, context):  # noqa: N802
        self._require(context, {self.party})
        job_id = request.job_id or secrets.token_hex(8)
        try:
            params = codec.decode(request.params)
            job = self.jobs.prepare(job_id, request.protocol, params, list(request.parties), self.party,
                                    request.timeout)
        except Exception as exc:  # noqa: BLE001 - bad request or own refusal
            self.jobs.refuse(job_id, request.protocol, None, self.party, describe(exc))
            return party_pb2.JobReply(job_id=job_id, state="refused", error=_on(self.party, exc),
                                      failed_party=self.party)
        others = [p for p in job.parties + job.helpers if p != self.party]
        join = party_pb2.JobRequest(job_id=job_id, protocol=request.protocol, params=request.params,
                                    requester=self.party, parties=job.parties + job.helpers,
                                    timeout=job.timeout)
        prepared: list[str] = []
        for peer in others:
            error, culprit = self._call(peer, "Join", join)
            if error:
                for p in prepared:
                    self._call(p, "Cancel", party_pb2.JobQuery(job_id=job_id, reason=error, failed_party=culprit))
                self.jobs.cancel(job_id, error, state="refused", failed_party=culprit)
                return party_pb2.JobReply(job_id=job_id, state="refused", error=error, failed_party=culprit)
            prepared.append(peer)
        for peer in others:
            error, culprit = self._call(peer, "Start", party_pb2.JobQuery(job_id=job_id))
            if error:
                for p in others:
                    self._call(p, "Cancel", party_pb2.JobQuery(job_id=job_id, reason=error, failed_party=culprit))
                self.jobs.cancel(job_id, error, state="failed", failed_party=culprit)
                return party_pb2.JobReply(job_id=job_id, state="failed", error=error, failed_party=culprit)
        self.jobs.start(job_id)
        return party_pb2.JobReply(job_id=job_id, state="running")

    def _call(self, peer: str, method: str, request: Any) -> tuple[str, str]:
        """Call a control RPC on a peer; return (an error message, the party that caused it),
        or ('', '') on success."""
        try:
            stub = self.transport.stub(peer)
            reply = getattr(stub, method)(request, timeout=_CONTROL_TIMEOUT)
        except grpc.RpcError as exc:
            return f"party {peer!r} is unreachable ({exc.code().name}): {exc.details()}", peer
        if reply.state in ("refused", "failed"):
            return reply.error or f"party {peer!r} refused", reply.failed_party or peer
        return "", ""

    def Status(self, request, context):  # noqa: N802
        self._require(context, {self.party})
        try:
            job = self.jobs.get(request.job_id)
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        p = job.progress
        reply = party_pb2.JobStatus(job_id=job.job_id, state=job.state, error=job.error, protocol=job.spec.name,
                                    failed_party=job.failed_party, progress=p.fraction, phase=p.phase,
                                    done=p.done, total=p.total, unit=p.unit)
        if job.state == "done" and not request.omit_result:
            reply.result.CopyFrom(codec.encode(_loaded(job.result)))   # old clients: inline, under the cap
        return reply

    def Result(self, request, context):  # noqa: N802
        """A done job's result to this party's own certificate, in chunks under the chunk cap:
        the serialized Value, or, to a client that accepts files, a result file's bytes as
        they are on disk (``format = "parquet"``; the file is never loaded)."""
        self._require(context, {self.party})
        try:
            job = self.jobs.get(request.job_id)
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        if job.state != "done":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"job {job.job_id} is {job.state}, not done")
        cap = self.config.limits.max_chunk_bytes
        size = min(request.max_chunk_bytes or cap, cap)
        if request.accept_files and isinstance(job.result, tables.ResultFile):
            yield from _file_chunks(job.job_id, job.result, size, context)
            return
        with tables.compact_text():                                 # text columns as U arrays
            # the encoding as buffers, array data as views of the result's arrays (the same
            # bytes as codec.encode(...).SerializeToString(), without two whole copies: a
            # 2^23-row PSI result cost 1.3 GB more that way)
            parts, total = codec.dump_parts(_loaded(job.result))
        n_chunks = max(1, -(-total // size))
        for i, payload in enumerate(_chunks(parts, total, size)):
            yield party_pb2.ResultChunk(job_id=job.job_id, total_size=total, chunk_index=i,
                                        last=i == n_chunks - 1, payload=b"".join(payload))

    def Cancel(self, request, context):  # noqa: N802
        try:
            job = self.jobs.get(request.job_id)
        except KeyError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        who = self._require(context, {self.party, job.requester})
        reason = f"cancelled by {who!r}" + (f": {request.reason}" if request.reason else "")
        job = self.jobs.cancel(request.job_id, reason, failed_party=request.failed_party)
        return party_pb2.JobReply(job_id=job.job_id, state=job.state)

    def Datasets(self, request, context):  # noqa: N802
        if request.party and request.party != self.party:
            self._require(context, {self.party})
            if request.party not in self.config.peers:
                context.abort(grpc.StatusCode.NOT_FOUND, f"{self.party!r} has no peer {request.party!r}")
            try:
                return self.transport.stub(request.party).Datasets(party_pb2.DatasetsRequest(),
                                                                    timeout=_CONTROL_TIMEOUT)
            except grpc.RpcError as exc:
                context.abort(grpc.StatusCode.UNAVAILABLE,
                              f"party {request.party!r} is unreachable ({exc.code().name})")
        self._require(context, {self.party, *self.config.peers})
        return party_pb2.DatasetsReply(datasets=codec.encode({self.party: self.data.describe()}))


def _loaded(result: Any) -> Any:
    """A job's result as a value: a result file (a bucketed PSI's) is read only when fetched."""
    return result.load() if isinstance(result, tables.ResultFile) else result


def _file_chunks(job_id: str, result: tables.ResultFile, size: int,
                 context: grpc.ServicerContext) -> Iterator[party_pb2.ResultChunk]:
    """The bytes of a result file in chunks of ``size``, read from one open handle: the file
    may be renamed or removed meanwhile (the handle keeps it), and ``total_size`` is the size
    of what is read, never of another file put at the path. Memory: one chunk."""
    try:
        f = open(result.path, "rb")  # noqa: SIM115 - closed below, also when the client goes away
    except OSError as exc:
        context.abort(grpc.StatusCode.NOT_FOUND, f"the result file of job {job_id} is gone ({exc.strerror})")
    with f:
        total = os.fstat(f.fileno()).st_size
        n_chunks = max(1, -(-total // size))
        for i in range(n_chunks):
            payload = f.read(min(size, total - i * size))
            if len(payload) != min(size, total - i * size):     # truncated in place: never sent short
                context.abort(grpc.StatusCode.DATA_LOSS, f"the result file of job {job_id} shrank while read")
            yield party_pb2.ResultChunk(job_id=job_id, total_size=total, chunk_index=i, last=i == n_chunks - 1,
                                        payload=payload, format="parquet")


def _on(party: str, exc: BaseException) -> str:
    text = describe(exc)
    return text if f"{party!r}" in text else f"party {party!r} refused: {text}"


def build_server(config: PartyConfig) -> tuple[grpc.Server, PartyService, health.HealthServicer]:
    """A started-ready (not yet started) gRPC server for ``config``, bound to its address."""
    allocator.tune()  # before gRPC starts its threads (see mpc.runtime.allocator)
    service = PartyService(config)
    # Every open job holds one incoming Exchange stream (and with it a worker thread) per peer
    # for its whole run: size the pool for that, plus control calls, or concurrent jobs starve
    # each other until their deadlines. Idle workers are never started.
    workers = config.limits.max_open_jobs * max(1, len(config.peers)) + _CONTROL_WORKERS
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers),
                         options=server_options(config.limits.max_chunk_bytes))
    add_party_servicer(service, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (party_pb2.DESCRIPTOR.services_by_name["Party"].full_name,
             health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    try:
        if config.insecure:  # the config checked that the address is loopback
            port = server.add_insecure_port(config.listen)
        else:
            port = server.add_secure_port(config.listen, tls.server_credentials(config.tls))
    except RuntimeError as exc:
        raise OSError(f"cannot listen on {config.listen}: address in use or not available") from exc
    if port == 0:
        raise OSError(f"cannot listen on {config.listen}: address in use or not available")
    return server, service, health_servicer


def serve(config: PartyConfig, ready: threading.Event | None = None) -> None:
    """Run the party server until SIGTERM/SIGINT."""
    server, service, health_servicer = build_server(config)
    config.workdir.mkdir(parents=True, exist_ok=True)
    if config.results_dir.is_dir():  # temp files of results being written when a server was killed
        for partial in config.results_dir.glob(".*.tmp"):
            partial.unlink(missing_ok=True)
    for key in checkpoint.sweep(config.checkpoints_dir, config.limits.checkpoint_retention):
        log.info("removed stale checkpoint %s (older than [limits] checkpoint_retention)", key)
    try:   # connect to the party's Ray cluster now: a wrong address fails the start, not a job
        service.executor.start()
    except Exception as exc:
        service.transport.close()
        raise ExecutorError(f"{config.source or config.party}: [executor]: {exc}") from None
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("party %s serving on %s (tls %s, executor %s)", config.party, config.listen,
             "off (insecure)" if config.insecure else "on", service.executor.kind)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if ready is not None:
        ready.set()
    stop.wait()
    health_servicer.enter_graceful_shutdown()
    server.stop(grace=2.0).wait()
    service.transport.close()
    service.executor.close()
