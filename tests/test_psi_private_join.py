"""private_join against a plain pandas-style join (rows compared as sets of tuples)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpc
from mpc.runtime.errors import JobFailed
from protocols.psi import SharedTable, private_join

KEY_BITS = 512  # insecure, tests only


def job(ctx, ids, cols, **kw):
    t = private_join(ctx, ids, cols, key_bits=KEY_BITS, **kw)
    assert isinstance(t, SharedTable)
    return t.num_rows, t.columns, {c: t[c].reveal() for c in t.columns}


def run(a, b, transport="memory", **kw):
    triples = "dealer" if kw.get("method") == "dealer" else None
    return mpc.run_local(job, ["alice", "bob"], args={"alice": a, "bob": b},
                         kwargs={"alice": kw, "bob": kw}, transport=transport, triples=triples, timeout=120)


METHODS = pytest.mark.parametrize("method", ["ecdh", "dealer"])


def plain_join(a, b):
    (ia, ca), (ib, cb) = a, b
    pos_b = {v: i for i, v in enumerate(ib)}
    rows = set()
    for i, v in enumerate(ia):
        if v in pos_b:
            j = pos_b[v]
            rows.add(tuple([ca[c][i] for c in ca] + [cb[c][j] for c in cb]))
    return rows


def revealed_rows(out, names):
    n, _, cols = out
    return {tuple(cols[c][k] for c in names) for k in range(n)}


def check(a, b, out):
    names = [f"alice.{c}" for c in a[1]] + [f"bob.{c}" for c in b[1]]
    assert out["alice"][:2] == out["bob"][:2]
    assert out["alice"][1] == names
    assert out["alice"][0] == len(set(a[0]) & set(b[0]))
    assert revealed_rows(out["alice"], names) == plain_join(a, b)


@METHODS
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.integers(0, 40), max_size=15), st.sets(st.integers(0, 40), max_size=15), st.data())
def test_matches_plain_join(method, ids_a, ids_b, data):
    ia, ib = sorted(ids_a), sorted(ids_b, reverse=True)
    va = data.draw(st.lists(st.integers(-2**40, 2**40), min_size=len(ia), max_size=len(ia)))
    a = (ia, {"x": np.array(va, dtype=np.int64), "w": np.arange(len(ia)) * 0.5})
    b = (ib, {"y": np.array(ib, dtype=np.int64) * 3})
    check(a, b, run(a, b, method=method))


def test_many_columns_span_several_ciphertexts_and_dataframe_input():
    # 512-bit keys hold 4 slots: 6 columns need 2 ciphertexts per row.
    ids = [f"id{i}" for i in range(30)]
    a = (ids, pd.DataFrame({f"c{k}": np.arange(30) * (k + 1) for k in range(6)}))
    b = (ids[::-2], {"z": np.arange(15, dtype=np.int64)})
    out = run(a, b)
    a_plain = (a[0], {c: a[1][c].to_numpy() for c in a[1].columns})
    check(a_plain, b, out)


def test_name_clash_needs_qualification():
    def clash(ctx, ids, cols):
        t = private_join(ctx, ids, cols, key_bits=KEY_BITS)
        with pytest.raises(KeyError, match="several parties"):
            t["age"]
        assert "age" not in t and "alice.age" in t and "only_a" in t
        return t["alice.age"].reveal().tolist(), t["only_a"].reveal().tolist()

    out = mpc.run_local(clash, ["alice", "bob"],
                        args={"alice": ([1, 2], {"age": np.array([10, 20]), "only_a": np.array([7, 8])}),
                              "bob": ([2, 3], {"age": np.array([5, 6])})}, triples=None)
    assert out["alice"] == ([20], [8])


@METHODS
def test_empty_no_overlap_and_one_side_without_columns(method):
    assert run(([], {}), ([1], {"y": np.array([1])}), method=method)["alice"][0] == 0
    assert run(([1, 2], {"x": np.array([1, 2])}), ([3], {"y": np.array([3])}), method=method)["bob"][0] == 0
    a, b = (["p", "q"], {"x": np.array([1.5, 2.5])}), (["q"], None)
    out = run(a, b, method=method)
    assert out["alice"][0] == 1 and out["alice"][2]["alice.x"].tolist() == [2.5]


@METHODS
def test_grpc_transport(method):
    a = (["é", "", "b"], {"x": np.array([1, 2, 3])})
    b = (["", "é"], {"y": np.array([-1.0, 4.0])})
    check(a, b, run(a, b, transport="grpc", method=method))


@METHODS
def test_duplicate_ids_are_rejected_on_the_party_that_has_them(method):
    with pytest.raises(JobFailed, match="unique") as info:
        run(([1, 2], {"x": np.array([1, 2])}), ([3, 4, 3], {"y": np.array([1, 2, 3])}), method=method)
    assert info.value.party == "bob"


@pytest.mark.parametrize("cols, match", [({"x": np.array([1])}, "one value per id"),
                                         ({"x": np.array(["a", "b"])}, "only numbers"),
                                         ({"a.b": np.array([1, 2])}, "without '.'")])
def test_bad_columns(cols, match):
    with pytest.raises(JobFailed, match=match):
        run(([1, 2], cols), ([1], {}))


@METHODS
def test_output_order_is_not_either_input_order(method):
    n = 200
    a = (list(range(n)), {"row": np.arange(n)})
    b = (list(range(n))[::-1], {"row": np.arange(n)})
    out = run(a, b, method=method)["alice"]
    rows_a, rows_b = out[2]["alice.row"], out[2]["bob.row"]
    assert sorted(rows_a.tolist()) == list(range(n))
    assert (rows_a + rows_b == n - 1).all()          # rows stay aligned
    assert not (np.diff(rows_a) > 0).all() and not (np.diff(rows_a) < 0).all()


def test_small_buckets_and_uneven_sizes():
    a = (list(range(50)), {"x": np.arange(50) * 2, "f": np.arange(50) / 4})
    b = (list(range(30, 41)), {"y": np.arange(11) - 5})
    check(a, b, run(a, b, bucket_size=7))
    check(b, a, run(b, a, bucket_size=4))


def test_dealer_method_shares_are_fresh_and_the_dealer_is_required():
    """Each party's own share of its own column is masked (not its values), and the
    method refuses to run without the dealer or with a method it does not know."""
    def shares(ctx, ids, cols):
        t = private_join(ctx, ids, cols, method="dealer")
        return t["alice.x"].share.copy(), t["alice.x"].reveal()

    vals = np.arange(100, dtype=np.int64)
    out = mpc.run_local(shares, ["alice", "bob"], args={"alice": (list(range(100)), {"x": vals}),
                                                        "bob": (list(range(50, 150)), {})})
    mine, plain = out["alice"]
    assert sorted(plain.tolist()) == list(range(50, 100))
    assert len(set(mine.tolist()) & set(range(100))) < 3            # alice's share is not her values
    with pytest.raises(JobFailed, match="dealer"):
        mpc.run_local(job, ["alice", "bob"], args={"alice": ([1], {}), "bob": ([1], {})},
            kwargs={"alice": {"method": "dealer"}, "bob": {"method": "dealer"}}, triples="paillier",
            paillier_bits=512, timeout=60)
    with pytest.raises(JobFailed, match="unknown private_join method"):
        run(([1], {}), ([1], {}), method="magic")
