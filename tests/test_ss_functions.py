"""Non-linear functions (sort, quantiles, reciprocal, sqrt, inverse sqrt) against numpy."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mpc
from mpc import ss

F = 16
ULP = 2.0 ** -F
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def q(x):
    return np.round(np.asarray(x, dtype=np.float64) * 2 ** F) / 2 ** F


def run1(fn, x, n_parties=2, **options):
    parties = ["p0", "p1", "p2"][:n_parties]
    args = {p: (x if p == "p0" else None,) for p in parties}
    out = mpc.run_local(lambda ctx, v: fn(ctx, ss.share(ctx, v, "p0")), parties, args=args,
                        timeout=120, **options)
    return out["p1"]


values = st.one_of(st.floats(-1e4, 1e4), st.integers(-3, 3).map(float), st.floats(-1e-3, 1e-3))


@pytest.mark.parametrize("n_parties", [2, 3])
@SETTINGS
@given(x=hnp.arrays(np.float64, st.integers(1, 12), elements=values),
       qs=st.lists(st.floats(0, 1), min_size=1, max_size=3))
def test_sort_and_quantiles(n_parties, x, qs):
    def fn(ctx, t):
        s = ss.sort(t)
        return (s.reveal(), ss.quantile(s, qs, method="lower", is_sorted=True).reveal(),
                ss.quantile(s, qs, method="higher", is_sorted=True).reveal(),
                ss.quantile(s, qs, is_sorted=True).reveal(), ss.median(t).reveal(),
                ss.quantile(s, qs, method="nearest", is_sorted=True).reveal())

    srt, lower, higher, linear, med, nearest = run1(fn, x, n_parties)
    qx = q(x)
    np.testing.assert_array_equal(srt, np.sort(qx))
    np.testing.assert_array_equal(lower, np.quantile(qx, qs, method="lower"))
    np.testing.assert_array_equal(higher, np.quantile(qx, qs, method="higher"))
    np.testing.assert_array_equal(nearest, np.quantile(qx, qs, method="nearest"))
    gap = np.ptp(qx) * 2.0 ** -(F + 1)   # linear interpolation weight in fixed point
    np.testing.assert_allclose(linear, np.quantile(qx, qs), rtol=1e-12, atol=gap + 2 * ULP)
    np.testing.assert_allclose(med, np.median(qx), rtol=1e-12, atol=gap + 2 * ULP)


def test_sort_2d_along_last_axis_and_ties():
    x = np.array([[3.0, 1.0, 3.0, -2.0, 0.0], [5.0, 5.0, 5.0, 5.0, -5.0]])
    out = run1(lambda ctx, t: ss.sort(t).reveal(), x)
    np.testing.assert_array_equal(out, np.sort(x, axis=-1))


def test_max_argmax_along_axis():
    x = np.array([[3.0, 7.0, 7.0], [-1.0, -5.0, -0.5], [0.0, 0.0, 0.0]])
    out = run1(lambda ctx, t: (t.max(axis=1).reveal(), t.argmax(axis=1).reveal(),
                               t.min(axis=0).reveal(), t.argmin(axis=0).reveal()), x, 3)
    np.testing.assert_array_equal(out[0], x.max(axis=1))
    np.testing.assert_array_equal(out[1], x.argmax(axis=1))
    np.testing.assert_array_equal(out[2], x.min(axis=0))
    np.testing.assert_array_equal(out[3], x.argmin(axis=0))


positive = st.one_of(st.floats(2.0 ** -12, 1.0), st.floats(1.0, 1e4), st.floats(1e4, 1e8))


@pytest.mark.parametrize("n_parties", [2, 3])
@SETTINGS
@given(x=hnp.arrays(np.float64, st.integers(1, 12), elements=positive),
       signs=hnp.arrays(np.float64, 12, elements=st.sampled_from([1.0, -1.0])))
def test_reciprocal_sqrt_inv_sqrt(n_parties, x, signs):
    signed = x * signs[:x.size]

    def fn(ctx, t):
        s = ss.share(ctx, signed if ctx.party == "p0" else None, "p0")
        return (ss.reciprocal(s).reveal(), ss.sqrt(t).reveal(), ss.inv_sqrt(t).reveal(),
                (t / s).reveal(), (3.0 / s).reveal())

    rec, root, inv, ratio, rdiv = run1(fn, x, n_parties)
    qx, qs = q(x), q(signed)
    # relative 2^-(f-3) where the result is well above 2^-f, a few ulp otherwise
    np.testing.assert_allclose(rec, 1 / qs, rtol=2.0 ** -(F - 3), atol=4 * ULP)
    np.testing.assert_allclose(root, np.sqrt(qx), rtol=2.0 ** -(F - 3), atol=4 * ULP)
    np.testing.assert_allclose(inv, 1 / np.sqrt(qx), rtol=2.0 ** -(F - 3), atol=4 * ULP)
    np.testing.assert_allclose(rdiv, 3.0 / qs, rtol=2.0 ** -(F - 3), atol=4 * ULP)
    np.testing.assert_allclose(ratio, np.sign(signed), rtol=0, atol=4 * ULP)


def test_functions_at_zero():
    out = run1(lambda ctx, t: (ss.reciprocal(t).reveal(), ss.sqrt(t).reveal(), ss.inv_sqrt(t).reveal()),
               np.zeros(3))
    for r in out:
        np.testing.assert_array_equal(r, np.zeros(3))


def test_correlation_from_shares():
    rng = np.random.default_rng(3)
    a = rng.normal(size=500) * 10
    b = 0.6 * a + rng.normal(size=500) * 8

    def fn(ctx, v):
        x = ss.share(ctx, a if ctx.party == "p0" else None, "p0")
        y = ss.share(ctx, b if ctx.party == "p1" else None, "p1")
        dx, dy = x - x.mean(), y - y.mean()
        sxy, sxx, syy = (dx * dy).sum(), (dx * dx).sum(), (dy * dy).sum()
        # divide keeps absolute precision; sqrt keeps relative precision
        r1 = ss.divide(sxy, ss.sqrt(sxx) * ss.sqrt(syy))
        r2 = (dx * dy).mean() * ss.inv_sqrt((dx * dx).mean()) * ss.inv_sqrt((dy * dy).mean())
        return r1.reveal(), r2.reveal()

    r1, r2 = run1(fn, a)
    assert abs(r1 - np.corrcoef(a, b)[0, 1]) < 1e-4
    assert abs(r2 - np.corrcoef(a, b)[0, 1]) < 1e-3


def test_bit_level_functions_work_in_chunks(monkeypatch):
    import mpc.ss.functions as fn_mod
    monkeypatch.setattr(fn_mod, "CHUNK", 7)
    x = np.linspace(0.5, 300, 20).reshape(4, 5)
    out = run1(lambda ctx, t: (ss.reciprocal(t).reveal(), ss.sqrt(t).reveal(), (2.0 / t).reveal()), x)
    np.testing.assert_allclose(out[0], 1 / q(x), rtol=2.0 ** -(F - 3), atol=4 * ULP)
    np.testing.assert_allclose(out[1], np.sqrt(q(x)), rtol=2.0 ** -(F - 3), atol=4 * ULP)
    np.testing.assert_allclose(out[2], 2 / q(x), rtol=2.0 ** -(F - 3), atol=4 * ULP)
