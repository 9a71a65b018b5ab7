"""``psi.cardinality`` among three or more parties under a memory budget, out of core.

The N-party ECDH PSI cardinality of :mod:`protocols.psi.multiparty` (``run(...,
cardinality_only=True)``: the re-encryption mix of Sako and Kilian, EUROCRYPT 1995, with a
DH-PSI blinding step at each hop, as in Huberman, Franklin and Hogg, EC 1999, and De
Cristofaro, Gasti and Tsudik, CANS 2012), with every step that held a whole set done file by
file. As for two parties (:mod:`protocols.bucketed_cardinality`), the hash buckets only
stream the input: a per-bucket run would reveal per-bucket counts, and a receiver knows the
bucket of each of its ids. The ring, the leader L (first receiver), the shufflers S and the
mixer M (last party of the ring) are multiparty's; so are the per-batch steps
(``encrypt_items``, ``mix``, ``decrypt``, ``present_in_all``, ``blind``, ``map_out``,
``unblinder``):

1. Each party streams its ids into spill files (:func:`protocols.buckets.spill`: the distinct
   ids file by file, equal ids in one file) and every party sends its distinct count (the
   header every PSI sends).
2. Pool: M sends its ElGamal public key to the shufflers. Every non-leader other than the
   first shuffler S1 encrypts its hashed distinct ids, file by file, writes the ciphertexts
   to ``FILES`` files chosen at random (CSPRNG) and sends them to S1 *shuffled* (below). S1
   re-encrypts (``mix``) its own encrypted ids and every batch it receives (the senders'
   streams taken in turn, message by message) into random files; each later shuffler does
   the same with the pool it receives; each one sends the pool on shuffled, the last to M.
3. M decrypts every batch into ``FILES`` value files keyed on the points' first byte (equal
   values meet in one file), keeps file by file the values present N-1 times, blinds them by
   its key into random files, sends L their number, then the values, shuffled; L blinds each
   batch by its key into value files.
4. Mapping: L blinds its hashed ids by a temporary scalar t into random files and sends them
   shuffled around the ring; each hop blinds every batch by its key into random files and
   sends them on shuffled; back at L, each batch is unblinded by k_L·t^-1 into value files.
5. L counts, value file by value file, its K-blinded ids present among the K-blinded
   non-leader intersection, and sends the count to the other receivers.

Shuffled: a party's points go to ``FILES`` files, each point to a file drawn uniformly and
independently (CSPRNG); then the files are sent in file order, each in a fresh CSPRNG order
(``PointFiles.shuffled_stream``), in messages of ``CHUNK`` points. That is a uniformly random
permutation of the whole, whatever the order the points were written in: for n points and a
given output order o, given the file sizes (n_0, .., n_F-1) the assignment is a uniformly
random partition of the points into sets of those sizes, so the points of o's first n_0
positions are file 0's, the next n_1 file 1's, ... with probability prod(n_f!) / n!, and
the orders within the files are then o's with probability prod(1 / n_f!): 1 / n! for every
size vector, so 1 / n! in all. The in-memory protocol's whole-set CSPRNG shuffles are
uniform permutations too: every party receives the same values (the same encryptions,
re-encryptions and blindings of the same items) with the same distribution of orders.

Reveals: those of ``multiparty.run(..., cardinality_only=True)``, exactly. Every party: every
party's distinct count. Receivers: the size of the N-way intersection (the others: None).
L: the size of the non-leader intersection (here as a number before the values, there as
the length of one array). M: how many values occur in exactly c of the N-1 non-leader sets
(for N = 3: the size of the non-leader intersection). Shufflers see only ciphertexts, and
every point comes in a uniformly random order. The message sizes are functions of the
public distinct counts (and, the values M sends L, of that size L learns); the other
messages are message numbers acknowledging a batch (flow control: a sender has at most two
batches unacknowledged, so no mailbox holds more, however large the sets). The value files
are each party's own arrangement of what it holds in memory in the unbucketed protocol.
No per-bucket or per-file count leaves a party.
Every batch's curve work (encryption, mix, decryption, blinding) runs on the party's executor
(``bucketed_cardinality.on_executor``: its threads, or its Ray cluster's workers).
In memory (per party): one spill file, one message of ``CHUNK`` points (or ciphertexts) and
the one or two unacknowledged messages queued for it, one random or value file of each kind
it reads, and its keys. On disk: a few copies of its share of the pool (removed as they are
consumed). A resubmitted job reuses the spilled input every party still holds (the keys are
never stored: everything after the spill runs afresh).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from mpc.crypto import curve
from mpc.runtime.context import Context
from protocols import buckets
from protocols.bucketed import _checkpoint, _start
from protocols.bucketed_cardinality import (
    FILES,
    PointFiles,
    message_rows,
    on_executor,
    rechunk,
    spilled_digests,
)
from protocols.bucketed_cardinality import _messages as messages
from protocols.psi import multiparty
from protocols.psi.common import as_keys, check_receivers, exchange_header
from protocols.psi.multiparty import CT, GROUP, W
from protocols.registry import ColumnRef, LocalData

PHASE_POOL = "cardinality: mixing the encrypted ids"
PHASE_COUNT = "cardinality: counting the values every other party holds"
PHASE_MAP = "cardinality: mapping the leader's ids"


def encrypted(digests: np.ndarray, pub: bytes) -> np.ndarray:
    """:func:`protocols.psi.multiparty.encrypt_items` with the batch first (for ``on_executor``)."""
    return multiparty.encrypt_items(pub, digests)


def mixed(cts: np.ndarray, pub: bytes, key: bytes) -> np.ndarray:
    """:func:`protocols.psi.multiparty.mix` with the batch first."""
    return multiparty.mix(pub, key, cts)


def encrypted_mixed(digests: np.ndarray, pub: bytes, key: bytes) -> np.ndarray:
    """The first shuffler's own ids: encrypted, then mixed."""
    return multiparty.mix(pub, key, multiparty.encrypt_items(pub, digests))


def decrypted(cts: np.ndarray, secret: bytes) -> np.ndarray:
    """:func:`protocols.psi.multiparty.decrypt` with the batch first."""
    return multiparty.decrypt(secret, cts)


def blinded_ed25519(points: np.ndarray, key: bytes) -> np.ndarray:
    """:func:`protocols.psi.multiparty.blind` (in its group, not the two-party
    ``bucketed_cardinality.blinded``'s X25519) with the batch first."""
    return multiparty.blind(key, points)


def mapped(digests: np.ndarray, t: bytes) -> np.ndarray:
    """:func:`protocols.psi.multiparty.map_out` (the leader's ids times t)."""
    return multiparty.map_out(digests, t)


def _acked(ctx: Context, peer: str, i: int) -> None:
    got = ctx.recv(peer)
    if not isinstance(got, int) or isinstance(got, bool) or got != i:
        raise ValueError(f"party {peer!r} sent a malformed acknowledgement of batch {i}")


def send_stream(ctx: Context, peer: str, points: Iterable[np.ndarray], n: int) -> None:
    """Send the ``n`` rows of ``points`` to ``peer`` in messages of ``CHUNK`` rows; having sent
    message i + 1, wait for the acknowledgement of message i."""
    from protocols import bucketed_cardinality as bc

    parts = rechunk(points, bc.CHUNK)
    k = messages(n)
    for i in range(k):
        part = next(parts, None)
        if part is None or len(part) != message_rows(n, i):
            raise RuntimeError(f"party {ctx.party!r}: fewer than the {n} points announced to {peer!r}")
        ctx.send(peer, np.ascontiguousarray(part))
        if i >= 1:
            _acked(ctx, peer, i - 1)
    if next(parts, None) is not None:
        raise RuntimeError(f"party {ctx.party!r}: more than the {n} points announced to {peer!r}")
    if k:
        _acked(ctx, peer, k - 1)
    ctx.renew_deadline()


def recv_streams(ctx: Context, senders: dict[str, int], width: int) -> Iterator[np.ndarray]:
    """The batches of :func:`send_stream` from each sender (``senders``: points each sends),
    message i of every sender before message i + 1 of any; each checked and acknowledged."""
    for i in range(max((messages(n) for n in senders.values()), default=0)):
        for q, n in senders.items():
            if i < messages(n):
                got = multiparty.check_batch(q, ctx.recv(q), message_rows(n, i), width)
                ctx.send(q, i)
                ctx.renew_deadline()
                yield got


def _count_matches(mine: PointFiles, common: PointFiles) -> int:
    return sum(int(np.isin(as_keys(mine.read(f), W), as_keys(common.read(f), W)).sum()) for f in range(FILES))


def cardinality_parties(ctx: Context, params: dict[str, Any], data: LocalData, ref: ColumnRef,
                        memory: int) -> int | None:
    """``psi.cardinality`` among three or more parties with bounded memory: receivers get the
    number of distinct ids every party holds, others None."""
    from protocols import bucketed_cardinality as bc

    if len(ctx.parties) < 3:
        raise ValueError("the out-of-core N-party cardinality runs among 3 or more parties")
    receivers = check_receivers(ctx, params.get("receivers") or None)
    store = _checkpoint(ctx, "psi.cardinality", params, data, [ref], memory)
    _start(ctx, store)
    sp, _, kind = buckets.spill(ctx, store, lambda: ((b[ref.column], None) for b in data.batches([ref])), 0)
    m = int(sum(store.state["counts"]))
    headers = exchange_header(ctx, "bucketed_cardinality_parties", kind, m, {"receivers": receivers})
    sizes = {p: int(h["size"]) for p, h in zip(ctx.parties, headers, strict=True)}
    me, leader = ctx.party, receivers[0]
    ring, shufflers, mixer = multiparty.ring_roles(ctx.parties, leader)
    pool_n = sum(sizes[p] for p in ring[1:])
    key = curve.new_key(GROUP)
    chunk = bc.CHUNK

    # 2. the pool: the non-leader sets, ElGamal-encrypted for M, re-encrypted and shuffled by each shuffler
    ctx.report_progress(phase=PHASE_POOL, done=0, total=len(shufflers) + 1, unit="hops")
    if me == mixer:
        secret, pub = curve.elgamal_keypair()
        for q in shufflers:
            ctx.send(q, pub)
    elif me in shufflers:
        pub = multiparty.check_public_key(mixer, ctx.recv(mixer))
    if me != leader and me != shufflers[0]:
        own = PointFiles(store.path("encrypted"), CT)
        for cts in on_executor(ctx, encrypted, spilled_digests(sp, chunk), pub):
            own.add_random(cts)
        send_stream(ctx, shufflers[0], own.shuffled_stream(), m)
        own.clear()
    if me in shufflers:
        pos = shufflers.index(me)
        pool = PointFiles(store.path("pool"), CT)
        if pos == 0:
            for cts in on_executor(ctx, encrypted_mixed, spilled_digests(sp, chunk), pub, key):
                pool.add_random(cts)
            incoming = recv_streams(ctx, {q: sizes[q] for q in ring[1:] if q != me}, CT)
        else:
            incoming = recv_streams(ctx, {shufflers[pos - 1]: pool_n}, CT)
        for cts in on_executor(ctx, mixed, incoming, pub, key):
            pool.add_random(cts)
        send_stream(ctx, shufflers[pos + 1] if pos + 1 < len(shufflers) else mixer, pool.shuffled_stream(), pool_n)
        pool.clear()
        ctx.report_progress(done=pos + 1)

    # 3. M keeps the values every non-leader holds; L gets them blinded by M's key and its own
    if me == mixer:
        plain = PointFiles(store.path("plain"), W)
        for points in on_executor(ctx, decrypted, recv_streams(ctx, {shufflers[-1]: pool_n}, CT), secret):
            plain.add_by_value(points)
        ctx.report_progress(phase=PHASE_COUNT, done=0, total=FILES, unit="files")
        common, n_common = PointFiles(store.path("common"), W), 0
        for f in range(FILES):
            kept = multiparty.present_in_all(plain.read(f), len(ring) - 1)
            if len(kept):
                (points,) = on_executor(ctx, blinded_ed25519, [kept], key)
                common.add_random(points)
                n_common += len(kept)
            ctx.report_progress(done=f + 1)
        plain.clear()
        ctx.send(leader, n_common)
        send_stream(ctx, leader, common.shuffled_stream(), n_common)
        common.clear()

    # 4. mapping: L's ids around the ring, reshuffled at each hop, blinded by every key
    ctx.report_progress(phase=PHASE_MAP, done=0, total=len(ring), unit="hops")
    if me == leader:
        t = curve.new_key(GROUP)
        out = PointFiles(store.path("mapping"), W)
        for points in on_executor(ctx, mapped, spilled_digests(sp, chunk), t):
            out.add_random(points)
        send_stream(ctx, ring[1], out.shuffled_stream(), m)
        out.clear()
        n_common = ctx.recv(mixer)
        if isinstance(n_common, bool) or not isinstance(n_common, int) or not 0 <= n_common <= pool_n:
            raise ValueError(f"party {mixer!r} sent a malformed number of common values")
        common = PointFiles(store.path("common-k"), W)
        for points in on_executor(ctx, blinded_ed25519, recv_streams(ctx, {mixer: n_common}, W), key):
            common.add_by_value(points)
        mine = PointFiles(store.path("mine-k"), W)
        unblind = multiparty.unblinder(key, t)
        for points in on_executor(ctx, blinded_ed25519, recv_streams(ctx, {mixer: m}, W), unblind):
            mine.add_by_value(points)
        # 5. the count, one value file of each kind at a time
        count = _count_matches(mine, common)
        mine.clear()
        common.clear()
        for r in receivers:
            if r != me:
                ctx.send(r, count)
        ctx.report_progress(1.0)
        return count
    pos = ring.index(me)
    hop = PointFiles(store.path("hop"), W)
    for points in on_executor(ctx, blinded_ed25519, recv_streams(ctx, {ring[pos - 1]: sizes[leader]}, W), key):
        hop.add_random(points)
    send_stream(ctx, ring[(pos + 1) % len(ring)], hop.shuffled_stream(), sizes[leader])
    hop.clear()
    ctx.report_progress(1.0)
    if me not in receivers:
        return None
    got = ctx.recv(leader)
    if isinstance(got, bool) or not isinstance(got, int) or got < 0:
        raise ValueError(f"party {leader!r} sent a malformed count")
    return got
