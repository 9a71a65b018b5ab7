"""phe interop: keys and ciphertexts both ways, exponents, errors."""

from __future__ import annotations

import phe
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpc.paillier as pl


@pytest.fixture(scope="module")
def phe_keys():
    return phe.generate_paillier_keypair(n_length=1024)


@pytest.fixture(scope="module")
def keys(phe_keys):
    return pl.PublicKey.from_phe(phe_keys[0]), pl.PrivateKey.from_phe(phe_keys[1])


def test_key_conversions(phe_keys, keys):
    ppk, psk = phe_keys
    pk, sk = keys
    assert pk.n == ppk.n and pk.to_phe() == ppk
    back = sk.to_phe()
    assert back == psk and back.public_key == ppk
    # phe keys have no DJN base: one derived from n, the same wherever the key is imported
    assert pk.textbook_rerandomise and pl.PublicKey.from_phe(ppk) == pk and pk.h_s == pl.raw.derived_base(ppk.n)
    pk2, sk2 = pl.generate_keypair(1024, insecure=True)
    back2 = pl.PublicKey.from_phe(pk2.to_phe())
    assert back2.n == pk2.n and back2 != pk2  # to_phe drops the owner's base
    assert pl.PrivateKey.from_phe(sk2.to_phe()) == sk2


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(-(2**200), 2**200), min_size=1, max_size=6))
def test_integers_both_ways(phe_keys, keys, values):
    ppk, psk = phe_keys
    pk, sk = keys
    from_phe = pl.EncryptedVector.from_phe([ppk.encrypt(v) for v in values])
    assert from_phe.frac_bits == 0
    assert [int(x) for x in sk.decrypt(from_phe)] == values
    to_phe = pk.encrypt(values).to_phe()
    assert [psk.decrypt(x) for x in to_phe] == values
    # homomorphic mixing after conversion
    mixed = pl.EncryptedVector.from_phe(to_phe) + from_phe
    assert [int(x) for x in sk.decrypt(mixed)] == [2 * v for v in values]
    sums = [a + b for a, b in zip(to_phe, from_phe.to_phe(), strict=True)]
    assert [psk.decrypt(x) for x in sums] == [2 * v for v in values]


def test_floats_and_exponents(phe_keys, keys):
    ppk, psk = phe_keys
    pk, sk = keys
    xs = [1.5, -0.001, 3.0, 1e5, 2**-30]
    nums = [ppk.encrypt(x) for x in xs] + [ppk.encrypt(48, precision=16)]  # precision 16 -> exponent 1
    assert len({x.exponent for x in nums}) > 1
    expected = [psk.decrypt(x) for x in nums]
    assert expected[-1] == 48
    ev = pl.EncryptedVector.from_phe(nums)
    assert ev.frac_bits == -4 * min(x.exponent for x in nums)
    assert list(sk.decrypt(ev)) == expected  # exact: same fixed-point values
    back = ev.to_phe()
    assert [psk.decrypt(x) for x in back] == expected
    # frac_bits not a multiple of 4: rounded up exactly
    f = pk.encrypt([0.75, -3.5], frac_bits=6)
    assert [psk.decrypt(x) for x in f.to_phe()] == [0.75, -3.5]
    # only positive exponents: brought to exponent 0 (integers)
    big = pl.EncryptedVector.from_phe([ppk.encrypt(3 * 16**2, precision=16**2)])
    assert big.frac_bits == 0 and list(sk.decrypt(big)) == [768]


def test_interop_errors(phe_keys):
    ppk, _ = phe_keys
    other, _ = phe.generate_paillier_keypair(n_length=1024)
    with pytest.raises(ValueError, match="different public keys"):
        pl.EncryptedVector.from_phe([ppk.encrypt(1), other.encrypt(1)])
    with pytest.raises(ValueError, match="at least one"):
        pl.EncryptedVector.from_phe([])
    with pytest.raises(TypeError, match="EncryptedNumber"):
        pl.EncryptedVector.from_phe([1, 2])
    with pytest.raises(TypeError):
        pl.PublicKey.from_phe(object())
    with pytest.raises(TypeError):
        pl.PrivateKey.from_phe(ppk)
