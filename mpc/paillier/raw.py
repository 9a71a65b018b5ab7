"""Raw Paillier arithmetic on integers mod n: the hazardous layer (phe's ``raw_encrypt``).

Nothing here knows about signs, floats or packing: plaintexts are integers in ``[0, n)``,
ciphertexts integers in ``(0, n²)``, and callers must range-check. Everything is gmpy2.

* ``g = n + 1``, so ``g^m = (1 + n)^m = 1 + m·n  (mod n²)``: no exponentiation for ``g^m``.
* DJN encryption (Damgård, Jurik, Nielsen, "A generalization of Paillier's public-key
  system with applications to electronic voting", IJIS 2010): ``h = -x² mod n``,
  ``h_s = h^n mod n²``, and ``E(m) = (1 + m·n) · h_s^r mod n²`` with a *short* random
  exponent ``r`` of :data:`DJN_EXPONENT_BITS` bits instead of a full ``r^n``. Security
  level: the exponent must resist generic short-exponent discrete-log attacks (Pollard's
  lambda/kangaroo, ``2^(bits/2)`` steps); the usual rule is 2κ bits for κ-bit security
  (Koshiba–Kurosawa, "Short exponent Diffie-Hellman problems", PKC 2004; NIST SP 800-56A
  sizes finite-field private exponents the same way). A 2048-bit n gives about 112-bit
  security (NIST SP 800-57); we use 320 bits = 2·128 + 64 bits of margin, so the exponent
  is a 160-bit problem, above both 112 and 128. (HEU's DJ implementation uses n/2 bits,
  more conservative and 3x slower; 448 bits would cost 1.4x.)
* One base per key. ``h_s`` belongs to the key: the key owner draws it
  (:func:`owner_base`) and it travels in the public key's wire form, so every party that
  encrypts or re-randomises under the key uses the same ``h_s``. (If each process drew its
  own, a peer's re-randomisation would keep the coset of the owner's ``<h_s>`` that the
  ciphertext lies in, and the owner, who knows p, could read it: e.g.
  ``F(c) = (c mod p)^((p-1)/l)`` for a small prime ``l | p-1`` survives whenever the peer's
  base is an l-th power mod p.)
* Re-randomisation (:func:`rerandomise`) hides a ciphertext even from the key owner, who
  knows p and q and can compute power-residue symbols and discrete logarithms mod p and q.
  Argument: every ciphertext gaotie makes under a key lies in the coset
  ``(1+n)^m · <h_s>`` of its plaintext m: fresh encryptions by construction, and
  homomorphic results too, since products, powers and plaintext additions of such
  elements are again of that form. Re-randomisation multiplies by ``h_s^R`` with ``R``
  uniform over :func:`full_exponent_bits` ``= |n| + 128`` bits (rounded up to 64). The
  order of ``h_s`` divides λ(n) < 2^|n|, so ``R mod ord(h_s)`` is within statistical
  distance ``ord(h_s) / 2^(|n|+128) < 2^-128`` of uniform, and the result is within
  2^-128 of uniform on the coset, whatever the input ciphertext was: no computational
  assumption, no bound on the observer's computing power. The short DJN exponent would
  not do: against the owner it is only computationally hiding (a discrete logarithm mod
  the 1024-bit p, within reach of the number field sieve at about 2^80). The full
  exponent costs about 7x a fresh encryption; fresh encryptions keep the short one.
* What key generation guarantees of the base (:mod:`mpc.paillier.keys`): p ≡ q ≡ 3 (mod 4),
  so ``h = -x²`` is a quadratic non-residue mod p and mod q, and :func:`owner_base` draws x
  again until h is not an l-th power mod p nor mod q for any odd prime ``l < 2^16``
  dividing p-1 or q-1. So ``<h_s>`` carries every small power-residue character and such a
  character of a re-randomised ciphertext is uniform, not constant. The hiding argument
  does not depend on it. Safe primes would give the whole structure but cost seconds per
  prime (measured: ~6 s for one 1024-bit safe prime against ~0.05 s for a prime ≡ 3 mod 4).
* Keys without an owner-made base (imported from phe, which has none): the base is
  derived from n by hashing (:func:`derived_base`), so every party importing the same phe
  key gets the same one. Their ciphertexts may carry phe's own ``r^n`` randomness, outside
  ``<h_s>``, so under such keys re-randomisation multiplies by a full ``r^n`` with ``r``
  uniform in Z_n* (:func:`rerandomise_textbook`): a uniformly random encryption of the same
  plaintext for any input ciphertext, about 7x slower again (what phe's obfuscation costs).
* ``h_s^r`` by Lim–Lee fixed-base combs (:class:`CombTable`; Lim, Lee, "More flexible
  exponentiation with precomputation", CRYPTO '94; with one digit per block it is the
  Brickell–Gordon–McCurley–Wilson table): the exponent's digits are random bytes, each
  selects one precomputed entry, so a 320-bit DJN exponent costs 40 multiplications mod n²
  and a full 2176-bit one (2048-bit n) 272 multiplications and 7 squarings. Tables: 40 ×
  256 entries (5.2 MB at 2048 bits) for encryption, 34 × 256 (4.5 MB) for re-randomisation,
  built once per key and process and cached.
* Decryption by CRT (as phe): ``m_p = L_p(c^(p-1) mod p²)·h_p mod p``, same for q, then
  recombine; ``h_p = L_p((1+n)^(p-1) mod p²)^(-1) mod p`` is precomputed. int64-sized
  plaintexts (the common case) need only the mod-p half, and 14 of them share one half
  decryption by homomorphic packing mod p² with a random linear check (see :func:`decrypt`).
* Threads: large batches are split over the shared crypto thread pool
  (:func:`mpc.crypto.pool.map_chunks`), and every chunk runs with gmpy2's
  ``allow_release_gil``, so each multiplication, reduction and powmod mod n² (or p²)
  releases the GIL and the chunks run on all cores at once.

What it reveals: nothing by itself; a raw ciphertext is only as hidden as its randomness.
Homomorphic results (products, powers) are *not* re-randomised here.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import gmpy2
from gmpy2 import mpz

from mpc.crypto import pool

T = TypeVar("T")

DJN_EXPONENT_BITS = 320
STATISTICAL_BITS = 128  # re-randomisation: |n| + 128 exponent bits, within 2^-128 of uniform
TEETH = 8  # exponent bits per comb digit: a digit is one random byte
PARALLEL_MIN = 16  # below this, handing chunks to pool threads costs more than it saves
DIRECT_MAX = 8  # re-randomising fewer ciphertexts than this without a table: plain powmods
SMALL_PRIME_BOUND = 1 << 16  # owner_base: characters of prime order below this are checked
SMALL_SLOT_BITS = 72  # batched decryption of int64 plaintexts: 64 bits + 8 guard bits per slot
SMALL_MIN_BATCH = 4


def releasing_gil(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` with gmpy2 releasing the GIL inside each big-number operation it makes.

    gmpy2's context flag ``allow_release_gil`` makes ``*``, ``%``, ``//`` and ``powmod`` on
    mpz drop the GIL around the GMP call, so pool threads running such chunks use every core.
    """
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with gmpy2.context(gmpy2.get_context(), allow_release_gil=True):
            return fn(*args, **kwargs)
    return run


def full_exponent_bits(n: int) -> int:
    """Exponent bits of a re-randomisation: ``|n| + 128``, rounded up to a multiple of 64."""
    step = TEETH * 8
    return -(-(mpz(n).bit_length() + STATISTICAL_BITS) // step) * step


class CombTable:
    """Powers ``base^R mod modulus`` for random ``R`` of ``exponent_bits`` bits (Lim–Lee comb).

    The exponent is cut into :data:`TEETH` pieces of ``a = exponent_bits / 8`` bits; digit
    ``t`` (a byte, ``0 <= t < a``) holds bit t of every piece, so ``base^R`` is a product of
    one precomputed entry per digit. Digits ``t = j·block + s`` of one block ``j`` share
    squarings: row j holds ``G_j[d] = Π_k base^(2^(k·a + j·block))^(bit k of d)``, and the
    entry of digit t is squared s times. Cost per power: ``a`` multiplications and
    ``block - 1`` squarings; storage ``a / block`` rows of 256 entries. ``block=1`` is the
    Brickell–Gordon–McCurley–Wilson table. Digits drawn uniformly give ``R`` uniform in
    ``[0, 2^exponent_bits)`` (digits ↔ exponent is a bijection, :meth:`exponent`).
    """

    def __init__(self, base: int, modulus: int, exponent_bits: int, block: int = 1) -> None:
        if exponent_bits <= 0 or exponent_bits % (TEETH * block):
            raise ValueError(f"exponent_bits must be a positive multiple of {TEETH * block}")
        self.modulus = mod = mpz(modulus)
        self.block = block
        self.digits = a = exponent_bits // TEETH
        steps = []  # base^(2^(i·block)) for i = 0 .. exponent_bits/block - 1
        b = mpz(base) % mod
        for _ in range(exponent_bits // block):
            steps.append(b)
            for _s in range(block):
                b = b * b % mod
        per_piece = a // block
        rows = []
        for j in range(per_piece):
            row = [mpz(1)] * 256
            for k in range(TEETH):
                row[1 << k] = steps[k * per_piece + j]  # base^(2^(k·a + j·block))
            for d in range(3, 256):
                low = d & -d
                if d != low:
                    row[d] = row[d ^ low] * row[low] % mod
            rows.append(row)
        self.rows = rows

    def power(self, digits: bytes) -> mpz:
        """``base^R`` for the exponent ``R`` whose digits (``self.digits`` bytes) are given."""
        mod, block, rows = self.modulus, self.block, self.rows
        acc = mpz(1)
        for s in range(block - 1, -1, -1):
            if s != block - 1:
                acc = acc * acc % mod
            for row, d in zip(rows, digits[s::block], strict=True):
                if d:
                    acc = acc * row[d] % mod
        return acc

    def exponent(self, digits: bytes) -> int:
        """The exponent ``R`` that :meth:`power` raises the base to for these digits."""
        a = self.digits
        return sum(1 << (k * a + t) for t, d in enumerate(digits) for k in range(TEETH) if d >> k & 1)

    def random_powers(self, count: int) -> list[mpz]:
        """``count`` values ``base^R`` with fresh uniform ``R`` (digits from the OS CSPRNG)."""
        a = self.digits
        rand = os.urandom(a * count)
        return [self.power(rand[i * a:(i + 1) * a]) for i in range(count)]


def _random_unit(n: mpz) -> mpz:
    """Uniform x in Z_n* (to 2^-128) from the OS CSPRNG."""
    while True:
        x = mpz(int.from_bytes(os.urandom((n.bit_length() + 7) // 8 + 16), "big")) % n
        if x > 1 and gmpy2.gcd(x, n) == 1:
            return x


@functools.cache
def _small_primes() -> tuple[int, ...]:
    return tuple(int(p) for p in range(3, SMALL_PRIME_BOUND, 2) if gmpy2.is_prime(p))


def owner_base(p: int, q: int) -> mpz:
    """The key owner's DJN base ``h_s = h^n mod n²``, ``h = -x² mod n``, x random (CSPRNG).

    x is drawn again until h is not an l-th power mod p nor mod q for every odd prime
    ``l < 2^16`` dividing p-1 or q-1 (each check fails with probability 1/l), so ``<h_s>``
    carries those power-residue characters; with p ≡ q ≡ 3 (mod 4), as key generation
    makes them, ``-x²`` is also a quadratic non-residue mod p and q.
    """
    p, q = mpz(p), mpz(q)
    n = p * q
    checks = [(r, (r - 1) // ell) for r in (p, q) for ell in _small_primes() if (r - 1) % ell == 0]
    while True:
        x = _random_unit(n)
        h = (-x * x) % n
        if all(gmpy2.powmod(h, e, r) != 1 for r, e in checks):
            return gmpy2.powmod(h, n, n * n)


@functools.lru_cache(maxsize=16)
def derived_base(n: int) -> mpz:
    """A DJN base for a key that has none (phe's): ``x`` from SHAKE-256 of n, ``(-x²)^n mod n²``.

    Deterministic, so every party that imports the same phe key uses the same base.
    """
    n = mpz(n)
    width = (n.bit_length() + 7) // 8
    counter = 0
    while True:
        seed = b"gaotie/paillier/derived-base/v1" + counter.to_bytes(4, "big") + int(n).to_bytes(width, "big")
        x = mpz(int.from_bytes(hashlib.shake_256(seed).digest(width + 16), "big")) % n
        if x > 1 and gmpy2.gcd(x, n) == 1:
            return gmpy2.powmod((-x * x) % n, n, n * n)
        counter += 1


# Per-process cache of comb tables, keyed by (n, h_s, kind): built once per key and process.
_TABLES: dict[tuple[int, int, str], CombTable] = {}
_TABLES_LOCK = threading.Lock()
_MAX_TABLES = 16


def _table(n: int, h_s: int, kind: str, create: bool = True) -> CombTable | None:
    key = (int(n), int(h_s), kind)
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is None and create:
            if len(_TABLES) >= _MAX_TABLES:
                _TABLES.pop(next(iter(_TABLES)))
            nsq = mpz(n) * mpz(n)
            if kind == "djn":
                table = CombTable(h_s, nsq, DJN_EXPONENT_BITS)
            else:
                table = CombTable(h_s, nsq, full_exponent_bits(n), block=8)
            _TABLES[key] = table
    return table


def table_for(n: int, h_s: int) -> CombTable:
    """The encryption table of ``h_s`` mod n² (320-bit DJN exponents), built on first use."""
    return _table(n, h_s, "djn")


def full_table_for(n: int, h_s: int) -> CombTable:
    """The re-randomisation table of ``h_s`` mod n² (full-length exponents), built on first use."""
    return _table(n, h_s, "full")


@releasing_gil
def _encrypt_chunk(plaintexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """Pool chunk: ``(1 + m·n) · h_s^r mod n²`` for each plaintext ``m`` in ``[0, n)``."""
    table = table_for(n, h_s)
    n = mpz(n)
    nsq = table.modulus
    masks = table.random_powers(len(plaintexts))
    return [(1 + mpz(m) * n) * s % nsq for m, s in zip(plaintexts, masks, strict=True)]


@releasing_gil
def _rerandomise_chunk(ciphertexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """Pool chunk: multiply each ciphertext by ``h_s^R``, R of full length."""
    table = full_table_for(n, h_s)
    nsq = table.modulus
    masks = table.random_powers(len(ciphertexts))
    return [mpz(c) * s % nsq for c, s in zip(ciphertexts, masks, strict=True)]


@releasing_gil
def _textbook_chunk(ciphertexts: Sequence[int], n: int) -> list[mpz]:
    """Pool chunk: multiply each ciphertext by ``r^n`` for a fresh uniform r in Z_n*."""
    n = mpz(n)
    nsq = n * n
    masks = gmpy2.powmod_base_list([_random_unit(n) for _ in ciphertexts], n, nsq)
    return [mpz(c) * s % nsq for c, s in zip(ciphertexts, masks, strict=True)]


def encrypt(plaintexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """DJN-encrypt raw plaintexts in ``[0, n)`` (caller range-checks), on the pool's threads."""
    return pool.map_chunks(_encrypt_chunk, list(plaintexts), PARALLEL_MIN, int(n), int(h_s))


def rerandomise(ciphertexts: Sequence[int], n: int, h_s: int) -> list[mpz]:
    """``c · h_s^R mod n²`` with R uniform over ``|n| + 128`` bits: same plaintext, and within
    2^-128 of uniform on the plaintext's coset ``(1+n)^m <h_s>`` (see the module docstring)."""
    cts = list(ciphertexts)
    if len(cts) < DIRECT_MAX and _table(n, h_s, "full", create=False) is None:
        # a few ciphertexts: plain powmods (GIL released) instead of building the table
        n, h_s = mpz(n), mpz(h_s)
        nsq = n * n
        exps = [mpz(int.from_bytes(os.urandom(full_exponent_bits(n) // 8), "big")) for _ in cts]
        return [mpz(c) * s % nsq for c, s in zip(cts, gmpy2.powmod_exp_list(h_s, exps, nsq), strict=True)]
    return pool.map_chunks(_rerandomise_chunk, cts, PARALLEL_MIN, int(n), int(h_s))


def rerandomise_textbook(ciphertexts: Sequence[int], n: int) -> list[mpz]:
    """``c · r^n mod n²``, r uniform in Z_n*: a uniformly random encryption of the same
    plaintext whatever the input's randomness (keys without an owner-made base)."""
    return pool.map_chunks(_textbook_chunk, list(ciphertexts), 2, int(n))


# -- homomorphic operations (not re-randomised: callers do that before anything leaves) --

def add(a: Sequence[int], b: Sequence[int], nsq: int) -> list[mpz]:
    """``E(x)·E(y) = E(x + y) mod n²``, element by element (equal lengths)."""
    return [mpz(x) * y % nsq for x, y in zip(a, b, strict=True)]


def add_plain(ciphertexts: Sequence[int], plaintexts: Sequence[int], n: int, nsq: int) -> list[mpz]:
    """``E(x)·(1 + m·n) = E(x + m) mod n²`` for raw plaintexts m in ``[0, n)`` (equal lengths):
    ``(1 + n)^m = 1 + m·n mod n²``, so no exponentiation."""
    return [mpz(c) * (1 + mpz(m) * n) % nsq for c, m in zip(ciphertexts, plaintexts, strict=True)]


def mul_plain(ciphertexts: Sequence[int], scalars: Sequence[int], nsq: int) -> list[mpz]:
    """``E(x)^k = E(k·x) mod n²``: one scalar for all, or one per ciphertext."""
    if len(scalars) == 1:
        k = scalars[0]
        return [gmpy2.powmod(c, k, nsq) for c in ciphertexts]
    return [gmpy2.powmod(c, k, nsq) for c, k in zip(ciphertexts, scalars, strict=True)]


def product(ciphertexts: Sequence[int], nsq: int) -> mpz:
    """``Π E(x_i) = E(Σ x_i) mod n²`` (an encryption of 0 for no ciphertexts)."""
    acc = mpz(1)
    for c in ciphertexts:
        acc = acc * c % nsq
    return acc


@releasing_gil
def _horner_chunk(groups: Sequence[Sequence[int]], shift: int, nsq: mpz) -> list[mpz]:
    e = mpz(1) << shift
    out = []
    for cts in groups:
        acc = mpz(cts[-1])
        for c in reversed(cts[:-1]):
            acc = gmpy2.powmod(acc, e, nsq) * c % nsq
        out.append(acc)
    return out


def horner_pack(groups: Sequence[Sequence[int]], shift: int, n: int) -> list[mpz]:
    """Each group ``c_0..c_t`` packed into ``Π c_i^(2^(shift·i)) mod n²`` (plaintext
    ``Σ m_i·2^(shift·i)``: slot i at bit ``shift·i``), on the pool's threads."""
    return pool.map_chunks(_horner_chunk, list(groups), 4, shift, mpz(n) * mpz(n))


@releasing_gil
def _products_chunk(groups: Sequence[Sequence[tuple[int, int]]], nsq: mpz) -> list[mpz]:
    out = []
    for pairs in groups:
        acc = mpz(1)
        for c, e in pairs:
            acc = acc * gmpy2.powmod(c, e, nsq) % nsq
        out.append(acc)
    return out


def products_of_powers(groups: Sequence[Sequence[tuple[int, int]]], n: int) -> list[mpz]:
    """For each group of ``(ciphertext, exponent)`` pairs, ``Π c^e mod n²`` (an encryption of
    ``Σ e·m``), on the pool's threads. Not re-randomised."""
    return pool.map_chunks(_products_chunk, list(groups), 4, mpz(n) * mpz(n))


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


@releasing_gil
def _decrypt_chunk(batches: Sequence[Sequence[int]], k: CrtConstants, small: bool) -> list[mpz]:
    """Pool chunk: decrypt consecutive batches (whole batches of the int64 path per chunk)."""
    cts = [c for batch in batches for c in batch]
    return _decrypt_with(cts, k) if small else _decrypt_exact(cts, k)


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
    size = max(1, (consts.p.bit_length() - 1) // SMALL_SLOT_BITS) if small else 1
    batches = [cts[i:i + size] for i in range(0, len(cts), size)]  # chunks never split a batch
    return pool.map_chunks(_decrypt_chunk, batches, max(2, PARALLEL_MIN // size), consts, small)
