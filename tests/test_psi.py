"""ECDH PSI and PSI cardinality against Python set intersection (2 and 3 parties)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpc
from mpc.runtime.errors import JobFailed
from protocols.psi import ecdh_psi, psi_cardinality

NAMES = ["alice", "bob", "carol", "dave"]


def run(fn, inputs, transport="memory", **kwargs):
    parties = NAMES[:len(inputs)]
    return mpc.run_local(fn, parties, args={p: (x,) for p, x in zip(parties, inputs, strict=True)},
                         kwargs={p: dict(kwargs) for p in parties}, transport=transport,
                         triples=None, timeout=120)


def expected_rows(items, inputs):
    common = set(inputs[0]).intersection(*map(set, inputs[1:]))
    rows = [i for i, v in enumerate(items) if v in common]
    return rows, len(common)


def check(out, inputs, receivers=None):
    for p, items in zip(NAMES, inputs, strict=False):
        if receivers is not None and p not in receivers:
            assert out[p] is None
            continue
        rows, card = expected_rows(items, inputs)
        assert out[p].indices.tolist() == rows
        assert out[p].items == [items[i] for i in rows]
        assert len(out[p]) == len(rows) and out[p].cardinality == card


items_st = st.one_of(st.lists(st.integers(-50, 50), max_size=30),
                     st.lists(st.text(max_size=3), max_size=30))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_two_party_psi_matches_set_intersection(data):
    a = data.draw(items_st)
    kind = st.integers(-50, 50) if (a and isinstance(a[0], int)) else st.text(max_size=3)
    b = data.draw(st.lists(kind, max_size=30))
    out = run(ecdh_psi, [a, b], bucket_size=data.draw(st.sampled_from([1, 7, 1 << 16])))
    check(out, [a, b])
    card = run(psi_cardinality, [a, b])
    _, expect = expected_rows(a, [a, b])
    assert card == {"alice": expect, "bob": expect}


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.integers(0, 20), max_size=15), min_size=3, max_size=4))
def test_multiparty_psi_matches_set_intersection(inputs):
    check(run(ecdh_psi, inputs), inputs)


def test_three_parties_receivers_and_cardinality():
    inputs = [["a", "b", "c", "d"], ["b", "c", "d", "e"], ["c", "d", "x", "c"]]
    check(run(ecdh_psi, inputs, receivers=["bob", "carol"]), inputs, ["bob", "carol"])
    assert run(psi_cardinality, inputs, receivers=["carol"]) == {"alice": None, "bob": None, "carol": 2}
    assert run(psi_cardinality, inputs) == {"alice": 2, "bob": 2, "carol": 2}


@pytest.mark.parametrize("receivers", [["alice"], ["bob"], None])
def test_two_party_receivers(receivers):
    inputs = [[b"\xff\xfe", b"", b"x"], [b"", b"\xff\xfe", b"y"]]
    check(run(ecdh_psi, inputs, receivers=receivers), inputs, receivers)
    card = run(psi_cardinality, inputs, receivers=receivers)
    assert [card[p] for p in NAMES[:2]] == [None if receivers and p not in receivers else 2
                                             for p in NAMES[:2]]


@pytest.mark.parametrize("a, b", [
    ([], []), ([], ["a"]), (["a", "b"], ["c", "d"]),           # empty and no overlap
    (["x", "y", "z"], ["z", "y", "x"]),                         # full overlap
    (["é", "", "日本", "🙂"], ["🙂", "", "e"]),                   # unicode and empty strings
    (["a", "a", "b", "a"], ["a", "a"]),                          # duplicates: every row listed
])
def test_edge_cases(a, b):
    check(run(ecdh_psi, [a, b]), [a, b])


def test_int_str_bytes_are_different_items_and_numpy_arrays_work():
    out = run(ecdh_psi, [[1, 2, 3], np.array([3, 4], dtype=np.int64)])
    assert out["alice"].items == [3] and out["bob"].indices.tolist() == [0]
    with pytest.raises(JobFailed, match="different types"):
        run(ecdh_psi, [[1], ["1"]])


def test_larger_sets_use_the_pool_and_buckets():
    a = np.arange(3000)
    b = np.arange(2000, 6000)
    out = run(ecdh_psi, [a, b], bucket_size=1024)
    assert out["alice"].indices.tolist() == list(range(2000, 3000))
    assert out["bob"].indices.tolist() == list(range(1000))


@pytest.mark.parametrize("fn", [ecdh_psi, psi_cardinality])
def test_grpc_transport(fn):
    a, b = ["a", "b", "c", "é"], ["é", "c", "q"]
    out = run(fn, [a, b], transport="grpc")
    if fn is ecdh_psi:
        check(out, [a, b])
    else:
        assert out == {"alice": 2, "bob": 2}


def test_grpc_three_parties():
    inputs = [list(range(10)), list(range(5, 15)), [7, 8, 9, 20]]
    check(run(ecdh_psi, inputs, transport="grpc"), inputs)


@pytest.mark.parametrize("bad, exc, match", [
    (["a", None], "ValueError", "position 1 is None"),
    ([1, "a"], "TypeError", "mixed item types"),
    (["ok", "\ud800"], "ValueError", "not valid Unicode"),
    ([1.5], "TypeError", "must be str, bytes or int"),
])
def test_bad_input_fails_the_job_naming_the_party(bad, exc, match):
    with pytest.raises(JobFailed, match=match) as info:
        run(ecdh_psi, [["a"], bad])
    assert info.value.party == "bob" and exc in info.value.reason


def test_mismatched_parameters_fail_on_every_party():
    errors = {}

    def job(ctx, items):
        try:
            return ecdh_psi(ctx, items, compare_bytes=12 if ctx.party == "alice" else 16)
        except ValueError as exc:
            errors[ctx.party] = str(exc)
            raise

    with pytest.raises(JobFailed, match="compare_bytes"):
        mpc.run_local(job, ["alice", "bob"], args={"alice": (["a"],), "bob": (["a"],)}, triples=None)
    assert set(errors) == {"alice", "bob"}

    with pytest.raises(JobFailed, match="receivers"):
        mpc.run_local(lambda ctx: ecdh_psi(ctx, ["a"], receivers=[ctx.party]), ["alice", "bob"],
                      triples=None)
    with pytest.raises(JobFailed, match="unknown parties"):
        run(ecdh_psi, [["a"], ["a"]], receivers=["zed"])


def test_parties_running_different_protocols_fail_on_both():
    def job(ctx, items):
        fn = ecdh_psi if ctx.party == "alice" else psi_cardinality
        return fn(ctx, items)

    with pytest.raises(JobFailed, match="runs protocol"):
        mpc.run_local(job, ["alice", "bob"], args={"alice": (["a"],), "bob": (["a"],)}, triples=None)


def test_pandas_series_and_numpy_string_arrays():
    import pandas as pd
    out = run(ecdh_psi, [pd.Series(["a", "b", "c"]), np.array(["c", "a"])])
    assert out["alice"].items == ["a", "c"] and out["bob"].indices.tolist() == [0, 1]
