"""``psi.intersection_sum`` under a memory budget: Private Join and Compute per hash bucket,
the buckets' encrypted sums added on ciphertexts, one decryption at the end.

The input is streamed into hash buckets (:func:`protocols.buckets.spill`: ids and, at the
values party, the value column). The values party draws one Paillier key for the job and
sends it once; per bucket, both parties pad their distinct ids with random dummies to the
bucket's public capacity (dummies carry the value 0 and match nothing) and run the ECDH
exchange of :func:`protocols.psi.intersection_sum.intersection_sum` on the bucket
(:func:`~protocols.psi.intersection_sum.id_match` / ``values_send``; values of duplicate
ids added up, as unbucketed). The id party adds each bucket's Enc(sum) to its running
Enc(total); after the last bucket the reveal is the unbucketed one (``id_reveal`` /
``values_reveal``: a masked sum decrypted by the values party, or the sum to it).

Reveals what the unbucketed job reveals plus, with more than one bucket, **the size of the
intersection in each bucket to the id party**: it matches per bucket, and it knows which
bucket each of its ids is in (the bucket key is joint), so the nb counts say more than the
total. So nb > 1 needs every party's ``[limits] bucket_join_sizes`` (the per-bucket
matched-row counts a bucketed join opens). No per-bucket sum is decrypted; the values party
learns nothing per bucket (the points it double-blinds come shuffled). Semi-honest, DDH on
Curve25519 and DCR (Ion et al., "On Deploying Secure Computing: Private Intersection-Sum-
with-Cardinality", EuroS&P 2020; Paillier, EUROCRYPT 1999).
In memory: one batch of input, one bucket's points and ciphertexts. Resume: the values
party keeps its key pair in its own checkpoint (:func:`protocols.bucketed._own_keypair`), the
id party its running count and Enc(total) after each bucket; a resubmitted job reuses the
spilled input, the id party tells the values party the first bucket it has not added (a
count of buckets), and both skip the buckets before it, their ECDH and Paillier work
included. The result is the one a run without interruption gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context
from protocols import buckets
from protocols.bucketed import _checkpoint, _consent, _own_keypair, _plan, _start, _sums_resume, _sums_save, _sums_start
from protocols.psi.oprf import capacity
from protocols.registry import ColumnRef, LocalData, numeric

PHASE = "intersection-sum: one exchange per bucket"


def intersection_sum(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef,
                     values: ColumnRef, memory: int, key_bits: int = 2048) -> tuple[int, int | float] | None:
    """``psi.intersection_sum`` in buckets: (cardinality, sum) at the receiver (default the
    id party), None at the other party. Values that are all integers are summed exactly,
    others in fixed point with ``FLOAT_FRAC_BITS`` fractional bits, as unbucketed."""
    from mpc.paillier import EncryptedVector
    from protocols.psi.common import DEFAULT_BUCKET, DEFAULT_COMPARE_BYTES
    from protocols.psi.intersection_sum import (
        FLOAT_FRAC_BITS,
        GROUP,
        id_match,
        id_receive_key,
        id_reveal,
        values_reveal,
        values_send,
    )

    if len(ctx.parties) != 2:
        raise ValueError("psi.intersection_sum runs between exactly 2 parties")
    peer = ctx.peers[0]
    has_values = values.party == ctx.party
    if has_values and values.dataset != ref.dataset:
        raise ValueError(f"party {ctx.party!r}: the values column {values} must be in the dataset of its ids ({ref})")
    cols = [values] if has_values else []
    store = _checkpoint(ctx, "psi.intersection_sum", params, data, [ref, *cols], memory)
    _start(ctx, store)
    ints = [True]

    def batches():
        offset = 0
        for b in data.batches([ref, *cols]):
            v = [numeric(values, b[values.column], offset)] if has_values else []
            if v:
                ints[0] &= bool(np.all(v[0] == np.round(v[0])))
            offset += len(b[ref.column])
            yield b[ref.column], (np.stack(v, axis=1) if v else None)

    sp, _, kind = buckets.spill(ctx, store, batches, len(cols), lambda rows: {"ints": ints[0]})
    m = int(sum(store.state["counts"]))
    receiver = params.get("receiver") or (peer if has_values else ctx.party)
    if receiver not in ctx.parties:
        raise ValueError(f"receiver {receiver!r} is not one of {ctx.parties}")
    sizes, nb = _plan(ctx, store, "bucketed_intersection_sum", kind, m, memory, "ecdh", {"receiver": receiver})
    _consent(ctx, data, nb, "bucket_join_sizes",
             "psi.intersection_sum under this memory budget needs {nb} buckets, and then the party without "
             "values learns the size of the intersection in each bucket")
    cap = capacity(sizes[ctx.party], nb)
    peer_cap = capacity(sizes[peer], nb)
    is_float = has_values and not store.state["ints"]
    frac = FLOAT_FRAC_BITS
    if has_values:
        pk, sk = _own_keypair(store, key_bits)
        ctx.send(peer, pk)
        ctx.send(peer, {"is_float": bool(is_float)})
        start = _sums_start(ctx, peer, nb)
        count, total = 0, None
    else:
        pk, is_float = id_receive_key(ctx, peer)
        start, saved = _sums_resume(ctx, store, peer, pk, nb, lambda v: isinstance(v, dict)
                                    and isinstance(v.get("count"), int) and not isinstance(v["count"], bool)
                                    and (v.get("total") is None or isinstance(v["total"], EncryptedVector)
                                         and v["total"].public_key == pk and len(v["total"]) == 1))
        count, total = 0, None
        if saved is not None:                # the count and Enc(sum) of the buckets before start
            count, total = saved["count"], saved["total"]
    per = buckets.SPILL // nb
    ctx.report_progress(phase=PHASE, done=start, total=nb, unit="buckets")
    for b in range(start, nb):
        rec = sp.read(b * per, per)
        padded, inverse = buckets.padded_bucket(ctx, rec["w"], cap, b)
        digests = buckets.block_digests(padded)
        key = curve.new_key(GROUP)       # fresh per bucket: no point is comparable across buckets
        if has_values:
            v = rec["v"][:, 0]
            scaled = np.rint(np.ldexp(v, frac)) if is_float else v
            sums = np.zeros(cap, dtype=np.int64)       # values of duplicate ids added up
            np.add.at(sums, inverse, scaled.astype(np.int64))
            values_send(ctx, peer, digests, sums.tolist(), key, peer_cap, pk, DEFAULT_COMPARE_BYTES,
                            DEFAULT_BUCKET)
        else:
            k, part = id_match(ctx, peer, digests, key, peer_cap, pk, DEFAULT_COMPARE_BYTES,
                                   DEFAULT_BUCKET)
            count += k
            if part is not None:
                total = part if total is None else total + part
            _sums_save(store, pk, b + 1, {"count": count, "total": total})
        ctx.renew_deadline()
        ctx.report_progress(phase=PHASE, done=b + 1, total=nb)
    if has_values:
        return values_reveal(ctx, peer, pk, sk, receiver, is_float, frac)
    return id_reveal(ctx, peer, pk, count, total, receiver, is_float, frac)
