"""SQL aggregates of two parties' tables under a memory budget (protocols.sql.bucketed): the
private join and the partial aggregates per hash bucket, merged on shares. Results equal
DuckDB's on the same data for every aggregate, with GROUP BY, HAVING (on shares and on the
opened values), ORDER BY / LIMIT and filters on shares; a job interrupted mid-way resumes
without redoing its finished buckets; what cannot merge is refused naming the SQL function,
its position and the budget; each party's view is the per-bucket join sizes and the result.
sql.rows of two tables under a budget (a PSI per bucket) gives DuckDB's rows and the
unbucketed job's frame, resumes, and tells a party outside the PSI nothing per bucket.

The jobs run the registry's sql.aggregate on the parties' real DataStores (files streamed,
checkpoints in their work directories) over the in-memory transport, except the last
test, which runs Client.query on two party servers."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mpc.runtime.errors import JobFailed
from mpc.runtime.local import run_local
from mpc.server.config import Dataset
from mpc.server.data import DataStore
from protocols import registry
from protocols.sql import bucketed as sql_buckets
from protocols.sql import compile_query, parse

N = 10000           # rows per party; memory "1MiB" gives buckets of 4096 ids: 4 buckets
MIN_GROUP = 5
J = "FROM a.t p JOIN b.t q ON p.id = q.id"
COLS = {"a": {"id": "join_key", "x": "aggregate", "k": "plaintext", "w": "aggregate"},
        "b": {"id": "join_key", "y": "aggregate", "seg": "plaintext", "z": "aggregate"},
        "c": {"id": "join_key", "tier": "plaintext", "v": "plaintext"}}


def _frames(n: int = N, seed: int = 20) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)   # test data
    a = pd.DataFrame({"id": rng.permutation(n), "x": rng.normal(50, 10, n).round(3), "k": rng.integers(0, 4, n),
                      "w": rng.lognormal(0, 2, n)})
    b = pd.DataFrame({"id": rng.permutation(np.arange(n // 4, n + n // 4)), "y": rng.integers(-40, 100, n),
                      "seg": rng.choice(["gold", "silver", "bronze"], n, p=[.3, .4, .3]),
                      "z": rng.normal(0, 1e-3, n)})
    b.loc[b.id.isin(range(n // 2, n // 2 + 3)), "seg"] = "rare"      # 3 joined rows: under MIN_GROUP
    return {"a": a, "b": b}


def _stores(root: Path, frames: dict[str, pd.DataFrame], consent: dict[str, bool] | None = None,
            tag: str = "", psi_sizes: bool = False, csv: str = "a") -> dict[str, DataStore]:
    stores = {}
    for p, f in frames.items():
        path = root / f"{p}{tag}.csv" if p == csv else root / f"{p}{tag}.parquet"
        f.to_csv(path, index=False) if p == csv else f.to_parquet(path, row_group_size=3000)
        ds = Dataset("t", path, "id", COLS[p], min_group_size=MIN_GROUP)
        stores[p] = DataStore(p, {"t": ds}, root / f"{p}{tag}", bucket_join_sizes=(consent or {}).get(p, True),
                              bucket_psi_sizes=psi_sizes)
    return stores


def _schemas() -> dict:
    return {p: [{"name": "t", "id": "id", "min_group_size": MIN_GROUP, "columns": c}] for p, c in COLS.items()}


def _params(sql: str, memory: str | None = "1MiB", **extra) -> dict:
    _, params = compile_query(parse(sql, _schemas()), join="circuit", reveal_to=extra.pop("reveal_to", None))
    if memory:
        params["memory"] = memory
    return registry.get("sql.aggregate").validate({**params, **extra})


def _run(stores: dict[str, DataStore], params: dict, **options) -> dict:
    spec = registry.get("sql.aggregate")
    return run_local(lambda ctx: spec.run(ctx, params, stores[ctx.party]), ["a", "b"], timeout=300, **options)


def _duck(frames: dict[str, pd.DataFrame]):
    """DuckDB with the parties' tables as a.t, b.t (c.t): the same SQL runs on the pooled data."""
    con = duckdb.connect()
    for p, f in frames.items():
        con.execute(f"CREATE SCHEMA {p}")
        con.register(f"{p}_df", f)
        con.execute(f"CREATE TABLE {p}.t AS SELECT * FROM {p}_df")
    return con


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frames = _frames()
    return frames, _stores(tmp_path_factory.mktemp("sqlb"), frames), _duck(frames)


@pytest.fixture
def bucket_runs(monkeypatch):
    """The private joins the bucketed SQL job runs, one entry (party, bucket) per run."""
    runs: list[tuple[str, int]] = []
    real = sql_buckets.join_bucket

    def counted(ctx, sp, b, *args):
        runs.append((ctx.party, b))
        return real(ctx, sp, b, *args)
    monkeypatch.setattr(sql_buckets, "join_bucket", counted)
    return runs


def _nb(stores: dict[str, DataStore]) -> int:
    """The buckets of the (only) checkpoint of party a."""
    manifests = list((stores["a"].workdir / "checkpoints").glob("*/manifest.json"))
    return max(json.loads(m.read_text())["state"]["nb"] for m in manifests)


def _compare(ours: pd.DataFrame, theirs: pd.DataFrame, keys: int, rel: float = 1e-9, atol: float = 0.0) -> None:
    """Our result (suppressed groups dropped) against DuckDB's, row by row in order."""
    kept = ours[~ours["suppressed"]] if "suppressed" in ours else ours
    kept = kept.drop(columns=["suppressed"], errors="ignore").reset_index(drop=True)
    assert list(kept.columns) == list(theirs.columns)
    assert len(kept) == len(theirs) and len(theirs), (kept, theirs)
    for c in theirs.columns[:keys]:
        assert kept[c].tolist() == theirs[c].tolist(), c
    for c in theirs.columns[keys:]:
        np.testing.assert_allclose(kept[c].to_numpy(float), theirs[c].to_numpy(float), rtol=rel, atol=atol, err_msg=c)


# (sql, how many leading outputs are group keys, relative tolerance, absolute tolerance: an
# expression is computed at the job's fixed point, 2^-16)
QUERIES = [
    (f"SELECT q.seg, COUNT(*) AS n, SUM(p.x) AS sx, AVG(q.y) AS ay, MIN(p.x) AS mn, MAX(q.y) AS mx, "
     f"VARIANCE(p.x) AS vx, STDDEV_POP(q.y) AS sy, STDDEV(q.z) AS sz, VAR_POP(p.w) AS vw {J} "
     "WHERE p.k < 3 GROUP BY q.seg HAVING COUNT(*) > 900 ORDER BY q.seg", 1, 1e-6, 0),
    (f"SELECT p.k, q.seg, COUNT(*) AS n, AVG(p.x) AS ax, MIN(q.y) AS mn {J} GROUP BY p.k, q.seg "
     "HAVING SUM(p.x) > 20000 AND MIN(q.y) < -38 ORDER BY n DESC, p.k LIMIT 5", 2, 1e-9, 0),
    (f"SELECT COUNT(*) AS n, SUM(p.x * q.y) AS sxy, AVG(p.x + q.y) AS a2, MIN(p.x - q.y) AS mn, "
     f"MAX(p.w) AS mw {J} WHERE p.x > q.y", 0, 1e-6, 2.0 ** -14),
    (f"SELECT CASE WHEN p.x > 50 THEN 'hi' ELSE 'lo' END AS band, COUNT(*) AS n, SUM(q.y) AS sy, "
     f"MAX(p.x) AS mx {J} WHERE q.seg <> 'rare' GROUP BY band HAVING SUM(q.y) > COUNT(*) * 29 ORDER BY band",
     1, 1e-9, 0),
    (f"SELECT q.seg, COUNT(*) AS n, VARIANCE(p.x) AS vx, STDDEV_POP(q.y) AS sy {J} GROUP BY q.seg "
     "HAVING (VARIANCE(p.x) > 100.5 OR STDDEV_POP(q.y) < 40.0) AND VARIANCE(p.x) < 1e6 "    # 1e6: Q clipped
     "AND VARIANCE(p.x) < 1e30 AND STDDEV(q.y) >= 0 AND COUNT(*) >= 5 ORDER BY q.seg", 1, 1e-6, 0),
    # COVAR/CORR of two parties' columns (a product on shares) and of one party's (its own
    # product); atol for correlations near 0
    (f"SELECT q.seg, COUNT(*) AS n, COVAR_POP(p.x, q.y) AS c1, COVAR_SAMP(p.x, p.w) AS c2, CORR(q.y, p.x) AS r1, "
     f"CORR(q.z, q.y) AS r2, VARIANCE(p.x) AS vx, CORR(p.w, p.x) AS r3 {J} WHERE p.k < 3 GROUP BY q.seg "
     "HAVING COUNT(*) > 900 AND CORR(q.y, p.x) < 0.5 ORDER BY q.seg", 1, 1e-4, 1e-6),
    (f"SELECT COUNT(*) AS n, COVAR_SAMP(p.x, q.y) AS c1, CORR(p.x, p.w) AS r1, COVAR_POP(q.y, q.z) AS c2, "
     f"CORR(p.w, q.z) AS r2 {J} WHERE q.y > 0 AND p.k <> 2", 0, 1e-4, 1e-6),
    # quantiles over all joined rows (no GROUP BY): of a's column, b's, an expression of both
    (f"SELECT COUNT(*) AS n, MEDIAN(p.x) AS mx, PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY q.y) AS p90, "
     f"QUANTILE_CONT(p.w, 0.25) AS qw, MEDIAN(p.x - q.y) AS md, SUM(q.y) AS sy {J} WHERE p.k < 3 "
     "HAVING MEDIAN(p.x) > 10", 0, 1e-9, 2.0 ** -14),
    # moments of expressions over all joined rows, beside those of bare columns
    (f"SELECT COUNT(*) AS n, VARIANCE(p.x * 2 - q.y) AS ve, STDDEV_POP(p.x + q.y) AS se, "
     f"COVAR_SAMP(p.x - q.y, q.y) AS ce, CORR(p.x * q.y, p.x) AS re, VARIANCE(p.x) AS vx, CORR(p.x, q.y) AS r "
     f"{J} WHERE p.k <> 1", 0, 1e-4, 1e-6),
]


@pytest.mark.parametrize(("sql", "keys", "rel", "atol"), QUERIES,
                         ids=["moments", "two-keys", "filter", "case", "having-variance", "covar-corr-grouped",
                              "covar-corr", "quantiles", "moments-of-expressions"])
def test_bucketed_sql_equals_duckdb(data, bucket_runs, sql, keys, rel, atol):
    frames, stores, con = data
    out = _run(stores, _params(sql))
    nb = _nb(stores)
    assert nb == 4 and sorted(b for p, b in bucket_runs if p == "a") == list(range(nb))
    _compare(out["a"], con.execute(sql).df(), keys, rel, atol)
    pd.testing.assert_frame_equal(out["a"], out["b"])


def test_merged_counts_sums_and_extremes_equal_the_unbucketed_job_exactly(data):
    """Every bucket scales a column as the unbucketed job does (over all kept rows): the
    merged counts, sums and MIN/MAX are the same ring integers."""
    frames, stores, con = data
    sql = (f"SELECT q.seg, COUNT(*) AS n, SUM(p.x) AS sx, SUM(q.z) AS sz, MIN(p.w) AS mn, MAX(q.y) AS mx {J} "
           "GROUP BY q.seg ORDER BY q.seg")
    bucketed = _run(stores, _params(sql))["a"]
    whole = _run(stores, _params(sql, memory=None))["a"]
    pd.testing.assert_frame_equal(bucketed, whole, check_exact=True)
    assert bucketed["suppressed"].tolist() == [False, False, True, False]      # 'rare': 1 joined row
    # DuckDB: within the owners' scaling (46 bits for 10^4 rows: w < 2^12 to 2^-34)
    _compare(bucketed, con.execute(sql).df().query("seg != 'rare'").reset_index(drop=True), 1, 1e-9, 2.0 ** -33)


@pytest.mark.parametrize(("select", "group"), [("p.k, ", " GROUP BY p.k ORDER BY p.k"), ("", "")],
                         ids=["grouped", "ungrouped"])
def test_bucketed_covariances_and_correlations_equal_the_unbucketed_jobs(data, select, group):
    """The same query with and without a budget: the bucketed job's offset sums (C S_uv - S_u
    S_v) and the unbucketed job's centred moments give the same COVAR/CORR within the
    fixed-point truncations."""
    frames, stores, con = data
    sql = (f"SELECT {select}COUNT(*) AS n, COVAR_POP(p.x, q.y) AS c1, COVAR_SAMP(q.z, q.y) AS c2, "
           f"CORR(p.x, q.y) AS r1, CORR(p.x, p.w) AS r2 {J} WHERE q.seg <> 'rare' AND p.x > 40{group}")
    bucketed = _run(stores, _params(sql))["a"]
    assert _nb(stores) == 4
    whole = _run(stores, _params(sql, memory=None))["a"]
    assert bucketed["n"].tolist() == whole["n"].tolist() and len(bucketed) == (4 if select else 1)
    for c in ("c1", "c2", "r1", "r2"):
        np.testing.assert_allclose(bucketed[c], whole[c], rtol=1e-4, atol=1e-6, err_msg=c)
    _compare(bucketed, con.execute(sql).df(), 1 if select else 0, 1e-4, 1e-6)


def test_an_interrupted_job_resumes_without_redoing_finished_buckets(tmp_path, monkeypatch):
    """Both parties stop at the start of bucket 2 (of 4), as a crash would leave them: the
    same job submitted again runs the private join of buckets 2 and 3 only, and gives
    DuckDB's result."""
    frames = _frames(seed=3)
    stores = _stores(tmp_path, frames)
    sql = (f"SELECT q.seg, COUNT(*) AS n, AVG(p.x) AS ax, MAX(q.y) AS mx, STDDEV(p.x) AS sx, "
           f"CORR(p.x, q.y) AS r {J} GROUP BY q.seg")
    params = _params(sql)
    real = sql_buckets.join_bucket

    def crash_at_2(ctx, sp, b, *args):
        if b == 2:
            raise ConnectionError("the server went away")
        return real(ctx, sp, b, *args)
    monkeypatch.setattr(sql_buckets, "join_bucket", crash_at_2)
    with pytest.raises(Exception, match="went away"):
        _run(stores, params)
    for p in "ab":
        manifest = json.loads(next((stores[p].workdir / "checkpoints").glob("*/manifest.json")).read_text())
        assert sorted(manifest["done"]) == [0, 1] and manifest["state"]["nb"] == 4
    runs: list[tuple[str, int]] = []

    def count(ctx, sp, b, *args):
        runs.append((ctx.party, b))
        return real(ctx, sp, b, *args)
    monkeypatch.setattr(sql_buckets, "join_bucket", count)
    out = _run(stores, params)
    assert sorted(runs) == [("a", 2), ("a", 3), ("b", 2), ("b", 3)]
    con = _duck(frames)
    _compare(out["a"].sort_values("seg").reset_index(drop=True),
             con.execute(sql + " ORDER BY q.seg").df().query("seg != 'rare'").reset_index(drop=True), 1, 1e-6,
             1e-6)


@pytest.mark.parametrize(("sql", "named"), [
    (f"SELECT q.seg, COUNT(*), MEDIAN(q.y) {J} GROUP BY q.seg", r"MEDIAN\(q\.y\) at line 1, column 30 \(a quantile"),
    (f"SELECT q.seg, PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY q.y) {J} GROUP BY q.seg",
     r"PERCENTILE_CONT\(0\.9\) WITHIN GROUP .* at line 1, column 29 \(a quantile"),
    (f"SELECT COUNT(*), CORR(p.x, q.y),\n  COVAR_POP(p.x * 2, q.y) {J} GROUP BY q.seg",
     r"COVAR_POP\(p\.x \* 2, q\.y\) at line 2, column 11 \(a covariance or correlation of an expression per group"),
    (f"SELECT VARIANCE(p.x), STDDEV(p.x * q.y) {J} WHERE p.x > q.y",
     r"STDDEV\(p\.x \* q\.y\) at line 1, column 28 \(a variance of an expression per group or under a filter"),
], ids=["median", "percentile", "covar-of-expression", "stddev-of-expression"])
def test_what_does_not_merge_is_refused_naming_the_function_its_position_and_the_budget(tmp_path, sql, named):
    """Columns are sqlglot's (the end of the function's name), as in the parser's errors."""
    stores = _stores(tmp_path, _frames(400))
    with pytest.raises(JobFailed, match=r"party '[ab]' refuses: sql.aggregate with " + named
                       + r".*is not bucketed .*dataset 't' has 400 rows.*memory budget of 1 MiB"):
        _run(stores, _params(sql))


def test_an_unmergeable_query_that_fits_the_budget_runs_unbucketed(tmp_path):
    frames = _frames(400)
    stores = _stores(tmp_path, frames)
    sql = f"SELECT q.seg, COUNT(*) AS n, MEDIAN(p.x) AS c {J} GROUP BY q.seg ORDER BY q.seg"
    out = _run(stores, _params(sql, memory="4GiB"))["a"]
    out = out[~out.suppressed]                  # 'rare': 3 joined rows
    joined = frames["a"].merge(frames["b"], on="id").groupby("seg").x.agg(["size", "median"]).drop("rare")
    assert out["seg"].tolist() == joined.index.tolist() and out["n"].tolist() == joined["size"].tolist()
    np.testing.assert_allclose(out["c"], joined["median"], atol=1e-4)
    assert not list((stores["a"].workdir / "checkpoints").glob("*/manifest.json"))     # no buckets


def test_one_party_table_streams_in_batches_under_a_budget_and_equals_duckdb(tmp_path, monkeypatch):
    """A query of a's table alone, its rows read 700 at a time: grouped counts, sums, extremes,
    variances and a correlation merged batch by batch, and quantiles from sorted runs on disk
    (with and without groups, q = 0 and 1 too), equal DuckDB's, under a budget the whole
    table would outgrow."""
    frames = _frames(10000)
    stores = _stores(tmp_path, frames)
    read = []
    real = DataStore.batches
    monkeypatch.setattr(DataStore, "batches", lambda self, refs, batch_rows=0: read.append(1)
                        or real(self, refs, 700))
    sql = ("SELECT CASE WHEN p.w > 1 THEN 'wide' ELSE 'narrow' END AS band, p.k, COUNT(*) AS n, SUM(p.x) AS sx, "
           "AVG(p.w) AS aw, MIN(p.x) AS mn, MAX(p.w) AS mx, VARIANCE(p.x) AS vx, STDDEV_POP(p.w) AS sw, "
           "COVAR_SAMP(p.x, p.w) AS cv, CORR(p.x, p.w) AS r FROM a.t p WHERE p.k <> 2 GROUP BY band, p.k "
           "ORDER BY band, p.k")
    out = _run(stores, _params(sql, memory="1MiB"))
    assert len(read) == 1 and out["b"] is not None
    _compare(out["a"], _duck(frames).execute(sql).df(), 2, 1e-9, 1e-12)
    pd.testing.assert_frame_equal(out["a"], out["b"], check_dtype=False)       # labels: str at a, object at b
    for q in ("SELECT COUNT(*) AS n, MEDIAN(p.x) AS md, QUANTILE_CONT(p.w, 0.9) AS q9 FROM a.t p WHERE p.k < 3",
              "SELECT p.k, MEDIAN(p.x + p.w) AS md, PERCENTILE_CONT(0.1) WITHIN GROUP (ORDER BY p.w) AS p1, "
              "QUANTILE_CONT(p.x, 0.0) AS lo, QUANTILE_CONT(p.x, 1.0) AS hi FROM a.t p GROUP BY p.k ORDER BY p.k"):
        got = _run(stores, _params(q, memory="1MiB"))["a"]
        _compare(got, _duck(frames).execute(q).df(), 1 if "GROUP BY" in q else 0, 1e-12, 1e-12)


def test_several_buckets_need_every_partys_consent_to_reveal_their_join_sizes(tmp_path):
    stores = _stores(tmp_path, _frames(), consent={"a": True, "b": False})
    with pytest.raises(JobFailed, match=r"sql.aggregate under this memory budget needs 4 buckets, and a bucketed "
                                        r"join reveals the number of joined rows in each bucket; party 'b' does not "
                                        r"allow it .*bucket_join_sizes = true"):
        _run(stores, _params(f"SELECT COUNT(*) {J}"))


def _shape(v):
    """A received value's structure: arrays by dtype and shape, bytes by length, the rest as is."""
    if isinstance(v, dict):
        return tuple(sorted((k, _shape(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_shape(x) for x in v)
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape)
    if isinstance(v, bytes):
        return ("bytes", len(v))
    return v


def _view_runs(tmp_path: Path, monkeypatch, sql: str) -> list[tuple[dict[str, pd.DataFrame], dict, dict]]:
    """``sql`` to a, 2 buckets, the dealer join, on two data sets with the same ids (the bucket
    key fixed from outside, so each id falls in the same bucket) and other values: (frames,
    results, views) of each run; b gets no result."""
    from mpc.runtime.views import record_views
    from protocols import buckets

    monkeypatch.setattr(buckets, "joint_key", lambda ctx, peer: bytes(range(16)))
    spec = registry.get("sql.aggregate")
    params = {**_params(sql, reveal_to="a"), "join": "dealer"}
    base = _frames(6000, seed=9)
    runs = []
    for tag, frames in (("1", base), ("2", {"a": base["a"].assign(x=base["a"].x.to_numpy()[::-1]),
                                            "b": base["b"].assign(y=-base["b"].y)})):
        stores = _stores(tmp_path, frames, tag=tag)
        out, views = record_views(lambda ctx, s=stores: spec.run(ctx, params, s[ctx.party]), ["a", "b"],
                                  timeout=300)
        assert out["b"] is None
        runs.append((frames, out, views))
    return runs


@pytest.mark.parametrize("extra", ["VARIANCE(p.x) AS vx", "COVAR_POP(p.x, q.y) AS c, CORR(p.x, p.w) AS r"],
                         ids=["variance", "covar-corr"])
def test_views_are_the_per_bucket_join_sizes_and_the_result(tmp_path, monkeypatch, extra):
    """reveal_to = a, 2 buckets, the dealer join. Two runs on the same ids (the bucket key
    fixed from outside, so each id falls in the same bucket) whose values differ and give
    other aggregates, with the same group counts: every message each party and the dealer
    receive has the same type, shape and plaintext content in both runs (values travel as
    ring words only). What b receives in plaintext is the job's public header (budget,
    distinct count, bucket size, a's column magnitudes, kept rows, min_group_size) and,
    per bucket, the join's positions, as many as the bucket's joined rows: no float, no
    count of a group; b gets no result. COVAR/CORR add only scales that follow from u's
    exponents and the kept rows: the product column u_x u_w's and u_x at work_bits."""
    from mpc.runtime.views import flatten
    from protocols.psi.oprf import capacity
    from protocols.stats.scaling import column_exponent, default_bits

    sql = (f"SELECT q.seg, COUNT(*) AS n, SUM(p.x) AS sx, MIN(q.y) AS mn, {extra} {J} "
           "GROUP BY q.seg HAVING COUNT(*) > 10")
    runs = []
    for frames, out, views in _view_runs(tmp_path, monkeypatch, sql):
        joined = frames["a"].merge(frames["b"], on="id")
        want = joined.groupby("seg").agg(n=("x", "size"), sx=("x", "sum"), mn=("y", "min")).reset_index()
        got = out["a"][~out["a"].suppressed].reset_index(drop=True)
        assert got["seg"].tolist() == want["seg"][want.n >= MIN_GROUP].tolist()
        np.testing.assert_allclose(got[["n", "sx", "mn"]].to_numpy(float),
                                   want[want.n >= MIN_GROUP][["n", "sx", "mn"]].to_numpy(float), rtol=1e-9)
        runs.append((out["a"], views, len(joined), frames))
    (first, v1, n1, base), (second, v2, _, _) = runs
    assert not np.allclose(first["sx"].dropna(), second["sx"].dropna())
    for p in ("a", "b", "dealer"):
        assert [(s, _shape(v)) for s, v in v1[p]] == [(s, _shape(v)) for s, v in v2[p]], p
    leaves = [x for x in flatten(v1["b"]) if not (isinstance(x, np.ndarray) and x.dtype in (np.uint64, np.uint8))]
    assert not [x for x in leaves if isinstance(x, float) or (isinstance(x, np.ndarray) and x.dtype.kind == "f")]
    positions = [x for x in leaves if isinstance(x, np.ndarray)]
    assert len(positions) == 2 and sum(len(x) for x in positions) == n1         # the per-bucket join sizes
    assert all(x.dtype == np.int64 for x in positions)
    # every other number b gets is public: a's column scales (the power of two of its largest
    # |x|, |x - o|, (x - o)^2), the budget, a's distinct ids and kept rows, the rows of a
    # bucket, its padded capacity, min_group_size, the protocols' versions and constants
    from protocols.stats._common import work_bits

    scales = set()
    bits = default_bits(6000)
    for c in ("x", "w"):
        x = base["a"][c].to_numpy()
        u = x - x.mean()
        scales |= {bits - column_exponent(x), bits - column_exponent(u), bits - column_exponent(u * u),
                   work_bits(6000) - column_exponent(u)}
    x, w = base["a"].x.to_numpy(), base["a"].w.to_numpy()
    scales.add(bits - column_exponent(x - x.mean()) - column_exponent(w - w.mean()))
    public = {0, 1, MIN_GROUP, 1 << 20, 6000, 4096, capacity(6000, 2), 16, 2048, 65536, 262144} | scales
    ints = {int(x) for x in leaves if isinstance(x, (int, np.integer)) and not isinstance(x, bool)}
    assert ints <= public, sorted(ints - public)


def test_views_of_bucketed_quantiles_are_the_per_bucket_join_sizes_and_the_result(tmp_path, monkeypatch):
    """MEDIAN, PERCENTILE_CONT and the VARIANCE of an expression over all joined rows in 2
    buckets (reveal_to = a, the dealer join), on two data sets with the same ids and other
    values: a gets DuckDB's values, b nothing. Besides shares (ring words, bytes), b
    receives no float, the join's positions as many as each bucket's joined rows, and the
    same public integers in both runs (the budget, the distinct and kept rows, the bucket
    size and capacity, a's column scales, min_group_size, the protocols' constants): the
    selection's opened comparisons are ring words of uniformly arranged keys (checked in
    tests/test_ss_select.py)."""
    from mpc.runtime.views import flatten

    sql = (f"SELECT COUNT(*) AS n, MEDIAN(p.x) AS mx, PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY q.y) AS p90, "
           f"SUM(p.x) AS sx, VARIANCE(p.x - q.y) AS ve {J}")
    publics = []
    for frames, out, views in _view_runs(tmp_path, monkeypatch, sql):
        _compare(out["a"], _duck(frames).execute(sql).df(), 0, 1e-6, 1e-9)
        leaves = [x for x in flatten(views["b"])
                  if not (isinstance(x, np.ndarray) and x.dtype in (np.uint64, np.uint8))]
        assert not [x for x in leaves if isinstance(x, float) or (isinstance(x, np.ndarray) and x.dtype.kind == "f")]
        positions = [x for x in leaves if isinstance(x, np.ndarray)]
        assert [x.dtype for x in positions] == [np.int64] * 2
        assert sum(len(x) for x in positions) == len(frames["a"].merge(frames["b"], on="id"))
        publics.append({int(x) for x in leaves if isinstance(x, (int, np.integer)) and not isinstance(x, bool)})
    assert publics[0] == publics[1] and 6000 in publics[0]


def test_client_query_with_a_memory_budget_on_two_servers(tmp_path):
    """Client.query(memory=) on two party servers (b's [limits] memory is larger: the smaller
    budget wins), an aggregate and a row-level query (also saved with ``to``: the server's result file,
    the same frame read back): DuckDB's results, none of the buckets
    resumed, their checkpoints removed once the result is written."""
    from mpc.cluster import LocalCluster

    frames = _frames(6000, seed=4)
    paths = {"a": tmp_path / "a.csv", "b": tmp_path / "b.parquet"}
    frames["a"].to_csv(paths["a"], index=False)
    frames["b"].to_parquet(paths["b"], row_group_size=2000)
    datasets = {p: {"t": {"path": str(paths[p]), "id": "id", "min_group_size": MIN_GROUP, "columns": COLS[p]}}
                for p in "ab"}
    con = _duck(frames)
    sql = (f"SELECT q.seg, COUNT(*) AS n, AVG(p.x) AS ax, MAX(q.y) AS mx, STDDEV(p.x) AS sd {J} "
           "WHERE p.k <> 1 GROUP BY q.seg HAVING AVG(p.x) > 49 ORDER BY q.seg")
    want = con.execute(sql).df()
    want = want[want.n >= MIN_GROUP].reset_index(drop=True)
    with LocalCluster(["a", "b"], datasets=datasets, tls=False, dealer=False,
                      limits={"job_timeout": 120.0, "bucket_join_sizes": True},
                      settings={"b": {"limits": {"memory": "64MiB"}}}) as cluster, cluster.client("a") as client:
        out = client.query(sql, memory="1MiB", join="circuit", progress=False)
        rows_sql = f"SELECT p.id, q.seg, p.k {J} WHERE p.k <> 1 AND q.seg <> 'gold'"     # sql.rows in buckets
        rows = client.query(rows_sql, memory="1MiB", progress=False)
        saved = client.query(rows_sql, memory="1MiB", progress=False, to=tmp_path / "rows.parquet")   # the file
        audits = [json.loads(x) for x in cluster.audit_log("a").read_text().splitlines()]
        assert [x["resumed_buckets"] for x in audits if x.get("protocol") == "sql.aggregate"] == [[]]
        assert [x["resumed_buckets"] for x in audits if x.get("protocol") == "sql.rows"] == [[], []]
        assert not cluster.checkpoints_left()
    _compare(out, want, 1, 1e-4)    # STDDEV: probabilistic truncation errs ~1e-6 relative
    assert _multiset(rows) == _multiset(con.execute(rows_sql).df()) and len(rows) > 1000
    pd.testing.assert_frame_equal(pd.read_parquet(saved), rows)


def test_buckets_without_joined_rows_merge_as_empty(tmp_path, monkeypatch):
    """With the bucket key fixed, the 12 shared ids all fall in bucket 0 of 4: buckets 1-3
    join no row (their partials are zero counts and sums, MIN/MAX the empty group's 2^60),
    and the merged result is DuckDB's."""
    from protocols import buckets
    from protocols.psi.blocks import encode

    key = bytes(range(16))
    monkeypatch.setattr(buckets, "joint_key", lambda ctx, peer: key)
    frames = _frames(9000, seed=8)
    a_ids = frames["a"].id.to_numpy()
    first = a_ids[buckets.spill_bucket(encode(a_ids, "ids")[1], key) < buckets.SPILL // 4][:12]
    b_ids = frames["b"].id.to_numpy() + 10**6
    b_ids[:12] = first
    frames["b"]["id"] = b_ids
    stores = _stores(tmp_path, frames)
    sql = f"SELECT COUNT(*) AS n, SUM(q.y) AS sy, MIN(p.x) AS mn, MAX(q.y) AS mx, STDDEV(p.x) AS sd {J}"
    out = _run(stores, _params(sql))["a"]
    assert _nb(stores) == 4
    saved = next((stores["a"].workdir / "checkpoints").glob("*/"))
    rows = [int(np.load(saved / f"bucket-{b}.npz")["rows"][0]) for b in range(4)]
    assert rows == [12, 0, 0, 0]
    con = _duck(frames)
    want = con.execute(sql).df()
    assert want["n"].tolist() == [12]
    _compare(out, want, 0, 1e-4)    # STDDEV of 12 rows: truncation errors of ~3e-6 relative seen


def test_explain_says_what_buckets_add_and_what_they_refuse():
    from protocols.sql import explain

    merged = explain(parse(f"SELECT q.seg, AVG(p.x), STDDEV(p.x) {J} GROUP BY q.seg", _schemas()))
    assert "runs in hash buckets" in merged and "number of joined rows in each bucket" in merged
    refused = explain(parse(f"SELECT q.seg, AVG(p.x), MEDIAN(q.y) {J} GROUP BY q.seg", _schemas()))
    assert "not in buckets (MEDIAN(q.y) at line 1, column 30" in refused and "refused if the input outgrows" in refused
    assert "runs in hash buckets" in explain(parse(f"SELECT CORR(p.x, q.y), COVAR_POP(p.w, p.x) {J}", _schemas()))
    assert "not in buckets (CORR(p.x + q.y, q.y) at line 1, column 18 (a covariance or correlation of an expression" \
        in explain(parse(f"SELECT q.seg, CORR(p.x + q.y, q.y) {J} GROUP BY q.seg", _schemas()))
    whole = explain(parse(f"SELECT CORR(p.x + q.y, q.y), MEDIAN(p.x) {J}", _schemas()))
    assert "runs in hash buckets" in whole and "the moments of expressions once on all buckets' joined rows" in whole
    three = explain(parse(f"SELECT r.tier, SUM(p.x) {J3} GROUP BY r.tier", _schemas()))
    assert "the rows aligned by the N-party PSI per bucket" in three and "bucket_psi_sizes" in three
    rows = explain(parse(f"SELECT p.id, q.seg {J}", _schemas()))
    assert "runs in hash buckets, an OPRF PSI per bucket with the same receivers; nothing more is revealed" in rows


# -- sql.rows under a budget: an OPRF PSI per bucket -----------------------------------------------
def _rows_params(sql: str, memory: str | None = "1MiB", reveal_to: str | None = None) -> dict:
    protocol, params = compile_query(parse(sql, _schemas()), reveal_to=reveal_to)
    assert protocol == "sql.rows"
    return registry.get("sql.rows").validate({**params, **({"memory": memory} if memory else {})})


def _run_rows(stores: dict[str, DataStore], params: dict, parties: list[str] | None = None) -> dict:
    """Each party's result as its client gets it (a result file loaded, through the codec)."""
    spec = registry.get("sql.rows")
    out = run_local(lambda ctx: spec.run(ctx, params, stores[ctx.party]), parties or ["a", "b"], timeout=300)
    return {p: _delivered(r) for p, r in out.items()}


def _delivered(result):
    """A job's result as the Result RPC delivers it: a result file read, a table through the
    codec's compact encoding, as Client.result decodes it."""
    from mpc import tables
    from mpc.runtime import codec

    if result is None:
        return None
    if isinstance(result, tables.ResultFile):
        result = result.load()
    with tables.compact_text():
        return codec.decode(codec.encode(result))


def _rows_nb(stores: dict[str, DataStore]) -> int:
    manifests = [json.loads(m.read_text()) for m in (stores["a"].workdir / "checkpoints").glob("*/manifest.json")]
    return max(m["state"]["nb"] for m in manifests if m["protocol"] == "sql.rows")


def _multiset(frame: pd.DataFrame) -> list[tuple]:
    return sorted(map(tuple, frame.astype(str).to_numpy().tolist()))


@pytest.mark.parametrize(("sql", "reveal_to"), [
    (f"SELECT p.id, p.k, q.seg {J} WHERE p.k < 3 AND q.seg <> 'gold'", None),
    (f"SELECT q.id AS qid, q.seg, p.k {J} WHERE p.k <> 1 ORDER BY q.seg, p.k DESC, qid LIMIT 50", None),
    (f"SELECT q.seg, p.id, p.k {J} WHERE q.seg IN ('gold', 'rare')", "b"),
], ids=["where-both", "order-limit", "reveal-to-b"])
def test_bucketed_sql_rows_equal_duckdb_and_the_unbucketed_job(tmp_path, sql, reveal_to):
    """2-4 buckets of 4096 ids (the kept rows'): the rows are DuckDB's (as a multiset) and the unbucketed job's,
    in its order: sorted by the join key as text without ORDER BY (unlinkable to either
    party's input order, which is a random permutation here)."""
    frames = _frames()
    stores = _stores(tmp_path, frames)
    out = _run_rows(stores, _rows_params(sql, reveal_to=reveal_to))
    assert _rows_nb(stores) > 1
    whole = _run_rows(stores, _rows_params(sql, memory=None, reveal_to=reveal_to))
    to = reveal_to or "a"
    for p in "ab":
        if reveal_to and p != reveal_to:
            assert out[p] is None and whole[p] is None
        else:
            pd.testing.assert_frame_equal(out[p], whole[p])
    want = _duck(frames).execute(sql).df()
    assert len(out[to]) == len(want) > 3 and list(out[to].columns) == list(want.columns)
    assert _multiset(out[to]) == _multiset(want)
    if "ORDER BY" not in sql:
        ids = out[to]["id"].astype(str).tolist()
        assert ids == sorted(ids)


def test_an_interrupted_rows_job_resumes_without_redoing_finished_buckets(tmp_path, monkeypatch):
    """Both parties stop at the PSI of bucket 2 (of 4): the job submitted again runs the PSI
    of buckets 2 and 3 only, and gives DuckDB's rows."""
    from protocols.sql import rows

    frames = _frames(seed=5)
    stores = _stores(tmp_path, frames)
    sql = f"SELECT p.id, q.seg, p.k {J} WHERE q.seg <> 'silver'"
    params = _rows_params(sql)
    real = rows.oprf_mask
    calls: dict[str, int] = {"a": 0, "b": 0}

    def crash_at_2(ctx, *args):
        calls[ctx.party] += 1
        if calls[ctx.party] == 3:
            raise ConnectionError("the server went away")
        return real(ctx, *args)
    monkeypatch.setattr(rows, "oprf_mask", crash_at_2)
    with pytest.raises(Exception, match="went away"):
        _run_rows(stores, params)
    for p in "ab":
        manifest = json.loads(next((stores[p].workdir / "checkpoints").glob("*/manifest.json")).read_text())
        assert sorted(manifest["done"]) == [0, 1] and manifest["state"]["nb"] == 4
    calls.update(a=0, b=0)
    monkeypatch.setattr(rows, "oprf_mask", lambda ctx, *args: (calls.__setitem__(ctx.party, calls[ctx.party] + 1),
                                                                real(ctx, *args))[1])
    out = _run_rows(stores, params)
    assert calls == {"a": 2, "b": 2}
    want = _duck(frames).execute(sql).df()
    assert _multiset(out["a"]) == _multiset(want) and len(want) > 1000


def test_a_bucketed_rows_job_tells_a_party_outside_the_psi_nothing_per_bucket(tmp_path, monkeypatch):
    """reveal_to = a and only a's columns are output: b is no PSI receiver. Two runs with the
    bucket key fixed and a's ids changed so that the intersection differs (in size and in
    each bucket), each party's distinct count the same: b receives messages of the same
    types, shapes and plaintext in both runs (it learns nothing of the intersection, as
    unbucketed), and a gets DuckDB's rows."""
    from mpc.runtime.views import record_views
    from protocols import buckets

    monkeypatch.setattr(buckets, "joint_key", lambda ctx, peer: bytes(range(16)))
    spec = registry.get("sql.rows")
    sql = f"SELECT p.id, p.k {J} WHERE p.k <> 3"
    params = _rows_params(sql, reveal_to="a")
    base = _frames(6000, seed=9)
    moved = base["a"].copy()
    moved.loc[moved.index[:2000], "id"] += 10**6              # 2000 of a's ids leave the intersection
    runs = []
    for tag, frames in (("1", base), ("2", {"a": moved, "b": base["b"]})):
        stores = _stores(tmp_path, frames, tag=tag)
        out, views = record_views(lambda ctx, s=stores: spec.run(ctx, params, s[ctx.party]), ["a", "b"],
                                  timeout=300)
        assert out["b"] is None and _rows_nb(stores) == 2
        want = _duck(frames).execute(sql).df()
        assert _multiset(_delivered(out["a"])) == _multiset(want)
        runs.append((len(want), views))
    (n1, v1), (n2, v2) = runs
    assert n1 != n2
    assert [(s, _shape(v)) for s, v in v1["b"]] == [(s, _shape(v)) for s, v in v2["b"]]


def test_a_bucketed_rows_job_refuses_ids_repeated_in_the_intersection(tmp_path):
    """As unbucketed (jobs.aligned_rows): rows are aligned one to one, so an id a holds twice
    among the joined ones fails the job naming the column."""
    frames = _frames()
    a = frames["a"]
    frames["a"] = pd.concat([a, a[a.id == 5000]], ignore_index=True)     # 5000: b holds it too
    stores = _stores(tmp_path, frames)
    with pytest.raises(JobFailed, match=r"column a\.t\.id has duplicate ids in the intersection"):
        _run_rows(stores, _rows_params(f"SELECT p.id, q.seg {J}"))


def test_a_large_bucketed_rows_result_is_never_held_whole(tmp_path, monkeypatch):
    """The joined rows are sorted, delivered and written a batch at a time: with input batches
    of 1024 rows (Parquet inputs: Arrow's CSV reader reads ahead by the file), batches of 512
    joined rows and text cells of about 1 KB, four times the joined rows (12000 against 3000)
    leave the peak memory from the joined rows' phase on (Python and numpy objects by
    tracemalloc, plus Arrow's pool, where pandas keeps text columns, sampled every
    millisecond) under 1.6 times as high (measured: 1.3), where holding the result (about 7 and
    27 MB) whole raises it threefold (checked: _write_result concatenating its batches first
    fails this); and the result file is written in batches of at most 512 rows."""
    import threading
    import tracemalloc

    import pyarrow as pa

    from mpc import tables
    from mpc.runtime.context import Context
    from protocols.sql import rows

    real = DataStore.batches
    monkeypatch.setattr(DataStore, "batches", lambda self, refs, batch_rows=1024: real(self, refs, 1024))
    monkeypatch.setattr(rows, "batch_rows", lambda memory, columns: 512)     # both results: many batches
    writes: list[int] = []
    real_write = tables.ResultWriter.write
    monkeypatch.setattr(tables.ResultWriter, "write", lambda self, f: (writes.append(len(f)), real_write(self, f)))
    arrow = {"on": False, "base": 0, "peak": 0}
    progress = Context.report_progress

    def phase(ctx, *args, **kw):        # measured from the joined rows' phase on (before it: the PSI)
        if str(kw.get("phase", "")).startswith("sql: the joined rows") and not arrow["on"]:
            tracemalloc.reset_peak()
            arrow.update(on=True, base=pa.total_allocated_bytes(), peak=0)
        return progress(ctx, *args, **kw)
    monkeypatch.setattr(Context, "report_progress", phase)
    sql = f"SELECT p.id, p.note, q.seg, q.text {J}"
    peaks, sizes = [], []
    for n in (4000, 16000):
        rng = np.random.default_rng(n)       # test data
        pad = "".join(map(chr, range(65, 65 + 26))) * 40           # 1040 characters a cell
        frames = _frames(n, seed=n)
        frames["a"]["note"] = [pad + str(v) for v in rng.integers(0, 10**9, n)]
        frames["b"]["text"] = [str(v) + pad for v in rng.integers(0, 10**9, n)]
        monkeypatch.setitem(COLS, "a", {**COLS["a"], "note": "plaintext"})
        monkeypatch.setitem(COLS, "b", {**COLS["b"], "text": "plaintext"})
        stores = _stores(tmp_path, frames, tag=str(n), csv="")
        params = _rows_params(sql)
        writes.clear()
        arrow["on"] = False
        stop = threading.Event()

        def sample(stop=stop):
            while not stop.wait(0.001):
                if arrow["on"]:
                    arrow["peak"] = max(arrow["peak"], pa.total_allocated_bytes() - arrow["base"])
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        tracemalloc.start()
        try:
            got = run_local(lambda ctx, s=stores, q=params: registry.get("sql.rows").run(ctx, q, s[ctx.party]),
                            ["a", "b"], timeout=300)
            peaks.append(tracemalloc.get_traced_memory()[1] + arrow["peak"])
        finally:
            tracemalloc.stop()
            stop.set()
            sampler.join()
        out = {p: _delivered(r) for p, r in got.items()}
        want = _duck(frames).execute(sql).df()
        assert _multiset(out["a"]) == _multiset(want)
        assert len(writes) >= len(want) // 512 and max(writes) <= 512, writes
        sizes.append(len(want))
    assert sizes[1] >= 3.9 * sizes[0]
    assert peaks[1] < 1.6 * peaks[0], (peaks, sizes)


# -- sql.rows of three tables under a budget: the N-party PSI per bucket ----------------------------
J3 = f"{J} JOIN c.t r ON r.id = p.id"


def _frames3(n: int = N, seed: int = 21) -> dict[str, pd.DataFrame]:
    """a and b as :func:`_frames`; c holds ids n/8 .. n + n/8 in random order, a text and an int column."""
    frames = _frames(n, seed)
    rng = np.random.default_rng(seed + 1)   # test data
    frames["c"] = pd.DataFrame({"id": rng.permutation(np.arange(n // 8, n + n // 8)),
                                "tier": rng.choice(["t1", "t2", "t3", "t10"], n), "v": rng.integers(-50, 50, n)})
    return frames


THREE_ROWS = [     # all slow: ~30 s each; the three-server query below (bucketed = unbucketed = DuckDB) and the
    # three-party view test (its rows = DuckDB's) keep three-party bucketed rows in the default run
    pytest.param(f"SELECT p.id, q.seg, r.tier, r.v {J3} WHERE p.k < 3 AND r.v > -30", None, marks=pytest.mark.slow),
    pytest.param(f"SELECT r.tier, p.k, r.id AS rid, q.seg {J3} WHERE q.seg <> 'gold' ORDER BY r.tier DESC, p.k, "
                 "rid LIMIT 500", None, marks=pytest.mark.slow),       # three parties: ~1 min each
    pytest.param(f"SELECT q.seg, r.v, p.id {J3} WHERE r.tier IN ('t1', 't10')", "c", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("sql", "reveal_to"), THREE_ROWS, ids=["where-all", "order-limit", "reveal-to-c"])
def test_bucketed_three_party_rows_equal_duckdb_and_the_unbucketed_job(tmp_path, sql, reveal_to):
    """Three tables, 2 buckets: every party's result is the unbucketed job's, as its client gets
    it, and the receivers' rows are DuckDB's (in id-as-text order without ORDER BY)."""
    frames = _frames3(6000)
    stores = _stores(tmp_path, frames, psi_sizes=True)
    params = _rows_params(sql, reveal_to=reveal_to)
    out = _run_rows(stores, params, ["a", "b", "c"])
    assert _rows_nb(stores) == 2
    whole = _run_rows(stores, _rows_params(sql, memory=None, reveal_to=reveal_to), ["a", "b", "c"])
    for p in "abc":
        if reveal_to and p != reveal_to:
            assert out[p] is None and whole[p] is None
        else:
            pd.testing.assert_frame_equal(out[p], whole[p])
    to = reveal_to or "a"
    want = _duck(frames).execute(sql).df()
    assert len(out[to]) == len(want) > 200 and list(out[to].columns) == list(want.columns)
    assert _multiset(out[to]) == _multiset(want)
    if "ORDER BY" not in sql:
        ids = out[to]["id"].astype(str).tolist()
        assert ids == sorted(ids)


@pytest.mark.parametrize(("sql", "reveal_to"), [
    ("SELECT r.v, r.tier FROM c.t r WHERE r.tier <> 't1'", None),
    ("SELECT r.tier, r.v FROM c.t r WHERE r.v > -20 ORDER BY r.tier DESC, r.v LIMIT 5000", "a"),
], ids=["input-order", "order-limit-to-a"])
def test_one_party_rows_under_a_budget_stream_and_equal_the_unbucketed_job(tmp_path, monkeypatch, sql, reveal_to):
    """sql.rows of c's table alone, its rows read 1500 at a time and delivered in batches of
    4096: every receiver's result file holds the unbucketed job's frame (input order, or
    ORDER BY with ties in input order, and LIMIT), which is DuckDB's rows; a party outside
    reveal_to gets None."""
    frames = _frames3(12000)
    stores = _stores(tmp_path, frames)
    real = DataStore.batches
    monkeypatch.setattr(DataStore, "batches", lambda self, refs, batch_rows=0: real(self, refs, 1500))
    out = _run_rows(stores, _rows_params(sql, reveal_to=reveal_to), ["a", "c"])
    whole = _run_rows(stores, _rows_params(sql, memory=None, reveal_to=reveal_to), ["a", "c"])
    for p in "ac":
        if reveal_to and p != reveal_to:
            assert out[p] is None and whole[p] is None
        else:
            pd.testing.assert_frame_equal(out[p], whole[p], check_dtype=False)
    got, want = out[reveal_to or "c"], _duck(frames).execute(sql).df()
    assert len(got) == len(want) > 4096 and _multiset(got) == _multiset(want)
    if "ORDER BY" in sql:
        assert got[["tier", "v"]].astype(str).values.tolist() == want[["tier", "v"]].astype(str).values.tolist()


def test_three_party_rows_in_several_buckets_need_every_partys_consent(tmp_path):
    """The N-party PSI per bucket tells the first receiver and the last party two sizes per
    bucket: without every party's [limits] bucket_psi_sizes the job is refused, saying so."""
    stores = _stores(tmp_path, _frames3(6000), psi_sizes=False)
    with pytest.raises(JobFailed, match=r"needs 2 buckets.*\[limits\] bucket_psi_sizes = true"):
        _run_rows(stores, _rows_params(f"SELECT p.id, r.tier {J3}"), ["a", "b", "c"])


def _run3(stores: dict[str, DataStore], params: dict) -> dict:
    spec = registry.get("sql.aggregate")
    return run_local(lambda ctx: spec.run(ctx, params, stores[ctx.party]), ["a", "b", "c"], timeout=300)


def test_bucketed_three_party_aggregates_equal_duckdb_and_the_unbucketed_job(tmp_path, monkeypatch):
    """Three tables, 2 buckets, the N-party PSI per bucket: grouped counts, sums, MIN/MAX, a
    variance and a HAVING, and an ungrouped median, equal DuckDB's, the grouped ones also the
    unbucketed job's (counts and integer extremes exactly; the unbucketed job scales a float
    column over the aligned rows, this one over the kept rows), each PSI run once per bucket;
    and without every party's bucket_psi_sizes consent the job is refused."""
    from protocols import bucketed

    frames = _frames3(4500)
    stores = _stores(tmp_path, frames, psi_sizes=True)
    grouped = (f"SELECT r.tier, COUNT(*) AS n, SUM(p.x) AS sx, MIN(q.y) AS mn, MAX(r.v) AS mx, "
               f"VARIANCE(p.x) AS vx {J3} WHERE p.k < 3 GROUP BY r.tier HAVING COUNT(*) > 200 ORDER BY r.tier")
    ungrouped = f"SELECT COUNT(*) AS n, MEDIAN(q.y + r.v) AS md, AVG(p.w) AS aw {J3} WHERE r.v > -30"
    hits = []
    real = bucketed.bucket_hits
    monkeypatch.setattr(sql_buckets, "bucket_hits", lambda ctx, rec, cap, b, *a: hits.append((ctx.party, b))
                        or real(ctx, rec, cap, b, *a))
    for sql, rel in ((ungrouped, 1e-9), (grouped, 1e-6)):
        out = _run3(stores, _params(sql))
        assert _nb(stores) == 2
        assert sorted(hits) == sorted((p, b) for p in "abc" for b in range(2))
        hits.clear()
        _compare(out["a"], _duck(frames).execute(sql).df(), 1 if sql is grouped else 0, rel, 2.0 ** -14)
        for p in "bc":
            pd.testing.assert_frame_equal(out[p], out["a"])
    whole = _run3(stores, _params(grouped, memory=None))["a"]
    pd.testing.assert_frame_equal(out["a"][["n", "mn", "mx"]], whole[["n", "mn", "mx"]], check_exact=True)
    pd.testing.assert_frame_equal(out["a"], whole, rtol=1e-6)      # floats: scaled over other rows
    refusing = _stores(tmp_path, frames, psi_sizes=False, tag="-no")
    with pytest.raises(JobFailed, match=r"sql.aggregate of three parties' tables .* needs 2 buckets.*bucket_psi_sizes"):
        _run3(refusing, _params(ungrouped))


def test_bucketed_three_party_aggregate_views_are_the_psi_the_shares_and_the_result(tmp_path, monkeypatch):
    """Three tables, 2 buckets, reveal_to = a, two runs on the same ids (the bucket key fixed
    from outside) whose values differ: b and c get no result, and every message each party
    receives has the same type and shape in both runs (the N-party PSI's points and the
    shares vary, nothing else); b and c receive no float and the same public integers in
    both runs (the budget, distinct counts, bucket sizes and capacities, the PSI's per-bucket
    sizes of the ids, the scales of a's columns, min_group_size, constants)."""
    from mpc.runtime.views import flatten, record_views
    from protocols import buckets

    monkeypatch.setattr(buckets, "joint_key_all", lambda ctx: bytes(range(16)))
    spec = registry.get("sql.aggregate")
    sql = (f"SELECT r.tier, COUNT(*) AS n, SUM(p.x) AS sx, MAX(q.y) AS mx {J3} GROUP BY r.tier "
           "HAVING COUNT(*) > 10 ORDER BY r.tier")
    params = _params(sql, reveal_to="a")
    base = _frames3(4500)
    runs = []
    for tag, frames in (("1", base), ("2", {**base, "a": base["a"].assign(x=base["a"].x.to_numpy()[::-1]),
                                            "b": base["b"].assign(y=-base["b"].y)})):
        stores = _stores(tmp_path, frames, tag=tag, psi_sizes=True)
        out, views = record_views(lambda ctx, s=stores: spec.run(ctx, params, s[ctx.party]), ["a", "b", "c"],
                                  timeout=300)
        assert out["b"] is None and out["c"] is None
        _compare(out["a"], _duck(frames).execute(sql).df(), 1, 1e-9)
        runs.append(views)
    for p in "abc":
        assert [(s, _shape(v)) for s, v in runs[0][p]] == [(s, _shape(v)) for s, v in runs[1][p]], p
    for p in "bc":
        publics = []
        for views in runs:
            leaves = [x for x in flatten(views[p]) if not (isinstance(x, np.ndarray) and x.dtype in (np.uint64,
                                                                                                      np.uint8))]
            assert not [x for x in leaves if isinstance(x, float) or (isinstance(x, np.ndarray)
                                                                      and x.dtype.kind == "f")], p
            publics.append(sorted(int(x) for x in leaves if isinstance(x, (int, np.integer))
                                  and not isinstance(x, bool)))
        assert publics[0] == publics[1], p


@pytest.mark.slow       # three parties, killed and resumed: ~1 min; the two-party resume stays in the default run
def test_an_interrupted_three_party_rows_job_resumes_without_redoing_finished_buckets(tmp_path, monkeypatch):
    """Every party stops at the PSI of bucket 2 (of 4) or, still finishing bucket 1 when another
    failed, in bucket 1: the job submitted again runs the PSI of the buckets not every party
    finished only, and gives DuckDB's rows."""
    from protocols.psi import multiparty

    frames = _frames3(9000, seed=6)
    stores = _stores(tmp_path, frames, psi_sizes=True)
    sql = f"SELECT p.id, q.seg, r.v {J3} WHERE q.seg <> 'silver'"
    params = _rows_params(sql)
    real = multiparty.run
    calls = {p: 0 for p in "abc"}

    def crash_at_2(ctx, *args):
        calls[ctx.party] += 1
        if calls[ctx.party] == 3:
            raise ConnectionError("the server went away")
        return real(ctx, *args)
    monkeypatch.setattr(multiparty, "run", crash_at_2)
    with pytest.raises(Exception, match="went away"):
        _run_rows(stores, params, ["a", "b", "c"])
    done = []
    for p in "abc":
        manifest = json.loads(next((stores[p].workdir / "checkpoints").glob("*/manifest.json")).read_text())
        assert manifest["state"]["nb"] == 4
        done.append(set(manifest["done"]))
    agreed = set.intersection(*done)      # a party still finishing bucket 1 when another failed: 0 only
    assert agreed in ({0}, {0, 1}) and all(d <= {0, 1} for d in done), done
    calls.update(a=0, b=0, c=0)
    monkeypatch.setattr(multiparty, "run", lambda ctx, *args: (calls.__setitem__(ctx.party, calls[ctx.party] + 1),
                                                                real(ctx, *args))[1])
    out = _run_rows(stores, params, ["a", "b", "c"])
    assert calls == {p: 4 - len(agreed) for p in "abc"}
    assert _multiset(out["a"]) == _multiset(_duck(frames).execute(sql).df()) and len(out["a"]) > 1000


def test_a_bucketed_three_party_rows_job_tells_the_non_receivers_nothing_per_bucket(tmp_path, monkeypatch):
    """reveal_to = a and only a's columns are output: a is the only PSI receiver (the N-party
    PSI's leader), b shuffles and c mixes. Two runs with the bucket key fixed and a's ids
    changed so that the three-way intersection differs (in size and in each bucket), every
    distinct count the same: b and c receive messages of the same types and shapes in both
    runs, and the same plaintext values (sizes, the mixer's counts of the b and c sets, which a's
    ids do not change), as the unbucketed reveal line says (c's per-bucket counts are of b's
    and c's sets, consented by bucket_psi_sizes); a gets DuckDB's rows."""
    from mpc.runtime.views import record_views
    from protocols import buckets

    monkeypatch.setattr(buckets, "joint_key_all", lambda ctx: bytes(range(16)))
    spec = registry.get("sql.rows")
    sql = f"SELECT p.id, p.k {J3} WHERE p.k <> 3"
    params = _rows_params(sql, reveal_to="a")
    base = _frames3(6000, seed=9)
    moved = base["a"].copy()
    moved.loc[moved.index[:2000], "id"] += 10**6              # 2000 of a's ids leave the intersection
    runs = []
    for tag, frames in (("1", base), ("2", {**base, "a": moved})):
        stores = _stores(tmp_path, frames, tag=tag, psi_sizes=True)
        out, views = record_views(lambda ctx, s=stores: spec.run(ctx, params, s[ctx.party]), ["a", "b", "c"],
                                  timeout=300)
        assert out["b"] is None and out["c"] is None and _rows_nb(stores) == 2
        want = _duck(frames).execute(sql).df()
        assert _multiset(_delivered(out["a"])) == _multiset(want)
        runs.append((len(want), views))
    (n1, v1), (n2, v2) = runs
    assert n1 != n2
    for p in "bc":
        assert [(s, _shape(v)) for s, v in v1[p]] == [(s, _shape(v)) for s, v in v2[p]], p
        assert [_ints(v) for _, v in v1[p]] == [_ints(v) for _, v in v2[p]], p


def _ints(value) -> list:
    """The plaintext integers of a message (sizes, counts, batch numbers), not its random bytes."""
    if isinstance(value, bool | int):
        return [value]
    if isinstance(value, dict):
        return [x for k in sorted(value) for x in [k, *_ints(value[k])]]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _ints(v)]
    return []


@pytest.mark.slow   # twins: the three-party view test (bucketed = DuckDB, in process), the two-server query test
def test_three_party_rows_with_a_memory_budget_on_three_servers(tmp_path):
    """Client.query(memory=) of three tables on three party servers consenting to the per-bucket
    sizes: DuckDB's rows, the same frame as the unbucketed query's, no bucket resumed, the
    checkpoints removed once the result is written."""
    from mpc.cluster import LocalCluster

    frames = _frames3(6000, seed=4)
    paths = {p: tmp_path / f"{p}.parquet" for p in "abc"}
    for p in "abc":
        frames[p].to_parquet(paths[p], row_group_size=2000)
    datasets = {p: {"t": {"path": str(paths[p]), "id": "id", "min_group_size": MIN_GROUP, "columns": COLS[p]}}
                for p in "abc"}
    sql = f"SELECT p.id, q.seg, r.tier, p.k {J3} WHERE p.k <> 1 AND q.seg <> 'gold'"
    with LocalCluster(["a", "b", "c"], datasets=datasets, tls=False, dealer=False,
                      limits={"job_timeout": 120.0, "bucket_psi_sizes": True}) as cluster, \
            cluster.client("a") as client:
        rows = client.query(sql, memory="1MiB", progress=False)
        whole = client.query(sql, progress=False)
        audits = [json.loads(x) for x in cluster.audit_log("a").read_text().splitlines()]
        assert [x["resumed_buckets"] for x in audits if x.get("protocol") == "sql.rows" and "resumed_buckets" in x] \
            == [[]]
        assert not cluster.checkpoints_left()
    pd.testing.assert_frame_equal(rows, whole)
    assert _multiset(rows) == _multiset(_duck(frames).execute(sql).df()) and len(rows) > 1000


def test_a_rows_job_interrupted_while_writing_its_result_resumes_after_every_bucket(tmp_path, monkeypatch):
    """a fails writing its second batch of result rows (the sorted runs of both parties on disk):
    the job submitted again runs no PSI (every bucket is finished), sorts afresh and gives
    DuckDB's rows in id order."""
    from mpc import tables
    from protocols.sql import rows

    frames = _frames(seed=7)
    stores = _stores(tmp_path, frames)
    sql = f"SELECT p.id, q.seg, p.k {J} WHERE p.k <> 2"
    params = _rows_params(sql)
    monkeypatch.setattr(rows, "batch_rows", lambda memory, columns: 1024)
    real_write = tables.ResultWriter.write
    calls = {"writes": 0, "psi": 0}

    def fail_second(self, frame):
        calls["writes"] += 1
        if calls["writes"] == 2:
            raise OSError("disk full")
        return real_write(self, frame)
    monkeypatch.setattr(tables.ResultWriter, "write", fail_second)
    with pytest.raises(Exception, match="disk full"):
        _run_rows(stores, params)
    assert list((next((stores["a"].workdir / "checkpoints").glob("*/"))).glob("sort-ids/run-*.parquet"))
    real = rows.oprf_mask
    monkeypatch.setattr(rows, "oprf_mask", lambda ctx, *args: (calls.__setitem__("psi", calls["psi"] + 1),
                                                                real(ctx, *args))[1])
    out = _run_rows(stores, params)
    assert calls["psi"] == 0 and calls["writes"] > 3
    want = _duck(frames).execute(sql).df()
    assert _multiset(out["a"]) == _multiset(want) and len(want) > 3000
    assert out["a"]["id"].astype(str).tolist() == sorted(out["a"]["id"].astype(str).tolist())
