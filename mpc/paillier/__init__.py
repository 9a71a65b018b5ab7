"""Fast Paillier: DJN short-exponent encryption with fixed-base tables, CRT decryption,
packing of many int64 slots per ciphertext, and phe interop.

``generate_keypair`` -> (:class:`PublicKey`, :class:`PrivateKey`); ``pk.encrypt`` ->
:class:`EncryptedVector`; ``pk.encrypt_packed`` -> :class:`PackedEncryptedVector`.
Importing this package registers the wire forms with the runtime codec (``wire``).
Modules: ``raw`` (hazardous integer layer), ``keys``, ``encoding``, ``vector``,
``packing``, ``interop`` (phe), ``wire``. Reveals: see each module.
"""

from mpc.paillier import wire as _wire  # noqa: F401  (registers codec extensions)
from mpc.paillier.keys import PrivateKey, PublicKey, generate_keypair
from mpc.paillier.packing import DEFAULT_SLACK_BITS, PackedEncryptedVector, slots_per_ciphertext
from mpc.paillier.raw import DJN_EXPONENT_BITS
from mpc.paillier.vector import EncryptedVector

__all__ = ["DEFAULT_SLACK_BITS", "DJN_EXPONENT_BITS", "EncryptedVector", "PackedEncryptedVector",
           "PrivateKey", "PublicKey", "generate_keypair", "slots_per_ciphertext"]
