"""Shared columns in memory-mapped files: the statistics after a bucketed join keep the
joined columns that are not being worked on on disk (:mod:`protocols.stats.chunked`).

When a job has a spill directory (``ctx.state[SPILL]``, set by the bucketed join in its
checkpoint directory), ``spilled`` and ``spilled_tensor`` put a SharedTensor's shares in a
memory-mapped file there (:func:`mpc.runtime.files.spill`: mode 0600, unlinked at once),
``release`` drops the pages read of them from the process's resident memory after each
chunk, and ``close`` forgets them and removes the directory at the job's end or failure.
The shares (and so every message computed from them) are those of the in-memory tensors;
without a spill directory everything stays in memory. Reveals nothing: local files of the
party's own shares, in its own checkpoint directory.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from mpc.runtime import files
from mpc.runtime.context import Context
from mpc.ss.tensor import SharedTensor, concatenate

SPILL = "mpc.ss.spill.directory"           # job state: the directory of the job's spilled columns
_MAPS = "mpc.ss.spill.maps"            # job state: the spilled arrays, for ``release``


def spilled(ctx: Context, parts: Iterable[SharedTensor], n: int) -> SharedTensor:
    """The 1-D concatenation of ``parts`` (n elements in all, one scale), in a memory-mapped
    file of the job's spill directory when it has one (each part written as it comes, then
    dropped), else in memory (``concatenate``)."""
    directory = ctx.state.get(SPILL)
    if directory is None:
        got = list(parts)
        return got[0] if len(got) == 1 else concatenate(got)
    first: list[SharedTensor] = []

    def shares():
        for p in parts:
            if p.ndim != 1 or (first and (p.frac_bits, p.precision) != (first[0].frac_bits, first[0].precision)):
                raise ValueError("spilled columns are 1-D, of one scale")
            if not first:
                first.append(p)
            yield p.share
            release(ctx)                 # what computing this part read of other spilled columns
    share = files.spill(Path(directory), shares(), (n,), np.uint64)
    ctx.state.setdefault(_MAPS, []).append(share)
    t = first[0] if first else None
    return SharedTensor(ctx, share, 0 if t is None else t.frac_bits, None if t is None else t.precision)


def spilled_tensor(t: SharedTensor) -> SharedTensor:
    """``t`` (any shape) in a memory-mapped file of the job's spill directory, or ``t``
    itself when the job has none."""
    directory = t.ctx.state.get(SPILL)
    if directory is None or t.size == 0:
        return t
    share = files.spill(Path(directory), [t.share], t.shape, np.uint64)
    t.ctx.state.setdefault(_MAPS, []).append(share)
    return SharedTensor(t.ctx, share, t.frac_bits, t.precision)


def release(ctx: Context) -> None:
    """Drop the pages read of the job's spilled columns from its resident memory (they are
    read again, from the page cache or the file, when next touched). Called once per chunk
    of an out-of-core pass, which is progress: the job's deadline is renewed
    (``Context.renew_deadline``), so a long pass over spilled columns is bounded by the time
    without progress, as a bucketed job's buckets are."""
    ctx.renew_deadline()
    for share in ctx.state.get(_MAPS, ()):
        files.release(share)


def close(ctx: Context) -> None:
    """At the end of a job (or its failure): forget its spilled columns and remove its spill
    directory (the files themselves are unlinked from the start)."""
    ctx.state.pop(_MAPS, None)
    directory = ctx.state.pop(SPILL, None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
