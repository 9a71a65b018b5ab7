"""gRPC transport: each party runs a gRPC server; values stream between them as chunks.

Sending: a value is encoded by the codec (TypeError at the sender for unknown types) as
a list of buffers (array data as views), cut into chunks of at most ``max_chunk_bytes``,
and each chunk is copied once, into its serialized Envelope, before ``send`` returns (so
the caller may change its arrays at once); envelopes are queued on one client stream per
(job, receiver); a bounded queue gives back-pressure and lets computation overlap with
sending. Receiving: envelopes are parsed without copying their payload;
:func:`receive_stream` checks every envelope (job open, sender is who the TLS certificate
says, receiver is us, sequence and chunk numbers in order, claimed size under
``max_value_bytes`` before allocating), copies each payload into one buffer of the
announced size (recycled memory for large values: :mod:`mpc.runtime.buffers`), decodes
it (large arrays are views of that buffer) and delivers into the party's
:class:`~mpc.runtime.mailbox.Mailbox`. A broken stream in either direction fails the job
locally at once, so nobody waits for a dead peer until the timeout.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
import numpy as np

from mpc._proto.gaotie.v1 import party_pb2, party_pb2_grpc
from mpc.runtime import allocator, buffers, codec
from mpc.runtime.errors import GaotieError, JobTimeout, PeerFailed, ProtocolViolation
from mpc.runtime.mailbox import Mailbox
from mpc.runtime.wire import WireError, fields, varint

log = logging.getLogger(__name__)

DEFAULT_CHUNK_BYTES = 2 << 20
DEFAULT_MAX_VALUE_BYTES = 1 << 30
DEFAULT_MAX_UNREAD_BYTES = 4 << 30
_ENVELOPE_OVERHEAD = 64 << 10
_QUEUE_CHUNKS = 16
_WINDOW_CHUNKS = 8
_EXCHANGE = "/gaotie.v1.Party/Exchange"
_ALIGN = 64  # the data of a received top-level array starts at a multiple of this address


def grpc_options(max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[tuple[str, Any]]:
    """Channel/server options sized for envelopes of ``max_chunk_bytes`` payload."""
    limit = max_chunk_bytes + _ENVELOPE_OVERHEAD
    return [("grpc.max_send_message_length", limit),
            ("grpc.max_receive_message_length", limit),
            # HTTP/2 stream window from the start (BDP probing only grows it later): room for
            # several chunks in flight, measured ~1.5x faster one-way on loopback than the default.
            ("grpc.http2.lookahead_bytes", min(_WINDOW_CHUNKS * limit, (1 << 31) - 1)),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            # Servers must accept those keepalive pings during long silent computations
            # (e.g. Paillier work between messages), or they answer GOAWAY too_many_pings.
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.http2.max_ping_strikes", 0)]


def server_options(max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[tuple[str, Any]]:
    """:func:`grpc_options` for a server, which listens on its port alone: gRPC's default
    SO_REUSEPORT would let a second server bind the same port and take half its calls."""
    return [*grpc_options(max_chunk_bytes), ("grpc.so_reuseport", 0)]


class _Malformed:
    """Stands for an Exchange request that is not a valid Envelope."""


_MALFORMED = _Malformed()


class _Envelope:
    """A parsed gaotie.v1.Envelope whose payload is a view of the received bytes."""

    __slots__ = ("job_id", "sender", "receiver", "seq", "chunk_index", "last", "total_size", "payload",
                 "abort", "abort_party")

    def __init__(self) -> None:
        self.job_id = self.sender = self.receiver = self.abort = self.abort_party = ""
        self.seq = self.chunk_index = self.total_size = 0
        self.last = False
        self.payload = memoryview(b"")


# Envelope field number -> (attribute, wire type): party.proto
_ENVELOPE_FIELDS = {1: ("job_id", 2), 2: ("sender", 2), 3: ("receiver", 2), 4: ("seq", 0),
                    5: ("chunk_index", 0), 6: ("last", 0), 7: ("total_size", 0), 8: ("payload", 2),
                    9: ("abort", 2), 10: ("abort_party", 2)}
_STRINGS = frozenset(("job_id", "sender", "receiver", "abort", "abort_party"))


def _parse_envelope(data: bytes) -> _Envelope | _Malformed:
    """Parse a serialized Envelope as protobuf would (unknown fields skipped, last value of
    a repeated field wins), except that the payload is not copied."""
    mv = memoryview(data).cast("B")
    env = _Envelope()
    try:
        for number, wire, value in fields(mv, 0, len(mv)):
            name, expected = _ENVELOPE_FIELDS.get(number, (None, wire))
            if name is None:
                continue
            if wire != expected:
                return _MALFORMED
            if name == "payload":
                value = mv[value[0]:value[1]]
            elif name in _STRINGS:
                value = str(mv[value[0]:value[1]], "utf-8")
            elif name == "last":
                value = bool(value)
            elif name == "chunk_index":
                value &= 0xFFFF_FFFF  # uint32
            setattr(env, name, value)
    except (WireError, UnicodeDecodeError):
        return _MALFORMED
    return env


def _envelope_head(**header: Any) -> bytes:
    """A serialized Envelope with the ``header`` fields and no payload (appended after it:
    protobuf fields may come in any order)."""
    return party_pb2.Envelope(**header).SerializeToString()


def _chunks(parts: list, size: int, chunk: int) -> Iterator[list]:
    """Cut the concatenation of ``parts`` (``size`` bytes) into lists of views of at most
    ``chunk`` bytes, without copying; one empty chunk for an empty value."""
    if size == 0:
        yield []
        return
    out: list = []
    room = chunk
    for part in parts:
        view = memoryview(part).cast("B")
        while len(view):
            take = view[:room]
            out.append(take)
            view = view[len(take):]
            room -= len(take)
            if room == 0:
                yield out
                out, room = [], chunk
    if out:
        yield out


def add_party_servicer(servicer: party_pb2_grpc.PartyServicer, server: grpc.Server) -> None:
    """Like the generated ``add_PartyServicer_to_server``, except that Exchange requests that
    do not parse reach :func:`receive_stream`, which refuses them. (When grpc's own
    deserializer fails inside a client stream, grpc 1.85 never finishes the call: a stranger's
    junk would pin it until the process dies and make ``server.stop`` hang.)"""
    from google.protobuf import message_factory

    service = party_pb2.DESCRIPTOR.services_by_name["Party"]
    kinds = {(False, False): grpc.unary_unary_rpc_method_handler,
             (True, False): grpc.stream_unary_rpc_method_handler,
             (False, True): grpc.unary_stream_rpc_method_handler,
             (True, True): grpc.stream_stream_rpc_method_handler}
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        reply = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = kinds[(method.client_streaming, method.server_streaming)](
            getattr(servicer, method.name),
            request_deserializer=_parse_envelope if method.name == "Exchange" else request.FromString,
            response_serializer=reply.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def peer_identity(context: grpc.ServicerContext) -> str | None:
    """The party name in the client's TLS certificate (common name), or None without TLS."""
    names = context.auth_context().get("x509_common_name")
    return names[0].decode() if names else None


class _Impersonation(ProtocolViolation):
    """A stream whose sender is not the party its certificate names."""


def receive_stream(envelopes: Iterator[party_pb2.Envelope], context: grpc.ServicerContext,
                   mailbox: Mailbox, party: str, max_value_bytes: int,
                   require_identity: bool) -> party_pb2.ExchangeReply:
    """Serve one Exchange stream: validate, reassemble and deliver values into ``mailbox``.

    The first envelope must come from a party of an open job, as itself (its certificate),
    to us; a stream that fails those checks is refused without touching the job, so a
    stranger or impersonator cannot fail other parties' jobs. Once trusted, any later
    violation or a broken stream fails the job, naming the sender.
    """
    identity = peer_identity(context)
    job_id = sender = None
    trusted = False
    buf: np.ndarray | None = None
    total = seq = filled = 0
    next_chunk = 0
    delivered = 0
    clean_end = False
    try:
        for env in envelopes:
            if isinstance(env, _Malformed):
                raise ProtocolViolation("malformed message (not a gaotie.v1.Envelope)")
            if not trusted:
                if require_identity and identity != env.sender:
                    raise _Impersonation(f"certificate of {identity!r} cannot send as {env.sender!r}")
                if env.receiver != party:
                    raise ProtocolViolation(f"message for {env.receiver!r} reached {party!r}")
                if not mailbox.is_open(env.job_id, env.sender):
                    raise ProtocolViolation(f"message for unknown or finished job {env.job_id}")
                job_id, sender, trusted = env.job_id, env.sender, True
            elif env.job_id != job_id or env.sender != sender or env.receiver != party:
                raise ProtocolViolation("job, sender or receiver changed within one stream")
            if env.abort:
                mailbox.fail(job_id, PeerFailed(sender, env.abort, env.abort_party))
                continue
            if env.chunk_index == 0:
                if buf is not None:
                    raise ProtocolViolation("new value started before the last one ended")
                mailbox.check_seq(job_id, sender, party, env.seq)
                if env.total_size > max_value_bytes:
                    raise ProtocolViolation(f"value of {env.total_size} bytes exceeds the cap "
                                            f"of {max_value_bytes} bytes")
                total, seq, next_chunk, filled = env.total_size, env.seq, 0, 0
                buf = _value_buffer(total, env.payload)
            elif buf is None or env.chunk_index != next_chunk or env.seq != seq:
                raise ProtocolViolation("chunk out of order")
            n = len(env.payload)
            if filled + n > total:
                raise ProtocolViolation("value longer than its announced size")
            buf[filled:filled + n] = np.frombuffer(env.payload, np.uint8)
            filled += n
            next_chunk += 1
            if env.last:
                if filled != total:
                    raise ProtocolViolation("value shorter than its announced size")
                value = codec.loads(buf, copy=False)  # large arrays are views of buf: no copy
                buf = None
                mailbox.put(job_id, sender, party, value, total)
                delivered += 1
        clean_end = True
    except _Impersonation as exc:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
    except (ProtocolViolation, codec.CodecError) as exc:
        if trusted:
            mailbox.fail(job_id, ProtocolViolation(f"party {sender!r} sent a bad message: {exc}"))
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    except Exception:  # the stream broke: the sender died or the connection dropped
        log.debug("exchange stream from %r for job %s broke", sender, job_id)
    if not clean_end and trusted:
        mailbox.fail(job_id, PeerFailed(sender, "connection lost during the job"), weak=True)
    return party_pb2.ExchangeReply(values_received=delivered)


def _value_buffer(total: int, head: memoryview) -> np.ndarray:
    """An uninitialised buffer of ``total`` bytes (already checked against the cap) for one
    value, placed so that the data of a top-level array (its offset read from the first
    chunk, ``head``) starts at an aligned address and can be used in place."""
    return buffers.POOL.take(total, _ALIGN, codec.array_data_offset(head))


_RENEW_SLACK = 1.0   # seconds a deadline must move before a stream is reopened
_STREAM_GRACE = 2.0  # seconds a stream's call outlives the job's deadline (see _OutStream)


class _OutStream:
    """One client stream carrying every value from us to one receiver in one job."""

    def __init__(self, channel: grpc.Channel, job_id: str, sender: str, receiver: str,
                 deadline: float, max_chunk_bytes: int, on_broken: Callable[[GaotieError], None],
                 seq: int = 0) -> None:
        self.job_id, self.sender, self.receiver = job_id, sender, receiver
        self.deadline = deadline
        self._queue: queue.Queue = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._seq = seq
        self._chunk = max_chunk_bytes
        self._closing = False
        # The call outlives the job's deadline by _STREAM_GRACE: when a silent party makes the
        # job time out, every party's wait for it (which names it) fires first, not the expiry
        # of a stream to a live party waiting on it too (which would name that party).
        timeout = max(deadline - time.monotonic(), 0.1) + _STREAM_GRACE
        # Requests are serialized Envelopes already (see send): no request serializer.
        exchange = channel.stream_unary(_EXCHANGE, request_serializer=None,
                                        response_deserializer=party_pb2.ExchangeReply.FromString)
        self._future = exchange.future(self._requests(), timeout=timeout, wait_for_ready=True)
        self._future.add_done_callback(lambda f: self._done(f, on_broken))

    def _requests(self) -> Iterator[bytes]:
        while (env := self._queue.get()) is not None:
            yield env

    def _failure(self, future: grpc.Future) -> GaotieError | None:
        """Why the stream ended early: the job's deadline passed, or the receiver is gone."""
        try:
            exc = future.exception()
        except grpc.FutureCancelledError:
            exc = "cancelled"
        if exc is None:
            return None
        code = exc.code().name if isinstance(exc, grpc.RpcError) else str(exc)
        if code == "DEADLINE_EXCEEDED":
            return JobTimeout(f"job {self.job_id}: the job timeout passed while sending to {self.receiver!r}",
                              party=self.receiver)
        if code in ("INVALID_ARGUMENT", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED"):
            return PeerFailed(self.receiver, f"refused a message from {self.sender!r}: {exc.details()}")
        return PeerFailed(self.receiver, f"unreachable or disconnected (stream to {self.receiver!r}: {code})")

    def _done(self, future: grpc.Future, on_broken: Callable[[GaotieError], None]) -> None:
        if self._closing:
            return
        error = self._failure(future)
        if error is not None:
            on_broken(error)

    def _put(self, item: bytes | None, deadline: float) -> None:
        while True:
            if self._future.done() and item is not None:
                raise self._failure(self._future) or PeerFailed(self.receiver, "unreachable or disconnected")
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if time.monotonic() > deadline:
                    raise JobTimeout(f"party {self.receiver!r} did not take messages before "
                                     f"the job timeout (job {self.job_id})", party=self.receiver) from None

    def send(self, parts: list, size: int, deadline: float) -> None:
        """Queue one value, encoded as ``parts`` (``size`` bytes), as numbered chunks."""
        base = dict(job_id=self.job_id, sender=self.sender, receiver=self.receiver, seq=self._seq)
        n_chunks = max(1, -(-size // self._chunk))
        for i, payload in enumerate(_chunks(parts, size, self._chunk)):
            head = _envelope_head(chunk_index=i, last=i == n_chunks - 1,
                                  total_size=size if i == 0 else 0, **base)
            n = sum(len(p) for p in payload)
            # The payload (field 8) appended to the other fields: the one copy of the data.
            self._put(b"".join([head, b"\x42", varint(n), *payload]), deadline)
        self._seq += 1

    def abort(self, reason: str, origin: str = "") -> None:
        env = _envelope_head(job_id=self.job_id, sender=self.sender, receiver=self.receiver,
                             abort=reason, abort_party=origin)
        try:
            self._put(env, time.monotonic() + 2.0)
        except Exception:  # best effort: the peer may be gone already
            pass

    def close(self, deadline: float) -> None:
        """Half-close the stream and wait (until ``deadline``) for the receiver to take it."""
        self._closing = True
        try:
            self._put(None, deadline)
            self._future.result(timeout=max(deadline - time.monotonic(), 0.1))
        except Exception:  # the receiver may have finished the job already; nothing to do
            pass


class GrpcTransport:
    """Outgoing side of a party: channels to peers, one stream per (job, receiver)."""

    def __init__(self, party: str, addresses: dict[str, str], mailbox: Mailbox,
                 credentials: Callable[[str], grpc.ChannelCredentials | None] | None = None,
                 max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> None:
        allocator.tune()  # keep chunk-sized buffers in the process (see mpc.runtime.allocator)
        self.party = party
        self.addresses = dict(addresses)
        self.mailbox = mailbox
        self._credentials = credentials or (lambda peer: None)
        self._chunk = max_chunk_bytes
        self._lock = threading.Lock()
        self._channel_lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}
        self._streams: dict[tuple[str, str], _OutStream] = {}

    def stub(self, peer: str) -> party_pb2_grpc.PartyStub:
        """A stub on the (cached) channel to ``peer``, with this party's credentials."""
        with self._channel_lock:
            return party_pb2_grpc.PartyStub(self._channel(peer))

    def _channel(self, peer: str) -> grpc.Channel:
        channel = self._channels.get(peer)
        if channel is None:
            if peer not in self.addresses:
                raise ValueError(f"no address known for party {peer!r}")
            creds = self._credentials(peer)
            options = grpc_options(self._chunk)
            if creds is None:
                channel = grpc.insecure_channel(self.addresses[peer], options=options)
            else:
                options.append(("grpc.ssl_target_name_override", peer))
                channel = grpc.secure_channel(self.addresses[peer], creds, options=options)
            self._channels[peer] = channel
        return channel

    def _stream(self, job_id: str, receiver: str, deadline: float, renew: bool = True) -> _OutStream:
        """The job's stream to ``receiver``. A gRPC call's timeout is fixed when it opens, so
        when the job's deadline has moved on (``Context.renew_deadline``: a bucketed job's
        timeout runs per bucket) the old stream is closed (once the receiver has taken all
        of it) and a new one carries on with the next sequence number."""
        with self._lock:
            stream = self._streams.get((job_id, receiver))
            if stream is None or not renew or deadline <= stream.deadline + _RENEW_SLACK:
                stream = stream or self._open(job_id, receiver, deadline, 0)
                return stream
            del self._streams[(job_id, receiver)]
        stream.close(stream.deadline)     # FIFO: the receiver has all of it before the next one
        with self._lock:
            return self._open(job_id, receiver, deadline, stream._seq)

    def _open(self, job_id: str, receiver: str, deadline: float, seq: int) -> _OutStream:
        def broken(error: GaotieError) -> None:
            self.mailbox.fail(job_id, error)
        with self._channel_lock:
            channel = self._channel(receiver)
        stream = _OutStream(channel, job_id, self.party, receiver, deadline, self._chunk, broken, seq=seq)
        self._streams[(job_id, receiver)] = stream
        return stream

    def send(self, job_id: str, sender: str, receiver: str, value: Any, deadline: float) -> None:
        parts, size = codec.dump_parts(value)  # TypeError here, before anything is queued
        self._stream(job_id, receiver, deadline).send(parts, size, deadline)

    def recv(self, job_id: str, sender: str, receiver: str, deadline: float) -> Any:
        return self.mailbox.get(job_id, sender, receiver, deadline)

    def abort(self, job_id: str, sender: str, receivers: Sequence[str], reason: str, origin: str = "") -> None:
        for r in receivers:
            try:
                self._stream(job_id, r, time.monotonic() + 5.0, renew=False).abort(reason, origin)
            except Exception:
                pass
        self.finish(job_id, sender, time.monotonic() + 2.0)

    def finish(self, job_id: str, sender: str, deadline: float) -> None:
        with self._lock:
            streams = [s for (j, _), s in self._streams.items() if j == job_id]
            for s in streams:
                del self._streams[(job_id, s.receiver)]
        for s in streams:
            s.close(deadline)
        buffers.POOL.clear()  # idle receive buffers live no longer than the job that used them

    def close(self) -> None:
        """Close every channel (and with them any stream still open)."""
        with self._lock, self._channel_lock:
            channels, self._channels = list(self._channels.values()), {}
            self._streams.clear()
        for channel in channels:
            channel.close()


class ExchangeServicer(party_pb2_grpc.PartyServicer):
    """A Party service that only serves Exchange: enough for :func:`mpc.run_local`."""

    def __init__(self, party: str, mailbox: Mailbox, max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
                 require_identity: bool = False) -> None:
        self.party = party
        self.mailbox = mailbox
        self.max_value_bytes = max_value_bytes
        self.require_identity = require_identity

    def Exchange(self, request_iterator, context):  # noqa: N802 (gRPC method name)
        return receive_stream(request_iterator, context, self.mailbox, self.party,
                              self.max_value_bytes, self.require_identity)
