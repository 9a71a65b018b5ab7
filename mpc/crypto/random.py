"""Randomness for anything secret: the OS CSPRNG and a keyed AES-CTR PRG.

Never ``random`` or ``numpy.random`` for masks, keys, shares or permutations.
The PRG expands a 16-byte seed into a deterministic stream, so two parties holding the
same seed derive the same values (seed-compressed shares from a dealer).
"""

from __future__ import annotations

import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

SEED_BYTES = 16


def new_seed() -> bytes:
    """A fresh PRG seed from the OS CSPRNG."""
    return os.urandom(SEED_BYTES)


def random_uint64(shape: int | tuple[int, ...]) -> np.ndarray:
    """Uniform uint64 values from the OS CSPRNG."""
    count = int(np.prod(shape, dtype=np.int64))
    return np.frombuffer(os.urandom(8 * count), dtype=np.uint64).reshape(shape).copy()


def secure_permutation(n: int) -> np.ndarray:
    """A uniformly random permutation of range(n) from the CSPRNG (argsort of random keys).

    128-bit keys make ties (which would bias the order) negligible: sort by two 64-bit words.
    """
    if n <= 1:
        return np.arange(n, dtype=np.int64)
    keys = random_uint64((n, 2))
    return np.lexsort((keys[:, 1], keys[:, 0])).astype(np.int64)


def row_permutations(shape: tuple[int, int], prg: PRG | None = None) -> np.ndarray:
    """One uniformly random permutation per row of a (rows, n) shape (int64): the argsort of
    128-bit keys (two words from ``prg``, or the OS CSPRNG), so a tie, which would bias the
    order, has probability below n^2 / 2^129 per row (2^-69 at n = 2^30). Sorted by the high
    word; the rare row with a tie in it is re-sorted on both words. So the result is the
    one order of the keys whatever the sort: quicksort (introsort), 3-4x faster than the
    stable sort on 2^19-2^21 words."""
    shape = (int(shape[0]), int(shape[1]))
    if prg is None:
        hi, lo = random_uint64(shape), random_uint64(shape)
    else:
        hi, lo = prg.uint64(shape), prg.uint64(shape)
    perm = np.argsort(hi, axis=-1, kind="quicksort")
    ordered = np.take_along_axis(hi, perm, axis=-1)
    for row in np.flatnonzero(np.any(ordered[:, 1:] == ordered[:, :-1], axis=-1)):
        perm[row] = np.lexsort((lo[row], hi[row]))
    return perm


_ZEROS = memoryview(bytes(1 << 20))


def _zeros(n: int) -> memoryview:
    """A read-only view of ``n`` zero bytes (a shared buffer, grown when needed)."""
    global _ZEROS
    if len(_ZEROS) < n:
        _ZEROS = memoryview(bytes(max(n, 2 * len(_ZEROS))))
    return _ZEROS[:n]


class PRG:
    """AES-128-CTR keystream keyed by a seed: ``PRG(seed).uint64(shape)`` is deterministic.

    Successive calls continue the same stream, so parties that make the same calls in the
    same order get the same values.
    """

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"PRG seed must be {SEED_BYTES} bytes, got {len(seed)}")
        self._enc = Cipher(algorithms.AES(seed), modes.CTR(b"\0" * 16)).encryptor()

    def bytes(self, n: int) -> bytes:
        """The next ``n`` bytes of the stream."""
        return self._enc.update(b"\0" * n)

    def uint64(self, shape: int | tuple[int, ...]) -> np.ndarray:
        """The next values of the stream as uint64 of the given shape."""
        count = int(np.prod(shape, dtype=np.int64))
        # encrypt zeros straight into a fresh (uninitialised) array: no intermediate copies;
        # update_into wants room for one block more than it writes
        out = np.empty(count + 2, dtype=np.uint64)
        self._enc.update_into(_zeros(8 * count), memoryview(out).cast("B"))
        return out[:count].reshape(shape)


def expand_rows(prgs: list[PRG], nbytes: int) -> np.ndarray:
    """The next ``nbytes`` of each PRG's stream as the rows of one (len(prgs), nbytes) uint8
    array, each stream encrypted straight into its row (no intermediate bytes or copies)."""
    buf = np.empty(len(prgs) * nbytes + 16, dtype=np.uint8)   # update_into wants a spare block
    zeros = _zeros(nbytes)
    for j, prg in enumerate(prgs):   # row j's spare bytes are row j + 1's, written next
        prg._enc.update_into(zeros, memoryview(buf[j * nbytes:(j + 1) * nbytes + 16]))
    return buf[:len(prgs) * nbytes].reshape(len(prgs), nbytes)
