"""``EXPLAIN`` of a planned query: before anything runs, the protocols it compiles to,
what each party computes in plaintext, what is secret-shared, and what every party
learns (the reveal lines of the protocols it runs, combined)."""

from __future__ import annotations

from protocols.sql.plan import MOMENTS, VARIANCES, Plan, columns_of, having_on_shares, show


def _agg(a) -> str:
    args = ", ".join(show(e) for e in a.args) or "*"
    q = f", q={a.q}" if a.q is not None else ""
    return f"{a.func.upper()}({args}{q})"


def explain(plan: Plan, *, reveal_to: str | None = None, join: str = "ecdh") -> str:
    """The plan as text (one fact per line)."""
    from protocols import registry

    if plan.is_rows:
        return _explain_rows(plan, reveal_to)
    if len(plan.tables) == 1:
        return _explain_single(plan, reveal_to)
    to = reveal_to or " and ".join(plan.parties)
    three = len(plan.tables) == 3
    lines = [f"query: {plan.sql.strip()}",
             "protocols: sql.aggregate = owner-side WHERE, "
             + ("rows aligned by multi-party PSI (psi.ecdh) and secret-shared by their owners" if three else
                f"private join (protocols.psi.private_join, join={join!r})")
             + ", aggregates on secret shares (protocols.stats.vertical, mpc.ss)",
             "plan:"]
    step = _pushdown_steps(plan, lines)
    shared = sorted({r for g in plan.group_by if g.column for r in [g.column]}
                    | set(plan.aggregate_columns()))
    keys = " = ".join(t.key_ref for t in plan.tables)
    between = " and ".join(plan.parties)
    if three:
        lines.append(f"  {step}. multi-party PSI on {keys}: every party learns which of its own rows all three "
                     f"hold; the rows are sorted by id and {', '.join(shared) or '(no columns)'} secret-shared "
                     f"by their owners between {between}")
    else:
        lines.append(f"  {step}. private join {keys}: the joined rows' columns "
                     f"{', '.join(shared) or '(none)'} secret-shared between {between}; "
                     "nobody learns which rows joined")
    step += 1
    if plan.secret_filter is not None:
        lines.append(f"  {step}. on shares: WHERE {show(plan.secret_filter)} as a secret 0/1 weight per "
                     "row (never opened)")
        step += 1
    for g in plan.group_by:
        if g.column:
            owner = g.column.split(".", 1)[0]
            lines.append(f"  {step}. GROUP BY {g.name}: {owner} sends its labels of {g.column} (public to every "
                         "party); row membership stays secret (secure comparisons on the shared codes)")
        else:
            lines.append(f"  {step}. GROUP BY {g.name}: buckets {g.labels} by secure comparisons on shares "
                         f"of {', '.join(columns_of(g.conds))}")
        step += 1
    aggs = ", ".join(_agg(x) for x in plan.aggregates)
    grouped_q = any(x.func == "quantile" for x in plan.aggregates) and bool(plan.group_by
                                                                          or plan.secret_filter is not None)
    lines.append(f"  {step}. on shares: {aggs}" + ("; the quantiles per group with secret ranks (a bitwise search "
                                                   "with a secret threshold: the group counts are not opened for "
                                                   "them)" if grouped_q else ""))
    step += 1
    if plan.group_by or plan.secret_filter is not None:
        lines.append(f"  {step}. groups with fewer than {plan.min_group_size} rows (or the parties' larger "
                     "min_group_size) are suppressed: only that bit is opened, to every party; they are "
                     "marked suppressed=True with no aggregates")
        step += 1
    on_shares = having_on_shares(plan)
    if on_shares:
        lines.append(f"  {step}. on shares: HAVING {show(plan.having)}; only whether each kept group passes is "
                     "opened, to every party; the groups it drops are left out of the result")
        step += 1
    post = [x for x, on in (("HAVING", plan.having is not None and not on_shares), ("ORDER BY", bool(plan.order_by)),
                            ("LIMIT", plan.limit is not None)) if on]
    lines.append(f"  {step}. opened to {to}: the aggregates of the kept groups"
                 + (f"; then {', '.join(post)} on the opened result" if post else ""))
    lines.append("what each party learns:")
    extra = []
    owner_var = [x for x in plan.aggregates if x.func in VARIANCES and x.args[0][0] == "col"]
    if any(x.func in MOMENTS and x not in owner_var for x in plan.aggregates):
        extra.append("for COVAR/CORR and STDDEV/VARIANCE of expressions also each kept group's centred moments "
                     "(its mean relative to the overall mean, variances and covariance)")
    if owner_var:
        extra.append("for STDDEV/VARIANCE of one party's column only the variance (its owner joins an offset "
                     "column and its squares; the group's mean is not opened for them)")
    if plan.having is not None and not on_shares:
        extra.append("the aggregates of the groups HAVING drops (HAVING runs on opened values)")
    for p in plan.parties:
        gets = reveal_to is None or reveal_to == p
        parts = (["which of its own rows all three parties hold (the PSI alignment)"] if three else []) + [
                 "the number of joined rows after the owners' WHERE",
                 "the power-of-two magnitude of each joined column"]
        if plan.group_by:
            parts.append("the group labels and which groups are suppressed"
                         + (" or dropped by HAVING" if on_shares else ""))
        if gets:
            parts.append("per kept group its row count and " + aggs + (("; " + "; ".join(extra)) if extra else ""))
        lines.append(f"  {p}: " + "; ".join(parts))
    lines.append("  dealer (if the deployment has one): the number of joined rows and groups (shapes of the "
                 "randomness it deals)" + ("; with join='dealer' both parties' id counts" if join == "dealer" else "")
                 + "; nothing that depends on ids or values")
    from protocols.sql.bucketed import blocker, spilled_args
    why = blocker(plan)
    per_bucket = ("the first party and the last party learn the N-party PSI's two sizes in each bucket (only if "
                  "every party's [limits] bucket_psi_sizes allows it)" if three else
                  "every party also learns the number of joined rows in each bucket (only if every party's "
                  "[limits] bucket_join_sizes allows it)")
    lines.append("under a memory budget (Client.query(memory=...), [limits] memory): " + (
        ("runs in hash buckets, " + ("the rows aligned by the N-party PSI per bucket, " if three else "")
         + "the partial aggregates merged on shares"
         + ("; the quantiles and the moments of expressions once on all buckets' joined rows, out of core"
            if spilled_args(plan) else "")
         + "; with more than one bucket " + per_bucket) if why is None else
        f"not in buckets ({why}): refused if the input outgrows the budget"))
    lines.append("registry: sql.aggregate reveals: " + registry.get("sql.aggregate").reveals)
    return "\n".join(lines)


def _explain_single(plan: Plan, reveal_to: str | None) -> str:
    t = plan.tables[0]
    aggs = ", ".join(_agg(x) for x in plan.aggregates)
    where = " AND ".join(show(e) for e in plan.pushdown.get(t.party, []))
    to = reveal_to or "the requester and " + t.party
    lines = [f"query: {plan.sql.strip()}",
             "protocols: sql.aggregate on one party's table: computed by its owner in plaintext "
             "(protocols.sql.local), no secret sharing",
             "plan:",
             f"  1. {t.party} (plaintext, its own rows): {t.party}.{t.dataset}"
             + (f" where {where}" if where else "")
             + (f", grouped by {', '.join(g.name for g in plan.group_by)}" if plan.group_by else "")
             + f": {aggs}",
             f"  2. groups with fewer than {plan.min_group_size} rows are suppressed (suppressed=True, no aggregates)",
             f"  3. {t.party} sends the result table to {to}",
             "what each party learns:",
             f"  {t.party}: the query (it computes it)",
             f"  receivers ({to}): the group labels, which groups are suppressed, and {aggs} of the kept groups"]
    return "\n".join(lines)


def _explain_rows(plan: Plan, reveal_to: str | None) -> str:
    """A row-level query (``sql.rows``): plaintext columns and join keys leave as they are."""
    from protocols import registry
    from protocols.sql.rows import psi_receivers, senders

    cols = ", ".join(f"{ref} AS {name}" if ref.rsplit(".", 1)[1] != name else ref for name, ref in plan.rows)
    post = [x for x, on in (("ORDER BY", bool(plan.order_by)), ("LIMIT", plan.limit is not None)) if on]
    lines = [f"query: {plan.sql.strip()}"]
    if len(plan.tables) == 1:
        t = plan.tables[0]
        where = " AND ".join(show(e) for e in plan.pushdown.get(t.party, []))
        to = reveal_to or "the requester and " + t.party
        lines += ["protocols: sql.rows on one party's table: its owner selects the rows in plaintext "
                  "(plaintext columns only), no cryptography",
                  "plan:",
                  f"  1. {t.party} (plaintext, its own rows): {t.party}.{t.dataset}"
                  + (f" where {where}" if where else "") + (f", then {', '.join(post)}" if post else ""),
                  f"  2. {t.party} sends {cols} of those rows to {to}",
                  "what each party learns:",
                  f"  {t.party}: the query (it computes it)",
                  f"  receivers ({to}): {cols} of the rows the WHERE keeps"]
        return "\n".join(lines)
    to = [reveal_to] if reveal_to else plan.parties
    psi = psi_receivers(plan, reveal_to)
    send = [s for s in senders(plan) if any(p != s for p in to)]     # columns that travel
    keys = " = ".join(t.key_ref for t in plan.tables)
    lines += ["protocols: sql.rows = owner-side WHERE, ECDH PSI on the join keys (protocols.psi.ecdh_psi, "
              "rows aligned by id), then the plaintext output columns sent by their owners",
              "plan:"]
    step = _pushdown_steps(plan, lines)
    lines.append(f"  {step}. PSI on {keys}: " + (f"{psi[0]} learns which of its own rows" if len(psi) == 1 else
                                                  f"{' and '.join(psi)} learn which of their own rows")
                 + " all parties hold, sorted by id")
    step += 1
    if send:
        lines.append(f"  {step}. {', '.join(send)} send their output columns of the joined rows, in id order, to "
                     f"{', '.join(p for p in to)}")
        step += 1
    verb = "assembles" if len(to) == 1 else "assemble"
    lines.append(f"  {step}. {' and '.join(to)} {verb} {cols}" + (f"; then {', '.join(post)}" if post else ""))
    lines.append("what each party learns:")
    for p in plan.parties:
        parts = ["the number of distinct ids of each party after the owners' WHERE"]
        if p in psi:
            parts.append("which of its own rows all parties hold (a PSI receiver"
                         + (", to send its output columns)" if p in send and p not in to else ")"))
        if p in to:
            parts.append(f"{cols} of the joined rows")
        lines.append(f"  {p}: " + "; ".join(parts))
    if len(plan.tables) == 2:
        lines.append("under a memory budget (Client.query(memory=...), [limits] memory): runs in hash buckets, "
                     "an OPRF PSI per bucket with the same receivers; nothing more is revealed (a receiver's "
                     "per-bucket sizes follow from its own matched ids); the rows are sorted and delivered a "
                     "batch at a time into a result file")
    elif len(plan.tables) > 2:
        lines.append("under a memory budget (Client.query(memory=...), [limits] memory): runs in hash buckets, "
                     "the multi-party PSI per bucket with the same receivers; with more than one bucket the "
                     "first receiver and the last party learn their two sizes in each bucket (only if every "
                     "party's [limits] bucket_psi_sizes allows it); the rows are sorted and delivered a batch "
                     "at a time into a result file")
    lines.append("registry: sql.rows reveals: " + registry.get("sql.rows").reveals)
    return "\n".join(lines)


def _pushdown_steps(plan: Plan, lines: list[str]) -> int:
    """Append the plan's owner-side WHERE steps (one per party that filters) to ``lines``;
    the number of the next step."""
    step = 1
    for t in plan.tables:
        conj = plan.pushdown.get(t.party, [])
        if conj:
            lines.append(f"  {step}. {t.party} (plaintext, its own rows only): keeps the rows of {t.party}.{t.dataset} "
                         f"where {' AND '.join(show(e) for e in conj)}")
            step += 1
    return step
