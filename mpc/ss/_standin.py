"""SCRATCH (to delete when h/compare and h/shuffle are merged): stand-ins with the APIs
those branches add. ``shuffle(jointly=True)`` here is NOT oblivious (both parties derive
the permutation from a joint seed); ``all_zero_xor`` is a plain AND tree."""

from __future__ import annotations

import os

import numpy as np

from mpc.crypto.random import PRG
from mpc.ss.beaver import and_words


def _pack(bits: np.ndarray) -> np.ndarray:
    flat = bits.astype(np.uint8).ravel()
    flat = np.concatenate([flat, np.zeros(-flat.size % 64, np.uint8)])
    return np.packbits(flat, bitorder="little").view(np.uint64)


def all_zero_xor(ctx, words: np.ndarray) -> np.ndarray:
    words = np.asarray(words, dtype=np.uint64).ravel()
    n = words.size
    w = ~words if ctx.rank == 0 else words.copy()
    bits = np.unpackbits(w.view(np.uint8), bitorder="little").reshape(n, 64)
    width = 64
    while width > 1:
        half = width // 2
        (z,) = and_words(ctx, [(_pack(bits[:, :half]), _pack(bits[:, half:]))])
        bits = np.unpackbits(z.view(np.uint8), bitorder="little")[:n * half].reshape(n, half)
        width = half
    return bits[:, 0].astype(np.uint64)


def shuffle(ctx, x: np.ndarray, jointly: bool = False) -> np.ndarray:
    assert jointly
    peer = ctx.peers[0]
    mine = os.urandom(16)
    ctx.send(peer, np.frombuffer(mine, np.uint8))
    theirs = ctx.recv(peer).tobytes()
    seed = bytes(a ^ b for a, b in zip(mine, theirs, strict=True))
    prg = PRG(seed)
    keys = prg.uint64(x.shape[-1])
    perm = np.argsort(keys, kind="stable")
    mask = prg.uint64(x.shape)
    out = x[:, perm]
    return out + mask if ctx.rank == 0 else out - mask
