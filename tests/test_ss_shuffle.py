"""Oblivious shuffle, with the dealer and dealer-free (triples="ot", two parties): every
row comes back as a permutation of itself, rows are permuted independently (or jointly,
staying aligned), permutations look uniform, and bad input is refused."""

import numpy as np
import pytest

import mpc
from mpc import ss
from mpc.ss import shuffle as sh


def _shuffled(ctx, data):
    x = ss.share(ctx, data if ctx.party == ctx.parties[0] else None, owner=ctx.parties[0])
    rows = sh.shuffle(ctx, x.share)
    return ss.from_shares(ctx, rows).reveal(), sh.available(ctx)


SOURCES = [(["a", "b"], "dealer"), (["a", "b", "c"], "dealer"), (["a", "b"], "ot")]


@pytest.mark.parametrize(("parties", "triples"), SOURCES)
@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_shuffle_permutes_each_row(parties, triples, transport):
    data = np.stack([np.arange(1000, dtype=np.int64), np.arange(1000, dtype=np.int64)]) - 500
    out = mpc.run_local(_shuffled, parties, args={p: (data,) for p in parties}, transport=transport, timeout=120,
                        triples=triples)
    rows, ok = out[parties[0]]
    assert ok
    assert all(np.array_equal(out[p][0], rows) for p in parties)
    for r in range(2):
        assert np.array_equal(np.sort(rows[r].astype(np.int64)), data[r])
        assert not np.array_equal(rows[r].astype(np.int64), data[r])
    assert not np.array_equal(rows[0], rows[1])      # independent permutations per row


@pytest.mark.parametrize("triples", ["dealer", "ot"])
def test_shuffle_is_uniform_enough(triples):
    """Position of element 0 over many shuffles of 4 elements: every slot is hit."""
    data = np.tile(np.arange(4, dtype=np.int64), (400, 1))
    rows, _ = mpc.run_local(_shuffled, ["a", "b"], args={p: (data,) for p in "ab"}, timeout=60,
                            triples=triples)["a"]
    where = np.argmax(rows.astype(np.int64) == 0, axis=1)
    counts = np.bincount(where, minlength=4)
    assert counts.min() > 50, counts


@pytest.mark.parametrize("jointly", [False, True])
def test_ot_shuffle_hits_every_permutation_evenly(jointly):
    """1200 shuffles of 3 elements (padded to a 4-wire network with a dummy): each of the 6
    permutations about 200 times (chi-square, 5 degrees of freedom, p ~ 1e-6 bound), and
    never the dummy's value inside the output."""
    def job(ctx, data):
        x = ss.share(ctx, data if ctx.party == "a" else None, owner="a").share
        if jointly:     # 1200 one-row joint shuffles: one permutation per call
            return [ss.from_shares(ctx, sh.shuffle(ctx, x[i:i + 1], jointly=True)).reveal()[0]
                    for i in range(len(x))]
        return ss.from_shares(ctx, sh.shuffle(ctx, x)).reveal()
    reps = 300 if jointly else 1200
    data = np.tile(np.arange(1, 4, dtype=np.int64), (reps, 1))
    rows = np.asarray(mpc.run_local(job, ["a", "b"], args={p: (data,) for p in "ab"}, timeout=300,
                                    triples="ot")["a"]).astype(np.int64)
    assert np.array_equal(np.sort(rows, axis=1), data)
    code = rows[:, 0] * 10 + rows[:, 1]
    counts = np.array([np.sum(code == c) for c in (12, 13, 21, 23, 31, 32)])
    expected = reps / 6
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 35, counts


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


@pytest.mark.parametrize(("parties", "triples"), SOURCES)
@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_shuffle_jointly_keeps_rows_aligned(parties, triples, transport):
    data = _table()
    out = mpc.run_local(_shuffled_jointly, parties, args={p: (data,) for p in parties},
                        transport=transport, timeout=120, triples=triples)
    check_joint(out[parties[0]], data)


@pytest.mark.parametrize("n", [0, 1, 2, 5, 1023, 4097])
@pytest.mark.parametrize("jointly", [False, True])
def test_ot_shuffle_odd_sizes(n, jointly):
    """Widths that are not powers of two run on the padded network; 0 and 1 are no-ops."""
    data = np.stack([np.arange(n, dtype=np.int64) * 7 - 3, np.arange(n, dtype=np.int64)])
    fn = _shuffled_jointly if jointly else (lambda ctx, d: _shuffled(ctx, d)[0])
    out = mpc.run_local(fn, ["a", "b"], args={p: (data,) for p in "ab"}, timeout=120, triples="ot")["a"]
    out = np.asarray(out).astype(np.int64).reshape(data.shape)
    for r in range(2):
        assert np.array_equal(np.sort(out[r]), np.sort(data[r]))
    if jointly and n:
        assert np.array_equal(out, data[:, out[1]])


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


def _shuffled_clear(ctx, data, clear, early):
    """Rows [:clear] are party a's plaintext shared (value, 0), the rest shared by a."""
    from mpc.ss import ot_shuffle
    from mpc.ss.triples import get_source
    x = ss.share(ctx, data[clear:] if ctx.party == "a" else None, owner="a").share
    own = data[:clear].astype(np.uint64) if ctx.party == "a" else np.zeros((clear, data.shape[1]), np.uint64)
    routed = ot_shuffle.draw(data.shape[1]) if early else None
    out = ot_shuffle.shuffle(get_source(ctx), np.concatenate([own, x]), jointly=True, clear=clear, routed=routed)
    return ss.from_shares(ctx, out).reveal()


@pytest.mark.parametrize("clear", [1, 2, 4])
@pytest.mark.parametrize("n", [2, 5, 1000])
@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_ot_shuffle_with_clear_rows_keeps_rows_aligned(clear, n, transport):
    """Party 0's plaintext rows skip its own network (it permutes them itself), the rest
    take both: still one joint permutation; clear = rows (everything party 0's) too."""
    data = _table(4, n)
    out = mpc.run_local(_shuffled_clear, ["a", "b"], args={p: (data, clear, n == 5) for p in "ab"},
                        transport=transport, timeout=120, triples="ot")
    out_a = out["a"].astype(np.int64)
    assert np.array_equal(out_a, out["b"].astype(np.int64))
    assert np.array_equal(np.sort(out_a[0]), data[0])
    assert np.array_equal(out_a, data[:, out_a[0]])
    if n > 100:     # a uniform permutation of 5 is the identity once in 120 runs (CI saw it)
        assert not np.array_equal(out_a[0], data[0])


def test_ot_shuffle_with_clear_rows_is_uniform():
    """3 elements, one clear row and one shared: each of the 6 permutations ~ 1/6."""
    def job(ctx):
        from mpc.ss import ot_shuffle
        from mpc.ss.triples import get_source
        data = np.array([[1, 2, 3], [10, 20, 30]], dtype=np.uint64)
        x = data.copy() if ctx.party == "a" else np.zeros_like(data)
        return [ss.from_shares(ctx, ot_shuffle.shuffle(get_source(ctx), x, jointly=True, clear=1)).reveal()
                for _ in range(300)]
    rows = np.asarray(mpc.run_local(job, ["a", "b"], timeout=300, triples="ot")["a"]).astype(np.int64)
    assert np.array_equal(rows[:, 1], rows[:, 0] * 10)
    code = rows[:, 0, 0] * 10 + rows[:, 0, 1]
    counts = np.array([np.sum(code == c) for c in (12, 13, 21, 23, 31, 32)])
    chi2 = float(np.sum((counts - 50) ** 2 / 50))
    assert chi2 < 35, counts


def test_ot_shuffle_refuses_bad_clear():
    from mpc.ss import ot_shuffle

    def job(ctx):
        from mpc.ss.triples import get_source
        ot_shuffle.shuffle(get_source(ctx), np.zeros((2, 4), np.uint64), jointly=False, clear=1)
    with pytest.raises(Exception, match="clear rows"):
        mpc.run_local(job, ["a", "b"], timeout=30, triples="ot")


def test_ot_shuffle_two_rounds_with_wires_dropped_between():
    """TwoRounds: party 0's round on 1000 wires (one clear row), then 300 wires dropped
    (party 0 names them), party 1's round on the 700 left: the rows stay aligned, the
    survivors are exactly the columns not dropped, and their order is neither input's."""
    from mpc.ss import ot_shuffle
    from mpc.ss.triples import get_source

    def job(ctx, data):
        src = get_source(ctx)
        rounds = ot_shuffle.TwoRounds(src, 1000, 700, 2, 3)
        x = data.astype(np.uint64) if ctx.party == "a" else np.zeros(data.shape, np.uint64)
        y = rounds.round(0, x, clear=1)
        opened = ss.from_shares(ctx, y[1:2]).reveal()[0].astype(np.int64)
        keep = np.sort(np.flatnonzero(opened % 10 != 0)[:700])      # drop 300 public columns
        z = rounds.round(1, y[:, keep])
        return ss.from_shares(ctx, z).reveal(), opened[keep]
    data = _table(3, 1000)
    out = mpc.run_local(job, ["a", "b"], args={p: (data,) for p in "ab"}, timeout=120, triples="ot")
    got, survivors = out["a"]
    got = got.astype(np.int64)
    assert np.array_equal(got, data[:, got[0]])
    assert np.array_equal(np.sort(got[0]), np.sort((survivors + 7) // 4))  # row 1 is 4 * index - 7
    assert not np.array_equal(got[0], np.sort(got[0]))


def test_ot_shuffle_two_rounds_refuses_wrong_shapes():
    from mpc.ss import ot_shuffle
    from mpc.ss.triples import get_source

    def job(ctx):
        rounds = ot_shuffle.TwoRounds(get_source(ctx), 10, 6, 1, 2)
        rounds.round(0, np.zeros((2, 9), np.uint64))
    with pytest.raises(Exception, match="round 0 of the shuffle"):
        mpc.run_local(job, ["a", "b"], timeout=30, triples="ot")


def test_ot_shuffle_plan_is_the_arbitrary_size_network():
    """The walk's plan, built from the block sizes alone, has exactly the real switches of
    benes.real_switches (one OT each) and the crossed public ones of benes.fixed_bits, and no
    real wire beyond each layer's copied range."""
    from mpc.ss import benes, ot_shuffle
    for n in list(range(2, 140)) + [1000, 1025, 4097, 70001]:
        width = benes.padded_size(n)
        plan = ot_shuffle._plan(n, width)
        for lay, real, fixed in zip(plan, benes.real_switches(n, width), benes.fixed_bits(n, width), strict=True):
            got = np.zeros((lay.blocks, lay.half), bool)
            for key in lay.parts:
                got[key[1:]] = True
            assert np.array_equal(got.reshape(-1), real) and lay.switches == real.sum()
            crossed = np.zeros((lay.blocks, lay.half), bool)
            for col, blocks in lay.fixed:
                crossed[blocks, col] = True
            assert np.array_equal(crossed.reshape(-1), fixed)
            assert not real.reshape(lay.blocks, lay.half)[:, lay.stop:].any()
            assert lay.rest <= lay.stop and (lay.rest == lay.half or not crossed[:, :lay.rest].any())
