"""Wire forms of Paillier values, registered with the runtime codec on import.

* ``paillier.PublicKey``: ``{"n": int, "h_s": int, "textbook": bool}``: the modulus, the
  key owner's DJN base (every party encrypts and re-randomises under it) and whether the
  key re-randomises with a textbook ``r^n`` (keys from phe). The receiver checks n is odd
  and of sane size and ``h_s`` is a unit mod n² other than 1.
* ``paillier.EncryptedVector``: ``{"key": PublicKey, "frac_bits", "ct": uint8 array
  (count, width), "digest"}`` with fixed-width big-endian ciphertexts (``width`` bytes of
  n²) in one buffer.
* ``paillier.PackedEncryptedVector``: the same plus ``length``, ``slack_bits``, ``terms``.

Sending re-randomises every vector not marked fresh (lazy obfuscation made safe).
Received vectors are marked *not* fresh, so forwarding one unchanged re-randomises it.
Receiving checks shape, width, every ciphertext in ``(0, n²)``, the layout fields, and a
16-byte SHA-256 digest over all of it (key included), so corruption in transit raises
``CodecError`` instead of decrypting to a silent wrong answer (the digest is an integrity
check, not authentication: the transport's TLS authenticates peers). Coprimality with n
is not checked (too slow); a vector carries its key, so combining it with one under
another key raises. What it reveals: ciphertexts, n, h_s, lengths, scale, terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gmpy2 import mpz

from mpc.paillier.keys import MIN_INSECURE_BITS, PublicKey
from mpc.paillier.packing import MAX_SLACK_BITS, PackedEncryptedVector, digest, slots_per_ciphertext
from mpc.paillier.vector import EncryptedVector
from mpc.runtime.codec import CodecError, register_extension

MAX_N_BITS = 16384


def _n_bytes(n: int) -> bytes:
    return int(n).to_bytes((int(n).bit_length() + 7) // 8, "big")


def ciphertexts_to_array(cts: list[mpz], width: int) -> np.ndarray:
    data = b"".join(int(c).to_bytes(width, "big") for c in cts)
    return np.frombuffer(data, dtype=np.uint8).reshape(len(cts), width)


def _key_bytes(pk: PublicKey) -> bytes:
    """What the vectors' digest covers of their key: n, h_s (n² width) and the rule."""
    return _n_bytes(pk.n) + int(pk.h_s).to_bytes(pk.ciphertext_bytes, "big") + bytes([pk.textbook_rerandomise])


def _cts_from_wire(pk: PublicKey, arr: Any) -> list[mpz]:
    width = pk.ciphertext_bytes
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != width:
        raise CodecError(f"received ciphertexts must be a uint8 array of shape (count, {width})")
    data = arr.tobytes()
    nsq = pk.nsquare
    cts = []
    for i in range(arr.shape[0]):
        c = mpz(int.from_bytes(data[i * width:(i + 1) * width], "big"))
        if not 0 < c < nsq:
            raise CodecError(f"received ciphertext {i} is outside (0, n²)")
        cts.append(c)
    return cts


def _get(d: Any, kind: str, *keys: str) -> list[Any]:
    if not isinstance(d, dict) or set(d) != set(keys):
        raise CodecError(f"malformed {kind}: expected fields {sorted(keys)}")
    return [d[k] for k in keys]


def _small_int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CodecError(f"received {name} is not an int in [{lo}, {hi}]")
    return value


def _meta(*ints: int) -> bytes:
    return b"".join(int(v).to_bytes(16, "big", signed=True) for v in ints)


# -- public key ---------------------------------------------------------------------------
def public_key_to_wire(pk: PublicKey) -> dict:
    return {"n": int(pk.n), "h_s": int(pk.h_s), "textbook": pk.textbook_rerandomise}


def public_key_from_wire(d: Any) -> PublicKey:
    n, h_s, textbook = _get(d, "paillier.PublicKey", "n", "h_s", "textbook")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0 or n % 2 == 0 or \
            not MIN_INSECURE_BITS - 1 <= n.bit_length() <= MAX_N_BITS:
        raise CodecError("received Paillier modulus is not an odd integer of sane size")
    if isinstance(h_s, bool) or not isinstance(h_s, int) or not isinstance(textbook, bool):
        raise CodecError("received Paillier key has a malformed base or rule")
    try:
        return PublicKey(n, h_s, textbook)
    except ValueError as exc:
        raise CodecError(f"received Paillier key is invalid: {exc}") from None


def _key_field(key: Any, kind: str) -> PublicKey:
    if not isinstance(key, PublicKey):
        raise CodecError(f"received {kind} does not carry a Paillier public key")
    return key


# -- encrypted vector ------------------------------------------------------------------------
def vector_to_wire(v: EncryptedVector) -> dict:
    v = v.obfuscated()
    pk = v.public_key
    arr = ciphertexts_to_array(v.ciphertexts, pk.ciphertext_bytes)
    return {"key": pk, "frac_bits": v.frac_bits, "ct": arr,
            "digest": digest(_key_bytes(pk), _meta(v.frac_bits), arr.tobytes())}


def vector_from_wire(d: Any) -> EncryptedVector:
    key, fb, arr, tag = _get(d, "paillier.EncryptedVector", "key", "frac_bits", "ct", "digest")
    pk = _key_field(key, "EncryptedVector")
    fb = _small_int(fb, "frac_bits", 0, 1024)
    if not isinstance(arr, np.ndarray) or not isinstance(tag, bytes) or \
            digest(_key_bytes(pk), _meta(fb), arr.tobytes()) != tag:
        raise CodecError("received EncryptedVector fails its integrity digest (corrupted in transit)")
    return EncryptedVector(pk, _cts_from_wire(pk, arr), fb, fresh=False)


# -- packed vector -----------------------------------------------------------------------------
def packed_to_wire(v: PackedEncryptedVector) -> dict:
    v = v.obfuscated()
    pk = v.public_key
    arr = ciphertexts_to_array(v.ciphertexts, pk.ciphertext_bytes)
    return {"key": pk, "length": v.length, "slack_bits": v.slack_bits, "terms": v.terms,
            "ct": arr, "digest": digest(_key_bytes(pk), _meta(v.length, v.slack_bits, v.terms), arr.tobytes())}


def packed_from_wire(d: Any) -> PackedEncryptedVector:
    key, length, sb, terms, arr, tag = _get(d, "paillier.PackedEncryptedVector", "key", "length",
                                            "slack_bits", "terms", "ct", "digest")
    pk = _key_field(key, "PackedEncryptedVector")
    sb = _small_int(sb, "slack_bits", 8, MAX_SLACK_BITS)
    if sb % 8:
        raise CodecError("received slack_bits is not a multiple of 8")
    terms = _small_int(terms, "terms", 0, 1 << sb)
    length = _small_int(length, "length", 0, 1 << 40)
    if not isinstance(arr, np.ndarray) or not isinstance(tag, bytes) or \
            digest(_key_bytes(pk), _meta(length, sb, terms), arr.tobytes()) != tag:
        raise CodecError("received PackedEncryptedVector fails its integrity digest (corrupted in transit)")
    cts = _cts_from_wire(pk, arr)
    slots = slots_per_ciphertext(pk, sb)
    if slots < 1 or len(cts) != -(-length // slots):
        raise CodecError(f"received packed vector has {len(cts)} ciphertexts for {length} values")
    return PackedEncryptedVector(pk, cts, length, sb, terms, fresh=False)


register_extension("paillier.PublicKey", PublicKey, public_key_to_wire, public_key_from_wire)
register_extension("paillier.EncryptedVector", EncryptedVector, vector_to_wire, vector_from_wire)
register_extension("paillier.PackedEncryptedVector", PackedEncryptedVector, packed_to_wire, packed_from_wire)
