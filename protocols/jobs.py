"""Registry entries that let party servers run the PSI and statistics protocols as jobs.

Each entry turns job parameters (column references ``party.dataset.column``) into this
party's own columns and calls the SPMD protocol; results are plain values or DataFrames.
The ``reveals`` line of each entry is what the README's table and the audit log show.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime.context import Context
from mpc.ss.provider import DEALER, DEALER_JOIN, SECRET_SHARING, SHUFFLE
from protocols import bucketed
from protocols.registry import ColumnRef, LocalData, Param, ProtocolSpec, column_refs, numeric, register


def own_ref(ctx: Context, params: dict[str, Any], key: str) -> ColumnRef | None:
    """This party's column among the references in parameter ``key`` (None if it has none)."""
    mine = [r for r in _refs(params, key) if r.party == ctx.party]
    if len(mine) > 1:
        raise ValueError(f"parameter {key!r} names two columns of party {ctx.party!r}")
    return mine[0] if mine else None


def id_column(ctx: Context, params: dict[str, Any], data: LocalData) -> np.ndarray:
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
PSI_METHODS = ("auto", "oprf", "ecdh")


def psi_method(params: dict[str, Any], protocol: str, oprf: bool = True) -> str:
    """The PSI method a job runs: ``auto`` is the KKRT OPRF for 2 parties, ECDH for more."""
    method = params.get("method") or "auto"
    allowed = PSI_METHODS if oprf else ("auto", "ecdh")
    if method not in allowed:
        why = "" if oprf else (" (the OPRF PSI shows the receiver which of its ids match, so a "
                               "cardinality keeps ECDH, which reshuffles the returned points)")
        raise ValueError(f"{protocol}: parameter 'method' must be one of {list(allowed)}, "
                         f"not {method!r}{why}")
    two = len(params["ids"]) == 2
    if method == "oprf" and not two:
        raise ValueError(f"{protocol}: method 'oprf' runs between exactly 2 parties")
    return "oprf" if method == "auto" and two and oprf else ("ecdh" if method == "auto" else method)


def _run_psi(ctx: Context, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    from protocols.psi import ecdh_psi, oprf_psi

    memory = bucketed.joint_budget(ctx, params, data)
    if memory is not None and len(ctx.parties) == 2:
        return bucketed.psi(ctx, params, data, own_ref(ctx, params, "ids"), memory, psi_method(params, "psi.ecdh"))
    if memory is not None:
        return bucketed.psi_parties(ctx, params, data, own_ref(ctx, params, "ids"), memory)
    ids = id_column(ctx, params, data)
    psi = oprf_psi if psi_method(params, "psi.ecdh") == "oprf" else ecdh_psi
    result = psi(ctx, ids, receivers=_receivers(params))
    if result is None:
        return None
    return pd.DataFrame({own_ref(ctx, params, "ids").column: _as_text(ids, result),
                         "row": result.indices.astype(np.int64)})


def _as_text(ids: Any, result) -> Any:
    """The matched ids as text: integer arrays through Arrow (a few bytes per row, no
    Python str per row), anything else as str of each item."""
    if isinstance(ids, np.ndarray) and ids.dtype.kind in "iu":
        import pyarrow as pa
        return pd.Series(pa.array(ids[result.indices]).cast(pa.string()),
                         dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    return [str(v) for v in result.items]


def _uses_ids(params: dict[str, Any]):
    _check_two_or_more_ids(params)
    return column_refs(params, "ids", use="join_key")


def _uses_psi(params: dict[str, Any], oprf: bool = True):
    uses = _uses_ids(params)
    psi_method(params, "psi.ecdh" if oprf else "psi.cardinality", oprf)
    return uses


# What ecdh_psi / psi_cardinality reveal beyond the 2-party case (protocols.psi.multiparty).
N_PARTY_PSI = ("; with 3 or more parties, the first receiver also learns the size of the intersection "
               "of the other parties' sets, and the last party learns how many values occur in exactly "
               "c of those sets for each c (not which sets or which ids)")
IDS = Param(list, doc="one id column per party: 'party.dataset.column'")
RECEIVERS = Param(list, required=False, doc="parties that get the result (default: all)")
REVEAL_TO = Param(str, required=False, doc="the one party that gets the result (default: all)")
METHOD = Param(str, required=False, default="auto",
               doc="'auto' (KKRT OPRF for 2 parties, ECDH for 3 or more), 'oprf' or 'ecdh'")
MEMORY = Param(str, required=False,
               doc="memory budget per party, e.g. '2GiB' (with the server's [limits] memory, the smaller "
                   "wins): the input is streamed into hash buckets and the job checkpoints per bucket")
BUCKET_PSI_REVEALS = ("; with 3 or more parties and a memory budget that needs more than one bucket, those "
                      "two sizes per hash bucket (refused unless every party's [limits] bucket_psi_sizes allows it)")
BUCKET_REVEALS = ("; with a memory budget that needs more than one bucket, the number of joined rows in "
                  "each hash bucket (refused unless every party's [limits] bucket_join_sizes allows it)")

register(ProtocolSpec(
    name="psi.ecdh",
    doc="Private set intersection of the parties' id columns (KKRT OPRF for two parties by "
        "default, ECDH for three or more; parameter 'method').",
    reveals="receivers: their own ids that every party holds (and the row numbers); every party: "
            "the number of distinct ids of each party" + N_PARTY_PSI + BUCKET_PSI_REVEALS,
    params={"ids": IDS, "receivers": RECEIVERS, "method": METHOD, "memory": MEMORY},
    uses=_uses_psi,
    run=_run_psi,
))


# -- psi.cardinality -----------------------------------------------------------------------
def _run_cardinality(ctx: Context, params: dict[str, Any], data: LocalData) -> int | None:
    from protocols.psi import psi_cardinality

    psi_method(params, "psi.cardinality", oprf=False)
    memory = bucketed.joint_budget(ctx, params, data)
    if memory is not None and len(ctx.parties) == 2:
        from protocols.bucketed_cardinality import cardinality
        return cardinality(ctx, params, data, own_ref(ctx, params, "ids"), memory)
    if memory is not None:       # 3 or more parties: the N-party protocol, file by file
        from protocols.bucketed_cardinality_parties import cardinality_parties
        return cardinality_parties(ctx, params, data, own_ref(ctx, params, "ids"), memory)
    return psi_cardinality(ctx, id_column(ctx, params, data), receivers=_receivers(params))


register(ProtocolSpec(
    name="psi.cardinality",
    doc="Number of ids every party holds, without revealing which (ECDH: 'method' may be "
        "'auto' or 'ecdh'; the OPRF PSI would show which ids match).",
    reveals="receivers: the size of the intersection; every party: the number of distinct ids of "
            "each party" + N_PARTY_PSI,
    params={"ids": IDS, "receivers": RECEIVERS,
            "method": Param(str, required=False, default="auto", doc="'auto' or 'ecdh' (ECDH)"),
            "memory": MEMORY},
    uses=lambda p: _uses_psi(p, oprf=False),
    run=_run_cardinality,
))


# -- psi.intersection_sum ------------------------------------------------------------------
def _run_intersection_sum(ctx: Context, params: dict[str, Any], data: LocalData) -> dict[str, Any] | None:
    from protocols.psi import intersection_sum

    ref = ColumnRef.parse(params["values"], "values")
    mine = ref.party == ctx.party
    # The values column's min_group_size (public policy) travels to the receiver, which
    # withholds the sum when the intersection is smaller.
    min_group = ctx.exchange(ctx.peers[0], data.min_group_size(ref) if mine else 0)
    min_group = max(min_group, data.min_group_size(ref) if mine else 0)
    memory = bucketed.joint_budget(ctx, params, data)
    if memory is not None:       # one exchange per hash bucket, the sums added on ciphertexts
        from protocols import bucketed_intersection_sum
        out = bucketed_intersection_sum.intersection_sum(ctx, params, data, own_ref(ctx, params, "ids"), ref,
                                                         memory)
    else:
        ids = id_column(ctx, params, data)
        values = numeric(ref, data.column(ref)) if mine else None
        if values is not None and np.all(values == np.round(values)):
            values = values.astype(np.int64)
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
            "learns nothing else; with a memory budget that needs more than one bucket, the party without "
            "values also learns the intersection size in each hash bucket (refused unless every party's "
            "[limits] bucket_join_sizes allows it)",
    params={"ids": IDS, "values": Param(str, doc="the numeric column to sum, 'party.dataset.column'"),
            "receiver": Param(str, required=False, doc="party that gets the result"), "memory": MEMORY},
    uses=_uses_intersection_sum,
    run=_run_intersection_sum,
))


# -- shared helpers for the statistics jobs --------------------------------------------------
def _refs(params: dict[str, Any], key: str) -> list[ColumnRef]:
    value = params.get(key)
    return [ColumnRef.parse(v, key) for v in (value if isinstance(value, list) else [value] if value else [])]


def own_columns(ctx: Context, params: dict[str, Any], key: str, data: LocalData) -> dict[str, np.ndarray]:
    """This party's numeric columns named in parameter ``key`` (name -> float64 array)."""

    out = {}
    for ref in _refs(params, key):
        if ref.party == ctx.party:
            out[ref.column] = numeric(ref, data.column(ref))
    return out


def check_min_group(ctx: Context, params: dict[str, Any], key: str, data: LocalData, rows: int) -> None:
    """Refuse (on the column's owner) to aggregate fewer rows than its policy's minimum."""
    for ref in _refs(params, key):
        if ref.party == ctx.party and rows < data.min_group_size(ref):
            raise ValueError(f"only {rows} rows: column {ref} may only be aggregated over at least "
                             f"{data.min_group_size(ref)} rows (its min_group_size)")


def shared_min_group(ctx: Context, params: dict[str, Any], key: str, data: LocalData) -> int:
    """The largest min_group_size of the columns in parameter ``key`` (policies are public)."""
    own = [data.min_group_size(r) for r in _refs(params, key) if r.party == ctx.party]
    return max(ctx.gather(max(own, default=1)))


JOIN_METHODS = ("circuit", "dealer", "ecdh")
JOIN = Param(str, required=False, default="auto",
             doc="'auto' (the dealer join where the deployment has a dealer, else 'circuit'), 'circuit' "
                 "(circuit PSI, no third party), 'dealer' (the fastest; the dealer learns both id counts "
                 "and the number of joined rows) or 'ecdh' (ECDH and Paillier, no third party, slower)")
JOIN_REVEALS = ("; the dealer (if the deployment has one): the number of joined rows (the shapes of the "
                "randomness it deals), and with join='dealer' (or 'auto') both parties' id counts too; "
                "nothing that depends on ids or values")


def joined(ctx: Context, params: dict[str, Any], data: LocalData, columns: dict[str, np.ndarray]):
    """Private join on the ``ids`` parameter; returns (n_rows, {"party.column": SharedTensor})."""
    if params["join"] not in ("auto", *JOIN_METHODS):
        raise ValueError(f"parameter 'join' must be one of {['auto', *JOIN_METHODS]}, not {params['join']!r}")
    return _joined(ctx, params, data, columns)


def _joined(ctx: Context, params: dict[str, Any], data: LocalData, columns: dict[str, np.ndarray]):
    from protocols.psi.private_join import private_join
    from protocols.stats import apply_shifts, scale_columns

    ints, shifts = scale_columns(ctx, columns)
    # describe's order statistics select on the owners' ranks (narrow comparisons), which the
    # dealer-free join carries as extra shared columns when asked
    ranks = "describe" in params.get("stats", ())
    table = private_join(ctx, id_column(ctx, params, data), ints, method=params["join"], ranks=ranks)
    return table.num_rows, apply_shifts(table, shifts)


def _uses_join(params: dict[str, Any], *value_keys: str):
    uses = _uses_ids(params)
    if len(params["ids"]) != 2:
        raise ValueError("private joins run between exactly 2 parties")
    return uses + column_refs(params, *value_keys, use="aggregate")


def join_needs(params: dict[str, Any]) -> tuple[str, ...]:
    """The capabilities (``ProtocolSpec.needs``) of a job over a private join on the ``join``
    parameter: shared arithmetic and comparisons, the dealer's join when ``join='dealer'``,
    the joint shuffle when ``join='circuit'``. Shared by every private-join job (join.stats,
    stats.group_by, sql.aggregate) so that they ask for the same helpers."""
    join = params.get("join")
    return SECRET_SHARING + ((DEALER_JOIN,) if join == DEALER else (SHUFFLE,) if join == "circuit" else ())


def join_helpers(params: dict[str, Any]) -> tuple[str, ...]:
    """The helpers a private-join job requires (``ProtocolSpec.required_helpers``): the
    dealer only for its join (``join='dealer'``); otherwise it is optional (an accelerator
    of the triples when the deployment has one)."""
    return (DEALER,) if params.get("join") == DEALER else ()


def _histogram_frame(counts: np.ndarray, edges: np.ndarray, min_group: int) -> pd.DataFrame:
    counts = counts.astype(np.int64)
    small = counts < min_group
    return pd.DataFrame({"lower": edges[:-1], "upper": edges[1:],
                         "count": np.where(small, -1, counts), "suppressed": small})


# -- join.stats ------------------------------------------------------------------------------
JOIN_STATS = ("describe", "corr", "histogram")


def _run_join_stats(ctx: Context, params: dict[str, Any], data: LocalData) -> dict[str, Any] | None:
    from protocols.stats import chunked

    unknown = set(params["stats"]) - set(JOIN_STATS)
    if unknown:
        raise ValueError(f"parameter 'stats': unknown statistic {sorted(unknown)[0]!r}; choose from {JOIN_STATS}")
    if params["join"] not in ("auto", *JOIN_METHODS):
        raise ValueError(f"parameter 'join' must be one of {['auto', *JOIN_METHODS]}, not {params['join']!r}")
    memory = bucketed.joint_budget(ctx, params, data)
    try:
        return _join_stats(ctx, params, data, memory)
    finally:
        chunked.close(ctx)          # the spilled joined columns of a bucketed join, if any


def _join_stats(ctx: Context, params: dict[str, Any], data: LocalData, memory: int | None) -> dict[str, Any] | None:
    from protocols import stats

    if memory is not None:        # streamed into hash buckets: no whole column in memory
        values = [r for r in _refs(params, "columns") if r.party == ctx.party]
        rows, cols = bucketed.join(ctx, params, data, own_ref(ctx, params, "ids"), values, memory)
    else:
        rows, cols = _joined(ctx, params, data, own_columns(ctx, params, "columns", data))
    check_min_group(ctx, params, "columns", data, rows)
    min_group = shared_min_group(ctx, params, "columns", data)
    to = params.get("reveal_to")
    out: dict[str, Any] = {"rows": rows}
    if "describe" in params["stats"]:
        ctx.report_progress(phase="statistics: describe")
        out["describe"] = stats.describe(ctx, cols, reveal_to=to)
    if "corr" in params["stats"]:
        if len(cols) < 2:
            raise ValueError("'corr' needs at least two columns")
        ctx.report_progress(phase="statistics: correlation")
        out["corr"] = stats.corr_matrix(ctx, cols, reveal_to=to)
    if "histogram" in params["stats"]:
        hist = {}
        for i, (name, x) in enumerate(cols.items()):
            ctx.report_progress(phase="statistics: histogram", done=i, total=len(cols), unit="columns")
            res = stats.histogram(ctx, x, bins=params["bins"], reveal_to=to)
            hist[name] = None if res is None else _histogram_frame(*res, min_group)
        out["histogram"] = hist
    ctx.report_progress(1.0)
    return out if to is None or to == ctx.party else None


register(ProtocolSpec(
    name="join.stats",
    doc="Private join of two parties' tables on their ids, then joint statistics of the joined columns.",
    reveals="reveal_to (default: both): the number of joined rows and the requested statistics of the "
            "joined columns (describe: count, mean, std, min, quartiles, max - min/max/quartiles are values "
            "of single rows; corr: Pearson matrix; histogram: counts per bin, bins under min_group_size "
            "suppressed); each column's power-of-two magnitude; nothing about which rows joined" + JOIN_REVEALS
            + BUCKET_REVEALS,
    params={"ids": IDS, "columns": Param(list, doc="numeric columns 'party.dataset.column'"),
            "stats": Param(list, required=False, default=["describe", "corr"], doc=f"any of {JOIN_STATS}"),
            "bins": Param(int, required=False, default=10, doc="histogram bins"),
            "join": JOIN, "reveal_to": REVEAL_TO, "memory": MEMORY},
    uses=lambda p: _uses_join(p, "columns"),
    run=_run_join_stats,
    helpers=(DEALER,),
    required_helpers=join_helpers,
    needs=join_needs,
))


# -- stats.group_by --------------------------------------------------------------------------
def _run_group_by(ctx: Context, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    from protocols import stats

    key_ref = ColumnRef.parse(params["key"], "key")
    memory = bucketed.joint_budget(ctx, params, data)
    if memory is not None:       # the join in hash buckets, group totals summed on shares
        from protocols.bucketed_groupby import group_by
        if params["join"] not in ("auto", *JOIN_METHODS):
            raise ValueError(f"parameter 'join' must be one of {['auto', *JOIN_METHODS]}, not {params['join']!r}")
        min_group = max(shared_min_group(ctx, params, "values", data), params["min_group_size"] or 1)
        return group_by(ctx, params, data, own_ref(ctx, params, "ids"),
                        [r for r in _refs(params, "values") if r.party == ctx.party], key_ref, memory, min_group)
    columns = own_columns(ctx, params, "values", data)
    labels = None
    if key_ref.party == ctx.party:
        raw = data.column(key_ref)
        codes, uniques = pd.factorize(pd.Series(raw).astype(str), sort=True)
        labels = [str(u) for u in uniques]
        columns["__group__"] = codes.astype(np.int64)
    labels = ctx.gather(labels)[ctx.parties.index(key_ref.party)]
    rows, cols = joined(ctx, params, data, columns)
    min_group = shared_min_group(ctx, params, "values", data)
    min_group = max(min_group, params["min_group_size"] or 1)
    key = cols.pop(f"{key_ref.party}.__group__")
    key = key.with_frac_bits(0)   # the group codes, read as ring integers
    aggregations = {name: params["aggregations"] for name in cols}
    view = {"key": key, **cols}
    ctx.report_progress(phase="statistics: group-by")
    out = stats.group_by(ctx, view, "key", aggregations, min_group_size=min_group,
                         groups=list(range(len(labels))), reveal_to=params.get("reveal_to"))
    if out is None:
        return None
    out.index = [labels[int(i)] for i in out.index]
    out.index.name = key_ref.column
    return out.reset_index()


register(ProtocolSpec(
    name="stats.group_by",
    doc="Count/sum/mean of one party's numeric columns per group of another party's key column, "
        "over the rows both hold (private join).",
    reveals="every party: the number of joined rows, the group labels and which groups are suppressed "
            "(fewer rows than min_group_size); reveal_to (default: both): count and the aggregations of "
            "the other groups" + JOIN_REVEALS + " (and the number of groups, not which are suppressed)"
            + BUCKET_REVEALS,
    params={"ids": IDS, "key": Param(str, doc="the grouping column 'party.dataset.column'"),
            "values": Param(list, doc="numeric columns to aggregate"),
            "aggregations": Param(list, required=False, default=["sum", "mean"],
                                  doc="any of count, sum, mean"),
            "min_group_size": Param(int, required=False, default=None,
                                    doc="raise the suppression threshold above the policies' minimum"),
            "join": JOIN, "reveal_to": REVEAL_TO, "memory": MEMORY},
    uses=lambda p: _uses_join(p, "values") + column_refs(p, "key", use="plaintext"),
    run=_run_group_by,
    helpers=(DEALER,),
    required_helpers=join_helpers,
    needs=join_needs,
))


# -- stats.woe_iv ----------------------------------------------------------------------------
def aligned_rows(ctx: Context, params: dict[str, Any], data: LocalData,
                 receivers: list[str] | None = None) -> np.ndarray | None:
    """This party's row numbers of the ids every party holds, sorted by id, so that row i
    is the same id at every party: ``ecdh_psi`` (2 or more parties, every party a
    receiver) on the ``ids`` parameter. Used by the jobs that align rows in the clear
    instead of a private join (stats.woe_iv, sql.aggregate with three parties).

    Reveals what ``psi.ecdh`` reveals to its receivers: every party learns which of its
    own ids all parties hold (plus :data:`N_PARTY_PSI` for three or more); with
    ``receivers``, only they do and the others get None. ValueError naming the column
    when an id occurs twice in the intersection (rows must be unique)."""
    from protocols.psi import ecdh_psi

    ids = id_column(ctx, params, data)
    result = ecdh_psi(ctx, ids, receivers=receivers)
    if result is None:
        return None
    keys = [str(v) for v in result.items]
    if len(set(keys)) != len(keys):
        raise ValueError(f"column {own_ref(ctx, params, 'ids')} has duplicate ids in the intersection; "
                         "this job needs unique ids")
    order = np.argsort(np.array(keys, dtype=object), kind="stable")
    return result.indices[order]


def _run_woe_iv(ctx: Context, params: dict[str, Any], data: LocalData) -> dict[str, Any] | None:
    from protocols.stats import woe_iv

    label = ColumnRef.parse(params["label"], "label")
    memory = bucketed.joint_budget(ctx, params, data)
    if memory is not None:       # aligned per hash bucket, per-bin sums added on ciphertexts
        from protocols import bucketed_woe

        def check(n: int) -> None:
            check_min_group(ctx, params, "features", data, n)
            check_min_group(ctx, params, "label", data, n)

        res = bucketed_woe.woe_iv(ctx, params, data, own_ref(ctx, params, "ids"), label,
                                  _refs(params, "features"), memory, check)
        if res is None:
            return None
        table, iv, n = res
        return {"rows": n, "bins": table, "iv": iv.rename("iv").reset_index().rename(columns={"index": "feature"})}
    rows = aligned_rows(ctx, params, data)
    check_min_group(ctx, params, "features", data, len(rows))
    check_min_group(ctx, params, "label", data, len(rows))
    view = {name: values[rows] for name, values in own_columns(ctx, params, "features", data).items()}
    if label.party == ctx.party:
        y = own_columns(ctx, params, "label", data)[label.column][rows]
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError(f"label column {label} must hold only 0 and 1")
        view[label.column] = y.astype(np.int64)
    features = [ColumnRef.parse(f, "features").column for f in params["features"]]
    ctx.report_progress(phase="statistics: WOE and IV")
    out = woe_iv(ctx, view, label.column, features, bins=params["bins"], reveal_to=params.get("reveal_to"))
    if out is None:
        return None
    table, iv = out
    return {"rows": len(rows), "bins": table, "iv": iv.rename("iv").reset_index().rename(
        columns={"index": "feature"})}


def _uses_woe(params: dict[str, Any]):
    uses = _uses_ids(params) + column_refs(params, "label", "features", use="aggregate")
    if len(params["ids"]) != 2:
        raise ValueError("stats.woe_iv runs between exactly 2 parties")
    return uses


register(ProtocolSpec(
    name="stats.woe_iv",
    doc="Weight of evidence and information value of one party's features against another party's "
        "0/1 label, over the customers both hold.",
    reveals="both parties: which of their own ids the other party holds (the rows are aligned by PSI, as in "
            "psi.ecdh); the label holder: per bin its size and number of events; reveal_to (default: both): "
            "the WOE table and IV per feature; the feature holder learns no label",
    params={"ids": IDS, "label": Param(str, doc="the 0/1 label column 'party.dataset.column'"),
            "features": Param(list, doc="numeric feature columns of the other party"),
            "bins": Param(int, required=False, default=10, doc="equal-frequency bins per feature"),
            "reveal_to": REVEAL_TO, "memory": MEMORY},
    uses=_uses_woe,
    run=_run_woe_iv,
))


# -- stats.horizontal_describe ---------------------------------------------------------------
def _run_horizontal_describe(ctx: Context, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    from protocols.stats import horizontal_describe

    if bucketed.joint_budget(ctx, params, data) is not None:     # streamed: one batch in memory
        return _horizontal_streamed(ctx, params, data)
    own = own_columns(ctx, params, "columns", data)
    lengths = {len(v) for v in own.values()}
    if len(lengths) > 1:
        raise ValueError(f"party {ctx.party!r}: the columns {sorted(own)} have different lengths")
    check_min_group(ctx, params, "columns", data, lengths.pop() if lengths else 0)
    frame = pd.DataFrame(own)
    out = horizontal_describe(ctx, frame, columns=sorted(own), reveal_to=params.get("reveal_to"))
    return None if out is None else out.reset_index().rename(columns={"index": "column"})


def _horizontal_streamed(ctx: Context, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    """stats.horizontal_describe under a memory budget: this party's columns streamed a batch
    at a time (``horizontal_describe_stream``: the same messages and reveal)."""
    import os

    from protocols.stats.horizontal import horizontal_describe_stream

    mine = [r for r in _refs(params, "columns") if r.party == ctx.party]
    if len({r.dataset for r in mine}) > 1:
        raise ValueError(f"party {ctx.party!r}: the columns {[str(r) for r in mine]} are in different datasets")
    workdir = getattr(data, "workdir", None)
    if workdir is None:
        raise ValueError(f"party {ctx.party!r}: a streamed describe needs the server's work directory")
    check_min_group(ctx, params, "columns", data, sum(len(b[mine[0].column]) for b in data.batches(mine[:1])))

    def batches():
        offset = 0
        for b in data.batches(mine):
            yield pd.DataFrame({r.column: numeric(r, b[r.column], offset) for r in mine})
            offset += len(b[mine[0].column])

    names = sorted(r.column for r in mine)
    out = horizontal_describe_stream(ctx, batches(), names, workdir / "tmp" / f"{ctx.job_id}-{os.getpid()}",
                                     reveal_to=params.get("reveal_to"))
    return None if out is None else out.reset_index().rename(columns={"index": "column"})


def _uses_horizontal(params: dict[str, Any]):
    uses = column_refs(params, "columns", use="aggregate")
    if len({u.ref.party for u in uses}) < 2:
        raise ValueError("stats.horizontal_describe needs the same columns at two or more parties")
    return uses


register(ProtocolSpec(
    name="stats.horizontal_describe",
    doc="pandas describe() over the union of the rows every party holds of the same columns.",
    reveals="every party: each party's row count, and min, max and the quartiles (values of single rows); "
            "reveal_to (default: all): count, mean and std of the union; no row leaves its party; "
            "the dealer: the number of parties and columns only",
    params={"columns": Param(list, doc="the same column names at every party: 'party.dataset.column'"),
            "reveal_to": REVEAL_TO, "memory": MEMORY},
    uses=_uses_horizontal,
    run=_run_horizontal_describe,
    helpers=(DEALER,),
    needs=lambda params: SECRET_SHARING,
))
