"""Hash-to-curve and batched scalar multiplication through libsodium (PyNaCl's cffi lib).

Two groups, both over Curve25519:

* ``x25519``: items hash (BLAKE2b-256, personalised, with an item-type tag) to a 32-byte
  u-coordinate, as SecretFlow does; keys are clamped 32-byte X25519 scalars. Clamped scalars
  are multiples of 8, so ``k1*(k2*P) == k2*(k1*P)`` for every u (curve or twist). No
  inverses: used by the 2-party PSI, the fastest path (one ``crypto_scalarmult`` per item).
* ``ed25519``: the same digest mapped to the prime-order subgroup with Elligator 2
  (``crypto_core_ed25519_from_uniform``); scalars are reduced mod the group order, so they
  can be inverted (``k * k^-1 = 1``). Used where a party must remove a temporary blinding
  (the N-party PSI), at about twice the cost per multiplication.

Batches are numpy ``(n, 32)`` uint8 arrays; the work runs in a tight cffi loop in the
crypto thread pool (:mod:`mpc.crypto.pool`; libsodium releases the GIL), one chunk per worker. Nothing here
hides anything by itself: the protocols decide what is sent, shuffled and truncated.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from mpc.crypto import pool

POINT_BYTES = 32
GROUPS = ("x25519", "ed25519")
_PERSON = b"gaotie-psi-v1"
# Type tags: an int 1, a str "1" and bytes b"1" hash to different points.
_TAGS = {"str": b"s", "bytes": b"b", "int": b"i"}
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
    different types (``1``, ``"1"``, ``b"1"``) gives different digests.
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
        encoded = [_encode(v, kind) for v in seq]
    buf = bytearray(n * POINT_BYTES)
    for i, v in enumerate(encoded):
        h = base.copy()
        h.update(v)
        buf[i * POINT_BYTES:(i + 1) * POINT_BYTES] = h.digest()
    out[:] = np.frombuffer(bytes(buf), dtype=np.uint8).reshape(n, POINT_BYTES)
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


# -- batched group operations (run in workers) -----------------------------------------

def _mul_chunk(group: str, key: bytes, data: bytes) -> bytes:
    """``key * P`` for every 32-byte point of ``data`` (worker function)."""
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


def _map_chunk(group: str, key: bytes, data: bytes) -> bytes:
    """Digests -> group points, then optionally ``key * point`` (worker function)."""
    if group == "ed25519":
        ffi, lib = _lib()
        n = len(data) // POINT_BYTES
        out = ffi.new("unsigned char[]", max(n, 1) * POINT_BYTES)
        inp = ffi.from_buffer(data)
        for i in range(n):
            lib.crypto_core_ed25519_from_uniform(out + POINT_BYTES * i, inp + POINT_BYTES * i)
        data = bytes(ffi.buffer(out, n * POINT_BYTES))
    return _mul_chunk(group, key, data) if key else data


class Pending:
    """A batch being computed in the pool; ``result()`` returns the ``(n, 32)`` array."""

    def __init__(self, parts: list[Future] | None, value: np.ndarray | None = None) -> None:
        self._parts = parts
        self._value = value

    def result(self) -> np.ndarray:
        if self._value is None:
            data = b"".join(f.result() for f in self._parts or [])
            self._value = np.frombuffer(data, dtype=np.uint8).reshape(-1, POINT_BYTES).copy()
            self._parts = None
        return self._value


def _submit(fn, group: str, key: bytes, points: np.ndarray, min_parallel: int) -> Pending:
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; use one of {GROUPS}")
    points = np.ascontiguousarray(points, dtype=np.uint8).reshape(-1, POINT_BYTES)
    n = len(points)
    k = pool.workers()
    if n < min_parallel or k == 1:
        out = fn(group, key, points.tobytes())
        return Pending(None, np.frombuffer(out, dtype=np.uint8).reshape(-1, POINT_BYTES).copy())
    size = -(-n // k)
    ex = pool.get_pool()
    parts = [ex.submit(fn, group, key, points[i:i + size].tobytes()) for i in range(0, n, size)]
    return Pending(parts)


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
    """Digests -> points of ``group`` (x25519: the digest is the u-coordinate), times ``key``."""
    return submit_hash_to_group(group, digests, key).result()
