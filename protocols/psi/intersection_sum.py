"""Intersection-sum (Google's Private Join and Compute): ECDH PSI plus Paillier.

Two parties: the *id party* passes only ids; the *values party* passes ids and int64
(or float) values. The values party owns a fresh Paillier key pair.

1. The id party sends H(v)^a for its distinct ids, shuffled; the values party returns
   them multiplied by b, reshuffled (so no position can be linked).
2. The values party streams, in buckets, H(w)^b with Enc(t) for its distinct ids (values
   of duplicate ids are added up), in a secret shuffled order.
3. The id party raises H(w)^b to a, keeps the ciphertexts whose point matches one of its
   H(v)^ab, and adds them homomorphically. If the id party is the receiver it adds a
   random mask r (124 bits: statistically hides the sum to 2^-40), re-randomises and
   sends Enc(sum + r); the values party decrypts and returns sum + r; the id party removes
   r. If the values party is the receiver, the id party sends the re-randomised Enc(sum)
   and the count; the values party decrypts.

Reveals (semi-honest): both parties learn both distinct-id counts. The id party learns
the intersection size (it does the matching). The receiver learns (cardinality, sum).
With the default receiver (the id party) the values party learns nothing else: it only
decrypts a masked sum. If the values party is the receiver, the id party learns the
cardinality and nothing else. No party learns which ids are in the intersection.
"""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context
from protocols.psi.common import (
    DEFAULT_BUCKET,
    DEFAULT_COMPARE_BYTES,
    as_keys,
    check_compare_bytes,
    exchange_header,
    prepare,
    shuffled,
)
from protocols.psi.two_party import _buckets, _check_points

GROUP = "x25519"
# The sum of up to 2^30 int64 values stays below 2^93; a 133-bit mask hides it to 2^-40.
MASK_BITS = 133
FLOAT_FRAC_BITS = 16


def _values_array(values: Any, n: int, frac_bits: int) -> tuple[list[int], bool]:
    """Values as Python ints (floats scaled by 2^frac_bits and rounded); is_float."""
    if hasattr(values, "to_numpy"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise ValueError(f"values must be one-dimensional with one value per id ({n}), "
                         f"got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return [int(v) for v in arr.astype(np.int64).tolist()], False
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError("values contain NaN or infinity")
        return [int(v) for v in np.rint(arr * (1 << frac_bits)).astype(np.int64).tolist()], True
    raise TypeError(f"values must be integers or floats, got dtype {arr.dtype}")


def intersection_sum(ctx: Context, ids: Any, values: Any = None, receiver: str | None = None, *,
                     key_bits: int = 2048, compare_bytes: int = DEFAULT_COMPARE_BYTES,
                     bucket_size: int = DEFAULT_BUCKET,
                     frac_bits: int = FLOAT_FRAC_BITS) -> tuple[int, int | float] | None:
    """Sum of the values party's values over the ids both parties hold.

    Args:
        ids: this party's ids (str, bytes or int; duplicates allowed: the values of
            duplicate ids are added up, and an id counts once in the cardinality).
        values: int or float array aligned with ``ids`` on exactly one party; None on the other.
        receiver: who gets ``(cardinality, sum)``; default the party without values.
        key_bits: Paillier modulus size (below 2048 only for tests).
        frac_bits: float values are summed in fixed point with this many fractional bits.

    Returns:
        ``(cardinality, sum)`` on the receiver (sum is a float if the values are floats),
        None on the other party.
    """
    if len(ctx.parties) != 2:
        raise ValueError(f"intersection_sum runs between exactly 2 parties, got {ctx.parties}")
    compare_bytes = check_compare_bytes(compare_bytes)
    peer = ctx.peers[0]
    prepared = prepare(ids, "ids")
    has_values = values is not None
    if has_values:
        ints, is_float = _values_array(values, prepared.n_rows, frac_bits)
    params = {"receiver": receiver, "key_bits": key_bits, "compare_bytes": compare_bytes,
              "bucket_size": bucket_size, "frac_bits": frac_bits}
    headers = exchange_header(ctx, "intersection_sum", prepared.kind, len(prepared.digests), params)
    flags = ctx.exchange(peer, has_values)
    if flags == has_values:
        raise ValueError("exactly one party must pass values: "
                         + ("both did" if has_values else "neither did"))
    id_party = peer if has_values else ctx.party
    if receiver is None:
        receiver = id_party
    if receiver not in ctx.parties:
        raise ValueError(f"receiver {receiver!r} is not one of {ctx.parties}")
    peer_size = headers[ctx.parties.index(peer)]["size"]
    key = curve.new_key(GROUP)
    if has_values:
        return _values_side(ctx, peer, prepared, ints, is_float, key, peer_size, receiver, key_bits,
                            compare_bytes, bucket_size, frac_bits)
    return _id_side(ctx, peer, prepared, key, peer_size, receiver, compare_bytes, bucket_size, frac_bits)


def _id_side(ctx: Context, peer, prepared, key, peer_size, receiver, compare_bytes, bucket, frac_bits):
    pk, is_float = id_receive_key(ctx, peer)
    count, total = id_match(ctx, peer, prepared.digests, key, peer_size, pk, compare_bytes, bucket)
    return id_reveal(ctx, peer, pk, count, total, receiver, is_float, frac_bits)


def id_receive_key(ctx: Context, peer: str) -> tuple[Any, bool]:
    """At the id party: the values party's Paillier public key and whether its values are floats."""
    from mpc.paillier import PublicKey
    pk = ctx.recv(peer)
    if not isinstance(pk, PublicKey):
        raise ValueError(f"party {peer!r} sent no Paillier public key")
    meta = ctx.recv(peer)
    if not isinstance(meta, dict) or not isinstance(meta.get("is_float"), bool):
        raise ValueError(f"party {peer!r} sent a malformed intersection_sum header")
    return pk, meta["is_float"]


def id_match(ctx: Context, peer: str, digests: np.ndarray, key: Any, peer_size: int, pk: Any,
             compare_bytes: int, bucket: int) -> tuple[int, Any]:
    """Steps 1-3 at the id party for its distinct ``digests``: (intersection size, Enc(sum)
    under ``pk``, or None when nothing matched). The values party runs :func:`values_send`."""
    from mpc.paillier import EncryptedVector
    m = len(digests)
    mine = curve.hash_to_group(GROUP, digests[shuffled(m)], key)
    for s in _buckets(m, bucket):
        ctx.send(peer, mine[s])
    del mine
    back = [_check_points(ctx, peer, ctx.recv(peer), s.stop - s.start, compare_bytes)
            for s in _buckets(m, bucket)]
    mine_ab = as_keys(np.concatenate(back), compare_bytes) if back else np.zeros(0, f"S{compare_bytes}")
    del back
    total = None
    count = 0
    buckets = _buckets(peer_size, bucket)
    for i, s in enumerate(buckets):
        pts = _check_points(ctx, peer, ctx.recv(peer), s.stop - s.start)
        cts = ctx.recv(peer)
        if not isinstance(cts, EncryptedVector) or len(cts) != s.stop - s.start or cts.public_key != pk:
            raise ValueError(f"party {peer!r} sent a malformed ciphertext bucket")
        hit = np.isin(as_keys(curve.scalar_mul(GROUP, key, pts)[:, :compare_bytes], compare_bytes), mine_ab)
        k = int(hit.sum())
        count += k
        if k:
            part = cts[hit].sum()
            total = part if total is None else total + part
        ctx.report_progress(phase="intersection-sum: matching and adding (Paillier)", done=i + 1,
                            total=len(buckets), unit="batches")
    return count, total


def id_reveal(ctx: Context, peer: str, pk: Any, count: int, total: Any, receiver: str, is_float: bool,
              frac_bits: int) -> tuple[int, int | float] | None:
    """Step 4 at the id party: the (cardinality, sum) to ``receiver`` from Enc(sum) ``total``
    (None: zero); the values party runs :func:`values_reveal`."""
    if total is None:
        total = pk.encrypt([0])
    if receiver == ctx.party:
        mask = secrets.randbits(MASK_BITS)
        ctx.send(peer, (total + mask).rerandomise())
        masked = ctx.recv(peer)
        if not isinstance(masked, int):
            raise ValueError(f"party {peer!r} sent a malformed masked sum")
        s = masked - mask
        return count, (s / (1 << frac_bits) if is_float else s)
    ctx.send(peer, total.rerandomise())
    ctx.send(peer, count)
    return None


def _values_side(ctx: Context, peer, prepared, ints, is_float, key, peer_size, receiver, key_bits,
                 compare_bytes, bucket, frac_bits):
    from mpc.paillier import generate_keypair
    pk, sk = generate_keypair(key_bits, insecure=key_bits < 2048)
    m = len(prepared.digests)
    # Values of duplicate ids are added up: one (id, value) pair per distinct id.
    sums = [0] * m
    for row, d in enumerate(prepared.inverse.tolist()):
        sums[d] += ints[row]
    ctx.send(peer, pk)
    ctx.send(peer, {"is_float": is_float})
    values_send(ctx, peer, prepared.digests, sums, key, peer_size, pk, compare_bytes, bucket)
    return values_reveal(ctx, peer, pk, sk, receiver, is_float, frac_bits)


def values_send(ctx: Context, peer: str, digests: np.ndarray, sums: list[int], key: Any, peer_size: int,
                pk: Any, compare_bytes: int, bucket: int) -> None:
    """Steps 1-2 at the values party for its distinct ``digests`` and their summed values
    ``sums``: double-blind the id party's points (reshuffled), then stream (H(w)^b, Enc(t))
    in a secret shuffled order."""
    m = len(digests)
    theirs = []
    for s in _buckets(peer_size, bucket):
        got = _check_points(ctx, peer, ctx.recv(peer), s.stop - s.start)
        theirs.append(curve.scalar_mul(GROUP, key, got)[:, :compare_bytes])
    theirs_ab = np.concatenate(theirs) if theirs else np.zeros((0, compare_bytes), np.uint8)
    theirs_ab = theirs_ab[shuffled(len(theirs_ab))]
    for s in _buckets(len(theirs_ab), bucket):
        ctx.send(peer, np.ascontiguousarray(theirs_ab[s]))
    del theirs, theirs_ab
    perm = shuffled(m)
    order = [sums[i] for i in perm.tolist()]
    digests = digests[perm]
    buckets = _buckets(m, bucket)
    pending = curve.submit_hash_to_group(GROUP, digests[buckets[0]], key) if buckets else None
    for i, s in enumerate(buckets):
        pts = pending.result()
        pending = curve.submit_hash_to_group(GROUP, digests[buckets[i + 1]], key) if i + 1 < len(buckets) else None
        ctx.send(peer, pts)
        ctx.send(peer, pk.encrypt(order[s]))
        ctx.report_progress(phase="intersection-sum: encrypting values (Paillier)", done=i + 1,
                            total=len(buckets), unit="batches")


def values_reveal(ctx: Context, peer: str, pk: Any, sk: Any, receiver: str, is_float: bool,
                  frac_bits: int) -> tuple[int, int | float] | None:
    """Step 4 at the values party: decrypt the (masked) sum; the result if it is the receiver."""
    from mpc.paillier import EncryptedVector
    total = ctx.recv(peer)
    if not isinstance(total, EncryptedVector) or len(total) != 1 or total.public_key != pk:
        raise ValueError(f"party {peer!r} sent a malformed encrypted sum")
    plain = int(np.asarray(sk.decrypt(total), dtype=object)[0])
    if receiver != ctx.party:
        ctx.send(peer, plain)
        return None
    count = ctx.recv(peer)
    if not isinstance(count, int):
        raise ValueError(f"party {peer!r} sent a malformed count")
    return count, (plain / (1 << frac_bits) if is_float else plain)
