"""Registry of the protocols a party server will run, and what each one reveals.

A job names a registered protocol and gives parameters as data (strings, numbers,
lists); a server never runs anything else. Each :class:`ProtocolSpec` declares its
parameters, the columns it reads and how it uses them (checked against every party's
column policy before anything runs), the helper parties and the correlated randomness it
needs, and in plain words what every party learns.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mpc.runtime.context import Context
from mpc.runtime.errors import DataError

# How a protocol uses a column; a column's policy must allow it (see ALLOWED).
USES = ("join_key", "aggregate", "plaintext")
ALLOWED = {"plaintext": {"join_key", "aggregate", "plaintext"},
           "aggregate": {"aggregate"},
           "join_key": {"join_key"},
           "hidden": set()}


class UnknownProtocol(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class ColumnRef:
    """``party.dataset.column``: a column of a dataset declared by a party."""

    party: str
    dataset: str
    column: str

    @classmethod
    def parse(cls, text: Any, param: str = "column") -> ColumnRef:
        parts = text.split(".", 2) if isinstance(text, str) else []
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"parameter {param!r}: {text!r} is not a 'party.dataset.column' reference")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.party}.{self.dataset}.{self.column}"


@dataclass(frozen=True)
class ColumnUse:
    ref: ColumnRef
    use: str  # one of USES


class LocalData(Protocol):
    """Read access to this party's columns that the job's policy check allowed."""

    def column(self, ref: ColumnRef) -> Any: ...

    def batches(self, refs: list[ColumnRef]) -> Iterator[dict[str, Any]]:
        """Columns ``refs`` of one dataset a batch of rows at a time, keyed by column name."""
        ...

    def min_group_size(self, ref: ColumnRef) -> int: ...


@dataclass(frozen=True)
class Param:
    kind: type | tuple[type, ...]
    required: bool = True
    default: Any = None
    doc: str = ""


@dataclass(frozen=True)
class ProtocolSpec:
    """A protocol parties may run as a job."""

    name: str
    doc: str
    reveals: str
    params: Mapping[str, Param]
    uses: Callable[[dict[str, Any]], list[ColumnUse]]
    run: Callable[[Context, dict[str, Any], LocalData], Any]
    # Helper parties the job can use: a party server adds each one its deployment has (its
    # config lists the helper as a peer), e.g. the dealer for faster triples; without them the
    # runtime's "auto" options choose a dealer-free way (triples="ot").
    helpers: tuple[str, ...] = ()
    # Helper parties a job with these parameters cannot run without (e.g. join="dealer"); a
    # job whose deployment lacks one is refused at start, naming it.
    required_helpers: Callable[[dict[str, Any]], tuple[str, ...]] = field(default=lambda params: ())
    extra_parties: Callable[[dict[str, Any]], list[str]] = field(default=lambda params: [])
    # The correlated-randomness capabilities (mpc.ss.provider) a job with these parameters
    # needs; every party checks them against the job's source before it prepares the job.
    needs: Callable[[dict[str, Any]], tuple[str, ...]] = field(default=lambda params: ())

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Parameters with defaults filled in; ValueError naming a missing/unknown/mistyped one."""
        if not isinstance(params, Mapping):
            raise ValueError(f"{self.name}: parameters must be a mapping")
        unknown = set(params) - set(self.params)
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter {sorted(unknown)[0]!r}; "
                             f"expected {sorted(self.params)}")
        out = {}
        for name, p in self.params.items():
            if name not in params or params[name] is None:
                if p.required:
                    raise ValueError(f"{self.name}: missing parameter {name!r} ({p.doc})")
                out[name] = p.default
                continue
            value = params[name]
            if p.kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, p.kind) or (isinstance(value, bool) and p.kind is not bool):
                kind = p.kind.__name__ if isinstance(p.kind, type) else "/".join(k.__name__ for k in p.kind)
                raise ValueError(f"{self.name}: parameter {name!r} must be {kind}, "
                                 f"got {type(value).__name__}")
            out[name] = value
        self.uses(out)  # parses every column reference: bad ones raise here
        return out

    def parties(self, params: dict[str, Any]) -> list[str]:
        """The computing parties of a job, in order of first mention in the parameters."""
        order: list[str] = []
        for use in self.uses(params):
            if use.ref.party not in order:
                order.append(use.ref.party)
        for p in self.extra_parties(params):
            if p not in order:
                order.append(p)
        return order


_REGISTRY: dict[str, ProtocolSpec] = {}
# Modules whose import registers the built-in protocols (a fixed list: never from the wire).
_BUILTIN_MODULES = ("protocols.demo", "protocols.jobs", "protocols.sql.job")
_loaded = False
_load_lock = threading.Lock()


def register(spec: ProtocolSpec) -> ProtocolSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"protocol {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def _load_builtins() -> None:
    global _loaded
    with _load_lock:
        if _loaded:
            return
        for module in _BUILTIN_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
        _loaded = True


def get(name: str) -> ProtocolSpec:
    """The registered protocol ``name``; UnknownProtocol lists the known ones."""
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownProtocol(f"unknown protocol {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def column_refs(params: dict[str, Any], *keys: str, use: str) -> list[ColumnUse]:
    """ColumnUse entries for the parameters ``keys`` (each a reference or a list of them)."""
    out = []
    for key in keys:
        value = params.get(key)
        if value is None:
            continue
        for text in value if isinstance(value, list) else [value]:
            out.append(ColumnUse(ColumnRef.parse(text, key), use))
    return out


def numeric(ref: ColumnRef, values: np.ndarray, offset: int = 0) -> np.ndarray:
    """``values`` as float64, or DataError naming the column (and the first bad row; a batch
    of a streamed file passes ``offset``, the rows before it)."""
    if values.dtype.kind in "iufb":
        arr = values.astype(np.float64)
    else:
        arr = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            try:
                arr[i] = float(v)
            except (TypeError, ValueError):
                raise DataError(f"column {ref} is not numeric (row {offset + i + 1})") from None
    bad = np.flatnonzero(np.isnan(arr))
    if len(bad):
        raise DataError(f"column {ref} has {len(bad)} missing/NaN values (first at row {offset + bad[0] + 1}); "
                        f"gaotie rejects NaN rather than silently skipping rows")
    return arr


def reveal_table() -> str:
    """The README's "What each protocol reveals" table, generated from the registry."""
    rows = ["| protocol | parameters | who learns what |", "|---|---|---|"]
    for name in names():
        spec = _REGISTRY[name]
        params = ", ".join(f"`{p}`" if spec.params[p].required else f"`{p}`?" for p in spec.params)
        rows.append(f"| `{name}` | {params} | {spec.reveals} |")
    return "\n".join(rows)
