"""Bucketed PSI and private join for party servers: bounded memory, per-bucket checkpoints.

The registry's ``psi.ecdh`` (two parties, OPRF) and ``join.stats`` run here when the
party has a memory budget (``[limits] memory`` or the job's ``memory`` parameter): the
input is streamed into hash buckets on disk and the protocol runs once per bucket
(:mod:`protocols.buckets` says how, and what that reveals). Each finished bucket is saved
in the server's work directory (:class:`mpc.runtime.checkpoint.Checkpoint`), so the same
job submitted again after a restart skips the buckets both parties finished.

The data object of a party server provides ``batches(refs)`` (a stream of row batches),
``fingerprint(dataset)`` (SHA-256 of the file), ``workdir`` and ``memory``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mpc.runtime import allocator
from mpc.runtime.checkpoint import DIRECTORY, Checkpoint, job_key
from mpc.runtime.context import Context
from mpc.runtime.errors import DataError
from mpc.tables import ResultFile, ResultWriter
from protocols import buckets
from protocols.psi.common import check_receivers, exchange_header
from protocols.psi.ecdh import ecdh_mask
from protocols.psi.oprf import capacity, oprf_mask
from protocols.registry import ColumnRef, LocalData, numeric


def budget(params: dict[str, Any], data: LocalData) -> int | None:
    """The job's memory budget in bytes: the smaller of the job's ``memory`` parameter and
    the server's ``[limits] memory``; None when neither is set (the unbucketed path)."""
    given = [buckets.parse_bytes(params["memory"], "parameter 'memory'")] if params.get("memory") else []
    server = getattr(data, "memory", None)
    if server:
        given.append(int(server))
    return min(given) if given else None


def joint_budget(ctx: Context, params: dict[str, Any], data: LocalData) -> int | None:
    """The job's memory budget agreed by all parties: the smallest :func:`budget` of any
    party (a server's ``[limits] memory`` binds every party of its jobs), None when no party
    has one. Every party runs the bucketed path or none does (one gather)."""
    budgets = ctx.gather(budget(params, data))
    for p, b in zip(ctx.parties, budgets, strict=True):
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or b <= 0):
            raise ValueError(f"party {p!r} sent a malformed memory budget")
    given = [b for b in budgets if b is not None]
    return min(given) if given else None


def _checkpoint(ctx: Context, protocol: str, params: dict[str, Any], data: LocalData,
                refs: list[ColumnRef], memory: int) -> Checkpoint:
    workdir = getattr(data, "workdir", None)
    if workdir is None:
        raise DataError(f"party {ctx.party!r}: a bucketed job needs the server's work directory")
    inputs = {r.dataset: data.fingerprint(r.dataset) for r in refs}
    ident = {"protocol": protocol, "params": params, "parties": ctx.parties, "inputs": inputs,
             "memory": memory}
    store = Checkpoint(workdir / DIRECTORY, job_key(protocol, {**params, "memory": memory}, ctx.parties, inputs),
                       {**ident, "job_id": ctx.job_id})
    ctx.state["checkpoint"] = store      # removed by the server once the result is written
    return store


def _start(ctx: Context, store: Checkpoint) -> set[int]:
    """Agree with the peer on resuming; a checkpoint the peer does not share is emptied."""
    done = buckets.agree(ctx, store)
    if done is None:
        if store.state.get("spilled") or store.done:
            store.forget(store.done)
            store.set_state(spilled=False)
        store.drop_values()                         # a Paillier pass over the old buckets: void
        done = set()
    ctx.state["resumed_buckets"] = sorted(done)     # the server's audit log records them
    return done


# -- resumable Paillier passes (stats.woe_iv, psi.intersection_sum in buckets) ---------------------
# One party (the key owner) encrypts per bucket under its own key; the other adds the buckets'
# ciphertexts to running sums. To resume that pass, the key owner keeps its key pair in its
# checkpoint and the adder keeps its sums with the number of buckets they cover; the adder
# tells the owner where to go on (``_sums_resume`` / ``_sums_start``), both skip those buckets.
#
# Stored, not derived from a stored seed: a seed that regenerates the key is exactly as secret
# as the key (whoever reads one has the other), and deriving would need a second, deterministic
# prime search and DJN base to keep in step with generate_keypair; storing reuses the generator
# as it is. The pair is the party's own secret, never sent: it goes only to its own checkpoint
# (directory 0700, file 0600, codec encoding, no pickle), which holds its own input anyway and
# is removed with the checkpoint (the result written, or swept after [limits]
# checkpoint_retention). The adder's sums are ciphertexts under the peer's key, as it holds
# them in memory.
KEY = "paillier-key"
SUMS = "paillier-sums"


def _own_keypair(store: Checkpoint, key_bits: int) -> tuple[Any, Any]:
    """The party's Paillier key pair for the job: the one its checkpoint holds (a resumed job),
    else a fresh one, saved before its public key is sent."""
    from mpc.paillier import PrivateKey, PublicKey, generate_keypair

    saved = store.load_value(KEY)
    if isinstance(saved, dict) and isinstance(saved.get("public"), PublicKey) and \
            saved["public"].n_bits == key_bits and isinstance(saved.get("p"), int) and isinstance(saved.get("q"), int):
        try:
            return saved["public"], PrivateKey(saved["public"], saved["p"], saved["q"])
        except ValueError:
            pass
    pk, sk = generate_keypair(key_bits, insecure=key_bits < 2048)
    store.save_value(KEY, {"public": pk, "p": int(sk.p), "q": int(sk.q)})
    return pk, sk


def _sums_resume(ctx: Context, store: Checkpoint, owner: str, pk: Any, nb: int,
                 fits: Callable[[Any], bool]) -> tuple[int, Any]:
    """At the party adding ciphertexts under ``owner``'s key ``pk``: (buckets its saved sums
    cover, the saved value) if they were made under ``pk`` over this checkpoint's buckets and
    ``fits(value)``, else (0, None); ``owner`` is told the first bucket to send."""
    saved = store.load_value(SUMS)
    ok = isinstance(saved, dict) and saved.get("key") == pk and saved.get("buckets") == store.state.get("key") \
        and isinstance(saved.get("done"), int) and 0 <= saved["done"] <= nb and fits(saved.get("value"))
    start = saved["done"] if ok else 0
    ctx.send(owner, start)
    ctx.state["resumed_paillier_buckets"] = start     # the server's audit log records it
    return start, (saved["value"] if ok else None)


def _sums_save(store: Checkpoint, pk: Any, done: int, value: Any) -> None:
    """Save the running sums after ``done`` buckets (``value``: codec values, the sums as
    EncryptedVectors, which the codec checks on load as it does a peer's)."""
    store.save_value(SUMS, {"key": pk, "buckets": store.state.get("key"), "done": done, "value": value})
    store.set_state(paillier_done=done)


def _sums_start(ctx: Context, adder: str, nb: int) -> int:
    """At the key owner: the first bucket ``adder`` has not added (0 for a fresh pass)."""
    start = ctx.recv(adder)
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= nb:
        raise ValueError(f"party {adder!r} sent a malformed resume point of the Paillier pass")
    ctx.state["resumed_paillier_buckets"] = start
    return start


def _unique_ids(store: Checkpoint, ref: ColumnRef) -> int:
    """The distinct ids the spill counted, refusing repeated ones (the private join's rule)."""
    m = int(sum(store.state["counts"]))
    if m != store.state["rows"]:
        raise ValueError(f"ids must be unique for private_join: column {ref} holds {store.state['rows'] - m} "
                         "repeated ids (aggregate duplicates first)")
    return m


def scaled_values(rec: np.ndarray, shifts: list[int], bounds: list[int | None] | None = None) -> np.ndarray:
    """(records, columns) int64: each value column of spill records ``rec`` scaled to an
    integer by its bucket-wide ``shifts``, clipped below its published bound (``bounds``:
    |X| < 2^bound, as ``scaling.scaled``) -- the integers the bucket's join shares."""
    from protocols.stats.scaling import scaled

    out = np.empty((len(rec), len(shifts)), dtype=np.int64)
    for j, shift in enumerate(shifts):
        bound = None if bounds is None else bounds[j]
        out[:, j] = (np.round(np.ldexp(rec["v"][:, j], shift)).astype(np.int64) if bound is None
                     else scaled(rec["v"][:, j], shift, int(bound)))
    return out


def join_bucket(ctx: Context, sp: buckets.Spill, b: int, first: int, count: int, cap: int,
                names: list[str], shifts: list[int], method: str, bounds: list[int | None] | None = None,
                ranks: Any = None, rank_rows: int = 0) -> Any:
    """The private join of bucket ``b`` (spill records first:first + count): its distinct ids
    padded to ``cap`` blocks, each value column as :func:`scaled_values` (dummies 0). With
    ``ranks`` (:class:`protocols.bucketed_ranks.Ranks` of this spill, ranks among
    ``rank_rows`` records), every column's owner ranks in its whole column ride along
    (``private_join`` with a ranks mapping; dummies 0). Returns the joined SharedTable."""
    from protocols.psi.private_join import private_join

    rec = sp.read(first, count)
    padded, inverse = buckets.padded_bucket(ctx, rec["w"], cap, b)
    vals = scaled_values(rec, shifts, bounds)
    cols = {}
    for j, name in enumerate(names):
        cols[name] = np.zeros(cap, dtype=np.int64)
        cols[name][inverse] = vals[:, j]
    if ranks is None:
        return private_join(ctx, buckets.block_ids(padded), cols, method=method)
    held = ranks.read(sp, first, count)
    if len(held) != len(rec):
        raise ValueError(f"party {ctx.party!r}: bucket {b} has {len(rec)} records and {len(held)} ranks")
    given = {}
    for j, name in enumerate(names):
        given[name] = np.zeros(cap, dtype=np.uint64)
        given[name][inverse] = held[:, j]
    return private_join(ctx, buckets.block_ids(padded), cols, method=method, ranks=given, rank_rows=rank_rows)


def _plan(ctx: Context, store: Checkpoint, protocol: str, kind: str, m: int, memory: int, cost: str,
          params: dict[str, Any], extra: int = 0) -> tuple[dict[str, int], int]:
    """Distinct-set sizes of both parties and the number of buckets (the smaller budget wins;
    ``extra`` bytes per row on top of the ``cost`` kind's, "join" the circuit join's when
    ``params["join"]`` resolves to it; each party charges its own executor's overhead),
    checked against and recorded in the job's checkpoint (a resumed job must cut the same
    buckets)."""
    from protocols.psi.private_join import resolve_method

    if cost == "join" and resolve_method(ctx, params["join"]) == "circuit":
        cost = "circuit"
    headers = exchange_header(ctx, protocol, kind, m, params)
    sizes = {p: h["size"] for p, h in zip(ctx.parties, headers, strict=True)}
    rows = min(ctx.gather(buckets.bucket_rows(memory, cost, extra, ctx.executor.overhead)))
    if not isinstance(rows, int) or rows < 1:
        raise ValueError(f"party {ctx.peers[0]!r} sent a malformed bucket size")
    nb = buckets.plan(list(sizes.values()), rows)
    if store.state.get("nb", nb) != nb:
        raise ValueError(f"party {ctx.party!r}: the checkpoint has {store.state['nb']} buckets, this run {nb}")
    store.set_state(nb=nb)
    return sizes, nb


_STRING = pd.StringDtype("pyarrow", na_value=np.nan)
PHASE_RANKS = "buckets: each column's ranks in the whole column (describe)"


def _text(parts: list[np.ndarray]) -> Any:
    """Matched ids as text, as the unbucketed job gives them (integers through Arrow)."""
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=object)
    if ids.dtype.kind in "iu":
        import pyarrow as pa
        return pd.Series(pa.array(ids).cast(pa.string()), dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    return [str(v) for v in ids.tolist()]


def psi(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef, memory: int,
        method: str = "oprf") -> ResultFile | None:
    """``psi.ecdh`` between two parties in buckets (``method`` "oprf" or "ecdh" per bucket):
    receivers get (id as text, row) of their rows whose id the other party holds, in row
    order, as a Parquet file written a batch of input rows at a time (the matched rows kept
    as one bit per input row meanwhile, never the intersection itself); others None."""
    if len(ctx.parties) != 2:
        raise ValueError("a bucketed PSI runs between exactly 2 parties")
    receivers = check_receivers(ctx, params.get("receivers") or None)
    store = _checkpoint(ctx, "psi.ecdh", params, data, [ref], memory)
    done = _start(ctx, store)
    sp, _, kind = buckets.spill(ctx, store, lambda: ((b[ref.column], None) for b in data.batches([ref])), 0)
    m = int(sum(store.state["counts"]))
    sizes, nb = _plan(ctx, store, "bucketed_psi", kind, m, memory, "psi" if method == "oprf" else "ecdh",
                      {"receivers": receivers, "method": method})

    def mask_of(padded: np.ndarray) -> np.ndarray | None:
        if method == "oprf":
            return oprf_mask(ctx, kind, padded, receivers)
        # ECDH on digests of the blocks (both parties encode ids alike; dummies stay random)
        return ecdh_mask(ctx, kind, buckets.block_digests(padded), receivers)

    return _psi_buckets(ctx, store, data, ref, sp, nb, done, capacity(sizes[ctx.party], nb), receivers, mask_of)


def bucket_hits(ctx: Context, rec: dict[str, np.ndarray], cap: int, b: int,
                mask_of: Callable[[np.ndarray], np.ndarray | None], column: Any = None) -> np.ndarray | None:
    """The positions in bucket ``b``'s spilled records ``rec`` whose id the peer holds: the
    bucket's distinct ids padded to ``cap`` blocks and ``mask_of(padded)``, the match of each
    block (None where this party receives nothing: then None). With ``column``, an id that
    matches on two rows is refused, naming the column (jobs that need unique ids)."""
    padded, inverse = buckets.padded_bucket(ctx, rec["w"], cap, b)
    mask = mask_of(padded)
    if mask is None:
        return None
    hit = np.flatnonzero(mask[inverse])
    if column is not None and len(np.unique(inverse[hit])) != len(hit):
        raise ValueError(f"column {column} has duplicate ids in the intersection; this job needs unique ids")
    return hit


def _psi_buckets(ctx: Context, store: Checkpoint, data: LocalData, ref: ColumnRef, sp: buckets.Spill, nb: int,
                 done: set[int], cap: int, receivers: list[str],
                 mask_of: Callable[[np.ndarray], np.ndarray | None]) -> ResultFile | None:
    """The buckets of a PSI job: per bucket its distinct ids padded to ``cap`` blocks and
    ``mask_of(padded)`` (the match of each block, None where this party receives nothing);
    the matched input rows gathered as one bit per row, then written (:func:`_write_matches`)
    by every receiver."""
    def work(b: int, first: int, count: int) -> dict[str, np.ndarray]:
        rec = sp.read(first, count)
        hit = bucket_hits(ctx, rec, cap, b, mask_of)
        rows = rec["row"][hit] if hit is not None else np.zeros(0, dtype=np.int64)
        return {"rows": rows.astype(np.int64)}

    matched = RowBits(int(store.state["rows"]))
    for _, r in buckets.run_buckets(ctx, store, nb, done, work):
        matched.set(r["rows"])
    ctx.report_progress(1.0)
    return _write_matches(store, data, ref, matched) if ctx.party in receivers else None


def _write_matches(store: Checkpoint, data: LocalData, ref: ColumnRef, matched: RowBits) -> ResultFile:
    """The matched rows (id as text, row), in row order, to a Parquet file a batch at a time:
    the input streamed once more for the ids of the rows ``matched`` holds."""
    out = ResultWriter(store.path("result.parquet"))
    start = 0
    for batch in data.batches([ref]):
        ids = batch[ref.column]
        rows = matched.rows(start, start + len(ids))
        text = pd.Series(_text([ids[rows - start]]), dtype=_STRING)     # one Arrow string type throughout
        out.write(pd.DataFrame({ref.column: text, "row": rows}))
        start += len(ids)
    return out.close(pd.DataFrame({ref.column: pd.Series([], dtype=_STRING), "row": np.zeros(0, dtype=np.int64)}))


def psi_parties(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef,
                memory: int) -> ResultFile | None:
    """``psi.ecdh`` among three or more parties in buckets: the N-party ECDH PSI
    (:mod:`protocols.psi.multiparty`) once per bucket on ids padded to the bucket's public
    capacity. Receivers get a result file like :func:`psi`'s.

    Per bucket the leader learns the size of the non-leader intersection and the mixer the
    multiplicity histogram of the non-leader sets (the N-party protocol's two extra reveals),
    for nb pseudo-random parts of the ids whose membership every party can compute for its
    own ids: more than the one total of the unbucketed run, so nb > 1 needs every party's
    ``[limits] bucket_psi_sizes`` (:func:`_consent`). The padding dummies are random
    16-byte blocks: each occurs in one set only, so they never enter an intersection and
    count as singletons in the mixer's histogram (whose total per bucket is the public sum
    of the capacities)."""
    from protocols.psi import multiparty
    from protocols.psi.common import DEFAULT_COMPARE_BYTES

    receivers = check_receivers(ctx, params.get("receivers") or None)
    store = _checkpoint(ctx, "psi.ecdh", params, data, [ref], memory)
    done = _start(ctx, store)
    sp, _, kind = buckets.spill(ctx, store, lambda: ((b[ref.column], None) for b in data.batches([ref])), 0)
    m = int(sum(store.state["counts"]))
    sizes, nb = _plan(ctx, store, "bucketed_psi_parties", kind, m, memory, "ecdh", {"receivers": receivers})
    _consent(ctx, data, nb, "bucket_psi_sizes",
             "psi.ecdh among 3 or more parties under this memory budget needs {nb} buckets, and then the first "
             "receiver learns the size of the other parties' intersection in each bucket and the last party "
             "their multiplicity histogram in each bucket")
    return _psi_buckets(ctx, store, data, ref, sp, nb, done, capacity(sizes[ctx.party], nb), receivers,
                        lambda padded: multiparty.run(ctx, buckets.block_digests(padded), receivers[0], receivers,
                                                      False, DEFAULT_COMPARE_BYTES))


def _consent(ctx: Context, data: LocalData, nb: int, key: str, what: str) -> None:
    """Refuse a job in ``nb`` > 1 buckets unless every party's ``[limits] <key>`` allows the
    per-bucket reveal ``what`` describes."""
    if nb <= 1:
        return
    consents = ctx.gather(bool(getattr(data, key, False)))
    refusing = [p for p, ok in zip(ctx.parties, consents, strict=True) if ok is not True]
    if refusing:
        raise DataError(f"{what.format(nb=nb)}; party {refusing[0]!r} does not allow it (its party.toml: "
                        f"[limits] {key} = true), so raise the memory budget or ask it to")


class RowBits:
    """A set of row numbers 0..n-1 as n bits (n/8 bytes: a 2^24-row input's matches in 2 MiB,
    where the matched row numbers would take 8 bytes each)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.bits = np.zeros((n + 7) // 8, dtype=np.uint8)

    def set(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        np.bitwise_or.at(self.bits, rows >> 3, np.left_shift(1, rows & 7).astype(np.uint8))

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """The rows of the set in [lo, hi), ascending."""
        first = lo >> 3
        flags = np.unpackbits(self.bits[first:(hi + 7) >> 3], bitorder="little")
        return (np.nonzero(flags[lo - 8 * first:hi - 8 * first])[0] + lo).astype(np.int64)


def _consent_to_bucket_sizes(ctx: Context, data: LocalData, nb: int, job: str = "join.stats") -> None:
    """Refuse a join in ``nb`` > 1 buckets unless every party's ``[limits]
    bucket_join_sizes`` allows it: each bucket's join opens its joined-row count, the sizes
    of nb pseudo-random parts of the intersection whose membership both parties can compute
    for their own ids, which is more than the unbucketed join's one count. A requester
    choosing a small ``memory`` must not buy that reveal without the owners' consent."""
    if nb <= 1:
        return
    consents = ctx.gather(bool(getattr(data, "bucket_join_sizes", False)))
    refusing = [p for p, ok in zip(ctx.parties, consents, strict=True) if ok is not True]
    if refusing:
        raise DataError(
            f"{job} under this memory budget needs {nb} buckets, and a bucketed join reveals the "
            f"number of joined rows in each bucket; party {refusing[0]!r} does not allow it "
            "(its party.toml: [limits] bucket_join_sizes = true), so raise the memory budget or ask it to")


def join(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef, values: list[ColumnRef],
         memory: int) -> tuple[int, dict[str, Any]]:
    """The private join of ``join.stats`` in buckets: (joined rows, {"party.column":
    SharedTensor}) over all buckets, each column with one scale for every bucket and, for a
    float column, the public bound of ``protocols.stats.scaling`` (as ``scale_columns``
    gives the unbucketed join), so the statistics run as they do after one join. Each
    column's shares are in a memory-mapped file of the checkpoint directory
    (``protocols.stats.chunked.spilled``; the caller ends with ``chunked.close``). With
    describe after the dealer-free join (``_owner_ranks``), each column's owner ranks in its
    owner's whole column ride with every bucket's rows, shared, and are noted on the column
    (``mpc.ss.order.note_rank``, spilled like it), as the unbucketed join's ``ranks=True``."""
    from mpc import ss
    from mpc.ss import clos_shuffle
    from protocols.stats import chunked
    from protocols.stats.scaling import apply_shifts, default_bits, exchange_scales

    store = _checkpoint(ctx, "join.stats", params, data, [ref, *values], memory)
    done = _start(ctx, store)
    names = [v.column for v in values]
    exps = [0] * len(values)
    ints = [True] * len(values)

    def batches():
        offset = 0
        for b in data.batches([ref, *values]):
            cols = [numeric(v, b[v.column], offset) for v in values]
            for j, (v, c) in enumerate(zip(values, cols, strict=True)):
                ints[j] &= b[v.column].dtype.kind in "iub"
                if len(c):
                    exps[j] = max(exps[j], math.frexp(float(np.max(np.abs(c))))[1])
            offset += len(b[ref.column])
            yield b[ref.column], (np.stack(cols, axis=1) if cols else None)

    def scales(n: int) -> dict[str, Any]:      # one scale per column for every bucket (as scale_columns)
        return {"shifts": [0 if ints[j] else default_bits(n) - exps[j] for j in range(len(values))],
                "bounds": [None if ints[j] else default_bits(n) for j in range(len(values))],
                "ranked": False}               # a fresh spill has no owner ranks yet (_owner_ranks)

    sp, _, kind = buckets.spill(ctx, store, batches, len(values), scales)
    shifts = store.state["shifts"]
    m = _unique_ids(store, ref)
    ranked = len(values) if _rides_ranks(ctx, params) else 0
    sizes, nb = _plan(ctx, store, "bucketed_join", kind, m, memory, "join", {"join": params["join"]},
                      buckets.RANK_BYTES * ranked)
    _consent_to_bucket_sizes(ctx, data, nb)
    bounds = store.state.get("bounds") or [None] * len(names)
    all_shifts = exchange_scales(ctx, dict(zip(names, shifts, strict=True)),
                                 {k: int(b) for k, b in zip(names, bounds, strict=True) if b is not None})
    cap = capacity(sizes[ctx.party], nb)
    ranks = _owner_ranks(ctx, store, sp, params, shifts, bounds, needed=len(done) < nb)

    def work(b: int, first: int, count: int) -> dict[str, np.ndarray]:
        table = join_bucket(ctx, sp, b, first, count, cap, names, shifts, params["join"], bounds, ranks, m)
        out = {"rows": np.array([table.num_rows], dtype=np.int64)}
        for i, name in enumerate(table.columns):
            out[f"c{i}"] = table[name].share
            out[f"f{i}"] = np.array([table[name].frac_bits])
            if name in table.ranks:          # the owner's ranks in its whole column, shared
                out[f"r{i}"] = table.ranks[name][0].share
                out[f"rb{i}"] = np.array([table.ranks[name][1]])
        out["names"] = np.array(list(table.columns), dtype=str)
        return out

    # every bucket's result is in the checkpoint: keep its sizes and scales only, and read its
    # shares again column by column below (all buckets' shares at once grow with the joined rows)
    results = [{k: v for k, v in r.items() if not re.fullmatch(r"[cr]\d+", k)}
               for _, r in buckets.run_buckets(ctx, store, nb, done, work)]
    total = int(sum(int(r["rows"][0]) for r in results))
    # the joined columns go to memory-mapped files of the checkpoint directory, one bucket's
    # shares at a time (protocols.stats.chunked.spilled), and the statistics read them chunk
    # by chunk: no joined column is held whole in memory; the job removes the directory
    # when it ends or fails (chunked.close); so do their owner ranks, when the buckets carry
    # them (every bucket's result the same at both parties: one join per bucket)
    ctx.state[chunked.SPILL] = store.path("columns")
    # and the statistics' dealer-free shuffles run in networks that fit the budget
    ctx.state[clos_shuffle.WIRES] = clos_shuffle.wires_for(memory)
    cols: dict[str, Any] = {}
    for i, name in enumerate(results[0]["names"].tolist()):
        parts = (ss.from_shares(ctx, store.load_bucket(b, [f"c{i}"])[f"c{i}"], int(r[f"f{i}"][0]))
                 for b, r in enumerate(results))
        cols[name] = chunked.spilled(ctx, parts, total)
        if all(f"rb{i}" in r for r in results):
            rho = chunked.spilled(ctx, (ss.from_shares(ctx, store.load_bucket(b, [f"r{i}"])[f"r{i}"], 0)
                                        for b in range(nb)), total)
            ss.order.note_rank(cols[name], rho, int(results[0][f"rb{i}"][0]))
    del results
    allocator.release()      # the buckets' free memory, before the statistics' large arrays
    return total, apply_shifts(cols, all_shifts)


def _owner_ranks(ctx: Context, store: Checkpoint, sp: buckets.Spill, params: dict[str, Any], shifts: list[int],
                 bounds: list[int | None], needed: bool) -> Any:
    """With describe after the dealer-free join: each value column's owner ranks in this
    party's whole column (:mod:`protocols.bucketed_ranks`, out of core, in the checkpoint
    directory; computed once per spill, ``needed`` when buckets are left to run), which ride
    along with every bucket's rows as the unbucketed join's do (``private_join`` ranks), so
    describe compares on their R = log2 n bits. None otherwise (both parties alike: the
    job's parameters and the join method decide)."""
    from protocols import bucketed_ranks

    if not _rides_ranks(ctx, params):
        return None
    ranks = bucketed_ranks.Ranks(store.path("ranks"), len(shifts))
    if needed and shifts and not store.state.get("ranked"):
        ctx.report_progress(phase=PHASE_RANKS)
        bucketed_ranks.owner_ranks(sp, ranks.dir, lambda rec: scaled_values(rec, shifts, bounds), len(shifts),
                                   int(store.state["rows"]))
        store.set_state(ranked=True)
    return ranks


def _rides_ranks(ctx: Context, params: dict[str, Any]) -> bool:
    """Whether the buckets of ``join.stats`` carry the owners' ranks: describe after the
    dealer-free (circuit) join."""
    from protocols.psi.private_join import resolve_method

    return "describe" in params.get("stats", ()) and resolve_method(ctx, params["join"]) == "circuit"


# Peak bytes per input row of the jobs that still hold their input whole (the private join's
# and ECDH's figures of buckets.COSTS; a horizontal describe holds a few copies of each value).
WHOLE_INPUT_COSTS = {"join": buckets.COSTS["join"][0], "ecdh": buckets.COSTS["ecdh"][0], "values": 64}
_WHOLE_BASE = 400 << 20      # a party process, as buckets.COSTS


def refuse_over_budget(ctx: Context, params: dict[str, Any], data: LocalData, refs: list[ColumnRef],
                       job: str, per_row: int) -> None:
    """Refuse, before any message, a job that holds its whole input in memory (it is not
    bucketed) when this party's input outgrows its memory budget (:func:`budget`): rows of
    each of its datasets among ``refs`` (counted by streaming the file) times ``per_row``
    bytes, plus a party process's base, must fit. Without a budget, nothing is checked.

    The error names the party, the dataset, its rows and the budget (public to the
    requester anyway: the row count is this party's own, and refusing reveals it only to
    the parties of the job, which learn the distinct counts of a PSI in any case)."""
    memory = budget(params, data)
    if memory is None:
        return
    for name in sorted({r.dataset for r in refs if r.party == ctx.party}):
        ref = next(r for r in refs if r.party == ctx.party and r.dataset == name)
        rows = sum(len(b[ref.column]) for b in data.batches([ref]))
        need = _WHOLE_BASE + rows * per_row
        if need > memory:
            raise DataError(
                f"party {ctx.party!r} refuses: {job} is not bucketed and holds its input whole, and dataset "
                f"{name!r} has {rows} rows, about {need >> 20} MiB at {per_row} B a row, over its memory budget "
                f"of {memory >> 20} MiB ([limits] memory or the job's memory parameter); raise the budget or "
                "give fewer rows")
