"""Memory-bounded passes over long shared columns: the statistics' heavy steps in chunks of
rows, so a job's peak memory is set by ``CHUNK`` (and the columns' own shares), not by the
number of rows.

Why: after a bucketed private join (:mod:`protocols.bucketed`) the statistics see every
joined row at once (2^23 rows at 2^24 x 2^24 inputs). The columns themselves are small
(8 bytes per row and column per party: 64 MiB at 2^23), but a comparison, a truncation or
a matmul triple over all of them at once holds tens of words of temporaries per element
(measured at 2^21 joined rows and two columns, both parties in one process: the min/max
tournament +940 MiB, a hidden truncation +730 MiB, the dealer's matmul triple +780 MiB).
Here each of those runs on at most ``CHUNK`` elements (columns x rows) per call:

- ``extremes``: min and max of each column, the tournament of :func:`mpc.ss.order.extremes`
  per chunk of rows, then one more over the chunks' winners (max of the maxima, max of the
  negated minima): the same values, exactly.
- ``rshift_hidden`` and ``truncated_sum``: the elementwise truncation of
  :meth:`SharedTensor.rshift_hidden` per chunk (each element's truncation is independent,
  so the result has the same distribution as one call); the dealer is asked for the same
  public limit, on smaller shapes.
- ``gram``: the sums of products d d^T as the sum of the chunks' Gram matrices
  (:func:`mpc.ss.gram_matrix`), the centred rows made chunk by chunk and never stored;
  the same ring value as one call.
- ``groups``: which columns run one order-statistics selection together (at most
  ``SELECT_ELEMENTS`` keys per selection), since :func:`mpc.ss.order.select` keeps a copy
  of the keys and a few bytes of bookkeeping per key.
- ``spilled``: when the job has a spill directory (``ctx.state[SPILL]``, :mod:`mpc.ss.spill`, set by the
  bucketed join in its checkpoint directory), a long column that is not being worked on
  lives in a memory-mapped file (:func:`mpc.runtime.files.spill`: mode 0600, unlinked at
  once) instead of memory: the joined columns X, their rescaling r and describe's keys.
  Every pass above reads such a column chunk by chunk and releases the pages it read
  after each chunk, so only the chunk counts in the process's memory; the shares and the
  messages are those of the in-memory columns. Without a spill directory everything stays
  in memory, as before.

Reveals: nothing beyond the unchunked steps. Chunk boundaries are a function of the public
row and column counts; every result stays shared until the caller opens it, and the
values are those of the unchunked computation (exactly, except the truncations, which have
the same error bound per element: :mod:`mpc.ss.beaver`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mpc import ss
from mpc.runtime.context import Context
from mpc.ss import SharedTensor

__all__ = ["CHUNK", "SELECT_ELEMENTS", "SPILL", "close", "extremes", "gram", "groups", "release", "rows_map",
           "rshift_hidden", "spans", "spilled", "spilled_tensor", "truncated_sum"]

# the job's spilled columns (share-level code in mpc.ss.spill), under the names the statistics use
SPILL, close, release, spilled, spilled_tensor = (ss.spill.SPILL, ss.spill.close, ss.spill.release, ss.spill.spilled,
                                                  ss.spill.spilled_tensor)
CHUNK = 1 << 20              # elements (columns x rows) per call of a comparison, truncation or Gram
SELECT_ELEMENTS = 1 << 22    # keys per selection (a copy of the keys and the bookkeeping: ~18 bytes per key)


def spans(n: int, columns: int = 1, chunk: int | None = None) -> list[tuple[int, int]]:
    """Row ranges [start, end) of at most ``chunk`` (default ``CHUNK``) elements of
    ``columns`` columns each; one range when everything fits."""
    step = max(2, (CHUNK if chunk is None else chunk) // max(columns, 1))
    return [(s, min(n, s + step)) for s in range(0, n, step)] or [(0, 0)]


def extremes(xs: Sequence[SharedTensor]) -> tuple[SharedTensor, SharedTensor]:
    """(min, max) of each 1-D column of ``xs`` (one length), shape (c,): exact, reveals
    nothing (:func:`mpc.ss.order.extremes`, chunk by chunk, then over the chunks' winners)."""
    c, n = len(xs), xs[0].shape[0]
    parts = []
    for s, e in spans(n, c):
        parts.append(ss.order.extremes(ss.stack([x[s:e] for x in xs])))
        release(xs[0].ctx)
    if len(parts) == 1:
        return parts[0]
    mins = ss.stack([p[0] for p in parts], axis=1)                # (c, chunks)
    maxs = ss.stack([p[1] for p in parts], axis=1)
    _, top = ss.order.extremes(ss.concatenate([maxs, -mins]))     # max of maxima, max of -minima
    return -top[c:], top[:c]


def rows_map(fn: Callable[[int, int], SharedTensor], n: int, columns: int = 1, ctx: Context | None = None
             ) -> SharedTensor:
    """``fn(start, end)`` for every span of rows, concatenated along the last axis; with
    ``ctx``, 1-D parts go to the job's spill directory if it has one (``spilled``)."""
    if ctx is not None:
        return spilled(ctx, (fn(s, e) for s, e in spans(n, columns)), n)
    parts = [fn(s, e) for s, e in spans(n, columns)]
    return parts[0] if len(parts) == 1 else ss.concatenate(parts, axis=-1)


def rshift_hidden(x: SharedTensor, bits: int, limit: int) -> SharedTensor:
    """``x.rshift_hidden(bits, limit)`` of a 1-D column, ``CHUNK`` rows per call."""
    return rows_map(lambda s, e: x[s:e].rshift_hidden(bits, limit), x.shape[0])


def truncated_sum(x: SharedTensor, bits: int, limit: int) -> SharedTensor:
    """Shares of the sum of ``x.rshift_hidden(bits, limit)`` over a 1-D column, without
    holding the truncated column: one chunk at a time, summed."""
    total = None
    for s, e in spans(x.shape[0]):
        part = x[s:e].rshift_hidden(bits, limit).sum()
        total = part if total is None else total + part
        release(x.ctx)
    return total


def gram(rows: Callable[[int, int], SharedTensor], k: int, n: int, bits: int = 64) -> SharedTensor:
    """Shares of D D^T (k, k) for the (k, n) rows D given chunk by chunk (``rows(start,
    end)``: D[:, start:end]), the sum of the chunks' ``ss.gram_matrix``; D is never held
    whole. ``bits``: the caller's bound |D D^T| < 2^(bits - 1) (``ss.gram_matrix``); it
    holds for every chunk's partial sums too, and the chunks' results, each scaled by
    2^(64 - bits), add up exactly mod 2^64."""
    total = None
    for s, e in spans(n, k):
        part = ss.gram_matrix(rows(s, e), bits)
        total = part if total is None else total + part
        release(part.ctx)
    return total


def groups(c: int, n: int) -> list[list[int]]:
    """Column indices in groups of at most ``SELECT_ELEMENTS`` keys (at least one column
    each), for one selection per group."""
    per = max(1, SELECT_ELEMENTS // max(n, 1))
    return [list(range(i, min(c, i + per))) for i in range(0, c, per)]
