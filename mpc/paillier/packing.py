"""Packing many int64 values into one Paillier plaintext (slots of 64 value bits + slack).

Layout: a plaintext holds ``slots = (n_bits - 1) // slot_bits`` slots of
``slot_bits = 64 + slack_bits`` bits each (slot j at bit ``j·slot_bits``), so the packed
integer is below ``2^(n_bits-1) <= n`` and never wraps mod n. A value ``v`` is stored
offset as ``u = v + 2^63`` in ``[0, 2^64)`` (two's complement with the sign bit flipped).
Adding ciphertexts adds slot-wise: after ``k`` summands ("terms") a slot holds
``Σu < k·2^64``, which fits while ``k <= 2^slack_bits``: with the default 16 slack bits
that is 65,536 terms (a vector you encrypted counts 1; ``a + b`` counts
``terms(a) + terms(b)``; ``a * k`` counts ``k·terms(a)``). Every operation checks the count
*before* computing and raises ``OverflowError`` beyond it. Decryption subtracts ``k·2^63``
to get the exact sum, raises ``OverflowError`` if it does not fit in int64 (or returns it
modulo 2^64 with ``wrap=True``). A 2048-bit key gives 25 slots at the default slack
(21 slots with 32 slack bits). ``slack_bits`` is a multiple of 8 (slots are whole bytes).

What it reveals: to the key owner, each slot's sum; to others, length, key and terms.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

import numpy as np
from gmpy2 import mpz

from mpc.paillier import raw
from mpc.paillier.vector import EncryptedVector, PackedLike

if TYPE_CHECKING:
    from mpc.paillier.keys import PrivateKey, PublicKey

VALUE_BITS = 64
DEFAULT_SLACK_BITS = 16
MAX_SLACK_BITS = 56


def check_slack_bits(slack_bits: Any) -> int:
    if isinstance(slack_bits, bool) or not isinstance(slack_bits, (int, np.integer)) \
            or not 8 <= slack_bits <= MAX_SLACK_BITS or slack_bits % 8:
        raise ValueError(f"slack_bits must be a multiple of 8 in [8, {MAX_SLACK_BITS}], got {slack_bits!r}")
    return int(slack_bits)


def slots_per_ciphertext(public_key: PublicKey, slack_bits: int = DEFAULT_SLACK_BITS) -> int:
    """How many 64-bit slots one plaintext of ``public_key`` holds at ``slack_bits``."""
    return (public_key.n_bits - 1) // (VALUE_BITS + check_slack_bits(slack_bits))


class PackedEncryptedVector(PackedLike):
    """``length`` int64 values in ciphertexts of ``slots`` slots; ``terms`` summands so far."""

    __slots__ = ("public_key", "_cts", "length", "slack_bits", "terms", "fresh")

    def __init__(self, public_key: PublicKey, ciphertexts: list[mpz], length: int, slack_bits: int,
                 terms: int = 1, fresh: bool = False) -> None:
        self.public_key = public_key
        self._cts = ciphertexts
        self.length = length
        self.slack_bits = slack_bits
        self.terms = terms
        self.fresh = fresh

    @property
    def ciphertexts(self) -> list[mpz]:
        return self._cts

    @property
    def slots(self) -> int:
        """Slots per ciphertext."""
        return slots_per_ciphertext(self.public_key, self.slack_bits)

    @property
    def max_terms(self) -> int:
        """How many summands the slack allows (``2^slack_bits``)."""
        return 1 << self.slack_bits

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"PackedEncryptedVector(len={self.length}, ciphertexts={len(self._cts)}, "
                f"slots={self.slots}, terms={self.terms}/{self.max_terms}, key={self.public_key!r})")

    def _check_terms(self, terms: int) -> int:
        if terms > self.max_terms:
            raise OverflowError(f"packed slots would overflow: {terms} summands exceed the "
                                f"{self.max_terms} that {self.slack_bits} slack bits allow")
        return terms

    def __add__(self, other: Any) -> PackedEncryptedVector:
        pk = self.public_key
        if isinstance(other, PackedEncryptedVector):
            if other.public_key != pk:
                raise ValueError("cannot combine ciphertexts encrypted under different public keys")
            if other.length != self.length or other.slack_bits != self.slack_bits:
                raise ValueError(f"packed layouts differ: length {self.length} vs {other.length}, "
                                 f"slack {self.slack_bits} vs {other.slack_bits} bits")
            terms = self._check_terms(self.terms + other.terms)
            cts = raw.add(self._cts, other._cts, pk.nsquare)
            return PackedEncryptedVector(pk, cts, self.length, self.slack_bits, terms, False)
        if isinstance(other, np.ndarray) or isinstance(other, (list, tuple)):
            values = np.asarray(other)
            if values.shape != (self.length,):
                raise ValueError(f"length mismatch: {self.length} and {values.shape}")
            terms = self._check_terms(self.terms + 1)
            raws = pack(values, self.slots, self.slack_bits)
            cts = raw.add_plain(self._cts, raws, pk.n, pk.nsquare)
            return PackedEncryptedVector(pk, cts, self.length, self.slack_bits, terms, False)
        return NotImplemented

    __radd__ = __add__

    def __mul__(self, k: Any) -> PackedEncryptedVector:
        """Multiply every slot by a non-negative integer ``k`` (``k·terms`` summands)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise TypeError("packed vectors multiply only by a non-negative int scalar")
        terms = self._check_terms(self.terms * int(k))
        cts = raw.mul_plain(self._cts, [int(k)], self.public_key.nsquare)
        return PackedEncryptedVector(self.public_key, cts, self.length, self.slack_bits, terms, False)

    __rmul__ = __mul__

    def sum(self) -> PackedEncryptedVector:
        """Slot-wise sum over the ciphertexts: one ciphertext whose slot j holds the sum of
        every value at position j of a ciphertext, so ``decrypt_packed(p.sum()).sum()`` is the
        total (padding slots hold zeros). Counts ``terms · ciphertexts`` summands."""
        terms = self._check_terms(self.terms * len(self._cts))
        total = raw.product(self._cts, self.public_key.nsquare)
        return PackedEncryptedVector(self.public_key, [total], min(self.length, self.slots),
                                     self.slack_bits, terms, False)

    def rerandomise(self) -> PackedEncryptedVector:
        return PackedEncryptedVector(self.public_key, self.public_key.raw_rerandomise(self._cts),
                                     self.length, self.slack_bits, self.terms, True)

    def obfuscated(self) -> PackedEncryptedVector:
        return self if self.fresh else self.rerandomise()


def _as_int64(values: Any) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array of int64 values, got shape {arr.shape}")
    if arr.dtype.kind not in "iu" and arr.size:
        raise TypeError(f"packed encryption takes int64 values, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError("uint64 values above 2^63 - 1 do not fit an int64 slot")
    return arr.astype(np.int64)


def pack(values: Any, slots: int, slack_bits: int) -> list[int]:
    """Raw plaintexts: ``slots`` offset values per integer, little-endian slots of whole bytes."""
    v = _as_int64(values)
    count = -(-len(v) // slots) if len(v) else 0
    slot_bytes = (VALUE_BITS + slack_bits) // 8
    u = np.zeros(count * slots, dtype=np.uint64)  # padding slots encode the value 0
    u[:len(v)] = v.view(np.uint64)
    u ^= np.uint64(1 << 63)  # u = v + 2^63 in [0, 2^64)
    buf = np.zeros((count * slots, slot_bytes), dtype=np.uint8)
    buf[:, :8] = u.astype("<u8").view(np.uint8).reshape(-1, 8)
    width = slots * slot_bytes
    data = buf.tobytes()
    return [int.from_bytes(data[i * width:(i + 1) * width], "little") for i in range(count)]


def unpack(raws: list[int], length: int, slots: int, slack_bits: int, terms: int, wrap: bool) -> np.ndarray:
    """int64 values of raw plaintexts holding sums of ``terms`` offset values per slot."""
    slot_bytes = (VALUE_BITS + slack_bits) // 8
    width = slots * slot_bytes
    for m in raws:
        if m >> (8 * width):
            raise ValueError("packed plaintext exceeds its slots: the ciphertext is corrupt or "
                             "not a packed vector of this layout")
    data = b"".join(int(m).to_bytes(width, "little") for m in raws)
    buf = np.frombuffer(data, dtype=np.uint8).reshape(-1, slot_bytes)[:length]
    lo = np.ascontiguousarray(buf[:, :8]).view("<u8").reshape(-1).astype(np.uint64)
    hi = np.zeros(len(lo), dtype=np.int64)
    for j in range(slot_bytes - 1, 7, -1):
        hi = (hi << 8) | buf[:, j].astype(np.int64)
    corrupt = (hi > terms) | ((hi == terms) & (lo != 0))  # a slot holds at most terms·2^64
    if corrupt.any():
        raise ValueError(f"packed slot {int(np.flatnonzero(corrupt)[0])} holds more than {terms} "
                         "summands allow: the ciphertext is corrupt or its terms count is wrong")
    # slot = hi·2^64 + lo = Σv + terms·2^63  =>  Σv = (hi - terms//2)·2^64 + lo - (terms%2)·2^63
    a = hi - terms // 2
    if terms % 2:
        borrow = lo < np.uint64(1 << 63)
        lo = lo ^ np.uint64(1 << 63)
        a = a - borrow.astype(np.int64)
    if not wrap:
        top = lo >= np.uint64(1 << 63)
        ok = ((a == 0) & ~top) | ((a == -1) & top)
        if not ok.all():
            raise OverflowError(f"packed slot {int(np.flatnonzero(~ok)[0])}: the sum does not fit in "
                                "int64 (pass wrap=True for sums modulo 2^64)")
    return lo.view(np.int64).copy()


def encrypt_packed(public_key: PublicKey, values: Any,
                   slack_bits: int | None = None) -> PackedEncryptedVector:
    """Encrypt an int64 array packed ``slots_per_ciphertext`` values per ciphertext."""
    sb = check_slack_bits(DEFAULT_SLACK_BITS if slack_bits is None else slack_bits)
    slots = slots_per_ciphertext(public_key, sb)
    if slots < 1:
        raise ValueError(f"a {public_key.n_bits}-bit key cannot hold a {VALUE_BITS + sb}-bit slot")
    v = _as_int64(values)
    cts = public_key.raw_encrypt(pack(v, slots, sb))
    return PackedEncryptedVector(public_key, cts, len(v), sb, 1, True)


def decrypt_packed(private_key: PrivateKey, vector: PackedEncryptedVector, wrap: bool = False) -> np.ndarray:
    """int64 values (slot sums) of a packed vector; see the module docstring for overflow."""
    if not isinstance(vector, PackedEncryptedVector):
        raise TypeError(f"decrypt_packed expects a PackedEncryptedVector, got {type(vector).__name__}")
    if vector.public_key.n != private_key.public_key.n:
        raise ValueError("cannot decrypt: the vector was encrypted under a different public key")
    raws = private_key.raw_decrypt(vector.ciphertexts, small=False)
    return unpack(raws, vector.length, vector.slots, vector.slack_bits, vector.terms, wrap)


def digest(*parts: bytes) -> bytes:
    """16-byte SHA-256 integrity tag of a wire form (detects corruption, not forgery)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.digest()[:16]


# -- rows of uint64 cells, masked for an oblivious selection ---------------------------------
# Layout of protocols.psi.private_join: the cells of one row (a group of columns) in slots of
# ROW_SLOT_BITS bits, slot j at bit j·ROW_SLOT_BITS. A cell is below 2^64 and a mask below
# 2^ROW_MASK_BITS, so a masked slot is below 2^ROW_SLOT_BITS (the extra bit takes the carry)
# and never spills into the next one. The masked cell x + r with r uniform on 134 bits is
# within statistical distance 2^-70 of r alone (x < 2^64): 2^-40 over 2^30 cells, the largest
# supported table. 15 slots per 2048-bit plaintext.
ROW_SLOT_BITS = 135
ROW_MASK_BITS = 134
_RING = 1 << VALUE_BITS


def row_slots(public_key: PublicKey) -> int:
    """How many cells one plaintext of ``public_key`` holds in the row layout."""
    return (public_key.n_bits - 1) // ROW_SLOT_BITS


def row_groups(public_key: PublicKey, n_cols: int) -> list[range]:
    """The columns of a table packed together, one ciphertext per row and per group."""
    slots = row_slots(public_key)
    if slots < 1:
        raise ValueError(f"a {public_key.n_bits}-bit key cannot hold a {ROW_SLOT_BITS}-bit slot")
    return [range(i, min(i + slots, n_cols)) for i in range(0, n_cols, slots)]


def encrypt_rows(public_key: PublicKey, cells: list[np.ndarray]) -> EncryptedVector:
    """One ciphertext per row of ``Σ_j cells[j][row] · 2^(ROW_SLOT_BITS·j)`` (uint64 cells, at most
    ``row_slots`` columns)."""
    if len(cells) > row_slots(public_key):
        raise ValueError(f"{len(cells)} columns exceed the {row_slots(public_key)} slots of a row")
    plains = []
    for row in zip(*(np.asarray(c, dtype=np.uint64).tolist() for c in cells), strict=True):
        acc = 0
        for j, v in enumerate(row):
            acc |= int(v) << (ROW_SLOT_BITS * j)
        plains.append(acc)
    return EncryptedVector(public_key, public_key.raw_encrypt(plains), 0, True)


def rows_per_ciphertext(public_key: PublicKey, width: int) -> int:
    """How many masked rows of ``width`` cells :func:`mask_rows` packs into one ciphertext."""
    return max(1, row_slots(public_key) // width)


def mask_rows(rows: EncryptedVector, width: int) -> tuple[EncryptedVector, list[np.ndarray]]:
    """The selector's step: add a fresh mask r (ROW_MASK_BITS bits, CSPRNG) to every cell of
    ``rows`` (from :func:`encrypt_rows`, ``width`` columns), pack ``rows_per_ciphertext`` rows per
    ciphertext (Horner: the first row in the lowest slots) and re-randomise.

    Returns the vector for the key owner, who decrypts it with :func:`decrypt_rows` into its
    additive shares ``(cell + r) mod 2^64``, and the selector's shares ``-r mod 2^64`` (one
    uint64 array per column). The selector learns nothing (semantic security); the owner sees
    each cell plus a mask that hides it to 2^-70 (see ``ROW_MASK_BITS``)."""
    pk = rows.public_key
    n, m = pk.n, len(rows)
    masks = [[secrets.randbits(ROW_MASK_BITS) for _ in range(width)] for _ in range(m)]
    shares = [np.array([(-mk[j]) % _RING for mk in masks], dtype=np.uint64) for j in range(width)]
    plains = []
    for mk in masks:
        plain = 0
        for j, r in enumerate(mk):
            plain |= r << (ROW_SLOT_BITS * j)
        plains.append(plain)
    masked = raw.add_plain(rows.ciphertexts, plains, n, pk.nsquare)  # Enc(x)·(1+n)^r = Enc(x+r)
    per = rows_per_ciphertext(pk, width)
    chunks = [masked[t:t + per] for t in range(0, m, per)]
    packed = raw.horner_pack(chunks, ROW_SLOT_BITS * width, n)
    return EncryptedVector(pk, packed, 0, False).rerandomise(), shares


def decrypt_rows(private_key: PrivateKey, vector: EncryptedVector, count: int, width: int) -> list[np.ndarray]:
    """The key owner's shares (cell + r mod 2^64, one uint64 array per column) of the ``count``
    rows of ``width`` cells that :func:`mask_rows` packed into ``vector``."""
    pk = private_key.public_key
    per = rows_per_ciphertext(pk, width)
    if vector.public_key != pk or len(vector) != -(-count // per):
        raise ValueError("malformed masked rows: wrong key or length")
    plains = private_key.raw_decrypt(vector.ciphertexts, small=False) if count else []
    cells: list[list[int]] = [[] for _ in range(width)]
    mask64 = _RING - 1
    for t, plain in enumerate(plains):
        plain = int(plain)
        for r in range(min(per, count - t * per)):
            for j in range(width):
                cells[j].append((plain >> (ROW_SLOT_BITS * (r * width + j))) & mask64)
    return [np.array(c, dtype=np.uint64) for c in cells]
