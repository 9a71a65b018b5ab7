"""An oblivious key-value store: a 3-hash garbled cuckoo table over Z_2^64, peeled in
vectorised rounds.

Pinkas, Rosulek, Trieu, Yanai, "PSI from PaXoS: Fast, Malicious Private Set Intersection"
(Eurocrypt 2020), section 5 (the garbled cuckoo table without its dense part); the OPPRF
form of Rindal, Schoppmann, "VOLE-PSI" (Eurocrypt 2021). ``encode`` takes ``n`` keys,
each given by 3 positions (one in each third of the table, so they are distinct; the
caller hashes its keys to positions) and a row of ``w`` values, and returns a table
``T`` of ``cells`` rows such that ``T[p0] + T[p1] + T[p2] = value`` (mod 2^64) for every
key. ``decode`` is that sum at any positions: at a non-key it is just a sum of cells.

Hiding: cells that are no key's pivot are uniform (from the CSPRNG), and each pivot cell
is its key's value minus uniform-or-determined cells, so if the values are uniform and
independent (the caller masks them with a hash of a key the decoder does not know) the
whole table is uniform, whatever the keys.

Encoding is peeling: a cell touched by exactly one remaining key fixes that key (its
*pivot*); all such keys of a round are removed at once (each cell keeps its degree and
the sum of its remaining keys' ids, so a degree-1 cell names its key; ``np.bincount``
updates the degrees), and the round's keys are assigned in reverse round order: a key's other
two cells are pivots of keys peeled later (already assigned) or free cells, and two keys
of one round never share their pivot. Only the free cells are drawn from the CSPRNG (the
pivots, n of the 1.3 n cells, start at 0 and are set once, so a key's pivot is assigned
as value minus the sum of all three of its cells: no search for the other two), and the
rows are gathered with ``take``, the peeling's gather of each round's positions reused
(encode with its peeling 0.41-0.50 s -> 0.23-0.27 s CPU for 3 x 2^18 keys of 3 words).
With ``cells >= EXPANSION * n`` (above the 3-hypergraph
peeling threshold 1.222) the table peels with high probability; what is left when it does
not is a 2-core (probability about n^2 / (2 (cells/3)^3), from two keys on the same three
cells: ~1e-5 at 2^18 x 3 keys, below 1% for small tables, see :func:`num_cells`):
:class:`OkvsError`, and the caller retries with fresh hash positions (a new public seed).
"""

from __future__ import annotations

import math

import numpy as np

from mpc.crypto.random import random_uint64

HASHES = 3
EXPANSION = 1.3


class OkvsError(RuntimeError):
    """The keys' hypergraph has a non-empty 2-core: no peeling order (retry with a new seed)."""


EXTRA_CELLS = 192


def num_cells(n: int) -> int:
    """Table rows for ``n`` keys: ``EXPANSION * n + EXTRA_CELLS`` rounded up to a multiple of 3
    (the extra cells keep small tables peelable: measured failure rates below 1% from 10 to
    10^4 keys, about n^2 / (2 (cells / 3)^3) beyond, ~1e-5 at 2^18 x 3 keys)."""
    return 3 * math.ceil((EXPANSION * n + EXTRA_CELLS) / 3)


def positions(words: np.ndarray, cells: int) -> np.ndarray:
    """(n, 3) int64 positions from (n, 2) uint64 pseudorandom words (e.g. AES of the keys):
    position j in the j-th third of the table, from 21-bit-or-more slices of the words."""
    third = np.uint64(cells // HASHES)
    w = np.asarray(words, dtype=np.uint64)
    low, hi32 = np.uint64(0xFFFFFFFF), np.uint64(32)
    out = np.empty((len(w), HASHES), dtype=np.int64)
    for j, lane in enumerate((w[:, 0] & low, w[:, 0] >> hi32, w[:, 1] & low)):
        out[:, j] = ((lane * third) >> hi32).astype(np.int64) + j * int(third)
    return out


def _distinct(values: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """Indices of one occurrence of each distinct value (values index ``slot``, a scratch
    array): every position writes its index into its value's slot, the last write wins,
    and a position is kept if its write won. O(len) and no sort (np.unique sorts)."""
    idx = np.arange(len(values))
    slot[values] = idx
    return np.flatnonzero(slot[values] == idx)


def _peel(pos: np.ndarray, cells: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Peeling rounds: per round (keys, their pivot cells, their positions).

    Each cell keeps its degree and the sum of the ids of the remaining keys touching it
    (float64 from ``np.bincount``: exact below 2^53), so a degree-1 cell names its key;
    after a round only the cells the peeled keys touched are looked at again."""
    n = len(pos)
    flat = pos.ravel()
    degree = np.bincount(flat, minlength=cells)
    owner = np.bincount(flat, weights=np.repeat(np.arange(n, dtype=np.float64), HASHES), minlength=cells)
    frontier = np.nonzero(degree == 1)[0]
    rounds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    done = 0
    key_slot = np.empty(n, np.int64)         # scratch for de-duplicating without a sort
    cell_slot = np.empty(cells, np.int64)
    while frontier.size:
        owners = owner[frontier].astype(np.int64)           # a key may own several cells
        first = _distinct(owners, key_slot)
        keys = owners[first]
        rows = pos.take(keys, axis=0)                       # take: faster than pos[keys]
        rounds.append((keys, frontier[first], rows))
        done += len(keys)
        touched = rows.ravel()
        degree -= np.bincount(touched, minlength=cells)
        owner -= np.bincount(touched, weights=np.repeat(keys.astype(np.float64), HASHES), minlength=cells)
        single = touched[degree[touched] == 1]
        frontier = single[_distinct(single, cell_slot)]
    if done != n:
        raise OkvsError(f"{n - done} of {n} keys form a 2-core ({cells} cells)")
    return rounds


def encode(pos: np.ndarray, values: np.ndarray, cells: int) -> np.ndarray:
    """The table (cells, w) uint64 for keys at ``pos`` ((n, 3) int64, distinct per row) with
    ``values`` ((n, w) uint64). Raises OkvsError when the keys do not peel."""
    pos = np.asarray(pos, dtype=np.int64)
    values = np.asarray(values, dtype=np.uint64)
    n = len(pos)
    if pos.shape != (n, HASHES) or values.ndim != 2 or len(values) != n:
        raise ValueError(f"encode needs (n, 3) positions and (n, w) values, got {pos.shape}, {values.shape}")
    if n and (pos.min() < 0 or pos.max() >= cells):
        raise ValueError("a position is outside the table")
    rounds = _peel(pos, cells)
    # Free cells (no key's pivot) uniform; pivot cells start at 0 and are each set once, in
    # reverse peeling order, so when a key's turn comes its pivot still holds 0 and
    # T[pivot] = value - (T[p0] + T[p1] + T[p2]) needs no search for the other two cells.
    table = np.zeros((cells, values.shape[1]), np.uint64)
    free = np.ones(cells, bool)
    for _, pivot, _ in rounds:
        free[pivot] = False
    table[free] = random_uint64((int(np.count_nonzero(free)), values.shape[1]))
    for keys, pivot, p in reversed(rounds):
        v = values.take(keys, axis=0)         # take: row gathers faster than fancy indexing
        for j in range(HASHES):
            v -= table.take(p[:, j], axis=0)
        table[pivot] = v
    return table


def decode(table: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """T[p0] + T[p1] + T[p2] (mod 2^64) for each row of ``pos``: (n, w) uint64 (row gathers
    by ``take``, in place: about 3x faster than fancy indexing at 2^18 x 3 words)."""
    pos = np.asarray(pos, dtype=np.int64)
    out = table.take(pos[:, 0], axis=0)
    for j in range(1, HASHES):
        out += table.take(pos[:, j], axis=0)
    return out
