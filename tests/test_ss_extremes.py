"""mpc.ss.compare.mux_xor and mpc.ss.order.extremes (min/max by the multiplexer) against
numpy, dealer-free and with the dealer; a view test of the multiplexer."""

from __future__ import annotations

import math

import numpy as np
import pytest

import mpc
from mpc import ss
from mpc.runtime.views import flatten, record_views
from mpc.ss import beaver, compare, order

RNG = np.random.default_rng(5)        # test data only


def _extremes(ctx, x):
    t = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
    mn, mx = order.extremes(t)
    return mn.reveal(), mx.reveal()


@pytest.mark.parametrize("n", [1, 2, 3, 64, 1001])
@pytest.mark.parametrize("triples", ["ot", "dealer"])
def test_extremes_match_numpy(n, triples):
    x = RNG.integers(-2 ** 45, 2 ** 45, (3, n))
    x[1] = 7                                           # a constant row
    x[2, ::3] = x[2, 0]                                # ties
    got = mpc.run_local(_extremes, ["alice", "bob"], args={p: (x,) for p in ("alice", "bob")}, triples=triples)
    mn, mx = got["bob"]
    assert np.array_equal(mn, x.min(axis=1)) and np.array_equal(mx, x.max(axis=1))


def _mux(ctx, bits, x):
    t = ss.share(ctx, x if ctx.party == "alice" else None, "alice")
    mine = bits if ctx.party == "alice" else np.zeros_like(bits)     # XOR shares: alice holds b, bob 0
    return beaver.open_arith(ctx, compare.mux_xor(ctx, mine, t.share)).astype(np.int64)


def test_mux_xor_matches_product_grpc():
    bits = RNG.integers(0, 2, 777).astype(np.uint64)
    x = RNG.integers(-2 ** 60, 2 ** 60, 777)
    got = mpc.run_local(_mux, ["alice", "bob"], args={p: (bits, x) for p in ("alice", "bob")}, triples="ot",
                        transport="grpc")
    assert np.array_equal(got["alice"], bits.astype(np.int64) * x)


def test_mux_views():
    """The multiplexer's messages look uniform whatever the bit and the value: each holds
    the two pad-masked offers, one of them with a pad the receiver cannot compute, the other
    masked by the sender's r."""
    n = 4096
    for bits, x in ((np.zeros(n, np.uint64), np.zeros(n, np.int64)),
                    (np.ones(n, np.uint64), np.full(n, 12345, np.int64)),
                    (RNG.integers(0, 2, n).astype(np.uint64), RNG.integers(-2 ** 30, 2 ** 30, n))):
        res, views = record_views(_mux, ["alice", "bob"], args={p: (bits, x) for p in ("alice", "bob")},
                                  triples="ot")
        assert np.array_equal(res["alice"], bits.astype(np.int64) * x)
        for p in ("alice", "bob"):
            msgs = [v for _, v in views[p] if isinstance(v, np.ndarray) and v.dtype == np.uint64 and v.shape == (2, n)]
            assert len(msgs) == 1
            b = ((msgs[0][..., None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).mean(axis=1)
            assert np.abs(b - 0.5).max() < 6 / math.sqrt(n)
            assert flatten(views[p])
