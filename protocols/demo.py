"""demo.secure_sum: the total of several parties' columns, revealing only the total.

Each party sums its own column, encodes the sum in fixed point (16 fractional bits) in
Z_2^64, and splits it into additive shares, one per party, from the CSPRNG. Each party
adds the shares it received and broadcasts that partial sum; the partial sums add up to
the total. Reveals to every party: the total. Nothing else (each partial sum is a
uniformly random ring element on its own).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.crypto.random import random_uint64
from mpc.runtime.context import Context
from protocols.registry import ColumnRef, LocalData, Param, ProtocolSpec, column_refs, numeric, register

FRAC_BITS = 16


def secure_sum(ctx: Context, value: float) -> float:
    """SPMD: every party passes its number; every party gets the sum of all of them."""
    scaled = np.array([round(float(value) * (1 << FRAC_BITS))], dtype=np.int64).view(np.uint64)
    masks = random_uint64(len(ctx.parties) - 1)
    shares = dict(zip(ctx.peers, masks, strict=True))
    own = scaled - masks.sum(dtype=np.uint64)
    for peer, share in shares.items():
        ctx.send(peer, share.reshape(1))
    partial = own + sum((ctx.recv(p) for p in ctx.peers), np.zeros(1, dtype=np.uint64))
    total = sum(ctx.gather(partial), np.zeros(1, dtype=np.uint64))
    return float(total.view(np.int64)[0]) / (1 << FRAC_BITS)


def _run(ctx: Context, params: dict[str, Any], data: LocalData) -> float:

    own = [ColumnRef.parse(c) for c in params["columns"] if ColumnRef.parse(c).party == ctx.party]
    local = 0.0
    for ref in own:                  # streamed a batch of rows at a time: memory does not grow with the column
        rows = 0
        for batch in data.batches([ref]):
            values = numeric(ref, batch[ref.column], rows)
            local += float(values.sum())
            rows += len(values)
        if rows < data.min_group_size(ref):
            raise ValueError(f"column {ref} has fewer rows than its min_group_size "
                             f"({data.min_group_size(ref)}): its sum may not leave {ctx.party!r}")
    return secure_sum(ctx, local)


register(ProtocolSpec(
    name="demo.secure_sum",
    doc="Sum of numeric columns held by different parties.",
    reveals="every party: the total over all listed columns; nothing else",
    params={"columns": Param(list, doc="column references 'party.dataset.column'")},
    uses=lambda p: column_refs(p, "columns", use="aggregate"),
    run=_run,
))
