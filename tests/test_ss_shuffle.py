"""Dealer shuffle: every row comes back as a permutation of itself, rows are permuted
independently, no single party's permutation is the result, and bad input is refused."""

import numpy as np
import pytest

import mpc
from mpc import ss
from mpc.ss import shuffle as sh


def _shuffled(ctx, data):
    x = ss.share(ctx, data if ctx.party == ctx.parties[0] else None, owner=ctx.parties[0])
    rows = sh.shuffle(ctx, x.share)
    return ss.from_shares(ctx, rows).reveal(), sh.available(ctx)


@pytest.mark.parametrize("parties", [["a", "b"], ["a", "b", "c"]])
@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_shuffle_permutes_each_row(parties, transport):
    data = np.stack([np.arange(1000, dtype=np.int64), np.arange(1000, dtype=np.int64)]) - 500
    out = mpc.run_local(_shuffled, parties, args={p: (data,) for p in parties}, transport=transport, timeout=120)
    rows, ok = out[parties[0]]
    assert ok
    assert all(np.array_equal(out[p][0], rows) for p in parties)
    for r in range(2):
        assert np.array_equal(np.sort(rows[r].astype(np.int64)), data[r])
        assert not np.array_equal(rows[r].astype(np.int64), data[r])
    assert not np.array_equal(rows[0], rows[1])      # independent permutations per row


def test_shuffle_is_uniform_enough():
    """Position of element 0 over many shuffles of 4 elements: every slot is hit."""
    data = np.tile(np.arange(4, dtype=np.int64), (400, 1))
    rows, _ = mpc.run_local(_shuffled, ["a", "b"], args={p: (data,) for p in "ab"}, timeout=60)["a"]
    where = np.argmax(rows.astype(np.int64) == 0, axis=1)
    counts = np.bincount(where, minlength=4)
    assert counts.min() > 50, counts


def _shuffled_jointly(ctx, data):
    x = ss.share(ctx, data if ctx.party == ctx.parties[0] else None, owner=ctx.parties[0])
    rows = sh.shuffle(ctx, x.share, jointly=True)
    return ss.from_shares(ctx, rows).reveal()


def _table(rows=4, n=1000):
    """Row 0 the column index, the other rows functions of it: rows stay aligned iff every
    column of the output is one column of the input."""
    idx = np.arange(n, dtype=np.int64)
    return np.stack([idx] + [idx * (r + 3) - 7 * r for r in range(1, rows)])


def check_joint(out: np.ndarray, data: np.ndarray) -> None:
    """``out`` is ``data`` with its columns permuted by one permutation, not the identity."""
    out = out.astype(np.int64)
    perm = out[0]
    assert np.array_equal(np.sort(perm), data[0])
    assert np.array_equal(out, data[:, perm])
    assert not np.array_equal(perm, data[0])


@pytest.mark.parametrize("parties", [["a", "b"], ["a", "b", "c"]])
@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_shuffle_jointly_keeps_rows_aligned(parties, transport):
    data = _table()
    out = mpc.run_local(_shuffled_jointly, parties, args={p: (data,) for p in parties},
                        transport=transport, timeout=120)
    check_joint(out[parties[0]], data)


def _bad(ctx):
    return sh.shuffle(ctx, np.zeros(5, np.uint64))


def test_shuffle_refuses_1d_and_paillier():
    with pytest.raises(Exception, match="2-D"):
        mpc.run_local(_bad, ["a", "b"], timeout=30)
    out = mpc.run_local(lambda ctx: sh.available(ctx), ["a", "b"], triples="paillier", paillier_bits=512, timeout=60)
    assert out == {"a": False, "b": False}


def _pieces(ctx):
    from mpc.ss.triples import get_source
    return get_source(ctx).shuffle_pieces((1, 200))


@pytest.mark.parametrize("parties", [["a", "b"], ["a", "b", "c"]])
def test_no_party_can_recover_a_permutation_from_its_pieces(parties):
    """A party that gets the dealer's correction for round j must not find its own masks in
    it, permuted (that would hand it perm_j): the correction shares no values with them."""
    out = mpc.run_local(_pieces, parties, timeout=60)
    for j, permuter in enumerate(parties):
        for p in parties:
            if p == permuter:
                continue
            piece = out[p][j]
            assert len(set(piece["share"].ravel().tolist()) & set(piece["mask"].ravel().tolist())) < 3
