"""Where bucket-local CPU work runs (mpc.runtime.executor): the in-process thread pool and
the party's Ray cluster give the same PSI results, a party server configured with
``[executor] kind = "ray"`` runs a PSI job end to end, and bad ``[executor]`` tables are
refused naming the file and key.

One Ray instance (2 CPUs) for the whole module: started by this process, and the party
server of the cluster test joins it by its address.
"""

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc.cluster import LocalCluster
from mpc.runtime import executor as executors
from mpc.runtime.errors import ProtocolViolation
from mpc.runtime.executor import InProcess, RayExecutor
from mpc.runtime.views import flatten, record_views
from mpc.server.config import ConfigError, parse_config
from protocols.psi import oprf, two_party
from protocols.psi.ecdh import ecdh_psi, psi_cardinality
from protocols.psi.oprf import oprf_psi

# -- in-process --------------------------------------------------------------------------


def _slow_square(x: int, delay: float) -> int:
    time.sleep(delay * (x % 3))          # later items may finish first: results stay in order
    return x * x


def test_in_process_map_is_ordered_and_bounded():
    ex = InProcess(workers=3)
    pulled = []

    def args():
        for i in range(20):
            pulled.append(i)
            yield (i,)

    out = []
    for k, value in enumerate(ex.map(_slow_square, args(), (0.002,), window=4)):
        assert len(pulled) <= k + 4          # never more than the window taken ahead
        out.append(value)
    assert out == [i * i for i in range(20)]
    ex.close()


def test_in_process_map_raises_the_callers_error_and_stops():
    ex = InProcess(workers=2)
    mine = np.zeros((4, 8), np.uint8)
    theirs = np.array([[1] + [0] * 7, [0] * 8], np.uint8)     # out of order: a protocol violation
    with pytest.raises(ProtocolViolation, match="'bob' sent OPRF values out of order"):
        list(ex.map(oprf._member, [(mine, theirs, "bob", "OPRF values")]))
    ex.close()


def test_one_worker_runs_in_the_calling_thread():
    seen = list(InProcess(workers=1).map(threading.current_thread, [()] * 3))
    assert seen == [threading.current_thread()] * 3


def test_context_defaults_to_the_shared_in_process_executor():
    out = mpc.run_local(lambda ctx: ctx.executor, ["a", "b"], triples=None)
    assert out["a"] is out["b"] is executors.default()


# -- Ray ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_executor():
    pytest.importorskip("ray")         # an optional extra (gaotie[ray]); the test extra installs it
    ex = RayExecutor("local", num_cpus=2)
    ex.start()
    yield ex
    ex.close()


def _sets(n_a: int, n_b: int, common: int):
    a = [f"id{i:07d}" for i in range(n_a)]
    b = [f"id{i:07d}" for i in range(n_a - common, n_a - common + n_b)]
    return a + a[:5], b                       # duplicates: every row of a common value is returned


def test_ray_map_matches_a_direct_call(ray_executor):
    rng = np.random.default_rng(3)  # test data
    blocks = rng.integers(0, 256, (5000, 16), dtype=np.uint8)
    key, nb, bins = bytes(range(32)), 7, 1000
    parts = [slice(0, 2000), slice(2000, 4000), slice(4000, 5000)]
    got = list(ray_executor.map(oprf._hash_chunk, ((blocks[p],) for p in parts), (key, nb, bins)))
    for p, (bucket, loc) in zip(parts, got, strict=True):
        want_bucket, want_loc = oprf._hash_chunk(blocks[p], key, nb, bins)
        np.testing.assert_array_equal(bucket, want_bucket)
        np.testing.assert_array_equal(loc, want_loc)


def test_ray_task_errors_are_the_functions_own(ray_executor):
    mine = np.zeros((4, 8), np.uint8)
    theirs = np.array([[1] + [0] * 7, [0] * 8], np.uint8)
    with pytest.raises(ProtocolViolation, match="'bob' sent OPRF values out of order"):
        list(ray_executor.map(oprf._member, [(mine, theirs, "bob", "OPRF values")]))


def test_ray_ships_module_level_functions_only(ray_executor):
    with pytest.raises(ValueError, match="module-level functions"):
        list(ray_executor.map(lambda x: x, [(1,)]))


def test_ray_workers_run_this_code(ray_executor):
    ray_executor._check_code()              # the digest of mpc/ and protocols/ matches


@pytest.mark.parametrize("receivers", [None, ["b"]])
def test_oprf_psi_on_ray_matches_in_process(ray_executor, receivers):
    a, b = _sets(3000, 2500, 1200)
    kwargs = {"receivers": receivers, "bucket_size": 1024}          # 3 buckets
    run = lambda ex: mpc.run_local(oprf_psi, ["a", "b"], args={"a": (a,), "b": (b,)},  # noqa: E731
                                   kwargs={"a": kwargs, "b": kwargs}, triples=None, executor=ex)
    on_ray, here = run(ray_executor), run(None)
    common = set(a) & set(b)
    for p, items in (("a", a), ("b", b)):
        if receivers is not None and p not in receivers:
            assert on_ray[p] is None and here[p] is None
            continue
        assert list(on_ray[p].indices) == list(here[p].indices)
        assert on_ray[p].cardinality == here[p].cardinality == len(common)
        assert list(on_ray[p].indices) == [i for i, x in enumerate(items) if x in common]


def test_ecdh_psi_on_ray_matches_in_process(ray_executor, monkeypatch):
    monkeypatch.setattr(two_party, "CHUNK", 1000)               # several buckets, several chunks each
    a, b = _sets(6000, 5000, 2000)
    kwargs = {"bucket_size": 2500}
    run = lambda fn, ex: mpc.run_local(fn, ["a", "b"], args={"a": (a,), "b": (b,)},  # noqa: E731
                                       kwargs={"a": kwargs, "b": kwargs}, triples=None, executor=ex)
    on_ray, here = run(ecdh_psi, ray_executor), run(ecdh_psi, None)
    common = set(a) & set(b)
    for p, items in (("a", a), ("b", b)):
        assert list(on_ray[p].indices) == list(here[p].indices) == [i for i, x in enumerate(items) if x in common]
    counts = run(psi_cardinality, ray_executor)
    assert counts == {"a": len(common), "b": len(common)}


def _shapes(view):
    return [(type(v).__name__, str(v.dtype), v.shape) if isinstance(v, np.ndarray) else type(v).__name__
            for v in flatten(view)]


@pytest.mark.parametrize("fn", [oprf_psi, ecdh_psi])
def test_peers_see_the_same_messages_with_ray(ray_executor, fn):
    """What each party receives has the same kinds, dtypes and shapes whichever executor its
    peer uses: the executor changes where work runs, not what is sent."""
    a, b = _sets(3000, 2000, 700)
    kwargs = {"bucket_size": 1024}
    args = {"a": (a,), "b": (b,)}
    _, here = record_views(fn, ["a", "b"], args=args, kwargs={"a": kwargs, "b": kwargs}, triples=None)
    _, on_ray = record_views(fn, ["a", "b"], args=args, kwargs={"a": kwargs, "b": kwargs}, triples=None,
                             executor=ray_executor)
    for p in ("a", "b"):
        assert [s for s, _ in on_ray[p]] == [s for s, _ in here[p]]
        assert _shapes(on_ray[p]) == _shapes(here[p])


def test_server_with_a_ray_executor_runs_psi(ray_executor, tmp_path):
    import ray

    address = ray.get_runtime_context().gcs_address   # the party server joins this test's instance
    a, b = _sets(2000, 1500, 600)
    datasets = {"bank": {"accounts": {"frame": pd.DataFrame({"customer_id": a}), "id": "customer_id"}},
                "retailer": {"purchases": {"frame": pd.DataFrame({"customer_id": b}), "id": "customer_id"}}}
    ids = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]
    settings = {"bank": {"executor": {"kind": "ray", "address": address, "window": 4}}}
    with LocalCluster(["bank", "retailer"], datasets=datasets, dealer=False, tls=False,
                      settings=settings) as cluster:
        with cluster.client("bank") as client:
            frames = {m: client.run("psi.ecdh", ids=ids, method=m, receivers=["bank"], progress=False)
                      for m in ("oprf", "ecdh")}
        log, peer_log = cluster.log("bank"), cluster.log("retailer")
    common = set(a) & set(b)
    for frame in frames.values():
        assert list(frame.row) == [i for i, x in enumerate(a) if x in common]
    assert "executor ray" in log and "executor in-process" in peer_log
    assert not any(x in log for x in a[:50])          # items never reach the server's log


def test_an_unreachable_cluster_fails_fast_naming_it():
    pytest.importorskip("ray")
    from mpc.cluster import free_port

    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(executors.ExecutorError, match=f"cannot connect to the Ray cluster at '{address}'"):
        RayExecutor(address).start()
    assert time.monotonic() - t0 < 15
    settings = {"bank": {"executor": {"kind": "ray", "address": address}}}
    with pytest.raises(RuntimeError, match=r"exited with code 1(.|\n)*party.toml: \[executor\]: cannot connect "
                                           r"to the Ray cluster at"):
        with LocalCluster(["bank", "retailer"], dealer=False, tls=False, settings=settings):
            pass


# -- [executor] in party.toml ------------------------------------------------------------

def _config(executor: dict | None) -> dict:
    raw = {"party": "bank", "listen": "127.0.0.1:5000", "insecure": True}
    if executor is not None:
        raw["executor"] = executor
    return raw


def test_executor_table_defaults_to_in_process():
    cfg = parse_config(_config(None), Path("party.toml"))
    assert cfg.executor.kind == "in-process" and isinstance(cfg.executor.make(), InProcess)
    cfg = parse_config(_config({"kind": "ray", "address": "10.0.0.5:6379", "window": 8}), Path("party.toml"))
    made = cfg.executor.make()
    assert isinstance(made, RayExecutor) and made.address == "10.0.0.5:6379" and made.window == 8


@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "spark"}, r"party.toml: \[executor\]: key 'kind': 'spark' is not one of in-process, ray"),
    ({"kind": "ray"}, r"party.toml: \[executor\]: missing key 'executor.address'"),
    ({"kind": "ray", "address": "nowhere"}, r"key 'executor.address': 'nowhere' is not a host:port"),
    ({"kind": "ray", "address": 6379}, r"\[executor\]: key 'address' must be str, got int"),
    ({"kind": "ray", "address": "h:1", "threads": 2}, r"unknown key 'executor.threads'"),
    ({"kind": "in-process", "address": "h:1"}, r"key 'executor.address' applies to kind = 'ray'"),
    ({"kind": "ray", "address": "h:1", "window": 0}, r"key 'executor.window' must be positive"),
    ({"kind": "ray", "address": "h:1", "num_cpus": 4}, r"'executor.num_cpus' applies only to address = 'local'"),
    ({"workers": -1}, r"key 'executor.workers' must be positive"),
])
def test_bad_executor_tables_name_file_and_key(table, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(_config(table), Path("party.toml"))


# -- the circuit join and bucketed jobs on Ray ---------------------------------------------

def _join_stats(tmp_path, params: dict, executor, n: int = 3000, bucket_join_sizes: bool = False):
    """``join.stats`` between a and b through the registry, both parties in this process
    (run_local, OT triples: the dealer-free circuit join), their bucket-local work on
    ``executor``; returns (a's result, the joined frame pandas makes)."""
    from mpc.server.config import Dataset
    from mpc.server.data import DataStore
    from protocols import registry

    rng = np.random.default_rng(53)
    frames = {"a": pd.DataFrame({"id": rng.permutation(n), "x": rng.normal(10, 3, n).round(3)}),
              "b": pd.DataFrame({"id": rng.permutation(np.arange(n // 3, n // 3 + n)),
                                 "y": rng.integers(-50, 50, n)})}
    stores = {}
    for p, f in frames.items():
        f.to_csv(tmp_path / f"{p}.csv", index=False)
        stores[p] = DataStore(p, {"t": Dataset("t", tmp_path / f"{p}.csv", "id",
                                               {"id": "join_key", "x" if p == "a" else "y": "aggregate"})},
                              tmp_path / f"work-{p}-{id(executor)}", bucket_join_sizes=bucket_join_sizes)
    spec = registry.get("join.stats")
    params = spec.validate({"ids": ["a.t.id", "b.t.id"], "columns": ["a.t.x", "b.t.y"], "join": "circuit",
                            "stats": ["describe", "corr"], **params})
    out = mpc.run_local(lambda ctx: spec.run(ctx, params, stores[ctx.party]), ["a", "b"], triples="ot",
                        timeout=300, executor=executor)
    return out["a"], frames["a"].merge(frames["b"], on="id")


def _same_stats(on_ray: dict, here: dict, joined: pd.DataFrame) -> None:
    """The order statistics are exact (equal bit for bit); the moments go through fixed-point
    truncations and a square root on shares whose rounding depends on the random shares, so
    two in-process runs differ in the 9th digit too (a correlation in its 6th)."""
    assert on_ray["rows"] == here["rows"] == len(joined)
    exact = ["count", "min", "25%", "50%", "75%", "max"]
    pd.testing.assert_frame_equal(on_ray["describe"][exact], here["describe"][exact], check_exact=True)
    pd.testing.assert_frame_equal(on_ray["describe"], here["describe"], rtol=1e-7)
    pd.testing.assert_frame_equal(on_ray["corr"], here["corr"], atol=1e-4)       # 16 fractional bits
    want = joined[["x", "y"]].describe()
    for col, name in (("a.x", "x"), ("b.y", "y")):
        for stat in ("mean", "std", "min", "max", "50%"):
            assert on_ray["describe"].loc[col, stat] == pytest.approx(want.loc[stat, name], rel=1e-6, abs=1e-9)
    assert on_ray["corr"].loc["a.x", "b.y"] == pytest.approx(joined.x.corr(joined.y), abs=1e-4)


def test_circuit_join_stats_on_ray_matches_in_process_and_pandas(tmp_path, ray_executor, monkeypatch):
    """The dealer-free circuit join with its hashing, cuckoo tables, OKVS encoding and
    decoding as Ray tasks (several decoding chunks) gives the in-process statistics, which
    are pandas'."""
    from mpc.ss import circuit_join

    monkeypatch.setattr(circuit_join, "DECODE_CHUNK", 1000)
    params: dict = {}
    calls: list[str] = []
    real = ray_executor.map

    def counted(fn, args, shared=(), window=None):
        calls.append(fn.__name__)
        return real(fn, args, shared, window)

    monkeypatch.setattr(ray_executor, "map", counted)
    on_ray, joined = _join_stats(tmp_path, params, ray_executor)
    here, _ = _join_stats(tmp_path, params, None)
    _same_stats(on_ray, here, joined)
    assert {"_hash_chunk", "insert", "_evaluate_chunk", "okvs_table", "okvs_decoded"} <= set(calls)


def test_bucketed_circuit_join_stats_on_ray_matches_in_process_and_pandas(tmp_path, ray_executor, monkeypatch):
    """join.stats under a memory budget (4 buckets, a circuit join per bucket) on Ray, the
    spill's hashing and counts and each bucket's padding among the Ray tasks."""
    calls = _counted(monkeypatch, ray_executor)
    on_ray, joined = _join_stats(tmp_path, {"memory": "1MiB"}, ray_executor, n=12000, bucket_join_sizes=True)
    here, _ = _join_stats(tmp_path, {"memory": "1MiB"}, None, n=12000, bucket_join_sizes=True)
    _same_stats(on_ray, here, joined)
    assert calls.count("distinct_padded") == 2 * 4
    assert {"spill_bucket", "_distinct_counts", "okvs_table", "okvs_decoded"} <= set(calls)



# -- bucketed jobs' own work on Ray: the spill's hashing and counts, each bucket's padding -------

def test_spill_hashing_and_counts_on_ray_match_in_process(ray_executor, tmp_path):
    """:func:`protocols.buckets.spill_files` and the per-file distinct counts as Ray tasks
    give exactly the direct calls' spill files and counts."""
    from types import SimpleNamespace

    from protocols import buckets
    from protocols.psi.blocks import distinct, encode

    rng = np.random.default_rng(21)  # test data
    ids = rng.integers(0, 40000, 150000)                             # repeats: counts below rows
    words = encode(ids, "ids")[1]
    key = bytes(range(16))
    ctx = SimpleNamespace(executor=ray_executor, party="a")
    files = buckets.spill_files(ctx, words, key)
    np.testing.assert_array_equal(files, buckets.spill_bucket(words, key))
    assert len(executors.chunks(len(words), buckets.SPILL_CHUNK)) == 3          # several tasks
    sp = buckets.Spill(tmp_path / "spill", 0)
    rec = np.zeros(len(words), dtype=sp.dtype)
    rec["w"], rec["row"] = words, np.arange(len(words))
    sp.add(files, rec)
    counted = [int(c) for part in ray_executor.map(buckets._distinct_counts, (
        buckets._file_words(sp, i, buckets._COUNT_FILES) for i in range(0, buckets.SPILL, buckets._COUNT_FILES)))
        for c in part]
    assert counted == [len(distinct(sp.read(i, 1)["w"])[0]) for i in range(buckets.SPILL)]
    assert sum(counted) == len(np.unique(ids))


def test_padded_bucket_on_ray_matches_in_process(ray_executor):
    """:func:`protocols.buckets.padded_bucket` on Ray: the same distinct blocks in the same
    order and the same row -> block map as the direct call (the dummies are random either
    way); a bucket over its capacity raises the direct call's error."""
    from types import SimpleNamespace

    from protocols import buckets
    from protocols.psi.blocks import encode

    rng = np.random.default_rng(22)  # test data
    words = encode(rng.integers(0, 3000, 5000), "ids")[1]
    ctx = SimpleNamespace(executor=ray_executor, party="a")
    padded, inverse = buckets.padded_bucket(ctx, words, 4000, 3)
    want, want_inverse = buckets.distinct_padded(words, 4000, "party 'a'", 3)
    m = int(want_inverse.max()) + 1
    assert padded.shape == want.shape == (4000, 16)
    np.testing.assert_array_equal(padded[:m], want[:m])
    np.testing.assert_array_equal(inverse, want_inverse)
    np.testing.assert_array_equal(padded[inverse].view(np.uint64), words)
    with pytest.raises(RuntimeError, match=f"party 'a': bucket 3 holds {m} distinct ids, over its capacity 100"):
        buckets.padded_bucket(ctx, words, 100, 3)


def _counted(monkeypatch, ray_executor) -> list[str]:
    """The names of the functions ``ray_executor`` runs from now on."""
    calls: list[str] = []
    real = ray_executor.map

    def counted(fn, args, shared=(), window=None):
        calls.append(fn.__name__)
        return real(fn, args, shared, window)

    monkeypatch.setattr(ray_executor, "map", counted)
    return calls


def _id_stores(tmp_path, ids: dict[str, np.ndarray]) -> dict:
    """Each party's DataStore of one id column, twice: ("ray", party) and ("here", party)."""
    from mpc.server.config import Dataset
    from mpc.server.data import DataStore

    stores = {}
    for tag in ("ray", "here"):
        for p, v in ids.items():
            pd.DataFrame({"id": v}).to_csv(tmp_path / f"{p}.csv", index=False)
            stores[tag, p] = DataStore(p, {"t": Dataset("t", tmp_path / f"{p}.csv", "id", {"id": "join_key"})},
                                       tmp_path / f"work-{tag}-{p}")
    return stores


def test_bucketed_psi_on_ray_matches_in_process_and_python_sets(tmp_path, ray_executor, monkeypatch):
    """psi.ecdh under a memory budget (several buckets, OPRF per bucket): the spill's hashing
    and counts and each bucket's padding run as Ray tasks, and the receiver's matched rows
    are the in-process job's, which are Python's."""
    from protocols import registry

    rng = np.random.default_rng(23)
    ids = {"a": rng.permutation(np.arange(0, 14000)), "b": rng.permutation(np.arange(5000, 19000))}
    stores = _id_stores(tmp_path, ids)
    spec = registry.get("psi.ecdh")
    params = spec.validate({"ids": ["a.t.id", "b.t.id"], "receivers": ["a"], "memory": "1MiB"})
    calls = _counted(monkeypatch, ray_executor)
    out = {tag: mpc.run_local(lambda ctx, tag=tag: spec.run(ctx, params, stores[tag, ctx.party]), ["a", "b"],
                              triples=None, timeout=300, executor=ray_executor if tag == "ray" else None)
           for tag in ("ray", "here")}
    assert out["ray"]["b"] is None and out["here"]["b"] is None
    on_ray, here = out["ray"]["a"].load(), out["here"]["a"].load()
    pd.testing.assert_frame_equal(on_ray, here)
    common = set(ids["a"].tolist()) & set(ids["b"].tolist())
    assert list(on_ray.row) == [i for i, x in enumerate(ids["a"].tolist()) if x in common]
    assert calls.count("distinct_padded") >= 2 * 3                   # both parties, several buckets
    assert {"spill_bucket", "_distinct_counts", "_hash_chunk"} <= set(calls)


@pytest.mark.parametrize("parties", ["ab", "abc"])
def test_bucketed_cardinality_curve_work_runs_on_ray(tmp_path, ray_executor, monkeypatch, parties):
    """psi.cardinality under a memory budget (ECDH out of core; for three parties the
    ElGamal mix): every batch's curve work is a Ray task, and the count is the in-process
    job's and Python's."""
    from protocols import bucketed_cardinality, registry

    monkeypatch.setattr(bucketed_cardinality, "CHUNK", 256)          # several batches per step
    rng = np.random.default_rng(29)
    shared = rng.choice(10**6, 300, replace=False)
    ids = {p: rng.permutation(np.concatenate([shared, rng.choice(10**6, 400, replace=False) + (i + 1) * 10**6]))
           for i, p in enumerate(parties)}
    stores = _id_stores(tmp_path, ids)
    spec = registry.get("psi.cardinality")
    params = spec.validate({"ids": [f"{p}.t.id" for p in parties], "memory": "1GiB"})
    calls = _counted(monkeypatch, ray_executor)
    out = {tag: mpc.run_local(lambda ctx, tag=tag: spec.run(ctx, params, stores[tag, ctx.party]), list(parties),
                              triples=None, timeout=300, executor=ray_executor if tag == "ray" else None)
           for tag in ("ray", "here")}
    assert out["ray"] == out["here"] == dict.fromkeys(parties, 300)
    steps = {"hashed_blinded", "blinded"} if parties == "ab" else {"encrypted", "encrypted_mixed", "mixed",
                                                                    "decrypted", "blinded_ed25519", "mapped"}
    assert steps <= set(calls), set(calls)
