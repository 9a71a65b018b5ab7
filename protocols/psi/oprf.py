"""Two-party PSI from the KKRT OPRF on cuckoo-hashed bins (no dealer, symmetric crypto only).

Kolesnikov, Kumaresan, Rosulek, Trieu, "Efficient Batched Oblivious PRF with Applications
to Private Set Intersection" (CCS 2016), section 5, semi-honest, with bucketing for
bounded memory. One party, the *finder* (the only receiver, or with two receivers the
party with fewer distinct items), learns the intersection; with two receivers it then
tells the other party which of its items matched.

1. Both parties exchange headers (distinct-set sizes, parameters) and draw a joint
   32-byte key (each sends 32 random bytes; the key is their xor). Items (16-byte
   blocks, :mod:`protocols.psi.blocks`) are hashed under that key with AES
   into ``nb = ceil(max(n_a, n_b) / bucket_size)`` buckets and, inside a bucket, to 3
   candidate bins.
2. Per bucket, the finder places its items in ``num_bins(cap_f)`` bins by cuckoo
   hashing (:mod:`mpc.crypto.cuckoo`, failure <= 2^-40 / nb per bucket), fills empty
   bins with random dummies and runs one KKRT batch (:mod:`mpc.ot.kkrt`) with input
   x || i in each bin (x its item, i the hash function that placed it there), learning
   F(bin, x || i).
3. The other party (the *sender*) evaluates F(h_i(y), y || i) for each of its items y
   and i = 0, 1, 2, and sends the three sets, each padded with random values to the
   bucket capacity ``cap_s``, truncated to ``ell`` bytes, each set sorted (its order
   depends only on the pseudorandom values, like a random shuffle).
4. The finder's item x (placed by hash i) is in the intersection iff its output is in
   set i. With two receivers it sends the blocks of the matched items, sorted; the
   sender looks its own blocks up in that list.

Buckets have a public capacity: ``cap = n`` for one bucket, otherwise mu + t with mu =
n / nb and t from the Chernoff bound P[load >= mu + t] <= exp(-t^2 / (2 (mu + t / 3)))
<= 2^-(41 + log2 nb) (a load over the capacity fails the run, probability below 2^-41 per
party). So every message has a shape that depends only on the two set sizes and the
parameters, never on the items or how they hash.

What each party learns (semi-honest, 128-bit computational, 40-bit statistical):

* both: the number of distinct items of the other party;
* the finder: which of its items are in the intersection (and nothing about the sender's
  other items: their OPRF values are pseudorandom without the sender's key s); a false
  match has probability below 2^-40 (``ell`` = ceil((40 + log2(pairs compared)) / 8)
  bytes);
* the sender: from the KKRT matrices nothing (pseudorandom whatever the finder's
  items); with two receivers, the intersection (the blocks it receives are of items it
  holds, in sorted order, so they say nothing about the finder's input order or cuckoo
  table).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from mpc.crypto import cuckoo
from mpc.ot import KkrtReceiver, KkrtSender, session
from mpc.ot.hashing import ecb
from mpc.ot.kkrt import sender_evaluate
from mpc.ot.wire import expect
from mpc.runtime.context import Context
from mpc.runtime.errors import ProtocolViolation
from mpc.runtime.executor import Executor, chunks
from mpc.runtime.executor import default as default_executor
from protocols.psi.blocks import BLOCK, TEXT_ENCODING, prepare_blocks
from protocols.psi.common import (
    PsiResult,
    check_receivers,
    exchange_header,
    pick,
    rows_of,
)

DEFAULT_OPRF_BUCKET = 1 << 18
STAT = 40
_CHUNK = 1 << 16        # items per AES call (layout, sender evaluation): bounded temporaries
PHASE = "OPRF PSI: evaluating the OPRF per bucket"     # progress: done of nb "buckets"


def capacity(n: int, nb: int, stat: int = STAT) -> int:
    """Public bucket capacity for ``n`` items in ``nb`` buckets (overflow <= 2^-(stat+1))."""
    if nb <= 1 or n == 0:
        return n
    mu = n / nb
    c = (stat + 1 + math.log2(nb)) * math.log(2)
    t = c / 3 + math.sqrt(c * c / 9 + 2 * c * mu)
    return min(n, math.ceil(mu + t))


def compare_bytes(pairs: int, stat: int = STAT) -> int:
    """Output bytes so that ``pairs`` comparisons give a false match with prob <= 2^-stat."""
    return min(16, max(8, math.ceil((stat + math.log2(max(2, pairs))) / 8)))


def _hash_chunk(part: np.ndarray, key: bytes, nb: int, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket ((c,) int64) and 3 candidate bins ((c, 3) uint32) of the blocks ``part``
    under the joint hashing key: a pure function, run on the party's executor."""
    hi32, low = np.uint64(32), np.uint64(0xFFFFFFFF)
    a = ecb(key[:16], part).view(np.uint64)                  # (c, 2): bucket, bins 0 and 1
    b = ecb(key[16:], part).view(np.uint64)                  # (c, 2): bin 2
    locations = np.empty((len(part), 3), dtype=np.uint32)
    for k, word in enumerate((a[:, 1] & low, a[:, 1] >> hi32, b[:, 0] & low)):
        locations[:, k] = (word * np.uint64(bins)) >> hi32
    return ((a[:, 0] >> hi32) * np.uint64(nb)) >> hi32, locations


class _Layout:
    """Where each item goes: its bucket and, inside the bucket, its 3 candidate bins."""

    def __init__(self, blocks: np.ndarray, key: bytes, nb: int, bins: int,
                 executor: Executor | None = None) -> None:
        if bins >= 1 << 32:
            raise ValueError(f"{bins} bins per bucket: use a smaller bucket_size")
        n = len(blocks)
        small = np.uint16 if nb <= 1 << 16 else np.int64            # uint16: numpy radix-sorts it
        bucket = np.empty(n, dtype=small)
        self.locations = np.empty((n, 3), dtype=np.uint32)          # 12 bytes per item
        parts = chunks(n, _CHUNK)                                     # AES outputs a chunk at a time
        hashed = (executor or default_executor()).map(_hash_chunk, ((blocks[p],) for p in parts), (key, nb, bins))
        for p, (b, loc) in zip(parts, hashed, strict=True):
            bucket[p], self.locations[p] = b, loc
        index = np.int32 if n < 1 << 31 else np.int64
        self.order = np.argsort(bucket, kind="stable").astype(index)
        self.bounds = np.concatenate([[0], np.cumsum(np.bincount(bucket, minlength=nb))])
        self.inputs = blocks

    def bucket(self, b: int, cap: int, who: str) -> np.ndarray:
        idx = self.order[self.bounds[b]:self.bounds[b + 1]]
        if len(idx) > cap:
            raise RuntimeError(f"{who}: bucket {b} holds {len(idx)} items, over its capacity {cap} "
                               "(probability below 2^-41; run the job again)")
        return idx

    def oprf_inputs(self, idx: np.ndarray, hash_index: np.ndarray) -> np.ndarray:
        """x || i: the item's block with the hash index xored into its last byte."""
        x = self.inputs[idx].copy()
        x[:, 15] ^= hash_index.astype(np.uint8)
        return x


def _words(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``ell``-byte rows (8 <= ell <= 16) as two uint64 words (first 8 bytes, the rest)."""
    wide = np.zeros((len(values), 16), dtype=np.uint8)
    wide[:, :values.shape[1]] = values
    w = wide.view(np.uint64)
    return w[:, 0].copy(), w[:, 1].copy()


def _member(mine: np.ndarray, theirs: np.ndarray, peer: str, what: str) -> np.ndarray:
    """Which rows of ``mine`` occur among the rows of ``theirs`` (both (n, ell) uint8).

    ``theirs`` comes from ``peer`` sorted by its first 8 bytes read as a little-endian
    uint64 (checked: ProtocolViolation otherwise); rows sharing those 8 bytes (rare) are all
    compared on the rest.
    """
    if len(mine) == 0 or len(theirs) == 0:
        return np.zeros(len(mine), dtype=bool)
    th, tl = _words(theirs)
    if np.any(th[1:] < th[:-1]):
        raise ProtocolViolation(f"party {peer!r} sent {what} out of order")
    mh, ml = _words(mine)
    om = np.argsort(mh)                   # sorted queries: searchsorted stays in cache
    mh, ml = mh[om], ml[om]
    left = np.searchsorted(th, mh, side="left")
    right = np.searchsorted(th, mh, side="right")
    hit = np.zeros(len(mine), dtype=bool)
    single = right - left == 1
    hit[single] = tl[left[single]] == ml[single]
    for i in np.nonzero(right - left > 1)[0].tolist():
        hit[i] = bool(np.any(tl[left[i]:right[i]] == ml[i]))
    out = np.empty(len(mine), dtype=bool)
    out[om] = hit
    return out


def _sort_rows(values: np.ndarray) -> np.ndarray:
    """Rows of (n, ell) uint8 ``values`` sorted by their first 8 bytes (little-endian uint64)."""
    return np.take(values, np.argsort(_words(values)[0]), axis=0)


def _joint_key(ctx: Context, peer: str) -> bytes:
    mine = os.urandom(32)
    theirs = expect(peer, ctx.exchange(peer, np.frombuffer(mine, dtype=np.uint8)), np.uint8, (32,),
                    "its share of the hashing key")
    return bytes(a ^ b for a, b in zip(mine, theirs.tobytes(), strict=True))


def cuckoo_tables(layout: _Layout, idxs: list[np.ndarray], bins: int, executor: Executor | None = None
                  ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The receiver's cuckoo tables of the buckets ``idxs`` (:func:`mpc.crypto.cuckoo.insert`,
    a pure function of the items' candidate bins), on ``executor`` a few buckets ahead of the
    caller's KKRT batches."""
    return (executor or default_executor()).map(cuckoo.insert, ((layout.locations[idx], bins) for idx in idxs))


def oprf_bins(kkrt: KkrtReceiver, layout: _Layout, idx: np.ndarray, bins: int,
              placed: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Receiver side of one bucket: cuckoo-insert the items ``idx`` into ``bins`` bins (or
    take ``placed``, their (table, choice) from :func:`cuckoo_tables`), fill empty bins with
    random dummies and run one KKRT batch on x || i.

    Returns (F(bin, input) as (bins, 16) uint8, table (item of each bin's ``idx`` position,
    -1 if empty), choice (the hash index that placed each item))."""
    table, choice = placed if placed is not None else cuckoo.insert(layout.locations[idx], bins)
    filled = table >= 0
    inputs = np.frombuffer(os.urandom(16 * bins), dtype=np.uint8).reshape(bins, 16).copy()
    held = table[filled]
    inputs[filled] = layout.oprf_inputs(idx[held], choice[held])
    out, _ = kkrt.evaluate(inputs)
    return out, table, choice


def _evaluate_chunk(q: np.ndarray, index: np.ndarray, x: np.ndarray, code_keys: np.ndarray, s: np.ndarray,
                    width: int) -> np.ndarray:
    """The sender's OPRF values of one chunk of rows, truncated to ``width`` bytes (a pure
    function, run on the party's executor: its arguments hold the sender's OPRF key)."""
    return np.ascontiguousarray(sender_evaluate(code_keys, s, q, index, x)[:, :width])


def evaluate_items(kkrt: KkrtSender, q: np.ndarray, first: int, layout: _Layout, idx: np.ndarray,
                   width: int = 16, executor: Executor | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sender side of one bucket: F(h_i(y), y || i) for every item y of ``idx`` and i = 0, 1, 2
    (hash-major: row i k + j is item idx[j] under hash i), truncated to ``width`` bytes,
    a chunk of rows per call of ``executor`` (in-process by default).

    Returns (values (3k, width) uint8, the item of each row, the bin of each row)."""
    k = len(idx)
    hashes = np.repeat(np.arange(3, dtype=np.int64), k)
    items = np.tile(idx, 3)
    rows = layout.locations[items, hashes].astype(np.int64)
    f = np.empty((3 * k, width), dtype=np.uint8)
    parts = chunks(3 * k, _CHUNK)            # a chunk at a time: bounded temporaries
    args = ((np.take(q, rows[p], axis=0), np.uint64(first) + rows[p].astype(np.uint64),
             layout.oprf_inputs(items[p], hashes[p])) for p in parts)
    values = (executor or default_executor()).map(_evaluate_chunk, args, (kkrt.code_keys, kkrt.s, width))
    for p, v in zip(parts, values, strict=True):
        f[p] = v
    return f, items, rows


def _find(ctx: Context, peer: str, layout: _Layout, m: int, nb: int, cap_f: int, cap_s: int, bins: int,
          ell: int) -> np.ndarray:
    """The finder's side: a mask over its distinct items of those in the intersection."""
    kkrt = KkrtReceiver(ctx, peer, session(ctx, peer, "sender"))
    mask = np.zeros(m, dtype=bool)
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def compare(outputs: np.ndarray, items: np.ndarray, choice: np.ndarray) -> None:
        theirs = expect(peer, ctx.recv(peer), np.uint8, (3, cap_s, ell), "OPRF values")
        sels = [choice == i for i in range(3)]
        found = ctx.executor.map(_member, ((outputs[sel], theirs[i], peer, "OPRF values")
                                           for i, sel in enumerate(sels)))
        for sel, hit in zip(sels, found, strict=True):
            mask[items[sel]] = hit

    idxs = [layout.bucket(b, cap_f, ctx.party) for b in range(nb)]
    for b, (idx, placed) in enumerate(zip(idxs, cuckoo_tables(layout, idxs, bins, ctx.executor), strict=True)):
        out, table, choice = oprf_bins(kkrt, layout, idx, bins, placed)
        filled = table >= 0
        held = table[filled]
        pending.append((np.ascontiguousarray(out[filled, :ell]), idx[held], choice[held]))
        if len(pending) == 2:            # one bucket in flight: compare the previous one
            compare(*pending.pop(0))
            ctx.report_progress(phase=PHASE, done=b, total=nb, unit="buckets")
    while pending:
        compare(*pending.pop(0))
    ctx.report_progress(phase=PHASE, done=nb, total=nb, unit="buckets")
    return mask


def _serve(ctx: Context, peer: str, layout: _Layout, nb: int, cap_s: int, bins: int, ell: int) -> None:
    """The sender's side: three padded, sorted sets of OPRF values per bucket."""
    kkrt = KkrtSender(ctx, peer, session(ctx, peer, "receiver"))
    for b in range(nb):
        idx = layout.bucket(b, cap_s, ctx.party)
        q, first = kkrt.receive(bins)
        k = len(idx)
        values = np.frombuffer(os.urandom(3 * cap_s * ell), dtype=np.uint8).reshape(3, cap_s, ell).copy()
        if k:
            f, _, _ = evaluate_items(kkrt, q, first, layout, idx, ell, ctx.executor)
            values[:, :k] = f.reshape(3, k, ell)
        # each set sorted: the order is a function of the (pseudorandom) values alone, so it
        # says no more than a random shuffle would, and the finder needs no sort of its own
        ctx.send(peer, np.stack([_sort_rows(v) for v in values]))
        ctx.report_progress(phase=PHASE, done=b + 1, total=nb, unit="buckets")


def oprf_psi(ctx: Context, items: Any, receivers: Sequence[str] | str | None = None, *,
             bucket_size: int = DEFAULT_OPRF_BUCKET) -> PsiResult | None:
    """Two-party PSI from the KKRT OPRF: receivers (both when None) learn their own rows
    whose value the other party holds; a non-receiver gets None.

    Args:
        items: this party's items (str, bytes or int; one type; duplicates allowed).
        receivers: party names that get the result (the same on both parties).
        bucket_size: items per bucket (bounds memory; the same on both parties).

    Returns:
        :class:`PsiResult` (own rows in the intersection in input order, their indices,
        the number of distinct common values), or None for a non-receiver.

    Raises:
        ValueError: not exactly 2 parties, a None item, mismatched parameters.
        TypeError: mixed item types, or parties passing different item types.
    """
    if len(ctx.parties) != 2:
        raise ValueError(f"oprf_psi runs between exactly 2 parties, got {ctx.parties} "
                         "(use ecdh_psi for 3 or more)")
    receivers = check_receivers(ctx, receivers)
    if not isinstance(bucket_size, int) or isinstance(bucket_size, bool) or bucket_size < 1:
        raise ValueError(f"bucket_size must be a positive int, got {bucket_size!r}")
    prepared = prepare_blocks(items)
    mask = oprf_mask(ctx, prepared.kind, prepared.digests, receivers, bucket_size)
    ctx.report_progress(1.0)
    if mask is None:
        return None
    indices = rows_of(prepared, mask)
    return PsiResult(items=pick(items, indices), indices=indices, cardinality=int(mask.sum()))


def oprf_mask(ctx: Context, kind: str, digests: np.ndarray, receivers: list[str],
              bucket_size: int = DEFAULT_OPRF_BUCKET) -> np.ndarray | None:
    """The OPRF PSI on distinct 16-byte blocks ``digests`` ((m, 16) uint8, of items of
    ``kind``): a receiver gets the mask of its blocks the other party holds, a non-receiver
    None. ``receivers`` in rank order (:func:`check_receivers`); the same on both parties."""
    params = {"receivers": receivers, "bucket_size": bucket_size, "encoding": TEXT_ENCODING}
    headers = exchange_header(ctx, "oprf_psi", kind, len(digests), params)
    sizes = {p: h["size"] for p, h in zip(ctx.parties, headers, strict=True)}
    peer = ctx.peers[0]
    if len(receivers) == 1:
        finder = receivers[0]
    else:   # the smaller set finds: its cuckoo table is the larger cost per item
        finder = min(ctx.parties, key=lambda p: (sizes[p], ctx.parties.index(p)))
    sender = next(p for p in ctx.parties if p != finder)
    m = len(digests)
    mask = np.zeros(m, dtype=bool)
    if min(sizes.values()) > 0:
        nb = -(-max(sizes.values()) // bucket_size)
        cap_f, cap_s = capacity(sizes[finder], nb), capacity(sizes[sender], nb)
        bins = cuckoo.num_bins(cap_f, STAT + math.log2(nb))
        ell = compare_bytes(nb * cap_f * cap_s)
        ctx.report_progress(phase=PHASE, done=0, total=nb, unit="buckets")
        layout = _Layout(digests, _joint_key(ctx, peer), nb, bins, ctx.executor)
        if ctx.party == finder:
            mask = _find(ctx, peer, layout, m, nb, cap_f, cap_s, bins, ell)
            if sender in receivers:
                found = np.ascontiguousarray(digests[mask])
                w = found.view(np.uint64)
                ctx.send(peer, found[np.lexsort((w[:, 1], w[:, 0]))])   # sorted: no input order
        elif ctx.party in receivers:
            _serve(ctx, peer, layout, nb, cap_s, bins, ell)
            found = ctx.recv(peer)
            if (not isinstance(found, np.ndarray) or found.dtype != np.uint8 or found.ndim != 2
                    or found.shape[1] != BLOCK or len(found) > min(sizes.values())):
                expect(peer, found, np.uint8, (min(sizes.values()), BLOCK), "the intersection")
            mask = _member(digests, found, peer, "the intersection")
        else:
            _serve(ctx, peer, layout, nb, cap_s, bins, ell)
    return mask if ctx.party in receivers else None
