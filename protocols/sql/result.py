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
