"""The owner's side of a plan's ``WHERE``: each party evaluates the conjuncts pushed down
to it on its own plaintext columns and keeps the matching rows, before any protocol runs.

Nothing leaves the party here; what its peers learn afterwards is what the next protocol
reveals of the kept rows (their number, and for a PSI receiver which of them joined).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mpc.runtime.context import Context
from protocols.registry import ColumnRef, LocalData
from protocols.sql import evaluate
from protocols.sql.plan import Plan, columns_of


class Rows:
    """This party's data restricted to the rows its pushdown kept (a LocalData)."""

    def __init__(self, data: LocalData, mask: np.ndarray | None) -> None:
        self.data, self.mask = data, mask

    def column(self, ref: ColumnRef) -> Any:
        values = self.data.column(ref)
        return values if self.mask is None else values[self.mask]

    def min_group_size(self, ref: ColumnRef) -> int:
        return self.data.min_group_size(ref)


def mask(ctx: Context, plan: Plan, data: LocalData) -> np.ndarray | None:
    """The rows of this party's table its pushed-down conjuncts keep (None: all of them)."""
    conjuncts = plan.pushdown.get(ctx.party, [])
    if not conjuncts:
        return None
    me = next(t for t in plan.tables if t.party == ctx.party)
    first = me.key_ref if me.key else _first_column(conjuncts)
    n = len(data.column(ColumnRef.parse(first)))
    return mask_of(conjuncts, lambda r: data.column(ColumnRef.parse(r)), n)


def mask_of(conjuncts: list, column: Callable[[str], Any], n: int) -> np.ndarray | None:
    """The n rows the conjuncts keep, ``column(ref)`` giving a column's values (the whole
    table's, or one streamed batch's: the bucketed job); None without conjuncts."""
    if not conjuncts:
        return None
    keep = np.ones(n, dtype=bool)
    for e in conjuncts:
        keep &= np.broadcast_to(np.asarray(evaluate.plain(e, column), dtype=bool), (n,))
    return keep


def kept(ctx: Context, plan: Plan, data: LocalData) -> Rows:
    """This party's table as its pushdown leaves it."""
    return Rows(data, mask(ctx, plan, data))


def _first_column(conjuncts: list) -> str:
    """A column the conjuncts read (its length is the table's), for a table without an id."""
    refs = columns_of(conjuncts)
    if not refs:
        raise ValueError("a WHERE without columns on a table without an id column: name a column")
    return refs[0]
