"""ECDH PSI and PSI cardinality for 2 or more parties (SPMD: every party calls it).

Items: a list/array/Series of str (hashed as UTF-8), bytes or int, one type per input.
Duplicates are allowed: each distinct value enters the protocol once, and a receiver's
result lists *every* input row whose value is in the intersection (``len(result)`` counts
rows, ``result.cardinality`` counts distinct values).

What each party learns (semi-honest, non-colluding parties):

* every party: the number of distinct items of every party;
* ``ecdh_psi`` receivers: which of their own rows are in the intersection; non-receivers:
  nothing more;
* ``psi_cardinality`` receivers: the number of distinct values in the intersection only.
* with N >= 3 parties, see :mod:`protocols.psi.multiparty` for the two extra leaks
  (the leader learns the size of the non-leader intersection; the last party of the ring
  learns the multiplicity histogram of the non-leader sets).

Two parties use X25519 (:mod:`protocols.psi.two_party`, streamed in buckets over the
crypto thread pool); three or more use the Ed25519 group (:mod:`protocols.psi.multiparty`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mpc.runtime.context import Context
from protocols.psi import multiparty, two_party
from protocols.psi.common import (
    DEFAULT_BUCKET,
    DEFAULT_COMPARE_BYTES,
    PsiResult,
    check_compare_bytes,
    check_receivers,
    exchange_header,
    pick,
    prepare,
    rows_of,
)


def _run(ctx: Context, protocol: str, items: Any, receivers: Sequence[str] | str | None,
         compare_bytes: int, bucket_size: int, cardinality_only: bool):
    if len(ctx.parties) < 2:
        raise ValueError(f"{protocol} needs at least 2 parties, got {ctx.parties}")
    receivers = check_receivers(ctx, receivers)
    compare_bytes = check_compare_bytes(compare_bytes)
    if not isinstance(bucket_size, int) or bucket_size < 1:
        raise ValueError(f"bucket_size must be a positive int, got {bucket_size!r}")
    prepared = prepare(items)
    params = {"receivers": receivers, "compare_bytes": compare_bytes, "bucket_size": bucket_size}
    headers = exchange_header(ctx, protocol, prepared.kind, len(prepared.digests), params)
    me_receiver = ctx.party in receivers
    if len(ctx.parties) == 2:
        peer = ctx.peers[0]
        peer_size = headers[ctx.parties.index(peer)]["size"]
        out = two_party.run(ctx, peer, prepared.digests, peer_size, me_receiver, peer in receivers,
                            cardinality_only, compare_bytes, bucket_size)
    else:
        out = multiparty.run(ctx, prepared.digests, receivers[0], receivers, cardinality_only,
                             compare_bytes)
    ctx.report_progress(1.0)
    return prepared, out


def ecdh_psi(ctx: Context, items: Any, receivers: Sequence[str] | str | None = None, *,
             compare_bytes: int = DEFAULT_COMPARE_BYTES,
             bucket_size: int = DEFAULT_BUCKET) -> PsiResult | None:
    """Private set intersection: receivers (all parties when None) learn their own rows
    whose value every party holds; other parties get None.

    Args:
        items: this party's items (str, bytes or int; one type; duplicates allowed).
        receivers: party names that get the result (the same on every party).
        compare_bytes: bytes of the final points compared (8..32; false-match probability
            about n_a·n_b / 2^(8·compare_bytes)). Must agree between parties.
        bucket_size: items per message (2 parties); bounds memory per message.

    Returns:
        :class:`PsiResult` with ``items`` (own rows in the intersection, input order),
        ``indices`` (their positions) and ``cardinality``, or None for a non-receiver.

    Raises:
        TypeError: mixed item types, or parties passing different item types.
        ValueError: a None item, a string that is not valid Unicode, mismatched
            parameters between parties.
    """
    prepared, mask = _run(ctx, "ecdh_psi", items, receivers, compare_bytes, bucket_size, False)
    if mask is None:
        return None
    indices = rows_of(prepared, mask)
    return PsiResult(items=pick(items, indices), indices=indices, cardinality=int(np.sum(mask)))


def psi_cardinality(ctx: Context, items: Any, receivers: Sequence[str] | str | None = None, *,
                    compare_bytes: int = DEFAULT_COMPARE_BYTES,
                    bucket_size: int = DEFAULT_BUCKET) -> int | None:
    """Size of the intersection (distinct values) for receivers; None for other parties.

    Receivers learn only this number (and every party's distinct-set size), not which
    items match: the points returned to them are reshuffled.
    """
    _, count = _run(ctx, "psi_cardinality", items, receivers, compare_bytes, bucket_size, True)
    return None if count is None else int(count)


def ecdh_mask(ctx: Context, kind: str, digests: np.ndarray, receivers: list[str], *,
              compare_bytes: int = DEFAULT_COMPARE_BYTES, bucket_size: int = DEFAULT_BUCKET) -> np.ndarray | None:
    """Two-party ECDH PSI on distinct 32-byte item digests ((m, 32) uint8, of items of
    ``kind``; a bucket of :mod:`protocols.bucketed`): a receiver gets the mask of its digests
    the other party holds, a non-receiver None. ``receivers`` in rank order; the same on both
    parties."""
    if len(ctx.parties) != 2:
        raise ValueError(f"ecdh_mask runs between exactly 2 parties, got {ctx.parties}")
    params = {"receivers": receivers, "compare_bytes": compare_bytes, "bucket_size": bucket_size}
    headers = exchange_header(ctx, "ecdh_psi", kind, len(digests), params)
    peer = ctx.peers[0]
    return two_party.run(ctx, peer, digests, headers[ctx.parties.index(peer)]["size"], ctx.party in receivers,
                         peer in receivers, False, compare_bytes, bucket_size)
