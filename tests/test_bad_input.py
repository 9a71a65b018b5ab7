"""Bad input to party servers: clear errors on the client naming what is wrong; the servers keep serving."""

import pandas as pd
import pytest

from mpc import JobFailed
from mpc.cluster import LocalCluster
from mpc.runtime.errors import GaotieError


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    (data / "broken.csv").write_text("id,v\nx1,1.0\nx2,2.0,EXTRA\nx3,3.0\n")
    (data / "words.csv").write_text("id,v\n" + "".join(f"w{i},{'abc' if i == 7 else i}\n" for i in range(30)))
    good = pd.DataFrame({"id": [f"w{i}" for i in range(30)], "v": [float(i) for i in range(30)]})
    policy = {"id": "join_key", "v": "aggregate"}
    datasets = {"a": {"broken": {"path": str(data / "broken.csv"), "id": "id", "columns": policy},
                      "words": {"path": str(data / "words.csv"), "id": "id", "columns": policy}},
                "b": {"good": {"frame": good, "id": "id"}}}
    with LocalCluster(["a", "b"], datasets=datasets, dealer=False) as c:
        yield c


def test_unreadable_csv_names_file_and_row(cluster):
    with cluster.client("b") as client, pytest.raises(JobFailed) as info:
        client.run("demo.secure_sum", columns=["a.broken.v", "b.good.v"], progress=False)
    message = str(info.value)
    assert info.value.party == "a" and "broken.csv" in message and "line 3" in message
    assert "EXTRA" not in message  # cell contents are not quoted


def test_non_numeric_column_names_column_and_row(cluster):
    with cluster.client("b") as client, pytest.raises(JobFailed) as info:
        client.run("demo.secure_sum", columns=["a.words.v", "b.good.v"], progress=False)
    assert "column a.words.v is not numeric (row 8)" in str(info.value)
    assert "abc" not in str(info.value)


def test_missing_column(cluster):
    with cluster.client("b") as client, pytest.raises(JobFailed, match="dataset 'words' offers no column 'nope'"):
        client.run("demo.secure_sum", columns=["a.words.nope", "b.good.v"], progress=False)


def test_peer_down_is_a_clear_error_and_server_keeps_serving(cluster):
    with cluster.client("b") as client:
        assert client.run("demo.secure_sum", columns=["b.good.v", "b.good.v"], progress=False) == 2 * sum(range(30))
        cluster.processes["a"].kill()
        cluster.processes["a"].wait()
        with pytest.raises(JobFailed, match="party 'a' is unreachable"):
            client.run("demo.secure_sum", columns=["a.words.v", "b.good.v"], progress=False)
        assert client.datasets()["b"][0]["name"] == "good"


def test_unreachable_server_is_a_clear_client_error():
    from mpc import Client
    from mpc.cluster import free_port
    with Client(f"127.0.0.1:{free_port()}") as client, pytest.raises(GaotieError, match="UNAVAILABLE"):
        client.datasets()
