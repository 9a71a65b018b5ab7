"""``stats.woe_iv`` under a memory budget: rows aligned by PSI per hash bucket, the per-bin
event counts summed on Paillier ciphertexts across buckets, one decryption at the end.

The unbucketed job aligns the rows by a PSI in the clear (both parties learn which of their
ids the other holds) and sums the labels per bin under the label holder's Paillier key
(:func:`protocols.stats.woe.woe_iv`). Here, as for ``psi.ecdh`` in buckets
(:mod:`protocols.bucketed`):

1. Each party streams its ids and its columns of the job (the label at the label holder,
   its features at the feature holder) into hash buckets on disk
   (:func:`protocols.buckets.spill`).
2. Per bucket, the OPRF PSI with both parties receivers
   (:func:`protocols.psi.oprf.oprf_mask`) gives each party its matched rows; it keeps their
   values sorted by the 16-byte block of their id (equal at both parties), so row i of a
   bucket is the same id at both. That is the bucket's checkpoint (the party's own values
   of its matched rows, on its own disk).
3. The feature holder bins each feature with equal-frequency edges over all matched rows
   (``np.quantile``, as the unbucketed job: the same edges), one feature's matched values in
   memory at a time.
4. The label holder draws a fresh Paillier key (2048 bits); per bucket it sends its labels
   encrypted, the feature holder multiplies the ciphertexts of each bin and adds them to its
   running per-bin totals (homomorphic addition: the sum of the buckets' sums is the job's
   sum). At the end it re-randomises the totals and sends them with the edges and the bin
   sizes (:func:`protocols.stats.woe.receive_bin_sums`); the label holder decrypts once and
   builds the table (:func:`protocols.stats.woe.woe_result`), exactly as the unbucketed job.

Reveals what the unbucketed job reveals, and no more: which of its own ids the other party
holds (the per-bucket intersection sizes follow from that and the public bucket key, so no
``bucket_join_sizes`` consent is needed), the label holder the per-bin sizes and event
counts of the totals only (no per-bucket sum is decrypted), the feature holder nothing of
the labels (Paillier under DCR, re-randomised before sending; Paillier, EUROCRYPT 1999).
The label holder's ciphertexts per bucket come in the bucket's size, which both know.
In memory: one batch of input, one bucket's PSI and ciphertexts, one feature's matched values.
Resume: a resubmitted job skips the PSI of the buckets both parties finished, and the
Paillier pass of the buckets the feature holder had added: the label holder keeps its key
pair in its own checkpoint (:func:`protocols.bucketed._own_keypair` says why stored, not
derived), the feature holder its running per-bin sums with the count of buckets they cover,
and it tells the label holder the first bucket to encrypt (a count of buckets: nothing of
the data). The result is the one a run without interruption gives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mpc.runtime.context import Context
from protocols import buckets
from protocols.bucketed import (
    _checkpoint,
    _own_keypair,
    _plan,
    _start,
    _sums_resume,
    _sums_save,
    _sums_start,
    bucket_hits,
)
from protocols.psi.common import check_receivers
from protocols.psi.oprf import capacity, oprf_mask
from protocols.registry import ColumnRef, LocalData, numeric

PHASE_ALIGN = "statistics: WOE and IV (aligning rows per bucket)"
PHASE_SUMS = "statistics: WOE and IV (bin sums per bucket)"


def woe_iv(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef, label: ColumnRef,
           features: list[ColumnRef], memory: int, check_rows: Callable[[int], None] = lambda n: None,
           key_bits: int = 2048) -> tuple[Any, Any, int] | None:
    """The ``stats.woe_iv`` job in buckets: (bins table, IV Series, aligned rows) to
    ``reveal_to`` (all when None), None elsewhere; ``check_rows(n)`` runs on the number of
    aligned rows before any statistic (the policies' minimum group size)."""
    from mpc.paillier import EncryptedVector, PublicKey
    from protocols.stats import _common as cm
    from protocols.stats import woe

    if len(ctx.parties) != 2:
        raise ValueError("stats.woe_iv runs between exactly 2 parties")
    lh = label.party
    own = [f for f in features if f.party == ctx.party]
    cols = own + ([label] if ctx.party == lh else [])
    if any(c.dataset != ref.dataset for c in cols):
        raise ValueError(f"party {ctx.party!r}: the label and features must be in the dataset of its ids ({ref})")
    store = _checkpoint(ctx, "stats.woe_iv", params, data, [ref, *cols], memory)
    done = _start(ctx, store)

    def batches():
        offset = 0
        for b in data.batches([ref, *cols]):
            vals = [numeric(c, b[c.column], offset) for c in cols]
            if ctx.party == lh and not np.isin(vals[-1], (0.0, 1.0)).all():
                raise ValueError(f"label column {label} must hold only 0 and 1")
            offset += len(b[ref.column])
            yield b[ref.column], (np.stack(vals, axis=1) if vals else None)

    sp, _, kind = buckets.spill(ctx, store, batches, len(cols))
    m = int(sum(store.state["counts"]))
    receivers = check_receivers(ctx, None)
    sizes, nb = _plan(ctx, store, "bucketed_woe_iv", kind, m, memory, "psi", {"receivers": receivers})
    cap = capacity(sizes[ctx.party], nb)

    def work(b: int, first: int, count: int) -> dict[str, np.ndarray]:
        rec = sp.read(first, count)
        hit = bucket_hits(ctx, rec, cap, b, lambda padded: oprf_mask(ctx, kind, padded, receivers), ref)
        w = rec["w"][hit]
        order = np.lexsort((w[:, 1], w[:, 0]))        # by block: the same order at both parties
        return {"v": rec["v"][hit][order].reshape(len(hit), len(cols))}

    ctx.report_progress(phase=PHASE_ALIGN)
    counts = [len(r["v"]) for _, r in buckets.run_buckets(ctx, store, nb, done, work)]
    theirs = ctx.exchange(ctx.peers[0], counts)
    if theirs != counts:
        raise ValueError(f"party {ctx.peers[0]!r} sent other per-bucket intersection sizes than this party's PSI")
    n = sum(counts)
    check_rows(n)

    def column(j: int) -> np.ndarray:       # one column of the matched rows, bucket by bucket
        parts = [store.load_bucket(b)["v"][:, j] for b in range(nb)]
        return np.concatenate(parts) if parts else np.zeros(0)

    names = [f.column for f in features]
    binned: dict[str, np.ndarray] = {}      # own feature -> edges
    sizes_of: dict[str, np.ndarray] = {}
    for j, f in enumerate(own):
        arr = cm.float_column(column(j), f"party {ctx.party!r}: feature {f.column!r}")
        edges = woe._edges(arr, params["bins"], f.column)
        binned[f.column] = edges
        sizes_of[f.column] = np.bincount(woe._bin_index(arr, edges), minlength=len(edges) - 1)
        del arr
    to = cm.receivers(ctx, params.get("reveal_to"))
    holders = sorted({f.party for f in features if f.party != lh})
    per_feature: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    ctx.report_progress(phase=PHASE_SUMS, done=0, total=nb, unit="buckets")
    if ctx.party == lh:
        pk, sk = _own_keypair(store, key_bits)
        events = {f: np.zeros(len(binned[f]) - 1, dtype=np.int64) for f in binned}
        for p in holders:
            ctx.send(p, pk)
        start = min((_sums_start(ctx, p, nb) for p in holders), default=nb)
        for b in range(nb):
            v = store.load_bucket(b)["v"]
            y = v[:, -1].astype(np.int64)
            if b >= start and len(y) and holders:     # buckets before start: added already
                enc = pk.encrypt(y)
                for p in holders:
                    ctx.send(p, enc)
            for j, f in enumerate(own):      # own features: plain counts
                e = binned[f.column]
                events[f.column] += np.bincount(woe._bin_index(v[:, j], e), weights=y,
                                                minlength=len(e) - 1).astype(np.int64)
            ctx.report_progress(done=b + 1)
        for f in own:
            per_feature[f.column] = (binned[f.column], events[f.column], sizes_of[f.column])
        for p in holders:
            per_feature.update(woe.receive_bin_sums(ctx, p, pk, sk))
    elif ctx.party in holders:
        pk = ctx.recv(lh)
        if not isinstance(pk, PublicKey):
            raise ValueError(f"party {lh!r} sent no Paillier public key")
        widths = [len(binned[f.column]) - 1 for f in own]
        start, saved = _sums_resume(ctx, store, lh, pk, nb, lambda v: isinstance(v, EncryptedVector)
                                    and v.public_key == pk and len(v) == sum(widths))
        totals: list[list[Any]] = [[None] * k for k in widths]
        if saved is not None:                # the per-bin sums of the buckets before start
            flat = iter(saved[i:i + 1] for i in range(len(saved)))
            totals = [[next(flat) for _ in range(k)] for k in widths]
        zero = pk.encrypt(np.zeros(1, np.int64))
        for b in range(start, nb):
            if counts[b]:
                v = store.load_bucket(b)["v"]
                enc = ctx.recv(lh)
                if not isinstance(enc, EncryptedVector) or enc.public_key != pk or len(enc) != counts[b]:
                    raise ValueError(f"party {lh!r} sent malformed encrypted labels for bucket {b}")
                for j, f in enumerate(own):
                    e = binned[f.column]
                    idx = woe._bin_index(v[:, j], e)
                    order = np.argsort(idx, kind="stable")
                    bounds = np.searchsorted(idx[order], np.arange(len(e)))
                    for k in range(len(e) - 1):
                        rows = order[bounds[k]:bounds[k + 1]]
                        if len(rows):
                            s = enc[rows].sum()
                            totals[j][k] = s if totals[j][k] is None else totals[j][k] + s
            _sums_save(store, pk, b + 1, EncryptedVector.concat([t if t is not None else zero for per in totals
                                                                 for t in per]))
            ctx.report_progress(done=b + 1)
        sums = [t if t is not None else zero for per in totals for t in per]
        vec = EncryptedVector.concat(sums).rerandomise()
        ctx.send(lh, {"sums": vec, "features": [f.column for f in own], "edges": [binned[f.column] for f in own],
                      "sizes": [sizes_of[f.column].astype(np.int64) for f in own]})
    out = woe.woe_result(ctx, lh, to, names, per_feature)
    return None if out is None else (*out, n)
