"""SQL queries (Client.query, gaotie query) on a real cluster (bank, retailer, dealer), each
checked against DuckDB running the same SQL on the pooled plaintext tables."""

import json
import time

import duckdb
import numpy as np
import pandas as pd
import pytest

import mpc
from mpc import JobFailed
from mpc.cli import main
from mpc.cluster import LocalCluster
from protocols.sql import PolicyRefused, SqlError

J = "FROM bank.accounts b JOIN retailer.purchases r USING (customer_id)"
JON = "FROM bank.accounts b JOIN retailer.purchases r ON b.customer_id = r.customer_id"
MIN_GROUP = 5


@pytest.fixture(scope="module")
def cluster():
    rng = np.random.default_rng(5)  # test data
    nb, nr, ov = 220, 200, 160
    ids = [f"c{i:04d}" for i in range(nb + nr - ov)]
    bank = pd.DataFrame({"customer_id": ids[:nb], "income": rng.lognormal(10, .5, nb).round(2),
                         "segment": rng.choice(["mass", "affluent", "private", "vip"], nb, p=[.5, .36, .12, .02]),
                         "age": rng.integers(18, 80, nb), "score": rng.normal(0, 1, nb)})
    retail = pd.DataFrame({"customer_id": ids[nb - ov:], "spend": rng.gamma(2, 300, nr).round(2),
                           "visits": rng.poisson(8, nr), "channel": rng.choice(["web", "store"], nr),
                           "tier": rng.integers(1, 4, nr)})
    ds = {"bank": {"accounts": {"frame": bank, "id": "customer_id", "min_group_size": MIN_GROUP,
                                "columns": {"customer_id": "join_key", "income": "aggregate", "segment": "plaintext",
                                            "age": "aggregate", "score": "hidden"}}},
          "retailer": {"purchases": {"frame": retail, "id": "customer_id", "min_group_size": MIN_GROUP,
                                     "columns": {"customer_id": "join_key", "spend": "aggregate",
                                                 "visits": "aggregate", "channel": "plaintext",
                                                 "tier": "plaintext"}}}}
    con = duckdb.connect()
    con.execute("CREATE SCHEMA bank; CREATE SCHEMA retailer")
    con.register("bank_df", bank)
    con.register("retail_df", retail)
    con.execute("CREATE TABLE bank.accounts AS SELECT * FROM bank_df; "
                "CREATE TABLE retailer.purchases AS SELECT * FROM retail_df")
    with LocalCluster(["bank", "retailer"], tls=False, datasets=ds) as c:
        c.duck = con
        yield c


def _close(ours, theirs, rel):
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    assert np.allclose(ours, theirs, rtol=rel, atol=rel * 1e-3 + 1e-9), (ours, theirs)


# (sql, groups: how many leading outputs are group keys, tolerance, DuckDB's SQL if different)
QUERIES = [
    (f"SELECT COUNT(*) {JON}", 0, 1e-6, None),
    (f"SELECT COUNT(*) AS n, SUM(r.spend) AS total, AVG(b.income) AS mean_income {J}", 0, 1e-6, None),
    (f"SELECT MIN(b.income), MAX(r.spend), MIN(b.age), MAX(r.visits) {J}", 0, 1e-9, None),
    (f"SELECT STDDEV(b.income), VARIANCE(r.spend) {J}", 0, 1e-3, None),
    (f"SELECT STDDEV_SAMP(r.spend), VAR_SAMP(b.income), STDDEV_POP(b.age), VAR_POP(r.visits) {J}", 0, 1e-3, None),
    (f"SELECT CORR(b.income, r.spend), COVAR_SAMP(b.income, r.spend), COVAR_POP(b.age, r.visits) {J}", 0, 1e-3, None),
    (f"SELECT MEDIAN(r.spend) {J}", 0, 1e-3, None),
    (f"SELECT QUANTILE_CONT(b.income, 0.25) AS q1 {J}", 0, 1e-3, None),
    (f"SELECT PERCENTILE_CONT(0.9) WITHIN GROUP (ORDER BY r.spend) {J}", 0, 1e-3, None),
    (f"SELECT SUM(b.income * r.spend) {J}", 0, 1e-6, None),
    (f"SELECT AVG(r.spend - b.age), SUM(r.spend / 2 + 1), AVG(-r.visits) {J}", 0, 1e-6, None),
    (f"SELECT COUNT(r.visits), AVG(r.visits * r.visits) {J}", 0, 1e-6, None),
    (f"SELECT STDDEV(b.income - r.spend), CORR(b.age, r.spend * 2) {J}", 0, 1e-3, None),
    # WHERE on plaintext columns: pushed down to the owner
    (f"SELECT COUNT(*), AVG(r.spend) {J} WHERE b.segment = 'mass'", 0, 1e-6, None),
    (f"SELECT SUM(b.income) {J} WHERE r.channel IN ('web')", 0, 1e-6, None),
    (f"SELECT COUNT(*), MAX(b.income) {J} WHERE b.segment <> 'private' AND r.channel = 'store'", 0, 1e-6, None),
    (f"SELECT AVG(b.income) {J} WHERE NOT b.segment = 'mass' AND b.segment IS NOT NULL", 0, 1e-6, None),
    (f"SELECT MEDIAN(b.income) {J} WHERE r.channel = 'web'", 0, 1e-3, None),
    # WHERE on aggregate columns: evaluated on shares
    (f"SELECT COUNT(*), SUM(b.income) {J} WHERE r.spend > 500", 0, 1e-6, None),
    (f"SELECT COUNT(*), AVG(r.spend) {J} WHERE b.age BETWEEN 30 AND 50", 0, 1e-6, None),
    (f"SELECT COUNT(*) {J} WHERE r.visits IN (5, 6, 7)", 0, 1e-6, None),
    (f"SELECT COUNT(*), AVG(b.income) {J} WHERE r.spend > 500 OR b.age < 30", 0, 1e-6, None),
    (f"SELECT SUM(r.spend) {J} WHERE NOT (r.spend > 500)", 0, 1e-6, None),
    (f"SELECT COUNT(*) {J} WHERE r.spend > b.income / 50", 0, 1e-6, None),
    (f"SELECT COUNT(*), AVG(r.spend), STDDEV(r.spend) {J} WHERE b.age >= 40 AND r.channel = 'web'", 0, 1e-3, None),
    (f"SELECT MIN(r.spend), MAX(b.income) {J} WHERE b.age < 50", 0, 1e-9, None),
    (f"SELECT COUNT(*) {J} WHERE r.spend IS NOT NULL AND r.visits <= 8", 0, 1e-6, None),
    # GROUP BY plaintext columns of either party
    (f"SELECT b.segment, COUNT(*), AVG(r.spend) {J} GROUP BY b.segment", 1, 1e-6, None),
    (f"SELECT r.channel, SUM(b.income), AVG(b.income) {J} GROUP BY r.channel", 1, 1e-6, None),
    (f"SELECT b.segment, r.channel, COUNT(*) AS n, SUM(r.spend) {J} GROUP BY b.segment, r.channel", 2, 1e-6, None),
    (f"SELECT segment, AVG(income) AS a {J} GROUP BY 1", 1, 1e-6, None),
    (f"SELECT b.segment AS seg, AVG(r.spend), STDDEV(r.spend), VAR_SAMP(b.income) {J} GROUP BY seg", 1, 1e-3, None),
    (f"SELECT b.segment, CORR(b.income, r.spend), COVAR_SAMP(b.age, r.spend) {J} GROUP BY b.segment", 1, 1e-3, None),
    (f"SELECT r.channel, MIN(b.income), MAX(r.spend) {J} GROUP BY r.channel", 1, 1e-9, None),
    (f"SELECT b.segment, COUNT(*), SUM(r.spend) {J} WHERE r.spend > 400 GROUP BY b.segment", 1, 1e-6, None),
    (f"SELECT r.channel, AVG(b.income) {J} WHERE b.segment IN ('mass', 'affluent') GROUP BY r.channel", 1, 1e-6, None),
    (f"SELECT b.segment, SUM(b.income * r.spend) AS p {J} GROUP BY b.segment", 1, 1e-6, None),
    # quantiles per group and under a WHERE on shares (secret ranks)
    (f"SELECT b.segment, MEDIAN(r.spend), QUANTILE_CONT(b.income, 0.9) {J} GROUP BY b.segment", 1, 1e-3, None),
    (f"SELECT MEDIAN(b.income), PERCENTILE_CONT(0.25) WITHIN GROUP (ORDER BY r.spend) {J} WHERE r.visits > 8",
     0, 1e-3, None),
    (f"SELECT r.channel, QUANTILE_CONT(r.spend - b.age, 0.75) AS q {J} WHERE b.age < 60 GROUP BY 1", 1, 1e-3, None),
    # HAVING, ORDER BY, LIMIT on the opened result
    (f"SELECT b.segment, COUNT(*) AS n {J} GROUP BY b.segment HAVING COUNT(*) > 20 ORDER BY n DESC", 1, 1e-6, None),
    (f"SELECT b.segment, AVG(r.spend) AS a {J} GROUP BY b.segment HAVING AVG(r.spend) > 500 AND SUM(r.spend) > 0",
     1, 1e-6, None),
    (f"SELECT r.channel, b.segment, COUNT(*) AS n, SUM(r.spend) AS s {J} WHERE b.age > 25 GROUP BY 1, 2 "
     "HAVING NOT (SUM(r.spend) < 9000) OR AVG(b.income) >= 1e9", 2, 1e-6, None),
    (f"SELECT b.segment, STDDEV(r.spend) AS s {J} GROUP BY 1 HAVING STDDEV(r.spend) > 400", 1, 1e-3, None),
    # HAVING on MIN/MAX/quantiles/VARIANCE/STDDEV compared on shares
    (f"SELECT b.segment, r.channel, MIN(r.spend) AS lo, MAX(b.income) AS hi {J} GROUP BY 1, 2 "
     "HAVING MIN(r.spend) < 70 OR MAX(b.income) > 60000", 2, 1e-9, None),
    (f"SELECT b.segment, r.channel, MEDIAN(r.spend) AS m {J} GROUP BY 1, 2 HAVING MEDIAN(r.spend) > 550", 2, 1e-3,
     None),
    (f"SELECT b.segment, VAR_SAMP(b.income) AS v, STDDEV(r.spend) AS s {J} WHERE r.spend > 200 GROUP BY 1 "
     "HAVING VARIANCE(b.income) < 1.9e8 AND STDDEV(r.spend) >= 300", 1, 1e-3, None),
    (f"SELECT r.channel, b.segment, COUNT(*) AS n {J} GROUP BY 1, 2 HAVING VAR_POP(b.income) > -1 "
     "AND NOT STDDEV_POP(r.spend) < 0 AND QUANTILE_CONT(b.age, 0.5) BETWEEN 40 AND 50", 2, 1e-6, None),
    (f"SELECT b.segment, r.channel, AVG(r.spend) AS a {J} GROUP BY 1, 2 ORDER BY a DESC LIMIT 3", 2, 1e-6, None),
    (f"SELECT r.channel, COUNT(*) {J} GROUP BY r.channel ORDER BY AVG(b.income)", 1, 1e-6, None),
    # bucket expressions of aggregate columns as histograms
    (f"SELECT CASE WHEN r.spend < 300 THEN 'low' WHEN r.spend < 800 THEN 'mid' ELSE 'high' END AS band, "
     f"COUNT(*), AVG(b.income) {J} GROUP BY band", 1, 1e-6, None),
    (f"SELECT CASE WHEN b.age < 40 THEN 'young' ELSE 'old' END AS a, b.segment, COUNT(*) {J} GROUP BY 1, 2",
     2, 1e-6, None),
    (f"SELECT WIDTH_BUCKET(b.age, 20, 80, 3) AS bucket, COUNT(*), SUM(r.spend) {J} GROUP BY bucket", 1, 1e-6,
     f"SELECT CASE WHEN b.age < 20 THEN 0 WHEN b.age < 40 THEN 1 WHEN b.age < 60 THEN 2 WHEN b.age < 80 THEN 3 "
     f"ELSE 4 END AS bucket, COUNT(*), SUM(r.spend) {J} GROUP BY bucket"),
]


# one party's table: computed by its owner in plaintext, sent to the requester
SINGLE = [
    ("SELECT COUNT(*), AVG(spend), STDDEV(spend), MEDIAN(visits) FROM retailer.purchases", 0, 1e-9, None),
    ("SELECT channel, COUNT(*), SUM(spend), QUANTILE_CONT(spend, 0.75), CORR(spend, visits) "
     "FROM retailer.purchases p WHERE p.visits > 6 GROUP BY channel ORDER BY channel", 1, 1e-9, None),
    ("SELECT CASE WHEN spend < 500 THEN 'low' ELSE 'high' END AS band, MIN(spend), MAX(visits) "
     "FROM retailer.purchases WHERE channel = 'web' OR spend > 900 GROUP BY band", 1, 1e-9, None),
]


def _check(out: pd.DataFrame, want: pd.DataFrame, groups: int, rel: float, ordered: bool,
           complete: bool = True) -> None:
    assert len(out.columns) == len(want.columns) + (1 if groups else 0)
    if not groups:
        assert len(out) == 1
        for i in range(len(want.columns)):
            _close(out.iloc[0, i], want.iloc[0, i], rel)
        return
    kept = out[~out["suppressed"]].reset_index(drop=True)
    keys = [str(c) for c in want.columns[:groups]]
    want = want.copy()
    want.columns = [str(c) for c in want.columns]
    if ordered:     # the kept groups come in DuckDB's order
        ours = [tuple(r) for r in kept.iloc[:, :groups].astype(str).values]
        theirs = [tuple(r) for r in want.iloc[:, :groups].astype(str).values if tuple(r) in ours]
        assert ours == theirs[:len(ours)]
    for _, row in kept.iterrows():
        match = want[(want[keys].astype(str) == [str(row.iloc[i]) for i in range(groups)]).all(axis=1)]
        assert len(match) == 1, (row, want)
        for i in range(groups, len(want.columns)):
            _close(row.iloc[i], match.iloc[0, i], rel)
    if complete:    # every group of DuckDB's answer is in ours, kept or suppressed
        ours_keys = {tuple(r) for r in out.iloc[:, :groups].astype(str).values}
        assert {tuple(r) for r in want.iloc[:, :groups].astype(str).values} <= ours_keys
    sup = out[out["suppressed"]]
    for _, row in sup.iterrows():       # a suppressed group is small or empty in DuckDB's answer
        assert row.iloc[groups:-1].isna().all()


@pytest.mark.parametrize(("sql", "groups", "rel", "duck"), QUERIES, ids=[f"q{i:02d}" for i in range(len(QUERIES))])
def test_query_matches_duckdb(cluster, sql, groups, rel, duck):
    with cluster.client("bank") as client:
        out = client.query(sql, join="dealer", progress=False)
    want = cluster.duck.execute(duck or sql.replace(" LIMIT 3", "")).df()
    _check(out, want, groups, rel, ordered="ORDER BY" in sql, complete="LIMIT" not in sql)
    if "LIMIT" in sql:
        assert len(out) <= 3


@pytest.mark.parametrize(("sql", "groups", "rel", "duck"), SINGLE, ids=[f"single{i}" for i in range(len(SINGLE))])
@pytest.mark.parametrize("requester", ["bank", "retailer"])
def test_one_party_table_matches_duckdb(cluster, sql, groups, rel, duck, requester):
    with cluster.client(requester) as client:
        out = client.query(sql, progress=False)
    _check(out, cluster.duck.execute(duck or sql).df(), groups, rel, ordered="ORDER BY" in sql)


# row-level output: plaintext columns of one party's table; join keys and plaintext columns of the
# joined rows to the PSI receivers (reveal_to)
ROWS = [
    ("SELECT channel, tier FROM retailer.purchases WHERE tier >= 2 AND channel = 'web'", None),
    ("SELECT segment AS s FROM bank.accounts WHERE segment IN ('vip', 'private') ORDER BY s DESC", None),
    (f"SELECT customer_id, b.segment, r.channel, r.tier {J}", "bank"),
    (f"SELECT b.customer_id, r.tier {JON} WHERE b.segment = 'mass' AND r.channel = 'web' "
     "ORDER BY b.customer_id DESC LIMIT 7", "bank"),
    (f"SELECT r.customer_id AS id, b.segment {J} WHERE r.tier = 1 ORDER BY 1", "retailer"),
    (f"SELECT customer_id {J} WHERE r.tier <> 2", None),
]


def _rows(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(str(v) for v in row) for row in frame.itertuples(index=False)]


@pytest.mark.parametrize(("sql", "reveal_to"), ROWS, ids=[f"rows{i}" for i in range(len(ROWS))])
def test_row_level_output_matches_duckdb(cluster, sql, reveal_to):
    want = cluster.duck.execute(sql).df()
    with cluster.client(reveal_to or "bank") as client:
        out = client.query(sql, reveal_to=reveal_to, progress=False)
    assert list(out.columns) == [str(c) for c in want.columns]
    if "ORDER BY" in sql:     # the order keys come in DuckDB's order (ties in any order)
        assert _rows(out) == _rows(want) if "customer_id" in sql else sorted(_rows(out)) == sorted(_rows(want))
        first = out.columns[0]
        assert [str(v) for v in out[first]] == [str(v) for v in want[first]]
    else:
        assert sorted(_rows(out)) == sorted(_rows(want))
    assert len(out) > 0


def test_row_level_output_goes_to_reveal_to_only(cluster):
    """reveal_to=bank and only bank's columns and the key: the retailer gets nothing and, having no
    column to send, is no PSI receiver (explain says so)."""
    sql = f"SELECT customer_id, b.segment {J} WHERE b.segment = 'affluent'"
    with cluster.client("retailer") as client:
        assert client.query(sql, reveal_to="bank", progress=False) is None
        text = client.explain(sql, reveal_to="bank")
    lines = {line.split(":", 1)[0].strip(): line for line in text.splitlines()}
    assert "which of its own rows" in lines["bank"] and "which of its own rows" not in lines["retailer"]
    assert "sql.rows" in text and "PSI on" in text


@pytest.mark.parametrize(("sql", "column", "level"), [
    (f"SELECT customer_id, b.income {J}", "bank.accounts.income", "aggregate"),
    (f"SELECT r.channel, b.score {J}", "bank.accounts.score", "hidden"),
    (f"SELECT b.segment {J} WHERE r.spend > 100", "retailer.purchases.spend", "aggregate"),
    ("SELECT customer_id FROM retailer.purchases", "retailer.purchases.customer_id", "join_key"),
    ("SELECT channel FROM retailer.purchases WHERE visits > 3", "retailer.purchases.visits", "aggregate"),
])
def test_row_level_output_refuses_columns_beyond_their_policy(cluster, sql, column, level):
    with cluster.client("bank") as client, pytest.raises(PolicyRefused) as info:
        client.query(sql, progress=False)
    assert column in str(info.value) and f"'{level}'" in str(info.value) and "row" in str(info.value)


def test_explain_of_one_party_table(cluster):
    with cluster.client("bank") as client:
        text = client.explain("SELECT channel, AVG(spend) FROM retailer.purchases GROUP BY channel")
    assert "computed by its owner in plaintext" in text and "retailer (plaintext, its own rows)" in text


def test_one_party_table_still_refuses_row_level_output(cluster):
    with cluster.client("bank") as client, pytest.raises(PolicyRefused, match="retailer.purchases.spend"):
        client.query("SELECT spend FROM retailer.purchases", progress=False)


def test_query_with_the_ecdh_join_and_reveal_to_one_party(cluster):
    sql = f"SELECT b.segment, COUNT(*), AVG(r.spend), STDDEV(b.income) {J} WHERE r.channel = 'web' GROUP BY 1"
    with cluster.client("retailer") as client:
        out = client.query(sql, reveal_to="retailer", progress=False)
    _check(out, cluster.duck.execute(sql).df(), 1, 1e-3, ordered=False)
    with cluster.client("bank") as client:
        assert client.query(sql, reveal_to="retailer", join="dealer", progress=False) is None


def test_small_groups_are_suppressed_and_marked(cluster):
    sql = f"SELECT b.segment, COUNT(*) AS n, AVG(r.spend) {J} GROUP BY b.segment"
    counts = dict(cluster.duck.execute(sql).df()[["segment", "n"]].values)
    with cluster.client("bank") as client:
        out = client.query(sql, join="dealer", progress=False, min_group_size=25)
    assert set(out["segment"]) == set(counts)
    for _, row in out.iterrows():
        assert row["suppressed"] == (counts[row["segment"]] < 25)
        assert np.isnan(row["n"]) == row["suppressed"]
    assert out["suppressed"].any() and not out["suppressed"].all()


def test_a_secret_filter_suppresses_a_group_it_empties(cluster):
    sql = f"SELECT b.segment, COUNT(*) AS n {J} WHERE r.spend > 1500 GROUP BY b.segment"
    want = dict(cluster.duck.execute(sql).df().values)
    with cluster.client("bank") as client:
        out = client.query(sql, join="dealer", progress=False)
    for _, row in out.iterrows():
        n = want.get(row["segment"], 0)
        assert row["suppressed"] == (n < MIN_GROUP)
        if not row["suppressed"]:
            assert row["n"] == n


@pytest.mark.parametrize(("sql", "column", "level"), [
    (f"SELECT b.segment, b.income {J} GROUP BY b.segment", "bank.accounts.income", "aggregate"),
    (f"SELECT r.spend {J}", "retailer.purchases.spend", "aggregate"),
    (f"SELECT r.spend, COUNT(*) {J} GROUP BY r.spend", "retailer.purchases.spend", "aggregate"),
    (f"SELECT SUM(b.score) {J}", "bank.accounts.score", "hidden"),
    (f"SELECT COUNT(*) {J} WHERE b.score > 0", "bank.accounts.score", "hidden"),
    ("SELECT COUNT(*) FROM bank.accounts b JOIN retailer.purchases r ON b.income = r.spend",
     "bank.accounts.income", "aggregate"),
    (f"SELECT AVG(r.customer_id) {J}", "retailer.purchases.customer_id", "join_key"),
])
def test_policy_violations_are_refused_naming_the_column(cluster, sql, column, level):
    with cluster.client("bank") as client, pytest.raises(PolicyRefused) as info:
        client.query(sql, progress=False)
    assert column in str(info.value) and f"'{level}'" in str(info.value)


def test_every_party_checks_the_plan_against_its_policy(cluster):
    """A plan made without the client's checks (grouping by an aggregate column) is refused by the server."""
    from protocols.sql import compile_query, parse

    with cluster.client("bank") as client:
        schemas = {**client.datasets("bank"), **client.datasets("retailer")}
        plan = parse(f"SELECT b.segment, COUNT(*) {J} GROUP BY b.segment", schemas)
        plan.group_by[0].column = "retailer.purchases.spend"
        protocol, params = compile_query(plan, join="dealer")
        with pytest.raises(JobFailed, match="retailer.*spend.*policy 'aggregate'"):
            client.run(protocol, progress=False, **params)


def test_every_party_checks_a_row_plan_against_its_policy(cluster):
    """A row plan made without the client's checks (outputting an aggregate column, or filtering
    rows on one) is refused by the column's owner."""
    from protocols.sql import compile_query, parse

    with cluster.client("bank") as client:
        schemas = {**client.datasets("bank"), **client.datasets("retailer")}
        plan = parse(f"SELECT customer_id, r.channel {J}", schemas)
        plan.rows[1][1] = "retailer.purchases.spend"
        protocol, params = compile_query(plan, reveal_to="bank")
        assert protocol == "sql.rows"
        with pytest.raises(JobFailed, match="retailer.*spend.*policy 'aggregate'"):
            client.run(protocol, progress=False, **params)
        plan = parse(f"SELECT customer_id, r.channel {J} WHERE r.channel = 'web'", schemas)
        plan.pushdown["retailer"][0][2][1] = "retailer.purchases.visits"
        protocol, params = compile_query(plan, reveal_to="bank")
        with pytest.raises(JobFailed, match="retailer.*visits.*policy 'aggregate'"):
            client.run(protocol, progress=False, **params)


@pytest.mark.parametrize(("sql", "construct", "where"), [
    ("SELECT COUNT(*) FROM bank.accounts b LEFT JOIN retailer.purchases r USING (customer_id)", "LEFT JOIN",
     "line 1"),
    (f"SELECT COUNT(*) {J} WHERE r.spend > (SELECT 1)", "subquery", "line 1"),
    (f"SELECT SUM(r.spend) OVER () {J}", "window function", "line 1"),
    (f"SELECT COUNT(*) {J} JOIN bank.accounts c USING (customer_id) JOIN retailer.purchases d "
     "USING (customer_id)", "four or more tables", "line 1"),
    (f"SELECT COUNT(*) {J} JOIN bank.accounts c USING (customer_id)", "two tables of one party", "line 1"),
    (f"SELECT *\n{J}", "SELECT *", "line 1, column 8"),
    (f"SELECT COUNT(DISTINCT r.visits) {J}", "DISTINCT", "line 1"),
    (f"SELECT COUNT(*) {J} UNION SELECT 1", "UNION", ""),
    (f"SELECT SUM(r.spend / b.income) {J}", "division by a column", "line 1"),
    (f"SELECT AVG(r.spend) + 1 {J}", "arithmetic on aggregates", "line 1"),
    (f"SELECT COUNT(*) {J}\nWHERE r.spend LIKE 'x%'", "LIKE", "line 2"),
    (f"SELECT COUNT(*) {J} WHERE r.spend = 'x'", "string comparison on shares", "line 1"),
    (f"SELECT COUNT(*) {J} GROUP BY b.segment || 'x'", "GROUP BY", "line 1"),
    (f"SELECT COUNT(*) {J} WHERE", "syntax error", "line 1"),
    (f"SELECT r.tier + 1 {J}", "row-level SELECT", "line 1"),
    (f"SELECT b.segment {J}\nWHERE b.segment = r.channel", "across parties", "line 2"),
    (f"SELECT b.segment, COUNT(*) {J}", "beside aggregates", "line 1"),
])
def test_unsupported_sql_names_the_construct_and_its_position(cluster, sql, construct, where):
    with cluster.client("bank") as client, pytest.raises(SqlError) as info:
        client.explain(sql)
    message = str(info.value)
    assert construct in message and where in message and "\n" not in message, message


def test_explain_shows_protocols_plaintext_shares_and_what_each_party_learns(cluster):
    sql = (f"SELECT b.segment, AVG(r.spend), STDDEV(r.spend) {J} WHERE r.channel = 'web' AND b.age > 30 "
           "GROUP BY b.segment HAVING COUNT(*) > 5")
    with cluster.client("bank") as client:
        text = client.explain(sql, reveal_to="bank")
    assert "sql.aggregate" in text and "private join" in text
    assert "retailer (plaintext, its own rows only)" in text and "channel = 'web'" in text
    assert "(bank.accounts.age > 30) as a secret 0/1 weight" in text
    assert "secret-shared between bank and retailer" in text
    lines = {line.split(":", 1)[0].strip(): line for line in text.splitlines()}
    assert "AVG(retailer.purchases.spend)" in lines["bank"] and "only the variance" in lines["bank"]
    assert "centred moments" not in lines["bank"]
    assert "AVG" not in lines["retailer"] and "which groups are suppressed" in lines["retailer"]
    assert "nothing that depends on ids or values" in lines["dealer (if the deployment has one)"]
    assert "only whether each kept group passes is opened" in text and "HAVING drops" not in lines["bank"]
    with cluster.client("bank") as client:     # a HAVING on CORR runs on the opened values, and says so
        text = client.explain(f"SELECT b.segment, CORR(b.age, r.spend) AS c {J} GROUP BY 1 "
                              "HAVING CORR(b.age, r.spend) > 0")
    assert "HAVING drops" in text and "then HAVING" in text


def test_having_on_shares_drops_groups_and_keeps_the_suppressed_marked(cluster):
    """HAVING on a quantile and a variance runs on shares: the receiver gets the passing groups
    only (the others' values never open); suppressed groups stay, marked; explain says so."""
    sql = (f"SELECT b.segment, r.channel, COUNT(*) AS n, MEDIAN(r.spend) AS m {J} GROUP BY 1, 2 "
           "HAVING MEDIAN(r.spend) > 550 AND VARIANCE(b.income) > 1e8")
    want = cluster.duck.execute(sql).df()
    with cluster.client("bank") as client:
        out = client.query(sql, reveal_to="bank", join="dealer", progress=False, min_group_size=10)
        text = client.explain(sql, reveal_to="bank")
    kept = out[~out["suppressed"]]
    assert {(a, b) for a, b in kept[["segment", "channel"]].values} == \
        {(a, b) for a, b, n in want[["segment", "channel", "n"]].values if n >= 10}
    assert out["suppressed"].any() and out[out["suppressed"]]["m"].isna().all()
    assert "on shares: HAVING" in text and "only whether each kept group passes is opened" in text
    assert "HAVING drops" not in text and "secret ranks" in text


def _audited(cluster, protocol: str, sql: str) -> list[dict]:
    """The retailer's audit records of ``protocol`` jobs that ran ``sql``, waiting up to 10 s
    for one (the retailer writes it when the job ends there, maybe after the bank's client
    has the result)."""
    deadline = time.monotonic() + 10.0
    while True:
        path = cluster.audit_log("retailer")
        records = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        mine = [r for r in records if r["protocol"] == protocol and isinstance(r.get("params"), dict)
                and r["params"].get("sql") == sql]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.05)


def test_the_audit_log_records_the_sql_and_the_plan(cluster):
    sql = f"SELECT COUNT(*) AS audited {J}"
    with cluster.client("bank") as client:
        client.query(sql, join="dealer", progress=False)
    mine = _audited(cluster, "sql.aggregate", sql)
    assert mine and mine[-1]["params"]["plan"]["outputs"] == ["audited"]
    assert mine[-1]["outcome"] == "done"
    rows_sql = f"SELECT customer_id AS audited_id {J} WHERE r.tier = 2"
    with cluster.client("bank") as client:
        client.query(rows_sql, reveal_to="bank", progress=False)
    mine = _audited(cluster, "sql.rows", rows_sql)
    assert mine and mine[-1]["params"]["plan"]["rows"] == [["audited_id", "bank.accounts.customer_id"]]
    assert mine[-1]["outcome"] == "done"


def test_cli_query_formats_and_explain(cluster, capsys):
    server = cluster.addresses["bank"]
    sql = f"SELECT b.segment, COUNT(*) AS n {J} GROUP BY b.segment ORDER BY b.segment"
    want = cluster.duck.execute(sql).df()
    assert main(["query", sql, "--server", server, "--format", "json", "--join", "dealer", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    kept = {r["segment"]: r["n"] for r in rows if not r["suppressed"]}
    assert kept == {s: n for s, n in want.values if n >= MIN_GROUP}
    assert main(["query", sql, "--server", server, "--format", "csv", "--join", "dealer", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "segment,n,suppressed"
    assert main(["query", sql, "--server", server, "--explain"]) == 0
    assert "what each party learns:" in capsys.readouterr().out
    rows_sql = f"SELECT customer_id, r.tier {J} WHERE r.tier = 3"
    assert main(["query", rows_sql, "--server", server, "--format", "csv", "--reveal-to", "bank", "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "customer_id,tier" and len(lines) - 1 == len(cluster.duck.execute(rows_sql).df())
    assert main(["query", f"SELECT r.spend {J}", "--server", server]) == 2
    assert "policy 'aggregate'" in capsys.readouterr().err


# -- views: what each party and the dealer receive ---------------------------------------------------

class _Frames:
    """A LocalData over in-memory tables (the view test runs the job's function directly)."""

    def __init__(self, frames):
        self.frames = frames

    def column(self, ref):
        return self.frames[ref.dataset][ref.column].to_numpy()

    def min_group_size(self, ref):
        return MIN_GROUP


def _sql_job(ctx, params, frames):
    from protocols.sql.job import _run
    return _run(ctx, params, _Frames(frames))


def test_sql_views_dealer_sees_shapes_only_and_shares_are_masked():
    """Two runs whose values and secret filter outcomes differ, same shapes: the dealer's views
    are identical; the bank's received words of a row axis are uniform and uncorrelated with
    the retailer's secret (tests/test_views.py's checks)."""
    from test_views import assert_masked, dealer_view

    from mpc.runtime.views import record_views
    from protocols.sql import compile_query, parse

    n = 1024
    rng = np.random.default_rng(23)   # test data
    segment = rng.choice(["x", "y", "z"], n)
    schemas = {"bank": [{"name": "accounts", "id": "id", "min_group_size": MIN_GROUP,
                         "columns": {"id": "join_key", "segment": "plaintext"}}],
               "retailer": [{"name": "purchases", "id": "id", "min_group_size": MIN_GROUP,
                             "columns": {"id": "join_key", "spend": "aggregate"}}]}
    sql = ("SELECT b.segment, COUNT(*), AVG(r.spend), STDDEV(r.spend), MIN(r.spend), MEDIAN(r.spend) "
           "FROM bank.accounts b JOIN retailer.purchases r USING (id) WHERE r.spend > 0 GROUP BY b.segment")
    _, params = compile_query(parse(sql, schemas), join="dealer")
    runs = []
    for scale in (1.0, -250.0):
        s = rng.integers(0, 2, n)
        spend = (np.where(s == 1, 3.0, -1.0) + rng.normal(0, 0.1, n)) * scale
        order = rng.permutation(n)
        frames = {"bank": {"accounts": pd.DataFrame({"id": np.arange(n), "segment": segment})},
                  "retailer": {"purchases": pd.DataFrame({"id": order, "spend": spend[order]})}}
        res, views = record_views(_sql_job, ["bank", "retailer"],
                                  args={p: (params, frames[p]) for p in ("bank", "retailer")})
        pooled = pd.DataFrame({"segment": segment, "spend": spend})
        pooled = pooled[pooled.spend > 0].groupby("segment").spend.agg(["size", "mean", "std", "min", "median"])
        out = res["bank"].set_index("segment")
        for seg, row in pooled.iterrows():
            assert out.loc[seg].iloc[0] == row["size"]
            assert out.loc[seg].iloc[1:5].to_numpy(float) == pytest.approx(
                row[["mean", "std", "min", "median"]].to_numpy(float), rel=1e-3)
        assert_masked(views["bank"], s)
        runs.append(views)
    assert dealer_view(runs[0]) == dealer_view(runs[1])


def test_variance_of_an_offset_column_per_group_matches_pandas():
    """VARIANCE/STDDEV of one owner's column (its owner's offset and squares, V = C S2 - S1^2 on
    shares): a column 1e6 +- 0.01 and one spanning 1e-3..1e4 keep 1e-3 relative accuracy."""
    from mpc.runtime.views import record_views
    from protocols.sql import compile_query, parse

    n = 3000
    rng = np.random.default_rng(41)   # test data
    schemas = {"bank": [{"name": "accounts", "id": "id", "min_group_size": MIN_GROUP,
                         "columns": {"id": "join_key", "segment": "plaintext"}}],
               "retailer": [{"name": "purchases", "id": "id", "min_group_size": MIN_GROUP,
                             "columns": {"id": "join_key", "off": "aggregate", "wide": "aggregate"}}]}
    sql = ("SELECT b.segment, STDDEV(r.off), VAR_POP(r.wide), VARIANCE(r.off) "
           "FROM bank.accounts b JOIN retailer.purchases r USING (id) GROUP BY b.segment")
    _, params = compile_query(parse(sql, schemas), join="dealer")
    segment = rng.choice(["x", "y", "z"], n, p=[.7, .25, .05])
    off = 1e6 + rng.normal(0, 0.01, n) + (segment == "z") * 0.05
    wide = np.exp(rng.uniform(np.log(1e-3), np.log(1e4), n))
    frames = {"bank": {"accounts": pd.DataFrame({"id": np.arange(n), "segment": segment})},
              "retailer": {"purchases": pd.DataFrame({"id": np.arange(n), "off": off, "wide": wide})}}
    res, _ = record_views(_sql_job, ["bank", "retailer"], args={p: (params, frames[p]) for p in frames})
    pooled = pd.DataFrame({"segment": segment, "off": off, "wide": wide}).groupby("segment")
    out = res["bank"].set_index("segment")
    np.testing.assert_allclose(out.iloc[:, 0].to_numpy(float), pooled.off.std().to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(out.iloc[:, 1].to_numpy(float), pooled.wide.var(ddof=0).to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(out.iloc[:, 2].to_numpy(float), pooled.off.var().to_numpy(), rtol=1e-3)


def _rows_job(ctx, params, frames):
    from protocols.sql.rows import _run
    return _run(ctx, params, _Frames(frames))


def _psi_job(ctx, ids):
    from protocols.psi import ecdh_psi
    ecdh_psi(ctx, ids, receivers=["bank"])


def test_sql_rows_views_a_party_without_output_columns_sees_only_the_psi():
    """reveal_to=bank, output: the key and bank's plaintext column. The retailer receives exactly
    what a non-receiver of ecdh_psi receives (same messages, same shapes), and nothing after it,
    after the bank's memory budget (None: none; every bucketable job agrees on one first);
    the bank gets the rows DuckDB-style pandas finds."""
    from test_views import canonical

    from mpc.runtime.views import record_views
    from protocols.sql import compile_query, parse

    schemas = {"bank": [{"name": "accounts", "id": "id", "min_group_size": MIN_GROUP,
                         "columns": {"id": "join_key", "segment": "plaintext"}}],
               "retailer": [{"name": "purchases", "id": "id", "min_group_size": MIN_GROUP,
                             "columns": {"id": "join_key", "spend": "aggregate"}}]}
    sql = "SELECT id, b.segment FROM bank.accounts b JOIN retailer.purchases r USING (id) ORDER BY id"
    _, params = compile_query(parse(sql, schemas), reveal_to="bank")
    bank = pd.DataFrame({"id": np.arange(300), "segment": np.resize(["x", "y", "z"], 300)})
    retail = pd.DataFrame({"id": np.arange(150, 420)[::-1], "spend": np.linspace(0, 1, 270)})
    frames = {"bank": {"accounts": bank}, "retailer": {"purchases": retail}}
    res, views = record_views(_rows_job, ["bank", "retailer"], args={p: (params, frames[p]) for p in frames})
    assert res["retailer"] is None
    assert res["bank"]["id"].tolist() == list(range(150, 300))
    assert res["bank"]["segment"].tolist() == bank["segment"].iloc[150:300].tolist()
    _, psi_views = record_views(_psi_job, ["bank", "retailer"],
                                args={"bank": (bank["id"].to_numpy(),), "retailer": (retail["id"].to_numpy(),)})
    assert [v for _, v in views["retailer"][:1]] == [None]
    assert [canonical(v) for _, v in views["retailer"][1:]] == [canonical(v) for _, v in psi_views["retailer"]]


def _grouped_quantiles(ctx, x, groups, qs):
    from mpc import ss
    from protocols.sql import quantiles

    enc = np.round(x * 256).astype(np.int64)             # 8 fractional bits
    xs = ss.share(ctx, enc if ctx.party == "alice" else None, "alice").with_frac_bits(8)
    h = ss.share(ctx, (groups[None, :] == np.arange(3)[:, None]).astype(np.int64) if ctx.party == "bob" else None,
                 "bob").with_frac_bits(0)
    vals, frac = quantiles.grouped(xs, h, h.sum(axis=1), qs)
    return vals.reveal().astype(np.float64) * 2.0 ** -frac


@pytest.mark.parametrize("triples", ["dealer", "ot"])
def test_grouped_quantiles_with_secret_ranks_match_numpy(triples):
    """quantiles.grouped against numpy's linear quantiles of each group, with ties, a group of
    one row, q = 0 and 1; the dealer's 62-bit search and the dealer-free range-bit search."""
    rng = np.random.default_rng(3)   # test data
    x = np.round(rng.normal(50, 30, 150), 2)
    x[:20] = x[20]                                        # ties
    groups = rng.integers(0, 2, 150)
    groups[77] = 2                                        # a group of one row
    qs = [0.0, 0.25, 0.5, 0.9, 1.0]
    out = mpc.run_local(_grouped_quantiles, ["alice", "bob"], args={p: (x, groups, qs) for p in ("alice", "bob")},
                        triples=triples, timeout=300)
    enc = np.round(x * 256) / 256                         # the values as shared (8 fractional bits)
    want = np.array([[np.quantile(enc[groups == g], q) for q in qs] for g in range(3)])
    np.testing.assert_allclose(out["alice"], want, rtol=0, atol=2.0 ** -8)


def test_an_expression_that_would_overflow_the_ring_is_refused(cluster):
    """income * spend * income reaches ~2^53: its fixed-point product cannot fit; refused, never wrapped."""
    with cluster.client("bank") as client, pytest.raises(JobFailed, match="beyond what a product on shares holds"):
        client.query(f"SELECT SUM(b.income * r.spend * b.income) {J}", join="dealer", progress=False)


# -- three parties: rows aligned by multi-party PSI, then shares between all three -------------------

@pytest.fixture(scope="module")
def three():
    rng = np.random.default_rng(31)   # test data
    ids = [f"u{i:04d}" for i in range(260)]
    bank = pd.DataFrame({"customer_id": ids[:200], "income": rng.lognormal(10, .5, 200).round(2),
                         "segment": rng.choice(["mass", "affluent"], 200)})
    retail = pd.DataFrame({"customer_id": ids[40:240], "spend": rng.gamma(2, 300, 200).round(2)})
    ads = pd.DataFrame({"user_id": ids[20:260], "clicks": rng.poisson(3, 240),
                        "campaign": rng.choice(["spring", "summer"], 240)})
    ds = {"bank": {"accounts": {"frame": bank, "id": "customer_id", "min_group_size": MIN_GROUP,
                                "columns": {"customer_id": "join_key", "income": "aggregate", "segment": "plaintext"}}},
          "retailer": {"purchases": {"frame": retail, "id": "customer_id", "min_group_size": MIN_GROUP,
                                     "columns": {"customer_id": "join_key", "spend": "aggregate"}}},
          "ads": {"impressions": {"frame": ads, "id": "user_id", "min_group_size": MIN_GROUP,
                                  "columns": {"user_id": "join_key", "clicks": "aggregate", "campaign": "plaintext"}}}}
    con = duckdb.connect()
    for schema, table, frame in (("bank", "accounts", bank), ("retailer", "purchases", retail),
                                 ("ads", "impressions", ads)):
        con.execute(f"CREATE SCHEMA {schema}")
        con.register(f"{schema}_df", frame)
        con.execute(f"CREATE TABLE {schema}.{table} AS SELECT * FROM {schema}_df")
    with LocalCluster(["bank", "retailer", "ads"], tls=False, datasets=ds) as c:
        c.duck = con
        yield c


J3 = ("FROM bank.accounts b JOIN retailer.purchases r USING (customer_id) "
      "JOIN ads.impressions a ON a.user_id = b.customer_id")
THREE = [
    (f"SELECT COUNT(*), SUM(r.spend), AVG(b.income), AVG(a.clicks) {J3}", 0, 1e-6),
    (f"SELECT STDDEV(r.spend), CORR(b.income, r.spend), SUM(b.income * a.clicks) {J3}", 0, 1e-3),
    (f"SELECT a.campaign, b.segment, COUNT(*), AVG(r.spend) {J3} WHERE r.spend > 300 GROUP BY 1, 2", 2, 1e-6),
    (f"SELECT b.segment, MIN(r.spend), MAX(a.clicks), VAR_SAMP(b.income) {J3} WHERE a.campaign = 'spring' "
     "GROUP BY b.segment", 1, 1e-3),
    (f"SELECT b.segment, MEDIAN(r.spend), QUANTILE_CONT(a.clicks, 0.25) {J3} WHERE b.income > 15000 GROUP BY 1",
     1, 1e-3),
    (f"SELECT a.campaign, b.segment, COUNT(*), STDDEV(r.spend) {J3} GROUP BY 1, 2 "
     "HAVING MAX(a.clicks) >= 8 AND STDDEV(r.spend) > 465", 2, 1e-3),
]


@pytest.mark.parametrize(("sql", "groups", "rel"), THREE, ids=[f"three{i}" for i in range(len(THREE))])
def test_three_party_query_matches_duckdb(three, sql, groups, rel):
    with three.client("ads") as client:
        out = client.query(sql, progress=False)
    _check(out, three.duck.execute(sql).df(), groups, rel, ordered=False)


def test_three_party_row_level_output_matches_duckdb(three):
    sql = f"SELECT customer_id, b.segment, a.campaign {J3} WHERE a.campaign = 'summer' ORDER BY customer_id"
    with three.client("bank") as client:
        out = client.query(sql, reveal_to="ads", progress=False)
        assert out is None
    with three.client("ads") as client:
        out = client.query(sql, reveal_to="ads", progress=False)
    assert _rows(out) == _rows(three.duck.execute(sql).df())


def test_three_party_explain_says_rows_are_aligned_by_psi(three):
    with three.client("bank") as client:
        text = client.explain(f"SELECT COUNT(*) {J3}")
    assert "multi-party PSI" in text and "which of its own rows all three parties hold" in text
    assert text.count("which of its own rows all three parties hold") == 3   # one line per party
