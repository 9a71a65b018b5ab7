"""Curve layer: hashing with type separation, X25519 commutativity, Ed25519 inverses."""

from __future__ import annotations

import os

import numpy as np
import pytest

from mpc.crypto import curve


def _random_points(n: int) -> np.ndarray:
    return np.frombuffer(os.urandom(32 * n), dtype=np.uint8).reshape(n, 32).copy()


def test_hash_separates_types_and_is_deterministic():
    d = curve.hash_items([1, 2])
    assert d.shape == (2, 32) and d.dtype == np.uint8
    assert not np.array_equal(d[0], curve.hash_items(["1"])[0])
    assert not np.array_equal(curve.hash_items(["1"])[0], curve.hash_items([b"1"])[0])
    assert np.array_equal(d, curve.hash_items(np.array([1, 2], dtype=np.int32)))
    assert np.array_equal(curve.hash_items(["é", ""]), curve.hash_items(np.array(["é", ""])))


@pytest.mark.parametrize("bad, exc", [([1, "1"], TypeError), (["a", None], ValueError),
                                      ([1.5], TypeError), ([True], TypeError)])
def test_item_kind_rejects_bad_input(bad, exc):
    with pytest.raises(exc, match="position"):
        curve.item_kind(bad)


def test_x25519_clamped_scalars_commute_on_curve_and_twist():
    # Random 32-byte strings are u-coordinates on the curve or on its twist (about half each).
    pts = _random_points(64)
    k1, k2 = curve.x25519_key(), curve.x25519_key()
    a = curve.scalar_mul("x25519", k2, curve.scalar_mul("x25519", k1, pts))
    b = curve.scalar_mul("x25519", k1, curve.scalar_mul("x25519", k2, pts))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, curve.scalar_mul("x25519", k1, pts))


def test_x25519_key_is_clamped_and_fresh():
    k = curve.x25519_key()
    assert k[0] & 7 == 0 and k[31] & 128 == 0 and k[31] & 64
    assert k != curve.x25519_key()


def test_ed25519_inverse_removes_blinding_and_keys_commute():
    pts = curve.hash_to_group("ed25519", curve.hash_items(list(range(20))))
    t, k = curve.ed25519_scalar(), curve.ed25519_scalar()
    blinded = curve.scalar_mul("ed25519", t, pts)
    back = curve.scalar_mul("ed25519", curve.ed25519_scalar_invert(t), blinded)
    assert np.array_equal(back, pts)
    # k·t^-1 applied after t gives k, as the N-party PSI uses it.
    kt = curve.ed25519_scalar_mul(k, curve.ed25519_scalar_invert(t))
    assert np.array_equal(curve.scalar_mul("ed25519", kt, blinded), curve.scalar_mul("ed25519", k, pts))


def test_pool_and_inline_paths_agree():
    pts = _random_points(1500)
    k = curve.x25519_key()
    pooled = curve.scalar_mul("x25519", k, pts, min_parallel=1)
    inline = curve.scalar_mul("x25519", k, pts, min_parallel=10**9)
    assert np.array_equal(pooled, inline)
    assert curve.scalar_mul("x25519", k, pts[:0]).shape == (0, 32)


def test_low_order_point_is_an_error():
    with pytest.raises(ValueError, match="low order"):
        curve.scalar_mul("x25519", curve.x25519_key(), np.zeros((1, 32), dtype=np.uint8))


def test_numpy_int_ids_hash_like_python_ints():
    ids = np.array([-2**63, 2**63 - 1, -1, 0, 7], dtype=np.int64)
    assert np.array_equal(curve.hash_items(ids), curve.hash_items([int(v) for v in ids]))
    big = np.array([2**64 - 1, 0], dtype=np.uint64)
    assert np.array_equal(curve.hash_items(big), curve.hash_items([2**64 - 1, 0]))
