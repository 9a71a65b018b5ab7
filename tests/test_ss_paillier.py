"""Operators with dealer-free Paillier triples (two parties, small insecure keys for speed)."""

import numpy as np
from conftest import float_pairs
from hypothesis import HealthCheck, given, settings

import mpc
from mpc import ss

F = 16
ULP = 2.0 ** -F
OPTS = {"triples": "paillier", "paillier_bits": 512, "timeout": 120}


def q(x):
    return np.round(np.asarray(x, dtype=np.float64) * 2 ** F) / 2 ** F


def run(fn, x, y):
    def body(ctx, xv, yv):
        return fn(ctx, ss.share(ctx, xv, "alice"), ss.share(ctx, yv, "bob"))

    out = mpc.run_local(body, ["alice", "bob"], args={"alice": (x, None), "bob": (None, y)}, **OPTS)
    return out["alice"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(xy=float_pairs(4))
def test_arithmetic_and_comparisons_with_paillier_triples(xy):
    x, y = xy

    def fn(ctx, a, b):
        return {k: v.reveal() for k, v in {
            "mul": a * b, "add": a + b, "mul_pub": a * 0.5, "lt": a < b, "eq": a == b,
            "max": ss.maximum(a, b)}.items()}

    res = run(fn, x, y)
    qx, qy = q(x), q(y)
    np.testing.assert_allclose(res["mul"], qx * qy, rtol=0, atol=1.01 * ULP)
    np.testing.assert_allclose(res["add"], qx + qy, rtol=1e-12, atol=ULP)
    np.testing.assert_allclose(res["mul_pub"], qx * 0.5, rtol=0, atol=1.01 * ULP)
    np.testing.assert_array_equal(res["lt"], (qx < qy).astype(np.int64))
    np.testing.assert_array_equal(res["eq"], (qx == qy).astype(np.int64))
    np.testing.assert_array_equal(res["max"], np.maximum(qx, qy))


def test_matmul_and_integer_ops_with_paillier_triples():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4)) * 10
    y = rng.normal(size=(4, 2)) * 10

    def fn(ctx, a, b):
        ia = ss.share(ctx, np.arange(6).reshape(2, 3) if ctx.party == "alice" else None, "alice")
        return (a @ b).reveal(), (ia * ia).sum().reveal()

    mm, isum = run(fn, x, y)
    np.testing.assert_allclose(mm, q(x) @ q(y), rtol=1e-9, atol=1.01 * ULP)
    assert isum == (np.arange(6) ** 2).sum()


def test_paillier_triples_over_grpc():
    x, y = np.array([1.5, -2.0]), np.array([-3.0, 0.25])

    def body(ctx, xv, yv):
        a, b = ss.share(ctx, xv, "alice"), ss.share(ctx, yv, "bob")
        return (a * b).reveal()

    out = mpc.run_local(body, ["alice", "bob"], args={"alice": (x, None), "bob": (None, y)},
                        transport="grpc", **OPTS)
    np.testing.assert_allclose(out["bob"], x * y, atol=ULP)
