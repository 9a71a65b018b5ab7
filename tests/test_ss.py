"""SharedTensor operators against numpy: hypothesis properties, dealer triples, 2 and 3 parties.

Expected values are computed on the fixed-point-quantised inputs (round(x * 2^16) / 2^16),
so comparisons must match exactly and arithmetic within the documented error (one unit in
the last place per truncation).
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mpc
from mpc import ss

F = 16
ULP = 2.0 ** -F
PARTIES = {2: ["alice", "bob"], 3: ["alice", "bob", "carol"], 4: ["alice", "bob", "carol", "dave"]}
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def q(x):
    return np.round(np.asarray(x, dtype=np.float64) * 2 ** F) / 2 ** F


def run(fn, n_parties, x, y, **options):
    """Run fn(ctx, x_shared, y_shared) with x owned by the first party, y by the last."""
    parties = PARTIES[n_parties]

    def body(ctx, xv, yv):
        xs = ss.share(ctx, xv, parties[0])
        ys = ss.share(ctx, yv, parties[-1])
        return fn(ctx, xs, ys)

    args = {p: (x if p == parties[0] else None, y if p == parties[-1] else None) for p in parties}
    out = mpc.run_local(body, parties, args=args, timeout=120, **options)
    return out[parties[0]], out


# values of very different scales, zeros, negatives, and magnitudes near the product limit
mixed = st.one_of(st.floats(-1e-3, 1e-3), st.floats(-30000, 30000), st.integers(-5, 5).map(float),
                  st.sampled_from([0.0, 32767.5, -32767.5, 1e-4, -1e4]))


def pair(elements=mixed, max_side=6):
    shape = hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=max_side)
    return shape.flatmap(lambda s: st.tuples(hnp.arrays(np.float64, s, elements=elements),
                                             hnp.arrays(np.float64, s, elements=elements)))


def _all_ops(ctx, x, y):
    out = {
        "add": x + y, "sub": x - y, "neg": -x, "mul": x * y, "mul_pub_f": x * 0.75,
        "mul_pub_i": x * 3, "add_pub": x + 2.5, "rsub_pub": 1.0 - y, "sum": x.sum(),
        "sum0": x.sum(axis=0), "idx": x[..., :1], "reshape": x.reshape(-1),
        "concat": ss.concatenate([x, y], axis=0),
        "lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "eq": x == y, "eq_self": x == x,
        "lt_pub": x < 1.0, "maximum": ss.maximum(x, y), "minimum": ss.minimum(x, y),
        "where": ss.where(x < y, x, y * 2), "max": x.max(), "min": x.min(), "argmax": x.argmax(),
        "argmin": x.argmin(), "abs": abs(x),
    }
    return {k: v.reveal() for k, v in out.items()}


def _check_all(res, x, y):
    qx, qy = q(x), q(y)
    tol = dict(rtol=1e-12, atol=1.01 * ULP)
    np.testing.assert_allclose(res["add"], qx + qy, **tol)
    np.testing.assert_allclose(res["sub"], qx - qy, **tol)
    np.testing.assert_allclose(res["neg"], -qx, **tol)
    np.testing.assert_allclose(res["mul"], qx * qy, **tol)
    np.testing.assert_allclose(res["mul_pub_f"], qx * 0.75, **tol)
    np.testing.assert_allclose(res["mul_pub_i"], qx * 3, **tol)
    np.testing.assert_allclose(res["add_pub"], qx + 2.5, **tol)
    np.testing.assert_allclose(res["rsub_pub"], 1.0 - qy, **tol)
    np.testing.assert_allclose(res["sum"], qx.sum(), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(res["sum0"], qx.sum(axis=0), rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(res["idx"], qx[..., :1])
    np.testing.assert_array_equal(res["reshape"], qx.reshape(-1))
    np.testing.assert_array_equal(res["concat"], np.concatenate([qx, qy], axis=0))
    for name, op in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                     ("ge", np.greater_equal), ("eq", np.equal)]:
        np.testing.assert_array_equal(res[name], op(qx, qy).astype(np.int64), err_msg=name)
    assert res["eq_self"].dtype == np.int64 and np.all(res["eq_self"] == 1)
    np.testing.assert_array_equal(res["lt_pub"], (qx < 1.0).astype(np.int64))
    np.testing.assert_array_equal(res["maximum"], np.maximum(qx, qy))
    np.testing.assert_array_equal(res["minimum"], np.minimum(qx, qy))
    np.testing.assert_allclose(res["where"], np.where(qx < qy, qx, q(qy * 2)), **tol)
    assert res["max"] == qx.max() and res["min"] == qx.min()
    assert res["argmax"] == np.argmax(qx) and res["argmin"] == np.argmin(qx)
    np.testing.assert_array_equal(res["abs"], np.abs(qx))


@pytest.mark.parametrize("n_parties", [2, 3])
@SETTINGS
@given(xy=pair())
def test_operators_match_numpy(n_parties, xy):
    x, y = xy
    res, _ = run(_all_ops, n_parties, x, y)
    _check_all(res, x, y)


def _int_ops(ctx, x, y):
    return {k: v.reveal() for k, v in {
        "add": x + y, "mul": x * y, "mul_pub": x * -7, "lt": x < y, "max": x.max(), "sum": x.sum(),
        "matmul": x @ y.T, "eq": x == y, "pow": (x * 0 + 3) ** 5}.items()}


@pytest.mark.parametrize("n_parties", [2, 3])
@SETTINGS
@given(xy=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=5).flatmap(
    lambda s: st.tuples(*[hnp.arrays(np.int64, s, elements=st.integers(-2**30, 2**30))] * 2)))
def test_integer_tensors_are_exact(n_parties, xy):
    x, y = xy
    res, _ = run(_int_ops, n_parties, x, y)
    assert res["add"].dtype == np.int64
    np.testing.assert_array_equal(res["add"], x + y)
    np.testing.assert_array_equal(res["mul"], x * y)
    np.testing.assert_array_equal(res["mul_pub"], x * -7)
    np.testing.assert_array_equal(res["lt"], (x < y).astype(np.int64))
    np.testing.assert_array_equal(res["eq"], (x == y).astype(np.int64))
    assert res["max"] == x.max() and res["sum"] == x.sum()
    np.testing.assert_array_equal(res["pow"], np.full(x.shape, 243))
    np.testing.assert_array_equal(res["matmul"], (x.astype(object) @ y.T.astype(object)).astype(np.int64))


def _matmul(ctx, x, y):
    return {"mm": (x @ y).reveal(), "vec": (x[0] @ y).reveal(),
            "pub": (x @ np.ones((x.shape[1], 2))).reveal()}


@pytest.mark.parametrize("n_parties", [2, 3])
@SETTINGS
@given(data=st.data())
def test_matmul_matches_numpy(n_parties, data):
    m, k, n = (data.draw(st.integers(1, 5)) for _ in range(3))
    el = st.floats(-100, 100)
    x = data.draw(hnp.arrays(np.float64, (m, k), elements=el))
    y = data.draw(hnp.arrays(np.float64, (k, n), elements=el))
    res, _ = run(_matmul, n_parties, x, y)
    tol = dict(rtol=1e-9, atol=1.01 * ULP)
    np.testing.assert_allclose(res["mm"], q(x) @ q(y), **tol)
    np.testing.assert_allclose(res["vec"], q(x)[0] @ q(y), **tol)
    np.testing.assert_allclose(res["pub"], q(x) @ np.ones((k, 2)), **tol)


def test_range_limits_add_and_multiply():
    big = np.array([2.0 ** 44, -(2.0 ** 44) + 0.5, 3e13, -3e13])
    small = np.array([1e-4, -1e-4, 0.0, 12345.678])
    res, _ = run(lambda ctx, x, y: {"add": (x + y).reveal(), "lt": (x < y).reveal()}, 2, big, small)
    np.testing.assert_allclose(res["add"], q(big) + q(small), rtol=1e-12, atol=ULP)
    np.testing.assert_array_equal(res["lt"], (big < small).astype(np.int64))
    # products up to the documented limit |x*y| < 2^(62-2f) = 2^30
    x = np.array([32767.9, -32767.9, 32767.9, 1e-4, 30000.0])
    y = np.array([32767.9, 32767.9, -32767.9, 1e4, -30000.0])
    res, _ = run(lambda ctx, a, b: (a * b).reveal(), 3, x, y)
    np.testing.assert_allclose(res, q(x) * q(y), rtol=0, atol=1.01 * ULP)


def test_truncation_100k_elements_largish_values():
    rng = np.random.default_rng(5)
    n = 100_000
    x = rng.uniform(-30000, 30000, n)
    y = rng.uniform(-30000, 30000, n)
    res, _ = run(lambda ctx, a, b: (a * b).reveal(), 2, x, y)
    err = np.abs(res - q(x) * q(y))
    assert err.max() <= 1.01 * ULP


def test_truncation_1m_elements_largish_values():
    rng = np.random.default_rng(6)
    n = 1_000_000
    x = rng.uniform(-32000, 32000, n)
    y = rng.uniform(-32000, 32000, n)
    res, _ = run(lambda ctx, a, b: (a * b).reveal(), 2, x, y)
    assert np.abs(res - q(x) * q(y)).max() <= 1.01 * ULP


def test_comparisons_1m_elements():
    rng = np.random.default_rng(7)
    n = 1_000_000
    x = rng.normal(size=n) * 1000
    y = np.where(rng.random(n) < 0.1, x, rng.normal(size=n) * 1000)
    res, _ = run(lambda ctx, a, b: (a < b).reveal(), 2, x, y)
    np.testing.assert_array_equal(res, (q(x) < q(y)).astype(np.int64))


def test_reveal_to_one_party_and_mean():
    x = np.arange(12, dtype=np.float64).reshape(3, 4)

    def fn(ctx, a, b):
        return a.reveal(to="bob"), a.mean().reveal(to=["alice", "carol"])

    _, out = run(fn, 3, x, x)
    assert out["alice"][0] is None and out["carol"][0] is None
    np.testing.assert_array_equal(out["bob"][0], x)
    assert out["bob"][1] is None
    # division by a public d: relative error <= 2^-(f-1) plus two ulp (see SharedTensor.__truediv__)
    assert abs(out["alice"][1] - x.mean()) <= x.mean() * 2.0 ** -(F - 1) + 2 * ULP


def test_mean_of_a_million_values_keeps_precision():
    x = np.linspace(-3, 5, 1_000_000)
    res, _ = run(lambda ctx, a, b: (a.mean().reveal(), (a.sum() / 3.0).reveal()), 2, x, x)
    assert abs(res[0] - q(x).mean()) <= abs(x.mean()) * 2.0 ** -(F - 1) + 2 * ULP
    assert abs(res[1] - q(x).sum() / 3) <= abs(q(x).sum() / 3) * 2.0 ** -(F - 1) + 2 * ULP


def test_from_shares_and_local_share_access():
    def fn(ctx):
        mine = np.full(3, ctx.rank + 1, dtype=np.uint64)
        t = ss.from_shares(ctx, mine)
        return t.reveal(), t.share.dtype

    out = mpc.run_local(fn, ["a", "b", "c"])
    np.testing.assert_array_equal(out["a"][0], [6, 6, 6])
    assert out["b"][1] == np.uint64


@pytest.mark.parametrize("n_parties", [2, 3])
def test_grpc_transport(n_parties):
    x = np.array([1.5, -2.0, 3.25])
    y = np.array([2.0, 2.0, -1.0])
    res, _ = run(lambda ctx, a, b: ((a * y_pub(a)).reveal(), (a < b).reveal(), (a * b).reveal()), n_parties,
                 x, y, transport="grpc")
    np.testing.assert_allclose(res[0], q(x) * 2.0, atol=ULP)
    np.testing.assert_array_equal(res[1], (x < y).astype(np.int64))
    np.testing.assert_allclose(res[2], q(x) * q(y), atol=ULP)


def y_pub(a):
    return 2.0


def test_four_parties():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(4, 3)) * 50, rng.normal(size=(4, 3)) * 50
    res, out = run(_all_ops, 4, x, y)
    _check_all(res, x, y)
    assert all(np.array_equal(out[p]["mul"], res["mul"]) for p in PARTIES[4])


def test_power_of_fixed_point():
    x = np.array([1.5, -2.0, 0.25, 3.0])
    res, _ = run(lambda ctx, a, b: ((a ** 3).reveal(), (a ** 1).reveal()), 2, x, x)
    np.testing.assert_allclose(res[0], x ** 3, atol=4 * ULP)
    np.testing.assert_array_equal(res[1], x)
