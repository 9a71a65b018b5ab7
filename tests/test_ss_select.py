"""The multi-target selection of mpc.ss.order with sample pivots (Floyd-Rivest cuts before
the quickselect): equal to numpy on data with ties and duplicates, dealer-free and with the
dealer; the opened outcomes are a function of the keys' rank sequence only (a view test);
describe and quantiles without a dealer equal pandas / numpy on tied data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mpc
from mpc import ss
from mpc.ss import order
from protocols import stats

RNG = np.random.default_rng(11)       # test data only


def _select(ctx, x, ranks):
    t = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
    keys = order.shuffled_keys(t)
    trace: list[np.ndarray] = []
    found = order.select(ctx, keys.share, ranks, trace)
    vals = order.values_of(ctx, np.concatenate(found), x.shape[1])
    return t._new(vals, 0).reveal(), len(trace)


def _data(n):
    x = RNG.integers(0, 2 ** 30, (4, n))
    x[1] = 5                                        # constant
    x[2] = RNG.integers(0, 3, n)                    # three values, many ties
    x[3, : n // 2] = x[3, 0]                        # half duplicates of one value
    return x


@pytest.mark.parametrize("triples,single", [("ot", False), ("ot", True), ("dealer", True)])
def test_sample_cuts_match_sort(monkeypatch, triples, single):
    monkeypatch.setattr(order, "SAMPLE_ABOVE", 64)
    if single:                                                 # single pivots for the inner targets
        monkeypatch.setattr(order, "SINGLE_ABOVE", 1000)
    monkeypatch.setattr(order, "OPEN_CHUNK", 1000)            # several comparison calls per round
    n = 3001
    x = _data(n)
    ranks = [np.array([0, 1, n // 4, n // 4 + 1, n // 2, 3 * n // 4, n - 2, n - 1]), np.array([7]),
             np.array([0, n - 1]), np.array([n // 3, n // 3 + 1, 2000])]
    got, rounds = mpc.run_local(_select, ["alice", "bob"], args={p: (x, ranks) for p in ("alice", "bob")},
                                triples=triples)["bob"]
    want = np.concatenate([np.sort(x[j])[r] for j, r in enumerate(ranks)])
    assert np.array_equal(got, want)
    assert rounds > 10


def _trace_job(ctx, keys, ranks):
    share = keys if ctx.party == "alice" else np.zeros_like(keys)
    trace: list[np.ndarray] = []
    order.select(ctx, share, ranks, trace)
    return trace


def test_outcomes_depend_only_on_the_rank_sequence(monkeypatch):
    """View test of the reveal line: two columns, one all ties and one of distinct random
    values, arranged so that their distinct keys y 2^L + j have the same rank sequence,
    give identical opened outcomes in every round. The shuffle makes the rank sequence a
    uniformly random permutation whatever the data, so the outcomes carry nothing else."""
    monkeypatch.setattr(order, "SAMPLE_ABOVE", 128)
    monkeypatch.setattr(order, "SINGLE_ABOVE", 1000)           # the first cut's single pivots too
    n = 2000
    seq = np.argsort(RNG.random(n))                            # the rank of the key at each position
    runs = []
    for y in (np.full(n, 9, np.uint64), RNG.integers(0, 2 ** 20, n).astype(np.uint64)):
        keys = (y << np.uint64(order.key_bits(n))) + np.arange(n, dtype=np.uint64)
        by_rank = np.sort(keys)
        arranged = by_rank[seq].reshape(1, n)
        trace = mpc.run_local(_trace_job, ["alice", "bob"],
                              args={p: (arranged, [np.array([0, n // 4, n // 2, n // 2 + 1, n - 1])])
                                    for p in ("alice", "bob")}, triples="ot")
        assert all(np.array_equal(a, b) for a, b in zip(trace["alice"], trace["bob"], strict=True))
        runs.append(trace["alice"])
    assert len(runs[0]) == len(runs[1]) > 5
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))


def _ranked_trace_job(ctx, keys, ranks, bits):
    share = keys if ctx.party == "alice" else np.zeros_like(keys)
    trace: list[np.ndarray] = []
    found = order.select(ctx, share, ranks, trace, bits=bits)
    return trace, order.values_of(ctx, np.concatenate(found), keys.shape[1], bits + 1)


def test_owner_rank_keys_compare_on_the_ranks_bits_only(monkeypatch):
    """Keys y 2^(R + 1) + rho of owner ranks (``ranked_keys``): the selection, comparing on
    the ranks' R bits only, finds the right order statistics and gives back y exactly; and
    its opened outcomes are a function of the ranks' arrangement only: an all-ties column
    and one of distinct random values, their ranks in the same arrangement, give the same
    outcomes in every round."""
    monkeypatch.setattr(order, "SAMPLE_ABOVE", 128)
    monkeypatch.setattr(order, "SINGLE_ABOVE", 1000)
    n, bits = 2000, order.key_bits(2000)
    seq = np.argsort(RNG.random(n))                            # the rank at each position
    want_ranks = np.array([0, n // 4, n // 2, n // 2 + 1, n - 1])
    runs = []
    for y in (np.full(n, 9, np.uint64), np.sort(RNG.integers(0, 2 ** 40, n)).astype(np.uint64)):
        # y sorted: the value of rank r is y[r]; position j holds rank seq[j]
        keys = ((y[seq] << np.uint64(bits + 1)) + seq.astype(np.uint64)).reshape(1, n)   # as ranked_keys
        out = mpc.run_local(_ranked_trace_job, ["alice", "bob"],
                            args={p: (keys, [want_ranks], bits) for p in ("alice", "bob")}, triples="ot")
        (trace, va), (_, vb) = out["alice"], out["bob"]
        np.testing.assert_array_equal(va + vb, y[want_ranks])
        runs.append(trace)
    assert len(runs[0]) == len(runs[1]) > 5
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))


def _plaintext_count(monkeypatch, n, ranks, runs):
    """Opened comparisons per element of ``select`` on a random order of n keys, counted on
    plaintext (``_less_open`` replaced by numpy's sign; the selection is a function of the
    outcomes only, so the count is the real one), and the results checked."""
    count = {"cmp": 0, "bits": set()}

    def plain(ctx, d, bits):
        count["cmp"] += d.size
        count["bits"].add(bits)
        return d.astype(np.int64) < 0

    monkeypatch.setattr(order, "_less_open", plain)
    rng = np.random.default_rng(5)
    for _ in range(runs):
        keys = rng.permutation(n).astype(np.uint64).reshape(1, n)
        got = order.select(None, keys, [ranks], bits=order.key_bits(n))
        assert np.array_equal(got[0], ranks)
    assert count["bits"] == {order.key_bits(n)}
    return count["cmp"] / runs / n


def test_comparisons_per_element_plaintext(monkeypatch):
    """describe's six ranks (quartile neighbours) and the eight with min and max: the
    figures of the module docstring (2.94 n and 3.41 n at 2^19) with some slack."""
    n = 1 << 19
    six = order.positions(n, [0.25, 0.5, 0.75])
    eight = np.unique(np.concatenate([[0, n - 1], six]))
    assert _plaintext_count(monkeypatch, n, six, 3) < 3.0
    assert _plaintext_count(monkeypatch, n, eight, 3) < 3.47


def test_adjacent_targets_share_a_pivot_plaintext(monkeypatch):
    """Sizes where a quartile's two neighbours fall on either side of a sample-rank step (a
    third of all sizes): they share one single pivot instead of two pivots one sample rank
    apart that made every bucket wanted (2^16 rows: 4.30 n opened comparisons before for
    describe's eight ranks; 400000 rows: 4.19 n before)."""
    for n, bound in ((1 << 16, 3.62), (400000, 3.5)):
        eight = np.unique(np.concatenate([[0, n - 1], order.positions(n, [0.25, 0.5, 0.75])]))
        assert _plaintext_count(monkeypatch, n, eight, 2) < bound


def _describe(ctx, data, owners):
    cols = {k: stats.share_scaled(ctx, v if ctx.party == owners[k] else None, owners[k], name=k)
            for k, v in data.items()}
    return (stats.describe(ctx, cols), stats.corr_matrix(ctx, cols),
            stats.quantile(ctx, cols["ties"], [0.0, 0.1, 0.33, 0.5, 0.9, 1.0]),
            stats.quantile(ctx, cols["dup"], [0.25, 0.5], method="nearest"))


@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_describe_without_a_dealer_on_ties_equals_pandas(monkeypatch, transport):
    """Owner-scaled columns (a public bound): min, max and the quartiles come out of one
    selection, the min/max tournament is never run."""
    monkeypatch.setattr(order, "SAMPLE_ABOVE", 256)

    def no_tournament(x):
        raise AssertionError("describe of bounded columns ran the min/max tournament")

    monkeypatch.setattr(order, "extremes", no_tournament)
    n = 5000
    data = {"ties": RNG.integers(0, 4, n).astype(np.float64) * 0.5,          # four values
            "dup": np.where(RNG.random(n) < 0.7, 3.25, RNG.normal(0, 100, n)),
            "wide": RNG.lognormal(3, 2, n).clip(1e-4, 1e4),
            "const": np.full(n, -2.5)}
    owners = {"ties": "alice", "dup": "bob", "wide": "alice", "const": "bob"}
    d, c, q, qn = mpc.run_local(_describe, ["alice", "bob"], args={p: (data, owners) for p in ("alice", "bob")},
                                triples="ot", transport=transport, timeout=600)["alice"]
    frame = pd.DataFrame(data)
    ref = frame.describe().T
    np.testing.assert_allclose(d.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-3, atol=1e-9)
    want_c = frame.drop(columns="const").corr().to_numpy()
    np.testing.assert_allclose(c.drop(index="const", columns="const").to_numpy(), want_c, atol=1e-4)
    np.testing.assert_allclose(q, np.quantile(data["ties"], [0.0, 0.1, 0.33, 0.5, 0.9, 1.0]), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(qn, np.quantile(data["dup"], [0.25, 0.5], method="nearest"), rtol=1e-9)


def _mixed(ctx, data, owners, ints):
    cols = {}
    for k, v in data.items():
        mine = v if ctx.party == owners[k] else None
        cols[k] = ss.share(ctx, mine, owners[k]) if k in ints else stats.share_scaled(ctx, mine, owners[k], name=k)
    return stats.describe(ctx, cols)


def test_describe_of_floats_and_ints_without_a_dealer(monkeypatch, opened_widths):
    """A table of scaled floats and integer columns: the floats (a public bound) still get
    min, max and the quartiles from one selection, only the integers run the tournament,
    and the integers' selection compares on their own narrow keys, not the floats' width;
    equal to pandas."""
    rows: list[int] = []
    real_extremes = order.extremes

    def extremes(x):
        rows.append(x.shape[0])
        return real_extremes(x)

    monkeypatch.setattr(order, "extremes", extremes)
    n = 3000
    data = {"f": RNG.lognormal(2, 1, n), "i": RNG.integers(-50, 50, n), "g": RNG.normal(0, 3, n),
            "j": RNG.integers(0, 4, n)}
    owners = {"f": "alice", "i": "bob", "g": "bob", "j": "alice"}
    d = mpc.run_local(_mixed, ["alice", "bob"], args={p: (data, owners, {"i", "j"}) for p in ("alice", "bob")},
                      triples="ot", timeout=300)["alice"]
    ref = pd.DataFrame(data).describe().T
    np.testing.assert_allclose(d.loc[ref.index].to_numpy(), ref.to_numpy(), rtol=1e-6, atol=1e-9)
    assert rows and set(rows) == {2}                      # the tournament saw the two integer columns only
    assert min(opened_widths) <= 7 + order.key_bits(n) < max(opened_widths)   # i: range < 2^7, its own selection


def test_selection_on_spilled_keys_holds_a_few_bytes_per_key(monkeypatch, tmp_path):
    """describe's selection on 2^21 keys in a spilled file, with the job's spill directory:
    the cuts only read the keys and write each new arrangement to a scratch file, so the
    selection's own allocations stay under 8 bytes per key (two bytes of bucket intervals
    per key, and one comparison chunk's temporaries); holding the arrangement twice in
    memory, as before, took 19. Counted on plaintext comparisons (``_less_open`` by numpy's
    sign: the same selection, see _plaintext_count); the results are checked."""
    import tracemalloc
    import types

    from mpc.runtime import files
    from mpc.ss.spill import SPILL

    monkeypatch.setattr(order, "_less_open", lambda ctx, d, bits: d.astype(np.int64) < 0)
    monkeypatch.setattr(order, "OPEN_CHUNK", 1 << 16)
    n = 1 << 21
    keys = files.spill(tmp_path, [np.random.default_rng(4).permutation(n).astype(np.uint64)], (1, n), np.uint64)
    ranks = np.unique(np.concatenate([[0, n - 1], order.positions(n, [0.25, 0.5, 0.75])]))
    ctx = types.SimpleNamespace(state={SPILL: tmp_path / "spill"})
    tracemalloc.start()
    try:
        got = order.select(ctx, keys, [ranks], bits=order.key_bits(n))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(got[0], ranks)
    assert peak < 8 * n, peak / n
    assert not any((tmp_path / "spill").iterdir())          # the scratch files are unlinked


def test_scratch_arrays_keep_what_is_written_when_their_pages_are_dropped(tmp_path):
    """``files.scratch`` (a cut's new arrangement): a shared map of an unlinked 0600 file, so
    ``release`` drops its pages from the process without losing what was written."""
    from mpc.runtime import files

    a = files.scratch(tmp_path, (1 << 20,), np.uint64)
    assert not any(tmp_path.iterdir()) and a.flags.writeable and not a.any()   # unlinked at once
    a[::3] = np.arange(0, 1 << 20, 3, dtype=np.uint64)
    before = _rss_file_kib()
    files.release(a)
    assert _rss_file_kib() < before                            # the written pages left the process
    want = np.zeros(1 << 20, np.uint64)
    want[::3] = np.arange(0, 1 << 20, 3, dtype=np.uint64)
    assert np.array_equal(a, want)


def _rss_file_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssFile"))
