"""Joint statistics: vertical (secret-shared columns, e.g. after ``private_join``),
horizontal (every party holds rows of the same columns), group-by and WOE/IV.

All functions are SPMD protocols: every party calls them with its own Context. Each
module's docstring states what every party learns.
"""

from __future__ import annotations

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

__all__ = ["corr_matrix", "count", "cov", "describe", "histogram", "max", "mean", "median", "min",
           "pearson", "quantile", "std", "sum", "var"]
from protocols.stats.groupby import group_by  # noqa: E402
from protocols.stats.horizontal import horizontal_describe  # noqa: E402
from protocols.stats.woe import woe_iv  # noqa: E402

__all__ += ["group_by", "horizontal_describe", "woe_iv"]
