"""The plan of a SQL query: plain data a party server can check and run.

A plan is what :func:`protocols.sql.parse.parse` makes of a ``SELECT``: the tables (one,
two or three) and their join key, the ``WHERE`` conjuncts each owner evaluates on its own
rows in plaintext (``pushdown``), the ``WHERE`` part evaluated on secret shares
(``secret_filter``, a 0/1 weight per joined row), the group keys and the aggregates, or for
a query without aggregates the output columns (``rows``). It travels to every party as the
``plan`` parameter of the ``sql.aggregate`` (or ``sql.rows``) job (a dict of str, numbers
and lists: never code), so each party checks it against its own column policy before
anything runs, and the audit log records it next to the SQL text.

Expressions are nested lists (``Expr``):

    ["col", "party.dataset.column"]   ["num", 3.5]   ["str", "mass"]   ["null"]
    ["bin", "+"|"-"|"*"|"/", a, b]    ["neg", a]
    ["cmp", "<"|"<="|">"|">="|"="|"!=", a, b]
    ["and", a, b]  ["or", a, b]  ["not", a]  ["in", a, [values]]  ["between", a, lo, hi]
    ["isnull", a]  ["out", name]  (an output of the query, in HAVING)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

Expr = list

AGGREGATES = ("count", "sum", "avg", "min", "max", "var_samp", "var_pop", "stddev_samp", "stddev_pop",
              "covar_samp", "covar_pop", "corr", "quantile")
# aggregates computed from the centred moments of their arguments (protocols.stats.vertical)
MOMENTS = ("var_samp", "var_pop", "stddev_samp", "stddev_pop", "covar_samp", "covar_pop", "corr")
# of a bare column: from its owner's offset column and squares (protocols.sql.job._owner_variances)
VARIANCES = ("var_samp", "var_pop", "stddev_samp", "stddev_pop")


@dataclass
class TableRef:
    party: str
    dataset: str
    alias: str
    key: str                      # the join key column

    @property
    def key_ref(self) -> str:
        return f"{self.party}.{self.dataset}.{self.key}"


@dataclass
class Aggregate:
    """One aggregate output: ``func`` of ``args`` (expressions), quantile ``q``."""

    name: str
    func: str
    args: list[Expr] = field(default_factory=list)   # [] for COUNT(*)
    q: float | None = None
    hidden: bool = False          # needed by HAVING / ORDER BY only


@dataclass
class GroupKey:
    """A group key: a plaintext ``column`` of one party, or ``buckets`` of an expression
    (CASE WHEN / WIDTH_BUCKET): ``labels[i]`` for the rows where ``conds[i]`` holds."""

    name: str
    column: str | None = None
    labels: list[Any] = field(default_factory=list)
    conds: list[Expr] = field(default_factory=list)


@dataclass
class Plan:
    sql: str
    tables: list[TableRef]
    outputs: list[str]                                 # the SELECT list, in order (names)
    aggregates: list[Aggregate] = field(default_factory=list)
    group_by: list[GroupKey] = field(default_factory=list)
    pushdown: dict[str, list[Expr]] = field(default_factory=dict)   # party -> conjuncts
    secret_filter: Expr | None = None
    having: Expr | None = None
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (output name, descending)
    limit: int | None = None
    min_group_size: int = 1                            # the policies' largest (public)
    rows: list[list[str]] = field(default_factory=list)  # a row-level query: [output name, column]

    # -- to and from job parameters ---------------------------------------------------
    def to_params(self) -> dict[str, Any]:
        d = asdict(self)
        d["order_by"] = [[n, bool(desc)] for n, desc in self.order_by]
        return d

    @classmethod
    def from_params(cls, d: Any) -> Plan:
        if not isinstance(d, dict):
            raise ValueError("parameter 'plan' must be a table")
        try:
            return cls(sql=str(d.get("sql", "")), tables=[TableRef(**t) for t in d["tables"]],
                       outputs=[str(o) for o in d["outputs"]],
                       aggregates=[Aggregate(**a) for a in d.get("aggregates") or []],
                       group_by=[GroupKey(**g) for g in d.get("group_by") or []],
                       pushdown={str(k): list(v) for k, v in (d.get("pushdown") or {}).items()},
                       secret_filter=d.get("secret_filter"), having=d.get("having"),
                       order_by=[(str(n), bool(desc)) for n, desc in d.get("order_by") or []],
                       limit=d.get("limit"), min_group_size=int(d.get("min_group_size") or 1),
                       rows=[[str(name), str(ref)] for name, ref in d.get("rows") or []])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"parameter 'plan' is malformed: {exc}") from None

    # -- what the plan reads ------------------------------------------------------------
    @property
    def parties(self) -> list[str]:
        return [t.party for t in self.tables]

    @property
    def ids(self) -> list[str]:
        return [t.key_ref for t in self.tables]

    @property
    def is_rows(self) -> bool:
        """A row-level query (no aggregates): the ``sql.rows`` job."""
        return bool(self.rows)

    def column_uses(self) -> Iterator[tuple[str, str]]:
        """(column reference, use) for every column the plan reads (registry USES)."""
        # one party's aggregate query: its owner filters, only aggregates leave
        single = len(self.tables) == 1 and not self.is_rows
        for t in self.tables:
            if t.key:        # one party's table: its id column, read for the row count only
                yield t.key_ref, "join_key"
        for conjuncts in self.pushdown.values():
            for e in conjuncts:
                for ref in columns_of(e):
                    yield ref, "aggregate" if single else "plaintext"
        keys = {t.key_ref for t in self.tables} if len(self.tables) > 1 else set()
        for _, ref in self.rows:     # output as they are: join keys to the PSI receivers
            yield ref, "join_key" if ref in keys else "plaintext"
        for g in self.group_by:
            if g.column:
                yield g.column, "plaintext"
            for c in g.conds:
                for ref in columns_of(c):
                    yield ref, "aggregate"
        for a in self.aggregates:
            for e in a.args:
                for ref in columns_of(e):
                    yield ref, "aggregate"
        if self.secret_filter is not None:
            for ref in columns_of(self.secret_filter):
                yield ref, "aggregate"

    def aggregate_columns(self) -> list[str]:
        """Columns whose values only leave in aggregates (their min_group_size applies)."""
        return sorted({ref for ref, use in self.column_uses() if use == "aggregate"})


def columns_of(e: Any) -> list[str]:
    """The column references of an expression, in order of first mention."""
    out: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, list) and x:
            if x[0] == "col":
                if x[1] not in out:
                    out.append(x[1])
                return
            for y in x[1:]:
                walk(y)

    walk(e)
    return out


def show(e: Any) -> str:
    """An expression as SQL-like text, for explain and errors."""
    if not isinstance(e, list) or not e:
        return repr(e)
    op = e[0]
    if op == "col":
        return e[1]
    if op == "num":
        return repr(e[1])
    if op == "str":
        return "'" + str(e[1]).replace("'", "''") + "'"
    if op == "null":
        return "NULL"
    if op == "out":
        return e[1]
    if op in ("bin", "cmp"):
        return f"({show(e[2])} {e[1]} {show(e[3])})"
    if op == "neg":
        return f"-{show(e[1])}"
    if op in ("and", "or"):
        return f"({show(e[1])} {op.upper()} {show(e[2])})"
    if op == "not":
        return f"NOT {show(e[1])}"
    if op == "in":
        return f"{show(e[1])} IN ({', '.join(show(v) for v in e[2])})"
    if op == "between":
        return f"{show(e[1])} BETWEEN {show(e[2])} AND {show(e[3])}"
    if op == "isnull":
        return f"{show(e[1])} IS NULL"
    return repr(e)


HAVING_ON_SHARES = ("count", "sum", "avg", "min", "max", "quantile", "var_samp", "var_pop",
                    "stddev_samp", "stddev_pop")


def having_on_shares(plan: Plan) -> bool:
    """Whether the plan's HAVING is evaluated on shares (only whether each kept group passes is
    opened): comparisons of COUNT/SUM/AVG/MIN/MAX/quantile/VARIANCE/STDDEV outputs with
    constants joined by AND/OR/NOT, in a query of joined tables with groups or a filter on
    shares. Otherwise (CORR, COVAR, two aggregates compared) HAVING runs on the opened values."""
    if plan.having is None or len(plan.tables) < 2 or not (plan.group_by or plan.secret_filter is not None):
        return False
    by_name = {a.name: a for a in plan.aggregates}

    def ok(e: Any) -> bool:
        if e[0] in ("and", "or"):
            return ok(e[1]) and ok(e[2])
        if e[0] == "not":
            return ok(e[1])
        if e[0] == "between":
            return ok(["cmp", ">=", e[1], e[2]]) and ok(["cmp", "<=", e[1], e[3]])
        if e[0] == "cmp":
            sides = {e[2][0], e[3][0]}
            out = e[2] if e[2][0] == "out" else e[3]
            return sides == {"out", "num"} and by_name[out[1]].func in HAVING_ON_SHARES
        return False

    return ok(plan.having)
