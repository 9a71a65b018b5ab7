"""Paillier keys, EncryptedVector round trips and homomorphic identities, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpc.paillier as pl
from mpc.paillier import raw

I64 = st.integers(-(2**63), 2**63 - 1)
BIG = st.integers(-(2**300), 2**300)


@pytest.fixture(scope="module")
def keys():
    return pl.generate_keypair(1024, insecure=True)


@pytest.fixture(scope="module")
def other_keys():
    return pl.generate_keypair(1024, insecure=True)


def test_keygen_refuses_short_keys():
    with pytest.raises(ValueError, match="insecure"):
        pl.generate_keypair(1024)
    with pytest.raises(ValueError):
        pl.generate_keypair(1023, insecure=True)


def test_keygen_shape(keys):
    pk, sk = keys
    assert pk.n_bits == 1024 and sk.p * sk.q == pk.n and sk.p != sk.q
    assert str(int(sk.p)) not in repr(sk) and str(int(sk.q)) not in repr(sk)
    assert sk.p % 4 == 3 and sk.q % 4 == 3  # Blum primes: -x² is a non-residue mod p and q
    assert pl.PublicKey(pk.n, pk.h_s) == pk and hash(pl.PublicKey(pk.n, pk.h_s)) == hash(pk)
    assert pl.PublicKey(pk.n, pk.h_s, textbook_rerandomise=True) != pk
    with pytest.raises(ValueError, match="base"):
        pl.PublicKey(pk.n, 1)
    with pytest.raises(ValueError, match="base"):
        pl.PublicKey(pk.n, sk.p)


def test_round_trip_2048():
    pk, sk = pl.generate_keypair()
    assert pk.n_bits == 2048
    values = np.array([0, 1, -1, 2**63 - 1, -(2**63), 123456789], dtype=np.int64)
    out = sk.decrypt(pk.encrypt(values))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, values)


@settings(max_examples=25, deadline=None)
@given(st.lists(I64, min_size=1, max_size=12))
def test_round_trip_int64(keys, values):
    pk, sk = keys
    arr = np.array(values, dtype=np.int64)
    np.testing.assert_array_equal(sk.decrypt(pk.encrypt(arr)), arr)
    np.testing.assert_array_equal(sk.decrypt(pk.encrypt(values)), arr)


@settings(max_examples=25, deadline=None)
@given(st.lists(BIG, min_size=1, max_size=8))
def test_round_trip_big_ints(keys, values):
    pk, sk = keys
    out = sk.decrypt(pk.encrypt(values))
    if all(-(2**63) <= v < 2**63 for v in values):
        np.testing.assert_array_equal(out, np.array(values, dtype=np.int64))
    else:
        assert out == values


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(BIG, BIG), min_size=1, max_size=8), st.integers(-(2**40), 2**40))
def test_homomorphic_identities(keys, pairs, k):
    pk, sk = keys
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    ea, eb = pk.encrypt(a), pk.encrypt(b)

    def dec(v):
        out = sk.decrypt(v)
        return [int(x) for x in out]

    assert dec(ea + eb) == [x + y for x, y in pairs]
    assert dec(ea - eb) == [x - y for x, y in pairs]
    assert dec(eb - ea) == [y - x for x, y in pairs]
    assert dec(-ea) == [-x for x in a]
    assert dec(ea * k) == [x * k for x in a]
    assert dec(k * ea) == [x * k for x in a]
    assert dec(ea + k) == [x + k for x in a]
    assert dec(k - ea) == [k - x for x in a]
    assert dec(ea + b) == [x + y for x, y in pairs]
    assert dec(ea.sum()) == [sum(a)]
    assert dec(EncryptedVector_concat(ea, eb)) == a + b


def EncryptedVector_concat(a, b):  # noqa: N802
    return pl.EncryptedVector.concat([a, b])


def test_vector_ops_with_arrays(keys):
    pk, sk = keys
    a = np.array([5, -3, 7, 0], dtype=np.int64)
    ks = np.array([2, -1, 0, 9], dtype=np.int64)
    ea = pk.encrypt(a)
    np.testing.assert_array_equal(sk.decrypt(ea * ks), a * ks)
    np.testing.assert_array_equal(sk.decrypt(ea + ks), a + ks)
    np.testing.assert_array_equal(sk.decrypt(ea - ks), a - ks)
    np.testing.assert_array_equal(sk.decrypt(ea[1:3]), a[1:3])
    np.testing.assert_array_equal(sk.decrypt(ea[2]), a[2:3])
    np.testing.assert_array_equal(sk.decrypt(ea[np.array([3, 0])]), a[[3, 0]])
    np.testing.assert_array_equal(sk.decrypt(ea[a > 0]), a[a > 0])
    np.testing.assert_array_equal(sk.decrypt(ea + ea[0]), a + a[0])  # length-1 broadcast
    assert len(ea) == 4 and len(ea.concatenate(ea, ea)) == 12
    with pytest.raises(ValueError, match="length"):
        ea + ea[:2]


def test_boundaries(keys):
    pk, sk = keys
    m = int(pk.max_int)
    assert sk.decrypt(pk.encrypt([m, -m])) == [m, -m]
    for bad in (m + 1, -m - 1):
        with pytest.raises(ValueError, match="plaintext range"):
            pk.encrypt([0, bad])
    # overflow by homomorphic operations is detected at decryption, never silent
    with pytest.raises(OverflowError, match="overflowed"):
        sk.decrypt(pk.encrypt([m]) + pk.encrypt([m]))
    with pytest.raises(OverflowError):
        sk.decrypt(pk.encrypt([m]) * 2)


def test_fixed_point(keys):
    pk, sk = keys
    x = np.array([1.5, -2.25, 1e-6, 12345.678, 0.0])
    with pytest.raises(TypeError, match="frac_bits"):
        pk.encrypt(x)
    ex = pk.encrypt(x, frac_bits=40)
    out = sk.decrypt(ex)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, x, atol=2**-40)
    np.testing.assert_allclose(sk.decrypt(ex + 0.5), x + 0.5, atol=2**-39)
    np.testing.assert_allclose(sk.decrypt(ex * 3), x * 3, atol=3 * 2**-40)
    ei = pk.encrypt(np.array([1, 2, 3, 4, 5]))
    np.testing.assert_allclose(sk.decrypt(ex + ei), x + [1, 2, 3, 4, 5], atol=2**-39)  # scales aligned
    np.testing.assert_allclose(sk.decrypt(ex.sum()), [x.sum()], atol=2**-36)
    exact = pk.encrypt([0.1], frac_bits=60)
    assert sk.decrypt(exact)[0] == round(0.1 * 2**60) / 2**60
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="NaN"):
            pk.encrypt([bad], frac_bits=8)
    with pytest.raises(ValueError, match="frac_bits"):
        pk.encrypt([1.0], frac_bits=-1)
    with pytest.raises(TypeError, match="integers"):
        ex * 1.5


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=6),
       st.integers(0, 64))
def test_fixed_point_round_trip(keys, xs, fb):
    pk, sk = keys
    out = sk.decrypt(pk.encrypt(xs, frac_bits=fb))
    expected = [round(x * 2**fb) / 2**fb for x in xs]
    np.testing.assert_allclose(out, expected, rtol=1e-15, atol=0)


def test_other_key_refused(keys, other_keys):
    pk, sk = keys
    pk2, sk2 = other_keys
    a, b = pk.encrypt([1, 2]), pk2.encrypt([1, 2])
    with pytest.raises(ValueError, match="different public keys"):
        a + b
    with pytest.raises(ValueError, match="different public key"):
        sk2.decrypt(a)
    with pytest.raises(ValueError, match="different public keys"):
        pl.EncryptedVector.concat([a, b])


def test_bad_values(keys):
    pk, _ = keys
    with pytest.raises(TypeError):
        pk.encrypt(["a"])
    with pytest.raises(TypeError):
        pk.encrypt("abc")
    with pytest.raises(ValueError, match="1-D"):
        pk.encrypt(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(TypeError, match="two ciphertexts"):
        pk.encrypt([1]) * pk.encrypt([1])


def test_rerandomise_changes_ciphertexts_not_plaintexts(keys):
    pk, sk = keys
    a = pk.encrypt([7, -8])
    s = a + a
    assert not s.fresh and a.fresh
    r = s.rerandomise()
    assert r.fresh and all(x != y for x, y in zip(r.ciphertexts, s.ciphertexts, strict=True))
    np.testing.assert_array_equal(sk.decrypt(r), [14, -16])
    assert a.obfuscated() is a


def test_encryption_is_randomised(keys):
    pk, _ = keys
    a, b = pk.encrypt([1, 1]), pk.encrypt([1])
    assert len({*a.ciphertexts, *b.ciphertexts}) == 3


@pytest.mark.parametrize("bits,block", [(64, 1), (320, 1), (256, 8), (1152, 8)])
def test_comb_table_matches_powmod(keys, bits, block):
    import os

    import gmpy2

    pk, _ = keys
    table = raw.CombTable(pk.h_s, pk.nsquare, bits, block=block)
    a = bits // 8
    digit_sets = [bytes(a), bytes([255]) * a, bytes([1]) + bytes(a - 1), bytes(a - 1) + bytes([128])]
    digit_sets += [os.urandom(a) for _ in range(4)]
    for d in digit_sets:
        e = table.exponent(d)
        assert 0 <= e < 2**bits
        assert table.power(d) == gmpy2.powmod(pk.h_s, e, pk.nsquare)
    assert table.exponent(bytes([255]) * a) == 2**bits - 1  # digits <-> exponents: a bijection
    with pytest.raises(ValueError):
        raw.CombTable(pk.h_s, pk.nsquare, 100, block=8)


def test_large_batch_uses_pool(keys):
    pk, sk = keys
    values = np.arange(-300, 300, dtype=np.int64) * 1_000_000_007
    assert len(values) >= raw.PARALLEL_MIN
    ev = pk.encrypt(values)
    np.testing.assert_array_equal(sk.decrypt(ev), values)
    np.testing.assert_array_equal(sk.decrypt((ev + ev).rerandomise()), 2 * values)


MIXED = st.one_of(I64, st.sampled_from([2**63, -(2**63) - 1, 2**64, 2**72 + 5 - 2**63, -(2**72)]),
                  st.integers(-(2**400), 2**400))


@settings(max_examples=30, deadline=None)
@given(st.lists(MIXED, min_size=1, max_size=30))
def test_fast_decryption_equals_exact(keys, values):
    pk, sk = keys
    ev = pk.encrypt(values)
    assert raw.decrypt(ev.ciphertexts, sk._crt) == raw._decrypt_exact(ev.ciphertexts, sk._crt)
    out = sk.decrypt(ev)
    assert [int(x) for x in out] == values


def test_fast_decryption_carry_is_caught(keys):
    pk, sk = keys
    batch = (sk.p.bit_length() - 1) // raw.SMALL_SLOT_BITS
    assert batch >= raw.SMALL_MIN_BATCH
    # slot 0 overflows into slot 1 by exactly one unit: packing alone would read [5, 8]
    values = [2**72 + 5 - 2**63, 7] + [0] * (batch - 2)
    ev = pk.encrypt(values)
    k = sk._crt
    assert raw._decrypt_batch_small(list(ev.ciphertexts), k) is None
    assert sk.decrypt(ev) == values
    small = pk.encrypt(np.arange(batch, dtype=np.int64) - 3)
    got = raw._decrypt_batch_small(list(small.ciphertexts), k)
    assert got == raw._decrypt_exact(small.ciphertexts, k)


def test_overflow_still_detected_with_fast_path(keys):
    pk, sk = keys
    m = int(pk.max_int)
    ev = pk.encrypt([1] * 20 + [m])
    with pytest.raises(OverflowError):
        sk.decrypt(ev + ev)


@pytest.mark.slow
def test_large_vectors_2048_bits():
    pk, sk = pl.generate_keypair()
    rng = np.random.default_rng(11)
    values = rng.integers(-(2**63), 2**63 - 1, size=20_000, dtype=np.int64)
    ev = pk.encrypt(values)
    np.testing.assert_array_equal(sk.decrypt(ev), values)
    doubled = ev.rerandomise() + ev
    assert [int(x) for x in sk.decrypt(doubled[:2000])] == [int(v) * 2 for v in values[:2000]]
    packed = pk.encrypt_packed(values)
    np.testing.assert_array_equal(sk.decrypt_packed(packed.sum(), wrap=True).sum(), values.sum())


def test_mixed_scales_and_iteration(keys):
    pk, sk = keys
    a = pk.encrypt([1.25, -0.5], frac_bits=8)
    b = pk.encrypt([3, 4])
    both = pl.EncryptedVector.concat([b, a])
    assert both.frac_bits == 8
    np.testing.assert_array_equal(sk.decrypt(both), [3.0, 4.0, 1.25, -0.5])
    np.testing.assert_array_equal(sk.decrypt(a - 0.25), [1.0, -0.75])
    np.testing.assert_array_equal(sk.decrypt(2.5 - a), [1.25, 3.0])
    np.testing.assert_array_equal(sk.decrypt(b - np.array([1, 1])), [2, 3])
    assert [sk.decrypt(x)[0] for x in b] == [3, 4]
    with pytest.raises(TypeError, match="frac_bits"):
        b + 0.5


def test_public_key_from_wire_validated():
    from mpc.paillier import wire
    from mpc.runtime.codec import CodecError

    for bad in (2**1024, 15, "x", -(2**1023 + 1)):
        with pytest.raises(CodecError):
            wire.public_key_from_wire({"n": bad})
    with pytest.raises(CodecError):
        wire.public_key_from_wire({"n": 2**1023 + 1, "g": 5})
