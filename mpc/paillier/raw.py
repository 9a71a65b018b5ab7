"""Raw Paillier arithmetic on integers mod n: the hazardous layer (phe's ``raw_encrypt``).

Nothing here knows about signs, floats or packing: plaintexts are integers in ``[0, n)``,
ciphertexts integers in ``(0, n²)``, and callers must range-check. Everything is gmpy2.

* ``g = n + 1``, so ``g^m = (1 + n)^m = 1 + m·n  (mod n²)``: no exponentiation for ``g^m``.
* DJN encryption (Damgård, Jurik, Nielsen, "A generalization of Paillier's public-key
  system with applications to electronic voting", IJIS 2010, §4.2): ``h = -x² mod n`` for a
  random ``x`` in Z_n*, ``h_s = h^n mod n²``, and ``E(m) = (1 + m·n) · h_s^r mod n²`` with a
  *short* random exponent ``r`` of :data:`DJN_EXPONENT_BITS` bits instead of a full
  ``r^n``. Security level: a 2048-bit n gives about 112-bit security (NIST SP 800-57); the
  best known attack on a short exponent is Pollard's lambda/kangaroo in ``2^(bits/2)``
  steps, so 448 bits leaves 224 bits, above the ``2·κ = 256`` bits the literature asks for
  (κ = 128; Koshiba–Kurosawa, "Short exponent Diffie-Hellman problems", PKC 2004). HEU's
  DJ implementation uses n/2 bits; ours is shorter but still twice the needed length.
* ``h_s^r`` by a fixed-base table (Brickell–Gordon–McCurley–Wilson): rows
  ``T[i][d] = h_s^(d·256^i)``, so ``h_s^r`` is the product of one entry per byte of ``r``:
  56 multiplications mod n² for a 448-bit exponent, no squarings.
* Decryption by CRT (as phe): ``m_p = L_p(c^(p-1) mod p²)·h_p mod p``, same for q, then
  recombine; ``h_p = L_p((1+n)^(p-1) mod p²)^(-1) mod p`` is precomputed.
* Large batches run in the shared spawn process pool (:func:`mpc.crypto.pool.map_chunks`);
  each worker builds the fixed-base table once per key and caches it.

What it reveals: nothing by itself; a raw ciphertext is only as hidden as its randomness.
Homomorphic results (products, powers) are *not* re-randomised here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import gmpy2
from gmpy2 import mpz

from mpc.crypto import pool

DJN_EXPONENT_BITS = 448
WINDOW_BITS = 8  # one table row per byte of the exponent: digits are the random bytes themselves
EXPONENT_BYTES = DJN_EXPONENT_BITS // 8
PARALLEL_MIN_ENCRYPT = 192  # below this, pickling to workers and table builds cost more than they save
PARALLEL_MIN_DECRYPT = 64


class FixedBaseTable:
    """Precomputed powers of one base so that ``base^e`` costs one product per exponent byte."""

    def __init__(self, base: int, modulus: int, exponent_bytes: int = EXPONENT_BYTES) -> None:
        self.modulus = mod = mpz(modulus)
        self.exponent_bytes = exponent_bytes
        rows = []
        b = mpz(base) % mod
        for _ in range(exponent_bytes):
            row = [mpz(1), b]
            for _d in range(2, 256):
                row.append(row[-1] * b % mod)
            rows.append(row)
            b = row[-1] * b % mod  # base^(256^(i+1))
        self.rows = rows

    def pow_bytes(self, exponent: bytes) -> mpz:
        """``base^e mod modulus`` where ``e`` is given little-endian, one table row per byte."""
        mod = self.modulus
        acc = mpz(1)
        for row, d in zip(self.rows, exponent, strict=True):
            if d:
                acc = acc * row[d] % mod
        return acc

    def random_powers(self, count: int) -> list[mpz]:
        """``count`` values ``base^r`` with fresh uniform ``r`` of ``8·exponent_bytes`` bits."""
        k = self.exponent_bytes
        rand = os.urandom(k * count)
        return [self.pow_bytes(rand[i * k:(i + 1) * k]) for i in range(count)]


def djn_h_s(n: int) -> mpz:
    """A fresh DJN base ``h_s = (-x²)^n mod n²`` for a random ``x`` in Z_n* (CSPRNG)."""
    n = mpz(n)
    while True:
        x = mpz(int.from_bytes(os.urandom((n.bit_length() + 7) // 8 + 8), "big")) % n
        if x > 1 and gmpy2.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    return gmpy2.powmod(h, n, n * n)


# Per-process cache of fixed-base tables, keyed by (n, h_s): built once per worker process.
_TABLES: dict[tuple[int, int], FixedBaseTable] = {}
_TABLES_LOCK = threading.Lock()
_MAX_TABLES = 8


def table_for(n: int, h_s: int) -> FixedBaseTable:
    """The fixed-base table of ``h_s`` mod n², built on first use in this process."""
    key = (int(n), int(h_s))
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is None:
            if len(_TABLES) >= _MAX_TABLES:
                _TABLES.pop(next(iter(_TABLES)))
            table = _TABLES[key] = FixedBaseTable(h_s, mpz(n) * mpz(n))
    return table


def _encrypt_chunk(plaintexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """Worker: ``(1 + m·n) · h_s^r mod n²`` for each plaintext ``m`` in ``[0, n)``."""
    table = table_for(n, h_s)
    n = mpz(n)
    nsq = n * n
    masks = table.random_powers(len(plaintexts))
    return [(1 + mpz(m) * n) * s % nsq for m, s in zip(plaintexts, masks, strict=True)]


def _rerandomise_chunk(ciphertexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """Worker: multiply each ciphertext by a fresh ``h_s^r`` (a fresh encryption of 0)."""
    table = table_for(n, h_s)
    nsq = mpz(n) * mpz(n)
    masks = table.random_powers(len(ciphertexts))
    return [mpz(c) * s % nsq for c, s in zip(ciphertexts, masks, strict=True)]


def encrypt(plaintexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """DJN-encrypt raw plaintexts in ``[0, n)`` (caller range-checks); pool for big batches."""
    return pool.map_chunks(_encrypt_chunk, list(plaintexts), PARALLEL_MIN_ENCRYPT, int(n), int(h_s))


def rerandomise(ciphertexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """Fresh randomness for each ciphertext: ``c · h_s^r mod n²`` (same plaintext)."""
    return pool.map_chunks(_rerandomise_chunk, list(ciphertexts), PARALLEL_MIN_ENCRYPT,
                           int(n), int(h_s))


class CrtConstants:
    """Precomputed CRT decryption constants of one private key (phe's hp, hq, p^(-1) mod q)."""

    def __init__(self, p: int, q: int) -> None:
        self.p, self.q = mpz(p), mpz(q)
        self.psq, self.qsq = self.p * self.p, self.q * self.q
        self.pm1, self.qm1 = self.p - 1, self.q - 1
        n = self.p * self.q
        self.hp = self._h(self.p, self.psq, n)
        self.hq = self._h(self.q, self.qsq, n)
        self.p_inv_q = gmpy2.invert(self.p, self.q)

    @staticmethod
    def _h(prime: mpz, prime_sq: mpz, n: mpz) -> mpz:
        # L_p(g^(p-1) mod p²)^(-1) mod p with g = n + 1
        return gmpy2.invert((gmpy2.powmod(n + 1, prime - 1, prime_sq) - 1) // prime, prime)


def _decrypt_with(ciphertexts: Sequence[int], k: CrtConstants) -> list[mpz]:
    out = []
    p, q = k.p, k.q
    for c in ciphertexts:
        c = mpz(c)
        mp = (gmpy2.powmod(c % k.psq, k.pm1, k.psq) - 1) // p * k.hp % p
        mq = (gmpy2.powmod(c % k.qsq, k.qm1, k.qsq) - 1) // q * k.hq % q
        out.append(mp + (mq - mp) * k.p_inv_q % q * p)  # CRT: m ≡ mp (p), m ≡ mq (q)
    return out


_CONSTS: dict[tuple[int, int], CrtConstants] = {}


def _decrypt_chunk(ciphertexts: Sequence[int], p: int, q: int) -> list[mpz]:
    """Worker: CRT decryption; constants cached per process (our own worker processes only)."""
    key = (int(p), int(q))
    k = _CONSTS.get(key)
    if k is None:
        _CONSTS.clear()
        k = _CONSTS[key] = CrtConstants(p, q)
    return _decrypt_with(ciphertexts, k)


def decrypt(ciphertexts: Sequence[int], consts: CrtConstants) -> list[mpz]:
    """Raw plaintexts in ``[0, n)`` of ciphertexts (caller checks they are in ``(0, n²)``)."""
    cts = list(ciphertexts)
    if len(cts) < PARALLEL_MIN_DECRYPT or pool.workers() == 1:
        return _decrypt_with(cts, consts)
    return pool.map_chunks(_decrypt_chunk, cts, PARALLEL_MIN_DECRYPT, int(consts.p), int(consts.q))
