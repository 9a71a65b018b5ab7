"""Cryptographic building blocks (the hazardous layer): CSPRNG and keyed PRG, process
pool for CPU-bound crypto, hash-to-curve and scalar multiplication.

Nothing here protects against misuse: protocols in :mod:`protocols` compose these
pieces into something safe.
"""
