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


# RFC 9380 appendix J.7.2 (curve25519_XMD:SHA-512_ELL2_NU_): field element u -> Q = map_to_curve(u)
# and P = clear_cofactor(Q) = 8Q, x-coordinates, big-endian hex.
RFC9380_ELL2 = [
    ("608d892b641f0328523802a6603427c26e55e6f27e71a91a478148d45b5093cd",
     "51125222da5e763d97f3c10fcc92ea6860b9ccbbd2eb1285728f566721c1e65b",
     "1bb913f0c9daefa0b3375378ffa534bda5526c97391952a7789eb976edfe4d08"),
    ("46f5b22494bfeaa7f232cc8d054be68561af50230234d7d1d63d1d9abeca8da5",
     "7d56d1e08cb0ccb92baf069c18c49bb5a0dcd927eff8dcf75ca921ef7f3e6eeb",
     "7c22950b7d900fa866334262fcaea47a441a578df43b894b4625c9b450f9a026"),
    ("235fe40c443766ce7e18111c33862d66c3b33267efa50d50f9e8e5d252a40aaa",
     "3fbe66b9c9883d79e8407150e7c2a1c8680bee496c62fabe4619a72b3cabe90f",
     "31ad08a8b0deeb2a4d8b0206ca25f567ab4e042746f792f4b7973f3ae2096c52"),
    ("001e92a544463bda9bd04ddbe3d6eed248f82de32f522669efc5ddce95f46f5b",
     "227e0bb89de700385d19ec40e857db6e6a3e634b1c32962f370d26f84ff19683",
     "027877759d155b1997d0d84683a313eb78bdb493271d935b622900459d52ceaa"),
    ("1a68a1af9f663592291af987203393f707305c7bac9c8d63d6a729bdc553dc19",
     "3bcd651ee54d5f7b6013898aab251ee8ecc0688166fce6e9548d38472f6bd196",
     "5fd892c0958d1a75f54c3182a18d286efab784e774d1e017ba2fb252998b5dc1"),
]
P25519 = 2**255 - 19


def _le(x: int) -> np.ndarray:
    return np.frombuffer(x.to_bytes(32, "little"), dtype=np.uint8).reshape(1, 32)


def _double_u(u: int) -> int:
    """x-only doubling on v^2 = u^3 + 486662 u^2 + u."""
    p = P25519
    return (u * u - 1) ** 2 * pow(4 * u * (u * u + 486662 * u + 1), -1, p) % p


@pytest.mark.parametrize("u, qx, px", RFC9380_ELL2)
def test_elligator2_matches_rfc9380_vectors(u, qx, px):
    q = curve.hash_to_group("x25519", _le(int(u, 16)))
    assert int.from_bytes(q.tobytes(), "little") == int(qx, 16)
    assert _double_u(_double_u(_double_u(int(qx, 16)))) == int(px, 16)


def _on_curve(row: np.ndarray) -> bool:
    u = int.from_bytes(row.tobytes(), "little")
    return pow((u**3 + 486662 * u * u + u) % P25519, (P25519 - 1) // 2, P25519) == 1


def test_x25519_hash_lands_on_the_curve_and_keys_commute():
    d = _random_points(2100)                 # uniform digests, as BLAKE2b gives
    assert sum(map(_on_curve, d)) < 1300     # about half of raw strings are on the twist
    pts = curve.hash_to_group("x25519", d)
    assert all(map(_on_curve, pts))
    k1, k2 = curve.x25519_key(), curve.x25519_key()
    one = curve.hash_to_group("x25519", d, k1)
    assert np.array_equal(one, curve.scalar_mul("x25519", k1, pts))
    assert np.array_equal(curve.scalar_mul("x25519", k2, one),
                          curve.scalar_mul("x25519", k1, curve.hash_to_group("x25519", d, k2)))
    # 8 chunks, 2 chunks and the calling thread agree.
    assert np.array_equal(curve.hash_to_group("x25519", d[:700], k1), one[:700])
    assert np.array_equal(curve.submit_hash_to_group("x25519", d, k1, min_parallel=10**9).result(), one)


def test_x25519_map_agrees_with_libsodium_elligator():
    """libsodium's crypto_core_ed25519_from_uniform is the same Elligator 2 map followed by
    the birational map to Edwards and a cofactor 8: so k*Q (X25519, k = 8k') must equal
    k'*from_uniform(d) converted back to u = (1+y)/(1-y)."""
    from nacl._sodium import ffi, lib
    d = _random_points(50)
    k = curve.x25519_key()
    k_over_8 = (int.from_bytes(k, "little") >> 3).to_bytes(32, "little")
    mont = curve.hash_to_group("x25519", d, k)
    ed = curve.hash_to_group("ed25519", d)
    out = ffi.new("unsigned char[32]")
    for i in range(len(d)):
        assert lib.crypto_scalarmult_ed25519_noclamp(out, k_over_8, ed[i].tobytes()) == 0
        y = int.from_bytes(bytes(ffi.buffer(out, 32)), "little") & ((1 << 255) - 1)
        u = (1 + y) * pow(1 - y, -1, P25519) % P25519
        assert u == int.from_bytes(mont[i].tobytes(), "little")


def test_elgamal_decrypts_and_blinding_rerandomises():
    pts = curve.hash_to_group("ed25519", curve.hash_items(list(range(40))))
    s, pub = curve.elgamal_keypair()
    ct = curve.elgamal_encrypt(pub, pts)
    assert ct.shape == (40, 64) and np.array_equal(curve.elgamal_decrypt(s, ct), pts)
    assert not np.array_equal(curve.elgamal_encrypt(pub, pts), ct)   # fresh randomness
    k = curve.ed25519_scalar()
    blinded = curve.elgamal_blind(pub, k, ct, min_parallel=1)
    assert np.array_equal(curve.elgamal_decrypt(s, blinded), curve.scalar_mul("ed25519", k, pts))
    # Fresh randomness: neither half of a blinded ciphertext is k times the input's half.
    assert not np.isin(blinded[:, :32].view("S32").ravel(),
                       curve.scalar_mul("ed25519", k, ct[:, :32]).view("S32").ravel()).any()
    with pytest.raises(ValueError, match="not a valid group element"):
        curve.elgamal_decrypt(s, np.zeros((1, 64), np.uint8))


def test_large_batches_are_cut_into_chunks_on_several_threads(monkeypatch):
    import threading

    from mpc.crypto import pool
    if pool.workers() < 2:
        pytest.skip("one worker: batches run in the calling thread")
    seen = []
    orig = curve._map_chunk

    def spy(group, key, data):
        seen.append((threading.get_ident(), len(data) // 32))
        return orig(group, key, data)

    monkeypatch.setattr(curve, "_map_chunk", spy)
    n = pool.workers() * curve.CHUNKS_PER_WORKER * 256
    d = _random_points(n)
    out = curve.hash_to_group("x25519", d, curve.x25519_key())
    assert out.shape == (n, 32)
    assert sum(rows for _, rows in seen) == n and len(seen) == pool.workers() * curve.CHUNKS_PER_WORKER
    assert len({t for t, _ in seen}) >= 2 and threading.get_ident() not in {t for t, _ in seen}
