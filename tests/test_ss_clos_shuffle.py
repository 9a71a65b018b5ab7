"""The dealer-free shuffle in Clos stages (mpc.ss.clos_shuffle): a permutation of the rows
(kept aligned when joint), uniform over all n! permutations (padding included), the same
through ``ss.shuffle`` when the job limits its networks, its pieces (flow matrix,
decomposition, subsets) exact, and its memory bounded by the networks, not by n."""

import itertools
import math
import tracemalloc
from math import comb

import numpy as np
import pytest

import mpc
from mpc import ss
from mpc.ss import clos_shuffle as cs
from mpc.ss import shuffle as sh


def _clos(ctx, data, wires, directory, jointly=True):
    x = ss.share(ctx, data if ctx.party == "a" else None, owner="a").share
    ctx.state[cs.WIRES] = wires
    if directory is not None:
        ctx.state[ss.spill.SPILL] = str(directory / ctx.party)
    return ss.from_shares(ctx, sh.shuffle(ctx, x, jointly=jointly)).reveal()


@pytest.mark.parametrize(("n", "wires", "rows"), [(1000, 256, 2), (4099, 1024, 1), (50, 16, 3), (4096, 4096, 1)])
@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_clos_shuffle_permutes_rows_jointly(tmp_path, n, wires, rows, transport):
    data = np.stack([np.arange(n, dtype=np.int64) * (r + 1) - 7 for r in range(rows)])
    out = mpc.run_local(_clos, ["a", "b"], args={p: (data, wires, tmp_path) for p in "ab"}, timeout=120,
                        triples="ot", transport=transport)
    got = out["a"].astype(np.int64)
    assert np.array_equal(got, out["b"].astype(np.int64))
    order = np.argsort(got[0])
    assert np.array_equal(got[0][order], data[0])
    assert np.array_equal(got, data[:, got[0] + 7])          # row 0 tells each output's input
    assert not np.array_equal(got[0], data[0])
    if cs.needs(n, wires):
        for party in "ab":                                   # the stages' files are unlinked at once
            assert (tmp_path / party).is_dir() and list((tmp_path / party).iterdir()) == []


def test_clos_shuffle_rows_independently_in_memory():
    """Not joint: every row by its own permutation; no spill directory: stages in memory."""
    data = np.tile(np.arange(600, dtype=np.int64), (2, 1))
    got = mpc.run_local(_clos, ["a", "b"], args={p: (data, 128, None, False) for p in "ab"}, timeout=120,
                        triples="ot")["a"].astype(np.int64)
    assert all(np.array_equal(np.sort(r), data[0]) for r in got)
    assert not np.array_equal(got[0], got[1])


@pytest.mark.parametrize(("n", "wires", "per"),
                         [(3, 2, 50), pytest.param(4, 2, 15, marks=pytest.mark.slow),
                          pytest.param(5, 4, 20, marks=pytest.mark.slow)])
def test_clos_shuffle_hits_every_permutation_evenly(n, wires, per):
    """Every permutation of n wires about equally often (chi-square at p ~ 1e-6): 2 chunks
    of 2 with one padding wire (never in the output), 2 chunks of 2, 2 chunks of 3 with one
    padding wire."""
    def job(ctx, reps):
        x = ss.share(ctx, np.arange(1, n + 1, dtype=np.int64)[None] if ctx.party == "a" else None, owner="a").share
        ctx.state[cs.WIRES] = wires
        return np.concatenate([ss.from_shares(ctx, sh.shuffle(ctx, x, jointly=True)).reveal() for _ in range(reps)])
    perms = math.factorial(n)
    reps = per * perms
    rows = mpc.run_local(job, ["a", "b"], args={p: (reps,) for p in "ab"}, timeout=600, triples="ot")["a"]
    rows = rows.astype(np.int64)
    assert np.array_equal(np.sort(rows, axis=1), np.tile(np.arange(1, n + 1), (reps, 1)))
    index = {p: i for i, p in enumerate(itertools.permutations(range(1, n + 1)))}
    counts = np.bincount([index[tuple(r)] for r in rows], minlength=perms)
    chi2 = float(np.sum((counts - per) ** 2 / per))
    dof = perms - 1
    assert chi2 < dof + 8 * math.sqrt(2 * dof), counts


def test_flows_are_hypergeometric():
    """K[0, 0] of two chunks of 3 (of 6 wires): hypergeometric, C(3,k) C(3,3-k) / C(6,3)."""
    got = np.bincount([cs._flows(np.array([3, 3]))[0, 0] for _ in range(4000)], minlength=4)
    want = np.array([comb(3, k) * comb(3, 3 - k) for k in range(4)]) / comb(6, 3) * 4000
    assert float(np.sum((got - want) ** 2 / want)) < 30, got
    k = cs._flows(np.array([5, 7, 7, 2]))
    assert k.sum(axis=0).tolist() == k.sum(axis=1).tolist() == [5, 7, 7, 2]


def test_subset_is_uniform_and_distinct():
    picks = np.concatenate([cs._subset(2, 5) for _ in range(3000)]).astype(np.int64).reshape(-1, 2)
    assert np.all(picks[:, 0] != picks[:, 1]) and picks.max() < 5
    pairs = np.bincount(np.sort(picks, axis=1) @ np.array([5, 1]), minlength=25)
    pairs = pairs[pairs > 0]
    assert len(pairs) == 10 and float(np.sum((pairs - 300) ** 2 / 300)) < 40, pairs
    assert np.array_equal(np.sort(cs._subset(1000, 1000).astype(np.int64)), np.arange(1000))


@pytest.mark.parametrize("m", [2, 5, 16])
def test_decompose_rebuilds_the_flow_matrix(m):
    c = 37
    sizes = np.full(m, c, np.int64)
    flows = cs._flows(sizes)
    perms, counts = cs._decompose(flows)
    assert counts.sum() == c and len(counts) <= m * m - 2 * m + 2
    rebuilt = np.zeros((m, m), np.int64)
    for p, w in zip(perms, counts, strict=True):
        assert sorted(p.tolist()) == list(range(m))
        rebuilt[np.arange(m), p] += w
    assert np.array_equal(rebuilt, flows)


def test_permutation_keeps_the_padding_at_the_end():
    """The last chunk's padding enters at its end and leaves at its end; every stage's
    destinations are permutations of the chunk."""
    perm = cs.ClosPermutation(4, 10, 3)
    for i in range(4):
        for dest in (perm.first(i), perm.last(i)):
            assert sorted(dest.tolist()) == list(range(10))
    first, last = perm.first(3), perm.last(3)
    padding_positions = first[7:]
    assert np.all(perm.labels(3)[padding_positions] == 3)      # the middle keeps them in the last chunk
    assert sorted(last[padding_positions].tolist()) == [7, 8, 9]


def test_layout_and_budget():
    assert cs.layout(10**8, 1 << 21) == (48, 2083334, 48 * 2083334 - 10**8)
    assert cs.wires_for(2 << 30) == 1 << 21 and cs.wires_for(1) == 1 << 12
    assert not cs.needs(1 << 21, 1 << 21) and cs.needs((1 << 21) + 1, 1 << 21) and not cs.needs(10**9, None)
    with pytest.raises(ValueError, match="more than 256"):
        cs.layout(10**9, 4096)
    with pytest.raises(ValueError, match="at least"):
        cs.layout(200, 10)


def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_clos_shuffle_memory_follows_the_networks_not_n(tmp_path):
    """Both parties in one process at n = 2^16: in networks of 2^12 wires, with the stages on
    disk, the peak is a small fraction of the one 2^16-wire network's."""
    n = 1 << 16
    data = np.arange(n, dtype=np.int64)[None]

    def run(wires, directory):
        return lambda: mpc.run_local(_clos, ["a", "b"], args={p: (data, wires, directory) for p in "ab"},
                                     timeout=300, triples="ot")
    whole = _peak(run(None, None))
    staged = _peak(run(1 << 12, tmp_path))
    print(f"peak: one network {whole / 2**20:.1f} MiB, Clos stages {staged / 2**20:.1f} MiB")
    assert staged < whole / 4, (staged, whole)
