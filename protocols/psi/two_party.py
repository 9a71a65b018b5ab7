"""Two-party ECDH PSI core over X25519 (Diffie-Hellman-style double blinding).

Each party maps its distinct items onto the curve (Elligator 2, :mod:`mpc.crypto.curve`),
shuffles them with a secret permutation, multiplies by its fresh key and streams them to
the peer in buckets; the peer multiplies every received bucket by its own key and, if the
owner is a receiver, sends it back (in received order for a PSI, globally reshuffled for a
cardinality). A receiver then compares its own double-blinded points with the peer's
double-blinded points (which it computed itself), truncated to ``compare_bytes``.

Reveals (semi-honest): both parties learn each other's distinct-set size. A receiver of a
PSI learns which of its own items are in the intersection; a receiver of a cardinality
learns only its size. A non-receiver learns nothing else. Every point the peer sees is an
element of the prime-order subgroup (no curve/twist bit), pseudorandom under DDH on
Curve25519, in an order that depends on no input order.
Truncated comparison: a false match has probability about n_a·n_b / 2^(8·compare_bytes).
"""

from __future__ import annotations

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context
from mpc.runtime.executor import chunks
from protocols.psi.common import as_keys, shuffled

GROUP = "x25519"
CHUNK = 4096        # points per executor call: ~0.1 s of scalar multiplications


def _buckets(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def run(ctx: Context, peer: str, digests: np.ndarray, peer_size: int, me_receiver: bool,
        peer_receiver: bool, cardinality_only: bool, compare_bytes: int,
        bucket: int) -> np.ndarray | int | None:
    """Run the 2-party core with ``peer``.

    Returns, for a receiver: a boolean mask over ``digests`` rows (PSI) or the
    intersection size (cardinality); None for a non-receiver.
    """
    key = curve.new_key(GROUP)
    m = len(digests)
    perm = shuffled(m)
    mine = digests[perm]
    own = _buckets(m, bucket)
    theirs = _buckets(peer_size, bucket)
    returned: list[np.ndarray] = []      # my points blinded by both keys (perm order)
    peer_final: list[np.ndarray] = []    # peer's points blinded by both keys
    held_back: list[np.ndarray] = []     # cardinality: peer's points to return, reshuffled
    # own buckets blinded a chunk per executor call, running ahead of the exchange
    own_parts = [chunks(s.stop - s.start, CHUNK) for s in own]
    blinding = ctx.executor.map(_blind, ((mine[s][c],) for s, parts in zip(own, own_parts, strict=True)
                                         for c in parts), (key,))
    total = max(len(own), len(theirs))
    for i in range(total):
        if i < len(own):
            ctx.send(peer, np.concatenate([next(blinding) for _ in own_parts[i]]))
        if i < len(theirs):
            got = _check_points(ctx, peer, ctx.recv(peer), theirs[i].stop - theirs[i].start)
            double = np.concatenate(list(ctx.executor.map(
                _reblind, ((got[c],) for c in chunks(len(got), CHUNK)), (key, compare_bytes))))
            if me_receiver:
                peer_final.append(double)
            if peer_receiver:
                if cardinality_only:
                    held_back.append(double)
                else:
                    ctx.send(peer, np.ascontiguousarray(double))
        if i < len(own) and me_receiver and not cardinality_only:
            returned.append(_check_points(ctx, peer, ctx.recv(peer), own[i].stop - own[i].start,
                                          compare_bytes))
        ctx.report_progress(phase="ECDH PSI: blinding and exchanging ids", done=i + 1, total=total, unit="batches")
    if peer_receiver and cardinality_only:
        allback = np.concatenate(held_back) if held_back else np.zeros((0, compare_bytes), np.uint8)
        allback = allback[shuffled(len(allback))]
        for s in _buckets(len(allback), bucket):
            ctx.send(peer, allback[s])
    if me_receiver and cardinality_only:
        for s in own:
            returned.append(_check_points(ctx, peer, ctx.recv(peer), s.stop - s.start, compare_bytes))
    if not me_receiver:
        return None
    mine_final = np.concatenate(returned) if returned else np.zeros((0, compare_bytes), np.uint8)
    other = np.concatenate(peer_final) if peer_final else np.zeros((0, compare_bytes), np.uint8)
    hit = np.isin(as_keys(mine_final, compare_bytes), as_keys(other, compare_bytes))
    if cardinality_only:
        return int(hit.sum())
    mask = np.zeros(m, dtype=bool)
    mask[perm[hit]] = True
    return mask


def _blind(digests: np.ndarray, key: bytes) -> np.ndarray:
    """key * H(x) for a chunk of digests (run on the party's executor, in one thread)."""
    return curve.submit_hash_to_group(GROUP, digests, key, min_parallel=len(digests) + 1).result()


def _reblind(points: np.ndarray, key: bytes, width: int) -> np.ndarray:
    """key * P for a chunk of the peer's points, truncated to ``width`` bytes (run on the
    party's executor, in one thread)."""
    return np.ascontiguousarray(curve.submit_mul(GROUP, key, points, min_parallel=len(points) + 1).result()[:, :width])


def _check_points(ctx: Context, peer: str, value, rows: int, width: int = curve.POINT_BYTES) -> np.ndarray:
    """A received bucket must be a (rows, width) uint8 array: anything else is a protocol error."""
    if (not isinstance(value, np.ndarray) or value.dtype != np.uint8
            or value.shape != (rows, width)):
        desc = (f"array {value.dtype} {value.shape}" if isinstance(value, np.ndarray)
                else type(value).__name__)
        raise ValueError(f"party {peer!r} sent {desc}, expected ({rows}, {width}) uint8 points")
    return value
