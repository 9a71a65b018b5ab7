"""Oblivious transfer: the engine of dealer-free PSI, triples and joins (semi-honest).

* :mod:`mpc.ot.base`: Chou-Orlandi base OTs in Ed25519's prime-order subgroup (libsodium).
* :mod:`mpc.ot.extension`: IKNP OT extension: random, chosen-message and correlated
  (over Z_2^64) 1-out-of-2 OT from 128 base OTs.
* :mod:`mpc.ot.kkrt`: KKRT's 1-out-of-N OT / batched OPRF with a 512-bit pseudo-random code.
* :mod:`mpc.ot.bits`: bit-matrix transpose (64x64 blocks, vectorised).
* :mod:`mpc.ot.hashing`: AES-ECB in bulk and the fixed-key AES correlation-robust hashes.

Every class is one side of a session between two parties, built by both sides in the same
order; messages are a few large numpy arrays through ``ctx.send`` / ``ctx.recv``.
:func:`session` keeps one IKNP session per (peer, role) in ``ctx.state`` so that the
protocols of a job (triples, comparisons, PSI) share its base OTs.
"""

from __future__ import annotations

from mpc.ot.extension import IknpReceiver, IknpSender, random_bits, session
from mpc.ot.kkrt import KkrtReceiver, KkrtSender

__all__ = ["IknpReceiver", "IknpSender", "KkrtReceiver", "KkrtSender", "random_bits", "session"]
