"""SQL text -> :class:`~protocols.sql.plan.Plan`, with the parties' column policies.

Parsing is sqlglot's (DuckDB dialect, so the same text runs in DuckDB on pooled test
data); this module only walks its tree. Anything it does not know is refused with a
one-line :class:`SqlError` naming the construct and its line and column; a column used
beyond its policy level is refused with :class:`PolicyRefused` naming the column and
the level. The parties check the plan against their own policies again before running
(the server's policy check on the job's column uses): these early refusals only save a
round trip and explain why.

``schemas`` is what ``Client.datasets`` returns for each party:
``{party: [{"name", "id", "min_group_size", "columns": {column: policy}}]}``.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from protocols.sql.plan import AGGREGATES, Aggregate, Expr, GroupKey, Plan, TableRef, columns_of, show


class SqlError(ValueError):
    """Unsupported or invalid SQL (names the construct and its position)."""


class PolicyRefused(SqlError):
    """The query would use a column beyond its owner's policy (names the column and level)."""


def position(node: Any) -> str:
    """'line L, column C' of the first token under ``node`` (sqlglot keeps token positions
    in the ``meta`` of identifiers and literals), or '' when none is known."""
    if node is None:
        return ""
    for n in [node, *node.walk()] if isinstance(node, exp.Expression) else []:
        meta = getattr(n, "meta", None) or {}
        if "line" in meta:
            return f"line {meta['line']}, column {meta['col']}"
        if isinstance(n, exp.Identifier) and n.meta.get("line"):
            return f"line {n.meta['line']}, column {n.meta['col']}"
    return ""


def unsupported(node: Any, what: str | None = None, why: str = "") -> SqlError:
    name = what or (node.key.upper() if isinstance(node, exp.Expression) else str(node))
    where = position(node)
    return SqlError(f"unsupported SQL{' at ' + where if where else ''}: {name}{' (' + why + ')' if why else ''}")


_AGG_FUNCS = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
              exp.Stddev: "stddev_samp", exp.StddevSamp: "stddev_samp", exp.StddevPop: "stddev_pop",
              exp.Variance: "var_samp", exp.VariancePop: "var_pop", exp.Corr: "corr",
              exp.CovarSamp: "covar_samp", exp.CovarPop: "covar_pop", exp.Median: "quantile",
              exp.PercentileCont: "quantile", exp.Quantile: "quantile"}
_CMP = {exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">=", exp.EQ: "=", exp.NEQ: "!="}
_BIN = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*", exp.Div: "/"}
_SELECT_ARGS_OK = {"expressions", "from", "from_", "joins", "where", "group", "having", "order", "limit"}


class _Parser:
    def __init__(self, sql: str, schemas: dict[str, list[dict[str, Any]]]) -> None:
        self.sql = sql
        self.schemas = schemas
        self.tables: list[TableRef] = []
        self.columns: dict[str, dict[str, str]] = {}   # alias -> {column: policy}
        self.min_groups: dict[str, int] = {}            # alias -> min_group_size
        self.using: str | None = None
        self.ids: dict[str, str] = {}                   # alias -> the dataset's id column
        self.aggregates: list[Aggregate] = []

    # -- tables -----------------------------------------------------------------------
    def table(self, node: exp.Expression) -> TableRef:
        if not isinstance(node, exp.Table) or not node.name:
            raise unsupported(node, why="FROM takes tables named party.dataset")
        party, dataset = node.db, node.name
        if not party or node.catalog:
            raise unsupported(node, f"table {node.sql()}", "name tables party.dataset, e.g. bank.accounts")
        if party not in self.schemas:
            raise SqlError(f"unknown party {party!r} in table {party}.{dataset} ({position(node)}); "
                           f"parties: {sorted(self.schemas)}")
        found = [d for d in self.schemas[party] if d["name"] == dataset]
        if not found:
            names = sorted(d["name"] for d in self.schemas[party])
            raise SqlError(f"party {party!r} has no dataset {dataset!r} ({position(node)}); it has {names}")
        alias = node.alias or dataset
        if alias in self.columns:
            raise unsupported(node, f"table {party}.{dataset} twice", "a self-join")
        self.columns[alias] = dict(found[0]["columns"])
        self.ids[alias] = found[0].get("id") or ""
        self.min_groups[alias] = int(found[0].get("min_group_size") or 1)
        t = TableRef(party, dataset, alias, "")
        self.tables.append(t)
        return t

    def ref(self, col: exp.Column) -> tuple[TableRef, str, str]:
        """(table, column, policy) of a column reference; errors name unknown/ambiguous ones."""
        name = col.name
        if col.table:
            tables = [t for t in self.tables if t.alias == col.table]
            if not tables:
                raise SqlError(f"unknown table {col.table!r} in column {col.sql()} ({position(col)})")
        else:
            tables = [t for t in self.tables if name in self.columns[t.alias]]
            if len(tables) > 1 and name == self.using:
                tables = tables[:1]
            if len(tables) > 1:
                raise SqlError(f"column {name!r} is ambiguous ({position(col)}): qualify it, e.g. "
                               f"{tables[0].alias}.{name}")
            if not tables:
                raise SqlError(f"unknown column {name!r} ({position(col)})")
        t = tables[0]
        if name not in self.columns[t.alias]:
            raise SqlError(f"dataset {t.party}.{t.dataset} has no column {name!r} ({position(col)})")
        return t, name, self.columns[t.alias][name]

    def qualified(self, col: exp.Column) -> str:
        t, name, _ = self.ref(col)
        return f"{t.party}.{t.dataset}.{name}"

    def policy(self, ref: str) -> str:
        party, dataset, column = ref.split(".", 2)
        t = next(t for t in self.tables if t.party == party and t.dataset == dataset)
        return self.columns[t.alias][column]

    def join(self, j: exp.Join) -> None:
        if j.side or (j.kind and j.kind.upper() not in ("INNER",)) or j.args.get("method"):
            what = " ".join(x for x in (j.side, j.kind) if x).upper() or "JOIN"
            raise unsupported(j, f"{what} JOIN", "only INNER JOIN")
        right = self.table(j.this)
        earlier = self.tables[:-1]
        using = j.args.get("using")
        on = j.args.get("on")
        if using:
            if len(using) != 1:
                raise unsupported(j, "USING with several columns", "join on one key column")
            key = using[0].name
            left = next((t for t in earlier if key in self.columns[t.alias]), None)
            for t in (left, right):
                if t is None or key not in self.columns[t.alias]:
                    who = f"{t.party}.{t.dataset}" if t is not None else "no earlier table"
                    raise SqlError(f"USING ({key}): {who} has no column {key!r} ({position(j)})")
            pairs = [(left, key), (right, key)]
            self.using = key
        elif isinstance(on, exp.EQ) and isinstance(on.this, exp.Column) and isinstance(on.expression, exp.Column):
            a, ka, _ = self.ref(on.this)
            b, kb, _ = self.ref(on.expression)
            if right not in (a, b) or a is b:
                raise unsupported(on, "join condition", "ON earlier.key = joined.key, the joined table on one side")
            pairs = [(a, ka), (b, kb)]
        else:
            raise unsupported(on if on is not None else j, "join condition",
                              "only ON a.key = b.key or USING (key)")
        for t, k in pairs:
            if t.key and t.key != k:
                raise unsupported(j, f"a second join key {k!r} for {t.party}.{t.dataset}",
                                  f"every table joins on one key (here {t.key!r})")
            t.key = k
            if self.columns[t.alias][t.key] not in ("join_key", "plaintext"):
                raise PolicyRefused(f"column {t.key_ref} has policy {self.columns[t.alias][t.key]!r}, "
                                    f"which does not allow joining on it (needs 'join_key')")

    # -- expressions ----------------------------------------------------------------------
    def expr(self, node: exp.Expression, *, where: str, allow_agg: bool = False) -> Expr:
        """A scalar expression (``where``: 'WHERE', 'aggregate', 'GROUP BY', 'HAVING')."""
        if isinstance(node, exp.Paren):
            return self.expr(node.this, where=where, allow_agg=allow_agg)
        if isinstance(node, exp.Column):
            if where == "HAVING":
                raise unsupported(node, f"column {node.sql()} in HAVING", "HAVING takes aggregates")
            return ["col", self.qualified(node)]
        if isinstance(node, exp.Literal):
            if node.is_string:
                return ["str", node.this]
            v = float(node.this)
            return ["num", int(v) if v.is_integer() and "." not in node.this else v]
        if isinstance(node, exp.Boolean):
            return ["num", 1 if node.this else 0]
        if isinstance(node, exp.Null):
            return ["null"]
        if isinstance(node, exp.Neg):
            return ["neg", self.expr(node.this, where=where, allow_agg=allow_agg)]
        if isinstance(node, exp.Div) and any(True for _ in node.expression.find_all(exp.Column)):
            raise unsupported(node, f"division by a column ({node.sql()})", "divide by constants only")
        for cls, op in _BIN.items():
            if type(node) is cls:
                return ["bin", op, self.expr(node.this, where=where, allow_agg=allow_agg),
                        self.expr(node.expression, where=where, allow_agg=allow_agg)]
        for cls, op in _CMP.items():
            if type(node) is cls:
                return ["cmp", op, self.expr(node.this, where=where, allow_agg=allow_agg),
                        self.expr(node.expression, where=where, allow_agg=allow_agg)]
        if isinstance(node, exp.And | exp.Or):
            return [node.key, self.expr(node.this, where=where, allow_agg=allow_agg),
                    self.expr(node.expression, where=where, allow_agg=allow_agg)]
        if isinstance(node, exp.Not):
            return ["not", self.expr(node.this, where=where, allow_agg=allow_agg)]
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest"):
                raise unsupported(node, "IN (subquery)")
            vals = [self.expr(v, where=where) for v in node.expressions]
            if any(v[0] not in ("num", "str") for v in vals):
                raise unsupported(node, "IN with non-constant values")
            return ["in", self.expr(node.this, where=where, allow_agg=allow_agg), vals]
        if isinstance(node, exp.Between):
            return ["between", self.expr(node.this, where=where, allow_agg=allow_agg),
                    self.expr(node.args["low"], where=where), self.expr(node.args["high"], where=where)]
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise unsupported(node, "IS other than IS [NOT] NULL")
            return ["isnull", self.expr(node.this, where=where, allow_agg=allow_agg)]
        if type(node) in _AGG_FUNCS or isinstance(node, exp.WithinGroup):
            if not allow_agg:
                raise unsupported(node, f"aggregate {node.sql()} in {where}")
            return ["out", self.aggregate(node, hidden=True).name]
        raise unsupported(node, why=f"in {where}")

    def aggregate(self, node: exp.Expression, hidden: bool = False, name: str | None = None) -> Aggregate:
        q = None
        if isinstance(node, exp.WithinGroup):
            inner, order = node.this, node.expression
            if not isinstance(inner, exp.PercentileCont) or not isinstance(order, exp.Order) \
                    or len(order.expressions) != 1:
                raise unsupported(node, "WITHIN GROUP", "only PERCENTILE_CONT(q) WITHIN GROUP (ORDER BY col)")
            q = _number(inner.this)
            args_nodes = [order.expressions[0].this]
            func = "quantile"
        else:
            func = _AGG_FUNCS[type(node)]
            if node.args.get("distinct") or isinstance(node.this, exp.Distinct):
                raise unsupported(node, f"{node.key.upper()}(DISTINCT ...)")
            if isinstance(node, exp.Median):
                q = 0.5
                args_nodes = [node.this]
            elif isinstance(node, exp.PercentileCont | exp.Quantile):
                if node.expression is None:
                    raise unsupported(node, "PERCENTILE_CONT without WITHIN GROUP (ORDER BY col)")
                q = _number(node.expression)
                args_nodes = [node.this]
            elif isinstance(node, exp.Count):
                args_nodes = [] if node.this is None or isinstance(node.this, exp.Star) else [node.this]
            else:
                args_nodes = [a for a in (node.this, node.args.get("expression")) if a is not None]
        if q is not None and not 0 <= q <= 1:
            raise SqlError(f"quantile {q} is not in [0, 1] ({position(node)})")
        args = [self.expr(a, where="aggregate") for a in args_nodes]
        for a, n in zip(args, args_nodes, strict=True):
            self.check_values(a, n, "aggregated")
        if func == "count" and args:
            func, args = "count", []      # no NULLs on shares: COUNT(col) = COUNT(*)
        agg = Aggregate(name or "", func, args, q, hidden)
        for old in self.aggregates:       # the same aggregate twice: computed once
            if (old.func, old.args, old.q) == (func, args, q):
                if not hidden:
                    old.hidden = False
                return old
        if not agg.name:
            agg.name = node.sql(dialect="duckdb")
            if hidden:
                agg.name = f"__{agg.name}"
        assert func in AGGREGATES
        self.aggregates.append(agg)
        return agg

    def check_values(self, e: Expr, node: exp.Expression, what: str) -> None:
        """Columns whose values are used on shares must allow aggregate use."""
        for ref in columns_of(e):
            level = self.policy(ref)
            if level not in ("aggregate", "plaintext"):
                raise PolicyRefused(f"column {ref} has policy {level!r}: it cannot be {what} "
                                    f"({position(node)}); only 'aggregate' and 'plaintext' columns can")

    # -- the query ------------------------------------------------------------------------
    def parse(self) -> Plan:
        try:
            tree = sqlglot.parse_one(self.sql, read="duckdb")
        except sqlglot.errors.ParseError as exc:
            e = exc.errors[0] if exc.errors else {}
            raise SqlError(f"SQL syntax error at line {e.get('line', '?')}, column {e.get('col', '?')}: "
                           f"{e.get('description', str(exc))}") from None
        if not isinstance(tree, exp.Select):
            raise unsupported(tree, why="only SELECT queries")
        for key, value in tree.args.items():
            if value and key not in _SELECT_ARGS_OK:
                raise unsupported(value if isinstance(value, exp.Expression) else tree, key.upper())
        for node in tree.walk():
            if isinstance(node, exp.Select) and node is not tree or isinstance(node, exp.Subquery):
                raise unsupported(node, "subquery")
            if isinstance(node, exp.Window):
                raise unsupported(node, "window function (OVER)")
        from_ = tree.args.get("from") or tree.args.get("from_")
        if from_ is None:
            raise SqlError("SELECT needs FROM party.dataset")
        self.table(from_.this)
        joins = tree.args.get("joins") or []
        if len(joins) > 2:
            raise unsupported(joins[2], "a join of four or more tables", "join two or three parties' tables")
        if not joins:
            t = self.tables[0]
            if self.columns[t.alias].get(self.ids[t.alias]) in ("join_key", "plaintext"):
                t.key = self.ids[t.alias]
        for j in joins:
            self.join(j)
            if len({t.party for t in self.tables}) != len(self.tables):
                raise unsupported(j, "a join of two tables of one party", "join different parties' tables")

        # GROUP BY
        selects = list(tree.expressions)
        group_nodes = list(tree.args["group"].expressions) if tree.args.get("group") else []
        groups: list[GroupKey] = []
        group_sql: dict[str, str] = {}        # the key's SQL -> its name
        for g in group_nodes:
            node = g
            if isinstance(g, exp.Literal) and not g.is_string:
                i = int(g.this)
                if not 1 <= i <= len(selects):
                    raise SqlError(f"GROUP BY {i}: the SELECT list has {len(selects)} items ({position(g)})")
                node = selects[i - 1]
            elif isinstance(g, exp.Column) and not g.table:
                alias = [s for s in selects if isinstance(s, exp.Alias) and s.alias == g.name]
                if alias and not any(g.name in self.columns[t.alias] for t in self.tables):
                    node = alias[0]
            name = node.alias if isinstance(node, exp.Alias) else None
            inner = node.this if isinstance(node, exp.Alias) else node
            key = self.group_key(inner, name)
            groups.append(key)
            group_sql[inner.sql()] = key.name
            if name:
                group_sql[name] = key.name

        having_node, order_node = tree.args.get("having"), tree.args.get("order")
        if not group_nodes and not any(isinstance(n, tuple(_AGG_FUNCS) + (exp.WithinGroup,))
                                       for part in (*selects, having_node, order_node) if part is not None
                                       for n in part.walk()):
            return self.row_plan(tree, selects)

        # SELECT list
        outputs: list[str] = []
        for s in selects:
            name = s.alias if isinstance(s, exp.Alias) else None
            inner = s.this if isinstance(s, exp.Alias) else s
            if isinstance(inner, exp.Star):
                raise unsupported(inner, "SELECT *", "name the columns: aggregates and GROUP BY keys")
            if type(inner) in _AGG_FUNCS or isinstance(inner, exp.WithinGroup):
                agg = self.aggregate(inner, name=name)
                if name and agg.name != name:     # the same aggregate under two names
                    agg = Aggregate(name, agg.func, agg.args, agg.q)
                    self.aggregates.append(agg)
                outputs.append(agg.name)
                continue
            if inner.sql() in group_sql:
                key = group_sql[inner.sql()]
                if name and name != key:
                    next(g for g in groups if g.name == key).name = name
                    group_sql = {k: (name if v == key else v) for k, v in group_sql.items()}
                    key = name
                outputs.append(key)
                continue
            if any(isinstance(n, tuple(_AGG_FUNCS)) for n in inner.walk()):
                raise unsupported(inner, f"expression {inner.sql()}",
                                  "SELECT items must be aggregates or GROUP BY keys, not arithmetic on aggregates")
            for col in inner.find_all(exp.Column):
                t, cname, level = self.ref(col)
                ref = f"{t.party}.{t.dataset}.{cname}"
                if level != "plaintext":
                    raise PolicyRefused(f"column {ref} has policy {level!r}: it cannot be output row by row "
                                        f"({position(col)}); only aggregates over at least "
                                        f"{self.min_groups[t.alias]} rows may leave")
                raise unsupported(col, f"column {ref} beside aggregates",
                                  "GROUP BY it, aggregate it, or query rows without aggregates")
            raise unsupported(inner, f"expression {inner.sql()} in SELECT")
        if not self.aggregates and not groups:
            raise SqlError("the query has no aggregate")

        # WHERE: conjuncts on one party's plaintext columns go to that party
        pushdown: dict[str, list[Expr]] = {}
        secret: list[Expr] = []
        where = tree.args.get("where")
        for conj in _conjuncts(where.this) if where else []:
            e = self.expr(conj, where="WHERE")
            refs = columns_of(e)
            owners = {r.rsplit(".", 2)[0] for r in refs}
            levels = {self.policy(r) for r in refs}
            if len(self.tables) == 1:      # one party's table: its owner evaluates all of WHERE
                self.check_values(e, conj, "filtered")
                pushdown.setdefault(self.tables[0].party, []).append(e)
            elif refs and len(owners) == 1 and levels == {"plaintext"}:
                pushdown.setdefault(refs[0].split(".", 1)[0], []).append(e)
            else:
                self.check_values(e, conj, "filtered on shares")
                if any(x[0] == "str" for x in _walk(e)):
                    raise unsupported(conj, "a string comparison on shares",
                                      "strings can be compared only on one party's plaintext columns")
                secret.append(e)
        secret_filter = None
        for e in secret:
            secret_filter = e if secret_filter is None else ["and", secret_filter, e]

        having = self.expr(tree.args["having"].this, where="HAVING", allow_agg=True) \
            if tree.args.get("having") else None
        order_by = []
        if tree.args.get("order"):
            for o in tree.args["order"].expressions:
                order_by.append((self.order_name(o.this, selects, outputs, group_sql), bool(o.args.get("desc"))))
        limit = self.limit(tree)
        min_group = max((self.min_groups[t.alias] for t in self.tables), default=1)
        return Plan(self.sql, self.tables, outputs, self.aggregates, groups, pushdown, secret_filter,
                    having, order_by, limit, min_group)

    def row_plan(self, tree: exp.Select, selects: list[exp.Expression]) -> Plan:
        """A query without aggregates or GROUP BY: row-level output, allowed for 'plaintext'
        columns, and after a join for the join keys (the PSI receivers already hold them).
        WHERE may use 'plaintext' columns only (each conjunct one party's, evaluated by its
        owner): a filter on any other column would show row by row which rows pass it."""
        joined = len(self.tables) > 1
        rows: list[list[str]] = []
        names: set[str] = set()
        sql_of: dict[str, str] = {}
        for s in selects:
            name = s.alias if isinstance(s, exp.Alias) else None
            inner = s.this if isinstance(s, exp.Alias) else s
            if isinstance(inner, exp.Star):
                raise unsupported(inner, "SELECT *", "name the plaintext columns to output, or aggregate")
            if not isinstance(inner, exp.Column):
                raise unsupported(inner, f"expression {inner.sql()} in a row-level SELECT",
                                  "output plaintext columns as they are, or aggregate")
            t, cname, level = self.ref(inner)
            ref = f"{t.party}.{t.dataset}.{cname}"
            key = joined and cname == t.key
            if level != "plaintext" and not (key and level == "join_key"):
                raise PolicyRefused(_row_refusal(ref, level, position(inner), self.min_groups[t.alias], joined))
            out = name or cname
            k = 1
            while out in names:              # DuckDB's names for a repeated column
                out, k = f"{name or cname}_{k}", k + 1
            names.add(out)
            rows.append([out, ref])
            sql_of[inner.sql()] = out
        pushdown: dict[str, list[Expr]] = {}
        where = tree.args.get("where")
        for conj in _conjuncts(where.this) if where else []:
            e = self.expr(conj, where="WHERE")
            refs = columns_of(e)
            for col in conj.find_all(exp.Column):
                t, cname, level = self.ref(col)
                if level != "plaintext":
                    raise PolicyRefused(f"column {t.party}.{t.dataset}.{cname} has policy {level!r}: a row-level "
                                        f"query cannot filter on it ({position(col)}); the rows it outputs would "
                                        "show which rows pass (filter on 'plaintext' columns, or aggregate)")
            owners = {r.split(".", 1)[0] for r in refs}
            if len(owners) > 1:
                raise unsupported(conj, f"WHERE {conj.sql()} across parties' columns",
                                  "in a row-level query each condition uses one party's plaintext columns")
            pushdown.setdefault(refs[0].split(".", 1)[0] if refs else self.tables[0].party, []).append(e)
        if tree.args.get("having"):
            raise unsupported(tree.args["having"], "HAVING without GROUP BY or aggregates")
        outputs = [r[0] for r in rows]
        order_by = []
        if tree.args.get("order"):
            for o in tree.args["order"].expressions:
                order_by.append((self.order_name(o.this, selects, outputs, sql_of), bool(o.args.get("desc"))))
        return Plan(self.sql, self.tables, outputs, [], [], pushdown, None, None, order_by, self.limit(tree),
                    max((self.min_groups[t.alias] for t in self.tables), default=1), rows)

    def limit(self, tree: exp.Select) -> int | None:
        if not tree.args.get("limit"):
            return None
        lim = tree.args["limit"].expression
        if not isinstance(lim, exp.Literal) or lim.is_string or not lim.this.isdigit():
            raise unsupported(lim, "LIMIT other than a whole number")
        return int(lim.this)

    def group_key(self, node: exp.Expression, name: str | None) -> GroupKey:
        if isinstance(node, exp.Column):
            ref = self.qualified(node)
            level = self.policy(ref)
            if level != "plaintext":
                raise PolicyRefused(f"column {ref} has policy {level!r}: GROUP BY needs a 'plaintext' column "
                                    f"({position(node)}); group an aggregate column with buckets "
                                    f"(CASE WHEN ... or WIDTH_BUCKET)")
            return GroupKey(name or node.name, column=ref)
        if isinstance(node, exp.Case):
            if node.this is not None:
                raise unsupported(node, "CASE x WHEN", "write CASE WHEN x = ... THEN")
            labels, conds, previous = [], [], None
            for branch in node.args["ifs"]:
                cond = self.expr(branch.this, where="GROUP BY")
                labels.append(_constant(branch.args["true"]))
                conds.append(cond if previous is None else ["and", cond, ["not", previous]])
                previous = cond if previous is None else ["or", previous, cond]
            default = node.args.get("default")
            labels.append(_constant(default) if default is not None else None)
            conds.append(["not", previous])
            for c in conds:
                self.check_values(c, node, "grouped into buckets")
            return GroupKey(name or node.sql(dialect="duckdb"), labels=labels, conds=conds)
        if isinstance(node, exp.WidthBucket):
            x = self.expr(node.this, where="GROUP BY")
            lo, hi = _number(node.args["min_value"]), _number(node.args["max_value"])
            nb = int(_number(node.args["num_buckets"]))
            if nb < 1 or not lo < hi:
                raise SqlError(f"WIDTH_BUCKET needs min < max and at least one bucket ({position(node)})")
            edges = [lo + (hi - lo) * k / nb for k in range(nb + 1)]
            conds = [["cmp", "<", x, ["num", edges[0]]]]
            conds += [["and", ["cmp", ">=", x, ["num", edges[k]]], ["cmp", "<", x, ["num", edges[k + 1]]]]
                      for k in range(nb)]
            conds.append(["cmp", ">=", x, ["num", edges[-1]]])
            self.check_values(x, node, "grouped into buckets")
            return GroupKey(name or node.sql(dialect="duckdb"), labels=list(range(nb + 2)), conds=conds)
        raise unsupported(node, f"GROUP BY {node.sql()}",
                          "group by plaintext columns, CASE WHEN buckets or WIDTH_BUCKET")

    def order_name(self, node: exp.Expression, selects: list, outputs: list[str], group_sql: dict[str, str]) -> str:
        if isinstance(node, exp.Literal) and not node.is_string:
            i = int(node.this)
            if not 1 <= i <= len(outputs):
                raise SqlError(f"ORDER BY {i}: the SELECT list has {len(outputs)} items ({position(node)})")
            return outputs[i - 1]
        if isinstance(node, exp.Column) and not node.table and node.name in outputs:
            return node.name
        if node.sql() in group_sql:
            return group_sql[node.sql()]
        if type(node) in _AGG_FUNCS or isinstance(node, exp.WithinGroup):
            return self.aggregate(node, hidden=True).name
        raise unsupported(node, f"ORDER BY {node.sql()}", "order by output names, positions or aggregates")


def _row_refusal(ref: str, level: str, where: str, min_group: int, joined: bool) -> str:
    if level == "join_key":
        why = ("only the join key of this query's join may be output (to the PSI receivers)" if joined
               else "it can be joined on, not output (join it with another party's table to output the matches)")
    elif level == "aggregate":
        why = f"only aggregates over at least {min_group} rows may leave"
    else:
        why = "it may not be used at all"
    return f"column {ref} has policy {level!r}: it cannot be output row by row ({where}); {why}"


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _walk(e: Any):
    if isinstance(e, list) and e:
        yield e
        for y in e[1:]:
            yield from _walk(y)


def _number(node: Any) -> float:
    if isinstance(node, exp.Neg):
        return -_number(node.this)
    if isinstance(node, exp.Paren):
        return _number(node.this)
    if not isinstance(node, exp.Literal) or node.is_string:
        raise unsupported(node, f"{node.sql() if node is not None else 'nothing'} where a number is needed")
    return float(node.this)


def _constant(node: exp.Expression) -> Any:
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        v = float(node.this)
        return int(v) if v.is_integer() and "." not in node.this else v
    if isinstance(node, exp.Neg):
        return -_constant(node.this)
    if isinstance(node, exp.Null):
        return None
    raise unsupported(node, f"{node.sql()} as a CASE result", "bucket labels must be constants")


def parse(sql: str, schemas: dict[str, list[dict[str, Any]]]) -> Plan:
    """The plan of ``sql`` given every named party's datasets and column policies."""
    return _Parser(sql, schemas).parse()


def tables_of(sql: str) -> list[str]:
    """The parties whose tables ``sql`` names (to fetch their schemas first)."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        e = exc.errors[0] if exc.errors else {}
        raise SqlError(f"SQL syntax error at line {e.get('line', '?')}, column {e.get('col', '?')}: "
                       f"{e.get('description', str(exc))}") from None
    out: list[str] = []
    for t in tree.find_all(exp.Table):
        if t.db and t.db not in out:
            out.append(t.db)
    return out


__all__ = ["PolicyRefused", "SqlError", "parse", "position", "show", "tables_of"]
