"""OPRF PSI (KKRT on cuckoo bins) against Python sets; cuckoo hashing; what the sender sees."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mpc
from mpc.crypto import cuckoo
from mpc.ot.bits import transpose
from mpc.ot.kkrt import Code
from mpc.runtime.errors import JobFailed
from mpc.runtime.views import flatten, record_views
from protocols.psi import oprf_psi
from protocols.psi.blocks import prepare_blocks
from protocols.psi.oprf import capacity, compare_bytes

NAMES = ["alice", "bob"]


def run(inputs, transport="memory", **kwargs):
    return mpc.run_local(oprf_psi, NAMES, args={p: (x,) for p, x in zip(NAMES, inputs, strict=True)},
                         kwargs={p: dict(kwargs) for p in NAMES}, transport=transport,
                         triples=None, timeout=120)


def check(out, inputs, receivers=None):
    common = set(inputs[0]) & set(inputs[1])
    for p, items in zip(NAMES, inputs, strict=True):
        if receivers is not None and p not in receivers:
            assert out[p] is None
            continue
        rows = [i for i, v in enumerate(items) if v in common]
        assert out[p].indices.tolist() == rows
        assert out[p].items == [items[i] for i in rows]
        assert out[p].cardinality == len(common)


# -- cuckoo hashing -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 100, 511, 512, 5000, 1 << 16])
def test_cuckoo_places_every_item_in_one_of_its_bins(n):
    bins = cuckoo.num_bins(n)
    loc = np.frombuffer(os.urandom(8 * 3 * n), dtype=np.uint64).reshape(n, 3) % np.uint64(bins)
    table, choice = cuckoo.insert(loc, bins)
    placed = table[table >= 0]
    assert len(placed) == n and len(np.unique(placed)) == n           # each item once
    assert np.array_equal(table[loc[np.arange(n), choice].astype(np.int64)], np.arange(n))


def test_cuckoo_table_sizes_follow_the_bound():
    assert cuckoo.expansion(1 << 16) == pytest.approx((40 + 16 + 256) / 240)
    assert cuckoo.expansion(1 << 20) == pytest.approx(1.3167, abs=1e-4)
    assert cuckoo.expansion(100, 40) > cuckoo.expansion(1000, 40) > 1.27
    assert cuckoo.expansion(1 << 20, 50) > cuckoo.expansion(1 << 20, 40)   # more security, more bins


def test_cuckoo_failure_raises():
    loc = np.zeros((3, 3), dtype=np.int64)          # three items that all want bin 0 only
    with pytest.raises(cuckoo.CuckooError, match="without a bin"):
        cuckoo.insert(loc, 4, max_rounds=50)
    with pytest.raises(ValueError, match="outside"):
        cuckoo.insert(np.full((1, 3), 9), 4)


def test_bucket_capacity_and_output_length():
    assert capacity(1000, 1) == 1000 and capacity(0, 5) == 0
    cap = capacity(1 << 20, 16)
    assert (1 << 16) < cap < 1.05 * (1 << 16)
    assert capacity(10, 4) == 10                     # never above the set size
    assert compare_bytes(1 << 40) == 10 and compare_bytes(4) == 8


def test_ints_encode_the_same_way_in_every_container():
    a = prepare_blocks([5, -1, 2**64 - 1, 5])
    b = prepare_blocks(np.array([-1, 5], dtype=np.int64))
    c = prepare_blocks(np.array([2**64 - 1], dtype=np.uint64))
    d = prepare_blocks([2**200, -1, 5])
    rows = {bytes(r) for r in a.digests}
    assert len(rows) == 3 and a.inverse.tolist()[0] == a.inverse.tolist()[3]
    assert {bytes(r) for r in b.digests} <= rows and {bytes(r) for r in c.digests} <= rows
    assert len({bytes(r) for r in d.digests} & rows) == 2    # 2^200 is hashed, not encoded
    assert {bytes(r)[15] for r in a.digests} == {0}          # byte 15 is the OPRF's hash index
    big = prepare_blocks([5 + (1 << 120), 5 + (2 << 120), 5 - (1 << 119), -(1 << 119)])
    assert len({bytes(r) for r in big.digests} | rows) == 7


def test_ints_related_through_the_top_byte_do_not_match():
    a = [5, 2**120 + 5, 2**121 + 5, -(2**119), 2**119 - 1]
    b = [2**120 + 5, 6, 2**119 - 1]
    check(run([a, b], bucket_size=1), [a, b])


# -- the protocol ---------------------------------------------------------------------------

items_st = st.one_of(st.lists(st.integers(-50, 50), max_size=40),
                     st.lists(st.text(max_size=3), max_size=40))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_oprf_psi_matches_set_intersection(data):
    a = data.draw(items_st)
    kind = st.integers(-50, 50) if (a and isinstance(a[0], int)) else st.text(max_size=3)
    b = data.draw(st.lists(kind, max_size=40))
    receivers = data.draw(st.sampled_from([None, ["alice"], ["bob"]]))
    bucket = data.draw(st.sampled_from([1, 7, 1 << 18]))
    check(run([a, b], receivers=receivers, bucket_size=bucket), [a, b], receivers)


@pytest.mark.parametrize("a, b", [
    ([], []), ([], ["a"]), (["a", "b"], ["c", "d"]),           # empty and no overlap
    (["x", "y", "z"], ["z", "y", "x"]),                         # full overlap
    (["é", "", "日本", "🙂"], ["🙂", "", "e"]),                   # unicode and empty strings
    (["a", "a", "b", "a"], ["a", "a"]),                          # duplicates: every row listed
    ([b"\xff", b"", b"x"], [b"", b"\xff"]),                       # bytes
    ([2**100, -2**70, 3, -1], [-1, 2**100, 4]),                  # big and negative ints
])
def test_edge_cases(a, b):
    check(run([a, b]), [a, b])
    check(run([a, b], receivers=["bob"]), [a, b], ["bob"])


def test_int_str_bytes_are_different_items_and_numpy_arrays_work():
    out = run([[1, 2, 3], np.array([3, 4], dtype=np.int64)])
    assert out["alice"].items == [3] and out["bob"].indices.tolist() == [0]
    out = run([np.array([-1, 7], dtype=np.int64), np.array([2**64 - 1, 7], dtype=np.uint64)])
    assert out["alice"].items == [7]                  # -1 and 2^64-1 are different ids
    with pytest.raises(JobFailed, match="different types"):
        run([[1], ["1"]])


@pytest.mark.parametrize("sizes", [(3000, 4000), (4000, 3000), (50, 5000)])
def test_larger_sets_in_buckets(sizes):
    na, nb = sizes
    a = np.arange(na)
    b = np.arange(na // 2, na // 2 + nb)
    out = run([a, b], bucket_size=1024)
    common = set(a.tolist()) & set(b.tolist())
    assert out["alice"].indices.tolist() == [i for i, v in enumerate(a.tolist()) if v in common]
    assert out["bob"].indices.tolist() == [i for i, v in enumerate(b.tolist()) if v in common]


def test_grpc_transport():
    a = [f"id{i}" for i in range(2000)] + ["é"]
    b = [f"id{i}" for i in range(1500, 2600)] + ["é", "é"]
    check(run([a, b], transport="grpc", bucket_size=512), [a, b])


@pytest.mark.parametrize("bad, match", [(["a", None], "position 1 is None"),
                                        ([1, "a"], "mixed item types")])
def test_bad_input_fails_the_job_naming_the_party(bad, match):
    with pytest.raises(JobFailed, match=match) as info:
        run([["a"], bad])
    assert info.value.party == "bob"


def test_three_parties_are_refused_and_parameters_must_agree():
    with pytest.raises(JobFailed, match="exactly 2 parties"):
        mpc.run_local(lambda ctx: oprf_psi(ctx, ["a"]), ["a", "b", "c"], triples=None)
    with pytest.raises(JobFailed, match="bucket_size"):
        mpc.run_local(lambda ctx: oprf_psi(ctx, ["a"], bucket_size=8 if ctx.party == "a" else 9),
                      ["a", "b"], triples=None)


@pytest.mark.parametrize("spoil, match", [
    (lambda v: v[:, :, :1], r"party 'bob' sent an array uint8 \(3, 1000, 1\) as OPRF values"),
    (lambda v: v[:, ::-1], "party 'bob' sent OPRF values out of order"),
])
def test_malformed_values_from_the_sender_name_it(spoil, match):
    def job(ctx, items):
        if ctx.party == "bob":        # a broken sender: its OPRF values are spoilt
            send = ctx.send

            def bad_send(peer, value):
                if isinstance(value, np.ndarray) and value.ndim == 3:
                    value = np.ascontiguousarray(spoil(value))
                send(peer, value)
            ctx.send = bad_send
        return oprf_psi(ctx, items, receivers=["alice"])

    with pytest.raises(JobFailed, match=match) as info:
        mpc.run_local(job, NAMES, args={"alice": (list(range(10)),), "bob": (list(range(1000)),)},
                      triples=None)
    assert info.value.party == "alice"


def _sender_view(alice_items, bob_items):
    _, views = record_views(oprf_psi, NAMES, args={"alice": (alice_items,), "bob": (bob_items,)},
                            kwargs={p: {"receivers": ["alice"]} for p in NAMES}, triples=None)
    return flatten(views["bob"]), flatten(views["alice"])


def _shapes(view):
    return [(type(v).__name__, getattr(v, "dtype", None), getattr(v, "shape", None)) for v in view]


def test_sender_view_is_independent_of_the_receivers_items():
    """Bob (the OPRF sender, no result) sees the same shapes whatever Alice holds; the
    base-OT points are fresh and the KKRT matrix looks uniform (balanced bits, fresh)."""
    n = 3000
    bob = list(range(n))
    views = [_sender_view(alice, bob)[0] for alice in
             (list(range(n)), list(range(10**6, 10**6 + n)), [0] * 5 + list(range(1, n)))]
    assert _shapes(views[0]) == _shapes(views[1]) == _shapes(views[2])
    points = [next(v for v in view if isinstance(v, np.ndarray) and v.shape == (128, 32)) for view in views]
    kkrt = [[v for v in view if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[0] == 512]
            for view in views]
    assert [len(k) for k in kkrt] == [1, 1, 1]           # one bucket: one KKRT matrix
    for u in (k[0] for k in kkrt):
        assert abs(np.unpackbits(u).mean() - 0.5) < 0.005    # 2^21 bits: 7 sigma
    assert len({p.tobytes() for p in points[0]} | {p.tobytes() for p in points[1]}) == 256
    assert not np.array_equal(kkrt[0][0], kkrt[1][0])


def test_kkrt_matrix_hides_the_codewords():
    """Bob knows the code (he drew its keys): no row of the matrix he gets may be the codeword
    of one of Alice's items under any of the 3 hash indices (the PRG masks must be there)."""
    alice, bob = [f"a{i}" for i in range(2000)], ["a1", "b2"]
    bob_view, alice_view = _sender_view(alice, bob)
    keys = next(v for v in alice_view if isinstance(v, np.ndarray) and v.shape == (4, 16))
    u = next(v for v in bob_view if isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[0] == 512)
    code = Code(keys)
    blocks = prepare_blocks(alice).digests
    words = set()
    for i in range(3):
        x = blocks.copy()
        x[:, 15] ^= i
        words |= {r.tobytes() for r in code(x)}
    rows = {r.tobytes() for r in transpose(u)}
    assert len(words) == 6000 and not rows & words


def test_receiver_view_has_fixed_shapes():
    """Alice (the finder) gets three padded sets per bucket whose shape depends only on sizes."""
    alice = list(range(500))
    shapes = {tuple(_shapes(_sender_view(alice, bob)[1]))
              for bob in (list(range(1000)), list(range(5000, 6000)))}
    assert len(shapes) == 1
