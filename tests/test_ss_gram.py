"""mpc.ss.gram: shares of X X^T, against numpy, on both transports and with the dealer;
a view test of the OT path."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mpc
from mpc import ss
from mpc.runtime.views import flatten, record_views
from mpc.ss import beaver, gram

RNG = np.random.default_rng(3)        # test data only


def _job(ctx, x, bits=64):
    t = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
    return beaver.open_arith(ctx, gram.gram(ctx, t.share, bits)).astype(np.int64)


@pytest.mark.parametrize("n", [1, 2, 3, 257, 5001])
def test_gram_matches_numpy_ot(n):
    x = RNG.integers(-2 ** 21, 2 ** 21, (4, n))
    got = mpc.run_local(_job, ["alice", "bob"], args={p: (x,) for p in ("alice", "bob")}, triples="ot")
    assert np.array_equal(got["alice"], x @ x.T) and np.array_equal(got["bob"], x @ x.T)


def test_gram_many_batches_grpc(monkeypatch):
    """Several OT batches (a small batch size), odd length, wrapping products, gRPC."""
    monkeypatch.setattr(gram, "OTS_PER_BATCH", 1 << 12)
    x = RNG.integers(-2 ** 40, 2 ** 40, (3, 1001))
    got = mpc.run_local(_job, ["alice", "bob"], args={p: (x,) for p in ("alice", "bob")}, triples="ot",
                        transport="grpc")
    want = (x.astype(np.uint64) @ x.T.astype(np.uint64)).astype(np.int64)      # mod 2^64
    assert np.array_equal(got["alice"], want)


@pytest.mark.parametrize("triples", ["ot", "dealer"])
def test_gram_fewer_bits(monkeypatch, triples):
    """``bits`` = 60 (entries below 2^59, the statistics' bound): the result is 16 x x^T,
    exact, with 60 OTs per share; several batches, gRPC."""
    monkeypatch.setattr(gram, "OTS_PER_BATCH", 1 << 12)
    x = RNG.integers(-2 ** 23, 2 ** 23, (4, 3001))
    x[0] = 2 ** 23 - 1                             # entries near the bound: 3001 * 2^46 ~ 2^57.6
    got = mpc.run_local(_job, ["alice", "bob"], args={p: (x, 60) for p in ("alice", "bob")}, triples=triples,
                        transport="grpc")
    assert np.array_equal(got["alice"], 16 * (x @ x.T)) and np.array_equal(got["bob"], 16 * (x @ x.T))
    with pytest.raises(mpc.JobFailed, match="bits must be in 40..64"):
        mpc.run_local(_job, ["alice", "bob"], args={p: (x, 30) for p in ("alice", "bob")}, triples="ot")


def test_gram_with_the_dealer():
    x = RNG.integers(-1000, 1000, (2, 300))
    got = mpc.run_local(_job, ["alice", "bob"], args={p: (x,) for p in ("alice", "bob")})
    assert np.array_equal(got["alice"], x @ x.T)


def _views_of(x):
    return record_views(_job, ["alice", "bob"], args={p: (x,) for p in ("alice", "bob")}, triples="ot")


def test_gram_views():
    """What each party receives (IKNP matrices, corrections) has the same structure whatever
    the values, and every received array's bits are balanced: the corrections are masked
    by pads the receiver cannot compute, whatever the sender's shares."""
    n = 4096
    runs = [_views_of(x) for x in (np.zeros((4, n), np.int64), RNG.integers(-2 ** 30, 2 ** 30, (4, n)),
                                   np.full((4, n), 7, np.int64))]
    for p in ("alice", "bob"):
        shapes = {tuple((s, _shape(v)) for s, v in views[p]) for _, views in runs}
        assert len(shapes) == 1
        for _, views in runs:
            checked = 0
            for leaf in flatten(views[p]):
                if isinstance(leaf, np.ndarray) and leaf.dtype.kind == "u" and leaf.nbytes >= 1 << 14:
                    bits = np.unpackbits(leaf.view(np.uint8).ravel())
                    assert abs(bits.mean() - 0.5) < 6 / math.sqrt(bits.size), "a received array is biased"
                    checked += 1
            assert checked >= 2                  # the IKNP matrix and the packed corrections


def _shape(value):
    leaves = flatten([("", value)])
    return tuple((leaf.dtype.str, leaf.shape) if isinstance(leaf, np.ndarray) else type(leaf).__name__
                 for leaf in leaves)


@pytest.mark.parametrize("bits", [40, 41, 60, 64])
def test_packed_corrections_give_the_receivers_sums(bits):
    """_pack / _received (whole bytes, then partial top bytes shared in pairs) give
    sum_l 2^l sum_j (c tau + p) mod 2^bits exactly, against Python integers, for the wide
    (uint64) and narrow (uint32) parts; the message is the bits that matter, rounded up per
    shared byte, and no larger than whole-byte widths."""
    k, j, wide = 3, 5, bits - 32
    for lo, hi, dt in ((0, wide, np.uint64), (wide, bits, np.uint32)):
        widths = gram._widths(bits, lo, hi)
        levels = hi - lo
        tau = RNG.integers(0, np.iinfo(dt).max, (k, levels, k * j), dtype=dt, endpoint=True)
        got = RNG.integers(0, np.iinfo(dt).max, (k, levels * k * j), dtype=dt, endpoint=True)
        choices = RNG.integers(0, 2, (levels, k, j)).astype(bool)
        msg = np.empty(gram._packed_size(k, k * j, widths), np.uint8)
        gram._pack(tau, widths, msg)
        assert msg.size <= k * k * j * sum(-(-w // 8) for w in widths)
        assert msg.size == k * k * j * (sum(w // 8 for w in widths) + len(gram._layout(widths)[1]))
        out = gram._received(msg, choices, got, widths, lo, k, j)
        t, g, c = tau.astype(object), got.reshape(k, levels, k, j).astype(object), choices.astype(object)
        for a in range(k):
            for b in range(k):
                want = sum(2 ** (lo + lv) * (c[lv, b, q] * int(t[a, lv, b * j + q]) + int(g[a, lv, b, q]))
                           for lv in range(levels) for q in range(j)) % 2 ** bits
                assert int(out[a, b]) % 2 ** bits == want
    assert gram._packed_size(1, 1, gram._widths(60, 0, 28)) + gram._packed_size(1, 1, gram._widths(60, 28, 60)) == 230
