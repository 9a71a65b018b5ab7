"""Expressions of a plan, in plaintext (an owner's pushdown, HAVING on the result) and on
secret shares (arithmetic and filters on the joined table).

On shares: ``+ - *`` are SharedTensor operations (a product of two shared values is one
Beaver multiplication and a truncation back to the job's fixed point), ``/`` only by a
public nonzero constant; a comparison is one secure comparison per row (a 0/1 integer
SharedTensor); ``AND`` is a product, ``OR`` is a + b - ab, ``NOT`` is 1 - a. Shared
columns have no NULLs (gaotie rejects NaN before sharing), so ``IS NULL`` is 0 there.
Nothing is opened: a filter on shares stays secret, as a 0/1 weight per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mpc.ss import SharedTensor

_PLAIN_CMP = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
              "=": np.equal, "!=": np.not_equal}


def plain(e: Any, column: Callable[[str], Any]) -> Any:
    """An expression on plaintext arrays (numpy/pandas semantics; NULL compares false)."""
    op = e[0]
    if op == "col" or op == "out":
        return pd.Series(column(e[1])).reset_index(drop=True)
    if op in ("num", "str"):
        return e[1]
    if op == "null":
        return None
    if op == "bin":
        a, b = plain(e[2], column), plain(e[3], column)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b}[e[1]]()
    if op == "neg":
        return -plain(e[1], column)
    if op == "cmp":
        a, b = plain(e[2], column), plain(e[3], column)
        if a is None or b is None:
            return False
        out = _PLAIN_CMP[e[1]](a, b)
        return out & pd.notna(a) & pd.notna(b) if isinstance(out, pd.Series) else out
    if op == "and":
        return plain(e[1], column) & plain(e[2], column)
    if op == "or":
        return plain(e[1], column) | plain(e[2], column)
    if op == "not":
        return ~plain(e[1], column) if isinstance(plain(e[1], column), pd.Series) else not plain(e[1], column)
    if op == "in":
        a = plain(e[1], column)
        return a.isin([v[1] for v in e[2]])
    if op == "between":
        a = plain(e[1], column)
        return (a >= plain(e[2], column)) & (a <= plain(e[3], column))
    if op == "isnull":
        return pd.isna(plain(e[1], column))
    raise ValueError(f"unknown expression {op!r}")


def compare(op: str, a: Any, b: Any) -> Any:
    """a op b for a comparison ``op`` of the plan: a 0/1 SharedTensor (one secure comparison
    per element, or a zero test for = and !=) when either side is shared, else a public 0/1."""
    if not isinstance(a, SharedTensor):
        if not isinstance(b, SharedTensor):
            return int(bool(_PLAIN_CMP[op](a, b)))
        a, b, op = b, a, {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!="}[op]
    return {"<": a.__lt__, "<=": a.__le__, ">": a.__gt__, ">=": a.__ge__, "=": a.__eq__, "!=": a.__ne__}[op](b)


def both(a: Any, b: Any) -> Any:
    """a AND b of 0/1 values (a product on shares; a public side selects without one)."""
    if not isinstance(a, SharedTensor) and not isinstance(b, SharedTensor):
        return int(bool(a) and bool(b))
    if not isinstance(a, SharedTensor):
        return b if a else 0 * b
    if not isinstance(b, SharedTensor):
        return a if b else 0 * a
    return a * b


def either(a: Any, b: Any) -> Any:
    """a OR b of 0/1 values: a + b - ab."""
    if not isinstance(a, SharedTensor) and not isinstance(b, SharedTensor):
        return int(bool(a) or bool(b))
    return a + b - both(a, b)


def shared(e: Any, column: Callable[[str], SharedTensor]) -> Any:
    """An expression on the joined SharedTensors (``column(ref)``, fixed point) and public
    constants: a SharedTensor (or a public number when no column is involved)."""
    op = e[0]
    if op == "col":
        return column(e[1])
    if op == "num":
        return e[1]
    if op in ("str", "null"):
        raise ValueError(f"{op} values cannot be used on shares")
    if op == "bin":
        a, b = shared(e[2], column), shared(e[3], column)
        if e[1] == "/":
            if isinstance(b, SharedTensor):
                raise ValueError("division by a secret value is not supported on shares")
            if b == 0:
                raise ZeroDivisionError("division by zero")
            return a / float(b)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b}[e[1]]()
    if op == "neg":
        return -shared(e[1], column)
    if op == "cmp":
        return compare(e[1], shared(e[2], column), shared(e[3], column))
    if op == "and":
        return both(shared(e[1], column), shared(e[2], column))
    if op == "or":
        return either(shared(e[1], column), shared(e[2], column))
    if op == "not":
        return 1 - shared(e[1], column)
    if op == "in":
        a, out = shared(e[1], column), 0
        for v in e[2]:
            out = either(out, compare("=", a, v[1]))
        return out
    if op == "between":
        a = shared(e[1], column)
        return both(compare(">=", a, shared(e[2], column)), compare("<=", a, shared(e[3], column)))
    if op == "isnull":
        return 0
    raise ValueError(f"unknown expression {op!r}")
