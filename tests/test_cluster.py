"""LocalCluster: real `gaotie serve` processes, mTLS, health, reflection, jobs, strangers."""

import json

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from mpc import JobFailed
from mpc.cluster import LocalCluster
from mpc.server.tls import channel_credentials, make_deployment


def test_health_and_reflection(tls_cluster):
    for party in tls_cluster.servers:
        channel = tls_cluster._channel(party)
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        services = {s.name for r in responses for s in r.list_services_response.service}
        assert {"gaotie.v1.Party", "grpc.health.v1.Health"} <= services
        channel.close()


def test_secure_sum_over_cluster(tls_cluster):
    bank, retail = tls_cluster.frames["bank"], tls_cluster.frames["retailer"]
    with tls_cluster.client("bank") as client:
        total = client.run("demo.secure_sum", columns=["bank.accounts.income", "retailer.purchases.spend"])
    assert total == pytest.approx(bank.income.sum() + retail.spend.sum(), rel=1e-9, abs=1e-3)


def test_datasets_lists_policies_not_rows(tls_cluster):
    with tls_cluster.client("bank") as client:
        listing = client.datasets()
        peer = client.datasets("retailer")
    assert listing == {"bank": [{"name": "accounts", "id": "customer_id", "min_group_size": 10,
                                 "columns": {"customer_id": "join_key", "income": "aggregate",
                                             "segment": "plaintext"}}]}
    assert peer == {"retailer": [{"name": "purchases", "id": "customer_id", "min_group_size": 10,
                                  "columns": {"customer_id": "join_key", "spend": "aggregate"}}]}


def test_policy_refusal_names_dataset_column_and_level(tls_cluster):
    with tls_cluster.client("bank") as client, pytest.raises(JobFailed) as info:
        client.run("demo.secure_sum", columns=["bank.accounts.income", "retailer.purchases.customer_id"])
    assert info.value.party == "retailer"
    assert "'purchases'" in str(info.value) and "'customer_id'" in str(info.value)
    assert "'join_key'" in str(info.value)
    audit = [json.loads(x) for x in tls_cluster.audit_log("retailer").read_text().splitlines()]
    assert audit[-1]["outcome"] == "refused"
    record = json.loads(tls_cluster.audit_log("bank").read_text().splitlines()[-1])
    assert record["outcome"] == "refused" and "'customer_id'" in record["error"]


def test_unknown_protocol_and_bad_params(tls_cluster):
    with tls_cluster.client("bank") as client:
        with pytest.raises(JobFailed, match="unknown protocol 'os.system'"):
            client.run("os.system", command="rm -rf /")
        with pytest.raises(JobFailed, match="parameter 'columns' must be list"):
            client.run("demo.secure_sum", columns="bank.accounts.income")
        with pytest.raises(JobFailed, match="has no address for 'mallory'"):
            client.run("demo.secure_sum", columns=["bank.accounts.income", "mallory.x.y"])
        with pytest.raises(JobFailed, match="no dataset 'nope'"):
            client.run("demo.secure_sum", columns=["bank.nope.income", "retailer.purchases.spend"])


def test_results_written_and_audited(tls_cluster):
    with tls_cluster.client("bank") as client:
        job_id = client.submit("demo.secure_sum", columns=["bank.accounts.income", "retailer.purchases.spend"])
        client.result(job_id)
    for party in ("bank", "retailer"):
        assert (tls_cluster.results_dir(party) / f"{job_id}.parquet").exists()
        assert not list(tls_cluster.results_dir(party).glob(".*.tmp"))
        lines = [json.loads(x) for x in tls_cluster.audit_log(party).read_text().splitlines()]
        record = next(r for r in lines if r["job_id"] == job_id)
        assert record["outcome"] == "done" and record["requester"] == "bank"
        assert record["revealed_to_me"] == "one float"


def _call_submit(address, credentials=None, target=None):
    from mpc._proto.gaotie.v1 import party_pb2, party_pb2_grpc
    options = [("grpc.ssl_target_name_override", target)] if target else []
    channel = (grpc.secure_channel(address, credentials, options=options) if credentials
               else grpc.insecure_channel(address))
    try:
        return party_pb2_grpc.PartyStub(channel).Status(party_pb2.JobQuery(job_id="x"), timeout=3)
    finally:
        channel.close()


def test_strangers_are_refused(tls_cluster, tmp_path):
    address = tls_cluster.addresses["bank"]
    with pytest.raises(grpc.RpcError):  # plaintext client against a TLS server
        _call_submit(address)
    other = make_deployment(tmp_path / "other", ["bank"])  # right name, wrong CA
    with pytest.raises(grpc.RpcError) as info:
        _call_submit(address, channel_credentials(other["bank"]), "bank")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    ca, _, _ = tls_cluster.tls_files["bank"].read()
    no_cert = grpc.ssl_channel_credentials(root_certificates=ca)
    with pytest.raises(grpc.RpcError):
        _call_submit(address, no_cert, "bank")
    # A real certificate of another party may not act as the bank's own user.
    with pytest.raises(grpc.RpcError) as info:
        _call_submit(address, channel_credentials(tls_cluster.tls_files["retailer"]), "bank")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_cluster_without_tls():
    import pandas as pd
    datasets = {"a": {"t": {"frame": pd.DataFrame({"id": ["x", "y"], "v": [1.5, 2.5]}), "min_group_size": 1},
                      "small": pd.DataFrame({"id": ["x", "y"], "v": [1.5, 2.5]})},
                "b": {"t": {"frame": pd.DataFrame({"id": ["y"], "v": [10.0]}), "min_group_size": 1}}}
    with LocalCluster(["a", "b"], tls=False, datasets=datasets, dealer=False) as cluster:
        with cluster.client("b") as client:
            assert client.run("demo.secure_sum", columns=["a.t.v", "b.t.v"]) == 14.0
            # 2 rows, default min_group_size 10: the sum may not leave party a.
            with pytest.raises(JobFailed, match="fewer rows than its min_group_size") as info:
                client.run("demo.secure_sum", columns=["a.small.v", "b.t.v"])
            assert info.value.party == "a"


def test_cluster_rejects_bad_arguments():
    with pytest.raises(ValueError, match="distinct"):
        LocalCluster(["a", "a"])
    with pytest.raises(ValueError, match="reserved"):
        LocalCluster(["a", "dealer"])
    with pytest.raises(ValueError, match="unknown parties"):
        LocalCluster(["a", "b"], datasets={"c": {}})
