"""Hash-to-curve and batched scalar multiplication through libsodium (PyNaCl's cffi lib).

Two groups, both over Curve25519:

* ``x25519``: a digest (BLAKE2b-256, personalised, with an item-type tag) is mapped to a
  point *on the curve* with Elligator 2 (RFC 9380 section 6.7.1,
  ``map_to_curve_elligator2_curve25519``, Z = 2; only the u-coordinate is kept), then
  multiplied with the X25519 ladder (``crypto_scalarmult``) by clamped 32-byte scalars.
  Why the map matters: a raw 32-byte string is a u-coordinate on the curve or on its
  quadratic twist (about half each), and scalar multiplication never leaves curve or
  twist, so a party that received a blinded point would learn that bit of the item.
  Every Elligator 2 output is on the curve (order 8·l), and a clamped scalar is a multiple
  of 8, so the first multiplication lands in the prime-order subgroup of order l: every
  point any party sends or receives is a uniform-looking element of that subgroup (DDH),
  and ``k1*(k2*P) == k2*(k1*P)``. No inverses: used by the 2-party protocols, the fastest
  path (one ``crypto_scalarmult`` per item and hop; the map costs one Jacobi symbol and
  a share of one batched inversion per item, a few microseconds in gmpy2).
  One Elligator 2 evaluation per item (RFC 9380's non-uniform ``encode_to_curve``) is
  enough for the DDH argument of ECDH PSI: Elligator 2 is invertible and every image point
  has exactly two preimages (r, -r), so a reduction can program the random oracle with
  points of its choice (Bernstein, Hamburg, Krasnova, Lange, CCS 2013); the image is only
  about half of the curve, but a blinded point k*H(x) is uniform in the subgroup.
  This replaces DESIGN.md's ristretto255 (same prime-order group, via another encoding):
  PyNaCl 1.6's cffi binds no ristretto255 function, and the X25519 ladder is ~2.3x faster
  than Edwards scalar multiplication.
* ``ed25519``: the same digest mapped to the prime-order subgroup with Elligator 2
  (``crypto_core_ed25519_from_uniform``); scalars are reduced mod the group order, so they
  can be inverted (``k * k^-1 = 1``). Used where a party must remove a temporary blinding
  (the N-party PSI), at about twice the cost per multiplication; also ElGamal (encrypt,
  blind-and-re-randomise, decrypt) for the N-party PSI's origin-hiding shuffle.

Batches are numpy ``(n, 32)`` uint8 arrays; the work runs in tight cffi loops on the crypto
thread pool (:mod:`mpc.crypto.pool`), a few chunks per worker: libsodium releases the GIL
in every call, so the threads multiply in parallel, and the Elligator map (gmpy2, holding
the GIL) runs in small blocks between one thread's multiplications, so it overlaps the
others'. Chunks are bytes handed to threads: nothing is pickled or copied to a process.
Nothing here hides anything by itself: the protocols decide what is sent, shuffled and
truncated. The map is not constant-time; it runs only on a party's own items, locally.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import gmpy2
import numpy as np

from mpc.crypto import pool

POINT_BYTES = 32
GROUPS = ("x25519", "ed25519")
_PERSON = b"gaotie-psi-v1"
# Type tags: an int 1, a str "1" and bytes b"1" hash to different points.
_TAGS = {"str": b"s", "bytes": b"b", "int": b"i"}
_EXACT = {str: "str", bytes: "bytes", int: "int"}
MIN_PARALLEL = 512  # below this a batch runs in the calling thread


# -- items -> digests -------------------------------------------------------------------

def item_kind(items: Sequence[Any] | np.ndarray) -> str:
    """The common type of ``items``: ``"str"``, ``"bytes"``, ``"int"`` or ``"empty"``.

    Raises ValueError for a None (naming its position) and TypeError for mixed or
    unsupported types (bool and float are refused: they are not identifiers).
    """
    if isinstance(items, np.ndarray):
        if items.ndim != 1:
            raise ValueError(f"items must be one-dimensional, got shape {items.shape}")
        if items.dtype.kind in "iu":
            return "int" if len(items) else "empty"
        if items.dtype.kind == "U":
            return "str" if len(items) else "empty"
        if items.dtype.kind == "S":
            return "bytes" if len(items) else "empty"
        items = items.tolist()
    exact = set(map(type, items))              # fast path: one exact type (no per-item loop)
    if len(exact) == 1 and (only := next(iter(exact))) in _EXACT:
        return _EXACT[only]
    kind = None
    for i, v in enumerate(items):
        if v is None:
            raise ValueError(f"item at position {i} is None")
        if isinstance(v, str):
            k = "str"
        elif isinstance(v, (bytes, bytearray, memoryview)):
            k = "bytes"
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            k = "int"
        else:
            raise TypeError(f"item at position {i} has type {type(v).__name__}; "
                            "items must be str, bytes or int")
        if kind is None:
            kind = k
        elif k != kind:
            raise TypeError(f"mixed item types: position 0 is {kind}, position {i} is {k}")
    return kind or "empty"


def _encode(v: Any, kind: str) -> bytes:
    if kind == "str":
        return v.encode("utf-8")
    if kind == "bytes":
        return bytes(v)
    return str(int(v)).encode("ascii")


def hash_items(items: Sequence[Any] | np.ndarray, kind: str | None = None) -> np.ndarray:
    """BLAKE2b-256 digests of ``items`` as an ``(n, 32)`` uint8 array.

    Domain-separated by a personalisation string and a type tag, so the same value under
    different types (``1``, ``"1"``, ``b"1"``) gives different digests. One BLAKE2b call
    per item through ``map`` (about 1 us each): hashlib keeps the GIL for inputs under
    2 KiB, so threads would not help; the OPRF PSI encodes short items without hashing
    (:mod:`protocols.psi.blocks`).
    """
    kind = kind or item_kind(items)
    n = len(items)
    out = np.empty((n, POINT_BYTES), dtype=np.uint8)
    if n == 0:
        return out
    tag = _TAGS[kind]
    base = hashlib.blake2b(digest_size=POINT_BYTES, person=_PERSON)
    base.update(tag)
    if isinstance(items, np.ndarray) and kind == "int":
        encoded = items.astype("S21").tolist()      # decimal digits, as _encode writes them (vectorised)
    else:
        seq = items.tolist() if isinstance(items, np.ndarray) else items
        if kind == "str":
            encoded = map(str.encode, seq)           # UTF-8, strict, as _encode
        elif kind == "bytes" and set(map(type, seq)) == {bytes}:
            encoded = seq
        else:
            encoded = [_encode(v, kind) for v in seq]
    copy = base.copy

    def digest(v: bytes) -> bytes:
        h = copy()
        h.update(v)
        return h.digest()

    out[:] = np.frombuffer(b"".join(map(digest, encoded)), dtype=np.uint8).reshape(n, POINT_BYTES)
    return out


# -- keys -------------------------------------------------------------------------------

def x25519_key() -> bytes:
    """A fresh clamped X25519 scalar from the OS CSPRNG."""
    k = bytearray(os.urandom(32))
    k[0] &= 248
    k[31] &= 127
    k[31] |= 64
    return bytes(k)


def _lib():
    from nacl._sodium import ffi, lib
    return ffi, lib


def ed25519_scalar() -> bytes:
    """A fresh uniform non-zero scalar mod the Ed25519 group order (CSPRNG)."""
    ffi, lib = _lib()
    while True:
        wide = ffi.from_buffer(os.urandom(64))
        out = ffi.new("unsigned char[32]")
        lib.crypto_core_ed25519_scalar_reduce(out, wide)
        s = bytes(ffi.buffer(out, 32))
        if any(s):
            return s


def ed25519_scalar_invert(s: bytes) -> bytes:
    """``s^-1`` mod the group order."""
    ffi, lib = _lib()
    out = ffi.new("unsigned char[32]")
    if lib.crypto_core_ed25519_scalar_invert(out, s) != 0:
        raise ValueError("scalar is not invertible")
    return bytes(ffi.buffer(out, 32))


def ed25519_scalar_mul(a: bytes, b: bytes) -> bytes:
    """``a * b`` mod the group order."""
    ffi, lib = _lib()
    out = ffi.new("unsigned char[32]")
    lib.crypto_core_ed25519_scalar_mul(out, a, b)
    return bytes(ffi.buffer(out, 32))


def new_key(group: str) -> bytes:
    """A fresh secret key for ``group``."""
    return x25519_key() if group == "x25519" else ed25519_scalar()


# -- Elligator 2 onto Curve25519 (RFC 9380 section 6.7.1) -------------------------------

_P = gmpy2.mpz(2**255 - 19)
_A = gmpy2.mpz(486662)           # Curve25519: v^2 = u^3 + A u^2 + u
_NEG_A = _P - _A
_LOW255 = (1 << 255) - 1


def _elligator2_u(data: bytes) -> bytes:
    """``map_to_curve_elligator2_curve25519`` (RFC 9380 section 6.7.1, Z = 2), u only.

    Each 32-byte row is read as X25519 and libsodium read a field element (little-endian,
    top bit ignored): r. Then x1 = -A / (1 + 2 r^2) (the denominator never vanishes: -1/2
    is not a square mod p), and u = x1 if x1^3 + A x1^2 + x1 is a square, else -x1 - A:
    exactly one of the two is, so u is on the curve, never on the twist. The inversions of
    the rows are batched (Montgomery's trick: one ``invert`` and three products per row).
    gmpy2 holds the GIL: callers map small blocks (:data:`MAP_BLOCK` rows) at a time.
    """
    frombytes = int.from_bytes
    rs = [gmpy2.mpz(frombytes(data[o:o + POINT_BYTES], "little") & _LOW255)
          for o in range(0, len(data), POINT_BYTES)]
    dens = [(2 * r * r + 1) % _P for r in rs]
    prefix = [gmpy2.mpz(1)] * len(dens)
    acc = gmpy2.mpz(1)
    for i, d in enumerate(dens):
        prefix[i] = acc
        acc = acc * d % _P
    inv = gmpy2.invert(acc, _P)      # 1 / (d_0 ... d_{n-1})
    out = bytearray(len(data))
    jacobi = gmpy2.jacobi
    for i in range(len(dens) - 1, -1, -1):
        x1 = _NEG_A * (inv * prefix[i] % _P) % _P      # -A / d_i
        inv = inv * dens[i] % _P
        if jacobi(x1 * (x1 * (x1 + _A) + 1), _P) < 0:
            x1 = _NEG_A - x1                           # -x1 - A
        out[POINT_BYTES * i:POINT_BYTES * (i + 1)] = x1.to_bytes(POINT_BYTES, "little")
    return bytes(out)


# -- batched group operations (run on the pool's threads) -------------------------------

def _mul_chunk(group: str, key: bytes, data: bytes) -> bytes:
    """``key * P`` for every 32-byte point of ``data`` (libsodium, GIL released per call)."""
    ffi, lib = _lib()
    n = len(data) // POINT_BYTES
    out = ffi.new("unsigned char[]", max(n, 1) * POINT_BYTES)
    inp = ffi.from_buffer(data)
    k = ffi.from_buffer(key)
    f = lib.crypto_scalarmult if group == "x25519" else lib.crypto_scalarmult_ed25519_noclamp
    for i in range(n):
        if f(out + POINT_BYTES * i, k, inp + POINT_BYTES * i) != 0:
            # Only a low-order input point gets here (probability ~2^-250 for a hash).
            raise ValueError(f"point {i} of the batch has low order")
    return bytes(ffi.buffer(out, n * POINT_BYTES))


MAP_BLOCK = 16  # rows mapped at a time, between libsodium calls that release the GIL


def _map_chunk(group: str, key: bytes, data: bytes) -> bytes:
    """Digests -> group points, then optionally ``key * point``.

    x25519 with a key maps :data:`MAP_BLOCK` rows, multiplies them, maps the next block...
    The map holds the GIL (~50 us a block) and every multiplication releases it, so on
    another thread a multiplication loop waiting for the GIL gets it within one block,
    not after the interpreter's 5 ms switch interval: the map of one thread overlaps the
    multiplications of the others.
    """
    step = MAP_BLOCK * POINT_BYTES
    if group == "x25519":
        if not key:
            return b"".join(_elligator2_u(data[o:o + step]) for o in range(0, len(data), step))
        ffi, lib = _lib()
        n = len(data) // POINT_BYTES
        out = ffi.new("unsigned char[]", max(n, 1) * POINT_BYTES)
        k = ffi.from_buffer(key)
        for o in range(0, len(data), step):
            inp = ffi.from_buffer(_elligator2_u(data[o:o + step]))
            dst = out + o
            for j in range(0, min(step, len(data) - o), POINT_BYTES):
                if lib.crypto_scalarmult(dst + j, k, inp + j) != 0:
                    raise ValueError(f"point {(o + j) // POINT_BYTES} of the batch has low order")
        return bytes(ffi.buffer(out, n * POINT_BYTES))
    ffi, lib = _lib()
    n = len(data) // POINT_BYTES
    out = ffi.new("unsigned char[]", max(n, 1) * POINT_BYTES)
    inp = ffi.from_buffer(data)
    for i in range(n):
        lib.crypto_core_ed25519_from_uniform(out + POINT_BYTES * i, inp + POINT_BYTES * i)
    data = bytes(ffi.buffer(out, n * POINT_BYTES))
    return _mul_chunk(group, key, data) if key else data


class Pending:
    """A batch being computed in the pool; ``result()`` returns the ``(n, width)`` array."""

    def __init__(self, parts: list[Future] | None, value: np.ndarray | None = None,
                 width: int = POINT_BYTES) -> None:
        self._parts = parts
        self._value = value
        self._width = width

    def result(self) -> np.ndarray:
        if self._value is None:
            data = b"".join(f.result() for f in self._parts or [])
            self._value = np.frombuffer(data, dtype=np.uint8).reshape(-1, self._width).copy()
            self._parts = None
        return self._value


CHUNKS_PER_WORKER = 4  # a few chunks per thread, so that threads finish together


def _submit(fn, group: str, key: bytes, rows: np.ndarray, min_parallel: int,
            width: int = POINT_BYTES, out_width: int = POINT_BYTES, *extra: Any) -> Pending:
    """Run ``fn(group, key, chunk_bytes, *extra)`` over ``rows`` cut into chunks on the pool.

    ``rows`` has ``width`` bytes per row and ``fn`` returns ``out_width`` bytes per row.
    """
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; use one of {GROUPS}")
    rows = np.ascontiguousarray(rows, dtype=np.uint8).reshape(-1, width)
    n = len(rows)
    k = pool.workers()
    if n < min_parallel or k == 1:
        out = fn(group, key, rows.tobytes(), *extra)
        return Pending(None, np.frombuffer(out, dtype=np.uint8).reshape(n, out_width).copy())
    chunks = k * CHUNKS_PER_WORKER if n >= k * CHUNKS_PER_WORKER * 256 else k
    size = -(-n // chunks)
    ex = pool.get_pool()
    parts = [ex.submit(fn, group, key, rows[i:i + size].tobytes(), *extra) for i in range(0, n, size)]
    return Pending(parts, width=out_width)


def submit_mul(group: str, key: bytes, points: np.ndarray, min_parallel: int = MIN_PARALLEL) -> Pending:
    """Start ``key * P`` for every row of ``points`` on the pool; returns a :class:`Pending`."""
    return _submit(_mul_chunk, group, key, points, min_parallel)


def scalar_mul(group: str, key: bytes, points: np.ndarray, min_parallel: int = MIN_PARALLEL) -> np.ndarray:
    """``key * P`` for every row of ``points`` (``(n, 32)`` uint8), in parallel."""
    return submit_mul(group, key, points, min_parallel).result()


def submit_hash_to_group(group: str, digests: np.ndarray, key: bytes = b"",
                         min_parallel: int = MIN_PARALLEL) -> Pending:
    """Start mapping digests to points of ``group`` (and multiplying by ``key`` if given)."""
    return _submit(_map_chunk, group, key, digests, min_parallel)


def hash_to_group(group: str, digests: np.ndarray, key: bytes = b"") -> np.ndarray:
    """Digests -> points of ``group`` (x25519: Elligator 2 onto the curve), times ``key``."""
    return submit_hash_to_group(group, digests, key).result()


# -- ElGamal in the Ed25519 prime-order group (the N-party PSI's shuffle) ------------------

CIPHERTEXT_BYTES = 2 * POINT_BYTES


def elgamal_keypair() -> tuple[bytes, bytes]:
    """A fresh ElGamal key: ``(s, Y = s*G)`` (``s`` from the CSPRNG)."""
    ffi, lib = _lib()
    s = ed25519_scalar()
    y = ffi.new("unsigned char[32]")
    lib.crypto_scalarmult_ed25519_base_noclamp(y, s)
    return s, bytes(ffi.buffer(y, 32))


def _elgamal_chunk(group: str, key: bytes, data: bytes, op: str, pub: bytes) -> bytes:
    """One ElGamal operation over the rows of ``data`` (``group`` is always ed25519).

    * ``encrypt`` (32-byte points M): ``(r*G, M + r*Y)``;
    * ``blind`` (64-byte ciphertexts): ``(key*c1 + r*G, key*c2 + r*Y)``, a fresh
      encryption of ``key*M``;
    * ``decrypt`` (64-byte ciphertexts, ``key`` = s): ``c2 - s*c1``.

    ``r`` is fresh per row (64 CSPRNG bytes reduced mod the group order).
    """
    ffi, lib = _lib()
    width = POINT_BYTES if op == "encrypt" else CIPHERTEXT_BYTES
    out_w = POINT_BYTES if op == "decrypt" else CIPHERTEXT_BYTES
    n = len(data) // width
    out = ffi.new("unsigned char[]", max(n, 1) * out_w)
    inp = ffi.from_buffer(data)
    k = ffi.from_buffer(key) if key else ffi.NULL
    y = ffi.from_buffer(pub) if pub else ffi.NULL
    wide = ffi.from_buffer(os.urandom(64 * n)) if op != "decrypt" else ffi.NULL
    r, rg, ry = (ffi.new("unsigned char[32]") for _ in range(3))
    kc = ffi.new("unsigned char[64]")
    mul, add = lib.crypto_scalarmult_ed25519_noclamp, lib.crypto_core_ed25519_add
    for i in range(n):
        src, dst = inp + width * i, out + out_w * i
        if op == "decrypt":
            bad = mul(ry, k, src) or lib.crypto_core_ed25519_sub(dst, src + POINT_BYTES, ry)
        else:
            lib.crypto_core_ed25519_scalar_reduce(r, wide + 64 * i)
            bad = lib.crypto_scalarmult_ed25519_base_noclamp(rg, r) or mul(ry, r, y)
            if op == "encrypt":
                ffi.memmove(dst, rg, POINT_BYTES)
                bad = bad or add(dst + POINT_BYTES, src, ry)
            else:
                bad = (bad or mul(kc, k, src) or mul(kc + POINT_BYTES, k, src + POINT_BYTES)
                       or add(dst, kc, rg) or add(dst + POINT_BYTES, kc + POINT_BYTES, ry))
        if bad:
            # Only a malformed or low-order input (or a 2^-250 accident) gets here.
            raise ValueError(f"row {i} of the batch is not a valid group element")
    return bytes(ffi.buffer(out, n * out_w))


def _elgamal(op: str, key: bytes, pub: bytes, rows: np.ndarray, min_parallel: int) -> np.ndarray:
    width = POINT_BYTES if op == "encrypt" else CIPHERTEXT_BYTES
    out_w = POINT_BYTES if op == "decrypt" else CIPHERTEXT_BYTES
    return _submit(_elgamal_chunk, "ed25519", key, rows, min_parallel, width, out_w, op, pub).result()


def elgamal_encrypt(pub: bytes, points: np.ndarray, min_parallel: int = MIN_PARALLEL) -> np.ndarray:
    """ElGamal encryptions ``(n, 64)`` of Ed25519 points ``(n, 32)`` under ``pub``."""
    return _elgamal("encrypt", b"", pub, points, min_parallel)


def elgamal_blind(pub: bytes, key: bytes, cts: np.ndarray, min_parallel: int = MIN_PARALLEL) -> np.ndarray:
    """Fresh encryptions of ``key * M`` from encryptions of ``M`` (unlinkable to the input)."""
    return _elgamal("blind", key, pub, cts, min_parallel)


def elgamal_decrypt(secret: bytes, cts: np.ndarray, min_parallel: int = MIN_PARALLEL) -> np.ndarray:
    """The points ``(n, 32)`` encrypted in ``cts`` ``(n, 64)`` under ``secret``'s public key."""
    return _elgamal("decrypt", secret, b"", cts, min_parallel)
