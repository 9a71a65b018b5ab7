"""The dealer join (mpc.ss.dealer_join) on its own: matched rows come back as shares in a
common order, and the dealer refuses malformed or repeated tags, naming the party."""

import os

import numpy as np
import pytest

import mpc
from mpc.runtime.errors import JobFailed
from mpc.ss.dealer_join import match


def _tags(values):
    return np.array([list(v.to_bytes(16, "big")) for v in values], dtype=np.uint8)


def _join(ctx, keys, rows, peer_rows, peer_cols):
    return match(ctx, _tags(keys), rows, peer_rows, peer_cols)


def test_matched_rows_add_up_in_a_common_order():
    a_keys, b_keys = [1, 2, 3, 4, 5], [9, 5, 3, 1]
    a_rows = np.array([[10, 20, 30, 40, 50]], dtype=np.uint64)
    b_rows = np.array([[900, 500, 300, 100], [9, 5, 3, 1]], dtype=np.uint64)
    # masks R are zero here: shares are then (Y[i] - M) and M, adding up to X[i]
    out = mpc.run_local(_join, ["a", "b"], args={"a": (a_keys, a_rows, 4, 2),
                                                  "b": (b_keys, b_rows, 5, 1)})
    (pos_b, own_a, mask_b), (pos_a, own_b, mask_a) = out["a"], out["b"]
    assert len(pos_a) == len(pos_b) == 3
    a_cols = own_a + mask_a                       # a's column: a's share + b's share (R = 0)
    b_cols = own_b + mask_b
    assert np.array_equal(a_cols[0], a_rows[0, pos_a])
    assert np.array_equal(b_cols, b_rows[:, pos_b])
    assert np.array_equal(a_cols[0] // 10, b_cols[1])          # rows of the same key line up
    assert sorted(a_cols[0].tolist()) == [10, 30, 50]


def _junk(ctx, what):
    if ctx.rank == 0:
        ctx.send("dealer", what)
        return ctx.recv("dealer")
    return match(ctx, _tags([1, 2]), np.zeros((1, 2), np.uint64), 2, 1)


@pytest.mark.parametrize("what, message", [
    ({"tags": np.zeros((2, 8), np.uint8), "rows": np.zeros((1, 2), np.uint64)}, "wrong shape or type"),
    ({"tags": _tags([1, 2]), "rows": np.zeros((1, 3), np.uint64)}, "wrong shape or type"),
    ({"tags": _tags([7, 7]), "rows": np.zeros((1, 2), np.uint64)}, "repeated join tags"),
    ("not a dict", "malformed join request"),
])
def test_dealer_refuses_bad_tags_naming_the_party(what, message):
    with pytest.raises(JobFailed, match=message) as info:
        mpc.run_local(_junk, ["alice", "bob"], args={"alice": (what,), "bob": (what,)}, timeout=30)
    assert "'alice'" in str(info.value)


def test_random_tags_of_many_rows():
    n = 5000
    common = [int.from_bytes(os.urandom(16), "big") for _ in range(n // 2)]
    a_keys = common + [int.from_bytes(os.urandom(16), "big") for _ in range(n // 2)]
    b_keys = [int.from_bytes(os.urandom(16), "big") for _ in range(n // 2)] + common[::-1]
    out = mpc.run_local(_join, ["a", "b"], args={"a": (a_keys, np.zeros((0, n), np.uint64), n, 0),
                                                  "b": (b_keys, np.zeros((0, n), np.uint64), n, 0)},
                        transport="grpc")
    pos_b, pos_a = out["a"][0], out["b"][0]
    assert [a_keys[i] for i in pos_a] == [b_keys[j] for j in pos_b]
    assert len(pos_a) == n // 2
