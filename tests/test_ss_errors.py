"""Bad input to the secret-sharing engine: clear errors naming what was wrong."""

import numpy as np
import pytest

import mpc
from mpc import ss
from mpc.ss import fixed


def _run(fn, parties=("a", "b"), **opts):
    return mpc.run_local(fn, list(parties), **opts)


def test_value_outside_fixed_point_range_names_owner():
    def fn(ctx):
        return ss.share(ctx, np.array([1.0, 2.0 ** 50]) if ctx.party == "b" else None, "b")

    with pytest.raises(mpc.JobFailed, match="outside the fixed-point range") as info:
        _run(fn)
    assert "'b'" in str(info.value)


def test_nan_and_big_integers_refused():
    with pytest.raises(ValueError, match="NaN"):
        fixed.encode(np.array([np.nan]), 16)
    with pytest.raises(ValueError, match="integer range"):
        fixed.encode_int(np.array([2 ** 62]))


def test_owner_must_be_a_computing_party_and_pass_a_value():
    with pytest.raises(mpc.JobFailed, match="unknown owner"):
        _run(lambda ctx: ss.share(ctx, np.ones(2), "dealer"))
    with pytest.raises(mpc.JobFailed, match="must pass a value"):
        _run(lambda ctx: ss.share(ctx, None, "a"))


def test_shape_mismatch():
    def fn(ctx):
        x = ss.share(ctx, np.ones(3) if ctx.party == "a" else None, "a")
        y = ss.share(ctx, np.ones(4) if ctx.party == "a" else None, "a")
        return x * y

    with pytest.raises(mpc.JobFailed, match="shape mismatch"):
        _run(fn)

    def fn2(ctx):
        x = ss.share(ctx, np.ones((2, 3)) if ctx.party == "a" else None, "a")
        return x @ x

    with pytest.raises(mpc.JobFailed, match="shape mismatch"):
        _run(fn2)

    def fn3(ctx):
        x = ss.share(ctx, np.ones(3) if ctx.party == "a" else None, "a")
        return x + np.ones(5)

    with pytest.raises(mpc.JobFailed, match="shape mismatch"):
        _run(fn3)


def test_mixing_tensors_of_different_jobs():
    first = _run(lambda ctx: ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a"))

    def fn(ctx, old):
        x = ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a")
        return x + old

    # each party gets its own tensor of the first job
    with pytest.raises(mpc.JobFailed, match="different jobs"):
        mpc.run_local(fn, ["a", "b"], args={"a": (first["a"],), "b": (first["b"],)})


def test_reveal_to_unknown_party():
    def fn(ctx):
        x = ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a")
        return x.reveal(to="mallory")

    with pytest.raises(mpc.JobFailed, match="cannot reveal to"):
        _run(fn)

    def fn2(ctx):
        x = ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a")
        return x.reveal(to="dealer")

    with pytest.raises(mpc.JobFailed, match="cannot reveal to"):
        _run(fn2)


def test_bad_public_operands_and_division_by_zero():
    def fn(ctx):
        x = ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a")
        return x + "text"

    with pytest.raises(mpc.JobFailed, match="TypeError"):
        _run(fn)

    def fn2(ctx):
        x = ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a")
        return x / 0

    with pytest.raises(mpc.JobFailed, match="ZeroDivisionError"):
        _run(fn2)


def test_bad_frac_bits_option():
    with pytest.raises(mpc.JobFailed, match="frac_bits"):
        _run(lambda ctx: ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a"), frac_bits=40)


def test_other_frac_bits_work():
    def fn(ctx):
        x = ss.share(ctx, np.array([1.25, -3.5]) if ctx.party == "a" else None, "a")
        return (x * x).reveal()

    out = _run(fn, frac_bits=8)
    np.testing.assert_allclose(out["a"], [1.5625, 12.25], atol=2 ** -8)


def test_secret_index_and_where_condition_checks():
    def fn(ctx):
        x = ss.share(ctx, np.ones(2) if ctx.party == "a" else None, "a")
        return ss.where(x, x, x)

    with pytest.raises(mpc.JobFailed, match="integer 0/1"):
        _run(fn)
