"""Per-column power-of-two scaling, so columns from 1e-4 to 1e4 keep their precision in
the 64-bit ring instead of sharing one global fixed-point format.

The owner of a column picks ``shift`` from its own data: with max |x| < 2^e, the column
is stored as the integers round(x * 2^shift), shift = bits - e, so the largest value uses
``bits`` bits whatever its magnitude. A SharedTensor's ``frac_bits`` is that public
``shift`` (it may exceed the job's ``frac_bits``, or be negative): the statistics in
this package read any ``frac_bits``. **Publishing the shift reveals e, the power-of-two
order of magnitude of the column's largest |value|** (nothing else) to the computing
parties. The dealer never sees a shift: the statistics here read it locally and truncate
only by shifts fixed by public parameters (see :mod:`mpc.ss.beaver`); the SharedTensor
operators ``*``, ``@``, ``/`` on a scaled column would name it in a truncation request.

* ``share_scaled(ctx, values, owner)``: secret-share a column with its own scale.
* ``scale_columns(ctx, columns)`` before ``private_join``: the owner's float columns as
  int64 plus every party's shifts; after the join, ``apply_shifts(table, shifts)`` gives
  the columns as SharedTensors with the right ``frac_bits``.

Both also publish each float column's ``bits`` (|X| < 2^bits for its ring integers X, a
function of the owner's row count and of the public ``bits`` parameter only: ``scaled``
clips the one rounding that could reach 2^bits, a value within 2^-(bits + 1) of 2^e, to
2^bits - 1, one unit of the column's precision) and note it
for the job (``bound_bits``): the statistics then know a public bound on every value
without opening anything, so they can form order keys of X + 2^bits at once and find
min, max and quantiles in one selection (:mod:`protocols.stats.vertical`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mpc import ss
from mpc.runtime.context import Context
from mpc.ss import SharedTensor
from protocols.stats._common import float_column

DEFAULT_BITS = 52          # float64 precision; sums of 2^8 rows still fit below 2^61
_BOUNDS = "protocols.stats.scaling.bounds"            # job state: qualified name -> bits
_TENSOR_BOUNDS = "protocols.stats.scaling.tensor_bounds"   # job state: id(tensor) -> (tensor, bits)


def column_exponent(values: np.ndarray) -> int:
    """e with max |x| < 2^e (0 for an all-zero or empty column)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return 0
    m = float(np.max(np.abs(arr)))
    return math.frexp(m)[1] if m > 0 else 0


def default_bits(n: int) -> int:
    """Bits per value so that a sum of n values stays below 2^60."""
    return max(8, min(DEFAULT_BITS, 60 - math.ceil(math.log2(max(n, 2)))))


def scaled(values: np.ndarray, shift: int, bits: int) -> np.ndarray:
    """round(x * 2^shift) as int64, clipped to |X| <= 2^bits - 1 (for max |x| < 2^(bits -
    shift) only the rounding of a value within 2^-(bits + 1) relative of that power of two
    reaches 2^bits): the strict bound |X| < 2^bits that ``bound_bits`` publishes, so keys
    of X + 2^bits take bits + 1 bits (:mod:`protocols.stats.vertical`)."""
    limit = float(2 ** bits - 1)
    return np.clip(np.round(np.ldexp(values, shift)), -limit, limit).astype(np.int64)


def scale_column(values: Any, name: str = "column", bits: int | None = None) -> tuple[np.ndarray, int]:
    """(round(x * 2^shift) as int64, shift) with max |x| < 2^(bits - shift), so |X| < 2^bits
    (``scaled``)."""
    arr = float_column(values, f"column {name!r}")
    b = default_bits(len(arr)) if bits is None else int(bits)
    shift = b - column_exponent(arr)
    return scaled(arr, shift, b), shift


def share_scaled(ctx: Context, values: Any, owner: str, bits: int | None = None,
                 name: str = "column") -> SharedTensor:
    """Secret-share ``values`` (given by ``owner``; others pass None) as integers with the
    owner's per-column scale; the result's ``frac_bits`` is the public shift."""
    if ctx.party == owner:
        if values is None:
            raise ValueError(f"party {owner!r} is the owner of {name!r} and must pass its values")
        ints, shift = scale_column(values, name, bits)
        b = default_bits(len(ints)) if bits is None else int(bits)
        ctx.broadcast([shift, b])
        t = ss.share(ctx, ints, owner)
    else:
        msg = ctx.recv(owner)
        if not (isinstance(msg, list) and len(msg) == 2 and all(isinstance(v, int) for v in msg)
                and abs(msg[0]) <= 2000 and 1 <= msg[1] <= 62):
            raise ValueError(f"party {owner!r} sent a malformed scale for {name!r}")
        shift, b = msg
        t = ss.share(ctx, None, owner)
    return _note(t.with_frac_bits(shift), b)


def _note(t: SharedTensor, bits: int) -> SharedTensor:
    t.ctx.state.setdefault(_TENSOR_BOUNDS, {})[id(t)] = (t, int(bits))
    return t


def bound_bits(t: SharedTensor) -> int | None:
    """The public b with |X| < 2^b for the ring integers X of a column made by
    ``share_scaled`` or ``apply_shifts`` in this job (None for any other tensor)."""
    hit = t.ctx.state.get(_TENSOR_BOUNDS, {}).get(id(t))
    return hit[1] if hit is not None and hit[0] is t else None


def scale_columns(ctx: Context, columns: Any, bits: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Before ``private_join``: this party's numeric columns as scaled int64 columns, and
    the shifts of every party's columns keyed ``party.name`` (gathered from all parties).
    Integer columns keep shift 0."""
    if hasattr(columns, "columns") and hasattr(columns, "to_numpy"):
        columns = {str(c): columns[c].to_numpy() for c in columns.columns}
    if not isinstance(columns, Mapping):
        raise TypeError("columns must be a dict of arrays or a DataFrame")
    out, shifts, bounds = {}, {}, {}
    for name, col in columns.items():
        arr = np.asarray(col)
        if arr.dtype.kind in "iub":
            out[name], shifts[name] = arr.astype(np.int64), 0
        else:
            out[name], shifts[name] = scale_column(arr, name, bits)
            bounds[name] = default_bits(len(arr)) if bits is None else int(bits)
    return out, exchange_scales(ctx, shifts, bounds)


def exchange_scales(ctx: Context, shifts: Mapping[str, int], bounds: Mapping[str, int]) -> dict[str, int]:
    """Gather every party's column shifts and bounds (this party's ``shifts`` and, for its
    float columns, ``bounds``, keyed by column name); note the bounds for the job (see
    ``apply_shifts`` and ``bound_bits``) and return the shifts keyed ``party.name``. Used by
    ``scale_columns`` and by the bucketed join, which scales while streaming its input."""
    everyone = ctx.gather({"shifts": dict(shifts), "bounds": dict(bounds)})
    noted = ctx.state.setdefault(_BOUNDS, {})
    out = {}
    for p, got in zip(ctx.parties, everyone, strict=True):
        if not (isinstance(got, dict) and isinstance(got.get("shifts"), dict) and isinstance(got.get("bounds"), dict)):
            raise ValueError(f"party {p!r} sent malformed column scales")
        for k, v in got["bounds"].items():
            if not isinstance(v, int) or not 1 <= v <= 62:
                raise ValueError(f"party {p!r} sent a malformed bound for column {k!r}")
            noted[f"{p}.{k}"] = v
        for k, v in got["shifts"].items():
            if not isinstance(v, int) or abs(v) > 2000:
                raise ValueError(f"party {p!r} sent a malformed scale for column {k!r}")
            out[f"{p}.{k}"] = v
    return out


def apply_shifts(table: Any, shifts: Mapping[str, int]) -> dict[str, SharedTensor]:
    """The columns of a ``private_join`` table (qualified names; or a dict of them) with
    their owner's shift as ``frac_bits`` (and the bound ``scale_columns`` published, see
    ``bound_bits``, and the row order of a table that has one, or of its columns, see
    ``mpc.ss.order.order_of``)."""
    out = {}
    row_order = getattr(table, "row_order", None)
    for name in (list(table) if isinstance(table, Mapping) else table.columns):
        t = table[name]
        out[name] = ss.order.note_order(t.with_frac_bits(int(shifts.get(name, t.frac_bits))),
                                        row_order or ss.order.order_of(t))
        rank = getattr(table, "ranks", {}).get(name) or ss.order.rank_of(t)
        if rank is not None:
            ss.order.note_rank(out[name], *rank)
        b = t.ctx.state.get(_BOUNDS, {}).get(name)
        if b is not None:
            _note(out[name], b)
    return out
