"""intersection_sum (Private Join and Compute) against plain Python."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpc
from mpc.runtime.errors import JobFailed
from protocols.psi import intersection_sum

KEY_BITS = 512  # insecure, tests only


def run(ids_a, ids_b, values_b, transport="memory", values_a=None, **kw):
    kw.setdefault("key_bits", KEY_BITS)
    return mpc.run_local(intersection_sum, ["alice", "bob"],
                         args={"alice": (ids_a, values_a), "bob": (ids_b, values_b)},
                         kwargs={"alice": kw, "bob": kw}, transport=transport, triples=None, timeout=120)


def expected(ids_a, ids_b, values_b):
    common = set(ids_a) & set(ids_b)
    return len(common), sum(v for i, v in zip(ids_b, values_b, strict=True) if i in common)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 30), max_size=20),
       st.lists(st.tuples(st.integers(0, 30), st.integers(-2**62, 2**62)), max_size=20))
def test_matches_python(ids_a, pairs):
    ids_b = [i for i, _ in pairs]
    vals = np.array([v for _, v in pairs], dtype=np.int64)
    out = run(ids_a, ids_b, vals)
    assert out == {"alice": expected(ids_a, ids_b, vals.tolist()), "bob": None}


def test_values_party_as_receiver_and_grpc():
    ids_a, ids_b, vals = ["a", "b", "é", ""], ["", "é", "z"], np.array([5, -7, 100])
    out = run(ids_a, ids_b, vals, receiver="bob", transport="grpc")
    assert out == {"alice": None, "bob": (2, -2)}


def test_float_values_and_empty_and_no_overlap():
    out = run([1, 2, 3], [2, 3, 4], np.array([0.25, 1.5, 9.0]))
    assert out["alice"] == (2, 1.75)
    assert run([], [1], np.array([3]))["alice"] == (0, 0)
    assert run([1], [2], np.array([3]))["alice"] == (0, 0)
    assert run([1, 2], [], np.array([], dtype=np.int64))["alice"] == (0, 0)


def test_larger_input_uses_buckets():
    n = 1500
    out = run(np.arange(n), np.arange(500, 500 + n), np.arange(n, dtype=np.int64), bucket_size=256)
    assert out["alice"] == (1000, sum(range(1000)))


@pytest.mark.parametrize("values_a, values_b, match", [
    (None, None, "neither did"), (np.array([1]), np.array([1]), "both did"),
])
def test_exactly_one_party_has_values(values_a, values_b, match):
    with pytest.raises(JobFailed, match=match):
        run([1], [1], values_b, values_a=values_a)


def test_bad_values_fail():
    with pytest.raises(JobFailed, match="one value per id") as info:
        run([1], [1, 2], np.array([1]))
    assert info.value.party == "bob"
    with pytest.raises(JobFailed, match="dtype"):
        run([1], [1], np.array(["x"]))
