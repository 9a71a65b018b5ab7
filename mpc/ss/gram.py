"""Shares of the Gram matrix X X^T of shared rows X (k, n): the sums of products that
variance, covariance and correlation need, in one pass.

With the OT source (``triples="ot"``, two parties) X = X_0 + X_1 and

    X X^T = X_0 X_0^T + X_1 X_1^T + C + C^T,   C = X_0 X_1^T,

the first two terms local. C is a sum over the n positions of products of party 0's column
vector X_0[:, j] with party 1's X_1[:, j], so only ONE cross product is needed (a matmul
triple, or ``x @ x.T`` by Beaver, computes both X_0 X_1^T and X_1 X_0^T: twice the OTs).
It is computed by Gilboa's multiplication from correlated OT (CRYPTO 1999) on the shares
themselves: for position j and column b, the receiver chooses with bit l of its X_r[b, j]
(64 OTs), the sender's correlation is its whole vector X_s[:, j] (k words per OT); shares of
c * X_s[:, j] weighted by 2^l and summed over l and j are shares of the cross term. The
positions are split in halves with the roles swapped (party 0 sends for the first half,
party 1 for the second), so both directions of the job's two IKNP sessions carry half the
work at once: 32 k n random OTs of k words per direction in all, against 64 k n for the
matmul triple. OT l's correction is multiplied by 2^l, so only its low 64 - l bits travel
(rounded up to whole bytes: 4.5 bytes per word on average, :mod:`mpc.ss.ot_corrections`;
Asharov-Lindell-Schneider-Zohner's short correlated OT, CCS 2013).

Security: the random OTs are :meth:`mpc.ss.ot_triples.OtSource.rot_pair` (IKNP with
kappa = 128, semi-honest, non-colluding parties); the receiver's choices are hidden by the
extension matrix, the sender's correlation by the pad of the choice not made (correlation
robustness), so each correction tau = p0 + x - p1 is uniform to the receiver. Nothing is
opened; the result is a sharing of X X^T and the caller decides what to reveal. With any
other source: the matmul Beaver triple (``mpc.ss.beaver.matmul``).
"""

from __future__ import annotations

import numpy as np

from mpc.runtime.context import Context
from mpc.ss import beaver, ot_corrections
from mpc.ss.ot_triples import OtSource
from mpc.ss.tensor import SharedTensor
from mpc.ss.triples import get_source

OTS_PER_BATCH = 1 << 19          # random OTs per batch and direction: k-word pads, about 100 MiB
_NBYTES = ot_corrections.widths(np.arange(64))   # OT l's correction: its low 64 - l bits, whole bytes
_WEIGHTS = np.uint64(1) << np.arange(64, dtype=np.uint64)


def gram_matrix(t: SharedTensor) -> SharedTensor:
    """t @ t.T for an integer SharedTensor ``t`` (k, n) (``frac_bits`` doubled, nothing
    truncated): :func:`gram`. Reveals nothing."""
    if t.ndim != 2:
        raise ValueError(f"gram_matrix needs a 2-D SharedTensor, got shape {t.shape}")
    return t._new(gram(t.ctx, t.share), 2 * t.frac_bits)


def gram(ctx: Context, x: np.ndarray) -> np.ndarray:
    """Shares (k, k) of x @ x.T for the shares ``x`` (k, n) (mod 2^64). Reveals nothing."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if x.ndim != 2:
        raise ValueError(f"gram needs a (k, n) share array, got shape {x.shape}")
    source = get_source(ctx)
    if not isinstance(source, OtSource) or x.shape[1] < 2:
        return beaver.matmul(ctx, x, np.ascontiguousarray(x.T))
    k, n = x.shape
    half = n // 2
    first, second = np.arange(half), np.arange(half, n)
    parts = -(-(n - half) // max(2, OTS_PER_BATCH // (64 * k)))      # batches; every one has >= 1 position each way
    send_idx, recv_idx = (first, second) if ctx.rank == 0 else (second, first)
    as_sender = np.zeros((k, k), np.uint64)                   # [a, b]: my column a times the peer's b
    as_receiver = np.zeros((k, k), np.uint64)                 # [a, b]: the peer's column a times my b
    for s_idx, r_idx in zip(np.array_split(send_idx, parts), np.array_split(recv_idx, parts), strict=True):
        ps, pr = _batch(ctx, source, x[:, s_idx[0]:s_idx[-1] + 1], x[:, r_idx[0]:r_idx[-1] + 1])
        as_sender += ps
        as_receiver += pr
    cross = as_sender + as_receiver.T if ctx.rank == 0 else as_receiver + as_sender.T
    return x @ x.T + cross + cross.T


def _batch(ctx: Context, source: OtSource, s: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One batch: this party the sender for the positions of ``s`` (k, js), the receiver for
    those of ``r`` (k, jr) (the peer: the mirror image). OTs in (l, j, b) order, so each
    bit-weight group of corrections is one contiguous slice."""
    k, js = s.shape
    jr = r.shape[1]
    m_send = 64 * js * k
    # choice of OT (l, j, b): bit l of my r[b, j]
    choices = ((r.T[None, :, :] >> np.arange(64, dtype=np.uint64)[:, None, None]) & np.uint64(1)).astype(bool)
    p0, p1, got = source.rot_pair(m_send, choices.reshape(-1), k)     # (k, m) word-major pads
    peer = source.peer
    if m_send:
        corr = np.broadcast_to(s.T[None, :, None, :], (64, js, k, k))    # (l, j, b, a): s[a, j]
        tau = p0 - p1
        tau += np.ascontiguousarray(np.moveaxis(corr, 3, 0)).reshape(k, -1)
        ctx.send(peer, ot_corrections.pack(tau.reshape(k, 64, js * k), _NBYTES))
        share_s = _weighted(np.uint64(0) - p0, k, js)
    else:
        share_s = np.zeros((k, k), np.uint64)
    if jr:
        tau = ot_corrections.unpack(peer, ctx.recv(peer), k, jr * k, _NBYTES,
                                    "Gram-matrix OT corrections").reshape(k, -1)
        tau *= choices.reshape(1, -1).view(np.uint8)
        tau += got
        share_r = _weighted(tau, k, jr)
    else:
        share_r = np.zeros((k, k), np.uint64)
    return share_s, share_r


def _weighted(v: np.ndarray, k: int, j: int) -> np.ndarray:
    """sum over l and positions of 2^l v[a, (l, j, b)] -> (k, k) [a, b]."""
    per_l = v.reshape(k, 64, j, k).sum(axis=2, dtype=np.uint64)       # the weight depends on l only
    return (per_l * _WEIGHTS[None, :, None]).sum(axis=1, dtype=np.uint64)
