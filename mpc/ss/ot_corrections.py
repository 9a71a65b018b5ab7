"""The low bytes of correlated-OT corrections: what travels of an OT value later multiplied by 2^l.

Gilboa's product from correlated OT (CRYPTO 1999; :mod:`mpc.ss.ot_triples`,
:mod:`mpc.ss.gram`) weights OT l's output by 2^l mod 2^64, which kills its top l bits, so
the sender's correction tau_l = p0 + x - p1 only needs its low 64 - l bits on the wire
(Asharov, Lindell, Schneider, Zohner, "More efficient oblivious transfer and extensions
for faster secure computation", CCS 2013: correlated OT with short messages). Here they
are rounded up to whole bytes, ceil((64 - l) / 8): for l = 0..63 that is 288 bytes per
64-bit product instead of 512 (rounding to 1, 2, 4 or 8 bytes, a plain dtype cast: 344).

Layout: the values are an ``(A, P, B)`` uint64 array with the OT position p (weight
2^shift[p]) on the middle axis. Each run of positions with the same width k bytes is cut
into power-of-two pieces (k = 7: bytes 0-3, 4-5, 6), each piece one strided copy of a
uint32/uint16/uint8 view (no shifts, no masks); the pieces go out as one uint8 array, the
8-byte pieces first, then 4, 2 and 1, so every piece stays aligned to its size. The
receiver writes them back into zeroed words: the bytes not sent are 0, which the weight
2^l shifts out anyway.

Security: this is only an encoding. The bits dropped are those the protocol multiplies by
a multiple of 2^64, so the shares are the same as with whole words; what is sent is a
prefix of each uniform correction (tau is uniform to the receiver: the pad of the choice
it did not make is pseudorandom to it, correlation robustness), so it reveals nothing more.
"""

from __future__ import annotations

import functools

import numpy as np

from mpc.ot.wire import expect

UINT = _UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}   # a piece's word type by size


def widths(shifts: np.ndarray) -> np.ndarray:
    """Bytes that travel of an OT value later multiplied by 2^shift (mod 2^64): the
    64 - shift bits that matter, rounded up to whole bytes (0 for shift >= 64)."""
    need = np.maximum(0, 64 - np.asarray(shifts, dtype=np.int64))
    return (need + 7) // 8


@functools.lru_cache(maxsize=64)
def _pieces(nbytes: tuple[int, ...]) -> tuple[tuple[int, int, int, int], ...]:
    """(start, stop, byte offset, size) of every piece: runs of equal width, each width cut
    into power-of-two sizes from byte 0 up; sorted by size, largest first (alignment)."""
    out, start = [], 0
    for p in range(1, len(nbytes) + 1):
        if p == len(nbytes) or nbytes[p] != nbytes[start]:
            k, off = nbytes[start], 0
            for size in (8, 4, 2, 1):
                if k - off >= size:
                    out.append((start, p, off, size))
                    off += size
            start = p
    return tuple(sorted(out, key=lambda piece: -piece[3]))


def _key(nbytes: np.ndarray) -> tuple[int, ...]:
    nb = np.asarray(nbytes, dtype=np.int64)
    if nb.ndim != 1 or nb.min(initial=0) < 0 or nb.max(initial=0) > 8:
        raise ValueError(f"byte widths must be a 1-D array of 0..8, got {nb}")
    return tuple(nb.tolist())


def pieces(nbytes: np.ndarray) -> tuple[tuple[int, int, int, int], ...]:
    """:func:`pack`'s layout: (start, stop, byte offset, size) of each piece in message
    order; piece i holds bytes off .. off + size - 1 of the words at positions start..stop-1,
    as an (A, stop - start, B) array of ``UINT[size]`` (for consumers that read the pieces
    in place, e.g. :func:`mpc.ss.gram._received`)."""
    return _pieces(_key(nbytes))


def packed_size(a: int, b: int, nbytes: np.ndarray) -> int:
    """Bytes of :func:`pack` for an ``(a, len(nbytes), b)`` array."""
    return a * b * int(np.asarray(nbytes, dtype=np.int64).sum())


def pack(values: np.ndarray, nbytes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The low ``nbytes[p]`` bytes of every word at position p of ``values`` ((A, P, B)
    uint64, or uint32 with widths up to 4, P = len(nbytes)) as one uint8 array of
    :func:`packed_size` bytes, written into ``out`` if given (a uint8 array of that size,
    e.g. a slice of a larger message)."""
    a, p, b = values.shape
    size = values.dtype.itemsize
    if values.dtype not in (np.uint64, np.uint32) or p != len(nbytes) or _key(nbytes) and max(_key(nbytes)) > size:
        raise ValueError(f"pack needs (A, {len(nbytes)}, B) uint64 or uint32 values as wide as the widths, "
                         f"got {values.dtype} {values.shape}")
    if out is None:
        out = np.empty(packed_size(a, b, nbytes), np.uint8)
    elif out.dtype != np.uint8 or out.shape != (packed_size(a, b, nbytes),):
        raise ValueError(f"pack: out must be uint8 of {packed_size(a, b, nbytes)} bytes")
    octets = np.ascontiguousarray(values).view(np.uint8).reshape(a, p, b, size)
    pos = 0
    for s, e, off, size in _pieces(_key(nbytes)):
        n = a * (e - s) * b * size
        np.copyto(out[pos:pos + n].view(_UINT[size]).reshape(a, e - s, b, 1),
                  octets[:, s:e, :, off:off + size].view(_UINT[size]))
        pos += n
    return out


def unpack(peer: str, data: object, a: int, b: int, nbytes: np.ndarray, what: str,
           dtype: type = np.uint64) -> np.ndarray:
    """:func:`pack`'s inverse for what ``peer`` sent: (a, len(nbytes), b) of ``dtype``
    (uint64, or uint32 for widths up to 4), the bytes that did not travel 0. Raises
    ProtocolViolation (naming the peer) for a message that is not a uint8 array of
    :func:`packed_size` bytes."""
    data = expect(peer, data, np.uint8, (packed_size(a, b, nbytes),), what)
    p = len(nbytes)
    out = np.zeros((a, p, b), dtype)
    size = out.dtype.itemsize
    if _key(nbytes) and max(_key(nbytes)) > size:
        raise ValueError(f"unpack: widths {nbytes} do not fit {out.dtype}")
    octets = out.view(np.uint8).reshape(a, p, b, size)
    pos = 0
    for s, e, off, size in _pieces(_key(nbytes)):
        n = a * (e - s) * b * size
        np.copyto(octets[:, s:e, :, off:off + size].view(_UINT[size]),
                  data[pos:pos + n].view(_UINT[size]).reshape(a, e - s, b, 1))
        pos += n
    return out
