"""The ``sql.rows`` job: a query without aggregates, whose rows leave as they are.

Policy allows it for ``plaintext`` columns (their owner lets them leave), and, after a
join, for the join keys, which the PSI receivers already learn:

* *One party's table.* Its owner evaluates WHERE (plaintext columns only, checked by the
  parser) on its rows and sends the selected plaintext columns, after ORDER BY / LIMIT,
  to the receivers.
* *Two or three parties' tables.* Each owner keeps the rows its WHERE keeps (plaintext
  columns, :mod:`protocols.sql.pushdown`); an ECDH PSI on the join keys
  (``protocols.jobs.aligned_rows``, :func:`protocols.psi.ecdh_psi`) tells its receivers
  which of their own rows all parties hold, sorted by id so that row i is the same id
  everywhere. The PSI's receivers are ``reveal_to`` (default: every party) and the owners
  of the other plaintext columns the query outputs: such an owner must know which of its
  rows joined to send their values (in id order) to ``reveal_to``, in batches each
  receiver acknowledges (one batch unbucketed). The join keys of the output are the
  receiver's own ids.

Reveals (the registry line below): every party learns the number of distinct ids of each
party after each owner's WHERE (the PSI's sizes); ``reveal_to`` and the owners of output
columns learn which of their own ids all parties hold; ``reveal_to`` gets the output
columns of the joined rows. Nothing else: no column that is not output is read, and
a non-receiver whose columns are not output learns only the sizes. Ids must be unique in
the intersection (the rows are aligned one to one), else the job fails naming the column.

*Under a memory budget* (the job's ``memory`` or ``[limits] memory``, :func:`protocols.bucketed.joint_budget`)
two or three parties' tables run in hash buckets (:func:`_bucketed`), as ``psi.ecdh`` does
(:mod:`protocols.buckets`): each party streams the ids of the rows its WHERE keeps into the
spill files of a joint key; the bucket count comes from the distinct counts (the sizes above)
and the budget; per bucket, on the ids padded to the bucket's public capacity and with the
unbucketed job's receivers, the PSI of the unbucketed job's kind: two parties an OPRF PSI
(:func:`protocols.psi.oprf.oprf_mask`), three the N-party PSI (:mod:`protocols.psi.multiparty`,
leader the first receiver); each bucket's matched row numbers are its checkpoint (a resumed
job skips the buckets every party finished). Each PSI receiver then streams its input again
for its columns of the matched rows and sorts them by id as text, as
:func:`protocols.jobs.aligned_rows` does, on disk (:class:`mpc.tables.SortedRuns`: sorted runs
in 0600 files of the job's checkpoint directory, a k-way merge); the joined rows travel a batch
at a time (:func:`_joined`, with flow control), the result's receivers apply ORDER BY (sorted on
disk by :func:`protocols.sql.result.order_key`, ties in id order, as ``finish``'s stable sort),
LIMIT and the SELECT list a batch at a time and write the result to a Parquet file
(:class:`mpc.tables.ResultWriter`), which the party server moves into its results directory.
So the rows, their order (by id: unlinkable to any input's order) and what is sent are the
unbucketed job's; only LIMIT without ORDER BY sends the first LIMIT rows, not all (bucketed or
not).

What buckets reveal beyond that: two parties, nothing (a receiver knows the key and its
matched ids, so each bucket's intersection size follows from what it learns anyway, and no
``bucket_join_sizes`` consent is needed, as in :mod:`protocols.bucketed_woe`; a non-receiver
serves the OPRF and learns nothing per bucket). Three parties: the N-party PSI's two extra
reveals (the leader: the size of the other parties' intersection; the last party of the ring:
how many ids occur in exactly c of the other parties' sets), which the unbucketed job reveals
once, come per bucket, i.e. for nb pseudo-random parts of the ids whose membership every
party computes for its own ids: more than the unbucketed line, so more than one bucket needs
every party's ``[limits] bucket_psi_sizes`` (as ``psi.ecdh`` of three parties in buckets). A
pairwise OPRF PSI per bucket would avoid them only by showing a receiver its intersection
with each other party, which is more. Nothing else changes: the shufflers see ciphertexts
only, and the parties outside the PSI receivers learn no intersection, per bucket or in all.

In memory, whatever the result's size: one batch of input, one bucket's PSI, a bit per kept
row, and a few batches of joined rows (:func:`batch_rows`: an eighth of the budget at about 64
bytes a cell) with one row group of each of up to 16 runs being merged. The client's fetch
streams the result file (as a bucketed ``psi.ecdh``'s). One party's table under a budget needs
no PSI: its owner streams its rows, finishes them into a result file the same way and sends it
to the other receivers in acknowledged batches (:func:`_single_streamed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime.context import Context
from mpc.tables import ResultFile, ResultWriter, SortedRuns, rebatch
from protocols.bucketed import WHOLE_INPUT_COSTS, joint_budget, refuse_over_budget
from protocols.jobs import MEMORY, N_PARTY_PSI, REVEAL_TO, aligned_rows
from protocols.psi.oprf import oprf_mask
from protocols.registry import ColumnRef, LocalData, Param, ProtocolSpec, register
from protocols.sql import pushdown
from protocols.sql.local import recv_table, send_table
from protocols.sql.plan import Plan
from protocols.sql.result import finish, order_key
from protocols.stats._common import receivers


def senders(plan: Plan) -> list[str]:
    """The parties whose output columns (other than join keys) travel to the receivers."""
    keys = {t.key_ref for t in plan.tables}
    return sorted({ref.split(".", 1)[0] for _, ref in plan.rows if ref not in keys})


def psi_receivers(plan: Plan, reveal_to: str | None) -> list[str]:
    """Who learns which of its own rows joined: the result's receivers and the senders."""
    to = plan.parties if reveal_to is None else [reveal_to]
    return [p for p in plan.parties if p in to or p in senders(plan)]


def _values(values: Any) -> pd.Series:
    return pd.Series(list(values) if not isinstance(values, np.ndarray) else values).reset_index(drop=True)


def _single(ctx: Context, plan: Plan, params: dict[str, Any], data: LocalData) -> pd.DataFrame | None:
    owner = plan.tables[0].party
    to = receivers(ctx, params.get("reveal_to"))
    if ctx.party != owner:
        if ctx.party not in to:
            return None
        got = recv_table(ctx, owner)
        return pd.DataFrame({c: _values(got[c].tolist()) for c in got.columns})
    view = pushdown.kept(ctx, plan, data)
    frame = pd.DataFrame({name: _values(view.column(ColumnRef.parse(ref))) for name, ref in plan.rows})
    result = finish(plan, frame)
    send_table(ctx, result, to)
    return result if ctx.party in to else None


def _single_streamed(ctx: Context, plan: Plan, params: dict[str, Any], data: LocalData,
                     memory: int) -> ResultFile | None:
    """One party's table under a memory budget: its owner streams the rows a batch at a time,
    keeps those its WHERE keeps and finishes them into its result file as the bucketed job
    does (:func:`_write_result`: ORDER BY sorted on disk, ties in input order, as ``finish``'s
    stable sort; LIMIT; the SELECT list); then it sends the result to the other receivers in
    acknowledged batches (first its row count, which they get anyway), and each writes the
    same rows to its own result file. The unbucketed job's result, in its order."""
    from protocols.bucketed import _checkpoint, _start
    from protocols.sql.job import plan_uses

    owner = plan.tables[0].party
    to = receivers(ctx, params.get("reveal_to"))
    reads = sorted({u.ref for u in plan_uses(plan) if u.ref.party == ctx.party}, key=str)
    store = _checkpoint(ctx, "sql.rows", params, data, reads, memory)
    _start(ctx, store)
    step = batch_rows(memory, len(plan.rows))
    peers = [p for p in to if p != ctx.party]
    if ctx.party == owner:
        conjuncts = plan.pushdown.get(owner, [])

        def kept() -> Iterator[pd.DataFrame]:
            for b in data.batches(reads):
                n = len(next(iter(b.values())))
                keep = pushdown.mask_of(conjuncts, lambda r, b=b: b[ColumnRef.parse(r).column], n)
                rows = np.arange(n) if keep is None else np.flatnonzero(keep)
                yield pd.DataFrame({name: _values(np.asarray(b[ColumnRef.parse(ref).column])[rows])
                                    for name, ref in plan.rows})

        result = _write_result(plan, kept(), store, step)
        ctx.report_progress(phase="sql: the result to its receivers")
        for p in peers:
            ctx.send(p, result.rows)
        frames = rebatch(_parquet_batches(result, step), step, result.columns)
        for i, frame in enumerate(frames if peers and result.rows else ()):
            send_table(ctx, frame, peers)
            if i >= 1:
                _acks(ctx, peers, i - 1)
        if peers and result.rows:
            _acks(ctx, peers, -(-result.rows // step) - 1)
        return result if ctx.party in to else None
    if ctx.party not in to:
        return None
    rows = ctx.recv(owner)
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        raise ValueError(f"party {owner!r} sent a malformed row count")
    out = ResultWriter(store.path("result.parquet"))
    try:
        for i in range(-(-rows // step)):
            frame = recv_table(ctx, owner, rows=min(step, rows - i * step))
            ctx.send(owner, i)
            if list(frame.columns) != list(plan.outputs):
                raise ValueError(f"party {owner!r} sent columns {list(frame.columns)}, not {list(plan.outputs)}")
            out.write(frame)
    except BaseException:
        out.abort()
        raise
    return out.close(pd.DataFrame({name: pd.Series([], dtype=object) for name in plan.outputs}))


def _parquet_batches(result: ResultFile, step: int) -> Iterator[pd.DataFrame]:
    """A result file's rows, ``step`` at a time."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(result.path) as f:
        for batch in f.iter_batches(batch_size=step):
            yield batch.to_pandas()


def _acks(ctx: Context, peers: list[str], i: int) -> None:
    """Every peer's acknowledgement of batch ``i``."""
    for p in peers:
        got = ctx.recv(p)
        if got != i or isinstance(got, bool):
            raise ValueError(f"party {p!r} sent a malformed acknowledgement of batch {i}")


def _run(ctx: Context, params: dict[str, Any], data: LocalData) -> pd.DataFrame | ResultFile | None:
    from protocols.sql.job import plan_uses

    plan = Plan.from_params(params["plan"])
    memory = joint_budget(ctx, params, data)
    if memory is not None and len(plan.tables) >= 2:    # a PSI per hash bucket, the rows sorted on disk
        return _bucketed(ctx, plan, params, data, memory)
    if memory is not None:                              # one table: its rows streamed, sorted on disk
        return _single_streamed(ctx, plan, params, data, memory)
    refuse_over_budget(ctx, params, data, [u.ref for u in plan_uses(plan)], "sql.rows", WHOLE_INPUT_COSTS["ecdh"])
    if len(plan.tables) == 1:
        return _single(ctx, plan, params, data)
    to = receivers(ctx, params.get("reveal_to"))
    ctx.report_progress(phase="sql: pushdown")
    view = pushdown.kept(ctx, plan, data)
    ctx.report_progress(phase="sql: PSI")
    rows = aligned_rows(ctx, {"ids": plan.ids}, view, receivers=psi_receivers(plan, params.get("reveal_to")))
    if rows is None:
        return None
    n = _delivered(plan, len(rows))
    own = pd.DataFrame({ref: _values(view.column(ColumnRef.parse(ref))).iloc[rows[:n]].reset_index(drop=True)
                        for ref in _own_refs(ctx, plan)})
    frames = [f for f in _joined(ctx, plan, to, [own]) if f is not None]
    if ctx.party not in to:
        return None
    frame = frames[0]
    frame.attrs["rows"] = len(rows)
    return finish(plan, frame)


def _own_refs(ctx: Context, plan: Plan) -> list[str]:
    """This party's columns of the joined rows the job reads: its join key, then its output columns."""
    me = next(t for t in plan.tables if t.party == ctx.party)
    return list(dict.fromkeys([me.key_ref] + [ref for _, ref in plan.rows if ref.split(".", 1)[0] == ctx.party]))


def _delivered(plan: Plan, n: int) -> int:
    """How many of the n joined rows (in id order) travel: all, but the first LIMIT without ORDER BY."""
    return n if plan.limit is None or plan.order_by else min(n, plan.limit)


def _joined(ctx: Context, plan: Plan, to: list[str], own: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame | None]:
    """After the PSI, a batch at a time: ``own`` yields this party's columns (:func:`_own_refs`)
    of the joined rows in id order, in batches every PSI receiver cuts alike (the same sizes);
    per batch a sender sends its output columns to ``to``, and a receiver yields the batch of
    the result's rows (output names, before ORDER BY / LIMIT) with the senders' columns; a
    party not in ``to`` yields None per batch. Flow control: a receiver acknowledges each
    batch (its number) and a sender, having sent batch i + 1, waits for batch i's
    acknowledgements before it goes on, so at most two batches of a sender are in flight to a
    receiver, however many rows."""
    keys = {t.key_ref for t in plan.tables}
    me = next(t for t in plan.tables if t.party == ctx.party)
    mine = [ref for _, ref in plan.rows if ref not in keys and ref.split(".", 1)[0] == ctx.party]
    peers = [p for p in to if p != ctx.party]
    sent = 0
    for i, batch in enumerate(own):
        if mine:        # a sender: its output columns of the joined rows, in id order
            send_table(ctx, pd.DataFrame({ref: batch[ref] for ref in dict.fromkeys(mine)}), to)
            sent = i + 1
            if i >= 1:
                _acks(ctx, peers, i - 1)
        if ctx.party not in to:
            yield None
            continue
        got: dict[str, pd.Series] = {}
        for s in senders(plan):
            if s != ctx.party:
                table = recv_table(ctx, s, rows=len(batch))
                ctx.send(s, i)          # acknowledged: the sender may send batch i + 2
                wanted = {ref for _, ref in plan.rows if ref.split(".", 1)[0] == s and ref not in keys}
                if set(table.columns) != wanted:
                    raise ValueError(f"party {s!r} sent columns {sorted(table.columns)}, not {sorted(wanted)}")
                got.update({c: _values(table[c].to_numpy() if table[c].dtype.kind in "biuf" else table[c].tolist())
                            for c in table.columns})
        yield pd.DataFrame({name: batch[me.key_ref] if ref in keys else
                            (batch[ref] if ref.split(".", 1)[0] == ctx.party else got[ref])
                            for name, ref in plan.rows})
    if mine and sent:
        _acks(ctx, peers, sent - 1)


def batch_rows(memory: int, columns: int) -> int:
    """Rows of one batch of the joined rows (sorted runs, delivery, result writing) under a
    ``memory`` budget: an eighth of it at about 64 bytes a cell (a power of two, 2^12 to 2^20)."""
    rows = (memory // 8) // (64 * (columns + 1))
    return 1 << min(20, max(12, int(rows).bit_length() - 1))


def _bucketed(ctx: Context, plan: Plan, params: dict[str, Any], data: LocalData,
              memory: int) -> ResultFile | None:
    """Two or three parties' tables under a memory budget: each party streams the ids of the
    rows its WHERE keeps into hash buckets (:func:`protocols.buckets.spill`); per bucket the
    PSI of the unbucketed job with its receivers (two parties: the OPRF PSI,
    :func:`protocols.psi.oprf.oprf_mask`; three: the N-party PSI, :mod:`protocols.psi.multiparty`),
    each bucket's matched row numbers its checkpoint; then each PSI receiver streams its input
    once more for its columns of the matched rows and sorts them by id as text on disk
    (:class:`mpc.tables.SortedRuns`), as :func:`protocols.jobs.aligned_rows` sorts them: row i
    is the same id at every party. The joined rows travel and are finished a batch at a time
    (:func:`_joined`, :func:`_write_result`) into a result file: the unbucketed job's rows, in
    its order."""
    from protocols import buckets
    from protocols.bucketed import RowBits, _checkpoint, _consent, _plan, _start, bucket_hits
    from protocols.psi import multiparty
    from protocols.psi.common import DEFAULT_COMPARE_BYTES, check_receivers
    from protocols.psi.oprf import capacity
    from protocols.sql.job import plan_uses

    to = receivers(ctx, params.get("reveal_to"))
    psi_to = check_receivers(ctx, psi_receivers(plan, params.get("reveal_to")))
    me = next(t for t in plan.tables if t.party == ctx.party)
    key = ColumnRef.parse(me.key_ref)
    reads = [key] + sorted({u.ref for u in plan_uses(plan) if u.ref.party == ctx.party} - {key}, key=str)
    conjuncts = plan.pushdown.get(ctx.party, [])
    store = _checkpoint(ctx, "sql.rows", params, data, reads, memory)
    done = _start(ctx, store)
    many = len(ctx.parties) > 2

    def kept():          # (batch, indices of the rows the WHERE keeps)
        for b in data.batches(reads):
            n = len(b[key.column])
            keep = pushdown.mask_of(conjuncts, lambda r, b=b: b[ColumnRef.parse(r).column], n)
            yield b, (np.arange(n) if keep is None else np.flatnonzero(keep))

    sp, _, kind = buckets.spill(ctx, store, lambda: ((np.asarray(b[key.column])[i], None) for b, i in kept()), 0)
    m = int(sum(store.state["counts"]))
    sizes, nb = _plan(ctx, store, "bucketed_sql_rows", kind, m, memory, "ecdh" if many else "psi",
                      {"receivers": psi_to})
    if many:
        _consent(ctx, data, nb, "bucket_psi_sizes",
                 "sql.rows of 3 tables under this memory budget needs {nb} buckets, and then the first PSI receiver "
                 "learns the size of the other parties' intersection in each bucket and the last party their "
                 "multiplicity histogram in each bucket")
    cap = capacity(sizes[ctx.party], nb)

    def mask_of(padded: np.ndarray) -> np.ndarray | None:
        if many:
            return multiparty.run(ctx, buckets.block_digests(padded), psi_to[0], psi_to, False,
                                  DEFAULT_COMPARE_BYTES)
        return oprf_mask(ctx, kind, padded, psi_to)

    def work(b: int, first: int, count: int) -> dict[str, np.ndarray]:
        rec = sp.read(first, count)
        hit = bucket_hits(ctx, rec, cap, b, mask_of, key)
        if hit is None:             # not a PSI receiver: learns nothing of the bucket
            return {"rows": np.zeros(0, dtype=np.int64)}
        return {"rows": rec["row"][hit].astype(np.int64)}

    ctx.report_progress(phase="sql: PSI per bucket")
    matched = RowBits(int(store.state["rows"]))
    for _, r in buckets.run_buckets(ctx, store, nb, done, work):
        matched.set(r["rows"])
    if ctx.party not in psi_to:
        return None
    ctx.report_progress(phase="sql: the joined rows, sorted by id")
    wanted = _own_refs(ctx, plan)
    step = batch_rows(memory, len(plan.rows) + 1)
    runs = SortedRuns(store.path("sort-ids"), step)
    start = 0
    for b, idx in kept():          # the kept rows numbered as the spill numbered them
        hit = idx[matched.rows(start, start + len(idx)) - start]
        part = pd.DataFrame({r: np.asarray(b[ColumnRef.parse(r).column])[hit] for r in wanted})
        ids = np.empty(len(part), dtype=object)
        ids[:] = [str(v) for v in part[me.key_ref].tolist()]      # by id as text, as aligned_rows
        runs.add(part, ids)
        start += len(idx)
        del b, part
    n = _delivered(plan, runs.rows)
    ctx.report_progress(phase="sql: the joined rows, a batch at a time")
    frames = _joined(ctx, plan, to, rebatch(_head(runs.merged(), n), step, wanted))
    if ctx.party not in to:
        for _ in frames:
            pass
        return None
    return _write_result(plan, frames, store, step)


def _head(frames: Iterable[pd.DataFrame], n: int) -> Iterator[pd.DataFrame]:
    """The first n rows of ``frames`` (all of them read, so the sorted runs are removed)."""
    for frame in frames:
        take = frame.iloc[:max(n, 0)]
        n -= len(take)
        if len(take):
            yield take


def _write_result(plan: Plan, frames: Iterable[pd.DataFrame], store: Any, step: int) -> ResultFile:
    """The result's rows (batches of :func:`_joined`) finished as :func:`protocols.sql.result.finish`
    finishes them (ORDER BY: sorted on disk by :func:`protocols.sql.result.order_key`, ties in id
    order; LIMIT; the SELECT list), written to the job's result file a batch at a time."""
    out = ResultWriter(store.path("result.parquet"))
    try:
        if plan.order_by:
            runs = SortedRuns(store.path("sort-result"), step)
            for frame in frames:
                runs.add(frame, order_key(frame, plan.order_by))
            frames = rebatch(runs.merged(), step, [name for name, _ in plan.rows])
        left = plan.limit
        for frame in frames:
            if left is not None:
                frame = frame.iloc[:left]
                left -= len(frame)
            out.write(frame[list(plan.outputs)].reset_index(drop=True))
    except BaseException:
        out.abort()
        raise
    return out.close(pd.DataFrame({name: pd.Series([], dtype=object) for name in plan.outputs}))


def _uses(params: dict[str, Any]):
    from protocols.sql.job import plan_uses

    plan = Plan.from_params(params["plan"])
    if not plan.is_rows or plan.aggregates or plan.group_by or plan.secret_filter is not None or plan.having:
        raise ValueError("sql.rows runs a plan of row-level output only (plan.rows, no aggregates, groups, "
                         "HAVING or filter on shares); aggregates run as sql.aggregate")
    return plan_uses(plan)


register(ProtocolSpec(
    name="sql.rows",
    doc="A SQL query without aggregates (Client.query / gaotie query): plaintext columns of one party's "
        "table, or join keys and plaintext columns of the rows two or three parties' tables share "
        "(owner-side WHERE, then ECDH PSI on the join keys).",
    reveals="every party: the number of distinct ids of each party after each owner's plaintext WHERE; "
            "reveal_to (default: all) and every party whose plaintext columns are output: which of their own "
            "ids all parties hold; reveal_to: the output columns (join keys, plaintext columns) of the joined "
            "rows" + N_PARTY_PSI + ". One party's table: its owner sends the selected plaintext columns of "
            "the rows its WHERE keeps to the receivers. Under a memory budget, two or three parties' tables "
            "run a PSI per hash bucket with the same receivers and reveal the same, except that with three "
            "parties the first receiver's and the last party's two sizes come per bucket (refused unless every "
            "party's [limits] bucket_psi_sizes allows it)",
    params={"sql": Param(str, doc="the SQL text (recorded in the audit log)"),
            "plan": Param(dict, doc="the plan protocols.sql.parse made of it"),
            "parties": Param(list, required=False, default=None,
                             doc="one party's table: the parties of the job (its owner and the requester)"),
            "reveal_to": REVEAL_TO, "memory": MEMORY},
    uses=_uses,
    extra_parties=lambda params: list(params.get("parties") or []),
    run=_run,
))
