"""KKRT 1-out-of-N OT (batched, related-key OPRF) on IKNP.

Kolesnikov, Kumaresan, Rosulek, Trieu, "Efficient Batched Oblivious PRF with Applications
to Private Set Intersection" (CCS 2016), semi-honest. The 128-bit choice string of IKNP
becomes a codeword C(x) of a pseudo-random code of width k = 512 (4 AES-128 blocks):

* setup: the OPRF *sender* draws s in {0,1}^512 and receives 512 random OTs with
  choices s from an IKNP session in which it is the extension receiver (so the base
  OTs underneath are only 128); the OPRF receiver gets both seeds of each. The
  sender also draws the code: C(x) = AES_c0(x) || AES_c1(x) || AES_c2(x) || AES_c3(x)
  on a 128-bit input x, and sends the four keys (the code protects the sender, so the
  sender picks it).
* a batch of m OPRF instances with inputs r_i (receiver -> sender, one 512 x m bit
  matrix): u^j = G(k_j^0) xor G(k_j^1) xor C(r)^j; the sender's rows are
  q_i = t_i xor (C(r_i) and s).
* outputs: the receiver gets F(i, r_i) = H(i, t_i); the sender can compute
  F(i, x) = H(i, q_i xor (C(x) and s)) for every x, and F(i, x) = F(i, r_i) iff x = r_i.
  H is :func:`mpc.ot.hashing.wide_hash`, tweaked by the instance's index in the session.

Parameters: for x != r the codewords differ in about 256 of 512 bits; fewer than 128
differ with probability below exp(-2 * 128^2 / 512) ~ 2^-92 per pair (Hoeffding), so over
2^50 pairs (two sets of 2^24 items, 3 hashes) every pair keeps at least kappa = 128 unknown
secret bits except with probability 2^-42: 128-bit computational and 40-bit statistical
security (KKRT, section 4 and Table 2, choose 424-448; 512 fills four AES blocks).

What each side sees: the sender sees U, pseudorandom (PRG-masked) whatever the inputs;
the receiver sees only the code keys. The receiver learns F(i, r_i) and nothing about
F(i, x) for x != r_i (correlation robustness of H; the sender's s stays hidden).
"""

from __future__ import annotations

import os

import numpy as np

from mpc.crypto.random import PRG
from mpc.ot.bits import pad_rows, transpose
from mpc.ot.extension import IknpReceiver, IknpSender, prg_columns, random_bits
from mpc.ot.hashing import BLOCK, ecb, wide_hash
from mpc.ot.wire import expect

WIDTH = 512              # code width k in bits
WIDTH_BYTES = WIDTH // 8
_CODE_BLOCKS = WIDTH // 128


class Code:
    """The pseudo-random code C: 128-bit inputs -> 512-bit codewords (four AES-128 keys)."""

    def __init__(self, keys: np.ndarray) -> None:
        self.keys = [bytes(k) for k in keys]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Codewords of the rows of ``x`` ((n, 16) uint8) as (n, 64) uint8."""
        out = np.empty((len(x), WIDTH_BYTES), dtype=np.uint8)
        for k, key in enumerate(self.keys):
            out[:, k * BLOCK:(k + 1) * BLOCK] = ecb(key, x)
        return out


class KkrtSender:
    """The OPRF key holder of a KKRT session with ``peer``: evaluates F(i, x) for any x."""

    def __init__(self, ctx, peer: str, iknp: IknpReceiver | None = None) -> None:
        """Set up with ``peer`` (which builds a :class:`KkrtReceiver`); ``iknp``: an IKNP
        session in which this party is the receiver, for example :func:`session`'s, to
        reuse its base OTs (a fresh one by default)."""
        self.ctx, self.peer = ctx, peer
        bits = random_bits(WIDTH)
        self._s_bits = bits
        self.s = np.packbits(bits, bitorder="little")          # (64,) uint8
        seeds = (iknp or IknpReceiver(ctx, peer)).random(bits)
        self._prgs = [PRG(bytes(k)) for k in seeds]
        keys = np.frombuffer(os.urandom(_CODE_BLOCKS * BLOCK), dtype=np.uint8).reshape(_CODE_BLOCKS, BLOCK)
        ctx.send(peer, keys)
        self.code_keys = keys                                   # (4, 16) uint8, public to the peer
        self.code = Code(keys)
        self.count = 0

    def receive(self, m: int) -> tuple[np.ndarray, int]:
        """One batch of ``m`` instances: rows q_i ((m, 64) uint8) and the first instance's index."""
        padded = pad_rows(m)
        u = expect(self.peer, self.ctx.recv(self.peer), np.uint8, (WIDTH, padded // 8),
                   "the KKRT matrix")
        q = prg_columns(self._prgs, padded // 8)
        q[self._s_bits] ^= u[self._s_bits]
        first, self.count = self.count, self.count + padded
        return transpose(q)[:m], first

    def evaluate(self, q: np.ndarray, index: np.ndarray, x: np.ndarray) -> np.ndarray:
        """F(index[i], x[i]) = H(index, q xor (C(x) and s)) for rows ``q`` of those instances."""
        return sender_evaluate(self.code_keys, self.s, q, index, x)


def sender_evaluate(code_keys: np.ndarray, s: np.ndarray, q: np.ndarray, index: np.ndarray,
                    x: np.ndarray) -> np.ndarray:
    """The sender's F(index[i], x[i]) = H(index, q xor (C(x) and s)) from arrays alone (the
    code's keys (4, 16), the secret s (64,), rows q of those instances (n, 64)): a pure
    function, so the sender's executor may run it on any of its own workers
    (:mod:`mpc.runtime.executor`). ``s`` and ``q`` are the sender's OPRF key: whoever holds
    them can evaluate F on any input."""
    c = Code(code_keys)(x)
    np.bitwise_and(c, s, out=c)
    np.bitwise_xor(c, q, out=c)
    return wide_hash(c, index)


class KkrtReceiver:
    """The OPRF input holder of a KKRT session with ``peer``."""

    def __init__(self, ctx, peer: str, iknp: IknpSender | None = None) -> None:
        """Set up with ``peer`` (which builds a :class:`KkrtSender`); ``iknp``: an IKNP
        session in which this party is the sender (a fresh one by default)."""
        self.ctx, self.peer = ctx, peer
        k0, k1 = (iknp or IknpSender(ctx, peer)).random(WIDTH)
        self._prg0 = [PRG(bytes(k)) for k in k0]
        self._prg1 = [PRG(bytes(k)) for k in k1]
        self.code = Code(expect(peer, ctx.recv(peer), np.uint8, (_CODE_BLOCKS, BLOCK), "the code keys"))
        self.count = 0

    def evaluate(self, r: np.ndarray) -> tuple[np.ndarray, int]:
        """Send one batch for inputs ``r`` ((m, 16) uint8); F(i, r_i) as (m, 16) and the first index."""
        m, padded = len(r), pad_rows(len(r))
        rows = np.zeros((padded, WIDTH_BYTES), dtype=np.uint8)
        rows[:m] = self.code(r)
        u = transpose(rows)                       # (512, padded / 8): the codewords as columns
        t = prg_columns(self._prg0, padded // 8)
        u ^= t
        u ^= prg_columns(self._prg1, padded // 8)
        self.ctx.send(self.peer, u)
        first, self.count = self.count, self.count + padded
        out = wide_hash(transpose(t)[:m], np.arange(first, first + m, dtype=np.uint64))
        return out, first
