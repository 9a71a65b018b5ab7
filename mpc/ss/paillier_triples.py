"""Dealer-free triples for two parties from Paillier encryption (``triples="paillier"``).

Party 0 (``ctx.parties[0]``) makes a key pair (``paillier_bits`` runtime option, default
2048; smaller keys only for tests) and sends the public key; each party draws its own
shares of a, b locally. The one primitive is a *cross product*: party 0 holds vectors
A_t, party 1 holds B_t, and they end with additive shares (mod 2^64) of sum_t A_t * B_t:

1. party 0 sends Enc(A_t[i] * 2^(s*j)) (element i in slot j = i mod k of a group);
2. party 1 raises each ciphertext to B_t[i] (unsigned 64-bit), multiplies the k elements
   of a group together with Enc(sum_j rho_i 2^(s*j)), and sends that back (re-randomised);
3. party 0 decrypts one plaintext per group and reads slot j: v_i = cross_i + rho_i; its
   share is v_i mod 2^64 and party 1's share is -rho_i mod 2^64.

Security (semi-honest): party 1 sees only ciphertexts (IND-CPA under the DCR assumption).
Party 0 sees cross_i + rho_i with 0 <= cross_i < 2^K and rho_i uniform in [0, 2^(K+sigma)),
sigma = 80 bits of statistical masking: the statistical distance from a value independent
of cross_i is at most 2^-80 per element. Slots are s = K + sigma + 1 bits wide, so no slot
overflows into the next; k = (n_bits - 3) // s slots per ciphertext.

Built on it: arithmetic triples (cross terms a0 b1 + b0 a1), boolean triples (per bit,
the LSB of the arithmetic shares of a0_j b1_j + b0_j a1_j is an XOR sharing), daBits
(b = b0 XOR b1 = b0 + b1 - 2 b0 b1), edaBits and truncation pairs from 64 daBits per
element, matmul triples (unpacked cross products). Fixed-point truncation does not use
truncation pairs here but the two-party wrap-bit protocol of :meth:`PaillierSource.truncate`
(one bit product per element). Costs: one encryption per input element per term;
decryptions are packed. Boolean triples and edaBits are 64x an arithmetic triple:
dealer-free comparisons are slow (see bench/bench_ss.py), the dealer is the fast path.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from mpc.crypto.random import PRG, new_seed
from mpc.runtime.context import Context
from mpc.ss import provider
from mpc.ss.triples import Shape, check_shape, matmul_shape
from mpc.ss.two_party import trunc_pair_from_dabits, truncate_by_wrap

# Statistical masking: 2^-SIGMA per masked element. Supported: up to 2^40 masked elements
# per job (requests are capped at 2^28 elements, MAX_ELEMENTS), so at most 2^-40 over the
# whole job by the union bound. Slots are K + SIGMA + 1 bits: with K = 129 (arithmetic
# triples) a 2048-bit key holds 9 per plaintext.
SIGMA = 80
_MASK = (1 << 64) - 1
_ONE = np.uint64(1)
_BITS = np.arange(64, dtype=np.uint64)


def _to_uint64(ints: Any) -> np.ndarray:
    return np.array([int(v) & _MASK for v in ints], dtype=np.uint64)


def _unpack_bits(words: np.ndarray) -> np.ndarray:
    """(n,) words -> (n*64,) 0/1 values, bit j of word i at i*64 + j."""
    return ((words.reshape(-1, 1) >> _BITS) & _ONE).reshape(-1)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    return np.bitwise_or.reduce((bits.reshape(-1, 64) & _ONE) << _BITS, axis=1)


class PaillierSource(provider.RandomnessProvider):
    """Two-party triple source on Paillier; see the module docstring."""

    name = "paillier"
    capabilities = frozenset({provider.ARITHMETIC, provider.MATMUL, provider.BOOLEAN, provider.TRUNC_PAIR,
                              provider.TRUNCATE, provider.EDABIT, provider.DABIT})

    def __init__(self, ctx: Context) -> None:
        import mpc.paillier as paillier  # registers the codec extensions

        if len(ctx.parties) != 2:
            raise ValueError(f"triples='paillier' needs exactly two computing parties, "
                             f"got {len(ctx.parties)}")
        self.ctx = ctx
        self.peer = ctx.peers[0]
        bits = int(ctx.options.get("paillier_bits", 2048))
        if ctx.rank == 0:
            self.pk, self.sk = paillier.generate_keypair(bits, insecure=bits < 2048)
            ctx.send(self.peer, self.pk)
        else:
            self.pk, self.sk = ctx.recv(self.peer), None
            if not isinstance(self.pk, paillier.PublicKey):
                raise ValueError(f"party {self.peer!r} sent no Paillier public key")
        self._vec = paillier.EncryptedVector
        self._products = paillier.raw.products_of_powers  # Π c^e per group, on the crypto threads
        self.prg = PRG(new_seed())  # this party's own shares (never leave it unmasked)

    # -- the cross-product primitive --------------------------------------------------------
    def _cross(self, terms: list[np.ndarray], kbits: int) -> np.ndarray:
        """Shares of sum_t A_t * B_t (party 0 passes the A_t, party 1 the B_t; flat uint64
        arrays of one length), where every sum is known to be below 2^kbits."""
        n = int(terms[0].size) if terms else 0
        if n == 0:
            return np.zeros(0, np.uint64)
        s = kbits + SIGMA + 1
        k = max(1, (self.pk.n_bits - 3) // s)
        groups = -(-n // k)
        slot_shift = [s * (i % k) for i in range(n)]
        if self.ctx.rank == 0:
            plain = [int(v) << slot_shift[i] for t in terms for i, v in enumerate(t.tolist())]
            self.ctx.send(self.peer, self.pk.encrypt(plain))
            reply = self.ctx.recv(self.peer)
            if not isinstance(reply, self._vec) or len(reply) != groups or reply.public_key != self.pk:
                raise ValueError(f"party {self.peer!r} sent a malformed cross-product reply")
            values = [int(v) for v in self.sk.decrypt(reply)]
            slot_mask = (1 << s) - 1
            return _to_uint64((values[i // k] >> slot_shift[i]) & slot_mask for i in range(n))
        enc = self.ctx.recv(self.peer)
        t_count = len(terms)
        if not isinstance(enc, self._vec) or len(enc) != t_count * n or enc.public_key != self.pk:
            raise ValueError(f"party {self.peer!r} sent malformed ciphertexts")
        cts = enc.ciphertexts
        exps = [t.tolist() for t in terms]
        pairs: list[list[tuple[Any, int]]] = [[] for _ in range(groups)]
        for t in range(t_count):
            base = t * n
            for i, e in enumerate(exps[t]):
                if e:
                    pairs[i // k].append((cts[base + i], e))
        accs = self._products(pairs, self.pk.n)
        rho = [secrets.randbits(kbits + SIGMA) for _ in range(n)]
        pad = [0] * groups
        for i, r in enumerate(rho):
            pad[i // k] += r << slot_shift[i]
        reply = self._vec(self.pk, accs) + pad
        self.ctx.send(self.peer, reply)  # the codec re-randomises it before it leaves
        return _to_uint64(-r for r in rho)

    # -- RandomnessProvider --------------------------------------------------------------------
    def arithmetic(self, shape: Shape):
        shape = check_shape(shape)
        count = int(np.prod(shape, dtype=np.int64))
        a, b = self.prg.uint64(count), self.prg.uint64(count)
        terms = [a, b] if self.ctx.rank == 0 else [b, a]       # a0 b1 + b0 a1
        c = a * b + self._cross(terms, 129)
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    def boolean(self, shape: Shape):
        shape = check_shape(shape)
        count = int(np.prod(shape, dtype=np.int64))
        a, b = self.prg.uint64(count), self.prg.uint64(count)
        abits, bbits = _unpack_bits(a), _unpack_bits(b)
        terms = [abits, bbits] if self.ctx.rank == 0 else [bbits, abits]
        cross = self._cross(terms, 2)                            # a0_j b1_j + b0_j a1_j
        c = (a & b) ^ _pack_bits(cross & _ONE)
        return a.reshape(shape), b.reshape(shape), c.reshape(shape)

    def dabit(self, shape: Shape):
        shape = check_shape(shape)
        count = int(np.prod(shape, dtype=np.int64))
        bits = self.prg.uint64(count) & _ONE
        prod = self._cross([bits], 1)                            # shares of b0 * b1
        ba = bits - np.uint64(2) * prod
        return ba.reshape(shape), bits.reshape(shape)

    def _dabits64(self, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
        count = int(np.prod(shape, dtype=np.int64))
        ba, bb = self.dabit((64, count))
        return ba, bb

    def edabit(self, shape: Shape):
        shape = check_shape(shape)
        ba, bb = self._dabits64(shape)
        weights = (_ONE << _BITS).reshape(64, 1)
        r = np.sum(ba * weights, axis=0, dtype=np.uint64)
        rb = np.bitwise_or.reduce(bb << _BITS.reshape(64, 1), axis=0)
        return r.reshape(shape), rb.reshape(shape)

    def trunc_pair(self, shape: Shape, bits: Any):
        shape = check_shape(shape)
        ba, _ = self._dabits64(shape)
        return trunc_pair_from_dabits(ba, shape, bits)

    def truncate(self, x: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Shares of floor(x / 2^bits) + {0 or 1} for signed |x| < 2^62 by the wrap bit of the
        shares (:func:`mpc.ss.two_party.truncate_by_wrap`), its one bit product a Paillier cross
        term. Used instead of a truncation pair (64 daBits) by :func:`mpc.ss.beaver.truncate`."""
        return truncate_by_wrap(x, bits, self.ctx.rank == 0, lambda m: self._cross([m], 1))

    def matmul(self, shape_a: Shape, shape_b: Shape):
        shape_a, shape_b = check_shape(shape_a), check_shape(shape_b)
        if len(shape_a) != 2 or len(shape_b) != 2:
            raise ValueError("triples='paillier' supports 2-D matmul operands only")
        m, kk = shape_a
        nn = shape_b[1]
        out_shape = matmul_shape(shape_a, shape_b)
        a, b = self.prg.uint64(shape_a), self.prg.uint64(shape_b)
        own = np.matmul(a, b)
        if self.ctx.rank == 0:
            plain = [int(v) for v in a.ravel().tolist()] + [int(v) for v in b.ravel().tolist()]
            self.ctx.send(self.peer, self.pk.encrypt(plain))
            reply = self.ctx.recv(self.peer)
            if not isinstance(reply, self._vec) or len(reply) != m * nn or reply.public_key != self.pk:
                raise ValueError(f"party {self.peer!r} sent a malformed matmul reply")
            cross = _to_uint64(int(v) for v in self.sk.decrypt(reply)).reshape(out_shape)
        else:
            enc = self.ctx.recv(self.peer)
            if not isinstance(enc, self._vec) or len(enc) != m * kk + kk * nn or enc.public_key != self.pk:
                raise ValueError(f"party {self.peer!r} sent malformed ciphertexts")
            cts = enc.ciphertexts
            ea, eb = cts[:m * kk], cts[m * kk:]
            al, bl = a.tolist(), b.tolist()
            pairs = [[pair for t in range(kk)   # A0[i,t] B1[t,j] + B0[t,j] A1[i,t]
                      for pair in ((ea[i * kk + t], bl[t][j]), (eb[t * nn + j], al[i][t]))]
                     for i in range(m) for j in range(nn)]
            accs = self._products(pairs, self.pk.n)
            kbits = 129 + max(1, int(kk).bit_length())
            rho = [secrets.randbits(kbits + SIGMA) for _ in range(m * nn)]
            self.ctx.send(self.peer, self._vec(self.pk, accs) + rho)
            cross = _to_uint64(-r for r in rho).reshape(out_shape)
        return a, b, own + cross
