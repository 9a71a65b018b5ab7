"""N-party (N >= 3) ECDH PSI over the Ed25519 prime-order group (Elligator 2 hash).

Parties form a ring starting at the *leader* L (the first receiver); the *mixer* M is
the last party of the ring and the parties between them are the *shufflers* S (at least
one). Every party j has a fresh secret scalar k_j; K is the product of all of them.

1. Membership, origin hidden from M: M draws a fresh ElGamal key (s, Y = s·G) and sends
   Y to the shufflers. Every non-leader encrypts its hashed distinct items under Y (fresh
   randomness per item) and sends them to the first shuffler, which pools all N-1 sets.
   The pool visits every shuffler in ring order; each one replaces every ciphertext of
   a point P by a fresh encryption of k_j·P (``elgamal_blind``: exponentiate, then
   re-randomise) and shuffles the whole pool with a CSPRNG permutation. M decrypts the
   pool it receives: one multiset of points blinded by every shuffler's key, in an order
   no single party knows, so M cannot tell which set any value came from. M keeps the
   values present N-1 times (the intersection of the non-leader sets), multiplies them
   by k_M, shuffles and sends them to L, who multiplies by k_L.
2. Mapping: every receiver R multiplies its shuffled hashed items by a temporary scalar t;
   the batch visits every other party (each multiplies by its key; order kept for a PSI,
   reshuffled at each hop for a cardinality) and returns to R, who multiplies by
   k_R·t^-1. So only R ever holds its items blinded by K, and only in its own secret
   order.
3. L compares its K-blinded items with the K-blinded non-leader intersection; for a PSI it
   sends the matching K-blinded values, sorted (an order no party can link), to the other
   receivers, who match them against their own; for a cardinality it sends the count.

Reveals (semi-honest, no collusion; DDH in the Ed25519 group, so ElGamal is IND-CPA and
blinded points are pseudorandom): every party learns every party's distinct-set size.
Receivers learn the N-way intersection (PSI: which of their items; cardinality: its
size). L also learns the size of the intersection of the non-leader sets. M learns how
many values occur in exactly c of the N-1 non-leader sets, for each c (for N = 3: the
size of the intersection of its own set with the other non-leader's, not which items);
it learns neither which sets a value came from nor the size of any smaller intersection
(for N >= 4). Shufflers see only ciphertexts. No party learns which items of another
party are in any pairwise intersection.
Why ElGamal: deterministic blinding cannot hide origins, since whoever holds two sets
blinded by the same keys can compare them; the re-randomised ciphertexts can be
compared by nobody until M decrypts the merged, shuffled pool (the re-encryption mix of
Sako and Kilian, EUROCRYPT 1995, with a DH-PSI blinding step at each hop).
Cost: per non-leader item one encryption, about 3.3 scalar multiplications per shuffler
and one decryption, on top of the mapping flows.
"""

from __future__ import annotations

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context
from protocols.psi.common import as_keys, shuffled

GROUP = "ed25519"
W = curve.POINT_BYTES
CT = curve.CIPHERTEXT_BYTES


def ring_roles(parties: list[str], leader: str) -> tuple[list[str], list[str], str]:
    """(the ring starting at ``leader``, its shufflers, its mixer M: the last party)."""
    start = parties.index(leader)
    ring = parties[start:] + parties[:start]
    return ring, ring[1:-1], ring[-1]


def check_batch(peer: str, value, rows: int | None = None, width: int = W) -> np.ndarray:
    """A received batch must be an (n, width) uint8 array (n = ``rows`` when given)."""
    if (not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 2
            or value.shape[1] != width or (rows is not None and value.shape[0] != rows)):
        raise ValueError(f"party {peer!r} sent a malformed batch of points")
    return value


def _recv_points(ctx: Context, peer: str, rows: int | None = None, width: int = W) -> np.ndarray:
    return check_batch(peer, ctx.recv(peer), rows, width)


def check_public_key(mixer: str, pub) -> bytes:
    if not isinstance(pub, bytes) or len(pub) != W:
        raise ValueError(f"party {mixer!r} sent a malformed public key")
    return pub


# The per-batch steps, shared with the out-of-core cardinality (protocols.bucketed_cardinality_parties).
def encrypt_items(pub: bytes, digests: np.ndarray) -> np.ndarray:
    """A non-leader's items for the pool: ElGamal encryptions of H(x) under M's key ``pub``."""
    return curve.elgamal_encrypt(pub, curve.hash_to_group(GROUP, digests))


def mix(pub: bytes, key: bytes, cts: np.ndarray) -> np.ndarray:
    """A shuffler's hop: each encryption of P replaced by a fresh encryption of key·P."""
    return curve.elgamal_blind(pub, key, cts)


def decrypt(secret: bytes, cts: np.ndarray) -> np.ndarray:
    return curve.elgamal_decrypt(secret, cts)


def present_in_all(plain: np.ndarray, sets: int) -> np.ndarray:
    """The distinct points of ``plain`` ((n, W) uint8) occurring exactly ``sets`` times."""
    values, counts = np.unique(as_keys(plain, W), return_counts=True)
    common = values[counts == sets]
    return np.frombuffer(common.tobytes(), dtype=np.uint8).reshape(-1, W)


def blind(key: bytes, points: np.ndarray) -> np.ndarray:
    return curve.scalar_mul(GROUP, key, points)


def map_out(digests: np.ndarray, t: bytes) -> np.ndarray:
    """A receiver's items entering its mapping flow: t·H(x), t a fresh temporary scalar."""
    return curve.hash_to_group(GROUP, digests, t)


def unblinder(key: bytes, t: bytes) -> bytes:
    """The scalar k_R·t^-1 that turns t·K'·H(x) (back from the flow) into K·H(x)."""
    return curve.ed25519_scalar_mul(key, curve.ed25519_scalar_invert(t))


def run(ctx: Context, digests: np.ndarray, leader: str, receivers: list[str], cardinality_only: bool,
        compare_bytes: int) -> np.ndarray | int | None:
    """Returns a mask over ``digests`` rows (PSI receiver), a count (cardinality receiver)
    or None (non-receiver)."""
    me = ctx.party
    ring, shufflers, mixer = ring_roles(ctx.parties, leader)
    others = ring[1:]
    key = curve.new_key(GROUP)
    n_parties = len(ring)

    # 1. Membership: the non-leader sets, ElGamal-encrypted for M, pooled and mixed.
    if me == mixer:
        secret, pub = curve.elgamal_keypair()
        for q in shufflers:
            ctx.send(q, pub)
    elif me in shufflers:
        pub = check_public_key(mixer, ctx.recv(mixer))
    if me != leader:
        mine = encrypt_items(pub, digests)
        mine = mine[shuffled(len(mine))]
        if me != shufflers[0]:
            ctx.send(shufflers[0], mine)
    if me in shufflers:
        pos = shufflers.index(me)
        if pos == 0:
            sets = [mine] + [_recv_points(ctx, q, width=CT) for q in others if q != me]
            bag = np.concatenate(sets)      # origins in a known order: only ciphertexts here
        else:
            bag = _recv_points(ctx, shufflers[pos - 1], width=CT)
        bag = mix(pub, key, bag)
        bag = bag[shuffled(len(bag))]
        ctx.send(shufflers[pos + 1] if pos + 1 < len(shufflers) else mixer, bag)
    if me == mixer:
        plain = decrypt(secret, _recv_points(ctx, shufflers[-1], width=CT))
        common = blind(key, present_in_all(plain, n_parties - 1))
        ctx.send(leader, common[shuffled(len(common))])
    if me == leader:
        common_k = blind(key, _recv_points(ctx, mixer))

    # 2. Mapping flows: each receiver gets its own items blinded by every key, privately.
    mine_full = None
    mapped = [leader] if cardinality_only else receivers
    for owner in mapped:
        i = ring.index(owner)
        path = ring[i:] + ring[:i]
        pos = path.index(me)
        if pos == 0:
            t = curve.new_key(GROUP)
            pts = map_out(digests, t)
            ctx.send(path[1], pts)
            back = _recv_points(ctx, path[-1], len(pts))
            mine_full = blind(unblinder(key, t), back)
        else:
            pts = blind(key, _recv_points(ctx, path[pos - 1]))
            if cardinality_only:
                pts = pts[shuffled(len(pts))]
            ctx.send(path[(pos + 1) % len(path)], pts)

    # 3. Results.
    if me == leader:
        hit = np.isin(as_keys(mine_full, W), as_keys(common_k, W))
        if cardinality_only:
            count = int(hit.sum())
            for r in receivers:
                if r != me:
                    ctx.send(r, count)
            return count
        inter = np.sort(as_keys(mine_full[hit], compare_bytes))
        inter = np.frombuffer(inter.tobytes(), dtype=np.uint8).reshape(-1, compare_bytes)
        for r in receivers:
            if r != me:
                ctx.send(r, inter)
        return hit
    if me in receivers:
        got = ctx.recv(leader)
        if cardinality_only:
            if not isinstance(got, int):
                raise ValueError(f"party {leader!r} sent a malformed count")
            return got
        if not isinstance(got, np.ndarray) or got.dtype != np.uint8 or got.ndim != 2:
            raise ValueError(f"party {leader!r} sent a malformed intersection")
        return np.isin(as_keys(mine_full, compare_bytes), as_keys(got, compare_bytes))
    return None
