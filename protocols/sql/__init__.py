"""Joint queries in SQL: ``SELECT`` aggregates over two parties' tables, planned onto
gaotie's protocols (owner-side pushdown, a private join, aggregates on secret shares).

* :func:`parse` (SQL + the parties' column policies -> :class:`Plan`), refusing unsupported
  SQL with its position (:class:`SqlError`) and policy violations with the column and its
  level (:class:`PolicyRefused`);
* :func:`compile_query` (plan -> the ``sql.aggregate`` job and its parameters);
* :func:`explain` (what runs where, what is secret-shared, what every party learns).

The ``sql.aggregate`` job itself lives in :mod:`protocols.sql.job` (registered with the
built-in protocols).
"""

from protocols.sql.explain import explain
from protocols.sql.parse import PolicyRefused, SqlError, parse, tables_of
from protocols.sql.plan import Plan


def compile_query(plan: Plan, *, reveal_to: str | None = None, join: str = "ecdh",
                  requester: str | None = None) -> tuple[str, dict]:
    """(protocol, parameters) of the job that runs ``plan``: ``sql.aggregate``, or
    ``sql.rows`` for a query without aggregates (row-level output); a query of one party's
    table by another party (``requester``) makes the requester the job's second party."""
    params = {"sql": plan.sql, "plan": plan.to_params(), "reveal_to": reveal_to}
    if not plan.is_rows:
        params["join"] = join
    if len(plan.tables) == 1 and requester and requester != plan.tables[0].party:
        params["parties"] = [plan.tables[0].party, requester]
    return ("sql.rows" if plan.is_rows else "sql.aggregate"), params


__all__ = ["Plan", "PolicyRefused", "SqlError", "compile_query", "explain", "parse", "tables_of"]
