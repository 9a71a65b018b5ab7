"""Joint queries in SQL: ``SELECT`` over one, two or three parties' tables, planned onto
gaotie's protocols (owner-side pushdown, a private join or PSI alignment, aggregates and
quantiles on secret shares; row-level output of plaintext columns and join keys where the
policies allow it).

* :func:`parse` (SQL + the parties' column policies -> :class:`Plan`), refusing unsupported
  SQL with its position (:class:`SqlError`) and policy violations with the column and its
  level (:class:`PolicyRefused`);
* :func:`compile_query` (plan -> the ``sql.aggregate`` or ``sql.rows`` job and its parameters);
* :func:`explain` (what runs where, what is secret-shared, what every party learns).

The jobs live in :mod:`protocols.sql.job` (``sql.aggregate``) and :mod:`protocols.sql.rows`
(``sql.rows``), registered with the built-in protocols; :mod:`protocols.sql.quantiles` holds
the per-group quantiles with secret ranks, :mod:`protocols.sql.pushdown` the owners' WHERE.
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
