"""join.stats' statistics in bounded memory: the chunked passes of protocols.stats.chunked
give the unchunked results (exact ones exactly) and pandas', with the dealer and without
(triples="ot"), in memory and over gRPC; and a bucketed join.stats on party servers equals
the unbucketed job on the same data and pandas, for describe, corr and histogram. (The peak
memory itself is checked by bench/bench_scale.py, not here.)"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc import ss
from mpc.cluster import LocalCluster
from protocols import stats
from protocols.stats import chunked, scaling

N = 3001            # rows: with CHUNK 512 every pass runs in several chunks, with a short last one
QS = [0.0, 0.1, 0.25, 0.5, 0.9, 1.0]
OWNERS = {"big": "a", "tiny": "b", "count": "b"}


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20)
    big = rng.lognormal(3, 2.5, N).clip(1e-4, 1e4)
    return {"big": big, "tiny": 1e-4 * (np.log(big) + rng.normal(size=N)),
            "count": rng.integers(-50, 50, N)}


def _job(ctx, data):
    cols = {}
    for name, owner in OWNERS.items():
        value = data[name] if ctx.party == owner else None
        cols[name] = stats.share_scaled(ctx, value, owner, name=name)     # public bounds: one
        # selection for min, max and quartiles without a dealer (vertical._select_first)
    return {"describe": stats.describe(ctx, cols), "corr": stats.corr_matrix(ctx, cols),
            "hist": {k: stats.histogram(ctx, x, bins=7) for k, x in cols.items()},
            "q": stats.quantile(ctx, cols["tiny"], QS), "var": stats.var(ctx, cols["big"])}


@pytest.fixture
def sizes(monkeypatch):
    """Record the largest call of each chunked step, so a test sees that chunking happened."""
    seen: dict[str, int] = {}

    def spy(obj, name, size):
        real = getattr(obj, name)

        def wrapped(*args, **kwargs):
            seen[name] = max(seen.get(name, 0), size(*args))
            return real(*args, **kwargs)
        monkeypatch.setattr(obj, name, wrapped)

    spy(ss.order, "extremes", lambda x: x.size)
    spy(ss.order, "select", lambda ctx, keys, ranks: keys.size)
    spy(chunked.ss, "gram_matrix", lambda t, bits=64: t.size)
    spy(ss.SharedTensor, "rshift_hidden", lambda self, bits, limit: self.size)
    return seen


def _run(triples: str, transport: str):
    data = _data()
    return mpc.run_local(_job, ["a", "b"], args={"a": (data,), "b": (data,)}, transport=transport,
                         timeout=600, triples=triples)["a"]


@pytest.mark.parametrize(("triples", "transport"), [("dealer", "memory"), ("ot", "grpc")])
def test_chunked_statistics_equal_unchunked_and_pandas(monkeypatch, sizes, triples, transport):
    whole = _run(triples, transport)
    assert sizes["rshift_hidden"] >= N                      # unchunked: whole columns per call
    sizes.clear()
    monkeypatch.setattr(chunked, "CHUNK", 512)
    monkeypatch.setattr(chunked, "SELECT_ELEMENTS", 1024)
    got = _run(triples, transport)
    assert sizes.get("extremes", 0) <= 512 and sizes["gram_matrix"] <= 512 and sizes["rshift_hidden"] <= 512, sizes
    assert sizes["select"] <= N, sizes                      # one column per selection
    data = _data()
    frame = pd.DataFrame(data)
    # exact statistics: bit for bit the unchunked ones
    exact = ["count", "mean", "min", "25%", "50%", "75%", "max"]
    pd.testing.assert_frame_equal(got["describe"][exact], whole["describe"][exact], check_exact=True)
    np.testing.assert_array_equal(got["q"], whole["q"])
    for name in OWNERS:
        np.testing.assert_array_equal(got["hist"][name][0], whole["hist"][name][0])
        np.testing.assert_array_equal(got["hist"][name][1], whole["hist"][name][1])
    # and pandas'
    want = frame.describe().T
    enc = {k: _encoded(v) for k, v in data.items()}
    for name in OWNERS:
        for stat in ("count", "mean", "min", "25%", "50%", "75%", "max"):
            assert got["describe"].loc[name, stat] == pytest.approx(want.loc[name, stat], rel=1e-6, abs=1e-12)
        assert got["describe"].loc[name, "std"] == pytest.approx(want.loc[name, "std"], rel=1e-6)
        assert got["describe"].loc[name, "min"] == np.min(enc[name])     # an encoded value, exactly
        counts, edges = got["hist"][name]
        np.testing.assert_array_equal(counts, np.histogram(enc[name], bins=edges)[0])
    np.testing.assert_allclose(got["q"], np.quantile(enc["tiny"], QS), rtol=1e-9, atol=0)
    np.testing.assert_allclose(got["corr"].to_numpy(), frame.corr().to_numpy(), atol=1e-4)
    assert got["var"] == pytest.approx(frame.big.var(), rel=1e-6)


def _spilled_job(ctx, data, directory):
    """``_job`` on columns spilled to memory-mapped files, as the bucketed join leaves them
    (written in two parts); returns the results, whether every prepared column's X and r is
    file-backed, and what is left in the directory before and after ``chunked.close``."""
    from mpc.runtime import files
    ctx.state[chunked.SPILL] = directory / ctx.party
    cols = {}
    for name, owner in OWNERS.items():
        t = stats.share_scaled(ctx, data[name] if ctx.party == owner else None, owner, name=name)
        sp = chunked.spilled(ctx, iter([t[:1000], t[1000:]]), N)
        if scaling.bound_bits(t) is not None:
            scaling._note(sp, scaling.bound_bits(t))
        cols[name] = sp
    out = {"describe": stats.describe(ctx, cols), "corr": stats.corr_matrix(ctx, cols),
           "hist": {k: stats.histogram(ctx, x, bins=7) for k, x in cols.items()},
           "q": stats.quantile(ctx, cols["tiny"], QS), "var": stats.var(ctx, cols["big"])}
    prepared = stats.vertical.prepare_many(ctx, cols)
    mapped = all(not c.x.share.flags.writeable and not c.r.share.flags.writeable for c in prepared)
    left = sorted(p.name for p in (directory / ctx.party).iterdir())
    files.release(prepared[0].x.share)
    chunked.close(ctx)
    return out, mapped, left, (directory / ctx.party).exists()


@pytest.mark.parametrize("triples", ["dealer", "ot"])
def test_spilled_columns_give_the_in_memory_statistics(monkeypatch, tmp_path, triples):
    """Joined columns in memory-mapped files (the bucketed join's, protocols.stats.chunked.
    spilled): the same exact statistics as in memory, and pandas' others; X and r are
    file-backed, the files are unlinked from the start and close removes the directory."""
    monkeypatch.setattr(chunked, "CHUNK", 512)
    data = _data()
    whole = _run(triples, "memory")
    res = mpc.run_local(_spilled_job, ["a", "b"], args={p: (data, tmp_path) for p in ("a", "b")},
                        timeout=600, triples=triples)
    for party in ("a", "b"):
        got, mapped, left, exists = res[party]
        assert mapped and left == [] and not exists
    got = res["a"][0]
    exact = ["count", "mean", "min", "25%", "50%", "75%", "max"]
    pd.testing.assert_frame_equal(got["describe"][exact], whole["describe"][exact], check_exact=True)
    np.testing.assert_array_equal(got["q"], whole["q"])
    for name in OWNERS:
        np.testing.assert_array_equal(got["hist"][name][0], whole["hist"][name][0])
    frame = pd.DataFrame(data)
    np.testing.assert_allclose(got["describe"]["std"], frame.describe().T["std"], rtol=1e-6)
    np.testing.assert_allclose(got["corr"].to_numpy(), frame.corr().to_numpy(), atol=1e-4)
    assert got["var"] == pytest.approx(frame.big.var(), rel=1e-6)


def _encoded(values: np.ndarray) -> np.ndarray:
    """The values as the owner encodes them (protocols.stats.scaling), back as floats."""
    ints, shift = scaling.scale_column(values)
    return np.ldexp(ints.astype(np.float64), -shift)


# -- bucketed join.stats on party servers ------------------------------------------------------
ROWS = 20000        # per party; memory "1MiB" gives buckets of 4096 ids: 8 buckets


def _tables():
    rng = np.random.default_rng(21)
    common = rng.choice(10**9, ROWS // 3, replace=False)
    a_ids = np.concatenate([common, rng.choice(10**9, ROWS - len(common), replace=False) + 10**9])
    b_ids = np.concatenate([common, rng.choice(10**9, ROWS - len(common), replace=False) + 2 * 10**9])
    rng.shuffle(a_ids)
    rng.shuffle(b_ids)
    a = pd.DataFrame({"id": a_ids, "x": rng.lognormal(2, 2, ROWS), "k": rng.integers(0, 9, ROWS)})
    b = pd.DataFrame({"id": b_ids, "y": rng.normal(5, 3, ROWS)})
    return a, b


@pytest.mark.parametrize("dealer", [True, False], ids=["dealer", "no-dealer"])
def test_bucketed_join_stats_equals_unbucketed_and_pandas(tmp_path, dealer):
    a, b = _tables()
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_parquet(tmp_path / "b.parquet", row_group_size=5000)
    datasets = {"a": {"t": {"path": str(tmp_path / "a.csv"), "id": "id",
                            "columns": {"id": "join_key", "x": "aggregate", "k": "aggregate"}}},
                "b": {"t": {"path": str(tmp_path / "b.parquet"), "id": "id",
                            "columns": {"id": "join_key", "y": "aggregate"}}}}
    params = dict(ids=["a.t.id", "b.t.id"], columns=["a.t.x", "a.t.k", "b.t.y"],
                  stats=["describe", "corr", "histogram"], bins=6, progress=False)
    with LocalCluster(["a", "b"], datasets=datasets, tls=False, dealer=dealer,
                      limits={"job_timeout": 300.0, "bucket_join_sizes": True}) as cluster, \
            cluster.client("a") as client:
        bucketed = client.run("join.stats", memory="1MiB", **params)
        whole = client.run("join.stats", **params)
    joined = a.merge(b, on="id")
    names = {"a.x": "x", "a.k": "k", "b.y": "y"}
    assert bucketed["rows"] == whole["rows"] == len(joined)
    exact = ["count", "mean", "min", "max"]
    pd.testing.assert_frame_equal(bucketed["describe"][exact], whole["describe"][exact], check_exact=True)
    # the quartiles of 6666 rows are interpolated: within one unit of the result's scale (a
    # secret truncation, mpc.ss.order): 2^-30 for the integer column, 2^-50 of x and y
    quart = ["25%", "50%", "75%"]
    np.testing.assert_allclose(bucketed["describe"][quart], whole["describe"][quart], rtol=1e-12, atol=2.0 ** -29)
    for col in names:
        pd.testing.assert_frame_equal(bucketed["histogram"][col], whole["histogram"][col], check_exact=True)
    want = joined[list(names.values())].describe().T
    got = bucketed["describe"]
    for col, name in names.items():
        for stat in ["std", *exact, *quart]:
            assert got.loc[col, stat] == pytest.approx(want.loc[name, stat], rel=1e-6, abs=1e-9), (col, stat)
        hist = bucketed["histogram"][col]
        edges = np.concatenate([hist["lower"], hist["upper"][-1:]])
        owner = a if col.startswith("a.") else b
        shift = 0 if name == "k" else scaling.scale_column(owner[name].to_numpy())[1]
        enc = np.ldexp(np.round(np.ldexp(joined[name].to_numpy(np.float64), shift)), -shift)   # as encoded
        want_counts = np.histogram(enc, bins=edges)[0]
        shown = ~hist["suppressed"].to_numpy()                   # bins under min_group_size show -1
        assert shown.any()
        np.testing.assert_array_equal(hist["count"].to_numpy()[shown], want_counts[shown])
        assert np.all(hist["count"].to_numpy()[~shown] == -1)
    corr = joined[list(names.values())].corr().to_numpy()
    np.testing.assert_allclose(bucketed["corr"].to_numpy(), corr, atol=1e-4)
    np.testing.assert_allclose(bucketed["corr"].to_numpy(), whole["corr"].to_numpy(), atol=1e-5)


# -- owner ranks through the bucketed dealer-free join ---------------------------------------
def _rank_stores(tmp_path, a: pd.DataFrame, b: pd.DataFrame, tag: str = "") -> dict:
    from mpc.server.config import Dataset
    from mpc.server.data import DataStore
    stores = {}
    for p, frame in (("a", a), ("b", b)):
        path = tmp_path / f"{p}{tag}.csv"
        frame.to_csv(path, index=False)
        cols = {c: "join_key" if c == "id" else "aggregate" for c in frame.columns}
        stores[p] = DataStore(p, {"t": Dataset("t", path, "id", cols)}, tmp_path / f"{p}{tag}", bucket_join_sizes=True)
    return stores


def _tied_tables():
    """_tables() with ties: a.k integers 0..8, b.y 60% one value, and b.n an integer column
    (no public bound: min and max by the tournament, its quartiles on ranked keys after it)."""
    a, b = _tables()
    rng = np.random.default_rng(22)
    b["y"] = np.where(rng.random(len(b)) < 0.6, 3.25, b["y"])
    b["n"] = rng.integers(-50, 50, len(b))
    return a, b


def _whole_ranks(column: np.ndarray) -> np.ndarray:
    out = np.empty(len(column), np.int64)
    out[np.argsort(column, kind="stable")] = np.arange(len(column))
    return out


def _bucketed_join_job(ctx, params, store):
    from protocols import bucketed
    from protocols.jobs import _refs, own_ref
    memory = bucketed.joint_budget(ctx, params, store)
    values = [r for r in _refs(params, "columns") if r.party == ctx.party]
    try:
        rows, cols = bucketed.join(ctx, params, store, own_ref(ctx, params, "ids"), values, memory)
        ranks = {k: ss.order.rank_of(x) for k, x in cols.items()}
        return rows, {k: x.with_frac_bits(0).reveal() for k, x in cols.items()}, \
            {k: None if r is None else (r[0].reveal(), r[1]) for k, r in ranks.items()}
    finally:
        chunked.close(ctx)


def test_bucketed_join_carries_each_owners_whole_column_ranks(tmp_path):
    """With describe, the bucketed dealer-free join (8 buckets) carries, secret-shared, each
    joined row's rank in its owner's WHOLE column (all 20000 rows, every bucket; ties by
    input row), R = key_bits(20000) bits: the rank names the input row whose value is the
    joined one, and those rows are the joined ids'. Without describe, no ranks ride."""
    from protocols import registry
    a, b = _tied_tables()
    stores = _rank_stores(tmp_path, a, b)
    spec = registry.get("join.stats")
    base = dict(ids=["a.t.id", "b.t.id"], columns=["a.t.x", "a.t.k", "b.t.y", "b.t.n"], memory="1MiB",
                join="circuit")
    params = spec.validate({**base, "stats": ["describe"]})
    out = mpc.run_local(_bucketed_join_job, ["a", "b"], args={p: (params, stores[p]) for p in "ab"},
                        triples="ot", timeout=600)
    rows, values, ranks = out["a"]
    joined = set(a.id) & set(b.id)
    assert rows == len(joined) and out["b"][0] == rows
    for name, owner in (("a.x", a), ("a.k", a), ("b.y", b), ("b.n", b)):
        col = name.split(".")[1]
        rho, bits = ranks[name]
        assert bits == ss.order.key_bits(len(owner)) == 15
        rho = np.asarray(rho).astype(np.int64)
        shift = 0 if col in ("k", "n") else scaling.scale_column(owner[col].to_numpy())[1]
        enc = (scaling.scaled(owner[col].to_numpy(np.float64), shift, scaling.default_bits(len(owner))) if shift
               else owner[col].to_numpy())
        by_rank = np.argsort(_whole_ranks(enc))             # rank -> input row
        assert len(np.unique(rho)) == rows
        np.testing.assert_array_equal(np.asarray(values[name]).astype(np.int64), enc[by_rank[rho]])
        assert set(owner.id.to_numpy()[by_rank[rho]].tolist()) == joined
    params = spec.validate({**base, "stats": ["corr"]})
    out = mpc.run_local(_bucketed_join_job, ["a", "b"], args={p: (params, _rank_stores(tmp_path, a, b, "c")[p])
                                                              for p in "ab"}, triples="ot", timeout=600)
    assert all(r is None for r in out["a"][2].values())


def test_bucketed_describe_on_owner_ranks_equals_pandas_with_narrow_comparisons(tmp_path, monkeypatch,
                                                                                 opened_widths):
    """join.stats (describe + corr) in 8 buckets without a dealer, on columns full of ties and
    two integer columns: equal to pandas, and every opened comparison of describe's
    selections ran on the owners' ranks' R = key_bits(20000) = 15 bits, none on the values'
    60-odd (as after the unbucketed join: tests/test_join_circuit.py)."""
    from mpc.ss import order
    from protocols import registry
    monkeypatch.setattr(order, "SAMPLE_ABOVE", 256)
    a, b = _tied_tables()
    stores = _rank_stores(tmp_path, a, b)
    spec = registry.get("join.stats")
    params = spec.validate(dict(ids=["a.t.id", "b.t.id"], columns=["a.t.x", "a.t.k", "b.t.y", "b.t.n"],
                                stats=["describe", "corr"], memory="1MiB"))
    out = mpc.run_local(lambda ctx: spec.run(ctx, params, stores[ctx.party]), ["a", "b"], triples="ot",
                        timeout=600)["a"]
    names = ["x", "k", "y", "n"]
    plain = a.merge(b, on="id")[names]
    assert out["rows"] == len(plain)
    ref = plain.describe().T
    got = out["describe"].rename(index=lambda s: s.split(".")[1]).loc[names]
    np.testing.assert_allclose(got[ref.columns].to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(out["corr"].to_numpy(), plain.corr().to_numpy(), atol=1e-4)
    assert opened_widths == {order.key_bits(ROWS)}


def test_bucketed_join_views_with_ranks_depend_only_on_the_sizes(tmp_path):
    """Everything either party receives in the bucketed join that carries the owners' ranks:
    the same message structure and shapes whether the values (and so the ranks) are the
    tables' or shuffled among the rows, the counts and sizes fixed; every large array of
    words is uniform (plaintext ranks, below 2^15, would leave the top bits zero); the rank
    bit count received is the peer's public key_bits(rows)."""
    import math

    from mpc.runtime.views import flatten, record_views
    from protocols import registry
    a, b = _tied_tables()
    spec = registry.get("join.stats")
    params = spec.validate(dict(ids=["a.t.id", "b.t.id"], columns=["a.t.x", "a.t.k", "b.t.y", "b.t.n"],
                                stats=["describe"], memory="1MiB", join="circuit"))
    rng = np.random.default_rng(23)
    runs = []
    for tag, (fa, fb) in (("1", (a, b)), ("2", (a.assign(x=rng.permutation(a.x), k=rng.permutation(a.k)),
                                               b.assign(y=rng.permutation(b.y), n=rng.permutation(b.n))))):
        stores = _rank_stores(tmp_path, fa, fb, tag)
        out, views = record_views(_bucketed_join_job, ["a", "b"], args={p: (params, stores[p]) for p in "ab"},
                                  triples="ot", timeout=600)
        assert all(r is not None for r in out["a"][2].values())
        runs.append(views)
    for party in "ab":
        assert [_skeleton(v) for _, v in runs[0][party]] == [_skeleton(v) for _, v in runs[1][party]]
        metas = [v for _, v in runs[0][party] if isinstance(v, dict) and "rank_bits" in v]
        assert metas and all(v["rank_bits"] == ss.order.key_bits(ROWS) and v["ranks"] is True for v in metas)
        big = [x for x in flatten(runs[0][party]) if isinstance(x, np.ndarray)
               and x.dtype in (np.uint8, np.uint64) and x.nbytes >= 4096]
        assert len(big) > 10
        for x in big:
            bits = np.unpackbits(np.ascontiguousarray(x).view(np.uint8).reshape(-1, 1)[:1 << 18], axis=1)
            assert np.abs(bits.mean(axis=0) - 0.5).max() < 6 / math.sqrt(len(bits)), (party, x.dtype, x.shape)


def _skeleton(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _skeleton(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_skeleton(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape)
    return type(value).__name__
