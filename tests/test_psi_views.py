"""View tests for the PSI family: what each party receives carries nothing beyond its reveal line.

* Two parties (X25519): every full 32-byte point any party receives is on Curve25519 (never
  on its quadratic twist) and in the prime-order subgroup, and no bit of the receiver's view
  depends on *which* of its items the peer holds (two inputs with the same reveal).
* N parties: the mixer receives the non-leader sets merged and shuffled under ElGamal, so
  it cannot tell which set a value came from, nor compute pairwise intersection sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from mpc.crypto import curve
from mpc.runtime.views import flatten, record_views
from protocols.psi import ecdh_psi, intersection_sum, private_join, psi_cardinality

P = 2**255 - 19
A = 486662
KEY_BITS = 512  # insecure, tests only


def _u(row: np.ndarray) -> int:
    return int.from_bytes(row.tobytes(), "little") & ((1 << 255) - 1)


def on_curve(u: int) -> bool:
    """Legendre symbol of u^3 + A u^2 + u: a square (or 0) iff u is on the curve, not the twist."""
    return pow((u * u * u + A * u * u + u) % P, (P - 1) // 2, P) in (0, 1)


def in_prime_subgroup(u: int) -> bool:
    """u's Edwards point (y = (u-1)/(u+1)) is in libsodium's main subgroup (order l)."""
    from nacl._sodium import lib
    y = (u - 1) * pow(u + 1, -1, P) % P
    return lib.crypto_core_ed25519_is_valid_point(y.to_bytes(32, "little")) == 1


def full_points(view) -> list[np.ndarray]:
    return [v for v in flatten(view) if isinstance(v, np.ndarray) and v.dtype == np.uint8
            and v.ndim == 2 and v.shape[1] == curve.POINT_BYTES and len(v)]


def _join(ctx, ids, cols):
    return private_join(ctx, ids, cols, key_bits=KEY_BITS).num_rows


A_IDS = list(range(0, 120))
B_IDS = list(range(60, 200))
CASES = {
    "psi_cardinality": (psi_cardinality, {"alice": (A_IDS,), "bob": (B_IDS,)}, {}),
    "ecdh_psi": (ecdh_psi, {"alice": (A_IDS,), "bob": (B_IDS,)}, {}),
    "intersection_sum": (intersection_sum, {"alice": (A_IDS, None), "bob": (B_IDS, np.ones(len(B_IDS), np.int64))},
                         {"key_bits": KEY_BITS}),
    "private_join": (_join, {"alice": (A_IDS, {"x": np.arange(120)}), "bob": (B_IDS, {"y": np.arange(140)})}, {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_received_point_is_on_the_curve_in_the_prime_subgroup(name):
    fn, args, kw = CASES[name]
    _, views = record_views(fn, ["alice", "bob"], args=args, kwargs={p: kw for p in args}, triples=None)
    for party in ("alice", "bob"):
        pts = full_points(views[party])
        assert sum(map(len, pts)) >= 100, f"{party} received no full points to check"
        us = [_u(row) for batch in pts for row in batch]
        twist = sum(not on_curve(u) for u in us)
        assert twist == 0, f"{name}: {party} received {twist} of {len(us)} points on the twist"
        assert all(in_prime_subgroup(u) for u in us[:64])


def _features(view) -> np.ndarray:
    """Per received point, a few bits an adversary might try: curve/twist, low and high bits."""
    rows = [row for batch in full_points(view) for row in batch]
    return np.array([[on_curve(_u(r)), r[0] >> 3 & 1, r[15] & 1, r[31] >> 6 & 1] for r in rows], float)


def _cardinality_for_alice(ctx, ids):
    return psi_cardinality(ctx, ids, receivers="alice")


def _join_rows(ctx, ids):
    return private_join(ctx, ids, {f"{ctx.party}_x": np.arange(len(ids))}, key_bits=KEY_BITS).num_rows


@pytest.mark.parametrize("fn", [_cardinality_for_alice, _join_rows], ids=["psi_cardinality", "private_join"])
def test_receiver_view_does_not_depend_on_which_items_the_peer_holds(fn):
    """Two worlds with the same reveal (sizes and intersection size): bob holds 100 of
    alice's items that hash to the curve (world 0) or 100 that hash to the twist (world 1)
    under a raw u-coordinate hash, plus 100 items alice lacks. Alice's view (every full
    point she receives) must look the same in both."""
    alice = list(range(600))
    raw = curve.hash_items(alice)
    on = [x for x, d in zip(alice, raw, strict=True) if on_curve(_u(d))]
    off = [x for x, d in zip(alice, raw, strict=True) if not on_curve(_u(d))]
    outsiders = list(range(10_000, 10_100))
    means = []
    for held in (on[:100], off[:100]):
        out, views = record_views(fn, ["alice", "bob"], args={"alice": (alice,), "bob": (held + outsiders,)},
                                  triples=None)
        assert out["alice"] == 100
        f = _features(views["alice"])
        assert len(f) == 200
        means.append(f.mean(axis=0))
    # 200 fair bits per feature and world: the difference has sd 0.05; allow 5 sd.
    assert np.all(np.abs(means[0] - means[1]) < 0.25), (means[0], means[1])


# -- N parties: the mixer's view -----------------------------------------------------------

def _record_keys(monkeypatch):
    """Keep every party's long-term key and the mixer's ElGamal secret, as the parties draw
    them (the test plays the mixer with everything the mixer holds)."""
    import threading

    from protocols.psi import multiparty
    local, keys, secrets = threading.local(), {}, {}
    orig_run, orig_key = multiparty.run, curve.new_key

    def run(ctx, *a, **kw):
        local.party = ctx.party
        return orig_run(ctx, *a, **kw)

    def new_key(group):
        k = orig_key(group)
        keys.setdefault(local.party, k)          # the first key a party draws is its k_j
        return k

    monkeypatch.setattr(multiparty, "run", run)
    monkeypatch.setattr(curve, "new_key", new_key)
    if hasattr(curve, "elgamal_keypair"):
        orig_pair = curve.elgamal_keypair

        def keypair():
            s, y = orig_pair()
            secrets[local.party] = s
            return s, y
        monkeypatch.setattr(curve, "elgamal_keypair", keypair)
    return keys, secrets


def _runs(labels: list[str]) -> int:
    return 1 + sum(a != b for a, b in zip(labels, labels[1:], strict=False))


@pytest.mark.parametrize("n_parties", [3, 4])
def test_mixer_receives_one_merged_shuffled_multiset(monkeypatch, n_parties):
    """The mixer (last party of the ring) must get the non-leader sets' comparable values in
    one message, as their multiset union, in an order independent of origin: then it can
    count multiplicities (its reveal line) but not attribute a value to a set, so no
    pairwise intersection size. Fails on the old protocol, which delivered each set apart."""
    from collections import Counter
    names = ["alice", "bob", "carol", "dave"][:n_parties]
    sets = {"alice": list(range(0, 300)), "bob": list(range(0, 60)), "carol": list(range(40, 100)),
            "dave": list(range(80, 140))}
    keys, secrets = _record_keys(monkeypatch)
    out, views = record_views(ecdh_psi, names, args={p: (sets[p],) for p in names}, triples=None)
    non_leaders, mixer = names[1:], names[-1]
    common = set.intersection(*(set(sets[p]) for p in names))
    assert out["alice"].cardinality == len(common)
    # Every value the mixer could compare: non-leader items blinded by the shufflers' keys
    # (then, optionally, by its own key), labelled by the sets holding them.
    label: dict[bytes, frozenset] = {}
    for p in non_leaders:
        e = curve.hash_to_group("ed25519", curve.hash_items(sets[p]))
        for q in names[1:-1]:
            e = curve.scalar_mul("ed25519", keys[q], e)
        for level in (e, curve.scalar_mul("ed25519", keys[mixer], e)):
            for x, row in zip(sets[p], level, strict=True):
                label[row.tobytes()] = frozenset(q for q in non_leaders if x in sets[q])
    hits = []
    for sender, value in views[mixer]:
        if not (isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 2):
            continue
        rows = value
        if value.shape[1] == 64 and mixer in secrets:
            rows = curve.elgamal_decrypt(secrets[mixer], value)
        found = [label[r.tobytes()] for r in rows if r.tobytes() in label]
        if found:
            hits.append((sender, found))
    assert len(hits) == 1, f"the mixer got non-leader values in {len(hits)} separate messages"
    found = hits[0][1]
    expect = Counter(frozenset(q for q in non_leaders if x in sets[q])
                     for p in non_leaders for x in sets[p])
    assert Counter(found) == expect          # the multiset union, each value once per set
    singles = [next(iter(s)) for s in found if len(s) == 1]
    # Blocks by origin would give len(non_leaders) runs; a uniform shuffle gives about
    # len/2 (3 parties) or 2/3 len (4 parties), with sd < 5: len/4 is over 4.5 sd below.
    assert _runs(singles) > len(singles) / 4
