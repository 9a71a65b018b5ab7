"""``psi.cardinality`` between two parties under a memory budget: only the total leaves.

The bucketed PSI (:mod:`protocols.bucketed`) runs one protocol per hash bucket; done that
way a cardinality would open one count per bucket, and a receiver, who knows the bucket
key, knows which bucket each of its own ids is in: the per-bucket counts say more than
the total (for an id it holds alone in its bucket, whether the peer holds it). So here
the hash buckets only stream the input; the comparison is bucketed by the *double-blinded
value*, which no party can link to an id. ECDH PSI cardinality (Huberman, Franklin and
Hogg, EC 1999; De Cristofaro, Gasti and Tsudik, CANS 2012), out of core:

1. Each party streams its ids into spill files (:func:`protocols.buckets.spill`, which
   also gives the distinct ids file by file: equal ids share a file) and the parties
   exchange their distinct counts (the header every PSI sends).
2. Each party maps its distinct ids onto X25519 (Elligator 2 on BLAKE2b digests of the
   blocks), multiplies by its fresh key k and writes the points to ``FILES`` files chosen
   at random (CSPRNG), then sends them file by file, each file in a fresh CSPRNG order, in
   messages of ``CHUNK`` points: a uniformly random permutation of all its points, held
   one file at a time (a random assignment to bins and a uniform order within each bin
   give every order of the whole the same probability). Without it the peer, who knows
   the bucket key, would see the points in the order of the spill files, and the position
   of a matching point would say which file its id is in.
3. The peer multiplies every point it receives by its own key. If the owner is a receiver,
   the peer writes the double-blinded points (truncated to ``compare_bytes``) to random
   files and returns them, shuffled the same way. A receiver writes the double-blinded
   points of both sides to ``FILES`` files by their first byte (equal values meet in the
   same file) and counts the matches file by file.

Reveals (semi-honest, DDH on Curve25519): both parties, each other's number of distinct
ids; receivers, the size of the intersection and nothing else: the points they see come
in uniformly random orders, and how the matches spread over the value files is a function
of pseudo-random values (simulated from the total alone). The message sizes depend on the
two distinct counts only. A false match has probability about m_a·m_b / 2^(8·compare_bytes).
In memory: one batch of input, one spill file, one message, one value file of each side.
The curve work (hashing onto the curve and blinding, the peer's points multiplied by the
key) runs per batch on the party's executor (``ctx.executor``: its threads, or its Ray
cluster's workers, :func:`on_executor`), the files and the messages stay with the server.
A resubmitted job reuses the spilled input both parties still hold (the blinding runs
afresh: its keys are never stored).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context
from protocols import buckets
from protocols.bucketed import _checkpoint, _start
from protocols.psi.blocks import distinct
from protocols.psi.common import DEFAULT_COMPARE_BYTES, as_keys, check_receivers, exchange_header, shuffled
from protocols.psi.two_party import GROUP, _check_points
from protocols.registry import ColumnRef, LocalData

FILES = 256            # random and value files per party
CHUNK = 1 << 15        # points per message (1 MiB of 32-byte points)
PHASE_BLIND = "cardinality: blinding the ids"
PHASE_EXCHANGE = "cardinality: exchanging blinded ids"
PHASE_COUNT = "cardinality: counting matches"


class PointFiles:
    """Fixed-width rows (points) in ``FILES`` files of one directory, appended a batch at a time."""

    def __init__(self, directory: Path, width: int) -> None:
        self.dir, self.width = directory, width
        # the paths made once: a fresh name per call is interned and dropped, and that churn makes
        # the interpreter rebuild its table of interned names (MiBs) again and again
        self.files = [directory / f"points-{i:03d}.bin" for i in range(FILES)]
        directory.mkdir(parents=True, exist_ok=True)
        for f in directory.glob("points-*.bin"):       # left by an earlier, interrupted run
            f.unlink()

    def file(self, i: int) -> Path:
        return self.files[i]

    def clear(self) -> None:
        """Remove the files (their points are consumed: the disk is freed as the job goes)."""
        for i in range(FILES):
            self.file(i).unlink(missing_ok=True)

    def add(self, files: np.ndarray, rows: np.ndarray) -> None:
        """Append row i of ``rows`` ((n, width) uint8) to file ``files[i]``."""
        buckets.append_by_file(self.file, files, rows, FILES)

    def add_random(self, rows: np.ndarray) -> None:
        """Append each row to a file drawn uniformly at random (CSPRNG)."""
        self.add(np.frombuffer(os.urandom(len(rows)), dtype=np.uint8), rows)

    def add_by_value(self, rows: np.ndarray) -> None:
        """Append each row to the file of its first byte (equal rows meet in one file)."""
        self.add(rows[:, 0], rows)

    def read(self, i: int) -> np.ndarray:
        path = self.file(i)
        if not path.exists():
            return np.zeros((0, self.width), dtype=np.uint8)
        return np.fromfile(path, dtype=np.uint8).reshape(-1, self.width)

    def shuffled_stream(self) -> Iterator[np.ndarray]:
        """Every row once, in a uniformly random order (file by file, each in a CSPRNG order)."""
        for i in range(FILES):
            rows = self.read(i)
            if len(rows):
                yield rows[shuffled(len(rows))]


def on_executor(ctx: Context, fn: Any, batches: Iterable[np.ndarray], *shared: Any) -> Iterator[np.ndarray]:
    """``fn(batch, *shared)`` for every batch, in order, on the party's executor (a few calls
    in flight): the per-batch curve work of the out-of-core PSI cardinalities, as Ray tasks
    when the party's server has a Ray executor (``fn`` a module-level function; its
    arguments, keys included, go to the party's own cluster only)."""
    return ctx.executor.map(fn, ((b,) for b in batches), shared)


def spilled_digests(sp: buckets.Spill, chunk: int) -> Iterator[np.ndarray]:
    """This party's distinct ids, spill file by spill file, as digests (at most ``chunk`` a batch)."""
    for i in range(buckets.SPILL):
        words = sp.read(i, 1)["w"]
        if len(words):
            for part in rechunk([distinct(words)[0]], chunk):
                yield buckets.block_digests(part)


def hashed_blinded(digests: np.ndarray, key: bytes) -> np.ndarray:
    """The digests' points on X25519 (Elligator 2) times ``key``."""
    return curve.hash_to_group(GROUP, digests, key)


def blinded(points: np.ndarray, key: bytes, width: int | None = None) -> np.ndarray:
    """``points`` times ``key`` (their first ``width`` bytes, contiguous)."""
    out = curve.scalar_mul(GROUP, key, points)
    return out if width is None else np.ascontiguousarray(out[:, :width])


def rechunk(parts: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """The rows of ``parts`` again, in arrays of ``size`` rows (the last one shorter)."""
    held: list[np.ndarray] = []
    have = 0
    for part in parts:
        held.append(part)
        have += len(part)
        while have >= size:
            whole = np.concatenate(held)
            yield whole[:size]
            held, have = [whole[size:]], have - size
    if have:
        yield np.concatenate(held)


def message_rows(n: int, i: int) -> int:
    """Points in message i of a stream of n points (public: depends on n only)."""
    return min(CHUNK, n - i * CHUNK)


def _messages(n: int) -> int:
    return -(-n // CHUNK)


def cardinality(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef,
                memory: int) -> int | None:
    """``psi.cardinality`` between exactly two parties with bounded memory: receivers get
    the number of distinct ids both parties hold, others None."""
    if len(ctx.parties) != 2:
        raise ValueError("a bucketed PSI cardinality runs between exactly 2 parties")
    receivers = check_receivers(ctx, params.get("receivers") or None)
    cb = DEFAULT_COMPARE_BYTES
    store = _checkpoint(ctx, "psi.cardinality", params, data, [ref], memory)
    _start(ctx, store)
    sp, _, kind = buckets.spill(ctx, store, lambda: ((b[ref.column], None) for b in data.batches([ref])), 0)
    m = int(sum(store.state["counts"]))
    headers = exchange_header(ctx, "bucketed_cardinality", kind, m, {"receivers": receivers, "compare_bytes": cb})
    peer = ctx.peers[0]
    peer_m = int(headers[ctx.parties.index(peer)]["size"])
    me_recv, peer_recv = ctx.party in receivers, peer in receivers
    key = curve.new_key(GROUP)

    # 2. my distinct ids, blinded by my key, in random files (a random order to send them in)
    ctx.report_progress(phase=PHASE_BLIND, done=0, total=m, unit="ids")
    outgoing, done = PointFiles(store.path("outgoing"), curve.POINT_BYTES), 0
    for points in on_executor(ctx, hashed_blinded, spilled_digests(sp, CHUNK), key):
        outgoing.add_random(points)
        done += len(points)
        ctx.report_progress(done=done)

    # 3. exchange: my points out, the peer's in (blinded by my key too)
    returning = PointFiles(store.path("returning"), cb) if peer_recv else None
    theirs = PointFiles(store.path("theirs"), cb) if me_recv else None
    mine = PointFiles(store.path("mine"), cb) if me_recv else None
    sending = rechunk(outgoing.shuffled_stream(), CHUNK)
    rounds = max(_messages(m), _messages(peer_m))
    ctx.report_progress(phase=PHASE_EXCHANGE, done=0, total=rounds, unit="messages")
    for i in range(rounds):
        if i < _messages(m):
            ctx.send(peer, np.ascontiguousarray(next(sending)))
        if i < _messages(peer_m):
            got = _check_points(ctx, peer, ctx.recv(peer), message_rows(peer_m, i))
            (double,) = on_executor(ctx, blinded, [got], key, cb)
            if theirs is not None:
                theirs.add_by_value(double)
            if returning is not None:
                returning.add_random(double)
        ctx.report_progress(done=i + 1)
    back = rechunk(returning.shuffled_stream(), CHUNK) if returning is not None else iter(())
    for i in range(max(_messages(peer_m) if peer_recv else 0, _messages(m) if me_recv else 0)):
        if peer_recv and i < _messages(peer_m):
            ctx.send(peer, np.ascontiguousarray(next(back)))
        if me_recv and i < _messages(m):
            mine.add_by_value(_check_points(ctx, peer, ctx.recv(peer), message_rows(m, i), cb))
    if not me_recv:
        ctx.report_progress(1.0)
        return None

    # 4. count, one value file of each side at a time
    ctx.report_progress(phase=PHASE_COUNT, done=0, total=FILES, unit="files")
    count = 0
    for f in range(FILES):
        count += int(np.isin(as_keys(mine.read(f), cb), as_keys(theirs.read(f), cb)).sum())
        ctx.report_progress(done=f + 1)
    ctx.report_progress(1.0)
    return count
