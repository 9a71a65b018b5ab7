"""SCRATCH (to delete when h/shuffle is merged): a stand-in with the API that branch adds.
``shuffle(jointly=True)`` here is NOT oblivious (both parties derive the permutation from
a joint seed)."""

from __future__ import annotations

import os

import numpy as np

from mpc.crypto.random import PRG


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
