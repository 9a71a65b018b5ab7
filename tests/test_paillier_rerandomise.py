"""Re-randomisation hides a ciphertext even from the key owner (issue 13, parts 1 and 6).

The key owner knows p. For a prime l dividing p-1, F_l(c) = (c mod p)^((p-1)/l) is an l-th
root of unity that adding plaintexts leaves unchanged, so if re-randomisation kept it the
owner could link a ciphertext a peer sends back to the one it sent. The peer here is a
separate process that rebuilds the public key from its wire form, as a party server does;
every ciphertext it returns (re-randomised explicitly, a homomorphic result the codec
re-randomises, and a received vector forwarded unchanged) must keep F_l of its input only at
the chance rate 1/l, for l = 2..13 mod p and mod q (test primes with those factors in p-1).
"""

from __future__ import annotations

import math
import secrets
import subprocess
import sys

import gmpy2
import numpy as np
import pandas as pd
from gmpy2 import mpz

import mpc.paillier as pl
from mpc.paillier import raw
from mpc.runtime import codec
from mpc.runtime.views import flatten, record_views
from protocols import stats
from protocols.psi import intersection_sum, private_join

SMALL = (2, 3, 5, 7, 11, 13)
SMOOTH = 3 * 5 * 7 * 11 * 13
COUNT = 256
PEERS = 3
KEY_BITS = 512  # insecure, tests only

PEER = r"""
import sys
import mpc.paillier  # registers the codec kinds
from mpc.runtime import codec
v = codec.loads(sys.stdin.buffer.read())
sys.stdout.buffer.write(codec.dumps({"explicit": v.rerandomise(), "homomorphic": v + 0, "forwarded": v}))
"""


def _prime_with_small_factors(bits: int) -> mpz:
    """A prime p with 2·3·5·7·11·13 | p-1 and (p-1)/2 odd (so p ≡ 3 mod 4, as keygen makes)."""
    while True:
        m = secrets.randbits(bits - 15) | 1 | (1 << (bits - 16))
        p = mpz(2 * SMOOTH * m + 1)
        if p.bit_length() == bits and gmpy2.is_prime(p, 40):
            return p


def _owner_keys() -> tuple[pl.PublicKey, pl.PrivateKey]:
    while True:
        p, q = _prime_with_small_factors(KEY_BITS // 2), _prime_with_small_factors(KEY_BITS // 2)
        n = p * q
        if p != q and gmpy2.gcd(n, (p - 1) * (q - 1)) == 1:
            pk = pl.PublicKey(n, raw.owner_base(p, q))
            return pk, pl.PrivateKey(pk, p, q)


def _residue_symbols(cts, prime: mpz, ell: int) -> list[mpz]:
    e = (prime - 1) // ell
    return [gmpy2.powmod(c % prime, e, prime) for c in cts]


def test_rerandomised_ciphertexts_keep_residue_symbols_only_by_chance():
    pk, sk = _owner_keys()
    values = np.array([secrets.randbits(63) - (1 << 62) for _ in range(COUNT)], dtype=np.int64)
    sent = pk.encrypt(values)
    data = codec.dumps(sent)
    peers = [subprocess.Popen([sys.executable, "-c", PEER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(PEERS)]
    replies = []
    for proc in peers:
        out, err = proc.communicate(data, timeout=120)
        assert proc.returncode == 0, err.decode(errors="replace")
        replies.append(codec.loads(out))
    # Hoeffding: a rate off 1/l by more than `slack` has probability below 1e-9 per check.
    slack = math.sqrt(math.log(2e9) / (2 * COUNT))
    for reply in replies:
        for path, got in reply.items():
            assert got.public_key == pk
            np.testing.assert_array_equal(sk.decrypt(got), values)
            for prime in (sk.p, sk.q):
                for ell in SMALL:
                    before = _residue_symbols(sent.ciphertexts, prime, ell)
                    after = _residue_symbols(got.ciphertexts, prime, ell)
                    rate = sum(a == b for a, b in zip(before, after, strict=True)) / COUNT
                    assert abs(rate - 1 / ell) < slack, (path, ell, rate)


def test_owner_base_carries_the_small_characters():
    pk, sk = _owner_keys()
    for prime in (sk.p, sk.q):
        for ell in SMALL:
            assert gmpy2.powmod(pk.h_s % prime, (prime - 1) // ell, prime) != 1


def test_public_key_wire_form_carries_the_base():
    pk, _ = pl.generate_keypair(KEY_BITS, insecure=True)
    wire = pl.wire.public_key_to_wire(pk)
    assert wire == {"n": int(pk.n), "h_s": int(pk.h_s), "textbook": False}
    back = codec.loads(codec.dumps(pk))
    assert back == pk and back.h_s == pk.h_s
    v = codec.loads(codec.dumps(pk.encrypt([1, 2])))
    assert v.public_key == pk and v.public_key.h_s == pk.h_s and not v.fresh


def test_received_vectors_are_re_randomised_when_forwarded():
    pk, sk = pl.generate_keypair(KEY_BITS, insecure=True)
    first = codec.loads(codec.dumps(pk.encrypt([5, -6])))
    assert not first.fresh and not first[0:1].fresh
    again = codec.loads(codec.dumps(first))
    assert all(a != b for a, b in zip(first.ciphertexts, again.ciphertexts, strict=True))
    np.testing.assert_array_equal(sk.decrypt(again), [5, -6])
    packed = codec.loads(codec.dumps(pk.encrypt_packed(np.array([1, 2, 3]))))
    assert not packed.fresh
    assert codec.loads(codec.dumps(packed)).ciphertexts != packed.ciphertexts


def test_few_and_many_ciphertexts_rerandomise_alike():
    """Below DIRECT_MAX without a table: plain powmods; above: the comb table. Same law."""
    pk, sk = pl.generate_keypair(KEY_BITS, insecure=True)
    for count in (1, raw.DIRECT_MAX + 1, 3):
        v = pk.encrypt(list(range(count))) * 2
        r = v.rerandomise()
        assert r.fresh and len(set(r.ciphertexts) & set(v.ciphertexts)) == 0
        assert list(sk.decrypt(r)) == [2 * i for i in range(count)]


def test_phe_keys_rerandomise_with_textbook_randomness():
    import phe

    ppk, psk = phe.generate_paillier_keypair(n_length=KEY_BITS)
    pk = pl.PublicKey.from_phe(ppk)
    assert pk.textbook_rerandomise and pk == pl.PublicKey.from_phe(ppk)
    v = pl.EncryptedVector.from_phe([ppk.encrypt(7), ppk.encrypt(-8)])  # phe's own r^n randomness
    assert not v.fresh
    sent = codec.loads(codec.dumps(v + 1))
    assert sent.public_key == pk and sent.public_key.textbook_rerandomise
    assert [psk.decrypt(x) for x in sent.to_phe()] == [8, -7]
    assert [int(x) for x in pl.PrivateKey.from_phe(psk).decrypt(sent)] == [8, -7]


# -- protocols send the registered public key (n and its base), never a bare modulus ------------

def _keys_in(view) -> tuple[list[pl.PublicKey], list[int]]:
    leaves = flatten(view)
    keys = [x for x in leaves if isinstance(x, pl.PublicKey)]
    keys += [x.public_key for x in leaves if isinstance(x, (pl.EncryptedVector, pl.PackedEncryptedVector))]
    bare = [x for x in leaves if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() >= KEY_BITS - 1]
    return keys, bare


def _check_one_key(views, receiver):
    """The receiver got public keys, no bare modulus, and one base per modulus."""
    keys, bare = _keys_in(views[receiver])
    assert keys and not bare
    bases: dict[int, set[int]] = {}
    for k in keys:
        bases.setdefault(int(k.n), set()).add(int(k.h_s))
    assert all(len(b) == 1 for b in bases.values())


def test_private_join_sends_the_public_key():
    def job(ctx, ids, cols):
        return private_join(ctx, ids, cols, key_bits=KEY_BITS).num_rows

    a = (list(range(20)), {"x": np.arange(20, dtype=np.int64)})
    b = (list(range(10, 30)), {"y": np.arange(20, dtype=np.int64)})
    out, views = record_views(job, ["alice", "bob"], args={"alice": a, "bob": b}, triples=None, timeout=120)
    assert out["alice"] == 10
    _check_one_key(views, "alice")
    _check_one_key(views, "bob")


def test_intersection_sum_sends_the_public_key():
    out, views = record_views(intersection_sum, ["alice", "bob"],
                              args={"alice": (list(range(8)), None), "bob": (list(range(4, 12)), list(range(8)))},
                              kwargs={p: {"key_bits": KEY_BITS} for p in ("alice", "bob")}, triples=None)
    assert out["alice"] == (4, sum(range(4)))
    _check_one_key(views, "alice")


def test_woe_sends_the_public_key():
    rng = np.random.default_rng(3)  # test data only
    y = rng.integers(0, 2, 60)
    score = rng.normal(size=60)
    tables = {"alice": pd.DataFrame({"y": y}), "bob": pd.DataFrame({"score": score})}

    def job(ctx):
        return stats.woe_iv(ctx, tables[ctx.party], "y", ["score"], bins=4, key_bits=KEY_BITS)

    out, views = record_views(job, ["alice", "bob"], timeout=120)
    assert out["alice"][0]["count"].sum() == 60
    _check_one_key(views, "bob")
    _check_one_key(views, "alice")


def test_paillier_triples_send_the_public_key():
    from mpc import ss

    def job(ctx):
        x = ss.share(ctx, np.arange(4, dtype=np.int64) if ctx.rank == 0 else None, "alice")
        return (x * x).reveal()

    out, views = record_views(job, ["alice", "bob"], triples="paillier", paillier_bits=KEY_BITS, timeout=120)
    np.testing.assert_array_equal(out["alice"], np.arange(4) ** 2)
    _check_one_key(views, "bob")
    _check_one_key(views, "alice")
