"""Paillier values on the wire: codec round trips, re-randomisation, tampering, real jobs."""

from __future__ import annotations

import numpy as np
import pytest

import mpc
import mpc.paillier as pl
from mpc.paillier import wire
from mpc.runtime import codec
from mpc.runtime.codec import CodecError


@pytest.fixture(scope="module")
def keys():
    return pl.generate_keypair(1024, insecure=True)


def test_codec_round_trip(keys):
    pk, sk = keys
    v = pk.encrypt(np.array([3, -4, 5]))
    got = codec.loads(codec.dumps(v))
    assert isinstance(got, pl.EncryptedVector) and got.public_key == pk
    assert got.ciphertexts == v.ciphertexts  # fresh: sent as is
    assert not got.fresh  # received: forwarding it unchanged would re-randomise it
    np.testing.assert_array_equal(sk.decrypt(got), [3, -4, 5])
    f = codec.loads(codec.dumps(pk.encrypt([0.5], frac_bits=9)))
    assert f.frac_bits == 9 and sk.decrypt(f)[0] == 0.5
    back = codec.loads(codec.dumps(pk))
    assert back == pk and back.h_s == pk.h_s and not back.textbook_rerandomise
    p = pk.encrypt_packed(np.arange(-40, 40)) * 2
    gp = codec.loads(codec.dumps({"x": [p]}))["x"][0]
    assert gp.terms == 2 and not gp.fresh
    np.testing.assert_array_equal(sk.decrypt_packed(gp), np.arange(-40, 40) * 2)


def test_not_fresh_is_rerandomised_before_sending(keys):
    pk, sk = keys
    v = pk.encrypt([1, 2])
    s = v + v
    sent = codec.loads(codec.dumps(s))
    assert all(a != b for a, b in zip(sent.ciphertexts, s.ciphertexts, strict=True))
    np.testing.assert_array_equal(sk.decrypt(sent), [2, 4])
    p = pk.encrypt_packed([7]) + pk.encrypt_packed([8])
    sp = codec.loads(codec.dumps(p))
    assert sp.ciphertexts != p.ciphertexts
    np.testing.assert_array_equal(sk.decrypt_packed(sp), [15])


def test_private_key_cannot_be_sent(keys):
    with pytest.raises(TypeError):
        codec.dumps(keys[1])


def test_every_single_bit_flip_is_caught(keys):
    pk, sk = keys
    v = pk.encrypt([11, -12])
    data = codec.dumps(v)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        try:
            got = codec.loads(bytes(bad))
        except (CodecError, ValueError):
            continue
        # a flip that still decodes must decode to the very same vector (e.g. a no-op varint bit)
        assert isinstance(got, pl.EncryptedVector) and got.ciphertexts == v.ciphertexts, i


def _forged(pk, cts_array, frac_bits=0):
    tag = pl.packing.digest(wire._key_bytes(pk), wire._meta(frac_bits), cts_array.tobytes())
    return {"key": pk, "frac_bits": frac_bits, "ct": cts_array, "digest": tag}


def test_out_of_range_ciphertexts_refused(keys):
    pk, _ = keys
    w = pk.ciphertext_bytes
    too_big = wire.ciphertexts_to_array([pk.nsquare], w + 1)[:, 1:]  # n² itself in `w` bytes
    with pytest.raises(CodecError, match="outside"):
        wire.vector_from_wire(_forged(pk, too_big))
    zero = np.zeros((1, w), dtype=np.uint8)
    with pytest.raises(CodecError, match="outside"):
        wire.vector_from_wire(_forged(pk, zero))
    with pytest.raises(CodecError, match="shape"):
        wire.vector_from_wire(_forged(pk, np.zeros((1, w - 1), dtype=np.uint8)))
    good = _forged(pk, wire.ciphertexts_to_array(pk.encrypt([1]).ciphertexts, w))
    with pytest.raises(CodecError, match="digest"):
        wire.vector_from_wire({**good, "frac_bits": 3})
    with pytest.raises(CodecError, match="malformed"):
        wire.vector_from_wire({**good, "extra": 1})
    with pytest.raises(CodecError, match="public key"):
        wire.vector_from_wire({**good, "key": int(pk.n)})
    other = pl.PublicKey(pk.n, pk.h_s * pk.h_s % pk.nsquare)  # same n, another base
    with pytest.raises(CodecError, match="digest"):
        wire.vector_from_wire({**good, "key": other})
    with pytest.raises(CodecError, match="modulus"):
        wire.public_key_from_wire({"n": 2**1024, "h_s": 5, "textbook": False})
    with pytest.raises(CodecError, match="invalid"):
        wire.public_key_from_wire({"n": int(pk.n), "h_s": 1, "textbook": False})
    with pytest.raises(CodecError, match="malformed"):
        wire.public_key_from_wire({"n": int(pk.n)})


def test_vector_under_other_key_from_wire_cannot_mix(keys):
    pk, sk = keys
    pk2, _ = pl.generate_keypair(1024, insecure=True)
    foreign = codec.loads(codec.dumps(pk2.encrypt([1])))
    with pytest.raises(ValueError, match="different public keys"):
        pk.encrypt([1]) + foreign
    with pytest.raises(ValueError, match="different public key"):
        sk.decrypt(foreign)


def _add_at_bob(ctx, values):
    if ctx.party == "alice":
        pk, sk = pl.generate_keypair(1024, insecure=True)
        ctx.send("bob", {"pk": pk, "enc": pk.encrypt(values), "packed": pk.encrypt_packed(values)})
        back = ctx.recv("bob")
        return sk.decrypt(back["sum"]), sk.decrypt_packed(back["packed"]), sk.decrypt(back["scaled"])
    msg = ctx.recv("alice")
    pk, enc = msg["pk"], msg["enc"]
    assert enc.public_key is pk or enc.public_key == pk
    ctx.send("alice", {"sum": enc + values, "packed": msg["packed"] + values,
                       "scaled": enc * 3 + pk.encrypt(values)})
    return None


@pytest.mark.parametrize("transport", ["memory", "grpc"])
def test_homomorphic_round_trip_between_parties(transport):
    a = np.array([5, -7, 2**40, 0], dtype=np.int64)
    b = np.array([1, 2, 3, -(2**41)], dtype=np.int64)
    out = mpc.run_local(_add_at_bob, ["alice", "bob"], args={"alice": (a,), "bob": (b,)},
                        transport=transport, triples=None)
    total, packed, scaled = out["alice"]
    np.testing.assert_array_equal(total, a + b)
    np.testing.assert_array_equal(packed, a + b)
    np.testing.assert_array_equal(scaled, 3 * a + b)


def test_packed_bit_flips_and_fields_caught(keys):
    pk, sk = keys
    p = pk.encrypt_packed(np.array([1, -2, 3], dtype=np.int64))
    data = codec.dumps(p)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x04
        try:
            got = codec.loads(bytes(bad))
        except (CodecError, ValueError):
            continue
        assert isinstance(got, pl.PackedEncryptedVector) and got.ciphertexts == p.ciphertexts, i
        assert (got.length, got.terms, got.slack_bits) == (3, 1, 16), i
    d = wire.packed_to_wire(p)
    with pytest.raises(CodecError, match="digest"):
        wire.packed_from_wire({**d, "terms": 2})
    with pytest.raises(CodecError, match="terms"):
        wire.packed_from_wire({**d, "terms": 2**16 + 1})
    with pytest.raises(CodecError, match="slack_bits"):
        wire.packed_from_wire({**d, "slack_bits": 12})


def test_large_packed_vector_through_codec(keys):
    pk, sk = keys
    values = np.arange(-1500, 1500, dtype=np.int64) * 3_000_000_000_000
    p = pk.encrypt_packed(values)  # > PARALLEL_MIN ciphertexts: uses the pool threads
    got = codec.loads(codec.dumps(p + p))
    np.testing.assert_array_equal(sk.decrypt_packed(got), 2 * values)
