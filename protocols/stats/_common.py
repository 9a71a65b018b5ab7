"""Input checks shared by the statistics modules (local, reveal nothing): numeric
columns, receivers, 1-D SharedTensors of one length, and the working width W of the
vertical statistics. Every share operation is in :mod:`mpc.ss`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mpc.runtime.context import Context
from mpc.ss import SharedTensor


def float_column(values: Any, what: str) -> np.ndarray:
    """``values`` as float64, or TypeError (not numeric) / ValueError (NaN, infinity) naming
    ``what`` (e.g. ``"column 'x'"`` or ``"party 'a': feature 'x'"``). NaN is rejected, never skipped."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iufb":
        raise TypeError(f"{what} is not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{what} has NaN values (rejected)")
    if np.isinf(arr).any():
        raise ValueError(f"{what} has infinite values")
    return arr


def receivers(ctx: Context, reveal_to: str | Sequence[str] | None) -> list[str]:
    """The parties that get a result (all computing parties when None)."""
    if reveal_to is None:
        return list(ctx.parties)
    out = [reveal_to] if isinstance(reveal_to, str) else list(reveal_to)
    bad = [p for p in out if p not in ctx.parties]
    if bad or not out:
        raise ValueError(f"reveal_to={reveal_to!r}: the computing parties are {ctx.parties}")
    return out


def work_bits(n: int) -> int:
    """Bits W of a value in [0, 2^W) so that a sum of n products of two centred values
    (each |d| < 2^W) stays below 2^60: 2W + ceil(log2 n) <= 60."""
    lg = max(1, math.ceil(math.log2(max(n, 2))))
    return max(4, min(30, (60 - lg) // 2))


def check_tensor(x: Any, name: str) -> SharedTensor:
    """A 1-D SharedTensor, or TypeError / ValueError naming ``name``."""
    if not isinstance(x, SharedTensor):
        raise TypeError(f"column {name!r} must be a SharedTensor, not {type(x).__name__}")
    if x.ndim != 1:
        raise ValueError(f"column {name!r} must be 1-D, has shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"column {name!r} is empty")
    return x


def check_same_length(cols: dict[str, SharedTensor]) -> int:
    """The common length of ``cols``; ValueError naming the columns when they differ."""
    lengths = {name: t.shape[0] for name, t in cols.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k!r} ({v} rows)" for k, v in lengths.items())
        raise ValueError(f"columns have different lengths: {desc}")
    return next(iter(lengths.values()))
