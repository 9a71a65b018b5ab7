"""Owner ranks out of core (protocols.bucketed_ranks): every spilled record's rank in its
whole column equals numpy's stable argsort of the column, files 0600, and the computation
holds at most a spill file's records and its merge buffers, not the column."""

from __future__ import annotations

import stat
import tracemalloc

import numpy as np
import pytest

from protocols import bucketed_ranks
from protocols.buckets import SPILL, Spill

RNG = np.random.default_rng(5)      # test data only


def _spill(tmp_path, values: np.ndarray, files: np.ndarray) -> Spill:
    sp = Spill(tmp_path / "spill", values.shape[1])
    step = 1 << 16
    for s in range(0, len(values), step):            # appended a batch at a time, as buckets.spill does
        rec = np.zeros(min(step, len(values) - s), dtype=sp.dtype)
        rec["row"] = np.arange(s, s + len(rec))
        rec["v"] = values[s:s + len(rec)]
        sp.add(files[s:s + len(rec)], rec)
    return sp


def _whole_ranks(column: np.ndarray) -> np.ndarray:
    """Ranks 0..n-1 by value, ties by input row (mpc.ss.order.owner_ranks of a column held whole)."""
    out = np.empty(len(column), np.int64)
    out[np.argsort(column, kind="stable")] = np.arange(len(column))
    return out


def _scaled(rec: np.ndarray) -> np.ndarray:
    return np.round(rec["v"]).astype(np.int64)


@pytest.mark.parametrize(("n", "memory"), [(1, 1 << 20), (5000, 1 << 14), (60000, 1 << 16), (60000, 1 << 24)])
def test_ranks_equal_the_whole_columns_ranks(tmp_path, n, memory):
    """Ties (a column of 3 values, one constant), negative and huge int64 values, empty spill
    files (only 40 of 256 used), merge blocks of 16 records up to all of a run."""
    files = RNG.choice(np.arange(0, SPILL, 7)[:40], n).astype(np.uint16)
    values = np.stack([RNG.integers(-1, 2, n), np.full(n, 7), RNG.integers(-2**62, 2**62, n),
                       np.round(RNG.normal(0, 1e3, n))], axis=1).astype(np.float64)
    values[:, 2] = np.round(values[:, 2] / 2**20) * 2**20          # exact in float64
    sp = _spill(tmp_path, values, files)
    ranks = bucketed_ranks.owner_ranks(sp, tmp_path / "ranks", _scaled, 4, n, memory=memory)
    rec = sp.read(0, SPILL)
    got = ranks.read(sp, 0, SPILL).astype(np.int64)
    assert got.shape == (n, 4)
    for j in range(4):
        want = _whole_ranks(np.round(values[:, j]).astype(np.int64))
        np.testing.assert_array_equal(got[:, j], want[rec["row"]])
    # read per bucket (files 64..127) aligned with the bucket's records
    part = sp.read(64, 64)
    np.testing.assert_array_equal(ranks.read(sp, 64, 64)[:, 1].astype(np.int64), part["row"])   # constant: row order
    left = sorted(p.name for p in (tmp_path / "ranks").iterdir())
    assert left == sorted(f"rank-{i:03d}.bin" for i in np.unique(files).tolist())          # the runs removed
    for p in (tmp_path / "ranks").iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ranks").stat().st_mode) == 0o700


def test_rank_memory_is_bounded_by_the_merge_buffers_not_the_column(tmp_path):
    """2^20 rows over 256 spill files: a value and an index per row (what ranking the column
    in memory holds, before its sort's temporaries) would be 16 MiB; the out-of-core ranks'
    peak of Python-tracked allocations (numpy's included) stays under 4 MiB with a 2 MiB
    merge budget (one spill file's records are ~4096 x 32 bytes)."""
    n = 1 << 20
    files = RNG.integers(0, SPILL, n).astype(np.uint16)
    values = RNG.normal(0, 1e6, (n, 1)).round()
    values[RNG.random(n) < 0.3, 0] = 5.0                                # ties
    sp = _spill(tmp_path, values, files)
    del files
    tracemalloc.start()
    try:
        ranks = bucketed_ranks.owner_ranks(sp, tmp_path / "ranks", _scaled, 1, n, memory=2 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"peak {peak / 2**20:.1f} MiB"
    rec = sp.read(0, SPILL)
    want = _whole_ranks(np.round(values[:, 0]).astype(np.int64))
    np.testing.assert_array_equal(ranks.read(sp, 0, SPILL)[:, 0].astype(np.int64), want[rec["row"]])


def test_a_spill_that_lost_records_is_refused(tmp_path):
    sp = _spill(tmp_path, np.zeros((10, 1)), np.zeros(10, np.uint16))
    with pytest.raises(ValueError, match="10 records, 11 expected"):
        bucketed_ranks.owner_ranks(sp, tmp_path / "ranks", _scaled, 1, 11)
