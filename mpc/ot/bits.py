"""Bit matrices as numpy arrays, and their transpose.

A bit matrix with ``r`` rows and ``c`` columns is a ``(r, c // 8)`` uint8 array; bit ``j`` of
a row is bit ``j % 8`` (least significant first) of byte ``j // 8`` -- numpy's
``unpackbits(..., bitorder="little")`` order. On a little-endian machine the same row read
as uint64 words holds column ``j`` in bit ``j % 64`` of word ``j // 64``.

:func:`transpose` works on 64x64 blocks of uint64 words with the recursive block swap of
Hacker's Delight (section 7-3): six rounds of shift, xor and mask over every block of a tile
at once. OT extension (IKNP, KKRT) turns a matrix of PRG columns into rows with it.

What the speed depends on (measured with numpy 2.4 on 2 cores): a numpy bitwise op runs at
about 0.2 ns per uint64 when its innermost run of contiguous words is 4096 or longer, two to
five times slower per word on shorter runs, and a strided copy costs about as much per
element (1 to 16 bytes) as three such ops. So each tile is a buffer with the block's row
axis outermost, ``(64, blocks)``, and a thousand blocks: every round's operands are
runs of a thousand words or more, and the buffers stay in L2. Filling the buffer and
writing it out are the two copies where the word order changes; the side with the short
axis (the fewer 64-row blocks, or the fewer 64-bit word columns) is copied in units of
that whole axis (a numpy void of ``8 * n`` bytes), so no copy moves single words along a
long stride.

Measured and not taken: the three byte rounds as a byte-level reshape/transpose copy (a
strided uint8 copy costs about 4 ns per word, the three rounds 1.5), the 8x8 bit blocks
transposed inside uint64 words (twice the ops of the rounds across words), round 32 as a
swap of uint32 halves or fused into the first copy (within 5%), and the pool for IKNP's
usual single-tile batches. Tiles of 1024 blocks (512 KiB buffers, within L2) were
measured against 8192 (4 MiB) on the 2-core Xeon (2 MiB L2 per core, numpy 2.4, loaded
machine, one thread): IKNP's 128 x 2^17 and 128 x 2^20 matrices 1.7-2x faster, 2^20 x 128
1.9x, 512 x 2^17 1.6x, 2^14 x 512 within 10%: the cache misses cost more than the
shorter runs. Several tiles go to the crypto pool only when it has at least
``_POOL_MIN_WORKERS`` (4) workers: on 2 cores with both parties busy (the Gram matrix of
:mod:`mpc.ss.gram`, k = 4, 2^17 rows, both parties in one process) the pool's hand-offs
cost 12% more process CPU than transposing inline (2.97 against 2.60 s per party), the
policy of :class:`mpc.ss.ot_triples._Parallel`.
"""

from __future__ import annotations

import sys

import numpy as np

from mpc.crypto import pool

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("mpc.ot.bits assumes a little-endian machine")

# Round j swaps the high j bits of word k with the low j bits of word k + j (k & j == 0).
_ROUNDS = [(j, np.uint64(j), np.uint64(m)) for j, m in (
    (32, 0x00000000FFFFFFFF), (16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
    (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333), (1, 0x5555555555555555))]
_TILE_BLOCKS = 1024  # 64x64 blocks per tile: a 512 KiB buffer, 1024 words per row (see the module docstring)

_POOL_MIN_WORKERS = 4  # fewer crypto-pool workers: every tile inline (see the module docstring)

Tile = tuple[int, int, int, int]  # row blocks i0:i1, word columns j0:j1


def _swap_rounds(b: np.ndarray, t: np.ndarray) -> None:
    """The six rounds of the 64x64 transpose, in place on ``b`` (64, n): column k holds the
    64 words of one block. Round j swaps the j-bit halves between rows j apart (masked
    shifts and XORs); ``t`` is scratch of at least 32 n words."""
    n = b.shape[1]
    for j, shift, mask in _ROUNDS:
        v = b.reshape(32 // j, 2, j * n)
        lo, hi = v[:, 0], v[:, 1]
        tt = t[:32 * n].reshape(32 // j, j * n)
        np.right_shift(lo, shift, out=tt)
        np.bitwise_xor(tt, hi, out=tt)
        np.bitwise_and(tt, mask, out=tt)
        np.bitwise_xor(hi, tt, out=hi)
        np.left_shift(tt, shift, out=tt)
        np.bitwise_xor(lo, tt, out=lo)


_GROUP_BYTES = 256  # see _rows_out


def _rows_out(b: np.ndarray, out_v: np.ndarray, tmp: np.ndarray) -> None:
    """``out_v[...] = b.T`` for (64, n) ``b`` and (n, 64) ``out_v`` of one void dtype, units
    of under 64 bytes (IKNP's 16-byte rows) in two copies: groups of ``_GROUP_BYTES`` (g
    consecutive units of a row of ``b``) to (n / g, 64, g) in ``tmp``, then each group's
    (64, g) block transposed within itself. Measured on IKNP's (64, 2048) x 16 bytes: half
    the time of the one copy, whose 64 reads per output row are 32 KiB apart."""
    n, unit = b.shape[1], b.dtype.itemsize
    g = _GROUP_BYTES // unit if unit < 64 else 0
    if g == 0 or n < g:
        out_v[...] = b.T
        return
    k = n // g
    gdt = np.dtype(f"V{g * unit}")
    t = tmp[:k * 64 * g * unit // 8]
    t.view(gdt).reshape(k, 64)[...] = b.view(np.uint8).reshape(64, n * unit)[:, :k * g * unit].view(gdt).T
    out_v[:k * g].reshape(k, g, 64)[...] = t.view(b.dtype).reshape(k, 64, g).transpose(0, 2, 1)
    if n > k * g:
        out_v[k * g:] = b[:, k * g:].T


def _wide_rows(words: np.ndarray, out: np.ndarray, tiles: list[Tile], size: int, sigma: bool = False) -> None:
    """Tiles of a matrix with no more row blocks than word columns (IKNP's 128 rows, KKRT's
    512): the buffer is (64, word columns, row blocks), filled row block by row block
    (contiguous reads), and each output row goes out as one unit of all its row blocks'
    words when the tile spans them all.

    ``words`` is the input as (row blocks, 64, word columns), ``out`` the output as
    (word columns, 64, row blocks); ``size`` bounds the tiles' blocks (the buffers' size).
    ``sigma`` (two row blocks): the buffer is filled with (block 0 xor block 1, block 0),
    so each output row comes out as sigma(a || b) = (a xor b) || a (see :func:`transpose`).
    """
    rb = words.shape[0]
    buf, t = np.empty(64 * size, np.uint64), np.empty(32 * size, np.uint64)
    tmp = np.empty(64 * size, np.uint64) if 8 * rb < 64 else t
    out_v = out.reshape(-1, 64 * rb).view(f"V{8 * rb}").reshape(-1, 64)   # one unit per output row
    for i0, i1, j0, j1 in tiles:
        b = buf[:64 * (i1 - i0) * (j1 - j0)].reshape(64, j1 - j0, i1 - i0)
        if sigma:
            np.bitwise_xor(words[0, :, j0:j1], words[1, :, j0:j1], out=b[:, :, 0])
            b[:, :, 1] = words[0, :, j0:j1]
        else:
            for i in range(i0, i1):
                b[:, :, i - i0] = words[i, :, j0:j1]
        _swap_rounds(b.reshape(64, -1), t)
        if i1 - i0 == rb:
            _rows_out(b.reshape(64, -1).view(out_v.dtype), out_v[j0:j1], tmp)
        else:
            out[j0:j1, :, i0:i1] = b.transpose(1, 0, 2)


def _tall_rows(words: np.ndarray, out: np.ndarray, tiles: list[Tile], size: int) -> None:
    """Tiles of a matrix with more row blocks than word columns (many rows of 128 or 512
    bits): the buffer is (64, row blocks, word columns), filled with one unit per input row
    (all its words) when the tile spans every word column, and written out per word column
    (contiguous writes). Arguments as :func:`_wide_rows`'."""
    rb, _, cb = words.shape
    buf, t = np.empty(64 * size, np.uint64), np.empty(32 * size, np.uint64)
    in_v = words.reshape(rb, 64 * cb).view(f"V{8 * cb}").reshape(rb, 64)  # one unit per input row
    for i0, i1, j0, j1 in tiles:
        b = buf[:64 * (i1 - i0) * (j1 - j0)].reshape(64, i1 - i0, j1 - j0)
        if j1 - j0 == cb:
            np.copyto(b.reshape(64, -1).view(in_v.dtype), in_v[i0:i1].T)
        else:
            b[...] = words[i0:i1, :, j0:j1].transpose(1, 0, 2)
        _swap_rounds(b.reshape(64, -1), t)
        out[j0:j1, :, i0:i1] = b.transpose(2, 0, 1)


def transpose(m: np.ndarray, sigma: bool = False) -> np.ndarray:
    """The transpose of bit matrix ``m`` ((r, c/8) uint8 -> (c, r/8) uint8).

    ``r`` and ``c`` must be multiples of 64 (pad the matrix: OT extension rounds its batch
    sizes up to 128). Matrices of several tiles run on the crypto thread pool (numpy
    releases the GIL) when it has at least ``_POOL_MIN_WORKERS`` workers.

    ``sigma`` (r = 128 only): each output row x = a || b (a its low 64 bits) comes out as
    sigma(x) = (a xor b) || a, the linear orthomorphism of the CCR hash
    (:func:`mpc.ot.hashing.ccr_sigma`), at no extra pass: the transpose is linear over
    GF(2) and lane a (b) is the transpose of rows 0..63 (64..127), so the input's two row
    blocks enter the tile buffer as (block 0 xor block 1, block 0).
    """
    if m.dtype != np.uint8 or m.ndim != 2:
        raise TypeError(f"a bit matrix is a 2-d uint8 array, got {m.dtype} {m.shape}")
    rows, cbytes = m.shape
    if rows % 64 or cbytes % 8:
        raise ValueError(f"bit matrix {rows}x{8 * cbytes}: both sides must be multiples of 64")
    rb, cb = rows // 64, cbytes // 8
    if sigma and rows != 128:
        raise ValueError(f"transpose: sigma needs 128 rows (two 64-bit lanes), got {rows}")
    out = np.empty((cb, 64, rb), dtype=np.uint64)
    if rb == 0 or cb == 0:
        return out.view(np.uint8).reshape(8 * cbytes, rows // 8)
    words = np.ascontiguousarray(m).view(np.uint64).reshape(rb, 64, cb)
    wide = rb <= cb
    if wide:   # whole row-block columns (up to the tile), as many word columns as fit
        ti = min(rb, _TILE_BLOCKS)
        tj = min(cb, max(1, _TILE_BLOCKS // ti))
    else:      # whole word-column rows, as many row blocks as fit
        tj = min(cb, _TILE_BLOCKS)
        ti = min(rb, max(1, _TILE_BLOCKS // tj))
    tiles = [(i, min(i + ti, rb), j, min(j + tj, cb)) for i in range(0, rb, ti) for j in range(0, cb, tj)]
    if sigma and (not wide or ti < rb):    # tiles without both lanes: sigma on the rows afterwards
        t = np.ascontiguousarray(transpose(m)).view(np.uint64).reshape(-1, 2)
        t[:, 0] ^= t[:, 1]
        t[:, 1] ^= t[:, 0]
        return t.view(np.uint8).reshape(8 * cbytes, rows // 8)
    run = (lambda w, o, ts, size: _wide_rows(w, o, ts, size, sigma)) if wide else _tall_rows
    workers = pool.workers()
    k = min(workers, len(tiles)) if workers >= _POOL_MIN_WORKERS else 1
    if k == 1:
        run(words, out, tiles, ti * tj)
    else:      # one run of consecutive tiles per worker, each with its own buffers
        step = -(-len(tiles) // k)
        parts = [tiles[s:s + step] for s in range(0, len(tiles), step)]
        list(pool.get_pool().map(lambda part: run(words, out, part, ti * tj), parts))
    return out.view(np.uint8).reshape(8 * cbytes, rows // 8)


def pad_rows(n: int, multiple: int = 128) -> int:
    """``n`` rounded up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple
