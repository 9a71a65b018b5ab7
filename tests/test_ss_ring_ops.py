"""The SharedTensor operations the statistics are written with, against numpy: shifts on
the ring integers, top-bit one-hot and bit length, scale_pow2, min_max, sum_of_locals,
at_precision (which leaves the job's options alone) and ss.quantile on rows given their
minimum and range bits (quickselect with the dealer, bitwise search without)."""

from __future__ import annotations

import numpy as np
import pytest

import mpc
from mpc import ss

RNG = np.random.default_rng(5)          # test data only


def _ring_ops(ctx, x):
    t = ss.share(ctx, x if ctx.party == "a" else None, "a")            # integers
    pos = t - t.min()
    oh = pos.top_bit_onehot()
    scaled = ss.scale_pow2(pos, oh, [3 - m for m in range(62)])       # pos * 2^(3 - msb(pos))
    lo, hi = ss.min_max(t)
    rows_lo, rows_hi = ss.min_max(t.reshape(2, -1), axis=1)
    local = ss.sum_of_locals(ctx, np.arange(4) * (ctx.rank + 1))
    return ((t << 3).reveal(), (t >> 2).reveal(), t.rshift_hidden(np.array([0, 1] * 4), 4).reveal(),
            t.rshift_private(3).reveal(), pos.bit_length().reveal(), scaled.reveal(),
            lo.reveal(), hi.reveal(), rows_lo.reveal(), rows_hi.reveal(), local.reveal())


def test_ring_ops_match_numpy():
    x = np.array([5, -3, 1000, 7, 0, 123456, -99, 64])
    out = mpc.run_local(_ring_ops, ["a", "b", "c"], args={p: (x,) for p in "abc"}, timeout=60)["b"]
    sl, sr, hid, priv, blen, scaled, lo, hi, rlo, rhi, local = out
    np.testing.assert_array_equal(sl, x * 8)
    assert np.all(np.abs(sr - np.floor(x / 4)) <= 1)
    assert np.all(np.abs(hid - np.floor(x / 2 ** np.array([0, 1] * 4))) <= 1)
    assert np.all(np.abs(priv - np.floor(x / 8)) <= 1)
    pos = x - x.min()
    np.testing.assert_array_equal(blen, [int(v).bit_length() for v in pos])
    want = [v * 2.0 ** (3 - (int(v).bit_length() - 1)) if v else 0 for v in pos]
    assert np.all(np.abs(scaled - np.floor(want)) <= 1)
    assert (lo, hi) == (x.min(), x.max())
    np.testing.assert_array_equal(rlo, x.reshape(2, -1).min(axis=1))
    np.testing.assert_array_equal(rhi, x.reshape(2, -1).max(axis=1))
    np.testing.assert_array_equal(local, np.arange(4) * 6)              # 1 + 2 + 3


def test_at_precision_is_carried_by_the_tensor():
    x = np.array([0.3, 2.0, 9.5])

    def job(ctx):
        t = ss.share(ctx, x if ctx.party == "a" else None, "a")          # 16 fractional bits
        fine = t.at_precision(24)
        out = (fine * 1.1 * fine, ss.inv_sqrt(fine), (t * 1.1).frac_bits, fine.working_bits)
        assert "frac_bits" not in ctx.options                            # no job option changed
        return out[0].frac_bits, out[0].reveal(), out[1].reveal(), out[2], out[3]

    frac, prod, isq, plain_frac, bits = mpc.run_local(job, ["a", "b"], timeout=60)["a"]
    assert frac == 24 and plain_frac == 16 and bits == 24
    xe = np.round(x * 2 ** 16) / 2 ** 16                                # x as shared
    np.testing.assert_allclose(prod, xe * 1.1 * xe, atol=2.0 ** -19)
    np.testing.assert_allclose(isq, 1 / np.sqrt(xe), rtol=1e-5)


@pytest.mark.parametrize("triples", ["dealer", pytest.param("paillier", marks=pytest.mark.slow)])
def test_quantile_of_rows_given_minimum_and_range(triples):
    n = 21 if triples == "dealer" else 7
    x = np.stack([RNG.integers(0, 50, n), RNG.integers(-9, 9, n)])
    qs = [0.0, 0.33, 0.5, 1.0]

    def job(ctx):
        t = ss.share(ctx, x if ctx.party == "a" else None, "a")
        lo, hi = ss.min_max(t, axis=1)
        rb = [int(v).bit_length() for v in (hi - lo).reveal()]
        lin = ss.quantile(t, qs, low=lo, range_bits=rb)
        if triples != "dealer":
            return lin.frac_bits, lin.reveal(), None, None
        low = ss.quantile(t, qs, "lower", low=lo, range_bits=rb)
        return lin.frac_bits, lin.reveal(), low.reveal(), ss.quantile(t[0], qs, "higher").reveal()

    frac, lin, low, higher = mpc.run_local(job, ["a", "b"], timeout=600, triples=triples, frac_bits=8)["b"]
    assert frac == 8                                                    # integers interpolated at frac_bits
    np.testing.assert_allclose(lin, np.quantile(x, qs, axis=1).T, atol=2.0 ** -8)
    if triples == "dealer":
        np.testing.assert_array_equal(low, np.quantile(x, qs, axis=1, method="lower").T)
        np.testing.assert_array_equal(higher, np.quantile(x[0], qs, method="higher"))
