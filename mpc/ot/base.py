"""Base oblivious transfers: Chou-Orlandi "simplest OT" in the prime-order subgroup of Ed25519.

Chou and Orlandi, "The Simplest Protocol for Oblivious Transfer" (Latincrypt 2015), random
1-out-of-2 OT, all ``n`` OTs in one round each way, through libsodium (PyNaCl's cffi lib):

    sender:   a <- Z_l,  A = a G                          -> A
    receiver: b_i <- Z_l, B_i = b_i G + c_i A             -> B_1..B_n
    sender:   k0_i = H(i, A, B_i, a B_i),  k1_i = H(i, A, B_i, a B_i - a A)
    receiver: k_i  = H(i, A, B_i, b_i A)   (= k{c_i}_i)

``G`` generates the prime-order subgroup (order ``l``); scalars are reduced mod ``l`` and
non-zero. Every received point is checked with ``crypto_core_ed25519_is_valid_point``
(canonical, on the curve, in the main subgroup, not of small order), so the cofactor-8
points of Ed25519 never enter. ``H`` is BLAKE2b-128 personalised for this use.

Security (semi-honest): the receiver's ``B_i`` is uniform in the group whatever ``c_i``
(``b_i`` is uniform), so the sender learns nothing about the choices; the receiver cannot
compute ``a (B_i - c_i A) - ...`` for the other message without solving CDH (H a random
oracle), so ``k{1-c_i}_i`` stays pseudorandom to it. 128-bit security (Ed25519's group).
Only OT extension's ~128 base OTs per session run here, so the loop over points in Python
costs a few milliseconds.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from nacl._sodium import ffi, lib

from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.runtime.errors import ProtocolViolation

POINT = 32
KEY = 16
_PERSON = b"gaotie-base-ot"


def _scalar() -> bytes:
    """A uniform non-zero scalar mod the group order (64 random bytes reduced)."""
    out = ffi.new("unsigned char[32]")
    while True:
        lib.crypto_core_ed25519_scalar_reduce(out, os.urandom(64))
        s = bytes(ffi.buffer(out, 32))
        if any(s):
            return s


def _base_mul(s: bytes) -> bytes:
    out = ffi.new("unsigned char[32]")
    if lib.crypto_scalarmult_ed25519_base_noclamp(out, s) != 0:
        raise ValueError("scalar multiplication of the base point failed")
    return bytes(ffi.buffer(out, 32))


def _mul(s: bytes, p: bytes) -> bytes:
    out = ffi.new("unsigned char[32]")
    if lib.crypto_scalarmult_ed25519_noclamp(out, s, p) != 0:
        raise ValueError("scalar multiplication gave the identity")
    return bytes(ffi.buffer(out, 32))


def _add(p: bytes, q: bytes, subtract: bool = False) -> bytes:
    out = ffi.new("unsigned char[32]")
    f = lib.crypto_core_ed25519_sub if subtract else lib.crypto_core_ed25519_add
    if f(out, p, q) != 0:
        raise ValueError("point addition failed")
    return bytes(ffi.buffer(out, 32))


def _key(i: int, a: bytes, b: bytes, p: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=KEY, person=_PERSON)
    h.update(i.to_bytes(8, "little") + a + b + p)
    return h.digest()


def _points(peer: str, value, n: int, what: str) -> list[bytes]:
    """A received ``(n, 32)`` uint8 array of valid subgroup points, as a list of bytes."""
    value = expect(peer, value, np.uint8, (n, POINT), what)
    pts = [bytes(row) for row in value]
    for p in pts:
        if lib.crypto_core_ed25519_is_valid_point(p) != 1:
            raise ProtocolViolation(f"party {peer!r} sent {what} that is not a point of the "
                                    "prime-order subgroup")
    return pts


def send_random(ctx: Context, peer: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sender of ``n`` random OTs with ``peer``: both keys of each, two ``(n, 16)`` uint8 arrays."""
    a = _scalar()
    big_a = _base_mul(a)
    ctx.send(peer, np.frombuffer(big_a, dtype=np.uint8).reshape(1, POINT))
    bs = _points(peer, ctx.recv(peer), n, "base-OT receiver points")
    aa = _mul(a, big_a)
    k0 = np.empty((n, KEY), dtype=np.uint8)
    k1 = np.empty((n, KEY), dtype=np.uint8)
    for i, b in enumerate(bs):
        ab = _mul(a, b)
        k0[i] = np.frombuffer(_key(i, big_a, b, ab), dtype=np.uint8)
        k1[i] = np.frombuffer(_key(i, big_a, b, _add(ab, aa, subtract=True)), dtype=np.uint8)
    return k0, k1


def receive_random(ctx: Context, peer: str, choices: np.ndarray) -> np.ndarray:
    """Receiver of ``len(choices)`` random OTs: key ``choices[i]`` of each, ``(n, 16)`` uint8."""
    choices = np.asarray(choices, dtype=bool).ravel()
    n = len(choices)
    big_a = _points(peer, ctx.recv(peer), 1, "base-OT sender point")[0]
    bs, points = [], np.empty((n, POINT), dtype=np.uint8)
    for i, c in enumerate(choices.tolist()):
        b = _scalar()
        p = _base_mul(b)
        if c:
            p = _add(p, big_a)
        bs.append(b)
        points[i] = np.frombuffer(p, dtype=np.uint8)
    ctx.send(peer, points)
    out = np.empty((n, KEY), dtype=np.uint8)
    for i, b in enumerate(bs):
        out[i] = np.frombuffer(_key(i, big_a, points[i].tobytes(), _mul(b, big_a)), dtype=np.uint8)
    return out
