"""Security: bad bytes at the port, malformed envelopes, strangers and impersonators, replays.

The Exchange-level tests run a real TLS gRPC server in this process (the same
``receive_stream`` a party server uses, over a real mutual-TLS socket) with a Mailbox
whose jobs the test opens and closes, so every case is deterministic. The cluster
tests hit real ``gaotie serve`` processes. Certificate checks on ``Status`` (plaintext
client, no certificate, other CA, another party's certificate) are in test_cluster.py.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from concurrent import futures

import grpc
import numpy as np
import pandas as pd
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc import JobFailed
from mpc._proto.gaotie.v1 import party_pb2, party_pb2_grpc
from mpc.cluster import LocalCluster, write_toml
from mpc.runtime import codec
from mpc.runtime.errors import PeerFailed, ProtocolViolation
from mpc.runtime.grpc_transport import ExchangeServicer, add_party_servicer, grpc_options
from mpc.runtime.mailbox import Mailbox
from mpc.server.config import ConfigError, load_config, parse_config
from mpc.server.tls import channel_credentials, make_deployment, server_credentials

CAP = 1 << 20


# -- an in-process party "a" with mutual TLS ------------------------------------------------
class Party:
    def __init__(self, tmp_path):
        self.files = make_deployment(tmp_path / "certs", ["a", "b", "c"])
        self.mailbox = Mailbox(max_open_jobs=4, max_unread_bytes=3 * CAP)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=grpc_options())
        add_party_servicer(
            ExchangeServicer("a", self.mailbox, max_value_bytes=CAP, require_identity=True), self.server)
        self.port = self.server.add_secure_port("127.0.0.1:0", server_credentials(self.files["a"]))
        self.server.start()
        self.address = f"127.0.0.1:{self.port}"

    def channel(self, as_party: str) -> grpc.Channel:
        return grpc.secure_channel(self.address, channel_credentials(self.files[as_party]),
                                   options=[("grpc.ssl_target_name_override", "a")])

    def exchange(self, as_party: str, envelopes: list[party_pb2.Envelope]) -> party_pb2.ExchangeReply:
        with self.channel(as_party) as channel:
            return party_pb2_grpc.PartyStub(channel).Exchange(iter(envelopes), timeout=10)

    def raw_exchange(self, as_party: str, messages: list[bytes]):
        """Exchange with arbitrary bytes as the request messages (not necessarily protobuf)."""
        with self.channel(as_party) as channel:
            call = channel.stream_unary("/gaotie.v1.Party/Exchange", request_serializer=lambda b: b,
                                        response_deserializer=party_pb2.ExchangeReply.FromString)
            return call(iter(messages), timeout=10)


@pytest.fixture
def party(tmp_path):
    p = Party(tmp_path)
    yield p
    p.server.stop(grace=None)


def value_envelopes(job_id, sender, value, seq=0, receiver="a", chunk=1000, data=None):
    data = codec.dumps(value) if data is None else data
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    return [party_pb2.Envelope(job_id=job_id, sender=sender, receiver=receiver, seq=seq, chunk_index=i,
                               last=i == len(chunks) - 1, total_size=len(data) if i == 0 else 0, payload=c)
            for i, c in enumerate(chunks)]


def rejected(party, as_party, envelopes) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        party.exchange(as_party, envelopes)
    return info.value


def test_a_good_stream_is_delivered(party):
    party.mailbox.open("j1")
    value = np.arange(5000, dtype=np.int64)
    envs = value_envelopes("j1", "b", value) + value_envelopes("j1", "b", "second", seq=1)
    assert party.exchange("b", envs).values_received == 2
    np.testing.assert_array_equal(party.mailbox.get("j1", "b", "a", time.monotonic() + 1), value)
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == "second"


def test_impersonation_is_rejected_and_does_not_disturb_the_job(party):
    """A real certificate of party c sending as b: refused, and the job of a and b goes on."""
    party.mailbox.open("j1")
    err = rejected(party, "c", value_envelopes("j1", "b", 42))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'c'" in err.details() and "'b'" in err.details()
    # Nothing was delivered and the job was not failed: b's real message still gets through.
    party.exchange("b", value_envelopes("j1", "b", 7))
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == 7
    # The same for an impersonated abort notice.
    err = rejected(party, "c", [party_pb2.Envelope(job_id="j1", sender="b", receiver="a", abort="fake")])
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    party.exchange("b", value_envelopes("j1", "b", 8, seq=1))
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == 8


def test_messages_for_unknown_or_finished_jobs_are_rejected(party):
    err = rejected(party, "b", value_envelopes("nope", "b", 1))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown or finished job" in err.details()
    party.mailbox.open("j1")
    party.exchange("b", value_envelopes("j1", "b", 1))
    party.mailbox.close("j1")
    err = rejected(party, "b", value_envelopes("j1", "b", 2, seq=1))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown or finished job" in err.details()
    with pytest.raises(Exception, match="already finished"):
        party.mailbox.open("j1")  # a finished job id cannot be reopened (and then replayed into)


def test_a_party_outside_the_job_cannot_send_to_it(party):
    party.mailbox.open("j1", ["a", "b"])
    err = rejected(party, "c", value_envelopes("j1", "c", 1))  # c's own certificate, as itself
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown or finished job" in err.details()
    party.exchange("b", value_envelopes("j1", "b", 2))  # the job is not disturbed
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == 2


def test_replayed_sequence_numbers_are_rejected(party):
    party.mailbox.open("j1")
    first = value_envelopes("j1", "b", "first")
    party.exchange("b", first)
    err = rejected(party, "b", first)  # the same envelopes again, on a new stream
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "out of order" in err.details()
    # The sender itself broke the protocol, so the job fails, naming it.
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == "first"
    with pytest.raises(ProtocolViolation, match="party 'b' sent a bad message"):
        party.mailbox.get("j1", "b", "a", time.monotonic() + 1)
    # Replay within one stream, and a skipped sequence number, on fresh jobs.
    party.mailbox.open("j2")
    envs = value_envelopes("j2", "b", 1)
    assert rejected(party, "b", envs + envs).code() == grpc.StatusCode.INVALID_ARGUMENT
    party.mailbox.open("j3")
    assert rejected(party, "b", value_envelopes("j3", "b", 1, seq=5)).code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("case", ["over_cap", "huge_claim", "longer_than_announced", "shorter_than_announced",
                                  "chunk_skipped", "chunk_without_start", "receiver_changed",
                                  "wrong_receiver", "garbage_value", "unknown_extension", "bad_array"])
def test_malformed_envelopes_get_a_clear_error(party, case):
    party.mailbox.open("j1")
    big = value_envelopes("j1", "b", b"x" * 5000)
    E = party_pb2.Envelope  # noqa: N806
    cases = {
        "over_cap": ([E(job_id="j1", sender="b", receiver="a", total_size=CAP + 1, payload=b"x")], "exceeds the cap"),
        # a claim no machine could allocate: refused by the cap check, before any allocation
        "huge_claim": ([E(job_id="j1", sender="b", receiver="a", total_size=1 << 62, payload=b"x")],
                       "exceeds the cap"),
        "longer_than_announced": ([E(job_id="j1", sender="b", receiver="a", total_size=10, payload=b"x" * 11,
                                    last=True)], "longer than its announced size"),
        "shorter_than_announced": ([E(job_id="j1", sender="b", receiver="a", total_size=10, payload=b"x",
                                     last=True)], "shorter than its announced size"),
        "chunk_skipped": ([big[0], big[2]], "out of order"),
        "chunk_without_start": ([big[1]], "out of order"),
        "receiver_changed": ([big[0], E(job_id="j1", sender="b", receiver="c", chunk_index=1)], "changed"),
        "wrong_receiver": (value_envelopes("j1", "b", 1, receiver="c"), "reached 'a'"),
        "garbage_value": ([E(job_id="j1", sender="b", receiver="a", total_size=4, payload=b"\xff\xff\xff\xff",
                             last=True)], "malformed value"),
        "unknown_extension": (value_envelopes("j1", "b", None, data=_raw_value(extension={"kind": "os.system"})),
                              "unknown extension"),
        "bad_array": (value_envelopes("j1", "b", None, data=_raw_value(
            array={"dtype": "<i8", "shape": [3], "data": b"1"})), "needs 24 bytes"),
    }
    envelopes, message = cases[case]
    err = rejected(party, "b", envelopes)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in err.details()
    if case == "wrong_receiver":  # refused before the stream is trusted: the job is untouched
        party.exchange("b", value_envelopes("j1", "b", 5))
        assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == 5
        return
    # b's own certificate sent it: b broke the protocol, the job fails naming b
    with pytest.raises(ProtocolViolation, match="party 'b' sent a bad message"):
        party.mailbox.get("j1", "b", "a", time.monotonic() + 1)


def _raw_value(**fields) -> bytes:
    """Value bytes the codec would never produce itself."""
    from mpc._proto.gaotie.v1 import value_pb2
    return value_pb2.Value(**fields).SerializeToString()


def test_non_protobuf_messages_are_refused(party):
    party.mailbox.open("j1")
    for junk in (b"\xff" * 40, os.urandom(200), b"\x0a\xff\xff\xff\xff\x0f"):
        with pytest.raises(grpc.RpcError) as info:
            party.raw_exchange("b", [junk])
        assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
    # the job is still fine and the server still works
    party.exchange("b", value_envelopes("j1", "b", 3))
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == 3
    # junk after a good first envelope: b broke the protocol within its own job
    good = value_envelopes("j1", "b", 4, seq=1)[0].SerializeToString()
    with pytest.raises(grpc.RpcError) as info:
        party.raw_exchange("b", [good, b"\xff" * 40])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == 4
    with pytest.raises(ProtocolViolation, match="party 'b' sent a bad message: malformed message"):
        party.mailbox.get("j1", "b", "a", time.monotonic() + 1)
    # grpc's own deserializer failing inside a stream used to leave the call open for good,
    # so the server never stopped; now it stops at once.
    assert party.server.stop(grace=None).wait(10)


def test_abort_from_the_real_peer_fails_the_job_naming_it(party):
    party.mailbox.open("j1")
    party.exchange("b", [party_pb2.Envelope(job_id="j1", sender="b", receiver="a", abort="disk full")])
    with pytest.raises(PeerFailed, match="party 'b' failed: disk full"):
        party.mailbox.get("j1", "b", "a", time.monotonic() + 1)


def test_unread_bytes_cap(party):
    """A peer cannot pile up values the protocol has not read: at most max_unread_bytes per job."""
    party.mailbox.open("j1")
    blob = b"x" * 900_000  # about 0.86 of CAP per value; the job's cap is 3 CAP
    deadline = time.monotonic() + 1

    def send(seq):
        return value_envelopes("j1", "b", blob, seq=seq, chunk=1 << 16)

    party.exchange("b", send(0) + send(1))
    assert party.mailbox.get("j1", "b", "a", deadline) == blob  # reading frees room
    party.exchange("b", send(2) + send(3))
    err = rejected(party, "b", send(4))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "max_unread_bytes" in err.details()
    for _ in range(3):  # what was accepted is still there, then the job fails naming b
        assert party.mailbox.get("j1", "b", "a", deadline) == blob
    with pytest.raises(ProtocolViolation, match="party 'b' sent a bad message: .*max_unread_bytes"):
        party.mailbox.get("j1", "b", "a", deadline)


def test_grpc_message_over_the_chunk_limit_is_refused(party):
    party.mailbox.open("j1")
    huge = party_pb2.Envelope(job_id="j1", sender="b", receiver="a", total_size=3 << 20, payload=b"x" * (3 << 20),
                              last=True)
    err = rejected(party, "b", [huge])
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    party.exchange("b", value_envelopes("j1", "b", 1))
    assert party.mailbox.get("j1", "b", "a", time.monotonic() + 1) == 1


def test_open_job_cap(party):
    for i in range(4):
        party.mailbox.open(f"j{i}")
    with pytest.raises(Exception, match=r"too many open jobs \(limit 4\)"):
        party.mailbox.open("j5")
    party.mailbox.close("j0")
    party.mailbox.open("j5")


# -- real party servers -------------------------------------------------------------------
def _serving(cluster, party) -> bool:
    channel = cluster._channel(party)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()


def _send_raw(address: str, data: bytes, tls_files=None) -> None:
    """Send ``data`` on a raw TCP connection, or inside TLS with a party's real certificate."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        if tls_files is not None:
            ctx = ssl.create_default_context(cafile=str(tls_files.ca))
            ctx.check_hostname = False
            ctx.load_cert_chain(str(tls_files.cert), str(tls_files.key))
            ctx.set_alpn_protocols(["h2"])
            sock = ctx.wrap_socket(sock)
        try:
            sock.sendall(data)
            sock.settimeout(0.5)
            while sock.recv(4096):
                pass
        except (OSError, ssl.SSLError):
            pass


_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _frame(kind: int, flags: int, stream: int, payload: bytes, length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    return n.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


MALFORMED_HTTP2 = [
    b"",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    _PREFACE + os.urandom(300),
    _PREFACE + _frame(4, 0, 0, b"") + _frame(1, 4, 1, os.urandom(50)),           # HEADERS with junk HPACK
    _PREFACE + _frame(4, 0, 0, b"") + _frame(0, 0, 1, b"x" * 10, length=1 << 23),  # DATA, lying length
    _PREFACE + _frame(4, 0, 0, b"\x00\x04\xff\xff\xff\xff"),                      # SETTINGS window too big
    _PREFACE + _frame(8, 0, 0, b"\x7f\xff\xff\xff") * 3,                          # WINDOW_UPDATE overflow
    _PREFACE + _frame(4, 0, 0, b"") + _frame(3, 0, 99, b"\x00\x00\x00\x08"),     # RST on idle stream
]


@pytest.fixture(scope="module")
def plain_cluster():
    frames = {p: pd.DataFrame({"id": [f"id{i}" for i in range(k, k + 50)], "v": np.arange(50.0) + k})
              for p, k in (("a", 0), ("b", 20))}
    with LocalCluster(["a", "b"], tls=False, datasets={p: {"t": f} for p, f in frames.items()},
                      dealer=False) as cluster:
        cluster.frames = frames
        yield cluster


def _expected_sum(cluster):
    return float(sum(f.v.sum() for f in cluster.frames.values()))


@pytest.mark.parametrize("tls", [False, True])
def test_random_bytes_and_malformed_http2_at_the_port(plain_cluster, tls_cluster, tls):
    cluster = tls_cluster if tls else plain_cluster
    rng = np.random.default_rng(1)
    blobs = MALFORMED_HTTP2 + [rng.bytes(int(n)) for n in rng.integers(1, 5000, 10)]
    for party in ("bank", "retailer") if tls else ("a", "b"):
        for blob in blobs:
            _send_raw(cluster.addresses[party], blob)  # in place of a TLS handshake, if TLS is on
            if tls:  # and inside a real mutual-TLS connection, at the HTTP/2 layer
                _send_raw(cluster.addresses[party], blob, cluster.tls_files[party])
        assert cluster.processes[party].poll() is None
        assert _serving(cluster, party)
    if not tls:
        with cluster.client("a") as client:
            assert client.run("demo.secure_sum", columns=["a.t.v", "b.t.v"], progress=False) == \
                pytest.approx(_expected_sum(cluster))


def test_malformed_protobuf_at_a_party_server(plain_cluster):
    address = plain_cluster.addresses["b"]
    with grpc.insecure_channel(address) as channel:
        for method in ("Exchange", "Submit", "Join", "Status"):
            for junk in (b"\xff" * 10, os.urandom(100)):
                if method == "Exchange":
                    call = channel.stream_unary(f"/gaotie.v1.Party/{method}", request_serializer=lambda b: b,
                                                response_deserializer=lambda b: b)
                    request = iter([junk])
                else:
                    call = channel.unary_unary(f"/gaotie.v1.Party/{method}", request_serializer=lambda b: b,
                                               response_deserializer=lambda b: b)
                    request = junk
                with pytest.raises(grpc.RpcError) as info:
                    call(request, timeout=5)
                assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        # Well-formed protobuf, nonsense inside: a params Value of no kind, an unknown job.
        stub = party_pb2_grpc.PartyStub(channel)
        reply = stub.Submit(party_pb2.JobRequest(protocol="demo.secure_sum"), timeout=10)
        assert reply.state == "refused" and "party 'b'" in reply.error
        with pytest.raises(grpc.RpcError) as info:
            stub.Status(party_pb2.JobQuery(job_id="no-such-job"), timeout=5)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as info:
            stub.Exchange(iter(value_envelopes("no-such-job", "a", 1, receiver="b")), timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _serving(plain_cluster, "b")
    with plain_cluster.client("b") as client:
        assert client.run("demo.secure_sum", columns=["a.t.v", "b.t.v"], progress=False) == \
            pytest.approx(_expected_sum(plain_cluster))
    # and it still stops promptly on SIGTERM (junk used to pin grpc calls and hang the shutdown)
    proc = plain_cluster.processes["b"]
    proc.terminate()
    assert proc.wait(timeout=8) == 0


def test_exchange_impersonation_against_a_running_job(tls_cluster):
    """bank's real certificate sending to retailer as the dealer, and as retailer to itself,
    during a real job: refused, and the job's result is still right."""
    bank, retail = tls_cluster.frames["bank"], tls_cluster.frames["retailer"]
    with tls_cluster.client("bank") as client:
        job = client.submit("demo.secure_sum", columns=["bank.accounts.income", "retailer.purchases.spend"])
        creds = channel_credentials(tls_cluster.tls_files["bank"])
        with grpc.secure_channel(tls_cluster.addresses["retailer"], creds,
                                 options=[("grpc.ssl_target_name_override", "retailer")]) as channel:
            stub = party_pb2_grpc.PartyStub(channel)
            for sender in ("dealer", "retailer"):
                envs = value_envelopes(job, sender, np.zeros(1, np.uint64), receiver="retailer")
                with pytest.raises(grpc.RpcError) as info:
                    stub.Exchange(iter(envs), timeout=5)
                assert info.value.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
        try:
            total = client.result(job, progress=False)
        except JobFailed as exc:  # pragma: no cover - reported with the reason if it happens
            pytest.fail(f"impersonation disturbed the job: {exc}")
    assert total == pytest.approx(bank.income.sum() + retail.spend.sum(), rel=1e-9, abs=1e-3)
    assert _serving(tls_cluster, "retailer")


# -- secrets stay out of logs, errors and audit lines ---------------------------------------
SECRET_IDS = [f"zqx-secret-{i:04d}-id" for i in range(60)]
SECRET_VALUES = [271828.1828 + i for i in range(60)]
SECRET_NOTES = [f"qqsecretnote{i}" for i in range(60)]


@pytest.fixture(scope="module")
def secret_cluster():
    a = pd.DataFrame({"id": SECRET_IDS[:40], "v": SECRET_VALUES[:40], "note": SECRET_NOTES[:40]})
    b = pd.DataFrame({"id": SECRET_IDS[20:], "v": SECRET_VALUES[20:], "note": SECRET_NOTES[20:]})
    b_nan = b.assign(v=b.v.where(np.arange(len(b)) != 7))
    policy = {"id": "join_key", "v": "aggregate", "note": "aggregate"}
    ds = {"a": {"t": {"frame": a, "id": "id", "columns": policy}},
          "b": {"t": {"frame": b, "id": "id", "columns": policy},
                "nan": {"frame": b_nan, "id": "id", "columns": policy}}}
    with LocalCluster(["a", "b"], tls=True, datasets=ds, dealer=False, limits={"job_timeout": 60.0}) as cl:
        yield cl


def _assert_no_secrets(text: str, where: str) -> None:
    for secret in SECRET_IDS + SECRET_NOTES:
        assert secret not in text, f"{where} contains the input value {secret!r}"
    for value in SECRET_VALUES:
        for form in (repr(value), f"{value:.2f}", str(int(value)) + "."):
            assert form not in text, f"{where} contains the input value {form!r}"


JOBS_FOR_SECRETS = [
    ("demo.secure_sum", {"columns": ["a.t.v", "b.t.v"]}),
    ("psi.ecdh", {"ids": ["a.t.id", "b.t.id"]}),
    ("psi.cardinality", {"ids": ["a.t.id", "b.t.id"]}),
    ("psi.intersection_sum", {"ids": ["a.t.id", "b.t.id"], "values": "b.t.v"}),
    ("psi.intersection_sum", {"ids": ["a.t.id", "b.nan.id"], "values": "b.nan.v"}),   # NaN: fails
    ("psi.intersection_sum", {"ids": ["a.t.id", "b.t.id"], "values": "b.t.note"}),    # not numeric
    ("demo.secure_sum", {"columns": ["a.t.v", "b.t.id"]}),                            # policy refusal
    ("psi.ecdh", {"ids": ["a.t.id", "b.t.nope"]}),                                    # no such column
]


def test_no_input_values_in_logs_errors_or_audit(secret_cluster):
    cl = secret_cluster
    messages = []
    for requester in ("a", "b"):
        with cl.client(requester) as client:
            for protocol, params in JOBS_FOR_SECRETS:
                try:
                    job = client.submit(protocol, **params)
                    client.result(job, progress=False)
                except JobFailed as exc:
                    messages.append(str(exc))
                else:
                    messages.append(str(client.status(job)))
    assert len([m for m in messages if "failed" in m or "refuse" in m]) >= 8  # the failures did happen
    for m in messages:
        _assert_no_secrets(m, "an error message")
    for party in ("a", "b"):
        _assert_no_secrets(cl.log(party), f"the server log of {party}")
        _assert_no_secrets(cl.audit_log(party).read_text(), f"the audit log of {party}")


def test_no_input_values_in_errors_of_a_non_numeric_sum(secret_cluster):
    with secret_cluster.client("a") as client, pytest.raises(JobFailed, match="not numeric") as info:
        client.run("demo.secure_sum", columns=["a.t.note", "b.t.v"], progress=False)
    _assert_no_secrets(str(info.value), "an error message")
    _assert_no_secrets(secret_cluster.audit_log("a").read_text(), "the audit log of a")


# -- who may request a job ------------------------------------------------------------------
JOIN_IDS = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]
JOIN_STATS = {"ids": JOIN_IDS, "columns": ["bank.accounts.income", "retailer.purchases.spend"],
              "stats": ["describe"], "join": "dealer"}


def _audit(cluster, party) -> list[dict]:
    path = cluster.audit_log(party)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _ran(records, requester) -> list[dict]:
    return [r for r in records if r["requester"] == requester and r["outcome"] != "refused"]


def test_the_dealer_cannot_request_a_job_on_the_companies_data(tls_cluster):
    """With its own certificate the dealer asks its own server for join.stats (join='dealer'),
    which would tell it both id counts and the join size: refused at once, nothing runs."""
    with tls_cluster.client("dealer") as client, pytest.raises(JobFailed) as info:
        client.submit("join.stats", **JOIN_STATS)
    assert info.value.party == "dealer"
    assert "requester 'dealer' is a helper of this job" in str(info.value)
    assert "only a computing party ('bank', 'retailer')" in str(info.value)
    for company in ("bank", "retailer"):  # they never heard of it: no audit line names the dealer
        assert [r for r in _audit(tls_cluster, company) if r["requester"] == "dealer"] == []
    assert _audit(tls_cluster, "dealer")[-1]["outcome"] == "refused"


def test_a_dealer_skipping_its_own_check_is_refused_by_every_company(tls_cluster):
    """A dealer server that skips its own check and calls Join on the companies directly
    (with its real certificate): each company refuses, naming the requester and why, and
    the job cannot be started."""
    creds = channel_credentials(tls_cluster.tls_files["dealer"])
    for company in ("bank", "retailer"):
        job_id = f"rogue-{company}"
        request = party_pb2.JobRequest(job_id=job_id, protocol="join.stats", params=codec.encode(JOIN_STATS),
                                       requester="dealer", parties=["bank", "retailer"], timeout=60.0)
        with grpc.secure_channel(tls_cluster.addresses[company], creds,
                                 options=[("grpc.ssl_target_name_override", company)]) as channel:
            stub = party_pb2_grpc.PartyStub(channel)
            reply = stub.Join(request, timeout=10)
            assert reply.state == "refused"
            assert f"party '{company}' refuses: requester 'dealer' is a helper of this job" in reply.error
            with pytest.raises(grpc.RpcError) as err:
                stub.Start(party_pb2.JobQuery(job_id=job_id), timeout=10)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        records = _audit(tls_cluster, company)
        assert records[-1]["job_id"] == job_id and records[-1]["outcome"] == "refused"
        assert "requester 'dealer'" in records[-1]["error"]
        assert _ran(records, "dealer") == []
    # the same job requested by a company still runs
    with tls_cluster.client("bank") as client:
        out = client.run("join.stats", progress=False, **JOIN_STATS)
    assert out["rows"] == len(tls_cluster.frames["bank"].merge(tls_cluster.frames["retailer"], on="customer_id"))


@pytest.fixture(scope="module")
def restricted_cluster():
    """Companies a, b, c and a dealer; c accepts jobs requested by a (and its own users) only."""
    frames = {p: pd.DataFrame({"id": [f"id{i}" for i in range(k, k + 40)], "v": np.arange(40.0)})
              for p, k in (("a", 0), ("b", 10), ("c", 20))}
    with LocalCluster(["a", "b", "c"], tls=True, datasets={p: {"t": f} for p, f in frames.items()},
                      settings={"c": {"allowed_requesters": ["a", "c"]}}) as cluster:
        yield cluster


def test_allowed_requesters_restricts_who_may_request_jobs_involving_a_party(restricted_cluster):
    cl = restricted_cluster
    with cl.client("a") as client:  # a is allowed
        assert client.run("psi.cardinality", ids=["a.t.id", "c.t.id"], progress=False) == 20
    with cl.client("c") as client:  # c's own users too
        assert client.run("psi.cardinality", ids=["b.t.id", "c.t.id"], progress=False) == 30
    with cl.client("b") as client:
        with pytest.raises(JobFailed) as info:  # b is not: c refuses at Join, nothing runs
            client.run("psi.cardinality", ids=["b.t.id", "c.t.id"], progress=False)
        # c's list does not restrict jobs c takes no part in
        assert client.run("psi.cardinality", ids=["a.t.id", "b.t.id"], progress=False) == 30
    assert info.value.party == "c"
    assert "requester 'b' may not request jobs that involve 'c' (not in its allowed_requesters)" in str(info.value)
    assert _ran(_audit(cl, "c"), "b") == []
    assert _audit(cl, "c")[-1]["outcome"] == "refused" and _audit(cl, "c")[-1]["requester"] == "b"
    refused = [r for r in _audit(cl, "b") if r["outcome"] == "refused"]
    assert len(refused) == 1 and "allowed_requesters" in refused[0]["error"]


def test_allowed_requesters_must_name_known_computing_parties(tmp_path):
    base = {"party": "a", "listen": "127.0.0.1:1", "insecure": True, "peers": {"b": "127.0.0.1:2"}}
    path = tmp_path / "a.toml"
    assert parse_config({**base, "allowed_requesters": ["a", "b"]}, path).allowed_requesters == ("a", "b")
    assert parse_config(base, path).allowed_requesters is None
    for value, message in ((["dealer"], "'dealer' is a helper"), (["x"], "'x' is neither this party nor"),
                           ([1], "must be a list of party names"), ("b", "must be list")):
        with pytest.raises(ConfigError, match=message) as info:
            parse_config({**base, "peers": {"b": "127.0.0.1:2", "dealer": "127.0.0.1:3"},
                          "allowed_requesters": value}, path)
        assert str(path) in str(info.value) and "allowed_requesters" in str(info.value)


# -- TLS is required; plaintext only when asked for, and only on loopback ----------------------
def test_a_config_without_tls_does_not_load(tmp_path):
    path = tmp_path / "party.toml"
    write_toml(path, {"party": "a", "listen": "0.0.0.0:50051", "peers": {"b": "b.example.com:50051"}})
    with pytest.raises(ConfigError, match=r"missing table \[tls\].*insecure = true") as info:
        load_config(path)
    assert str(path) in str(info.value)
    write_toml(path, {"party": "a", "listen": "127.0.0.1:50051", "tls": {"enabled": False}})
    with pytest.raises(ConfigError, match="unknown key 'tls.enabled'.*insecure = true"):
        load_config(path)


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051", "bank.example.com:50051"])
def test_insecure_off_loopback_does_not_load(tmp_path, listen):
    path = tmp_path / "party.toml"
    write_toml(path, {"party": "a", "listen": listen, "insecure": True})
    with pytest.raises(ConfigError, match="key 'insecure': plaintext is allowed only on a loopback") as info:
        load_config(path)
    assert str(path) in str(info.value) and listen in str(info.value)


def test_insecure_needs_loopback_peers_and_no_tls_table(tmp_path):
    path = tmp_path / "party.toml"
    write_toml(path, {"party": "a", "listen": "127.0.0.1:1", "insecure": True, "peers": {"b": "10.0.0.2:1"}})
    with pytest.raises(ConfigError, match="key 'peers.b': with insecure = true every peer must be on loopback"):
        load_config(path)
    write_toml(path, {"party": "a", "listen": "127.0.0.1:1", "insecure": True,
                      "tls": {"ca": "ca.pem", "cert": "a.pem", "key": "a.key"}})
    with pytest.raises(ConfigError, match="key 'insecure': .*remove one"):
        load_config(path)


@pytest.mark.parametrize("listen", ["127.0.0.1:50051", "127.8.9.10:1", "[::1]:50051", "localhost:50051"])
def test_insecure_on_loopback_loads(tmp_path, listen):
    path = tmp_path / "party.toml"
    write_toml(path, {"party": "a", "listen": listen, "insecure": True, "peers": {"b": "localhost:2"}})
    config = load_config(path)
    assert config.insecure and config.tls is None


def test_a_plaintext_cluster_is_explicitly_insecure_on_loopback():
    """LocalCluster(tls=False) writes insecure = true, and its servers (real processes) serve."""
    frames = {p: pd.DataFrame({"id": [f"x{i}" for i in range(12)], "v": np.arange(12.0)}) for p in ("a", "b")}
    with LocalCluster(["a", "b"], tls=False, datasets={p: {"t": f} for p, f in frames.items()},
                      dealer=False) as cluster:
        for party in ("a", "b"):
            config = load_config(cluster.configs[party])
            assert config.insecure and config.tls is None and config.listen.startswith("127.0.0.1:")
            assert "insecure = true" in cluster.configs[party].read_text().replace('"', "")
            assert "tls off (insecure)" in cluster.log(party)
        with cluster.client("a") as client:
            assert client.run("demo.secure_sum", columns=["a.t.v", "b.t.v"], progress=False) == pytest.approx(132.0)


def test_a_second_server_on_a_taken_port_refuses_to_start(tmp_path):
    """gRPC's default SO_REUSEPORT would let a second server bind a running server's port
    and take half of its peers' calls: a party server refuses to share its port."""
    import subprocess
    import sys
    frames = {p: pd.DataFrame({"id": [f"x{i}" for i in range(12)], "v": np.arange(12.0)}) for p in ("a", "b")}
    with LocalCluster(["a", "b"], tls=False, datasets={p: {"t": f} for p, f in frames.items()},
                      dealer=False) as cluster:
        path = tmp_path / "party.toml"
        write_toml(path, {"party": "b", "listen": cluster.addresses["a"], "insecure": True,
                          "workdir": str(tmp_path / "state"), "peers": {"a": cluster.addresses["b"]}})
        second = subprocess.run([sys.executable, "-m", "mpc.cli", "serve", "--config", str(path)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode != 0
        assert f"cannot listen on {cluster.addresses['a']}: address in use" in second.stdout + second.stderr
        with cluster.client("a") as client:     # and the first one still takes every call
            for _ in range(4):
                assert client.run("demo.secure_sum", columns=["a.t.v", "b.t.v"], progress=False) == pytest.approx(132.0)


def test_a_cluster_whose_chosen_port_is_taken_starts_on_other_ports(monkeypatch):
    """A port free when LocalCluster chose it but taken when its server binds (here by a
    listening socket): the servers start again on new ports and serve."""
    from mpc import cluster as cluster_module

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        real, first = cluster_module.free_port, [port]
        monkeypatch.setattr(cluster_module, "free_port", lambda: first.pop() if first else real())
        frames = {p: pd.DataFrame({"id": [f"x{i}" for i in range(12)], "v": np.arange(12.0)}) for p in ("a", "b")}
        with LocalCluster(["a", "b"], tls=False, datasets={p: {"t": f} for p, f in frames.items()},
                          dealer=False) as cluster, cluster.client("a") as client:
            assert f"127.0.0.1:{port}" not in cluster.addresses.values()
            assert client.run("demo.secure_sum", columns=["a.t.v", "b.t.v"], progress=False) == pytest.approx(132.0)


@settings(max_examples=200, deadline=None)
@given(st.builds(party_pb2.Envelope, job_id=st.text(max_size=8), sender=st.text(max_size=4),
                 seq=st.integers(0, 2**64 - 1), chunk_index=st.integers(0, 2**32 - 1), last=st.booleans(),
                 total_size=st.integers(0, 2**64 - 1),
                 payload=st.binary(max_size=64), abort=st.text(max_size=8)), st.binary(max_size=12))
def test_envelope_parser_agrees_with_protobuf(env, junk):
    """The transport parses Envelopes itself (the payload stays a view): same fields as
    protobuf's parser, and junk protobuf refuses is refused too."""
    from mpc.runtime.grpc_transport import _MALFORMED, _parse_envelope
    got = _parse_envelope(env.SerializeToString())
    for name in ("job_id", "sender", "receiver", "seq", "chunk_index", "last", "total_size", "abort"):
        assert getattr(got, name) == getattr(env, name)
    assert bytes(got.payload) == env.payload
    try:
        party_pb2.Envelope.FromString(junk)
    except Exception:
        assert _parse_envelope(junk) is _MALFORMED
