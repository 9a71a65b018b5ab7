"""Dealer-assisted oblivious join: the dealer matches two parties' keyed tags and turns the
matched rows into fresh additive shares, without learning ids or values.

The two computing parties, A (first) and B (last), share a PRF key and one mask seed per
table that the dealer does not know (:mod:`protocols.psi.private_join` sets them up).
Each party sends the dealer, in its own secret row order, its tags PRF_k(id) and its rows
masked as Y = X - R (R expanded from its table's mask seed, so the other party knows R
too). The dealer intersects the tags, puts the matched pairs (i_k in A's order, j_k in
B's) in a random order k, and sends

    A: the positions j and Y_A[:, i] - M_A        B: the positions i and Y_B[:, j] - M_B

with M_A from B's dealer PRG and M_B from A's. Then A's columns are shared as
(Y_A[i] - M_A at A, R_A[i] + M_A at B) and B's as (R_B[j] + M_B at A, Y_B[j] - M_B at B):
the shares add up to the matched rows, in the dealer's random order.

Reveals: the dealer learns both table sizes and the number of matches, nothing else (tags
are pseudorandom without the key, masked rows uniform). A learns positions j in B's secret
row order, a uniformly random subset (so only the count), and B likewise; every share a
party receives is masked by randomness it does not know. Needs, as all dealer protocols,
a dealer that colludes with neither party.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mpc.crypto.random import PRG, secure_permutation
from mpc.runtime.context import Context
from mpc.ss import provider
from mpc.ss.triples import MAX_ELEMENTS, get_source

TAG_BYTES = 16


def _check_side(msg: Any, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Tags (n, 16) uint8 and masked rows (c, n) uint64 of one party, checked."""
    if not isinstance(msg, dict):
        raise ValueError(f"party {who!r} sent the dealer a malformed join request")
    tags, rows = msg.get("tags"), msg.get("rows")
    if (not isinstance(tags, np.ndarray) or tags.dtype != np.uint8 or tags.ndim != 2
            or tags.shape[1] != TAG_BYTES or not isinstance(rows, np.ndarray) or rows.dtype != np.uint64
            or rows.ndim != 2 or rows.shape[1] != tags.shape[0] or rows.size > MAX_ELEMENTS):
        raise ValueError(f"party {who!r} sent the dealer join tags or rows of the wrong shape or type")
    return tags, rows


def _keys(tags: np.ndarray, who: str) -> np.ndarray:
    keys = np.ascontiguousarray(tags).view(f"S{TAG_BYTES}").ravel()
    if len(np.unique(keys)) != len(keys):
        raise ValueError(f"party {who!r} sent the dealer repeated join tags")
    return keys


def serve_match(ctx: Context, prgs: list, request: dict) -> list[int]:
    """Dealer side: the last party's request carries its tags and rows, the first party's
    come on its own channel. Answers both (see the module docstring) and returns what the
    dealer learned: [rows of A, rows of B, matched rows]."""
    first, last = ctx.parties[0], ctx.parties[-1]
    tags_b, rows_b = _check_side(request, last)
    tags_a, rows_a = _check_side(ctx.recv(first), first)
    _, i, j = np.intersect1d(_keys(tags_a, first), _keys(tags_b, last), assume_unique=True, return_indices=True)
    order = secure_permutation(len(i))
    i, j = i[order].astype(np.int64), j[order].astype(np.int64)
    mask_a = prgs[-1].uint64((rows_a.shape[0], len(i)))    # B's PRG: B's share of A's columns
    mask_b = prgs[0].uint64((rows_b.shape[0], len(j)))     # A's PRG: A's share of B's columns
    ctx.send(first, {"positions": j, "rows": rows_a[:, i] - mask_a})
    ctx.send(last, {"positions": i, "rows": rows_b[:, j] - mask_b})
    return [len(tags_a), len(tags_b), len(i)]


def match(ctx: Context, tags: np.ndarray, masked_rows: np.ndarray, peer_rows: int,
          peer_cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Party side of the dealer join (first and last computing party of a 2-party job).

    Args:
        tags: (n, 16) uint8 keyed tags of this party's rows, in its secret order.
        masked_rows: (c, n) uint64, this party's columns minus its table's mask R.
        peer_rows, peer_cols: the other party's table shape (public).

    Returns:
        (positions, own_shares, peer_mask): the matched rows' positions in the PEER's
        order, this party's shares (c, m) of its own matched columns, and M (peer_cols, m):
        add the peer's mask R_peer[:, positions] to get this party's shares of the peer's
        columns.
    """
    provider.require(ctx, provider.DEALER_JOIN, "the dealer join")
    if len(ctx.parties) != 2:
        raise ValueError("the dealer join needs two computing parties and the dealer (triples='dealer')")
    source = get_source(ctx)
    got = source.dealer_join({"tags": np.ascontiguousarray(tags, dtype=np.uint8),
                              "rows": np.ascontiguousarray(masked_rows, dtype=np.uint64)})
    positions = got.get("positions") if isinstance(got, dict) else None
    rows = got.get("rows") if isinstance(got, dict) else None
    if (not isinstance(positions, np.ndarray) or positions.dtype != np.int64 or positions.ndim != 1
            or not isinstance(rows, np.ndarray) or rows.dtype != np.uint64
            or rows.shape != (masked_rows.shape[0], len(positions))
            or len(positions) > min(peer_rows, masked_rows.shape[1])
            or (len(positions) and (positions.min() < 0 or positions.max() >= peer_rows))):
        raise ValueError("the dealer sent a malformed join answer")
    return positions, rows, source.join_mask((peer_cols, len(positions)))


def join_tables(ctx: Context, tags: np.ndarray, rows: list[np.ndarray], seeds: tuple[bytes, bytes],
                peer_rows: int, peer_cols: int) -> tuple[int, list[np.ndarray], list[np.ndarray]]:
    """Party side of the dealer join with the table masks: this party's table is sent as its
    ``rows`` (uint64 cells, in the secret order of ``tags``) minus R = PRG(seeds[rank]), and
    its shares of the peer's matched columns are R_peer[:, positions] + M with
    R_peer = PRG(seeds[1 - rank]) (``seeds`` is the pair both parties agreed on, never seen by
    the dealer). Returns (joined rows, own shares per own column, shares per peer column)."""
    n = len(tags)
    own = np.stack(rows) if rows else np.zeros((0, n), np.uint64)
    own -= PRG(seeds[ctx.rank]).uint64(own.shape)
    positions, own_shares, peer_mask = match(ctx, tags, own, peer_rows, peer_cols)
    del own
    peer_shares = PRG(seeds[1 - ctx.rank]).uint64((peer_cols, peer_rows))[:, positions] + peer_mask
    return len(positions), list(own_shares), list(peer_shares)
