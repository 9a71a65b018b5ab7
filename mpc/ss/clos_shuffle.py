"""The dealer-free oblivious shuffle in bounded memory: three-stage Clos networks of
in-memory switching networks, the wires between the stages in files.

:mod:`mpc.ss.ot_shuffle` walks one Benes network over all n wires: about 150 bytes per
wire at once (masks, the walk's buffers, the destinations, the routing), so one column of
10^8 joined rows would need some 8 GiB. Here every network holds at most ``wires`` wires
(:func:`wires_for` of the job's memory budget) and the shares between the stages live in
0600 files of the job's spill directory (read and written with pread/pwrite, so they
never count in the process's memory); a spilled input's pages are dropped as it is
copied in, and the result is a memory-mapped file of that directory
(:func:`mpc.runtime.files.spill`), so only one network's piece is ever in memory.

**A party's permutation as a Clos network.** The N = m C positions (n real wires, then the
d = m C - n < m padding wires, zeros, at the end) are m chunks of C consecutive positions.
A party P draws its permutation Pi_P = s3 o M o s1 as:

1. the flow matrix K (m x m): K[i, o] = how many real wires of input chunk i a uniform
   permutation of the n real wires sends to output chunk o. Drawn exactly, chunk by chunk
   (a multivariate hypergeometric: a uniform subset of the remaining output positions per
   input chunk, from the CSPRNG, :func:`_flows`); then K[m-1, m-1] += d (the padding stays
   in the last chunk), so every row and column of K sums to C;
2. a decomposition of K into C permutation matrices (Birkhoff-von Neumann: K is C times a
   doubly stochastic matrix; :func:`_decompose`, perfect matchings on K's support by
   augmenting paths, at most m^2 - 2m + 2 distinct ones): position t of every chunk gets
   one of them, mu_t;
3. s1: within each input chunk, a uniformly random arrangement of its wires over the C
   positions (the last chunk's padding onto d of the positions t with mu_t(m-1) = m-1);
   M: position t of chunk i goes to position t of chunk mu_t(i) (C networks of m wires);
   s3: within each output chunk, a uniformly random arrangement (the padding back to the
   last d positions).

Why Pi_P is a uniform permutation of the n real wires (fixing the padding): given K, s1
makes the set of chunk i's real wires that reach output chunk o a uniform subset of size
K[i, o], independently over chunks (a uniform arrangement over positions whose labels
mu_t(i) take each o exactly K[i, o] times); so the map from real wires to output chunks
is that of a uniform permutation (K has that permutation's distribution, and given K the
subsets are uniform); s3 then places each output chunk's wires uniformly and
independently. Every permutation of the real wires arises with probability 1 / n!.

**The shuffle.** Pi = Pi_1 o Pi_0, each Pi_P run as permute + share by P
(:func:`mpc.ss.ot_shuffle.permute_share`: P's networks, the other party S with its masks)
stage by stage: s1_0 per chunk, M_0 per group of positions, then per chunk the two-party
shuffle of s3_0 followed by s1_1 (:func:`mpc.ss.ot_shuffle.shuffle` with both parties'
given permutations: one offline walk both ways), M_1, s3_1. Every stage is networks of at
most ``wires`` wires, in memory one piece at a time.

Security (semi-honest, two parties, kappa = 128): each stage is the two-party permute +
share of :mod:`mpc.ss.ot_shuffle`, whose argument holds network by network (S's view is
IKNP matrices of P's choice bits; P's view corrections masked by pads it did not choose
and the shares masked by S's uniform masks; every output share fresh). The network shapes
(m, C, the group sizes) are functions of n and ``wires`` alone: public. So each party's
view is simulated from the shapes, and the permutation Pi_1 o Pi_0 is uniform given it: the
other party's factor is uniform (above) and independent of the view. Reveals nothing but
n, as the in-memory shuffle. K, its decomposition and the arrangements are local to P,
from the OS CSPRNG (:mod:`mpc.crypto.random`).

Cost: each party's permutation is 2 m networks of C wires and C of m, about
n (2 log2 C + log2 m) switches against n log2 n for one Benes network: at n = 2^23 in
chunks of 2^21, 1.9 times the OTs. So it runs only where the Benes network would not fit
the budget (:func:`needs`). Disk: two files of 8 W N bytes at a time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mpc.crypto.random import random_uint64, row_permutations
from mpc.runtime import files
from mpc.ss import ot_shuffle

if TYPE_CHECKING:
    from mpc.ss.ot_triples import OtSource

WIRES = "mpc.ss.clos_shuffle.wires"        # job state: the most wires one network may hold
MAX_CHUNKS = 256                           # m at most (the decomposition is O(m^4) work)
_BYTES_PER_WIRE = 640                      # the Benes network's ~160 B per wire, 4x: a quarter of the budget


def wires_for(budget: int) -> int:
    """The most wires of one in-memory network under a memory budget of ``budget`` bytes:
    a power of two (the networks' arrays are padded to one), at least 2^12."""
    return 1 << max(12, (int(budget) // _BYTES_PER_WIRE).bit_length() - 1)


def needs(n: int, wires: int | None) -> bool:
    """Whether a shuffle of n wires must run in Clos stages to keep networks within ``wires``."""
    return wires is not None and n > wires


def layout(n: int, wires: int) -> tuple[int, int, int]:
    """(m chunks, C positions per chunk, d padding wires) for n wires in networks of at most
    ``wires`` wires (public: n and ``wires`` only)."""
    m = max(2, -(-n // wires))
    if m > MAX_CHUNKS:
        raise ValueError(f"a shuffle of {n} wires needs {m} chunks of {wires} wires, more than {MAX_CHUNKS}: "
                         "raise the memory budget")
    c = -(-n // m)
    if c < m:
        raise ValueError(f"a Clos shuffle of {n} wires in networks of {wires} needs chunks of at least "
                         f"{m} wires")
    return m, c, m * c - n


def _below(k: int, bound: int) -> np.ndarray:
    """k uniform integers in [0, bound) from the OS CSPRNG (rejection: no modulo bias)."""
    if bound & (bound - 1) == 0:
        return random_uint64(k) & np.uint64(bound - 1)
    limit = np.uint64((1 << 64) // bound * bound)
    out = np.empty(0, np.uint64)
    while len(out) < k:
        v = random_uint64(k - len(out) + 8)
        out = np.concatenate([out, v[v < limit] % np.uint64(bound)])
    return out[:k]


def _subset(k: int, total: int) -> np.ndarray:
    """A uniformly random k-subset of range(total): the first k distinct values of a
    sequence of independent uniform draws (every k-subset equally likely)."""
    seq = np.empty(0, np.uint64)
    while True:
        seq = np.concatenate([seq, _below(k + k // 4 + 16, total)])
        values, first = np.unique(seq, return_index=True)
        if len(values) >= k:
            return values[np.argsort(first, kind="stable")[:k]]


def _flows(sizes: np.ndarray) -> np.ndarray:
    """K[i, o]: how many of input chunk i's wires a uniform permutation of sum(sizes) wires
    sends to output chunk o (chunk sizes ``sizes`` both sides): per input chunk a uniform
    subset of the output positions still free, counted per output chunk."""
    m = len(sizes)
    free = np.array(sizes, np.int64)
    flows = np.zeros((m, m), np.int64)
    for i, k in enumerate(sizes.tolist()):
        total = int(free.sum())
        small = min(k, total - k)                   # draw the smaller side of the split
        picked = _subset(small, total).astype(np.int64) if small else np.zeros(0, np.int64)
        counts = np.bincount(np.searchsorted(np.cumsum(free), picked, side="right"), minlength=m)
        flows[i] = counts if small == k else free - counts
        free -= flows[i]
    return flows


def _augment(adj: np.ndarray, match: np.ndarray, owner: np.ndarray, row: int) -> None:
    """Extend the matching (``match``: column of each row, ``owner``: row of each column,
    -1 if none) to ``row`` along a shortest augmenting path in ``adj`` (breadth first,
    vectorised over each level)."""
    parent = np.full(len(adj), -1, np.int64)      # per column: the row it was reached from
    seen = np.zeros(len(adj), bool)
    frontier = np.array([row])
    while len(frontier):
        reach = adj[frontier] & ~seen
        cols = np.flatnonzero(reach.any(axis=0))
        if not len(cols):
            break
        parent[cols] = frontier[reach[:, cols].argmax(axis=0)]
        seen[cols] = True
        free = cols[owner[cols] < 0]
        if len(free):
            col = int(free[0])
            while col >= 0:
                r = int(parent[col])
                previous = int(match[r])
                match[r], owner[col] = col, r
                col = previous
            return
        frontier = owner[cols]
    raise AssertionError("the flow matrix has no perfect matching (its rows and columns must sum alike)")


def _decompose(flows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The flow matrix (every row and column summing to C) as sum_s counts[s] P(perms[s]),
    permutation matrices P(p)[i, p[i]] = 1 (Birkhoff-von Neumann, by perfect matchings on
    the support, each repaired after the subtraction empties some of its entries)."""
    left = np.array(flows, np.int64)
    m = len(left)
    rows = np.arange(m)
    match, owner = np.full(m, -1, np.int64), np.full(m, -1, np.int64)
    for r in range(m):
        _augment(left > 0, match, owner, r)
    perms, counts = [], []
    remaining = int(left[0].sum())
    while remaining:
        w = int(left[rows, match].min())
        perms.append(match.copy())
        counts.append(w)
        left[rows, match] -= w
        remaining -= w
        broken = np.flatnonzero(left[rows, match] == 0) if remaining else []
        for r in broken:
            owner[match[r]], match[r] = -1, -1
        for r in broken:
            _augment(left > 0, match, owner, int(r))
    return np.array(perms, np.int64).reshape(-1, m), np.array(counts, np.int64)


def _uniform(n: int) -> np.ndarray:
    """A uniformly random arrangement of n wires (destinations), from the OS CSPRNG."""
    return row_permutations((1, n))[0]


class ClosPermutation:
    """One party's secret permutation of n wires as a Clos network (the module docstring):
    the flow decomposition, then each stage's destinations on demand (chunk by chunk, group
    by group), so its memory is O(m^2 + C)."""

    def __init__(self, m: int, c: int, d: int) -> None:
        self.m, self.c, self.d = m, c, d
        sizes = np.full(m, c, np.int64)
        sizes[-1] -= d
        flows = _flows(sizes)
        flows[-1, -1] += d
        self.perms, self.counts = _decompose(flows)
        # the positions whose mu_t keeps the last chunk in place, the first d of them the padding's
        labels = self.labels(m - 1)
        self.padding = np.flatnonzero(labels == m - 1)[:d]

    def labels(self, i: int) -> np.ndarray:
        """mu_t(i) for every position t: the output chunk that position t of input chunk i feeds."""
        return np.repeat(self.perms[:, i], self.counts)

    def middle(self, t0: int, t1: int) -> np.ndarray:
        """Destinations (t1 - t0, m) of the middle networks of positions t0..t1 - 1."""
        seg = np.searchsorted(np.cumsum(self.counts), np.arange(t0, t1), side="right")
        return self.perms[seg]

    def _placed(self, i: int, fixed: np.ndarray, to: np.ndarray) -> np.ndarray:
        """A uniform arrangement of chunk i's C wires but the wires ``fixed``, which go to ``to``."""
        dest = np.empty(self.c, np.int64)
        rest = np.setdiff1d(np.arange(self.c), fixed, assume_unique=True)
        targets = np.setdiff1d(np.arange(self.c), to, assume_unique=True)
        dest[fixed] = to
        dest[rest] = targets[_uniform(len(rest))]
        return dest

    def first(self, i: int) -> np.ndarray:
        """s1's destinations in input chunk i (the last chunk's padding onto ``padding``)."""
        if i < self.m - 1 or not self.d:
            return _uniform(self.c)
        return self._placed(i, np.arange(self.c - self.d, self.c), self.padding)

    def last(self, o: int) -> np.ndarray:
        """s3's destinations in output chunk o (the padding, at ``padding``, back to the end)."""
        if o < self.m - 1 or not self.d:
            return _uniform(self.c)
        return self._placed(o, self.padding, np.arange(self.c - self.d, self.c))


class _Wires:
    """W rows of N words of shares between two stages: an unlinked 0600 file of the spill
    directory, read and written with pread / pwrite (page cache, not the process's memory),
    or an array when there is no directory."""

    def __init__(self, rows: int, n: int, directory: Path | None) -> None:
        self.rows, self.n = rows, n
        self._array = self._fd = None
        if directory is None:
            self._array = np.zeros((rows, n), np.uint64)
            return
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="shuffle-", suffix=".bin", dir=directory)
        os.unlink(path)
        os.ftruncate(fd, rows * n * 8)
        self._fd = fd

    def read(self, lo: int, hi: int, rows: range | None = None) -> np.ndarray:
        """Words lo..hi - 1 of every row (or of ``rows``), a fresh array."""
        rows = range(self.rows) if rows is None else rows
        if self._array is not None:
            return self._array[rows.start:rows.stop, lo:hi].copy()
        out = np.empty((len(rows), hi - lo), np.uint64)
        for k, r in enumerate(rows):
            view, at = memoryview(out[k]).cast("B"), (r * self.n + lo) * 8
            while len(view):
                got = os.preadv(self._fd, [view], at)
                view, at = view[got:], at + got
        return out

    def write(self, lo: int, values: np.ndarray) -> None:
        if self._array is not None:
            self._array[:, lo:lo + values.shape[1]] = values
            return
        for r in range(self.rows):
            view, at = memoryview(np.ascontiguousarray(values[r])).cast("B"), (r * self.n + lo) * 8
            while len(view):
                put = os.pwrite(self._fd, view, at)
                view, at = view[put:], at + put

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def shuffle(source: OtSource, x: np.ndarray, wires: int, directory: Path | None = None) -> np.ndarray:
    """Fresh shares of the (W, n) shares ``x``, all rows by one permutation Pi_1 o Pi_0 no
    party knows (``jointly``), in networks of at most ``wires`` wires (:func:`layout`),
    the stages' shares in files of ``directory`` (in memory without one). Both parties call
    it with the same shape and ``wires``."""
    rank = source.rank
    w, n = x.shape
    m, c, d = layout(n, wires)
    group = max(1, wires // m)
    mine = ClosPermutation(m, c, d)
    stores = [_Wires(w, m * c, directory), _Wires(w, m * c, directory)]
    for lo in range(0, n, c):                     # a spilled input's pages leave as they are copied
        stores[0].write(lo, x[:, lo:lo + c])
        files.release(x)

    def chunks(run) -> None:
        src, dst = stores
        for i in range(m):
            dst.write(i * c, run(i, src.read(i * c, (i + 1) * c)))
            source.ctx.renew_deadline()          # a chunk's network done: progress
        stores.reverse()

    def middle(permuter: int) -> None:
        src, dst = stores
        for t0 in range(0, c, group):
            t1 = min(c, t0 + group)
            piece = np.stack([src.read(i * c + t0, i * c + t1) for i in range(m)], axis=2)   # (W, g, m)
            routed = (ot_shuffle.Routed(m, t1 - t0, mine.middle(t0, t1)) if rank == permuter else None)
            out = ot_shuffle.permute_share(source, permuter, piece, routed)
            for o in range(m):
                dst.write(o * c + t0, out[:, :, o])
            source.ctx.renew_deadline()
        stores.reverse()

    def one_sided(permuter: int, dest: Callable[[int], np.ndarray]) -> Callable[[int, np.ndarray], np.ndarray]:
        def run(i: int, piece: np.ndarray) -> np.ndarray:
            routed = ot_shuffle.Routed(c, 1, dest(i)[None]) if rank == permuter else None
            return ot_shuffle.permute_share(source, permuter, piece[:, None, :], routed)[:, 0]
        return run

    def both(i: int, piece: np.ndarray) -> np.ndarray:          # s3_0, then s1_1
        dest = mine.last(i) if rank == 0 else mine.first(i)
        return ot_shuffle.shuffle(source, piece, jointly=True, routed=ot_shuffle.Routed(c, 1, dest[None]))

    try:
        chunks(one_sided(0, mine.first))
        middle(0)
        chunks(both)
        middle(1)
        chunks(one_sided(1, mine.last))
        if directory is None:
            return stores[0].read(0, n)
        # the result in a memory-mapped file too (mpc.runtime.files.spill), written a chunk at a time
        parts = (stores[0].read(lo, min(n, lo + c), range(r, r + 1)) for r in range(w) for lo in range(0, n, c))
        return files.spill(directory, parts, (w, n), np.uint64)
    finally:
        for s in stores:
            s.close()
