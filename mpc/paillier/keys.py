"""Paillier key pairs: generation, public key (n and its DJN base), private key (CRT decryption).

``generate_keypair`` draws primes p ≡ q ≡ 3 (mod 4) from the OS CSPRNG (``secrets``),
tested with gmpy2's ``is_prime``/``next_prime``, and the key owner draws the key's DJN base
``h_s`` (:func:`mpc.paillier.raw.owner_base`). A :class:`PublicKey` is the pair (n, h_s):
the base is part of the key and of its wire form, so every party encrypts and re-randomises
under the owner's base (see :mod:`mpc.paillier.raw` for why that, and a full-length
re-randomisation exponent, hide a re-randomised ciphertext even from the owner). Keys
compare equal when n, h_s and the re-randomisation rule are equal; vectors under unequal
keys do not mix. A key imported from phe has no owner-made base: it gets one derived from
n, the same in every process, and re-randomises with a textbook ``r^n`` (its ciphertexts
may carry phe's randomness). The private key (p, q) never leaves the process; it is not
registered with the wire codec, and its repr shows no secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from mpc.paillier import raw

if TYPE_CHECKING:
    from mpc.paillier.packing import PackedEncryptedVector
    from mpc.paillier.vector import EncryptedVector

MIN_SECURE_BITS = 2048
MIN_INSECURE_BITS = 256


def _random_prime(bits: int) -> mpz:
    """A random ``bits``-bit prime ≡ 3 (mod 4) with its top two bits set (|pq| = 2·bits)."""
    while True:
        p = gmpy2.next_prime(mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)))
        while p % 4 != 3:
            p = gmpy2.next_prime(p)
        if p.bit_length() == bits and gmpy2.is_prime(p, 50):
            return p


def generate_keypair(n_bits: int = 2048, insecure: bool = False) -> tuple[PublicKey, PrivateKey]:
    """A fresh key pair with an ``n_bits``-bit modulus (< 2048 only with ``insecure=True``)."""
    if not isinstance(n_bits, int) or n_bits % 2:
        raise ValueError(f"n_bits must be an even integer, got {n_bits!r}")
    if n_bits < MIN_SECURE_BITS and not insecure:
        raise ValueError(f"a {n_bits}-bit Paillier key is insecure: use n_bits >= {MIN_SECURE_BITS} "
                         "(or insecure=True for tests)")
    if n_bits < MIN_INSECURE_BITS:
        raise ValueError(f"n_bits must be at least {MIN_INSECURE_BITS}, got {n_bits}")
    half = n_bits // 2
    while True:
        p, q = _random_prime(half), _random_prime(half)
        n = p * q
        if p != q and n.bit_length() == n_bits and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            break
    pk = PublicKey(n, raw.owner_base(p, q))
    return pk, PrivateKey(pk, p, q)


class PublicKey:
    """Paillier public key: modulus ``n`` (``g = n + 1``) and the key's DJN base ``h_s``.

    Encrypts with DJN short exponents under ``h_s``; re-randomises with a full-length
    exponent of ``h_s`` (statistically hiding, even from the key owner), or with a textbook
    ``r^n`` when ``textbook_rerandomise`` (keys imported from phe). Build keys with
    :func:`generate_keypair`, :meth:`from_phe` or the wire codec; the constructor checks
    n is odd and of sane size and ``h_s`` is a unit mod n² other than 1.
    """

    def __init__(self, n: int, h_s: int, textbook_rerandomise: bool = False) -> None:
        n, h_s = int(n), int(h_s)
        if n < 2 ** (MIN_INSECURE_BITS - 1) or n % 2 == 0:
            raise ValueError("Paillier modulus n must be odd and at least "
                             f"{MIN_INSECURE_BITS - 1} bits, got {n.bit_length()} bits")
        self.n = mpz(n)
        self.nsquare = self.n * self.n
        if not 1 < h_s < self.nsquare or gmpy2.gcd(h_s, self.n) != 1:
            raise ValueError("the DJN base h_s must be a unit mod n² other than 1")
        self.h_s = mpz(h_s)
        self.textbook_rerandomise = bool(textbook_rerandomise)
        self.max_int = self.n // 3 - 1  # signed plaintexts live in [-max_int, max_int] (as phe)
        self.n_bits = n.bit_length()
        self.ciphertext_bytes = (self.nsquare.bit_length() + 7) // 8

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.n == other.n and self.h_s == other.h_s \
            and self.textbook_rerandomise == other.textbook_rerandomise

    def __hash__(self) -> int:
        return hash(("paillier", int(self.n), int(self.h_s), self.textbook_rerandomise))

    def __repr__(self) -> str:
        phe = ", base derived (phe)" if self.textbook_rerandomise else ""
        return f"PublicKey({self.n_bits} bits, n=...{int(self.n) % 10**8:08d}{phe})"

    # -- raw (hazardous) layer --------------------------------------------------------
    def raw_encrypt(self, plaintexts: Sequence[int]) -> list[mpz]:
        """Encrypt integers already in ``[0, n)``; raises ``ValueError`` otherwise."""
        n = self.n
        for m in plaintexts:
            if not 0 <= m < n:
                raise ValueError("raw plaintext outside [0, n)")
        return raw.encrypt(plaintexts, n, self.h_s)

    def raw_rerandomise(self, ciphertexts: Sequence[int]) -> list[mpz]:
        """The same plaintexts under fresh randomness that hides the input ciphertexts.

        ``c · h_s^R`` with R of ``|n| + 128`` bits (:func:`mpc.paillier.raw.rerandomise`), or
        ``c · r^n`` for keys from phe (:func:`mpc.paillier.raw.rerandomise_textbook`).
        """
        if self.textbook_rerandomise:
            return raw.rerandomise_textbook(ciphertexts, self.n)
        return raw.rerandomise(ciphertexts, self.n, self.h_s)

    # -- encodings --------------------------------------------------------------------
    def encrypt(self, values: Any, frac_bits: int | None = None) -> EncryptedVector:
        """Encrypt signed integers (numpy int array or Python ints, ``|v| <= max_int``).

        Floats need an explicit fixed-point encoding: ``frac_bits=k`` stores
        ``round(v · 2^k)``, and decryption returns floats. ``ValueError`` for values out of
        range, NaN or infinity; ``TypeError`` for floats without ``frac_bits``.
        """
        from mpc.paillier import encoding
        from mpc.paillier.vector import EncryptedVector

        ints, fb = encoding.to_fixed_ints(values, frac_bits)
        raws = encoding.encode_signed(ints, self.n, self.max_int)
        return EncryptedVector(self, raw.encrypt(raws, self.n, self.h_s), frac_bits=fb, fresh=True)

    def encrypt_packed(self, values: Any, slack_bits: int | None = None) -> PackedEncryptedVector:
        """Encrypt int64 values packed many 64-bit slots per ciphertext (see ``packing``)."""
        from mpc.paillier.packing import encrypt_packed

        return encrypt_packed(self, values, slack_bits)

    # -- phe interop --------------------------------------------------------------------
    @classmethod
    def from_phe(cls, phe_public_key: Any) -> PublicKey:
        """The gaotie key of a ``phe.PaillierPublicKey`` (same n; g must be n + 1).

        phe keys have no DJN base: this one is derived from n (the same in every process)
        and re-randomises with a textbook ``r^n``. Not equal to a gaotie key of the same n.
        """
        from mpc.paillier.interop import public_key_from_phe

        return public_key_from_phe(phe_public_key)

    def to_phe(self) -> Any:
        """This key as a ``phe.PaillierPublicKey`` (n only: phe has no DJN base)."""
        from mpc.paillier.interop import public_key_to_phe

        return public_key_to_phe(self)


class PrivateKey:
    """Paillier private key (p, q) with precomputed CRT decryption constants."""

    def __init__(self, public_key: PublicKey, p: int, q: int) -> None:
        p, q = mpz(p), mpz(q)
        if p * q != public_key.n:
            raise ValueError("p·q does not equal the public key's n")
        if p == q:
            raise ValueError("p and q must differ")
        if p > q:
            p, q = q, p
        self.public_key = public_key
        self._p, self._q = p, q
        self._crt = raw.CrtConstants(p, q)

    def __repr__(self) -> str:
        return f"PrivateKey(for {self.public_key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and self.public_key.n == other.public_key.n \
            and self._p == other._p

    def __hash__(self) -> int:
        return hash(("paillier-private", int(self.public_key.n)))

    @property
    def p(self) -> mpz:
        return self._p

    @property
    def q(self) -> mpz:
        return self._q

    def raw_decrypt(self, ciphertexts: Sequence[int], small: bool = True) -> list[mpz]:
        """Raw plaintexts in ``[0, n)``; ``ValueError`` for ciphertexts outside ``(0, n²)``.

        ``small=False`` when the plaintexts are known to be large (skips the int64 fast path).
        """
        nsq = self.public_key.nsquare
        for c in ciphertexts:
            if not 0 < c < nsq:
                raise ValueError("ciphertext outside (0, n²): not made under this key")
        return raw.decrypt(ciphertexts, self._crt, small)

    def decrypt(self, vector: EncryptedVector) -> np.ndarray | list[int]:
        """Decrypt: int64 array when every value fits, else a list of ints; floats if fixed-point.

        ``ValueError`` if ``vector`` is under another modulus (any base of this n decrypts);
        ``OverflowError`` if a value left the signed range (an overflow of homomorphic operations).
        """
        from mpc.paillier import encoding
        from mpc.paillier.vector import EncryptedVector

        if not isinstance(vector, EncryptedVector):
            raise TypeError(f"decrypt expects an EncryptedVector, got {type(vector).__name__}")
        if vector.public_key.n != self.public_key.n:
            raise ValueError("cannot decrypt: the vector was encrypted under a different public key")
        raws = raw.decrypt(vector.ciphertexts, self._crt)
        ints = encoding.decode_signed(raws, self.public_key.n, self.public_key.max_int)
        return encoding.from_fixed_ints(ints, vector.frac_bits)

    def decrypt_packed(self, vector: PackedEncryptedVector, wrap: bool = False) -> np.ndarray:
        """Decrypt a packed vector to int64 (``wrap=True``: sums modulo 2^64, no overflow check)."""
        from mpc.paillier.packing import decrypt_packed

        return decrypt_packed(self, vector, wrap)

    @classmethod
    def from_phe(cls, phe_private_key: Any) -> PrivateKey:
        """The gaotie key of a ``phe.PaillierPrivateKey``."""
        from mpc.paillier.interop import private_key_from_phe

        return private_key_from_phe(phe_private_key)

    def to_phe(self) -> Any:
        """This key as a ``phe.PaillierPrivateKey``."""
        from mpc.paillier.interop import private_key_to_phe

        return private_key_to_phe(self)
