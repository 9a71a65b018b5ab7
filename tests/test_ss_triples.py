"""Triple sources: every kind of correlated randomness satisfies its relation, for the
seed-compressed dealer (2 and 3 parties) and dealer-free Paillier (2 parties)."""

import numpy as np
import pytest

import mpc
from mpc.ss.beaver import open_arith, open_xor
from mpc.ss.triples import get_source

SOURCES = [("dealer", 2), ("dealer", 3), ("paillier", 2)]
OPTS = {"dealer": {}, "paillier": {"paillier_bits": 512}}


def _all_kinds(ctx):
    src = get_source(ctx)
    a, b, c = src.arithmetic((3, 4))
    ma, mb, mc = src.matmul((2, 3), (3, 2))
    ba, bb, bc = src.boolean((5,))
    r, top, low = src.trunc_pair((6,), np.array([0, 1, 16, 16, 30, 62]))
    er, eb = src.edabit((4,))
    da, db = src.dabit((7,))
    arith = [a, b, c, ma, mb, mc, r, top, low, er, da]
    return ([open_arith(ctx, v) for v in arith], [open_xor(ctx, v) for v in (ba, bb, bc, eb, db)])


@pytest.mark.parametrize("kind,n", SOURCES)
def test_triple_relations(kind, n):
    parties = ["p0", "p1", "p2"][:n]
    out = mpc.run_local(_all_kinds, parties, triples=kind, timeout=120, **OPTS[kind])
    (a, b, c, ma, mb, mc, r, top, low, er, da), (ba, bb, bc, eb, db) = out["p0"]
    assert np.array_equal(c, a * b)
    assert np.array_equal(mc, ma @ mb)
    assert np.array_equal(bc, ba & bb)
    assert np.array_equal(top, r >> np.uint64(63))
    bits = np.array([0, 1, 16, 16, 30, 62], dtype=np.uint64)
    assert np.array_equal(low, (r & np.uint64(2 ** 63 - 1)) >> bits)
    assert np.array_equal(eb, er)
    assert np.array_equal(da, db) and set(np.unique(da)) <= {0, 1}
    # randomness is not degenerate
    assert len(np.unique(a)) == a.size and len(np.unique(ba)) == ba.size


def test_dealer_shares_are_uniform_looking_and_fresh_per_job():
    out1 = mpc.run_local(_all_kinds, ["p0", "p1"])
    out2 = mpc.run_local(_all_kinds, ["p0", "p1"])
    assert not np.array_equal(out1["p0"][0][0], out2["p0"][0][0])


def test_dealer_traffic_only_last_party_asks():
    """Parties other than the last never send to the dealer until 'done' (FIFO): if one did,
    the dealer would read it as the final 'done' and fail the job."""

    def fn(ctx):
        src = get_source(ctx)
        for _ in range(3):
            src.arithmetic((10,))
        return True

    assert mpc.run_local(fn, ["a", "b", "c"]) == {"a": True, "b": True, "c": True}


def test_unknown_triple_source_is_a_clear_error():
    def fn(ctx):
        return get_source(ctx)

    with pytest.raises(mpc.JobFailed, match="unknown triple source"):
        mpc.run_local(fn, ["a", "b"], triples="magic")


def test_paillier_needs_two_parties():
    def fn(ctx):
        return get_source(ctx)

    with pytest.raises(mpc.JobFailed, match="exactly two computing parties"):
        mpc.run_local(fn, ["a", "b", "c"], triples="paillier", paillier_bits=512)


def _truncate_job(ctx, share, bits):
    from mpc.ss import beaver
    return beaver.open_arith(ctx, beaver.truncate(ctx, share, bits))


@pytest.mark.parametrize("kind,n", SOURCES)
def test_truncation_protocol_within_one_ulp(kind, n):
    rng = np.random.default_rng(4)   # test data and test shares only
    x = np.concatenate([rng.integers(-2 ** 62 + 1, 2 ** 62, 300), [0, -1, 1, 2 ** 62 - 1, -2 ** 62 + 1]])
    bits = np.concatenate([rng.integers(0, 40, 300), [0, 5, 5, 16, 16]]).astype(np.uint64)
    parties = ["p0", "p1", "p2"][:n]
    shares = [rng.integers(0, 2 ** 64, x.size, dtype=np.uint64) for _ in parties[1:]]
    first = x.view(np.uint64) - sum(shares, np.zeros(x.size, np.uint64))
    args = {p: (s, bits) for p, s in zip(parties, [first, *shares], strict=True)}
    out = mpc.run_local(_truncate_job, parties, args=args, triples=kind, timeout=120, **OPTS[kind])
    got = out["p0"].view(np.int64)
    exact = x >> bits.astype(np.int64)      # floor division by 2^bits
    diff = got - exact
    assert np.all((diff >= 0) & (diff <= 1))
    assert np.all(diff[bits == 0] == 0)
