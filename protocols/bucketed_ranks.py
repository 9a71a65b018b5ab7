"""Each row's rank in its owner's WHOLE column, computed out of core, for the bucketed join.

With describe, the dealer-free join sends every value column's owner ranks (0..n - 1 by
value, ties by input row) through the join as extra shared columns, so that describe's
opened comparisons run on the ranks' R = log2 n bits (:func:`protocols.psi.private_join.
private_join` with ``ranks``; :mod:`mpc.ss.order`, "Owner ranks"). The bucketed join
(:mod:`protocols.bucketed`) does the same per bucket, with ranks over the party's whole
column -- all its rows, every bucket -- which it cannot hold in memory (at 10^8 rows a
value and an index per row are 1.6 GB). So the ranks are computed from the spill files
(:mod:`protocols.buckets`), with at most one spill file's records and ``memory`` bytes of
merge buffers in memory:

1. Runs. Each of the 256 spill files is read, its columns scaled as the bucket's join
   scales them (``values(records)``: int64, the same integers the join shares), and sorted
   by (value, input row); the sorted (value, row, place in the spill file) go to a run file.
2. Merge. The 256 runs are merged a block at a time: every round holds a block of each
   run and takes, from every run, its buffered records up to t, the smallest last buffered
   key among the runs that have more on disk. Every record up to t is buffered (each run is
   sorted), so the records taken are exactly the next ones of the whole column's order:
   sorted together they get the next ranks, appended to each run's rank file in the run's
   order. The run that set t gives its whole buffer, so every round makes progress; the
   spill files being pseudo-random parts of the rows (a keyed hash of the id), each round
   takes most of what it holds.
3. Each spill file's ranks go back into its records' order (one rank file per spill file,
   read beside its records by :meth:`Ranks.read`).

Files: in the job's checkpoint directory (0700), each made 0600; the runs are removed once
merged. Reveals nothing: local files of the party's own data, in its own checkpoint
directory, which holds its spilled input anyway. The ranks are distinct, and ordered like
the scaled values (ties by input row), as :func:`mpc.ss.order.owner_ranks` gives them for a
column held whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from protocols.buckets import SPILL, Spill

MERGE_MEMORY = 32 << 20      # bytes of the merge's buffers (step 2), whatever the column's length
_RUN = np.dtype([("u", np.uint64), ("row", np.int64), ("pos", np.uint32)])
_SIGN = np.uint64(1 << 63)
RANK = np.uint32             # ranks below 2^32 (a party's rows)
_PER_RECORD = 128            # merge bytes per record of a block (up to two blocks per run, the round's sort)


def _create(path: Path):
    """``path`` opened for writing, made 0600 (truncated if it was there)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")


def ordered(values: np.ndarray) -> np.ndarray:
    """int64 values as uint64 words of the same order (the sign bit flipped)."""
    return np.ascontiguousarray(values, dtype=np.int64).view(np.uint64) ^ _SIGN


class Ranks:
    """The owner ranks of a spilled input's columns, one file per spill file (step 3)."""

    def __init__(self, directory: Path, columns: int) -> None:
        self.dir, self.columns = directory, columns

    def file(self, i: int) -> Path:
        return self.dir / f"rank-{i:03d}.bin"

    def read(self, sp: Spill, first: int, count: int) -> np.ndarray:
        """(records, columns) ranks of spill files first..first + count - 1, aligned with
        ``sp.read(first, count)``."""
        parts = [np.fromfile(self.file(i), dtype=RANK).reshape(-1, self.columns) for i in range(first, first + count)
                 if sp.file(i).exists()]
        return np.concatenate(parts) if parts else np.zeros((0, self.columns), RANK)


def owner_ranks(sp: Spill, directory: Path, values: Callable[[np.ndarray], np.ndarray], columns: int,
                rows: int, memory: int = MERGE_MEMORY) -> Ranks:
    """Every spilled record's rank in its column over all ``rows`` records of the spill
    ``sp`` (module docstring), per column of ``values(records)`` ((k, columns) int64, the
    scaled values), in rank files of ``directory``."""
    if rows >= 1 << 32:
        raise ValueError(f"owner ranks of {rows} rows: at most 2^32 - 1")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    out = Ranks(directory, columns)
    files = [i for i in range(SPILL) if sp.file(i).exists()]
    sizes = {}
    for i in files:                                     # 1. sorted runs, one per spill file and column
        rec = sp.read(i, 1)
        sizes[i] = len(rec)
        vals = np.asarray(values(rec), dtype=np.int64).reshape(len(rec), columns)
        for j in range(columns):
            u = ordered(vals[:, j])
            order = np.lexsort((rec["row"], u))
            run = np.empty(len(rec), _RUN)
            run["u"], run["row"], run["pos"] = u[order], rec["row"][order], order
            with _create(directory / f"run-{j}-{i:03d}.bin") as f:
                run.tofile(f)
        del rec, vals
    if sum(sizes.values()) != rows:
        raise ValueError(f"the spill holds {sum(sizes.values())} records, {rows} expected")
    block = max(16, int(memory) // (len(files) * _PER_RECORD)) if files else 16
    for j in range(columns):                            # 2. the merge, column by column
        _merge([directory / f"run-{j}-{i:03d}.bin" for i in files], [sizes[i] for i in files],
               [directory / f"sorted-{j}-{i:03d}.bin" for i in files], block)
    for i in files:                                     # 3. back in each spill file's order
        ranks = np.empty((sizes[i], columns), RANK)
        for j in range(columns):
            pos = np.fromfile(directory / f"run-{j}-{i:03d}.bin", dtype=_RUN)["pos"]
            ranks[pos, j] = np.fromfile(directory / f"sorted-{j}-{i:03d}.bin", dtype=RANK)
        with _create(out.file(i)) as f:
            ranks.tofile(f)
        for j in range(columns):
            (directory / f"run-{j}-{i:03d}.bin").unlink()
            (directory / f"sorted-{j}-{i:03d}.bin").unlink()
    return out


class _Run:
    """One sorted run being merged: its unread part on disk and a buffer of keys (u, row)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path, self.size, self.read = path, size, 0
        self.u = np.zeros(0, np.uint64)
        self.row = np.zeros(0, np.int64)

    def more(self) -> bool:
        """Whether records of the run are still on disk (not yet buffered)."""
        return self.read < self.size

    def fill(self, block: int) -> None:
        """Top the buffer up to at least ``block`` records (while the run has them)."""
        if len(self.u) >= block or not self.more():
            return
        got = np.fromfile(self.path, dtype=_RUN, count=min(block, self.size - self.read),
                          offset=self.read * _RUN.itemsize)
        self.read += len(got)
        self.u = np.concatenate([self.u, got["u"]])
        self.row = np.concatenate([self.row, got["row"]])

    def upto(self, t: tuple[int, int] | None) -> int:
        """How many buffered keys are <= t (all when t is None)."""
        if t is None:
            return len(self.u)
        lo = int(np.searchsorted(self.u, np.uint64(t[0]), "left"))
        hi = int(np.searchsorted(self.u, np.uint64(t[0]), "right"))
        return lo + int(np.searchsorted(self.row[lo:hi], t[1], "right"))


def _merge(paths: list[Path], sizes: list[int], outs: list[Path], block: int) -> None:
    """Step 2 of the module docstring: the rank of every record of the sorted runs ``paths``
    in their union, appended to ``outs`` (one per run, in the run's order)."""
    runs = [_Run(p, s) for p, s in zip(paths, sizes, strict=True)]
    sinks = [_create(p) for p in outs]
    try:
        base = 0
        while True:
            for r in runs:
                r.fill(block)
            live = [k for k, r in enumerate(runs) if len(r.u)]
            if not live:
                break
            bounds = [(int(runs[k].u[-1]), int(runs[k].row[-1])) for k in live if runs[k].more()]
            t = min(bounds) if bounds else None
            takes = [runs[k].upto(t) for k in live]
            u = np.concatenate([runs[k].u[:m] for k, m in zip(live, takes, strict=True)])
            row = np.concatenate([runs[k].row[:m] for k, m in zip(live, takes, strict=True)])
            ranks = np.empty(len(u), RANK)
            ranks[np.lexsort((row, u))] = np.arange(base, base + len(u), dtype=RANK)
            del u, row
            base += len(ranks)
            at = 0
            for k, m in zip(live, takes, strict=True):
                sinks[k].write(memoryview(ranks[at:at + m]).cast("B"))
                at += m
                runs[k].u, runs[k].row = runs[k].u[m:], runs[k].row[m:]
    finally:
        for s in sinks:
            s.close()
