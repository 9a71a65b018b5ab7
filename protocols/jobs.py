"""Registry entries that let party servers run the PSI and statistics protocols as jobs.

Each entry turns job parameters (column references ``party.dataset.column``) into this
party's own columns and calls the SPMD protocol; results are plain values or DataFrames.
The ``reveals`` line of each entry is what the README's table and the audit log show.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from protocols.registry import ColumnRef, LocalData, Param, ProtocolSpec, column_refs, register


def own_ref(ctx, params: dict[str, Any], key: str) -> ColumnRef | None:
    """This party's column among the references in parameter ``key`` (None if it has none)."""
    value = params.get(key)
    refs = [ColumnRef.parse(v, key) for v in (value if isinstance(value, list) else [value]) if v]
    mine = [r for r in refs if r.party == ctx.party]
    if len(mine) > 1:
        raise ValueError(f"parameter {key!r} names two columns of party {ctx.party!r}")
    return mine[0] if mine else None


def id_column(ctx, params: dict[str, Any], data: LocalData) -> np.ndarray:
    ref = own_ref(ctx, params, "ids")
    if ref is None:
        raise ValueError(f"parameter 'ids' names no column of party {ctx.party!r}")
    values = data.column(ref)
    return values.tolist() if values.dtype == object else values


def _check_two_or_more_ids(params: dict[str, Any]) -> None:
    parties = {ColumnRef.parse(r, "ids").party for r in params["ids"]}
    if len(parties) != len(params["ids"]) or len(parties) < 2:
        raise ValueError("parameter 'ids': give one id column per party, for at least 2 parties")


def _receivers(params: dict[str, Any]) -> list[str] | None:
    return params.get("receivers") or None


# -- psi.ecdh ----------------------------------------------------------------------------
def _run_psi(ctx, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    from protocols.psi import ecdh_psi

    ids = id_column(ctx, params, data)
    result = ecdh_psi(ctx, ids, receivers=_receivers(params))
    if result is None:
        return None
    return pd.DataFrame({own_ref(ctx, params, "ids").column: [str(v) for v in result.items],
                         "row": result.indices.astype(np.int64)})


def _uses_ids(params: dict[str, Any]):
    _check_two_or_more_ids(params)
    return column_refs(params, "ids", use="join_key")


IDS = Param(list, doc="one id column per party: 'party.dataset.column'")
RECEIVERS = Param(list, required=False, doc="parties that get the result (default: all)")

register(ProtocolSpec(
    name="psi.ecdh",
    doc="Private set intersection of the parties' id columns (ECDH, X25519).",
    reveals="receivers: their own ids that every party holds (and the row numbers); every party: "
            "the number of distinct ids of each party",
    params={"ids": IDS, "receivers": RECEIVERS},
    uses=_uses_ids,
    run=_run_psi,
))


# -- psi.cardinality -----------------------------------------------------------------------
def _run_cardinality(ctx, params: dict[str, Any], data: LocalData) -> int | None:
    from protocols.psi import psi_cardinality

    return psi_cardinality(ctx, id_column(ctx, params, data), receivers=_receivers(params))


register(ProtocolSpec(
    name="psi.cardinality",
    doc="Number of ids every party holds, without revealing which.",
    reveals="receivers: the size of the intersection; every party: the number of distinct ids of each party",
    params={"ids": IDS, "receivers": RECEIVERS},
    uses=_uses_ids,
    run=_run_cardinality,
))


# -- psi.intersection_sum ------------------------------------------------------------------
def _run_intersection_sum(ctx, params: dict[str, Any], data: LocalData) -> dict[str, Any] | None:
    from mpc.server.data import numeric
    from protocols.psi import intersection_sum

    ids = id_column(ctx, params, data)
    ref = ColumnRef.parse(params["values"], "values")
    values = numeric(ref, data.column(ref)) if ref.party == ctx.party else None
    if values is not None and np.all(values == np.round(values)):
        values = values.astype(np.int64)
    # The values column's min_group_size (public policy) travels to the receiver, which
    # withholds the sum when the intersection is smaller.
    min_group = ctx.exchange(ctx.peers[0], data.min_group_size(ref) if values is not None else 0)
    min_group = max(min_group, data.min_group_size(ref) if values is not None else 0)
    out = intersection_sum(ctx, ids, values, receiver=params.get("receiver"))
    if out is None:
        return None
    cardinality, total = out
    if cardinality < min_group:
        return {"cardinality": int(cardinality), "sum": None,
                "suppressed": f"fewer than {min_group} rows (min_group_size of {ref})"}
    return {"cardinality": int(cardinality), "sum": total}


def _uses_intersection_sum(params: dict[str, Any]):
    uses = _uses_ids(params)
    if len(params["ids"]) != 2:
        raise ValueError("psi.intersection_sum runs between exactly 2 parties")
    values = ColumnRef.parse(params["values"], "values")
    if values.party not in {u.ref.party for u in uses}:
        raise ValueError("parameter 'values' must be a column of one of the two parties")
    return uses + column_refs(params, "values", use="aggregate")


register(ProtocolSpec(
    name="psi.intersection_sum",
    doc="Private Join and Compute: size of the id intersection and the sum of the other party's "
        "values over it.",
    reveals="receiver (default: the party without values): (intersection size, sum of values over "
            "the intersection); both parties: each other's number of distinct ids; the values party "
            "learns nothing else",
    params={"ids": IDS, "values": Param(str, doc="the numeric column to sum, 'party.dataset.column'"),
            "receiver": Param(str, required=False, doc="party that gets the result")},
    uses=_uses_intersection_sum,
    run=_run_intersection_sum,
))
