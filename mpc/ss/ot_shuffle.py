"""Dealer-free two-party oblivious shuffle on OT extension (``triples="ot"``).

Permute + share: party P knows a permutation pi, the (rows, n) array x is additively
shared over Z_2^64, and the two parties get fresh shares of pi(x). The shuffle is permute
+ share by party 0 with its secret uniform pi_0, then by party 1 with its pi_1: the result
is permuted by pi_1 o pi_0, which no single party knows (each knows one uniform factor).

Construction: the oblivious switching network of Mohassel and Sadeghian ("How to hide
circuits in MPC", EUROCRYPT 2013) on a Benes network (:mod:`mpc.ss.benes`, n padded to a
power of two with dummy wires that P's permutation fixes), in the "permutation
correlation" form (as in Chase, Ghosh, Poburinnaya, ASIACRYPT 2020): everything but one
n-word message is independent of x and can be precomputed.

* Offline: the other party S draws a uniform input mask a and walks the network on its
  shares, P on its shares of 0. A switch with bit c (P's) on wires holding v0 = v0_S +
  v0_P, v1 = v1_S + v1_P outputs (v0 + t, v1 - t) with t = c (v1 - v0). One correlated OT
  (:meth:`mpc.ss.ot_triples.OtSource.cot_pair`) with P's choice c and S's correlation
  v1_S - v0_S gives S the pad p and P p + c (v1_S - v0_S); S's share of t is -p, P's is
  that plus c (v1_P - v0_P). One OT per switch, all switches of a layer (and of every row)
  in one batch, 2 log2 n - 1 batches. At the end S holds (a, B) and P (pi, Delta) with
  pi(a) = B + Delta (P's part is affine in its input: pi(v_P) + Delta).
* Online: S sends d = x_S - a; P's new share is pi(x_P + d) + Delta, S's is B. They add
  up to pi(x_P + x_S - a) + pi(a) - B + B = pi(x).

``jointly``: one network (one permutation per party) for all rows, each OT's correlation
``rows`` words wide; else one network per row, every row's switches in the same batches.
Both parties' networks run at once (each party is P in one and S in the other), so the
offline phase takes 2 log2 n - 1 rounds of two messages each way, the online one two
sequential messages of rows x n words.

Security (semi-honest, two non-colluding parties; kappa = 128, the IKNP parameters of
:mod:`mpc.ot.extension`). P receives only OT outputs and corrections: each correction is
masked by the pad of the choice it did not make (pseudorandom to it by correlation
robustness), and d is masked by the uniform a, which enters nothing else P sees; so
P's view is pseudorandom whatever x and S's values. S receives only the IKNP matrices of
P's choice bits, pseudorandom whatever the bits, so it learns nothing about pi. Each
party's output share is fresh: S's B is a function of its own uniform pads, P's share
is x-dependent but masked by B. Permutations are uniform (argsort of 128-bit CSPRNG keys,
:func:`mpc.crypto.random.row_permutations`), and the padding to 2^k dummies is public.
Cost per switch: one IKNP OT (16 bytes) plus ``rows`` (jointly) or 1 words of correction,
(2 log2 n - 1) n/2 switches per network: at n = 2^20 and one row about 20M OTs, 480 MB
per party's network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mpc.crypto.random import row_permutations
from mpc.ot.wire import expect
from mpc.ss import benes

if TYPE_CHECKING:
    from mpc.ss.ot_triples import OtSource

_CHUNK_WORDS = 1 << 21    # correlation words per OT batch: bounded memory


def _destinations(shape: tuple[int, int], width: int) -> np.ndarray:
    """Uniform permutations (one per row of ``shape``) as destinations on ``width`` wires:
    input i goes to output dest[i]; dummy wires >= n stay in place."""
    rows, n = shape
    perm = row_permutations(shape)                  # output j receives input perm[j]
    dest = np.empty((rows, width), dtype=np.int64)
    np.put_along_axis(dest, perm, np.broadcast_to(np.arange(n), perm.shape), axis=1)
    dest[:, n:] = np.arange(n, width)
    return dest


def _layer(source: OtSource, v_s: np.ndarray, v_p: np.ndarray, bits: np.ndarray,
           jointly: bool) -> None:
    """One switch layer of both networks, in place: ``v_s`` this party's shares as S of the
    peer's network, ``v_p`` as P of its own with control ``bits`` ((1 or rows, n/2))."""
    rows, half = v_s.shape[0], v_s.shape[1] // 2
    corr = v_s[:, 1::2] - v_s[:, 0::2]               # (rows, half)
    if jointly:
        x, w, choices = corr.T.reshape(half, 1, rows), rows, bits.reshape(half)
    else:
        x, w, choices = corr.reshape(rows * half, 1, 1), 1, bits.reshape(rows * half)
    per = max(1, _CHUNK_WORDS // w)
    pads, got = [], []
    for lo in range(0, len(choices), per):
        p, r = source.cot_pair(x[lo:lo + per], choices[lo:lo + per], w)
        pads.append(p)
        got.append(r)
    pad, recv = np.concatenate(pads), np.concatenate(got)
    if jointly:
        pad, recv = pad.T, recv.T
    pad, recv = pad.reshape(rows, half), recv.reshape(rows, half)
    v_s[:, 0::2] -= pad
    v_s[:, 1::2] += pad
    c = np.broadcast_to(bits, (rows, half)).astype(np.uint64)
    recv += c * (v_p[:, 1::2] - v_p[:, 0::2])
    v_p[:, 0::2] += recv
    v_p[:, 1::2] -= recv


def shuffle(source: OtSource, x: np.ndarray, jointly: bool = False) -> np.ndarray:
    """Fresh shares of the (rows, n) shares ``x`` permuted by pi_1 o pi_0 (see the module
    docstring); every row by its own pair of permutations unless ``jointly``."""
    ctx, peer, rank = source.ctx, source.peer, source.rank
    rows, n = x.shape
    if rows == 0 or n <= 1:
        return x.copy()
    width = benes.padded_size(n)
    dest = _destinations((1 if jointly else rows, n), width)
    bits = benes.route(dest)
    a = source.prg.uint64((rows, width))
    v_s, v_p = a.copy(), np.zeros((rows, width), np.uint64)
    for j, b in enumerate(bits):                     # offline: both networks at once
        _layer(source, v_s, v_p, b, jointly)
        v_s, v_p = benes.wire(v_s, j, width), benes.wire(v_p, j, width)
    mine = np.zeros((rows, width), np.uint64)
    mine[:, :n] = x
    for permuter in (0, 1):                          # online: party 0's pi, then party 1's
        if rank == permuter:
            d = expect(peer, ctx.recv(peer), np.uint64, (rows, width), "the masked shuffle share")
            total = mine + d
            out = np.empty_like(total)
            np.put_along_axis(out, np.broadcast_to(dest, total.shape), total, axis=1)
            mine = out + v_p
        else:
            ctx.send(peer, mine - a)
            mine = v_s
    return np.ascontiguousarray(mine[:, :n])
