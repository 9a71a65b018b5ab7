"""Shared pieces of the PSI family: input checks, deduplication, the parameter header
every party exchanges first, and the result type.

The header carries only public parameters and the number of *distinct* items of each
party: every PSI protocol here reveals every party's distinct-set size to every party.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context

PROTOCOL_VERSION = 1
DEFAULT_COMPARE_BYTES = 16
DEFAULT_BUCKET = 1 << 16


@dataclass
class PsiResult:
    """What a receiver of a PSI gets.

    Attributes:
        items: this party's items whose value is in the intersection, in input order
            (every duplicate row of such a value is included).
        indices: the positions of those rows in this party's input (int64 array).
        cardinality: the number of *distinct* values in the intersection.
    """

    items: list[Any]
    indices: np.ndarray
    cardinality: int = 0

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class PreparedItems:
    """One party's input after checks: distinct digests and the row -> distinct map."""

    kind: str
    digests: np.ndarray      # (m, 32) uint8, one row per distinct item
    inverse: np.ndarray      # (n,) int64: row i of the input is distinct item inverse[i]
    n_rows: int


def as_sequence(items: Any, name: str = "items") -> Sequence[Any] | np.ndarray:
    """Accept a list, tuple, numpy array or pandas Series/Index as a sequence of items."""
    if items is None:
        raise TypeError(f"{name} must be a list or array of str, bytes or int, not None")
    if hasattr(items, "to_numpy") and not isinstance(items, np.ndarray):
        items = items.to_numpy()
        if items.dtype.kind == "O":
            items = items.tolist()
    if isinstance(items, (str, bytes)):
        raise TypeError(f"{name} must be a list of items, not a single {type(items).__name__}")
    if not isinstance(items, (list, tuple, np.ndarray)):
        try:
            items = list(items)
        except TypeError as exc:
            raise TypeError(f"{name} must be a list or array of str, bytes or int, "
                            f"not {type(items).__name__}") from exc
    if isinstance(items, np.ndarray) and items.dtype.kind == "O":
        items = items.tolist()
    return items


def prepare(items: Any, name: str = "items") -> PreparedItems:
    """Check ``items`` (types, None), hash them and keep one digest per distinct value."""
    items = as_sequence(items, name)
    kind = curve.item_kind(items)
    check_text(items, kind, name)
    digests = curve.hash_items(items, kind)
    n = len(digests)
    if n == 0:
        return PreparedItems(kind, digests, np.zeros(0, dtype=np.int64), 0)
    keys = digests.view("S32").ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    # Distinct items in order of first occurrence (the order is shuffled before sending).
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return PreparedItems(kind, digests[first[order]], rank[inverse.ravel()].astype(np.int64), n)


def check_text(items: Sequence[Any] | np.ndarray, kind: str, name: str = "items",
               positions: np.ndarray | None = None) -> None:
    """ValueError naming the position of a string that is not valid Unicode (a lone surrogate).

    ``positions``: the input positions of ``items`` when they are a subset of the input.
    """
    if kind != "str":
        return
    for i, v in enumerate(items.tolist() if isinstance(items, np.ndarray) else items):
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as exc:
            at = i if positions is None else int(positions[i])
            raise ValueError(f"{name}: string at position {at} is not valid Unicode "
                             "(pass raw bytes as bytes)") from exc


def exchange_header(ctx: Context, protocol: str, kind: str, size: int, params: dict[str, Any]) -> list[dict]:
    """Send this party's header to every party; check that public parameters agree.

    Every party receives the same headers and runs the same checks, so a mismatch raises
    the same ValueError on every party.
    """
    header = {"protocol": protocol, "version": PROTOCOL_VERSION, "kind": kind,
              "size": int(size), "params": params}
    headers = ctx.gather(header)
    for party, h in zip(ctx.parties, headers, strict=True):
        if not isinstance(h, dict) or h.get("protocol") != protocol:
            theirs = h.get("protocol") if isinstance(h, dict) else h
            raise ValueError(f"party {party!r} runs protocol {theirs!r}, this party runs {protocol!r}")
        if h.get("version") != PROTOCOL_VERSION:
            raise ValueError(f"party {party!r} speaks {protocol} version {h.get('version')}, "
                             f"expected {PROTOCOL_VERSION}")
        for key, value in params.items():
            if h["params"].get(key) != value:
                raise ValueError(f"mismatched parameter {key!r}: party {ctx.parties[0]!r} has "
                                 f"{headers[0]['params'].get(key)!r}, party {party!r} has "
                                 f"{h['params'].get(key)!r}")
        if set(h["params"]) != set(params):
            raise ValueError(f"party {party!r} sent parameters {sorted(h['params'])}, "
                             f"expected {sorted(params)}")
    kinds = {h["kind"] for h in headers} - {"empty"}
    if len(kinds) > 1:
        desc = ", ".join(f"{p!r}: {h['kind']}" for p, h in zip(ctx.parties, headers, strict=True))
        raise TypeError(f"parties pass items of different types ({desc})")
    return headers


def check_receivers(ctx: Context, receivers: Any, name: str = "receivers") -> list[str]:
    """``receivers`` as a list of party names in rank order (all parties when None)."""
    if receivers is None:
        return list(ctx.parties)
    if isinstance(receivers, str):
        receivers = [receivers]
    receivers = list(receivers)
    unknown = [r for r in receivers if r not in ctx.parties]
    if unknown:
        raise ValueError(f"{name} names unknown parties {unknown}; parties are {ctx.parties}")
    if not receivers:
        raise ValueError(f"{name} must name at least one party")
    return [p for p in ctx.parties if p in set(receivers)]


def check_compare_bytes(compare_bytes: int) -> int:
    if not isinstance(compare_bytes, int) or not 8 <= compare_bytes <= 32:
        raise ValueError(f"compare_bytes must be an int between 8 and 32, got {compare_bytes!r}")
    return compare_bytes


def as_keys(points: np.ndarray, nbytes: int) -> np.ndarray:
    """The first ``nbytes`` of each point as a 1-d fixed-width bytes array (for set ops)."""
    return np.ascontiguousarray(points[:, :nbytes]).view(f"S{nbytes}").ravel()


def shuffled(n: int) -> np.ndarray:
    """A secret uniformly random permutation of range(n) (CSPRNG)."""
    from mpc.crypto.random import secure_permutation
    return secure_permutation(n)


def rows_of(prepared: PreparedItems, distinct_mask: np.ndarray) -> np.ndarray:
    """Input row positions whose distinct item is marked in ``distinct_mask``."""
    if prepared.n_rows == 0:
        return np.zeros(0, dtype=np.int64)
    return np.nonzero(distinct_mask[prepared.inverse])[0].astype(np.int64)


def pick(items: Any, indices: np.ndarray) -> list[Any]:
    seq = as_sequence(items)
    if isinstance(seq, np.ndarray):
        return seq[indices].tolist()
    return [seq[i] for i in indices.tolist()]

