"""Bucketed jobs: stream the input into hash buckets on disk, run a protocol per bucket.

Memory of a PSI or a private join grows with the input; here it is bounded by a budget
instead (``[limits] memory`` of a party server, or a job's ``memory`` parameter), the way
SecretFlow bounds its PSI with buckets of 2^20 rows:

1. Both parties draw a joint 16-byte key (each sends 16 random bytes; the key is their
   xor, so neither chooses it). Each streams its input (:func:`mpc.server.data.iter_batches`)
   and writes every row -- its 16-byte block (:mod:`protocols.psi.blocks`), its row number and
   its values -- to one of ``SPILL`` = 256 files in the job's checkpoint directory, the file
   being the top 8 bits of AES_key(block) (:func:`spill_bucket`: equal ids land in the same
   file at both parties). One batch of rows is in memory at a time.
2. Each party counts its distinct ids (file by file) and the parties exchange the counts:
   the same distinct-set sizes the unbucketed protocols reveal. The number of buckets ``nb``
   is the smallest power of two with ``max(m_a, m_b) / nb`` under the rows the budget allows
   (:func:`bucket_rows`); bucket b is the files ``b * 256/nb .. (b+1) * 256/nb - 1``.
3. Per bucket, each party pads its distinct ids with random 16-byte dummies to the bucket's
   public capacity ``capacity(m, nb)`` (:func:`protocols.psi.oprf.capacity`: exceeded with
   probability below 2^-41), so every message's shape depends on m_a, m_b and the budget
   only, never on how the ids hash; a dummy equals a real id or a peer's dummy with
   probability below n^2 / 2^128. Then it runs the protocol on the bucket: the OPRF PSI
   (:func:`protocols.psi.oprf.oprf_mask`) or the private join; the bucket's result is saved
   (:class:`mpc.runtime.checkpoint.Checkpoint`) and the job's timeout starts again
   (``ctx.renew_deadline``).
4. The results are combined: PSI receivers get the union of the buckets' matched rows;
   the join concatenates the buckets' shared rows.

What per-bucket work reveals beyond the unbucketed protocol: for PSI, nothing (a receiver
knows the key and its matched items, so the per-bucket intersection sizes follow from what
it learns anyway; the padded sizes are public). For a private join, **the number of joined
rows in each bucket** (the private join opens its row count, here once per bucket): with nb
buckets, the sizes of the intersections of nb pseudo-random parts of the ids (both parties
and, with the dealer join, the dealer know which part an id is in -- the dealer does not know
the key). With nb = 1 (the input fits the budget) this is the unbucketed reveal. The join's
reveal line in the registry says so.

Per-bucket CPU work is plain functions over one bucket's arrays, run on the party's executor
(``ctx.executor``, :mod:`mpc.runtime.executor`: its threads, or its Ray cluster): the spill's
hashing (:func:`spill_bucket`, ``SPILL_CHUNK`` ids per call, :func:`spill_files`), its count
of distinct ids per file (:func:`_distinct_counts`) and each bucket's padding
(:func:`distinct_padded`, through :func:`padded_bucket`). The spill files and every message
stay at the party server.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mpc.crypto import curve
from mpc.ot.hashing import ecb
from mpc.ot.wire import expect
from mpc.runtime import allocator
from mpc.runtime.budget import parse_bytes  # noqa: F401 - re-exported for the jobs
from mpc.runtime.checkpoint import Checkpoint
from mpc.runtime.context import Context
from mpc.runtime.executor import chunks
from protocols.psi.blocks import BLOCK, distinct, encode

SPILL = 256                   # spill files per party (the most buckets a job can have)
_SPILL_BITS = 8
SPILL_CHUNK = 1 << 16         # ids per hashing call on the executor (one AES call each)
_COUNT_FILES = 8              # spill files per distinct-count call on the executor
PHASE_SPILL = "buckets: streaming the input into buckets"
PHASE_RUN = "buckets: one protocol run per bucket"


# Peak bytes per distinct id of one bucket's run, and the fixed cost of a party process,
# measured on two servers (bench/bench_scale.py): the OPRF PSI ~130 B per item at 2^22 (2^23
# per bucket went over 2 GiB at 2^24 with the result), the dealer join several hundred per
# row; the circuit join (dealer-free) of two value columns peaked at 1475 / 1626 MiB per
# party with buckets of 1.06 M rows at 2^24 (~1130 B per row); with margin.
COSTS = {"psi": (250, 400 << 20), "ecdh": (400, 400 << 20), "join": (900, 500 << 20),
         "circuit": (1100, 500 << 20)}
# More bytes per bucket row for each value column whose owner ranks ride with the circuit
# join (describe): 1475 -> 1747 MiB at 2^24 with two ranked columns (~130 B each), with margin.
RANK_BYTES = 150


def bucket_rows(memory: int, kind: str, extra: int = 0, overhead: int = 0) -> int:
    """The distinct ids one bucket may hold within ``memory`` bytes, as a power of two
    (``extra``: more bytes per row the job's own per-bucket work holds; ``overhead``: bytes
    the party's executor adds to its process, ``Executor.overhead``)."""
    per_row, base = COSTS[kind]
    rows = max(1 << 12, (memory - base - overhead) // (per_row + extra))
    return 1 << int(math.log2(rows))


def spill_bucket(words: np.ndarray, key: bytes) -> np.ndarray:
    """The spill file (0..255) of each row of (n, 2) uint64 block ``words``: the top byte of
    AES-128_key(block), so both parties put equal ids in the same file."""
    enc = ecb(key, np.ascontiguousarray(words).view(np.uint8).reshape(-1, BLOCK))
    return enc[:, 0].astype(np.uint16)


def spill_files(ctx: Context, words: np.ndarray, key: bytes) -> np.ndarray:
    """:func:`spill_bucket` of every row of ``words`` on ``ctx.executor``, ``SPILL_CHUNK``
    rows per call."""
    out = np.empty(len(words), dtype=np.uint16)
    parts = chunks(len(words), SPILL_CHUNK)
    for p, files in zip(parts, ctx.executor.map(spill_bucket, ((words[p],) for p in parts), (key,)), strict=True):
        out[p] = files
    return out


def _distinct_counts(words: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The number of distinct rows of each of the consecutive runs of ``sizes`` rows of
    (n, 2) uint64 ``words`` (a few spill files read together)."""
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return np.array([len(distinct(words[bounds[i]:bounds[i + 1]])[0]) for i in range(len(sizes))], dtype=np.int64)


def padded_bucket(ctx: Context, words: np.ndarray, cap: int, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`distinct_padded` of one bucket's block ``words`` on ``ctx.executor``."""
    (out,) = ctx.executor.map(distinct_padded, [(words, cap, f"party {ctx.party!r}", bucket)])
    return out


def distinct_padded(words: np.ndarray, cap: int, who: str, bucket: int) -> tuple[np.ndarray, np.ndarray]:
    """One bucket's distinct blocks padded with random dummies to ``cap`` rows ((cap, 16)
    uint8), and each input row's index among them."""
    uniq, inverse = distinct(words)
    if len(uniq) > cap:
        raise RuntimeError(f"{who}: bucket {bucket} holds {len(uniq)} distinct ids, over its capacity {cap} "
                           "(probability below 2^-41; run the job again)")
    out = np.frombuffer(os.urandom(cap * BLOCK), dtype=np.uint8).reshape(cap, BLOCK).copy()
    out[:len(uniq)] = np.ascontiguousarray(uniq).view(np.uint8).reshape(-1, BLOCK)
    return out, inverse


def append_by_file(file: Callable[[int], Path], files: np.ndarray, rows: np.ndarray, count: int) -> None:
    """Append row i of ``rows`` to the file ``file(files[i])`` (``files`` in [0, count)): one
    open and one write per file that gets rows, their order kept within each file."""
    order = np.argsort(files, kind="stable")
    rows, files = rows[order], files[order]
    bounds = np.searchsorted(files, np.arange(count + 1))
    for i in np.nonzero(np.diff(bounds))[0].tolist():
        with open(file(i), "ab") as f:
            rows[bounds[i]:bounds[i + 1]].tofile(f)


class Spill:
    """A party's input as ``SPILL`` files of fixed-size records (block words, row, values)."""

    def __init__(self, directory: Path, n_values: int) -> None:
        self.dir = directory
        self.dtype = np.dtype([("w", np.uint64, (2,)), ("row", np.int64), ("v", np.float64, (n_values,))])
        self.files = [directory / f"spill-{i:03d}.bin" for i in range(SPILL)]    # made once (see PointFiles)
        directory.mkdir(parents=True, exist_ok=True)

    def file(self, i: int) -> Path:
        return self.files[i]

    def reset(self) -> None:
        for i in range(SPILL):
            self.file(i).unlink(missing_ok=True)

    def add(self, files: np.ndarray, records: np.ndarray) -> None:
        append_by_file(self.file, files, records, SPILL)

    def read(self, first: int, count: int) -> np.ndarray:
        parts = [np.fromfile(self.file(i), dtype=self.dtype) for i in range(first, first + count)
                 if self.file(i).exists()]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.dtype)


def block_ids(blocks: np.ndarray) -> list[bytes]:
    """Id blocks (the (n, 16) uint8 of :func:`distinct_padded`, or (n, 2) uint64 words) as
    16-byte ids, the form the PSI and join protocols take (both parties encode an id alike)."""
    raw = np.ascontiguousarray(blocks).view(np.uint8).tobytes()
    return [raw[i:i + 16] for i in range(0, len(raw), 16)]


def block_digests(blocks: np.ndarray) -> np.ndarray:
    """BLAKE2b digests of the id blocks (``curve.hash_items`` of :func:`block_ids`), for ECDH."""
    return curve.hash_items(block_ids(blocks), "bytes")


def joint_key(ctx: Context, peer: str) -> bytes:
    mine = os.urandom(16)
    theirs = expect(peer, ctx.exchange(peer, np.frombuffer(mine, dtype=np.uint8)), np.uint8, (16,),
                    "its share of the bucket key")
    return bytes(a ^ b for a, b in zip(mine, theirs.tobytes(), strict=True))


def joint_key_all(ctx: Context) -> bytes:
    """The bucket key of three or more parties: the xor of 16 random bytes from each (every
    party sends its share to every other), so no coalition short of all chooses it."""
    mine = os.urandom(16)
    key = bytearray(mine)
    for p, share in zip(ctx.parties, ctx.gather(np.frombuffer(mine, dtype=np.uint8)), strict=True):
        if p != ctx.party:
            for i, b in enumerate(expect(p, share, np.uint8, (16,), "its share of the bucket key").tobytes()):
                key[i] ^= b
    return bytes(key)


def agree(ctx: Context, store: Checkpoint) -> set[int] | None:
    """Whether to resume: the buckets both parties have finished (None: start afresh).

    Each party sends whether its checkpoint has a spilled input and the SHA-256 of its
    bucket key (the joint key, which the peer knows too) with its finished buckets; the job
    resumes only when both hold the same key."""
    import hashlib
    state = store.state
    mine = {"key": hashlib.sha256(bytes.fromhex(state["key"])).hexdigest() if state.get("spilled") else "",
            "done": sorted(store.done)}
    if len(ctx.parties) > 2:
        return _agree_all(ctx, store, mine)
    peer = ctx.peers[0]
    theirs = ctx.exchange(peer, mine)
    if not isinstance(theirs, dict) or not isinstance(theirs.get("key"), str) or \
            not isinstance(theirs.get("done"), list):
        raise ValueError(f"party {peer!r} sent a malformed checkpoint status")
    if not mine["key"] or mine["key"] != theirs["key"]:
        return None
    both = store.done & {int(b) for b in theirs["done"] if isinstance(b, int)}
    store.forget(store.done - both)
    return both


def _agree_all(ctx: Context, store: Checkpoint, mine: dict[str, Any]) -> set[int] | None:
    """:func:`agree` among three or more parties: every status to every party; resume only
    when all hold the same key, the buckets every party finished."""
    statuses = ctx.gather(mine)
    done = set(store.done)
    for p, theirs in zip(ctx.parties, statuses, strict=True):
        if not isinstance(theirs, dict) or not isinstance(theirs.get("key"), str) or \
                not isinstance(theirs.get("done"), list):
            raise ValueError(f"party {p!r} sent a malformed checkpoint status")
        if not mine["key"] or theirs["key"] != mine["key"]:
            return None
        done &= {int(b) for b in theirs["done"] if isinstance(b, int)}
    store.forget(store.done - done)
    return done


def spill(ctx: Context, store: Checkpoint, batches: Callable[[], Iterable[tuple[Any, np.ndarray | None]]],
          n_values: int, extra: Callable[[int], dict[str, Any]] = lambda rows: {}) -> tuple[Spill, bytes, str]:
    """Step 1: a fresh joint key and the input streamed into spill files (or, resuming, the
    ones the checkpoint has). ``batches()`` yields (ids, values (rows, n_values) or None);
    ``extra(rows)``: more state the caller learnt while streaming, saved with the spill."""
    sp = Spill(store.path("spill"), n_values)
    if store.state.get("spilled"):
        return sp, bytes.fromhex(store.state["key"]), store.state["kind"]
    key = joint_key(ctx, ctx.peers[0]) if len(ctx.parties) == 2 else joint_key_all(ctx)
    sp.reset()
    kind, row = "empty", 0
    ctx.report_progress(phase=PHASE_SPILL, done=0, unit="rows")
    for ids, values in batches():
        k, words = encode(ids, "ids")
        if k != "empty":
            if kind not in ("empty", k):
                raise TypeError(f"party {ctx.party!r}: the id column holds {kind} and {k} values")
            kind = k
        rec = np.zeros(len(words), dtype=sp.dtype)
        rec["w"] = words
        rec["row"] = np.arange(row, row + len(words))
        if n_values:
            rec["v"] = values
        sp.add(spill_files(ctx, words, key), rec)
        row += len(words)
        ctx.report_progress(done=row)
    counts = [int(c) for part in ctx.executor.map(_distinct_counts, (_file_words(sp, i, _COUNT_FILES)
                                                                     for i in range(0, SPILL, _COUNT_FILES)))
              for c in part]
    allocator.release()          # what the streamed read left in Arrow's pool and the heap
    store.set_state(spilled=True, key=key.hex(), kind=kind, rows=row, counts=counts, **extra(row))
    return sp, key, kind


def _file_words(sp: Spill, first: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The block words of spill files first:first + count (one read) and each file's number of rows."""
    sizes = [sp.file(i).stat().st_size // sp.dtype.itemsize if sp.file(i).exists() else 0
             for i in range(first, first + count)]
    return sp.read(first, count)["w"], np.array(sizes, dtype=np.int64)


def plan(sizes: list[int], rows_per_bucket: int) -> int:
    """The number of buckets: a power of two (at most ``SPILL``) with max(sizes) / nb under
    ``rows_per_bucket``."""
    nb = 1
    while nb < SPILL and max(sizes) > nb * rows_per_bucket:
        nb *= 2
    return nb


def run_buckets(ctx: Context, store: Checkpoint, nb: int, done: set[int],
                work: Callable[[int, int, int], dict[str, np.ndarray]]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Step 3: ``work(bucket, first file, files)`` per unfinished bucket, its result saved;
    yields every bucket's result (finished ones loaded from the checkpoint) in order."""
    per = SPILL // nb
    ctx.report_progress(phase=PHASE_RUN, done=len(done), total=nb, unit="buckets")
    for b in range(nb):
        if b in done:
            yield b, store.load_bucket(b)
            continue
        result = work(b, b * per, per)
        store.save_bucket(b, result)
        ctx.renew_deadline()
        ctx.report_progress(done=len(store.done), total=nb)
        yield b, result
