"""EncryptedVector: a vector of Paillier ciphertexts under one public key, with operators.

``a + b``, ``a + 3``, ``a + ints``, ``a * 5``, ``a * ints``, ``-a``, ``a - b``, ``a.sum()``,
slicing and :meth:`EncryptedVector.concat`. Vectors of different fixed-point scales are
aligned by multiplying the coarser one by a power of two (exact, as phe does with
exponents). Mixing vectors under different public keys raises ``ValueError``.

Lazy obfuscation (as phe): homomorphic results are *not* re-randomised, and are marked
not fresh; :meth:`rerandomise` gives fresh ciphertexts, and the wire codec re-randomises
every not-fresh vector before it leaves the party, so protocols cannot forget. Fresh means
"new randomness made here": own encryptions and re-randomised vectors. Vectors received
from a peer are not fresh, so forwarding one unchanged re-randomises it. Re-randomisation
hides the input ciphertext even from the key owner (see :mod:`mpc.paillier.raw`).
What it reveals: to the key owner, the plaintexts; to anyone else, the length and key.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from gmpy2 import mpz

from mpc.paillier import encoding, raw

if TYPE_CHECKING:
    from mpc.paillier.keys import PublicKey


class EncryptedVector:
    """Ciphertexts (gmpy2 ``mpz``) of signed integers or fixed-point numbers (``frac_bits``)."""

    __slots__ = ("public_key", "_cts", "frac_bits", "fresh")

    def __init__(self, public_key: PublicKey, ciphertexts: list[mpz], frac_bits: int = 0,
                 fresh: bool = False) -> None:
        self.public_key = public_key
        self._cts = ciphertexts
        self.frac_bits = frac_bits
        self.fresh = fresh

    # -- container --------------------------------------------------------------------------
    @property
    def ciphertexts(self) -> list[mpz]:
        """The raw ciphertexts (do not mutate)."""
        return self._cts

    def __len__(self) -> int:
        return len(self._cts)

    def __repr__(self) -> str:
        fp = f", frac_bits={self.frac_bits}" if self.frac_bits else ""
        return f"EncryptedVector(len={len(self)}{fp}, key={self.public_key!r})"

    def __getitem__(self, index: Any) -> EncryptedVector:
        if isinstance(index, slice):
            cts = self._cts[index]
        elif isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            cts = [self._cts[index]]
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise IndexError(f"boolean index of shape {idx.shape} for a vector of length {len(self)}")
                idx = np.flatnonzero(idx)
            elif idx.dtype.kind not in "iu" or idx.ndim != 1:
                raise IndexError("index must be an int, a slice, or a 1-D int or bool array")
            cts = [self._cts[i] for i in idx.tolist()]
        return EncryptedVector(self.public_key, cts, self.frac_bits, self.fresh)

    def __iter__(self) -> Iterator[EncryptedVector]:
        """Length-1 vectors, one per element."""
        return (self[i] for i in range(len(self)))

    @classmethod
    def concat(cls, vectors: Iterable[EncryptedVector]) -> EncryptedVector:
        """One vector of all ``vectors`` in order (same key; scales aligned to the finest)."""
        vectors = list(vectors)
        if not vectors:
            raise ValueError("concat needs at least one vector")
        for v in vectors:
            _check_vector(v, vectors[0].public_key)
        fb = max(v.frac_bits for v in vectors)
        cts: list[mpz] = []
        for v in vectors:
            cts.extend(v._rescaled(fb)._cts)
        return cls(vectors[0].public_key, cts, fb, all(v.fresh for v in vectors))

    def concatenate(self, *others: EncryptedVector) -> EncryptedVector:
        """``EncryptedVector.concat([self, *others])``."""
        return EncryptedVector.concat([self, *others])

    # -- homomorphic operations ------------------------------------------------------------
    def _rescaled(self, frac_bits: int) -> EncryptedVector:
        if frac_bits == self.frac_bits:
            return self
        if frac_bits < self.frac_bits:
            raise ValueError("cannot lower the fixed-point precision of a ciphertext")
        return self._scalar_pow([mpz(1) << (frac_bits - self.frac_bits)], frac_bits)

    def _scalar_pow(self, ks: Sequence[int], frac_bits: int) -> EncryptedVector:
        cts = raw.mul_plain(self._cts, ks, self.public_key.nsquare)
        return EncryptedVector(self.public_key, cts, frac_bits, False)

    def _broadcast(self, m: int) -> None:
        if m != len(self) and len(self) != 1 and m != 1:
            raise ValueError(f"length mismatch: {len(self)} and {m}")

    def __add__(self, other: Any) -> EncryptedVector:
        pk = self.public_key
        if isinstance(other, EncryptedVector):
            _check_vector(other, pk)
            self._broadcast(len(other))
            fb = max(self.frac_bits, other.frac_bits)
            a, b = self._rescaled(fb)._cts, other._rescaled(fb)._cts
            if len(a) == 1 and len(b) != 1:
                a = a * len(b)
            elif len(b) == 1 and len(a) != 1:
                b = b * len(a)
            return EncryptedVector(pk, raw.add(a, b, pk.nsquare), fb, False)
        if isinstance(other, PackedLike):
            return NotImplemented
        ints, _ = self._plain_operand(other)
        return self._add_raw_ints(ints)

    __radd__ = __add__

    def _plain_operand(self, other: Any) -> tuple[list[int], int]:
        """Plaintext ints at this vector's scale (floats allowed only for fixed-point vectors)."""
        if self.frac_bits:
            return encoding.to_fixed_ints(other, self.frac_bits)
        return encoding.to_fixed_ints(other, None)

    def __neg__(self) -> EncryptedVector:
        return self * -1

    def __sub__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self + (-other)
        ints, _ = self._plain_operand(other)
        return self._add_raw_ints([-v for v in ints])

    def _add_raw_ints(self, ints: list[int]) -> EncryptedVector:
        """Add plaintext ints already at this vector's scale: ``c · (1 + m·n) mod n²``."""
        pk = self.public_key
        self._broadcast(len(ints))
        raws = encoding.encode_signed(ints, pk.n, pk.max_int)
        cts = self._cts
        if len(raws) == 1:
            raws = raws * len(cts)
        elif len(cts) == 1:
            cts = cts * len(raws)
        return EncryptedVector(pk, raw.add_plain(cts, raws, pk.n, pk.nsquare), self.frac_bits, False)

    def __rsub__(self, other: Any) -> EncryptedVector:
        return (-self) + other

    def __mul__(self, other: Any) -> EncryptedVector:
        """Multiply by plaintext integers (a scalar or one per element); the scale is kept."""
        if isinstance(other, EncryptedVector):
            raise TypeError("Paillier cannot multiply two ciphertexts")
        if isinstance(other, (float, np.floating)) or (
                isinstance(other, np.ndarray) and other.dtype.kind == "f"):
            raise TypeError("multiply by integers only (scale floats yourself and track frac_bits)")
        ks = encoding.int_list(other if isinstance(other, np.ndarray) else
                               ([other] if isinstance(other, (int, np.integer)) else other))
        self._broadcast(len(ks))
        vec = self
        if len(ks) != 1 and len(self) == 1:
            vec = EncryptedVector(self.public_key, self._cts * len(ks), self.frac_bits, False)
        return vec._scalar_pow(ks, self.frac_bits)

    __rmul__ = __mul__

    def sum(self) -> EncryptedVector:
        """Encryption of the sum of all elements (a vector of length 1)."""
        return EncryptedVector(self.public_key, [raw.product(self._cts, self.public_key.nsquare)],
                               self.frac_bits, False)

    # -- freshness ----------------------------------------------------------------------------
    def rerandomise(self) -> EncryptedVector:
        """The same plaintexts under fresh randomness that hides these ciphertexts, even from
        the key owner (safe to send to any party)."""
        return EncryptedVector(self.public_key, self.public_key.raw_rerandomise(self._cts),
                               self.frac_bits, True)

    def obfuscated(self) -> EncryptedVector:
        """``self`` if fresh, else :meth:`rerandomise` (what the wire codec sends)."""
        return self if self.fresh else self.rerandomise()

    # -- phe interop ---------------------------------------------------------------------------
    @classmethod
    def from_phe(cls, numbers: Sequence[Any]) -> EncryptedVector:
        """From a list of ``phe.EncryptedNumber`` under one key (exponents aligned exactly)."""
        from mpc.paillier.interop import vector_from_phe

        return vector_from_phe(numbers)

    def to_phe(self) -> list[Any]:
        """As a list of ``phe.EncryptedNumber`` (base-16 exponent ``-ceil(frac_bits/4)``)."""
        from mpc.paillier.interop import vector_to_phe

        return vector_to_phe(self)


class PackedLike:
    """Marker base class for packed vectors (so ``+`` with them is refused here)."""


def _check_vector(v: Any, public_key: PublicKey) -> None:
    if not isinstance(v, EncryptedVector):
        raise TypeError(f"expected an EncryptedVector, got {type(v).__name__}")
    if v.public_key != public_key:
        raise ValueError("cannot combine ciphertexts encrypted under different public keys")
