"""Fast Paillier: DJN short-exponent encryption with fixed-base tables, CRT decryption,
packing of many int64 slots per ciphertext, and phe interop.

    pk, sk = generate_keypair()                      # 2048 bits; smaller only with insecure=True
    a = pk.encrypt(np.array([1, -2, 3]))             # EncryptedVector (ints of any size < n/3)
    x = pk.encrypt([0.5, 1e-3], frac_bits=32)        # floats: explicit fixed point
    sk.decrypt(a * 3 + a.sum())                      # int64 array (list of ints if they don't fit)
    p = pk.encrypt_packed(int64_array)               # 25 slots per ciphertext at 2048 bits
    sk.decrypt_packed(p + p)                         # int64 array; overflow raises
    PublicKey.from_phe(phe_pk), EncryptedVector.from_phe(numbers), a.to_phe()

Guarantees: mixing keys raises ``ValueError``; out-of-range plaintexts raise ``ValueError``
at encryption; overflow of the signed range is detected at decryption (``OverflowError``)
unless a value wrapped all the way around n (as in phe); packed vectors count their
summands and raise before the slack runs out; vectors leaving the party are re-randomised
unless fresh (statistically hiding, even from the key owner: one DJN base per key, made by
the owner and carried in the public key, and a full-length exponent), and received ones are
range- and digest-checked and marked not fresh. Not protected against: a malicious peer
encrypting garbage under a valid key, or a key owner choosing a bad base (semi-honest model).

Importing this package registers the wire forms with the runtime codec (``wire``).
Modules: ``raw`` (hazardous integer layer: DJN, tables, CRT, batched decryption),
``keys``, ``encoding`` (signed / fixed point), ``vector``, ``packing``, ``interop`` (phe),
``wire``. Reveals: see each module.
"""

from mpc.paillier import wire as _wire  # noqa: F401  (registers codec extensions)
from mpc.paillier.keys import PrivateKey, PublicKey, generate_keypair
from mpc.paillier.packing import DEFAULT_SLACK_BITS, PackedEncryptedVector, slots_per_ciphertext
from mpc.paillier.raw import DJN_EXPONENT_BITS
from mpc.paillier.vector import EncryptedVector

__all__ = ["DEFAULT_SLACK_BITS", "DJN_EXPONENT_BITS", "EncryptedVector", "PackedEncryptedVector",
           "PrivateKey", "PublicKey", "generate_keypair", "slots_per_ciphertext"]
