"""Oblivious shuffle of shared rows: each row of a (rows, length) share array is permuted
by its own uniformly random permutation (``jointly=False``), or every row by one permutation
(``jointly=True``: a table's columns move together), that no computing party knows.

The job's randomness source runs it (capability ``SHUFFLE``); with the dealer, as follows
(``jointly``: the dealer PRGs draw one permutation per round for all rows).

One round per computing party j: every other party i sends party j its share minus a
mask r_i (uniform, from i's dealer PRG); party j adds what it got to its own share,
applies its permutation perm_j and adds a mask s_j (both from j's dealer PRG), so it
holds perm_j(x - sum r_i) + s_j; the others take fresh shares q_i, and one of them (the
last party, or the first in the last party's round) gets from the dealer
perm_j(sum r_i) - s_j - sum q_i instead. The shares again add up to perm_j(x). The result
is permuted by perm_{N-1} o ... o perm_0. (Without s_j the party getting the correction
would see its own masks r permuted, and so learn perm_j.)

Reveals: nothing to the computing parties (everything they receive is masked by
randomness they do not know); party j knows perm_j only, so the composition is unknown to
every single party. The dealer knows every permutation but sees no data (only shapes).
Security needs, as everywhere with the dealer, that it colludes with no computing party.

Cost: N rounds; each moves (N - 1) x rows x length words to the permuting party, and the
dealer sends one correction of that size per round.

Without a dealer (``triples="ot"``): :mod:`mpc.ss.ot_shuffle`, permute + share by each party
in turn, each with its own secret uniform permutation, on an oblivious switching network
over IKNP OT (Mohassel-Sadeghian, EUROCRYPT 2013; kappa = 128): no third party, each party
knows only its own factor. With N >= 3 parties every other party runs the permuting party's
network with it on its own share, so the permutation stays hidden from any N - 1 colluding
parties. The Paillier source cannot shuffle.
"""

from __future__ import annotations

import numpy as np

from mpc.runtime.context import Context
from mpc.ss.provider import SHUFFLE, MissingCapability
from mpc.ss.triples import get_source


def available(ctx: Context) -> bool:
    """Whether the job's triple source can shuffle."""
    return get_source(ctx).supports(SHUFFLE)


def shuffle(ctx: Context, x: np.ndarray, *, jointly: bool = False) -> np.ndarray:
    """Shares of ``x`` (rows, length) obliviously permuted: every row independently, or
    (``jointly``) all rows by the same permutation, so that column i of the result is
    column pi(i) of ``x`` in every row.

    All computing parties call it with their shares of the same shape.
    """
    x = np.asarray(x, dtype=np.uint64)
    if x.ndim != 2:
        raise ValueError(f"shuffle needs a 2-D share array (rows, length), got shape {x.shape}")
    if not available(ctx):
        raise MissingCapability(SHUFFLE, get_source(ctx).name, "an oblivious shuffle")
    return get_source(ctx).shuffle(x, jointly=bool(jointly))
