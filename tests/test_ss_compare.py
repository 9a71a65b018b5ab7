"""Zero tests on XOR shares and equality on arithmetic shares, for every triple source."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import mpc
from mpc.crypto.random import PRG, new_seed
from mpc.ss import beaver, compare

SOURCES = {"dealer": {"triples": "dealer"}, "ot": {"triples": "ot"},
           "paillier": {"triples": "paillier", "paillier_bits": 512}}
PARTIES = ["alice", "bob"]


def _all_zero(words, bits, source, parties=PARTIES, transport="memory"):
    """Share ``words`` XOR-wise (a random mask on the first party), run all_zero_xor, open."""
    mask = [PRG(new_seed()).uint64(words.shape) for _ in parties[1:]]
    shares = [words ^ np.bitwise_xor.reduce(mask, axis=0) if mask else words, *mask]

    def fn(ctx):
        out = compare.all_zero_xor(ctx, shares[ctx.rank], bits)
        assert out.dtype == np.uint64 and out.shape == words.shape
        return beaver.open_bits(ctx, out)

    return mpc.run_local(fn, parties, transport=transport, timeout=300, **SOURCES[source])[parties[0]]


def _expected(words, bits):
    low = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    return ((words & low) == 0).astype(np.uint64)


words_st = st.integers(1, 200).flatmap(lambda n: hnp.arrays(
    np.uint64, n, elements=st.one_of(st.sampled_from([0, 1, 1 << 63, 1 << 31, 1 << 32, 2 ** 64 - 1]),
                                     st.integers(0, 2 ** 64 - 1))))


@pytest.mark.parametrize("source", ["dealer", "ot", "paillier"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(words=words_st, bits=st.sampled_from([64, 63, 33, 32, 17, 8, 5, 1]))
def test_all_zero_xor_against_numpy(source, words, bits):
    words = words.copy()
    words[::3] &= ~np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0)   # many zeros
    np.testing.assert_array_equal(_all_zero(words, bits, source), _expected(words, bits))


@pytest.mark.parametrize("n", [1, 63, 64, 65, 4097])
def test_all_zero_xor_every_single_bit(n):
    """Each one-bit word (and zero) at every lane position of a packed tree."""
    rng = np.random.default_rng(n)
    words = np.uint64(1) << rng.integers(0, 64, n).astype(np.uint64)
    words[rng.random(n) < 0.3] = 0
    np.testing.assert_array_equal(_all_zero(words, 64, "ot"), _expected(words, 64))


def test_all_zero_xor_three_parties_and_grpc():
    words = np.array([0, 5, 1 << 40, 0, 7 << 61], dtype=np.uint64)
    np.testing.assert_array_equal(_all_zero(words, 64, "dealer", ["a", "b", "c"]), _expected(words, 64))
    np.testing.assert_array_equal(_all_zero(words, 41, "ot", transport="grpc"), _expected(words, 41))


def test_all_zero_xor_rejects_bad_widths():
    with pytest.raises(Exception, match="bits must be in 1..64"):
        mpc.run_local(lambda ctx: compare.all_zero_xor(ctx, np.zeros(2, np.uint64), 0), PARTIES)
