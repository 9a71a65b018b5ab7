"""private_join(method="circuit"), the dealer-free circuit join, against pandas merge:
memory and gRPC, several buckets, duplicate ids, empty and full joins, malformed peer
messages, join="auto", and the views (what each party receives does not depend on which
rows matched, beyond the count)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc.runtime.errors import JobFailed
from mpc.runtime.views import flatten, record_views
from mpc.ss import circuit_join as engine
from protocols.psi import private_join
from protocols.psi.private_join import resolve_method

RNG = np.random.default_rng(11)          # test data only



def _job(ctx, ids, frame, **kw):
    t = private_join(ctx, ids, frame, method="circuit", **kw)
    return t.num_rows, t.columns, {c: t[c].reveal() for c in t.columns}


def run(a, b, transport="memory", **kw):
    return mpc.run_local(_job, ["alice", "bob"], args={"alice": a, "bob": b}, kwargs={"alice": kw, "bob": kw},
                         transport=transport, triples="ot", timeout=300)


def tables(n_a, n_b, overlap, kind="int"):
    ids = RNG.choice(10 * (n_a + n_b) + 10, n_a + n_b - overlap, replace=False)
    if kind == "str":
        ids = np.array([f"cust-{i}" for i in ids], dtype=object)
    a = pd.DataFrame({"id": ids[:n_a], "x": RNG.normal(size=n_a), "k": RNG.integers(-1000, 1000, n_a),
                      "arow": np.arange(n_a)})
    b = pd.DataFrame({"id": ids[n_a - overlap:], "y": RNG.lognormal(0, 2, n_b).clip(1e-3, 1e3),
                      "brow": np.arange(n_b)})
    return a, b


def check(a, b, out):
    """Both parties agree on the shape; the revealed rows are pandas' merge (as a set)."""
    expected = a.merge(b, on="id").sort_values("arow").reset_index(drop=True)
    n, names, cols = out["alice"]
    assert out["bob"][:2] == (n, names)
    assert names == ["alice.x", "alice.k", "alice.arow", "bob.y", "bob.brow"]
    assert n == len(expected)
    got = pd.DataFrame({c.split(".")[1]: v for c, v in cols.items()}).sort_values("arow").reset_index(drop=True)
    assert (got.arow.to_numpy() == expected.arow.to_numpy()).all()
    assert (got.brow.to_numpy() == expected.brow.to_numpy()).all()           # rows stay aligned
    assert (got.k.to_numpy() == expected.k.to_numpy()).all()
    np.testing.assert_allclose(got.x, expected.x, atol=2e-5)
    np.testing.assert_allclose(got.y, expected.y, atol=2e-5)
    return cols


def _run_frames(a, b, transport="memory", **kw):
    return run((a.id.tolist() if a.id.dtype == object else a.id.to_numpy(), a.drop(columns="id")),
               (b.id.tolist() if b.id.dtype == object else b.id.to_numpy(), b.drop(columns="id")), transport, **kw)


@pytest.mark.parametrize("n_a, n_b, overlap", [(300, 200, 120), (50, 400, 50), (1, 1, 1), (2000, 1500, 700)])
def test_matches_pandas_merge(n_a, n_b, overlap):
    a, b = tables(n_a, n_b, overlap)
    cols = check(a, b, _run_frames(a, b))
    if overlap > 20:       # the output order is neither party's input order
        arow = cols["alice.arow"]
        assert not (np.diff(arow) > 0).all() and not (np.diff(cols["bob.brow"]) > 0).all()


def test_several_buckets_and_string_ids():
    a, b = tables(900, 700, 400, kind="str")
    check(a, b, _run_frames(a, b, oprf_bucket_size=128))


def test_grpc_transport():
    a, b = tables(400, 300, 150)
    check(a, b, _run_frames(a, b, transport="grpc", oprf_bucket_size=256))


def test_all_rows_joined_and_empty_joins():
    a, b = tables(500, 500, 500)
    check(a, b, _run_frames(a, b))
    a, b = tables(300, 200, 0)
    check(a, b, _run_frames(a, b))
    a, b = tables(300, 200, 0)
    assert check(a.iloc[:0], b, _run_frames(a.iloc[:0], b))["alice.x"].shape == (0,)
    assert check(a, b.iloc[:0], _run_frames(a, b.iloc[:0]))["bob.y"].shape == (0,)


def test_with_the_dealer_source_and_many_columns():
    """method="circuit" on the dealer's shuffle (no clear rows there) and, on the OT source,
    with more of A's columns than B's (A's clear rows skip A's network): both equal pandas."""
    a, b = tables(400, 300, 150)
    a = a.assign(z=RNG.normal(size=len(a)), w=RNG.integers(0, 9, len(a)))
    expected = a.merge(b, on="id")
    for triples in ("dealer", "ot"):
        out = mpc.run_local(_job, ["alice", "bob"], transport="memory", triples=triples, timeout=300,
                            args={"alice": (a.id.to_numpy(), a.drop(columns="id")),
                                  "bob": (b.id.to_numpy(), b.drop(columns="id"))})
        n, names, cols = out["alice"]
        assert n == len(expected) and out["bob"][:2] == (n, names)
        got = pd.DataFrame({c.split(".")[1]: v for c, v in cols.items()}).sort_values("arow")
        want = expected.sort_values("arow")
        assert (got.arow.to_numpy() == want.arow.to_numpy()).all()
        assert (got.brow.to_numpy() == want.brow.to_numpy()).all()
        assert (got.w.to_numpy() == want.w.to_numpy()).all()
        np.testing.assert_allclose(got.z, want.z, atol=2e-5)


def test_match_bits_bound_false_matches_by_two_to_the_minus_40():
    """match_bits(c) = 40 + ceil(log2 c): c comparisons of uniform differences on that many
    bits falsely match with probability c 2^-bits <= 2^-40 (union bound), capped at 64."""
    for c in [1, 2, 3, 1000, 1 << 20, (1 << 20) + 1, 1 << 24]:
        bits = engine.match_bits(c)
        assert bits == 40 + math.ceil(math.log2(c)) and c * 2.0 ** -bits <= 2.0 ** -40
    assert engine.match_bits(0) == 40 and engine.match_bits(1 << 30) == 64


@pytest.mark.parametrize("triples", ["ot", "dealer"])
def test_the_match_test_reads_only_match_bits(monkeypatch, triples):
    """The flag compares the low match_bits(c) bits only (the count it is given is the
    number of compared bins): at 40 + log2 c bits the join is pandas', and with the width
    forced down to 2 bits unmatched bins match with probability 1/4, so the join grows
    (a check that the width reaches the zero test, on both sources' paths)."""
    a, b = tables(400, 300, 100)
    seen = []
    original = engine.match_bits
    monkeypatch.setattr(engine, "match_bits", lambda c: seen.append(c) or original(c))
    kw = {"transport": "memory", "triples": triples, "timeout": 300,
          "args": {"alice": (a.id.to_numpy(), a.drop(columns="id")), "bob": (b.id.to_numpy(), b.drop(columns="id"))}}
    out = mpc.run_local(_job, ["alice", "bob"], **kw)
    assert out["alice"][0] == 100
    assert seen and (set(seen) == {400} if triples == "ot" else min(seen) > 400)   # n_A bins, or all bins
    monkeypatch.setattr(engine, "match_bits", lambda c: 2)
    out = mpc.run_local(_job, ["alice", "bob"], **kw)
    assert out["alice"][0] > 100 + 30          # ~(c - 100) / 4 false matches, c >= 400


def test_columns_on_one_side_only():
    out = run((list(range(100)), {"x": np.arange(100)}), (list(range(50, 250)), None))
    n, names, cols = out["bob"]
    assert n == 50 and names == ["alice.x"] and sorted(cols["alice.x"].tolist()) == list(range(50, 100))


def test_duplicate_ids_are_rejected_on_the_party_that_has_them():
    with pytest.raises(JobFailed, match="unique") as info:
        run(([1, 2], {"x": np.array([1, 2])}), ([3, 4, 3], {"y": np.array([1, 2, 3])}))
    assert info.value.party == "bob"


def test_malformed_okvs_names_the_party(monkeypatch):
    original = engine.BinJoin.okvs_args

    def bad(self, keys, bins, payload, n_bins, max_keys):
        return original(self, keys, bins, payload, n_bins, max_keys - 3)      # a table of the wrong size
    monkeypatch.setattr(engine.BinJoin, "okvs_args", bad)
    with pytest.raises(JobFailed, match="'bob' sent .* as the OKVS") as info:
        run((list(range(100)), {"x": np.arange(100)}), (list(range(50, 150)), {"y": np.arange(100)}))
    assert info.value.party == "alice"


def test_mismatched_bucket_sizes_are_refused():
    with pytest.raises(JobFailed, match="oprf_bucket"):
        mpc.run_local(_job, ["alice", "bob"], args={"alice": ([1], None), "bob": ([1], None)},
                      kwargs={"alice": {"oprf_bucket_size": 64}, "bob": {"oprf_bucket_size": 128}},
                      triples="ot", timeout=60)


def _method(ctx):
    return resolve_method(ctx, "auto")


@pytest.mark.parametrize("triples, expected", [("ot", "circuit"), ("dealer", "dealer"), (None, "ecdh")])
def test_auto_picks_the_dealer_join_only_with_a_dealer(triples, expected):
    assert mpc.run_local(_method, ["alice", "bob"], triples=triples)["alice"] == expected


# -- views ---------------------------------------------------------------------------------------

N = 2048


def _join_count(ctx, ids, cols, ranks=False):
    return private_join(ctx, ids, cols, method="circuit", ranks=ranks).num_rows


def _bits_balanced(array: np.ndarray) -> None:
    """Each of the 8 bit positions of the array's bytes is balanced (6 sigma)."""
    b = np.unpackbits(np.ascontiguousarray(array).view(np.uint8).reshape(-1, 1)[:1 << 18], axis=1)
    assert np.abs(b.mean(axis=0) - 0.5).max() < 6 / math.sqrt(len(b)), f"biased bits in {array.dtype} {array.shape}"


def _skeleton(value):
    if isinstance(value, dict):
        return tuple(sorted((k, _skeleton(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_skeleton(v) for v in value)
    if isinstance(value, np.ndarray):
        return (value.dtype.str, value.shape)
    return type(value).__name__


@pytest.mark.parametrize("ranks", [False, True])
def test_views_depend_only_on_the_sizes_and_the_count(monkeypatch, ranks):
    """Two runs with the same sizes and join size but different matched rows: every message
    has the same structure and shape at both parties, every uint64 word received is
    uniform, and no received bin-length array correlates with which bins matched; also
    with the owners' ranks riding along (``ranks=True``)."""
    flags: dict[str, np.ndarray] = {}
    original = engine.BinJoin.finish

    def spy(self):
        flags[self.ctx.party] = np.concatenate(self.word) if self.word else np.zeros(0, np.uint64)
        if self.ctx.rank == 0:
            flags["filled"] = np.concatenate(self.filled)
        return original(self)
    monkeypatch.setattr(engine.BinJoin, "finish", spy)
    runs = []
    ids_a = np.arange(N)
    for ids_b in (np.arange(N // 2, N // 2 + N), np.concatenate([np.arange(0, N, 2), np.arange(N, 2 * N, 2) + N])):
        v = RNG.normal(size=N)
        res, views = record_views(_join_count, ["a", "b"], args={"a": (ids_a, {"x": v}, ranks),
                                                                 "b": (ids_b, {"y": v}, ranks)},
                                  triples="ot", timeout=120)
        assert res["a"] == res["b"] == N // 2
        matched = (flags["a"] == flags["b"]).astype(np.int64)     # s_b == t_b: the bins that matched
        assert matched.sum() == N // 2
        runs.append((views, matched))
        # B learns where A's empty bins went in A's round of the shuffle: distinct positions,
        # a uniform subset (uncorrelated with the empty bins themselves or the matches)
        gone = [x for x in flatten(views["b"]) if isinstance(x, np.ndarray) and x.dtype == np.int64]
        assert len(gone) == 1 and len(gone[0]) == len(matched) - N
        where = np.zeros(len(matched))
        where[gone[0]] = 1
        for secret in (matched, ~flags["filled"]):
            assert abs(np.corrcoef(where, secret)[0, 1]) < 6 / math.sqrt(len(matched))
    for party in "ab":
        assert [_skeleton(v) for _, v in runs[0][0][party]] == [_skeleton(v) for _, v in runs[1][0][party]]
    from test_views import assert_masked
    for views, matched in runs:
        for party in "ab":
            leaves = [x for x in flatten(views[party]) if isinstance(x, np.ndarray)
                      and x.dtype in (np.uint8, np.uint64)]
            big = [x for x in leaves if x.nbytes >= 4096]
            assert len(big) > 10, "no words received"
            for x in big:                      # OKVS, OT matrices, shuffle and zero-test messages
                _bits_balanced(x)
            # the bin-order words: the masked shares of A's round of the shuffle (on the real wires)
            bin_order = [x for x in leaves if x.ndim == 2 and x.shape[-1] == len(matched)]
            assert_masked([("peer", x) for x in bin_order], matched, min_arrays=1 if party == "a" else 0)


def test_malformed_okvs_message_names_the_party(monkeypatch):
    def bad(self, seed, table):
        self.ctx.send(self.peer, [1, 2, 3])
    monkeypatch.setattr(engine.BinJoin, "send_table", bad)
    with pytest.raises(JobFailed, match="'bob' sent a malformed OKVS message") as info:
        run((list(range(10)), None), (list(range(5, 15)), None))
    assert info.value.party == "alice"


@pytest.mark.parametrize("bad", ["repeat", "range"])
def test_malformed_empty_bin_positions_name_the_party(monkeypatch, bad):
    """B checks the positions A names for its empty bins: distinct, sorted, in range."""
    original = engine.BinJoin._empty_positions

    def wrong(dest, filled):
        gone = original(dest, filled)
        if bad == "repeat":
            gone[1] = gone[0]
        else:
            gone[-1] = len(dest) + 5
        return gone
    monkeypatch.setattr(engine.BinJoin, "_empty_positions", staticmethod(wrong))
    with pytest.raises(JobFailed, match="'alice' sent empty-bin positions") as info:
        run((list(range(100)), {"x": np.arange(100)}), (list(range(50, 150)), {"y": np.arange(100)}))
    assert info.value.party == "bob"


def test_join_stats_on_two_servers_without_a_dealer_matches_pandas():
    """join.stats with join='circuit' (what 'auto' picks without a dealer) on two TLS
    party servers: rows, describe and corr equal pandas on the merged plaintext."""
    from mpc.cluster import LocalCluster
    a, b = tables(700, 500, 300, kind="str")
    bank, retail = a.rename(columns={"id": "customer_id"}), b.rename(columns={"id": "customer_id"})
    datasets = {"bank": {"accounts": {"frame": bank, "id": "customer_id"}},
                "retailer": {"purchases": {"frame": retail, "id": "customer_id"}}}
    ids = ["bank.accounts.customer_id", "retailer.purchases.customer_id"]
    with LocalCluster(["bank", "retailer"], datasets=datasets, dealer=False, tls=True) as cluster, \
            cluster.client("bank") as client:
        out = client.run("join.stats", ids=ids, columns=["bank.accounts.x", "bank.accounts.k", "retailer.purchases.y"],
                         stats=["describe", "corr"], join="circuit", progress=False)
    plain = bank.merge(retail, on="customer_id")[["x", "k", "y"]]
    assert out["rows"] == len(plain) == 300
    np.testing.assert_allclose(out["describe"].to_numpy(), plain.describe().T.to_numpy(), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out["corr"].to_numpy(), plain.corr().to_numpy(), atol=1e-4)


# -- the join's row order (mpc.ss.order.RowOrder) ---------------------------------------------

def _order_job(ctx, ids, frame, ranks):
    """The join, then the selection of ranks of two of A's columns on the join's order (no
    shuffle): keys y 2^L + label with the order's secret labels, outcomes traced."""
    from mpc.ss import order
    t = private_join(ctx, ids, frame, method="circuit")
    row_order = t.row_order
    label = row_order.claim()
    traces, found = [], []
    for name in ("alice.c", "alice.v"):
        keys = order.keys_of(ctx, t[name].share.reshape(1, -1), label, row_order.bits)
        trace: list[np.ndarray] = []
        got = order.select(ctx, keys, [ranks], trace, bits=24 + row_order.bits)
        found.append(ss_reveal(ctx, order.values_of(ctx, got[0], t.num_rows, row_order.bits)))
        traces.append(trace)
    return (traces, found, row_order.bits, ss_reveal(ctx, label), t["alice.arow"].reveal(),
            t["bob.brow"].reveal())


def ss_reveal(ctx, share):
    from mpc import ss
    return ss.from_shares(ctx, np.asarray(share, np.uint64), 0).reveal()


def test_outcomes_on_the_join_order_depend_only_on_its_rank_sequence(monkeypatch):
    """View test of the first column's selection, which runs on the join's compaction order
    instead of a shuffle: A's constant column and A's column of distinct values increasing
    with A's row index have keys y 2^L + label of the same rank sequence (the label is A's
    input row index), and give identical opened outcomes in every round, at both parties;
    so the outcomes are a function of where the join put the rows only. That order is
    unlinked to the inputs (the labels, i.e. A's rows, and B's rows in output order do not
    correlate with the position), and the labels are distinct and equal A's row index."""
    from mpc.ss import order
    monkeypatch.setattr(order, "SAMPLE_ABOVE", 128)
    monkeypatch.setattr(order, "SINGLE_ABOVE", 1000)
    a, b = tables(3000, 2600, 2200)
    a = a.assign(c=7, v=np.cumsum(RNG.integers(1, 4000, len(a))))          # v < 2^24, increasing
    m = 2200
    ranks = np.array([0, m // 4, m // 2, m // 2 + 1, m - 1])
    args = {"alice": (a.id.to_numpy(), a[["c", "v", "arow"]], ranks), "bob": (b.id.to_numpy(), b[["brow"]], ranks)}
    out = mpc.run_local(_order_job, ["alice", "bob"], args=args, triples="ot", timeout=300)
    traces, found, bits, label, arow, brow = out["alice"]
    for party in ("alice", "bob"):         # every party: the constant column's outcomes are the distinct one's
        assert len(out[party][0][0]) == len(traces[1]) > 5
        for x, y in zip(out[party][0][0], traces[1], strict=True):
            assert np.array_equal(x, y)
    assert bits == math.ceil(math.log2(3000))
    np.testing.assert_array_equal(label, arow)                             # A's input row index
    assert len(np.unique(label)) == m
    np.testing.assert_array_equal(found[0], np.full(len(ranks), 7))
    expected = np.sort(a.v.to_numpy()[np.sort(arow)])[ranks]
    np.testing.assert_array_equal(found[1], expected)
    pos = np.arange(m)
    for rows in (arow, brow):
        assert abs(np.corrcoef(pos, np.argsort(np.argsort(rows)))[0, 1]) < 6 / math.sqrt(m)


def _stats_job(ctx, ids, cols, keep_order):
    from mpc import ss
    from protocols import stats
    from protocols.stats import apply_shifts, scale_columns
    ints, shifts = scale_columns(ctx, cols)
    table = private_join(ctx, ids, ints, method="circuit")
    noted = table.row_order is not None
    if not keep_order:                          # the same shares, without the join's order
        table = {k: ss.from_shares(ctx, table[k].share, table[k].frac_bits) for k in table.columns}
    named = apply_shifts(table, shifts)
    return stats.describe(ctx, named), stats.corr_matrix(ctx, named), noted


@pytest.mark.parametrize("names", [["x", "y"], ["x", "k", "y"]])
def test_stats_on_the_join_order_shuffle_one_column_fewer(monkeypatch, names):
    """describe + corr after the dealer-free circuit join: the first column's selection runs
    on the join's order, so every party shuffles one column fewer than on the same columns
    without it; both equal pandas. With owner-scaled float columns only (one selection for
    min, max and the quartiles) and with an integer column (tournament, then quantiles).
    With the dealer's shuffle under the circuit join there is no row order."""
    from mpc.ss import order
    calls: dict[tuple, int] = {}
    real = order.shuffle

    def counted(ctx, x, *args, **kw):
        key = (ctx.job_id, ctx.party)
        calls[key] = calls.get(key, 0) + 1
        return real(ctx, x, *args, **kw)

    monkeypatch.setattr(order, "shuffle", counted)
    a, b = tables(900, 700, 500)
    plain = a.merge(b, on="id")[names]
    mine = {"alice": [c for c in names if c in a], "bob": [c for c in names if c in b]}
    counts = []
    for triples, keep in (("ot", True), ("ot", False), ("dealer", True)):
        args = {p: (f.id.to_numpy(), f[mine[p]], keep) for p, f in (("alice", a), ("bob", b))}
        before = set(calls)
        out = mpc.run_local(_stats_job, ["alice", "bob"], args=args, triples=triples, timeout=300)
        d, c, noted = out["alice"]
        assert noted == (triples == "ot")
        np.testing.assert_allclose(d.to_numpy(), plain.describe().T.to_numpy(), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(c.to_numpy(), plain.corr().to_numpy(), atol=1e-4)
        per_party = sorted(v for k, v in calls.items() if k not in before)
        assert len(per_party) == 2 and per_party[0] == per_party[1]
        counts.append(per_party[0])
    assert counts == [len(names) - 1, len(names), len(names)]


def _ranks_job(ctx, ids, cols):
    t = private_join(ctx, ids, cols, method="circuit", ranks=True)
    return ({c: t[c].reveal() for c in t.columns}, {c: t.ranks[c][1] for c in t.ranks},
            {c: t.ranks[c][0].reveal() for c in t.ranks})


def test_ranks_ride_along_as_each_owners_ranks(monkeypatch):
    """private_join(ranks=True): every joined row carries, secret-shared, the rank of its
    value in its owner's WHOLE input column (ties by input order): distinct, below
    2^key_bits(n_owner), and count_less(v) + (the row's place among the owner's equal
    values) exactly; the columns are the plain join's."""
    from mpc.ss import order
    a, b = tables(600, 500, 300)
    a["k"] = RNG.integers(0, 5, len(a))                    # many ties
    args = {"alice": (a.id.to_numpy(), a[["x", "k"]]), "bob": (b.id.to_numpy(), b[["y"]])}
    out = mpc.run_local(_ranks_job, ["alice", "bob"], args=args, triples="ot", timeout=300)["alice"]
    cols, bits, gathered = out
    assert set(gathered) == {"alice.x", "alice.k", "bob.y"}
    for name, owner in (("alice.x", a), ("alice.k", a), ("bob.y", b)):
        rho = np.asarray(gathered[name]).astype(np.int64)
        assert bits[name] == order.key_bits(len(owner))
        full = owner[name.split(".")[1]].to_numpy()
        v = cols[name]
        assert len(np.unique(rho)) == len(rho) and rho.min() >= 0 and rho.max() < 2 ** bits[name]
        if name == "alice.k":                                  # integers: the exact rank of an exact value
            less = np.searchsorted(np.sort(full), v, side="left")
            equal = np.searchsorted(np.sort(full), v, side="right") - less
            assert np.all((rho >= less) & (rho < less + equal))
        assert np.all(np.diff(v[np.argsort(rho)]) >= -1e-4)     # the ranks order the values


def test_ranks_must_be_asked_by_both():
    a, b = tables(50, 40, 20)

    def job(ctx, ids, cols, ranks):
        return private_join(ctx, ids, cols, method="circuit", ranks=ranks).num_rows

    with pytest.raises(JobFailed, match="ranks"):
        mpc.run_local(job, ["alice", "bob"], args={"alice": (a.id.to_numpy(), a[["x"]], True),
                                                  "bob": (b.id.to_numpy(), b[["y"]], False)},
                      triples="ot", timeout=60)


def _ranked_stats_job(ctx, ids, cols):
    from protocols import stats
    from protocols.stats import apply_shifts, scale_columns
    ints, shifts = scale_columns(ctx, cols)
    named = apply_shifts(private_join(ctx, ids, ints, method="circuit", ranks=True), shifts)
    return stats.describe(ctx, named), stats.corr_matrix(ctx, named)


@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_describe_on_owner_ranks_equals_pandas_with_narrow_comparisons(monkeypatch, opened_widths, transport):
    """describe + corr after the join with ranks, on columns full of ties and an integer
    column (min and max by the tournament, its quartiles by a selection after it): equal to
    pandas, and every opened comparison of the selections ran on the ranks' bits
    (key_bits(n_owner)), none on the values' 60-odd."""
    from mpc.ss import order
    monkeypatch.setattr(order, "SAMPLE_ABOVE", 256)
    a, b = tables(1500, 1200, 900)
    a["k"] = RNG.integers(0, 4, len(a)) * 0.5               # four values
    b["y"] = np.where(RNG.random(len(b)) < 0.6, 3.25, b["y"])
    b["n"] = RNG.integers(-50, 50, len(b))                  # an integer column: tournament, then ranks
    names = ["x", "k", "y", "n"]
    args = {"alice": (a.id.to_numpy(), a[["x", "k"]]), "bob": (b.id.to_numpy(), b[["y", "n"]])}
    d, c = mpc.run_local(_ranked_stats_job, ["alice", "bob"], args=args, triples="ot", transport=transport,
                         timeout=300)["alice"]
    plain = a.merge(b, on="id")[names]
    ref = plain.describe().T
    got = d.rename(index=lambda s: s.split(".")[1]).loc[names]
    np.testing.assert_allclose(got[ref.columns].to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(c.to_numpy(), plain.corr().to_numpy(), atol=1e-4)
    assert opened_widths == {max(order.key_bits(1500), order.key_bits(1200))}    # the ranked group's R


def _given_ranks_job(ctx, ids, cols, given, rows):
    t = private_join(ctx, ids, cols, method="circuit", ranks=given, rank_rows=rows)
    return {c: t[c].reveal() for c in t.columns}, {c: (t.ranks[c][0].reveal(), t.ranks[c][1]) for c in t.ranks}


def test_given_ranks_ride_along_with_their_rank_rows_bits():
    """private_join with a ranks mapping (the bucketed join's ranks in a longer column): the
    given ranks come out beside their rows, key_bits(rank_rows) bits; both parties must give
    them (True at one, a mapping at the other is refused), and out-of-range ranks are."""
    a, b = tables(300, 250, 120)
    a["x"], b["y"] = RNG.permutation(300), RNG.permutation(250)          # distinct integers: exact, one rank each
    ra, rb = RNG.permutation(5000)[:300], RNG.permutation(70000)[:250]
    args = {"alice": (a.id.to_numpy(), a[["x"]], {"x": ra}, 5000), "bob": (b.id.to_numpy(), b[["y"]], {"y": rb}, 70000)}
    cols, ranks = mpc.run_local(_given_ranks_job, ["alice", "bob"], args=args, triples="ot", timeout=120)["alice"]
    assert ranks["alice.x"][1] == 13 and ranks["bob.y"][1] == 17
    for name, frame, given in (("alice.x", a, ra), ("bob.y", b, rb)):
        col = name.split(".")[1]
        by_value = dict(zip(frame[col].tolist(), given.tolist(), strict=True))
        got = np.asarray(ranks[name][0]).astype(np.int64)
        assert len(got) == 120 and [by_value[int(v)] for v in np.asarray(cols[name]).tolist()] == got.tolist()
    with pytest.raises(JobFailed, match="given"):
        mpc.run_local(_given_ranks_job, ["alice", "bob"], args={**args, "bob": (b.id.to_numpy(), b[["y"]], True, None)},
                      triples="ot", timeout=60)
    with pytest.raises(JobFailed, match=r"integers in \[0, 5000\)"):
        mpc.run_local(_given_ranks_job, ["alice", "bob"], args={**args, "alice": (a.id.to_numpy(), a[["x"]],
                                                                                  {"x": ra + 4800}, 5000)},
                      triples="ot", timeout=60)
