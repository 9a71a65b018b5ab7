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
