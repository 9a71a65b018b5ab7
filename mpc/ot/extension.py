"""IKNP OT extension: millions of 1-out-of-2 OTs from 128 base OTs and AES.

Ishai, Kilian, Nissim, Petrank, "Extending Oblivious Transfers Efficiently" (CRYPTO 2003),
semi-honest, with kappa = 128 (computational security of AES-128 and of the base OTs):

* setup: the extension *sender* draws Delta in {0,1}^128 and is the *receiver* of 128
  base OTs (:mod:`mpc.ot.base`) with choices Delta, getting seeds k_j^{Delta_j}; the
  extension receiver gets both seeds k_j^0, k_j^1. Each seed keys an AES-128-CTR PRG
  (the keystream of :class:`mpc.crypto.random.PRG`, run by :class:`mpc.ot.aes.CtrStream`
  without the GIL) whose stream continues across batches.
* a batch of m OTs with choice bits r (one message, receiver -> sender): the receiver
  sends the 128 x m bit matrix U with columns u^j = G(k_j^0) xor G(k_j^1) xor r; the
  sender computes q^j = G(k_j^{Delta_j}) xor Delta_j u^j. Transposed into rows
  (:func:`mpc.ot.bits.transpose`): q_i = t_i xor r_i Delta, where t_i are the rows of
  G(k^0), which the receiver holds.
* outputs are hashed with the tweakable correlation-robust hash of
  :func:`mpc.ot.hashing.tccr` (tweak = the OT's index in the session): the sender gets
  m0_i = H(i, q_i), m1_i = H(i, q_i xor Delta); the receiver gets m{r_i}_i = H(i, t_i).

What each side sees: the sender sees U, each column masked by the PRG stream of a seed
it does not hold (k_j^{1 - Delta_j}), so U is pseudorandom whatever r. The receiver sees
nothing from the sender in a random OT; m{1-r_i}_i = H(i, t_i xor Delta) is pseudorandom
to it as Delta is unknown (correlation robustness). Chosen-message and correlated OT add
one sender -> receiver message of masked values. Batches are padded to a multiple of 128
OTs. The sessions are directional: to extend OTs the other way, open the pair the other
way round.
"""

from __future__ import annotations

import os

import numpy as np

from mpc.crypto.random import PRG, expand_rows
from mpc.ot import base
from mpc.ot.aes import CtrStream, fill_rows
from mpc.ot.bits import pad_rows, transpose
from mpc.ot.hashing import BLOCK, tccr
from mpc.ot.wire import expect
from mpc.runtime.context import Context

KAPPA = 128


def random_bits(n: int) -> np.ndarray:
    """``n`` uniform choice bits (bool array) from the OS CSPRNG."""
    return (np.frombuffer(os.urandom(n), dtype=np.uint8) & 1).astype(bool)


def prg_columns(prgs: list[PRG] | list[CtrStream], nbytes: int) -> np.ndarray:
    """The next ``nbytes`` of each PRG as the rows of a (len(prgs), nbytes) bit matrix."""
    if prgs and isinstance(prgs[0], CtrStream):
        return fill_rows(prgs, np.empty((len(prgs), nbytes), dtype=np.uint8))
    return expand_rows(prgs, nbytes)


def _pad(rows: np.ndarray, first: int, nbytes: int) -> np.ndarray:
    """``nbytes`` of hash output per row: H(i, row) blocks with tweaks (i, 0), (i, 1)..."""
    n = len(rows)
    idx = np.arange(first, first + n, dtype=np.uint64)
    blocks = -(-nbytes // BLOCK)
    if blocks == 1:
        return tccr(rows, idx)[:, :nbytes]
    if first + n >= 1 << 56:
        raise ValueError("OT session exhausted (2^56 OTs)")
    outs = [tccr(rows, idx | (np.uint64(k) << np.uint64(56))) for k in range(blocks)]
    return np.concatenate(outs, axis=1)[:, :nbytes]


_TILE = 1024  # rows per xor_delta stripe: numpy's inner loop runs over 16 KiB, not 16 bytes


def xor_delta(rows: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``rows ^= delta`` in place for C-contiguous (m, 16) uint8 rows (one 128-bit Delta):
    stripes of ``_TILE`` rows against Delta repeated, so the loop is long and vectorised."""
    if not rows.flags.c_contiguous or rows.shape[1:] != (BLOCK,):
        raise ValueError("xor_delta needs C-contiguous (m, 16) uint8 rows")
    d = np.ascontiguousarray(delta, dtype=np.uint8).view(np.uint64)
    words = rows.view(np.uint64).reshape(-1)
    full = len(rows) - len(rows) % _TILE
    if full:
        words[:2 * full].reshape(-1, 2 * _TILE).__ixor__(np.tile(d, _TILE))
    if len(rows) > full:
        words[2 * full:].reshape(-1, 2).__ixor__(d)
    return rows


def _as_words(x: np.ndarray, m: int) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint64 or x.shape[:1] != (m,):
        raise TypeError(f"correlations must be uint64 with {m} rows, got {x.dtype} {x.shape}")
    return x.reshape(m, -1)


class IknpSender:
    """The extension sender of a session with ``peer`` (holds Delta; gets both messages)."""

    def __init__(self, ctx, peer: str) -> None:
        self.ctx, self.peer = ctx, peer
        bits = random_bits(KAPPA)
        self.delta = np.packbits(bits, bitorder="little")            # (16,) uint8
        self._delta_bits = bits
        self._prgs = [CtrStream(bytes(k)) for k in base.receive_random(ctx, peer, bits)]
        self.count = 0  # OTs extended so far (the tweak of the next one)

    def extend(self, m: int) -> tuple[np.ndarray, int]:
        """Receive one batch: the rows q_i ((m, 16) uint8) and the index of the first OT."""
        padded = pad_rows(m)
        u = expect(self.peer, self.ctx.recv(self.peer), np.uint8, (KAPPA, padded // 8),
                   "the OT-extension matrix")
        q = prg_columns(self._prgs, padded // 8)
        for j in np.flatnonzero(self._delta_bits):   # q^j = G(k_j) xor Delta_j u^j, in place
            q[j] ^= u[j]
        first, self.count = self.count, self.count + padded
        return transpose(q)[:m], first

    def random(self, m: int, nbytes: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
        """``m`` random OTs: (m0, m1), each (m, nbytes) uint8."""
        q, first = self.extend(m)
        p0 = _pad(q, first, nbytes)
        return p0, _pad(xor_delta(q, self.delta), first, nbytes)

    def chosen(self, m0: np.ndarray, m1: np.ndarray) -> None:
        """Chosen-message OT: the receiver gets m0[i] or m1[i] ((m, L) uint8 each)."""
        m0, m1 = np.asarray(m0, dtype=np.uint8), np.asarray(m1, dtype=np.uint8)
        if m0.shape != m1.shape or m0.ndim != 2:
            raise ValueError(f"m0 and m1 must be (m, L) arrays of one shape, got {m0.shape}, {m1.shape}")
        p0, p1 = self.random(len(m0), m0.shape[1])
        self.ctx.send(self.peer, np.stack([p0 ^ m0, p1 ^ m1]))

    def correlated(self, x: np.ndarray) -> np.ndarray:
        """Correlated OT over Z_2^64: returns a; the receiver gets a + r_i x_i (mod 2^64).

        ``x`` is (m,) or (m, w) uint64 (w words per OT); ``a`` has the same shape.
        """
        shape = np.shape(x)
        x = _as_words(x, shape[0])
        p0, p1 = self.random(len(x), 8 * x.shape[1])
        a = p0.view(np.uint64)
        self.ctx.send(self.peer, a + x - p1.view(np.uint64))  # uint64 arithmetic wraps mod 2^64
        return a.reshape(shape)


class IknpReceiver:
    """The extension receiver of a session with ``peer`` (chooses; gets one message)."""

    def __init__(self, ctx, peer: str) -> None:
        self.ctx, self.peer = ctx, peer
        k0, k1 = base.send_random(ctx, peer, KAPPA)
        self._prg0 = [CtrStream(bytes(k)) for k in k0]
        self._prg1 = [CtrStream(bytes(k)) for k in k1]
        self.count = 0

    def extend(self, choices: np.ndarray) -> tuple[np.ndarray, int]:
        """Send one batch for ``choices`` (bool, (m,)): the rows t_i and the first OT's index."""
        r = np.asarray(choices, dtype=bool).ravel()
        m, padded = len(r), pad_rows(len(r))
        rbits = np.packbits(np.concatenate([r, np.zeros(padded - m, dtype=bool)]), bitorder="little")
        t = prg_columns(self._prg0, padded // 8)
        u = prg_columns(self._prg1, padded // 8)
        u ^= t
        u ^= rbits
        self.ctx.send(self.peer, u)
        first, self.count = self.count, self.count + padded
        return transpose(t)[:m], first

    def random(self, choices: np.ndarray, nbytes: int = BLOCK) -> np.ndarray:
        """Random OTs: message choices[i] of each, (m, nbytes) uint8."""
        t, first = self.extend(choices)
        return _pad(t, first, nbytes)

    def chosen(self, choices: np.ndarray, nbytes: int) -> np.ndarray:
        """Chosen-message OT: m{c_i}[i] of the sender's (m0, m1), (m, nbytes) uint8."""
        r = np.asarray(choices, dtype=bool).ravel()
        mine = self.random(r, nbytes)
        e = expect(self.peer, self.ctx.recv(self.peer), np.uint8, (2, len(r), nbytes),
                   "chosen-OT messages")
        return mine ^ np.where(r[:, None], e[1], e[0])

    def correlated(self, choices: np.ndarray, words: int | None = None) -> np.ndarray:
        """Correlated OT: b_i = a_i + r_i x_i (mod 2^64); (m,) uint64, or (m, words)."""
        r = np.asarray(choices, dtype=bool).ravel()
        w = 1 if words is None else words
        mine = self.random(r, 8 * w).view(np.uint64)
        tau = expect(self.peer, self.ctx.recv(self.peer), np.uint64, (len(r), w),
                     "correlated-OT corrections")
        b = mine + tau * r[:, None].astype(np.uint64)
        return b.ravel() if words is None else b


def session(ctx: Context, peer: str, role: str) -> IknpSender | IknpReceiver:
    """This job's IKNP session with ``peer`` in which this party plays ``role``
    (``"sender"`` or ``"receiver"``), set up on first use and kept in ``ctx.state``: later
    protocols of the same job extend it without new base OTs. The peer must ask for the
    opposite role at the same point of the protocol.
    """
    if role not in ("sender", "receiver"):
        raise ValueError(f"role must be 'sender' or 'receiver', got {role!r}")
    key = ("mpc.ot.iknp", peer, role)
    if key not in ctx.state:
        ctx.state[key] = IknpSender(ctx, peer) if role == "sender" else IknpReceiver(ctx, peer)
    return ctx.state[key]
