"""Items as 16-byte blocks, the OPRF PSI's inputs: one block per distinct item.

Integers are encoded injectively, without hashing: a value v in [-2^119, 2^119) becomes
v mod 2^120 in bytes 0..14 (little-endian) and a zero byte 15 (numpy int arrays and lists
of machine-size ints in one vectorised step). Short strings and bytes are encoded
injectively too (``TEXT_ENCODING``): a value whose UTF-8 form has L <= 14 bytes becomes
those bytes, zero-padded, in bytes 0..13, L in byte 14 and a zero byte 15 (for ASCII
strings in one vectorised step through a numpy ``U`` array, no per-item hashing; the
length byte keeps trailing NUL bytes apart). Larger ints and longer strings and bytes
become the first 16 bytes of the shared BLAKE2b item digests
(:func:`mpc.crypto.curve.hash_items`). Both parties pass the same kind of item (the header
checks it), so only blocks of one kind meet. The OPRF xors its hash-function index into
byte 15, so ``x || i == y || j`` only if x = y and i = j for encoded blocks; a hashed
block (a 128-bit BLAKE2b output, modelled as a random oracle) equals a given other block,
under any of the 3 x 3 index pairs, with probability at most 9 * 2^-128, so among N
blocks of both parties a false collision has probability at most 9 N^2 / 2^129 (below
2^-75 for N = 2^25). Duplicates are removed on the blocks by a
numeric sort (of one uint64 word where the other is constant or rarely tied, else both),
not a sort of byte strings. The blocks only ever enter
keyed AES (bucket and cuckoo hashes, KKRT's pseudo-random code), which needs distinct
inputs, not random ones. Both parties encode a value the same way, whatever container it
came in.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from mpc.crypto import curve
from protocols.psi.common import PreparedItems, as_sequence, check_text

BLOCK = 16
TEXT_ENCODING = "text14-v1"   # in the OPRF header: peers with another encoding fail clearly
_SAMPLE = 1 << 12             # rows of word 0 looked at to choose _order's sort
SHORT = 14                    # longest UTF-8 form (bytes) encoded without hashing
_BIG = 1 << 119
_SIGN = np.uint64(0x00FFFFFFFFFFFFFF)      # sign extension into bytes 8..14, byte 15 zero


def _ints(items: Any) -> np.ndarray | None:
    """(n, 2) uint64 words (low, high) of machine-size ints, or None if some do not fit
    (int64 or uint64)."""
    if isinstance(items, np.ndarray):
        arr = items
    else:
        try:
            arr = np.asarray(items, dtype=np.int64)
        except OverflowError:
            try:
                arr = np.asarray(items, dtype=np.uint64)
            except OverflowError:
                return None
    words = np.zeros((len(arr), 2), dtype=np.uint64)
    if arr.dtype.kind == "u":
        words[:, 0] = arr
    else:
        signed = arr.astype(np.int64, copy=False)
        words[:, 0] = signed.view(np.uint64)
        words[np.less(signed, 0), 1] = _SIGN                # no 8-byte-per-item temporary
    return words


def _big_int(v: int) -> bytes:
    if -_BIG <= v < _BIG:
        return (v % (1 << 120)).to_bytes(BLOCK - 1, "little") + b"\0"
    return hashlib.blake2b(str(v).encode(), digest_size=BLOCK, person=b"gaotie-oprf-int").digest()


def _text(seq: Any, kind: str, name: str) -> np.ndarray:
    """(n, 2) uint64 words of str or bytes items: short values encoded, long ones hashed."""
    n = len(seq)
    if kind == "bytes" and not isinstance(seq, np.ndarray) and not all(type(v) is bytes for v in seq):
        seq = [bytes(v) for v in seq]
    lengths = (np.strings.str_len(seq).astype(np.int64) if isinstance(seq, np.ndarray)
               else np.fromiter(map(len, seq), dtype=np.int64, count=n))
    blocks = np.zeros((n, BLOCK), dtype=np.uint8)
    short = lengths <= SHORT
    if short.any():
        width = f"{'U' if kind == 'str' else 'S'}{SHORT + 1}"
        arr = seq.astype(width) if isinstance(seq, np.ndarray) else np.array(seq, dtype=width)  # truncates
        if kind == "str":
            points = arr.view(np.uint32).reshape(n, SHORT + 1)
            short &= (points < 128).all(axis=1)                   # ASCII: UTF-8 = code points
        else:
            points = arr.view(np.uint8).reshape(n, SHORT + 1)
        if short.all():
            blocks[:, :SHORT] = points[:, :SHORT]
            blocks[:, SHORT] = lengths
        else:
            blocks[short, :SHORT] = points[short, :SHORT]
            blocks[short, SHORT] = lengths[short]
    rest = np.nonzero(~short)[0]
    if len(rest):
        others = [seq[i] for i in rest.tolist()]
        check_text(others, kind, name, positions=rest)
        if kind == "str":
            raw = [v.encode("utf-8") for v in others]
            fits = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw)) <= SHORT
            for i in np.nonzero(fits)[0].tolist():     # non-ASCII, short in UTF-8
                blocks[rest[i], :len(raw[i])] = np.frombuffer(raw[i], dtype=np.uint8)
                blocks[rest[i], SHORT] = len(raw[i])
            rest, others = rest[~fits], [v for v, f in zip(others, fits.tolist(), strict=True) if not f]
        if len(rest):
            blocks[rest] = curve.hash_items(others, kind)[:, :BLOCK]
    return blocks.view(np.uint64)


def _mark(key: np.ndarray, order: np.ndarray, new: np.ndarray) -> None:
    """Flag in ``new`` the sorted rows (``order``) whose ``key`` differs from the previous row's."""
    ranked = key[order]
    new[1:] |= ranked[1:] != ranked[:-1]


def _both(words: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Order of ``words`` by (word 0, word 1), flagging distinct rows in ``new``: with at
    most 2^16 distinct first words, an argsort of word 1 then a stable (radix) argsort of
    word 0's uint16 rank; else a lexsort."""
    low, high = words[:, 0], words[:, 1]
    values = np.unique(low)
    if len(values) <= 1 << 16:
        order = np.argsort(high)
        order = order[np.argsort(np.searchsorted(values, low[order]).astype(np.uint16), kind="stable")]
    else:
        order = np.lexsort((high, low))
    _mark(words[:, 0], order, new)
    _mark(words[:, 1], order, new)
    return order


def _order(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sort order of the rows of (n >= 1, 2) uint64 ``words`` by (word 0, word 1), and
    the flags of the sorted rows that differ from their predecessor (``new``).

    One numeric argsort of one word where the other is constant (ints below 2^64: word 1
    is 0 or the sign extension; strings sharing their first 8 bytes), else an argsort of
    word 0 and the rows tied on it (few for hashed and varied ids) sorted by both words in
    place; one lexsort of all rows when a sample of word 0 or the argsort shows many ties. The order among equal
    rows is unspecified: they are one distinct row, so :func:`distinct` does not depend on it.
    """
    n = len(words)
    low, high = words[:, 0], words[:, 1]
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for key, other in ((low, high), (high, low)):
        if np.all(other == other[0]):
            order = np.argsort(key)
            _mark(key, order, new)
            return order, new
    sample = low[::max(1, n // _SAMPLE)]
    if len(np.unique(sample)) < len(sample) // 2:     # word 0 mostly shared: sort by both
        return _both(words, new), new
    order = np.argsort(low)
    _mark(low, order, new)
    tied = np.flatnonzero(~new[1:])               # sorted row t + 1 has row t's word 0
    if len(tied) > n // 4:
        new[1:] = False
        return _both(words, new), new
    if len(tied):
        runs = np.union1d(tied, tied + 1)         # the sorted positions of tied rows
        sub = order[runs]
        order[runs] = sub[np.lexsort((high[sub], low[sub]))]
        new[tied + 1] = high[order[tied + 1]] != high[order[tied]]
    return order, new


def distinct(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of (n, 2) uint64 ``words`` (sorted by word 0, then word 1) and the
    row -> distinct map.

    About 25 bytes of temporaries per row besides the input and output at the peak (the
    sort order, one sorted word, a flag; then the map, int32 below 2^31 rows).
    """
    n = len(words)
    if n == 0:
        return words, np.zeros(0, dtype=np.int64)
    index = np.int32 if n < 1 << 31 else np.int64
    order, new = _order(words)
    rank = np.cumsum(new, dtype=index)
    rank -= 1
    inverse = np.empty(n, dtype=index)
    inverse[order] = rank
    del rank
    return np.take(words, order[new], axis=0), inverse


def encode(items: Any, name: str = "items") -> tuple[str, np.ndarray]:
    """Check ``items`` and encode every row (duplicates kept): (kind, (n, 2) uint64 words of
    the 16-byte blocks). A batch of a streamed column encodes as the same rows would in the
    whole column."""
    seq = as_sequence(items, name)
    kind = curve.item_kind(seq)
    if kind in ("str", "bytes"):
        words = _text(seq, kind, name)
    elif kind == "empty":
        words = np.zeros((0, 2), dtype=np.uint64)
    else:
        words = _ints(seq)
        if words is None:
            raw = b"".join(_big_int(int(v)) for v in seq)
            words = np.frombuffer(raw, dtype=np.uint64).reshape(-1, 2)
    return kind, words


def prepare_blocks(items: Any, name: str = "items") -> PreparedItems:
    """Check ``items`` and encode them: ``digests`` holds one 16-byte block per distinct item."""
    kind, words = encode(items, name)
    blocks, inverse = distinct(words)
    return PreparedItems(kind, np.ascontiguousarray(blocks).view(np.uint8).reshape(-1, BLOCK),
                         inverse, len(words))


def prepare_rows(items: Any, name: str = "items") -> PreparedItems:
    """:func:`prepare_blocks` in input order for distinct ``items`` (a join's ids): row i's
    block is ``digests[i]``, ``inverse`` the identity, so the blocks stay aligned with the
    rows' columns. With a repeated item the result is :func:`prepare_blocks`' (fewer digests
    than rows, ``inverse`` naming the repeats), for the caller's duplicate check."""
    prepared = prepare_blocks(items, name)
    if len(prepared.digests) != prepared.n_rows:
        return prepared
    inverse = prepared.inverse
    return PreparedItems(prepared.kind, prepared.digests[inverse],
                         np.arange(len(inverse), dtype=inverse.dtype), prepared.n_rows)
