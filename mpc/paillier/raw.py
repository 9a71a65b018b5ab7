"""Raw Paillier arithmetic on integers mod n: the hazardous layer (phe's ``raw_encrypt``).

Nothing here knows about signs, floats or packing: plaintexts are integers in ``[0, n)``,
ciphertexts integers in ``(0, n²)``, and callers must range-check. Everything is gmpy2.

* ``g = n + 1``, so ``g^m = (1 + n)^m = 1 + m·n  (mod n²)``: no exponentiation for ``g^m``.
* DJN encryption (Damgård, Jurik, Nielsen, "A generalization of Paillier's public-key
  system with applications to electronic voting", IJIS 2010): ``h = -x² mod n`` for a
  random ``x`` in Z_n*, ``h_s = h^n mod n²``, and ``E(m) = (1 + m·n) · h_s^r mod n²`` with a
  *short* random exponent ``r`` of :data:`DJN_EXPONENT_BITS` bits instead of a full
  ``r^n``. Security level: the exponent must resist generic short-exponent discrete-log
  attacks (Pollard's lambda/kangaroo, ``2^(bits/2)`` steps); the usual rule is 2κ bits for
  κ-bit security (Koshiba–Kurosawa, "Short exponent Diffie-Hellman problems", PKC 2004;
  NIST SP 800-56A sizes finite-field private exponents the same way). A 2048-bit n gives
  about 112-bit security (NIST SP 800-57); we use 320 bits = 2·128 + 64 bits of margin,
  so the exponent is a 160-bit problem, above both 112 and 128. (HEU's DJ implementation
  uses n/2 bits, more conservative and 3x slower; 448 bits would cost 1.4x.)
* ``h_s^r`` by a fixed-base table (Brickell–Gordon–McCurley–Wilson): rows
  ``T[i][d] = h_s^(d·256^i)``, so ``h_s^r`` is the product of one entry per byte of ``r``:
  40 multiplications mod n² for a 320-bit exponent, no squarings. The table holds
  40 × 256 entries (about 5.2 MB at 2048 bits) per key and process.
* Decryption by CRT (as phe): ``m_p = L_p(c^(p-1) mod p²)·h_p mod p``, same for q, then
  recombine; ``h_p = L_p((1+n)^(p-1) mod p²)^(-1) mod p`` is precomputed. int64-sized
  plaintexts (the common case) need only the mod-p half, and 14 of them share one half
  decryption by homomorphic packing mod p² with a random linear check (see :func:`decrypt`).
* Large batches run on the shared crypto thread pool (:func:`mpc.crypto.pool.map_chunks`);
  the fixed-base table is built once per key and process and cached.

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

DJN_EXPONENT_BITS = 320
WINDOW_BITS = 8  # one table row per byte of the exponent: digits are the random bytes themselves
EXPONENT_BYTES = DJN_EXPONENT_BITS // 8
PARALLEL_MIN_ENCRYPT = 192  # below this, pickling to workers and table builds cost more than they save
PARALLEL_MIN_DECRYPT = 64
SMALL_SLOT_BITS = 72  # batched decryption of int64 plaintexts: 64 bits + 8 guard bits per slot
SMALL_MIN_BATCH = 4


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


def _from_residues(cp: mpz, cq: mpz, k: CrtConstants) -> mpz:
    """Plaintext of a ciphertext given as its residues mod p² and mod q² (CRT decryption)."""
    mp = (gmpy2.powmod(cp, k.pm1, k.psq) - 1) // k.p * k.hp % k.p
    mq = (gmpy2.powmod(cq, k.qm1, k.qsq) - 1) // k.q * k.hq % k.q
    return mp + (mq - mp) * k.p_inv_q % k.q * k.p  # CRT: m ≡ mp (p), m ≡ mq (q)


def _decrypt_exact(ciphertexts: Sequence[int], k: CrtConstants) -> list[mpz]:
    return [_from_residues(c % k.psq, c % k.qsq, k) for c in map(mpz, ciphertexts)]


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _decrypt_mod_p(c: mpz, k: CrtConstants) -> mpz:
    """``m mod p`` only: half of a CRT decryption."""
    return (gmpy2.powmod(c % k.psq, k.pm1, k.psq) - 1) // k.p * k.hp % k.p


def _decrypt_one_small(c: mpz, k: CrtConstants, n: mpz) -> mpz:
    """Raw plaintext; from ``m mod p`` alone when that lifts to an int64, else exactly."""
    mp = _decrypt_mod_p(c, k)
    v = mp if mp <= k.p >> 1 else mp - k.p
    if _I64_MIN <= v <= _I64_MAX:
        return v % n
    mq = (gmpy2.powmod(c % k.qsq, k.qm1, k.qsq) - 1) // k.q * k.hq % k.q  # the other half, then CRT
    return mp + (mq - mp) * k.p_inv_q % k.q * k.p


def _decrypt_batch_small(batch: list[mpz], k: CrtConstants) -> list[mpz] | None:
    """Decrypt ``len(batch)`` ciphertexts with two half decryptions, if all plaintexts are int64.

    Packing mod p: ``c'_j = c_j · g^(2^63)`` (offset: an int64 plaintext becomes ``u_j`` in
    ``[0, 2^64)``), Horner ``P = Π c'_j^(2^(72·j)) mod p²``; ``m(P) mod p`` is
    ``Σ u_j·2^(72·j)`` exactly when every ``u_j`` is below 2^64 (the sum stays below p), so
    the 72-bit slots give candidates ``v_j``. A random linear check then decrypts
    ``Π c_j^(ρ_j) mod p²`` for fresh 64-bit ``ρ_j`` and compares with ``Σ ρ_j·v_j mod p``: if
    some plaintext differs from its candidate mod p, the check passes with probability at most
    2^-64 (``ρ ↦ ρ·δ`` is injective mod p as 2^64 < p). See :func:`decrypt` for why mod p
    suffices. Returns None when not every plaintext is an int64 (or the check fails).
    """
    p, psq = k.p, k.psq
    n = p * k.q
    shift = mpz(1) << SMALL_SLOT_BITS
    offset = (1 + n * (mpz(1) << 63)) % psq  # g^(2^63)
    residues = [c % psq for c in batch]
    acc = mpz(1)
    for c in reversed(residues):
        acc = gmpy2.powmod(acc, shift, psq) * c % psq * offset % psq
    packed = _decrypt_mod_p(acc, k)
    if packed >> (SMALL_SLOT_BITS * len(batch)):
        return None
    mask = (mpz(1) << SMALL_SLOT_BITS) - 1
    values = []
    for _ in batch:
        u = packed & mask
        if u >> 64:
            return None
        values.append(u - (mpz(1) << 63))
        packed >>= SMALL_SLOT_BITS
    rho = os.urandom(8 * len(batch))
    rs = [int.from_bytes(rho[8 * j:8 * j + 8], "little") for j in range(len(batch))]
    check = mpz(1)
    for c, r in zip(residues, rs, strict=True):
        check = check * gmpy2.powmod(c, r, psq) % psq
    if _decrypt_mod_p(check, k) != sum(r * v for r, v in zip(rs, values, strict=True)) % p:
        return None
    return [v % n for v in values]


def _decrypt_with(ciphertexts: Sequence[int], k: CrtConstants) -> list[mpz]:
    """Raw plaintexts: int64-sized ones batched mod p (see :func:`decrypt`), others exactly."""
    cts = [mpz(c) for c in ciphertexts]
    n = k.p * k.q
    batch = (k.p.bit_length() - 1) // SMALL_SLOT_BITS
    out: list[mpz] = []
    i = 0
    while i < len(cts):
        chunk = cts[i:i + batch]
        got = _decrypt_batch_small(chunk, k) if batch >= SMALL_MIN_BATCH and len(chunk) == batch else None
        if got is None:
            # not all int64, or a short tail: value by value from here on
            out.extend(_decrypt_one_small(c, k, n) for c in cts[i:])
            break
        out.extend(got)
        i += batch
    return out


_CONSTS: dict[tuple[int, int], CrtConstants] = {}


def _decrypt_chunk(ciphertexts: Sequence[int], p: int, q: int, small: bool = True) -> list[mpz]:
    """Worker: decryption; constants cached per process (our own worker processes only)."""
    key = (int(p), int(q))
    k = _CONSTS.get(key)
    if k is None:
        _CONSTS.clear()
        k = _CONSTS[key] = CrtConstants(p, q)
    return _decrypt_with(ciphertexts, k) if small else _decrypt_exact(ciphertexts, k)


def decrypt(ciphertexts: Sequence[int], consts: CrtConstants, small: bool = True) -> list[mpz]:
    """Raw plaintexts in ``[0, n)`` of ciphertexts (caller checks they are in ``(0, n²)``).

    Plaintexts that are int64-sized (signed) are recovered from ``m mod p`` alone, batched
    14 per half decryption at 2048 bits with a random 2^-64 check; the rest exactly by CRT.
    Why ``m mod p`` suffices: if ``m mod p`` lifts to a small ``v`` but ``m ≠ v mod n``, then
    ``m - v`` is a non-zero multiple of p below n, so ``gcd(m - v, n) = p``: a ciphertext
    built that way needs the factorisation; for honest data (overflows included) ``m mod p``
    of a large m lands in the int64 range with probability about 2^64/p. The result is the
    exact decryption whenever it is an int64 and exact decryption otherwise, so callers see
    the same values and the same overflow errors. ``small=False`` skips straight to exact
    decryption (packed plaintexts are never int64-sized).
    """
    cts = list(ciphertexts)
    if len(cts) < PARALLEL_MIN_DECRYPT or pool.workers() == 1:
        return _decrypt_with(cts, consts) if small else _decrypt_exact(cts, consts)
    return pool.map_chunks(_decrypt_chunk, cts, PARALLEL_MIN_DECRYPT, int(consts.p), int(consts.q), small)
