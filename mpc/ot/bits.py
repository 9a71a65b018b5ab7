"""Bit matrices as numpy arrays, and their transpose.

A bit matrix with ``r`` rows and ``c`` columns is a ``(r, c // 8)`` uint8 array; bit ``j`` of
a row is bit ``j % 8`` (least significant first) of byte ``j // 8`` -- numpy's
``unpackbits(..., bitorder="little")`` order. On a little-endian machine the same row read
as uint64 words holds column ``j`` in bit ``j % 64`` of word ``j // 64``.

:func:`transpose` works on 64x64 blocks of uint64 words with the recursive block swap of
Hacker's Delight (section 7-3): six rounds of shift, xor and mask over every block at once,
in chunks that stay in cache and run on the crypto thread pool (numpy releases the GIL).
OT extension (IKNP, KKRT) turns a matrix of PRG columns into rows with it.
"""

from __future__ import annotations

import sys

import numpy as np

from mpc.crypto import pool

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("mpc.ot.bits assumes a little-endian machine")

# Round j swaps the high j bits of word k with the low j bits of word k + j (k & j == 0).
_ROUNDS = [(j, np.uint64(m)) for j, m in (
    (32, 0x00000000FFFFFFFF), (16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333), (1, 0x5555555555555555))]
_TILE_BLOCKS = 2048  # 64x64 blocks per tile: 1 MiB, cache sized


def _tile(words: np.ndarray, out: np.ndarray, i0: int, i1: int, j0: int, j1: int) -> None:
    """Transpose the blocks of row-blocks i0:i1 and word-columns j0:j1 into ``out``.

    ``words`` is the input as (row blocks, 64, word columns); ``out`` the output as
    (word columns, 64, row blocks): out[j, c, i] = word c of block (i, j) transposed.
    """
    b = words[i0:i1, :, j0:j1].copy()  # a copy: the rounds work in place
    _swap_rounds(b)
    out[j0:j1, :, i0:i1] = b.transpose(2, 1, 0)


def _swap_rounds(b: np.ndarray) -> None:
    """The six rounds of the 64x64 transpose, in place on ``b`` (blocks, 64, word columns):
    round j swaps the j-bit halves between rows j apart (masked shifts and XORs)."""
    ni, _, nj = b.shape
    t = np.empty(ni * 32 * nj, dtype=np.uint64)
    for j, mask in _ROUNDS:
        v = b.reshape(ni, 64 // (2 * j), 2, j, nj)
        lo, hi = v[:, :, 0], v[:, :, 1]
        tt = t.reshape(ni, 64 // (2 * j), j, nj)
        np.right_shift(lo, np.uint64(j), out=tt)
        np.bitwise_xor(tt, hi, out=tt)
        np.bitwise_and(tt, mask, out=tt)
        np.bitwise_xor(hi, tt, out=hi)
        np.left_shift(tt, np.uint64(j), out=tt)
        np.bitwise_xor(lo, tt, out=lo)


_TILE128 = 1024  # 128-bit column blocks per tile of _transpose128: 2 MiB (one IKNP batch of 2^17 OTs in one pass)


def _transpose128(m: np.ndarray) -> np.ndarray:
    """:func:`transpose` of a 128-row matrix (IKNP's): each output row in one 16-byte copy.

    Split the 128 rows into halves r6 and each 128-bit column block into words W. Swapping
    the off-diagonal 64x64 blocks first (row half <-> word, four strided copies) leaves, after
    the six rounds, both words of an output row side by side, so the last step copies
    16-byte units (a transposed copy of a void view) instead of single words.
    """
    nj = m.shape[1] // 16
    src = np.ascontiguousarray(m).view(np.uint64).reshape(2, 64, nj, 2)   # [r6, r, J, W]
    out = np.empty((nj, 128, 2), dtype=np.uint64)                          # [J, K, h]
    out_v = out.view("V16").reshape(nj, 128)
    for j0 in range(0, nj, _TILE128):
        j1 = min(nj, j0 + _TILE128)
        b = np.empty((2, 64, j1 - j0, 2), dtype=np.uint64)                 # [a, r, J, w]
        for a in range(2):
            for w in range(2):
                b[a, :, :, w] = src[w, :, j0:j1, a]
        _swap_rounds(b.reshape(2, 64, -1))   # the 128 rows as two 64-row halves (a view)
        out_v[j0:j1] = b.view("V16").reshape(128, j1 - j0).T
    return out.view(np.uint8).reshape(128 * nj, 16)


def transpose(m: np.ndarray) -> np.ndarray:
    """The transpose of bit matrix ``m`` ((r, c/8) uint8 -> (c, r/8) uint8).

    ``r`` and ``c`` must be multiples of 64 (pad the matrix: OT extension rounds its batch
    sizes up to 128).
    """
    if m.dtype != np.uint8 or m.ndim != 2:
        raise TypeError(f"a bit matrix is a 2-d uint8 array, got {m.dtype} {m.shape}")
    rows, cbytes = m.shape
    if rows % 64 or cbytes % 8:
        raise ValueError(f"bit matrix {rows}x{8 * cbytes}: both sides must be multiples of 64")
    if rows == 128 and cbytes % 16 == 0 and cbytes:
        return _transpose128(m)
    rb, cb = rows // 64, cbytes // 8
    out = np.empty((cb, 64, rb), dtype=np.uint64)
    if rb == 0 or cb == 0:
        return out.view(np.uint8).reshape(8 * cbytes, rows // 8)
    words = np.ascontiguousarray(m).view(np.uint64).reshape(rb, 64, cb)
    tj = min(cb, max(1, _TILE_BLOCKS // min(rb, _TILE_BLOCKS)))
    ti = max(1, _TILE_BLOCKS // tj)
    tiles = [(i, min(i + ti, rb), j, min(j + tj, cb)) for i in range(0, rb, ti) for j in range(0, cb, tj)]
    if len(tiles) == 1 or pool.workers() == 1:
        for tile in tiles:
            _tile(words, out, *tile)
    else:
        list(pool.get_pool().map(lambda tile: _tile(words, out, *tile), tiles))
    return out.view(np.uint8).reshape(8 * cbytes, rows // 8)


def pad_rows(n: int, multiple: int = 128) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple
