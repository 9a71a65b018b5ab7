"""Results of any size reach the client: the streaming Result RPC, chunked under the cap."""

from __future__ import annotations

import grpc
import numpy as np
import pandas as pd
import pytest

from mpc import tables
from mpc._proto.gaotie.v1 import party_pb2, party_pb2_grpc
from mpc.cluster import LocalCluster
from mpc.runtime import codec
from mpc.server.tls import channel_credentials


def _datasets(n: int) -> tuple[dict, set[str]]:
    a = [f"id{i:07d}" for i in range(n)]
    b = [f"id{i:07d}" for i in range(n // 2, n + n // 2)]
    datasets = {"bank": {"accounts": pd.DataFrame({"id": a})},
                "retailer": {"purchases": pd.DataFrame({"id": b})}}
    return datasets, set(a) & set(b)


def _stub(cluster: LocalCluster, party: str, as_party: str):
    options = [("grpc.ssl_target_name_override", party)]
    channel = grpc.secure_channel(cluster.addresses[party], channel_credentials(cluster.tls_files[as_party]),
                                  options=options)
    return channel, party_pb2_grpc.PartyStub(channel)


def _psi(cluster: LocalCluster, n: int, expected: set[str]) -> str:
    with cluster.client("bank") as client:
        job = client.submit("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"], receivers=["bank"])
        frame = client.result(job, progress=False)
    assert set(frame["id"]) == expected and len(frame) == len(expected)
    assert sorted(frame["row"].tolist()) == list(range(n // 2, n))
    return job


def test_result_over_the_chunk_cap_is_streamed():
    """A 64 KiB chunk cap: the ~230 KiB result cannot go inline in Status (the old client's
    way, still served to old clients) but arrives whole through Result, to the bank only."""
    n = 1 << 14
    datasets, expected = _datasets(n)
    with LocalCluster(["bank", "retailer"], tls=True, datasets=datasets,
                      limits={"max_chunk_bytes": 1 << 16}) as cluster:
        job = _psi(cluster, n, expected)
        channel, stub = _stub(cluster, "bank", "bank")
        with channel:
            with pytest.raises(grpc.RpcError) as info:       # inline: over the cap
                stub.Status(party_pb2.JobQuery(job_id=job), timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            chunks = list(stub.Result(party_pb2.ResultRequest(job_id=job), timeout=30))
            assert len(chunks) > 2 and all(len(c.payload) <= 1 << 16 for c in chunks)
            assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
            assert [c.last for c in chunks] == [False] * (len(chunks) - 1) + [True]
            assert sum(len(c.payload) for c in chunks) == chunks[0].total_size > 3 << 16
            with pytest.raises(grpc.RpcError) as info:
                next(iter(stub.Result(party_pb2.ResultRequest(job_id="nope"), timeout=10)))
            assert info.value.code() == grpc.StatusCode.NOT_FOUND
        channel, stub = _stub(cluster, "bank", "retailer")    # a peer's certificate: refused
        with channel:
            with pytest.raises(grpc.RpcError) as info:
                next(iter(stub.Result(party_pb2.ResultRequest(job_id=job), timeout=10)))
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with cluster.client("bank") as client:                # no result for the bank: None
            job = client.submit("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"],
                                receivers=["retailer"])
            assert client.result(job, progress=False) is None


@pytest.mark.slow
def test_large_psi_result_through_the_client():
    """2^18 x 2^18 ids (half in common) under the default 2 MiB cap: a result of several MiB."""
    n = 1 << 18
    datasets, expected = _datasets(n)
    with LocalCluster(["bank", "retailer"], tls=True, datasets=datasets) as cluster:
        _psi(cluster, n, expected)



@pytest.mark.parametrize("frame", [
    pd.DataFrame({"id": ["a", "bb", "é", "", None], "x": [1.0, 2, 3, 4, 5]}),
    pd.DataFrame({"id": ["a\x00", "b"]}),                                  # numpy would drop the NUL
    pd.DataFrame({"id": ["a" * 100, "b"]}, index=["p", "q"]),              # padding would grow it
    pd.DataFrame({"id": [f"id{i:07d}" for i in range(1000)], "row": range(1000)}),
    pd.DataFrame({"v": [1, 2]}, index=pd.RangeIndex(3, 5)),
    pd.DataFrame({"id": []}),
    pd.DataFrame(index=pd.RangeIndex(3)),
])
def test_compact_text_decodes_to_the_same_frame(frame):
    """The Result RPC's table encoding (text as U arrays) gives what Status's lists give."""
    with tables.compact_text():
        compact = codec.encode(frame)
    pd.testing.assert_frame_equal(codec.decode(compact), codec.decode(codec.encode(frame)))


def test_compact_text_sends_one_array_per_column():
    """Not one Value per cell (~170 bytes of memory each while encoding): one U array."""
    frame = pd.DataFrame({"id": [f"id{i:07d}" for i in range(1 << 14)]})
    with tables.compact_text():
        compact = codec.encode(frame)
    entries = compact.extension.payload.map_value.entries
    assert [c.WhichOneof("kind") for c in entries["columns"].list_value.items] == ["array"]
    assert codec.decode(entries["index"]) == 1 << 14                  # a range index: its length
    assert compact.ByteSize() < 4 * 9 * (1 << 14) + 1000            # UCS-4


def test_text_arrays_with_bad_code_points_are_refused():
    value = codec.encode(np.array(["ab"]))
    data = bytearray(value.array.data)
    data[0:4] = (0x110000).to_bytes(4, "little")
    value.array.data = bytes(data)
    with pytest.raises(codec.CodecError, match="code point"):
        codec.decode(value)


def test_integer_ids_become_the_same_text_through_arrow():
    from protocols.jobs import _as_text
    from protocols.psi.common import PsiResult
    for ids in (np.array([5, -3, 2**62, 0, 7], dtype=np.int64), np.array([2**64 - 1, 3], dtype=np.uint64)):
        indices = np.array([0, 1, len(ids) - 1], dtype=np.int64)
        result = PsiResult(items=ids[indices].tolist(), indices=indices)
        fast = pd.DataFrame({"id": _as_text(ids, result)})
        pd.testing.assert_frame_equal(fast, pd.DataFrame({"id": [str(v) for v in result.items]}))


# -- result files: a bucketed job's Parquet file streamed as it is (issue 20) --------------------

def _bucketed_datasets(n: int) -> tuple[dict, list[str], set[str]]:
    datasets, expected = _datasets(n)
    return datasets, datasets["bank"]["accounts"]["id"].tolist(), expected


@pytest.fixture(scope="module")
def files_cluster():
    """Two servers with a 64 KiB chunk cap, and a bucketed PSI (memory "1MiB": 4 buckets of
    4096 ids) whose result is a Parquet file in the bank's results directory."""
    n = 1 << 14
    datasets, ids, expected = _bucketed_datasets(n)
    with LocalCluster(["bank", "retailer"], tls=False, datasets=datasets, dealer=False,
                      limits={"max_chunk_bytes": 1 << 16, "job_timeout": 120.0}) as cluster:
        with cluster.client("bank") as client:
            job = client.submit("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"], receivers=["bank"],
                                memory="1MiB")
            client.result(job, progress=False, to=None)
        yield cluster, job, ids, expected


def _raw_result(cluster: LocalCluster, job: str, accept_files: bool) -> list:
    with grpc.insecure_channel(cluster.addresses["bank"]) as channel:
        stub = party_pb2_grpc.PartyStub(channel)
        return list(stub.Result(party_pb2.ResultRequest(job_id=job, accept_files=accept_files), timeout=60))


def test_a_result_file_streams_as_its_bytes_and_reads_as_the_old_frame(files_cluster, tmp_path):
    """To a client that accepts files: the server's Parquet file byte for byte, in chunks under
    the cap (format "parquet"); to an older one (accept_files unset): the codec encoding, as
    before. Client.result gives the frame both ways alike, equal to Python sets; with ``to``,
    the file itself (the same frame read back), nothing else left in the directory."""
    cluster, job, ids, expected = files_cluster
    stored = (cluster.results_dir("bank") / f"{job}.parquet").read_bytes()
    chunks = _raw_result(cluster, job, accept_files=True)
    assert {c.format for c in chunks} == {"parquet"} and len(chunks) > 1
    assert all(len(c.payload) <= 1 << 16 for c in chunks) and [c.last for c in chunks][-1]
    assert b"".join(c.payload for c in chunks) == stored and chunks[0].total_size == len(stored)
    old = _raw_result(cluster, job, accept_files=False)
    assert {c.format for c in old} == {""}
    old_frame = codec.decode(_value(b"".join(c.payload for c in old)))
    with cluster.client("bank") as client:
        frame = client.result(job, progress=False)
        saved = client.result(job, progress=False, to=tmp_path / "out" / "psi.parquet")
    pd.testing.assert_frame_equal(frame, old_frame)                 # the same dtypes and values as before
    assert set(frame["id"]) == expected and len(frame) == len(expected)
    assert frame["row"].tolist() == [i for i, v in enumerate(ids) if v in expected]
    assert saved == tmp_path / "out" / "psi.parquet" and saved.read_bytes() == stored
    pd.testing.assert_frame_equal(pd.read_parquet(saved), frame)
    assert [p.name for p in saved.parent.iterdir()] == ["psi.parquet"]


def _value(data: bytes):
    from mpc._proto.gaotie.v1 import value_pb2
    value = value_pb2.Value()
    value.ParseFromString(data)
    return value


def test_a_table_value_is_saved_as_parquet_and_other_results_are_refused(files_cluster, tmp_path):
    """``to`` with an unbucketed PSI (a table that comes as a value): pandas writes it, the
    same frame read back; with psi.cardinality (a number): ValueError naming the job and the
    kind, nothing written; a party without a result: None, nothing written."""
    cluster, _, _, expected = files_cluster
    with cluster.client("bank") as client:
        job = client.submit("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"], receivers=["bank"])
        frame = client.result(job, progress=False)
        assert client.result(job, progress=False, to=tmp_path / "psi.parquet") == tmp_path / "psi.parquet"
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "psi.parquet"), frame)
        assert set(frame["id"]) == expected
        job = client.submit("psi.cardinality", ids=["bank.accounts.id", "retailer.purchases.id"])
        with pytest.raises(ValueError, match=f"result of job {job} is an int, not a table"):
            client.result(job, progress=False, to=tmp_path / "n.parquet")
        assert client.result(job, progress=False) == len(expected)
        job = client.submit("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"], receivers=["retailer"],
                            memory="1MiB")
        assert client.result(job, progress=False, to=tmp_path / "none.parquet") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["psi.parquet"]


def test_cli_out_writes_the_result_file(files_cluster, tmp_path, capsys):
    """``gaotie run JOB --out PATH``, ``gaotie status JOB_ID --out PATH`` and ``gaotie query SQL
    --out PATH``: the result file at PATH, its path and rows printed instead of the rows; a
    result that is not a table: exit 2."""
    from mpc.cli import main

    cluster, job, ids, expected = files_cluster
    spec = tmp_path / "job.toml"
    spec.write_text('protocol = "psi.ecdh"\n[params]\nids = ["bank.accounts.id", "retailer.purchases.id"]\n'
                    'receivers = ["bank"]\nmemory = "1MiB"\n')
    server = ["--server", cluster.addresses["bank"]]
    assert main(["run", str(spec), "--out", str(tmp_path / "run.parquet"), *server]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'run.parquet'}: {len(expected)} rows"
    frame = pd.read_parquet(tmp_path / "run.parquet")
    assert frame["row"].tolist() == [i for i, v in enumerate(ids) if v in expected]
    assert main(["status", job, "--out", str(tmp_path / "status.parquet"), *server]) == 0
    assert (tmp_path / "status.parquet").read_bytes() == (cluster.results_dir("bank") / f"{job}.parquet").read_bytes()
    spec.write_text('protocol = "psi.cardinality"\n[params]\nids = ["bank.accounts.id", "retailer.purchases.id"]\n')
    assert main(["run", str(spec), "--out", str(tmp_path / "n.parquet"), *server]) == 2
    assert "not a table" in capsys.readouterr().err and not (tmp_path / "n.parquet").exists()
    sql = "SELECT p.id FROM bank.accounts p JOIN retailer.purchases q ON p.id = q.id"     # sql.rows in buckets
    assert main(["query", sql, "--memory", "1MiB", "--quiet", "--out", str(tmp_path / "q.parquet"), *server]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path / 'q.parquet'}: {len(expected)} rows"
    assert sorted(pd.read_parquet(tmp_path / "q.parquet")["id"]) == sorted(expected)


def _drain(cluster: LocalCluster, job: str) -> int:
    """Fetch a result as an older client does (no accept_files), keeping only its size."""
    with grpc.insecure_channel(cluster.addresses["bank"]) as channel:
        stub = party_pb2_grpc.PartyStub(channel)
        return sum(len(c.payload) for c in stub.Result(party_pb2.ResultRequest(job_id=job), timeout=120))


def _status_kib(pid: int, key: str) -> int:
    for line in open(f"/proc/{pid}/status").read().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise LookupError(key)


def _peak_growth(pid: int, fetch) -> int:
    """Bytes the process ``pid``'s peak resident memory rose above its resident memory while
    ``fetch()`` ran (the peak reset first: ``clear_refs`` 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib(pid, "VmRSS")
    fetch()
    return (_status_kib(pid, "VmHWM") - before) << 10


def test_the_server_streams_a_large_result_file_without_loading_it(files_cluster, tmp_path):
    """The server's peak memory while a client fetches a 400,000-row result file (64-character
    ids, put in place of the job's file: a real bucketed job of that size takes minutes) with
    ``to`` rises by a few chunks, not by the table: the same fetch by an older client
    (the file loaded and encoded) raises it by more than the table's size, so the measure can
    see a load."""
    cluster = files_cluster[0]
    pid = cluster.processes["bank"].pid
    try:
        _peak_growth(pid, lambda: None)
    except OSError as exc:
        pytest.skip(f"no peak-memory reset here ({exc})")
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 400_000
    text = np.random.default_rng(20).bytes(32 * n).hex()      # test data
    big = pd.DataFrame({"id": [text[i:i + 64] for i in range(0, 64 * n, 64)], "row": np.arange(n)})
    with cluster.client("bank") as client:      # a job of its own: the fixture's result stays as it is
        job = client.submit("psi.ecdh", ids=["bank.accounts.id", "retailer.purchases.id"], receivers=["bank"],
                            memory="1MiB")
        client.result(job, progress=False, to=tmp_path / "small.parquet")
    path = cluster.results_dir("bank") / f"{job}.parquet"
    pq.write_table(pa.Table.from_pandas(big, preserve_index=False), tmp_path / "big.parquet")
    (tmp_path / "big.parquet").replace(path)
    table_bytes = n * 64
    out = tmp_path / "fetched.parquet"
    with cluster.client("bank") as client:
        streamed = _peak_growth(pid, lambda: client.result(job, progress=False, to=out))
    assert out.read_bytes() == path.read_bytes() and out.stat().st_size > table_bytes // 2
    loaded = _peak_growth(pid, lambda: _drain(cluster, job))
    print(f"server peak growth: streamed {streamed >> 20} MiB, loaded {loaded >> 20} MiB, "
          f"ids {table_bytes >> 20} MiB")
    assert loaded > table_bytes
    assert streamed < table_bytes // 4


class _Aborted(Exception):
    pass


class _Context:
    """What the Result servicer uses of a grpc.ServicerContext."""

    def abort(self, code, details):
        raise _Aborted(code, details)


class _NeverLoaded(tables.ResultFile):
    def load(self):
        raise AssertionError("the server loaded the result file")


def _servicer(tmp_path, rows: int = 5000):
    """PartyService.Result's ``self``: one done job whose result is a file it must not load."""
    from types import SimpleNamespace

    frame = pd.DataFrame({"id": [f"id{i:07d}" for i in range(rows)], "row": np.arange(rows)})
    writer = tables.ResultWriter(tmp_path / "r.parquet")
    writer.write(frame)
    written = writer.close(frame.iloc[:0])
    job = SimpleNamespace(job_id="j1", state="done",
                          result=_NeverLoaded(written.path, written.rows, written.columns))
    return SimpleNamespace(party="a", _require=lambda context, allowed: "a", jobs=SimpleNamespace(get=lambda j: job),
                           config=SimpleNamespace(limits=SimpleNamespace(max_chunk_bytes=4096))), written.path


def test_the_result_servicer_streams_a_file_it_never_loads_from_one_handle(tmp_path):
    """In process: the Result servicer gives a result file's bytes in chunks of the smaller of
    the asked and the capped size without calling ``load``, and all of them when the file is
    removed half-way (an open handle); an older client's request is the path that loads; a
    file gone before the fetch: NOT_FOUND."""
    from mpc.server.service import PartyService

    service, path = _servicer(tmp_path)
    data = path.read_bytes()
    stream = PartyService.Result(service, party_pb2.ResultRequest(job_id="j1", accept_files=True,
                                                                  max_chunk_bytes=1000), _Context())
    first = next(stream)
    path.unlink()                               # a cleanup while streaming
    chunks = [first, *stream]
    assert b"".join(c.payload for c in chunks) == data and {c.total_size for c in chunks} == {len(data)}
    assert [len(c.payload) for c in chunks[:-1]] == [1000] * (len(chunks) - 1) and len(chunks) > 5
    assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
    assert [c.last for c in chunks][-2:] == [False, True]
    assert {c.format for c in chunks} == {"parquet"} and {c.job_id for c in chunks} == {"j1"}
    stream = PartyService.Result(service, party_pb2.ResultRequest(job_id="j1", accept_files=True), _Context())
    with pytest.raises(_Aborted) as info:
        next(stream)
    assert info.value.args[0] == grpc.StatusCode.NOT_FOUND and "result file of job j1 is gone" in info.value.args[1]
    service, path = _servicer(tmp_path / "again")
    stream = PartyService.Result(service, party_pb2.ResultRequest(job_id="j1", accept_files=True), _Context())
    assert max(len(c.payload) for c in stream) == 4096            # the server's cap
    with pytest.raises(AssertionError, match="loaded"):
        next(PartyService.Result(service, party_pb2.ResultRequest(job_id="j1"), _Context()))


def _parquet_bytes() -> bytes:
    import io
    buf = io.BytesIO()
    pd.DataFrame({"id": [f"id{i}" for i in range(3000)], "row": np.arange(3000)}).to_parquet(buf, index=False)
    return buf.getvalue()


def _chunk(i: int, total: int, payload: bytes, last: bool = False, fmt: str = "parquet", job: str = "j1"):
    return party_pb2.ResultChunk(job_id=job, total_size=total, chunk_index=i, last=last, payload=payload, format=fmt)


def _streams() -> dict:
    data = _parquet_bytes()
    n, h = len(data), len(data) // 2
    return {
        "truncated": ([_chunk(0, n, data[:h]), _chunk(1, n, data[h:-10], last=True)], "incomplete"),
        "no last chunk": ([_chunk(0, n, data[:h]), _chunk(1, n, data[h:])], "incomplete"),
        "more than declared": ([_chunk(0, n - 5, data[:h]), _chunk(1, n - 5, data[h:], last=True)],
                               "exceeds its size"),
        "out of order": ([_chunk(0, n, data[:h]), _chunk(2, n, data[h:], last=True)], "out of order"),
        "size changed": ([_chunk(0, n, data[:h]), _chunk(1, n + 1, data[h:] + b"x", last=True)], "out of order"),
        "format changed": ([_chunk(0, n, data[:h]), _chunk(1, n, data[h:], last=True, fmt="")], "out of order"),
        "unknown format": ([_chunk(0, n, data, last=True, fmt="pickle")], "unknown format 'pickle'"),
        "another job": ([_chunk(0, n, data, last=True, job="j2")], "arrived as job 'j2'"),
        "not parquet": ([_chunk(0, n, bytes(n), last=True)], "not a valid Parquet file"),
        "server failed": ([_chunk(0, n, data[:h]), None], r"failed \(INTERNAL\): disk on fire"),
        "nothing": ([], "incomplete"),
    }


class _BadServer(party_pb2_grpc.PartyServicer):
    """A party server whose job j1 is done and whose Result RPC sends ``self.chunks`` (None: abort)."""

    chunks: list = []

    def Status(self, request, context):  # noqa: N802
        return party_pb2.JobStatus(job_id=request.job_id, state="done", protocol="psi.ecdh")

    def Result(self, request, context):  # noqa: N802
        for chunk in self.chunks:
            if chunk is None:
                context.abort(grpc.StatusCode.INTERNAL, "disk on fire")
            yield chunk


@pytest.fixture(scope="module")
def bad_server():
    from concurrent import futures
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = _BadServer()
    party_pb2_grpc.add_PartyServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.parametrize("case", list(_streams()))
def test_a_bad_result_stream_is_refused_and_leaves_nothing_at_the_path(bad_server, tmp_path, case):
    """Chunks out of order, of another size, format or job, more or fewer bytes than declared,
    bytes that are not Parquet, a stream cut by the server: GaotieError, with ``to`` or
    without; nothing at ``to`` and no temporary file beside it; a file already at ``to``
    stays as it was."""
    from mpc.client import Client
    from mpc.runtime.errors import GaotieError

    servicer, address = bad_server
    servicer.chunks, why = _streams()[case]
    with Client(address) as client:
        with pytest.raises(GaotieError, match=why):
            client.result("j1", progress=False, to=tmp_path / "out.parquet")
        assert list(tmp_path.iterdir()) == []
        (tmp_path / "old.parquet").write_bytes(b"old")
        with pytest.raises(GaotieError, match=why):
            client.result("j1", progress=False, to=tmp_path / "old.parquet")
        assert [p.name for p in tmp_path.iterdir()] == ["old.parquet"]
        assert (tmp_path / "old.parquet").read_bytes() == b"old"
        with pytest.raises(GaotieError, match=why):
            client.result("j1", progress=False)


def test_a_good_stream_from_the_same_fake_server_is_read(bad_server, tmp_path):
    from mpc.client import Client

    servicer, address = bad_server
    data = _parquet_bytes()
    servicer.chunks = [_chunk(i, len(data), data[i * 1000:(i + 1) * 1000], last=(i + 1) * 1000 >= len(data))
                       for i in range(-(-len(data) // 1000))]
    with Client(address) as client:
        frame = client.result("j1", progress=False)
        assert client.result("j1", progress=False, to=tmp_path / "x.parquet") == tmp_path / "x.parquet"
    assert (tmp_path / "x.parquet").read_bytes() == data
    pd.testing.assert_frame_equal(frame, pd.read_parquet(tmp_path / "x.parquet"))
    assert frame["row"].tolist() == list(range(3000))
