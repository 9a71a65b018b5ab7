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
numeric sort (two uint64 words), not a sort of byte strings. The blocks only ever enter
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
_CHUNK = 1 << 16              # rows compared at a time in distinct()
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


def distinct(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of (n, 2) uint64 ``words`` (sorted) and the row -> distinct map.

    About 33 bytes of temporaries per row besides the input and output (the sort order,
    a flag and the map, int32 below 2^31 rows), compared a chunk at a time.
    """
    n = len(words)
    if n == 0:
        return words, np.zeros(0, dtype=np.int64)
    index = np.int32 if n < 1 << 31 else np.int64
    order = np.lexsort((words[:, 1], words[:, 0]))
    new = np.ones(n, dtype=bool)
    for start in range(1, n, _CHUNK):
        here = order[start:start + _CHUNK]
        prev = order[start - 1:start - 1 + len(here)]
        new[start:start + len(here)] = np.any(words[here] != words[prev], axis=1)
    rank = np.cumsum(new, dtype=index)
    rank -= 1
    inverse = np.empty(n, dtype=index)
    inverse[order] = rank
    del rank
    return words[order[new]], inverse


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
