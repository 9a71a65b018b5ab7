"""N-party (N >= 3) ECDH PSI over the Ed25519 prime-order group (Elligator 2 hash).

Parties form a ring starting at the *leader* L (the first receiver); the *mixer* M is
the last party of the ring. Every party j has a fresh secret scalar k_j; K is the product
of all of them.

1. Membership: every non-leader j hashes its distinct items, multiplies by k_j and
   shuffles; the set visits every other non-leader (each multiplies by its key and
   reshuffles) and ends at M. M pools the N-1 sets (all blinded by every key except k_L),
   keeps the values present in all of them (the intersection of the non-leader sets),
   shuffles them and sends them to L, who multiplies by k_L.
2. Mapping: every receiver R multiplies its shuffled hashed items by a temporary scalar t;
   the batch visits every other party (each multiplies by its key; order kept for a PSI,
   reshuffled at each hop for a cardinality) and returns to R, who multiplies by
   k_R·t^-1. So only R ever holds its items blinded by K, and only in its own secret
   order.
3. L compares its K-blinded items with the K-blinded non-leader intersection; for a PSI it
   sends the matching K-blinded values, sorted (an order no party can link), to the other
   receivers, who match them against their own; for a cardinality it sends the count.

Reveals (semi-honest, no collusion): every party learns every party's distinct-set size.
Receivers learn the N-way intersection (PSI: which of their items; cardinality: its
size). L also learns the size of the intersection of the non-leader sets. M learns how
many values occur in exactly c of the N-1 non-leader sets, for each c (for N = 3: the
size of the intersection of its own set with the other non-leader's, not which items).
No party learns which items of another party are in any pairwise intersection.
"""

from __future__ import annotations

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context
from protocols.psi.common import as_keys, shuffled

GROUP = "ed25519"
W = curve.POINT_BYTES


def _recv_points(ctx: Context, peer: str, rows: int | None = None) -> np.ndarray:
    value = ctx.recv(peer)
    if (not isinstance(value, np.ndarray) or value.dtype != np.uint8 or value.ndim != 2
            or value.shape[1] != W or (rows is not None and value.shape[0] != rows)):
        raise ValueError(f"party {peer!r} sent a malformed batch of points")
    return value


def run(ctx: Context, digests: np.ndarray, leader: str, receivers: list[str], cardinality_only: bool,
        compare_bytes: int) -> np.ndarray | int | None:
    """Returns a mask over ``digests`` rows (PSI receiver), a count (cardinality receiver)
    or None (non-receiver)."""
    me = ctx.party
    start = ctx.parties.index(leader)
    ring = ctx.parties[start:] + ctx.parties[:start]
    others = ring[1:]
    mixer = ring[-1]
    key = curve.new_key(GROUP)
    n_parties = len(ring)

    # 1. Membership flows of the non-leader sets, one after the other in ring order.
    pool: list[np.ndarray] = []
    for owner in others:
        path = [owner] + [q for q in others if q != owner]
        if me not in path and not (me == mixer):
            continue
        if me == owner:
            pts = curve.hash_to_group(GROUP, digests, key)
            pts = pts[shuffled(len(pts))]
        elif me in path:
            prev = path[path.index(me) - 1]
            pts = curve.scalar_mul(GROUP, key, _recv_points(ctx, prev))
            pts = pts[shuffled(len(pts))]
        else:
            pts = None
        if me in path:
            nxt = path[path.index(me) + 1] if me != path[-1] else mixer
            if nxt == me:
                pool.append(pts)
            else:
                ctx.send(nxt, pts)
        if me == mixer and path[-1] != mixer:
            pool.append(_recv_points(ctx, path[-1]))
    if me == mixer:
        allpts = np.concatenate(pool) if pool else np.zeros((0, W), np.uint8)
        values, counts = np.unique(as_keys(allpts, W), return_counts=True)
        common = values[counts == n_parties - 1]
        common = np.frombuffer(common.tobytes(), dtype=np.uint8).reshape(-1, W)
        ctx.send(leader, common[shuffled(len(common))])
    if me == leader:
        common_k = curve.scalar_mul(GROUP, key, _recv_points(ctx, mixer))

    # 2. Mapping flows: each receiver gets its own items blinded by every key, privately.
    mine_full = None
    mapped = [leader] if cardinality_only else receivers
    for owner in mapped:
        i = ring.index(owner)
        path = ring[i:] + ring[:i]
        pos = path.index(me)
        if pos == 0:
            t = curve.new_key(GROUP)
            pts = curve.hash_to_group(GROUP, digests, t)
            ctx.send(path[1], pts)
            back = _recv_points(ctx, path[-1], len(pts))
            unblind = curve.ed25519_scalar_mul(key, curve.ed25519_scalar_invert(t))
            mine_full = curve.scalar_mul(GROUP, unblind, back)
        else:
            pts = curve.scalar_mul(GROUP, key, _recv_points(ctx, path[pos - 1]))
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
