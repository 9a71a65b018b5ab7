"""Cuckoo hashing with 3 hash functions and no stash, vectorised, for OPRF-based PSI.

Each of ``n`` items has 3 candidate bins (given by the caller, computed from a keyed
hash); :func:`insert` places every item in one of its bins, at most one item per bin.

Table size: ``bins = e * n`` with the expansion ``e`` of :func:`expansion`, chosen so that
no placement exists with probability at most 2^-lambda (lambda = 40 by default). The
bound is the empirical fit of Pinkas, Schneider, Tkachenko, Yanai ("Efficient Circuit-
based PSI with Linear Communication", Eurocrypt 2019, section 5), as implemented in
cryptoTools' ``CuckooIndex::selectParams`` (libOTe, and SecretFlow's copy of it):
for n >= 512, lambda = 240 e - log2(n) - 256, so e = (lambda + log2 n + 256) / 240
(1.30 at 2^16, 1.32 at 2^20, 1.33 at 2^24); below 512 items, a measured line
lambda = a e + b per power of two (the same table), giving e up to 6.1 for tiny sets.

Insertion is the random-walk insertion done for all homeless items at once: each one
claims its current candidate bin; one claimant per bin wins (numpy's last write), the
bin's previous occupant and the losers move on to their next candidate. The walk stops
after ``max_rounds`` rounds with items left: :class:`CuckooError` (which, with the table
sizes above, happens with probability about 2^-40; callers treat it as a failed run).
"""

from __future__ import annotations

import math

import numpy as np

HASHES = 3
STAT_SECURITY = 40
# (slope, intercept) of lambda = slope * e + intercept for floor(log2 n) = 0..8 (cryptoTools)
_SMALL = [(5.5, 6.35), (5.5, 6.35), (5.5, 6.35), (8.5, -0.07), (13.4, -6.74), (21.9, -16.1),
          (57.8, -62.6), (100.0, -113.0), (142.0, -158.0)]


class CuckooError(RuntimeError):
    """No cuckoo placement was found (probability about 2^-lambda with the default sizes)."""


def expansion(n: int, stat: float = STAT_SECURITY) -> float:
    """Bins per item for ``n`` items and failure probability 2^-stat (3 hashes, no stash)."""
    if n < 1:
        return 1.0
    if n < 512:
        slope, intercept = _SMALL[int(math.log2(n))]
        return (stat - intercept) / slope
    return (stat + math.log2(n) + 256) / 240


def num_bins(n: int, stat: float = STAT_SECURITY) -> int:
    """The table size for ``n`` items (at least 1)."""
    return max(1, math.ceil(expansion(n, stat) * n))


def insert(locations: np.ndarray, bins: int, max_rounds: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Place each item (a row of 3 candidate bins, (n, 3) int) in one of its bins.

    Returns ``(table, choice)``: ``table[b]`` is the item in bin ``b`` (-1 if empty) and
    ``choice[i]`` which of its 3 candidates item ``i`` got. Raises CuckooError if the walk
    has not placed everything after ``max_rounds`` rounds.
    """
    locations = np.asarray(locations, dtype=np.int64)
    n = len(locations)
    if locations.shape != (n, HASHES):
        raise ValueError(f"locations must be (n, {HASHES}), got {locations.shape}")
    if n and (locations.min() < 0 or locations.max() >= bins):
        raise ValueError("a location is outside the table")
    table = np.full(bins, -1, dtype=np.int64)
    choice = np.zeros(n, dtype=np.int8)
    homeless = np.arange(n, dtype=np.int64)
    rounds = 0
    while homeless.size:
        if rounds == max_rounds:
            raise CuckooError(f"cuckoo hashing left {homeless.size} of {n} items without a bin "
                              f"after {max_rounds} rounds ({bins} bins)")
        rounds += 1
        pos = locations[homeless, choice[homeless]]
        old = table[pos]
        table[pos] = homeless
        won = table[pos] == homeless
        evicted = old[won]
        evicted = evicted[evicted >= 0]
        lost = homeless[~won]
        moving = np.concatenate([lost, evicted])
        choice[moving] = (choice[moving] + 1) % HASHES
        homeless = moving
    return table, choice
