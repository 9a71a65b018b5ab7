"""Joint statistics: vertical (secret-shared columns, e.g. after ``private_join``),
horizontal (every party holds rows of the same columns), group-by and WOE/IV.

All functions are SPMD protocols: every party calls them with its own Context, and the
parties in ``reveal_to`` (all when None) get the result, the others None. Each module's
docstring states what every party learns and the accuracy to expect:

- :mod:`~protocols.stats.vertical`: count, sum, mean, var, std, cov, pearson,
  corr_matrix, histogram, quantile, median, min, max, describe on SharedTensors.
- :mod:`~protocols.stats.order`: :mod:`mpc.ss.order` (``ss.quantile``: oblivious shuffle + quickselect)
  (used by ``quantile``/``describe`` when the job has the dealer).
- :mod:`~protocols.stats.horizontal`: ``horizontal_describe`` over the union of rows.
- :mod:`~protocols.stats.groupby`: ``group_by`` with a minimum group size.
- :mod:`~protocols.stats.woe`: ``woe_iv`` for the credit-scoring workflow.
- :mod:`~protocols.stats.scaling`: per-column power-of-two scales for wide ranges.
"""

from __future__ import annotations

from protocols.stats.groupby import group_by
from protocols.stats.horizontal import horizontal_describe
from protocols.stats.scaling import apply_shifts, scale_columns, share_scaled
from protocols.stats.vertical import (
    corr_matrix,
    count,
    cov,
    describe,
    histogram,
    max,
    mean,
    median,
    min,
    pearson,
    quantile,
    std,
    sum,
    var,
)
from protocols.stats.woe import woe_iv

__all__ = ["apply_shifts", "corr_matrix", "count", "cov", "describe", "group_by", "histogram",
           "horizontal_describe", "max", "mean", "median", "min", "pearson", "quantile", "scale_columns",
           "share_scaled", "std", "sum", "var", "woe_iv"]
