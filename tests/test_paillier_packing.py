"""Packed Paillier vectors: slot layout, sums, slack exhaustion, corruption."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mpc.paillier as pl
from mpc.paillier import packing

I64 = st.integers(-(2**63), 2**63 - 1)


@pytest.fixture(scope="module")
def keys():
    return pl.generate_keypair(1024, insecure=True)


def test_slots_at_2048_bits():
    pk = pl.PublicKey(2**2047 + 1, 2)  # only n's size matters for the layout
    assert pl.slots_per_ciphertext(pk) == 25 >= 20
    assert pl.slots_per_ciphertext(pk, 32) == 21 >= 20


@settings(max_examples=25, deadline=None)
@given(st.lists(I64, min_size=0, max_size=40))
def test_packed_round_trip(keys, values):
    pk, sk = keys
    arr = np.array(values, dtype=np.int64)
    p = pk.encrypt_packed(arr)
    assert len(p) == len(arr) and len(p.ciphertexts) == -(-len(arr) // p.slots)
    np.testing.assert_array_equal(sk.decrypt_packed(p), arr)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(I64, I64, I64), min_size=1, max_size=30))
def test_packed_sums_exact_and_wrapping(keys, rows):
    pk, sk = keys
    a, b, c = (np.array(col, dtype=np.int64) for col in zip(*rows, strict=True))
    total = pk.encrypt_packed(a) + pk.encrypt_packed(b) + c
    assert total.terms == 3
    exact = [int(x) + int(y) + int(z) for x, y, z in rows]
    wrapped = np.array([(v + 2**63) % 2**64 - 2**63 for v in exact], dtype=np.int64)
    np.testing.assert_array_equal(sk.decrypt_packed(total, wrap=True), wrapped)
    if all(-(2**63) <= v < 2**63 for v in exact):
        np.testing.assert_array_equal(sk.decrypt_packed(total), wrapped)
    else:
        with pytest.raises(OverflowError, match="int64"):
            sk.decrypt_packed(total)


def test_packed_sum_over_ciphertexts(keys):
    pk, sk = keys
    rng = np.random.default_rng(5)
    values = rng.integers(-(2**40), 2**40, size=100)
    p = pk.encrypt_packed(values)
    s = p.sum()
    assert s.terms == len(p.ciphertexts) and len(s) == p.slots
    assert int(sk.decrypt_packed(s).sum()) == int(values.sum())
    np.testing.assert_array_equal(sk.decrypt_packed(p * 3), values * 3)


def test_slot_boundaries(keys):
    pk, sk = keys
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    slots = pk.encrypt_packed([0]).slots
    values = np.array([hi, lo] * slots + [hi], dtype=np.int64)  # spans slot and ciphertext edges
    p = pk.encrypt_packed(values)
    np.testing.assert_array_equal(sk.decrypt_packed(p), values)
    np.testing.assert_array_equal(sk.decrypt_packed(p + ~values), np.full_like(values, -1))  # x + ~x = -1
    with pytest.raises(OverflowError):
        sk.decrypt_packed(p + p)
    np.testing.assert_array_equal(sk.decrypt_packed(p + p, wrap=True), values * 2)  # numpy wraps too


def test_slack_exhaustion_raises_before_overflow(keys):
    pk, sk = keys
    hi = np.iinfo(np.int64).max
    p = pk.encrypt_packed([hi, -1, 5], slack_bits=8)
    assert p.max_terms == 256
    full = p * 255 + p  # exactly 256 terms: still exact
    assert full.terms == 256
    out = sk.decrypt_packed(full, wrap=True)
    np.testing.assert_array_equal(out, np.array([hi, -1, 5], dtype=np.int64) * 256)
    small = pk.encrypt_packed([-1, 5, -(2**54)], slack_bits=8) * 256  # 256 terms, sums fit int64
    np.testing.assert_array_equal(sk.decrypt_packed(small), [-256, 1280, -(2**62)])
    with pytest.raises(OverflowError, match="256"):
        full + p
    with pytest.raises(OverflowError):
        p * 257
    with pytest.raises(OverflowError):
        full + np.array([1, 2, 3])
    q = pk.encrypt_packed(np.arange(3 * p.slots), slack_bits=8)
    with pytest.raises(OverflowError):
        (q * 100).sum()  # 3 ciphertexts x 100 terms > 256


def test_packed_bad_input(keys):
    pk, sk = keys
    pk2, sk2 = pl.generate_keypair(1024, insecure=True)
    p = pk.encrypt_packed([1, 2, 3])
    with pytest.raises(TypeError, match="int64"):
        pk.encrypt_packed(np.array([1.5]))
    with pytest.raises(ValueError, match="uint64"):
        pk.encrypt_packed(np.array([2**64 - 1], dtype=np.uint64))
    with pytest.raises(ValueError, match="slack_bits"):
        pk.encrypt_packed([1], slack_bits=12)
    with pytest.raises(ValueError, match="different public keys"):
        p + pk2.encrypt_packed([1, 2, 3])
    with pytest.raises(ValueError, match="different public key"):
        sk2.decrypt_packed(p)
    with pytest.raises(ValueError, match="layouts differ"):
        p + pk.encrypt_packed([1, 2])
    with pytest.raises(ValueError, match="layouts differ"):
        p + pk.encrypt_packed([1, 2, 3], slack_bits=24)
    with pytest.raises(TypeError):
        p * -1
    with pytest.raises(TypeError):
        sk.decrypt_packed(pk.encrypt([1]))
    with pytest.raises(TypeError):
        sk.decrypt(p)


def test_corrupt_packed_plaintext_detected(keys):
    pk, sk = keys
    p = pk.encrypt_packed([1, 2, 3])
    garbage = pl.PackedEncryptedVector(pk, pk.raw_encrypt([(1 << 1000) + 12345]), 3, p.slack_bits)
    with pytest.raises(ValueError, match="corrupt"):
        sk.decrypt_packed(garbage)
    wrong_terms = pl.PackedEncryptedVector(pk, (p * 5).ciphertexts, 3, p.slack_bits, terms=1)
    with pytest.raises(ValueError, match="corrupt"):
        sk.decrypt_packed(wrong_terms)


def test_pack_unpack_layout():
    raws = packing.pack(np.array([0, -1, 5], dtype=np.int64), slots=2, slack_bits=16)
    assert raws[0] == (2**63) + ((2**63 - 1) << 80)
    assert raws[1] == 2**63 + 5 + (2**63 << 80)  # padding slot encodes 0
    out = packing.unpack(raws, 3, 2, 16, terms=1, wrap=False)
    np.testing.assert_array_equal(out, [0, -1, 5])
