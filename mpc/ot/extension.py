"""IKNP OT extension with SoftSpokenOT's half-size matrix: millions of 1-out-of-2 OTs from
128 base OTs and AES.

Ishai, Kilian, Nissim, Petrank, "Extending Oblivious Transfers Efficiently" (CRYPTO 2003),
with the receiver's message halved by Roy's SoftSpokenOT ("SoftSpokenOT: Quieter OT
Extension from Small-Field Silent VOLE in the Minicrypt Model", CRYPTO 2022) at k = 2;
semi-honest, kappa = 128 (computational security of AES-128 and of the base OTs):

* setup: the extension *sender* draws Delta in {0,1}^128 and is the *receiver* of 128
  base OTs (:mod:`mpc.ot.base`) with choices Delta. The 128 columns are taken in 64 pairs
  (2c, 2c+1); for each pair the extension receiver draws a two-level GGM tree (AES-CTR as
  the length-doubling PRG) with four leaves s_x, x = (x0, x1), and sends, under the two
  base-OT keys of the pair as one-time pads, the level sums that let the sender with
  (d0, d1) = (Delta_2c, Delta_2c+1) rebuild every leaf but s_(d0, d1) (a punctured PRF,
  SoftSpokenOT's (2^k - 1)-out-of-2^k OT). Each leaf keys an AES-128-CTR stream G(s_x)
  (:class:`mpc.ot.aes.CtrStream`, the keystream of :class:`mpc.crypto.random.PRG`) that
  continues across batches.
* a batch of m OTs with choice bits r (one message, receiver -> sender): per pair the
  receiver forms u = xor_x G(s_x), t^2c = xor_{x0=1} G(s_x), t^2c+1 = xor_{x1=1} G(s_x) and
  sends the 64 x m bit matrix with rows c = u xor r (IKNP sends 128 rows). The sender,
  without G(s_(d0,d1)), forms w^2c = xor_{x0 != d0} G(s_x), w^2c+1 = xor_{x1 != d1} G(s_x)
  (= t^b xor Delta_b u) and q^b = w^b xor Delta_b c = t^b xor Delta_b r: the IKNP
  correlation. Transposed into rows (:func:`mpc.ot.bits.transpose`): q_i = t_i xor r_i Delta.
* outputs are hashed with fixed-key AES (:mod:`mpc.ot.hashing`): pads of up to one block
  by the circular correlation-robust H(x) = pi(sigma(x)) xor sigma(x) (``ccr``; semi-honest
  IKNP needs only correlation robustness), wider ones by the tweakable ``tccr`` blocks
  (tweak = the OT's index in the session and the block's): the sender gets m0_i = H(q_i),
  m1_i = H(q_i xor Delta); the receiver gets m{r_i}_i = H(t_i).

What each side sees: the sender sees the setup sums under the keys of the base OTs it did
not choose (one-time pads) and, per batch, c = u xor r, where u includes the stream of
the leaf it cannot rebuild (s_(d0,d1): the GGM tree's PRG hides it), so c is
pseudorandom whatever r. The receiver sees nothing from the sender in a random OT;
m{1-r_i}_i = H(i, t_i xor Delta) is pseudorandom to it as Delta is unknown (correlation
robustness). Chosen-message and correlated OT add one sender -> receiver message of
masked values. Batches are padded to a multiple of 128 OTs. The sessions are directional:
to extend OTs the other way, open the pair the other way round. Cost per OT: 64 bits on
the wire (IKNP: 128), 2 (receiver) and 1.5 (sender) AES blocks of PRG output.
"""

from __future__ import annotations

import os

import numpy as np

from mpc.crypto.random import PRG, expand_rows, new_seed
from mpc.ot import base
from mpc.ot.aes import CtrStream, fill_rows
from mpc.ot.bits import pad_rows, transpose
from mpc.ot.hashing import BLOCK, ccr, ccr_word_major, tccr_indexed_word_major, tccr_multi
from mpc.ot.wire import expect
from mpc.runtime.context import Context

KAPPA = 128
CHUNKS = KAPPA // 2   # SoftSpokenOT with k = 2: one message row per two columns


def _ggm(root: bytes) -> tuple[list[bytes], list[bytes]]:
    """The two-level GGM tree of ``root`` (AES-128-CTR as the length-doubling PRG): the
    level-1 nodes n_0, n_1 and the four leaves, leaf (x0, x1) at index x0 + 2 x1."""
    level = PRG(root).bytes(32)
    nodes = [level[:16], level[16:]]
    kids = [PRG(n).bytes(32) for n in nodes]
    return nodes, [kids[x0][16 * x1:16 * x1 + 16] for x1 in range(2) for x0 in range(2)]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _puncturable_seeds(ctx: Context, peer: str, k0: np.ndarray, k1: np.ndarray) -> list[bytes]:
    """The extension receiver's side of the punctured-PRF setup: a GGM tree per column pair,
    its sibling sums sent under the base-OT keys (one-time pads); returns the 4 leaves of
    each pair, ``CHUNKS * 4`` seeds."""
    msg = np.empty((CHUNKS, 2, 2, 16), dtype=np.uint8)
    seeds = []
    for c in range(CHUNKS):
        nodes, leaves = _ggm(new_seed())
        j0, j1 = 2 * c, 2 * c + 1
        pairs = [(nodes[1], nodes[0]),                                  # choice d0 -> n_{1-d0}
                 (_xor(leaves[2], leaves[3]), _xor(leaves[0], leaves[1]))]   # d1 -> sum over x1 = 1-d1
        for level, (j, (m0, m1)) in enumerate(zip((j0, j1), pairs, strict=True)):
            msg[c, level, 0] = np.frombuffer(m0, np.uint8) ^ k0[j]
            msg[c, level, 1] = np.frombuffer(m1, np.uint8) ^ k1[j]
        seeds.extend(leaves)
    ctx.send(peer, msg)
    return seeds


def _punctured_seeds(ctx: Context, peer: str, bits: np.ndarray, keys: np.ndarray) -> list[bytes]:
    """The extension sender's side: for each column pair with (d0, d1) = Delta's two bits,
    the three leaves other than (d0, d1), ordered A = (1-d0, d1), B = (1-d0, 1-d1),
    C = (d0, 1-d1) so that w_0 = A xor B and w_1 = B xor C; ``CHUNKS * 3`` seeds."""
    msg = expect(peer, ctx.recv(peer), np.uint8, (CHUNKS, 2, 2, 16), "the punctured-PRF setup")
    seeds = []
    for c in range(CHUNKS):
        d0, d1 = int(bits[2 * c]), int(bits[2 * c + 1])
        sibling = (msg[c, 0, d0] ^ keys[2 * c]).tobytes()               # n_{1-d0}
        sum_x1 = (msg[c, 1, d1] ^ keys[2 * c + 1]).tobytes()            # leaves (0, 1-d1) xor (1, 1-d1)
        kids = PRG(sibling).bytes(32)
        near = [kids[:16], kids[16:]]                                   # leaves (1-d0, 0), (1-d0, 1)
        seeds.extend([near[d1], near[1 - d1], _xor(sum_x1, near[1 - d1])])
    return seeds


def random_bits(n: int) -> np.ndarray:
    """``n`` uniform choice bits (bool array) from the OS CSPRNG."""
    return (np.frombuffer(os.urandom(n), dtype=np.uint8) & 1).astype(bool)


def prg_columns(prgs: list[PRG] | list[CtrStream], nbytes: int) -> np.ndarray:
    """The next ``nbytes`` of each PRG as the rows of a (len(prgs), nbytes) bit matrix."""
    if prgs and isinstance(prgs[0], CtrStream):
        return fill_rows(prgs, np.empty((len(prgs), nbytes), dtype=np.uint8))
    return expand_rows(prgs, nbytes)


def _pad(rows: np.ndarray, first: int, nbytes: int) -> np.ndarray:
    """``nbytes`` of hash output per row: up to one block the circular correlation-robust
    H(row) (:func:`mpc.ot.hashing.ccr`, one AES call), wider H(i, row) blocks with tweaks
    (i, 0), (i, 1)... (:func:`mpc.ot.hashing.tccr`)."""
    n = len(rows)
    blocks = -(-nbytes // BLOCK)
    if blocks == 1:
        return ccr(rows)[:, :nbytes]
    idx = np.arange(first, first + n, dtype=np.uint64)
    if first + n >= 1 << 56:
        raise ValueError("OT session exhausted (2^56 OTs)")
    return tccr_multi(rows, [idx | (np.uint64(k) << np.uint64(56)) for k in range(blocks)])[:, :nbytes]


def pad_words(rows: np.ndarray, first: int, words: int) -> np.ndarray:
    """``_pad(rows, first, 8 words)`` as 64-bit words, word-major ((words, n) uint64)."""
    n = len(rows)
    if words <= 2:
        return ccr_word_major(rows, words)
    if first + n >= 1 << 56:
        raise ValueError("OT session exhausted (2^56 OTs)")
    return tccr_indexed_word_major(rows, first, words)   # tweaks (i, k): idx | k << 56


_TILE = 1024  # rows per xor_delta stripe: numpy's inner loop runs over 16 KiB, not 16 bytes


def xor_delta(rows: np.ndarray, delta: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``rows ^ delta`` for C-contiguous (m, 16) uint8 rows (one 128-bit Delta), in place or
    into ``out``: stripes of ``_TILE`` rows against Delta repeated, so the loop is long and
    vectorised."""
    if not rows.flags.c_contiguous or rows.shape[1:] != (BLOCK,):
        raise ValueError("xor_delta needs C-contiguous (m, 16) uint8 rows")
    out = rows if out is None else out
    if out.shape != rows.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
        raise ValueError("xor_delta: out must be C-contiguous uint8 of the rows' shape")
    d = np.ascontiguousarray(delta, dtype=np.uint8).view(np.uint64)
    words, dest = rows.view(np.uint64).reshape(-1), out.view(np.uint64).reshape(-1)
    full = len(rows) - len(rows) % _TILE
    if full:
        np.bitwise_xor(words[:2 * full].reshape(-1, 2 * _TILE), np.tile(d, _TILE),
                       out=dest[:2 * full].reshape(-1, 2 * _TILE))
    if len(rows) > full:
        np.bitwise_xor(words[2 * full:].reshape(-1, 2), d, out=dest[2 * full:].reshape(-1, 2))
    return out


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
        self._delta_mask = np.where(bits, 0xFF, 0).astype(np.uint8).reshape(CHUNKS, 2, 1)   # byte masks
        keys = base.receive_random(ctx, peer, bits)                   # k_j^{Delta_j}
        self._prgs = [CtrStream(seed) for seed in _punctured_seeds(ctx, peer, bits, keys)]
        self.count = 0  # OTs extended so far (the tweak of the next one)

    def extend(self, m: int, u: np.ndarray | None = None, sigma: bool = False) -> tuple[np.ndarray, int]:
        """Receive one batch: the rows q_i ((m, 16) uint8) and the index of the first OT.
        ``u``: the batch's matrix if it came inside another message (see
        :meth:`IknpReceiver.columns`); received here otherwise. ``sigma``: the rows as
        sigma(q_i) (for CCR pads only: :func:`mpc.ot.hashing.ccr_pair` with ``presigma``)."""
        padded = pad_rows(m)
        u = expect(self.peer, self.ctx.recv(self.peer) if u is None else u, np.uint8,
                   (CHUNKS, padded // 8), "the OT-extension matrix")
        g = prg_columns(self._prgs, padded // 8).reshape(CHUNKS, 3, padded // 8)   # A, B, C
        q = np.bitwise_xor(g[:, 0:2], g[:, 1:3])          # (w_0, w_1) = (A xor B, B xor C)
        c = np.bitwise_and(u[:, None, :], self._delta_mask)   # Delta_j c, both columns of a pair
        np.bitwise_xor(q, c, out=q)                       # q^j = w^j xor Delta_j c: three calls
        q = q.reshape(KAPPA, padded // 8)
        first, self.count = self.count, self.count + padded
        return transpose(q, sigma)[:m], first

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
        self._prgs = [CtrStream(seed) for seed in _puncturable_seeds(ctx, peer, k0, k1)]
        self.count = 0

    def columns(self, choices: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """One batch for ``choices`` (bool, (m,)) without sending: its message c = u xor r
        ((64, padded / 8) uint8, for the caller to send, alone or inside its next message),
        the column matrix t (128 rows; :func:`mpc.ot.bits.transpose` of it, first m rows,
        are the t_i) and the first OT's index. The peer's sender extends the same batch."""
        r = np.asarray(choices, dtype=bool).ravel()
        m, padded = len(r), pad_rows(len(r))
        rbits = np.packbits(np.concatenate([r, np.zeros(padded - m, dtype=bool)]), bitorder="little")
        g = prg_columns(self._prgs, padded // 8).reshape(CHUNKS, 4, padded // 8)   # leaves x0 + 2 x1
        t = np.bitwise_xor(g[:, 1:3], g[:, 3:4])          # (v_0, v_1): the leaves with x0 = 1, x1 = 1
        u = g[:, 0] ^ g[:, 1]
        u ^= t[:, 1]                                      # u = the xor of all four leaves
        u ^= rbits                                        # c = u xor r
        first, self.count = self.count, self.count + padded
        return u, t.reshape(KAPPA, padded // 8), first

    def extend(self, choices: np.ndarray, sigma: bool = False) -> tuple[np.ndarray, int]:
        """Send one batch for ``choices`` (bool, (m,)): the rows t_i and the first OT's index.
        ``sigma``: the rows as sigma(t_i) (for CCR pads only: :func:`mpc.ot.hashing.ccr_sigma`)."""
        u, t, first = self.columns(choices)
        self.ctx.send(self.peer, u)
        return transpose(t, sigma)[:np.size(choices)], first

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
