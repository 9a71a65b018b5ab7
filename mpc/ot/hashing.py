"""AES in bulk: keyed ECB over whole arrays, and fixed-key AES hashes for OT extension.

Every function takes and returns numpy arrays of 16-byte blocks (``(n, 16)`` uint8) and
makes one OpenSSL call per array (AES-NI, about 10 GB/s here), never one per block, through
:mod:`mpc.ot.aes` (ctypes, the GIL released; pyca where libcrypto cannot be loaded).

* :func:`ecb`: AES-128 under a secret or jointly chosen key, a PRF on 128-bit inputs
  (cuckoo and bucket hashing, KKRT's pseudo-random code).
* :func:`tccr`: the tweakable circular correlation-robust hash of Guo, Katz, Wang, Yu
  ("Efficient and secure multiparty computation from fixed-key block ciphers", IEEE S&P
  2020, section 7.3): ``H(i, x) = pi(pi(x) xor i) xor pi(x)`` with ``pi`` AES under a
  fixed public key, secure in the ideal-permutation model. IKNP hashes its rows with it
  (``x = q`` or ``q xor Delta``, tweak = the OT's index).
* :func:`ccr_words`: the circular correlation-robust hash of the same paper (section 7.2),
  ``H(x) = pi(sigma(x)) xor sigma(x)`` with the linear orthomorphism
  ``sigma(a || b) = (a xor b) || a``: ONE permutation call per row, no tweak, its low 64
  bits. Semi-honest IKNP needs only a correlation-robust hash (Ishai, Kilian, Nissim,
  Petrank, CRYPTO 2003, section 3: the receiver's rows t_i are pseudorandom and distinct
  with overwhelming probability, so H(t_i xor Delta) is pseudorandom given the t_i), and CCR
  implies CR; the tweak of :func:`tccr` is what the malicious setting needs (an adversary
  choosing equal rows), which gaotie does not claim. The bound is the same as with the
  tweak: a receiver making q permutation queries learns a pad it did not choose only by
  hitting some t_i xor Delta, probability q m / 2^128 for m OTs of the session. Used for
  every OT pad of at most one block (:func:`mpc.ot.extension._pad`, ``pad_words``,
  :mod:`mpc.ss.ot_triples`); wider pads take :func:`tccr` blocks with tweaks (i, k), or
  (the Gram matrix's, :func:`ccr_blocks_word_major`) one ccr call per block, block b of
  ccr(x xor c_b) for public distinct c_b: correlation robust by the same argument.
* :func:`wide_hash`: KKRT's rows are 512 bits wide. They are absorbed block by block,
  Matyas-Meyer-Oseas style, into ``z_0 = H(i, x_0)``, ``z_k = pi(z_{k-1} xor x_k) xor
  z_{k-1} xor x_k``: the output depends on every unknown bit of every block through the
  last permutation call, so (in the ideal-permutation model) computing it for a row one
  does not hold needs all of the row's unknown secret bits (at least 128 of them in
  KKRT). KKRT model this hash as a random oracle; libOTe likewise uses fixed-key AES.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import numpy as np

from mpc.ot.aes import Ecb

BLOCK = 16
# The fixed public key of pi: any constant works in the ideal-permutation model.
FIXED_KEY = hashlib.sha256(b"gaotie fixed-key AES permutation v1").digest()[:16]


def ecb(key: bytes, blocks: np.ndarray) -> np.ndarray:
    """AES-128-ECB of every 16-byte row of ``blocks`` under ``key`` (one call)."""
    blocks = np.ascontiguousarray(blocks, dtype=np.uint8)
    out = np.empty(blocks.shape, dtype=np.uint8)
    if blocks.size:
        Ecb(key).encrypt(blocks, out)
    return out


_local = threading.local()


def _fixed() -> Ecb:
    """This thread's cipher context for pi (an OpenSSL context is not shared across threads)."""
    enc = getattr(_local, "pi", None)
    if enc is None:
        enc = _local.pi = Ecb(FIXED_KEY)
    return enc


def _pi(blocks: np.ndarray) -> np.ndarray:
    blocks = np.ascontiguousarray(blocks, dtype=np.uint8)
    return _fixed().encrypt(blocks, np.empty(blocks.shape, dtype=np.uint8))


def tweak_blocks(tweaks: np.ndarray | int, n: int) -> np.ndarray:
    """128-bit tweak blocks: the low 64 bits are ``tweaks`` (an index per row), high bits 0."""
    t = np.zeros((n, 2), dtype=np.uint64)
    t[:, 0] = tweaks
    return t.view(np.uint8)


def tccr(x: np.ndarray, tweaks: np.ndarray | int) -> np.ndarray:
    """``H(i, x) = pi(pi(x) xor i) xor pi(x)`` for each row ``x`` of ``(n, 16)`` uint8."""
    p = _pi(x)
    lanes = p.reshape(-1, BLOCK).view(np.uint64)[:, 0]   # the low 64 bits of each pi(x)
    t = np.asarray(tweaks, dtype=np.uint64)
    lanes ^= t                                           # in place: pi(x) xor i, no copy
    out = _pi(p)
    lanes ^= t                                           # back to pi(x)
    np.bitwise_xor(out, p, out=out)
    return out


def tccr_multi(x: np.ndarray, tweaks: list[np.ndarray]) -> np.ndarray:
    """``tccr(x, t)`` for each t of ``tweaks`` side by side ((n, 16 len(tweaks)) uint8), pi(x)
    computed once: the same hash as separate calls, one fixed-key AES pass fewer per extra
    tweak (the wide OT pads of :func:`mpc.ot.extension._pad`); tiled as :func:`_word_major`,
    each tweak's block xored straight into its columns."""
    n = len(x)
    ts = [np.broadcast_to(np.asarray(t, dtype=np.uint64), (n,)) for t in tweaks]
    out = np.empty((n, BLOCK * len(tweaks)), dtype=np.uint8)

    def block(k: int, lo: int, hi: int) -> np.ndarray:
        return out[lo:hi, k * BLOCK:(k + 1) * BLOCK].view(np.uint64)

    _tiles(x, len(tweaks), lambda k, lo, hi, low, dst: np.bitwise_xor(low, ts[k][lo:hi], out=dst),
           lambda k, lo, hi, e, p: np.bitwise_xor(e, p, out=block(k, lo, hi)))
    return out


_TILE_ROWS = 1 << 15   # rows per tccr tile (_tiles): its buffers (512 KiB each) stay in cache


def tccr_word_major(x: np.ndarray, tweaks: list[np.ndarray], words: int) -> np.ndarray:
    """The first ``words`` 64-bit words of ``tccr_multi(x, tweaks)``'s rows, word-major
    ((min(words, 2 len(tweaks)), n) uint64, C-contiguous): word 2k + j of row i is word j
    of tccr(x_i, t_k). For consumers that work on each word across all rows (the
    shuffle's walk). The same bits as tccr_multi, with less memory traffic (see
    :func:`_word_major`)."""
    n = len(x)
    ts = [np.broadcast_to(np.asarray(t, dtype=np.uint64), (n,)) for t in tweaks]
    return _word_major(x, len(tweaks), words, lambda k, lo, hi, low, out: np.bitwise_xor(low, ts[k][lo:hi], out=out))


def tccr_indexed_word_major(x: np.ndarray, first: int, words: int) -> np.ndarray:
    """``tccr_word_major(x, [idx | k << 56 for k in range(blocks)], words)`` with idx =
    first, first + 1, ... (< 2^56; the wide OT pads' tweaks (i, k)), without building the
    tweak arrays: idx | k << 56 = idx xor k << 56, so each tile xors idx into pi(x)'s low
    lane once and each tweak adds only its constant."""
    n = len(x)
    if first < 0 or first + n > 1 << 56:
        raise ValueError("tweak index beyond 2^56")
    base = np.empty(min(n, _TILE_ROWS), dtype=np.uint64)

    def low(k: int, lo: int, hi: int, lane: np.ndarray, out: np.ndarray) -> None:
        b = base[:hi - lo]
        if k == 0:        # a new tile: pi(x)'s low lane xor the OT indices
            np.add(np.arange(hi - lo, dtype=np.uint64), np.uint64(first + lo), out=b)
            np.bitwise_xor(lane, b, out=b)
            np.copyto(out, b)
        else:
            np.bitwise_xor(b, np.uint64(k << 56), out=out)

    return _word_major(x, -(-words // 2), words, low)


def _word_major(x: np.ndarray, count: int, words: int, low: Callable) -> np.ndarray:
    """The word-major tccr of :func:`tccr_word_major` for ``count`` tweaks, the k-th tweaked
    low lane of rows lo:hi written by ``low(k, lo, hi, pi_low, out)`` (called for k = 0, 1,
    ... in order per tile; see :func:`_tiles`); the final xor with pi(x) writes straight
    into the word-major rows (no transposing copy); tweaks past ``words`` are never hashed."""
    n = len(x)
    words = min(words, 2 * count)
    out = np.empty((words, n), dtype=np.uint64)

    def store(k: int, lo: int, hi: int, e: np.ndarray, p: np.ndarray) -> None:
        np.bitwise_xor(e[:, 0], p[:, 0], out=out[2 * k, lo:hi])
        if 2 * k + 1 < words:
            np.bitwise_xor(e[:, 1], p[:, 1], out=out[2 * k + 1, lo:hi])

    if words:
        _tiles(x, -(-words // 2), low, store)
    return out


def _tiles(x: np.ndarray, count: int, low: Callable, store: Callable) -> None:
    """tccr of the rows of ``x`` under ``count`` tweaks, tile by tile: for tile rows lo:hi
    and tweak k, ``low(k, lo, hi, pi_low, out)`` writes the tweaked low lane (pi(x) xor t)
    and ``store(k, lo, hi, e, p)`` gets e = pi(pi(x) xor t) and p = pi(x) ((m, 2) uint64)
    to xor into the output. Tiles of _TILE_ROWS rows through three small buffers reused
    for every tile and tweak (in cache, no page faults of fresh (n, 16) arrays); the tweak
    changes only the low lane, so the high lane of pi(x) xor t is copied once per tile and
    the low lane written (not xored in and out) per tweak."""
    x = np.ascontiguousarray(x, dtype=np.uint8)
    n = len(x)
    if n == 0 or count == 0:
        return
    tile = min(n, _TILE_ROWS)
    p, tweaked, e = (np.empty((tile, 2), dtype=np.uint64) for _ in range(3))
    enc = _fixed()
    for lo in range(0, n, tile):
        hi = min(n, lo + tile)
        m = hi - lo
        pm, tm, em = p[:m], tweaked[:m], e[:m]
        enc.encrypt(x[lo:hi], pm.view(np.uint8))
        tm[:, 1] = pm[:, 1]
        for k in range(count):
            low(k, lo, hi, pm[:, 0], tm[:, 0])
            enc.encrypt(tm.view(np.uint8), em.view(np.uint8))
            store(k, lo, hi, em, pm)


def _sigma(x: np.ndarray) -> np.ndarray:
    """sigma(a || b) = (a xor b) || a of each row of ``(n, 16)`` uint8 ``x`` (a, b its low and
    high 64-bit lanes), as (n, 2) uint64: a linear orthomorphism (Guo et al., section 7.2)."""
    lanes = np.ascontiguousarray(x, dtype=np.uint8).reshape(-1, BLOCK).view(np.uint64)
    s = np.empty((len(lanes), 2), np.uint64)
    np.bitwise_xor(lanes[:, 0], lanes[:, 1], out=s[:, 0])
    s[:, 1] = lanes[:, 0]
    return s


def ccr(x: np.ndarray) -> np.ndarray:
    """``H(x) = pi(sigma(x)) xor sigma(x)`` for each row of ``(n, 16)`` uint8 ``x``: one
    fixed-key AES call per row (see the module docstring)."""
    return ccr_sigma(_sigma(x).view(np.uint8))


def ccr_sigma(s: np.ndarray) -> np.ndarray:
    """:func:`ccr` of rows given as s = sigma(x) ((n, 16) uint8, e.g. from
    :func:`mpc.ot.bits.transpose` with ``sigma=True``): pi(s) xor s, the same bits."""
    s = np.ascontiguousarray(s, dtype=np.uint8)
    out = _pi(s)
    np.bitwise_xor(out, s, out=out)
    return out


def sigma_of(block: np.ndarray) -> np.ndarray:
    """sigma of one 128-bit block ((16,) uint8) as (2,) uint64, e.g. of an OT sender's Delta."""
    return _sigma(np.asarray(block, dtype=np.uint8).reshape(1, BLOCK))[0]


def ccr_pair(x: np.ndarray, delta: np.ndarray, presigma: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(ccr(x), ccr(x xor delta))`` as two (n, 2) uint64 arrays: an OT sender's two pads
    H(q_i), H(q_i xor Delta) per row of ``(n, 16)`` uint8 ``x`` (``delta``: (16,) uint8).
    sigma is linear, so sigma(x xor Delta) = sigma(x) xor sigma(Delta): sigma runs once (not
    at all with ``presigma``: the rows are sigma(q_i) already) and the rows xor Delta are
    never formed; the same bits as two ccr calls."""
    s = np.ascontiguousarray(x, dtype=np.uint8).reshape(-1, BLOCK).view(np.uint64) if presigma else _sigma(x)
    h0 = _pi(s.view(np.uint8)).view(np.uint64)
    np.bitwise_xor(h0, s, out=h0)
    s1 = np.bitwise_xor(s, sigma_of(delta))
    h1 = _pi(s1.view(np.uint8)).view(np.uint64)
    np.bitwise_xor(h1, s1, out=h1)
    return h0, h1


def ccr_words(x: np.ndarray) -> np.ndarray:
    """The low 64 bits of :func:`ccr` of each row, as (n,) uint64 (the high lane's xor skipped)."""
    s = _sigma(x)
    e = _pi(s.view(np.uint8)).view(np.uint64)
    return np.bitwise_xor(e[:, 0], s[:, 0])   # one pass into a new contiguous array


def ccr_word_major(x: np.ndarray, words: int) -> np.ndarray:
    """The first ``words`` (at most 2) 64-bit words of :func:`ccr`'s rows, word-major
    ((min(words, 2), n) uint64, C-contiguous; the one-block OT pads of
    :func:`mpc.ot.extension.pad_words`): :func:`ccr_blocks_word_major` of one block (tiles
    of _TILE_ROWS rows through reused cache-sized buffers, the final xor straight into
    the word-major rows)."""
    return ccr_blocks_word_major(x, min(words, 2))       # one block: block 0 is ccr itself


def wide_hash(x: np.ndarray, tweaks: np.ndarray | int) -> np.ndarray:
    """A 128-bit hash of each row of ``(n, 16 k)`` uint8 ``x``, tweaked by the row's index."""
    n, width = x.shape
    if width % BLOCK:
        raise ValueError(f"row width {width} is not a multiple of {BLOCK} bytes")
    z = tccr(np.ascontiguousarray(x[:, :BLOCK]), tweaks)
    for k in range(1, width // BLOCK):
        np.bitwise_xor(z, x[:, k * BLOCK:(k + 1) * BLOCK], out=z)
        p = _pi(z)
        np.bitwise_xor(z, p, out=z)
    return z


def ccr_blocks_word_major(x: np.ndarray, words: int, dtype: type = np.uint64,
                          delta: np.ndarray | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Pads of several 128-bit blocks by the circular correlation-robust hash alone, one
    fixed-key AES call per block (:func:`tccr` blocks cost three calls for two): block b of
    row x is ``ccr(x xor c_b)``, c_b the block with high 64-bit lane b (c_0 = 0: block 0 is
    :func:`ccr`). As sigma is linear, sigma(x xor c_b) = sigma(x) xor (b || 0): sigma runs
    once per row and each further block xors b into its low lane.

    Returns the first ``words`` words (of ``dtype``, uint64 or uint32) of each row's pad,
    word-major ((words, n), C-contiguous): word w of a row is word w of the concatenated
    blocks read as ``dtype`` (little-endian; for uint32 and one block, the same bits as
    ``ccr_word_major`` split into halves). With ``delta`` ((16,) uint8), the pair
    (pads of x, pads of x xor delta), an OT sender's two pads (sigma(x xor Delta) =
    sigma(x) xor sigma(Delta): the rows xor Delta are never formed).

    Security (semi-honest IKNP, as :func:`ccr_words`): the pads a receiver did not choose
    are H'(t_i xor Delta) with H'(y) = H(y xor c_0) || H(y xor c_1) || ...; a distinguisher
    for them is one for H's correlation robustness (Guo-Katz-Wang-Yu, S&P 2020, section
    7.2: CCR implies CR) queried at the points t_i xor c_b xor Delta, which are distinct
    unless t_i xor t_j = c_a xor c_b for some i != j, probability at most (B m)^2 / 2^128
    for m pseudorandom rows t_i and B blocks. A receiver making q permutation queries
    learns an unchosen pad only by hitting one of those B m points: q B m / 2^128, the
    bound of the one-block hash with B m rows."""
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint64), np.dtype(np.uint32)):
        raise TypeError(f"ccr pads are uint64 or uint32 words, got {dt}")
    per = BLOCK // dt.itemsize                     # words per block
    x = np.ascontiguousarray(x, dtype=np.uint8)
    n = len(x)
    outs = [np.empty((words, n), dtype=dt) for _ in range(1 if delta is None else 2)]
    blocks = -(-words // per)
    if n and words:
        tile = min(n, _TILE_ROWS)
        s, e = (np.empty((tile, 2), dtype=np.uint64) for _ in range(2))
        lanes = x.reshape(-1, BLOCK).view(np.uint64)
        sd = None if delta is None else sigma_of(delta)
        enc = _fixed()
        for lo in range(0, n, tile):
            hi = min(n, lo + tile)
            sm, em = s[:hi - lo], e[:hi - lo]
            np.bitwise_xor(lanes[lo:hi, 0], lanes[lo:hi, 1], out=sm[:, 0])   # sigma, as _sigma
            sm[:, 1] = lanes[lo:hi, 0]
            sv, ev = sm.view(dt), em.view(dt)
            for o, out in enumerate(outs):
                if o:                                  # sigma(x xor Delta), block 0 again
                    np.bitwise_xor(sm[:, 0], sd[0] ^ np.uint64(blocks - 1), out=sm[:, 0])
                    np.bitwise_xor(sm[:, 1], sd[1], out=sm[:, 1])
                for b in range(blocks):
                    if b:                              # low lane: b - 1 -> b
                        np.bitwise_xor(sm[:, 0], np.uint64((b - 1) ^ b), out=sm[:, 0])
                    enc.encrypt(sm.view(np.uint8), em.view(np.uint8))
                    for j in range(min(per, words - b * per)):
                        np.bitwise_xor(ev[:, j], sv[:, j], out=out[b * per + j, lo:hi])
    return outs[0] if delta is None else (outs[0], outs[1])
