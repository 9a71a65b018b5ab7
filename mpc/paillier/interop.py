"""Conversions to and from python-paillier (``phe``): keys, and vectors of EncryptedNumber.

Both libraries use ``g = n + 1`` and the same signed encoding (``v mod n``, max_int =
n//3 - 1), so integer ciphertexts convert unchanged. phe's EncodedNumber value is
``mantissa · 16^exponent``; a vector of phe numbers is aligned to its smallest exponent
by multiplying ciphertexts by ``16^(e - e_min)`` (exact, what phe itself does before
adding), then ``frac_bits = -4·e_min`` (or, for a positive ``e_min``, scaled to exponent
0). Back to phe, ``frac_bits`` is rounded up to a multiple of 4 (exact, a power-of-two
multiplication). Only phe's default base 16 is supported.

Keys: phe has no DJN base, so a key from phe gets one derived from n by hashing
(:func:`mpc.paillier.raw.derived_base`): every party that imports the same phe key uses the
same base, and gaotie encrypts under it at DJN speed. Ciphertexts made by phe (its
encryption and obfuscation multiply by ``r^n``) lie outside that base's subgroup, so keys
from phe re-randomise with a textbook ``r^n`` (``textbook_rerandomise``): uniformly random
among the encryptions of the same plaintext, whatever the input. A gaotie key exported with
:meth:`PublicKey.to_phe` loses its base: imported back it is the phe-derived key, not equal
to the original (vectors under the two do not mix; its private key decrypts both).
Reveals nothing: local conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gmpy2 import mpz

from mpc.paillier import raw
from mpc.paillier.keys import PrivateKey, PublicKey
from mpc.paillier.vector import EncryptedVector

PHE_BASE = 16
LOG2_BASE = 4


def _phe():
    import phe  # imported lazily: phe is only needed for interop

    return phe


def public_key_from_phe(phe_public_key: Any) -> PublicKey:
    phe = _phe()
    if not isinstance(phe_public_key, phe.PaillierPublicKey):
        raise TypeError(f"expected a phe.PaillierPublicKey, got {type(phe_public_key).__name__}")
    if phe_public_key.g != phe_public_key.n + 1:
        raise ValueError("only phe keys with g = n + 1 are supported")
    n = phe_public_key.n
    return PublicKey(n, raw.derived_base(n), textbook_rerandomise=True)


def public_key_to_phe(public_key: PublicKey) -> Any:
    return _phe().PaillierPublicKey(int(public_key.n))


def private_key_from_phe(phe_private_key: Any) -> PrivateKey:
    phe = _phe()
    if not isinstance(phe_private_key, phe.PaillierPrivateKey):
        raise TypeError(f"expected a phe.PaillierPrivateKey, got {type(phe_private_key).__name__}")
    return PrivateKey(public_key_from_phe(phe_private_key.public_key), phe_private_key.p, phe_private_key.q)


def private_key_to_phe(private_key: PrivateKey) -> Any:
    phe = _phe()
    return phe.PaillierPrivateKey(public_key_to_phe(private_key.public_key), int(private_key.p),
                                  int(private_key.q))


def vector_from_phe(numbers: Sequence[Any]) -> EncryptedVector:
    phe = _phe()
    numbers = list(numbers)
    if not numbers:
        raise ValueError("from_phe needs at least one EncryptedNumber (the key comes from them)")
    for i, x in enumerate(numbers):
        if not isinstance(x, phe.EncryptedNumber):
            raise TypeError(f"element {i} is a {type(x).__name__}, not a phe.EncryptedNumber")
    n = numbers[0].public_key.n
    if any(x.public_key.n != n for x in numbers):
        raise ValueError("the phe numbers are encrypted under different public keys")
    pk = public_key_from_phe(numbers[0].public_key)
    nsq = pk.nsquare
    exps = [int(x.exponent) for x in numbers]
    target = min(min(exps), 0)
    cts = []
    for x, e in zip(numbers, exps, strict=True):
        c = mpz(x.ciphertext(be_secure=False))
        if not 0 < c < nsq:
            raise ValueError("a phe ciphertext is outside (0, n²)")
        if e != target:
            c = raw.mul_plain([c], [mpz(PHE_BASE) ** (e - target)], nsq)[0]  # mantissa · 16^(e - target)
        cts.append(c)
    return EncryptedVector(pk, cts, frac_bits=-LOG2_BASE * target, fresh=False)


def vector_to_phe(vector: EncryptedVector) -> list[Any]:
    phe = _phe()
    pad = -vector.frac_bits % LOG2_BASE
    if pad:
        cts = raw.mul_plain(vector.ciphertexts, [1 << pad], vector.public_key.nsquare)
    else:
        cts = vector.ciphertexts
    exponent = -((vector.frac_bits + pad) // LOG2_BASE)
    phe_pk = public_key_to_phe(vector.public_key)
    out = []
    for c in cts:
        x = phe.EncryptedNumber(phe_pk, int(c), exponent)
        if vector.fresh and not pad:
            x._EncryptedNumber__is_obfuscated = True  # already fresh DJN randomness: skip phe's r^n
        out.append(x)
    return out
