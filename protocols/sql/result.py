"""HAVING, ORDER BY, LIMIT and the SELECT list on the opened result of a query.

These run on values the receivers already hold (the kept groups' aggregates), so they
reveal nothing more; suppressed groups stay in the result, marked, whatever HAVING says
(their aggregates are unknown), and sort last.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from protocols.sql import evaluate
from protocols.sql.plan import Plan


def finish(plan: Plan, frame: pd.DataFrame, having: bool = True) -> pd.DataFrame:
    """The query's result table from the per-group frame the job opened (``having=False``:
    HAVING was already evaluated on shares)."""
    rows = frame.attrs.get("rows")
    frame = frame.reset_index(drop=True)
    suppressed = frame["suppressed"].to_numpy(bool) if "suppressed" in frame else np.zeros(len(frame), bool)
    if plan.having is not None and having:
        keep = evaluate.plain(plan.having, lambda name: frame[name])
        keep = np.broadcast_to(np.asarray(keep, dtype=bool), (len(frame),))
        frame = frame[keep | suppressed].reset_index(drop=True)
    if plan.order_by:
        by = [n for n, _ in plan.order_by]
        frame = frame.sort_values(by, ascending=[not d for _, d in plan.order_by], kind="stable",
                                  na_position="last").reset_index(drop=True)
    if plan.limit is not None:
        frame = frame.head(plan.limit)
    out = frame[list(plan.outputs) + (["suppressed"] if plan.group_by else [])].copy()
    out.attrs["rows"] = rows
    return out


# UTF-8 never holds the bytes 0xF5-0xFF: a text cell's bytes shifted up by 2 leave 0x01 below
# them all to end the cell (so "a" sorts before "ab"), and 0x00 unused
_TEXT_UP = bytes(min(b + 2, 255) for b in range(256))
_TEXT_DOWN = bytes(255 - min(b + 2, 255) for b in range(256))


def order_key(frame: pd.DataFrame, order_by: list[tuple[str, bool]]) -> np.ndarray:
    """One byte string per row of ``frame`` whose byte order is the order :func:`finish` sorts
    the rows in for ``order_by`` ((output name, descending) pairs): pandas' ``sort_values``
    with nulls last in either direction, for sorting beyond memory
    (:class:`mpc.tables.SortedRuns`; ties stay in input order there as in ``finish``).

    Per column: 0x01 then the value, or 0x02 for a null (NaN, None): last both ways. Numbers:
    8 bytes big-endian, integers with the sign bit flipped, floats by their IEEE bits (all bits
    flipped when negative, else the sign bit; -0.0 as 0.0, which pandas ties); text: its UTF-8
    bytes each raised by 2, then 0x01. Descending: the value's bytes complemented (a code no
    value's is a prefix of, so complementing reverses the order). A column must hold one kind:
    numbers (of one dtype) or text."""
    n = len(frame)
    cells: list[list[bytes]] = []
    for name, desc in order_by:
        col = frame[name]
        null = np.asarray(pd.isna(col), dtype=bool)
        values = col.to_numpy()
        if values.dtype.kind == "O" and all(isinstance(v, int | float | np.number) and not isinstance(v, bool)
                                            for v in values[~null]) and (~null).any():
            values = np.asarray(values[~null].tolist())
            full = np.zeros(n, dtype=values.dtype)
            full[~null] = values
            values = full
        if values.dtype.kind in "biuf":
            if values.dtype.kind == "f":
                x = np.where(null, 0.0, values.astype(np.float64)) + 0.0      # -0.0 + 0.0 is 0.0
                bits = x.view(np.uint64)
                u = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
            else:
                u = values.astype(np.int64).view(np.uint64) ^ np.uint64(1 << 63)
            if desc:
                u = ~u
            raw = u.astype(">u8").tobytes()
            cells.append([b"\x02" if null[i] else b"\x01" + raw[8 * i:8 * i + 8] for i in range(n)])
        else:
            table = _TEXT_DOWN if desc else _TEXT_UP
            end = b"\xfe" if desc else b"\x01"
            cells.append([b"\x02" if null[i] else b"\x01" + str(v).encode().translate(table) + end
                          for i, v in enumerate(values.tolist())])
    out = np.empty(n, dtype=object)
    out[:] = [b"".join(t) for t in zip(*cells, strict=True)] if cells else [b""] * n
    return out
